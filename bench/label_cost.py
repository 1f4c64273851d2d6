"""Rollouts (and tokens) spent per correctly located first error: our adaptive search and binary search
(OmegaPRM) vs every Monte-Carlo labeller (Math-Shepherd per-step, outcome-gated, sequential), at equal
first-error F1, in one run; the headline is against the strongest of them.

    .venv/bin/python bench/label_cost.py --policy DIR              # a pretrained policy directory
    .venv/bin/python bench/label_cost.py                           # builds one: init-model + short pretrain
    .venv/bin/python bench/label_cost.py --policy DIR --out runs/label_cost   # also writes the labelled rows

Workload: arithmetic problems (`--task-options`, default the quickstart's: additions with 2-3
operations); for each, the task's corrupted solution (exact first error from `corrupt`), the
reference solution (no error) and `--samples` policy samples (first error from `check_step`).
Every solution is labelled by every method at every N in `--ns` (continuations per
Monte-Carlo estimate):

- `adaptive_search` (ours): the first-error search probing in the order that minimises expected probes
  under the first-error positions its earlier labels found (`step_labels.AdaptiveSearch`);
- `binary_search` (OmegaPRM's bisection);
- `mc`: per-step Monte-Carlo as Math-Shepherd publishes it (every prefix of every solution);
- `mc_outcome`: the same, skipping solutions whose final answer verifies (binary search's
  shortcut given to MC: the comparison with it isolates what bisection itself saves);
- `mc_sequential`: MC prefix by prefix, stopping at the first prefix of value 0 (with the
  outcome shortcut): the cheapest MC when errors come early.

Every labeler calls the sampler itself, so its rollouts are counted, not derived. Paired
accounting: for every (solution, prefix) the policy's `max(ns)` continuations are drawn ONCE
(one batched `generate` call), and a labeler asking for N continuations of that prefix gets
the first N of them (`CachedSampler`). All labelers therefore see the same random draws.

Metric: for each method, the cost (rollouts per correctly located first error) at the
cheapest N whose F1 reaches the target, where target = the best F1 both methods reach
(min of the two maxima) minus `--tolerance`. ratio = MC cost / our cost (> 1: ours is
cheaper). The headline (`ours`, `peer`, `ratio`) is adaptive search against the strongest MC
labeller, the one with the smallest ratio; every pair (adaptive and binary search against each
MC variant) is in the JSON too. The per-N table also has MC's soft
labels thresholded at 0.5 (`mc soft`) and each method's labels with one HNC-merged copy per
solution (scored against the merged truth).

LAST stdout line: one JSON object {metric, ours, peer, ratio, ...}.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from reasonloop.algorithms.step_labels import label_solutions, prefix_text
from reasonloop.algorithms.step_rows import hnc_augment
from reasonloop.evaluate.process import evaluate_labels
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import write_jsonl
from reasonloop.tasks import make_task
from reasonloop.types import split_steps

LABELERS = ("adaptive_search", "binary_search", "mc", "mc_outcome", "mc_sequential")
OURS = ("adaptive_search", "binary_search")
PEERS = ("mc", "mc_outcome", "mc_sequential")
QUICKSTART_TASK = "{min_ops: 2, max_ops: 3, ops: ['+']}"


class CachedSampler:
    """A `Sampler` over pre-drawn continuations: asking for n samples of (prompt, prefix) returns the first n."""

    model_id = "cached"

    def __init__(self, cache: dict[tuple[str, str], list]):
        self.cache = cache

    def generate(self, prompts, samples_per_prompt=1, params=None, prefixes=None):
        prefixes = prefixes or [""] * len(prompts)
        out = []
        for p, x in zip(prompts, prefixes):
            drawn = self.cache[(p, x)]
            if samples_per_prompt > len(drawn):
                raise ValueError(f"asked for {samples_per_prompt} continuations, only {len(drawn)} were drawn")
            out.append(drawn[:samples_per_prompt])
        return out


def build_policy(workdir: Path, num_examples: int) -> str:
    """init-model + a short pretrain on arithmetic (a modest, imperfect reasoner)."""
    from reasonloop.algorithms.pretrain import PretrainConfig
    from reasonloop.algorithms.pretrain import main as pretrain
    from reasonloop.models.tiny import TinyModelConfig, init_model

    init_model(TinyModelConfig(path=str(workdir / "init"), hidden_size=128, intermediate_size=384))
    cfg = PretrainConfig(num_examples=num_examples, output_dir=str(workdir), run_name="pretrain")
    cfg.model.path = str(workdir / "init")
    cfg.task.options = {"max_ops": 3}
    cfg.train.epochs, cfg.train.batch_size, cfg.train.micro_batch_size = 2.0, 32, 32
    cfg.train.optim.lr, cfg.train.optim.warmup_steps = 2e-3, 10
    pretrain(cfg)
    return str(workdir / "pretrain" / "final")


def score_variants(method: str, n: int, rows: list[dict], seed: int = 0) -> list[dict]:
    """Table rows for one labeler's rows: its hard labels; for mc, its soft labels at 0.5; for mc and
    binary search, the rows plus one HNC-merged copy each (scored against the merged truth, at no extra cost)."""
    def scored(name: str, rs: list[dict], **kw) -> dict:
        m = evaluate_labels(rs, **kw)
        return {"method": name, "n": n, **{k: m[k] for k in (
            "f1", "acc_error", "acc_correct", "step_auc", "rollouts", "tokens", "located_errors",
            "rollouts_per_solution", "rollouts_per_located_error", "n_error", "n_correct")}}

    out = [scored(method, rows)]
    if method == "mc":
        out.append(scored("mc soft", rows, soft_threshold=0.5))
    if method in ("mc", "binary_search"):
        hnc = scored(f"{method} + HNC", rows + hnc_augment(rows, 1.0, random.Random(seed)), include_augmented=True)
        # the merged copies are free and are not solutions of their own: cost per labelled solution is the base's,
        # and a cost per located error would count each error twice
        hnc.update(rollouts_per_solution=out[0]["rollouts_per_solution"], rollouts_per_located_error=math.nan)
        out.append(hnc)
    return out


def bisection_probes(num_steps: int, first_error: int) -> int:
    """Estimates `binary_search_labels` makes on a wrong-answer solution when every estimate is exact
    (prefix k has value > 0 iff k <= first_error): the same loop, with an oracle for the values."""
    lo, hi, probes = 0, num_steps, 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi, probes = (mid, hi, probes + 1) if mid <= first_error else (lo, mid, probes + 1)
    return probes


def error_step(row: dict) -> int:
    """A wrong-answer row's first error; when every step passes `check_step` (the answer line or the
    end is what is wrong, e.g. a truncated solution), the last step, which is what a search concludes."""
    error = row["true_first_error"]
    return len(row["completions"]) - 1 if error is None else error


def adaptive_probes(truth: list[dict]) -> int:
    """Estimates `AdaptiveSearch` makes on the rows in order when every estimate is exact (its counts then
    hold the true first errors of the rows before)."""
    from reasonloop.algorithms.step_labels import AdaptiveSearch, search_plan

    labeler, probes = AdaptiveSearch(), 0
    for r in truth:
        if r["outcome"]:
            continue
        size, error = len(r["completions"]), error_step(r)
        plan, lo, hi = search_plan(labeler.weights(size)), 0, size
        while hi - lo > 1:
            mid = plan[(lo, hi)]
            lo, hi, probes = (mid, hi, probes + 1) if mid <= error else (lo, mid, probes + 1)
        labeler.observe([i < lo for i in range(size)])
    return probes


def oracle_estimates(truth: list[dict]) -> dict[str, int]:
    """Monte-Carlo estimates each labeler needs with a perfect value oracle, from ground-truth rows: the
    length-and-error-position bound on what a search can save, independent of N and of noise."""
    wrong = [r for r in truth if not r["outcome"]]
    return {
        "adaptive_search": adaptive_probes(truth),
        "binary_search": sum(bisection_probes(len(r["completions"]), error_step(r)) for r in wrong),
        "mc": sum(len(r["completions"]) - 1 for r in truth),
        "mc_outcome": sum(len(r["completions"]) - 1 for r in wrong),
        "mc_sequential": sum(min(error_step(r) + 1, len(r["completions"]) - 1) for r in wrong),
    }


def equal_f1_cost(table: list[dict], ours: str, peer: str, tolerance: float) -> dict:
    """Both methods at the cheapest N whose F1 reaches min(best F1 of each) - tolerance."""
    best = {m: max(r["f1"] for r in table if r["method"] == m) for m in (ours, peer)}
    target = min(best.values()) - tolerance
    chosen = {m: min((r for r in table if r["method"] == m and r["f1"] >= target),
                     key=lambda r: r["rollouts_per_located_error"]) for m in best}
    o, p = chosen[ours], chosen[peer]
    per_tok = {m: r["tokens"] / max(1, r["located_errors"]) for m, r in chosen.items()}
    return {
        "ours": round(o["rollouts_per_located_error"], 2), "peer": round(p["rollouts_per_located_error"], 2),
        "ratio": round(p["rollouts_per_located_error"] / o["rollouts_per_located_error"], 3),
        "target_f1": round(target, 3), "ours_n": o["n"], "peer_n": p["n"],
        "ours_f1": round(o["f1"], 3), "peer_f1": round(p["f1"], 3),
        "tokens_per_located_ours": round(per_tok[ours], 1), "tokens_per_located_peer": round(per_tok[peer], 1),
        "token_ratio": round(per_tok[peer] / max(1e-9, per_tok[ours]), 3),
    }


def same_n(table: list[dict], ours: str, peer: str) -> list[dict]:
    """Both methods at each N: the cost ratio and the F1 of each (the equal-F1 rule picks one N per method,
    so a 0.005 F1 difference at a threshold can move a method to the next N; this shows what it moved)."""
    rows = {(r["method"], r["n"]): r for r in table}
    return [{"n": n, "ours": round(rows[(ours, n)]["rollouts_per_located_error"], 2),
             "peer": round(rows[(peer, n)]["rollouts_per_located_error"], 2),
             "ratio": round(rows[(peer, n)]["rollouts_per_located_error"]
                            / rows[(ours, n)]["rollouts_per_located_error"], 3),
             "ours_f1": round(rows[(ours, n)]["f1"], 3), "peer_f1": round(rows[(peer, n)]["f1"], 3)}
            for n in sorted({n for m, n in rows if m == ours}) if (peer, n) in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", default="", help="pretrained policy directory (default: build one)")
    ap.add_argument("--problems", type=int, default=60)
    ap.add_argument("--samples", type=int, default=4, help="policy samples labelled per problem")
    ap.add_argument("--task-options", default=QUICKSTART_TASK, help="arithmetic task options (YAML mapping)")
    ap.add_argument("--split", default="test", choices=("train", "test"))
    ap.add_argument("--ns", default="1,2,4,8,16")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--tolerance", type=float, default=0.02)
    ap.add_argument("--pretrain-examples", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="", help="directory for the labelled rows of every (method, N)")
    args = ap.parse_args()
    ns = sorted(int(x) for x in args.ns.split(","))
    options = yaml.safe_load(args.task_options)
    if not isinstance(options, dict):
        raise SystemExit(f"--task-options: expected a YAML mapping, got {args.task_options!r}")
    t0 = time.perf_counter()

    from reasonloop.models.policy import ModelConfig
    from reasonloop.rollout.engine import TorchEngine
    from reasonloop.utils import quiet_hf, seed_everything

    quiet_hf()
    seed_everything(args.seed)
    policy = args.policy or build_policy(Path(tempfile.mkdtemp(prefix="label_cost_")), args.pretrain_examples)
    engine = TorchEngine.from_config(ModelConfig(path=policy, device="cpu"))
    task = make_task("arithmetic", split=args.split, size=args.problems, seed=args.seed, **options)
    problems = [task[i] for i in range(len(task))]

    # --- the solutions to label: corrupted, reference, and policy samples ---
    rng = random.Random(args.seed)
    solutions, sources = [], []
    for p in problems:
        solutions += [(p, task.corrupt(p, rng)[0]), (p, split_steps(p.reference_solution))]
        sources += ["corrupt", "reference"]
    params = SamplingParams(temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed)
    if args.samples:
        for p, group in zip(problems, engine.generate([p.prompt for p in problems], args.samples, params)):
            for s in group:
                if split_steps(s.text):
                    solutions.append((p, split_steps(s.text)))
                    sources.append("policy")
    own = [(p, s) for (p, s), src in zip(solutions, sources) if src == "policy"]
    policy_accuracy = sum(task.verify(p, "\n".join(s)) for p, s in own) / max(1, len(own))

    # --- draw max(ns) continuations of every proper prefix once ---
    keys = sorted({(p.prompt, prefix_text(steps, k)) for p, steps in solutions for k in range(1, len(steps))})
    t1 = time.perf_counter()
    params = SamplingParams(temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed + 1)
    groups = engine.generate([k[0] for k in keys], max(ns), params, prefixes=[k[1] for k in keys])
    sampler = CachedSampler(dict(zip(keys, groups)))
    draw_seconds = time.perf_counter() - t1

    # --- label with every method at every N; score against the ground truth ---
    table = []
    for method in LABELERS:
        for n in ns:
            rows = label_solutions(solutions, task, sampler, method, n, params)
            for row, src in zip(rows, sources):
                row["source"] = src
            table += score_variants(method, n, rows, args.seed)
            if args.out:
                write_jsonl(Path(args.out) / f"{method}_n{n}.jsonl", rows)
    truth = label_solutions(solutions, task, None, "ground_truth", 0, params)
    oracle = oracle_estimates(truth)
    if args.out:
        for row, src in zip(truth, sources):
            row["source"] = src
        write_jsonl(Path(args.out) / "ground_truth.jsonl", truth)
        (Path(args.out) / "table.json").write_text(json.dumps(table, indent=1) + "\n")

    print(f"{'method':<22}{'N':>4}{'F1':>7}{'accE':>7}{'accC':>7}{'AUC':>7}{'roll/sol':>9}{'tokens':>10}"
          f"{'located':>9}{'roll/loc':>10}")
    for r in table:
        print(f"{r['method']:<22}{r['n']:>4}{r['f1']:>7.3f}{r['acc_error']:>7.3f}{r['acc_correct']:>7.3f}"
              f"{r['step_auc']:>7.3f}{r['rollouts_per_solution']:>9.2f}{r['tokens']:>10}{r['located_errors']:>9}"
              f"{r['rollouts_per_located_error']:>10.2f}")

    # --- equal-F1 comparison of each of ours against each MC variant; the headline: the strongest peer ---
    versus = {ours: {peer: equal_f1_cost(table, ours, peer, args.tolerance) for peer in PEERS} for ours in OURS}
    strongest = min(PEERS, key=lambda peer: versus["adaptive_search"][peer]["ratio"])
    wrong = [len(s) for p, s in solutions if not task.verify(p, "\n".join(s))]
    print(json.dumps({
        "metric": "rollouts per correctly located first error at equal F1, against the strongest MC labeller "
                  "(lower is better)",
        **versus["adaptive_search"][strongest],
        "beats_every_mc_variant": {ours: all(v["ratio"] > 1 for v in versus[ours].values()) for ours in OURS},
        "same_n_vs_strongest": same_n(table, "adaptive_search", strongest),
        **{f"{ours}_vs_{peer}": versus[ours][peer] for ours in OURS for peer in PEERS},
        "oracle_estimates": oracle,
        "oracle_ratio": {ours: {peer: round(oracle[peer] / max(1, oracle[ours]), 3) for peer in PEERS}
                         for ours in OURS},
        "solutions": len(solutions), "wrong_answer_solutions": len(wrong),
        "mean_steps_wrong_answer": round(sum(wrong) / max(1, len(wrong)), 2),
        "policy_sample_accuracy": round(policy_accuracy, 3), "task_options": options, "split": args.split,
        "draw_seconds": round(draw_seconds, 1), "total_seconds": round(time.perf_counter() - t0, 1),
        "policy": policy, "ours_name": "adaptive_search", "peer_name": strongest,
    }))


if __name__ == "__main__":
    main()
