"""Accuracy of a sampler on a task's problems: greedy, maj@k and pass@k, as records and metrics.

`evaluate_model` is what `reasonloop eval` runs by default; `held_out_accuracy` is the same
greedy evaluation as the training loops' `eval/*` metrics.
"""

from __future__ import annotations

import time

from reasonloop.evaluate.metrics import mean_ci95, pass_at_k
from reasonloop.rollout.groups import sample_groups, verify_correct
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.search.voting import canonical_answer, majority_vote
from reasonloop.tasks.base import steps_all_verify
from reasonloop.types import EvalRecord


def tests_meta(tests: list[list[dict] | None]) -> dict:
    """`{"tests": ...}` for an eval record's meta when any sample ran code tests (one entry per
    sample, aligned with `sample_correct`: its per-test records, or None); else nothing."""
    return {"tests": tests} if any(t is not None for t in tests) else {}


def evaluate_model(sampler, task, problems, *, samples_per_prompt: int, temperature: float,
                   max_new_tokens: int, seed: int = 0) -> tuple[dict, list[EvalRecord]]:
    """Greedy accuracy (+ maj@k, pass@1, pass@k over `samples_per_prompt` samples).

    For tasks that check steps, also `greedy_step_accuracy`: right answer *and* every step
    right (a right answer reached through a wrong step does not count).
    """
    start = time.perf_counter()
    greedy = sample_groups(sampler, problems, 1, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens),
                           score=verify_correct(task))
    records = []
    for p, (s,) in ((g.problem, g.samples) for g in greedy):
        ok = s.rewards["correct"] == 1.0
        records.append(EvalRecord(problem_id=p.id, task=task.name, strategy="greedy", answer=p.answer,
                                  selected=canonical_answer(s.text), correct=ok, predictions=[canonical_answer(s.text)],
                                  sample_correct=[ok], tokens=s.num_tokens, model_calls=1, model_id=s.model_id,
                                  meta={"steps_valid": steps_all_verify(task, p, s.text), **tests_meta([s.tests])}))
    results = {"num_problems": len(problems)}
    acc, ci = mean_ci95([float(r.correct) for r in records])
    results.update({"greedy_accuracy": acc, "greedy_ci95": ci,
                    "greedy_tokens_per_problem": sum(r.tokens for r in records) / len(records)})
    if all(r.meta["steps_valid"] is not None for r in records):
        results["greedy_step_accuracy"] = sum(r.correct and r.meta["steps_valid"] for r in records) / len(records)
    k = samples_per_prompt
    if k > 0:
        groups = sample_groups(sampler, problems, k, SamplingParams(temperature=temperature,
                                                                    max_new_tokens=max_new_tokens, seed=seed),
                               score=verify_correct(task))
        vote_rows, p1, pk = [], [], []
        for p, group in ((g.problem, g.samples) for g in groups):
            answers = [canonical_answer(s.text) for s in group]
            oks = [s.rewards["correct"] == 1.0 for s in group]
            chosen = majority_vote(answers)
            chosen_ok = chosen is not None and any(a == chosen and o for a, o in zip(answers, oks))
            vote_rows.append(EvalRecord(problem_id=p.id, task=task.name, strategy=f"maj@{k}", answer=p.answer,
                                        selected=chosen, correct=chosen_ok, predictions=answers, sample_correct=oks,
                                        tokens=sum(s.num_tokens for s in group), model_calls=k,
                                        model_id=group[0].model_id, meta=tests_meta([s.tests for s in group])))
            p1.append(pass_at_k(k, sum(oks), 1))
            pk.append(pass_at_k(k, sum(oks), k))
        records += vote_rows
        maj, maj_ci = mean_ci95([float(r.correct) for r in vote_rows])
        results.update({f"maj@{k}": maj, f"maj@{k}_ci95": maj_ci, "pass@1": sum(p1) / len(p1),
                        f"pass@{k}": sum(pk) / len(pk),
                        f"maj@{k}_tokens_per_problem": sum(r.tokens for r in vote_rows) / len(vote_rows)})
    results["tokens_generated"] = sum(r.tokens for r in records)
    results["eval_seconds"] = time.perf_counter() - start
    return results, records


def held_out_accuracy(sampler, task, max_new_tokens: int) -> dict:
    """Greedy accuracy on all of `task` as training-loop metrics ({} when there is no eval task)."""
    if task is None:
        return {}
    results, _ = evaluate_model(sampler, task, list(task), samples_per_prompt=0, temperature=1.0,
                                max_new_tokens=max_new_tokens)
    return {"eval/greedy_accuracy": results["greedy_accuracy"], "eval/ci95": results["greedy_ci95"],
            **({"eval/greedy_step_accuracy": results["greedy_step_accuracy"]}
               if "greedy_step_accuracy" in results else {})}
