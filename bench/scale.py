"""Scale-out on one machine: rollout workers on Ray, and asynchronous against synchronous GRPO.

    OMP_NUM_THREADS=1 .venv/bin/python bench/scale.py                    # builds a small base (minutes)
    .venv/bin/python bench/scale.py --base runs/quickstart/pretrain/final

1. Rollout throughput: the same `RolloutPool.generate` call (`--prompts` prompts x 8 samples,
   temperature 1, up to `--max-new-tokens` tokens) on 2 workers x 1 torch thread against 1 worker x
   1 thread. Both pools live in one local Ray for the whole run and are timed alternately `--reps`
   times after a warm-up call each; tokens/s = completion tokens / wall seconds of the call, medians
   reported. Both draw the same samples (same seed, sharded by prompt index), so the token counts
   are equal. The default call (128 prompts x 8 samples x up to 64 tokens, about a second on one
   worker) is large enough that a call's fixed costs (Ray's task dispatch, pickling prompts and
   samples, the first decode step) are small beside the decoding itself; at the old default of
   32 x 8 x 48 they were not, and the 2-worker ratio measured low (docs/scaling.md has both).
   Goal (issue #17): >= 1.7x.
2. GRPO seconds per step, `max_staleness=1` (step t+1's rollouts drawn while step t trains;
   `old_logprobs=recompute`, token-level truncated IS) against `max_staleness=0` (synchronous,
   pi_old = the sampler's log-probs, the cheaper update), both on the same placement: `--grpo-workers`
   rollout workers (1 CPU, 1 torch thread each) and a trainer with `--trainer-threads` torch threads.
   The default, 1 + 1, gives rollouts one core and the trainer the other, as rollout and trainer GPUs
   are separate on a cluster; with 2 workers + a 2-thread trainer (colocated) every stage already
   time-shares both cores in the synchronous run, and there is no idle stage for overlap to fill.
   Same base, same workload, `--grpo-steps` steps each, and held-out greedy accuracy
   (`--eval-problems` test problems) after those equal steps (a run is deterministic given its seed, so
   every rep of a mode reports the same accuracy). Each mode runs `--grpo-reps` times, alternated
   (sync, async, async, sync), and the medians of the runs' median seconds per step are reported, so
   load that comes and goes during the bench falls on both modes. Goal: >= 1.3x.
   The workload (16 prompts x 8 samples x up to 64 tokens, micro-batches of 32 rows) makes sampling
   and the update both substantial and about equal on one core each, which is where a pipeline pays
   (sync = sampling + update; async = the longer of sampling and update + pi_old recompute). The old
   8 x 8 x 48 with micro-batches of 8 had ~0.1 s of sampling on 2 workers beside a longer update, so
   overlap had little to hide (docs/scaling.md: the profile).

LAST line of stdout: one JSON object {metric, ours, peer, ratio, ...}; `ours`/`peer` are the 2-worker
and 1-worker rollout tokens/s (ratio > 1: scaling out helps); the GRPO figures are extra keys.
The machine this was measured on is shared: say so when quoting a number (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from grpo_vs_trl import TASK_OPTIONS, build_base

from reasonloop.distributed.cluster import ClusterConfig, ray_session
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.sampler import SamplingParams


def rollout_throughput(base: Path, args) -> dict:
    from reasonloop.distributed.workers import RolloutPool
    from reasonloop.tasks.spec import TaskSpec

    model = ModelConfig(path=str(base), device="cpu")
    task = TaskSpec("arithmetic", dict(TASK_OPTIONS)).build(split="train", size=args.prompts, seed=0)
    prompts = [p.prompt for p in task]
    params = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    cluster = ClusterConfig(workers=2, cpus_per_worker=1, threads_per_worker=1, timeout_s=1800)
    pools = {1: RolloutPool(model, cluster, count=1), 2: RolloutPool(model, cluster, count=2)}
    rates: dict[int, list[float]] = {1: [], 2: []}
    tokens = {}
    try:
        for pool in pools.values():
            pool.generate(prompts[:4], 8, params)  # warm-up: model loaded, first call paid
        for rep in range(args.reps):
            for n in (1, 2) if rep % 2 == 0 else (2, 1):
                start = time.perf_counter()
                groups = pools[n].generate(prompts, 8, params)
                seconds = time.perf_counter() - start
                tokens[n] = sum(s.num_tokens for g in groups for s in g)
                rates[n].append(tokens[n] / seconds)
                print(f"rollout rep {rep}: {n} worker(s) {rates[n][-1]:.0f} tok/s ({tokens[n]} tokens, "
                      f"{seconds:.2f} s)", flush=True)
    finally:
        for pool in pools.values():
            pool.close()
    assert tokens[1] == tokens[2], "the two pools drew different samples"
    return {"one_worker": statistics.median(rates[1]), "two_workers": statistics.median(rates[2]),
            "tokens_per_call": tokens[1], "reps": args.reps}


def grpo_run(base: Path, args, out: Path, staleness: int, workers: int, threads: int, name: str) -> dict:
    import torch

    from reasonloop.algorithms.grpo import GRPOConfig, main
    from reasonloop.config import load_config
    from reasonloop.distributed.commands import run, with_cluster

    cls = with_cluster(GRPOConfig)  # what `reasonloop grpo cluster.workers=1 ...` builds
    overrides = [f"model.path={base}", "model.device=cpu", f"task.options={json.dumps(TASK_OPTIONS)}",
                 f"steps={args.grpo_steps}", f"prompts_per_step={args.grpo_prompts}", "samples_per_prompt=8",
                 f"sampling.max_new_tokens={args.grpo_max_new_tokens}", f"micro_batch_size={args.grpo_micro_batch}",
                 "optim.lr=1e-4", "save_every=0", f"eval_problems={args.eval_problems}", "eval_max_new_tokens=64",
                 f"output_dir={out}", f"run_name={name}", f"cluster.workers={workers}", "cluster.cpus_per_worker=1",
                 "cluster.threads_per_worker=1", "cluster.timeout_s=1800", f"max_staleness={staleness}"]
    if staleness:
        overrides += ["old_logprobs=recompute", "offpolicy.mode=token_tis"]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # the trainer's share of the cores
    try:
        summary = run(main, load_config(cls, None, overrides))
    finally:
        torch.set_num_threads(before)
    rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "time/step" in r][1:]  # step 1 pays the workers' first call
    return {"seconds_per_step": statistics.median(r["time/step"] for r in steps),
            "wait_per_step": statistics.median(r["time/sample_wait"] for r in steps),
            "train_per_step": statistics.median(r.get("time/train", 0.0) for r in steps),
            "accuracy": summary["final_accuracy"], "base_accuracy": summary["base_accuracy"],
            "mismatch_kl_mean": statistics.mean(r.get("offpolicy/mismatch_kl", 0.0) for r in steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="pretrained model dir (default: build one here)")
    parser.add_argument("--pretrain-examples", type=int, default=3000)
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--grpo-steps", type=int, default=8, help="0 skips the GRPO part")
    parser.add_argument("--grpo-reps", type=int, default=2, help="runs of each GRPO mode, alternated")
    parser.add_argument("--grpo-prompts", type=int, default=16)
    parser.add_argument("--grpo-max-new-tokens", type=int, default=64)
    parser.add_argument("--grpo-micro-batch", type=int, default=32)
    parser.add_argument("--grpo-workers", type=int, default=1, help="rollout workers in both GRPO modes")
    parser.add_argument("--trainer-threads", type=int, default=1, help="the trainer's torch threads, both modes")
    parser.add_argument("--eval-problems", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("REASONLOOP_QUIET", "1")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    base = args.base or build_base(out / "base", args.pretrain_examples)
    load = os.getloadavg()
    with ray_session(ClusterConfig(workers=3)):  # 1 + 2 rollout workers, one CPU each
        rollout = rollout_throughput(base, args)
    result = {"metric": "rollout_tokens_per_s_2_workers_vs_1", "ours": round(rollout["two_workers"], 1),
              "peer": round(rollout["one_worker"], 1), "ratio": round(rollout["two_workers"] / rollout["one_worker"], 3),
              "goal": 1.7, "tokens_per_call": rollout["tokens_per_call"], "reps": args.reps}
    if args.grpo_steps:
        runs: dict[int, list[dict]] = {0: [], 1: []}
        with ray_session(ClusterConfig(workers=args.grpo_workers)):
            for rep in range(args.grpo_reps):  # sync, async, async, sync, ...: load that drifts hits both alike
                for staleness in (0, 1) if rep % 2 == 0 else (1, 0):
                    runs[staleness].append(grpo_run(base, args, out, staleness, args.grpo_workers,
                                                    args.trainer_threads, f"staleness{staleness}_rep{rep}"))
        sync, lagged = ({k: statistics.median(r[k] for r in runs[s]) if k.endswith("_per_step") else runs[s][0][k]
                         for k in runs[s][0]} for s in (0, 1))
        result.update({
            "grpo_steps": args.grpo_steps, "grpo_reps": args.grpo_reps,
            "grpo_workload": f"{args.grpo_prompts}x8x{args.grpo_max_new_tokens} tokens, micro-batch "
                             f"{args.grpo_micro_batch}; {args.grpo_workers} worker(s) + trainer x "
                             f"{args.trainer_threads} thread(s)",
            "grpo_sync_s_per_step": round(sync["seconds_per_step"], 3),
            "grpo_async1_s_per_step": round(lagged["seconds_per_step"], 3),
            "grpo_async_speedup": round(sync["seconds_per_step"] / lagged["seconds_per_step"], 3),
            "grpo_async_goal": 1.3,
            "grpo_sync_wait_s": round(sync["wait_per_step"], 3), "grpo_sync_train_s": round(sync["train_per_step"], 3),
            "grpo_async1_wait_s": round(lagged["wait_per_step"], 3),
            "grpo_async1_train_s": round(lagged["train_per_step"], 3),
            "grpo_sync_accuracy": sync["accuracy"], "grpo_async1_accuracy": lagged["accuracy"],
            "grpo_base_accuracy": sync["base_accuracy"], "eval_problems": args.eval_problems,
            "grpo_async1_mismatch_kl_mean": round(lagged["mismatch_kl_mean"], 6),
        })
    result["load_avg_start"] = [round(x, 2) for x in load]
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
