r"""Run untrusted Python against tests in an isolated sandbox, and the code-execution rewards.

    run_tests("def add(a, b):\n    return a + b", ["assert add(2, 3) == 5"]).verdict       # "passed"
    run_check(program, test=humaneval["test"], entry_point="add")                     # HumanEval style
    run_io_tests(program, [("1 2\n", "3\n")], compare="tokens")                       # stdin/stdout
    run_python("print(1)").stdout                                                     # a plain script

**A verdict the program cannot forge.** "passed" needs positive evidence: one record per
test, written by the test process after the test ran, through a channel the program never
holds, and a final "done" record. Never an exit status or printed text. For function tests
the program (U) and the tests (T) are two processes under two uids: T calls the program's
functions through proxies and gets return values back as plain data (JSON rebuilt from
builtins: `list`, `dict`, `int`, ...; any other type, builtin subclasses included, is refused),
so exiting early (`exit(0)`, `SystemExit`, `os._exit`, `atexit`, signals), patching
`builtins`/`assert`/the test module, and objects with rigged `__eq__`/`__hash__` all leave
tests without a passing record. The program never sees the tests or expected values (it is
forked before they are read). stdin/stdout tests compare outputs here, in the caller; expected
outputs never enter the sandbox. The mechanics are in `zygote.py`.

Consequences for function tests: arguments and return values must be plain data (a test
that passes a callable, or a function returning an instance of its own class, fails);
argument mutation is not seen by the tests; a test call that runs past `test_timeout`
leaves the program unresponsive, so that test and all later ones fail.

**Isolation** (per worker, built once; see `sandbox.py`): network, mount and PID namespaces
where the kernel allows (no network; the caller's home hidden; /tmp, /var/tmp, /dev/shm
private and emptied after every job; the worker is PID 1, so every process a job started dies
when the job ends); as root, programs run as `nobody` and tests as a second unprivileged uid;
rlimits on CPU, address space, processes, file size and open files; a scrubbed environment.
Where namespaces are unavailable a one-time warning says so and runs keep the rlimits, process
groups and the scrubbed environment only.

What it does NOT protect against: reading world-readable files (the filesystem is visible,
read-only by permission); kernel exploits and side channels; resource use below the limits;
RLIMIT_NPROC is per uid, shared by concurrent jobs; without a PID namespace, children that
call setsid() escape the group kill; without root, programs and tests share one uid (the test
process is non-dumpable and the program drops all capabilities, so it cannot read or trace it,
but it can kill it, which fails the run).

**Without root** the worker makes a user namespace (mapping only the caller's uid) with the
other namespaces, so the program cannot name, trace or signal the caller and sees none of its
files but what every user may read; tests/verify/test_unprivileged.py runs the hack suite as
an unprivileged user. Where the kernel forbids user namespaces too, a program would run as the
caller's uid with the caller's files and processes in reach, which no verdict survives: code
verdicts are then refused ("sandbox_error", with `isolation_line` as the reason) unless
`REASONLOOP_SANDBOX_UNISOLATED=1`. `run_python` (trusted scripts) runs either way.
`sandbox.isolation_line` says which isolation is active; it is logged when the first worker starts.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from reasonloop.verify.sandbox import SandboxError, get_sandbox_pool, interpreter_exposure, verdicts_refused

Verdict = str  # "passed" | "failed" | "timeout" | "memory" | "crashed" | "sandbox_error"
_interpreter_exposure = interpreter_exposure  # the old private name, used by tests


@dataclass
class SandboxLimits:
    timeout: float = 10.0
    """wall-clock seconds for the whole job (every test of one program)"""
    test_timeout: float | None = None
    """wall-clock seconds for one test (one function call or one stdin/stdout run); default: timeout"""
    cpu_seconds: int | None = None
    """RLIMIT_CPU; default: the timeout rounded up, plus one"""
    memory_bytes: int = 1 << 30
    """RLIMIT_AS of each process"""
    max_processes: int = 64
    max_file_bytes: int = 16 << 20
    max_open_files: int = 256
    max_output_chars: int = 20_000
    """stdout/stderr kept in the result (the rest is cut)"""

    def __post_init__(self):
        if self.timeout <= 0 or self.memory_bytes < (64 << 20) or self.max_processes < 1:
            raise ValueError("need timeout > 0, memory_bytes >= 64 MiB and max_processes >= 1")
        if self.test_timeout is not None and self.test_timeout <= 0:
            raise ValueError("test_timeout must be positive")

    def header(self, kind: str, jobs: int = 1, max_output_bytes: int | None = None) -> dict:
        test_timeout = self.test_timeout or self.timeout
        cpu = self.cpu_seconds or int(self.timeout) + 1
        return {
            "kind": kind,
            "timeout": self.timeout if kind == "functions" else min(self.timeout, test_timeout) * max(1, jobs) + 0.5,
            "test_timeout": test_timeout,
            "max_output_bytes": max_output_bytes or self.max_output_chars * 4,
            "rlimits": {"RLIMIT_CPU": cpu, "RLIMIT_AS": self.memory_bytes, "RLIMIT_NPROC": self.max_processes,
                        "RLIMIT_FSIZE": self.max_file_bytes, "RLIMIT_NOFILE": self.max_open_files, "RLIMIT_CORE": 0},
        }


@dataclass
class RunResult:
    """How one script run ended (`run_python`)."""

    verdict: Verdict
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    isolation: list[str] = field(default_factory=list)
    """what the run got: "net", "mount", "pid", "uids" or "user" (empty: rlimits only)"""

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


@dataclass
class TestResult:
    """One test's outcome: the per-test record kept with a sample."""

    name: str
    passed: bool
    error: str | None = None
    seconds: float | None = None


@dataclass
class CodeResult:
    """The outcome of running a program against its tests.

    `verdict` is "passed" only when every test left a passing record and the run finished;
    otherwise "failed", "timeout" (the job ran past `timeout`) or "sandbox_error".
    """

    verdict: Verdict
    tests: list[TestResult]
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    isolation: list[str] = field(default_factory=list)
    error: str | None = None
    """why the run as a whole did not pass, when that is not one test's failure"""

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @property
    def fraction(self) -> float:
        """Share of tests with a passing record (0.0 when there are none)."""
        return sum(t.passed for t in self.tests) / len(self.tests) if self.tests else 0.0

    def score(self, partial_credit: bool = False) -> float:
        return self.fraction if partial_credit else float(self.passed)

    def record(self) -> list[dict]:
        """Per-test results as plain dicts (what `Sample.tests` holds)."""
        return [asdict(t) for t in self.tests]


# --- scripts ---------------------------------------------------------------------------------


def run_python(source: str, *, limits: SandboxLimits | None = None, stdin: str = "",
               namespaces: bool = True) -> RunResult:
    """Run `source` as a script in the sandbox and classify how it ended.

    The verdict here is the script's own exit status ("passed" = exited 0): use it for trusted
    scripts (e.g. search's equation checker), never to grade untrusted code against tests.
    """
    limits = limits or SandboxLimits()
    header = limits.header("script", max_output_bytes=limits.max_output_chars * 4)
    header["test_timeout"] = limits.timeout
    try:
        reply, (results, _, err), isolation = get_sandbox_pool(namespaces).run(
            header, [source.encode(), json.dumps([stdin]).encode()])
    except SandboxError as e:
        return RunResult("sandbox_error", None, "", str(e), 0.0)
    records = _records(results)
    run = next((r for r in records if "test" in r), None)
    stderr = err.decode("utf-8", "replace")[-limits.max_output_chars:]
    if run is None:
        if reply["status"] == "timeout":
            return RunResult("timeout", None, "", stderr, reply["seconds"], isolation)
        if any(r.get("error") for r in records):  # the job itself failed and said so
            return RunResult("sandbox_error", None, "", stderr, reply["seconds"], isolation)
        # no record at all: the job process was killed, which only the program can do (without
        # root it runs under the job's uid and may signal it)
        return RunResult("crashed", None, "", stderr + "the job process was killed before it recorded the run\n",
                         reply["seconds"], isolation)
    stdout = run["stdout"][: limits.max_output_chars]
    code = run["returncode"]
    verdict = _classify(code, stderr, run["timed_out"])
    return RunResult(verdict, code, stdout, stderr, run["seconds"], isolation)


def _classify(code: int | None, stderr: str, timed_out: bool) -> Verdict:
    import signal

    if timed_out or code == 128 + signal.SIGXCPU:
        return "timeout"
    if code == 0:
        return "passed"
    if "MemoryError" in stderr:
        return "memory"
    if code is not None and code >= 128:
        return "crashed"  # killed by a signal: SIGXFSZ (file too big), SIGSEGV, its own SIGKILL ...
    return "failed"


def _records(data: bytes) -> list[dict]:
    """The length-prefixed JSON records a job wrote (a cut-off last one is dropped)."""
    out, at = [], 0
    while at + 4 <= len(data):
        n = int.from_bytes(data[at: at + 4], "big")
        if at + 4 + n > len(data):
            break
        out.append(json.loads(data[at + 4: at + 4 + n]))
        at += 4 + n
    return out


# --- function tests ----------------------------------------------------------------------------


def _run_functions(program: str, spec: dict, limits: SandboxLimits | None, namespaces: bool = True) -> CodeResult:
    limits = limits or SandboxLimits()
    try:
        if refused := verdicts_refused(get_sandbox_pool(namespaces).current_isolation()):
            return CodeResult("sandbox_error", [], error=refused)
        reply, (results, out, err), isolation = get_sandbox_pool(namespaces).run(
            limits.header("functions"), [program.encode(), json.dumps(spec).encode()])
    except SandboxError as e:
        return CodeResult("sandbox_error", [], error=str(e))
    records = _records(results)
    names = next((r["tests"] for r in records if "tests" in r), None)
    done = next((r for r in records if r.get("done")), None)
    result = CodeResult("failed", [], out.decode("utf-8", "replace")[: limits.max_output_chars],
                        err.decode("utf-8", "replace")[-limits.max_output_chars:], reply["seconds"], isolation)
    if names is None:
        result.error = (done or {}).get("error") or "the tests did not start"
        return result
    outcome: dict[int, dict] = {}
    for r in records:
        if "test" in r and isinstance(r["test"], int) and 0 <= r["test"] < len(names):
            outcome.setdefault(r["test"], r)  # a test records once; the first record stands
    for i, name in enumerate(names):
        r = outcome.get(i)
        ran = r is not None
        result.tests.append(TestResult(name, ran and r["passed"] is True, r.get("error") if ran else "did not run"))
    if reply["status"] == "timeout":
        result.verdict, result.error = "timeout", f"the job ran past {limits.timeout:g}s"
    elif done is None:
        result.error = "the test process ended without its final record"
    elif done.get("error"):
        result.error = done["error"]
    elif result.tests and all(t.passed for t in result.tests):
        result.verdict = "passed"
    return result


def run_tests(program: str, tests: str | list[str], *, limits: SandboxLimits | None = None,
              setup: str = "") -> CodeResult:
    r"""Run assert-style tests (MBPP style) against `program`; each list item is one test.

    Tests run in their own process and see the program's top-level functions as proxies;
    `setup` (trusted: imports, helpers) runs there first.

    >>> run_tests("def add(a, b):\n    return a + b", "assert add(2, 3) == 5").verdict
    'passed'
    >>> r = run_tests("def add(a, b):\n    return a - b", ["assert add(2, 3) == 5", "assert add(1, 0) == 1"])
    >>> r.verdict, [t.passed for t in r.tests]
    ('failed', [False, True])
    """
    tests = [tests] if isinstance(tests, str) else list(tests)
    return _run_functions(program, {"style": "asserts", "tests": tests, "setup": setup}, limits)


def run_check(program: str, test: str, entry_point: str, *, prompt: str = "",
              limits: SandboxLimits | None = None) -> CodeResult:
    """HumanEval-style tests: `test` defines `check(candidate)`, called with `entry_point`.

    Each top-level statement of `check` that contains an assert is one recorded test.
    `prompt` (the task's own code: imports and helpers such as HumanEval/38's
    `encode_cyclic`) also runs on the tests' side, so a program cannot redefine the helpers
    the tests use.
    """
    spec = {"style": "check", "test": test, "entry_point": entry_point, "prompt": prompt}
    return _run_functions(program, spec, limits)


def check_humaneval(problem: dict, completion: str, *, limits: SandboxLimits | None = None) -> CodeResult:
    """A HumanEval record (`prompt`, `test`, `entry_point`) and a completion that continues the prompt."""
    return run_check(problem["prompt"] + completion, problem["test"], problem["entry_point"],
                     prompt=problem["prompt"], limits=limits)


# --- stdin/stdout tests -------------------------------------------------------------------------

_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def outputs_match(expected: str, actual: str, compare: str = "lines", float_tolerance: float | None = None) -> bool:
    """Does a program's stdout match the expected output?

    - "exact": byte for byte;
    - "lines": line by line with trailing spaces and trailing empty lines ignored (the usual
      APPS / LiveCodeBench rule);
    - "tokens": whitespace-separated tokens (CodeContests), where with `float_tolerance` two
      numeric tokens match within that absolute or relative error.

    >>> outputs_match("3\\n", "3   \\n\\n"), outputs_match("1 2", "1\\n2", "tokens"), outputs_match("1 2", "1\\n2")
    (True, True, False)
    >>> outputs_match("0.3333333", "0.33333334", "tokens", 1e-6), outputs_match("0.5", "0.6", "tokens", 1e-6)
    (True, False)
    """
    if compare == "exact":
        return expected == actual
    if compare == "lines":
        def lines(text: str) -> list[str]:
            out = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
            while out and not out[-1]:
                out.pop()
            return out
        return lines(expected) == lines(actual)
    if compare != "tokens":
        raise ValueError(f"compare must be 'exact', 'lines' or 'tokens', got {compare!r}")
    want, got = expected.split(), actual.split()
    if len(want) != len(got):
        return False
    for a, b in zip(want, got):
        if a == b:
            continue
        if float_tolerance is None or not (_FLOAT.fullmatch(a) and _FLOAT.fullmatch(b)):
            return False
        x, y = float(a), float(b)
        if abs(x - y) > float_tolerance * max(1.0, abs(x)):
            return False
    return True


def run_io_tests(program: str, cases: list[tuple[str, str]], *, limits: SandboxLimits | None = None,
                 compare: str = "lines", float_tolerance: float | None = None) -> CodeResult:
    """Run `program` once per (stdin, expected stdout) case, each under `limits.test_timeout`.

    A case passes when the run exits 0 within its time limit and its output matches
    (`outputs_match`); the comparison happens here, outside the sandbox.
    """
    limits = limits or SandboxLimits()
    cap = max(limits.max_output_chars * 4, 2 * max((len(e) for _, e in cases), default=0) + 1024)
    header = limits.header("stdio", jobs=len(cases), max_output_bytes=cap)
    try:
        if refused := verdicts_refused(get_sandbox_pool().current_isolation()):
            return CodeResult("sandbox_error", [], error=refused)
        reply, (results, _, _), isolation = get_sandbox_pool().run(
            header, [program.encode(), json.dumps([i for i, _ in cases]).encode()])
    except SandboxError as e:
        return CodeResult("sandbox_error", [], error=str(e))
    runs = {r["test"]: r for r in _records(results) if "test" in r}
    result = CodeResult("failed", [], seconds=reply["seconds"], isolation=isolation)
    for i, (_, expected) in enumerate(cases):
        r = runs.get(i)
        if r is None:
            result.tests.append(TestResult(f"case {i}", False, "did not run"))
            continue
        error = None
        if r["timed_out"]:
            error = f"timeout after {header['test_timeout']:g}s"
        elif r["returncode"] != 0:
            kind = "MemoryError" if "MemoryError" in r.get("stderr", "") else f"exit status {r['returncode']}"
            error = f"{kind}: {r.get('stderr', '')[-200:]}"
        elif not outputs_match(expected, r["stdout"], compare, float_tolerance):
            error = "wrong output"
        result.tests.append(TestResult(f"case {i}", error is None, error, round(r["seconds"], 4)))
        if i == 0:
            result.stdout, result.stderr = r["stdout"][: limits.max_output_chars], r.get("stderr", "")
    if reply["status"] == "timeout":
        result.verdict, result.error = "timeout", "the job ran past its time limit"
    elif result.tests and all(t.passed for t in result.tests):
        result.verdict = "passed"
    return result


# --- rewards ---------------------------------------------------------------------------------

_CODE_BLOCK = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(completion: str) -> str | None:
    """The last fenced code block after the reasoning, or None."""
    from reasonloop.verify.extract import strip_reasoning

    blocks = _CODE_BLOCK.findall(strip_reasoning(completion))
    return blocks[-1] if blocks else None


def grade_code(problem, completion: str) -> CodeResult | None:
    r"""Run the completion's last ```python block against the problem's tests; None if it has none.

    `problem.meta` says which tests (one of):
    - `tests`: assert statements, one test each (MBPP style), with optional `test_setup`;
    - `test` + `entry_point`: a HumanEval `check(candidate)`; `prompt_code` (the HumanEval
      prompt) is put before the program and also gives the tests their helpers;
    - `io`: a list of `{"input", "output"}` stdin/stdout cases, compared as `compare`
      ("lines", "tokens", "exact") with optional `float_tolerance`.
    `limits` holds SandboxLimits fields.

    >>> from reasonloop.types import Problem
    >>> p = Problem("sq", "Write square(x).", meta={"tests": ["assert square(3) == 9"]})
    >>> grade_code(p, "```python\ndef square(x):\n    return x * x\n```").verdict
    'passed'
    """
    meta = problem.meta
    limits = SandboxLimits(**meta.get("limits", {}))
    if not (meta.get("tests") or meta.get("io") or (meta.get("test") and meta.get("entry_point"))):
        return None
    program = extract_code(completion)
    if program is None:
        return CodeResult("failed", [], error="no ```python block in the completion")
    if meta.get("io"):
        cases = [(c["input"], c["output"]) for c in meta["io"]]
        return run_io_tests(program, cases, limits=limits, compare=meta.get("compare", "lines"),
                            float_tolerance=meta.get("float_tolerance"))
    if meta.get("tests"):
        return run_tests(program, meta["tests"], limits=limits, setup=meta.get("test_setup", ""))
    prompt = meta.get("prompt_code", "")
    return run_check(f"{prompt}\n{program}" if prompt else program, meta["test"], meta["entry_point"],
                     prompt=prompt, limits=limits)


def code_reward(problem, completion: str) -> float | None:
    r"""1.0 iff the completion's last ```python block passes every test of the problem.

    With `problem.meta["partial_credit"]` the reward is the share of tests passed. None when
    the problem has no tests (see `grade_code` for the test formats).

    >>> from reasonloop.types import Problem
    >>> p = Problem("sq", "Write square(x).", meta={"tests": ["assert square(3) == 9"]})
    >>> code_reward(p, "```python\ndef square(x):\n    return x * x\n```"), code_reward(p, "no code")
    (1.0, 0.0)
    """
    result = grade_code(problem, completion)
    return None if result is None else result.score(bool(problem.meta.get("partial_credit")))


def code_reward_details(problem, completion: str) -> tuple[float | None, list[dict] | None]:
    """`code_reward` and the per-test records behind it (what `score_all` keeps per item)."""
    result = grade_code(problem, completion)
    if result is None:
        return None, None
    return result.score(bool(problem.meta.get("partial_credit"))), result.record()


code_reward.details = code_reward_details
