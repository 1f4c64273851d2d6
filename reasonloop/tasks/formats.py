r"""The dataset tasks, one class per format: how a row becomes a `Problem` and how it is graded.

| task         | row fields (renamable with `fields=`)                         | graded by              |
|--------------|---------------------------------------------------------------|------------------------|
| gsm8k        | question, answer (reasoning, then `#### 42`)                   | number                 |
| math         | problem, solution (last `\boxed{}`) or answer (MATH-500)       | math equivalence       |
| aime         | problem, answer (an integer 0-999)                             | number                 |
| amc          | problem, answer                                                | math equivalence       |
| humaneval    | task_id, prompt, test, entry_point (canonical_solution kept)   | its `check` in sandbox |
| mbpp         | text, test_list (test_setup_code, code kept)                   | its asserts in sandbox |
| prm800k      | question.problem, label.steps (OpenAI's nested ratings)       | math (ground truth)    |
| processbench | problem, steps, label (first wrong step, -1: none)            | (step labels only)     |
| dataset      | prompt, answer / choices / tests, id: any columns via fields  | answer=number/math/... |

prm800k and processbench carry human step labels for PRM evaluation: `Problem.steps` is the
labelled solution, `meta["step_labels"]` says which steps are good and `meta["first_error"]`
where the first bad one is (None: all good).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from reasonloop.tasks.datasets import ANSWER_KINDS, BOXED, DatasetError, DatasetTask, Row
from reasonloop.types import Problem
from reasonloop.verify.extract import extract_boxed

_CODE_INSTRUCTION = "Write the complete code in one ```python code block."

# --- math word problems and competitions -------------------------------------------------------

_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$")
_CALCULATOR = re.compile(r"<<[^>]*>>")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class GSM8KTask(DatasetTask):
    name = "gsm8k"
    description = "GSM8K grade-school word problems (question / answer ending '#### N'), graded as numbers"
    template = "{question}\n" + BOXED
    answer_kind = "number"
    default_source = ("openai/gsm8k", "main")

    def parse(self, row: Row) -> Problem:
        question = row.text("question")
        answer_text = row.text("answer")
        lines = [line.strip() for line in answer_text.strip().splitlines() if line.strip()]
        m = _GSM8K_FINAL.match(lines[-1]) if lines else None
        if not m:
            raise row.error("answer", "has no '#### <number>' line")
        gold = m.group(1).replace(",", "").strip()
        if not _NUMBER.fullmatch(gold):
            raise row.error("answer", f"ends with '#### {m.group(1)}', not a number")
        steps = [_CALCULATOR.sub("", line).strip() for line in lines[:-1]]
        return Problem(self.problem_id(row), self.prompt({"question": question}, row), answer=gold, steps=steps,
                       meta={"source": row.where, "solution": "\n".join(steps + [f"The answer is $\\boxed{{{gold}}}$."])})


class MathTask(DatasetTask):
    name = "math"
    description = r"MATH / MATH-500 competition problems, gold from 'answer' or the solution's last \boxed{}"
    default_source = ("HuggingFaceH4/MATH-500", "")

    def parse(self, row: Row) -> Problem:
        problem = row.text("problem")
        solution = row.text("solution", required=not row.has("answer"))
        gold = row.text("answer", required=False)
        if gold is None:
            boxed = extract_boxed(solution or "")
            if not boxed:
                raise row.error("solution", "has no \\boxed{} answer (and there is no 'answer' field)")
            gold = boxed[-1]
        meta: dict[str, Any] = {"source": row.where, "solution": solution}
        for key in ("level", "type", "subject", "unique_id"):
            if row.has(key):
                meta[key] = row.get(key)
        return Problem(self.problem_id(row, "unique_id"), self.prompt({"problem": problem}, row), answer=gold,
                       meta=meta)


class AIMETask(DatasetTask):
    name = "aime"
    description = "AIME problems (problem / answer, an integer 0-999), answer only"
    answer_kind = "number"
    default_source = ("HuggingFaceH4/aime_2024", "")
    default_splits: ClassVar[dict[str, str]] = {"test": "train"}  # that dataset's one split is named train
    aliases: ClassVar[dict[str, tuple[str, ...]]] = {"problem": ("question",)}

    def parse(self, row: Row) -> Problem:
        problem = row.text("problem")
        answer = row.text("answer").strip()
        if not re.fullmatch(r"\d{1,3}", answer.lstrip("0") or "0"):
            raise row.error("answer", f"should be an integer 0-999, got {answer!r}")
        meta: dict[str, Any] = {"source": row.where, **({"year": row.get("year")} if row.has("year") else {})}
        if row.has("solution"):
            meta["solution"] = row.get("solution")
        return Problem(self.problem_id(row, "id"), self.prompt({"problem": problem}, row), answer=str(int(answer)),
                       meta=meta)


class AMCTask(DatasetTask):
    name = "amc"
    description = "AMC problems (problem / answer), answer only, graded by math equivalence"
    default_source = ("AI-MO/aimo-validation-amc", "")
    default_splits: ClassVar[dict[str, str]] = {"test": "train"}  # that dataset's one split is named train
    aliases: ClassVar[dict[str, tuple[str, ...]]] = {"problem": ("question",)}

    def parse(self, row: Row) -> Problem:
        problem = row.text("problem")
        answer = row.text("answer").strip()
        return Problem(self.problem_id(row, "id"), self.prompt({"problem": problem}, row), answer=answer,
                       meta={"source": row.where, **({"url": row.get("url")} if row.has("url") else {})})


# --- code with tests -------------------------------------------------------------------------


class HumanEvalTask(DatasetTask):
    name = "humaneval"
    description = "HumanEval function completion, graded by running its check() in the code sandbox"
    template = ("Complete the following Python function. " + _CODE_INSTRUCTION
                + " Include the signature.\n\n```python\n{prompt}```")
    answer_kind = "code"
    default_source = ("openai/openai_humaneval", "")

    def parse(self, row: Row) -> Problem:
        stub = row.text("prompt")
        test = row.text("test")
        entry_point = row.text("entry_point").strip()
        if not re.fullmatch(r"[A-Za-z_]\w*", entry_point):
            raise row.error("entry_point", f"should be a function name, got {entry_point!r}")
        if f"def {entry_point}" not in stub:
            raise row.error("prompt", f"does not define the entry point {entry_point!r}")
        return Problem(self.problem_id(row, "task_id"), self.prompt({"prompt": stub}, row),
                       meta={"source": row.where, "test": test, "entry_point": entry_point, "prompt_code": stub,
                             "answer_kind": "code",
                             "solution": _fenced(stub + (row.text("canonical_solution", required=False) or ""))})


class MBPPTask(DatasetTask):
    name = "mbpp"
    description = "MBPP Python problems (text / test_list), graded by their asserts in the code sandbox"
    template = "{text}\nYour code should pass these tests:\n\n{tests}\n\n" + _CODE_INSTRUCTION
    answer_kind = "code"
    default_source = ("google-research-datasets/mbpp", "full")

    def parse(self, row: Row) -> Problem:
        text = row.text("text")
        tests = row.structured("test_list", list)
        if not tests or not all(isinstance(t, str) and t.strip() for t in tests):
            raise row.error("test_list", "should be a non-empty list of assert statements")
        setup = row.text("test_setup_code", required=False)
        code = row.text("code", required=False)
        return Problem(self.problem_id(row, "task_id"), self.prompt({"text": text, "tests": "\n".join(tests)}, row),
                       meta={"source": row.where, "tests": tests, **({"test_setup": setup} if setup else {}),
                             "answer_kind": "code", **({"solution": _fenced(code)} if code else {})})


def _fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


# --- step labels (PRM evaluation) -------------------------------------------------------------


class PRM800KTask(DatasetTask):
    name = "prm800k"
    description = "PRM800K human step ratings (OpenAI's nested label format), for PRM evaluation"

    def parse(self, row: Row) -> Problem:
        problem = row.text("question.problem")
        gold = row.text("question.ground_truth_answer", required=False)
        label = row.structured("label", dict)
        raw_steps = label.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise row.error("label", "has no 'steps' list")
        steps, ratings = [], []
        for k, step in enumerate(raw_steps):
            text, rating = _prm800k_step(step, f"{row.where}: {row.column('label')}.steps[{k}]")
            steps.append(text)
            ratings.append(rating)
            if rating == -1:  # labelling stops at the first bad step
                break
        first_error = next((i for i, r in enumerate(ratings) if r == -1), None)
        return Problem(self.problem_id(row), self.prompt({"problem": problem}, row), answer=gold, steps=steps,
                       meta={"source": row.where, "step_ratings": ratings, "first_error": first_error,
                             "step_labels": [r != -1 for r in ratings], "finish_reason": label.get("finish_reason"),
                             "solution": "\n".join(steps), "question": problem})


def _prm800k_step(step: Any, here: str) -> tuple[str, int | None]:
    """(text, rating) of one labelled step: the human completion (rating None), else the chosen
    completion, else (labelling stopped here) the worst-rated completion."""
    if not isinstance(step, dict) or not isinstance(step.get("completions"), list):
        raise DatasetError(f"{here}: missing field 'completions'")
    completions, chosen, human = step["completions"], step.get("chosen_completion"), step.get("human_completion")
    if human:
        text = human.get("text") if isinstance(human, dict) else human
        if not isinstance(text, str):
            raise DatasetError(f"{here}: field 'human_completion' has no text")
        return text, None
    if chosen is not None:
        if not isinstance(chosen, int) or not 0 <= chosen < len(completions):
            raise DatasetError(f"{here}: field 'chosen_completion' = {chosen!r} is not an index into completions")
        picked = completions[chosen]
    else:
        rated = [c for c in completions if isinstance(c, dict) and c.get("rating") is not None]
        if not rated:
            raise DatasetError(f"{here}: no chosen, human or rated completion")
        picked = min(rated, key=lambda c: c["rating"])
    if not isinstance(picked, dict) or picked.get("rating") not in (-1, 0, 1):
        raise DatasetError(f"{here}: field 'rating' should be -1, 0 or 1, got "
                           f"{picked.get('rating') if isinstance(picked, dict) else picked!r}")
    if not isinstance(picked.get("text"), str):
        raise DatasetError(f"{here}: field 'text' missing")
    return picked["text"], picked["rating"]


class ProcessBenchTask(DatasetTask):
    name = "processbench"
    description = "ProcessBench solutions with the index of their first wrong step, for PRM evaluation"
    answer_kind = None
    default_source = ("Qwen/ProcessBench", "")
    default_splits: ClassVar[dict[str, str]] = {"test": "gsm8k"}  # its splits are gsm8k, math, olympiadbench, omnimath

    def parse(self, row: Row) -> Problem:
        problem = row.text("problem")
        steps = row.structured("steps", list)
        if not steps or not all(isinstance(s, str) for s in steps):
            raise row.error("steps", "should be a non-empty list of step texts")
        label = row.integer("label")
        if not -1 <= label < len(steps):
            raise row.error("label", f"should be -1 (no error) or a step index below {len(steps)}, got {label}")
        first_error = None if label == -1 else label
        meta = {"source": row.where, "first_error": first_error, "question": problem,
                "step_labels": [first_error is None or i < first_error for i in range(len(steps))],
                "solution": "\n".join(steps)}
        if row.has("final_answer_correct"):
            meta["final_answer_correct"] = bool(row.get("final_answer_correct"))
        return Problem(self.problem_id(row, "id"), self.prompt({"problem": problem}, row), steps=steps, meta=meta)


# --- any dataset -------------------------------------------------------------------------------

_KIND_TEMPLATES = {
    "number": "{prompt}\n" + BOXED,
    "math": "{prompt}\n" + BOXED,
    "choice": "{prompt}\n\n{choices}\n\nAnswer with the letter of the correct option within \\boxed{{}}.",
    "code": "{prompt}\n\n" + _CODE_INSTRUCTION,
}


class GenericTask(DatasetTask):
    """Any rows: `fields` maps prompt / answer / id / choices / tests to columns; `answer` is the kind.

    choice: `choices` is a list of option texts (or `{"text": [...]}`), the gold is a letter, a
    0-based option index, or an option's text. code: `tests` is a list of asserts (or a script).
    """

    name = "dataset"
    description = "any dataset: fields= maps prompt/answer/choices/tests to columns, answer= number|math|choice|code"

    def check_config(self) -> None:
        if self.config.answer and self.config.answer not in ANSWER_KINDS:
            raise DatasetError(f"answer kind must be one of {list(ANSWER_KINDS)}, got {self.config.answer!r}")

    @property
    def answer_kind(self) -> str:  # type: ignore[override]
        return self.config.answer or "math"

    @property
    def template(self) -> str:  # type: ignore[override]
        return _KIND_TEMPLATES[self.answer_kind]

    def parse(self, row: Row) -> Problem:
        kind = self.answer_kind
        prompt = row.text("prompt")
        parts: dict[str, Any] = {"prompt": prompt}
        meta: dict[str, Any] = {"source": row.where, "answer_kind": kind}
        answer = None
        if kind == "code":
            tests = row.get("tests")
            tests = row.structured("tests", list) if not isinstance(tests, str) or tests.lstrip()[:1] == "[" else [tests]
            if not tests or not all(isinstance(t, str) for t in tests):
                raise row.error("tests", "should be a non-empty list of test statements")
            meta["tests"] = tests
            parts["tests"] = "\n".join(tests)
        elif kind == "choice":
            choices = row.structured("choices", list | dict)
            if isinstance(choices, dict):
                choices = choices.get("text")
            if not isinstance(choices, list) or not 2 <= len(choices) <= 26:
                raise row.error("choices", "should be a list of 2 to 26 options (or {text: [...]})")
            choices = [str(c) for c in choices]
            meta["choices"] = choices
            parts["choices"] = "\n".join(f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(choices))
            answer = _choice_gold(row, choices)
        else:
            answer = row.text("answer").strip()
            if kind == "number":
                answer = answer.replace(",", "")
                if not _NUMBER.fullmatch(answer):
                    raise row.error("answer", f"should be a number, got {answer!r}")
        return Problem(self.problem_id(row, "id"), self.prompt(parts, row), answer=answer, meta=meta)


def _choice_gold(row: Row, choices: list[str]) -> str:
    gold = row.get("answer")
    if isinstance(gold, int) and not isinstance(gold, bool):
        if not 0 <= gold < len(choices):
            raise row.error("answer", f"option index {gold} is out of range for {len(choices)} choices")
        return chr(ord("A") + gold)
    text = str(gold).strip()
    if re.fullmatch(r"[A-Za-z]", text) and ord(text.upper()) - ord("A") < len(choices):
        return text.upper()
    for i, option in enumerate(choices):
        if text == option.strip():
            return chr(ord("A") + i)
    raise row.error("answer", f"should be an option letter, a 0-based index or an option's text, got {gold!r}")
