r"""Datasets as tasks: the machinery every dataset task shares (config, rows, templates, grading).

    task = make_task("gsm8k", source="data/gsm8k/{split}.jsonl", split="test")
    task = make_task("math", source="HuggingFaceH4/MATH-500", split="test", size=100, seed=0)
    task = make_task("dataset", source="my.parquet", fields={"prompt": "q", "answer": "gold.value"},
                     answer="number")

From a command's config the same is `task.name=gsm8k task.source=... task.split=test` (see
`TaskSpec`). The tasks themselves (gsm8k, math, aime, amc, humaneval, mbpp, prm800k,
processbench, dataset) are in `reasonloop.tasks.formats`; rows are read by
`reasonloop.tasks.sources`.

A `DatasetTask` reads every row of its source when it is built and turns each into a
`Problem`; a row that cannot be used raises `DatasetError` naming the file, the row and the
field (`data/gsm8k.jsonl:3: field 'answer' has no '#### <number>' line`). Every bad row of
the source is found before the error is raised, and the one-line message counts the others.
With `skip_bad_rows=True` they are skipped instead, counted in `task.skipped` and logged.

`size` keeps at most that many problems: a seeded sample (`cursor.subset_indices`), not the
first rows, because files are often sorted by subject or difficulty. Training loops build
the task whole (`size=None`) and walk it with a `ProblemCursor`.

Prompts come from a template: the task's standard one (the field's usual "put your final
answer within \boxed{}") or `template=`, where `{name}` is replaced by a row field (dotted
paths allowed) or one of the task's named parts (`{problem}`, `{tests}`, `{choices}` ...),
`{{` and `}}` are literal braces, and any other brace (`\boxed{}`) is left as it is.

Grading by answer kind: `number` and `math` by math equivalence (`verify.math.grade_math`),
`choice` by the option letter, `code` by running the task's tests in the sandbox
(`verify.code.run_tests`).
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from reasonloop.tasks.cursor import subset_indices
from reasonloop.tasks.sources import DatasetError, read_source
from reasonloop.types import Problem
from reasonloop.verify.extract import extract_answer
from reasonloop.verify.math import grade_math

BOXED = r"Please reason step by step, and put your final answer within \boxed{}."
ANSWER_KINDS = ("number", "math", "choice", "code")


@dataclass
class DatasetConfig:
    source: str = ""
    """a JSONL/JSON/Parquet/CSV file, a save_to_disk folder, a folder of split files, or a Hub dataset id
    (`{split}` in a path is replaced by the split); empty: the task's default Hub dataset"""
    config: str = ""
    """the Hub dataset's config (subset) name, e.g. `main` for openai/gsm8k"""
    split: str = "test"
    """the split to read (a file has none: it serves any split)"""
    revision: str = ""
    """Hub dataset revision (branch, tag or commit)"""
    size: int | None = None
    """at most this many problems, a seeded sample of the rows; None: all"""
    seed: int = 0
    fields: dict[str, str] = field(default_factory=dict)
    """the task's field name -> the column that holds it (dotted paths for nested values)"""
    answer: str = ""
    """answer kind of the `dataset` task: number, math, choice or code"""
    template: str = ""
    """prompt template; empty: the task's standard one"""
    skip_bad_rows: bool = False
    """skip (count and log) rows that cannot be used, instead of stopping at them"""

    def __post_init__(self):
        if self.size is not None and self.size < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        if not self.split:
            raise ValueError("split must be set")
        if self.answer and self.answer not in ANSWER_KINDS:
            raise ValueError(f"answer kind must be one of {list(ANSWER_KINDS)}, got {self.answer!r}")


class Row:
    """One source row with its place (`where`) and the task's field mapping; errors name both."""

    def __init__(self, data: dict[str, Any], where: str, mapping: dict[str, str],
                 aliases: dict[str, tuple[str, ...]] | None = None):
        self.data, self.where, self.mapping, self.aliases = data, where, mapping, aliases or {}

    def column(self, name: str) -> str:
        """The column holding `name`: the user's mapping, else `name` itself, else an alias or a
        different capitalisation of either that the row has (`Problem`, `question` ...)."""
        if name in self.mapping:
            return self.mapping[name]
        if self.data.get(name) is not None or "." in name:
            return name
        for candidate in (name, *self.aliases.get(name, ())):
            for key, value in self.data.items():  # tables padded with None for other rows' columns
                if value is not None and isinstance(key, str) and key.lower() == candidate.lower():
                    return key
        return name

    def has(self, name: str) -> bool:
        return lookup(self.data, self.column(name)) is not None

    def error(self, name: str, message: str) -> DatasetError:
        return DatasetError(f"{self.where}: field {self.column(name)!r} {message}")

    def get(self, name: str, required: bool = True) -> Any:
        value = lookup(self.data, self.column(name))
        if value is None and required:
            raise DatasetError(f"{self.where}: missing field {self.column(name)!r}")
        return value

    def text(self, name: str, required: bool = True) -> str | None:
        """A non-empty string (numbers are written as text: `42`, `142.0` -> `142`); an optional
        field that is absent or blank is None."""
        value = self.get(name, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(name, f"should be text, got {type(value).__name__}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        value = str(value)
        if not value.strip():
            if not required:
                return None
            raise self.error(name, "is empty")
        return value

    def structured(self, name: str, kind: type, required: bool = True) -> Any:
        """A list or dict; a CSV cell holding JSON (or a Python literal) is parsed."""
        value = self.get(name, required)
        if isinstance(value, str):
            value = parse_cell(value)
        if value is None and not required:
            return None
        if hasattr(value, "tolist"):  # numpy arrays from some Arrow conversions
            value = value.tolist()
        if not isinstance(value, kind):
            raise self.error(name, f"should be a {getattr(kind, '__name__', 'list or mapping')}, got {type(value).__name__}")
        return value

    def integer(self, name: str, required: bool = True) -> int | None:
        value = self.get(name, required)
        if value is None:
            return None
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"should be an integer, got {value!r}")
        return value


def lookup(data: Any, path: str) -> Any:
    """`data["a"]["b"]` for "a.b" (a CSV cell holding JSON is parsed on the way); None if absent."""
    value = data
    for part in path.split("."):
        if isinstance(value, str):
            value = parse_cell(value)
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return None
    return value


def parse_cell(text: str) -> Any:
    """A CSV cell that holds a list or an object (JSON, or a Python literal as pandas writes it)."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return text
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError):
        return text


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w.]*)\}")


def render(template: str, parts: dict[str, Any], row: Row) -> str:
    """Fill `{name}` from `parts`, else from the row; `{{`/`}}` are literal braces, other braces stay."""

    def fill(m: re.Match) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        name = m.group(1)
        value = parts[name] if name in parts else lookup(row.data, name)
        if value is None:
            raise DatasetError(f"{row.where}: the template's {{{name}}} is not a field of this row "
                               f"(its fields: {', '.join(map(str, row.data))})")
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)

    return _PLACEHOLDER.sub(fill, template)


class DatasetTask:
    """A finite list of problems read from a dataset source; subclasses define one format each.

    A subclass sets `name`, `description`, `template` (the standard prompt), `answer_kind`,
    optionally `default_source` ((Hub id, config), used when no source is given) and
    `default_splits` (the command's split -> that dataset's split name), and implements
    `parse(row) -> Problem` with the prompt from `self.prompt(parts, row)`.
    """

    name: ClassVar[str] = "dataset"
    description: ClassVar[str] = ""
    template: ClassVar[str] = "{problem}\n" + BOXED
    answer_kind: ClassVar[str | None] = "math"
    default_source: ClassVar[tuple[str, str] | None] = None
    default_splits: ClassVar[dict[str, str]] = {}
    aliases: ClassVar[dict[str, tuple[str, ...]]] = {}
    """other column names a field goes by in copies of the dataset (any capitalisation matches too)"""
    finite: ClassVar[bool] = True
    """a fixed collection: a `ProblemCursor` shuffles it each epoch"""

    def __init__(self, config: DatasetConfig | None = None):
        self.config = config or DatasetConfig()
        self.check_config()
        self.skipped: list[str] = []
        self.opened, problems = self._load()
        kept = subset_indices(len(problems), self.config.size, self.config.seed)
        self.problems = [problems[i] for i in kept]
        self.rows_read = len(problems)

    def check_config(self) -> None:
        if self.config.answer:
            raise DatasetError(f"task {self.name!r} grades its own answers; answer= is for the `dataset` task")

    # --- reading ---
    def _load(self) -> tuple[str, list[Problem]]:
        c = self.config
        source, config, split = c.source, c.config, c.split
        if not source:
            if self.default_source is None:
                raise DatasetError(f"task {self.name!r} needs a source: set task.source to a file, a folder or a "
                                   f"Hub dataset id")
            source, default_config = self.default_source
            config = config or default_config
            split = self.default_splits.get(split, split)
        opened, rows = read_source(source, split=split, config=config, revision=c.revision)
        problems, errors = [], []
        for where, data in rows:
            if isinstance(data, DatasetError):  # unreadable (bad JSON ...): a bad row like any other
                errors.append(str(data))
                continue
            try:
                problems.append(self.parse(Row(data, where, c.fields, self.aliases)))
            except DatasetError as e:
                errors.append(str(e))
        if errors and not c.skip_bad_rows:
            others = len(errors) - 1
            more = (f" (and {others} more bad row{'s' if others > 1 else ''}; task.skip_bad_rows=true skips them)"
                    if others else "")
            raise DatasetError(errors[0] + more)
        if errors:
            self.skipped = errors
            _note(f"{self.name}: skipped {_rows(len(errors))} of {opened} (skip_bad_rows): "
                  + "; ".join(errors[:3]) + (" ..." if len(errors) > 3 else ""))
        if not problems:
            raise DatasetError(f"{opened}: no usable rows for task {self.name!r}")
        return opened, problems

    def parse(self, row: Row) -> Problem:
        raise NotImplementedError

    def prompt(self, parts: dict[str, Any], row: Row) -> str:
        return render(self.config.template or self.template, parts, row)

    def problem_id(self, row: Row, id_field: str | None = None) -> str:
        """`name/<the row's id>`, else `name/<file>:<line or row>` (the file's base name)."""
        if id_field and row.has(id_field):
            return f"{self.name}/{row.get(id_field)}"
        return f"{self.name}/{os.path.basename(row.where)}"

    # --- the Task protocol ---
    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, index: int) -> Problem:
        return self.problems[index]

    def verify_details(self, problem: Problem, completion: str) -> tuple[float, list[dict] | None]:
        """`verify` and, for code, the per-test records behind it (what `Sample.tests` keeps)."""
        if problem.meta.get("answer_kind", self.answer_kind) != "code":
            return self.verify(problem, completion), None
        from reasonloop.verify.code import code_reward_details

        score, records = code_reward_details(problem, completion)
        return score or 0.0, records

    def verify(self, problem: Problem, completion: str) -> float:
        kind = problem.meta.get("answer_kind", self.answer_kind)
        if kind == "code":
            return verify_code(problem, completion)
        if kind == "choice":
            return float(choice_letter(completion, problem.meta.get("choices", [])) == problem.answer)
        if problem.answer is None:
            raise DatasetError(f"task {self.name!r} has no gold answers to grade (it is for PRM evaluation: "
                               f"`reasonloop label method=dataset`)")
        return grade_math(problem.answer, completion)


def verify_code(problem: Problem, completion: str) -> float:
    """1.0 iff the completion's last ```python block passes every test of the problem in the code sandbox
    (`verify.code.code_reward`: per-test evidence the program cannot forge; HumanEval's prompt goes before
    the program, so a completion may give the function's body or the whole function)."""
    from reasonloop.verify.code import code_reward

    return code_reward(problem, completion) or 0.0


def choice_letter(completion: str, choices: list[str]) -> str | None:
    r"""The option letter a completion commits to: `\boxed{B}`, `Answer: (B)`, `B. text`, or an option's text.

    >>> choice_letter(r"so \boxed{(c)}", ["1", "2", "3"]), choice_letter("Answer: 2", ["1", "2", "3"])
    ('C', 'B')
    """
    extraction = extract_answer(completion)
    if extraction.answer is None or extraction.hedged:
        return None
    answer = extraction.answer.strip()
    for i, text in enumerate(choices):
        if answer.strip(" .").lower() == str(text).strip(" .").lower():
            return chr(ord("A") + i)
    m = re.fullmatch(r"\(?([A-Za-z])\)?(?:[.):]\s*.*)?", answer, re.DOTALL)
    return m.group(1).upper() if m else None


def _rows(n: int) -> str:
    return f"{n} bad row" + ("" if n == 1 else "s")


def _note(message: str) -> None:
    from reasonloop.utils import console

    console.print(message, markup=False, highlight=False, soft_wrap=True)
