"""Multi-turn rollout throughput: KV caches kept across turns vs re-prefilling the history each turn.

    OMP_NUM_THREADS=1 .venv/bin/python bench/multiturn.py                 # CPU, ~2 min on a busy 2-core box
    .venv/bin/python bench/multiturn.py --size small --reps 3
    .venv/bin/python bench/multiturn.py --device cuda --size medium       # GPU

Workload: `--problems` prompts x `--samples` trajectories, `--turns` assistant turns each
(temperature 1.0, full distribution, up to `--turn-tokens` tokens a turn), and between turns
an observation of `--obs-chars` characters (a deterministic tool output: a tool-integrated
rollout's shape). The environment ends every trajectory after `--turns` turns.

Ours: `MultiTurnEngine(kv="cache")`: each trajectory's KV cache lives across its turns; a
turn's end appends only the observation's tokens, trajectories at different turns decode in
one batch. Peer: `MultiTurnEngine(kv="reprefill")`: each turn is one `TorchEngine` batch over
the whole history so far (the same engine with its shared prefill and shared-slot decode:
today's single-turn engine driven turn by turn, as a single-turn sampler does multi-turn).
Both draw the same random numbers, so they produce the same trajectories (checked here: the
run fails otherwise), and the comparison is the cost of the same tokens.

tokens/s counts sampled tokens (loss-mask 1: what a trainer trains on). Ours and peer
alternate `--reps` times; medians reported. The model is a random-init Llama of the chosen
size (its outputs are noise, which does not matter for speed: turns run to `--turn-tokens`
unless EOS is drawn, identically on both sides).

LAST line of stdout: a JSON object {metric, ours, peer, ratio, ...}; ratio > 1 = kept caches faster.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import ClassVar

import torch

from reasonloop.envs import Limits, Step
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.models.tiny import TinyModelConfig, count_parameters, init_model
from reasonloop.rollout.engine import TorchEngine
from reasonloop.rollout.multiturn import MultiTurnEngine
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.types import Problem

SIZES = {  # hidden, layers, heads, kv heads, mlp
    "tiny": (64, 2, 4, 2, 128),
    "small": (256, 4, 4, 4, 768),
    "medium": (512, 8, 8, 4, 1536),
}


class FixedToolEnv:
    """A tool-shaped observation of fixed size every turn; done after `turns` turns."""

    tools: ClassVar[list] = []

    def __init__(self, turns: int, obs_chars: int):
        self.turns, self.obs_chars, self.n = turns, obs_chars, 0

    def reset(self, problem):
        return [{"role": "user", "content": problem.prompt}]

    def step(self, text):
        self.n += 1
        if self.n >= self.turns:
            return Step(reward=1.0, done=True)
        body = ("result: " + "0123456789" * (self.obs_chars // 10 + 1))[: self.obs_chars]
        return Step(observation=[{"role": "tool", "name": "python", "content": body}], info={"tool_calls": 1})


def run_once(engine, kv, problems, args):
    runner = MultiTurnEngine(engine, kv=kv)
    params = SamplingParams(temperature=1.0, max_new_tokens=args.turn_tokens, seed=1)
    limits = Limits(max_turns=args.turns, max_tokens=args.turns * (args.turn_tokens + args.obs_chars + 16),
                    last_turn_notice="")
    start = time.perf_counter()
    groups = runner.run(problems, lambda: FixedToolEnv(args.turns, args.obs_chars), args.samples, params, limits)
    if engine.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    trajectories = [t for g in groups for t in g]
    return seconds, sum(t.sampled_tokens for t in trajectories), trajectories


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="small", choices=sorted(SIZES))
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--turn-tokens", type=int, default=32)
    ap.add_argument("--obs-chars", type=int, default=96)
    ap.add_argument("--prompt-chars", type=int, default=160)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    t0 = time.perf_counter()
    hidden, layers, heads, kv_heads, mlp = SIZES[args.size]
    with tempfile.TemporaryDirectory() as tmp:
        init_model(TinyModelConfig(path=tmp, hidden_size=hidden, num_layers=layers, num_heads=heads,
                                   num_kv_heads=kv_heads, intermediate_size=mlp, max_position_embeddings=4096))
        model, tok = load_model(ModelConfig(path=tmp, device=args.device))
    engine = TorchEngine(model, tok)
    filler = "Use the python tool to check each step before answering. " * 10
    problems = [Problem(f"p{i}", (f"Problem {i}. " + filler)[: args.prompt_chars]) for i in range(args.problems)]

    run_once(engine, "cache", problems[:2], args)  # warm-up, untimed
    times = {"cache": [], "reprefill": []}
    tokens, reference = {}, None
    for _ in range(args.reps):
        for kv in ("cache", "reprefill"):
            seconds, n, trajectories = run_once(engine, kv, problems, args)
            times[kv].append(seconds)
            tokens[kv] = n
            ids = [t.token_ids for t in trajectories]
            if reference is None:
                reference = ids
            elif ids != reference:
                raise SystemExit("the two modes produced different trajectories: the comparison is void")
    ours = tokens["cache"] / statistics.median(times["cache"])
    peer = tokens["reprefill"] / statistics.median(times["reprefill"])
    turns = statistics.mean(t.num_turns for t in trajectories)
    print(f"{args.size}: {count_parameters(model) / 1e6:.2f} M params, {len(trajectories)} trajectories, "
          f"{turns:.1f} turns, {tokens['cache']} sampled tokens; kept caches {ours:.0f} tok/s, "
          f"re-prefill {peer:.0f} tok/s")
    print(json.dumps({
        "metric": f"multi-turn sampled tokens/s, {args.problems} prompts x {args.samples} trajectories, "
                  f"{args.turns} turns of <= {args.turn_tokens} tokens, {args.obs_chars}-char observations, T=1.0",
        "ours": round(ours, 1), "peer": round(peer, 1), "ratio": round(ours / peer, 3),
        "peer_call": "MultiTurnEngine(kv='reprefill'): one TorchEngine batch over the whole history per turn",
        "size": args.size, "params_m": round(count_parameters(model) / 1e6, 2), "device": args.device,
        "threads": torch.get_num_threads(), "ours_s": [round(x, 2) for x in times["cache"]],
        "peer_s": [round(x, 2) for x in times["reprefill"]], "sampled_tokens": tokens["cache"],
        "mean_turns": round(turns, 2), "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.perf_counter() - t0),
    }))


if __name__ == "__main__":
    main()
