"""bench/tool_learning.py: its demonstrations verify and render token-exact; one end-to-end run at a tiny budget."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tool_learning import CONDITIONS, demonstrations
from reasonloop.envs.demonstrations import parse_demonstration


def test_demonstrations_are_the_environment_answered_with_one_calculator_call():
    rows = demonstrations(5, seed=0)
    for k, row in enumerate(rows):
        demo = parse_demonstration(json.loads(json.dumps(row)), f"row {k}")
        roles = [m["role"] for m in demo.messages]
        assert roles == ["system", "user", "assistant", "tool", "assistant"]
        expression = demo.messages[1]["content"].removeprefix("Compute ").split(" exactly")[0]
        a, b = (int(x) for x in expression.split(" * "))
        assert 6 <= len(str(a)) <= 10 and 6 <= len(str(b)) <= 10
        assert demo.messages[3]["content"] == str(a * b) and demo.messages[4]["content"] == f"Answer: {a * b}"
    assert CONDITIONS["tools_refused"]["max_tool_calls"] == 0 and "tools" not in CONDITIONS["no_tool_task"]


def test_guess_demonstrations_answer_at_once_and_wrong():
    rows = demonstrations(40, seed=1, guess_frac=0.5)
    guesses = [r for r in rows if [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]]
    calls = [r for r in rows if len(r["messages"]) == 5]
    assert len(guesses) + len(calls) == 40 and 10 <= len(guesses) <= 30  # about half, seeded
    for row in guesses:
        expression = row["messages"][1]["content"].removeprefix("Compute ").split(" exactly")[0]
        a, b = (int(x) for x in expression.split(" * "))
        guess = row["messages"][2]["content"].removeprefix("Answer: ")
        assert guess != str(a * b) and len(guess) in (len(str(a * b)), len(str(a * b)) + 1)
    assert all("tool_calls" not in m for r in demonstrations(5, seed=1, guess_frac=1.0) for m in r["messages"])


@pytest.mark.slow
def test_bench_end_to_end_at_a_tiny_budget(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tool_learning.py"), "--demos", "16", "--demo-steps", "2",
         "--batch", "8", "--grpo-steps", "1", "--grpo-prompts", "2", "--grpo-samples", "2", "--eval", "2",
         "--max-new-tokens", "8", "--hidden", "32", "--layers", "1", "--output-dir", str(tmp_path / "run")],
        check=False, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"metric", "ours", "peer", "ratio", "stages", "demo", "rl", "load_avg_1_5_15"} <= set(result)
    assert list(result["stages"]) == ["fresh", "demonstrations", "rl"]
    for stage in result["stages"].values():
        assert list(stage) == list(CONDITIONS)
        assert all(0.0 <= m["accuracy"] <= 1.0 and m["turns"] >= 1.0 for m in stage.values())
    assert result["demo"]["steps"] == 2 and result["demo"]["train_tokens"] > 0 and result["rl"]["steps"] == 1
    assert result["ours"] == result["stages"]["rl"]["tools"]["accuracy"]
    assert result["peer"] == result["stages"]["demonstrations"]["tools"]["accuracy"]
