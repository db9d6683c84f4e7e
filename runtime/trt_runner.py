"""TensorRT backend: a serialized engine plus its JSON sidecar, run with torch CUDA buffers.

    TrtRunner("runs/export/x/model.fp16.engine")       # reads model.fp16.engine.json next to it

The sidecar (written by ``export/tensorrt.py``) holds the artifact metadata (class names,
preprocessing, precision, ...) and what the engine is tied to: ``tensorrt_version``, ``gpu_name``,
``compute_capability``, the optimisation ``profile`` (min/opt/max input shapes) and the engine's
``engine_sha256``.  Before deserializing anything the runner checks, each with a one-line error:

* the engine file exists, is not empty and matches ``engine_sha256`` (a replaced or truncated file),
* the TensorRT version (major.minor.patch) of this runtime equals the one that built it, and
* this GPU's name and compute capability equal the builder's,

and says "rebuild it with pawlens-export" when one differs.  A batch larger than the profile's
maximum is split into chunks of at most that size; a batch below the minimum is refused.

Inference: ``execute_async_v3`` on a torch CUDA stream, with the input, output and stream pointers
taken from torch CUDA tensors (``data_ptr()``, ``cuda_stream``), so no pycuda is needed.

Engines are untrusted input: NVIDIA warns never to deserialize an engine from a source you do not
trust (deserialization runs code paths not hardened against malicious files).  Load only engines
built by you with pawlens-export.

TensorRT is not pip-installable everywhere (the PyPI packages fetch the real wheels from NVIDIA's
index); install it with NVIDIA's instructions on a machine with a CUDA GPU.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from pawlens.errors import ArtifactError, BackendUnavailable, InputError
from pawlens.models.artifact import ArtifactMeta

from .base import InputSpec, Runner, lazy_import
from .formats import sidecar_path  # the engine's sidecar, named by the formats table (also imported from here)

REBUILD = "rebuild it with pawlens-export"
#: The largest batch an engine profile may declare (the runner sizes its device buffers by the profile's max).
MAX_PROFILE_BATCH = 4096




def read_sidecar(engine_path: str) -> dict[str, Any]:
    """Load and check the JSON sidecar of an engine; raise ArtifactError with one line if unusable."""
    p = sidecar_path(engine_path)
    if not os.path.isfile(p):
        raise ArtifactError(f"{engine_path}: its sidecar {os.path.basename(p)} is missing (class names, preprocessing, build info); {REBUILD}")
    try:
        with open(p, encoding="utf-8") as f:
            side = json.load(f)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{p}: unreadable sidecar ({type(e).__name__}); {REBUILD}") from None
    if not isinstance(side, dict):
        raise ArtifactError(f"{p}: the sidecar is not a JSON object; {REBUILD}")
    missing = [k for k in ("class_names", "preprocess", "tensorrt_version", "profile") if k not in side]
    if missing:
        raise ArtifactError(f"{p}: the sidecar lacks {', '.join(missing)}; {REBUILD}")
    prof = side["profile"]
    try:
        for k in ("min", "opt", "max"):
            shape = prof[k]
            if len(shape) != 4 or any(isinstance(x, bool) or not isinstance(x, int) for x in shape):
                raise ValueError(k)
            if not (1 <= shape[0] <= MAX_PROFILE_BATCH and shape[1] == 3 and shape[2] == shape[3]):  # buffers are sized by these
                raise ValueError(k)
        if not int(prof["min"][0]) <= int(prof["opt"][0]) <= int(prof["max"][0]):
            raise ValueError("order")
    except (KeyError, TypeError, ValueError):
        raise ArtifactError(f"{p}: the sidecar's profile must be {{min, opt, max}} shapes [N, 3, S, S] "
                            f"(whole numbers, N 1..{MAX_PROFILE_BATCH}); {REBUILD}") from None
    return side


def meta_from_sidecar(side: dict[str, Any], *, path: str = "<engine>") -> ArtifactMeta:
    extra = {k: side[k] for k in ("tensorrt_version", "gpu_name", "compute_capability", "profile", "build_mode") if k in side}
    meta = ArtifactMeta.from_plain({**side, "extra": extra}, path=path, default_precision="fp16", fix=REBUILD)
    try:
        size = int(side["profile"]["max"][2])
    except (KeyError, IndexError, TypeError, ValueError):
        size = None  # read_sidecar reports a damaged profile
    if size is not None and size != meta.preprocess.input_size:
        raise ArtifactError(f"{path}: the sidecar's profile is for {size} px images but its preprocessing resizes to "
                            f"{meta.preprocess.input_size} px (mismatched metadata); {REBUILD}")
    return meta


def _version_key(v: str) -> tuple[int, ...]:
    """Major.minor.patch as ints (a build number after them is ignored)."""
    parts = []
    for x in str(v).split(".")[:3]:
        digits = "".join(ch for ch in x if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_engine_compat(side: dict[str, Any], *, trt_version: str, gpu_name: str | None, compute_capability: str | None,
                        path: str = "<engine>") -> None:
    """Refuse an engine built by another TensorRT version or for another GPU (one line, names the fix)."""
    built = str(side.get("tensorrt_version", "?"))
    if _version_key(built) != _version_key(trt_version):
        raise ArtifactError(f"{path}: engine built with TensorRT {built}, this runtime is TensorRT {trt_version}; {REBUILD}")
    want_cc = side.get("compute_capability")
    if want_cc and compute_capability and str(want_cc) != str(compute_capability):
        raise ArtifactError(
            f"{path}: engine built for a GPU of compute capability {want_cc} ({side.get('gpu_name', '?')}), "
            f"this GPU is {compute_capability} ({gpu_name}); {REBUILD}"
        )
    want_gpu = side.get("gpu_name")
    if want_gpu and gpu_name and str(want_gpu) != str(gpu_name):
        raise ArtifactError(f"{path}: engine built on {want_gpu}, this GPU is {gpu_name}; {REBUILD}")


class TrtRunner(Runner):
    """TensorRT engine runner (CUDA only).

    Args:
        path: the ``.engine`` file; its sidecar ``<path>.json`` must sit next to it.
        device: ``cuda``, ``cuda:N`` or ``auto``.
        verify_sha256: check the engine file against the sidecar's ``engine_sha256`` (default on).
    """

    backend = "trt"

    @classmethod
    def for_file(cls, path, *, ckpt=None, meta=None, threads=None, spinning=False, compile=False, channels_last=None, name=None,
                 batch=1, **kw):
        return cls(path, name=name, **kw)

    def __init__(self, path: str, *, device: str = "cuda", verify_sha256: bool = True, name: str | None = None):
        self.path = os.fspath(path)
        if device not in ("auto", "cuda") and not str(device).startswith("cuda:"):
            raise InputError(f"--device {device} is not possible for a TensorRT engine; it needs a CUDA GPU (use --device cuda)")
        self.device = "cuda" if device == "auto" else device
        super().__init__(name or f"trt-{os.path.basename(self.path)}")
        if not os.path.isfile(self.path):
            raise ArtifactError(f"{self.path}: engine file not found")
        if os.path.getsize(self.path) == 0:
            raise ArtifactError(f"{self.path}: zero-byte engine file; {REBUILD}")
        self.sidecar = read_sidecar(self.path)
        self.meta = meta_from_sidecar(self.sidecar, path=self.path)
        self.verify_sha256 = verify_sha256
        prof = self.sidecar["profile"]
        self.min_batch, self.opt_batch, self.max_batch = (int(prof[k][0]) for k in ("min", "opt", "max"))
        self._size = int(prof["max"][2])
        self.engine = self.context = self._stream = None
        self._trt_version = None
        self._gpu = None

    # -- lifecycle --------------------------------------------------------------------------
    def activate_impl(self) -> None:
        trt = lazy_import("tensorrt", "gpu", "TensorRT (install it with NVIDIA's instructions: pip install tensorrt)")
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable(f"[trt] {os.path.basename(self.path)}: TensorRT needs a CUDA GPU and torch sees none")
        dev = torch.device(self.device)
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        self._gpu = props.name
        cc = f"{props.major}.{props.minor}"
        self._trt_version = str(trt.__version__)
        check_engine_compat(self.sidecar, trt_version=self._trt_version, gpu_name=props.name, compute_capability=cc, path=self.path)
        if self.verify_sha256 and self.sidecar.get("engine_sha256"):
            from pawlens.fs import sha256_file

            if sha256_file(self.path) != self.sidecar["engine_sha256"]:
                raise ArtifactError(f"{self.path}: the engine does not match its sidecar's engine_sha256 (replaced or truncated); {REBUILD}")
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        with open(self.path, "rb") as f:
            blob = f.read()
        torch.cuda.set_device(idx)
        engine = runtime.deserialize_cuda_engine(blob)
        if engine is None:
            raise ArtifactError(f"{self.path}: TensorRT could not deserialize the engine (truncated, or another version/GPU); {REBUILD}")
        inputs, outputs = [], []
        for i in range(engine.num_io_tensors):
            n = engine.get_tensor_name(i)
            (inputs if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT else outputs).append(n)
        if len(inputs) != 1 or len(outputs) != 1:
            raise ArtifactError(f"{self.path}: expected one input and one output tensor, got {inputs} and {outputs}; {REBUILD}")
        self._in, self._out = inputs[0], outputs[0]
        self._in_dtype = self._torch_dtype(trt, engine.get_tensor_dtype(self._in))
        self._out_dtype = self._torch_dtype(trt, engine.get_tensor_dtype(self._out))
        pmin, _popt, pmax = engine.get_tensor_profile_shape(self._in, 0)
        self.min_batch, self.max_batch = int(pmin[0]), int(pmax[0])
        self._size = int(pmax[2])
        self.engine = engine
        self.context = engine.create_execution_context()
        self._runtime = runtime
        self._stream = torch.cuda.Stream(device=idx)
        self._torch_device = torch.device("cuda", idx)

    @staticmethod
    def _torch_dtype(trt, dt):
        import torch

        table = {trt.float32: torch.float32, trt.float16: torch.float16}
        if hasattr(trt, "bfloat16"):
            table[trt.bfloat16] = torch.bfloat16
        if dt not in table:
            raise ArtifactError(f"engine I/O tensor type {dt} is not supported (float32/float16 expected); {REBUILD}")
        return table[dt]

    def deactivate_impl(self) -> None:
        self.context = None
        self.engine = None
        self._runtime = None
        self._stream = None

    # -- inference --------------------------------------------------------------------------
    def input_spec(self) -> InputSpec:
        s = self._size or self.meta.preprocess.input_size
        return InputSpec(self.meta.input_name, (None, 3, s, s), "float32", max_batch=self.max_batch)

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if n < self.min_batch:
            raise InputError(f"[{self.name}] batch {n} is below the engine profile's minimum {self.min_batch}; {REBUILD} with a smaller --min-batch")
        if n > self.max_batch:  # Runner.infer already splits by input_spec().max_batch; kept for direct calls
            return np.concatenate([self.infer_impl(batch[i : i + self.max_batch]) for i in range(0, n, self.max_batch)])
        import torch

        with torch.cuda.stream(self._stream):
            x = torch.from_numpy(batch).to(self._torch_device, non_blocking=False).to(self._in_dtype).contiguous()
            if not self.context.set_input_shape(self._in, tuple(x.shape)):
                raise InputError(f"[{self.name}] input shape {tuple(x.shape)} is outside the engine's profile")
            out_shape = tuple(self.context.get_tensor_shape(self._out))
            y = torch.empty(out_shape, dtype=self._out_dtype, device=self._torch_device)
            self.context.set_tensor_address(self._in, x.data_ptr())
            self.context.set_tensor_address(self._out, y.data_ptr())
            if not self.context.execute_async_v3(self._stream.cuda_stream):
                raise ArtifactError(f"[{self.name}] TensorRT execute_async_v3 failed")
        self._stream.synchronize()
        return y.float().cpu().numpy()

    def describe_impl(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "precision": self.meta.precision,
            "gpu": self._gpu or self.sidecar.get("gpu_name"),
            "tensorrt_version": self._trt_version,
            "engine_tensorrt_version": self.sidecar.get("tensorrt_version"),
            "profile_batch": [self.min_batch, self.opt_batch, self.max_batch],
            "input": getattr(self, "_in", None) or "input",
            "path": self.path,
        }
