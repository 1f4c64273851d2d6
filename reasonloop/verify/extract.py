r"""Final-answer extraction from free-form completions.

Hand-written rather than delegated to Math-Verify's extractor because graders need a rule
they can state, and the same rule must hold for integer tasks that never touch sympy.

The rule, when a completion holds several candidates (docs/verifiers.md has examples):
1. Reasoning is removed first: everything inside `<think>...</think>` (and everything
   before a lone `</think>`) is never graded. An unterminated `<think>` means the model
   never left its reasoning, so nothing after it is an answer either.
2. The committing markers are `<answer>...</answer>`, `\boxed{...}` / `\fbox{...}` and
   `#### N`. When any is present, all of them are the candidates and the *last* one in
   reading order is the final answer. Several *different* candidates are competing final
   answers, a hedge ("\boxed{3} or \boxed{4}", or `\boxed{3}` then `#### 4`): `hedged` is
   set when they differ as text, and graders score a hedge 0 (`grade_math` first checks
   whether they are the same number written differently). Repeating one answer is fine.
   A statement ("the answer is 20", "Answer: 20") *after* the last committing marker
   competes with it too: `#### 18` then "Actually, the answer is 20." is a hedge, while
   `\boxed{12}` then "So the answer is 12." is a restatement. Only statements with a digit or
   LaTeX in them compete ("the answer is correct" does not).
3. Without a committing marker, statement forms are tried in order: an `Answer:` line, then
   "the answer is ...". Within the first form present the last statement is the answer
   (a restatement corrects an earlier one); lower forms are ignored. A statement's answer
   ends at a rejected value or a justification: "12, not 13" and "7, since 3 + 4 = 7" are
   12 and 7.
A single answer that offers alternatives ("5 or 6") is a hedge too; `answers_equal` rejects it.

Candidates are cleaned of presentation noise: surrounding `$`/`\(`/`**`, a trailing
period, and a leading "the (final) answer is" inside an `Answer:` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_LINE = re.compile(
    r"^[ \t>*_#]*(?:final\s+)?answer[ \t*_]*[:：][ \t*_]*(.*?)\s*$", re.IGNORECASE | re.MULTILINE
)
_HASHES = re.compile(r"####[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_THE_ANSWER_IS = re.compile(r"the (?:final )?answer is[:\s]*(.+?)(?:\.\s|\.$|$|\n)", re.IGNORECASE)
_LEADING_PHRASE = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\s+is[:\s]*", re.IGNORECASE)
_MATH_DELIMITERS = [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")]

COMMITTING_FORMS = ("tag", "boxed", "hashes")
"""Forms whose candidates compete: several different ones are a hedge (rule 2)."""


@dataclass
class Extraction:
    """What a completion answers: the committed answer and how it was found."""

    answer: str | None
    candidates: list[str] = field(default_factory=list)
    form: str | None = None
    """"tag", "boxed", "answer_line", "hashes", "the_answer_is", or None when nothing was found"""
    hedged: bool = False


def strip_reasoning(text: str) -> str:
    """The text after the reasoning: everything up to the last `</think>` is reasoning, and an
    unterminated `<think>` after it hides the rest. Linear time (no regex over nested tags)."""
    lower = text.lower()
    end = lower.rfind("</think>")
    if end >= 0:
        text, lower = text[end + len("</think>"):], lower[end + len("</think>"):]
    start = lower.find("<think>")
    return text[:start] if start >= 0 else text


def extract_boxed(text: str) -> list[str]:
    r"""Contents of every `\boxed{...}` / `\fbox{...}`, with nested braces balanced.

    >>> extract_boxed(r"so \boxed{\frac{1}{2}} and \boxed{\{1, 2\}}")
    ['\\frac{1}{2}', '\\{1, 2\\}']
    """
    found: list[tuple[int, str]] = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            ch = text[i]
            if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
                i += 2  # an escaped brace (\{ \}) is content, not structure
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            i += 1
        if depth == 0:
            found.append((m.start(), text[m.end(): i - 1].strip()))
    # `\boxed 5` (no braces) also occurs in the wild
    found += [(m.start(), m.group(1)) for m in re.finditer(r"\\boxed\s+([^\s{$]+)", text)]
    return [content for _, content in sorted(found)]


_MATH_THEN_PROSE = re.compile(r"^(\$\$?)([^$]+)\1[.,;:!]?(?:\s+[^$]*)?$", re.DOTALL)
_PROSE_AFTER = re.compile(r"^([^$]*?[^\s$])\.\s+[A-Z].*$", re.DOTALL)


def clean_candidate(candidate: str) -> str:
    r"""Strip presentation noise around an answer: math delimiters, bold, a final period, and a
    sentence after it ("$\frac{3}{4}$. I hope it is correct." is `\frac{3}{4}`).

    >>> clean_candidate("The final answer is $x = 3$. I hope it is correct."), clean_candidate("**42**. Done.")
    ('x = 3', '42')
    """
    c = candidate.strip()
    for _ in range(3):  # delimiters can nest: "**$42$**"
        before = c
        c = _LEADING_PHRASE.sub("", c).strip().strip("*").strip()  # markdown bold, paired or not
        if m := _MATH_THEN_PROSE.match(c):
            c = m.group(2).strip()
        elif m := _PROSE_AFTER.match(c):
            c = m.group(1).strip().strip("*").strip()
        if c.endswith("."):  # sentence end: "42." / "$x=3$."
            c = c[:-1].rstrip()
        for left, right in _MATH_DELIMITERS:
            if len(c) >= len(left) + len(right) and c.startswith(left) and c.endswith(right):
                c = c[len(left): len(c) - len(right)].strip()
        if c == before:
            break
    inner = extract_boxed(c)
    if len(inner) == 1 and c.startswith(("\\boxed", "\\fbox")):
        c = inner[0]
    return c


_TRAILING_CLAUSE = re.compile(r"^(.*?[^\s,;])\s*[,;(]\s*(?:not|since|because|as|which|so|then|if|where|for|i\.e\.|that is)\b.*$",
                              re.IGNORECASE | re.DOTALL)


def clean_statement(candidate: str) -> str:
    """A statement's answer without a trailing rejected value or justification ("12, not 13").

    >>> clean_statement("12, not 13"), clean_statement("7, since 3 + 4 = 7"), clean_statement("not 7; it is 8")
    ('12', '7', 'not 7; it is 8')
    """
    c = clean_candidate(candidate)
    if m := _TRAILING_CLAUSE.match(c):
        c = clean_candidate(m.group(1))
    return c


def _positions(pattern: re.Pattern, text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group(1)) for m in pattern.finditer(text)]


def _boxed_positions(text: str) -> list[tuple[int, str]]:
    found = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found.append((m.start(), text[m.end(): i - 1].strip()))
    found += [(m.start(), m.group(1)) for m in re.finditer(r"\\boxed\s+([^\s{$]+)", text)]
    return found


def _committed(text: str) -> list[tuple[str, int, str]]:
    """(form, position, candidate) of every committing marker, in reading order; a box inside
    an answer tag counts once, as the tag."""
    tags = [(p, c) for p, c in _positions(_ANSWER_TAG, text)]
    spans = [(m.start(), m.end()) for m in _ANSWER_TAG.finditer(text)]
    boxes = [(p, c) for p, c in _boxed_positions(text) if not any(a <= p < b for a, b in spans)]
    found = [("tag", p, c) for p, c in tags] + [("boxed", p, c) for p, c in boxes]
    found += [("hashes", p, c) for p, c in _positions(_HASHES, text)]
    return sorted(found, key=lambda f: f[1])


def _normalise_for_hedging(candidate: str) -> str:
    return re.sub(r"\s+|\\[,;!: ]|\\left|\\right", "", candidate).replace("dfrac", "frac").replace("tfrac", "frac")


def extract_answer(text: str) -> Extraction:
    r"""Apply the module's rule and say which form was used and whether it hedges.

    >>> extract_answer(r"<think>maybe \boxed{1}</think> So \boxed{2}.").answer
    '2'
    >>> e = extract_answer(r"\boxed{3} or \boxed{4}"); e.answer, e.hedged
    ('4', True)
    >>> e = extract_answer("So \\boxed{70}.\n#### 72"); e.answer, e.hedged
    ('72', True)
    >>> extract_answer("Answer: 5\nWait, no.\nAnswer: **$1,000$**.").answer
    '1,000'
    """
    text = strip_reasoning(text or "")
    marks = _committed(text)
    committed = [(form, clean_candidate(c)) for form, _, c in marks if c is not None]
    committed = [(form, c) for form, c in committed if c]
    if committed:
        found = [c for _, c in committed]
        after = text[marks[-1][1]:]
        later = [clean_statement(m.group(1)) for pattern in (_ANSWER_LINE, _THE_ANSWER_IS)
                 for m in pattern.finditer(after) if m.start() > 0] if "answer" in after.lower() else []
        found += [c for c in later if c and re.search(r"[\d\\]", c)]  # a restatement competes (rule 2)
        hedged = len({_normalise_for_hedging(c) for c in found}) > 1
        return Extraction(answer=committed[-1][1], candidates=found, form=committed[-1][0], hedged=hedged)
    statement_forms = (
        ("answer_line", lambda t: [m.group(1) for m in _ANSWER_LINE.finditer(t)]),
        ("the_answer_is", lambda t: [m.group(1) for m in _THE_ANSWER_IS.finditer(t)]),
    )
    for form, finder in statement_forms:
        # "Answer:" followed by nothing on the line is a heading, not an answer
        found = [c for c in (clean_statement(x) for x in finder(text)) if c]
        if found:
            return Extraction(answer=found[-1], candidates=found, form=form, hedged=False)
    return Extraction(answer=None)


def extract_all(text: str) -> list[str]:
    """Every candidate of the highest-priority answer form present (see module docstring)."""
    return extract_answer(text).candidates


def extract_final_answer(text: str) -> str | None:
    """The answer a completion commits to, or None if it states none.

    >>> extract_final_answer("Natalia sold 48 + 24 = 72 clips.\\n#### 72")
    '72'
    """
    return extract_answer(text).answer


def parse_int(text: str | None) -> int | None:
    """Parse an integer answer tolerantly: '1,234', '−5' (unicode minus), '$42$', '42.0'.

    >>> parse_int("$-1,234$"), parse_int("\\u22125"), parse_int("42.0"), parse_int("4.5")
    (-1234, -5, 42, None)
    """
    if text is None:
        return None
    t = text.strip().strip("$").replace("\u2212", "-").replace(" ", "")
    t = re.sub(r"\\text\{[^}]*\}", "", t).rstrip(".")
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+", t):  # thousands separators only in groups of 3
        t = t.replace(",", "")
    if re.fullmatch(r"[+-]?\d+", t):
        return int(t)
    if re.fullmatch(r"[+-]?\d+\.0*", t):
        return int(float(t))
    return None
