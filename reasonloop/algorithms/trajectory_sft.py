"""Supervised fine-tuning on multi-turn trajectories, token-exact.

Two sources become the masked training examples `sft.fit` takes, (context ids, completion
ids, completion mask), never by re-tokenizing a trajectory's text:

- sampled trajectories (selftrain on an environment keeps the verified ones): the context is
  the trajectory's `prompt_ids`, the completion its `token_ids` as the sampler stored them,
  the mask its `loss_mask` (1 on drawn tokens, 0 on what the environment and the chat template
  inserted). So the trained ids are the sampled ids (tested), as in verl's AgentLoop and
  SkyRL's step-wise training; re-tokenizing the text could split it differently and train on
  tokens the policy never drew.
- demonstration files (`envs.demonstrations`: chat `messages` with tool calls and results):
  each conversation is rendered once, the way the multi-turn sampler builds a trajectory
  (`rollout.multiturn.ChatRenderer`): the opening with the chat template and the tools, each
  assistant turn as its text's tokens plus the end-of-turn token (trained), each run of tool
  results and user messages as the ids the template inserts after a turn (masked). A
  demonstration therefore has exactly the ids a sampled trajectory with the same turns would
  have (tested on a char tokenizer, where the text's tokenization is the sampled one).

Also the pieces selftrain uses on an environment: sampling trajectories as `Sample`s, the
greedy environment eval, and per-trajectory metrics (turns, tool calls, error counts).
"""

from __future__ import annotations

from collections import Counter

from reasonloop.envs.base import EnvFactory, Limits
from reasonloop.envs.demonstrations import Demonstration, assistant_text
from reasonloop.rollout.multiturn import ChatRenderer, evaluate_env, sample_env_groups
from reasonloop.rollout.multiturn_api import multiturn_runner
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.types import Problem, Sample

Example = tuple[list[int], list[int], list[int]]
"""(context ids, completion ids, completion mask): `sft.Example` with its mask"""


def trajectory_example(sample: Sample) -> Example:
    """A sampled trajectory (`Trajectory.to_sample`) as a training example: its own ids, its own mask."""
    if "loss_mask" not in sample.meta or "prompt_ids" not in sample.meta:
        raise ValueError(f"sample of {sample.problem_id} is not a multi-turn trajectory (no loss_mask/prompt_ids)")
    mask = list(sample.meta["loss_mask"])
    if len(mask) != len(sample.token_ids):
        raise ValueError(f"trajectory of {sample.problem_id}: {len(sample.token_ids)} tokens, {len(mask)} mask entries")
    return list(sample.meta["prompt_ids"]), list(sample.token_ids), mask


def eos_ids(model, tokenizer) -> list[int]:
    """The ids that end a turn: `TorchEngine.eos_ids`'s rule (tokenizer EOS + generation config's)."""
    ids = {tokenizer.eos_token_id}
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(extra) if isinstance(extra, list) else {extra}
    return sorted(i for i in ids if i is not None)


def end_of_turn_id(renderer: ChatRenderer, tools: list[dict]) -> int:
    """The token that closes an assistant turn: the last EOS-set id the template writes after an
    assistant message (ChatML's <|im_end|>; the plain format's EOS)."""
    probe = renderer.ids(ChatRenderer._PROBE, tools, False)
    ends = [t for t in probe if t in renderer.eos_ids]
    return ends[-1] if ends else renderer.tok.eos_token_id


def render_demonstration(renderer: ChatRenderer, demo: Demonstration, system_prompt: str = "") -> Example:
    """A demonstration's ids as the sampler would have built them (see the module docstring)."""
    messages = demo.messages
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    opening = list(messages[:first])
    if system_prompt and opening[0]["role"] != "system":  # what `TurnLoop.start` does
        opening = [{"role": "system", "content": system_prompt}, *opening]
    end = end_of_turn_id(renderer, demo.tools)
    ids, mask = [], []
    i = first
    while i < len(messages):
        turn = renderer.tok(assistant_text(messages[i]), add_special_tokens=False)["input_ids"] + [end]
        ids += turn
        mask += [1] * len(turn)
        j = i + 1
        while j < len(messages) and messages[j]["role"] != "assistant":
            j += 1
        if j < len(messages):  # what the environment said before the next turn (the last turn ends it all)
            observation = renderer.observation(list(messages[i + 1: j]), demo.tools, ended_with_eos=True)
            ids += observation
            mask += [0] * len(observation)
        i = j
    return renderer.opening(opening, demo.tools), ids, mask


def demonstration_examples(model, tokenizer, demos: list[Demonstration], use_chat_template: bool = True,
                           system_prompt: str = "") -> list[Example]:
    """Every demonstration rendered through the sampler's renderer for this model and tokenizer."""
    renderer = ChatRenderer(tokenizer, eos_ids(model, tokenizer), use_chat_template)
    return [render_demonstration(renderer, d, system_prompt) for d in demos]


# --- selftrain on an environment -------------------------------------------------------------


def sample_trajectories(sampler, problems: list[Problem], k: int, params: SamplingParams, make_env: EnvFactory,
                        limits: Limits) -> list[Sample]:
    """`k` trajectories per problem, problem-major, as `Sample`s whose reward is the environment's."""
    groups = sample_env_groups(multiturn_runner(sampler), problems, k, params, make_env, limits)
    return [s for g in groups for s in g.samples]


def evaluate_on_env(sampler, problems: list[Problem], make_env: EnvFactory, limits: Limits,
                    max_new_tokens: int) -> dict[str, float]:
    """Greedy, one trajectory per held-out problem: accuracy, turns, tool calls and error counts."""
    return evaluate_env(multiturn_runner(sampler), problems, make_env, limits, max_new_tokens)[0]


def trajectory_metrics(samples: list[Sample]) -> dict[str, float]:
    """Per-trajectory means of the sampled trajectories: turns, drawn and inserted tokens, every count."""
    n = max(1, len(samples))
    counts: Counter[str] = Counter()
    for s in samples:
        counts.update(s.meta.get("counts", {}))
    return {"env/turns": sum(len(s.meta["turns"]) for s in samples) / n,
            "env/sampled_tokens": sum(sum(s.meta["loss_mask"]) for s in samples) / n,
            "env/inserted_tokens": sum(s.meta["loss_mask"].count(0) for s in samples) / n,
            **{f"env/{k}": v / n for k, v in sorted(counts.items())}}
