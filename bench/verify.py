"""Math verifier: accuracy on the labelled corpus and throughput on distinct answers, vs Math-Verify.

1. Accuracy on tests/data/verify_corpus.jsonl (GSM8K, MATH and AIME answer forms and the
   adversarial classes: hedges, rounded decimals, equivalent forms, percent, pathological
   inputs; built by tests/data/make_verify_corpus.py), and apart on its held-out part
   (source "heldout": hand-written before reading the verifier, tests/data/verify_heldout.py).
   Ours: `grade_math` with the item's task options. Peer: Math-Verify's `verify(parse(gold), parse(completion))`, in two
   configurations (gold bare, gold in math mode `$gold$`); the more accurate one is the peer.
   False positives (wrong answers scored right) and false negatives are counted apart.
2. Throughput on distinct (gold, answer) pairs (no pair repeats, so our result cache cannot
   help; its hits are reported apart): the corpus minus its pathological items, plus
   generated fractions, roots and polynomials. Ours: `score_all(math_reward)` with `--workers`
   threads and as many Math-Verify worker processes; peer: the same number of processes
   each running `parse` + `verify` (its best configuration from 1). Both pools are started and
   warmed before timing.

The last stdout line is one JSON object (metric: items per second; ratio = peer seconds / ours).

    .venv/bin/python bench/verify.py [--workers 2] [--generated 600]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import random
import time
from pathlib import Path

from reasonloop.types import Problem
from reasonloop.verify.math import WARMUP_PAIRS, cache_stats, clear_cache, get_pool, grade_math, math_reward
from reasonloop.verify.rewards import score_all

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "verify_corpus.jsonl"


def load_corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def peer_verdict(gold: str, completion: str, math_mode: bool) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$" if math_mode else gold), parse(completion)))
    except Exception:  # noqa: BLE001 -- the peer as users call it: any failure scores 0
        return False


def accuracy(labels: list[bool], verdicts: list[bool], rows: list[dict]) -> dict:
    fp = sum(v and not y for v, y in zip(verdicts, labels))
    fn = sum(y and not v for v, y in zip(verdicts, labels))
    adv_fp = sum(v and not y for v, y, r in zip(verdicts, labels, rows) if r["source"] == "adversarial")
    held = [(v, y) for v, y, r in zip(verdicts, labels, rows) if r["source"] == "heldout"]
    by_source = {}
    for source in sorted({r["source"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["source"] == source]
        by_source[source] = round(sum(verdicts[i] == labels[i] for i in idx) / len(idx), 4)
    return {"accuracy": round(1 - (fp + fn) / len(labels), 4), "false_positives": fp, "false_negatives": fn,
            "adversarial_false_positives": adv_fp, "by_source": by_source,
            "heldout": {"items": len(held), "accuracy": round(sum(v == y for v, y in held) / max(1, len(held)), 4),
                        "false_positives": sum(v and not y for v, y in held),
                        "false_negatives": sum(y and not v for v, y in held)}}


def generated_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Distinct (gold, completion) pairs: fractions, roots and polynomials, half right."""
    rng = random.Random(seed)
    seen, out = set(), []
    while len(out) < n:
        kind = rng.randrange(3)
        right = rng.random() < 0.5
        if kind == 0:
            p, q = rng.randint(1, 99), rng.randint(2, 99)
            k = rng.randint(2, 9)
            gold = rf"\frac{{{p}}}{{{q}}}"
            answer = rf"\frac{{{p * k}}}{{{q * k}}}" if right else rf"\frac{{{p + 1}}}{{{q}}}"
        elif kind == 1:
            a, m = rng.randint(2, 12), rng.choice([2, 3, 5, 6, 7, 10, 11])
            gold = rf"{a}\sqrt{{{m}}}"
            answer = rf"\sqrt{{{a * a * m}}}" if right else rf"\sqrt{{{a * m}}}"
        else:
            a, b = rng.randint(2, 30), rng.randint(1, 30)
            gold = f"{a}x + {b}"
            answer = f"{b} + {a}x" if right else f"{a}x - {b}"
        completion = f"Simplifying, we get $\\boxed{{{answer}}}$."
        if (gold, answer) not in seen:
            seen.add((gold, answer))
            out.append((gold, completion))
    return out


def _peer_init() -> None:
    logging.disable(logging.WARNING)
    from math_verify import parse, verify

    for gold, candidate in WARMUP_PAIRS:
        verify(parse(f"${gold}$"), parse(f"$\\boxed{{{candidate}}}$"))


def _peer_item(args: tuple[str, str, bool]) -> bool:
    return peer_verdict(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--generated", type=int, default=600)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows = load_corpus()
    labels = [r["correct"] for r in rows]

    # --- 1. accuracy ---
    start = time.perf_counter()
    ours = [grade_math(r["gold"], r["completion"], tolerance=r.get("tolerance"), percent=bool(r.get("percent")),
                       timeout=10.0) == 1.0 for r in rows]
    ours_acc = accuracy(labels, ours, rows)
    peers = {}
    for mode, math_mode in (("gold_bare", False), ("gold_math_mode", True)):
        verdicts = [peer_verdict(r["gold"], r["completion"], math_mode) for r in rows]
        peers[mode] = accuracy(labels, verdicts, rows)
    best_mode = max(peers, key=lambda m: peers[m]["accuracy"])
    peer_acc = peers[best_mode]
    print(f"corpus {len(rows)} items ({time.perf_counter() - start:.0f}s): ours {ours_acc}")
    for mode, acc in peers.items():
        print(f"  math-verify {mode}: {acc}")

    # --- 2. throughput on distinct answers ---
    items = [(r["gold"], r["completion"]) for r in rows if r["kind"] != "pathological" and not r.get("tolerance")
             and not r.get("percent")]
    items += generated_pairs(args.generated)
    problems = [Problem(f"t{i}", "?", answer=gold) for i, (gold, _) in enumerate(items)]
    completions = [c for _, c in items]
    get_pool().size = args.workers
    pool_start = time.perf_counter()
    grade_math("1", r"\boxed{x + 1}", timeout=120)  # starts and warms every worker process
    for worker in list(get_pool()._all):
        worker.wait_ready()
    pool_start_s = time.perf_counter() - pool_start
    clear_cache()
    hits_before, misses_before = cache_stats["hits"], cache_stats["misses"]
    start = time.perf_counter()
    scores = score_all({"math": math_reward}, problems, completions, workers=args.workers, timeout=10.0)
    ours_s = time.perf_counter() - start
    hits, misses = cache_stats["hits"] - hits_before, cache_stats["misses"] - misses_before
    with multiprocessing.get_context("fork").Pool(args.workers, initializer=_peer_init) as pool:
        pool.map(_peer_item, [("1", "1", True)] * args.workers * 4)  # every process warm before timing
        start = time.perf_counter()
        peer_scores = pool.map(_peer_item, [(g, c, best_mode == "gold_math_mode") for g, c in items], chunksize=8)
        peer_s = time.perf_counter() - start
    n = len(items)
    print(f"throughput on {n} distinct pairs, {args.workers} workers each: ours {ours_s:.2f}s "
          f"({1000 * ours_s / n:.3f} ms/item; result-cache hits {hits}, misses {misses}; timeouts "
          f"{sum(scores.timed_out)}), peer {peer_s:.2f}s ({1000 * peer_s / n:.3f} ms/item); "
          f"agreement {sum((a == 1.0) == b for a, b in zip(scores['math'], peer_scores)) / n:.1%} (machine shared)")
    print(json.dumps({
        "metric": "math_verify_distinct_items_per_second",
        "ours": round(n / ours_s, 1),
        "peer": round(n / peer_s, 1),
        "ratio": round(peer_s / ours_s, 2),
        "items": n,
        "workers": args.workers,
        "cache_hits": hits,
        "cache_misses": misses,
        "pool_start_s": round(pool_start_s, 2),
        "corpus_items": len(rows),
        "accuracy": {"ours": ours_acc["accuracy"], "peer": peer_acc["accuracy"]},
        "false_positives": {"ours": ours_acc["false_positives"], "peer": peer_acc["false_positives"]},
        "false_negatives": {"ours": ours_acc["false_negatives"], "peer": peer_acc["false_negatives"]},
        "adversarial_false_positives": {"ours": ours_acc["adversarial_false_positives"],
                                        "peer": peer_acc["adversarial_false_positives"]},
        "heldout": {"items": ours_acc["heldout"]["items"],
                    **{key: {"ours": ours_acc["heldout"][key], "peer": peer_acc["heldout"][key]}
                       for key in ("accuracy", "false_positives", "false_negatives")}},
        "peer_config": best_mode,
    }))


if __name__ == "__main__":
    main()
