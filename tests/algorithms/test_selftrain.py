"""Self-training family: pure selection/measurement maths, each option's loop on a tiny budget,
hint-free rationalization, and resume inside an iteration."""

import random
import typing

import pytest

import reasonloop.algorithms.selftrain as st
from reasonloop.algorithms.selftrain import (
    BStarConfig,
    SelfTrainConfig,
    balance_score,
    explore_exploit,
    leaks_hint,
    longest_verified_prefix,
    select_correct,
)
from reasonloop.algorithms.sft import TrainConfig
from reasonloop.models.policy import ModelConfig
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import read_jsonl
from reasonloop.tasks import make_task
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Sample, split_steps


def _s(pid, text, ok):
    return Sample(pid, "Q", text, token_ids=[1] * len(text), rewards={"correct": 1.0 if ok else 0.0})


def test_select_correct_dedups_and_caps():
    samples = [_s("a", "x", True), _s("a", "x ", True), _s("a", "y", True), _s("a", "z", True), _s("b", "w", False)]
    assert [s.text for s in select_correct(samples, 2)] == ["x", "y"]


def test_balance_score_by_hand():
    # query 1: 4 selected, 4 sound, n*=4 -> 1; query 2: 2 selected, 1 sound -> 1/4 * 1/2; query 3: empty -> 0
    assert balance_score([4, 2, 0], [4, 1, 0], target_correct=4) == pytest.approx((1 + 0.125 + 0) / 3)
    assert balance_score([8], [6], target_correct=4) == pytest.approx(6 / 8)  # capped exploration term
    with pytest.raises(ValueError):
        balance_score([1], [], 4)


def test_explore_exploit_uses_step_checks():
    task = make_task("arithmetic", split="train", size=2, seed=0)
    p0, p1 = list(task)
    good = p0.reference_solution
    # right answer through a wrong step: the outcome verifier keeps it, the step check does not
    lucky_steps = split_steps(good)
    lucky_steps[0] = lucky_steps[0] + "0"
    lucky = "\n".join(lucky_steps)
    samples = [_s(p0.id, good, True), _s(p0.id, lucky, True), _s(p1.id, "Answer: 0", False), _s(p1.id, "?", False)]
    kept = select_correct(samples, 4)
    m = explore_exploit(task, [p0, p1], samples, kept, k=2, target_correct=2)
    assert m["explore/pass@1"] == 0.5 and m["explore/pass@2"] == 0.5
    assert m["explore/distinct_correct"] == 1.0  # 2 distinct correct on p0, 0 on p1, per problem
    assert m["exploit/kept_step_precision"] == 0.5
    assert m["bstar/balance_score"] == pytest.approx((min(1 / 2, 1) * 1 / 2 + 0) / 2)


def test_longest_verified_prefix():
    task = make_task("arithmetic", split="train", size=1, seed=0, min_ops=3, max_ops=3)
    p = task[0]
    steps, bad = task.corrupt(p, random.Random(0))
    assert longest_verified_prefix(task, p, steps) == steps[:bad]
    assert longest_verified_prefix(task, p, split_steps(p.reference_solution)) == split_steps(p.reference_solution)


def test_leaks_hint():
    assert leaks_hint("1 + 2 = 3\nHint: the answer is 3.\nAnswer: 3", "Hint: the answer is 3.\n")
    assert not leaks_hint("1 + 2 = 3\nAnswer: 3", "Hint: the answer is 3.\n")


class ScriptedEngine:
    """Stands in for TorchEngine: the reference solution on even problems and on hinted prompts,
    a solution with one wrong step otherwise; hinted prompts of problem 1 echo the hint."""

    calls: typing.ClassVar[list] = []

    def __init__(self, model, tokenizer, **kw):
        self.model, self.model_id = model, "scripted"  # shares the policy, as TorchEngine does

    def generate(self, prompts, samples_per_prompt=1, params=None, prefixes=None):
        ScriptedEngine.calls.append((len(prompts), samples_per_prompt, params.temperature if params else None))
        out = []
        for prompt in prompts:
            base = prompt.split("Hint:")[0]
            task = make_task("arithmetic", split="train", size=1, seed=0)
            problem = _problem_for(base)
            idx = int(problem.id.rsplit("/", 1)[1])
            group = []
            for j in range(samples_per_prompt):
                if "Hint:" in prompt:
                    text = problem.reference_solution
                    if idx % 4 == 1:
                        text = prompt[len(base):] + text  # a rationale that quotes the hint: must be dropped
                elif idx % 2 == 0:
                    text = problem.reference_solution
                else:
                    steps, _ = task.corrupt(problem, random.Random(j))
                    text = "\n".join(steps)
                group.append(Sample("", prompt, text, token_ids=[0] * len(text), finish_reason="eos"))
            out.append(group)
        return out


_PROBLEMS: dict = {}


def _problem_for(prompt):
    return _PROBLEMS[prompt]


def _register(spec, seeds, size):
    for seed, split in seeds:
        for p in spec.build(split=split, size=size, seed=seed):
            _PROBLEMS[p.prompt] = p


def _cfg(tmp_path, model_dir, **kw):
    spec = TaskSpec("arithmetic", {"min_ops": 2, "max_ops": 2})
    defaults = {"model": ModelConfig(path=str(model_dir), use_chat_template=False), "task": spec,
                    "iterations": 1, "problems_per_iteration": 6, "samples_per_prompt": 2,
                    "sampling": SamplingParams(temperature=1.0, max_new_tokens=8), "max_kept_per_problem": 2,
                    "train": TrainConfig(max_steps=1, batch_size=4, micro_batch_size=4), "eval_problems": 4,
                    "eval_max_new_tokens": 8, "output_dir": str(tmp_path)}
    return SelfTrainConfig(**{**defaults, **kw})


@pytest.fixture
def scripted(monkeypatch):
    spec = TaskSpec("arithmetic", {"min_ops": 2, "max_ops": 2})
    _register(spec, [(1, "train"), (0, "test"), (2, "train"), (500_001, "train"), (500_002, "train")], 8)
    ScriptedEngine.calls = []
    monkeypatch.setattr(st, "make_sampler", lambda cfg, model, policy, tokenizer: ScriptedEngine(policy, tokenizer))
    return ScriptedEngine


def test_star_rationalization_never_stores_the_hint(tiny_model_dir, tmp_path, scripted):
    out = st.main(_cfg(tmp_path, tiny_model_dir, rationalize=True, run_name="star"))
    m = out["iterations"][-1]
    assert m["rationalized/tried"] == 3 and m["rationalized/hint_leaks"] >= 1
    assert m["rationalized/kept"] == m["rationalized/tried"] - m["rationalized/hint_leaks"]
    samples = read_jsonl(tmp_path / "star" / "samples" / "iter_001.jsonl", Sample)
    hinted = [s for s in samples if s.meta.get("rationalized")]
    assert hinted and all("Hint" not in s.prompt for s in hinted)
    train = [r for _, r in __import__("reasonloop.store.jsonl", fromlist=["iter_jsonl"]).iter_jsonl(
        tmp_path / "star" / "samples" / "iter_001_train.jsonl")]
    assert all("Hint" not in r["prompt"] and "Hint" not in r["completion"] for r in train)
    assert len(train) == m["kept"] + m["rationalized/kept"]


def test_partial_solutions_train_on_verified_prefixes_without_eos(tiny_model_dir, tmp_path, scripted):
    out = st.main(_cfg(tmp_path, tiny_model_dir, partial_solutions=True, run_name="partial"))
    m = out["iterations"][-1]
    assert m["partial/prefixes"] > 0
    from reasonloop.store.jsonl import iter_jsonl

    rows = [r for _, r in iter_jsonl(tmp_path / "partial" / "samples" / "iter_001_train.jsonl")]
    prefixes = [r for r in rows if not r["eos"]]
    task = make_task("arithmetic", split="train", size=1, seed=0)
    for r in prefixes:
        problem = _PROBLEMS[r["prompt"]]
        assert r["completion"].endswith("\n")
        steps = split_steps(r["completion"])
        assert all(task.check_step(problem, steps[:i], s) for i, s in enumerate(steps))


def test_bstar_picks_config_from_probe_and_logs_it(tiny_model_dir, tmp_path, scripted):
    cfg = _cfg(tmp_path, tiny_model_dir, adapt="bstar", run_name="bstar", iterations=2,
               bstar=BStarConfig(temperatures=[0.5, 1.0], samples_per_prompt=[1, 2], probe_problems=4,
                                 target_correct=2))
    out = st.main(cfg)
    for m, it in zip(out["iterations"][1:], (1, 2)):
        probe = __import__("json").loads((tmp_path / "bstar" / "samples" / f"iter_{it:03d}_bstar.json").read_text())
        assert len(probe["grid"]) == 4
        assert (m["temperature"], m["samples_per_prompt"]) == (probe["choice"]["temperature"], probe["choice"]["k"])
        assert m["bstar/probe_tokens"] > 0 and m["tokens_generated"] > m["bstar/probe_tokens"]


def test_rft_real_engine_resumes_in_the_same_iteration(tiny_model_dir, tmp_path, monkeypatch,
                                                        every_sample_correct):
    """Kill inside training of iteration 1; the resume must reuse the sampled file, not resample."""
    cfg = _cfg(tmp_path, tiny_model_dir, run_name="resume", init_each_iteration="base")
    cfg.eval_problems = 2

    class Killed(Exception):
        pass

    def killed_fit(*a, **k):
        raise Killed

    # an untrained tiny model rarely answers correctly: count any verifier output as correct
    monkeypatch.setattr(st, "fit", killed_fit)
    with pytest.raises(Killed):
        st.main(cfg)
    path = tmp_path / "resume" / "samples" / "iter_001.jsonl"
    before = path.read_bytes()
    generated = []
    from reasonloop.rollout.engine import TorchEngine

    real_generate = TorchEngine.generate

    def counting(self, prompts, samples_per_prompt=1, params=None, prefixes=None):
        generated.append(params.temperature if params else None)
        return real_generate(self, prompts, samples_per_prompt, params, prefixes)

    monkeypatch.setattr(TorchEngine, "generate", counting)
    from reasonloop.algorithms.sft import fit

    monkeypatch.setattr(st, "fit", fit)
    cfg.resume = True
    out = st.main(cfg)
    assert path.read_bytes() == before
    assert generated == [0.0]  # only the greedy evaluation ran: no resampling
    assert [m["iteration"] for m in out["iterations"]] == [0, 1]
    assert out["iterations"][1]["train/tokens"] > 0



def test_selftrain_walks_a_finite_dataset_by_epochs(tmp_path, tiny_model_dir):
    """A 4-problem GSM8K-format file, 3 problems an iteration: iteration 2 takes the last problem of
    epoch 0 and the first two of epoch 1's new order; resume needs no saved cursor (it is recomputed)."""
    from pathlib import Path

    from reasonloop.tasks.cursor import ProblemCursor

    source = str(Path(__file__).resolve().parents[1] / "fixtures" / "gsm8k.jsonl")
    spec = TaskSpec(name="gsm8k", source=source, split="train")
    cfg = _cfg(tmp_path, tiny_model_dir, task=spec, iterations=2, problems_per_iteration=3, eval_problems=0)
    st.main(cfg)
    drawn = [sorted({s.problem_id for s in read_jsonl(tmp_path / "selftrain" / "samples" / f"iter_{it:03d}.jsonl")})
             for it in (1, 2)]
    dataset = spec.build(split="train", size=None, seed=cfg.seed)
    order = [p.id for p in ProblemCursor(dataset, seed=cfg.seed).take(6)]
    assert drawn == [sorted(set(order[:3])), sorted(set(order[3:]))]
    assert sorted(order[:4]) == sorted(p.id for p in dataset)
