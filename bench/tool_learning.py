"""The miniature reproduction of tool-integrated reasoning: demonstrations, then RL, teach a tiny
model to call a calculator for products it cannot compute in its head.

    OMP_NUM_THREADS=1 .venv/bin/python bench/tool_learning.py              # a few minutes of CPU
    .venv/bin/python bench/tool_learning.py --demos 2000 --demo-steps 600 --grpo-steps 40

Stages, every one the function its CLI command runs:
1. a fresh tiny Llama (char tokenizer, `models.tiny`, the quickstart's builder);
2. `--demos` demonstration conversations on `long_arithmetic` products (`operations="*"`, 6-10
   digit factors, so 11-20 digit answers): the environment's own opening, an assistant turn that
   calls the calculator, the environment's real tool message, and `Answer: <result>`. Written as a
   demonstration file (`envs.demonstrations`) and trained with `reasonloop sft data=...`: assistant
   turns trained, everything else masked, rendered as the multi-turn sampler renders them.
   `--guess-frac` makes that share of the demonstrations answer at once with a (wrong) guess, so
   the trained model calls the tool on only some of its samples and RL can learn to call it;
3. GRPO on the environment (`reasonloop grpo env.name=long_arithmetic env.options.tools=[calculator]`)
   from the demonstration-trained model: reward 1 for the exact answer, nothing for calling.

Every model (fresh, after demonstrations, after RL) is evaluated greedily on the same `--eval`
held-out problems in three conditions: WITH the tool; with the tool REFUSED (same prompt, the
environment answers every call with "budget used up, answer now": `max_tool_calls=0`); and the
NO-TOOL task (the bare prompt, one turn, as a single-turn task). Reported per condition:
accuracy, turns and tool calls per problem (`rollout.multiturn.evaluate_env`).

LAST line of stdout: one JSON object. metric/ours/peer/ratio compare held-out accuracy with tools
after demonstrations + RL (ours) against after demonstrations alone (peer), the same run: ratio > 1
means RL improved on the demonstrations. Everything else printed is in the same object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from reasonloop.algorithms import grpo, sft
from reasonloop.algorithms.common import OptimConfig
from reasonloop.envs import EnvSpec, Limits
from reasonloop.envs.demonstrations import call_text
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.models.tiny import TinyModelConfig, count_parameters, init_model
from reasonloop.rollout.factory import SamplerConfig, make_sampler
from reasonloop.rollout.multiturn import evaluate_env
from reasonloop.rollout.multiturn_api import multiturn_runner
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import write_jsonl
from reasonloop.utils import quiet_hf

SYSTEM = "Tools: calculator."
"""a short system message: the tiny model reads every prompt token on a loaded CPU"""


def conditions(min_digits: int = 6, max_digits: int = 10) -> dict[str, dict]:
    """The environment options of each evaluation condition (and of training: "tools")."""
    task = {"operations": "*", "min_digits": min_digits, "max_digits": max_digits}
    return {"tools": {**task, "tools": ["calculator"], "system": SYSTEM},
            "tools_refused": {**task, "tools": ["calculator"], "system": SYSTEM, "max_tool_calls": 0},
            "no_tool_task": dict(task)}


CONDITIONS = conditions()


def demonstrations(n: int, seed: int, options: dict | None = None, guess_frac: float = 0.0) -> list[dict]:
    """`n` conversations of the tool environment answered by calling the calculator once.

    With `guess_frac` > 0, that share of them (chosen at random) is a demonstrator who does not use
    the tool: it answers at once with a guess of the right number of digits (wrong, as a head
    computation of an 11-20 digit product would be). A model trained on the mix calls the tool on
    only part of its samples, so RL has something to learn: whether to call it.
    """
    task, make_env = EnvSpec("long_arithmetic", options or CONDITIONS["tools"]).build("train", n, seed=seed)
    rng = random.Random(seed)
    rows = []
    for problem in task:
        env = make_env()
        opening = env.reset(problem)
        if rng.random() < guess_frac:
            digits = len(problem.answer.lstrip("-"))
            guess = str(rng.randint(10 ** (digits - 1), 10**digits - 1))
            if guess == problem.answer:
                guess = str(int(guess) + 1)
            rows.append({"messages": [*opening, {"role": "assistant", "content": f"Answer: {guess}"}],
                         "tools": ["calculator"]})
            continue
        arguments = {"expression": problem.meta["expression"]}
        step = env.step(call_text("calculator", arguments))  # the environment's own tool message
        answer = f"Answer: {step.observation[0]['content']}"
        if env.step(answer).reward != 1.0:
            raise RuntimeError(f"demonstration of {problem.id} does not verify")
        rows.append({"messages": [*opening,
                                  {"role": "assistant", "content": "",
                                   "tool_calls": [{"type": "function",
                                                   "function": {"name": "calculator", "arguments": arguments}}]},
                                  *step.observation, {"role": "assistant", "content": answer}],
                     "tools": ["calculator"]})
    return rows


def evaluate(model_dir: Path, n: int, limits: Limits, max_new_tokens: int, seed: int,
             by_condition: dict[str, dict] | None = None) -> dict:
    """Greedy held-out metrics of one model in every condition."""
    sampler = make_sampler(SamplerConfig(), ModelConfig(path=str(model_dir)))
    out = {}
    for name, options in (by_condition or CONDITIONS).items():
        task, make_env = EnvSpec("long_arithmetic", options).build("test", n, seed=seed)
        metrics, _ = evaluate_env(multiturn_runner(sampler), list(task), make_env, limits, max_new_tokens)
        out[name] = {"accuracy": metrics["eval/greedy_accuracy"], "turns": metrics["eval/turns"],
                     "tool_calls": metrics.get("eval/tool_calls_per_trajectory", 0.0),
                     "refused_calls": metrics.get("eval/tool_budget_exceeded_per_trajectory", 0.0),
                     "malformed_calls": metrics.get("eval/malformed_tool_call_per_trajectory", 0.0)}
    return out


def run(args) -> dict:
    quiet_hf()
    root = Path(args.output_dir)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    limits = Limits(max_turns=3, max_tokens=256)
    runs = conditions(args.min_digits, args.max_digits)
    timings, stages = {}, {}
    t0 = time.perf_counter()

    # --- 1. a fresh tiny model
    init_dir = init_model(TinyModelConfig(path=str(root / "init"), hidden_size=args.hidden, num_layers=args.layers,
                                          num_heads=4, num_kv_heads=4, intermediate_size=3 * args.hidden,
                                          max_position_embeddings=512, seed=args.seed))
    params = count_parameters(load_model(ModelConfig(path=str(init_dir)))[0])
    stages["fresh"] = evaluate(init_dir, args.eval, limits, args.max_new_tokens, args.seed, runs)
    timings["fresh"] = time.perf_counter() - t0

    # --- 2. demonstrations of calling the tool, trained token-exact (assistant turns only)
    t = time.perf_counter()
    demo_file = root / "demos.jsonl"
    write_jsonl(demo_file, demonstrations(args.demos, args.seed, runs["tools"], args.guess_frac))
    demo = sft.main(sft.SFTConfig(
        model=ModelConfig(path=str(init_dir)), data=str(demo_file), run_name="demos", output_dir=str(root),
        train=sft.TrainConfig(max_steps=args.demo_steps, batch_size=args.batch, micro_batch_size=args.batch,
                              max_length=512, seed=args.seed,
                              optim=OptimConfig(lr=args.demo_lr, warmup_steps=20, min_lr_ratio=0.1))))
    demo_dir = root / "demos" / "final"
    timings["demonstrations"] = time.perf_counter() - t
    stages["demonstrations"] = evaluate(demo_dir, args.eval, limits, args.max_new_tokens, args.seed, runs)

    # --- 3. RL on the environment: the exact answer is the only reward
    t = time.perf_counter()
    rl = grpo.main(grpo.GRPOConfig(
        model=ModelConfig(path=str(demo_dir)), env=EnvSpec("long_arithmetic", runs["tools"]),
        turn_limits=limits, steps=args.grpo_steps, prompts_per_step=args.grpo_prompts,
        samples_per_prompt=args.grpo_samples, micro_batch_size=args.grpo_prompts * args.grpo_samples,
        sampling=SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens),
        optim=OptimConfig(lr=args.grpo_lr, schedule="constant", beta2=0.99), eval_problems=0, save_every=0,
        run_name="grpo", output_dir=str(root), seed=args.seed))
    timings["rl"] = time.perf_counter() - t
    stages["rl"] = evaluate(Path(rl["final_model"]), args.eval, limits, args.max_new_tokens, args.seed, runs)

    ours, peer = stages["rl"]["tools"]["accuracy"], stages["demonstrations"]["tools"]["accuracy"]
    return {
        "metric": f"held-out accuracy with the calculator tool, long_arithmetic products of "
                  f"{args.min_digits}-{args.max_digits} digit numbers "
                  f"({args.eval} problems, greedy): demonstrations + GRPO vs demonstrations alone",
        "ours": ours, "peer": peer, "ratio": round(ours / peer, 3) if peer else None,
        "peer_call": "the same model after the demonstration SFT stage, before RL",
        "params_m": round(params / 1e6, 3), "stages": stages,
        "demo": {"conversations": args.demos, "guess_frac": args.guess_frac, "steps": demo["steps"], "train_tokens": demo["train_tokens"],
                 "loss_last": demo["loss_last"]},
        "rl": {"steps": rl["steps"], "reward_first": rl["reward_first"], "reward_last10": rl["reward_last10"]},
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(time.process_time(), 1),
    }


def print_table(result: dict) -> None:
    print("| stage | condition | accuracy | turns / problem | tool calls / problem | refused calls / problem |")
    print("|---|---|---|---|---|---|")
    for stage, by_condition in result["stages"].items():
        for condition, m in by_condition.items():
            print(f"| {stage} | {condition} | {m['accuracy']:.3f} | {m['turns']:.2f} | {m['tool_calls']:.2f} | "
                  f"{m['refused_calls']:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--demos", type=int, default=1000, help="demonstration conversations")
    p.add_argument("--demo-steps", type=int, default=300)
    p.add_argument("--guess-frac", type=float, default=0.0,
                   help="share of demonstrations that answer with a guess instead of calling the tool")
    p.add_argument("--demo-lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--grpo-steps", type=int, default=20)
    p.add_argument("--grpo-prompts", type=int, default=8)
    p.add_argument("--grpo-samples", type=int, default=8)
    p.add_argument("--grpo-lr", type=float, default=1e-4)
    p.add_argument("--eval", type=int, default=100, help="held-out problems per condition")
    p.add_argument("--max-new-tokens", type=int, default=112, help="per turn (a call of two 10-digit factors is 102 tokens)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--min-digits", type=int, default=6, help="digits of each factor (the task's default 6-10)")
    p.add_argument("--max-digits", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-dir", default="")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tool-learning-") as tmp:
        args.output_dir = args.output_dir or tmp
        result = run(args)
    print_table(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
