"""First-error F1 and step AUC against hand-computed values."""

import math

import pytest

from reasonloop.evaluate.process import (
    best_threshold_f1,
    evaluate_labels,
    evaluate_step_scores,
    first_error_f1,
    predicted_first_error,
    step_auc,
    step_truth,
)


def test_step_truth_and_predicted_first_error():
    assert step_truth(4, 2) == [True, True, False, False] and step_truth(2, None) == [True, True]
    assert predicted_first_error([0.9, 0.6, 0.4, 0.9]) == 2
    assert predicted_first_error([0.9, 0.6], threshold=0.7) == 1 and predicted_first_error([0.9]) is None


def test_first_error_f1_is_the_harmonic_mean_of_the_two_accuracies():
    # erroneous: (1 vs 1) ok, (0 vs 2) wrong, (None vs 3) wrong -> 1/3; correct: None ok, 1 wrong -> 1/2
    m = first_error_f1([1, 0, None, None, 1], [1, 2, 3, None, None])
    assert m["acc_error"] == pytest.approx(1 / 3) and m["acc_correct"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))  # 0.4
    assert (m["n_error"], m["n_correct"]) == (3, 2)
    assert first_error_f1([0], [1])["f1"] == 0.0 and math.isnan(first_error_f1([0], [1])["acc_correct"])
    with pytest.raises(ValueError):
        first_error_f1([0], [0, 1])


def test_step_auc_by_hand():
    assert step_auc([0.9, 0.8, 0.3, 0.8], [True, True, False, False]) == 0.875  # one tie counts 1/2
    assert step_auc([0.1, 0.2], [True, False]) == 0.0 and step_auc([1, 1, 1], [True, False, True]) == 0.5
    assert math.isnan(step_auc([0.3, 0.4], [True, True]))


def test_evaluate_step_scores_and_labels():
    scores = [[0.9, 0.2, 0.1], [0.8, 0.7]]
    m = evaluate_step_scores(scores, [1, None])
    assert m["f1"] == 1.0 and m["step_auc"] == 1.0
    rows = [
        {"labels": [True, False, False], "soft_labels": [0.5, 0.0, 0.0], "true_first_error": 1, "rollouts": 8},
        {"labels": [True, True], "soft_labels": [0.25, 1.0], "true_first_error": None, "rollouts": 4},
        {"labels": [False, False], "soft_labels": [0.0, 0.0], "true_first_error": 1, "rollouts": 4},
        {"labels": [True], "true_first_error": 0, "augment": "hnc"},  # augmented rows are not scored
    ]
    m = evaluate_labels(rows)
    assert m["acc_error"] == 0.5 and m["acc_correct"] == 1.0 and m["f1"] == pytest.approx(2 / 3)
    # good steps 0.5, 0.25, 1.0, 0.0 vs bad 0.0, 0.0, 0.0: pairs won 3*3 + ties 1*3*0.5 = 10.5 of 12
    assert m["step_auc"] == pytest.approx(10.5 / 12)
    assert m["rollouts"] == 16 and m["located_errors"] == 1 and m["rollouts_per_located_error"] == 16


def test_evaluate_labels_soft_threshold_and_augmented_rows():
    rows = [
        {"labels": [True, False], "soft_labels": [0.25, 0.0], "true_first_error": 1, "rollouts": 4},
        {"labels": [True, True], "soft_labels": [0.75, 1.0], "true_first_error": None, "rollouts": 4},
        {"labels": [False], "soft_labels": [0.0], "true_first_error": 0, "augment": "hnc", "rollouts": 0},
    ]
    hard = evaluate_labels(rows)
    assert hard["f1"] == 1.0 and hard["n_error"] == 1  # the augmented row is left out
    # threshold 0.5: step 0 of row 0 (0.25) becomes the predicted first error: wrong
    soft = evaluate_labels(rows, soft_threshold=0.5)
    assert soft["acc_error"] == 0.0 and soft["acc_correct"] == 1.0 and soft["located_errors"] == 0
    both = evaluate_labels(rows, include_augmented=True)
    assert both["n_error"] == 2 and both["acc_error"] == 1.0 and both["rollouts"] == 8


def test_best_threshold_f1_by_hand():
    scores, truth = [[0.9, 0.3], [0.7, 0.6]], [1, None]
    # 0.5: predicted [1, None] -> both right (F1 1); 0.65: [1, 1] -> the correct solution is flagged (F1 0)
    t, m = best_threshold_f1(scores, truth, [0.65, 0.5])
    assert t == 0.5 and m["f1"] == 1.0
    t, m = best_threshold_f1(scores, truth, [0.2])  # nothing flagged: the error is missed
    assert m["acc_error"] == 0.0 and m["acc_correct"] == 1.0
    with pytest.raises(ValueError):
        best_threshold_f1(scores, truth, [])
