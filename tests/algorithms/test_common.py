
import pytest
import torch

from reasonloop.algorithms.common import lr_factor, masked_mean, sft_loss
from reasonloop.algorithms.sft import TrainConfig, data_order


def test_masked_mean_and_sft_loss_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert masked_mean(values, mask).item() == pytest.approx((1 + 3 + 6) / 3)
    assert masked_mean(values, mask, dim=1).tolist() == pytest.approx([2.0, 6.0])
    assert masked_mean(values, torch.zeros_like(mask)).item() == 0.0
    logprobs = torch.tensor([[-1.0, -2.0], [-0.5, -9.0]])
    assert sft_loss(logprobs, torch.tensor([[1.0, 1.0], [1.0, 0.0]])).item() == pytest.approx(3.5 / 3)


def test_lr_schedule():
    assert lr_factor(0, 100, 10, "cosine", 0.1) == pytest.approx(0.1)  # warmup 1/10
    assert lr_factor(9, 100, 10, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "cosine", 0.1) == pytest.approx(0.55)  # half way: mean of 1 and 0.1
    assert lr_factor(100, 100, 10, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(55, 100, 10, "linear", 0.0) == pytest.approx(0.5)
    assert lr_factor(70, 100, 0, "constant", 0.1) == 1.0


def test_data_order_is_deterministic_and_covers_epochs():
    order = data_order(5, total_steps=4, batch_size=3, seed=1)
    assert order == data_order(5, total_steps=4, batch_size=3, seed=1)
    assert len(order) == 12 and sorted(order[:5]) == [0, 1, 2, 3, 4] and sorted(order[5:10]) == [0, 1, 2, 3, 4]
    assert TrainConfig(epochs=2, batch_size=4, micro_batch_size=2).total_steps(10) == 5
    TrainConfig(batch_size=6, micro_batch_size=4)  # the step's last micro-batch holds the 2 left over
    with pytest.raises(ValueError, match="must be >= 1"):
        TrainConfig(batch_size=6, micro_batch_size=0)
