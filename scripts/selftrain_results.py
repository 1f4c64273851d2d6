"""Reproduce docs/selftrain.md's results on a task: pretrain a tiny flawed base, run each method, tabulate.

    python scripts/selftrain_results.py --task linear_equation --run    # base, then RFT / STaR / B-STaR / DPO
    python scripts/selftrain_results.py --task arithmetic_mixed --run   # keep=answer vs keep=steps on +/- chains
    python scripts/selftrain_results.py --task linear_equation --run --seeds 0 1 2   # three self-training seeds
    python scripts/selftrain_results.py --task linear_equation          # only rebuild the table and the plot

`--run` prints every command before running it (nice -n 10, OMP_NUM_THREADS=1, one after the
other), skips a step whose output exists (a killed run is resumed with `resume=true`), and
records each command's wall seconds in ROOT/walltime.json. Without `--run` it reads the run
directories under ROOT and prints the markdown table; the plot goes to docs/img/selftrain_<task>.png.
The base accuracy (iteration 0) is measured by every method's own run on the same 200 problems.
A seed (`seed=` of the run: training problems, sampling, and the 200 held-out problems, so the
iteration-0 accuracy differs by seed too) varies the self-training only; every seed starts from the
same pretrained base. With several seeds the table shows the mean and
[min, max] over the seeds found.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from reasonloop.store.atomic import atomic_write_json

ROOT = Path("runs/st2")
FAMILY = "configs/selftrain/family_cpu.yaml"
PRETRAIN = ["train.batch_size=32", "train.micro_batch_size=32", "train.optim.lr=1e-3", "train.optim.warmup_steps=20",
            "train.optim.min_lr_ratio=0.05"]
"""the quickstart's pretraining optimiser: at lr >= 3e-3 this 0.87 M model never learns to copy digits"""
DPO = ["iterations=3", "problems_per_iteration=384", "samples_per_prompt=4", "pairs_per_problem=2", "beta=0.1",
       "train.epochs=2", "train.batch_size=32", "train.micro_batch_size=32", "train.optim.lr=2e-4",
       "train.optim.schedule=constant", "eval_problems=200", f"output_dir={ROOT}"]
"""DPO with the sampling budget of configs/selftrain/family_cpu.yaml"""


@dataclass(frozen=True)
class Variant:
    label: str
    command: str
    """"selftrain" or "dpo\""""
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Experiment:
    task: str
    options: str
    pretrain: tuple[str, ...]
    max_new_tokens: int
    variants: dict[str, Variant]
    title: str


FAMILY_VARIANTS = {
    "rft": Variant("RFT (continue)", "selftrain"),
    "rft_steps": Variant("RFT, keep=steps", "selftrain", ("keep=steps",)),
    "star": Variant("STaR (rationalization)", "selftrain", ("rationalize=true",)),
    "bstar": Variant("B-STaR (adaptive T, k)", "selftrain", ("adapt=bstar",)),
    "dpo": Variant("DPO (on-policy pairs, beta 0.1)", "dpo", ("sft_weight=0.0",)),
    "rpo": Variant("RPO (DPO + SFT term)", "dpo", ("sft_weight=1.0",)),
}
EXPERIMENTS = {
    "linear_equation": Experiment(
        task="linear_equation", options="{max_coefficient: 5, max_solution: 10}",
        pretrain=("num_examples=24000", "flaw=slip", "wrong_step_fraction=0.2", *PRETRAIN), max_new_tokens=128,
        variants=FAMILY_VARIANTS, title="linear equations (|coefficients| <= 5, |x| <= 10)"),
    "arithmetic_mixed": Experiment(
        task="arithmetic", options="{min_ops: 2, max_ops: 3, ops: ['+', '-']}",
        pretrain=("num_examples=40000", "flaw=misconception", "wrong_step_fraction=0.6", *PRETRAIN),
        max_new_tokens=96,
        variants={"keep_answer": Variant("RFT, keep=answer (outcome verified)", "selftrain", ("keep=answer",)),
                  "keep_steps": Variant("RFT, keep=steps (every step verified)", "selftrain", ("keep=steps",))},
        title="+/- chains, 2-3 operations (misconception base)"),
}


def run_name(name: str, variant: str, seed: int) -> str:
    return f"{name}_{variant}" + (f"_seed{seed}" if seed else "")


def commands(name: str, variants: list[str], seeds: tuple[int, ...] = (0,)) -> list[tuple[str, str, list[str]]]:
    """(run name, output that marks the step done, command) for the base and each variant."""
    e = EXPERIMENTS[name]
    rl = [sys.executable, "-m", "reasonloop"]
    task = [f"task.name={e.task}", f"task.options={e.options}"]
    base = f"{ROOT}/pre_{name}/final"
    out = [(f"init_{name}", f"{ROOT}/init_{name}", rl + ["init-model", f"{ROOT}/init_{name}", "hidden_size=128",
                                         "intermediate_size=384", "num_layers=4"]),
           (f"pre_{name}", base, rl + ["pretrain", f"model.path={ROOT}/init_{name}", *task, f"output_dir={ROOT}",
                        f"run_name=pre_{name}", *e.pretrain])]
    for seed in seeds:
        for v in variants:
            var, run = e.variants[v], run_name(name, v, seed)
            tokens = [f"sampling.max_new_tokens={e.max_new_tokens}", f"eval_max_new_tokens={e.max_new_tokens}"]
            if var.command == "selftrain":
                cmd = rl + ["selftrain", "--config", FAMILY, f"model.path={base}", *task, *tokens]
            else:
                cmd = rl + ["dpo", f"model.path={base}", "model.use_chat_template=false", *task, *tokens, *DPO]
            cmd += list(var.args) + ([f"seed={seed}"] if seed else []) + [f"run_name={run}"]
            out.append((run, f"{ROOT}/{run}/summary.json", cmd))
    return out


def run_all(name: str, variants: list[str], seeds: tuple[int, ...]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    walltime_path = ROOT / "walltime.json"
    for run, done, cmd in commands(name, variants, seeds):
        print("$", shlex.join(cmd), flush=True)
        if Path(done).exists():
            print(f"  (done: {done} exists)")
            continue
        resume = ["resume=true"] if cmd[3] in ("selftrain", "dpo") and (ROOT / run).exists() else []
        t0 = time.perf_counter()
        subprocess.run(["nice", "-n", "10", *cmd, *resume], check=True, env=env)
        walltime = json.loads(walltime_path.read_text()) if walltime_path.exists() else {}
        walltime[run] = time.perf_counter() - t0  # of this (last) process only, when resumed
        atomic_write_json(walltime_path, walltime)


# --- summary ---------------------------------------------------------------------------------


def rows(name: str, variant: str, seed: int = 0) -> list[dict]:
    path = ROOT / run_name(name, variant, seed) / "metrics.jsonl"
    if not path.exists():
        return []
    return [r for r in map(json.loads, filter(str.strip, path.read_text().splitlines())) if "iteration" in r]


def table(name: str, seeds: tuple[int, ...] = (0,)) -> str:
    e = EXPERIMENTS[name]
    walltime = json.loads((ROOT / "walltime.json").read_text()) if (ROOT / "walltime.json").exists() else {}
    out = ["| method | it 0 (base) | it 1 | it 2 | it 3 | completion tokens generated | loop s (logged) | wall s (command) |",
           "|---|---|---|---|---|---|---|---|"]
    for v, var in e.variants.items():
        runs = {seed: r for seed in seeds if (r := rows(name, v, seed))}
        if not runs:
            continue
        accs = {i: [x["eval/greedy_accuracy"] for r in runs.values() for x in r
                    if x["iteration"] == i and "eval/greedy_accuracy" in x] for i in range(4)}
        ci = {x["iteration"]: x["eval/ci95"] for x in next(iter(runs.values())) if "eval/ci95" in x}
        cells = [(f"{a[0]:.3f} ± {ci[i]:.3f}" if len(a) == 1 else f"{mean(a):.3f} [{min(a):.3f}, {max(a):.3f}]")
                 if a else "" for i, a in accs.items()]
        tokens = mean([sum(x.get("tokens_generated", 0) for x in r) for r in runs.values()])
        loop = mean([sum(x.get("time/iteration", 0.0) for x in r) for r in runs.values()])
        walls = [walltime[w] for seed in runs if (w := run_name(name, v, seed)) in walltime]
        label = var.label + (f" ({len(runs)} seeds)" if len(runs) > 1 else "")
        out.append(f"| {label} | " + " | ".join(cells)
                   + f" | {tokens:,.0f} | {loop:.0f} | {f'{mean(walls):.0f}' if walls else ''} |")
    if any(v.startswith("keep_") for v in e.variants):
        runs_of = {v: [r for seed in seeds if (r := rows(name, v, seed))] for v in e.variants}
        n = max(len(r) for r in runs_of.values())
        out += ["", ("| method | iteration | sample accuracy | verified-correct samples with all steps right "
                     "| kept | kept rationales with all steps right | held-out accuracy |"), "|---|---|---|---|---|---|---|"]
        for v, var in e.variants.items():
            for i in (1, 2, 3):
                its = [x for r in runs_of[v] for x in r if x["iteration"] == i]
                if not its:
                    continue
                cell = {k: mean(x[k] for x in its) for k in ("sample_accuracy", "exploit/correct_step_precision", "kept",
                                                             "exploit/kept_step_precision", "eval/greedy_accuracy")}
                out.append(f"| {var.label} | {i} | {cell['sample_accuracy']:.3f} | "
                           f"{cell['exploit/correct_step_precision']:.3f} | {cell['kept']:.0f} | "
                           f"{cell['exploit/kept_step_precision']:.3f} | {cell['eval/greedy_accuracy']:.3f} |")
        if n > 1:
            out.append(f"\n(means over {n} seeds)")
    return "\n".join(out)


def plot(name: str, path: Path, seeds: tuple[int, ...] = (0,)) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = EXPERIMENTS[name]
    keep = any(v.startswith("keep_") for v in e.variants)
    fig, axes = plt.subplots(1, 2 if keep else 1, figsize=(12 if keep else 7, 4.5), squeeze=False)
    for v, var in e.variants.items():
        runs = [r for seed in seeds if (r := [x for x in rows(name, v, seed) if "eval/greedy_accuracy" in x])]
        if not runs:
            continue
        r = runs[0]
        if len(runs) == 1:  # one seed: the 95% CI of its 200 problems
            axes[0][0].errorbar([x["iteration"] for x in r], [x["eval/greedy_accuracy"] for x in r],
                                yerr=[x["eval/ci95"] for x in r], label=var.label, marker="o", capsize=3)
        else:  # several seeds: their mean, and the band between the lowest and the highest
            its = sorted({x["iteration"] for run in runs for x in run})
            acc = [[x["eval/greedy_accuracy"] for run in runs for x in run if x["iteration"] == i] for i in its]
            line, = axes[0][0].plot(its, [mean(a) for a in acc], marker="o", label=f"{var.label} ({len(runs)} seeds)")
            axes[0][0].fill_between(its, [min(a) for a in acc], [max(a) for a in acc], color=line.get_color(),
                                    alpha=0.15)
        if keep:  # mean over seeds
            its = sorted({x["iteration"] for run in runs for x in run} - {0})
            precision = [mean(x["exploit/kept_step_precision"] for run in runs for x in run if x["iteration"] == i)
                         for i in its]
            axes[0][1].plot(its, precision, label=var.label, marker="o")
    spread = "± 95% CI" if len(seeds) == 1 else "one seed: ± 95% CI; several seeds: mean, min-max band"
    axes[0][0].set(title=f"{e.title}\nheld-out greedy accuracy, 200 problems\n({spread})", xlabel="iteration",
                   ylabel="accuracy")
    if keep:
        axes[0][1].set(title="kept rationales whose steps all verify" + ("" if len(seeds) == 1 else "\n(mean over seeds)"), xlabel="iteration", ylabel="fraction",
                       ylim=(0, 1.05))
    for ax in axes[0]:
        ax.set_xticks(range(4))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=sorted(EXPERIMENTS), required=True)
    parser.add_argument("--variants", nargs="*", help="which methods to run (default: all of the task's)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0], help="self-training seeds (default: 0)")
    parser.add_argument("--run", action="store_true", help="run the experiments (otherwise only summarise)")
    args = parser.parse_args()
    variants = args.variants or list(EXPERIMENTS[args.task].variants)
    unknown = set(variants) - set(EXPERIMENTS[args.task].variants)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)} for --task {args.task}; "
                     f"choose from {sorted(EXPERIMENTS[args.task].variants)}")
    if args.run:
        run_all(args.task, variants, tuple(args.seeds))
    print(table(args.task, tuple(args.seeds)))
    png = Path(f"docs/img/selftrain_{args.task}.png")
    plot(args.task, png, tuple(args.seeds))
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
