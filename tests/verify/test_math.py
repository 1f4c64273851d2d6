"""Math equivalence against an adversarial corpus: every case gets the right score, none hangs."""

import concurrent.futures
import multiprocessing
import time

import pytest

from reasonloop.types import Problem
from reasonloop.verify.math import (
    VerifyTimeout,
    answers_equal,
    canonical_text,
    clear_cache,
    get_pool,
    grade_math,
    looks_explosive,
    math_reward,
    parse_number,
)
from reasonloop.verify.rewards import score_all

HANG = r"\left(1+\frac{1}{10^{100000}}\right)^{10^{100000}}"  # sympy runs for minutes on this

# (gold, completion, expected score)
CORPUS = [
    # --- plain numbers: the fast path ---
    ("72", "48 + 24 = 72\n#### 72", 1.0),
    ("72", "#### 72.0", 1.0),
    ("72", "#### 73", 0.0),
    ("1234", r"\boxed{1,234}", 1.0),
    ("1234", r"\boxed{1{,}234}", 1.0),
    ("1234", r"\boxed{1\,234}", 1.0),
    ("1,234", "Answer: 1234", 1.0),
    ("1234", r"\boxed{12,34}", 0.0),  # not a thousands separator: a list
    ("-5", "\\boxed{\u22125}", 1.0),  # unicode minus
    ("-5", "Answer: \u2212 5", 1.0),
    ("-5", r"\boxed{5}", 0.0),
    ("5", r"\boxed{-5}", 0.0),
    ("0.5", r"\boxed{\frac{1}{2}}", 1.0),
    ("0.5", r"\boxed{\dfrac{1}{2}}", 1.0),
    ("0.5", r"\boxed{1/2}", 1.0),
    ("0.5", r"\boxed{\frac12}", 1.0),
    ("1/2", "Answer: 0.50", 1.0),
    ("1/3", r"\boxed{0.333}", 0.0),  # a rounded decimal is not the exact value
    ("1/3", r"\boxed{0.33}", 0.0),
    ("2/3", r"\boxed{0.667}", 0.0),
    ("-3/4", r"\boxed{-\frac{3}{4}}", 1.0),
    ("-3/4", r"\boxed{\frac{-3}{4}}", 1.0),
    ("3/4", r"\boxed{\frac{3}{0}}", 0.0),
    ("50", r"\boxed{50\%}", 1.0),  # a percent sign is a unit ...
    ("0.5", r"\boxed{50\%}", 0.0),  # ... and means / 100 only where the task says so
    ("50", "Answer: 50%", 1.0),
    ("25", "Answer: 50%", 0.0),
    ("18", r"\boxed{\$18}", 1.0),
    ("18", "Answer: $18", 1.0),
    ("18", r"\boxed{18 \text{ dollars}}", 1.0),
    ("18", "Answer: 18 dollars", 1.0),
    ("18", "#### 18 apples.", 1.0),
    ("10", r"\boxed{10\text{ cm}}", 1.0),
    ("10", r"\boxed{10 \mathrm{cm}}", 1.0),
    ("30", r"\boxed{30^\circ}", 1.0),
    ("30", r"\boxed{30^{\circ}}", 1.0),
    ("30", r"\boxed{31^\circ}", 0.0),
    ("3.14", r"\boxed{3.140}", 1.0),
    ("3.14", r"\boxed{3.15}", 0.0),
    ("100", r"\boxed{1e2}", 1.0),  # scientific (E) notation
    ("0", r"\boxed{0}", 1.0),
    ("0", r"\boxed{-0}", 1.0),
    ("007", r"\boxed{7}", 1.0),
    ("42", "**Answer:** 42", 1.0),
    ("42", "Final Answer: The final answer is $42$. I hope it is correct.", 1.0),
    ("42", "The answer is 42.", 1.0),
    ("42", "the final answer is: 42", 1.0),
    ("42", "<answer>42</answer>", 1.0),
    ("42", "<answer> 42 </answer>", 1.0),
    ("42", "Therefore, $\\boxed{42}$.", 1.0),
    ("42", r"\boxed 42", 1.0),
    ("42", r"\fbox{42}", 1.0),
    # --- empty answers and no answer ---
    ("42", "", 0.0),
    ("42", "   \n  ", 0.0),
    ("42", r"\boxed{}", 0.0),
    ("42", "<answer></answer>", 0.0),
    ("42", "Answer:", 0.0),
    ("42", "I think it is 42", 0.0),  # no committed answer form
    ("42", "42", 0.0),
    # --- several answers ---
    ("3", r"\boxed{3} or \boxed{4}", 0.0),  # hedging
    ("4", r"\boxed{3} or \boxed{4}", 0.0),
    ("3", r"\boxed{3} ... so again \boxed{3}", 1.0),  # repeating is not hedging
    ("3", r"\boxed{3}, i.e. \boxed{ 3 }", 1.0),
    ("3", "<answer>3</answer><answer>4</answer>", 0.0),
    ("4", "Answer: 3\nWait, I made an error.\nAnswer: 4", 1.0),  # last Answer: line wins
    ("3", "Answer: 3\nWait, I made an error.\nAnswer: 4", 0.0),
    ("4", "The answer is 3. Actually the answer is 4.", 1.0),
    ("3", r"Answer: 4 \boxed{3}", 1.0),  # boxed outranks Answer:
    ("3", r"<answer>3</answer> \boxed{4}", 0.0),  # competing final answers: a hedge
    ("2", r"\boxed{2, 3}", 0.0),  # a set/tuple is not its first element
    # --- the answer only inside the reasoning ---
    ("5", r"<think>so \boxed{5}</think> I am not sure.", 0.0),
    ("5", r"<think>maybe \boxed{4}</think> \boxed{5}", 1.0),
    ("4", r"<think>maybe \boxed{4}</think> \boxed{5}", 0.0),
    ("5", r"<think>still thinking \boxed{5}", 0.0),  # never closed: nothing is an answer
    ("5", r"reasoning \boxed{5}</think> final: nothing", 0.0),
    ("5", r"reasoning \boxed{4}</think> \boxed{5}", 1.0),
    ("5", "<THINK>x</THINK> #### 5", 1.0),
    # --- LaTeX equivalence: the Math-Verify path ---
    (r"\frac{\sqrt{2}}{2}", r"\boxed{\frac{1}{\sqrt{2}}}", 1.0),
    ("sqrt(2)/2", r"\boxed{\frac{\sqrt{2}}{2}}", 1.0),  # plain-text gold that Math-Verify cannot parse alone
    ("sqrt(2)/2", r"\boxed{\frac{\sqrt{3}}{2}}", 0.0),
    ("2**0.5/2", r"\boxed{\frac{\sqrt2}{2}}", 1.0),
    (r"\sqrt{2}", r"\boxed{\sqrt 2}", 1.0),
    (r"2\sqrt{3}", r"\boxed{\sqrt{12}}", 1.0),
    (r"2\sqrt{3}", r"\boxed{3\sqrt{2}}", 0.0),
    (r"\pi", r"\boxed{\pi}", 1.0),
    (r"2\pi", r"\boxed{2 \pi}", 1.0),
    (r"\frac{\pi}{2}", r"\boxed{\frac{\pi}{3}}", 0.0),
    ("x^2+2x+1", r"\boxed{(x+1)^2}", 1.0),
    ("x^2+2x+1", r"\boxed{(x-1)^2}", 0.0),
    ("3", r"\boxed{x = 3}", 1.0),
    (r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{(3, \frac{\pi}{2})}", 1.0),
    (r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{(3, \pi)}", 0.0),
    ("[0,1)", r"\boxed{[0, 1)}", 1.0),  # intervals
    ("[0,1)", r"\boxed{[0, 1]}", 0.0),
    (r"(-\infty, 2]", r"\boxed{(-\infty,2]}", 1.0),
    (r"\{1,2\}", r"\boxed{\{2,1\}}", 1.0),  # sets
    (r"\{1,2\}", r"\boxed{\{1,3\}}", 0.0),
    (r"\{1,2,3\}", r"\boxed{\{1, 2\}}", 0.0),
    (r"\frac{3}{4}", r"\boxed{0.75}", 1.0),
    (r"\frac{3}{4}", r"\boxed{\frac{6}{8}}", 1.0),
    (r"10^{6}", r"\boxed{1000000}", 1.0),
    ("1000000", r"\boxed{10^6}", 1.0),
    (r"e^{2}", r"\boxed{e^2}", 1.0),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}", 1.0),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\boxed{\begin{pmatrix} 2 \\ 1 \end{pmatrix}}", 0.0),
    # --- answers that would make sympy hang or explode ---
    ("5", r"\boxed{10^{10^{10^{10}}}}", 0.0),
    ("5", r"\boxed{9^{9^{9^{9}}}}", 0.0),
    ("5", r"\boxed{2^{2^{2^{2^{2^{2}}}}}}", 0.0),
    ("5", r"\boxed{100!!}", 0.0),
    ("5", r"\boxed{(10^{100})!}", 0.0),
    ("e", rf"\boxed{{{HANG}}}", 0.0),
    ("5", r"\boxed{2^{123456789}}", 0.0),
    ("5", "Answer: 10**10**10", 0.0),
    (r"10^{10^{10}}", r"\boxed{10^{10^{10}}}", 1.0),  # textually identical: no evaluation needed
    ("5", r"\boxed{" + "{" * 200 + "5" + "}" * 200 + "}", 1.0),  # deep nesting
    ("5", r"\boxed{\sqrt{\sqrt{\sqrt{\sqrt{\sqrt{\sqrt{\sqrt{\sqrt{2}}}}}}}}}", 0.0),
    ("5", r"\boxed{" + "1+" * 300 + "1}", 0.0),
    ("5", "Answer: " + "9" * 5000, 0.0),  # a huge literal
    # --- garbage ---
    ("5", r"\boxed{\frac{}{}}", 0.0),
    ("5", r"\boxed{\left(}", 0.0),
    ("5", "\\boxed{5", 0.0),  # unbalanced: no boxed answer at all
    ("5", "Answer: \x00\x01", 0.0),
    ("5", "Answer: " + "\u202e5", 0.0),
]


@pytest.fixture(scope="module", autouse=True)
def fresh_cache():
    clear_cache()


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 100


def test_adversarial_corpus_scores_right_and_never_hangs():
    problems = [Problem(f"c{i}", "?", answer=gold) for i, (gold, _, _) in enumerate(CORPUS)]
    start = time.monotonic()
    scores = score_all({"math": math_reward}, problems, [c for _, c, _ in CORPUS], workers=2, timeout=3.0)
    elapsed = time.monotonic() - start
    wrong = [(gold, completion[:80], expected, got) for (gold, completion, expected), got
             in zip(CORPUS, scores["math"]) if got != expected]
    assert not wrong, wrong
    assert elapsed < 30
    assert not any(e and "abandoned" in e for e in scores.errors)


def test_the_timeout_kills_a_hung_check_and_the_pool_recovers():
    pool = get_pool()
    before = pool.restarts
    start = time.monotonic()
    with pytest.raises(VerifyTimeout):
        answers_equal("e", HANG + " ", timeout=1.0, guard=False)
    assert time.monotonic() - start < 3
    assert pool.restarts == before + 1
    assert answers_equal(r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", timeout=30)  # a fresh worker answers
    with pytest.raises(VerifyTimeout, match="cached"):  # a pair that hung is not retried
        answers_equal("e", HANG + " ", timeout=1.0, guard=False)


def test_timeouts_work_from_threads():
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        hung = ex.submit(answers_equal, "e", HANG + "  ", timeout=1.0, guard=False)
        fine = ex.submit(answers_equal, r"\frac{1}{2}", r"\frac{2}{4}", timeout=30)
        with pytest.raises(VerifyTimeout):
            hung.result(timeout=20)
        assert fine.result(timeout=20) is True


def _hang_in_child(queue):
    try:
        answers_equal("e", HANG + "   ", timeout=1.0, guard=False)
        queue.put("no timeout")
    except VerifyTimeout:
        queue.put("timeout")


@pytest.mark.slow  # ~6 s: a spawned interpreter starts its own worker pool
def test_timeouts_work_from_a_subprocess():
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_hang_in_child, args=(queue,))
    child.start()
    assert queue.get(timeout=60) == "timeout"
    child.join(10)


def test_score_all_flags_timeouts_and_errors_without_raising():
    def broken(problem, completion):
        raise RuntimeError("boom")

    p = Problem("p", "?", answer="e")
    scores = score_all({"math": lambda pr, c: float(answers_equal("e", c, guard=False)), "broken": broken},
                       [p, p], [HANG + "    ", "e"], workers=2, timeout=1.0)
    assert scores.timed_out == [True, False]
    assert scores["math"] == [0.0, 1.0] and scores["broken"] == [0.0, 0.0]
    assert "boom" in scores.errors[1]


def test_fast_path_pieces():
    assert parse_number("1,234.5").value == 2469 / 2
    assert parse_number(r"\frac{3}{4}").value == 0.75
    assert parse_number("x") is None and parse_number("1,2") is None
    assert canonical_text(r"\left(1,\dfrac{1}{2}\right)") == canonical_text(r"(1, \frac{1}{2})")
    assert looks_explosive(HANG) and not looks_explosive(r"\frac{1}{2}^{3}")


def test_math_reward_not_applicable_without_gold():
    assert math_reward(Problem("p", "?"), r"\boxed{1}") is None
    assert grade_math("1", r"\boxed{1}") == 1.0


def test_answer_rules_of_docs_verifiers():
    from reasonloop.verify.math import answers_equal, grade_math

    # competing final answers are a hedge; one value in two spellings is not
    assert grade_math("72", "So \\boxed{70}.\n#### 72") == 0.0
    assert grade_math("0.5", r"\boxed{\frac{1}{2}}, that is \boxed{0.5}") == 1.0
    assert grade_math("13", r"$\boxed{12 \text{ or } 13}$") == 0.0 and grade_math("13", "The answer is 12 or 13.") == 0.0
    assert grade_math(r"\frac{3}{4}", "Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.") == 1.0
    # rounded decimals are not exact values unless the task gives a tolerance
    assert not answers_equal(r"\frac{\sqrt{2}}{2}", "0.7071068") and not answers_equal(r"\pi", "3.14159")
    assert answers_equal(r"\pi", "3.1416", tolerance=1e-4) and not answers_equal(r"\pi", "3.2", tolerance=1e-3)
    assert answers_equal(r"\frac{3\sqrt{3}}{2}", r"1.5\sqrt{3}")  # an exact decimal factor is fine
    # percent: a unit, and /100 only where the task says so
    assert answers_equal("25", r"25\%") and not answers_equal("0.25", r"25\%")
    assert answers_equal("0.25", r"25\%", percent=True) and not answers_equal("0.4", "4%", percent=True)
    # equivalent forms
    assert answers_equal("1500", r"1.5 \times 10^{3}") and answers_equal("3000000", "3e6")
    assert answers_equal("5", r"\left(5\right)") and answers_equal("5", "{(5)}")
    assert answers_equal("x^2 + 2x + 1", "(x+1)^2") and not answers_equal("2x - 3", "3 - 2x")
    assert answers_equal(r"\text{(C)}", "C") and not answers_equal(r"\text{(C)}", "(B)")


def test_the_exact_evaluator_refuses_to_build_huge_numbers():
    from reasonloop.verify.numeric import value_of

    for text in ("1e999999999", "2^{99999}", "10^{10^{10}}", "5000!", "(" * 500 + "1" + ")" * 500):
        assert value_of(text) is None, text
    assert value_of("2^{100}").x == 2**100 and value_of("20!").x == 2432902008176640000
