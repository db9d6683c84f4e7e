"""pawlens-bench: every available backend and precision, side by side, in one run, on the same inputs.

    pawlens-bench                                        # embedded default: untrained 2-class ResNet50 at 224, exported now
    pawlens-bench --checkpoint runs/train/x/best.pt --images ../shared/data/catsdogs
    pawlens-bench --checkpoint best.pt --models best.onnx best.int8.onnx best.fp16.engine --batch-sizes 1,8,32

    result = run_bench(batch_sizes=(1, 8), iters=20)     # the library call the demo makes
    result.rows, result.goals, result.files

Per row: backend, precision, device, batch, p50/p90/p99/mean latency (ms), images/s, speed-up against
PyTorch fp32 eager at the same batch on the same device, and top-1 agreement and max abs difference
against the PyTorch fp32 reference.  Also measured: the runtime's own overhead (preprocessing a
640x480 frame + softmax) and one Grad-CAM against one PyTorch fp32 forward.  Writes bench.json,
bench.csv, bench.md (with how the figures were taken and the performance goals checked as ratios)
and bench.png.

How the figures are taken (``--isolation process``, the default): each backend configuration runs in
its own worker process, activated once; the timed calls go round the workers in alternating rounds of
``--round-iters`` calls (the order rotates every round), so machine drift and other load hit every
row alike.  Only one worker computes at a time; spinning is off (ONNX Runtime sessions:
``session.intra_op.allow_spinning = 0``; the PyTorch workers start with ``GOMP_SPINCOUNT=20000``, a
bounded spin of some microseconds) and a short pause separates the workers' turns, so no runtime's idle threads eat
into the next one's time (on 2 cores ONNX Runtime's spinning made the next backend up to 2.5x slower,
and spinning OpenMP threads made PyTorch 10-30x slower whenever anything else ran on the machine).
``--isolation inline`` runs everything in this process (quicker to start, used by the tests).

Latency does not depend on the weights, so the embedded default (an untrained model) is fine for speed;
its agreement figures only say how closely each backend reproduces the same random network (on
synthetic inputs unless ``--images`` gives real photos).  ONNX files and engines passed with
``--models`` are untrusted input like any model file: bench only files you exported.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
from pawlens.models.console import HelpFormatter, atomic_write_bytes, atomic_write_text, ensure_writable_dir, run_cli
from pawlens.models.errors import InputError, PawlensError

LOG = logging.getLogger("pawlens")

#: The performance goals of issue 4, as ratios (checked in bench.md from this run's figures).
GOALS = {
    "ort_fp32_vs_eager_b1": 0.45,
    "int8_vs_eager_b1": 0.15,
    "int8_agreement": 0.99,
    "torch_best_vs_eager": 0.60,
    "overhead_ms": 3.0,
    "cam_vs_forward": 1.3,
    "trt_fp16_speedup_b1": 3.0,
    "fastest_vs_resnet50_eager_b1": 0.06,
}
#: auto's pick counts as the fastest when it is within this factor of the fastest row (timing noise).
AUTO_TOLERANCE = 1.05


# ----------------------------------------------------------------------------- configurations


@dataclass
class Candidate:
    """One backend configuration to time."""

    key: str  # unique, e.g. "ort-int8"
    label: str  # human name, e.g. "ONNX Runtime INT8"
    backend: str  # torch | ort | openvino | trt
    precision: str  # what runs: fp32, bf16, bf16-autocast, fp16, int8
    device: str  # cpu | cuda
    path: str  # checkpoint (torch) or artifact file
    kwargs: dict[str, Any] = field(default_factory=dict)
    gate_precision: str = "fp32"  # the parity gate that applies (the artifact's precision; bf16 paths: their own)
    comparable: bool = True  # agreement with the torch fp32 reference is meaningful (same weights)
    threads: int | None = None
    group: str = ""  # the trained model (checkpoint) it belongs to: "" is the main --checkpoint


def build_runner(c: Candidate | dict):
    """The runner for a candidate (in a worker process or inline)."""
    d = asdict(c) if isinstance(c, Candidate) else c
    kw = dict(d["kwargs"])
    if d["backend"] == "torch":
        from .torch_runner import TorchRunner

        return TorchRunner(d["path"], threads=d["threads"], name=d["key"], **kw)
    if d["backend"] == "ort":
        from .ort_runner import OrtRunner

        return OrtRunner(d["path"], threads=d["threads"], name=d["key"], **kw)
    if d["backend"] == "openvino":
        from .openvino_runner import OpenVINORunner

        return OpenVINORunner(d["path"], threads=d["threads"], name=d["key"], **kw)
    if d["backend"] == "trt":
        from .trt_runner import TrtRunner

        return TrtRunner(d["path"], name=d["key"], **kw)
    raise InputError(f"unknown backend {d['backend']!r}")


# ----------------------------------------------------------------------------- workers


def _one_line(e: BaseException) -> str:
    if isinstance(e, PawlensError):
        return str(e)
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]


class _Session:
    """What a worker does, process or inline: hold one activated runner and time it."""

    def __init__(self, spec: dict):
        self.runner = build_runner(spec)
        self.runner.activate()
        self.inputs: dict[int, np.ndarray] = {}

    def handle(self, cmd: str, arg):
        if cmd == "describe":
            return self.runner.describe()
        if cmd == "inputs":
            self.inputs = {int(b): np.ascontiguousarray(x) for b, x in arg.items()}
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
        raise ValueError(cmd)

    def close(self):
        self.runner.deactivate()


def _worker_main(conn, spec: dict) -> None:  # runs in the child process
    try:
        sess = _Session(spec)
    except BaseException as e:
        conn.send(("error", _one_line(e)))
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
            conn.send(("error", _one_line(e)))
    try:
        sess.close()
    finally:
        conn.close()


#: Functions a child process may be asked to run (``_Child.run``); nothing else is callable from the parent.
_CHILD_FUNCTIONS = ("_measure_cam_file", "_measure_ceiling_file")


def _child_main(fd: int) -> None:
    """Entry point of a fresh worker interpreter: first message says what to do."""
    from multiprocessing.connection import Connection

    conn = Connection(fd)
    kind, payload = conn.recv()
    if kind == "runner":
        _worker_main(conn, payload)
        return
    name, args = payload
    try:
        if name not in _CHILD_FUNCTIONS:
            raise ValueError(f"not a worker function: {name}")
        conn.send(("ok", globals()[name](*args)))
    except BaseException as e:
        conn.send(("error", _one_line(e)))
    conn.close()


class WorkerError(Exception):
    pass


def worker_env(threads: int | None, spinning: bool) -> dict[str, str]:
    """Environment of a worker process: thread count, and a bounded OpenMP spin unless spinning is allowed.

    ``GOMP_SPINCOUNT=20000`` lets OpenMP threads spin for some microseconds at a barrier, then sleep.  That
    keeps PyTorch at its default speed (ResNet50 b1 eager 58 ms here, default 57 ms) while an idle worker
    stops competing for the cores within microseconds.  ``OMP_WAIT_POLICY=PASSIVE`` (no spin at all) made
    eager 85 ms (every op wakes sleeping threads): a slowed reference that would inflate every speed-up in the
    table.  The default unbounded-ish spin (300k) made a PyTorch forward 10-30x slower whenever anything else
    ran on a 2-core machine.  It must be set before the OpenMP runtime starts, hence a fresh process.
    """
    env = {"OMP_NUM_THREADS": str(threads)} if threads else {}
    if not spinning:
        env["GOMP_SPINCOUNT"] = "20000"
    return env


class _Child:
    """A fresh Python interpreter running :func:`_child_main`, talked to over a socket pair.

    Not ``multiprocessing``: its spawn method re-runs the caller's ``__main__`` in the child, and the
    environment (thread count, OpenMP spin) must be set before the child's OpenMP runtime starts.  The child
    imports ``pawlens`` from where the parent did (a site-packages directory, or a checkout that is not
    installed, as on a lent GPU machine).
    """

    def __init__(self, first_message, *, env: dict[str, str], name: str, timeout: float = 900.0):
        import socket
        import subprocess
        from multiprocessing.connection import Connection

        self.name = name
        self.timeout = timeout
        import pawlens

        root = os.path.dirname(os.path.dirname(os.path.abspath(pawlens.__file__)))
        parent, child = socket.socketpair()
        code = f"import sys; sys.path.insert(0, {root!r}); from pawlens.runtime.bench import _child_main; _child_main({child.fileno()})"
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

    def __init__(self, cand: Candidate, *, timeout: float = 900.0, spinning: bool = False):
        self.cand = cand
        self.child = _Child(("runner", asdict(cand)), env=worker_env(cand.threads, spinning), name=cand.key, timeout=timeout)
        try:
            self.child.reply()
        except WorkerError:
            self.child.kill()
            raise

    def call(self, cmd: str, arg=None):
        self.child.send((cmd, arg))
        return self.child.reply()

    def close(self):
        self.child.close()


def run_in_child(name: str, *args, env: dict[str, str] | None = None, timeout: float = 900.0):
    """Run ``runtime.bench.<name>(*args)`` in a fresh interpreter with ``env`` added; return its result."""
    c = _Child(("call", (name, args)), env=env or {}, name=name, timeout=timeout)
    try:
        return c.reply()
    finally:
        c.kill()
        c.conn.close()


class InlineWorker:
    """One candidate in this process."""

    def __init__(self, cand: Candidate):
        self.cand = cand
        try:
            self.sess = _Session(asdict(cand))
        except PawlensError as e:
            raise WorkerError(str(e)) from None
        except Exception as e:
            raise WorkerError(_one_line(e)) from None

    def call(self, cmd: str, arg=None):
        try:
            return self.sess.handle(cmd, arg)
        except Exception as e:
            raise WorkerError(_one_line(e)) from None

    def close(self):
        self.sess.close()


# ----------------------------------------------------------------------------- results


@dataclass
class BenchRow:
    key: str
    label: str
    backend: str
    precision: str
    device: str
    batch: int
    status: str = "ok"  # ok | failed: ...
    n: int = 0
    p50_ms: float = float("nan")
    p90_ms: float = float("nan")
    p99_ms: float = float("nan")
    mean_ms: float = float("nan")
    min_ms: float = float("nan")
    images_per_s: float = float("nan")
    speedup: float = float("nan")  # vs PyTorch fp32 eager, same batch and device
    vs_eager: float = float("nan")  # latency ratio p50 / eager p50 (the goals' form)
    gops: float = float("nan")  # 2 * MACs * batch / p50: the compute rate the row reaches (1e9 ops/s)
    of_gemm: float = float("nan")  # gops / this CPU's measured dense GEMM rate in the row's precision
    top1_agreement: float = float("nan")
    max_abs: float = float("nan")
    within_gate: bool | None = None
    gate: str = ""
    artifact: str = ""
    model: str = ""  # the trained model this row runs (its architecture, or the checkpoint's run name)
    accuracy: float = float("nan")  # top-1 accuracy on the labelled agreement photos
    samples_ms: list[float] = field(default_factory=list)

    def to_dict(self, samples: bool = True) -> dict:
        d = asdict(self)
        if not samples:
            d.pop("samples_ms")
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


@dataclass
class BenchResult:
    rows: list[BenchRow]
    settings: dict[str, Any]
    extras: dict[str, Any]
    goals: list[dict[str, Any]]
    auto_picks: list[dict[str, Any]]
    runners: dict[str, Any]
    notes: list[str]
    out_dir: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def row(self, key: str, batch: int) -> BenchRow | None:
        for r in self.rows:
            if r.key == key and r.batch == batch:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "rows": [r.to_dict() for r in self.rows], "extras": self.extras, "goals": self.goals,
                "auto_picks": self.auto_picks, "runners": self.runners, "notes": self.notes, "files": self.files}


# ----------------------------------------------------------------------------- inputs


def _synthetic_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Deterministic stand-in frames (640x480 RGB): the toy two-class pictures of models.synthetic, upscaled."""
    import cv2
    from pawlens.models.synthetic import synthetic_image

    rng = np.random.default_rng(seed)
    return [cv2.resize(synthetic_image(i % 2, 160, rng), (640, 480), interpolation=cv2.INTER_LINEAR) for i in range(n)]


def image_files(images: str | Sequence[str]) -> list[str]:
    """The photos ``--images`` names: a folder (searched recursively), a run's ``split.json`` (its test split), or a list of files."""
    from pawlens.models.preprocess import list_images

    if not isinstance(images, (str, os.PathLike)):
        return [os.fspath(p) for p in images]
    images = os.fspath(images)
    if images.endswith(".json") and os.path.isfile(images):
        try:
            with open(images, encoding="utf-8") as f:
                d = json.load(f)
            root = d.get("data") or os.path.dirname(images)
            test = d["splits"]["test"]
            return [p if os.path.isabs(p) else os.path.join(root, p) for p, *_ in test]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"--images {images}: not a pawlens split.json with a test split ({type(e).__name__})") from None
    return list_images(images)


def _real_frames(folder: str | Sequence[str], n: int, class_names: Sequence[str]) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Up to ``n`` readable photos of ``folder`` (see :func:`image_files`), spread evenly over the sorted list; labels from
    folder or Kaggle-flat names (-1 if none)."""
    from pawlens.models.errors import ImageError
    from pawlens.models.preprocess import label_from_path, load_image

    files = image_files(folder)
    if not files:
        raise InputError(f"--images {folder}: no images found there")
    if len(files) > n:
        idx = np.linspace(0, len(files) - 1, n).round().astype(int)
        files = [files[i] for i in sorted(set(idx.tolist()))]
    frames, labels, used = [], [], []
    for f in files:
        try:
            frames.append(load_image(f))
        except ImageError as e:
            LOG.warning("bench: skipped %s", e)
            continue
        labels.append(label_from_path(f, class_names))
        used.append(f)
    if not frames:
        raise InputError(f"--images {folder}: none of the images could be read")
    return frames, labels, used


# ----------------------------------------------------------------------------- helpers


def _model_label(arch: str, embedded: bool) -> str:
    """How a checkpoint is named in the tables: its architecture (``efficientnet_lite0``), ``(untrained)`` for the embedded default."""
    return f"{arch} (untrained)" if embedded else arch


def _default_out(name: str) -> str:
    base = os.path.join("runs", "bench", name)
    if not os.path.exists(base):
        return base
    k = 2
    while os.path.exists(f"{base}{k}"):
        k += 1
    return f"{base}{k}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if x in fl]
    except OSError:
        pass
    return []


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "numpy", "opencv-python-headless"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _stats(samples_s: Sequence[float]) -> dict[str, float]:
    a = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)), "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean()), "min_ms": float(a.min())}


def _fmt(v, nd: int = 1, suffix: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{nd}f}{suffix}"


# ----------------------------------------------------------------------------- the run


def run_bench(checkpoint: str | None = None, models: Sequence[str] = (), *, batch_sizes: Sequence[int] = (1, 8), iters: int = 20,
              warmup: int = 3, threads: int | None = None, out: str | None = None, name: str | None = None,
              images: str | Sequence[str] | None = None, n_images: int = 32, backends: Sequence[str] | None = None, device: str = "auto",
              isolation: str = "process", round_iters: int = 2, pause_ms: float = 10.0, cam: bool = True, spinning: bool = False,
              keep_models: bool = False, compile: str | bool = "auto", progress: bool = True, write: bool = True,
              checkpoints: Sequence[str] = (), latency_reference: str | None = None) -> BenchResult:
    """Benchmark every available backend and precision on the same inputs (the library behind ``pawlens-bench``).

    Args:
        checkpoint: a pawlens checkpoint; ``None`` builds the embedded default (untrained ResNet50, 2 classes, 224 px,
            or the architecture/size/classes of the first ``models`` file).
        models: exported files (``.onnx``, ``.engine``) to time; ``()`` exports fp32 + INT8 ONNX (and, on a GPU with
            TensorRT, an FP16 engine) from the checkpoint into a temporary folder.
        batch_sizes: batch sizes to time.
        iters: timed calls per row; ``warmup``: untimed calls per row and batch first.
        threads: CPU threads per backend (``None``: each backend's default, all cores).
        out: output folder (default ``runs/bench/NAME``, numbered if it exists).
        images: real photos for agreement, accuracy and INT8 calibration: a folder (class-named subfolders or
            Kaggle-flat names give labels), a list of image paths, or a training run's ``split.json`` (its test
            photos); default: synthetic frames.
        n_images: how many agreement images (as many again for calibration when artifacts are exported here).
        backends: restrict to these backends (``torch``, ``ort``, ``openvino``, ``trt``).
        device: ``auto`` (CPU rows, plus CUDA rows where a GPU is visible), ``cpu`` or ``cuda``.
        isolation: ``process`` (each row in its own worker process) or ``inline``.
        round_iters: timed calls per row per round of the interleaving.
        pause_ms: pause between two workers' turns (lets idle thread pools fall asleep).
        cam: also measure Grad-CAM against one PyTorch fp32 forward, and the runtime's own overhead.
        spinning: let thread pools spin (ONNX Runtime ``allow_spinning``; OpenMP active waiting in the workers);
            off by default, as in the product's runners.
        keep_models: keep the exported files in ``OUT/models`` instead of deleting them.
        compile: ``auto`` (default: also time PyTorch fp32 and bf16 through ``torch.compile`` where a C++ compiler is
            found), ``True``/``"on"`` (and fail those rows without one) or ``False``/``"off"``.  Compilation happens
            in the warm-up and is reported, not timed.
        write: write bench.json/csv/md/png (and pareto.png when rows have an accuracy).
        checkpoints: more trained checkpoints to compare in the same run (for example the baseline beside the
            transfer model): each gets a PyTorch fp32 eager row, and each ``models`` file is compared with the
            checkpoint it was exported from (its ``source_sha256``).  With labelled photos, every row gets a test
            accuracy, and ``pareto.png`` plots accuracy against batch-1 latency for every model x precision x backend.
        latency_reference: an untrained model of this architecture timed in PyTorch fp32 eager beside the others
            (``resnet50``, the CLI's default: the usual yardstick), for latency ratios across architectures; ``None``: none.
    """
    from pawlens.models.artifact import ArtifactMeta
    from pawlens.models.checkpoint import build_checkpoint, load_checkpoint, save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig, preprocess_numpy
    from pawlens.models.registry import create_model, list_models
    from tqdm import tqdm

    from .compare import compare_logits, default_gate
    from .factory import BACKENDS, backend_installed, file_kind, plan_runner, read_meta

    batch_sizes = sorted({int(b) for b in batch_sizes})
    if not batch_sizes or batch_sizes[0] < 1:
        raise InputError(f"--batch-sizes must be positive integers, got {batch_sizes}")
    if iters < 1 or warmup < 0 or round_iters < 1:
        raise InputError(f"--iters must be >= 1 and --warmup >= 0 (got {iters}, {warmup})")
    if isolation not in ("process", "inline"):
        raise InputError(f"--isolation {isolation!r}: choose process or inline")
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device {device!r}: choose auto, cpu or cuda")
    wanted = set(backends or ("torch", "ort", "openvino", "trt"))
    bad = wanted - set(BACKENDS[1:])
    if bad:
        raise InputError(f"--backends {','.join(sorted(bad))}: choose from {', '.join(BACKENDS[1:])}")
    if n_images < 1:
        raise InputError("--n-images must be >= 1")
    compile = {"auto": "auto", "on": True, "off": False, True: True, False: False}.get(compile, None)
    if compile is None:
        raise InputError("--compile: choose auto, on or off")

    import torch

    cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise InputError("--device cuda: torch sees no CUDA GPU; use --device cpu or auto")
    devices = (["cpu"] if device != "cuda" else []) + (["cuda"] if cuda else [])
    notes: list[str] = []
    if isolation == "process" and os.name == "nt":  # the workers are handed a socket fd (pass_fds): POSIX only
        isolation = "inline"
        notes.append("--isolation process needs a POSIX system; ran inline")
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    t_start = time.perf_counter()

    # ---- model and artifacts
    metas = {}
    for m in models:
        file_kind(m)
        metas[os.fspath(m)] = read_meta(m)
    workdir = tempfile.mkdtemp(prefix="pawlens-bench-")
    try:
        embedded = checkpoint is None
        if embedded:
            first = next(iter(metas.values()), None)
            arch = first.arch if first is not None and first.arch in list_models() else "resnet50"
            classes = list(first.class_names) if first is not None else ["cat", "dog"]
            pre = first.preprocess if first is not None else PreprocessConfig.for_size(224)
            torch.manual_seed(0)
            ckpt = build_checkpoint(model=create_model(arch, num_classes=len(classes)), arch=arch, class_names=classes, preprocess=pre,
                                    train_config={"note": "pawlens-bench embedded default: untrained"})
            ckpt_path = save_checkpoint(os.path.join(workdir, f"embedded-{arch}.pt"), ckpt)
            ckpt = load_checkpoint(ckpt_path)
            notes.append(f"Embedded default: an UNTRAINED {arch} ({len(classes)} classes, {pre.input_size} px) built and exported "
                         "on the fly. Latency does not depend on the weights; agreement figures only show how closely each backend "
                         "reproduces the same random network.")
        else:
            ckpt = load_checkpoint(checkpoint)
            ckpt_path = os.fspath(checkpoint)
        meta_ck = ArtifactMeta.from_checkpoint(ckpt)
        cfg = meta_ck.preprocess
        classes = list(meta_ck.class_names)
        from pawlens.models.console import sha256_file

        main_label = _model_label(meta_ck.arch, embedded)
        groups: dict[str, dict[str, Any]] = {"": {"label": main_label, "path": ckpt_path, "cfg": cfg, "classes": classes,
                                                  "sha": "" if embedded else sha256_file(ckpt_path), "arch": meta_ck.arch}}
        for extra in checkpoints:
            ck_e = load_checkpoint(extra)
            me_e = ArtifactMeta.from_checkpoint(ck_e)
            lab = _model_label(me_e.arch, False)
            if lab in {g["label"] for g in groups.values()}:
                lab = f"{lab} ({os.path.basename(os.path.dirname(os.path.abspath(extra)))})"
            groups[lab] = {"label": lab, "path": os.fspath(extra), "cfg": me_e.preprocess, "classes": list(me_e.class_names),
                           "sha": sha256_file(extra), "arch": me_e.arch}
        ref_arch = latency_reference if latency_reference in list_models() else None
        if ref_arch and (ref_arch in {g["arch"] for g in groups.values()} or "torch" not in wanted or "cpu" not in devices):
            ref_arch = None  # a trained model of that architecture is in the run already (or no CPU PyTorch rows)
        if ref_arch:
            from pawlens.models.registry import model_info

            torch.manual_seed(0)
            pre_r = model_info(ref_arch).preprocess()
            ck_r = build_checkpoint(model=create_model(ref_arch, num_classes=len(classes)), arch=ref_arch, class_names=classes, preprocess=pre_r,
                                    train_config={"note": "pawlens-bench latency reference: untrained"})
            path_r = save_checkpoint(os.path.join(workdir, f"reference-{ref_arch}.pt"), ck_r)
            groups[f"{ref_arch} (latency reference)"] = {"label": f"{ref_arch} (latency reference)", "path": path_r, "cfg": pre_r,
                                                         "classes": classes, "sha": "", "arch": ref_arch, "reference": True}
        name = name or (f"{meta_ck.arch}-default" if embedded else os.path.splitext(os.path.basename(ckpt_path))[0])
        out_dir = ensure_writable_dir(out or _default_out(name)) if write else (out or "")
        model_dir = os.path.join(out_dir, "models") if keep_models and write else os.path.join(workdir, "models")
        os.makedirs(model_dir, exist_ok=True)

        # ---- inputs (agreement, calibration, timing)
        real = bool(images)
        if images:
            where = images if isinstance(images, str) else f"{len(images)} listed files"
            if models:  # nothing to calibrate here: every photo serves agreement and accuracy
                agree_frames, agree_labels, _ = _real_frames(images, n_images, classes)
                calib_frames = agree_frames
                data_note = f"{len(agree_frames)} real photos from {where}"
            else:
                frames, labels, used = _real_frames(images, 2 * n_images, classes)
                agree_frames, agree_labels = frames[1::2] or frames, labels[1::2] or labels
                calib_frames = frames[0::2]
                data_note = f"{len(agree_frames)} real photos from {where} (calibration: {len(calib_frames)} others)"
        else:
            frames = _synthetic_frames(2 * n_images)
            agree_frames, agree_labels, calib_frames = frames[1::2], [-1] * n_images, frames[0::2]
            data_note = f"{len(agree_frames)} synthetic frames (no --images given; INT8 calibrated on {len(calib_frames)} others)"
        names = [classes[y] if y >= 0 else None for y in agree_labels]
        x_agree: dict[str, np.ndarray] = {}
        x_time: dict[str, dict[int, np.ndarray]] = {}
        labels_of: dict[str, list[int]] = {}
        for g, gd in groups.items():
            x_agree[g] = preprocess_numpy(agree_frames, gd["cfg"])
            pool = np.concatenate([x_agree[g], preprocess_numpy(calib_frames, gd["cfg"])]) if calib_frames is not agree_frames else x_agree[g]
            x_time[g] = {b: np.ascontiguousarray(np.resize(pool, (b, *pool.shape[1:]))) for b in batch_sizes}
            labels_of[g] = [gd["classes"].index(n) if n in gd["classes"] else -1 for n in names]
        x_calib = preprocess_numpy(calib_frames, cfg)

        artifacts: list[tuple[str, Any, bool]] = []  # (path, meta, comparable) of the main checkpoint
        extra_artifacts: list[tuple[str, Any, str]] = []  # (path, meta, group) of the other checkpoints
        if models:
            by_sha = {gd["sha"]: g for g, gd in groups.items() if g and gd["sha"]}
            ck_sha = groups[""]["sha"]
            for m, me in metas.items():
                if me.source_sha256 and me.source_sha256 in by_sha and me.source_sha256 != ck_sha:
                    extra_artifacts.append((m, me, by_sha[me.source_sha256]))
                    continue
                comparable = not embedded and (not me.source_sha256 or me.source_sha256 == ck_sha)
                if not embedded and not comparable:
                    notes.append(f"{os.path.basename(m)} was exported from another checkpoint (source_sha256 differs): no agreement figures")
                artifacts.append((m, me, comparable))
            if embedded:
                notes.append("No --checkpoint: the --models files were not compared with a PyTorch reference (their weights are "
                             "unknown here); the PyTorch rows are an untrained model of the same architecture, for speed only.")
        else:
            artifacts = _export_artifacts(ckpt, model_dir, x_calib, want_ort=backend_installed("ort") or backend_installed("openvino"),
                                          want_fp16=cuda and ("ort" in wanted or "trt" in wanted), want_trt=cuda and "trt" in wanted,
                                          notes=notes)

        # ---- candidates
        cands: list[Candidate] = []
        from .torch_runner import cxx_compiler

        use_compile = bool(compile) and (compile is True or cxx_compiler() is not None)
        if compile == "auto" and not use_compile and "torch" in wanted:
            notes.append("No C++ compiler on PATH: the torch.compile rows were left out (install g++ to time them).")

        def add(c: Candidate):
            if c.backend in wanted:
                c.threads = threads
                cands.append(c)

        from pawlens.models.device import cpu_supports_bf16

        bf16_ok = cpu_supports_bf16()
        if "cpu" in devices and not bf16_ok:
            notes.append("This CPU has no native bf16 (AVX512-BF16 or AMX): the PyTorch and OpenVINO bf16 rows were left out "
                         "(bf16 would be emulated, many times slower than fp32).")
        if "cpu" in devices:
            add(Candidate("torch-fp32", "PyTorch fp32 eager", "torch", "fp32", "cpu", ckpt_path, {"device": "cpu", "precision": "fp32"}))
            add(Candidate("torch-fp32-cl", "PyTorch fp32 channels_last", "torch", "fp32", "cpu", ckpt_path,
                          {"device": "cpu", "precision": "fp32", "channels_last": True}))
            if bf16_ok:
                add(Candidate("torch-bf16-cl", "PyTorch bf16 (converted) channels_last", "torch", "bf16", "cpu", ckpt_path,
                              {"device": "cpu", "precision": "bf16", "channels_last": True}, gate_precision="bf16"))
                add(Candidate("torch-bf16ac-cl", "PyTorch bf16 autocast channels_last", "torch", "bf16-autocast", "cpu", ckpt_path,
                              {"device": "cpu", "precision": "bf16-autocast", "channels_last": True}, gate_precision="bf16"))
            if use_compile:
                add(Candidate("torch-fp32-cl-compiled", "PyTorch fp32 channels_last, torch.compile", "torch", "fp32", "cpu", ckpt_path,
                              {"device": "cpu", "precision": "fp32", "channels_last": True, "compile": True}))
                if bf16_ok:
                    add(Candidate("torch-bf16-cl-compiled", "PyTorch bf16 channels_last, torch.compile", "torch", "bf16", "cpu", ckpt_path,
                                  {"device": "cpu", "precision": "bf16", "channels_last": True, "compile": True}, gate_precision="bf16"))
        if "cuda" in devices:
            add(Candidate("torch-fp32-cuda", "PyTorch fp32 eager (CUDA)", "torch", "fp32", "cuda", ckpt_path,
                          {"device": "cuda", "precision": "fp32"}))
            add(Candidate("torch-fp16-cuda", "PyTorch fp16 (CUDA) channels_last", "torch", "fp16", "cuda", ckpt_path,
                          {"device": "cuda", "precision": "fp16", "channels_last": True}, gate_precision="fp16"))
        for path, me, comparable in artifacts:
            base = os.path.basename(path)
            prec = me.precision
            ext = file_kind(path)
            if ext == ".engine":
                if "cuda" in devices:
                    add(Candidate(f"trt-{prec}@{base}", f"TensorRT {prec.upper()}", "trt", prec, "cuda", path, {"device": "cuda"},
                                  gate_precision=prec, comparable=comparable))
                else:
                    notes.append(f"{base}: a TensorRT engine needs a CUDA GPU; not timed in this run")
                continue
            if "cpu" in devices and prec != "fp16":  # an FP16 ONNX runs in fp32 on the CPU: a GPU artifact
                if backend_installed("ort"):
                    add(Candidate(f"ort-{prec}@{base}", f"ONNX Runtime {prec.upper() if prec == 'int8' else prec}", "ort", prec, "cpu", path,
                                  {"device": "cpu"}, gate_precision=prec, comparable=comparable))
                if backend_installed("openvino"):
                    add(Candidate(f"openvino-{prec}@{base}", f"OpenVINO {prec.upper() if prec == 'int8' else prec}", "openvino", prec, "cpu",
                                  path, {"precision": "fp32"}, gate_precision=prec, comparable=comparable))
                    if prec == "fp32" and bf16_ok:
                        add(Candidate(f"openvino-bf16@{base}", "OpenVINO bf16 hint (fp32 model)", "openvino", "bf16", "cpu", path,
                                      {"precision": "bf16"}, gate_precision="fp32", comparable=comparable))
            if "cuda" in devices and backend_installed("ort"):
                add(Candidate(f"ort-{prec}-cuda@{base}", f"ONNX Runtime {prec} (CUDA EP)", "ort", prec, "cuda", path, {"device": "cuda"},
                              gate_precision=prec, comparable=comparable))
        for g, gd in groups.items():  # the other trained models and the latency reference: eager PyTorch, and their artifacts
            if not g or "cpu" not in devices:
                continue
            lab = gd["label"]
            add(Candidate(f"torch-fp32#{lab}", f"PyTorch fp32 eager [{lab}]", "torch", "fp32", "cpu", gd["path"],
                          {"device": "cpu", "precision": "fp32"}, comparable=not gd.get("reference"), group=g))
            for path, me, gg in extra_artifacts:
                if gg != g or me.precision == "fp16" or file_kind(path) == ".engine":
                    continue
                base = os.path.basename(path)
                for be, kw, nm in (("ort", {"device": "cpu"}, "ONNX Runtime"), ("openvino", {"precision": "fp32"}, "OpenVINO")):
                    if backend_installed(be):
                        shown = me.precision.upper() if me.precision == "int8" else me.precision
                        add(Candidate(f"{be}-{me.precision}@{base}#{lab}", f"{nm} {shown} [{lab}]",
                                      be, me.precision, "cpu", path, dict(kw), gate_precision=me.precision, group=g))
        if not cands:
            raise InputError("nothing to benchmark: no backend of --backends is installed for these files")

        # ---- workers
        rows: list[BenchRow] = []
        runners: dict[str, Any] = {}
        workers: dict[str, Any] = {}
        failed: dict[str, str] = {}
        LOG.info("bench: starting %d configurations (%s isolation)", len(cands), isolation)
        for c in tqdm(cands, desc="load", unit="runner", disable=None if progress else True, leave=False):
            try:
                if c.backend == "ort":
                    c.kwargs["spinning"] = spinning
                w = ProcessWorker(c, spinning=spinning) if isolation == "process" else InlineWorker(c)
                w.call("inputs", x_time[c.group])
                runners[c.key] = w.call("describe")
                workers[c.key] = w
            except WorkerError as e:
                failed[c.key] = str(e)
                LOG.warning("bench: %s unavailable: %s", c.label, e)
        if "ort" in {c.backend for c in cands}:
            for k, d in runners.items():
                if d.get("fallback"):
                    notes.append(f"{k}: CUDA was requested but ONNX Runtime runs on {', '.join(d.get('providers', []))} (fall-back).")

        # ---- agreement with the PyTorch fp32 reference of each model
        agree: dict[str, Any] = {}
        ref_keys = {g: f"torch-fp32#{gd['label']}" for g, gd in groups.items() if g}
        ref_keys[""] = "torch-fp32" if "torch-fp32" in workers else ("torch-fp32-cuda" if "torch-fp32-cuda" in workers else None)
        ref_logits: dict[str, Any] = {}
        if ref_keys[""] is None:
            try:
                w = InlineWorker(Candidate("ref", "reference", "torch", "fp32", "cpu", ckpt_path, {"device": "cpu"}, threads=threads))
                ref_logits[""] = w.call("logits", (x_agree[""], 8))
                w.close()
            except WorkerError as e:
                notes.append(f"no PyTorch fp32 reference: {e}")
        for c in cands:
            if c.key not in workers or (not c.comparable and c.group and groups[c.group].get("reference")):
                continue  # the untrained latency reference is timed, never scored
            chunk = min(8, runners[c.key].get("profile_batch", [1, 8, 8])[2] if c.backend == "trt" else 8)
            try:
                logits = workers[c.key].call("logits", (x_agree[c.group], chunk))
            except WorkerError as e:
                failed[c.key] = str(e)
                workers.pop(c.key).close()
                continue
            if c.key == ref_keys.get(c.group):
                ref_logits[c.group] = logits
            agree[c.key] = logits
        parity: dict[str, Any] = {}
        for c in cands:
            if c.key in agree and c.comparable and c.group in ref_logits:
                gate = default_gate(c.gate_precision) if c.gate_precision in ("fp32", "fp16", "int8") else None
                if gate is None:  # bf16 paths: judged by the fp16 gate (both are 16-bit floats)
                    gate = default_gate("fp16")
                parity[c.key] = compare_logits(ref_logits[c.group], agree[c.key], labels=labels_of[c.group], gate=gate, name=c.key,
                                               precision=c.gate_precision if c.gate_precision != "bf16" else "fp16")

        # ---- timing, interleaved
        keys = [c.key for c in cands if c.key in workers]
        samples: dict[tuple[str, int], list[float]] = {(k, b): [] for k in keys for b in batch_sizes}
        total = len(keys) * len(batch_sizes) * iters
        bar = tqdm(total=total, desc="time", unit="call", disable=None if progress else True, leave=False)
        for b in batch_sizes:
            for k in list(keys):
                if warmup:
                    try:
                        workers[k].call("time", (b, warmup))
                    except WorkerError as e:
                        failed[k] = f"batch {b}: {e}"
                        keys.remove(k)
                        workers.pop(k).close()
            rounds = math.ceil(iters / round_iters)
            for r in range(rounds):
                n = min(round_iters, iters - r * round_iters)
                order = keys[r % len(keys):] + keys[: r % len(keys)] if keys else []
                if r % 2:
                    order = order[::-1]
                for k in order:
                    if k not in workers:
                        continue
                    try:
                        samples[(k, b)] += workers[k].call("time", (b, n))
                    except WorkerError as e:
                        failed[k] = f"batch {b}: {e}"
                        workers.pop(k).close()
                        keys.remove(k)
                        continue
                    bar.update(n)
                    if pause_ms:
                        time.sleep(pause_ms / 1e3)
        bar.close()
        for k, w in workers.items():
            if runners.get(k, {}).get("compiled"):
                try:
                    runners[k] = w.call("describe")
                except WorkerError:
                    pass
                took = ", ".join(f"{v:.0f} s (batch {b})" for b, v in sorted(runners[k].get("compile_s", {}).items(), key=lambda kv: int(kv[0])))
                if took:
                    notes.append(f"{k}: torch.compile took {took} on the first call of each batch size; that was warm-up, not timed.")
            w.close()
        workers.clear()

        # ---- rows
        by_key = {c.key: c for c in cands}
        for c in cands:
            for b in batch_sizes:
                row = BenchRow(c.key, c.label, c.backend, c.precision, c.device, b,
                               artifact=os.path.basename(c.path) if c.backend != "torch" else "checkpoint", model=groups[c.group]["label"])
                s = samples.get((c.key, b), [])
                if c.key in failed and len(s) < iters:
                    row.status = f"failed: {failed[c.key]}"
                if s:
                    st = _stats(s)
                    row.n = len(s)
                    row.p50_ms, row.p90_ms, row.p99_ms, row.mean_ms, row.min_ms = (st[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms"))
                    row.images_per_s = b / (st["p50_ms"] / 1e3)
                    row.samples_ms = [round(x * 1e3, 3) for x in s]
                pr = parity.get(c.key)
                if pr is not None:
                    row.top1_agreement, row.max_abs, row.within_gate = pr.top1_agreement, pr.max_abs, bool(pr.passed)
                    row.gate = f"{pr.precision} gate"
                    if pr.cand_acc is not None:
                        row.accuracy = pr.cand_acc
                rows.append(row)
        for r in rows:
            own = ("torch-fp32" if r.device == "cpu" else "torch-fp32-cuda") if r.model == main_label else f"torch-fp32#{r.model}"
            ref = next((x for x in rows if x.key == own and x.batch == r.batch), None)
            if ref is not None and math.isfinite(ref.p50_ms) and math.isfinite(r.p50_ms):
                r.speedup = ref.p50_ms / r.p50_ms
                r.vs_eager = r.p50_ms / ref.p50_ms

        # ---- extras: runtime overhead and Grad-CAM (in this process, after the workers are gone)
        extras: dict[str, Any] = {}
        if cam:
            extras.update(_measure_overhead(cfg, len(classes)))
            if "torch" in wanted:
                if isolation == "process":
                    try:
                        extras.update(run_in_child("_measure_cam_file", ckpt_path, threads, env=worker_env(threads, spinning)))
                    except WorkerError as e:
                        notes.append(f"Grad-CAM timing failed: {e}")
                else:
                    extras.update(_measure_cam(ckpt, threads=threads))

        # ---- what the CPU can compute at most (dense GEMM per precision) and what one forward costs
        if "cpu" in devices:
            try:
                if isolation == "process":
                    extras.update(run_in_child("_measure_ceiling_file", ckpt_path, threads, env=worker_env(threads, spinning)))
                else:
                    from .ceiling import measure

                    extras.update(measure(ckpt, threads))
            except (WorkerError, PawlensError) as e:
                notes.append(f"compute ceiling not measured: {e}")
            if extras.get("macs"):
                from .ceiling import rate_for

                for r in rows:
                    if r.device == "cpu" and math.isfinite(r.p50_ms) and r.model == main_label:
                        r.gops = 2 * extras["macs"] * r.batch / (r.p50_ms / 1e3) / 1e9
                        rate = rate_for(r.precision, extras)
                        if rate:
                            r.of_gemm = r.gops / rate

        # ---- auto picks
        auto_picks = []
        dev_for_auto = "cpu" if not cuda else "auto"
        for path, me, _cmp in artifacts + [(ckpt_path, meta_ck, True)]:
            try:
                plan = plan_runner(path, backend="auto", device=dev_for_auto, meta=me)
            except PawlensError as e:
                auto_picks.append({"artifact": os.path.basename(path), "error": str(e)})
                continue
            key = _key_for_plan(plan, path, me, by_key)
            auto_picks.append(_judge_auto(path, me, plan, key, rows, batch_sizes, by_key))

        for note in sorted({pr.agreement_note for pr in parity.values() if pr.agreement_note}):
            who = [k for k, pr in parity.items() if pr.agreement_note == note]
            notes.append(f"Top-1 agreement for {len(who)} row(s) ({', '.join(who[:4])}{', ...' if len(who) > 4 else ''}): {note}.")
        settings = {
            "checkpoint": None if embedded else ckpt_path, "embedded_default": embedded, "arch": meta_ck.arch,
            "input_size": cfg.input_size, "classes": classes, "models": [os.fspath(m) for m in models],
            "batch_sizes": batch_sizes, "iters": iters, "warmup": warmup, "round_iters": round_iters, "pause_ms": pause_ms,
            "threads": threads, "isolation": isolation, "device": device, "spinning": spinning, "agreement_data": data_note, "cpu": _cpu_name(),
            "cpu_flags": _cpu_flags(), "cores": os.cpu_count(), "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "versions": _versions(), "load_avg_start": load_start, "model": main_label, "real_photos": real,
            "models_compared": [gd["label"] for gd in groups.values()],
            "load_avg_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "seconds": round(time.perf_counter() - t_start, 1),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        result = BenchResult(rows, settings, extras, [], auto_picks, runners, notes, out_dir=out_dir)
        result.goals = evaluate_goals(result)
        if write:
            result.files = write_outputs(result, out_dir)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _export_artifacts(ckpt, model_dir: str, x_calib: np.ndarray, *, want_ort: bool, want_fp16: bool, want_trt: bool,
                      notes: list[str]):
    """Export fp32 and INT8 ONNX (+ FP16 ONNX and an FP16 TensorRT engine on a GPU) from ``ckpt`` into ``model_dir``."""
    out = []
    if not want_ort and not want_trt:
        return out
    try:
        from pawlens.export.onnx import convert_fp16, export_onnx
    except ImportError as e:
        notes.append(f"ONNX export unavailable ({e}); only PyTorch rows")
        return out
    from .factory import read_meta

    stem = os.path.join(model_dir, "model")
    t0 = time.perf_counter()
    try:
        fp32 = export_onnx(ckpt, stem + ".onnx")
    except PawlensError as e:
        notes.append(f"ONNX export failed: {e}")
        return out
    LOG.info("bench: exported %s in %.1f s", os.path.basename(fp32), time.perf_counter() - t0)
    out.append((fp32, read_meta(fp32), True))
    try:
        from pawlens.export.quantize import quantize_int8

        t0 = time.perf_counter()
        int8 = quantize_int8(fp32, stem + ".int8.onnx", x_calib)
        LOG.info("bench: quantized %s in %.1f s", os.path.basename(int8), time.perf_counter() - t0)
        out.append((int8, read_meta(int8), True))
    except (ImportError, PawlensError) as e:
        notes.append(f"INT8 quantization unavailable: {e}")
    if want_fp16:  # GPU artifacts: the FP16 ONNX (ONNX Runtime CUDA EP) and the TensorRT FP16 engine
        try:
            fp16 = convert_fp16(fp32, stem + ".fp16.onnx")
            out.append((fp16, read_meta(fp16), True))
        except PawlensError as e:
            notes.append(f"FP16 ONNX not made: {e}")
            fp16 = None
        if want_trt:
            try:
                from pawlens.export.tensorrt import build_engine

                eng = stem + ".fp16.engine"
                build_engine(fp32, eng, fp16_onnx_path=fp16)
                out.append((eng, read_meta(eng), True))
            except (ImportError, PawlensError) as e:
                notes.append(f"TensorRT engine not built: {e}")
    return out


def _key_for_plan(plan, path: str, meta, by_key: dict[str, Candidate]) -> str | None:
    if plan.backend == "torch":
        dev = plan.kwargs.get("device", "cpu")
        if dev.startswith("cuda"):
            return "torch-fp32-cuda"
        return "torch-fp32-cl" if plan.kwargs.get("channels_last") else "torch-fp32"
    base = os.path.basename(path)
    if plan.backend == "openvino":
        return f"openvino-{'bf16' if plan.kwargs.get('precision') == 'bf16' else meta.precision}@{base}"
    if plan.backend == "ort":
        return f"ort-{meta.precision}{'-cuda' if str(plan.kwargs.get('device', 'cpu')).startswith('cuda') else ''}@{base}"
    return f"trt-{meta.precision}@{base}"


def _judge_auto(path, meta, plan, key, rows: list[BenchRow], batch_sizes, by_key) -> dict[str, Any]:
    """Is auto's pick the fastest row for this artifact that stays inside the artifact's gate?"""
    base = os.path.basename(path)
    is_ckpt = by_key.get(key) is not None and by_key[key].backend == "torch"
    d: dict[str, Any] = {"artifact": base if not is_ckpt else "checkpoint (.pt)", "precision": meta.precision, "auto": plan.backend,
                         "auto_key": key, "reason": plan.reason, "per_batch": {}}
    for b in batch_sizes:
        if is_ckpt:
            # auto never compiles (a 10-30 s stall per batch size the user did not ask for): --compile is opt-in,
            # so the torch.compile rows are not auto's competitors.
            same = [r for r in rows if r.backend == "torch" and r.batch == b and r.precision == "fp32" and r.device == by_key[key].device
                    and not by_key[r.key].kwargs.get("compile")]
        else:
            same = [r for r in rows if r.batch == b and r.key.endswith("@" + base)]
        # auto never lowers the precision (a bf16 path for an fp32 artifact may pass a gate on one set of
        # inputs and not on the next), so only rows computing in the artifact's own precision compete.
        same = [r for r in same if math.isfinite(r.p50_ms) and r.precision == by_key[r.key].gate_precision]
        timed = next((r for r in same if r.key == key), None)
        same = [r for r in same if r.within_gate is not False]
        picked = next((r for r in same if r.key == key), None)
        if picked is None:
            note = ("auto's pick was not timed" if timed is None else
                    "auto's pick is outside the artifact's parity gate on these inputs (see its agreement)")
            d["per_batch"][b] = {"ok": None, "note": note}
            continue
        best = min(same, key=lambda r: r.p50_ms)
        ratio = picked.p50_ms / best.p50_ms
        d["per_batch"][b] = {"ok": ratio <= AUTO_TOLERANCE, "fastest": best.key, "fastest_ms": best.p50_ms, "auto_ms": picked.p50_ms,
                             "ratio": ratio}
    return d


def _measure_overhead(cfg, n_classes: int, reps: int = 30) -> dict[str, Any]:
    """Preprocessing of one 640x480 frame + softmax: the runtime's own cost per frame."""
    from pawlens.models.preprocess import preprocess_numpy

    from .predictor import softmax

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    logits = rng.standard_normal((1, n_classes)).astype(np.float32)
    pre, post = [], []
    for _ in range(3):
        preprocess_numpy(frame, cfg)
    for _ in range(reps):
        t0 = time.perf_counter()
        preprocess_numpy(frame, cfg)
        t1 = time.perf_counter()
        softmax(logits).argmax(axis=1)
        t2 = time.perf_counter()
        pre.append(t1 - t0)
        post.append(t2 - t1)
    p, s = float(np.median(pre) * 1e3), float(np.median(post) * 1e3)
    return {"overhead_frame": "640x480", "preprocess_ms": p, "softmax_ms": s, "overhead_ms": p + s}


def _measure_ceiling_file(ckpt_path: str, threads: int | None) -> dict[str, Any]:
    from pawlens.models.checkpoint import load_checkpoint

    from .ceiling import measure

    return measure(load_checkpoint(ckpt_path), threads)


def _measure_cam_file(ckpt_path: str, threads: int | None) -> dict[str, Any]:
    from pawlens.models.checkpoint import load_checkpoint

    return _measure_cam(load_checkpoint(ckpt_path), threads=threads)


def _measure_cam(ckpt, *, threads: int | None, reps: int = 7) -> dict[str, Any]:
    """One Grad-CAM (224 px frame, CPU) against one PyTorch fp32 forward, interleaved; medians."""
    import torch
    from pawlens.models.checkpoint import model_from_checkpoint
    from pawlens.models.gradcam import GradCAM
    from pawlens.models.registry import model_info

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        model = model_from_checkpoint(ckpt)
        s = int(ckpt["preprocess"]["input_size"])
        x = torch.randn(1, 3, s, s, generator=torch.Generator().manual_seed(0))
        fwd, cam_t = [], []
        with GradCAM(model, model_info(ckpt["arch"]).cam_layer) as cam:
            for _ in range(2):
                cam(x)
                with torch.inference_mode():
                    model(x)
            for _ in range(reps):
                t0 = time.perf_counter()
                with torch.inference_mode():
                    model(x)
                t1 = time.perf_counter()
                cam(x)
                t2 = time.perf_counter()
                fwd.append(t1 - t0)
                cam_t.append(t2 - t1)
        f, c = float(np.median(fwd) * 1e3), float(np.median(cam_t) * 1e3)
        return {"forward_ms": f, "cam_ms": c, "cam_vs_forward": c / f, "cam_layer": model_info(ckpt["arch"]).cam_layer}
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------- goals


def _min_ratio(r: BenchRow, ref: BenchRow) -> str:
    """The same ratio on the fastest call of each row (other load only ever adds time, so it shows the noise floor)."""
    if not (math.isfinite(r.min_ms) and math.isfinite(ref.min_ms)) or ref.min_ms <= 0:
        return ""
    return f"; on min latency {r.min_ms / ref.min_ms:.2f}x"


def evaluate_goals(res: BenchResult) -> list[dict[str, Any]]:
    """The issue's performance goals, checked against this run's own figures (ratios within the run)."""
    goals: list[dict[str, Any]] = []

    def add(goal: str, measured: str, ok: bool | None, note: str = ""):
        goals.append({"goal": goal, "measured": measured, "ok": ok, "note": note})

    main = res.settings.get("model", "")

    def p50(key_pred, b: int, device: str = "cpu") -> BenchRow | None:
        cands = [r for r in res.rows if r.batch == b and r.device == device and math.isfinite(r.p50_ms) and key_pred(r)
                 and r.model in (main, "")]
        return min(cands, key=lambda r: r.p50_ms) if cands else None

    eager = {b: res.row("torch-fp32", b) for b in res.settings["batch_sizes"]}
    b1 = 1 if 1 in res.settings["batch_sizes"] else res.settings["batch_sizes"][0]
    e1 = eager.get(b1)

    def ceiling(r: BenchRow, ratio: float) -> str:
        """How the row's compute rate and the rate the goal needs compare with this CPU's GEMM rate in that precision."""
        from .ceiling import rate_for

        rate, macs = rate_for(r.precision, res.extras), res.extras.get("macs")
        if not rate or not macs or not math.isfinite(r.gops):
            return ""
        need = 2 * macs * r.batch / (ratio * e1.p50_ms / 1e3) / 1e9
        return (f"runs at {r.gops:.0f} GOP/s, {r.of_gemm:.0%} of this CPU's {r.precision} GEMM rate ({rate:.0f}); "
                f"the goal needs {need:.0f} GOP/s = {need / rate:.2f}x that rate")
    if e1 is not None and math.isfinite(e1.p50_ms):
        ort = p50(lambda r: r.backend == "ort" and r.precision == "fp32", b1)
        if ort:
            add(f"ONNX Runtime fp32 at batch {b1} <= {GOALS['ort_fp32_vs_eager_b1']}x PyTorch fp32 eager",
                f"{ort.vs_eager:.2f}x ({ort.p50_ms:.1f} vs {e1.p50_ms:.1f} ms){_min_ratio(ort, e1)}", ort.vs_eager <= GOALS["ort_fp32_vs_eager_b1"],
                ceiling(ort, GOALS["ort_fp32_vs_eager_b1"]))
        i8 = p50(lambda r: r.precision == "int8", b1)
        if i8:
            add(f"fastest INT8 path at batch {b1} <= {GOALS['int8_vs_eager_b1']}x PyTorch fp32 eager",
                f"{i8.label}: {i8.vs_eager:.2f}x ({i8.p50_ms:.1f} vs {e1.p50_ms:.1f} ms){_min_ratio(i8, e1)}",
                i8.vs_eager <= GOALS["int8_vs_eager_b1"], ceiling(i8, GOALS["int8_vs_eager_b1"]))
            real = "real photos" in str(res.settings.get("agreement_data"))
            if math.isfinite(i8.top1_agreement):
                add(f"INT8 top-1 agreement >= {GOALS['int8_agreement']:.0%} on real photos", f"{i8.top1_agreement:.2%} ({i8.label})",
                    (i8.top1_agreement >= GOALS["int8_agreement"]) if real and not res.settings["embedded_default"] else None,
                    "" if real and not res.settings["embedded_default"] else
                    "not judged: needs a trained --checkpoint and --images with real photos")
        tb = p50(lambda r: r.backend == "torch" and r.precision == "bf16", b1)
        if tb:
            add(f"PyTorch best CPU path (bf16 + channels_last, converted or compiled) at batch {b1} <= {GOALS['torch_best_vs_eager']}x eager",
                f"{tb.label}: {tb.vs_eager:.2f}x ({tb.p50_ms:.1f} vs {e1.p50_ms:.1f} ms){_min_ratio(tb, e1)}",
                tb.vs_eager <= GOALS["torch_best_vs_eager"], ceiling(tb, GOALS["torch_best_vs_eager"]))
    for b in res.settings["batch_sizes"]:
        conv, ac = res.row("torch-bf16-cl", b), res.row("torch-bf16ac-cl", b)
        if conv and ac and math.isfinite(conv.p50_ms) and math.isfinite(ac.p50_ms) and b > 1:
            add(f"bf16 converted vs autocast at batch {b} (measure both)", f"{conv.p50_ms:.1f} vs {ac.p50_ms:.1f} ms", None,
                "converted is faster" if conv.p50_ms < ac.p50_ms else "autocast is faster here")
    # the fastest path auto picks vs OpenVINO bf16 / INT8 (what Intel-CPU users pick instead)
    auto_keys = {a.get("auto_key") for a in res.auto_picks}
    for b in res.settings["batch_sizes"]:
        if b not in (1, 8):
            continue
        ovb = p50(lambda r: r.backend == "openvino" and r.precision == "bf16", b)
        ovi = p50(lambda r: r.backend == "openvino" and r.precision == "int8", b)
        ours = p50(lambda r: r.key in auto_keys, b)
        rivals = [r for r in (ovb, ovi) if r]
        if ours and rivals:
            best = min(rivals, key=lambda r: r.p50_ms)
            ort_fp32 = p50(lambda r: r.backend == "ort" and r.precision == "fp32", b)
            rel = ""
            if ort_fp32:
                rel = "; vs ORT fp32: " + ", ".join(f"{r.label} {r.p50_ms / ort_fp32.p50_ms:.2f}x" for r in [*rivals, ours] if r)
            add(f"fastest path auto picks at batch {b} at least as fast as the best of OpenVINO bf16 / INT8",
                f"{ours.label} {ours.p50_ms:.1f} ms vs {best.label} {best.p50_ms:.1f} ms", ours.p50_ms <= best.p50_ms * AUTO_TOLERANCE,
                rel.lstrip("; "))
    for a in res.auto_picks:
        for b, pb in a.get("per_batch", {}).items():
            if pb.get("ok") is not None:
                add(f"--backend auto picks the fastest path within the gate for {a['artifact']} (batch {b})",
                    f"auto={a['auto_key']} ({pb['auto_ms']:.1f} ms), fastest={pb['fastest']} ({pb['fastest_ms']:.1f} ms)", pb["ok"])
    ex = res.extras
    if "overhead_ms" in ex:
        add(f"runtime overhead (preprocess {ex['overhead_frame']} + softmax) <= {GOALS['overhead_ms']} ms", f"{ex['overhead_ms']:.2f} ms",
            ex["overhead_ms"] <= GOALS["overhead_ms"])
    if "cam_vs_forward" in ex:
        add(f"Grad-CAM of one frame <= {GOALS['cam_vs_forward']}x one PyTorch fp32 forward (CPU)",
            f"{ex['cam_vs_forward']:.2f}x ({ex['cam_ms']:.1f} vs {ex['forward_ms']:.1f} ms)", ex["cam_vs_forward"] <= GOALS["cam_vs_forward"])
    r50 = next((r for r in res.rows if r.key.startswith("torch-fp32#resnet50") and r.batch == 1 and math.isfinite(r.p50_ms)), None)
    if r50 is not None and not main.startswith("resnet50"):
        fast = p50(lambda r: r.within_gate is not False, 1)
        if fast is not None:
            ratio = fast.p50_ms / r50.p50_ms
            lim = GOALS["fastest_vs_resnet50_eager_b1"]
            add(f"fastest CPU path of {main} at batch 1 <= {lim}x ResNet50 fp32 eager ({r50.model})",
                f"{fast.label}: {ratio:.3f}x ({fast.p50_ms:.2f} vs {r50.p50_ms:.1f} ms){_min_ratio(fast, r50)}", ratio <= lim)
    te = next((r for r in res.rows if r.key == "torch-fp32-cuda" and r.batch == 1), None)
    trt = p50(lambda r: r.backend == "trt" and r.precision == "fp16", 1, device="cuda")
    if te and trt and math.isfinite(te.p50_ms):
        add(f"TensorRT FP16 >= {GOALS['trt_fp16_speedup_b1']}x PyTorch fp32 eager (CUDA) at batch 1", f"{trt.speedup:.2f}x",
            trt.speedup >= GOALS["trt_fp16_speedup_b1"])
    else:
        add(f"TensorRT FP16 >= {GOALS['trt_fp16_speedup_b1']}x PyTorch fp32 eager (CUDA) at batch 1", "not measured", None,
            "no GPU / TensorRT in this run")
    return goals


# ----------------------------------------------------------------------------- outputs


CSV_COLUMNS = ("model", "label", "backend", "precision", "device", "batch", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "images_per_s",
               "speedup", "vs_eager", "gops", "of_gemm", "top1_agreement", "max_abs", "within_gate", "accuracy", "n", "status", "key", "artifact")


def to_markdown(res: BenchResult) -> str:
    s = res.settings
    L = [f"# pawlens-bench: {s['arch']} at {s['input_size']} px", ""]
    if s["embedded_default"]:
        L += ["**Embedded default**: an untrained model, exported on the fly (latency does not depend on the weights).", ""]
    several = len(s.get("models_compared", [])) > 1
    if several:
        L += [f"Models in this run: {', '.join(s['models_compared'])}. Each row's speed-up and agreement are against the PyTorch fp32 "
              "eager row of its own model; labels in brackets name the model of rows that are not the main one.", ""]
    L += ["| backend | precision | device | batch | p50 ms | p90 ms | p99 ms | mean ms | images/s | speed-up vs PyTorch fp32 eager "
          "| top-1 agreement | max abs diff |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(res.rows, key=lambda r: (r.batch, r.device, r.p50_ms if math.isfinite(r.p50_ms) else 1e18)):
        if r.status != "ok" and not math.isfinite(r.p50_ms):
            L.append(f"| {r.label} | {r.precision} | {r.device} | {r.batch} | {r.status} | | | | | | | |")
            continue
        gate = "" if r.within_gate is None else (" (in gate)" if r.within_gate else " (outside gate)")
        L.append(f"| {r.label} | {r.precision} | {r.device} | {r.batch} | {_fmt(r.p50_ms)} | {_fmt(r.p90_ms)} | {_fmt(r.p99_ms)} | "
                 f"{_fmt(r.mean_ms)} | {_fmt(r.images_per_s)} | {_fmt(r.speedup, 2, 'x')} | "
                 f"{_fmt(r.top1_agreement * 100 if math.isfinite(r.top1_agreement) else float('nan'), 1, '%')} | "
                 f"{'-' if not math.isfinite(r.max_abs) else f'{r.max_abs:.2e}'}{gate} |")
    front = pareto_rows(res)
    if front:
        L += ["", "## Accuracy against latency (batch 1): which artifact to ship", "",
              f"Top-1 accuracy on the {s.get('agreement_data', 'labelled photos')} against p50 latency at batch 1, for every model x "
              "precision x backend of this run (`pareto.png`). On the frontier: no other row is both faster and at least as accurate.", "",
              "| model | backend | precision | artifact | accuracy | p50 ms (b1) | in its gate | on the frontier |",
              "|---|---|---|---|---|---|---|---|"]
        for r, on in front:
            gate = "-" if r.within_gate is None else ("yes" if r.within_gate else "no")
            L.append(f"| {r.model} | {r.label.split(' [')[0]} | {r.precision} | {r.artifact} | {r.accuracy:.2%} | {r.p50_ms:.2f} | {gate} | "
                     f"{'**yes**' if on else ''} |")
    ex = res.extras
    if ex:
        L += [""]
        if "overhead_ms" in ex:
            L.append(f"- Runtime overhead per frame (preprocess {ex['overhead_frame']} + softmax): {ex['overhead_ms']:.2f} ms "
                     f"(preprocess {ex['preprocess_ms']:.2f}, softmax {ex['softmax_ms']:.3f})")
        if "cam_ms" in ex:
            L.append(f"- Grad-CAM ({ex['cam_layer']}, one {s['input_size']} px frame, CPU): {ex['cam_ms']:.1f} ms vs one PyTorch fp32 "
                     f"forward {ex['forward_ms']:.1f} ms = {ex['cam_vs_forward']:.2f}x")
    if ex.get("macs"):
        L += ["", "## Against this CPU's compute limit", "",
              f"One forward is {ex['macs'] / 1e9:.2f} G multiply-adds. Dense GEMM ({ex['gemm_n']}x{ex['gemm_n']}) measured in this run: "
              f"fp32 {ex['fp32_gflops']:.0f} GFLOP/s and bf16 "
              + (f"{ex['bf16_gflops']:.0f} GFLOP/s" if ex.get("bf16_gflops") else "not measured (no native bf16)") + " (PyTorch), INT8 "
              + (f"{ex['int8_gops']:.0f} GOP/s (onnxruntime MatMulInteger u8 x s8)" if ex.get("int8_gops") else "not measured (no onnxruntime)")
              + ". A row near 100% is compute bound: no runtime setting makes it much faster on this CPU.", "",
              "| backend | batch | GOP/s | of the GEMM rate in its precision |", "|---|---|---|---|"]
        for r in sorted((r for r in res.rows if r.device == "cpu" and math.isfinite(r.gops)), key=lambda r: (r.batch, r.p50_ms)):
            L.append(f"| {r.label} | {r.batch} | {r.gops:.0f} | {_fmt(r.of_gemm * 100 if math.isfinite(r.of_gemm) else float('nan'), 0, '%')} |")
    L += ["", "## Goals (ratios from this run)", "", "Judged on p50 latencies; the ratio on each row's fastest call is shown beside it "
          "(load from other processes only adds time, so a large gap between the two means the run was disturbed).", "",
          "| goal | measured | met |", "|---|---|---|"]
    for g in res.goals:
        met = "yes" if g["ok"] else ("no" if g["ok"] is False else "n/a")
        L.append(f"| {g['goal']} | {g['measured']}{(' - ' + g['note']) if g['note'] else ''} | {met} |")
    L += ["", "## What `--backend auto` picks", ""]
    for a in res.auto_picks:
        if "error" in a:
            L.append(f"- {a['artifact']}: {a['error']}")
            continue
        parts = []
        for b, pb in a["per_batch"].items():
            if pb.get("ok") is None:
                parts.append(f"batch {b}: {pb.get('note')}")
            else:
                parts.append(f"batch {b}: {'fastest' if pb['ok'] else 'NOT the fastest'} within the gate "
                             f"({pb['auto_ms']:.1f} ms; fastest {pb['fastest']} {pb['fastest_ms']:.1f} ms)")
        L.append(f"- {a['artifact']} ({a['precision']}): {a['auto_key']} - {a['reason']}; " + "; ".join(parts))
    L += ["", "## How the figures were taken", ""]
    iso = ("each configuration in its own worker process (a fresh Python interpreter), activated once"
           if s["isolation"] == "process" else "all configurations in one process")
    L += [f"- {iso}; {s['warmup']} warm-up calls per row and batch, then {s['iters']} timed calls per row, interleaved in rounds of "
          f"{s['round_iters']} call(s) per row, the order rotating (and reversing) every round, {s['pause_ms']:g} ms pause between "
          "turns; only one configuration computes at a time.",
          "- Latency = wall time of one `runner.infer(batch)` call (input check, inference, output copy; CUDA rows synchronise). "
          "p50/p90/p99 over the timed calls; images/s = batch / p50.",
          ("- Spinning off: ONNX Runtime sessions run with `session.intra_op.allow_spinning = 0` (and inter-op; spinning threads "
           "slowed the next runtime by up to 2.5x on 2 cores)"
           + ("; PyTorch workers start with `GOMP_SPINCOUNT=20000` (OpenMP threads spin some microseconds at a barrier, then "
              "sleep: PyTorch keeps its default speed, an idle worker stops competing at once; fully passive waiting made eager "
              "ResNet50 ~50% slower here)"
              if s["isolation"] == "process" else "; PyTorch runs in this process with its OpenMP defaults") + "."
           if not s.get("spinning") else "- Spinning ALLOWED (--allow-spinning): ONNX Runtime and OpenMP defaults.")
          + " OpenVINO: PERFORMANCE_HINT=LATENCY. PyTorch: eager, `inference_mode`; the `torch.compile` rows: TorchInductor with "
          "frozen weights (batch norm folded, weights pre-packed), static shapes, each batch size compiled during its warm-up.",
          f"- Threads per backend: {s['threads'] or 'each backend default (all cores)'}; CPU: {s['cpu']} ({s['cores']} logical cores; "
          f"{', '.join(s['cpu_flags']) or 'no AVX-512/AMX flags seen'}){'; GPU: ' + s['gpu'] if s['gpu'] else ''}.",
          f"- Agreement and max abs difference: against PyTorch fp32 eager on {s['agreement_data']}; the gate is the artifact's "
          "own (fp32: max abs <= 1e-3 and 100% top-1; bf16/fp16 paths: the fp16 gate; INT8: top-1 agreement).",
          f"- Load average at start / end: {_load(s['load_avg_start'])} / {_load(s['load_avg_end'])} (other work on the machine "
          "shows here; ratios within one run are more trustworthy than absolute figures).",
          f"- Versions: {', '.join(f'{k} {v}' for k, v in s['versions'].items())}. Run took {s['seconds']} s."]
    fb = [k for k, d in res.runners.items() if d.get("providers")]
    if fb:
        L.append("- ONNX Runtime providers actually active: " + "; ".join(
            f"{k}: {', '.join(res.runners[k]['providers'])}{' (FALL-BACK from CUDA)' if res.runners[k].get('fallback') else ''}" for k in fb))
    ov = [k for k, d in res.runners.items() if d.get("backend") == "openvino"]
    if ov:
        L.append("- OpenVINO inference precision: " + "; ".join(f"{k}: {res.runners[k].get('inference_precision_hint')}" for k in ov))
    if res.notes:
        L += ["", "## Notes", ""] + [f"- {n}" for n in res.notes]
    return "\n".join(L) + "\n"


def _load(v) -> str:
    return "-" if not v else ", ".join(f"{x:.2f}" for x in v)


def to_csv(res: BenchResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in res.rows:
        d = r.to_dict(samples=False)
        w.writerow(["" if d[c] is None else (f"{d[c]:.4f}" if isinstance(d[c], float) else d[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def plot_png(res: BenchResult) -> bytes:
    """Latency (p50 with p90 whisker) and throughput bars, one group per batch size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bs = res.settings["batch_sizes"]
    labels = []
    for r in res.rows:
        lab = f"{r.label} [{r.device}]" if r.device != "cpu" else r.label
        if lab not in labels:
            labels.append(lab)
    fig = Figure(figsize=(13, 0.45 * len(labels) * max(1, len(bs)) / 1.5 + 2.5))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    h = 0.8 / max(1, len(bs))
    y = np.arange(len(labels))
    for i, b in enumerate(bs):
        p50 = np.full(len(labels), np.nan)
        p90 = np.full(len(labels), np.nan)
        ips = np.full(len(labels), np.nan)
        for r in res.rows:
            if r.batch != b:
                continue
            j = labels.index(f"{r.label} [{r.device}]" if r.device != "cpu" else r.label)
            p50[j], p90[j], ips[j] = r.p50_ms, r.p90_ms, r.images_per_s
        off = (i - (len(bs) - 1) / 2) * h
        err = np.where(np.isfinite(p90 - p50), np.maximum(p90 - p50, 0), 0)
        ax1.barh(y + off, np.nan_to_num(p50), h, xerr=[np.zeros_like(err), err], label=f"batch {b}", capsize=2)
        ax2.barh(y + off, np.nan_to_num(ips), h, label=f"batch {b}")
    ax1.set_yticks(y, labels)
    ax1.invert_yaxis()
    ax1.set_xlabel("latency per call, ms (p50; whisker to p90)")
    ax2.set_xlabel("images / s (batch / p50)")
    ax1.set_xscale("log")
    ax1.legend(loc="lower right")
    ax2.legend(loc="lower right")
    ax1.grid(axis="x", alpha=0.3, which="both")
    ax2.grid(axis="x", alpha=0.3)
    title = f"pawlens-bench: {res.settings['arch']} {res.settings['input_size']} px"
    if res.settings["embedded_default"]:
        title += " (embedded default, untrained)"
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def pareto_rows(res: BenchResult) -> list[tuple[BenchRow, bool]]:
    """Batch-1 CPU rows with an accuracy, fastest first, each with whether it is on the accuracy/latency frontier."""
    rows = sorted((r for r in res.rows if r.batch == 1 and math.isfinite(r.accuracy) and math.isfinite(r.p50_ms)),
                  key=lambda r: (r.p50_ms, -r.accuracy))
    out, best = [], -1.0
    for r in rows:
        on = r.accuracy > best
        best = max(best, r.accuracy)
        out.append((r, on))
    return out


def plot_pareto(res: BenchResult) -> bytes:
    """Test accuracy against batch-1 p50 latency, one point per model x precision x backend, the frontier joined."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pts = pareto_rows(res)
    fig = Figure(figsize=(10, 6.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    models = list(dict.fromkeys(r.model for r, _ in pts))
    marks = {"fp32": "o", "int8": "s", "bf16": "^", "bf16-autocast": "v", "fp16": "D"}
    colors = {m: f"C{i}" for i, m in enumerate(models)}
    for r, on in pts:
        ax.scatter(r.p50_ms, r.accuracy * 100, marker=marks.get(r.precision, "o"), s=70 if on else 40, color=colors[r.model],
                   edgecolor="black" if on else "none", zorder=3)
        ax.annotate(f"{r.label.split(' [')[0]}", (r.p50_ms, r.accuracy * 100), textcoords="offset points", xytext=(6, 4), fontsize=7,
                    color=colors[r.model])
    front = [(r.p50_ms, r.accuracy * 100) for r, on in pts if on]
    if len(front) > 1:
        ax.step(*zip(*front), where="post", color="0.4", lw=1, ls="--", zorder=2, label="frontier (nothing faster is as accurate)")
    for m in models:
        ax.scatter([], [], color=colors[m], label=m)
    for p, mk in marks.items():
        if any(r.precision == p for r, _ in pts):
            ax.scatter([], [], marker=mk, color="0.5", label=p)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency at batch 1, ms (log scale)")
    ax.set_ylabel("top-1 accuracy on the labelled photos, %")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"Accuracy against latency: {res.settings.get('agreement_data', '')}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def write_outputs(res: BenchResult, out_dir: str) -> dict[str, str]:
    """Write bench.json, bench.csv, bench.md and bench.png (and pareto.png) into ``out_dir`` (atomically); return their paths."""
    files = {k: os.path.join(out_dir, f"bench.{k}") for k in ("json", "csv", "md", "png")}
    if pareto_rows(res):
        files["pareto"] = os.path.join(out_dir, "pareto.png")
        atomic_write_bytes(files["pareto"], plot_pareto(res))
    res.files = files
    atomic_write_text(files["csv"], to_csv(res))
    atomic_write_text(files["md"], to_markdown(res))
    atomic_write_bytes(files["png"], plot_png(res))
    atomic_write_text(files["json"], json.dumps(res.to_dict(), indent=2, default=str) + "\n")
    return files


# ----------------------------------------------------------------------------- CLI


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pawlens-bench", add_help=add_help, formatter_class=HelpFormatter,
        description="Time every available backend and precision side by side on the same inputs, interleaved; report latency, "
        "throughput, speed-up against PyTorch fp32 eager and agreement with it. Without --checkpoint an untrained 2-class "
        "ResNet50 is built and exported on the fly (latency does not depend on the weights). Model files are untrusted input: "
        "bench only files you exported.",
        epilog="example: pawlens-bench --checkpoint runs/train/best/best.pt --images ../shared/data/catsdogs --batch-sizes 1,8",
    )
    g = p.add_argument_group("what to time")
    g.add_argument("--checkpoint", nargs="+", default=None, metavar="CKPT",
                   help="pawlens checkpoint(s); the first is the main one, the others are compared beside it (each with the --models "
                   "exported from it: accuracy against latency in pareto.png); if unset: the embedded untrained ResNet50")
    g.add_argument("--models", nargs="+", default=[], metavar="FILE", help=".onnx / .engine files; if unset: export fp32 + INT8 now")
    g.add_argument("--latency-reference", default="resnet50", metavar="ARCH|none",
                   help="also time an untrained ARCH in PyTorch fp32 eager, for latency ratios across architectures")
    g.add_argument("--backends", default=None, help="comma list to restrict to: torch,ort,openvino,trt; if unset: all installed")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CPU rows, plus CUDA rows on a GPU")
    g.add_argument("--images", default=None, help="real photos for agreement, accuracy and INT8 calibration: a folder, or a run's "
                   "split.json (its test photos); if unset: synthetic")
    g.add_argument("--n-images", type=int, default=32, help="agreement images (as many again for calibration)")
    g = p.add_argument_group("how")
    g.add_argument("--batch-sizes", default="1,8", help="comma-separated batch sizes")
    g.add_argument("--iters", type=int, default=20, help="timed calls per row and batch")
    g.add_argument("--warmup", type=int, default=3, help="untimed calls per row and batch")
    g.add_argument("--threads", type=int, default=None, help="CPU threads per backend; if unset: each backend's own, all cores")
    g.add_argument("--isolation", default="process", choices=("process", "inline"), help="one worker process per row, or all inline")
    g.add_argument("--round-iters", type=int, default=2, help="timed calls per row per interleaving round")
    g.add_argument("--allow-spinning", action="store_true", help="let ONNX Runtime / OpenMP threads spin (off by default, as in the runners)")
    g.add_argument("--no-cam", action="store_true", help="skip the Grad-CAM and overhead measurements")
    g.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                   help="also time PyTorch through torch.compile (Inductor, frozen weights; compiles once per batch size in the "
                   "warm-up). auto: where a C++ compiler is found")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="output folder; if unset: runs/bench/NAME, numbered if it exists")
    g.add_argument("--name", default=None, help="NAME for the default output folder; if unset: ARCH-default or the checkpoint's stem")
    g.add_argument("--keep-models", action="store_true", help="keep the exported files in OUT/models")
    g.add_argument("--debug", action="store_true", help="show tracebacks")
    g.add_argument("-v", "--verbose", action="store_true", help="more log output")
    return p


def _parse_ints(s: str, flag: str) -> list[int]:
    try:
        v = [int(x) for x in str(s).split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{flag} {s!r}: expected comma-separated integers, e.g. 1,8,32") from None
    if not v or min(v) < 1:
        raise InputError(f"{flag} {s!r}: expected positive integers")
    return v


def _main(argv: Sequence[str] | None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads}: must be >= 1 (leave it unset for each backend's default)")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()] if args.backends else None
    ckpts = args.checkpoint or [None]
    res = run_bench(ckpts[0], args.models, checkpoints=ckpts[1:],
                    latency_reference=None if str(args.latency_reference).lower() == "none" else args.latency_reference,
                    batch_sizes=_parse_ints(args.batch_sizes, "--batch-sizes"), iters=args.iters,
                    warmup=args.warmup, threads=args.threads, out=args.out, name=args.name, images=args.images, n_images=args.n_images,
                    backends=backends, device=args.device, isolation=args.isolation, round_iters=args.round_iters, cam=not args.no_cam,
                    spinning=args.allow_spinning, keep_models=args.keep_models, compile=args.compile)
    print(to_markdown(res))
    print(f"wrote {', '.join(res.files.values())}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pawlens-bench``."""
    return run_cli(_main, argv, prog="pawlens-bench")


if __name__ == "__main__":
    sys.exit(main())
