"""Any reasoning-gym task by name: `make_task("reasoning_gym:chain_sum", size=100, seed=0)`.

reasoning-gym (106 procedural tasks) is imported lazily: it costs ~2 s to import.

Items: reasoning-gym derives item i from `Random(seed + i)`, so we read one lazily indexed
stream per (task, seed) and give each of our splits the stream items whose prompt hash
falls in it (`base.in_test_split`), which makes train and test disjoint like our own tasks.
The test split needs ~10 stream items per kept item, cheap for the fast generators and
slow for e.g. knight_swap (~0.8 s per item on this machine).

Scoring wraps the dataset's own `score_answer`, because several of its scorers (the
default one included) give *containment* credit: an answer that merely contains the gold
string scores `len(gold) / len(answer)`, so "1 2 3 4 5 6 7 8 9" earns partial credit on
every one-digit answer. Our rule:
1. the answer is extracted like everywhere else (`<answer>` tags, boxed, `Answer:` ...;
   with no marked answer, the last non-empty line) and hedged answers score 0;
2. a score below 1 given to an answer that contains the gold string without being it is
   containment credit and becomes 0;
3. unless `partial_credit=True`, any other score below 1 becomes 0 too (many scorers give
   0.01 "format credit" for a wrong answer, which would blur a binary reward).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from reasonloop.tasks.base import Split, check_common_config, in_test_split
from reasonloop.types import Problem
from reasonloop.verify.extract import extract_answer, strip_reasoning

PREFIX = "reasoning_gym:"


@dataclass
class ReasoningGymConfig:
    size: int = 1000
    seed: int = 0
    split: Split = "train"
    partial_credit: bool = False
    """keep the scorer's fractional scores (containment credit is removed either way)"""
    options: dict[str, Any] = field(default_factory=dict)
    """passed to reasoning_gym.create_dataset (the task's own config fields)"""

    def __post_init__(self):
        check_common_config(self)


def gym_task_names() -> list[str]:
    """All reasoning-gym task names (imports reasoning_gym)."""
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


class ReasoningGymTask:
    """A reasoning-gym dataset behind our Task protocol, with a containment-proof scorer."""

    description = "any reasoning-gym task by name (reasoning_gym:<name>), scorer hardened against containment credit"

    def __init__(self, gym_name: str, config: ReasoningGymConfig | None = None):
        self.gym_name = gym_name
        self.name = PREFIX + gym_name
        self.config = config or ReasoningGymConfig()
        self._dataset = None
        self._positions: list[int] = []  # stream indices of our split's items, in order
        self._scanned = 0

    def _stream(self):
        if self._dataset is None:
            import reasoning_gym
            from reasoning_gym.factory import DATASETS

            if self.gym_name not in DATASETS:
                raise KeyError(f"unknown reasoning-gym task {self.gym_name!r}; known: {', '.join(sorted(DATASETS))}")
            # a seed per (task, seed) so that train and test read the same stream
            seed = random.Random(f"{self.gym_name}/{self.config.seed}").randrange(2**31)
            self._dataset = reasoning_gym.create_dataset(
                self.gym_name, size=20 * self.config.size + 1000, seed=seed, **self.config.options
            )
        return self._dataset

    def __len__(self) -> int:
        return self.config.size

    def _entry(self, index: int) -> dict:
        stream = self._stream()
        want_test = self.config.split == "test"
        while len(self._positions) <= index:
            if self._scanned >= len(stream):
                raise RuntimeError(f"{self.name}: too few distinct prompts to fill the {self.config.split} split")
            if in_test_split(stream[self._scanned]["question"]) == want_test:
                self._positions.append(self._scanned)
            self._scanned += 1
        return stream[self._positions[index]]

    def __getitem__(self, index: int) -> Problem:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range 0..{len(self) - 1}")
        entry = self._entry(index)
        c = self.config
        return Problem(
            id=f"{self.name}/{c.split}/{c.seed}/{index}",
            prompt=entry["question"],
            answer=None if entry.get("answer") is None else str(entry["answer"]),
            meta={"gym_entry": entry, "solution": f"<answer>{entry.get('answer')}</answer>", "source": self.name},
        )

    def verify(self, problem: Problem, completion: str) -> float:
        """The dataset's score for the extracted answer, hardened as in the module docstring."""
        extraction = extract_answer(completion)
        if extraction.hedged:
            return 0.0
        answers = [extraction.answer] if extraction.answer is not None else []
        if extraction.form == "tag":  # tags delimit exactly: also try the content uncleaned
            answers.append(_last_tag_content(completion))
        if not answers:
            lines = [line.strip() for line in strip_reasoning(completion).splitlines() if line.strip()]
            answers = [lines[-1] if lines else ""]
        best = 0.0
        for answer in answers:
            try:
                score = float(self._stream().score_answer(answer=answer, entry=problem.meta["gym_entry"]))
            except Exception:  # noqa: BLE001 -- a scorer choking on garbage is a wrong answer, not a crash
                score = 0.0
            best = max(best, harden_score(score, answer, problem.answer, self.config.partial_credit))
        return best


def _last_tag_content(completion: str) -> str:
    import re

    found = re.findall(r"<answer>(.*?)</answer>", strip_reasoning(completion), re.DOTALL | re.IGNORECASE)
    return found[-1].strip() if found else ""


def harden_score(score: float, answer: str, gold: str | None, partial_credit: bool) -> float:
    """Remove containment credit (and, unless `partial_credit`, all fractional credit).

    >>> harden_score(1 / 9, "7 8 9 1 2 3 4 5 6", "7", partial_credit=True)
    0.0
    >>> harden_score(0.5, "half right", "x", partial_credit=True), harden_score(0.5, "half right", "x", False)
    (0.5, 0.0)
    """
    if score >= 1.0:
        return 1.0
    if gold is not None and gold.strip() and gold.strip() in answer and answer.strip() != gold.strip():
        return 0.0
    return max(0.0, score) if partial_credit else 0.0
