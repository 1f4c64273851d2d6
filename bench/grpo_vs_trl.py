"""reasonloop `grpo` vs TRL `GRPOTrainer` on the same tiny model, prompts and settings, in one run.

    .venv/bin/python bench/grpo_vs_trl.py --base runs/grpo_work/pretrain/final --steps 8

What is the same for both (and how):
- weights: both load `--base`, by default the quickstart's pretrained base built here exactly as
  `make quickstart` builds it (`QuickstartConfig`'s model, 40,000 pretraining examples with the
  carry misconception, its pretraining settings): a base at ~0.1 held-out accuracy that GRPO
  lifts to ~0.9 in 30 steps, so the comparison measures learning, not skipping (from the weaker
  6,000-example base used before, neither side improved and 96% of our groups had zero variance);
- prompts: problems 0..steps*P-1 of `arithmetic` (train split, seed 0, max_ops=3), in that
  order (`shuffle_dataset=False` for TRL; reasonloop draws exactly these from its cursor);
  the raw prompt text, no chat template, BOS added by the tokenizer in both
  (TRL: `processing_class(text=prompts)`; reasonloop: `encode_prompt`);
- P=8 prompts x G=8 completions per step, max completion length, temperature 1.0, no top-k/p;
- reward: the task's verifier (`task.verify`) in both (TRL through a wrapper on the `idx` column);
- objective: group-std advantages, PPO clip eps=0.2, token-mean loss over the batch (TRL's
  default `loss_type="dapo"`), beta=0 (no reference model), one iteration per batch;
- optimiser: AdamW, lr `--lr` constant, betas (0.9, 0.999), no weight decay, grad-clip 1.0;
- CPU settings from docs cpu-baselines §4: fp32 (`bf16=False`), `gradient_checkpointing=False`,
  `use_cpu=True`.

Cores: both get the whole machine, each at its best. TRL runs once per `--peer-threads`
entry (default 1 and 2 torch threads) and the faster is the peer figure. reasonloop runs
with `--threads` torch threads (default 1) and `overlap_sampling` (default on): sampling on
one core while the update runs on the other, one-step off-policy (`--no-overlap` gives the
synchronous loop).

Speed: median seconds per training step over the same `--steps` steps (TRL: a callback around
each optimizer step; reasonloop: `time/step` of its first `--steps` steps, which covers sampling,
rewards and the update, not evaluation; the median over all its steps is reported too).
Accuracy: held-out greedy accuracy (same evaluator for both: `evaluate_model` with the
TorchEngine, 100 test problems) at equal steps (reasonloop's checkpoint after `--steps` steps
against TRL's final model) and after equal wall time: TRL runs `--steps` steps, and reasonloop
runs until it has spent the training seconds of TRL's fastest run (`time_budget_s`). Skipped
rows: the share of reasonloop's rows with exactly zero loss (zero-variance groups) that it did not
run (`skip_zero_advantage`), over all its steps and over the first `--steps` (the steps TRL ran),
beside TRL's own share of zero-std groups (`frac_reward_zero_std`).

The two run one after the other in this process, TRL first, and the pair is repeated `--reps`
times (each from the base): on a shared machine the load drifts over minutes, and two single
runs measured 1.72x and 1.02x minutes apart. Speed is the median over every step of every rep,
accuracy the mean over reps; per-rep figures and the load averages are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
from pathlib import Path

from lib import trl_common

ROOT = Path(__file__).resolve().parents[1]
P, G = 8, 8


# the quickstart's task: a base pretrained on it (with the carry misconception) learns under RL
TASK_OPTIONS = {"min_ops": 2, "max_ops": 3, "ops": ["+"]}


def build_base(out: Path, num_examples: int) -> Path:
    """init-model + pretrain with the quickstart's settings (`QuickstartConfig`): its imperfect base reasoner."""
    from reasonloop.algorithms.pretrain import PretrainConfig
    from reasonloop.algorithms.pretrain import main as pretrain
    from reasonloop.models.policy import ModelConfig
    from reasonloop.models.tiny import TinyModelConfig, init_model
    from reasonloop.quickstart import QuickstartConfig

    qs = QuickstartConfig()
    assert qs.task.options == TASK_OPTIONS
    init = init_model(TinyModelConfig(**{**vars(qs.model), "path": str(out / "init")}))
    pretrain(PretrainConfig(model=ModelConfig(path=str(init)), task=qs.task, num_examples=num_examples,
                            wrong_step_fraction=qs.wrong_step_fraction, flaw=qs.flaw, train=qs.pretrain,
                            run_name="pretrain", output_dir=str(out), seed=qs.seed))
    return out / "pretrain" / "final"


def evaluate(path: Path, problems, task) -> float:
    from reasonloop.evaluate.accuracy import evaluate_model
    from reasonloop.models.policy import ModelConfig
    from reasonloop.rollout.engine import TorchEngine

    engine = TorchEngine.from_config(ModelConfig(path=str(path)))
    results, _ = evaluate_model(engine, task, problems, samples_per_prompt=0, temperature=1.0, max_new_tokens=64)
    return results["greedy_accuracy"]


def run_trl(base: Path, train_problems, task, args, out: Path, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from datasets import Dataset
    from trl import GRPOTrainer

    from reasonloop.models.policy import load_tokenizer

    by_idx = {i: p for i, p in enumerate(train_problems)}

    def correct(prompts, completions, idx, **kwargs):  # the same verifier reasonloop calls
        return [float(task.verify(by_idx[i], c)) for i, c in zip(idx, completions)]

    data = Dataset.from_list([{"prompt": p.prompt, "idx": i} for i, p in enumerate(train_problems)])
    times: list[float] = []
    out = out / f"trl_{threads}t"
    cfg = trl_common.grpo_config(out, steps=args.steps, rows_per_forward=P * G, accumulation=1, group=G,
                                 max_new_tokens=args.max_new_tokens, lr=args.lr)
    tok = load_tokenizer(base)
    tok.padding_side = "left"
    trainer = GRPOTrainer(model=trl_common.load_model(base), reward_funcs=correct, args=cfg, train_dataset=data,
                          processing_class=tok, callbacks=[trl_common.step_timer(times)])
    trainer.train()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    zero_std = [h["frac_reward_zero_std"] for h in trainer.state.log_history if "frac_reward_zero_std" in h]
    trainer.save_model(str(out / "final"))
    tok.save_pretrained(str(out / "final"))
    return {"step_seconds": times, "train_seconds": sum(times), "rewards": rewards, "final": out / "final",
            "threads": threads, "zero_std_frac": zero_std,
            "completion_length": [h.get("completions/mean_length") for h in trainer.state.log_history
                                  if "completions/mean_length" in h]}


def run_ours(base: Path, args, out: Path, budget: float) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from reasonloop.algorithms.common import OptimConfig
    from reasonloop.algorithms.grpo import GRPOConfig, main
    from reasonloop.models.policy import ModelConfig
    from reasonloop.rollout.sampler import SamplingParams
    from reasonloop.tasks.spec import TaskSpec

    cfg = GRPOConfig(
        model=ModelConfig(path=str(base)), task=TaskSpec("arithmetic", dict(TASK_OPTIONS)),
        steps=args.steps * 20, prompts_per_step=P, samples_per_prompt=G,
        sampling=SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens),
        advantage="grpo", clip="ppo", clip_eps_low=0.2, clip_eps_high=0.2, loss_agg="token_mean", kl_coef=0.0,
        optim=OptimConfig(lr=args.lr, schedule="constant", beta1=0.9, beta2=0.999, weight_decay=0.0, grad_clip=1.0),
        micro_batch_size=P * G, eval_problems=0, save_every=args.steps, keep_last=0, time_budget_s=budget,
        output_dir=str(out), run_name="ours", seed=0, skip_zero_advantage=args.skip_zero_advantage,
        share_prefix=args.share_prefix, overlap_sampling=args.overlap,
    )
    summary = main(cfg)
    rows = [json.loads(line) for line in (out / "ours" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "time/step" in r]
    return {"step_seconds": [r["time/step"] for r in steps], "train_seconds": summary["train_seconds"],
            "rewards": [r["reward/correct"] for r in steps], "steps": summary["steps"],
            "time_sample": [r["time/sample"] for r in steps], "time_train": [r.get("time/train", 0.0) for r in steps],
            "time_wait": [r["time/sample_wait"] for r in steps],
            "completion_length": [r["len/mean"] for r in steps],
            "zero_variance_frac": [r["groups/zero_variance_frac"] for r in steps],
            "rows_trained_frac": [r.get("policy/rows_trained_frac", 0.0) for r in steps],
            # the model after exactly as many steps as TRL ran: the equal-steps comparison
            "at_equal_steps": out / "ours" / "checkpoints" / f"step-{args.steps:06d}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, help="pretrained model dir (default: build one here)")
    parser.add_argument("--steps", type=int, default=8, help="TRL steps; reasonloop gets the same wall time")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--eval-problems", type=int, default=100)
    parser.add_argument("--skip-zero-advantage", action=argparse.BooleanOptionalAction, default=True,
                        help="reasonloop's default; --no-skip-zero-advantage runs every row like TRL does")
    parser.add_argument("--share-prefix", action=argparse.BooleanOptionalAction, default=True,
                        help="reasonloop's default; --no-share-prefix runs each row's prompt tokens, like TRL does")
    parser.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=True,
                        help="reasonloop's overlap_sampling (sampling on one core while the update runs on the other)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for reasonloop")
    parser.add_argument("--peer-threads", default="1,2",
                        help="torch thread counts TRL runs at, comma-separated; the fastest is the peer figure")
    parser.add_argument("--reps", type=int, default=3,
                        help="TRL-then-reasonloop repetitions (medians over all steps of all reps)")
    parser.add_argument("--pretrain-examples", type=int, default=40_000, help="the quickstart's 40,000")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_grpo_vs_trl")
    args = parser.parse_args()
    os.environ.setdefault("REASONLOOP_QUIET", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from reasonloop.utils import quiet_hf

    quiet_hf()
    import torch

    from reasonloop.tasks import make_task
    from reasonloop.tasks.spec import UNBOUNDED as TASK_SIZE

    for old in args.out.glob("rep*"):
        shutil.rmtree(old)
    args.out.mkdir(parents=True, exist_ok=True)
    built = args.out / "base" / "pretrain" / "final"
    base = args.base or (built if (built / "config.json").exists() else build_base(args.out / "base",
                                                                                   args.pretrain_examples))
    train_task = make_task("arithmetic", split="train", size=TASK_SIZE, seed=0, **TASK_OPTIONS)
    train_problems = [train_task[i] for i in range(args.steps * P)]  # what reasonloop's cursor draws first
    test_task = make_task("arithmetic", split="test", size=args.eval_problems, seed=0, **TASK_OPTIONS)
    test_problems = list(test_task)

    # TRL then reasonloop, `--reps` times: on a shared machine the load drifts over minutes, and
    # alternating the two keeps a drift from landing on one side only
    load, reps = [os.getloadavg()[0]], []
    peer_threads = [int(t) for t in args.peer_threads.split(",")]
    for rep in range(args.reps):
        out = args.out / f"rep{rep}"
        trl_runs = []
        for threads in peer_threads:
            trl_runs.append(run_trl(base, train_problems, train_task, args, out, threads))
            load.append(os.getloadavg()[0])
        trl = min(trl_runs, key=lambda r: statistics.median(r["step_seconds"]))  # TRL at its best thread count
        ours = run_ours(base, args, out, budget=trl["train_seconds"])
        load.append(os.getloadavg()[0])
        reps.append({"trl": trl, "ours": ours,
                     "trl_median_by_threads": {r["threads"]: round(statistics.median(r["step_seconds"]), 4)
                                               for r in trl_runs},
                     "acc": {"trl": evaluate(trl["final"], test_problems, test_task),
                             "ours": evaluate(out / "ours" / "final", test_problems, test_task)}})
        # equal steps: TRL's final model (it ran --steps) against our checkpoint after --steps steps
        # (absent only if reasonloop ran fewer steps than TRL in TRL's time)
        equal = ours["at_equal_steps"]
        reps[-1]["acc_equal_steps"] = {"trl": reps[-1]["acc"]["trl"], "ours": evaluate(equal, test_problems, test_task)
                                       if equal.exists() else None}
    torch.set_num_threads(args.threads)
    base_acc = evaluate(base, test_problems, test_task)
    # speed over the same steps TRL ran (the first --steps of each rep): later steps of a run that
    # keeps training for equal wall time get cheaper as its samples agree more (shared prefixes)
    ours_steps = [t for r in reps for t in r["ours"]["step_seconds"][: args.steps]]
    ours_all_steps = [t for r in reps for t in r["ours"]["step_seconds"]]
    trl_steps = [t for r in reps for t in r["trl"]["step_seconds"]]
    ours_s, trl_s = statistics.median(ours_steps), statistics.median(trl_steps)
    acc = {"base": base_acc, "trl": statistics.mean(r["acc"]["trl"] for r in reps),
           "ours": statistics.mean(r["acc"]["ours"] for r in reps)}
    for k, r in enumerate(reps):
        print(f"rep {k}: TRL {len(r['trl']['step_seconds'])} steps, median s/step by threads "
              f"{r['trl_median_by_threads']}, acc {r['acc']['trl']:.3f} | reasonloop "
              f"{r['ours']['steps']} steps, median {statistics.median(r['ours']['step_seconds'][: args.steps]):.3f} "
              f"s/step over the first {args.steps} ({statistics.median(r['ours']['step_seconds']):.3f} over all) "
              f"(sample+reward {statistics.median(r['ours']['time_sample']):.2f}, update "
              f"{statistics.median(r['ours']['time_train']):.2f}), acc {r['acc']['ours']:.3f} "
              f"(after {args.steps} steps: {r['acc_equal_steps']['ours']})")
    print(f"base greedy acc {base_acc:.3f}; load average before and after each run: {load}")
    print(json.dumps({
        "metric": "median_seconds_per_step", "ours": round(ours_s, 4), "peer": round(trl_s, 4),
        "ratio": round(trl_s / ours_s, 3), "peer_name": "trl.GRPOTrainer 1.16",
        "peer_median_by_threads": [r["trl_median_by_threads"] for r in reps],
        "ratio_per_rep": [round(statistics.median(r["trl"]["step_seconds"])
                                / statistics.median(r["ours"]["step_seconds"][: args.steps]), 3) for r in reps],
        "ours_median_all_steps": round(statistics.median(ours_all_steps), 4),
        "accuracy_equal_wall_time": {k: round(v, 4) for k, v in acc.items()},
        "accuracy_equal_steps": {"base": round(base_acc, 4),
                                 **{k: round(statistics.mean(r["acc_equal_steps"][k] for r in reps), 4)
                                    if all(r["acc_equal_steps"][k] is not None for r in reps) else None
                                    for k in ("trl", "ours")}},
        "accuracy_per_rep": [{k: round(v, 4) for k, v in r["acc"].items()} for r in reps],
        "steps_per_rep": [{"ours": r["ours"]["steps"], "trl": len(r["trl"]["step_seconds"])} for r in reps],
        "train_seconds_per_rep": [{"ours": round(r["ours"]["train_seconds"], 2),
                                   "trl": round(r["trl"]["train_seconds"], 2)} for r in reps],
        "mean_completion_len": {"ours": round(statistics.mean(x for r in reps for x in r["ours"]["completion_length"]), 2),
                                "trl": round(statistics.mean(x for r in reps for x in r["trl"]["completion_length"]), 2)
                                if all(r["trl"]["completion_length"] for r in reps) else None},
        # share of groups with identical rewards: their rows add exactly 0 to the loss, and reasonloop
        # does not run them (skip_zero_advantage); a learning run has fewer of them than a weak base
        "zero_variance_frac_ours": round(statistics.mean(x for r in reps for x in r["ours"]["zero_variance_frac"]), 3),
        "rows_trained_frac_ours": round(statistics.mean(x for r in reps for x in r["ours"]["rows_trained_frac"]), 3),
        "skipped_rows_frac_ours": round(1 - statistics.mean(x for r in reps for x in r["ours"]["rows_trained_frac"]), 3),
        # the same over the steps TRL ran (reasonloop's first --steps): a policy that has learned more
        # has more groups it always solves, so the share over all of a longer run is higher
        "skipped_rows_frac_ours_first_steps": round(
            1 - statistics.mean(x for r in reps for x in r["ours"]["rows_trained_frac"][: args.steps]), 3),
        "zero_std_frac_trl": round(statistics.mean(x for r in reps for x in r["trl"]["zero_std_frac"]), 3)
        if all(r["trl"]["zero_std_frac"] for r in reps) else None,
        "median_split_ours": {
            "sample_and_reward": round(statistics.median(x for r in reps for x in r["ours"]["time_sample"]), 3),
            "update": round(statistics.median(x for r in reps for x in r["ours"]["time_train"]), 3),
            "waiting_for_the_batch": round(statistics.median(x for r in reps for x in r["ours"]["time_wait"]), 3)},
        "settings": {"prompts_per_step": P, "group": G, "max_new_tokens": args.max_new_tokens, "lr": args.lr,
                     "threads": args.threads, "overlap_sampling": args.overlap, "peer_threads": peer_threads, "eval_problems": args.eval_problems, "reps": args.reps,
                     "skip_zero_advantage": args.skip_zero_advantage, "share_prefix": args.share_prefix},
        "loadavg": load,
    }))


if __name__ == "__main__":
    main()
