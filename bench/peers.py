"""The runtime's own figure beside each bench row, on the same file, precision, batch, threads and shape.

    median_ms, cmd = benchmark_app("best.int8.onnx", batch=1, input_name="input", size=224, hint="f32", threads=None)
    median_ms = run_in_child("pawlens.bench.peers:ort_loop", "best.onnx", 1, None, False, 2.0)   # a bare InferenceSession
    median_ms, cmd = trtexec("best.fp16.engine", batch=1, input_name="input", size=224)          # where trtexec is installed

- OpenVINO rows: OpenVINO's own ``benchmark_app`` (installed with the ``openvino`` extra) with ``-hint latency`` and a
  static ``-shape``, its ``Median`` latency; a row with a thread count gets ``-hint none -nstreams 1 -nthreads N``
  (the latency hint's one stream: benchmark_app takes no thread count beside a hint).
- ONNX Runtime rows: ONNX Runtime ships no such tool in its wheel, so a bare ``InferenceSession.run`` loop with the
  runner's own session options (threads, spinning off), in a fresh interpreter.
- TensorRT rows: NVIDIA's ``trtexec`` where it is on PATH (``--loadEngine``, ``--shapes``), its median latency.

``PAWLENS_BENCHMARK_APP`` and ``PAWLENS_TRTEXEC`` name another executable (the tests use a fake that prints a known
figure).  A tool that is missing, fails or prints no figure raises :class:`PeerError` with the reason (the bench turns it into a
note and the row gets no peer figure), never a made-up number.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time

from pawlens.errors import PawlensError

TOOLS = {"benchmark_app": "PAWLENS_BENCHMARK_APP", "trtexec": "PAWLENS_TRTEXEC"}


class PeerError(PawlensError):
    component = "bench"


def find_tool(name: str) -> str | None:
    """The executable of a runtime's own tool: the environment's override, the one beside this interpreter, else PATH."""
    override = os.environ.get(TOOLS[name])
    if override:
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which(name)


_BA_MEDIAN = re.compile(r"Latency:\s*\n(?:.*\n)*?.*?Median:\s*([0-9.]+)\s*(us|ms|s)\b", re.MULTILINE)
_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_TRT_MEDIAN = re.compile(r"Latency:.*?median\s*=\s*([0-9.]+)\s*ms")


def parse_benchmark_app(text: str) -> float | None:
    """The median latency (ms) of ``benchmark_app``'s report, or ``None`` when it printed none."""
    m = _BA_MEDIAN.search(text)  # it prints "us" below a millisecond
    return float(m.group(1)) * _TO_MS[m.group(2)] if m else None


def parse_trtexec(text: str) -> float | None:
    """The median latency (ms) of ``trtexec``'s performance summary, or ``None``."""
    m = _TRT_MEDIAN.search(text)
    return float(m.group(1)) if m else None


def _run_tool(cmd: list[str], parse, timeout: float) -> float:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PeerError(f"{os.path.basename(cmd[0])} did not finish within {timeout:.0f} s") from None
    except OSError as e:
        raise PeerError(f"{cmd[0]}: cannot run it ({e.strerror})") from None
    got = parse(p.stdout + "\n" + p.stderr)
    if p.returncode != 0 or got is None:
        tail = " ".join((p.stderr or p.stdout).split())[-200:]
        raise PeerError(f"{os.path.basename(cmd[0])} exited {p.returncode} without a median latency: {tail}")
    return got


def benchmark_app(path: str, *, batch: int, input_name: str, size: int, hint: str, threads: int | None, seconds: float = 3.0,
                  exe: str | None = None) -> tuple[float, list[str]]:
    """OpenVINO's ``benchmark_app`` on ``path`` at a static ``batch`` x 3 x size x size, inference precision ``hint``
    (``f32``/``bf16``), latency hint, for ``seconds`` rounded up to whole seconds (its ``-t`` takes no fraction):
    (median ms, the command)."""
    exe = exe or find_tool("benchmark_app")
    if exe is None:
        raise PeerError("benchmark_app not found (it installs with OpenVINO: pip install -e '.[openvino]')")
    # benchmark_app refuses -nthreads beside a -hint; the latency hint is one stream, so a thread count is given as that
    cmd = [exe, "-m", path, "-d", "CPU", *(["-hint", "none", "-nstreams", "1", "-nthreads", str(threads)] if threads else ["-hint", "latency"]),
           "-t", str(max(1, math.ceil(seconds))), "-shape", f"{input_name}[{batch},3,{size},{size}]", "-infer_precision", hint]
    return _run_tool(cmd, parse_benchmark_app, timeout=120 + 4 * seconds), cmd


def trtexec(path: str, *, batch: int, input_name: str, size: int, seconds: float = 3.0, exe: str | None = None) -> tuple[float, list[str]]:
    """NVIDIA's ``trtexec`` on an engine at ``batch``: (median ms, the command)."""
    exe = exe or find_tool("trtexec")
    if exe is None:
        raise PeerError("trtexec not found on PATH (it comes with TensorRT's full install, not its Python wheel)")
    cmd = [exe, f"--loadEngine={path}", f"--shapes={input_name}:{batch}x3x{size}x{size}", f"--duration={max(1, round(seconds))}"]
    return _run_tool(cmd, parse_trtexec, timeout=120 + 4 * seconds), cmd


def ort_loop(path: str, batch: int, threads: int | None, spinning: bool, seconds: float) -> float:
    """Median ms of a bare ``InferenceSession.run`` loop, the session made as :class:`~pawlens.runtime.ort_runner.OrtRunner`
    makes it on the CPU (runs in a fresh interpreter: ``run_in_child``)."""
    import numpy as np
    import onnxruntime as ort

    from pawlens.runtime.ort_runner import session_options

    so = session_options(ort, threads=threads, spinning=spinning)
    sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    size = int(inp.shape[-1])
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(dtype)
    feed, names = {inp.name: x}, [sess.get_outputs()[0].name]
    for _ in range(3):
        sess.run(names, feed)
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        sess.run(names, feed)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def _peer_of(cand, batch: int, runner: dict, size: int, opt) -> tuple[str, float, list[str] | None]:
    """(tool, median ms, command) of one row's peer."""
    from .harness import run_in_child, worker_env

    if cand.backend == "openvino":
        hint = runner.get("inference_precision_hint") or "f32"
        ms, cmd = benchmark_app(cand.path, batch=batch, input_name=runner.get("input", "input"), size=size, hint=hint,
                                threads=cand.threads, seconds=opt.peer_s)
        return "benchmark_app", ms, cmd
    if cand.backend == "ort":
        ms = run_in_child("pawlens.bench.peers:ort_loop", cand.path, batch, cand.threads, opt.spinning, opt.peer_s,
                          env=worker_env(cand.threads, opt.spinning), timeout=120 + 4 * opt.peer_s)
        return "InferenceSession loop", ms, None
    ms, cmd = trtexec(cand.path, batch=batch, input_name=runner.get("input", "input"), size=size, seconds=opt.peer_s)
    return "trtexec", ms, cmd


def has_peer(cand) -> bool:
    return cand.backend in ("openvino", "trt") or (cand.backend == "ort" and cand.device == "cpu")


def peer_rounds(rounds: int, runs: int) -> list[int]:
    """The rounds after which one peer pass runs: ``runs`` passes spread evenly over ``rounds`` (the last round always
    has one; a round appears twice when there are more runs than rounds).

    One run of a tool is a few seconds in one stretch, and on a shared VM such a stretch can read 1.5x slower than the
    next; the row's own p50 is taken over all its rounds.  Spreading the tool's runs over the same rounds and taking the
    median of their medians exposes both figures to the same drift."""
    runs = max(1, int(runs))
    return sorted(min(rounds - 1, (i + 1) * rounds // runs - 1 if runs <= rounds else i * rounds // runs) for i in range(runs))


def measure_peers(cands, batch: int, runners: dict, *, sizes: dict[str, int], opt, notes: list[str],
                  missing: set[str], into: dict | None = None) -> dict:
    """One run of each candidate's peer (one with a tool: :func:`has_peer`) at ``batch``, one at a time, while the
    workers sit idle, between the bench's rounds (:func:`peer_rounds`).  Each run's median is appended to ``into[(key,
    batch)] = (tool, [ms, ...])`` (a new dict when ``into`` is None), which is returned.  ``missing``: tools already
    found missing.  A run that fails is a note; the row keeps the runs that succeeded."""
    from .harness import WorkerError

    out: dict = {} if into is None else into
    for c in cands:
        if not has_peer(c):
            continue
        tool = {"openvino": "benchmark_app", "trt": "trtexec"}.get(c.backend)
        if tool in missing:
            continue
        if tool and find_tool(tool) is None:
            missing.add(tool)
            notes.append(f"{tool} not found: the {c.backend} rows have no peer figure"
                         + (" (install OpenVINO: pip install -e '.[openvino]')" if tool == "benchmark_app" else ""))
            continue
        try:
            name, ms, _cmd = _peer_of(c, batch, runners.get(c.key, {}), sizes.get(c.group, 224), opt)
        except (PeerError, WorkerError) as e:
            notes.append(f"{c.label} batch {batch}: a peer run failed ({e})")
            continue
        out.setdefault((c.key, batch), (name, []))[1].append(ms)
    return out


def apply_peers(rows, peers: dict, tolerance: float) -> list[str]:
    """Each timed row's peer figure (``row.set_peer``: the median of its runs' medians, from ``{(key, batch): (tool,
    [ms, ...])}``); returns a note (also logged) for each row more than ``tolerance`` from its peer."""
    import logging

    log = logging.getLogger("pawlens")
    notes: list[str] = []
    for r in rows:
        got = peers.get((r.key, r.batch))
        if got is None or not r.n:
            continue
        name, runs = got
        if not runs:
            continue
        r.set_peer(name, runs, tolerance)
        if r.peer_gap:
            spread = r.peer_spread()
            line = (f"{r.label} at batch {r.batch}: {r.p50_ms:.2f} ms is {r.vs_peer:.2f}x {name}'s {r.peer_ms:.2f} ms on the same file "
                    f"(more than {tolerance:.0%} apart{'; its ' + spread + ' ms' if spread else ''})")
            log.warning("bench: %s", line)
            notes.append(line)
    return notes
