r"""Writes tests/data/verify_corpus.jsonl: labelled (gold, completion, correct) items for the math verifier.

    python tests/data/make_verify_corpus.py

Every label follows from how the item is built (a right answer in another spelling, or a
wrong value), and the hand-written tables below were checked by hand; the rules they
encode are docs/verifiers.md's. Each row: id, source (gsm8k, math, aime, adversarial),
kind, gold, completion, correct, and the task's options (tolerance, percent) when set.
Deterministic: the same file every run. The held-out part (source "heldout", tests/data/verify_heldout.py)
was written by hand before reading how the verifier decides; each of its rows carries its reason.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from verify_heldout import HELDOUT

OUT = Path(__file__).with_name("verify_corpus.jsonl")
rows: list[dict] = []


def add(source: str, kind: str, gold: str, completion: str, correct: bool, **options) -> None:
    key = (gold, completion, options.get("tolerance"), options.get("percent"))
    if any((r["gold"], r["completion"], r.get("tolerance"), r.get("percent")) == key for r in rows):
        return  # a random draw repeated an item
    rows.append({"id": f"{source}/{len(rows):04d}", "source": source, "kind": kind, "gold": gold,
                 "completion": completion, "correct": correct, **options})


# --- GSM8K: integer answers in the dataset's and models' spellings ---------------------------------

WORDS = ["apples", "dollars", "miles", "cookies", "minutes", "students", "pages", "eggs"]


def gsm8k(rng: random.Random, n_problems: int) -> None:
    for _ in range(n_problems):
        gold = rng.choice([rng.randint(2, 99), rng.randint(100, 999), rng.randint(1000, 99999)])
        a = rng.randint(1, gold - 1) if gold > 2 else 1
        work = f"First, {a} + {gold - a} = {gold}.\n"
        word = rng.choice(WORDS)
        right = [f"{work}#### {gold}", f"{work}The answer is {gold}.", f"{work}So the answer is $\\boxed{{{gold}}}$.",
                 f"{work}#### {gold:,}", f"{work}Answer: ${gold}", f"{work}Answer: {gold} {word}",
                 f"{work}\\boxed{{{gold} \\text{{ {word}}}}}", f"{work}#### {gold}.00", f"{work}**Answer:** {gold}"]
        wrong_values = [gold + 1, gold - 1, gold * 10, a, gold - a if gold - a != gold else gold + 2]
        for text in rng.sample(right, 3):
            add("gsm8k", "right_form", str(gold), text, True)
        for value in rng.sample([v for v in wrong_values if v != gold], 2):
            add("gsm8k", "wrong_value", str(gold), f"{work}#### {value}" if rng.random() < 0.5 else
                f"{work}The answer is \\boxed{{{value}}}.", False)


# --- MATH: LaTeX answers; (gold, right spellings, wrong answers), checked by hand ----------------------

MATH = [
    (r"\frac{3}{4}", [r"\dfrac{3}{4}", "0.75", r"\frac{6}{8}", "3/4"], [r"\frac{4}{3}", "0.7", r"\frac{3}{5}"]),
    (r"\frac{\sqrt{2}}{2}", [r"\frac{1}{\sqrt{2}}", r"\dfrac{\sqrt2}{2}", r"\frac{\sqrt{2}}{2}"], [r"\sqrt{2}", r"\frac{1}{2}", "0.7071"]),
    (r"2\sqrt{3}", [r"\sqrt{12}", r"2 \sqrt 3", r"2\sqrt{3}"], [r"3\sqrt{2}", r"\sqrt{6}", "3.464"]),
    (r"\frac{\pi}{3}", [r"\dfrac{\pi}{3}", r"\pi/3", r"\frac{1}{3}\pi"], [r"\frac{\pi}{6}", "60", "1.047"]),
    (r"(1, \infty)", [r"(1,\infty)", r"\left(1, \infty\right)"], [r"[1, \infty)", r"(-\infty, 1)", "(1, 10)"]),
    (r"\{-1, 1\}", [r"\{1, -1\}", r"\{1,-1\}"], [r"\{1\}", r"\{-1, 0, 1\}"]),
    (r"\left( 3, \frac{\pi}{2} \right)", [r"(3, \frac{\pi}{2})", r"\left(3,\frac{\pi}{2}\right)"], [r"(3, \pi)", r"(\frac{\pi}{2}, 3)"]),
    (r"x^2 + 2x + 1", [r"x^2+2x+1", r"(x+1)^2", r"1 + 2x + x^2"], [r"(x-1)^2", r"x^2+1"]),
    (r"10\sqrt{5}", [r"\sqrt{500}", r"10 \sqrt{5}"], [r"5\sqrt{10}", "22", "22.36"]),
    (r"\frac{7}{2}", ["3.5", r"3\frac{1}{2}", r"\frac{14}{4}"], [r"\frac{2}{7}", "3"]),
    (r"-\frac{1}{2}", ["-0.5", r"\frac{-1}{2}", r"-\dfrac12"], [r"\frac{1}{2}", "-2"]),
    (r"\frac{1}{3}", [r"\frac{2}{6}", "1/3"], ["0.33", "0.333", r"\frac{1}{4}"]),
    ("6", ["6.0", r"\frac{12}{2}", "{6}"], ["7", "-6", "36"]),
    (r"\sqrt{3}", [r"3^{1/2}", r"\frac{3}{\sqrt{3}}"], ["1.732", r"\sqrt{2}", "3"]),
    (r"4\pi", [r"4 \pi", r"\pi \cdot 4"], [r"2\pi", "12.57", r"4\pi^2"]),
    (r"\frac{5}{12}", [r"\dfrac{5}{12}", r"\frac{10}{24}"], [r"\frac{12}{5}", "0.42", r"\frac{5}{11}"]),
    (r"[-2, 3]", [r"[-2,3]", r"\left[-2, 3\right]"], [r"(-2, 3)", r"[-3, 2]", r"[-2, 3)"]),
    (r"(-\infty, 0) \cup (1, \infty)", [r"(-\infty,0)\cup(1,\infty)"], [r"(-\infty, 1)", r"(0, 1)"]),
    (r"\begin{pmatrix} 1 \\ -2 \end{pmatrix}", [r"\begin{pmatrix}1\\-2\end{pmatrix}"], [r"\begin{pmatrix} -2 \\ 1 \end{pmatrix}"]),
    ("2x - 3", ["-3 + 2x", "2x-3"], ["3 - 2x", "2x + 3"]),
    (r"30^\circ", ["30", r"30^{\circ}", r"30 \text{ degrees}"], ["60", r"150^\circ"]),
    (r"\text{(C)}", ["(C)", "C", r"\textbf{(C)}"], ["(B)", "D"]),
    ("1011_2", ["1011_2", "1011_{2}"], ["1101_2", "1010_2"]),
    ("3 + 4i", ["4i + 3", "3+4i"], ["3 - 4i", "4 + 3i"]),
    ("5, 7", ["7, 5", "5,7"], ["5", "5, 6"]),
    (r"\frac{9}{4}", ["2.25", r"2\frac{1}{4}", r"\frac{18}{8}"], ["2.2", r"\frac{4}{9}", "2.5"]),
    (r"2^{10}", ["1024", r"2^{10}"], ["1000", "2048"]),
    (r"\frac{1 + \sqrt{5}}{2}", [r"\frac{\sqrt{5}+1}{2}", r"\frac{1}{2} + \frac{\sqrt{5}}{2}"], ["1.618", r"\frac{1 - \sqrt{5}}{2}"]),
    (r"e^2", [r"e^{2}"], ["7.389", r"2e", r"e^3"]),
    ("0", ["0.0", "-0", r"\frac{0}{5}"], ["1", r"\emptyset"]),
    (r"\frac{a+b}{2}", [r"\frac{b+a}{2}", r"\frac{a}{2}+\frac{b}{2}"], [r"a+b", r"\frac{a-b}{2}"]),
    (r"y = 2x + 1", ["y=2x+1", "y = 1 + 2x"], ["y = 2x - 1", "y = x + 1"]),
    ("-4", ["-4.0", r"-\frac{8}{2}"], ["4", "-3"]),
    (r"\sqrt[3]{2}", [r"2^{1/3}", r"2^{\frac{1}{3}}"], ["1.26", r"\sqrt{2}"]),
    ("120", ["120", r"5!"], ["24", "720"]),
    (r"\frac{3\sqrt{3}}{2}", [r"\frac{3}{2}\sqrt{3}", r"1.5\sqrt{3}"], ["2.598", r"3\sqrt{3}"]),
]


def math(rng: random.Random) -> None:
    templates = ["So the final answer is $\\boxed{{{a}}}$.", "Thus $\\boxed{{{a}}}$.", "Final Answer: The final answer is ${a}$. I hope it is correct.",
                 "Therefore, the answer is $\\boxed{{{a}}}$"]
    for gold, rights, wrongs in MATH:
        for a in rights:
            add("math", "equivalent_form", gold, "We simplify step by step.\n" + rng.choice(templates).format(a=a), True)
        for a in wrongs:
            add("math", "wrong_value", gold, "We simplify step by step.\n" + rng.choice(templates).format(a=a), False)


# --- AIME: integers 0-999, often zero-padded ----------------------------------------------------

def aime(rng: random.Random, n: int) -> None:
    for _ in range(n):
        gold = rng.randint(0, 999)
        add("aime", "right_form", str(gold), f"... so the answer is $\\boxed{{{gold:03d}}}$.", True)
        add("aime", "right_form", f"{gold:03d}", f"Therefore the answer is $\\boxed{{{gold}}}$.", True)
        wrong = (gold + rng.choice([1, 10, 100, 7])) % 1000
        add("aime", "wrong_value", str(gold), f"... so the answer is $\\boxed{{{wrong:03d}}}$.", False)


# --- adversarial classes ------------------------------------------------------------------------

def adversarial(rng: random.Random) -> None:
    # competing final answers: a hedge scores 0, whichever is right
    for _ in range(20):
        a = rng.randint(2, 500)
        b = a + rng.randint(1, 9)
        gold = str(rng.choice([a, b]))
        add("adversarial", "hedge", gold, f"It is either $\\boxed{{{a}}}$ or $\\boxed{{{b}}}$.", False)
        add("adversarial", "hedge", gold, f"$\\boxed{{{a} \\text{{ or }} {b}}}$", False)
        add("adversarial", "hedge", gold, f"The answer is {a} or {b}.", False)
        add("adversarial", "hedge", gold, f"So \\boxed{{{a}}}.\n#### {b}", False)
        add("adversarial", "hedge", gold, f"<answer>{a}</answer> and also \\boxed{{{b}}}", False)
    # one final answer stated several times, or corrected in a statement: not a hedge
    for _ in range(10):
        a = rng.randint(2, 500)
        add("adversarial", "restated", str(a), f"\\boxed{{{a}}} ... checking again, \\boxed{{{a}}}.", True)
        add("adversarial", "restated", str(a), f"So \\boxed{{{a}}}.\n#### {a}", True)
        add("adversarial", "restated", str(a), f"The answer is {a - 1}. Wait, I made an error. The answer is {a}.", True)
        add("adversarial", "restated", str(a), f"Answer: {a + 1}\nNo, recount.\nAnswer: {a}", True)
    add("adversarial", "restated", "0.5", r"\boxed{\frac{1}{2}}, that is \boxed{0.5}", True)
    add("adversarial", "restated", r"\frac{3}{4}", r"$\boxed{0.75}$ ... i.e. $\boxed{\frac34}$", True)
    # rounded decimals are not exact values
    rounded = [(r"\frac{1}{3}", ["0.333", "0.3333", "0.33333333", ".333"]), (r"\frac{2}{3}", ["0.667", "0.6667", "0.666667"]),
               (r"\sqrt{2}", ["1.414", "1.41421356", "1.4142"]), (r"\pi", ["3.14", "3.14159", "3.1415926535"]),
               (r"\frac{\sqrt{3}}{2}", ["0.866", "0.8660254"]), (r"\frac{1}{7}", ["0.142857", "0.1429"]),
               (r"\frac{\pi}{4}", ["0.785", "0.7853982"]), (r"e", ["2.718", "2.71828"]), (r"\frac{5}{6}", ["0.833", "0.8333333"]),
               (r"\sqrt{5}", ["2.236", "2.2360680"]), (r"\frac{1}{9}", ["0.111", "0.11111111"])]
    for gold, approximations in rounded:
        for a in approximations:
            add("adversarial", "rounded_decimal", gold, f"Numerically, $\\boxed{{{a}}}$.", False)
    for gold, exact in [(r"\frac{1}{4}", "0.25"), (r"\frac{3}{8}", "0.375"), (r"\frac{1}{8}", "0.125"), (r"\frac{7}{5}", "1.4"),
                        (r"\frac{1}{16}", "0.0625"), (r"\frac{3}{20}", "0.15")]:
        add("adversarial", "exact_decimal", gold, f"$\\boxed{{{exact}}}$", True)
    for gold, a, tol in [(r"\frac{1}{3}", "0.3333", 1e-3), (r"\pi", "3.1416", 1e-4), (r"\sqrt{2}", "1.414", 1e-3),
                         (r"\frac{2}{3}", "0.67", 1e-2), (r"\pi", "3.2", 1e-3)]:
        right = abs(eval(a) - {r"\frac{1}{3}": 1 / 3, r"\pi": 3.141592653589793, r"\sqrt{2}": 2 ** 0.5,
                                r"\frac{2}{3}": 2 / 3}[gold]) <= tol * 1.0
        add("adversarial", "tolerance", gold, f"$\\boxed{{{a}}}$", right, tolerance=tol)
    # equivalent forms: scientific notation, nested grouping, units, percent where the task says so
    for value, forms in [("1500", [r"1.5 \times 10^3", r"1.5 \times 10^{3}", "1.5e3", r"1.5\cdot10^{3}", "15 \\times 10^2"]),
                         ("0.00025", [r"2.5 \times 10^{-4}", "2.5e-4", r"25 \times 10^{-5}"]),
                         ("3000000", [r"3 \times 10^6", r"3\times10^{6}", "3e6", "3,000,000"])]:
        for a in forms:
            add("adversarial", "scientific_notation", value, f"$\\boxed{{{a}}}$", True)
    for value, a in [("1500", r"1.5 \times 10^4"), ("0.00025", r"2.5 \times 10^{-3}"), ("3000000", "3e5")]:
        add("adversarial", "scientific_notation", value, f"$\\boxed{{{a}}}$", False)
    for a in ["{{5}}", "((5))", r"\left(5\right)", "{(5)}", "{{{5}}}", "(((5)))"]:
        add("adversarial", "nested_grouping", "5", f"$\\boxed{{{a}}}$", True)
    add("adversarial", "nested_grouping", r"\frac{1}{2}", r"$\boxed{{\frac{{1}}{{2}}}}$", True)
    add("adversarial", "nested_grouping", "5", r"$\boxed{{(6)}}$", False)
    for gold, a, ok in [("5", r"5 \text{ cm}", True), ("5", r"5\,\mathrm{m}^2", True), ("18", r"\$18.00", True),
                        ("18", "18 dollars", True), ("12", r"12 \text{ inches}", True), ("7", "7 cm", True),
                        ("40", r"40\text{ mph}", True), ("5", r"6 \text{ cm}", False),
                        ("18", r"\$17.99", False), ("100", r"100\text{ m}^2", True), ("9", r"9 \text{ square units}", True)]:
        add("adversarial", "units", gold, f"$\\boxed{{{a}}}$", ok)
    for gold, a, percent, ok in [("0.25", r"25\%", True, True), (r"25\%", "0.25", True, True), ("25", r"25\%", False, True),
                                 ("0.25", r"25\%", False, False), (r"25\%", "25", False, True), (r"12.5\%", "0.125", True, True),
                                 ("0.4", "40%", True, True), ("0.4", "4%", True, False), (r"50\%", "0.5", False, False),
                                 ("0.4", "40 percent", True, True)]:
        add("adversarial", "percent", gold, f"Answer: {a}", ok, **({"percent": True} if percent else {}))
    # answers only in the reasoning, empty answers, near misses that contain the gold as text
    for gold in ["5", "42", r"\frac{1}{2}"]:
        add("adversarial", "reasoning_only", gold, f"<think>the answer is \\boxed{{{gold}}}</think> I am not sure.", False)
        add("adversarial", "reasoning_only", gold, f"<think>so \\boxed{{{gold}}} probably", False)
        add("adversarial", "empty", gold, r"\boxed{}", False)
    for gold, a in [("5", "15"), ("5", "5.5"), ("5", "-5"), ("12", "1,2"), ("12", "123"), ("3", "x + 3"), ("2", r"2\sqrt{2}"),
                    ("10", "10^2"), ("1", r"\frac{1}{2}")]:
        add("adversarial", "near_miss", gold, f"$\\boxed{{{a}}}$", False)
    # pathological inputs: never equal, never hang
    for a in [r"10^{10^{10^{10}}}", r"9^{9^{9^{9}}}", r"2^{99999999}", r"(10^{100})!", "{" * 300 + "6" + "}" * 300,
              "1" * 5000, r"\sqrt{" * 80 + "2" + "}" * 80, "x" * 3000, r"10**10**10"]:
        add("adversarial", "pathological", "5", f"$\\boxed{{{a}}}$", False)
    add("adversarial", "pathological", r"10^{100}", r"$\boxed{10^{100}}$", True)
    add("adversarial", "pathological", "5", "$\\boxed{" + "{" * 300 + "5" + "}" * 300 + "}$", True)  # grouping: still 5


# --- held-out: hand-written against the verifier, not with it (verify_heldout.py) -------------

def heldout() -> None:
    for gold, completion, correct, reason, *options in HELDOUT:
        add("heldout", "hand_written", gold, completion, correct, reason=reason, **(options[0] if options else {}))


def main() -> None:
    rng = random.Random(16)
    gsm8k(rng, 40)
    math(rng)
    aime(rng, 25)
    adversarial(rng)
    heldout()
    with OUT.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["source"]] = counts.get(row["source"], 0) + 1
    print(f"{len(rows)} items -> {OUT} {counts}")


if __name__ == "__main__":
    main()
