r"""The pre-isolated sandbox worker: built once, it forks one job per program.

Runs as its own interpreter (`python -I -c <this file's text> <cfg>`; it imports nothing of
reasonloop). Start-up, once per worker: unshare network, mount and PID namespaces (a user
namespace too when not root), become PID 1 of the new PID namespace, hide the caller's home,
put a private scratch directory on /tmp and tmpfs on /var/tmp and /dev/shm, mount a fresh
/proc, import the standard modules programs use. Then, per job, only forks and rlimits.

Protocol with the caller (`reasonloop.verify.sandbox`), on stdin / stdout:
  request: 8-byte length, JSON header {"kind", "timeout", "sizes": [a, b], ...}, then two
           sections of a and b bytes (a: the program, b: the tests or test inputs);
  reply:   8-byte length, JSON header {"status", "sizes": [results, stdout, stderr]}, then
           those three byte sections.
The worker itself never reads a section into its memory: it splices them into memfds that
only the forked job reads, and splices the job's results back. A later job forked from this
worker therefore cannot find an earlier job's tests, expected values or programs in memory.

Per job (kinds "functions" and "script"/"stdio"):
- "functions": the job process J reads the program, forks U (the program: drops to the
  program uid, rlimits, `exec`s the program, then answers calls `name(*args)` over a pipe with
  its return values encoded as plain data), and only then reads the tests, drops to a second,
  different uid, becomes non-dumpable and runs the tests with `Remote` proxies in place of the
  program's functions. Return values cross as JSON and are rebuilt from builtins in J, so an
  object with a rigged `__eq__` cannot cross, and nothing U does (exiting, patching builtins,
  `assert`, the test module) reaches the tests. J writes one record per test, then "done", to
  the results memfd, which U never holds: the verdict needs that evidence.
- "stdio" (and "script", its one-run form): J reads the program and the test inputs, and per
  input forks U with that stdin and a fresh stdout memfd, waits up to the per-test limit, kills
  everything but itself (as PID 1's stand-in it may: it stays root, runs no test code) and
  writes the output as a record. Expected outputs never enter the sandbox: the caller compares.
After a job, the worker (PID 1) kills every other process in its namespace, reaps them and
empties /tmp, /var/tmp and /dev/shm.
"""

import ctypes
import gc
import json
import math
import os
import resource
import select
import signal
import socket
import sys
import time

CFG = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
NEWNS, NEWUSER, NEWPID, NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
ROOT = os.geteuid() == 0
PROGRAM_UID, TESTS_UID = CFG["program_uid"], CFG["tests_uid"]
RESULT_CAP = 8 << 20
libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the caller's process


def fail(message):
    sys.stderr.write("SANDBOX: " + message + "\n")
    os._exit(121)


def mount(source, target, fstype, flags, data=None):
    def enc(s):
        return None if s is None else s.encode()
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        raise OSError(ctypes.get_errno(), f"mount {source} on {target}")


# --- isolation, once per worker --------------------------------------------------------------

def unshare():
    if not CFG["namespaces"]:
        return []
    if ROOT and libc.unshare(NEWNET | NEWNS | NEWPID) == 0:
        return ["net", "mount", "pid"]
    if not ROOT:
        uid, gid = os.geteuid(), os.getegid()
        if libc.unshare(NEWUSER | NEWNET | NEWNS | NEWPID) == 0:
            for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                               ("/proc/self/gid_map", f"{gid} {gid} 1")):
                with open(path, "w") as f:
                    f.write(text)
            return ["net", "mount", "pid", "user"]
    return ["net"] if libc.unshare(NEWNET) == 0 else []


def build_mounts(scratch):
    """Hide the caller's home, scratch on /tmp, private /var/tmp and /dev/shm, fresh /proc."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    holds = []
    for n, prefix in enumerate(CFG["expose"]):  # grab the interpreter's trees before an ancestor is covered
        holds.append(os.path.join(scratch, f".hold{n}"))
        os.mkdir(holds[-1])
        mount(prefix, holds[-1], None, MS_BIND | MS_REC)
    for blocker in sorted({b for b in CFG["blockers"] if b}):
        mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    for home in CFG["hide"]:
        if os.path.isdir(home) and home not in CFG["blockers"]:
            mount("tmpfs", home, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    mount(scratch, "/tmp", None, MS_BIND | MS_REC)
    for path in ("/var/tmp", "/dev/shm"):
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m")
    for prefix, hold in zip(CFG["expose"], holds):
        if not os.path.isdir(hold):  # the scratch directory is now seen at /tmp
            hold = os.path.join("/tmp", os.path.basename(hold))
        os.makedirs(prefix, exist_ok=True)
        mount(hold, prefix, None, MS_BIND | MS_REC)
        libc.umount2(hold.encode(), 2)  # MNT_DETACH
        try:
            os.rmdir(hold)
        except OSError:
            pass
    try:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV)  # this namespace's PIDs only
    except OSError:
        pass
    os.chmod("/tmp", 0o711)


# --- plain data across the program/tests boundary ----------------------------------------------

def encode(value, depth=0):
    """Builtin plain data -> JSON-able; anything else (subclasses included) is refused."""
    if depth > 100:
        raise ValueError("value nested too deeply")
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return value if -(1 << 53) < value < (1 << 53) else {"i": hex(value)}
    if t is float:
        return value if math.isfinite(value) else {"x": value.hex()}
    if t is list:
        return [encode(v, depth + 1) for v in value]
    if t is tuple:
        return {"t": [encode(v, depth + 1) for v in value]}
    if t is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if t is set or t is frozenset:
        return {"s" if t is set else "f": [encode(v, depth + 1) for v in value]}
    if t is bytes:
        return {"b": value.hex()}
    if t is complex:
        return {"c": [value.real.hex(), value.imag.hex()]}
    if t.__module__ == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ():
        return encode(value.item(), depth + 1)  # numpy scalars: their Python value (decoded as builtins)
    raise TypeError(f"return value of type {t.__name__} is not plain data")


def decode(data, depth=0):
    """JSON -> fresh builtin objects only (the inverse of `encode`)."""
    if depth > 100:
        raise ValueError("value nested too deeply")
    t = type(data)
    if data is None or t in (bool, int, float, str):
        return data
    if t is list:
        return [decode(v, depth + 1) for v in data]
    if t is dict and len(data) == 1:
        (tag, v), = data.items()
        if tag == "i":
            return int(v, 16)
        if tag == "x":
            return float.fromhex(v)
        if tag == "t":
            return tuple(decode(x, depth + 1) for x in v)
        if tag == "d":
            return {decode(k, depth + 1): decode(x, depth + 1) for k, x in v}
        if tag == "s":
            return {decode(x, depth + 1) for x in v}
        if tag == "f":
            return frozenset(decode(x, depth + 1) for x in v)
        if tag == "b":
            return bytes.fromhex(v)
        if tag == "c":
            return complex(float.fromhex(v[0]), float.fromhex(v[1]))
    raise ValueError("not an encoded plain value")


def send(fd, obj):
    data = json.dumps(obj).encode()
    data = len(data).to_bytes(4, "big") + data
    while data:
        data = data[os.write(fd, data):]


def receive(fd, deadline):
    """One length-prefixed JSON message, or None on EOF / past the deadline."""
    def read_exact(n):
        out = b""
        while len(out) < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    return None
            chunk = os.read(fd, min(n - len(out), 1 << 20))
            if not chunk:
                return None
            out += chunk
        return out
    head = read_exact(4)
    if head is None:
        return None
    n = int.from_bytes(head, "big")
    if n > RESULT_CAP:
        raise ValueError("message too large")
    body = read_exact(n)
    return None if body is None else json.loads(body)


# --- the program side -------------------------------------------------------------------------

def drop_capabilities():
    # cap_user_header {version 3, pid 0} and two empty data structs: no capabilities left
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    libc.capset(header, data)


def become(uid, limits, cwd, nproc):
    """Drop to `uid` under rlimits; from here on this process may run untrusted input."""
    if ROOT:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    else:
        drop_capabilities()
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.chdir(cwd)
    for name, value in limits.items():
        value = nproc if name == "RLIMIT_NPROC" and nproc else value
        resource.setrlimit(getattr(resource, name), (value, value))


def program_process(program, limits, name, stdin_fd, out_fd, err_fd, keep):
    """In a fresh fork: point fds 0-2 at the job's, close everything else but `keep`, then run."""
    os.dup2(stdin_fd, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)
    if not PID_NAMESPACE and name == "__main__":
        os.setpgid(0, 0)  # a stdio run: its own group, so the job can kill it and what it started
    become(PROGRAM_UID, limits, JOB_DIR, None)
    libc.prctl(PR_SET_DUMPABLE, 1)  # the worker is not dumpable; the program may read its own /proc entries
    import io
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8", errors="replace")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=False)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace")
    sys.argv = ["main.py"]
    globs = {"__name__": name, "__builtins__": __builtins__, "__file__": os.path.join(JOB_DIR, "main.py")}
    return globs


def run_script(program, limits, stdin_fd, out_fd, err_fd):
    import atexit
    import traceback
    globs = program_process(program, limits, "__main__", stdin_fd, out_fd, err_fd, ())
    code = 0
    try:
        exec(compile(program, "main.py", "exec"), globs)  # noqa: S102 -- running the program (or the task's tests) is the point
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 -- report like the interpreter does
        traceback.print_exc()
        code = 1
    try:
        if "threading" in sys.modules:  # wait for the program's threads, as the interpreter does
            sys.modules["threading"]._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001, S110 -- the program broke its own stdout or exit hooks
        pass
    os._exit(code & 0xFF)


def serve_calls(program, limits, calls_r, replies_w, out_fd, err_fd):
    """U of a "functions" job: load the program, then answer calls until the pipe closes."""
    null = os.open("/dev/null", os.O_RDONLY)
    globs = program_process(program, limits, "solution", null, out_fd, err_fd, (calls_r, replies_w))
    try:
        exec(compile(program, "solution.py", "exec"), globs)  # noqa: S102 -- running the program (or the task's tests) is the point
        send(replies_w, {"names": [k for k, v in globs.items() if callable(v) and not k.startswith("__")]})
    except BaseException as e:  # noqa: BLE001 -- the tests learn the program did not load
        send(replies_w, {"load_error": f"{type(e).__name__}: {str(e)[:300]}"})
        os._exit(1)
    while True:
        request = receive(calls_r, None)
        if request is None:
            os._exit(0)
        try:
            value = globs[request["name"]](*decode(request["args"]), **decode(request["kwargs"]))
            reply = {"value": encode(value)}
        except BaseException as e:  # noqa: BLE001 -- any failure is the test's failure
            reply = {"raise": type(e).__name__, "message": str(e)[:300]}
        sys.stdout.flush()
        send(replies_w, reply)


# --- the tests side ---------------------------------------------------------------------------

class RemoteError(Exception):
    """The program raised an exception that is not a builtin one (or ended, or sent junk)."""


class Remote:
    """A program function as seen by the tests: arguments out, plain data back."""

    def __init__(self, link, name):
        self.link, self.__name__ = link, name

    def __call__(self, *args, **kwargs):
        link = self.link
        if link["dead"]:
            raise RemoteError(f"the program is not answering ({link['dead']})")
        send(link["calls"], {"name": self.__name__, "args": encode(list(args)), "kwargs": encode(kwargs)})
        try:
            reply = receive(link["replies"], time.monotonic() + link["test_timeout"])
        except ValueError as e:
            reply, link["dead"] = None, str(e)
        if reply is None:
            link["dead"] = link["dead"] or f"no reply within {link['test_timeout']:g}s"
            raise TimeoutError(link["dead"])
        if "value" in reply:
            return decode(reply["value"])
        kind = getattr(__import__("builtins"), str(reply.get("raise")), None)
        if isinstance(kind, type) and issubclass(kind, Exception) and kind is not StopIteration:
            raise kind(reply.get("message", ""))
        raise RemoteError(f"{reply.get('raise')}: {reply.get('message')}")


def wrap_tests(source, body):
    """Each top-level statement of `body` that contains an assert becomes one recorded test:
    `try: <stmt> except BaseException as e: record(i, e) else: record(i, None)`."""
    import ast
    out, names = [], []
    for stmt in body:
        if not any(isinstance(n, ast.Assert) for n in ast.walk(stmt)):
            out.append(stmt)
            continue
        index = len(names)
        names.append((ast.get_source_segment(source, stmt) or f"test {index}")[:300])

        def record(error, index=index):
            call = ast.Call(ast.Name("__rl_record", ast.Load()), [ast.Constant(index), error], [])
            return [ast.Expr(call)]

        handler = ast.ExceptHandler(ast.Name("BaseException", ast.Load()), "__rl_e",
                                    record(ast.Name("__rl_e", ast.Load())))
        wrapped = ast.Try([stmt], [handler], record(ast.Constant(None)), [])
        out.append(ast.copy_location(wrapped, stmt))
    body[:] = out
    return names


def run_tests_side(spec, link, results_fd):
    import ast
    import builtins
    globs = {"__name__": "__tests__", "__builtins__": builtins}

    def record(index, error):
        send(results_fd, {"test": index, "passed": error is None,
                          "error": None if error is None else f"{type(error).__name__}: {error}"[:300]})

    globs["__rl_record"] = record
    try:
        hello = receive(link["replies"], time.monotonic() + link["test_timeout"])
    except ValueError:
        hello = None
    names = hello.get("names") if isinstance(hello, dict) else None
    if not isinstance(names, list):
        reason = hello.get("load_error") if isinstance(hello, dict) else None
        link["dead"] = "the program did not load: %s" % (reason or "no answer")
        names = []
    if spec.get("prompt"):
        try:
            prompt = compile(spec["prompt"], "prompt.py", "exec")
        except SyntaxError:  # a prompt that ends in a bare signature
            prompt = compile(spec["prompt"] + "\n    ...\n", "prompt.py", "exec")
        exec(prompt, globs)  # the task's own (trusted) helpers  # noqa: S102 -- running the program (or the task's tests) is the point
    for name in names:
        if isinstance(name, str) and name.isidentifier() and name not in globs:
            globs[name] = Remote(link, name)
    if spec.get("entry_point"):  # the prompt only declares it; tests that name it mean the program's
        globs[spec["entry_point"]] = Remote(link, spec["entry_point"])
    if spec.get("setup"):
        exec(compile(spec["setup"], "setup.py", "exec"), globs)  # noqa: S102 -- running the program (or the task's tests) is the point
    if spec["style"] == "check":
        tree = ast.parse(spec["test"])
        check = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
        if len(check) != 1:
            raise ValueError("the test source defines no check(candidate)")
        test_names = wrap_tests(spec["test"], check[0].body)
        whole = not test_names  # no assert at all: the whole check is one test
        send(results_fd, {"tests": test_names or [f"check({spec['entry_point']})"]})
        exec(compile(ast.fix_missing_locations(tree), "test.py", "exec"), globs)  # noqa: S102 -- running the program (or the task's tests) is the point
        error = None
        try:
            globs["check"](Remote(link, spec["entry_point"]))
        except BaseException as e:  # noqa: BLE001 -- a check that aborts fails its remaining tests
            error = e
        if whole:
            record(0, error)
        send(results_fd, {"done": True, "error": None if error is None else f"{type(error).__name__}: {error}"})
        return
    send(results_fd, {"tests": [t[:300] for t in spec["tests"]]})
    for index, source in enumerate(spec["tests"]):
        try:
            exec(compile(source, f"test_{index}.py", "exec"), globs)  # noqa: S102 -- running the program (or the task's tests) is the point
        except BaseException as e:  # noqa: BLE001
            record(index, e)
        else:
            record(index, None)
    send(results_fd, {"done": True, "error": None})


def prefork_program(calls_r, replies_w):
    """Fork the program process of the next job now, while idle: it waits for its program.

    Forked before the job process has received anything, so it holds no tests."""
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            parent.close()
            message, fds, _, _ = socket.recv_fds(child, 1 << 16, 4)
            child.close()
            if not message:
                os._exit(0)
            program_fd, out_fd, err_fd = fds
            program = read_memfd(program_fd)
            os.close(program_fd)
            serve_calls(program, json.loads(message), calls_r, replies_w, out_fd, err_fd)
        finally:
            os._exit(1)
    child.close()
    return pid, parent


def functions_job(program_fd, tests_fd, results_fd, out_fd, err_fd, header, program_side):
    limits = header["rlimits"]
    (calls_w, replies_r), (_, handoff) = program_side
    socket.send_fds(handoff, [json.dumps(limits).encode()], [program_fd, out_fd, err_fd])
    handoff.close()
    for fd in (program_fd, out_fd, err_fd):
        os.close(fd)
    spec = json.loads(read_memfd(tests_fd))  # only now: the program's process never saw the tests
    os.close(tests_fd)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    become(TESTS_UID, {**limits, "RLIMIT_FSIZE": 0}, "/", 8)
    libc.prctl(PR_SET_DUMPABLE, 0)  # no ptrace or /proc/<pid>/mem access from the program's side
    link = {"calls": calls_w, "replies": replies_r, "test_timeout": header["test_timeout"], "dead": None}
    try:
        run_tests_side(spec, link, results_fd)
    except BaseException as e:  # noqa: BLE001 -- a broken test spec is reported, never a pass
        send(results_fd, {"done": True, "error": f"tests did not run: {type(e).__name__}: {e}"})
    os._exit(0)


def stdio_job(program_fd, tests_fd, results_fd, out_fd, err_fd, header):
    program = read_memfd(program_fd)
    inputs = json.loads(read_memfd(tests_fd))
    limits = header["rlimits"]
    cap = header["max_output_bytes"]
    for index, text in enumerate(inputs):
        stdin = os.memfd_create("stdin")
        os.write(stdin, text.encode())
        os.lseek(stdin, 0, 0)
        out = os.memfd_create("stdout")
        err = err_fd if header["kind"] == "script" else os.memfd_create("stderr")
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(results_fd)
                run_script(program, limits, stdin, out, err)
            finally:
                os._exit(1)
        status, timed_out = wait_child(pid, start + header["test_timeout"])
        seconds = time.monotonic() - start
        kill_others(pid)
        record = {"test": index, "seconds": seconds, "timed_out": timed_out,
                  "returncode": None if timed_out else status_code(status),
                  "stdout": read_memfd(out, cap).decode("utf-8", "replace")}
        if header["kind"] == "script":
            record["stdout_bytes"] = os.fstat(out).st_size
        else:
            record["stderr"] = read_memfd(err, 2000, tail=True).decode("utf-8", "replace")
            os.close(err)
        for fd in (stdin, out):
            os.close(fd)
        send(results_fd, record)
    send(results_fd, {"done": True, "error": None})
    os._exit(0)


# --- process plumbing -------------------------------------------------------------------------

def read_memfd(fd, cap=None, tail=False):
    size = os.fstat(fd).st_size
    if cap is not None and size > cap:
        start = size - cap if tail else 0
        size = cap
    else:
        start = 0
    return os.pread(fd, size, start)


def status_code(status):
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def wait_child(pid, deadline):
    """(wait status, timed out): wait for `pid` until `deadline`, then SIGKILL it."""
    fd = os.pidfd_open(pid)
    try:
        done = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]
        if not done:
            os.kill(pid, signal.SIGKILL)
        return os.waitpid(pid, 0)[1], not done
    finally:
        os.close(fd)


def kill_others(group=None):
    """Kill every process this one may signal but itself and PID 1, and reap its children.

    Without a PID namespace only the process group `group` (setsid() escapes it: documented).
    """
    try:
        if PID_NAMESPACE:
            os.kill(-1, signal.SIGKILL)
        elif group:
            os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    while True:  # all were SIGKILLed: blocking waits end promptly
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


def read_exact(fd, n):
    out = b""
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def splice_into(src, size):
    """`size` bytes of pipe `src` into a fresh memfd, never through this process's memory."""
    fd = os.memfd_create("section")
    while size:
        moved = os.splice(src, fd, size)
        if not moved:
            raise EOFError
        size -= moved
    return fd


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def wipe():
    """Empty what programs can write: the job directory and the private tmpfs mounts.

    Never /tmp as a whole: the interpreter's trees may be mounted below it.
    """
    import shutil
    shutil.rmtree(JOB_DIR, ignore_errors=True)
    for top in ("/var/tmp", "/dev/shm") if MOUNTS else ():
        for name in os.listdir(top):
            path = os.path.join(top, name)
            if os.path.ismount(path):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def collect(results_r, results_fd, deadline):
    """Move the job's records into the results memfd until the job closes its end or time is up."""
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        if not select.select([results_r], [], [], left)[0]:
            continue
        room = RESULT_CAP - os.fstat(results_fd).st_size
        if room <= 0:
            break
        if not os.splice(results_r, results_fd, min(room, 1 << 16)):
            break  # EOF: every writer is gone
    return timed_out


def prefork_job():
    """Fork the next job's process (and its program process) now, while idle.

    It waits on a socket for the job: its header and files (sections, results, outputs)."""
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            parent.close()
            null = os.open("/dev/null", os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            if not PID_NAMESPACE:
                os.setpgid(0, 0)
            calls_r, calls_w = os.pipe()
            replies_r, replies_w = os.pipe()
            program = prefork_program(calls_r, replies_w)
            os.close(calls_r)
            os.close(replies_w)
            message, fds, _, _ = socket.recv_fds(child, 1 << 16, 8)
            child.close()
            if not message:
                os._exit(0)
            header = json.loads(message)
            program_fd, tests_fd, results_w, out_fd, err_fd = fds
            if header["kind"] == "functions":
                functions_job(program_fd, tests_fd, results_w, out_fd, err_fd, header,
                                    ((calls_w, replies_r), program))
            else:
                program[1].close()  # the waiting program process ends unused
                stdio_job(program_fd, tests_fd, results_w, out_fd, err_fd, header)
        except BaseException as e:  # noqa: BLE001
            try:
                send(results_w, {"done": True, "error": f"sandbox job failed: {e!r}"})
            except BaseException:  # noqa: BLE001, S110 -- nothing left to report through
                pass
        finally:
            os._exit(0)
    child.close()
    return pid, parent


def send_capped(dst, src, cap, tail):
    size = os.fstat(src).st_size
    offset, count = (max(0, size - cap), min(size, cap)) if tail else (0, min(size, cap))
    while count > 0:
        sent = os.sendfile(dst, src, offset, count)
        if not sent:
            break
        offset, count = offset + sent, count - sent


def serve():
    job = prefork_job()
    while True:
        try:
            header = json.loads(read_exact(0, int.from_bytes(read_exact(0, 8), "big")))
        except EOFError:
            os._exit(0)
        sections = [splice_into(0, size) for size in header["sizes"]]
        results_r, results_w = os.pipe()
        results_fd, out_fd, err_fd = os.memfd_create("results"), os.memfd_create("out"), os.memfd_create("err")
        os.mkdir(JOB_DIR, 0o700)
        if ROOT:
            os.chown(JOB_DIR, PROGRAM_UID, PROGRAM_UID)
        start = time.monotonic()
        pid, handoff = job
        try:
            socket.send_fds(handoff, [json.dumps(header).encode()], [*sections, results_w, out_fd, err_fd])
        except OSError:
            pass  # the waiting job died: no records, so the run fails
        handoff.close()
        os.close(results_w)
        for fd in sections:
            os.close(fd)
        timed_out = collect(results_r, results_fd, start + header["timeout"])
        seconds = time.monotonic() - start
        os.close(results_r)
        cap = header["max_output_bytes"]
        sizes = [os.fstat(results_fd).st_size] + [min(cap, os.fstat(fd).st_size) for fd in (out_fd, err_fd)]
        reply = json.dumps({"status": "timeout" if timed_out else "done", "seconds": seconds,
                            "sizes": sizes}).encode()
        write_all(1, len(reply).to_bytes(8, "big") + reply)
        send_capped(1, results_fd, sizes[0], False)
        send_capped(1, out_fd, sizes[1], False)
        send_capped(1, err_fd, sizes[2], True)
        for fd in (results_fd, out_fd, err_fd):
            os.close(fd)
        # after the reply, before the next job: nothing of this job survives into the next
        kill_others(pid)
        wipe()
        job = prefork_job()


PRELOAD = ("math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "typing", "random",
           "copy", "operator", "json", "hashlib", "datetime", "array", "cmath", "textwrap", "dataclasses", "enum",
           "ast", "traceback")
"""Imported once here so programs and tests do not pay for them. Not `threading`, `decimal` or
`statistics`: modules with fork handlers or large state make every fork of the worker dearer."""


def main():
    isolation = unshare()
    report = CFG["report_fd"]
    global PID_NAMESPACE, MOUNTS, JOB_DIR
    PID_NAMESPACE, MOUNTS = "pid" in isolation, "mount" in isolation
    JOB_DIR = "/tmp/job" if MOUNTS else os.path.join(CFG["scratch"], "job")
    if PID_NAMESPACE:
        child = os.fork()  # the child is PID 1 of the new namespace
        if child:
            os.close(report)
            _, status = os.waitpid(child, 0)
            os._exit(status_code(status))
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # a session (and process group) of its own, led from inside the namespace: kill(0, ...)
        # by a program then reaches only this namespace, never the parent outside it, which
        # without root runs under the program's uid and would take the worker down with it
        os.setsid()
    try:
        if MOUNTS:
            build_mounts(CFG["scratch"])
            os.chdir("/tmp")
        else:
            os.chdir(CFG["scratch"])
            os.chmod(CFG["scratch"], 0o711)
        if ROOT and MOUNTS:
            isolation.append("uids")
        for name in PRELOAD:
            __import__(name)
        libc.prctl(PR_SET_DUMPABLE, 0)
    except Exception as e:  # noqa: BLE001
        os.write(report, json.dumps({"error": repr(e)}).encode())
        fail(repr(e))
    os.write(report, json.dumps({"isolation": isolation}).encode())
    os.close(report)
    gc.collect()
    gc.freeze()  # forked jobs then share these pages instead of copying them on the first collection
    serve()


PID_NAMESPACE = MOUNTS = False
JOB_DIR = ""
if __name__ == "__main__":
    main()
