"""Workers: one activated runner per bench row, in a fresh interpreter of its own (:class:`ProcessWorker`) or in
this process (:class:`InlineWorker`); and :func:`run_in_child` for one measurement in a fresh interpreter.

    w = ProcessWorker(candidate)           # builds make_runner(**candidate.runner_kwargs()) in the child, activates it
    w.call("inputs", {1: x1, 8: x8}); w.call("time", (8, 20))   # -> 20 per-call times in seconds
    w.call("burst", (8, 0.2, 3, 500))      # -> {"cold": s, "steady": [s, ...], "inner": [s, ...]}: one call after idle, then
                                           #    calls until they took 0.2 s and 3 ran (at most 500)
    w.call("logits", (x, 8)); w.call("describe"); w.close()
    run_in_child("pawlens.bench.extras:cam_from_file", ckpt_path, None, env=worker_env(None, False))

Both workers answer the same commands (:class:`_Session`); failures come back as :class:`WorkerError` with a
one-line message.  A child imports only this module first, so it starts without torch.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any

import numpy as np

from pawlens.errors import PawlensError, WorkerError, one_line

#: What a child process may be asked to run (``run_in_child``); nothing else is callable from the parent.
CHILD_FUNCTIONS = (
    "pawlens.bench.extras:cam_from_file",
    "pawlens.bench.extras:ceiling_from_file",
    "pawlens.bench.extras:measure_overhead",
    "pawlens.bench.peers:ort_loop",
)


def build_runner(spec: dict[str, Any]):
    """The runner of a candidate spec (``Candidate.spec()``): the factory's ``make_runner``, nothing else."""
    from pawlens.runtime.factory import make_runner

    return make_runner(spec["path"], name=spec["key"], threads=spec.get("threads"), **spec["runner"])


class _Session:
    """What a worker does, process or inline: hold one activated runner and time it."""

    def __init__(self, spec: dict, runner=None):
        self.runner = runner if runner is not None else build_runner(spec)
        self.runner.activate()
        self.inputs: dict[int, np.ndarray] = {}

    def handle(self, cmd: str, arg):
        if cmd == "describe":
            return self.runner.describe()
        if cmd == "inputs":
            self.inputs = {int(b): np.ascontiguousarray(x) for b, x in arg.items()}
            prepare = getattr(self.runner, "prepare", None)  # a runner that compiles per batch size does it now, untimed
            for b in sorted(self.inputs) if prepare else ():
                prepare(b)
            return True
        if cmd == "logits":
            x, chunk = arg
            return np.concatenate([self.runner.infer(np.ascontiguousarray(x[i : i + chunk])) for i in range(0, len(x), chunk)])
        if cmd == "time":
            b, n = arg
            x = self.inputs[int(b)]
            out = []
            for _ in range(int(n)):
                t0 = time.perf_counter()
                self.runner.infer(x)
                out.append(time.perf_counter() - t0)
            return out
        if cmd == "burst":
            return self.burst(*arg)
        raise ValueError(cmd)

    def _inner(self) -> float:
        """The time of the last call spent in the library itself: the runner's ``engine_time`` where it keeps one (the bare
        request), else its ``inference_time`` (``infer_impl``, without the base class's checks)."""
        t = getattr(self.runner, "engine_time", None)
        return t if t is not None else (self.runner.inference_time or 0.0)

    def burst(self, b: int, min_s: float, min_calls: int, max_calls: int) -> dict[str, Any]:
        """One call after idle (``cold``), then back-to-back calls until they have taken ``min_s`` seconds in all and
        ``min_calls`` calls have run (at most ``max_calls``): their wall times (``steady``) and the part of each spent in
        the library (``inner``)."""
        x = self.inputs[int(b)]
        t0 = time.perf_counter()
        self.runner.infer(x)
        cold = time.perf_counter() - t0
        steady: list[float] = []
        inner: list[float] = []
        busy = 0.0
        while len(steady) < max_calls and (len(steady) < min_calls or busy < min_s):
            t0 = time.perf_counter()
            self.runner.infer(x)
            steady.append(time.perf_counter() - t0)
            busy += steady[-1]
            inner.append(self._inner())
        return {"cold": cold, "steady": steady, "inner": inner}

    def close(self):
        self.runner.deactivate()


def _serve(conn, spec: dict) -> None:  # runs in the child process
    try:
        sess = _Session(spec)
    except BaseException as e:
        conn.send(("error", one_line(e)))
        conn.close()
        return
    conn.send(("ok", None))
    while True:
        try:
            cmd, arg = conn.recv()
        except EOFError:
            break
        if cmd == "quit":
            break
        try:
            conn.send(("ok", sess.handle(cmd, arg)))
        except BaseException as e:
            conn.send(("error", one_line(e)))
    try:
        sess.close()
    finally:
        conn.close()


def _call(ref: str, args) -> Any:
    if ref not in CHILD_FUNCTIONS:
        raise ValueError(f"not a worker function: {ref}")
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)(*args)


def child_main(fd: int) -> None:
    """Entry point of a fresh worker interpreter: the first message says what to do."""
    from multiprocessing.connection import Connection

    conn = Connection(fd)
    kind, payload = conn.recv()
    if kind == "runner":
        _serve(conn, payload)
        return
    ref, args = payload
    try:
        conn.send(("ok", _call(ref, args)))
    except BaseException as e:
        conn.send(("error", one_line(e)))
    conn.close()


def worker_env(threads: int | None, spinning: bool) -> dict[str, str]:
    """Environment of a worker process: thread count, and a bounded OpenMP spin unless spinning is allowed.

    ``GOMP_SPINCOUNT=20000`` lets OpenMP threads spin for some microseconds at a barrier, then sleep.  That
    keeps PyTorch at its default speed while an idle worker stops competing for the cores within microseconds.
    ``OMP_WAIT_POLICY=PASSIVE`` (no spin at all) slows the eager forward (every op wakes sleeping threads): a slowed
    reference would inflate every speed-up in the table.  The default, much longer spin slows a PyTorch forward
    many times over whenever anything else runs on a machine with few cores (README, "Figures behind design choices").
    It must be set before the OpenMP runtime starts, hence a fresh process.
    """
    env = {"OMP_NUM_THREADS": str(threads)} if threads else {}
    if not spinning:
        env["GOMP_SPINCOUNT"] = "20000"
    return env


class _Child:
    """A fresh Python interpreter running :func:`child_main`, talked to over a socket pair.

    Not ``multiprocessing``: its spawn method re-runs the caller's ``__main__`` in the child, and the
    environment (thread count, OpenMP spin) must be set before the child's OpenMP runtime starts.  The child
    imports ``pawlens`` from where the parent did (a site-packages directory, or a checkout that is not
    installed, as on a lent GPU machine).
    """

    def __init__(self, first_message, *, env: dict[str, str], name: str, timeout: float = 900.0):
        import socket
        import subprocess
        from multiprocessing.connection import Connection

        import pawlens

        self.name = name
        self.timeout = timeout
        root = os.path.dirname(os.path.dirname(os.path.abspath(pawlens.__file__)))
        parent, child = socket.socketpair()
        code = f"import sys; sys.path.insert(0, {root!r}); from pawlens.bench.harness import child_main; child_main({child.fileno()})"
        full_env = dict(os.environ)
        full_env.update(env)
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(child.fileno(),), env=full_env, stdin=subprocess.DEVNULL)
        finally:
            child.close()
        self.conn = Connection(parent.detach())
        self.conn.send(first_message)

    def reply(self):
        if not self.conn.poll(self.timeout):
            self.kill()
            raise WorkerError(f"worker {self.name} did not answer within {self.timeout:.0f} s")
        try:
            status, val = self.conn.recv()
        except (EOFError, OSError):
            self.proc.wait(5)
            raise WorkerError(f"worker {self.name} died (exit code {self.proc.returncode})") from None
        if status != "ok":
            raise WorkerError(val)
        return val

    def send(self, msg) -> None:
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError):
            raise WorkerError(f"worker {self.name} is gone (exit code {self.proc.poll()})") from None

    def close(self) -> None:
        try:
            self.conn.send(("quit", None))
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(20)
        except Exception:
            pass
        self.kill()
        self.conn.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class ProcessWorker:
    """One candidate in its own fresh interpreter (no thread pools shared with any other row)."""

    def __init__(self, cand, *, timeout: float = 900.0, spinning: bool = False):
        self.cand = cand
        self.child = _Child(("runner", cand.spec()), env=worker_env(cand.threads, spinning), name=cand.key, timeout=timeout)
        try:
            self.child.reply()
        except WorkerError:
            self.child.kill()
            raise

    @property
    def pid(self) -> int:
        return self.child.proc.pid

    def call(self, cmd: str, arg=None):
        self.child.send((cmd, arg))
        return self.child.reply()

    def close(self):
        self.child.close()


class InlineWorker:
    """One candidate in this process (``runner``: an already built runner, e.g. a test's fake)."""

    def __init__(self, cand, runner=None):
        self.cand = cand
        try:
            self.sess = _Session(cand.spec(), runner=runner)
        except PawlensError as e:
            raise WorkerError(str(e)) from None
        except Exception as e:
            raise WorkerError(one_line(e)) from None

    @property
    def pid(self) -> int:
        return os.getpid()

    def call(self, cmd: str, arg=None):
        try:
            return self.sess.handle(cmd, arg)
        except Exception as e:
            raise WorkerError(one_line(e)) from None

    def close(self):
        self.sess.close()


def run_in_child(ref: str, *args, env: dict[str, str] | None = None, timeout: float = 900.0):
    """Run ``module:function(*args)`` (one of :data:`CHILD_FUNCTIONS`) in a fresh interpreter with ``env`` added."""
    c = _Child(("call", (ref, args)), env=env or {}, name=ref.rpartition(":")[2], timeout=timeout)
    try:
        return c.reply()
    finally:
        c.kill()
        c.conn.close()
