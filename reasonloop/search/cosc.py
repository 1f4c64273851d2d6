"""CoSC (Chain of Self-Correction) as a test-time strategy: the model runs its own code, reads the
output, and verifies or revises in the same conversation.

    reasonloop search model.path=DIR strategy=cosc options="{max_rounds: 3, max_new_tokens: 256}"

Paper: Gao et al. 2024, "Embedding Self-Correction as an Inherent Ability in Large Language
Models for Enhanced Mathematical Reasoning" (CoSC, seed paper [000]): in each stage the model
writes a program, the program is executed, the model verifies the output and either begins
another correction stage or finalises its answer.

Each problem is one episode of `envs.cosc.CoSCEnv` (the protocol, the sandbox, and the
deviations that belong to the environment are documented there) run by the sampler's
multi-turn runner (`rollout.multiturn_api.multiturn_runner`: torch with kept KV caches, vLLM,
or an OpenAI-compatible chat server). The selected solution is the episode's last turn (the
final answer, or the last turn when rounds or limits ran out); the candidates are every turn.

How it differs from `self_correct` (`search/self_correct.py`): there the *check* is external (a
scorer or the code tool grades the steps) and the model only re-generates from the last trusted
step without being told what failed; here the model itself writes the check (a program), sees
its execution output, and decides in the same conversation whether and how to revise. No
scorer is used (`scorer.kind` must be none).

Cost, as for every strategy (`search.budget`): `tokens` are the tokens the model generated over
all turns (prompt, programs' outputs and the re-read history are prefill and not counted; an
OpenAI-compatible server's reported completion tokens when the ids are not known), `model_calls`
the turns. Deviations beyond the environment's: greedy decoding by default (the paper samples
for its self-generated training data; at test time it decodes greedily), and no `token_budget`
stop rule: an episode is bounded by `max_rounds` and `max_tokens` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from reasonloop.envs.base import Limits, Trajectory
from reasonloop.envs.cosc import COSC_SYSTEM, CoSCEnv
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.search.budget import Budget
from reasonloop.search.common import Selection, select


@dataclass
class CoSCConfig:
    max_rounds: int = 3
    """programs executed per problem (correction stages); the turn after the last one is the final answer"""
    temperature: float = 0.0
    max_new_tokens: int = 256
    """tokens per turn"""
    max_tokens: int = 2048
    """tokens per episode after the prompt (generated and inserted)"""
    timeout: float = 5.0
    """seconds per program in the sandbox"""
    max_output_chars: int = 1000
    system: str = COSC_SYSTEM
    seed: int = 0

    def __post_init__(self):
        if self.max_rounds < 1 or self.max_new_tokens < 1 or self.max_tokens < 1:
            raise ValueError("max_rounds, max_new_tokens and max_tokens must be >= 1")
        if self.temperature < 0 or self.timeout <= 0:
            raise ValueError("temperature must be >= 0 and timeout > 0")


def episode_budget(t: Trajectory) -> Budget:
    """What the episode cost: generated tokens (the server's count when ids are unknown), one call per turn."""
    tokens = t.sampled_tokens if t.token_exact else int(t.counts.get("completion_tokens", 0))
    return Budget(tokens=tokens, model_calls=t.num_turns)


def cosc(problems, sampler, scorer, cfg: CoSCConfig) -> list[Selection]:
    if scorer is not None:
        raise ValueError("cosc: the model checks its own program's output; it takes no scorer (scorer.kind=none)")
    from reasonloop.rollout.multiturn_api import multiturn_runner  # torch only where a strategy runs

    runner = multiturn_runner(sampler)
    limits = Limits(max_turns=cfg.max_rounds + 1, max_tokens=cfg.max_tokens, last_turn_notice="")
    params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                            seed=None if cfg.temperature == 0 else cfg.seed)

    def make_env() -> CoSCEnv:
        return CoSCEnv(None, cfg.max_rounds, cfg.system, cfg.timeout, cfg.max_output_chars)

    episodes = [g[0] for g in runner.run(list(problems), make_env, 1, params, limits)] if problems else []
    selections = []
    for problem, t in zip(problems, episodes, strict=True):
        texts = t.assistant_texts()
        selections.append(select(problem, texts[-1] if texts else "", texts, [], episode_budget(t),
                                 rounds=t.counts.get("code_runs", 0), turns=t.num_turns, ending=t.ending,
                                 counts=dict(t.counts), messages=list(t.messages)))
    return selections
