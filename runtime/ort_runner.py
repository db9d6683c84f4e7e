"""ONNX Runtime backend: any exported ONNX file (fp32, fp16, int8), CUDA EP when asked, CPU otherwise.

    OrtRunner("model.onnx", device="cpu")       # CPU EP
    OrtRunner("model.onnx", device="cuda")      # CUDA EP (+ CPU for what it lacks), IO binding
    OrtRunner("model.onnx", device="auto")      # CUDA when this onnxruntime offers it and a GPU is visible

ONNX Runtime falls back to the CPU silently when the CUDA EP cannot load (onnxruntime-gpu on a
machine without a GPU prints one ``[E:onnxruntime...]`` line and carries on).  Only
``session.get_providers()`` after the session is made tells the truth, so the runner checks it and
``describe()`` reports ``fallback: True`` (logged once per file) when CUDA was asked for and the CPU
is running.  ``device="auto"`` asks for CUDA only when a CUDA device is visible, so it does not
trigger that fall-back on a CPU-only machine.

Intra-op spinning is turned off (``session.intra_op.allow_spinning = 0``): idle workers that spin take the cores
from every other runtime in the process, which on a machine with few cores slows them by a large factor.

On CUDA the input is copied to the device once and the output is bound on the device (IO binding).
An FP16 ONNX file with float16 inputs still takes float32 batches (cast here).

ONNX files from elsewhere are untrusted input: onnxruntime parses the whole graph; load only files
you or pawlens-export made.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from pawlens.errors import ArtifactError, InputError
from pawlens.models.artifact import ArtifactMeta

from .base import InputSpec, Runner, lazy_import
from .onnx_meta import check_graph_io, read_onnx_meta, run_error

LOG = logging.getLogger("pawlens")
_warned_fallback: set[str] = set()
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}


def _ort_shape(shape) -> tuple[int | None, ...] | None:
    """onnxruntime's shape (ints, symbolic strings or None) -> a tuple with None for what is not fixed."""
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) and not isinstance(d, bool) else None for d in shape)


def _check_file(path: str) -> None:
    if not os.path.isfile(path):
        raise ArtifactError(f"{path}: model file not found")
    if os.path.getsize(path) == 0:
        raise ArtifactError(f"{path}: zero-byte model file; re-export it with pawlens-export")


def session_options(ort, *, threads: int | None, spinning: bool):
    """The runner's ``SessionOptions``: intra/inter-op spinning on or off, ``threads`` intra-op threads (``None``: one per
    core), warnings off.  The bench's bare-session peer loop makes its session with the same options."""
    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    if threads:
        so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3
    return so


def cuda_visible() -> bool:
    """True when a CUDA device is visible (asked of torch, a core dependency; no CUDA context is made)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch always importable in this product
        return False


class OrtRunner(Runner):
    """ONNX Runtime inference session on CPU or CUDA.

    Args:
        path: an ``.onnx`` file (fp32, fp16 or INT8 QDQ).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        threads: intra-op threads (``None``: ONNX Runtime's default, one per core).
        spinning: allow intra/inter-op spinning (off by default; see the module docstring).
        meta: artifact metadata; read from the file when ``None``.
        io_binding: bind input and output on the session's device (``None``: on CUDA only).
    """

    backend = "ort"

    @classmethod
    def for_file(cls, path, *, ckpt=None, meta=None, threads=None, spinning=False, compile=False, channels_last=None, name=None,
                 batch=1, **kw):
        return cls(path, threads=threads, meta=meta, spinning=spinning, name=name, **kw)

    def __init__(self, path: str, *, device: str = "cpu", threads: int | None = None, spinning: bool = False,
                 meta: ArtifactMeta | None = None, io_binding: bool | None = None, name: str | None = None):
        self.path = os.fspath(path)
        if device not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda:"):
            raise InputError(f"unknown device {device!r} for onnxruntime; choose auto, cpu or cuda")
        self.device_requested = device
        self.threads = threads
        self.spinning = spinning
        self.io_binding = io_binding
        super().__init__(name or f"ort-{os.path.basename(self.path)}")
        _check_file(self.path)
        self.meta = meta if meta is not None else read_onnx_meta(self.path, require=False)
        self.session = None
        self.providers_requested: list[str] = []
        self.providers_active: list[str] = []
        self._binding = None
        self._bind_device = "cpu"
        self._device_id = 0
        self._model_dtype = np.float32

    def activate_impl(self) -> None:
        ort = lazy_import("onnxruntime", "cpu", "onnxruntime")
        so = session_options(ort, threads=self.threads, spinning=self.spinning)
        available = ort.get_available_providers()
        if self.device_requested == "auto":
            want_cuda = "CUDAExecutionProvider" in available and cuda_visible()
        else:
            want_cuda = str(self.device_requested).startswith("cuda")
        providers: list[Any] = []
        if want_cuda:
            dev_id = int(str(self.device_requested).split(":")[1]) if ":" in str(self.device_requested) else 0
            providers.append(("CUDAExecutionProvider", {"device_id": dev_id}))
        providers.append("CPUExecutionProvider")
        self.providers_requested = [p if isinstance(p, str) else p[0] for p in providers]
        self._device_id = providers[0][1]["device_id"] if want_cuda else 0
        try:
            self.session = ort.InferenceSession(self.path, sess_options=so, providers=providers)
        except Exception as e:
            msg = " ".join(str(e).split())[:160]
            raise ArtifactError(
                f"{self.path}: onnxruntime cannot load it ({type(e).__name__}: {msg}); truncated or not ONNX? re-export it"
            ) from None
        self.providers_active = list(self.session.get_providers())
        if self.fallback and self.path not in _warned_fallback:
            _warned_fallback.add(self.path)
            LOG.warning("[ort] CUDA was requested for %s but ONNX Runtime is running on CPU (active providers: %s)",
                        os.path.basename(self.path), ", ".join(self.providers_active))
        if self.meta is None:
            props = dict(self.session.get_modelmeta().custom_metadata_map)
            if any(k.startswith("pawlens.") for k in props):
                self.meta = ArtifactMeta.from_props(props, path=self.path)
        def io(args):
            return [(a.name, _ort_shape(a.shape), _ORT_TYPES.get(a.type, a.type.removeprefix("tensor(").rstrip(")"))) for a in args]

        check_graph_io(self.path, io(self.session.get_inputs()), io(self.session.get_outputs()), self.meta, backend="onnxruntime")
        inp = self.session.get_inputs()[0]
        self._input_name = inp.name
        self._output_name = self.session.get_outputs()[0].name
        shape = _ort_shape(inp.shape)
        self._model_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self._spec = InputSpec(inp.name, shape, "float32")
        use_binding = self.on_cuda if self.io_binding is None else bool(self.io_binding)
        self._bind_device = "cuda" if self.on_cuda else "cpu"
        self._binding = self.session.io_binding() if use_binding else None

    @property
    def fallback(self) -> bool:
        """CUDA was requested but the session runs on the CPU."""
        return "CUDAExecutionProvider" in self.providers_requested and "CUDAExecutionProvider" not in self.providers_active

    @property
    def on_cuda(self) -> bool:
        return bool(self.providers_active) and self.providers_active[0] == "CUDAExecutionProvider"

    def input_spec(self) -> InputSpec:
        return self._spec

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self._run(batch)
        except Exception as e:  # onnxruntime's RuntimeException/Fail: the graph failed at run time (e.g. a huge ConstantOfShape)
            raise run_error(self.path, "onnxruntime", e) from None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._model_dtype is not np.float32:
            batch = batch.astype(self._model_dtype)
        if self._binding is None:
            out = self.session.run([self._output_name], {self._input_name: batch})[0]
            return np.asarray(out, dtype=np.float32)
        import onnxruntime as ort

        b = self._binding
        b.clear_binding_inputs()
        b.clear_binding_outputs()
        b.bind_ortvalue_input(self._input_name, ort.OrtValue.ortvalue_from_numpy(batch, self._bind_device, self._device_id))
        b.bind_output(self._output_name, self._bind_device, self._device_id)
        self.session.run_with_iobinding(b)
        return np.asarray(b.copy_outputs_to_cpu()[0], dtype=np.float32)

    def deactivate_impl(self) -> None:
        self._binding = None
        self.session = None

    def describe_impl(self) -> dict[str, Any]:
        active = self.providers_active
        return {
            "device": "cuda" if self.on_cuda else ("cpu" if active else str(self.device_requested)),
            "precision": self.meta.precision if self.meta else "unknown",
            "providers_requested": self.providers_requested,
            "providers": active,
            "fallback": self.fallback,
            "io_binding": self._binding is not None,
            "threads": self.threads,
            "spinning": self.spinning,
            "path": self.path,
        }
