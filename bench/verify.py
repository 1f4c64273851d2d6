"""Throughput of `score_all(math_reward)` vs calling Math-Verify `parse` + `verify` in a loop.

Both grade the same realistic mix, in one run:
- GRPO-style groups: 8 completions per problem, whose final answers repeat (models agree
  with themselves), a mix of right and wrong;
- GSM8K-like problems (integer gold, `#### N` / "The answer is N" / `\\boxed{N}`, with
  thousands separators and units) and MATH-like problems (LaTeX gold: fractions, roots,
  pi, intervals, sets, tuples, polynomials; answers in equivalent or wrong forms).

Both get the same untimed one-time warm-up (the peer in-process, ours by starting the
worker processes, reported as `pool_start_s` and folded into
`ratio_including_pool_start`); ours starts with an empty result cache. The peer parses
gold and completion for every item, as a reward function calling Math-Verify directly
does. The last line of stdout is one JSON object.

    .venv/bin/python bench/verify.py [--problems 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time

from reasonloop.types import Problem
from reasonloop.verify.math import (
    WARMUP_PAIRS,
    answers_equal,
    cache_stats,
    clear_cache,
    get_pool,
    math_reward,
)
from reasonloop.verify.rewards import score_all

GROUP = 8

# (gold, equivalent spellings, wrong answers)
MATH_ANSWERS = [
    (r"\frac{3}{4}", [r"\frac{3}{4}", r"\dfrac{3}{4}", "0.75", r"\frac{6}{8}"], [r"\frac{4}{3}", "0.7"]),
    (r"\frac{\sqrt{2}}{2}", [r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", r"\dfrac{\sqrt2}{2}"], [r"\sqrt{2}", r"\frac{1}{2}"]),
    (r"2\sqrt{3}", [r"2\sqrt{3}", r"\sqrt{12}", r"2 \sqrt 3"], [r"3\sqrt{2}", r"\sqrt{6}"]),
    (r"\frac{\pi}{3}", [r"\frac{\pi}{3}", r"\dfrac{\pi}{3}", r"\pi/3"], [r"\frac{\pi}{6}", "60"]),
    (r"(1, \infty)", [r"(1, \infty)", r"(1,\infty)", r"\left(1, \infty\right)"], [r"[1, \infty)", r"(-\infty, 1)"]),
    (r"\{-1, 1\}", [r"\{-1, 1\}", r"\{1, -1\}", r"\{1,-1\}"], [r"\{1\}", r"\{-1, 0, 1\}"]),
    (r"\left( 3, \frac{\pi}{2} \right)", [r"(3, \frac{\pi}{2})", r"\left(3,\frac{\pi}{2}\right)"], [r"(3, \pi)", r"(\frac{\pi}{2}, 3)"]),
    (r"x^2 + 2x + 1", [r"x^2+2x+1", r"(x+1)^2"], [r"(x-1)^2", r"x^2+1"]),
    (r"10\sqrt{5}", [r"10\sqrt{5}", r"\sqrt{500}"], [r"5\sqrt{10}", "22"]),
    (r"\frac{7}{2}", [r"\frac{7}{2}", "3.5", r"3\frac{1}{2}"], [r"\frac{2}{7}", "3"]),
]


def gsm8k_item(rng: random.Random) -> tuple[str, list[str]]:
    gold = rng.choice([rng.randint(2, 99), rng.randint(100, 999), rng.randint(1000, 99999)])
    wrong = [gold + rng.choice([-10, -1, 1, 2, 100]), gold * 2]
    right_forms = [f"#### {gold}", f"The answer is {gold}.", rf"\boxed{{{gold}}}", f"#### {gold:,}",
                   f"The answer is ${gold}.", rf"\boxed{{{gold} \text{{ dollars}}}}"]
    answers = [rng.choice(right_forms) if rng.random() < 0.6 else f"#### {rng.choice(wrong)}" for _ in range(GROUP)]
    return str(gold), answers


def math_item(rng: random.Random) -> tuple[str, list[str]]:
    gold, right, wrong = rng.choice(MATH_ANSWERS)
    picks = [rng.choice(right) if rng.random() < 0.5 else rng.choice(wrong) for _ in range(GROUP)]
    return gold, [rf"So the final answer is $\boxed{{{a}}}$." for a in picks]


def build(problems: int, seed: int = 0) -> tuple[list[Problem], list[str]]:
    rng = random.Random(seed)
    out_problems, completions = [], []
    for i in range(problems):
        gold, answers = (gsm8k_item if i % 2 == 0 else math_item)(rng)
        problem = Problem(f"bench/{i}", "?", answer=gold)
        for answer in answers:
            out_problems.append(problem)
            completions.append(f"Let me work through this step by step.\nFirst, ... then ...\n{answer}")
    return out_problems, completions


def run_peer(problems: list[Problem], completions: list[str]) -> tuple[list[float], float]:
    from math_verify import parse, verify

    for gold, candidate in WARMUP_PAIRS:  # the same untimed warm-up our workers get
        verify(parse(f"${gold}$"), parse(f"$\\boxed{{{candidate}}}$"))
    start = time.perf_counter()
    scores = []
    for problem, completion in zip(problems, completions):
        try:
            scores.append(float(verify(parse(problem.answer), parse(completion))))
        except Exception:  # noqa: BLE001 -- the peer as users call it: any failure scores 0
            scores.append(0.0)
    return scores, time.perf_counter() - start


def start_pool(workers: int) -> float:
    """Start and warm the worker processes (the one-time cost of a training run); seconds taken."""
    start = time.perf_counter()
    get_pool().size = workers
    answers_equal("1", "x + 1", timeout=120)  # starts every worker; they warm up in parallel
    for worker in list(get_pool()._all):
        worker.wait_ready()
    return time.perf_counter() - start


def run_ours(problems: list[Problem], completions: list[str], workers: int) -> tuple[list[float], float, int]:
    clear_cache()
    start = time.perf_counter()
    scores = score_all({"math": math_reward}, problems, completions, workers=workers, timeout=5.0)
    elapsed = time.perf_counter() - start
    return scores["math"], elapsed, sum(scores.timed_out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    problems, completions = build(args.problems)
    n = len(completions)
    pool_start_s = start_pool(args.workers)
    ours, ours_s, hangs = run_ours(problems, completions, args.workers)
    peer, peer_s = run_peer(problems, completions)
    agree = sum(a == b for a, b in zip(ours, peer)) / n
    print(f"items {n}: ours {ours_s:.2f}s ({1000 * ours_s / n:.3f} ms/item, cache {cache_stats}, "
          f"worker restarts {get_pool().restarts}), peer {peer_s:.2f}s ({1000 * peer_s / n:.3f} ms/item)")
    print(f"accuracy ours {sum(ours) / n:.3f} peer {sum(peer) / n:.3f}, verdicts agree on {agree:.1%}")
    print(json.dumps({
        "metric": "math_verify_items_per_second",
        "ours": round(n / ours_s, 1),
        "peer": round(n / peer_s, 1),
        "ratio": round(peer_s / ours_s, 2),
        "items": n,
        "hangs": hangs,
        "ours_ms_per_item": round(1000 * ours_s / n, 3),
        "peer_ms_per_item": round(1000 * peer_s / n, 3),
        "agreement": round(agree, 4),
        "workers": args.workers,
        "pool_start_s": round(pool_start_s, 2),
        "ratio_including_pool_start": round(peer_s / (ours_s + pool_start_s), 2),
    }))


if __name__ == "__main__":
    main()
