r"""Exact values of closed-form answers, without sympy: the fast path of `answers_equal`.

Most final answers in GSM8K, MATH and AIME are numbers written in LaTeX: `\frac{3}{4}`,
`2\sqrt{3}`, `\frac{\pi}{6}`, `1.5\times10^{3}`, `(1, \infty)`, `\{-1, 1\}`, `30^\circ`,
`\$18.00`. `value_of` evaluates such text to a `Value`: an exact `Fraction` while the
expression stays rational, a float (marked irrational) once a root, pi or e enters. Then

- two rational values are equal only if exactly equal (`0.333` is not `\frac13`, and
  `0.3333333` is not either: a rounded decimal is not the exact value);
- a rational value written with a decimal point never equals an irrational one (`1.414`
  is not `\sqrt2`);
- two irrational values are equal when they agree to 1e-12 relative (different closed forms
  of one number: `\frac{\sqrt2}{2}` and `\frac{1}{\sqrt2}`);
- with a task `tolerance`, numbers within it are equal (absolute, or relative to the gold);
- a trailing percent sign is a unit (`50\%` is 50) unless the task says answers are
  percentages, when `50\%` also equals `0.5`.
Anything it cannot read (variables, matrices, words) gives None, and the caller falls back
to Math-Verify. It never evaluates huge powers (exponent above `MAX_EXPONENT` or a result
above `MAX_BITS`) or deep nesting, so it cannot hang.

Hand-written because the libraries that read LaTeX (Math-Verify, latex2sympy, sympy) build
sympy expressions, which costs milliseconds per answer and can hang; exact rational
arithmetic on `fractions.Fraction` costs microseconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

MAX_EXPONENT = 4096
MAX_BITS = 20_000
MAX_DEPTH = 60
MAX_FACTORIAL = 300
IRRATIONAL_RTOL = 1e-12


@dataclass(frozen=True)
class Value:
    """A number: exact (`Fraction`) while rational, else a float."""

    x: Fraction | float
    decimal: bool = False
    """written with a decimal point somewhere (a possibly rounded value)"""
    percent: bool = False

    @property
    def exact(self) -> bool:
        return isinstance(self.x, Fraction)


class _Unreadable(ValueError):
    pass


# --- normalising the text ------------------------------------------------------------------

_UNIT_GROUP = re.compile(r"\\(?:text|mathrm|textbf|mbox|textrm|operatorname|mathit)\s*\{\s*[A-Za-z][A-Za-z .]*\}"
                         r"(?:\s*\^\s*\{?\d\}?)?")
_UNIT_WORDS = re.compile(r"(?<=[\d}.)])\s*(?:/\s*(?=[A-Za-z]{3,}))?(?!pi\b|e\b)(?:[A-Za-z]{2,}\.?)(?:\s+[A-Za-z]{2,}\.?)*"
                         r"(?:\^\s*\{?\d\}?)?$")  # "5 cm", "12 square units", "$12/hour"
_SPACES = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~|\s+")
_ASSIGN = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?=[^=])")


_UNICODE_ROOT = re.compile("\u221a(\\d+)")
_UNICODE = str.maketrans({"\u221a": "\\sqrt ", "\u03c0": "\\pi ", "\u00d7": "\\times ", "\u00b7": "\\cdot ", "\u00f7": "\\div "})
_REPEATING = re.compile(r"(?<![\d.])(\d{0,50})\.(\d{0,50})\\(?:overline|bar)\s*\{(\d{1,20})\}")
"""starts only where a digit run starts: linear on 100,000-digit answers"""


def _repeating_fraction(m: re.Match) -> str:
    """`0.41\\overline{6}` -> `{\\frac{5}{12}}`: whole part, digits before the period, the period."""
    whole, head, period = m.group(1) or "0", m.group(2), m.group(3)
    value = int(whole) + Fraction(int(head or "0"), 10 ** len(head)) + Fraction(int(period), (10 ** len(period) - 1) * 10 ** len(head))
    return f"{{\\frac{{{value.numerator}}}{{{value.denominator}}}}}"


def normalise(text: str) -> tuple[str, bool]:
    r"""Presentation noise off; (text, whether it ended in a percent sign).

    >>> normalise(r"\$1{,}234.50"), normalise(r"x = \dfrac{3}{4}"), normalise(r"12.5 \%")
    (('1234.50', False), ('\\frac{3}{4}', False), ('12.5', True))
    """
    t = text.strip().replace("\u2212", "-").replace("\u2013", "-").replace("{,}", ",")
    if not t.isascii():
        t = _UNICODE_ROOT.sub(r"\\sqrt{\1}", t).translate(_UNICODE)
    if "\\overline" in t or "\\bar" in t:
        t = _REPEATING.sub(_repeating_fraction, t)  # 0.\overline{3} is exactly 1/3
    t = re.sub(r"\\,(?=\d{3}\b)", "", t)  # 1\,000
    t = t.replace("\\left", "").replace("\\right", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    t = t.replace("\\displaystyle", "")
    t = _ASSIGN.sub("", t.strip().strip("$").strip())
    t = t.replace("\\$", "").replace("$", "").strip()
    percent = False
    for mark in ("\\%", "%", " percent"):
        if t.endswith(mark):
            t, percent = t[: -len(mark)].strip(), True
            break
    t = re.sub(r"\^\s*\{?\\circ\}?$|°$|\\degree$", "", t).strip()
    for _ in range(2):
        t = _UNIT_GROUP.sub("", t).strip()
        t = _UNIT_WORDS.sub("", t).strip()
    t = _SPACES.sub("", t)
    if re.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", t):  # thousands separators
        t = t.replace(",", "")
    return t, percent


# --- a small recursive-descent evaluator --------------------------------------------------------

_BASE_N = re.compile(r"([0-9A-Za-z]+)_\{?(\d{1,2})\}?")
_MIXED = re.compile(r"([+-]?)(\d+)\\frac(?:\{(\d+)\}\{(\d+)\}|(\d)(\d))")
_TOKEN = re.compile(r"\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\\[A-Za-z]+|\S")
_VARIABLE = re.compile(r"(?<![\\A-Za-z])([a-df-hj-zA-Z])(?![A-Za-z])")
"""single-letter variables: not e (Euler's number) or i (the imaginary unit)"""
_FUNCTIONS = {"\\sqrt", "\\frac", "\\pi", "\\infty", "\\cdot", "\\times", "\\div", "\\e"}


class _Parser:
    def __init__(self, text: str, variables: dict[str, Fraction] | None = None):
        self.tokens = _TOKEN.findall(text)
        self.at = 0
        self.decimal = False
        self.depth = 0
        self.variables = variables

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _Unreadable(f"expected {expected!r}, got {token!r}")
        self.at += 1
        return token

    def parse(self):
        value = self.sum()
        if self.peek() is not None:
            raise _Unreadable(f"unexpected {self.peek()!r}")
        return value

    def sum(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Unreadable("nested too deeply")
        value = self.product()
        while self.peek() in ("+", "-"):
            sign = self.take()
            right = self.product()
            value = value + right if sign == "+" else value - right
        self.depth -= 1
        return value

    def product(self):
        value = self.unary()
        while True:
            token = self.peek()
            if token in ("*", "\\cdot", "\\times", "/", "\\div"):
                self.take()
                right = self.unary()
                value = _divide(value, right) if token in ("/", "\\div") else value * right
            elif token is not None and (token[0].isdigit() or token.isalpha()
                                        or token in ("(", "{", "\\sqrt", "\\frac", "\\pi", "\\e")):
                value = value * self.unary()  # implicit product: 2\sqrt{3}, 3\pi, 2(1+x)
            else:
                return value

    def unary(self):
        if self.peek() in ("+", "-"):
            sign = self.take()
            value = self.unary()
            return -value if sign == "-" else value
        return self.power()

    def power(self):
        base = self.atom()
        if self.peek() == "!":
            self.take()
            if not (isinstance(base, Fraction) and base.denominator == 1 and 0 <= base <= MAX_FACTORIAL):
                raise _Unreadable("factorial of a large or non-integer value")
            base = Fraction(math.factorial(int(base)))
        if self.peek() == "^":
            self.take()
            exponent = self.group_or_atom()
            return _power(base, exponent)
        return base

    def group_or_atom(self):
        if self.peek() == "{":
            return self.braced()
        token = self.take()
        if token.isdigit():  # 2^10: a one-digit exponent unless braced
            self.tokens[self.at:self.at] = [token[1:]] if len(token) > 1 else []
            return Fraction(int(token[0]))
        if token == "-":
            return -self.group_or_atom()
        self.at -= 1
        return self.atom()

    def braced(self):
        self.take("{")
        value = self.sum()
        self.take("}")
        return value

    def atom(self):
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            if "." in token or "e" in token.lower():
                self.decimal = True
            mantissa, _, exponent = token.lower().partition("e")
            if len(mantissa) > 4000 or exponent and abs(int(exponent)) > MAX_EXPONENT:
                raise _Unreadable("number too large")
            return Fraction(token)
        if token in ("(", "{"):
            value = self.sum()
            self.take(")" if token == "(" else "}")
            return value
        if token == "\\frac":
            num = self.group_or_digit()
            return _divide(num, self.group_or_digit())
        if token == "\\sqrt":
            index = Fraction(2)
            if self.peek() == "[":
                self.take("[")
                index = self.sum()
                self.take("]")
            return _root(self.group_or_digit(), index)
        if token == "\\pi":
            return math.pi
        if token in ("\\e", "e"):
            return math.e
        if token == "\\infty":
            return math.inf
        if self.variables is not None and token in self.variables:
            return self.variables[token]
        raise _Unreadable(f"cannot evaluate {token!r}")

    def group_or_digit(self):
        if self.peek() == "{":
            return self.braced()
        token = self.take()
        if token.isdigit():  # \frac12 is \frac{1}{2}
            self.tokens[self.at:self.at] = [token[1:]] if len(token) > 1 else []
            return Fraction(int(token[0]))
        self.at -= 1
        return self.atom()


def _divide(a, b):
    if b == 0:
        raise _Unreadable("division by zero")
    return a / b


def _power(base, exponent):
    if isinstance(exponent, Fraction) and exponent.denominator == 1 and isinstance(base, Fraction):
        if abs(exponent) > MAX_EXPONENT:
            raise _Unreadable("exponent too large")
        bits = max(base.numerator.bit_length(), base.denominator.bit_length()) * abs(int(exponent))
        if bits > MAX_BITS:
            raise _Unreadable("result too large")
        if base == 0 and exponent < 0:
            raise _Unreadable("division by zero")
        return base ** int(exponent)
    if isinstance(exponent, Fraction) and isinstance(base, Fraction) and base >= 0:
        root = _root(base, Fraction(exponent.denominator))
        return _power(root, Fraction(exponent.numerator)) if isinstance(root, Fraction) else float(root) ** float(exponent.numerator)
    try:
        result = float(base) ** float(exponent)
    except (OverflowError, ZeroDivisionError) as e:
        raise _Unreadable(str(e)) from e
    if isinstance(result, complex) or math.isinf(result) and not (math.isinf(float(base)) or math.isinf(float(exponent))):
        raise _Unreadable("not a real number")
    return result


def _root(x, index):
    if isinstance(index, Fraction) and index.denominator == 1 and 2 <= index <= 64 and isinstance(x, Fraction) and x >= 0:
        n = int(index)
        num, den = _int_root(x.numerator, n), _int_root(x.denominator, n)
        if num is not None and den is not None:
            return Fraction(num, den)
    if float(x) < 0:
        raise _Unreadable("root of a negative number")
    return float(x) ** (1.0 / float(index))


def _int_root(n: int, k: int) -> int | None:
    if n.bit_length() > MAX_BITS:
        return None
    r = round(n ** (1.0 / k)) if n.bit_length() < 1000 else math.isqrt(n) if k == 2 else None
    if r is None:
        return None
    for c in (r - 1, r, r + 1):
        if c >= 0 and c**k == n:
            return c
    return None


def value_of(text: str, variables: dict[str, Fraction] | None = None) -> Value | None:
    r"""The exact value of a closed-form number, or None if it is not one we can read.

    >>> value_of(r"\frac{3}{4}").x, value_of(r"2\sqrt{3}").exact, value_of("1.5e3").x
    (Fraction(3, 4), False, Fraction(1500, 1))
    >>> value_of(r"1.5 \times 10^{-2}").x, value_of("x + 1")
    (Fraction(3, 200), None)
    """
    t, percent = normalise(text)
    if not t or len(t) > 300:
        return None
    if m := _MIXED.fullmatch(t):  # 3\frac{1}{2} is a mixed number, 7/2
        whole, num, den = int(m.group(2)), int(m.group(3) or m.group(5)), int(m.group(4) or m.group(6))
        if den and num < den:
            value = whole + Fraction(num, den)
            return Value(-value if m.group(1) == "-" else value, False, percent)
    if m := _BASE_N.fullmatch(t):  # 1011_2: a numeral in base 2
        try:
            return Value(Fraction(int(m.group(1), int(m.group(2)))), False, percent)
        except ValueError:
            return None
    parser = _Parser(t, variables)
    try:
        x = parser.parse()
    except (_Unreadable, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None
    if isinstance(x, Fraction) or (isinstance(x, float) and not math.isnan(x)):
        return Value(x, parser.decimal, percent)
    return None


# --- comparing ------------------------------------------------------------------------------


def values_equal(gold: Value, candidate: Value, *, tolerance: float | None = None, percent: bool = False) -> bool:
    """Equality under the rules of the module docstring."""
    golds = [gold.x] + ([gold.x / 100] if percent and gold.percent else [])
    cands = [candidate.x] + ([candidate.x / 100] if percent and candidate.percent else [])
    for g in golds:
        for c in cands:
            if _close(g, c, gold, candidate, tolerance):
                return True
    return False


def _close(g, c, gold: Value, candidate: Value, tolerance: float | None) -> bool:
    if tolerance is not None:
        if math.isinf(float(g)) or math.isinf(float(c)):
            return float(g) == float(c)
        return abs(float(g) - float(c)) <= tolerance * max(1.0, abs(float(g)))
    if isinstance(g, Fraction) and isinstance(c, Fraction):
        return g == c
    if math.isinf(float(g)) or math.isinf(float(c)):
        return float(g) == float(c)
    if isinstance(g, Fraction) != isinstance(c, Fraction):
        # one side is irrational: a decimal (a rounded value) never matches; an exact
        # rational expression cannot equal an irrational one either
        return False
    return abs(float(g) - float(c)) <= IRRATIONAL_RTOL * max(1.0, abs(float(g)))


_BRACKETS = {"(": ")", "[": "]", "\\{": "\\}", "{": "}"}


def split_structure(text: str) -> tuple[str, str, list[str]] | None:
    r"""A tuple, interval, set or bare list: (open, close, elements); None for a single item.

    >>> split_structure(r"\left( 1, \frac{\pi}{2} \right]"), split_structure("3, 4")
    (('(', ']', ['1', '\\frac{\\pi}{2}']), ('', '', ['3', '4']))
    """
    t = text.strip().strip("$").replace("\\left", "").replace("\\right", "").strip()
    opening = next((o for o in ("\\{", "(", "[") if t.startswith(o)), "")
    closing = next((c for c in ("\\}", ")", "]") if t.endswith(c)), "") if opening else ""
    inner = t[len(opening): len(t) - len(closing)] if opening and closing else t
    if opening and not closing:
        return None
    parts, depth, start, i = [], 0, 0, 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\" and inner[i + 1: i + 2] in ("{", "}"):
            depth += 1 if inner[i + 1] == "{" else -1
            i += 2
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i].strip())
            start = i + 1
        i += 1
    parts.append(inner[start:].strip())
    if depth != 0 or len(parts) < 2 or not all(parts):
        return None
    if not opening and re.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", inner.strip()):
        return None  # 1,234 is a number, not a list
    return opening, closing, parts


_RELATIONS = [(re.compile(p), r) for p, r in ((r"\\leq?(?:slant)?(?![A-Za-z])|\u2264|<=", "<="), (r"\\geq?(?:slant)?(?![A-Za-z])|\u2265|>=", ">="),
                                             (r"\\lt(?![A-Za-z])", "<"), (r"\\gt(?![A-Za-z])", ">"))]
_BETWEEN = re.compile(r"^([^<>=]+?)(<=|<)\s*[A-Za-z]\s*(<=|<)([^<>=]+)$|^([^<>=]+?)(>=|>)\s*[A-Za-z]\s*(>=|>)([^<>=]+)$")
_ONE_SIDED = re.compile(r"^\s*[A-Za-z]\s*(<=|<|>=|>)([^<>=]+)$|^([^<>=]+?)(<=|<|>=|>)\s*[A-Za-z]\s*$")


def inequality_interval(text: str) -> str | None:
    r"""The interval an inequality in one variable describes, in interval notation; None otherwise.

    >>> inequality_interval(r"2 \le x < 5"), inequality_interval(r"x \leq 3"), inequality_interval("5 > y > 1")
    ('[2, 5)', '(-\\infty, 3]', '(1, 5)')
    """
    if not any(mark in text for mark in ("<", ">", "\\l", "\\g", "\u2264", "\u2265")):
        return None  # the common case, decided without a regex
    t = text.strip().strip("$")
    for pattern, rel in _RELATIONS:
        t = pattern.sub(rel, t)
    if m := _BETWEEN.match(t):
        if m.group(1) is not None:
            lo, lo_rel, hi_rel, hi = m.group(1), m.group(2), m.group(3), m.group(4)
        else:  # 5 > x >= 1
            hi, hi_rel, lo_rel, lo = m.group(5), m.group(6), m.group(7), m.group(8)
        return f"{'[' if '=' in lo_rel else '('}{lo.strip()}, {hi.strip()}{']' if '=' in hi_rel else ')'}"
    if m := _ONE_SIDED.match(t):
        if m.group(1) is not None:
            rel, bound = m.group(1), m.group(2).strip()
        else:  # 3 >= x is x <= 3
            bound, rel = m.group(3).strip(), {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[m.group(4)]
        closed = "=" in rel
        if rel.startswith("<"):
            return f"(-\\infty, {bound}{']' if closed else ')'}"
        return f"{'[' if closed else '('}{bound}, \\infty)"
    return None


_ASSIGNED = re.compile(r"^\s*([A-Za-z])(?:_\{?\w+\}?)?\s*=\s*(?=[^=])")


def assignments_as_tuple(text: str) -> str | None:
    r"""`x=3, y=-2` (one value per variable) as the tuple `(3, -2)`; x, y, z in that order.

    >>> assignments_as_tuple("y = -2, x = 3"), assignments_as_tuple("3, 4")
    ('(3, -2)', None)
    """
    parts = split_structure(text)
    if parts is None or parts[0]:
        return None
    found = [(_ASSIGNED.match(p), p) for p in parts[2]]
    if not all(m for m, _ in found):
        return None
    names = [m.group(1) for m, _ in found]
    if len(set(names)) != len(names):
        return None  # x = 1, x = 2 lists solutions, not a point
    if set(names) <= set("xyz"):
        found.sort(key=lambda f: f[0].group(1))
    return "(" + ", ".join(p[m.end():].strip() for m, p in found) + ")"


def compare(gold: str, candidate: str, *, tolerance: float | None = None, percent: bool = False) -> bool | None:
    r"""True/False when both sides are closed-form numbers or structures of them; None otherwise.

    >>> compare(r"\frac{1}{3}", "0.333"), compare(r"\frac{\sqrt2}{2}", r"\frac{1}{\sqrt{2}}"), compare("x^2", r"\sin x")
    (False, True, None)
    >>> compare(r"\{1, -1\}", r"\{-1,1\}"), compare("(1, 2)", "(2, 1)"), compare("1500", r"1.5 \times 10^3")
    (True, False, True)
    """
    gold = inequality_interval(gold) or gold  # x \le 3 is (-\infty, 3]
    candidate = inequality_interval(candidate) or candidate
    if "=" in candidate and gold.lstrip().startswith(("(", "\\left(")):  # the point (3, -2) written x = 3, y = -2
        candidate = assignments_as_tuple(candidate) or candidate
    g, c = value_of(gold), value_of(candidate)
    if g is not None and c is not None:
        return values_equal(g, c, tolerance=tolerance, percent=percent)
    gold_choice, candidate_choice = choice_letter(gold), choice_letter(candidate)
    if gold_choice is not None:
        return candidate_choice == gold_choice if candidate_choice is not None else None
    if g is None and c is None:
        identity = polynomial_identity(gold, candidate)
        if identity is not None:
            return identity
    gs, cs = split_structure(gold), split_structure(candidate)
    if gs is None or cs is None:
        if (gs is None) != (cs is None) and (g is not None or c is not None):
            return False  # a number against a list of several
        return None
    (go, gc, gparts), (co, cc, cparts) = gs, cs
    if len(gparts) != len(cparts):
        return False if all(value_of(p) for p in gparts + cparts) else None
    gvals, cvals = [value_of(p) for p in gparts], [value_of(p) for p in cparts]
    if any(v is None for v in gvals + cvals):
        return None
    unordered = go in ("\\{", "") and co in ("\\{", "")
    if unordered:
        left = list(cvals)
        for gv in gvals:
            match = next((i for i, cv in enumerate(left) if values_equal(gv, cv, tolerance=tolerance)), None)
            if match is None:
                return False
            left.pop(match)
        return True
    if (go, gc) != (co, cc):
        return False  # (1, 2] is not [1, 2]; a tuple is not a set
    return all(values_equal(a, b, tolerance=tolerance) for a, b in zip(gvals, cvals))


_CHOICE = re.compile(r"\(?([A-E])\)?")


def choice_letter(text: str) -> str | None:
    r"""The letter of a multiple-choice answer: `\text{(C)}`, `\textbf{(C)}`, `(C)`, `C`.

    >>> choice_letter(r"\textbf{(C)}"), choice_letter("C"), choice_letter("CD")
    ('C', 'C', None)
    """
    t = re.sub(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}", r"\1", text).replace("$", "").strip()
    m = _CHOICE.fullmatch(t.strip())
    return m.group(1) if m else None


def polynomial_identity(gold: str, candidate: str, points: int = 3) -> bool | None:
    r"""Are two rational expressions in the same single-letter variables identical?

    Evaluated exactly (fractions) at `points` random rational points: polynomials of modest
    degree that agree at random points from a large set are the same polynomial (Schwartz-
    Zippel). None when either side is not a rational expression of those variables.

    >>> polynomial_identity("x^2 + 2x + 1", "(x+1)^2"), polynomial_identity("2x - 3", "3 - 2x")
    (True, False)
    >>> polynomial_identity(r"\frac{a+b}{2}", r"\frac{a}{2}+\frac{b}{2}"), polynomial_identity("x^2", "y^2")
    (True, None)
    """
    g, _ = normalise(gold)
    c, _ = normalise(candidate)
    names = set(_VARIABLE.findall(g))
    if not names or names != set(_VARIABLE.findall(c)) or len(names) > 4:
        return None
    import random

    rng = random.Random(0x5EED)
    tried = 0
    agree = 0
    while agree < points and tried < 4 * points:
        tried += 1
        env = {name: Fraction(rng.randint(-997, 997), rng.randint(1, 97)) for name in names}
        gv, cv = value_of(g, env), value_of(c, env)
        if gv is None or cv is None:
            if tried >= points and agree == 0:
                return None
            continue  # a pole at this point: try another
        if not (gv.exact and cv.exact):
            return None  # roots of variables: leave it to sympy
        if gv.x != cv.x:
            return False
        agree += 1
    return True if agree == points else None
