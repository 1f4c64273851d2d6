"""Every strategy end to end on the tiny random model, with the real engine and task scorers."""

import pytest

from reasonloop.models.policy import ModelConfig
from reasonloop.search import STRATEGIES, build_strategy_config
from reasonloop.search.scorers import CodeStepScorer, OracleStepScorer, VerifierScorer, equation_checks
from reasonloop.tasks import make_task

SMALL = {
    "greedy": {"max_new_tokens": 12},
    "majority": {"n": 2, "max_new_tokens": 12},
    "best_of_n": {"n": 2, "max_new_tokens": 12},
    "weighted_best_of_n": {"n": 2, "max_new_tokens": 12},
    "beam": {"n": 2, "beam_width": 1, "max_steps": 2, "max_step_tokens": 6, "max_new_tokens": 12},
    "dvts": {"n": 2, "beam_width": 2, "max_steps": 2, "max_step_tokens": 6, "max_new_tokens": 12},
    "mcts": {"simulations": 2, "children": 2, "max_step_tokens": 6, "max_new_tokens": 12},
    "self_correct": {"max_revisions": 1, "max_new_tokens": 12},
    "cosc": {"max_rounds": 1, "max_new_tokens": 12},
}
NO_SCORER = ("cosc",)  # the model checks its own program's output


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from reasonloop.rollout.engine import TorchEngine

    return TorchEngine.from_config(ModelConfig(path=str(tiny_model_dir), device="cpu"))


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_each_strategy_runs_on_the_tiny_model(engine, name):
    task = make_task("arithmetic", split="test", size=1, seed=0, max_ops=2)
    problems = list(task)
    scorer = OracleStepScorer(task)
    function, _ = STRATEGIES[name]
    selections = function(problems, engine, None if name in NO_SCORER else scorer,
                          build_strategy_config(name, SMALL[name]))
    assert [s.problem_id for s in selections] == [p.id for p in problems]
    for s in selections:
        assert s.budget.tokens > 0 and s.budget.model_calls >= 1
        assert s.candidates and s.text in s.candidates or name == "self_correct"
        assert (s.budget.scorer_calls > 0) == (name not in ("greedy", "majority", *NO_SCORER))


def test_token_budget_caps_compute_on_the_tiny_model(engine):
    task = make_task("arithmetic", split="test", size=2, seed=0, max_ops=2)
    function, _ = STRATEGIES["majority"]
    free = function(list(task), engine, None, build_strategy_config("majority", {"n": 6, "max_new_tokens": 8}))
    capped = function(list(task), engine, None, build_strategy_config(
        "majority", {"n": 6, "max_new_tokens": 8, "chunk": 2, "token_budget": 10}))
    for f, c in zip(free, capped):
        assert f.budget.model_calls == 6 and c.budget.model_calls < 6
        assert c.budget.tokens - 2 * 8 < 10  # at most one round (2 samples x 8 tokens) past the budget


def test_oracle_scorers_by_hand():
    task = make_task("arithmetic", split="test", size=1, seed=0)
    p = task[0]
    steps = p.meta["solution"].split("\n")
    assert OracleStepScorer(task).score([p], [steps]) == [[1.0] * len(steps)]
    wrong, bad = task.corrupt(p, __import__("random").Random(0))
    scores = OracleStepScorer(task).score([p], [wrong])[0]
    assert scores == [1.0] * bad + [0.0] * (len(wrong) - bad)
    assert VerifierScorer(task).score([p, p], [steps, ["Answer: -99"]]) == [[1.0], [0.0]]
    noisy = OracleStepScorer(task, flip_prob=1.0).score([p], [steps])[0]
    assert noisy == [0.0] * len(steps)


def test_code_scorer_executes_equations_in_the_sandbox():
    assert equation_checks(["12 * 3 = 36", "Answer: 36"]) == [(0, "12 * 3", "36")]
    scores = CodeStepScorer().score([None, None], [["12 * 3 = 36", "36 - 4 = 31", "Answer: 31"], ["hello"]])
    assert scores == [[1.0, 0.0, 1.0], [1.0]]


def test_code_scorer_handles_more_equations_than_the_output_limit():
    many = [f"{i} + 1 = {i + 1 if i % 3 else i}" for i in range(25_000)]
    (scores,) = CodeStepScorer().score([None], [many])
    assert scores == [0.0 if i % 3 == 0 else 1.0 for i in range(25_000)]
