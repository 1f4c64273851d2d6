"""Distillation: only verified teacher rationales reach the student; the teacher phase resumes."""

import pytest
import torch

from reasonloop.algorithms import distill
from reasonloop.algorithms.distill import DistillConfig, TeacherConfig, keep_verified, make_teacher
from reasonloop.algorithms.sft import TrainConfig
from reasonloop.config import ConfigError, load_config
from reasonloop.models.policy import ModelConfig, load_model
from reasonloop.rollout.factory import SamplerConfig
from reasonloop.rollout.sampler import SamplingParams
from reasonloop.store.jsonl import read_jsonl
from reasonloop.tasks.spec import TaskSpec
from reasonloop.types import Sample

SPEC = TaskSpec("arithmetic", {"max_ops": 2})


class Teacher:
    """Right on every other problem (the reference solution), wrong otherwise."""

    model_id = "teacher"
    calls = 0

    def generate(self, prompts, samples_per_prompt=1, params=None, prefixes=None):
        Teacher.calls += 1
        solutions = {p.prompt: p.reference_solution for p in SPEC.build(split="train", size=len(prompts), seed=0)}
        return [[Sample("", q, solutions[q] if i % 2 == 0 else "Answer: -1") for _ in range(samples_per_prompt)]
                for i, q in enumerate(prompts)]


def test_keep_verified():
    s = [Sample("a", "Q", "x", rewards={"correct": 1.0}), Sample("a", "Q", "x", rewards={"correct": 1.0}),
         Sample("a", "Q", "y", rewards={"correct": 0.0})]
    assert [x.text for x in keep_verified(s, 2)] == ["x"]


def test_openai_teacher_needs_url():
    with pytest.raises(ConfigError, match="base_url"):
        load_config(DistillConfig, overrides=["teacher.sampler.kind=openai"])
    teacher = make_teacher(TeacherConfig(ModelConfig(path="org/served"), SamplerConfig(kind="openai",
                                                                                      base_url="http://h:1/v1")))
    assert teacher.model == "org/served" and teacher.base_url == "http://h:1/v1"


def test_distill_trains_student_on_verified_only_and_resumes(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(distill, "make_teacher", lambda cfg: Teacher())
    Teacher.calls = 0
    cfg = DistillConfig(student=ModelConfig(path=str(tiny_model_dir), use_chat_template=False), task=SPEC,
                        problems=6, samples_per_prompt=2, sampling=SamplingParams(max_new_tokens=8),
                        train=TrainConfig(max_steps=2, batch_size=2, micro_batch_size=2), eval_problems=2,
                        eval_max_new_tokens=8, output_dir=str(tmp_path), run_name="d")
    out = distill.main(cfg)
    assert out["teacher_accuracy"] == 0.5 and out["kept"] == 3 and out["problems_kept"] == 3
    kept = read_jsonl(tmp_path / "d" / "samples" / "train.jsonl", Sample)
    assert all(s.correct and s.text != "Answer: -1" for s in kept)
    before, _ = load_model(ModelConfig(path=str(tiny_model_dir)))
    after, _ = load_model(ModelConfig(path=out["final_model"]))
    assert any(not torch.equal(p, q) for p, q in zip(before.parameters(), after.parameters()))
    cfg.resume = True
    distill.main(cfg)
    assert Teacher.calls == 1  # the teacher's samples were reused


def test_distill_from_an_openai_compatible_teacher_on_loopback(tiny_model_dir, tmp_path):
    """The whole recipe over HTTP: a loopback server that solves arithmetic is the teacher."""
    from fake_servers import JSONServer

    from reasonloop.tasks import make_task

    task = make_task(SPEC.name, split="train", size=6, seed=0, **SPEC.options)
    solutions = {p.prompt: p.reference_solution for p in task}

    def respond(path, body):
        # right for every other choice, wrong otherwise: distillation must keep only the verified ones
        texts = [solutions.get(body["prompt"], "") if i % 2 == 0 else "Answer: -1" for i in range(body.get("n", 1))]
        return {"choices": [{"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(texts)]}

    httpd = JSONServer(respond)
    try:
        cfg = DistillConfig(
            teacher=TeacherConfig(ModelConfig(path="teacher", use_chat_template=False), SamplerConfig(
                kind="openai", base_url=httpd.url, endpoint="completions")),
            student=ModelConfig(path=str(tiny_model_dir), use_chat_template=False), task=SPEC, problems=6,
            samples_per_prompt=2, sampling=SamplingParams(max_new_tokens=64),
            train=TrainConfig(max_steps=2, batch_size=2, micro_batch_size=2), eval_problems=2,
            eval_max_new_tokens=8, output_dir=str(tmp_path), run_name="http")
        out = distill.main(cfg)
    finally:
        httpd.close()
    assert out["teacher_accuracy"] == 0.5 and out["kept"] == 6 and out["problems_kept"] == 6
    kept = read_jsonl(tmp_path / "http" / "samples" / "train.jsonl", Sample)
    assert sorted(s.text for s in kept) == sorted(solutions.values())
