"""The shared vocabulary: problems, samples, groups and evaluation records.

These are plain dataclasses with no logic beyond (de)serialisation, so every layer (tasks,
verifiers, rollout, algorithms, search, evaluation) speaks the same language and every
artifact on disk is one JSONL format (see `reasonloop.store.jsonl`).

No torch here: `tasks/` and `verify/` import this module and must stay torch-free.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 1
"""Version of the on-disk record format; bumped when a field changes meaning."""

FinishReason = Literal["eos", "stop", "length"]


@dataclass
class Problem:
    """One question with what is needed to check an answer to it.

    `answer` is the gold final answer as text (None when only a test suite or a judge
    can check it). `steps` is a reference chain of thought, one checkable step per
    entry, when the task has one. `meta` carries task-specific data (operands, test
    cases, difficulty, source file and row).
    """

    id: str
    prompt: str
    answer: str | None = None
    steps: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def reference_solution(self) -> str | None:
        """The reference chain of thought as one completion text, if the task has one."""
        return self.meta.get("solution")


@dataclass
class Sample:
    """One completion for one problem, with everything needed to train on it or audit it.

    `token_ids` and `logprobs` cover the completion only (not the prompt);
    `logprobs[i]` is the sampling policy's log-probability of `token_ids[i]` (after
    temperature/top-p were applied, so it is the probability the token was drawn with).
    `rewards` maps a reward name to its value; `None` marks "not applicable".
    `tests` holds per-test results of code rewards (`{"name", "passed", "error", "seconds"}`
    each; see `verify.code.CodeResult.record`), None when no code test ran.
    """

    problem_id: str
    prompt: str
    text: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: FinishReason = "length"
    steps: list[str] = field(default_factory=list)
    rewards: dict[str, float | None] = field(default_factory=dict)
    model_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    tests: list[dict[str, Any]] | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def correct(self) -> bool:
        """True when the verifier reward ("correct") is 1.0."""
        return self.rewards.get("correct") == 1.0


@dataclass
class Group:
    """All samples drawn for one problem: the unit of group advantages, voting and search."""

    problem: Problem
    samples: list[Sample]


@dataclass
class EvalRecord:
    """One graded answer in an evaluation: the per-problem row of `eval` output.

    `predictions` are the extracted final answers of every sample, `selected` is the
    answer the strategy chose, `tokens` the completion tokens spent on this problem.
    """

    problem_id: str
    task: str
    strategy: str
    answer: str | None
    selected: str | None
    correct: bool
    predictions: list[str | None] = field(default_factory=list)
    sample_correct: list[bool] = field(default_factory=list)
    tokens: int = 0
    model_calls: int = 0
    scorer_calls: int = 0
    model_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


RECORD_TYPES: dict[str, type] = {"problem": Problem, "sample": Sample, "eval": EvalRecord}
"""Record kind written in each JSONL row (`"kind"`) -> dataclass."""


def split_steps(text: str, separator: str = "\n") -> list[str]:
    """Split a completion into non-empty, stripped steps (default: one step per line).

    The one step segmentation shared by tasks, labeling, PRMs and search.
    """
    return [s.strip() for s in text.split(separator) if s.strip()]


def to_record(obj: Problem | Sample | EvalRecord) -> dict[str, Any]:
    """Dataclass -> JSON-ready dict tagged with its kind and the schema version."""
    kind = next(k for k, cls in RECORD_TYPES.items() if type(obj) is cls)
    return {"schema": SCHEMA_VERSION, "kind": kind, **dataclasses.asdict(obj)}
