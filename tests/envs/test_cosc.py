"""CoSC: the environment (program -> sandbox output -> verify/revise) and the `cosc` search strategy,
compared with the external-check `self_correct` on the same scripted model."""

import json
import re

import pytest
from fake_servers import JSONServer
from test_multiturn_api import reply

from reasonloop.cli import main as cli
from reasonloop.envs import CoSCEnv, EnvSpec, LongArithmeticTask
from reasonloop.evaluate.grade import run_strategy
from reasonloop.rollout.openai_backend import OpenAISampler
from reasonloop.search import STRATEGIES
from reasonloop.search.cosc import CoSCConfig
from reasonloop.search.scorers import ScorerConfig, make_scorer
from reasonloop.types import Problem


def test_the_environment_runs_the_program_and_shows_its_output():
    problem = Problem("p", "What is 12*34?", answer="408")
    env = CoSCEnv(lambda p, text: float(text.strip().endswith(f"Answer: {p.answer}")), max_rounds=2)
    opening = env.reset(problem)
    assert [m["role"] for m in opening] == ["system", "user"] and "python" in opening[0]["content"]
    step = env.step("Compute it.\n```python\nprint(12 * 35)\n```\n```python\nx = 12 * 34\nprint(x)\n```")
    assert not step.done and step.info == {"code_runs": 1}
    text = step.observation[0]["content"]  # the turn's last program ran; its output in CoSC's output block
    assert step.observation[0]["role"] == "user" and text.startswith("```output\n408\n```") and "Verify" in text
    step = env.step("```python\nprnt(1)\n```")  # an error is output the model reads, counted
    assert step.info == {"code_runs": 1, "tool_error": 1} and "NameError" in step.observation[0]["content"]
    assert "No more programs" in step.observation[0]["content"]  # max_rounds reached: the next turn is final
    done = env.step("```python\nprint(408)\n```\nAnswer: 408")  # the program is not run any more
    assert done.done and done.reward == 1.0 and done.info == {"round_limit": 1}
    env.reset(problem)
    final = env.step("Answer: 407")  # no program: the final answer
    assert final.done and final.reward == 0.0 and final.info == {}


def test_env_registry_builds_cosc_over_a_task():
    task, make_env = EnvSpec("cosc", {"task": "arithmetic", "max_rounds": 2}).build("test", 3, 0)
    env = make_env()
    assert len(task) == 3 and isinstance(env, CoSCEnv) and env.max_rounds == 2 and env.verify == task.verify
    task, _ = EnvSpec("cosc", {"task_options": {"max_digits": 7}}).build("test", 2, 0)
    assert isinstance(task, LongArithmeticTask) and task.config.max_digits == 7
    with pytest.raises(ValueError, match="no option"):
        EnvSpec("cosc", {"rounds": 2}).build("test", 2, 0)


def scripted_model(body):
    """A model that never computes in its head. With the CoSC protocol it writes a program (first with a typo),
    reads the output: an error -> a corrected program, a number -> 'Answer: <that number>'. Asked plainly (no
    protocol), or asked again, it can only guess 1."""
    messages = body["messages"]
    problem = next(m["content"] for m in messages if m["role"] == "user")
    expression = re.search(r"Compute (.+) exactly", problem).group(1)
    last = messages[-1]["content"]
    if not any("python" in m["content"] for m in messages if m["role"] == "system"):
        return reply(f"{expression} = 1\nAnswer: 1", tokens=4)
    if last.startswith("```output"):
        output = last.split("\n")[1]
        if "Error" in output:
            return reply(f"The program failed.\n```python\nprint({expression})\n```", tokens=6)
        return reply(f"The output {output} is the value asked for.\nAnswer: {output}", tokens=5)
    return reply(f"```python\nprnt({expression})\n```", tokens=7)


def test_cosc_reads_execution_output_where_self_correct_only_resamples():
    server = JSONServer(lambda path, body: scripted_model(body))
    sampler = OpenAISampler(server.url, model="m", endpoint="chat", max_retries=0)
    task = LongArithmeticTask()
    problems = [task[i] for i in range(3)]
    records, selections = run_strategy("cosc", {"max_rounds": 3}, problems, task, sampler, None)
    for r, sel, p in zip(records, selections, problems):
        assert r.correct and sel.answer == p.answer  # the answer came from the sandbox's output
        assert sel.meta["rounds"] == 2 and sel.meta["counts"]["tool_error"] == 1 and sel.meta["turns"] == 3
        assert r.tokens == 7 + 6 + 5 and r.model_calls == 3 and r.scorer_calls == 0  # the turns' generated tokens
        assert len(sel.candidates) == 3 and sel.text == sel.candidates[-1]
    # the external check finds the wrong step, but the model is never told why: it re-guesses and stays wrong
    scorer = make_scorer(ScorerConfig(kind="code"), task)
    external, ext_sel = run_strategy("self_correct", {"max_revisions": 2}, problems, task, sampler, scorer)
    assert not any(r.correct for r in external)
    assert all(s.meta["revisions"] == 2 and not s.meta["passed_check"] for s in ext_sel)
    assert all(r.model_calls == 3 and r.scorer_calls == 3 for r in external)


def test_cosc_config_and_scorer_are_checked():
    assert STRATEGIES["cosc"][1] is CoSCConfig
    with pytest.raises(ValueError):
        CoSCConfig(max_rounds=0)
    with pytest.raises(ValueError, match="no scorer"):
        STRATEGIES["cosc"][0]([], None, make_scorer(ScorerConfig(kind="code"), LongArithmeticTask()), CoSCConfig())


def test_search_cosc_through_the_cli_on_a_tiny_model(tiny_model_dir, tmp_path):
    args = ["search", f"model.path={tiny_model_dir}", "task.name=arithmetic", "strategy=cosc",
            "options={max_rounds: 2, max_new_tokens: 16, max_tokens: 200}", "num_problems=3",
            f"output_dir={tmp_path}", "run_name=c"]
    assert cli(args) == 0
    records = [json.loads(line) for line in (tmp_path / "c" / "records.jsonl").read_text().splitlines()]
    results = json.loads((tmp_path / "c" / "results.json").read_text())
    assert len(records) == 3 and results["strategy"] == "cosc"
    for r in records:  # a random tiny model writes no program: one turn, its tokens charged
        assert r["model_calls"] == r["meta"]["turns"] >= 1 and 1 <= r["tokens"] <= 16 * r["model_calls"]
        assert r["meta"]["messages"][0]["role"] == "system"


def test_eval_over_the_cosc_environment_counts_programs_and_errors(tmp_path):
    server = JSONServer(lambda path, body: scripted_model(body))
    args = ["eval", "sampler.kind=openai", f"sampler.base_url={server.url}", "sampler.max_retries=0", "model.path=m",
            "env.name=cosc", "env.options.task=long_arithmetic", "env.options.max_rounds=3", "num_problems=2",
            "samples_per_prompt=0", f"output_dir={tmp_path}", "run_name=cosc"]
    assert cli(args) == 0
    results = json.loads((tmp_path / "cosc" / "results.json").read_text())
    # per problem: a program with a typo (NameError, read), the fixed program, the answer from its output
    assert results["greedy_accuracy"] == 1.0 and results["greedy/turns"] == 3.0
    assert results["greedy/code_runs_per_trajectory"] == 2.0 and results["greedy/tool_error_per_trajectory"] == 1.0
    assert results["greedy/completion_tokens_per_trajectory"] == 18.0
    server.close()
