"""The code sandbox against hostile programs: every one is contained and gets a clear verdict."""

import os
import socket
import subprocess
import time

import pytest

from reasonloop.types import Problem
from reasonloop.verify.code import (
    SandboxLimits,
    _interpreter_exposure,
    code_reward,
    extract_code,
    run_python,
    run_tests,
)

FAST = SandboxLimits(timeout=3)


@pytest.fixture(scope="module")
def isolation():
    result = run_python("print('probe')", limits=FAST)
    assert result.verdict == "passed", result.stderr
    return result.isolation


def _processes_of(uid: int) -> list[str]:
    out = subprocess.run(["ps", "-u", str(uid), "-o", "pid=,cmd="], capture_output=True, text=True,
                         check=False).stdout  # exit 1 means no such process
    return [line for line in out.splitlines() if line.strip()]


def _wait_until_no_processes_of(uid: int, seconds: float = 3.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := _processes_of(uid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_correct_and_incorrect_programs():
    assert run_tests("def f(x):\n    return 2 * x", ["assert f(2) == 4", "assert f(0) == 0"]).verdict == "passed"
    result = run_tests("def f(x):\n    return 2 * x", "assert f(2) == 5")
    assert result.verdict == "failed" and "AssertionError" in result.tests[0].error
    assert run_python("raise SystemExit(3)").verdict == "failed"
    assert run_python("syntax error here").verdict == "failed"


def test_infinite_loop_times_out_quickly():
    start = time.monotonic()
    result = run_python("while True:\n    pass", limits=SandboxLimits(timeout=1))
    assert result.verdict == "timeout" and result.returncode is None
    assert time.monotonic() - start < 4


def test_sleeping_forever_is_killed_by_the_wall_clock_not_cpu_limit():
    result = run_python("import time\ntime.sleep(600)", limits=SandboxLimits(timeout=1))
    assert result.verdict == "timeout" and result.seconds < 3


def test_memory_bomb_hits_the_memory_limit():
    result = run_python("x = bytearray(4 << 30)", limits=SandboxLimits(timeout=5, memory_bytes=256 << 20))
    assert result.verdict == "memory", result.stderr


def test_fork_bomb_is_bounded_and_cleaned_up(isolation):
    if os.geteuid() == 0 and "uids" not in isolation:
        pytest.skip("running as root without the drop to `nobody`: RLIMIT_NPROC would not be enforced, "
                    "so a fork bomb would not be bounded; not running one on a shared machine")
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run_python(bomb, limits=SandboxLimits(timeout=2, max_processes=16))
    assert result.verdict == "timeout"
    if os.geteuid() == 0:
        assert _wait_until_no_processes_of(65534) == []


def test_children_that_leave_the_process_group_die_with_the_program(isolation):
    if "pid" not in isolation:
        pytest.skip("no PID namespace here: a setsid() child can outlive the run (documented limitation)")
    marker = f"reasonloop-escape-{os.getpid()}"
    program = (f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '30', '{marker}'])\n"
               "print('parent done')\n")
    result = run_python(program, limits=FAST)
    assert result.verdict == "passed"
    time.sleep(0.3)
    ps = subprocess.run(["ps", "-eo", "cmd"], capture_output=True, text=True, check=True).stdout
    assert marker not in ps


def test_writing_outside_the_scratch_directory_is_contained(isolation, tmp_path):
    if "mount" not in isolation:
        pytest.skip("no mount namespace here: world-writable places like /tmp are writable (documented)")
    target = tmp_path / "escaped.txt"
    os.chmod(tmp_path, 0o777)  # even a world-writable directory of the caller must not be reachable
    program = (
        "import os\nresults = []\n"
        f"for path in [{str(target)!r}, '/work/escaped.txt', '/var/tmp/escaped.txt', '/dev/shm/escaped.txt']:\n"
        "    try:\n        open(path, 'w').write('x')\n        results.append('wrote ' + path)\n"
        "    except OSError as e:\n        results.append(type(e).__name__)\n"
        "open('inside.txt', 'w').write('fine')\nprint(results)\n"
    )
    result = run_python(program, limits=FAST)
    assert result.verdict == "passed", result.stderr
    assert not target.exists()
    assert not os.path.exists("/work/escaped.txt")
    assert not os.path.exists("/var/tmp/escaped.txt") and not os.path.exists("/dev/shm/escaped.txt")


def test_no_network(isolation):
    if "net" not in isolation:
        pytest.skip("no network namespace on this machine (a warning was emitted)")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
    result = run_python(program, limits=FAST)
    server.setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing ever reached our listening socket
        server.accept()
    server.close()
    assert result.verdict == "failed" and "connected" not in result.stdout
    assert "unreachable" in result.stderr or "refused" in result.stderr


def test_environment_secrets_are_not_visible(monkeypatch):
    monkeypatch.setenv("REASONLOOP_TEST_SECRET", "hunter2-do-not-leak")
    result = run_python("import os\nprint(dict(os.environ))\nprint(open('/proc/self/environ').read())", limits=FAST)
    assert result.verdict == "passed"
    assert "hunter2" not in result.stdout and "REASONLOOP_TEST_SECRET" not in result.stdout


def test_home_directory_is_hidden(isolation):
    if "mount" not in isolation:
        pytest.skip("no mount namespace here")
    home = os.path.expanduser("~")
    result = run_python(f"import os\nprint(sorted(os.listdir({home!r})))", limits=FAST)
    assert result.verdict == "passed"
    # only the path down to the re-exposed interpreter is left of the caller's home
    exposed = {p[len(home) + 1:].split(os.sep)[0] for p in _interpreter_exposure()[0] if p.startswith(home + os.sep)}
    assert set(eval(result.stdout)) == exposed


def test_killing_its_parent_or_the_caller_fails_and_we_survive():
    me = os.getpid()
    for program in ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(0.2)",
                    f"import os, signal\nos.kill({me}, signal.SIGKILL)",
                    "import os, signal\nos.killpg(os.getpgid(0), signal.SIGKILL)"):
        result = run_python(program, limits=FAST)
        assert result.verdict in ("passed", "failed", "crashed"), (program, result)
    assert os.getpid() == me  # still here: pytest was not killed


def test_output_flood_is_cut():
    result = run_python("while True:\n    print('x' * 1000)", limits=SandboxLimits(timeout=5, max_file_bytes=1 << 20))
    assert result.verdict in ("failed", "crashed")
    assert len(result.stdout) <= SandboxLimits().max_output_chars


def test_code_reward_and_extraction():
    problem = Problem("sq", "Write square(x).", meta={"tests": ["assert square(3) == 9", "assert square(-2) == 4"]})
    good = "<think>```python\ndef square(x): return 0\n```</think>Here:\n```python\ndef square(x):\n    return x * x\n```"
    assert extract_code(good).startswith("def square")
    assert code_reward(problem, good) == 1.0
    assert code_reward(problem, "```python\ndef square(x):\n    return x + x\n```") == 0.0
    assert code_reward(Problem("n", "no tests"), good) is None
