r"""Mathematical answer equivalence: exact arithmetic first, Math-Verify in killable workers, a cache.

Why not just call `math_verify.verify(parse(gold), parse(completion))`:
- It costs milliseconds per check, while most answers in GSM8K, MATH and AIME are closed-form
  numbers that exact rational arithmetic compares in microseconds (`numeric.py`).
- It accepts rounded decimals as exact values (`0.333333` for 1/3, `0.7071068` for
  `\frac{\sqrt2}{2}`: it rounds both sides to 6 places) and a percentage for its fraction
  whatever the task says.
- Its timeout is `signal.alarm`, which only works in the main thread of the main
  interpreter: called from a thread pool (or with the alarm already in use) it either
  raises or silently runs without a limit, and sympy then hangs on answers such as
  `\boxed{10^{10^{10^{10}}}}`. A hung reward stalls a whole RL step.

So `answers_equal(gold, candidate)` decides, in order:
1. an answer offering alternatives ("5 or 6", `3 \text{ or } 4`) is a hedge: not equal
   (unless the gold itself is phrased that way);
2. textual identity after LaTeX presentation noise is removed (`\left`, `\dfrac`, spaces, `^\circ`);
3. the exact path (`numeric.compare`): both sides closed-form numbers, or tuples, intervals
   and sets of them. Rationals compare exactly, a decimal never equals an irrational or a
   rational it only rounds to, irrational closed forms compare to 1e-12; scientific
   notation, grouping, units and degrees are read; a percent sign is a unit unless the
   task says answers are percentages (`percent=True`: then `50\%` is also 0.5); a task
   `tolerance` allows approximate numbers;
4. a guard: a candidate that asks sympy to build an astronomically large number (an
   exponent tower, a 5+ digit exponent, a factorial of a power) or is longer than
   `MAX_ANSWER_CHARS` is wrong unless the gold is of the same kind;
5. Math-Verify in a worker process (rounding floats to 12 places, not 6), with its own timeout
   disabled; the parent waits at most `timeout` wall-clock seconds and otherwise kills the
   worker and starts a fresh one (raising `VerifyTimeout`). Workers run under an
   address-space limit, so a blow-up fast enough to escape the timeout fails with MemoryError.
Results of step 5 (timeouts included: a pair that hung once hangs again) are cached per process.

Gold answers are parsed in math mode (`$gold$`) first: bare, Math-Verify rejects plain-text
`sqrt(2)/2`, `[0,1)`, `x^2+2x+1` and, worse, mis-extracts `2\sqrt{3}` as 2 and `10^{6}` as
10. Python-style gold (`2**0.5/2`) is parsed bare, where it is understood.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import queue
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

from reasonloop.verify.extract import COMMITTING_FORMS, extract_answer
from reasonloop.verify.numeric import compare, split_structure

DEFAULT_TIMEOUT = 5.0
item_timeout: contextvars.ContextVar[float] = contextvars.ContextVar("item_timeout", default=DEFAULT_TIMEOUT)
"""Per-item wall-clock limit in seconds for the Math-Verify path; `score_all` sets it."""

WORKER_MEMORY_BYTES = 3 << 30


class VerifyTimeout(TimeoutError):
    """A check ran past its wall-clock limit (the worker doing it was killed)."""


# --- 1. textual identity -------------------------------------------------------------------

_NOISE = re.compile(r"\s+|\\left|\\right|\\[,;:! ]|\\displaystyle|\^\{?\\circ\}?|°")


def strip_outer_braces(text: str) -> str:
    """`{{5}}` -> `5`: redundant grouping braces around a whole answer (one linear pass).

    >>> strip_outer_braces("{{5}}"), strip_outer_braces("{a}{b}"), strip_outer_braces("{ {x} }")
    ('5', '{a}{b}', 'x')
    """
    t = text.strip()
    closes: dict[int, int] = {}
    stack: list[int] = []
    for i, ch in enumerate(t):
        if ch == "{" and (i == 0 or t[i - 1] != "\\"):
            stack.append(i)
        elif ch == "}" and (i == 0 or t[i - 1] != "\\") and stack:
            closes[stack.pop()] = i
    start, end = 0, len(t) - 1
    while start < end and t[start] == "{" and closes.get(start) == end:
        start += 1
        end -= 1
        while start <= end and t[start].isspace():
            start += 1
        while end >= start and t[end].isspace():
            end -= 1
    return t[start: end + 1]


def canonical_text(text: str) -> str:
    r"""LaTeX with presentation-only differences removed (`\dfrac`->`\frac`, spacing, `\left`).

    >>> canonical_text(r"\left( \dfrac{1}{2}, 3 \right)")
    '(\\frac{1}{2},3)'
    """
    t = _NOISE.sub("", text.replace("\u2212", "-"))
    t = t.replace("\\varnothing", "\\emptyset").replace("\u2205", "\\emptyset")
    return t.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").strip("$").rstrip(".")


# --- 2. the fast path for plain numbers -----------------------------------------------------


@dataclass(frozen=True)
class Number:
    value: Fraction
    percent: bool = False
    decimals: int = 0
    """digits after the decimal point as written (0 for integers and fractions)"""


_PLAIN = re.compile(r"([+-]?)(\d{1,3}(?:,\d{3})+|\d+|(?=\.\d))(?:\.(\d+))?")
_FRAC = re.compile(r"([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}|([+-]?)\\frac(\d)(\d)")
_SLASH = re.compile(r"([+-]?\d+)\s*/\s*([+-]?\d+)")
_WRAPPERS = re.compile(r"\\(?:text|mathrm|textbf|mbox|textrm|operatorname)\s*\{([^{}]*)\}")
_UNIT_WORDS = re.compile(r"(?<=[\d}.])\s+(?!pi\b)[A-Za-z]{2,}(?:\s+[A-Za-z]{2,})*\.?$")
_PERCENT = re.compile(r"\s*(?:\\%|%|\s+percent)$")


def parse_number(text: str | None) -> Number | None:
    r"""A plain number in any of its common spellings, or None (then sympy is needed).

    >>> parse_number(r"\$1{,}234.50"), parse_number("\u22123/4"), parse_number(r"12\%")
    (Number(value=Fraction(2469, 2), percent=False, decimals=2), Number(value=Fraction(-3, 4), percent=False, decimals=0), Number(value=Fraction(12, 1), percent=True, decimals=0))
    >>> parse_number("18 dollars").value, parse_number("x + 1")
    (Fraction(18, 1), None)
    """
    if text is None:
        return None
    t = text.strip().replace("\u2212", "-").replace("\u2013", "-").replace("{,}", ",")
    t = re.sub(r"\\[;:! ]|\\,(?=\d{3})", "", t)  # LaTeX spaces; `1\,000` is a thousands separator
    t = t.strip("$ ").removeprefix("\\$").strip()
    t = _WRAPPERS.sub(r" \1", t).strip()
    percent = bool(_PERCENT.search(t))
    t = _PERCENT.sub("", t)
    t = _UNIT_WORDS.sub("", t)
    t = re.sub(r"\^\{?\\circ\}?$|°$", "", t).strip().removeprefix("\\$").strip()
    if m := _PLAIN.fullmatch(t):
        sign, whole, frac = m.groups()
        if not whole and not frac:
            return None
        try:
            value = Fraction((whole or "0").replace(",", "") + ("." + frac if frac else ""))
        except ValueError:  # beyond Python's int-from-string digit limit (4300)
            return None
        return Number(-value if sign == "-" else value, percent, len(frac or ""))
    if (m := _FRAC.fullmatch(t)) or (m := _SLASH.fullmatch(t)):
        groups = [g for g in m.groups() if g is not None]
        sign = groups[0] if len(groups) == 3 else ""
        num, den = int(groups[-2]), int(groups[-1])
        if den == 0:
            return None
        value = Fraction(num, den)
        return Number(-value if sign == "-" else value, percent, 0)
    return None


def numbers_equal(gold: Number, predicted: Number) -> bool:
    """Exact comparison with the percent and rounding allowances of the module docstring."""
    golds = {gold.value} | ({gold.value / 100} if gold.percent else set())
    preds = {predicted.value} | ({predicted.value / 100} if predicted.percent else set())
    if golds & preds:
        return True
    if predicted.decimals >= 3:
        half_ulp = Fraction(1, 2 * 10**predicted.decimals)
        return any(abs(g - p) <= half_ulp for g in golds for p in preds)
    return False


# --- 3. the guard against answers that make sympy hang --------------------------------------

_EXPLOSIVE = [
    re.compile(r"\^\s*\{[^{}]*\^"),  # an exponent that itself has an exponent: 10^{10^{...}}
    re.compile(r"\^\s*\{[^{}]*\{[^{}]*\^"),  # the same one brace deeper: 10^{\left(10^{...}\right)}
    re.compile(r"\*\*\s*\(?[^()]*\*\*"),  # Python-style towers 10**10**10
    re.compile(r"(?:\^|\*\*)\s*\{?\s*\(?\s*[+-]?\d{5,}"),  # a five-digit or longer exponent
    re.compile(r"\d[eE][+-]?\d{5,}"),  # the same in E notation: 1e999999999
    re.compile(r"\d{4,}\s*!|!\s*!|\)\s*!|\}\s*!"),  # factorials of big numbers or expressions
]


MAX_ANSWER_CHARS = 1000
"""longer answers are never sent to sympy (real final answers are short)"""


def looks_explosive(text: str) -> bool:
    r"""Would evaluating this need an astronomically large number (see step 3)?

    >>> looks_explosive(r"10^{10^{10}}"), looks_explosive(r"2^{10}"), looks_explosive("(10^{100})!")
    (True, False, True)
    """
    return len(text) > MAX_ANSWER_CHARS or any(p.search(text) for p in _EXPLOSIVE)


# --- 4. Math-Verify in killable worker processes -------------------------------------------


def _parse_gold(parse, gold: str):
    # Bare LaTeX gold is mis-extracted rather than rejected ("2\sqrt{3}" -> 2, "10^{6}" -> 10),
    # so it goes in math mode first; Python-style "2**0.5/2" is only understood bare.
    if "$" in gold or "\\boxed" in gold:
        attempts = (gold,)
    elif "**" in gold:
        attempts = (gold, f"${gold}$")
    else:
        attempts = (f"${gold}$", gold, f"\\boxed{{{gold}}}")
    for text in attempts:
        parsed = parse(text, parsing_timeout=None)
        if parsed:
            return parsed
    return []


WARMUP_PAIRS = [
    ("1", "1"), (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}"), (r"\frac{\pi}{3}", r"\pi/3"),
    (r"(1, \infty)", r"[1, \infty)"), (r"\{-1, 1\}", r"\{1,-1\}"), (r"(3, \frac{\pi}{2})", r"(3, \pi)"),
    ("x^2+2x+1", "(x+1)^2"), ("3", "x=3"), (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"),
    ("0.5", r"50\%"), (r"e^{2}", r"e^2"),
]
"""Checks each worker runs once at start, so first-use costs of sympy paths are not paid by items."""


def _worker_main() -> None:
    """Worker loop (`python -m reasonloop.verify.math`): JSON lines [gold, candidate] in,
    ["ok", bool] / ["error", message] / ["memory", message] out."""
    import ctypes
    import json
    import resource
    import sys

    # die with the parent thread that started us, even while stuck inside sympy
    ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    logging.disable(logging.WARNING)  # "timeout is disabled" warnings: we enforce it outside
    from math_verify import parse, verify

    for gold, candidate in WARMUP_PAIRS:  # load sympy's lazily imported paths before the first real item
        verify(_parse_gold(parse, gold), parse(f"\\boxed{{{candidate}}}", parsing_timeout=None), timeout_seconds=None)
    # after imports and warm-up, so only a runaway computation can hit the limit
    memory_bytes = int(sys.argv[1]) if len(sys.argv) > 1 else WORKER_MEMORY_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    out = sys.stdout
    out.write(json.dumps(["ready", None]) + "\n")
    out.flush()
    gold_cache: dict[str, object] = {}
    for line in sys.stdin:
        try:
            gold, candidate = json.loads(line)
            if gold not in gold_cache:
                if len(gold_cache) > 10_000:
                    gold_cache.clear()
                gold_cache[gold] = _parse_gold(parse, gold)
            predicted = parse(f"\\boxed{{{candidate}}}", parsing_timeout=None)
            reply = ["ok", bool(verify(gold_cache[gold], predicted, float_rounding=12, timeout_seconds=None))]
        except MemoryError:
            reply = ["memory", "out of memory"]
        except Exception as e:  # noqa: BLE001 -- sympy raises anything at all on odd input
            reply = ["error", f"{type(e).__name__}: {e}"[:500]]
        out.write(json.dumps(reply) + "\n")
        out.flush()


class _Worker:
    """One worker process, spoken to over pipes (not multiprocessing, which would re-import
    the caller's `__main__` and break scripts without an `if __name__ == "__main__"` guard)."""

    def __init__(self, memory_bytes: int):
        import subprocess
        import sys

        import reasonloop

        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(reasonloop.__file__)))
        env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reasonloop.verify.math", str(memory_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            bufsize=0, env=env, close_fds=True,
        )
        self._buffer = b""
        self.ready = False

    def send(self, gold: str, candidate: str) -> None:
        import json

        self.process.stdin.write((json.dumps([gold, candidate]) + "\n").encode())

    def receive(self, timeout: float):
        """The next reply, or None if none arrived within `timeout` seconds."""
        import json
        import select
        import time

        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("math-verify worker exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def wait_ready(self, limit: float = 120.0) -> None:
        if not self.ready:
            if self.receive(limit) is None:
                raise RuntimeError("math-verify worker did not start")
            self.ready = True

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)
        for f in (self.process.stdin, self.process.stdout):
            f.close()


class MathVerifyPool:
    """A fixed number of Math-Verify worker processes; safe to call from many threads.

    A check that exceeds its timeout kills its worker and puts a fresh one in its place.
    """

    def __init__(self, size: int = 2, memory_bytes: int = WORKER_MEMORY_BYTES):
        self.size, self.memory_bytes = size, memory_bytes
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._started = 0
        self._lock = threading.Lock()
        self.timeouts = 0
        self.restarts = 0

    def _spawn(self) -> _Worker:
        # Start workers from one long-lived thread: PR_SET_PDEATHSIG fires when the
        # *thread* that forked a worker exits, which a thread-pool thread soon does.
        worker = _run_in_spawner_thread(lambda: _Worker(self.memory_bytes))
        with self._lock:
            self._all.append(worker)
        return worker

    def _acquire(self) -> _Worker:
        with self._lock:
            missing = self.size - self._started if self._idle.empty() else 0
            self._started += max(0, missing)
        if missing > 0:  # start all missing workers now, so they warm up in parallel
            for _ in range(missing - 1):
                self._idle.put(self._spawn())
            worker = self._spawn()
        else:
            worker = self._idle.get()
        try:
            worker.wait_ready()
        except BaseException:
            self._replace(worker)
            raise
        return worker

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        self.restarts += 1
        self._idle.put(self._spawn())  # starts now; the next user waits for its warm-up, not the item

    def check(self, gold: str, candidate: str, timeout: float) -> bool:
        """Math-Verify's verdict on (gold, candidate); raises VerifyTimeout past `timeout` s."""
        worker = self._acquire()
        try:
            worker.send(gold, candidate)
            reply = worker.receive(timeout)
            finished = reply is not None
        except (EOFError, OSError) as e:
            self._replace(worker)
            raise RuntimeError(f"math-verify worker died: {e!r}") from e
        if not finished:
            self.timeouts += 1
            self._replace(worker)
            raise VerifyTimeout(f"math-verify took more than {timeout:g}s on {candidate[:80]!r}")
        self._idle.put(worker)
        status, value = reply
        if status != "ok":
            raise ValueError(f"math-verify failed ({status}): {value}")
        return value

    def close(self) -> None:
        with self._lock:
            workers, self._all, self._started = self._all, [], 0
            self._idle = queue.Queue()
        for w in workers:
            w.kill()


_spawn_requests: queue.Queue = queue.Queue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawner_loop() -> None:
    while True:
        make, reply = _spawn_requests.get()
        try:
            reply.put((True, make()))
        except BaseException as e:  # noqa: BLE001 -- handed to the caller's thread, which re-raises it
            reply.put((False, e))


def _run_in_spawner_thread(make):
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawner_loop, name="mathverify-spawner", daemon=True)
            _spawner.start()
    reply: queue.Queue = queue.Queue()
    _spawn_requests.put((make, reply))
    ok, value = reply.get()
    if not ok:
        raise value
    return value


_pool: MathVerifyPool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def get_pool() -> MathVerifyPool:
    """This process's shared pool (a forked child gets its own, never its parent's pipes)."""
    global _pool, _pool_pid, _spawner, _spawn_requests
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            if _pool_pid != os.getpid():  # forked: the parent's spawner thread does not exist here
                _spawner, _spawn_requests = None, queue.Queue()
            _pool = MathVerifyPool(size=max(1, min(2, os.cpu_count() or 1)))
            _pool_pid = os.getpid()
        return _pool


@atexit.register
def _close_pool() -> None:
    if _pool is not None and _pool_pid == os.getpid():
        _pool.close()


# --- the public checks ----------------------------------------------------------------------

_CACHE: OrderedDict[tuple[str, str], bool | None] = OrderedDict()
_CACHE_SIZE = 100_000
_cache_lock = threading.Lock()
_in_flight: dict[tuple[str, str], threading.Event] = {}
cache_stats = {"hits": 0, "misses": 0}


def _cached(key: tuple[str, str]) -> tuple[bool, bool | None]:
    with _cache_lock:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            cache_stats["hits"] += 1
            return True, _CACHE[key]
        cache_stats["misses"] += 1
        return False, None


def _store(key: tuple[str, str], value: bool | None) -> None:
    with _cache_lock:
        _CACHE[key] = value
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)


def clear_cache() -> None:
    with _cache_lock:
        _CACHE.clear()


_ALTERNATIVES = re.compile(r"\bor\b|\\lor\b", re.IGNORECASE)
_JOINER = re.compile(r"\\(?:text|mathrm)\s*\{\s*(?:or|and)\s*\}|\b(?:or|and)\b|\\lor\b|\\land\b|,", re.IGNORECASE)
_SOLUTION = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?=[^=])")


def as_solution_list(answer: str) -> str | None:
    r"""`x=-2 \text{ or } x=3`, `3 \text{ and } 4`: the values it names, as the list `-2, 3`.

    >>> as_solution_list(r"x=-2 \text{ or } x=3"), as_solution_list("5")
    ('-2, 3', None)
    """
    parts = [_SOLUTION.sub("", p).strip() for p in _JOINER.split(answer)]
    parts = [p for p in parts if p]
    return ", ".join(parts) if len(parts) > 1 else None


def offers_alternatives(answer: str) -> bool:
    r"""Does one answer hedge between values ("5 or 6", `3 \text{ or } 4`)?

    >>> offers_alternatives(r"3 \text{ or } 4"), offers_alternatives("x = 3")
    (True, False)
    """
    return bool(_ALTERNATIVES.search(answer))


def answers_equal(gold: str, candidate: str, *, timeout: float | None = None, guard: bool = True,
                  tolerance: float | None = None, percent: bool = False) -> bool:
    r"""Is an extracted answer mathematically equal to the gold answer (steps of the module docstring)?

    `tolerance`: numbers within this absolute (or, above 1, relative) error count as equal;
    `percent`: the task's answers are percentages, so `50\%` also equals 0.5. Raises
    VerifyTimeout when Math-Verify needs longer than `timeout` seconds (default: the
    `item_timeout` context variable).

    >>> answers_equal("1234", "1,234"), answers_equal("0.5", r"\frac{1}{2}"), answers_equal("7", "-7")
    (True, True, False)
    >>> answers_equal(r"\frac{1}{3}", "0.3333"), answers_equal(r"\frac{1}{3}", "0.3333", tolerance=1e-3)
    (False, True)
    """
    gold, candidate = strip_outer_braces(gold), strip_outer_braces(candidate)
    if not candidate or not gold:
        return False
    if _JOINER.search(candidate) and (structure := split_structure(gold)) and structure[0] in ("", "\\{"):
        # the gold lists several values (all solutions): "x=-2 or x=3" names them all, no hedge
        candidate = as_solution_list(candidate) or candidate
    elif offers_alternatives(candidate) and not offers_alternatives(gold):
        return False
    if canonical_text(gold) == canonical_text(candidate):
        return True
    exact = compare(gold, candidate, tolerance=tolerance, percent=percent)
    if exact is not None:
        return exact
    if guard and looks_explosive(candidate) and not looks_explosive(gold):
        return False
    key = (gold, candidate)
    limit = item_timeout.get() if timeout is None else timeout
    while True:
        hit, value = _cached(key)
        if hit:
            if value is None:  # this pair timed out before: it will again
                raise VerifyTimeout(f"math-verify timed out on {candidate[:80]!r} (cached)")
            return value
        with _cache_lock:  # one check per distinct pair: a GRPO group repeats its answers
            running = _in_flight.get(key)
            if running is None:
                _in_flight[key] = threading.Event()
        if running is None:
            break
        running.wait(limit + 1.0)
    try:
        try:
            value = get_pool().check(gold, candidate, limit)
        except VerifyTimeout:
            _store(key, None)
            raise
        except ValueError:
            value = False  # sympy could not make sense of it: not an equal answer
        _store(key, value)  # before waking the waiters, so they find it
        return value
    finally:
        with _cache_lock:
            _in_flight.pop(key).set()


def grade_math(gold: str, completion: str, *, timeout: float | None = None, tolerance: float | None = None,
               percent: bool = False) -> float:
    r"""1.0 iff the completion commits to one final answer (see `extract`) equal to `gold`.

    Competing final answers (committing markers that are not all the same value) are a
    hedge and score 0; so does an answer that offers alternatives.

    >>> grade_math("72", "48 + 24 = 72\n#### 72"), grade_math("3", r"\boxed{3} or \boxed{4}")
    (1.0, 0.0)
    >>> grade_math("0.5", r"\boxed{\frac{1}{2}} ... so \boxed{0.5}"), grade_math("5", "<think>the answer is 5</think> I give up.")
    (1.0, 0.0)
    """
    extraction = extract_answer(completion)
    final = extraction.answer
    if final is None:
        return 0.0
    if extraction.hedged and extraction.form in COMMITTING_FORMS:
        # different text: a hedge unless every candidate is the final answer written differently
        seen = {canonical_text(final)}
        for other in extraction.candidates:
            if canonical_text(other) in seen:
                continue
            if not answers_equal(final, other, timeout=timeout, tolerance=tolerance, percent=percent):
                return 0.0
            seen.add(canonical_text(other))
    return float(answers_equal(gold, final, timeout=timeout, tolerance=tolerance, percent=percent))


def math_reward(problem, completion: str) -> float | None:
    r"""Correctness of a free-form math answer against `problem.answer`; None if it has none.

    `problem.meta["tolerance"]` (a number) and `problem.meta["percent"]` (true when answers
    are percentages) set the task's allowances (see `answers_equal`).

    >>> from reasonloop.types import Problem
    >>> math_reward(Problem("p", "1/2 + 1/4?", answer=r"\frac{3}{4}"), "So $\\boxed{0.75}$.")
    1.0
    """
    if problem.answer is None:
        return None
    return grade_math(problem.answer, completion, tolerance=problem.meta.get("tolerance"),
                      percent=bool(problem.meta.get("percent")))


if __name__ == "__main__":
    _worker_main()
