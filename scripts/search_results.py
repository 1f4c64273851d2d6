"""Turn `reasonloop eval` grid runs into the tables and figures of docs/search.md.

    python scripts/search_results.py runs/search_grid [runs/search_prm ...] --img docs/img/search

Prints one markdown table per task x model (all runs merged), sorted by plot line then
tokens, and renders one accuracy-vs-tokens PNG of the merged cells to `<img>_<n>.png`.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from reasonloop.evaluate.report import plot_accuracy_vs_tokens
from reasonloop.store.atomic import atomic_write_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="grid run directories (each holds results.json)")
    parser.add_argument("--img", default="", help="write plots to <img>_<n>.png")
    args = parser.parse_args()
    cells = []
    for run in args.runs:
        path = Path(run) / "results.json"
        if not path.exists():
            raise SystemExit(f"{path}: no results.json (is this a finished `reasonloop eval` grid run?)")
        cells += json.loads(path.read_text())["cells"]
    groups = defaultdict(list)
    for c in cells:
        groups[(c["task"], c["model"])].append(c)
    for n, ((task, model), rows) in enumerate(groups.items()):
        print(f"\n### {task} — {Path(model).name} ({rows[0]['num_problems']} problems)\n")
        print("| strategy | scorer | options | accuracy ± 95% CI | Wilson 95% | tokens/problem | model calls | "
              "scorer calls | s/problem |")
        print("|---|---|---|---|---|---|---|---|---|")
        for c in sorted(rows, key=lambda c: (c["line"], c["tokens_per_problem"])):
            lo, hi = c["accuracy_wilson95"]
            opts = ", ".join(f"{k}={v}" for k, v in c["options"].items()) or "-"
            print(f"| {c['strategy']} | {c['scorer']} | {opts} | {c['accuracy']:.3f} ± {c['accuracy_ci95']:.3f} | "
                  f"[{lo:.2f}, {hi:.2f}] | {c['tokens_per_problem']:.0f} | {c['model_calls_per_problem']:.1f} | "
                  f"{c['scorer_calls_per_problem']:.1f} | {c.get('seconds_per_problem', 0):.2f} |")
        if args.img:
            out = Path(f"{args.img}_{n}.png")
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out, plot_accuracy_vs_tokens(rows, f"{task} — accuracy vs tokens"))
            print(f"\n![accuracy vs tokens]({out.name})")


if __name__ == "__main__":
    main()
