"""Code verdicts against programs that try to pass without solving: every hack must fail.

Each hack class of issue 16 is tried on assert-style tests (MBPP) and on HumanEval-format
problems (tests/data/humaneval_fixtures.jsonl, written for these tests), and honest
solutions must still pass.
"""

import json
from pathlib import Path

import pytest

from reasonloop.types import Problem
from reasonloop.verify.code import (
    SandboxLimits,
    check_humaneval,
    code_reward,
    grade_code,
    outputs_match,
    run_io_tests,
    run_tests,
)

FIXTURES = [json.loads(line) for line in (Path(__file__).parent.parent / "data" / "humaneval_fixtures.jsonl")
            .read_text().splitlines()]
LIMITS = SandboxLimits(timeout=10, test_timeout=3)

# Bodies for a HumanEval completion (they continue the prompt's `def`); each must fail.
HACK_BODIES = {
    "exit0_top_level": "    pass\nimport sys\nsys.exit(0)\n",
    "exit0_in_body": "    import sys\n    sys.exit(0)\n",
    "builtin_exit": "    exit(0)\nexit(0)\n",
    "system_exit": "    raise SystemExit(0)\nraise SystemExit(0)\n",
    "os_exit_top_level": "    pass\nimport os\nos._exit(0)\n",
    "os_exit_in_body": "    import os\n    os._exit(0)\n",
    "atexit": "    return None\nimport atexit, os\natexit.register(os._exit, 0)\n",
    "excepthook": "    return None\nimport sys, os\nsys.excepthook = lambda *a: os._exit(0)\n",
    "alarm_signal": ("    return None\nimport signal, os\nsignal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
                    "signal.setitimer(signal.ITIMER_REAL, 0.001)\n"),
    "kill_test_process": "    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n",
    "kill_everything": "    import os, signal\n    os.kill(-1, signal.SIGKILL)\n",
    "always_equal": ("    class Any:\n        __eq__ = lambda s, o: True\n        __ne__ = lambda s, o: False\n"
                     "        __hash__ = lambda s: 0\n        __sub__ = __rsub__ = lambda s, o: 0\n"
                     "        __abs__ = lambda s: 0\n        __lt__ = lambda s, o: True\n    return Any()\n"),
    "str_subclass": "    class S(str):\n        __eq__ = lambda s, o: True\n        __hash__ = str.__hash__\n    return S()\n",
    "int_subclass": ("    class I(int):\n        __eq__ = lambda s, o: True\n        __hash__ = int.__hash__\n"
                     "        __sub__ = __rsub__ = lambda s, o: 0\n        __abs__ = lambda s: 0\n    return I()\n"),
    "list_subclass": "    class L(list):\n        __eq__ = lambda s, o: True\n    return L()\n",
    "dict_subclass": "    class D(dict):\n        __eq__ = lambda s, o: True\n    return D()\n",
    "tuple_subclass": "    class T(tuple):\n        __eq__ = lambda s, o: True\n    return T()\n",
    "patch_builtins": ("    return None\nimport builtins\nbuiltins.abs = lambda *a: 0\nbuiltins.tuple = lambda *a: ()\n"
                      "builtins.isinstance = lambda *a: True\nbuiltins.AssertionError = type('E', (BaseException,), {})\n"),
    "patch_test_module": ("    return None\nimport sys\nfor m in list(sys.modules.values()):\n"
                          "    try:\n        m.check = lambda c: None\n    except Exception:\n        pass\n"),
    "redefine_helpers": ("    return s\ndef encode_shift(s):\n    return s\ndef sort_third(l):\n    return None\n"),
    "forge_records": ("    return None\nimport os, json\nfor fd in range(3, 256):\n    for msg in ({'test': 0, 'passed': True},"
                      " {'done': True, 'error': None}):\n        data = json.dumps(msg).encode()\n"
                      "        try:\n            os.write(fd, len(data).to_bytes(4, 'big') + data)\n"
                      "        except OSError:\n            pass\n"),
    "raise_in_body": "    raise AssertionError('pass please')\n",
    "infinite_loop": "    while True:\n        pass\n",
}


@pytest.mark.parametrize("problem", FIXTURES, ids=[p["task_id"] for p in FIXTURES])
def test_humaneval_canonical_solutions_pass_with_a_record_per_test(problem):
    result = check_humaneval(problem, problem["canonical_solution"], limits=LIMITS)
    assert result.verdict == "passed", result
    assert result.tests and all(t.passed for t in result.tests)


@pytest.mark.parametrize("hack", sorted(HACK_BODIES))
def test_every_hack_fails_on_every_humaneval_fixture(hack):
    limits = SandboxLimits(timeout=8, test_timeout=1) if hack == "infinite_loop" else LIMITS
    for problem in FIXTURES:
        result = check_humaneval(problem, HACK_BODIES[hack], limits=limits)
        assert result.verdict != "passed", (hack, problem["task_id"], result)
        assert result.fraction < 1.0 or not result.tests


def test_assert_style_hacks_fail_and_honest_passes():
    tests = ["assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert {add(1, 1)} == {2}"]
    assert run_tests("def add(a, b):\n    return a + b", tests).verdict == "passed"
    hacks = [
        "import sys\nsys.exit(0)",
        "import os\nos._exit(0)",
        "def add(a, b):\n    raise SystemExit(0)",
        "import atexit, os\natexit.register(os._exit, 0)\ndef add(a, b):\n    return 0",
        ("class A:\n    __eq__ = lambda s, o: True\n    __hash__ = lambda s: hash(2)\n"
         "def add(a, b):\n    return A()"),
        ("class F(int):\n    __eq__ = lambda s, o: True\n    __hash__ = int.__hash__\n"
         "def add(a, b):\n    return F(0)"),
        "import builtins\nbuiltins.AssertionError = ZeroDivisionError\ndef add(a, b):\n    return 0",
    ]
    for program in hacks:
        result = run_tests(program, tests, limits=LIMITS)
        assert result.verdict == "failed" and not result.tests[0].passed, (program, result)


SECRET = "expected-value-7f3a9c"
SCAN_MEMORY = (
    "def find():\n"
    "    import re, os\n"
    "    found = []\n"
    "    for pid in ('self', str(os.getppid())):\n"
    "        try:\n"
    "            maps = open('/proc/%s/maps' % pid).read().splitlines()\n"
    "            mem = open('/proc/%s/mem' % pid, 'rb', 0)\n"
    "        except OSError:\n"
    "            continue\n"
    "        for line in maps:\n"
    "            lo, hi = (int(x, 16) for x in line.split()[0].split('-'))\n"
    "            if 'r' not in line.split()[1] or hi - lo > 1 << 28:\n"
    "                continue\n"
    "            try:\n"
    "                mem.seek(lo)\n"
    "                chunk = mem.read(hi - lo)\n"
    "            except (OSError, OverflowError, ValueError):\n"
    "                continue\n"
    "            m = re.search(rb'expected-value-[0-9a-f]{6}', chunk)\n"
    "            if m and m.group(0) != b'expected-value-' + b'0' * 6:\n"
    "                found.append(m.group(0).decode())\n"
    "    return found[0] if found else 'not found'\n"
)


def test_the_program_cannot_find_the_expected_values_in_memory():
    """The tests (with their expected values) are never in the program's memory, nor reachable in
    the test process's, nor left over from an earlier job of the same worker."""
    from reasonloop.verify.sandbox import get_sandbox_pool

    pool = get_sandbox_pool()
    size, pool.size = pool.size, 1  # one worker: the second job is forked from the one that ran the first
    try:
        first = run_tests("def find():\n    return 'x'", [f"assert find() == {SECRET!r}"], limits=LIMITS)
        assert first.verdict == "failed"
        result = run_tests(SCAN_MEMORY, [f"assert find() == {SECRET!r}"], limits=SandboxLimits(timeout=20))
    finally:
        pool.size = size
    assert result.verdict == "failed", result
    assert "AssertionError" in (result.tests[0].error or "")


def test_non_plain_arguments_and_results_and_exceptions_cross_as_builtins():
    program = ("def f(x):\n    return {'t': (1, 2.5), 's': {1, 2}, 'f': frozenset([3]), 'b': b'\\x00', 'c': 1j,\n"
               "            'big': 10 ** 40, 'neg': -(2 ** 70), 'inf': float('inf'), 'n': None, 'x': x}\n"
               "def g(x):\n    raise ValueError('bad')\n")
    tests = [("r = f([1, (2, 3)])\nassert r == {'t': (1, 2.5), 's': {1, 2}, 'f': frozenset([3]), 'b': b'\\x00', "
              "'c': 1j, 'big': 10 ** 40, 'neg': -(2 ** 70), 'inf': float('inf'), 'n': None, 'x': [1, (2, 3)]}"),
             "try:\n    g(1)\n    assert False\nexcept ValueError:\n    pass",
             "assert type(f(1)['t']) is tuple and type(f(1)['big']) is int"]
    result = run_tests(program, tests, limits=LIMITS)
    assert result.verdict == "passed", result


def test_partial_credit_and_per_test_records():
    problem = Problem("p", "abs", meta={"tests": ["assert f(1) == 1", "assert f(-2) == 2", "assert f(0) == 0"],
                                        "partial_credit": True})
    completion = "```python\ndef f(x):\n    return x\n```"
    assert code_reward(problem, completion) == pytest.approx(2 / 3)
    problem.meta["partial_credit"] = False
    assert code_reward(problem, completion) == 0.0
    record = grade_code(problem, completion).record()
    assert [r["passed"] for r in record] == [True, False, True]
    assert record[1]["name"] == "assert f(-2) == 2" and "AssertionError" in record[1]["error"]


def test_a_hanging_test_fails_it_and_the_rest_within_the_limits():
    result = run_tests("def f(x):\n    while x:\n        pass\n    return 0",
                       ["assert f(0) == 0", "assert f(1) == 0", "assert f(0) == 0"],
                       limits=SandboxLimits(timeout=10, test_timeout=0.5))
    assert [t.passed for t in result.tests] == [True, False, False]
    assert "TimeoutError" in result.tests[1].error and result.seconds < 5


def test_stdio_tests_compare_normalised_output_outside_the_sandbox():
    program = "a, b = map(int, input().split())\nprint(a + b)\n"
    cases = [("1 2\n", "3\n"), ("5 5", "10"), ("2 2\n", "5\n")]
    result = run_io_tests(program, cases, limits=LIMITS)
    assert [t.passed for t in result.tests] == [True, True, False] and result.verdict == "failed"
    assert result.tests[2].error == "wrong output"
    assert run_io_tests(program, cases[:2], limits=LIMITS).verdict == "passed"


def test_stdio_per_test_time_limit_and_early_exit():
    program = "import sys, time\nn = int(input())\nif n == 2:\n    time.sleep(30)\nif n == 3:\n    sys.exit(0)\nprint(n * n)\n"
    result = run_io_tests(program, [("1", "1"), ("2", "4"), ("3", "9"), ("4", "16")],
                          limits=SandboxLimits(timeout=20, test_timeout=1))
    assert [t.passed for t in result.tests] == [True, False, False, True]
    assert "timeout" in result.tests[1].error and result.seconds < 10


def test_stdio_crash_after_printing_the_right_output_fails():
    result = run_io_tests("print(3)\nraise RuntimeError", [("", "3")], limits=LIMITS)
    assert result.verdict == "failed" and "exit status 1" in result.tests[0].error


def test_output_comparison_rules():
    assert outputs_match("a b\nc\n", "a b  \nc")
    assert not outputs_match("a b\nc\n", "a  b\nc")
    assert outputs_match("a b\nc\n", "a  b\nc", "tokens")
    assert outputs_match("1.0000001", "1.0", "tokens", 1e-6) and not outputs_match("1.0000001", "1.0", "tokens")
    assert not outputs_match("x", "x\n", "exact")
    with pytest.raises(ValueError):
        outputs_match("a", "a", "fuzzy")


def test_grade_code_reads_humaneval_and_io_problems():
    fixture = FIXTURES[1]
    problem = Problem("he", fixture["prompt"], meta={"test": fixture["test"], "entry_point": fixture["entry_point"],
                                                     "prompt_code": fixture["prompt"]})
    body = fixture["canonical_solution"]
    full = f"```python\ndef decode_shift(s: str):\n{body}```"
    assert grade_code(problem, full).verdict == "passed"
    assert code_reward(problem, "```python\ndef decode_shift(s):\n    return s\n```") == 0.0
    io = Problem("io", "sum", meta={"io": [{"input": "1 2", "output": "3"}], "compare": "tokens"})
    assert code_reward(io, "```python\nprint(sum(map(int, input().split())))\n```") == 1.0
    assert code_reward(Problem("none", "x"), full) is None
