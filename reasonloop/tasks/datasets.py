r"""Real datasets from local files: GSM8K, MATH / MATH-500, AIME, PRM800K, or any field mapping.

    task = load_gsm8k("data/gsm8k/test.jsonl")
    task = load_math("data/math500/test.jsonl")
    task = load_prm800k("data/prm800k/phase2_train.jsonl")
    task = load_generic("my.parquet", prompt_field="q", answer_field="meta.gold")

Files may be JSONL, Parquet, or a directory written by `datasets.Dataset.save_to_disk`
(pyarrow and datasets are imported only for those). Nothing is ever downloaded.

A bad row raises `DatasetError` naming the place (`file:line` for JSONL, `file:row N`
otherwise) and the field, e.g. `gsm8k.jsonl:3: field 'answer' has no '#### <number>' line`.

Each loader returns a `DatasetTask`: the Task protocol over a list of Problems, graded by
math equivalence (`reasonloop.verify.math.grade_math`) against `problem.answer`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from reasonloop.types import Problem
from reasonloop.verify.extract import extract_boxed
from reasonloop.verify.math import grade_math


class DatasetError(ValueError):
    """A row that does not fit the expected format; the message says where and which field."""


class DatasetTask:
    """A fixed list of problems with a math-equivalence verifier."""

    description = "problems loaded from a local file, graded by math equivalence"

    def __init__(self, name: str, problems: list[Problem]):
        self.name = name
        self.problems = problems

    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, index: int) -> Problem:
        return self.problems[index]

    def verify(self, problem: Problem, completion: str) -> float:
        return grade_math(problem.answer, completion) if problem.answer is not None else 0.0


# --- reading rows ----------------------------------------------------------------------------


def read_rows(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, row) for every row of a JSONL file, a Parquet file or a save_to_disk directory."""
    name = os.path.basename(path.rstrip("/"))
    if os.path.isdir(path):
        from datasets import load_from_disk

        dataset = load_from_disk(path)
        if hasattr(dataset, "keys"):  # a DatasetDict: one split only, to keep locations unambiguous
            raise DatasetError(f"{path}: is a DatasetDict with splits {list(dataset.keys())}; pass one split's directory")
        for i, row in enumerate(dataset):
            yield f"{name}:row {i}", row
    elif path.endswith(".parquet"):
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{name}:row {i}", row
    else:
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DatasetError(f"{name}:{line_number}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise DatasetError(f"{name}:{line_number}: expected a JSON object, got {type(row).__name__}")
                yield f"{name}:{line_number}", row


def get_field(row: dict, field: str, where: str, *, required: bool = True, kind: type | None = str):
    """`row[field]` with dotted paths (`question.problem`); errors name the place and field."""
    value: Any = row
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value or value[part] is None:
            if required:
                raise DatasetError(f"{where}: missing field {field!r}")
            return None
        value = value[part]
    if kind is not None and not isinstance(value, kind):
        if kind is str and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise DatasetError(f"{where}: field {field!r} should be {kind.__name__}, got {type(value).__name__}")
    if kind is str and not value.strip():
        raise DatasetError(f"{where}: field {field!r} is empty")
    return value


# --- the formats -----------------------------------------------------------------------------

_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$")
_CALCULATOR = re.compile(r"<<[^>]*>>")


def load_gsm8k(path: str, *, limit: int | None = None) -> DatasetTask:
    """GSM8K rows `{question, answer}` where `answer` ends with `#### <number>`.

    The reasoning lines before `####` become `steps` (calculator annotations removed).
    """
    problems = []
    for where, row in _rows(path, limit):
        question = get_field(row, "question", where)
        answer_text = get_field(row, "answer", where)
        lines = answer_text.strip().splitlines()
        m = _GSM8K_FINAL.match(lines[-1].strip()) if lines else None
        if not m:
            raise DatasetError(f"{where}: field 'answer' has no '#### <number>' line")
        gold = m.group(1).replace(",", "")
        if not re.fullmatch(r"-?\d+(?:\.\d+)?", gold):
            raise DatasetError(f"{where}: field 'answer' ends with '#### {m.group(1)}', not a number")
        steps = [_CALCULATOR.sub("", line).strip() for line in lines[:-1] if line.strip()]
        problems.append(Problem(f"gsm8k/{where}", question, answer=gold, steps=steps,
                                meta={"source": where, "solution": "\n".join(steps + [f"#### {gold}"])}))
    return DatasetTask("gsm8k", problems)


def load_math(path: str, *, limit: int | None = None) -> DatasetTask:
    r"""MATH / MATH-500 rows `{problem, solution[, answer, level, type|subject]}`.

    The gold answer is the `answer` field when present (MATH-500), else the last
    `\boxed{}` of the solution (MATH).
    """
    problems = []
    for where, row in _rows(path, limit):
        question = get_field(row, "problem", where)
        solution = get_field(row, "solution", where, required="answer" not in row)
        gold = get_field(row, "answer", where, required=False)
        if gold is None:
            boxed = extract_boxed(solution or "")
            if not boxed:
                raise DatasetError(f"{where}: field 'solution' has no \\boxed{{}} answer (and there is no 'answer' field)")
            gold = boxed[-1]
        meta = {"source": where, "solution": solution}
        for key in ("level", "type", "subject", "unique_id"):
            if key in row:
                meta[key] = row[key]
        problems.append(Problem(f"math/{row.get('unique_id', where)}", question, answer=gold, meta=meta))
    return DatasetTask("math", problems)


def load_aime(path: str, *, limit: int | None = None) -> DatasetTask:
    """AIME-style rows: a problem (`problem`/`question`/`Problem`) and an integer answer 0-999."""
    problems = []
    for where, row in _rows(path, limit):
        prompt_field = next((f for f in ("problem", "question", "Problem", "Question") if f in row), "problem")
        answer_field = next((f for f in ("answer", "Answer") if f in row), "answer")
        question = get_field(row, prompt_field, where)
        answer = get_field(row, answer_field, where).strip()
        if not re.fullmatch(r"\d{1,3}", answer.lstrip("0") or "0"):
            raise DatasetError(f"{where}: field {answer_field!r} should be an integer 0-999, got {answer!r}")
        problems.append(Problem(f"aime/{row.get('id', row.get('ID', where))}", question, answer=str(int(answer)),
                                meta={"source": where, **({"year": row["year"]} if "year" in row else {})}))
    return DatasetTask("aime", problems)


def load_prm800k(path: str, *, limit: int | None = None) -> DatasetTask:
    """PRM800K step-rating rows (OpenAI's schema) -> Problems with `steps` and per-step ratings.

    Per step, the step text is the chosen completion (`chosen_completion`), else the human
    completion, else (a step where labelling stopped) the first rated completion.
    `meta["step_ratings"][i]` is that text's rating in {-1, 0, 1} (None for a human
    completion, which is unrated), `meta["first_error"]` the first step rated -1.
    """
    problems = []
    for where, row in _rows(path, limit):
        question = get_field(row, "question.problem", where)
        gold = get_field(row, "question.ground_truth_answer", where, required=False)
        raw_steps = get_field(row, "label.steps", where, kind=list)
        steps, ratings = [], []
        for k, step in enumerate(raw_steps):
            here = f"{where}: label.steps[{k}]"
            completions = step.get("completions") if isinstance(step, dict) else None
            if not isinstance(completions, list):
                raise DatasetError(f"{here}: missing field 'completions'")
            chosen = step.get("chosen_completion")
            if chosen is not None:
                if not isinstance(chosen, int) or not 0 <= chosen < len(completions):
                    raise DatasetError(f"{here}: field 'chosen_completion' = {chosen!r} is not an index into completions")
                picked = completions[chosen]
            elif step.get("human_completion"):
                human = step["human_completion"]
                steps.append(human["text"] if isinstance(human, dict) else str(human))
                ratings.append(None)
                continue
            elif completions:
                picked = completions[0]
            else:
                raise DatasetError(f"{here}: no completions and no human completion")
            rating = picked.get("rating") if isinstance(picked, dict) else None
            if rating not in (-1, 0, 1):
                raise DatasetError(f"{here}: field 'rating' should be -1, 0 or 1, got {rating!r}")
            text = picked.get("text")
            if not isinstance(text, str):
                raise DatasetError(f"{here}: field 'text' missing")
            steps.append(text)
            ratings.append(rating)
        first_error = next((i for i, r in enumerate(ratings) if r == -1), None)
        problems.append(Problem(
            f"prm800k/{where}", question, answer=gold, steps=steps,
            meta={"source": where, "step_ratings": ratings, "first_error": first_error,
                  "finish_reason": row.get("label", {}).get("finish_reason"), "solution": "\n".join(steps)},
        ))
    return DatasetTask("prm800k", problems)


def load_generic(path: str, *, prompt_field: str, answer_field: str | None = None, id_field: str | None = None,
                 name: str | None = None, limit: int | None = None) -> DatasetTask:
    """Any rows: the prompt and (optional) answer from the named fields (dotted paths allowed)."""
    problems = []
    for where, row in _rows(path, limit):
        prompt = get_field(row, prompt_field, where)
        answer = get_field(row, answer_field, where) if answer_field else None
        problem_id = str(get_field(row, id_field, where, kind=None)) if id_field else where
        problems.append(Problem(problem_id, prompt, answer=answer, meta={"source": where}))
    return DatasetTask(name or os.path.splitext(os.path.basename(path.rstrip("/")))[0], problems)


def _rows(path: str, limit: int | None):
    for i, item in enumerate(read_rows(path)):
        if limit is not None and i >= limit:
            return
        yield item


LOADERS = {
    "gsm8k": load_gsm8k,
    "math": load_math,
    "aime": load_aime,
    "prm800k": load_prm800k,
    "generic": load_generic,
}
"""Dataset format name -> loader (each takes a local path)."""
