"""Reproduce docs/selftrain.md's results: base vs RFT vs STaR vs B-STaR vs partial vs RPO (DPO+NLL).

    python scripts/selftrain_results.py --run     # pretrain two tiny bases, run every variant (CPU: ~1 h when shared)
    python scripts/selftrain_results.py           # only rebuild the table and docs/img/selftrain.png from runs/st

Every command it runs is printed first, so each number in the table has its command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path("runs/st")
TASKS = {
    "arithmetic": ("{max_ops: 3}", "{max_ops: 2}", "num_examples=3000 train.epochs=2 train.batch_size=32 "
                   "train.micro_batch_size=32 train.optim.lr=2e-3 train.optim.warmup_steps=10"),
    "linear_equation": ("{max_coefficient: 5, max_solution: 10}", "{max_coefficient: 5, max_solution: 10}",
                        "num_examples=1200 train.epochs=2 train.batch_size=16 train.micro_batch_size=16 "
                        "train.optim.lr=3e-3 train.optim.warmup_steps=10"),
}
VARIANTS = {  # name -> (command, config)
    "rft": ("selftrain", "configs/selftrain/rft_tiny_cpu.yaml"),
    "star": ("selftrain", "configs/selftrain/star_tiny_cpu.yaml"),
    "bstar": ("selftrain", "configs/selftrain/bstar_tiny_cpu.yaml"),
    "partial": ("selftrain", "configs/selftrain/partial_tiny_cpu.yaml"),
    "rpo": ("dpo", "configs/dpo/rpo_tiny_cpu.yaml"),
}
LABELS = {"rft": "RFT (ReST-EM data, continued)", "star": "STaR (+rationalization)", "bstar": "B-STaR (adaptive T, k)",
          "partial": "RFT + verified prefixes", "rpo": "iterative RPO (DPO + NLL)"}


def commands(task: str) -> list[list[str]]:
    pre_opts, opts, pre_train = TASKS[task]
    rl = [sys.executable, "-m", "reasonloop"]
    cmds = [rl + ["init-model", f"{ROOT}/init_{task}", "hidden_size=128", "intermediate_size=384", "num_layers=4"],
            rl + ["pretrain", f"model.path={ROOT}/init_{task}", f"task.name={task}", f"task.options={pre_opts}",
                  f"output_dir={ROOT}", f"run_name=pre_{task}"] + pre_train.split()]
    for v, (cmd, config) in VARIANTS.items():
        cmds.append(rl + [cmd, "--config", config, f"model.path={ROOT}/pre_{task}/final", f"task.name={task}",
                          f"task.options={opts}", f"run_name={v}_{task}"])
    return cmds


def rows(task: str, variant: str) -> list[dict]:
    path = ROOT / f"{variant}_{task}" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def table(task: str) -> str:
    out = [f"| {task} | it 0 (base) | it 1 | it 2 | it 3 | tokens generated | wall s (sample+train+eval) | kept/it |",
           "|---|---|---|---|---|---|---|---|"]
    for v in VARIANTS:
        r = rows(task, v)
        if not r:
            continue
        acc = [f"{x['eval/greedy_accuracy']:.3f} ± {x['eval/ci95']:.3f}" for x in r if "eval/greedy_accuracy" in x]
        tokens = sum(x.get("tokens_generated", 0) for x in r)
        wall = sum(x.get("time/iteration", 0) for x in r)
        kept = "/".join(str(x.get("kept", x.get("pairs", ""))) for x in r[1:])
        out.append(f"| {LABELS[v]} | " + " | ".join(acc + [""] * (4 - len(acc))) + f" | {tokens} | {wall:.0f} | {kept} |")
    return "\n".join(out)


def plot(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(11, 4))
    for ax, task in zip(axes, TASKS):
        for v in VARIANTS:
            r = [x for x in rows(task, v) if "eval/greedy_accuracy" in x]
            if r:
                ax.errorbar([x["iteration"] for x in r], [x["eval/greedy_accuracy"] for x in r],
                            yerr=[x["eval/ci95"] for x in r], label=LABELS[v], marker="o", capsize=3)
        ax.set_title(f"{task} (200 held-out problems, greedy)")
        ax.set_xlabel("iteration")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", action="store_true", help="run the experiments (otherwise only summarise)")
    args = parser.parse_args()
    if args.run:
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        for task in TASKS:
            for cmd in commands(task):
                print("$", " ".join(cmd), flush=True)
                subprocess.run(["nice", "-n", "10", *cmd], check=True, env=env)
    for task in TASKS:
        print(table(task) + "\n")
    plot(Path("docs/img/selftrain.png"))
    print("plot: docs/img/selftrain.png")


if __name__ == "__main__":
    main()
