"""The Runner contract (after Polygraphy's ``BaseRunner``).

    with OrtRunner("model.onnx") as r:          # activate() ... deactivate()
        logits = r.infer(batch)                  # (N, 3, S, S) float32 -> (N, C) float32
        r.last_inference_time()                  # seconds, of the last infer()
        r.describe()                             # backend, device, precision, providers, ...

Subclasses implement ``activate_impl``, ``infer_impl``, ``deactivate_impl``, ``input_spec`` and
``describe_impl``.  The base class guards the state, checks the input against the model's
expected shape and dtype, splits a batch larger than ``InputSpec.max_batch`` into chunks, and
records the inference time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pawlens.errors import BackendUnavailable, InputError, PawlensError, RunnerError  # noqa: F401  (RunnerError: re-exported)


@dataclass(frozen=True)
class InputSpec:
    """Expected input: name, shape (``None`` for a dynamic dimension), dtype, and max batch if bounded."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    max_batch: int | None = None


class Runner:
    """Base class of every backend.  Not thread-safe: use one runner per thread."""

    backend = "base"

    def __init__(self, name: str | None = None):
        self.name = name or self.backend
        self.is_active = False
        self.inference_time: float | None = None
        self.meta = None  # models.artifact.ArtifactMeta, set by subclasses that know it

    @classmethod
    def for_file(cls, path: str, *, ckpt=None, meta=None, threads: int | None = None, spinning: bool = False,
                 compile: bool = False, channels_last: bool | None = None, name: str | None = None, batch: int = 1,
                 **kw) -> "Runner":
        """The one way the factory and export's gate build any backend's runner (the formats table names the class):
        each backend takes the settings that apply to it and leaves the others.  ``batch``: the batch size the caller
        will mostly run (OpenVINO compiles it at activation).  ``kw``: the plan's own keywords (device, precision...)."""
        raise NotImplementedError

    # -- public API -------------------------------------------------------------------------
    def activate(self) -> "Runner":
        if self.is_active:
            raise RunnerError(f"[{self.name}] already active; deactivate() first")
        self.activate_impl()
        self.is_active = True
        return self

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if not self.is_active:
            raise RunnerError(f"[{self.name}] must be activated prior to calling infer()")
        batch = self._check_input(batch)
        max_batch = self.input_spec().max_batch
        t0 = time.perf_counter()
        if max_batch and batch.shape[0] > max_batch:  # e.g. a TensorRT profile: run it in chunks
            out = np.concatenate([self.infer_impl(batch[i : i + max_batch]) for i in range(0, batch.shape[0], max_batch)])
        else:
            out = self.infer_impl(batch)
        self.inference_time = time.perf_counter() - t0
        if not isinstance(out, np.ndarray) or out.ndim != 2 or out.shape[0] != batch.shape[0] or out.shape[1] < 1:
            got = tuple(out.shape) if isinstance(out, np.ndarray) else type(out).__name__
            raise RunnerError(f"[{self.name}] the model returned {got} for a batch of {batch.shape[0]}, expected (N, C) logits; "
                              "the file is damaged or was not made by pawlens-export")
        return out

    def deactivate(self) -> None:
        if not self.is_active:
            return
        try:
            self.deactivate_impl()
        finally:
            self.is_active = False

    def last_inference_time(self) -> float | None:
        return self.inference_time

    def describe(self) -> dict[str, Any]:
        d = {"backend": self.backend, "name": self.name}
        d.update(self.describe_impl())
        return d

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.deactivate()

    def __del__(self):
        try:
            if getattr(self, "is_active", False):
                self.deactivate()
        except Exception:
            pass

    # -- hooks ------------------------------------------------------------------------------
    def activate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        pass

    def input_spec(self) -> InputSpec:
        raise NotImplementedError

    def describe_impl(self) -> dict[str, Any]:
        return {}

    # -- helpers ----------------------------------------------------------------------------
    def _check_input(self, batch: np.ndarray) -> np.ndarray:
        spec = self.input_spec()
        if not isinstance(batch, np.ndarray):
            raise InputError(f"[{self.name}] infer() takes a NumPy array, got {type(batch).__name__}")
        if batch.dtype != np.dtype(spec.dtype):
            raise InputError(f"[{self.name}] input dtype {batch.dtype} != expected {spec.dtype}")
        if batch.ndim != len(spec.shape) or any(e is not None and e != g for e, g in zip(spec.shape, batch.shape)):
            want = "x".join("N" if e is None else str(e) for e in spec.shape)
            raise InputError(f"[{self.name}] input shape {tuple(batch.shape)} does not match the model's {want}")
        if batch.shape[0] < 1:
            raise InputError(f"[{self.name}] empty batch")
        return np.ascontiguousarray(batch)


def lazy_import(module: str, extra: str, what: str | None = None):
    """Import an optional backend library or raise BackendUnavailable naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailable(
            f"{what or module} is not installed ({e.name or module}); install it with: pip install -e '.[{extra}]'"
        ) from None
