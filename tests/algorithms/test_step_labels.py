"""Step labelers on a scripted policy whose continuations are right or wrong by rule."""

import json
import random

import pytest

from reasonloop.algorithms.step_labels import (
    LabelConfig,
    binary_search_labels,
    ground_truth_labels,
    label_solutions,
    main,
    monte_carlo_labels,
    outcome_gated_mc_labels,
    sequential_mc_labels,
)
from reasonloop.algorithms.step_rows import (
    hnc_augment,
    hrm_pair_rows,
    merge_steps,
    prm800k_rows,
    read_step_rows,
    rest_mcts_values,
)
from reasonloop.config import ConfigError
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import RecordError
from reasonloop.tasks import DatasetError
from reasonloop.tasks.arithmetic import ArithmeticTask
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Problem, Sample, split_steps

TASK = ArithmeticTask()
# 10 + 1 + 2 + 3 + 4: running values 10, 11, 13, 16, 20
PROBLEM = Problem(id="p", prompt="Compute left to right: 10 + 1 + 2 + 3 + 4\n", answer="20",
                  meta={"start": 10, "operations": [["+", 1], ["+", 2], ["+", 3], ["+", 4]],
                        "solution": "10 + 1 = 11\n11 + 2 = 13\n13 + 3 = 16\n16 + 4 = 20\nAnswer: 20"})


def planted(error: int) -> list[str]:
    """The 5-step solution with step `error` miscalculated by +1 and the error carried forward."""
    value, steps = 10, []
    for i, (_, b) in enumerate(PROBLEM.meta["operations"]):
        result = value + b + (1 if i == error else 0)
        steps.append(f"{value} + {b} = {result}")
        value = result
    return steps + [f"Answer: {value + (1 if error == 4 else 0)}"]


class ContinuingSampler:
    """Continues a prefix by carrying its last running value through the remaining operations.

    A continuation of a correct prefix reaches the gold answer unless its sample index is
    below `wrong_per_prefix` (then its first new step is off by one); a wrong prefix never does.
    Counts every rollout it produces.
    """

    model_id = "scripted"

    def __init__(self, wrong_per_prefix: int = 0):
        self.wrong_per_prefix, self.rollouts, self.tokens, self.calls = wrong_per_prefix, 0, 0, 0

    def generate(self, prompts, samples_per_prompt=1, params=None, prefixes=None):
        self.calls += 1
        groups = []
        for prompt, prefix in zip(prompts, prefixes or [""] * len(prompts)):
            done = split_steps(prefix)
            value = int(done[-1].split("=")[1]) if done else PROBLEM.meta["start"]
            group = []
            for j in range(samples_per_prompt):
                v, steps = value, []
                for i, (_, b) in enumerate(PROBLEM.meta["operations"][len(done):]):
                    r = v + b + (1 if (j < self.wrong_per_prefix and i == 0) else 0)
                    steps.append(f"{v} + {b} = {r}")
                    v = r
                text = "\n".join(steps + [f"Answer: {v}"])
                group.append(Sample(problem_id="", prompt=prompt, text=text, token_ids=list(range(len(text)))))
            self.rollouts += samples_per_prompt
            self.tokens += sum(s.num_tokens for s in group)
            groups.append(group)
        return groups


PARAMS = SamplingParams()


def test_monte_carlo_hard_and_soft_labels():
    sampler = ContinuingSampler(wrong_per_prefix=1)
    labeled = monte_carlo_labels(sampler, TASK, PROBLEM, planted(2), n=4, params=PARAMS)
    assert labeled.hard == [True, True, False, False, False]
    # good prefixes: 3 of 4 continuations correct; bad prefixes: 0; the full solution is graded directly
    assert labeled.soft == [0.75, 0.75, 0.0, 0.0, 0.0]
    assert labeled.rollouts == sampler.rollouts == 4 * 4  # every prefix but the full one
    assert labeled.tokens == sampler.tokens > 0
    assert labeled.first_error == 2 and labeled.outcome is False
    assert sampler.calls == 1  # one batched generate call for all prefixes


def test_monte_carlo_on_a_correct_solution_labels_everything_good():
    labeled = monte_carlo_labels(ContinuingSampler(), TASK, PROBLEM, planted(-1), n=2, params=PARAMS)
    assert labeled.hard == [True] * 5 and labeled.soft == [1.0] * 5 and labeled.outcome


@pytest.mark.parametrize("error, probes", [(0, 2), (1, 2), (2, 2), (3, 3), (4, 3)])
def test_binary_search_finds_the_planted_error_with_the_expected_rollouts(error, probes):
    # bisection over prefixes 0 (good) .. 5 (bad): e.g. error 3 probes prefix 2, 3 (good) then 4 (bad)
    sampler = ContinuingSampler()
    labeled = binary_search_labels(sampler, TASK, PROBLEM, planted(error), n=4, params=PARAMS)
    assert labeled.first_error == error
    assert labeled.hard == [i < error for i in range(5)]
    assert labeled.rollouts == sampler.rollouts == 4 * probes


def test_binary_search_soft_labels_fill_from_the_nearest_probe():
    sampler = ContinuingSampler(wrong_per_prefix=1)
    labeled = binary_search_labels(sampler, TASK, PROBLEM, planted(3), n=4, params=PARAMS)
    # probes: prefix 2 -> 0.75, prefix 3 -> 0.75, prefix 4 -> 0; step 0 (prefix 1) copies prefix 2
    assert labeled.soft == [0.75, 0.75, 0.75, 0.0, 0.0]


def test_binary_search_costs_nothing_on_a_correct_answer():
    sampler = ContinuingSampler()
    labeled = binary_search_labels(sampler, TASK, PROBLEM, planted(-1), n=8, params=PARAMS)
    assert labeled.hard == [True] * 5 and labeled.rollouts == 0 and sampler.rollouts == 0


def test_monte_carlo_costs_more_than_binary_search_for_the_same_answer():
    mc, bs = ContinuingSampler(), ContinuingSampler()
    a = monte_carlo_labels(mc, TASK, PROBLEM, planted(1), n=8, params=PARAMS)
    b = binary_search_labels(bs, TASK, PROBLEM, planted(1), n=8, params=PARAMS)
    assert a.hard == b.hard and (mc.rollouts, bs.rollouts) == (32, 16)


def test_outcome_gated_mc_skips_verified_answers_and_equals_mc_otherwise():
    sampler = ContinuingSampler()
    ok = outcome_gated_mc_labels(sampler, TASK, PROBLEM, planted(-1), n=4, params=PARAMS)
    assert ok.hard == [True] * 5 and ok.rollouts == 0 and sampler.rollouts == 0
    wrong = outcome_gated_mc_labels(sampler, TASK, PROBLEM, planted(2), n=4, params=PARAMS)
    plain = monte_carlo_labels(ContinuingSampler(), TASK, PROBLEM, planted(2), n=4, params=PARAMS)
    assert (wrong.hard, wrong.soft, wrong.rollouts) == (plain.hard, plain.soft, 16) and wrong.method == "mc_outcome"


@pytest.mark.parametrize("error, probes", [(0, 1), (1, 2), (2, 3), (3, 4), (4, 4)])
def test_sequential_mc_stops_at_the_first_zero_value(error, probes):
    # prefixes 1..4 are probed in order until one holds the error; an error in the answer line
    # (step 4) leaves all 4 proper prefixes good, and the graded-for-free answer is the first error
    sampler = ContinuingSampler(wrong_per_prefix=1)
    labeled = sequential_mc_labels(sampler, TASK, PROBLEM, planted(error), n=4, params=PARAMS)
    assert labeled.first_error == error and labeled.hard == [i < error for i in range(5)]
    assert labeled.rollouts == sampler.rollouts == 4 * probes
    # a good prefix scores 3/4, except prefix 4, whose continuation is only the answer line (never off by one)
    assert labeled.soft == [0.75] * min(error, 3) + [1.0] * (error == 4) + [0.0] * (5 - error)
    assert sequential_mc_labels(ContinuingSampler(), TASK, PROBLEM, planted(-1), 4, PARAMS).rollouts == 0


def test_ground_truth_labels_follow_check_step():
    labeled = ground_truth_labels(None, TASK, PROBLEM, planted(1))
    assert labeled.hard == [True, False, False, False, False] and labeled.true_first_error == 1


def test_rest_mcts_values_by_hand():
    # m = [2, 1, 0]: v1 = 1/3, v2 = 1/3 + (2/3)/2 = 2/3, v3 = max(2/3 - (1/3)/1, 0) = 1/3
    assert rest_mcts_values([True, True, False], [2, 1, 0]) == pytest.approx([1 / 3, 2 / 3, 1 / 3])
    assert rest_mcts_values([True, True], [1, 0]) == pytest.approx([0.5, 1.0])  # a correct path ends at 1
    assert rest_mcts_values([False, True], [1, 0]) == pytest.approx([0.0, 1.0])  # clipped at 0


def row(steps, labels, soft=None, tfe=None):
    return {"prompt": "q", "completions": steps, "labels": labels, "soft_labels": soft, "true_first_error": tfe}


def test_merge_steps_takes_the_second_steps_labels():
    r = row(["a", "b", "c"], [True, True, False], [0.9, 0.5, 0.0], tfe=2)
    m = merge_steps(r, 1)
    assert m["completions"] == ["a", "b\nc"] and m["labels"] == [True, False] and m["soft_labels"] == [0.9, 0.0]
    assert m["true_first_error"] == 1  # the merged node contains the first error
    m0 = merge_steps(r, 0)
    assert m0["completions"] == ["a\nb", "c"] and m0["labels"] == [True, False] and m0["true_first_error"] == 1
    with pytest.raises(ValueError):
        merge_steps(r, 2)


def test_hnc_augment_rate_and_hrm_pairs():
    rows = [row(["a", "b", "c"], [True, True, False], tfe=2), row(["x"], [True])]
    assert hnc_augment(rows, 0.0, random.Random(0)) == []
    rows[0]["rollouts"] = 8
    new = hnc_augment(rows, 1.0, random.Random(0))
    assert len(new) == 1 and len(new[0]["completions"]) == 2 and new[0]["augment"] == "hnc"
    assert new[0]["rollouts"] == 0 and rows[0]["rollouts"] == 8  # a merged copy is derived, it costs nothing
    pairs = hrm_pair_rows(rows[0])
    assert [p["completions"] for p in pairs] == [["a\nb"], ["a", "b\nc"]]
    assert [p["labels"] for p in pairs] == [[True], [True, False]]
    assert [p["true_first_error"] for p in pairs] == [None, 1]


def test_label_solutions_rows_are_trl_stepwise_with_truth():
    rows = label_solutions([(PROBLEM, planted(2))], TASK, ContinuingSampler(), "binary_search", 2, PARAMS)
    r = rows[0]
    assert r["prompt"] == PROBLEM.prompt and r["completions"] == planted(2)
    assert r["labels"] == [True, True, False, False, False] and r["true_first_error"] == 2
    assert len(r["values"]) == 5 and r["rollouts"] == 4


def test_label_command_ground_truth_on_corrupted_solutions(tmp_path):
    out = tmp_path / "gt.jsonl"
    summary = main(LabelConfig(method="ground_truth", solutions="corrupt", num_problems=6, solutions_per_problem=2,
                               output=str(out), hnc_rate=1.0))
    rows = read_step_rows(out)
    base = [r for r in rows if not r.get("augment")]
    assert len(base) == 12 and summary["augmented_rows"] == len(rows) - 12 > 0
    assert summary["f1"] == 1.0 and summary["step_auc"] == 1.0 and summary["rollouts"] == 0
    assert json.loads(out.with_suffix(".summary.json").read_text())["rows"] == 12


def test_label_command_resumes_from_partial_rows(tmp_path):
    out = tmp_path / "gt.jsonl"
    cfg = LabelConfig(method="ground_truth", solutions="corrupt", num_problems=3, solutions_per_problem=1,
                      output=str(out))
    main(cfg)
    full = read_step_rows(out)
    # a killed run left the first row; the resumed run keeps it and labels only the rest
    marked = {**full[0], "tokens": 12345}
    (tmp_path / "gt.jsonl.partial").write_text(json.dumps(marked) + "\n")
    main(cfg)
    again = read_step_rows(out)
    assert len(again) == 3 and again[0]["tokens"] == 12345
    assert [r["completions"] for r in again] == [r["completions"] for r in full]
    assert not (tmp_path / "gt.jsonl.partial").exists()


def test_label_command_mc_with_a_tiny_policy(tiny_model_dir, tmp_path):
    cfg = LabelConfig(method="mc", solutions="corrupt", num_problems=2, solutions_per_problem=1,
                      rollouts_per_step=2, max_new_tokens=8, output=str(tmp_path / "mc.jsonl"))
    cfg.model.path = str(tiny_model_dir)
    summary = main(cfg)
    rows = read_step_rows(tmp_path / "mc.jsonl")
    assert len(rows) == 2 and summary["rollouts"] == sum(2 * (len(r["completions"]) - 1) for r in rows)


def test_read_step_rows_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"prompt": "q", "completions": ["a"], "labels": [True]}) + "\n"
                 + json.dumps({"prompt": "q", "completions": ["a", "b"], "labels": [True]}) + "\n")
    with pytest.raises(RecordError, match=r"bad.jsonl:2: field 'labels' has 1 entries for 2 steps"):
        read_step_rows(p)


def test_prm800k_import(tmp_path):
    step = lambda text, rating: {"completions": [{"text": text, "rating": rating, "flagged": False}],
                                 "human_completion": None, "chosen_completion": 0 if rating != -1 else None}
    rows = [
        {"question": {"problem": "1+1?"}, "label": {"steps": [step("1+1=2", 1), step("so 2", 0)],
                                                     "finish_reason": "solution"}},
        {"question": {"problem": "2+2?"}, "label": {"steps": [step("2+2=5", -1), step("never read", 1)],
                                                     "finish_reason": "found_error"}},
    ]
    p = tmp_path / "prm800k.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    a, b = prm800k_rows(p)
    assert a["completions"] == ["1+1=2", "so 2"] and a["labels"] == [True, True] and a["outcome"] is True
    assert b["completions"] == ["2+2=5"] and b["labels"] == [False] and b["true_first_error"] == 0
    assert prm800k_rows(p, neutral_is_bad=True)[0]["labels"] == [True, False]
    p.write_text('{"question": {}}\n')
    with pytest.raises(DatasetError, match="prm800k.jsonl:1: missing field 'question.problem'"):
        prm800k_rows(p)


def test_label_method_dataset_writes_human_step_labels(tmp_path):
    """`reasonloop label task.name=processbench method=dataset`: rows for PRM evaluation, no model."""
    import pathlib

    from reasonloop.algorithms.step_labels import LabelConfig, main

    source = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "processbench.jsonl"
    out = tmp_path / "pb.jsonl"
    summary = main(LabelConfig(task=TaskSpec("processbench", source=str(source)), split="test", method="dataset",
                               output=str(out)))
    wrong, right = read_step_rows(out)
    assert summary["rows"] == 2 and summary["method"] == "human" and summary["rollouts"] == 0
    assert wrong["completions"][1] == "She buys 4 more, so 3 + 4 = 8." and wrong["labels"] == [True, False, False]
    assert wrong["true_first_error"] == 1 and wrong["outcome"] is False and wrong["prompt"].startswith("Sue has")
    assert right["labels"] == [True, True] and right["true_first_error"] is None and right["outcome"] is True
    with pytest.raises(ConfigError, match="has no human step labels"):
        main(LabelConfig(task=TaskSpec("gsm8k", source=str(source.parent / "gsm8k.jsonl")), method="dataset",
                         output=str(tmp_path / "x.jsonl")))


def expected_probes(plan, weights):
    """Probes the plan makes for each first error e (oracle values), weighted by `weights`."""
    total = 0.0
    for e, w in enumerate(weights):
        lo, hi, probes = 0, len(weights), 0
        while hi - lo > 1:
            mid = plan[(lo, hi)]
            lo, hi, probes = (mid, hi, probes + 1) if mid <= e else (lo, mid, probes + 1)
        total += w * probes
    return total / sum(weights)


@pytest.mark.parametrize("weights", [[1, 1, 1, 1, 1], [10, 5, 1, 1, 1], [1, 1, 1, 2, 9], [6, 1, 1, 1, 1, 1, 6]])
def test_search_plan_is_never_worse_than_bisection_or_sequential_probing_by_brute_force(weights):
    from itertools import product

    from reasonloop.algorithms.step_labels import search_plan

    plan = search_plan(weights)
    size = len(weights)
    bisect = {(lo, hi): (lo + hi) // 2 for lo in range(size) for hi in range(lo + 2, size + 1)}
    sequential = {(lo, hi): lo + 1 for lo in range(size) for hi in range(lo + 2, size + 1)}
    best = expected_probes(plan, weights)
    assert best <= expected_probes(bisect, weights) + 1e-9 and best <= expected_probes(sequential, weights) + 1e-9
    if size <= 5:  # every possible plan: the DP's is optimal
        keys = sorted(bisect)
        for choice in product(*[range(lo + 1, hi) for lo, hi in keys]):
            assert best <= expected_probes(dict(zip(keys, choice)), weights) + 1e-9


def test_adaptive_search_learns_where_errors_are_and_probes_there_first():
    from reasonloop.algorithms.step_labels import AdaptiveSearch, make_labeler

    labeler = AdaptiveSearch()
    first = labeler(ContinuingSampler(), TASK, PROBLEM, planted(0), n=4, params=PARAMS)
    assert first.first_error == 0 and first.rollouts == 4 * 2  # no history: bisection (prefixes 2, then 1)
    for _ in range(5):
        labeler(ContinuingSampler(), TASK, PROBLEM, planted(0), n=4, params=PARAMS)
    sampler = ContinuingSampler()
    later = labeler(sampler, TASK, PROBLEM, planted(0), n=4, params=PARAMS)
    assert later.first_error == 0 and later.hard == [False] * 5 and later.rollouts == sampler.rollouts == 4 * 1
    assert later.method == "adaptive_search"
    # a resumed labelling run rebuilds the same counts from the rows it already wrote
    rows = label_solutions([(PROBLEM, planted(0))] * 6, TASK, ContinuingSampler(), "adaptive_search", 4, PARAMS)
    uninterrupted = AdaptiveSearch()
    for _ in range(6):
        uninterrupted(ContinuingSampler(), TASK, PROBLEM, planted(0), n=4, params=PARAMS)
    resumed = make_labeler("adaptive_search", rows)
    assert resumed.by_length == uninterrupted.by_length == {5: [6, 0, 0, 0, 0]}
    assert resumed.weights(5) == uninterrupted.weights(5)
    assert make_labeler("adaptive_search", rows)(ContinuingSampler(), TASK, PROBLEM, planted(0), 4,
                                                 PARAMS).rollouts == 4


def test_a_successful_continuation_that_rewrites_the_solutions_steps_witnesses_deeper_prefixes():
    from reasonloop.algorithms.step_labels import AdaptiveSearch, probe_with_witnesses

    steps = planted(3)  # steps 0-2 right, 3 wrong; the sampler continues right steps exactly as written
    value, rollouts, _, deepest = probe_with_witnesses(ContinuingSampler(), TASK, PROBLEM, steps, 1, 4, PARAMS, "\n")
    assert (value, rollouts, deepest) == (1.0, 4, 3)  # rewrites steps 1, 2 (right), not 3 (wrong)
    value, _, _, deepest = probe_with_witnesses(ContinuingSampler(wrong_per_prefix=4), TASK, PROBLEM, steps, 1, 4,
                                                PARAMS, "\n")
    assert (value, deepest) == (0.0, 1)  # no success, no witness
    # bisection probes prefixes 2, 3 (good) and 4 (bad); with witnesses prefix 2's continuations prove
    # prefix 3 good, so only prefix 4 is left: 2 probes
    plain, witnessed = ContinuingSampler(), ContinuingSampler()
    a = AdaptiveSearch(witnesses=False)(plain, TASK, PROBLEM, steps, n=4, params=PARAMS)
    b = AdaptiveSearch()(witnessed, TASK, PROBLEM, steps, n=4, params=PARAMS)
    assert a.hard == b.hard == [True, True, True, False, False]
    assert (a.rollouts, b.rollouts) == (12, 8) == (plain.rollouts, witnessed.rollouts)
