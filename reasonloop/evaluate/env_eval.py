"""Evaluation over a multi-turn environment: `reasonloop eval env.name=... [env.options...]`.

    reasonloop eval model.path=DIR env.name=long_arithmetic env.options.tools='[python]' \
        turn_limits.max_turns=4 samples_per_prompt=8

Each problem is played as episodes of the environment (`reasonloop.envs`) through the multi-turn
runner of the configured sampler (`rollout.multiturn_api.multiturn_runner`: the torch engine with
kept KV caches, vLLM, or an OpenAI-compatible chat server). An episode is *correct* when its
reward (the sum of its turn rewards) is >= 1: a verified final answer, a repaired function that
passes its tests, a won game.

Reported: greedy accuracy (one greedy episode per problem) with its 95% interval, and over
`samples_per_prompt` sampled episodes per problem the field's estimators with standard errors
(avg@k, pass@j, pass^j, maj@j for j = 1, 2, 4, ..., k; `evaluate.standard.benchmark_metrics`,
the same maths as for single-turn tasks; maj@j votes over the final answers of the episodes'
last turns). For the greedy and the sampled episodes alike, per problem: turns, tool calls,
sampled and inserted tokens, and every error count the environment logged (malformed tool calls,
unknown tools, timeouts, illegal moves, turn and token limits; `envs.summarize`).

Files: `records.jsonl` (one `EvalRecord` per problem and kind: greedy, sampled@k; each with its
episodes' rewards, turns and counts in `meta`), `trajectories.jsonl` (every episode as a
`Sample` record: messages, token ids, loss mask, turn spans, counts) and `results.json`.
"""

from __future__ import annotations

import time

from reasonloop.envs.base import EnvFactory, Limits, Trajectory, summarize
from reasonloop.envs.game import two_seat
from reasonloop.evaluate.metrics import mean_ci95
from reasonloop.evaluate.standard import benchmark_metrics
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.search.voting import canonical_answer, majority_vote
from reasonloop.types import EvalRecord, Problem


def final_text(t: Trajectory) -> str:
    """The episode's last assistant turn: where its final answer is."""
    texts = t.assistant_texts()
    return texts[-1] if texts else ""


def correct(t: Trajectory) -> bool:
    return t.reward >= 1.0


def episode_meta(t: Trajectory) -> dict:
    return {"reward": t.reward, "turns": t.num_turns, "ending": t.ending, "counts": dict(t.counts),
            "sampled_tokens": t.sampled_tokens, "inserted_tokens": len(t.token_ids) - t.sampled_tokens}


def episode_tokens(t: Trajectory) -> int:
    """Tokens the model generated in the episode (the server's count when the ids are not known)."""
    return t.sampled_tokens if t.token_exact else int(t.counts.get("completion_tokens", 0))


def greedy_records(task_name: str, problems: list[Problem], episodes: list[Trajectory]) -> list[EvalRecord]:
    records = []
    for p, t in zip(problems, episodes, strict=True):
        answer = canonical_answer(final_text(t))
        records.append(EvalRecord(problem_id=p.id, task=task_name, strategy="greedy", answer=p.answer,
                                  selected=answer, correct=correct(t), predictions=[answer],
                                  sample_correct=[correct(t)], tokens=episode_tokens(t), model_calls=t.num_turns,
                                  model_id=t.model_id, meta=episode_meta(t)))
    return records


def sampled_records(task_name: str, problems: list[Problem], groups: list[list[Trajectory]],
                    k: int) -> list[EvalRecord]:
    """One record per problem over its k episodes: the majority final answer and every episode's verdict."""
    records = []
    for p, group in zip(problems, groups, strict=True):
        answers = [canonical_answer(final_text(t)) for t in group]
        oks = [correct(t) for t in group]
        chosen = majority_vote(answers)
        records.append(EvalRecord(
            problem_id=p.id, task=task_name, strategy=f"sampled@{k}", answer=p.answer, selected=chosen,
            correct=chosen is not None and any(a == chosen and ok for a, ok in zip(answers, oks)),
            predictions=answers, sample_correct=oks, tokens=sum(episode_tokens(t) for t in group),
            model_calls=sum(t.num_turns for t in group), model_id=group[0].model_id if group else "",
            meta={"iid_candidates": True, "episodes": [episode_meta(t) for t in group]}))
    return records


def episode_stats(prefix: str, episodes: list[Trajectory]) -> dict[str, float]:
    """`envs.summarize` per episode, keys prefixed: turns, tool calls, tokens, each count, endings."""
    stats = {"tool_calls_per_trajectory": 0.0, **summarize(episodes)}  # 0 tool calls is a result too
    return {f"{prefix}/{k}": v for k, v in stats.items() if k != "trajectories"}


def evaluate_env_model(runner, task, problems: list[Problem], make_env: EnvFactory, *, limits: Limits,
                       samples_per_prompt: int, temperature: float, top_p: float, max_new_tokens: int,
                       seed: int = 0) -> tuple[dict, list[EvalRecord], list[Trajectory]]:
    """Greedy and sampled episodes of every problem -> (results, records, every trajectory)."""
    if two_seat(make_env):
        from reasonloop.config import ConfigError

        raise ConfigError("eval of a self-play game scores the policy against a fixed opponent: use split=test "
                          "(it plays env.options.eval_opponent) or opponent=random|perfect")
    start = time.perf_counter()
    name = getattr(task, "name", "env")
    greedy = [g[0] for g in runner.run(problems, make_env, 1, SamplingParams(temperature=0.0,
                                                                               max_new_tokens=max_new_tokens),
                                       limits)]
    records = greedy_records(name, problems, greedy)
    acc, ci = mean_ci95([float(r.correct) for r in records])
    results: dict = {"num_problems": len(problems), "greedy_accuracy": acc, "greedy_ci95": ci,
                     **episode_stats("greedy", greedy)}
    trajectories = list(greedy)
    k = samples_per_prompt
    if k > 0:
        params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
        groups = runner.run(problems, make_env, k, params, limits)
        vote_rows = sampled_records(name, problems, groups, k)
        records += vote_rows
        for metric, value in benchmark_metrics(vote_rows, seed).items():
            results[metric] = value["value"]
            results[f"{metric}_se"] = value["se"]
        sampled = [t for g in groups for t in g]
        results.update(episode_stats("sampled", sampled))
        trajectories += sampled
    results["tokens_generated"] = sum(r.tokens for r in records)
    results["eval_seconds"] = time.perf_counter() - start
    return results, records, trajectories
