"""Rollouts (and tokens) spent per correctly located first error: binary search (OmegaPRM) vs per-step
Monte-Carlo (Math-Shepherd), at equal first-error F1, in one run.

    .venv/bin/python bench/label_cost.py --policy DIR              # a pretrained policy directory
    .venv/bin/python bench/label_cost.py                           # builds one: init-model + short pretrain
    .venv/bin/python bench/label_cost.py --policy DIR --out runs/label_cost   # also writes the labelled rows

Workload: arithmetic problems (test split); for each, the task's corrupted solution (exact
first error from `corrupt`), the reference solution (no error) and `--samples` policy
samples (first error from `check_step`). Every solution is labelled by both methods at
every N in `--ns` (continuations per Monte-Carlo estimate).

Paired and exact accounting: for every (solution, prefix) the policy's `max(ns)` continuations
are drawn ONCE (one batched `generate` call), and a method asking for N continuations of
that prefix gets the first N of them (`CachedSampler`). Both methods therefore see the same
random draws, and the rollouts/tokens counted are exactly what each method asked for.

Metric: for each method, the cost (rollouts per correctly located first error) at the
cheapest N whose F1 reaches the target, where target = the best F1 both methods reach
(min of the two maxima) minus `--tolerance`. ratio = MC cost / binary-search cost
(> 1: binary search is cheaper). The per-N table of F1, step AUC, rollouts and tokens is
printed too.

LAST stdout line: one JSON object {metric, ours, peer, ratio, ...}.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasonloop.algorithms.step_labels import label_solutions, prefix_text
from reasonloop.evaluate.process import evaluate_labels
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import write_jsonl
from reasonloop.tasks import make_task
from reasonloop.types import split_steps


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", default="", help="pretrained policy directory (default: build one)")
    ap.add_argument("--problems", type=int, default=60)
    ap.add_argument("--samples", type=int, default=2, help="policy samples labelled per problem")
    ap.add_argument("--max-ops", type=int, default=3)
    ap.add_argument("--ns", default="1,2,4,8,16")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--tolerance", type=float, default=0.02)
    ap.add_argument("--pretrain-examples", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="", help="directory for the labelled rows of every (method, N)")
    args = ap.parse_args()
    ns = sorted(int(x) for x in args.ns.split(","))
    t0 = time.perf_counter()

    from reasonloop.models.policy import ModelConfig
    from reasonloop.rollout.engine import TorchEngine
    from reasonloop.utils import quiet_hf, seed_everything

    quiet_hf()
    seed_everything(args.seed)
    policy = args.policy or build_policy(Path(tempfile.mkdtemp(prefix="label_cost_")), args.pretrain_examples)
    engine = TorchEngine.from_config(ModelConfig(path=policy, device="cpu"))
    task = make_task("arithmetic", split="test", size=args.problems, seed=args.seed, max_ops=args.max_ops)
    problems = [task[i] for i in range(len(task))]

    # --- the solutions to label: corrupted, reference, and policy samples ---
    rng = random.Random(args.seed)
    solutions = []
    for p in problems:
        solutions.append((p, task.corrupt(p, rng)[0]))
        solutions.append((p, split_steps(p.reference_solution)))
    params = SamplingParams(temperature=args.temperature, max_new_tokens=64, seed=args.seed)
    if args.samples:
        for p, group in zip(problems, engine.generate([p.prompt for p in problems], args.samples, params)):
            solutions += [(p, split_steps(s.text)) for s in group if split_steps(s.text)]
    policy_accuracy = sum(task.verify(p, "\n".join(s)) for p, s in solutions[2 * len(problems):]) / max(
        1, len(solutions) - 2 * len(problems))

    # --- draw max(ns) continuations of every proper prefix once ---
    keys = sorted({(p.prompt, prefix_text(steps, k)) for p, steps in solutions for k in range(1, len(steps))})
    t1 = time.perf_counter()
    params = SamplingParams(temperature=args.temperature, max_new_tokens=64, seed=args.seed + 1)
    groups = engine.generate([k[0] for k in keys], max(ns), params, prefixes=[k[1] for k in keys])
    sampler = CachedSampler(dict(zip(keys, groups)))
    draw_seconds = time.perf_counter() - t1

    # --- label with both methods at every N; score against the ground truth ---
    table = []
    for method in ("mc", "binary_search"):
        for n in ns:
            rows = label_solutions(solutions, task, sampler, method, n, params)
            m = evaluate_labels(rows)
            table.append({"method": method, "n": n, **{k: m[k] for k in (
                "f1", "acc_error", "acc_correct", "step_auc", "rollouts", "tokens", "located_errors",
                "rollouts_per_located_error")}})
            if args.out:
                write_jsonl(Path(args.out) / f"{method}_n{n}.jsonl", rows)
    if args.out:
        write_jsonl(Path(args.out) / "ground_truth.jsonl",
                    label_solutions(solutions, task, None, "ground_truth", 0, params))

    print(f"{'method':<14}{'N':>4}{'F1':>7}{'accE':>7}{'accC':>7}{'AUC':>7}{'rollouts':>10}{'tokens':>10}"
          f"{'located':>9}{'roll/loc':>10}")
    for r in table:
        print(f"{r['method']:<14}{r['n']:>4}{r['f1']:>7.3f}{r['acc_error']:>7.3f}{r['acc_correct']:>7.3f}"
              f"{r['step_auc']:>7.3f}{r['rollouts']:>10}{r['tokens']:>10}{r['located_errors']:>9}"
              f"{r['rollouts_per_located_error']:>10.1f}")

    # --- equal-F1 comparison ---
    best = {m: max(r["f1"] for r in table if r["method"] == m) for m in ("mc", "binary_search")}
    target = min(best.values()) - args.tolerance
    chosen = {m: min((r for r in table if r["method"] == m and r["f1"] >= target),
                     key=lambda r: r["rollouts_per_located_error"]) for m in best}
    ours, peer = chosen["binary_search"], chosen["mc"]
    print(json.dumps({
        "metric": "rollouts per correctly located first error at equal F1 (lower is better)",
        "ours": round(ours["rollouts_per_located_error"], 2), "peer": round(peer["rollouts_per_located_error"], 2),
        "ratio": round(peer["rollouts_per_located_error"] / ours["rollouts_per_located_error"], 3),
        "target_f1": round(target, 3), "ours_n": ours["n"], "peer_n": peer["n"],
        "ours_f1": round(ours["f1"], 3), "peer_f1": round(peer["f1"], 3),
        "tokens_per_located_ours": round(ours["tokens"] / max(1, ours["located_errors"]), 1),
        "tokens_per_located_peer": round(peer["tokens"] / max(1, peer["located_errors"]), 1),
        "token_ratio": round((peer["tokens"] / max(1, peer["located_errors"]))
                             / max(1e-9, ours["tokens"] / max(1, ours["located_errors"])), 3),
        "solutions": len(solutions), "policy_sample_accuracy": round(policy_accuracy, 3),
        "draw_seconds": round(draw_seconds, 1), "total_seconds": round(time.perf_counter() - t0, 1),
        "policy": policy, "ours_name": "binary_search", "peer_name": "mc (Math-Shepherd per-step)",
    }))


if __name__ == "__main__":
    main()
