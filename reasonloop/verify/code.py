r"""Run untrusted Python against tests in a sandbox, and the code-execution reward.

    result = run_tests(program, tests="assert add(2, 3) == 5", limits=SandboxLimits(timeout=5))
    result.verdict   # "passed" | "failed" | "timeout" | "memory" | "crashed" | "sandbox_error"

Hand-written (no library) because the candidates are either nanochat-style in-process
`exec` with rlimits (no process-group kill, no network or filesystem isolation) or a
container runtime, which this machine does not have.

What the sandbox does, per run:
- a fresh interpreter in its own session and process group, started through a small
  bootstrap process, so the whole group is SIGKILLed at the wall-clock timeout;
- rlimits: CPU seconds, address space (memory), process count, file size (output files
  too), open files, no core dumps;
- a scratch directory as cwd, deleted afterwards; a scrubbed environment (PATH, HOME,
  LANG only: no tokens or keys of the caller);
- when the kernel allows it (root, or unprivileged user namespaces): new network, mount and
  PID namespaces. No network at all (only a down loopback). The scratch directory is
  mounted on /tmp, /var/tmp and /dev/shm get private tmpfs, the caller's home (e.g.
  /root) is hidden under an empty tmpfs, and the program is PID 1 of its own namespace:
  it cannot see or signal outside processes, and when it dies every process it started
  dies with it (even those that called setsid to leave the process group);
- as root, the program runs as `nobody`, so RLIMIT_NPROC is enforced (root ignores it)
  and files owned by other users are not writable.
Where namespaces are unavailable, a one-time warning says so and the run continues with
rlimits, the process group and the scrubbed environment only.

What it does NOT protect against (do not run adversarial code you would not run on this
machine with these caveats):
- reading world-readable files (the rest of the filesystem is visible read-only-by-
  permission, not hidden); with namespaces unavailable also writing world-writable places
  such as /tmp and signalling other processes of the same user;
- kernel exploits, side channels, or resource exhaustion below the limits (e.g. 64
  processes each using the memory limit, disk I/O bandwidth, CPU time on other cores);
- without a PID namespace, children that call setsid() escape the group kill (they are
  still bound by RLIMIT_CPU and RLIMIT_NPROC);
- RLIMIT_NPROC is per user: concurrent sandboxes share one budget of processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field

Verdict = str  # "passed" | "failed" | "timeout" | "memory" | "crashed" | "sandbox_error"


@dataclass
class SandboxLimits:
    timeout: float = 10.0
    """wall-clock seconds before the whole process group is killed"""
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


@dataclass
class RunResult:
    verdict: Verdict
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    isolation: list[str] = field(default_factory=list)
    """what the run got: "net", "mount", "pid", "nobody" (empty: rlimits only)"""

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


_SETUP_FAILED = 121  # bootstrap exit code for "could not build the sandbox"

# Runs with the caller's privileges; builds the isolation, then execs the program.
# Kept as source text so it runs in a fresh interpreter with nothing of ours imported.
_BOOTSTRAP = r"""
import ctypes, json, os, resource, signal, sys
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
NEWNS, NEWUSER, NEWPID, NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 4096, 16384, 1 << 18
libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die if our caller dies

def fail(message):
    sys.stderr.write("SANDBOX: " + message + "\n")
    os._exit(121)

def mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        raise OSError(ctypes.get_errno(), "mount %s on %s" % (source, target))

scratch, root = cfg["scratch"], os.geteuid() == 0
isolation = []
if cfg["namespaces"]:
    if root and libc.unshare(NEWNET | NEWNS | NEWPID) == 0:
        isolation = ["net", "mount", "pid"]
    elif not root:
        uid, gid = os.geteuid(), os.getegid()
        if libc.unshare(NEWUSER | NEWNET | NEWNS | NEWPID) == 0:
            for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", "%d %d 1" % (uid, uid)),
                               ("/proc/self/gid_map", "%d %d 1" % (gid, gid))):
                with open(path, "w") as f:
                    f.write(text)
            isolation = ["net", "mount", "pid"]
    if not isolation and libc.unshare(NEWNET) == 0:
        isolation = ["net"]
os.write(cfg["report_fd"], json.dumps(isolation).encode())
os.close(cfg["report_fd"])

child = os.fork()  # with NEWPID, the child is PID 1 of the new namespace
if child:
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))

try:
    workdir = scratch
    if "mount" in isolation:
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        # hide the caller's home (and any other non-traversable ancestor of the
        # interpreter), re-exposing only the interpreter's own tree inside it
        holds = []
        for n, prefix in enumerate(cfg["expose"]):  # grab the trees before their ancestor is covered
            holds.append(os.path.join(scratch, ".hold%d" % n))
            os.mkdir(holds[-1])
            mount(prefix, holds[-1], None, MS_BIND | MS_REC)
        for blocker in sorted({b for b in cfg["blockers"] if b}):
            mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
        for home in cfg["hide"]:
            if os.path.isdir(home) and home not in cfg["blockers"]:
                mount("tmpfs", home, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
        mount(scratch, "/tmp", None, MS_BIND | MS_REC)  # recursive: the holds stay reachable
        for path in ("/var/tmp", "/dev/shm"):
            if os.path.isdir(path):
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m")
        # re-expose the interpreter's trees last: they may live under a hidden home or under
        # /tmp itself (a virtualenv in a checkout under /tmp)
        for prefix, hold in zip(cfg["expose"], holds):
            if not os.path.isdir(hold):  # the scratch directory is now seen at /tmp
                hold = os.path.join("/tmp", os.path.basename(hold))
            os.makedirs(prefix, exist_ok=True)
            mount(hold, prefix, None, MS_BIND | MS_REC)
            libc.umount2(hold.encode(), 2)  # MNT_DETACH
            try:
                os.rmdir(hold)
            except OSError:  # still mounted in the pre-/tmp view; scratch is deleted afterwards anyway
                pass
        try:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV)  # this namespace's PIDs only
        except OSError:
            pass
        workdir = "/tmp"
    if root:
        os.chown(workdir, 65534, 65534)
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    libc.prctl(1, signal.SIGKILL)  # fork and uid changes clear the death signal: set it again
    os.chdir(workdir)
    for name, value in cfg["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
except Exception as e:
    fail(repr(e))
os.execve(cfg["python"], [cfg["python"], "-I", "-B", "main.py"], cfg["env"])
"""

_warned_no_namespaces = False


def _inaccessible_ancestor(path: str) -> str | None:
    """The top-most ancestor of `path` that `nobody` could not traverse, if any."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        ancestor = os.sep.join(parts[:i])
        if os.path.isdir(ancestor) and not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


_PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")


def _interpreter_exposure() -> tuple[list[str], list[str | None]]:
    """Interpreter trees the sandbox would cover and must re-expose: (prefixes, their blockers).

    A tree is covered when an ancestor is not traversable by `nobody` (that ancestor, the
    blocker, gets an empty tmpfs) or when it lives under a private tmp path (blocker None).
    """
    prefixes, blockers = [], []
    for prefix in sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}):
        blocker = _inaccessible_ancestor(prefix)
        under_tmp = any(prefix == t or prefix.startswith(t + os.sep) for t in _PRIVATE_TMP)
        if blocker or under_tmp:
            prefixes.append(prefix)
            blockers.append(blocker)
    return prefixes, blockers


def run_python(source: str, *, limits: SandboxLimits | None = None, stdin: str = "",
               namespaces: bool = True) -> RunResult:
    """Run `source` as a script in the sandbox and classify how it ended."""
    global _warned_no_namespaces
    limits = limits or SandboxLimits()
    cpu = limits.cpu_seconds or int(limits.timeout) + 1
    scratch = tempfile.mkdtemp(prefix="reasonloop-sandbox-")
    outputs = tempfile.mkdtemp(prefix="reasonloop-sandbox-out-")  # outside the scratch dir
    os.chmod(scratch, 0o700)
    with open(os.path.join(scratch, "main.py"), "w") as f:
        f.write(source)
    os.chmod(os.path.join(scratch, "main.py"), 0o644)
    expose, blockers = _interpreter_exposure()
    report_read, report_write = os.pipe()
    cfg = {
        "scratch": scratch, "python": sys.executable, "namespaces": namespaces, "report_fd": report_write,
        "expose": expose, "blockers": blockers, "hide": [os.path.expanduser("~")],
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8"},
        "rlimits": {"RLIMIT_CPU": cpu, "RLIMIT_AS": limits.memory_bytes, "RLIMIT_NPROC": limits.max_processes,
                    "RLIMIT_FSIZE": limits.max_file_bytes, "RLIMIT_NOFILE": limits.max_open_files,
                    "RLIMIT_CORE": 0},
    }
    start = time.monotonic()
    timed_out = False
    try:
        with open(os.path.join(outputs, "out"), "w+b") as out, open(os.path.join(outputs, "err"), "w+b") as err:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOTSTRAP, json.dumps(cfg)],
                stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=scratch, env=cfg["env"],
                start_new_session=True, pass_fds=(report_write,),
            )
            os.close(report_write)
            report_write = -1
            try:
                process.communicate(stdin.encode(), timeout=limits.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(process)
            seconds = time.monotonic() - start
            isolation = json.loads(os.read(report_read, 4096) or b"[]")
            out.seek(0)
            err.seek(0)
            stdout = out.read(limits.max_output_chars * 4).decode("utf-8", "replace")[: limits.max_output_chars]
            stderr = err.read(limits.max_output_chars * 4).decode("utf-8", "replace")[-limits.max_output_chars:]
    finally:
        os.close(report_read)
        if report_write >= 0:
            os.close(report_write)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(outputs, ignore_errors=True)
    if os.geteuid() == 0 and "mount" in isolation:
        isolation.append("nobody")
    if namespaces and not isolation and not _warned_no_namespaces:
        _warned_no_namespaces = True
        warnings.warn("code sandbox: no network/mount/PID namespaces on this machine; running with rlimits, "
                      "a process group and a scrubbed environment only (no network isolation)", RuntimeWarning,
                      stacklevel=2)
    code = process.returncode
    return RunResult(_classify(code, stderr, timed_out), None if timed_out else code, stdout, stderr, seconds,
                     isolation)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _classify(code: int, stderr: str, timed_out: bool) -> Verdict:
    if timed_out or code == 128 + signal.SIGXCPU:
        return "timeout"
    if code == 0:
        return "passed"
    if code == _SETUP_FAILED and "SANDBOX:" in stderr:
        return "sandbox_error"
    if "MemoryError" in stderr:
        return "memory"
    if code >= 128:
        return "crashed"  # killed by a signal: SIGXFSZ (file too big), SIGSEGV, its own SIGKILL ...
    return "failed"


def run_tests(program: str, tests: str | list[str], *, limits: SandboxLimits | None = None) -> RunResult:
    r"""Run `program` followed by `tests` (assert statements); passed iff all of it exits 0.

    >>> run_tests("def add(a, b):\n    return a + b", "assert add(2, 3) == 5").verdict
    'passed'
    >>> run_tests("def add(a, b):\n    return a - b", ["assert add(2, 3) == 5"]).verdict
    'failed'
    """
    if isinstance(tests, list):
        tests = "\n".join(tests)
    return run_python(f"{program}\n\n# --- tests ---\n{tests}\n", limits=limits)


_CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(completion: str) -> str | None:
    """The last fenced code block after the reasoning, or None."""
    from reasonloop.verify.extract import strip_reasoning

    blocks = _CODE_BLOCK.findall(strip_reasoning(completion))
    return blocks[-1] if blocks else None


def code_reward(problem, completion: str) -> float | None:
    r"""1.0 iff the completion's last ```python block passes `problem.meta["tests"]`.

    None when the problem has no tests. The per-run limits come from
    `problem.meta.get("limits", {})` (fields of SandboxLimits).

    >>> from reasonloop.types import Problem
    >>> p = Problem("sq", "Write square(x).", meta={"tests": ["assert square(3) == 9"]})
    >>> code_reward(p, "```python\ndef square(x):\n    return x * x\n```"), code_reward(p, "no code")
    (1.0, 0.0)
    """
    tests = problem.meta.get("tests")
    if not tests:
        return None
    program = extract_code(completion)
    if program is None:
        return 0.0
    return float(run_tests(program, tests, limits=SandboxLimits(**problem.meta.get("limits", {}))).passed)
