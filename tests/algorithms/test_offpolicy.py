"""Off-policy correction maths against hand-computed numbers."""

import math

import pytest
import torch

from reasonloop.algorithms.offpolicy import (
    OffPolicyConfig,
    correction_metrics,
    correction_weights,
    mismatch_kl,
    staleness_histogram,
)

# token ratios pi_old / mu = 2, 0.5, 3 in row 0; row 1 has one real token (ratio 1) and padding
TRAINER = torch.log(torch.tensor([[0.5, 0.2, 0.9], [0.3, 0.7, 0.7]]))
SAMPLER = torch.log(torch.tensor([[0.25, 0.4, 0.3], [0.3, 0.1, 0.1]]))
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


def weights(mode, **kw):
    w, changed = correction_weights(TRAINER, SAMPLER, MASK, OffPolicyConfig(mode, **kw))
    return w.tolist(), changed.tolist()


def close(a, b):
    return all(x == pytest.approx(y, abs=1e-6) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


def test_token_truncation_caps_large_ratios_only():
    w, changed = weights("token_tis", cap=2.5)
    assert close(w, [[2.0, 0.5, 2.5], [1.0, 0.0, 0.0]])
    assert changed == [[False, False, True], [False, False, False]]


def test_token_mask_drops_tokens_outside_the_band():
    w, changed = weights("token_mask", low=0.6, high=2.5)
    assert close(w, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert changed == [[False, True, True], [False, False, False]]


def test_sequence_truncation_uses_the_product_of_ratios():
    w, changed = weights("sequence_tis", cap=2.0)  # 2 * 0.5 * 3 = 3 -> 2
    assert close(w, [[2.0, 2.0, 2.0], [1.0, 0.0, 0.0]])
    assert changed == [[True, True, True], [False, False, False]]
    w, changed = weights("sequence_tis", cap=4.0)
    assert close(w, [[3.0, 3.0, 3.0], [1.0, 0.0, 0.0]]) and not any(changed[0])


def test_sequence_mask_uses_the_geometric_mean():
    # row 0: 3 ** (1/3) = 1.442
    w, changed = weights("sequence_mask", low=0.5, high=1.4)
    assert close(w, [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]) and changed[0] == [True] * 3
    w, changed = weights("sequence_mask", low=0.5, high=1.5)
    assert close(w, [[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]) and not any(changed[0])


def test_none_changes_nothing():
    w, changed = weights("none")
    assert close(w, [[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]) and not any(c for row in changed for c in row)


def test_mismatch_kl_is_the_k3_estimate_over_real_tokens():
    k3 = [(2 - 1) - math.log(2), (0.5 - 1) - math.log(0.5), (3 - 1) - math.log(3), 0.0]
    assert float(mismatch_kl(TRAINER, SAMPLER, MASK)) == pytest.approx(sum(k3) / 4, abs=1e-6)
    assert float(mismatch_kl(SAMPLER, SAMPLER, MASK)) == 0.0


def test_staleness_histogram_and_metrics():
    assert staleness_histogram([5, 5, 4, 3], trainer_version=5) == {0: 2, 1: 1, 2: 1}
    with pytest.raises(ValueError, match="newer than the trainer"):
        staleness_histogram([6], trainer_version=5)
    _, changed = correction_weights(TRAINER, SAMPLER, MASK, OffPolicyConfig("token_tis", cap=2.5))
    m = correction_metrics(TRAINER, SAMPLER, MASK, changed, [5, 4], trainer_version=5)
    assert m["offpolicy/clipped_share"] == pytest.approx(1 / 4)
    assert m["offpolicy/staleness_mean"] == 0.5 and m["offpolicy/staleness_max"] == 1.0
    assert m["offpolicy/staleness_0"] == 0.5 and m["offpolicy/staleness_1"] == 0.5


def test_weights_carry_no_gradient_and_config_is_checked():
    t = TRAINER.clone().requires_grad_(True)
    w, _ = correction_weights(t, SAMPLER, MASK, OffPolicyConfig())
    assert not w.requires_grad
    with pytest.raises(ValueError, match="offpolicy.mode"):
        OffPolicyConfig("tis")
    with pytest.raises(ValueError, match="low <= 1 <= high"):
        OffPolicyConfig(low=1.5)


def test_docstring_examples():
    import doctest

    import reasonloop.algorithms.offpolicy as module

    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted >= 3
