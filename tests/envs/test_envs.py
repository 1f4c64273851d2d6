"""Environments, tools and tool-call parsing (no model)."""

import pytest

from reasonloop.envs import (
    EnvSpec,
    PerfectOpponent,
    PythonTool,
    RandomOpponent,
    TaskEnv,
    TicTacToeEnv,
    ToolEnv,
    Trajectory,
    calculator_tool,
    parse_tool_calls,
    summarize,
)
from reasonloop.envs.code_repair import BANK
from reasonloop.envs.game import legal_moves, play, winner
from reasonloop.envs.tools import calculate
from reasonloop.tasks import make_task
from reasonloop.types import Problem


def call(name, **arguments):
    import json

    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


@pytest.mark.parametrize("name", ["arithmetic", "countdown", "linear_equation", "long_multiplication", "ordering"])
def test_task_env_is_the_task_with_one_turn(name):
    task = make_task(name, split="test", size=6, seed=1)
    for problem in task:
        for completion in (problem.meta["solution"], "Answer: 0", "no answer at all"):
            env = TaskEnv(task)
            assert env.reset(problem) == [{"role": "user", "content": problem.prompt}]
            step = env.step(completion)
            assert step.done and step.observation == []
            assert step.reward == task.verify(problem, completion)


def test_parse_hermes_calls_in_order_and_errors():
    text = (call("a", x=1) + " then " + '<tool_call>{"name": "b", "arguments": "{\\"y\\": 2}"}</tool_call>'
            + '<tool_call>not json</tool_call><tool_call>{"arguments": {}}</tool_call>'
            + '<tool_call>{"name": "c", "arguments": [1]}</tool_call><tool_call>{"name": "d"')
    calls, errors = parse_tool_calls(text)
    assert [(c.name, c.arguments) for c in calls] == [("a", {"x": 1}), ("b", {"y": 2})]
    assert [e.kind for e in errors] == ["malformed_tool_call"] * 4
    assert "closing" in errors[-1].message


def test_parse_python_blocks_only_when_asked_and_raw_newlines_in_json():
    text = "Let me compute.\n```python\nprint(6 * 7)\n```\n" + '<tool_call>{"name": "python", "arguments": {"code": "1\n+1"}}</tool_call>'
    assert [c.name for c in parse_tool_calls(text)[0]] == ["python"]
    calls, errors = parse_tool_calls(text, python_blocks=True)
    assert [c.arguments["code"] for c in calls] == ["print(6 * 7)\n", "1\n+1"] and errors == []


def test_calculator_is_exact_and_refuses_code():
    assert calculate("123456789123 * 987654321987") == str(123456789123 * 987654321987)
    assert calculate("-(2 + 3) ** 2 // 4 % 7") == str(-(2 + 3) ** 2 // 4 % 7)
    assert calculate("max(3, abs(-9))") == "9"
    for bad in ("__import__('os').system('true')", "(1).__class__", "9 ** 9 ** 9", "x + 1", "[1, 2]", "2 +"):
        with pytest.raises(ValueError):
            calculate(bad)


def test_user_function_tool_schema_and_calls():
    from reasonloop.rollout.multiturn import tool_from_function

    def lookup(city: str, units: str = "metric") -> str:
        """Look up the weather.

        Args:
            city: the city
            units: metric or imperial
        """
        return f"{city}:{units}"

    tool = tool_from_function(lookup)
    fn = tool.schema["function"]
    assert fn["name"] == "lookup" and fn["parameters"]["required"] == ["city"]
    assert fn["parameters"]["properties"]["units"]["type"] == "string"
    task = make_task("arithmetic", split="test", size=1, seed=0)
    env = ToolEnv(task, [tool])
    env.reset(task[0])
    step = env.step(call("lookup", city="Oslo") + call("lookup", town="Oslo"))
    assert step.observation[0]["content"] == "Oslo:metric"
    assert "bad arguments" in step.observation[1]["content"]
    assert step.info == {"tool_calls": 2, "bad_arguments": 1} and not step.done


def test_python_tool_keeps_state_drops_failed_cells_and_limits():
    tool = PythonTool(timeout=3.0, max_output_chars=50)
    assert tool.run("x = 2 ** 70\nx").content.strip() == str(2**70)
    assert tool.run("y = x + 1\nprint('y is', y)").content.strip() == f"y is {2**70 + 1}"
    failed = tool.run("z = 1\nundefined_name")
    assert failed.error == "tool_error" and "NameError" in failed.content
    assert "NameError" in tool.run("z").content  # the failed cell's z was not kept
    assert tool.run("y - x").content.strip() == "1"
    long = tool.run("print('a' * 500)")
    assert long.content.startswith("a" * 50) and "more characters cut" in long.content
    assert tool.run("while True:\n    pass").error == "tool_timeout"
    assert tool.run("y - x").content.strip() == "1"  # state survives a timeout


def test_tool_env_counts_errors_budget_and_turn_rewards():
    task = make_task("arithmetic", split="test", size=1, seed=0)
    problem = task[0]
    env = ToolEnv(task, [calculator_tool()], max_tool_calls=2, call_reward=0.1, error_penalty=0.05)
    env.reset(problem)
    ok = env.step(call("calculator", expression="6*7"))
    assert ok.observation == [{"role": "tool", "name": "calculator", "content": "42"}]
    assert ok.reward == pytest.approx(0.1) and ok.info == {"tool_calls": 1}
    bad = env.step(call("calculator", expression="import os") + call("python", code="1"))
    assert bad.info == {"tool_calls": 1, "tool_error": 1, "tool_budget_exceeded": 1}
    assert bad.reward == pytest.approx(-0.1) and "budget" in bad.observation[-1]["content"]
    final = env.step(problem.meta["solution"])
    assert final.done and final.reward == 1.0


def test_long_arithmetic_is_long_exact_and_split():
    train, _ = EnvSpec("long_arithmetic").build("train", 50, 0)
    test, make_env = EnvSpec("long_arithmetic", {"tools": ["calculator"]}).build("test", 50, 0)
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    for p in test:
        assert str(eval(p.meta["expression"])) == p.answer  # our own generated expression
        assert test.verify(p, p.meta["solution"]) == 1.0 and test.verify(p, f"Answer: {int(p.answer) + 1}") == 0.0
    env = make_env()
    env.reset(test[0])
    step = env.step(call("calculator", expression=test[0].meta["expression"]))
    assert step.observation[0]["content"] == test[0].answer


def test_every_code_repair_bug_fails_a_test_and_the_fix_passes():
    from reasonloop.verify.code import run_tests

    for name, _, source, tests, bugs in BANK:
        assert run_tests(source, tests).passed, name
        for original, buggy in bugs:
            assert original in source
            assert not run_tests(source.replace(original, buggy, 1), tests).passed, (name, buggy)


def test_code_repair_env_gives_feedback_then_ends():
    task, make_env = EnvSpec("code_repair", {"max_attempts": 2}).build("test", 4, 0)
    problem = task[0]
    env = make_env()
    env.reset(problem)
    first = env.step("```python\n" + problem.meta["buggy"] + "```")
    assert not first.done and first.observation[0]["content"].startswith("Test failed: assert")
    assert env.step("still no code").done
    env.reset(problem)
    assert env.step(problem.meta["solution"]).reward == 1.0


def test_tictactoe_rules_and_opponents():
    assert winner("XXX.O.O..") == "X" and winner("XOXXOOOXX") == "draw" and winner("." * 9) is None
    perfect = PerfectOpponent()
    board, mark = "." * 9, "X"
    while winner(board) is None:
        board = play(board, perfect.move(board, legal_moves(board), mark), mark)
        mark = "O" if mark == "X" else "X"
    assert winner(board) == "draw"  # perfect play both sides
    problem = Problem("g", "Tic-tac-toe.", meta={"board": "." * 9, "mark": "X", "model_first": True})
    env = TicTacToeEnv(PerfectOpponent(), max_illegal=1)
    env.reset(problem)
    step = env.step("Move: 5")
    assert not step.done and "Opponent plays 1" in step.observation[0]["content"]
    assert env.step("Move: 1").info == {"illegal_move": 1}
    forfeit = env.step("I pass")
    assert forfeit.done and forfeit.reward == -1.0 and forfeit.info["forfeit"] == 1
    # the random opponent cannot stop a fork: X at 1 and 9 after O took 5 ... play a won line
    env = TicTacToeEnv(RandomOpponent(3))
    env.reset(problem)
    rewards = []
    for cell in (1, 2, 3, 4, 5, 6, 7, 8, 9):
        if cell in legal_moves(env.board):
            step = env.step(f"Move: {cell}")
            rewards.append(step.reward)
            if step.done:
                break
    assert step.done and step.reward in (-1.0, 0.0, 1.0) and step.reward == {"X": 1.0, "O": -1.0,
                                                                              "draw": 0.0}[winner(env.board)]


def test_tictactoe_problems_are_reproducible_and_opponent_may_open():
    task, make_env = EnvSpec("tictactoe").build("test", 20, 0)
    again, _ = EnvSpec("tictactoe").build("test", 20, 0)
    assert [p.prompt for p in task] == [p.prompt for p in again]
    second = next(p for p in task if not p.meta["model_first"])
    opening = make_env().reset(second)[-1]["content"]
    assert "Opponent plays" in opening


def test_env_spec_errors_name_the_key():
    with pytest.raises(ValueError, match="no option"):
        EnvSpec("long_arithmetic", {"digits": 3}).build("test", 2, 0)
    with pytest.raises(ValueError, match="unknown tool"):
        EnvSpec("arithmetic", {"tools": ["shell"]}).build("test", 2, 0)
    with pytest.raises(ValueError, match="unknown opponent"):
        EnvSpec("tictactoe", {"opponent": "human"}).build("test", 2, 0)


def test_trajectory_check_sample_and_summary():
    t = Trajectory("p", "q", prompt_ids=[1, 2], token_ids=[5, 6, 7, 8], loss_mask=[1, 1, 0, 1],
                   logprobs=[-0.1, -0.2, 0.0, -0.3], turns=[(0, 2), (3, 4)], turn_rewards=[0.1, 1.0],
                   messages=[{"role": "assistant", "content": "a"}, {"role": "tool", "content": "x"},
                             {"role": "assistant", "content": "b"}], counts={"tool_calls": 1})
    t.check()
    sample = t.to_sample()
    assert sample.token_ids == [5, 6, 7, 8] and sample.meta["loss_mask"] == [1, 1, 0, 1]
    assert sample.rewards["reward"] == pytest.approx(1.1) and sample.correct and sample.text == "a\nb"
    stats = summarize([t, Trajectory("p2", "q", ending="max_turns")])
    assert stats["turns"] == 1.0 and stats["tool_calls_per_trajectory"] == 0.5 and stats["ended_max_turns"] == 1.0
    t.loss_mask.pop()
    with pytest.raises(ValueError, match="mask"):
        t.check()
