"""ONNX Runtime backend: any exported ONNX file (fp32, fp16, int8), CUDA EP when asked, CPU otherwise.

    OrtRunner("model.onnx", device="auto")      # CUDA EP if this onnxruntime offers it, else CPU

ONNX Runtime falls back to the CPU silently when the CUDA EP cannot load (onnxruntime-gpu on a
machine without a GPU prints one ``[E:onnxruntime...]`` line and carries on).  Only
``session.get_providers()`` after the session is made tells the truth, so the runner checks it and
``describe()`` reports ``fallback: True`` (logged once) when CUDA was asked for and CPU is running.

Intra-op spinning is turned off (``session.intra_op.allow_spinning = 0``): on a 2-core machine
spinning workers slow every other runtime in the process by up to 2.5x.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from models.artifact import ArtifactMeta
from models.errors import ArtifactError, InputError

from .base import InputSpec, Runner, lazy_import

LOG = logging.getLogger("pawlens")
_warned_fallback: set[str] = set()


def read_onnx_meta(path: str, *, require: bool = True) -> ArtifactMeta | None:
    """Read the pawlens metadata of an ONNX file (via onnx, without building a session)."""
    onnx = lazy_import("onnx", "export", "onnx")
    _check_file(path)
    try:
        m = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise ArtifactError(f"{path}: not a readable ONNX model ({type(e).__name__}); truncated? re-export it") from None
    props = {p.key: p.value for p in m.metadata_props}
    if not require and not any(k.startswith("pawlens.") for k in props):
        return None
    return ArtifactMeta.from_props(props, path=path)


def _check_file(path: str) -> None:
    if not os.path.isfile(path):
        raise ArtifactError(f"{path}: model file not found")
    if os.path.getsize(path) == 0:
        raise ArtifactError(f"{path}: zero-byte model file; re-export it")


class OrtRunner(Runner):
    backend = "ort"

    def __init__(self, path: str, *, device: str = "cpu", threads: int | None = None, spinning: bool = False,
                 meta: ArtifactMeta | None = None, name: str | None = None):
        self.path = os.fspath(path)
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise InputError(f"unknown device {device!r} for onnxruntime; choose auto, cpu or cuda")
        self.device_requested = device
        self.threads = threads
        self.spinning = spinning
        super().__init__(name or f"ort-{os.path.basename(self.path)}")
        _check_file(self.path)
        self.meta = meta
        self.session = None
        self.providers_requested: list[str] = []
        self.providers_active: list[str] = []

    def activate_impl(self) -> None:
        ort = lazy_import("onnxruntime", "cpu", "onnxruntime")
        so = ort.SessionOptions()
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "1" if self.spinning else "0")
        if self.threads:
            so.intra_op_num_threads = int(self.threads)
        so.log_severity_level = 3
        available = ort.get_available_providers()
        want_cuda = self.device_requested.startswith("cuda") or (
            self.device_requested == "auto" and "CUDAExecutionProvider" in available
        )
        providers: list[Any] = []
        if want_cuda:
            dev_id = int(self.device_requested.split(":")[1]) if ":" in self.device_requested else 0
            providers.append(("CUDAExecutionProvider", {"device_id": dev_id}))
        providers.append("CPUExecutionProvider")
        self.providers_requested = [p if isinstance(p, str) else p[0] for p in providers]
        try:
            self.session = ort.InferenceSession(self.path, sess_options=so, providers=providers)
        except Exception as e:
            msg = " ".join(str(e).split())[:160]
            raise ArtifactError(f"{self.path}: onnxruntime cannot load it ({type(e).__name__}: {msg}); truncated or not ONNX? re-export it") from None
        self.providers_active = list(self.session.get_providers())
        if self.fallback and self.path not in _warned_fallback:
            _warned_fallback.add(self.path)
            LOG.warning("[ort] CUDA was requested for %s but ONNX Runtime is running on CPU (active providers: %s)",
                        os.path.basename(self.path), ", ".join(self.providers_active))
        if self.meta is None:
            props = dict(self.session.get_modelmeta().custom_metadata_map)
            if any(k.startswith("pawlens.") for k in props):
                self.meta = ArtifactMeta.from_props(props, path=self.path)
        inp = self.session.get_inputs()[0]
        self._input_name = inp.name
        self._output_name = self.session.get_outputs()[0].name
        shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        dtype = {"tensor(float)": "float32", "tensor(float16)": "float16"}.get(inp.type, "float32")
        self._spec = InputSpec(inp.name, shape, dtype)

    @property
    def fallback(self) -> bool:
        return "CUDAExecutionProvider" in self.providers_requested and "CUDAExecutionProvider" not in self.providers_active

    def input_spec(self) -> InputSpec:
        return self._spec

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run([self._output_name], {self._input_name: batch})[0]
        return np.asarray(out, dtype=np.float32)

    def deactivate_impl(self) -> None:
        self.session = None

    def describe_impl(self) -> dict[str, Any]:
        active = self.providers_active
        device = "cuda" if active and active[0] == "CUDAExecutionProvider" else "cpu"
        return {
            "device": device,
            "precision": self.meta.precision if self.meta else "unknown",
            "providers_requested": self.providers_requested,
            "providers": active,
            "fallback": self.fallback,
            "path": self.path,
        }
