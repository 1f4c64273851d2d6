r"""Reward composition and batch scoring.

A reward is a plain callable `(problem, completion) -> float | None` (None: not applicable).
This module has the shaping rewards (format, length, DAPO overlong), the combinators
(`correctness_reward(task)`, `weighted_sum`) and `score_all`, the one place where
batching, parallelism, timeouts and error capture live.

`score_all` never raises because of a completion: a reward that raises scores 0.0 with
the error recorded, a reward that runs past the timeout scores 0.0 with `timed_out` set.
Timeouts are enforced two ways: Math-Verify checks run in killable worker processes that
read the limit from `reasonloop.verify.math.item_timeout` (set here per item), and any
other reward stuck in Python is abandoned after `timeout * len(rewards) + 30 s` (the thread
cannot be killed; it runs on in the background as a daemon, so keep rewards that can hang
behind a process boundary, as `math` and `code_tests` are).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from reasonloop.types import Problem
from reasonloop.verify.extract import extract_answer
from reasonloop.verify.math import VerifyTimeout, get_pool, item_timeout

Reward = Callable[[Problem, str], "float | None"]
_THINK_FORMAT = re.compile(r"^\s*<think>(?:(?!</?think>).)+</think>\s*\S", re.DOTALL | re.IGNORECASE)


# --- rewards ---------------------------------------------------------------------------------


def correctness_reward(task) -> Reward:
    """The task's own verifier as a reward.

    >>> from reasonloop.tasks import make_task
    >>> task = make_task("arithmetic", size=1); reward = correctness_reward(task)
    >>> reward(task[0], task[0].reference_solution), reward(task[0], "Answer: -1")
    (1.0, 0.0)
    """

    def correct(problem: Problem, completion: str) -> float:
        return float(task.verify(problem, completion))

    correct.__name__ = f"correct[{task.name}]"
    if hasattr(task, "verify_details"):  # code tasks: per-test records for `Sample.tests`
        correct.details = task.verify_details
    return correct


def think_format_reward(problem: Problem, completion: str) -> float:
    """1.0 iff the completion is one non-empty `<think>...</think>` block followed by an answer.

    >>> think_format_reward(None, "<think>2+2 is 4</think> The answer is 4."), think_format_reward(None, "4")
    (1.0, 0.0)
    >>> think_format_reward(None, "<think>a</think><think>b</think> 4")
    0.0
    """
    return float(bool(_THINK_FORMAT.match(completion)) and completion.lower().count("<think>") == 1)


def answer_format_reward(problem: Problem, completion: str) -> float:
    r"""1.0 iff a final answer can be extracted and it does not hedge between answers.

    >>> answer_format_reward(None, r"so \boxed{4}"), answer_format_reward(None, r"\boxed{4} or \boxed{5}")
    (1.0, 0.0)
    """
    extraction = extract_answer(completion)
    return float(bool(extraction.answer) and not extraction.hedged)


def overlong_penalty(max_length: int, cache_length: int, length: Callable[[str], int] = len) -> Reward:
    """DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), added to the task reward.

    0 up to `max_length - cache_length`, then linearly down to -1 at `max_length`, and -1
    beyond. `length` counts the completion (characters by default; pass a tokenizer-based
    count to match the paper, which counts tokens).

    >>> penalty = overlong_penalty(max_length=100, cache_length=20)
    >>> penalty(None, "x" * 80), penalty(None, "x" * 90), penalty(None, "x" * 150)
    (0.0, -0.5, -1.0)
    """
    if not 0 < cache_length <= max_length:
        raise ValueError(f"need 0 < cache_length <= max_length, got {cache_length}, {max_length}")

    def overlong(problem: Problem, completion: str) -> float:
        return soft_overlong_penalty(length(completion), max_length, cache_length)

    return overlong


def soft_overlong_penalty(length: int, max_length: int, cache: int) -> float:
    """DAPO's soft overlong punishment of a completion of `length`: 0 up to max-cache, then linear down
    to -1 at max (GRPO calls it on token counts, as the paper does)."""
    if length <= max_length - cache:
        return 0.0
    if length <= max_length:
        return ((max_length - cache) - length) / cache
    return -1.0


def length_penalty(target_length: int, length: Callable[[str], int] = len) -> Reward:
    """A linear penalty for length beyond `target_length`: -(excess / target), floored at -1.

    >>> penalty = length_penalty(50)
    >>> penalty(None, "x" * 40), penalty(None, "x" * 75), penalty(None, "x" * 500)
    (0.0, -0.5, -1.0)
    """
    if target_length <= 0:
        raise ValueError(f"target_length must be positive, got {target_length}")

    def too_long(problem: Problem, completion: str) -> float:
        excess = max(0, length(completion) - target_length) / target_length
        return -min(1.0, excess) if excess else 0.0

    return too_long


def weighted_sum(weighted: Mapping[Reward, float] | Sequence[tuple[Reward, float]]) -> Reward:
    """Σ weight · reward over the rewards that apply; None if none applies.

    >>> total = weighted_sum([(answer_format_reward, 0.1), (length_penalty(10), 0.5)])
    >>> round(total(None, r"\\boxed{4}" + "x" * 10), 3)  # 0.1 * 1 + 0.5 * -(19 - 10) / 10
    -0.35
    """
    pairs = list(weighted.items()) if isinstance(weighted, Mapping) else list(weighted)

    def combined(problem: Problem, completion: str) -> float | None:
        values = [(fn(problem, completion), w) for fn, w in pairs]
        applicable = [(v, w) for v, w in values if v is not None]
        return sum(v * w for v, w in applicable) if applicable else None

    return combined


# --- batch scoring ---------------------------------------------------------------------------


@dataclass
class Scores:
    """`rewards[name][i]` for item i, plus per-item error and timeout flags.

    `tests[i]` are the per-test records of item i from a reward that has a `details`
    function (`code_reward`: what `Sample.tests` holds), None when no such reward applied.
    """

    rewards: dict[str, list[float | None]]
    errors: list[str | None]
    timed_out: list[bool]
    tests: list[list[dict] | None] = field(default_factory=list)

    def __getitem__(self, name: str) -> list[float | None]:
        return self.rewards[name]

    @property
    def total(self) -> list[float]:
        """Per item, the sum of the rewards that applied (0.0 when none did)."""
        return [sum(v for v in values if v is not None) for values in zip(*self.rewards.values())]


def score_all(
    reward_fns: Reward | Mapping[str, Reward],
    problems: Sequence[Problem],
    completions: Sequence[str],
    *,
    workers: int = 4,
    timeout: float = 5.0,
) -> Scores:
    """Score every (problem, completion) with every reward, in parallel, never raising.

    >>> from reasonloop.verify.math import math_reward
    >>> p = Problem("p", "2+2?", answer="4")
    >>> s = score_all({"math": math_reward}, [p, p, p], [r"\\boxed{4}", "5", None])
    >>> s["math"], s.errors, s.timed_out
    ([1.0, 0.0, 0.0], [None, None, None], [False, False, False])
    """
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
    fns = dict(reward_fns) if isinstance(reward_fns, Mapping) else {getattr(reward_fns, "__name__", "reward"): reward_fns}
    n = len(problems)
    rewards: dict[str, list[float | None]] = {name: [0.0] * n for name in fns}
    errors: list[str | None] = [None] * n
    timed_out = [False] * n
    tests: list[list[dict] | None] = [None] * n
    pool = get_pool()
    pool.size = max(pool.size, min(workers, os.cpu_count() or 1))  # more processes than cores only add start-up cost
    hard_limit = timeout * len(fns) + 30.0

    def evaluate(i: int) -> tuple[dict[str, float | None], str | None, bool]:
        values, error, late = {}, None, False
        for name, fn in fns.items():
            try:
                if hasattr(fn, "details"):  # a reward that also says which tests passed
                    value, records = fn.details(problems[i], completions[i])
                    if records is not None and tests[i] is None:
                        tests[i] = records
                else:
                    value = fn(problems[i], completions[i])
                values[name] = None if value is None else float(value)
            except VerifyTimeout as e:
                values[name], late, error = 0.0, True, error or f"{name}: {e}"
            except Exception as e:  # noqa: BLE001 -- a bad completion must not stop the batch
                values[name], error = 0.0, error or f"{name}: {type(e).__name__}: {e}"
        return values, error, late

    # A few long-lived threads pull item indices; one thread per item would pay a
    # thread hand-off per item, which costs milliseconds on a loaded machine.
    lock = threading.Lock()
    all_done = threading.Event()
    started: dict[int, float] = {}  # item -> start time, while it runs
    abandoned: set[int] = set()
    state = {"next": 0, "finished": 0}

    def worker() -> None:
        token = item_timeout.set(timeout)
        while True:
            with lock:
                i = state["next"]
                if i >= n:
                    break
                state["next"] += 1
                started[i] = time.monotonic()
            values, error, late = evaluate(i)
            with lock:
                if i in abandoned:
                    break  # a replacement thread took over; this one just ends
                del started[i]
                for name, value in values.items():
                    rewards[name][i] = value
                errors[i], timed_out[i] = error, late
                state["finished"] += 1
                if state["finished"] + len(abandoned) == n:
                    all_done.set()
        item_timeout.reset(token)

    def start_worker() -> None:
        threading.Thread(target=worker, daemon=True, name="score_all").start()

    if n == 0:
        all_done.set()
    for _ in range(max(1, min(workers, n))):
        start_worker()
    while not all_done.wait(0.05):
        now = time.monotonic()
        with lock:
            stuck = [i for i, t in started.items() if now - t > hard_limit]
            for i in stuck:  # stuck in Python: abandon the thread, keep the capacity
                del started[i]
                abandoned.add(i)
                timed_out[i], errors[i] = True, f"abandoned after {hard_limit:g}s"
            if stuck and state["finished"] + len(abandoned) == n:
                all_done.set()
        for _ in stuck:
            start_worker()
    return Scores(rewards, errors, timed_out, tests)
