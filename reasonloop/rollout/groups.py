"""`sample_groups`: the one way a loop samples k completions per problem and verifies them.

Every loop that learns from or grades its own samples (GRPO, self-training, DPO, distillation,
labeling, `reasonloop sample`, evaluation) does the same three things: generate k completions
per problem, tag each with the problem it answers, and score it. Doing them here, once, keeps
the tagging and the scoring contract in one place: a `Score` fills `sample.rewards` in place
and is called once for the whole batch, so a verifier that runs in parallel (`verify.score_all`)
sees every completion at once.
"""

from __future__ import annotations

from collections.abc import Callable

from reasonloop.rollout.sampler import Sampler, SamplingParams
from reasonloop.types import Group, Problem, Sample

Score = Callable[[list[Problem], list[Sample]], None]
"""(problem of each sample, samples) -> None; fills each `sample.rewards` in place"""


def verify_correct(task) -> Score:
    """The task's own verifier as a `Score`: `rewards["correct"]` = `task.verify(problem, text)`.

    Tasks with `verify_details` (code tasks) also leave the per-test records behind the verdict
    in `sample.tests`, so sample and eval files say which tests passed, as GRPO's do."""

    def score(problems: list[Problem], samples: list[Sample]) -> None:
        for problem, sample in zip(problems, samples):
            sample.rewards["correct"], tests = verify_with_tests(task, problem, sample.text)
            if tests is not None:
                sample.tests = tests

    return score


def verify_with_tests(task, problem: Problem, text: str) -> tuple[float, list[dict] | None]:
    """`task.verify` and, where the task has `verify_details` (code), the per-test records behind it."""
    if hasattr(task, "verify_details"):
        value, tests = task.verify_details(problem, text)
        return float(value), tests
    return task.verify(problem, text), None


def sample_groups(sampler: Sampler, problems: list[Problem], k: int, params: SamplingParams,
                  score: Score | None = None, prompts: list[str] | None = None) -> list[Group]:
    """k samples for each problem, tagged with its id and scored by `score`; one `Group` per problem.

    `prompts` replaces the problems' own prompts for generation (hinted re-asks: Guide, STaR's
    rationalization); the samples still answer, and are scored against, their problems.
    """
    if prompts is not None and len(prompts) != len(problems):
        raise ValueError(f"{len(prompts)} prompts for {len(problems)} problems")
    drawn = sampler.generate(prompts if prompts is not None else [p.prompt for p in problems], k, params)
    groups = []
    for problem, samples in zip(problems, drawn, strict=True):
        for s in samples:
            s.problem_id = problem.id
        groups.append(Group(problem, samples))
    if score is not None and groups:
        score([g.problem for g in groups for _ in g.samples], [s for g in groups for s in g.samples])
    return groups


def sample_and_verify(sampler: Sampler, task, problems: list[Problem], k: int, params: SamplingParams,
                      prompts: list[str] | None = None) -> list[Sample]:
    """`sample_groups` scored by the task's verifier, flattened: k verified samples per problem, in problem order."""
    return flatten(sample_groups(sampler, problems, k, params, score=verify_correct(task), prompts=prompts))


def flatten(groups: list[Group]) -> list[Sample]:
    """Every sample of every group, in problem order."""
    return [s for g in groups for s in g.samples]
