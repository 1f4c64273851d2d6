r"""Final-answer extraction from free-form completions.

The rule, when a completion holds several candidates:
1. Reasoning is removed first: everything inside `<think>...</think>` (and everything
   before a lone `</think>`) is never graded.
2. Forms are tried in priority order: `<answer>...</answer>`, `\boxed{...}` / `\fbox{...}`,
   an `Answer:` line, `#### N`, "the answer is ...". The first form present wins.
3. Within that form the *last* occurrence is the answer (models restate and correct
   themselves; the final statement is the one they commit to).

`extract_all` returns every candidate of the winning form, for graders that want to refuse
hedged answers ("\boxed{3} or \boxed{4}").
"""

from __future__ import annotations

import re

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_LINE = re.compile(r"^\s*(?:final\s+)?answer\s*[:：]\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_THE_ANSWER_IS = re.compile(r"the (?:final )?answer is[:\s]*(.+?)(?:\.\s|\.$|$|\n)", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """Remove `<think>` blocks; text before a lone closing `</think>` is reasoning too."""
    text = _THINK_BLOCK.sub(" ", text)
    lower = text.lower()
    if "</think>" in lower:
        text = text[lower.rindex("</think>") + len("</think>"):]
    elif "<think>" in lower:  # unterminated reasoning: nothing after it is an answer
        text = text[: lower.index("<think>")]
    return text


def extract_boxed(text: str) -> list[str]:
    r"""Contents of every `\boxed{...}` / `\fbox{...}`, with nested braces balanced."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append(text[m.end(): i - 1].strip())
    # `\boxed 5` (no braces) also occurs in the wild
    out += [m.group(1) for m in re.finditer(r"\\boxed\s+([^\s{$]+)", text)]
    return out


def extract_all(text: str) -> list[str]:
    """Every candidate of the highest-priority answer form present (see module docstring)."""
    text = strip_reasoning(text)
    for finder in (
        lambda t: [m.group(1).strip() for m in _ANSWER_TAG.finditer(t)],
        extract_boxed,
        lambda t: [m.group(1) for m in _ANSWER_LINE.finditer(t)],
        lambda t: [m.group(1) for m in _HASHES.finditer(t)],
        lambda t: [m.group(1).strip() for m in _THE_ANSWER_IS.finditer(t)],
    ):
        found = [c for c in finder(text) if c is not None]
        if found:
            return found
    return []


def extract_final_answer(text: str) -> str | None:
    """The answer a completion commits to, or None if it states none."""
    found = extract_all(text)
    return found[-1].strip() if found else None


def parse_int(text: str | None) -> int | None:
    """Parse an integer answer tolerantly: '1,234', '−5' (unicode minus), '$42$', '42.0'."""
    if text is None:
        return None
    t = text.strip().strip("$").replace("\u2212", "-").replace(",", "").replace(" ", "")
    t = re.sub(r"\\text\{[^}]*\}", "", t).rstrip(".")
    if re.fullmatch(r"[+-]?\d+", t):
        return int(t)
    if re.fullmatch(r"[+-]?\d+\.0*", t):
        return int(float(t))
    return None
