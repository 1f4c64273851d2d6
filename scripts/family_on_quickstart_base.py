"""Table and plot of the self-training family (and DPO/RPO) run from the quickstart's base.

    python scripts/family_on_quickstart_base.py RUNS_DIR [--png docs/img/family_quickstart_base.png]

RUNS_DIR holds one run directory per method (rft, restem, star, bstar, dpo, rpo), each with the
metrics.jsonl that `reasonloop selftrain` / `reasonloop dpo` write. Prints a markdown table of
held-out greedy accuracy per iteration, with completion tokens generated and wall seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METHODS = {"rft": "RFT (continue)", "restem": "ReST-EM (from base)", "star": "STaR (rationalization)",
           "bstar": "B-STaR (adaptive T, k)", "dpo": "DPO (on-policy pairs)", "rpo": "RPO (DPO + SFT term)"}


def load(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "eval/greedy_accuracy" in r and "iteration" in r]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", type=Path)
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    curves = {}
    print("| method | it 0 | it 1 | it 2 | it 3 | tokens generated | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, label in METHODS.items():
        if not (args.runs / name / "metrics.jsonl").exists():
            continue
        rows = load(args.runs / name)
        acc = {r["iteration"]: r["eval/greedy_accuracy"] for r in rows}
        if 0 not in acc and rows:  # dpo logs no iteration-0 row; the base is the same as selftrain's
            acc[0] = None
        tokens = sum(r.get("tokens_generated", 0) for r in rows)
        seconds = sum(r.get("time/iteration", 0.0) for r in rows)
        cells = [f"{acc[i]:.3f}" if acc.get(i) is not None else "" for i in range(4)]
        print(f"| {label} | " + " | ".join(cells) + f" | {tokens} | {seconds:.0f} |")
        curves[label] = sorted((i, a) for i, a in acc.items() if a is not None)
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for label, points in curves.items():
            ax.plot([i for i, _ in points], [a for _, a in points], marker="o", label=label)
        ax.set_xlabel("iteration")
        ax.set_ylabel("held-out greedy accuracy")
        ax.set_title("From the quickstart base (additions, 2-3 ops)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        args.png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.png, dpi=120, bbox_inches="tight")


if __name__ == "__main__":
    main()
