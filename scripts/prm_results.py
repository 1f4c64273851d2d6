"""The numbers and plots of docs/prm.md, from `bench/label_cost.py --out DIR` rows.

    .venv/bin/python bench/label_cost.py --policy POLICY --problems 150 --out runs/prm_qs/label_test/rows
    .venv/bin/python bench/label_cost.py --policy POLICY --problems 400 --split train --ns 4,8 \
        --out runs/prm_qs/label_train/rows
    .venv/bin/python scripts/prm_results.py --rows runs/prm_qs/label_test/rows \
        --train-rows runs/prm_qs/label_train/rows --policy POLICY --out runs/prm_qs/prm

1. Label quality against rollouts: F1 / step AUC of every (method, N) file against the
   ground truth (`bench.label_cost.score_variants`: hard labels, MC soft labels at 0.5, HNC),
   on all solutions and on the policy's own samples only; plotted against rollouts per
   solution (docs/img/prm_label_quality.png).
2. PRMs trained on the labels of the policy's own samples of *train*-split problems
   (`--train-rows`; backbone = the policy): exact labels, binary search, MC hard / soft, each
   with and without HNC, evaluated on the policy's own samples of the *test*-split problems
   of `--rows` (held-out rollouts, exact first errors), and on all of that run's solutions.
PRM rewards in RL are `grpo`'s `process_reward` option (docs/grpo.md), not run from here.
Prints one markdown table per part and writes them to OUT/tables.md (and OUT/*.json).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.label_cost import score_variants
from reasonloop.algorithms.prm import PRMConfig
from reasonloop.algorithms.prm import main as train_prm
from reasonloop.algorithms.step_labels import hnc_augment, read_step_rows
from reasonloop.store.jsonl import write_jsonl

PLOTTED = (("binary_search", "s-"), ("mc", "o-"), ("mc soft", "o:"), ("mc_outcome", "^--"),
           ("mc_sequential", "v--"), ("binary_search + HNC", "s:"))


def label_quality(rows_dir: Path, source: str | None = None) -> list[dict]:
    """Every (method, N) rows file of a label_cost run, scored; `source` keeps only rows of that source."""
    table = []
    for path in sorted(rows_dir.glob("*_n*.jsonl")):
        method, n = path.stem.rsplit("_n", 1)
        rows = [r for r in read_step_rows(path) if source is None or r.get("source") == source]
        table += score_variants(method, int(n), rows)
    return sorted(table, key=lambda r: (r["method"], r["n"]))


def plot(tables: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(tables), 2, figsize=(10, 3.6 * len(tables)), squeeze=False)
    for row_axes, (title, table) in zip(axes, tables.items()):
        for method, style in PLOTTED:
            rows = [r for r in table if r["method"] == method]
            x = [r["rollouts_per_solution"] for r in rows]
            for ax, key in zip(row_axes, ("f1", "step_auc")):
                ax.plot(x, [r[key] for r in rows], style, label=method, ms=4)
        for ax, metric in zip(row_axes, ("first-error F1 (ProcessBench)", "step AUC")):
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlabel("rollouts per labelled solution")
            ax.set_title(f"{metric}: {title}", fontsize=9)
            ax.grid(alpha=0.3)
        row_axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def markdown(table: list[dict]) -> list[str]:
    lines = [("| method | N | rollouts / solution | F1 | acc (erroneous) | acc (correct) | step AUC | "
              "rollouts / located error |"), "|---|---|---|---|---|---|---|---|"]
    for r in table:
        cost = "-" if math.isnan(r["rollouts_per_located_error"]) else f"{r['rollouts_per_located_error']:.2f}"
        lines.append(f"| {r['method']} | {r['n']} | {r['rollouts_per_solution']:.2f} | {r['f1']:.3f} | "
                     f"{r['acc_error']:.3f} | {r['acc_correct']:.3f} | {r['step_auc']:.3f} | {cost} |")
    return lines


def prm_variants(n: int) -> dict[str, tuple[str, str, str, bool]]:
    """name -> (label file, kind, targets, hnc)."""
    return {
        "exact (check_step)": ("ground_truth.jsonl", "prm", "hard", False),
        "exact + HNC": ("ground_truth.jsonl", "prm", "hard", True),
        f"binary search N={n}": (f"binary_search_n{n}.jsonl", "prm", "hard", False),
        f"binary search N={n} + HNC": (f"binary_search_n{n}.jsonl", "prm", "hard", True),
        f"MC N={n} hard": (f"mc_n{n}.jsonl", "prm", "hard", False),
        f"MC N={n} soft": (f"mc_n{n}.jsonl", "prm", "soft", False),
        f"MC N={n} soft + HNC": (f"mc_n{n}.jsonl", "prm", "soft", True),
        f"MC N={n} hard + HNC": (f"mc_n{n}.jsonl", "prm", "hard", True),
        "ORM (outcome at last step)": ("ground_truth.jsonl", "orm", "hard", False),
    }


def score_prm(model_dir: str, truth: list[dict], threshold: float = 0.5) -> dict:
    """Held-out scores of a trained reward model: on the policy's samples (F1 at `threshold`, F1 at the
    best threshold of a 0.05 grid (optimistic: chosen on the same rows), step AUC) and on all rows."""
    from reasonloop.evaluate.process import best_threshold_f1, evaluate_step_scores
    from reasonloop.models.reward_model import RewardModel

    model = RewardModel.from_pretrained(model_dir, device="cpu")
    out = {}
    for name, rows in (("", [r for r in truth if r.get("source") == "policy"]), ("all_", truth)):
        scores = model.score_batch([r["prompt"] for r in rows], [r["completions"] for r in rows])
        errors = [r["true_first_error"] for r in rows]
        m = evaluate_step_scores(scores, errors, threshold)
        best_t, best = best_threshold_f1(scores, errors)
        out.update({f"{name}{k}": m[k] for k in ("f1", "acc_error", "acc_correct", "step_auc")})
        out.update({f"{name}best_threshold": best_t, f"{name}best_f1": best["f1"]})
    return out


def train_prms(args, rows_dir: Path, train_dir: Path, out: Path) -> list[dict]:
    """PRMs on the labels of the policy's train-split samples, scored on held-out test-split samples."""
    truth = read_step_rows(rows_dir / "ground_truth.jsonl")
    held_out = [r for r in truth if r.get("source") == "policy"]
    write_jsonl(out / "eval_policy.jsonl", held_out)
    keep = [v.strip() for v in args.variants.split(";") if v.strip()]
    results = []
    for i, (name, (source, kind, targets, hnc)) in enumerate(prm_variants(args.n).items()):
        if keep and name not in keep:
            continue
        rows = [r for r in read_step_rows(train_dir / source) if r.get("source") in args.train_sources.split(",")]
        if hnc:
            rows = rows + hnc_augment(rows, 1.0, random.Random(0))
        data = out / f"train_{i}.jsonl"
        write_jsonl(data, rows)
        cfg = PRMConfig(backbone=args.policy, data=str(data), eval_data=str(out / "eval_policy.jsonl"), kind=kind,
                        targets=targets, epochs=args.epochs, batch_size=args.batch_size, output_dir=str(out),
                        run_name=f"prm_{i}", device="cpu", resume=True, seed=args.seed)
        cfg.optim.lr = args.lr
        summary = train_prm(cfg)
        results.append({"name": name, "dir": summary["model"], "rows": len(rows), **score_prm(summary["model"], truth),
                        "loss_last": summary["loss_last"], "train_seconds": summary["train_seconds"]})
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="", help="label_cost --out DIR of the label-quality run (test split)")
    ap.add_argument("--train-rows", default="", help="label_cost --out DIR on the train split: PRM training labels")
    ap.add_argument("--train-sources", default="policy", help="row sources to train on (policy,corrupt,reference)")
    ap.add_argument("--policy", required=True, help="backbone of every reward model")
    ap.add_argument("--out", default="runs/prm_results")
    ap.add_argument("--n", type=int, default=8, help="which N's labels train the PRMs")
    ap.add_argument("--epochs", type=float, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="", help="';'-separated variant names to train (default: all)")
    ap.add_argument("--score", default="", help="score already trained PRMs instead: 'name=DIR;name=DIR'")
    ap.add_argument("--best-to", default="", help="copy the PRM with the best held-out step AUC here")
    ap.add_argument("--plot", default="docs/img/prm_label_quality.png")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows_dir = Path(args.rows)
    tables = {"all solutions": label_quality(rows_dir), "policy samples only": label_quality(rows_dir, "policy")}
    plot(tables, Path(args.plot))
    text = []
    for title, table in tables.items():
        text += [f"## label quality: {title}\n", *markdown(table), ""]
    (out / "label_quality.json").write_text(json.dumps(tables, indent=1) + "\n")
    print("\n".join(text))
    if args.train_rows or args.score:
        if args.score:  # already trained models: name=dir;name=dir
            truth = read_step_rows(rows_dir / "ground_truth.jsonl")
            results = []
            for item in (x for x in args.score.split(";") if x.strip()):
                name, _, model_dir = item.rpartition("=")  # names may hold "=" (N=8), dirs do not
                row = json.loads((Path(model_dir).parent / "summary.json").read_text())
                results.append({"name": name.strip(), "dir": model_dir.strip(), "rows": row["rows"],
                                **score_prm(model_dir.strip(), truth), "loss_last": row["loss_last"]})
                print(json.dumps(results[-1]), flush=True)
        else:
            results = train_prms(args, rows_dir, Path(args.train_rows), out)
        lines = [("| reward model (training labels) | train rows | step AUC | F1 @0.5 | acc (erroneous) | acc (correct) | "
                  "F1 @best τ (τ) | step AUC (all) | F1 @0.5 (all) | train loss (last 10) |"),
                 "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['rows']} | {r['step_auc']:.3f} | {r['f1']:.3f} | {r['acc_error']:.3f} | "
                  f"{r['acc_correct']:.3f} | {r['best_f1']:.3f} ({r['best_threshold']:.2f}) | {r['all_step_auc']:.3f} | "
                  f"{r['all_f1']:.3f} | {r['loss_last']:.3f} |" for r in results]
        text += ["## trained reward models (held-out policy samples; 'all' adds corrupted + reference)\n", *lines, ""]
        print("\n".join(lines))
        (out / "prm_results.json").write_text(json.dumps(results, indent=1) + "\n")
        if args.best_to and results:
            best = max(results, key=lambda r: r["step_auc"])
            shutil.copytree(best["dir"], args.best_to, dirs_exist_ok=True)
            print(f"best PRM ({best['name']}, step AUC {best['step_auc']:.3f}) copied to {args.best_to}")
    (out / "tables.md").write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
