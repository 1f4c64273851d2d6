"""The reasoning-gym adapter: any task by name, deterministic, disjoint splits, containment-proof scoring."""

import pytest

from reasonloop.tasks import make_task


@pytest.fixture(scope="module")
def chain_sum():
    return make_task("reasoning_gym:chain_sum", size=30, seed=1)


def test_gold_scores_one_and_containment_scores_zero(chain_sum):
    for i in range(30):
        p = chain_sum[i]
        assert chain_sum.verify(p, p.reference_solution) == 1.0
        assert chain_sum.verify(p, f"<think>hmm</think>Answer: {p.answer}") == 1.0
        # every candidate listed: the raw reasoning-gym scorer gives containment credit, we give 0
        listed = " ".join(str(k) for k in range(-20000, 20000, 7)) + f" {p.answer}"
        raw = chain_sum._stream().score_answer(answer=listed, entry=p.meta["gym_entry"])
        assert raw > 0.0
        assert chain_sum.verify(p, f"Answer: {listed}") == 0.0
        assert chain_sum.verify(p, rf"\boxed{{{p.answer}}} or \boxed{{{int(p.answer) + 1}}}") == 0.0
        assert chain_sum.verify(p, "Answer: 0.5") == 0.0 or p.answer == "0.5"


def test_deterministic_and_disjoint(chain_sum):
    again = make_task("reasoning_gym:chain_sum", size=30, seed=1)
    assert [chain_sum[i].prompt for i in range(30)] == [again[i].prompt for i in range(30)]
    test = make_task("reasoning_gym:chain_sum", size=20, seed=1, split="test")
    assert not {chain_sum[i].prompt for i in range(30)} & {test[i].prompt for i in range(20)}


def test_gym_options_and_unknown_names():
    task = make_task("reasoning_gym:chain_sum", size=5, min_terms=5, max_terms=5)
    assert task[0].prompt.count("+") + task[0].prompt.count("-") >= 4
    with pytest.raises(KeyError, match="chain_sum"):
        make_task("reasoning_gym:no_such_gym_task", size=1)[0]
