"""Plot GRPO runs' metrics.jsonl side by side: sampled accuracy (smoothed) and held-out greedy accuracy.

    .venv/bin/python scripts/grpo_curves.py runs/grpo_work/grpo runs/grpo_work/grpo_dynamic runs/grpo_work/drgrpo \
        --out docs/img/grpo_arithmetic.png

Prints, as its last line, a JSON object with each run's base and final held-out accuracy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smooth", type=int, default=5)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    summary = {}
    for run in args.runs:
        rows = read(run)
        steps = [r for r in rows if "reward/correct" in r]
        xs = [r["step"] for r in steps]
        ys = [r["reward/correct"] for r in steps]
        k = args.smooth
        smooth = [sum(ys[max(0, i - k + 1): i + 1]) / len(ys[max(0, i - k + 1): i + 1]) for i in range(len(ys))]
        ax1.plot(xs, smooth, label=run.name)
        evals = [(r["step"], r["eval/greedy_accuracy"]) for r in rows if "eval/greedy_accuracy" in r]
        ax2.plot([s for s, _ in evals], [a for _, a in evals], marker="o", label=run.name)
        summary[run.name] = {"base": evals[0][1], "final": evals[-1][1], "evals": evals,
                             "median_s_per_step": sorted(r["time/step"] for r in steps)[len(steps) // 2]}
    ax1.set(xlabel="step", ylabel=f"sampled accuracy ({args.smooth}-step mean)", title="training reward")
    ax2.set(xlabel="step", ylabel="held-out greedy accuracy", title="held-out greedy accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
