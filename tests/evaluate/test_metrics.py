"""Evaluation metrics by hand: Wilson interval, pass@k / maj@k summaries."""

import pytest

from reasonloop.evaluate.metrics import pass_at_k, powers_of_two_upto, summarize, wilson_ci95
from reasonloop.types import EvalRecord


def test_wilson_interval_by_hand():
    low, high = wilson_ci95(5, 10)
    # p = 0.5, z = 1.96: centre 0.5, half = 1.96*sqrt(0.025 + 0.0096)/1.384 = 0.2366 (up to z rounding)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
    assert wilson_ci95(10, 10)[1] == pytest.approx(1.0) and wilson_ci95(10, 10)[0] == pytest.approx(0.7225, abs=1e-3)


def test_powers_of_two():
    assert powers_of_two_upto(6) == [1, 2, 4, 6] and powers_of_two_upto(4) == [1, 2, 4]


def _record(correct, answers, oks, tokens, iid=True):
    return EvalRecord(problem_id="p", task="t", strategy="s", answer="1", selected=None, correct=correct,
                      predictions=answers, sample_correct=oks, tokens=tokens, model_calls=len(answers),
                      scorer_calls=0, meta={"iid_candidates": iid})


def test_summarize_accuracy_tokens_pass_and_maj_at_k():
    records = [_record(True, ["1", "2", "2", "1"], [True, False, False, True], 40),
               _record(False, ["3", "3", "1", None], [False, False, True, False], 20)]
    out = summarize(records)
    assert out["accuracy"] == 0.5 and out["tokens_per_problem"] == 30.0
    assert out["pass@1"] == pytest.approx((0.5 + 0.25) / 2)
    assert out["pass@4"] == 1.0
    assert out["pass@2"] == pytest.approx((pass_at_k(4, 2, 2) + pass_at_k(4, 1, 2)) / 2)
    # maj@k averages over the k-subsets of the 4 samples (ties go to the earlier sample), not the first k:
    # maj@1 = the mean sample accuracy: (2/4 + 1/4) / 2.
    # maj@2, record 1: {1,2}->1 ok, {1,2'}->1 ok, {1,1'} ok, {2,2'} no, {2,1'}->2 no, {2',1'}->2 no: 3/6;
    # record 2: only {"1", None} votes "1": 1/6.
    assert out["maj@1"] == pytest.approx(0.375) and out["maj@2"] == pytest.approx((3 / 6 + 1 / 6) / 2)
    # maj@4: record 1 ties 1/2 -> "1" correct; record 2: "3" wins -> wrong
    assert out["maj@4"] == 0.5


def test_summarize_skips_pass_at_k_for_search_candidates():
    out = summarize([_record(True, ["1"], [True], 5, iid=False)])
    assert "pass@1" not in out and out["accuracy"] == 1.0
