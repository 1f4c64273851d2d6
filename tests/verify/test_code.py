"""The code sandbox against hostile programs: every one is contained and gets a clear verdict."""

import os
import socket
import subprocess
import threading
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
from reasonloop.verify.sandbox import get_sandbox_pool

FAST = SandboxLimits(timeout=3)


@pytest.fixture(scope="module")
def isolation():
    result = run_python("print('probe')", limits=FAST)
    assert result.verdict == "passed", result.stderr
    return result.isolation


def _our_sandboxes() -> set[tuple[str, object]]:
    """What marks the processes of this test process's own sandbox workers: each worker's PID
    namespace (its jobs all live there) and its session (the worker starts one; used where
    there is no PID namespace). Other agents' sandboxes on the machine have neither."""
    marks: set[tuple[str, object]] = set()
    for worker in [w for w in get_sandbox_pool()._all if w is not None]:
        marks.add(("sid", worker.process.pid))
        try:
            marks.add(("ns", os.readlink(f"/proc/{worker.process.pid}/ns/pid_for_children")))
        except OSError:
            pass
    return marks


def _processes_of(uid: int, marks: set[tuple[str, object]]) -> list[str]:
    """Processes running as `uid` that belong to one of the sandboxes `marks` names."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
            with open(f"/proc/{entry}/stat") as f:
                session = int(f.read().rsplit(")", 1)[1].split()[4])
            namespace = os.readlink(f"/proc/{entry}/ns/pid")
        except (OSError, StopIteration, ValueError, IndexError):
            continue  # exited meanwhile
        if str(uid) in uids and (("sid", session) in marks or ("ns", namespace) in marks):
            found.append(f"{entry} session {session} {namespace}")
    return found


def _wait_until_no_processes_of(uid: int, marks: set[tuple[str, object]], seconds: float = 3.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := _processes_of(uid, marks)) and time.monotonic() < deadline:
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
    marks = _our_sandboxes()  # the workers alive before the bomb (one may be replaced during it)
    result = run_python(bomb, limits=SandboxLimits(timeout=2, max_processes=16))
    assert result.verdict == "timeout"
    marks |= _our_sandboxes()
    assert any(kind == "ns" for kind, _ in marks) or "pid" not in isolation
    if os.geteuid() == 0:  # only our own sandboxes' processes: other agents may run theirs meanwhile
        assert _wait_until_no_processes_of(65534, marks) == []
        # and the count does see our sandbox's programs while one runs
        sleeper = threading.Thread(target=run_python, args=("import time\ntime.sleep(3)",), kwargs={"limits": FAST})
        sleeper.start()
        deadline, seen = time.monotonic() + 3, []
        while not seen and time.monotonic() < deadline:
            seen = _processes_of(65534, marks | _our_sandboxes())
            time.sleep(0.05)
        sleeper.join()
        assert seen


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
    run_python("pass", limits=FAST)
    pool = get_sandbox_pool()
    restarts = pool.restarts
    for program in ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(0.2)",
                    f"import os, signal\nos.kill({me}, signal.SIGKILL)",
                    "import os, signal\nos.killpg(os.getpgid(0), signal.SIGKILL)",
                    "import os, signal\nos.kill(0, signal.SIGKILL)",
                    "import os, signal\nos.kill(-1, signal.SIGKILL)"):
        result = run_python(program, limits=FAST)
        assert result.verdict in ("passed", "failed", "crashed"), (program, result)
    assert os.getpid() == me  # still here: pytest was not killed
    # nor was any worker (without root the program shares the worker's uid: it must not reach it)
    assert run_python("print('next')", limits=FAST).stdout == "next\n" and pool.restarts == restarts


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
