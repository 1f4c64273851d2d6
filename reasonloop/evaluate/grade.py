"""Grading test-time strategies: run one from `reasonloop.search` and turn its selections into records."""

from __future__ import annotations

from reasonloop.evaluate.accuracy import tests_meta
from reasonloop.rollout.groups import verify_with_tests
from reasonloop.search import STRATEGIES, build_strategy_config
from reasonloop.search.voting import canonical_answer
from reasonloop.types import EvalRecord

IID_STRATEGIES = ("majority", "best_of_n", "weighted_best_of_n")
"""strategies whose candidates are i.i.d. samples, so pass@k / maj@k over them are meaningful"""


def selections_to_records(task, problems, selections, strategy: str, model_id: str,
                          iid_candidates: bool = False) -> list[EvalRecord]:
    """Grade each search `Selection` (and every candidate) with the task's verifier."""
    records = []
    for problem, sel in zip(problems, selections):
        if sel.problem_id != problem.id:
            raise ValueError(f"selection for {sel.problem_id!r} is not for problem {problem.id!r}")
        verdicts = [verify_with_tests(task, problem, c) for c in sel.candidates]
        oks = [value == 1.0 for value, _ in verdicts]
        chosen = verify_with_tests(task, problem, sel.text)
        records.append(EvalRecord(
            problem_id=problem.id, task=task.name, strategy=strategy, answer=problem.answer, selected=sel.answer,
            correct=chosen[0] == 1.0, predictions=[canonical_answer(c) for c in sel.candidates],
            sample_correct=oks, tokens=sel.budget.tokens, model_calls=sel.budget.model_calls,
            scorer_calls=sel.budget.scorer_calls, model_id=model_id,
            meta={"text": sel.text, "scores": sel.scores, "iid_candidates": iid_candidates,
                  **sel.meta, **tests_meta([tests for _, tests in verdicts]),
                  **({"selected_tests": chosen[1]} if chosen[1] is not None else {})}))
    return records


def run_strategy(name: str, options: dict, problems, task, sampler, scorer, label: str | None = None):
    """Run strategy `name` and grade it -> (EvalRecords, selections)."""
    function, _ = STRATEGIES[name]
    selections = function(problems, sampler, scorer, build_strategy_config(name, options))
    records = selections_to_records(task, problems, selections, label or name, sampler.model_id,
                                    iid_candidates=name in IID_STRATEGIES)
    return records, selections
