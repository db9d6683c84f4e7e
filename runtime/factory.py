"""make_runner(path): the right backend for a model file, configured from the file's own metadata.

    runner = make_runner("best.pt")                            # TorchRunner
    runner = make_runner("model.onnx")                         # ONNX Runtime or OpenVINO (see below)
    runner = make_runner("model.fp16.engine")                  # TrtRunner (+ model.fp16.engine.json)
    runner = make_runner("model.onnx", backend="openvino", precision="bf16")
    pred = make_predictor("model.int8.onnx")                   # Predictor(make_runner(...))

Nothing heavy happens here: the runner loads its library and the model in ``activate()``.  The class
names and preprocessing come from the artifact (checkpoint dict, ONNX ``metadata_props``, engine
sidecar) and are on ``runner.meta`` before activation.

``backend="auto"`` picks, for the given file and device, the fastest backend that stays inside the
artifact's own parity gate (it never lowers the precision: no bf16 for an fp32 artifact unless
``precision="bf16"`` is asked for):

the order is the formats table's (:mod:`pawlens.runtime.formats`): a ``.pt`` on torch in plain NCHW, an ONNX
file on OpenVINO on the CPU (else onnxruntime) and on onnxruntime's CUDA EP on a GPU, an ``.engine`` on TensorRT;
``precision="bf16"`` for an fp32 ONNX means OpenVINO with INFERENCE_PRECISION_HINT=bf16 (only when asked for).

That order is a static rule, measured on one CPU.  Where ``pawlens tune FILE`` has measured the file on this
machine (:mod:`pawlens.runtime.tuned`: same file, CPU, batch size and library versions), ``auto`` on the CPU with no
``precision`` asked for runs the stored winner instead (its backend, precision hint, memory layout and threads;
``plan.reason`` says so and when it was measured).  ``plan_runner(..., tuned=False)`` gives the static rule.

Model files from elsewhere are untrusted input (ONNX graphs and TensorRT engines are parsed by native
code; engines must never be deserialized from an untrusted source): load only files you or
pawlens-export made.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from pawlens.errors import ArtifactError, BackendUnavailable, InputError
from pawlens.models.artifact import ArtifactMeta
from pawlens.models.preprocess import PreprocessConfig

from . import formats
from .base import Runner
from .formats import CHECKPOINT, ENGINE
from .ort_runner import cuda_visible

BACKENDS = ("auto", *formats.BACKENDS)
DEVICES = ("auto", "cpu", "cuda")
SUFFIXES = formats.KINDS


def file_kind(path: str | os.PathLike) -> str:
    """The model file's suffix (``.pt``, ``.onnx``, ``.engine``), or ArtifactError listing the supported types."""
    p = os.fspath(path)
    try:
        p.encode("utf-8")
    except UnicodeEncodeError:  # onnxruntime / OpenVINO / TensorRT take UTF-8 paths only
        from pawlens.fs import printable

        raise ArtifactError(f"{printable(p)}: the model file's name is not valid UTF-8; rename it") from None
    if os.path.isdir(p):
        raise ArtifactError(f"{p}: is a folder; pass a model file ({', '.join(SUFFIXES)})")
    if not os.path.exists(p):
        raise ArtifactError(f"{p}: model file not found; check the path ({', '.join(SUFFIXES)})")
    ext = os.path.splitext(p)[1].lower()
    ext = formats.ALIASES.get(ext, ext)
    if ext not in SUFFIXES:
        kinds = ", ".join(f"{k} ({v})" for k, v in SUFFIXES.items())
        raise ArtifactError(f"{p}: unknown model file type {ext or '(no suffix)'!r}; supported: {kinds}")
    return ext


def backend_installed(backend: str) -> bool:
    """Whether the backend's library can be imported (checked without importing it)."""
    if backend == "torch":
        return True
    mod = formats.BACKENDS[backend].module
    try:
        return importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        return False


def _ort_has_cuda() -> bool:
    if not backend_installed("ort"):
        return False
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@dataclass
class Plan:
    """What make_runner will build: a backend, its keyword arguments, and why.

    ``threads`` is a tuned thread count (``None``: the caller's or the backend's default); ``source`` is ``static`` (the
    formats table's rule, or what was asked for) or ``tuned`` (the stored winner of ``pawlens tune``).
    """

    backend: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    threads: int | None = None
    source: str = "static"

    def make_kwargs(self) -> dict[str, Any]:
        """The ``make_runner`` keyword arguments that rebuild this plan with its backend named (threads apart: ``threads``).

        ``kwargs`` are the runner class's own; ``make_runner``'s ``precision`` names the artifact's precision or bf16, so
        OpenVINO's default f32 hint is left out (``precision="fp32"`` would be refused for an INT8 file)."""
        kw = dict(self.kwargs)
        if self.backend == "openvino" and kw.get("precision") != "bf16":
            kw.pop("precision", None)
        return {"backend": self.backend, **kw}


STATIC_NOTE = "(static rule; `pawlens tune {path}` measures this machine)"


def plan_runner(path: str | os.PathLike, *, backend: str = "auto", device: str = "auto", precision: str | None = None,
                meta: ArtifactMeta | None = None, tuned: bool = True, batch: int = 1) -> Plan:
    """Decide the backend and its settings for ``path`` without building anything heavy.

    With ``backend="auto"``, no ``precision`` and a CPU device (``cpu``, or ``auto`` on a machine without CUDA), the
    winner ``pawlens tune`` stored for this file, this machine and batch size ``batch`` is returned when there is one
    and ``tuned`` is true; otherwise the static rule, whose reason ends with how to measure instead.
    """
    plan = _static_plan(path, backend=backend, device=device, precision=precision, meta=meta)
    if backend != "auto" or precision is not None or not _on_cpu(plan):
        return plan
    if tuned:
        hit = _tuned_plan(os.fspath(path), batch)
        if hit is not None:
            return hit
    plan.reason = f"{plan.reason} {STATIC_NOTE.format(path=os.fspath(path))}"
    return plan


def _on_cpu(plan: Plan) -> bool:
    return plan.backend == "openvino" or (plan.backend in ("torch", "ort") and plan.kwargs.get("device") == "cpu")


def _tuned_plan(path: str, batch: int) -> Plan | None:
    """The stored winner as a Plan, or None (none stored, or its backend cannot load this file here any more)."""
    from . import tuned as tuned_store

    entry = tuned_store.lookup(path, batch)
    if entry is None:
        return None
    cfg = entry["config"]
    if cfg["backend"] not in formats.backends_for(file_kind(path)) or not backend_installed(cfg["backend"]):
        return None
    return Plan(cfg["backend"], tuned_store.runner_kwargs(cfg), tuned_store.reason(entry), threads=cfg["threads"], source="tuned")


def _static_plan(path: str | os.PathLike, *, backend: str, device: str, precision: str | None, meta: ArtifactMeta | None) -> Plan:
    """The plan without the tune cache: what was asked for, or the formats table's auto rule."""
    p = os.fspath(path)
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise InputError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
    ext = file_kind(p)
    allowed = formats.backends_for(ext)
    if backend != "auto" and backend not in allowed:
        hint = " (export it to ONNX / TensorRT with pawlens-export first)" if ext == CHECKPOINT else ""
        raise InputError(f"--backend {backend} cannot load a {ext} file ({SUFFIXES[ext]}); choose auto or {' / '.join(allowed)}{hint}")
    cuda_dev = str(device).startswith("cuda")

    if ext == CHECKPOINT:
        prec = precision or "fp32"
        dev = device
        if dev == "auto":
            dev = "cuda" if cuda_visible() else "cpu"
        cl = prec.startswith("bf16")  # plain NCHW for fp32: see formats.auto_choice
        return Plan("torch", {"device": dev, "precision": prec, "channels_last": cl}, "PyTorch checkpoint")

    if ext == ENGINE:
        if precision not in (None, "fp16", "fp32", "int8") or (precision and meta is not None and precision != meta.precision):
            raise InputError(f"--precision {precision} does not apply to a TensorRT engine: its precision was fixed when it was built")
        if device == "cpu":
            raise InputError(f"{p}: a TensorRT engine runs on a CUDA GPU only; drop --device cpu or use the .onnx file")
        return Plan("trt", {"device": "cuda" if device == "auto" else device}, "TensorRT engine")

    # .onnx
    art_prec = meta.precision if meta is not None else "fp32"
    if precision not in (None, art_prec, "bf16"):
        raise InputError(
            f"--precision {precision} does not match {os.path.basename(p)} (a {art_prec} model); "
            "pick the file exported in that precision, or use --precision bf16 with --backend openvino"
        )
    want_bf16 = precision == "bf16" and art_prec != "bf16"
    if backend == "ort":
        if want_bf16:
            raise InputError("onnxruntime has no bf16 mode for an fp32 model; use --backend openvino --precision bf16")
        return Plan("ort", {"device": device}, "asked for")
    if backend == "openvino":
        if cuda_dev:
            raise InputError("--backend openvino runs on the CPU here; use --backend ort (CUDA EP) or trt for --device cuda")
        return Plan("openvino", {"precision": "bf16" if want_bf16 else "fp32"}, "asked for")
    # auto
    if want_bf16:
        if not backend_installed("openvino"):
            raise BackendUnavailable("bf16 for an ONNX model needs OpenVINO; install it with: pip install -e '.[openvino]'")
        return Plan("openvino", {"precision": "bf16"}, "bf16 asked for: OpenVINO INFERENCE_PRECISION_HINT=bf16")
    cuda = cuda_dev or (device == "auto" and cuda_visible() and _ort_has_cuda())
    installed = [b for b in formats.BACKENDS if backend_installed(b)]
    choice = formats.auto_choice(ext, art_prec, cuda=cuda, installed=installed)
    if choice is None:
        raise BackendUnavailable(
            "no ONNX backend is installed; install one with: pip install -e '.[cpu]' (onnxruntime) or -e '.[openvino]'"
        )
    name, kw, reason = choice
    if name == "ort" and cuda_dev:
        kw = {**kw, "device": device}
    return Plan(name, kw, reason)


def read_meta(path: str | os.PathLike, *, class_names: Sequence[str] | None = None) -> ArtifactMeta | None:
    """The artifact metadata of a model file (``None`` for a bare ONNX without pawlens metadata and no class names)."""
    p = os.fspath(path)
    ext = file_kind(p)
    if ext == CHECKPOINT:
        from pawlens.models.checkpoint import load_checkpoint

        return ArtifactMeta.from_checkpoint(load_checkpoint(p))
    if ext == ENGINE:
        from .trt_runner import meta_from_sidecar, read_sidecar

        return meta_from_sidecar(read_sidecar(p), path=p)
    from .onnx_meta import read_onnx_meta

    meta = read_onnx_meta(p, require=not class_names)
    if meta is None:
        from .onnx_meta import check_output_classes

        check_output_classes(p, class_names)
        meta = ArtifactMeta(class_names=list(class_names), preprocess=PreprocessConfig())
    return meta


def make_runner(path: str | os.PathLike, *, backend: str = "auto", device: str = "auto", precision: str | None = None,
                threads: int | None = None, channels_last: bool | None = None, compile: bool = False,
                class_names: Sequence[str] | None = None, spinning: bool = False, name: str | None = None,
                tuned: bool = True, batch: int = 1) -> Runner:
    """Build (not activate) the runner for a model file.

    Args:
        path: ``.pt`` checkpoint, ``.onnx`` model or ``.engine`` TensorRT engine.
        backend: one of :data:`BACKENDS`; ``auto`` picks from the file (see the module docstring).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``None`` (the artifact's own), or ``fp32``/``bf16``/``bf16-autocast``/``fp16`` for a
            checkpoint, ``bf16`` for an fp32 ONNX on OpenVINO.
        threads: CPU threads for the backend (``None``: a tuned plan's count, else the backend's default).
        channels_last: torch only; ``None`` decides as :func:`plan_runner` does.
        compile: torch only; run the checkpoint through ``torch.compile`` (see :class:`TorchRunner`).
        class_names: for an ONNX file without pawlens metadata (default preprocessing: 224 px, ImageNet mean/std).
        spinning: ONNX Runtime only: let its thread pools spin between calls (off, as everywhere in Pawlens, unless a
            benchmark asks for it; the other backends' waiting is set by their environment).
        name: the runner's name in its messages and ``describe()`` (default: the backend's own).
        tuned: ``auto`` may use what ``pawlens tune`` stored for this file and machine (see :func:`plan_runner`).
        batch: the batch size the caller will mostly run, for that lookup (each batch size is tuned on its own), and the
            one an OpenVINO runner compiles at activation.

    Raises:
        ArtifactError: unknown file type, missing/truncated file, missing metadata or sidecar.
        InputError: a backend/device/precision that does not apply to the file.
        BackendUnavailable: the backend's library is not installed (names the pip extra).
    """
    p = os.fspath(path)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"--threads {threads}: must be a whole number >= 1 (leave it unset for the backend's default)")
    ckpt = None
    if file_kind(p) == CHECKPOINT:
        from pawlens.models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(p)  # loaded once: the runner takes the dict
        meta = ArtifactMeta.from_checkpoint(ckpt)
    else:
        meta = read_meta(p, class_names=class_names)
    plan = plan_runner(p, backend=backend, device=device, precision=precision, meta=meta, tuned=tuned, batch=batch)
    if threads is None:
        threads = plan.threads
    if plan.backend != "torch" and not backend_installed(plan.backend):
        b = formats.BACKENDS[plan.backend]
        raise BackendUnavailable(f"--backend {plan.backend} needs {b.module}, which is not installed; install it with: {b.install}")
    if compile and plan.backend != "torch":
        raise InputError(f"--compile applies to a .pt checkpoint (PyTorch); {os.path.basename(p)} runs on {plan.backend}, drop --compile")
    kw = dict(plan.kwargs)
    planned = kw.pop("channels_last", None)
    layout = planned if channels_last is None else channels_last  # the caller's choice wins
    runner: Runner = formats.runner_class(plan.backend).for_file(p, ckpt=ckpt, meta=meta, threads=threads, spinning=spinning,
                                                                 compile=compile, channels_last=layout, name=name, batch=batch,
                                                                 **kw)
    runner.plan_reason = plan.reason
    return runner


def make_predictor(path: str | os.PathLike, **kw):
    """``Predictor(make_runner(path, **kw))``: raw frames in, labels and probabilities out."""
    from .predictor import Predictor

    return Predictor(make_runner(path, **kw))
