"""`TaskSpec`: how a command's config names a task (a registry name, its options, and for a
dataset task where its rows come from).

    task.name=arithmetic task.options.max_ops=4                       # a procedural task
    task.name=gsm8k task.source=data/gsm8k/{split}.jsonl               # a dataset task from files
    task.name=gsm8k task.source=openai/gsm8k task.config=main          # ... or from the Hub
    task.name=dataset task.source=my.csv task.fields.prompt=q task.fields.answer=a task.answer=number

The command gives the split (train for training, test for evaluation), the number of
problems and the seed; `build` passes them on. For a dataset task, `size=None` means every
row (training loops walk it with a `ProblemCursor`) and a number means at most that many, a
seeded sample; for a procedural task `size=None` is an unbounded stream (`UNBOUNDED` items,
each derived lazily).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

UNBOUNDED = 10_000_000
"""items of a procedural task built with size=None (they are derived lazily, so this costs nothing)"""

DATASET_KEYS = ("source", "config", "revision", "fields", "answer", "template", "skip_bad_rows")
"""TaskSpec fields that only dataset tasks take"""


@dataclass
class TaskSpec:
    name: str = "arithmetic"
    """a name from `reasonloop list tasks`"""
    options: dict[str, Any] = field(default_factory=dict)
    """fields of the task's config dataclass (difficulty knobs), e.g. {max_ops: 4}"""
    source: str = ""
    """dataset tasks: a JSONL/JSON/Parquet/CSV file, a save_to_disk folder, a folder of split files or a Hub
    dataset id; `{split}` in a path becomes the split. Empty: the task's default Hub dataset"""
    config: str = ""
    """dataset tasks: the Hub dataset's config (subset) name"""
    split: str = ""
    """the split to read (e.g. validation); empty: the command's (train for training, test for evaluation)"""
    revision: str = ""
    """dataset tasks: Hub dataset revision"""
    fields: dict[str, str] = field(default_factory=dict)
    """dataset tasks: the task's field -> the dataset's column, e.g. {prompt: question, answer: gold.value}"""
    answer: str = ""
    """the `dataset` task's answer kind: number, math, choice or code"""
    template: str = ""
    """dataset tasks: prompt template with {field} placeholders; empty: the dataset's standard prompt"""
    skip_bad_rows: bool = False
    """dataset tasks: skip (count and log) rows that cannot be used instead of stopping at the first"""

    def __post_init__(self):
        from reasonloop.tasks import is_dataset_task, known_task

        known_task(self.name)  # raises with the list of tasks
        if not is_dataset_task(self.name):
            defaults = {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
                        for f in dataclasses.fields(self)}
            extra = [k for k in DATASET_KEYS if getattr(self, k) != defaults[k]]
            if extra:
                raise ValueError(f"task {self.name!r} is procedural; {', '.join(extra)} only apply to dataset tasks")
            if self.split not in ("", "train", "test"):
                raise ValueError(f"task {self.name!r} is procedural: split must be train or test, got {self.split!r}")

    @property
    def label(self) -> str:
        """A name that tells this spec from others of the same task (eval grid cells and reports):
        `gsm8k`, `math(HuggingFaceH4/MATH-500)`, `arithmetic{max_ops=2}`, plus `~<hash>` when the
        split, config, fields, template ... differ from the defaults."""
        text = self.name + (f"({self.source})" if self.source else "")
        if self.options:
            text += "{" + ",".join(f"{k}={v}" for k, v in sorted(self.options.items())) + "}"
        rest = {k: getattr(self, k) for k in ("config", "split", "revision", "fields", "answer", "template",
                                               "skip_bad_rows") if getattr(self, k)}
        if rest:
            import hashlib
            import json

            text += "~" + hashlib.sha1(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:6]
        return text

    @property
    def is_dataset(self) -> bool:
        from reasonloop.tasks import is_dataset_task

        return is_dataset_task(self.name)

    def build(self, split: str, size: int | None, seed: int):
        """The task for `split` (overridden by `self.split`), at most `size` problems (None: all), `seed`."""
        from reasonloop.tasks import make_task

        if self.is_dataset:
            dataset = {k: getattr(self, k) for k in DATASET_KEYS}
            return make_task(self.name, split=self.split or split, size=size, seed=seed, **dataset, **self.options)
        return make_task(self.name, split=self.split or split, size=UNBOUNDED if size is None else size, seed=seed,
                         **self.options)

    def round_problems(self, split: str, round_index: int, per_round: int, seed: int, round_seed: int):
        """-> (task, problems) of round `round_index` (0-based) of a loop that takes `per_round` problems a round.

        Procedural task: `per_round` fresh problems seeded by `round_seed` (each round its own).
        Dataset task: the next `per_round` of the whole split walked by a `ProblemCursor(seed)`,
        by epochs with a seeded shuffle; round r starts at r x per_round, so a resumed run
        draws exactly what the killed one would have, with no cursor state to save.
        """
        from reasonloop.tasks.cursor import ProblemCursor

        if not self.is_dataset:
            task = self.build(split=split, size=per_round, seed=round_seed)
            return task, list(task)
        dataset = self.build(split=split, size=None, seed=seed)
        cursor = ProblemCursor(dataset, seed=seed)
        cursor.seek(round_index * per_round)
        return dataset, cursor.take(per_round)
