"""The code sandbox when the caller is NOT root, run for real as an unprivileged user.

These tests start, as root, a private mount namespace in which the interpreter's trees stay
reachable (on this machine it lives under /root, mode 700) and a home directory for the user
exists, then drop to uid 65533 with no groups and no capabilities and run there: a probe of
the isolation the sandbox gets, the code-hack suite (tests/verify/test_code_hacks.py), and the
refusal of code verdicts where no user namespace can be made. Not root already: the rest of the
suite runs the unprivileged path itself, so these are skipped.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reasonloop.verify.sandbox import interpreter_exposure

UID = 65533
ROOT = Path(__file__).resolve().parent.parent.parent

# Runs as root inside `unshare --mount`: keep the interpreter reachable, give the user a home,
# drop to UID, exec the command. argv: uid, home, command...
DROP = r"""
import os, subprocess, sys, tempfile
uid, home, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
exposure = [(p, b) for p, b in zip(*__import__("json").loads(os.environ.pop("RL_EXPOSURE"))) if b]
holds = []
for prefix, _ in exposure:
    holds.append(tempfile.mkdtemp(prefix="rl-unpriv-hold-"))
    subprocess.run(["mount", "--bind", prefix, holds[-1]], check=True)
for blocker in sorted({b for _, b in exposure}):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755,size=1m", "tmpfs", blocker], check=True)
for (prefix, _), hold in zip(exposure, holds):
    os.makedirs(prefix, exist_ok=True)
    subprocess.run(["mount", "--bind", hold, prefix], check=True)
    subprocess.run(["umount", "-l", hold], check=True)
    os.rmdir(hold)
subprocess.run(["mount", "-t", "tmpfs", "-o", f"mode=700,uid={uid},gid={uid},size=16m", "tmpfs", home], check=True)
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
os.environ["HOME"] = home
os.execv(command[0], command)
"""

PROBE = r"""
import json, os, sys
from reasonloop.verify.code import _run_functions, run_python, run_tests
from reasonloop.verify.sandbox import isolation_line
honest, hack = "def add(a, b):\n    return a + b", "import os\nos._exit(0)"
probe = run_python("import os\nprint(os.getuid())")
out = {"euid": os.geteuid(), "isolation": probe.isolation, "line": isolation_line(probe.isolation),
       "uid_inside": probe.stdout.strip(), "honest": run_tests(honest, "assert add(2, 3) == 5").verdict,
       "hack": run_tests(hack, "assert add(2, 3) == 5").verdict}
# the fallback where no namespace can be made: refused, unless the user opts in
spec = {"style": "asserts", "tests": ["assert add(2, 3) == 5"], "setup": ""}
refused = _run_functions(honest, spec, None, namespaces=False)
out["fallback"] = [refused.verdict, refused.error]
os.environ["REASONLOOP_SANDBOX_UNISOLATED"] = "1"
out["fallback_opted_in"] = [_run_functions(honest, spec, None, namespaces=False).verdict,
                            _run_functions(hack, spec, None, namespaces=False).verdict]
print(json.dumps(out))
"""


def _home() -> str | None:
    """A directory outside the sandbox's private /tmp, /var/tmp, /dev/shm to mount the user's home on
    (only in the private mount namespace): the sandbox hides a home, so it must exist there."""
    needed = [p for p, _ in zip(*interpreter_exposure())] + [str(ROOT), os.path.realpath(sys.prefix)]
    for candidate in ("/mnt", "/srv", "/media", "/opt"):
        if os.path.isdir(candidate) and not any(p == candidate or p.startswith(candidate + os.sep) for p in needed):
            return candidate
    return None


def _as_unprivileged(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    if os.geteuid() != 0:
        pytest.skip("not root: the whole suite already runs the sandbox's unprivileged path")
    if not (shutil.which("unshare") and shutil.which("mount")):
        pytest.skip("needs unshare(1) and mount(1) to set up the unprivileged user's view")
    home = _home()
    if home is None:
        pytest.skip("no directory outside /tmp to mount the unprivileged user's home on")
    for path in (str(ROOT), os.path.realpath(sys.prefix)):
        if any(not os.stat(a).st_mode & 0o001 for a in Path(path).parents if a != Path(path).anchor and a.is_dir()):
            pytest.skip(f"{path} is not reachable by other users (a parent is not world-searchable)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
           "LANG": "C.UTF-8", "RL_EXPOSURE": json.dumps(interpreter_exposure())}
    command = ["unshare", "--mount", "--propagation", "private", sys.executable, "-I", "-c", DROP, str(UID), home,
               sys.executable, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def probe():
    done = _as_unprivileged(["-c", PROBE], timeout=120)
    if done.returncode != 0 and "unshare failed" in done.stderr:
        pytest.skip(f"the kernel forbids the mount namespace this test needs: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_sandbox_says_which_isolation_it_has_and_grades_as_a_user(probe):
    assert probe["euid"] == UID
    if "user" not in probe["isolation"]:
        # the kernel forbids user namespaces: the documented fallback refuses verdicts, said so
        assert probe["honest"] == probe["hack"] == "sandbox_error", probe
        assert "refused" in probe["line"]
        return
    assert set(probe["isolation"]) == {"user", "net", "mount", "pid"}, probe
    assert "not root" in probe["line"] and "user, network, mount and PID namespaces" in probe["line"]
    assert probe["uid_inside"] == str(UID)  # mapped to itself: no root inside either
    assert probe["honest"] == "passed" and probe["hack"] == "failed", probe


def test_without_any_namespace_a_user_gets_no_verdicts_unless_it_opts_in(probe):
    verdict, error = probe["fallback"]
    assert verdict == "sandbox_error" and "refused" in error and "REASONLOOP_SANDBOX_UNISOLATED=1" in error
    assert probe["fallback_opted_in"] == ["passed", "failed"]


def test_the_hack_suite_gives_no_passes_as_an_unprivileged_user(probe):
    if "user" not in probe["isolation"]:
        pytest.skip("the kernel forbids user namespaces here: verdicts are refused (checked above)")
    # every hack class, on MBPP- and HumanEval-style tests (the 6 s infinite-loop case: in the slow test)
    done = _as_unprivileged(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verify/test_code_hacks.py",
                             "-k", "not infinite_loop"], timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert re.match(r"\d+ passed", summary) and int(summary.split()[0]) >= 30 and "failed" not in summary, summary


@pytest.mark.slow
def test_every_sandbox_test_passes_as_an_unprivileged_user(probe):
    if "user" not in probe["isolation"]:
        pytest.skip("the kernel forbids user namespaces here: verdicts are refused (checked above)")
    done = _as_unprivileged(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verify/test_code_hacks.py",
                             "tests/verify/test_code.py"], timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
