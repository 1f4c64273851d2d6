"""The numbers and plots of docs/prm.md, from `bench/label_cost.py --out DIR` rows.

    .venv/bin/python bench/label_cost.py --policy POLICY --problems 40 --out runs/label_cost/rows > runs/label_cost/bench.txt
    .venv/bin/python scripts/prm_results.py --rows runs/label_cost/rows --policy POLICY --out runs/prm_results

1. Label quality against rollouts: F1 / step AUC of every (method, N) file against the
   ground truth, plotted against rollouts per solution (docs/img/prm_label_quality.png).
2. PRMs trained on those labels (same solutions, same backbone = the policy, same steps),
   evaluated on held-out solutions of *other* problems (train split: the task's corrupted
   and reference solutions, exact first errors): MC hard vs soft, binary search, each with
   and without HNC, ground-truth labels as the ceiling, and an ORM / value model.
3. `--rl PRM_DIR`: GRPO with outcome-only rewards vs Posterior-GRPO (correct + w * PRM(min) *
   correct), same seed and settings, on arithmetic. grpo.py has no reward hook yet, so this
   wraps `grpo.score_samples` (the change docs/prm.md proposes for grpo.py, applied from outside).
Prints one markdown table per part and writes them to OUT/tables.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasonloop.algorithms.prm import PRMConfig
from reasonloop.algorithms.prm import main as train_prm
from reasonloop.algorithms.step_labels import hnc_augment, label_solutions, read_step_rows
from reasonloop.evaluate.process import evaluate_labels
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import write_jsonl
from reasonloop.tasks import make_task
from reasonloop.types import split_steps


def skip_correct_outcomes(rows: list[dict]) -> list[dict]:
    """MC rows as if MC had skipped solutions whose final answer verifies (all steps good, 0 rollouts).

    Exact, not a simulation: MC's estimates of one solution never depend on another's, so
    dropping the rollouts of correct-outcome solutions leaves the other rows unchanged. It
    separates binary search's two savings: this shortcut, and bisection itself.
    """
    out = []
    for r in rows:
        if r["outcome"]:
            r = {**r, "labels": [True] * len(r["labels"]), "soft_labels": [1.0] * len(r["labels"]),
                 "rollouts": 0, "tokens": 0}
        out.append(r)
    return out


def label_quality(rows_dir: Path) -> list[dict]:
    table = []
    for path in sorted(rows_dir.glob("*_n*.jsonl")):
        method, n = path.stem.rsplit("_n", 1)
        rows = read_step_rows(path)
        variants = {method: rows}
        if method == "mc":
            variants["mc_skip_correct"] = skip_correct_outcomes(rows)
        for name, rs in variants.items():
            m = evaluate_labels(rs)
            table.append({"method": name, "n": int(n), "rollouts_per_solution": m["rollouts_per_solution"], **m})
    return sorted(table, key=lambda r: (r["method"], r["n"]))


def plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for method, style in (("mc", "o-"), ("mc_skip_correct", "^--"), ("binary_search", "s-")):
        rows = [r for r in table if r["method"] == method]
        x = [r["rollouts_per_solution"] for r in rows]
        for ax, key in zip(axes, ("f1", "step_auc")):
            ax.plot(x, [r[key] for r in rows], style, label=method)
            for r, xi in zip(rows, x):
                ax.annotate(f"N={r['n']}", (xi, r[key]), fontsize=7, textcoords="offset points", xytext=(3, 3))
    for ax, title in zip(axes, ("first-error F1 (ProcessBench)", "step AUC")):
        ax.set_xscale("log")
        ax.set_xlabel("rollouts per solution")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def held_out_rows(num_problems: int, seed: int) -> list[dict]:
    """Ground-truth rows for corrupted + reference solutions of train-split problems."""
    task = make_task("arithmetic", split="train", size=num_problems, seed=seed, max_ops=3)
    rng = random.Random(seed)
    solutions = []
    for i in range(len(task)):
        p = task[i]
        solutions += [(p, task.corrupt(p, rng)[0]), (p, split_steps(p.reference_solution))]
    return label_solutions(solutions, task, None, "ground_truth", 0, SamplingParams())


def gate_grpo_rewards(prm_dir: str, weight: float, aggregate: str = "min") -> None:
    """Make `grpo.score_samples` add the Posterior-GRPO gated PRM reward to each sample's total."""
    import torch

    from reasonloop.algorithms import grpo
    from reasonloop.algorithms.prm import posterior_gated_rewards
    from reasonloop.models.reward_model import RewardModel, aggregate_scores

    model = RewardModel.from_pretrained(prm_dir, device="cpu")
    outcome_only = grpo.score_samples

    def score_samples(cfg, task, problems, samples):
        outcome_only(cfg, task, problems, samples)
        steps = [split_steps(s.text, model.spec.step_separator) for s in samples]
        scores = model.score_batch([p.prompt for p in problems], steps)
        process = torch.tensor([aggregate_scores(x, aggregate) for x in scores])  # (G,)
        correct = torch.tensor([s.rewards["correct"] for s in samples])  # (G,)
        gated = posterior_gated_rewards(correct, process, weight)  # (G,)
        for s, p, g in zip(samples, process.tolist(), gated.tolist()):
            s.rewards["prm"] = p
            s.rewards["total"] += g - s.rewards["correct"]  # keep the format / length terms

    grpo.score_samples = score_samples


def rl_comparison(args) -> list[dict]:
    """Outcome-only GRPO vs Posterior-GRPO from the same policy, seed and problems."""
    from reasonloop.algorithms import grpo
    from reasonloop.config import load_config

    results = []
    for name, weight in (("outcome only", 0.0), (f"Posterior-GRPO, PRM weight {args.rl_weight}", args.rl_weight)):
        overrides = [f"model.path={args.policy}", f"task.options={{max_ops: {args.rl_max_ops}}}", f"steps={args.rl_steps}",
                     "prompts_per_step=8", "samples_per_prompt=8", f"eval_problems={args.eval_problems}",
                     f"output_dir={args.out}", f"run_name=grpo_{'prm' if weight else 'outcome'}_s{args.rl_seed}",
                     f"seed={args.rl_seed}", "save_every=0", "resume=true", "optim.lr=5e-4"]
        cfg = load_config(grpo.GRPOConfig, None, overrides)
        original = grpo.score_samples
        if weight:
            gate_grpo_rewards(args.rl, weight)
        try:
            summary = grpo.main(cfg)
        finally:
            grpo.score_samples = original
        from reasonloop.store.runs import RunDir

        steps = [m for m in RunDir(Path(summary["final_model"]).parent).read_metrics() if "reward/correct" in m]
        correct = [m["reward/correct"] for m in steps]
        results.append({"name": name, **summary, "train_correct_first5": sum(correct[:5]) / max(1, len(correct[:5])),
                        "train_correct_last5": sum(correct[-5:]) / max(1, len(correct[-5:]))})
        print(json.dumps(results[-1], default=str), flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rl", default="", help="a trained PRM directory: run the GRPO comparison only")
    ap.add_argument("--rl-steps", type=int, default=20)
    ap.add_argument("--rl-weight", type=float, default=0.5)
    ap.add_argument("--rl-seed", type=int, default=0)
    ap.add_argument("--rl-max-ops", type=int, default=3)
    ap.add_argument("--rows", default="")
    ap.add_argument("--policy", required=True, help="backbone of every reward model")
    ap.add_argument("--out", default="runs/prm_results")
    ap.add_argument("--n", type=int, default=4, help="which N's labels train the PRMs")
    ap.add_argument("--eval-problems", type=int, default=150)
    ap.add_argument("--epochs", type=float, default=8)
    ap.add_argument("--variants", default="", help="';'-separated variant names to train (default: all)")
    ap.add_argument("--skip-prm", action="store_true", help="only the label-quality table and plot")
    ap.add_argument("--plot", default="docs/img/prm_label_quality.png")
    args = ap.parse_args()
    rows_dir, out = Path(args.rows), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.rl:
        rl_comparison(args)
        return

    quality = label_quality(rows_dir)
    plot(quality, Path(args.plot))
    lines = ["| method | N | rollouts / solution | F1 | acc (erroneous) | acc (correct) | step AUC | rollouts / located error |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['n']} | {r['rollouts_per_solution']:.1f} | {r['f1']:.3f} | {r['acc_error']:.3f} | "
              f"{r['acc_correct']:.3f} | {r['step_auc']:.3f} | {r['rollouts_per_located_error']:.1f} |" for r in quality]
    tables = ["## label quality\n", *lines, ""]
    print("\n".join(lines))
    if args.skip_prm:
        (out / "tables.md").write_text("\n".join(tables) + "\n")
        return

    eval_path = out / "eval_ground_truth.jsonl"
    write_jsonl(eval_path, held_out_rows(args.eval_problems, seed=1))
    sources = {"mc": f"mc_n{args.n}.jsonl", "bs": f"binary_search_n{args.n}.jsonl", "gt": "ground_truth.jsonl"}
    variants = {  # name -> (label file, kind, targets, hnc)
        "ground truth (hard)": ("gt", "prm", "hard", False),
        f"MC N={args.n} hard": ("mc", "prm", "hard", False),
        f"MC N={args.n} soft": ("mc", "prm", "soft", False),
        f"MC N={args.n} hard + HNC": ("mc", "prm", "hard", True),
        f"binary search N={args.n} hard": ("bs", "prm", "hard", False),
        f"binary search N={args.n} hard + HNC": ("bs", "prm", "hard", True),
        f"MC N={args.n} ReST-MCTS* values": ("mc", "prm", "values", False),
        "ORM (outcome at last step)": ("gt", "orm", "hard", False),
        "value model (OVM: outcome at every step)": ("gt", "value", "hard", False),
    }
    keep = [v.strip() for v in args.variants.split(";") if v.strip()]
    results = []
    for name, (source, kind, targets, hnc) in variants.items():
        if keep and name not in keep:
            continue
        rows = read_step_rows(rows_dir / sources[source])
        if hnc:
            rows = rows + hnc_augment(rows, 1.0, random.Random(0))
        data = out / f"train_{len(results)}.jsonl"
        write_jsonl(data, rows)
        cfg = PRMConfig(backbone=args.policy, data=str(data), eval_data=str(eval_path), kind=kind, targets=targets,
                        epochs=args.epochs, batch_size=16, output_dir=str(out), run_name=f"prm_{len(results)}",
                        device="cpu", resume=True)
        cfg.optim.lr = 1e-3
        summary = train_prm(cfg)
        results.append({"name": name, "rows": len(rows), **summary["eval"], "loss_last": summary["loss_last"]})
        print(json.dumps(results[-1]), flush=True)
    lines = ["| reward model (training labels) | train rows | F1 | acc (erroneous) | acc (correct) | step AUC |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['rows']} | {r['f1']:.3f} | {r['acc_error']:.3f} | {r['acc_correct']:.3f} | "
              f"{r['step_auc']:.3f} |" for r in results]
    tables += ["## trained reward models\n", *lines, ""]
    print("\n".join(lines))
    (out / "tables.md").write_text("\n".join(tables) + "\n")


if __name__ == "__main__":
    main()
