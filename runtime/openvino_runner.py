"""OpenVINO backend: the same exported ONNX files, compiled for the Intel/AMD CPU by OpenVINO.

    OpenVINORunner("model.onnx")                       # fp32 artifact, f32 inference precision
    OpenVINORunner("model.onnx", precision="bf16")     # INFERENCE_PRECISION_HINT=bf16 (AMX / AVX512-BF16)
    OpenVINORunner("model.int8.onnx")                  # the INT8 QDQ model made for ONNX Runtime

What users on Intel CPUs pick instead of ONNX Runtime, offered here as a backend of its own.
``precision`` is the *compute* precision hint (``INFERENCE_PRECISION_HINT``): ``fp32`` (``f32``,
the default, matches the artifact within the fp32 parity gate) or ``bf16`` (faster where the CPU has
bf16 units, no calibration needed, but logits move by ~1e-1, outside an fp32 gate of 1e-3; use it
only when asked).  INT8 QDQ models run their quantized layers in INT8 whatever the hint.

The class names and preprocessing are read from the ONNX ``metadata_props`` (OpenVINO keeps them
in the model's ``rt_info["framework"]``).  Threads: ``INFERENCE_NUM_THREADS``; ``PERFORMANCE_HINT``
is ``LATENCY`` (one stream), which is what a single camera feed wants.

Static shapes: an exported ONNX has a dynamic batch, and OpenVINO runs a model compiled for one static shape faster
(as its ``benchmark_app -shape`` does).  The runner compiles one static shape per batch size it is called with, on
first use (``batch``, the caller's usual size, at activation: 1 unless told), and keeps them
(``describe()["static_batches"]``, ``["compile_s"]``); past :data:`MAX_STATIC_SHAPES` sizes, one compilation with a
dynamic batch serves the rest.  A new batch size smaller than a compiled one (a folder's last batch) is padded to it
while that is cheaper than compiling it (``padded_calls``).

One ``ov.Core`` serves the whole process (:func:`shared_core`) and is never destroyed, and every thread that
creates or frees OpenVINO objects here gets a valid alternate signal stack afterwards
(:func:`runtime.sigstack.ensure_signal_stack`): OpenVINO's CPU plugin swaps the thread's signal stack when it is
created and restores it when destroyed, and plugins destroyed out of order or on another thread left a stack
pointing at unmapped memory, so the next signal (a DataLoader worker's exit, Ctrl-C) killed the process with
SIGSEGV (see runtime/sigstack.py and the README's known issues).

ONNX files from elsewhere are untrusted input: OpenVINO parses the whole graph; load only files you
or pawlens-export made.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from pawlens.errors import ArtifactError, InputError
from pawlens.models.artifact import ArtifactMeta

from .base import InputSpec, Runner, lazy_import
from .onnx_meta import check_graph_io, is_out_of_memory, read_onnx_meta, read_onnx_props, run_error
from .sigstack import ensure_signal_stack

PRECISIONS = ("fp32", "bf16")
#: Static shapes compiled per runner (one per batch size it is called with); further batch sizes share a dynamic one.
MAX_STATIC_SHAPES = 8
_HINT = {"fp32": "f32", "bf16": "bf16"}
_OV_TYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "u8": "uint8", "i8": "int8", "i32": "int32", "i64": "int64",
             "boolean": "bool", "bf16": "bfloat16"}


def _ov_io(port) -> tuple[str, tuple[int | None, ...] | None, str]:
    """An OpenVINO model input/output as (name, shape with None for dynamic dims / None for a dynamic rank, dtype)."""
    try:
        name = port.get_any_name()
    except RuntimeError:  # an unnamed tensor
        name = "?"
    ps = port.get_partial_shape()
    shape = None if ps.rank.is_dynamic else tuple(int(d.get_length()) if d.is_static else None for d in ps)
    t = port.get_element_type().get_type_name()
    return name, shape, _OV_TYPES.get(t, t)


_core = None
_core_lock = threading.Lock()


def shared_core():
    """The process's one ``ov.Core``, made on first use and deliberately never freed (see the module docstring)."""
    global _core
    ov = lazy_import("openvino", "openvino", "OpenVINO")  # first: a missing library is one line even once a core exists
    with _core_lock:
        if _core is None:
            import ctypes

            core = ov.Core()
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(core))  # one reference nobody drops: not even at interpreter exit
            _core = core
        return _core


class OpenVINORunner(Runner):
    """OpenVINO compiled model on the CPU.

    Args:
        path: an ``.onnx`` file written by pawlens-export (fp32, fp16 or INT8 QDQ).
        device: ``cpu`` (or ``auto``, which is the CPU; OpenVINO GPU plugins are not used).
        precision: compute precision hint, ``fp32`` or ``bf16``.
        threads: ``INFERENCE_NUM_THREADS`` (``None``: OpenVINO's default, all cores).
        meta: artifact metadata; read from the file when ``None``.
    """

    backend = "openvino"

    @classmethod
    def for_file(cls, path, *, ckpt=None, meta=None, threads=None, spinning=False, compile=False, channels_last=None, name=None,
                 batch=1, **kw):
        return cls(path, threads=threads, meta=meta, name=name, batch=batch, **kw)

    def __init__(self, path: str, *, device: str = "cpu", precision: str = "fp32", threads: int | None = None,
                 meta: ArtifactMeta | None = None, performance_hint: str = "LATENCY", name: str | None = None, batch: int = 1):
        self.path = os.fspath(path)
        if device not in ("auto", "cpu"):
            raise InputError(f"--device {device} is not offered for openvino; it runs on the CPU (use --backend ort or trt for CUDA)")
        if precision not in PRECISIONS:
            raise InputError(f"unknown openvino precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        self.device = "cpu"
        self.precision = precision
        self.threads = threads
        self.performance_hint = performance_hint
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InputError(f"batch {batch!r}: the batch size compiled at activation must be a whole number >= 1")
        self.first_batch = batch
        super().__init__(name or f"openvino-{precision}-{os.path.basename(self.path)}")
        if meta is None:
            meta = read_onnx_meta(self.path, require=False)  # also refuses missing / truncated files and precision lies
        else:
            read_onnx_props(self.path)  # refuses missing / truncated files
        self.meta = meta
        self.compiled = None  # the first compilation (its properties are the runner's)
        self._by_batch: dict[int, Any] = {}
        self._compile_s: dict[Any, float] = {}
        self._dynamic = None
        self._model = None
        self._active_hint = None
        self.engine_time: float | None = None  # the last call's time inside OpenVINO's request.infer
        self.padded_calls = 0  # calls padded to a larger compiled batch (see _padded_batch)
        self._call_s: dict[int, float] = {}
        self._pad_calls: dict[int, int] = {}
        self._fixed: tuple[int, ...] = ()  # fix_batches(): the static sizes, however many; other batches padded up to one

    def activate_impl(self) -> None:
        try:
            self._activate(shared_core())
        finally:
            ensure_signal_stack()

    def _activate(self, core) -> None:
        try:
            model = core.read_model(self.path)
        except Exception as e:
            msg = " ".join(str(e).split())[:160]
            raise ArtifactError(f"{self.path}: OpenVINO cannot read it ({type(e).__name__}: {msg}); re-export it with pawlens-export") from None
        check_graph_io(self.path, [_ov_io(x) for x in model.inputs], [_ov_io(x) for x in model.outputs], self.meta, backend="openvino")
        self._core, self._model = core, model
        self._config = {"INFERENCE_PRECISION_HINT": _HINT[self.precision], "PERFORMANCE_HINT": self.performance_hint}
        if self.threads:
            self._config["INFERENCE_NUM_THREADS"] = int(self.threads)
        inp = model.inputs[0]
        shape = tuple(int(d.get_length()) if d.is_static else None for d in inp.get_partial_shape())
        self._spec = InputSpec(inp.get_any_name(), shape, "float32")
        self._in_type = np.float16 if "f16" in str(inp.get_element_type()) else np.float32
        self._by_batch = {}
        self._compile_s = {}
        self._call_s: dict[int, float] = {}  # the last call's time inside OpenVINO per compiled static batch
        self._pad_calls: dict[int, int] = {}
        self._dynamic = None
        # the caller's usual batch (or the file's fixed one) compiled now: a file that cannot compile fails here, and a folder
        # run at batch 8 compiles batch 8 once, not batch 1 first and batch 8 on its first call
        self._request_for(shape[0] or self.first_batch)
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self._active_hint = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)  # "f32" / "bf16"

    def _compile(self, model, what: str):
        try:
            return self._core.compile_model(model, "CPU", self._config)
        except Exception as e:
            if is_out_of_memory(e):  # a static shape lets OpenVINO fold a ConstantOfShape bomb while compiling
                raise run_error(self.path, "openvino", e, doing=f"compiling the graph{what}") from None
            msg = " ".join(str(e).split())[:160]
            raise ArtifactError(f"{self.path}: OpenVINO cannot compile it for the CPU{what} ({type(e).__name__}: {msg})") from None

    def _padded_batch(self, n: int) -> int | None:
        """The compiled static batch to pad a batch of ``n`` to, instead of compiling ``n``, or None.

        A batch size seen for the first time (a folder's last, partial batch) is padded to the smallest larger compiled
        static batch ``m`` while its calls so far have cost less than compiling would (``calls * time(m) < compile(m)``,
        the rent-or-buy rule): one odd batch costs one call at ``m``, not a compilation; a size that keeps coming gets
        its own shape.  A call at ``m`` not yet timed counts as free: the first padded call measures it (a folder of 3
        photos at ``--batch-size 8`` runs one padded call on the batch compiled at activation)."""
        bigger = [m for m in self._by_batch if m > n]
        if not bigger:
            return None
        m = min(bigger)
        self._pad_calls[n] = self._pad_calls.get(n, 0) + 1
        return m if self._pad_calls[n] * self._call_s.get(m, 0.0) < self._compile_s.get(m, 0.0) else None

    def _request_for(self, n: int, *, pad: bool = True):
        """The infer request for batch ``n`` and the batch it runs at: a static shape, compiled on first use and kept (at
        most :data:`MAX_STATIC_SHAPES` of them; other batch sizes share one compilation with a dynamic batch), or a larger
        compiled one that the batch is padded to (:meth:`_padded_batch`; never with ``pad=False``)."""
        req = self._by_batch.get(n)
        if req is not None:
            return req, n
        if not pad:
            m = None
        elif self._fixed:
            m = next((b for b in self._fixed if b >= n and b in self._by_batch), None)
        else:
            m = self._padded_batch(n)
        if m is not None:
            return self._by_batch[m], m
        import openvino as ov

        t0 = time.perf_counter()
        if self._spec.shape[0] is not None or None in self._spec.shape[1:]:  # a fixed batch, or no static shape to give
            compiled = self._compile(self._model, "")
        elif len(self._by_batch) < MAX_STATIC_SHAPES or n in self._fixed:
            self._model.reshape({self._model.inputs[0]: ov.PartialShape([n, *self._spec.shape[1:]])})
            compiled = self._compile(self._model, f" at batch {n}")
        else:
            if self._dynamic is None:
                self._model.reshape({self._model.inputs[0]: ov.PartialShape([-1, *self._spec.shape[1:]])})
                self._dynamic = self._compile(self._model, " with a dynamic batch").create_infer_request()
                self._compile_s["dynamic"] = round(time.perf_counter() - t0, 3)
            return self._dynamic, n
        self._compile_s[n] = round(time.perf_counter() - t0, 3)
        if self.compiled is None:
            self.compiled = compiled
        req = self._by_batch[n] = compiled.create_infer_request()
        return req, n

    def prepare(self, batch: int) -> None:
        """Compile the static shape of ``batch`` now (no padding), e.g. before timing it."""
        if not self.is_active:
            raise InputError(f"[{self.name}] activate() before prepare()")
        self._request_for(int(batch), pad=False)

    def fix_batches(self, sizes) -> None:
        """Compile the static shapes of ``sizes`` now and from then on run any other batch padded to the smallest larger
        one (above the largest: compiled as usual).  For a server, whose batcher forms every size from 1 to its maximum:
        each first use would otherwise stall the requests behind it for a compilation."""
        self._fixed = tuple(sorted({int(b) for b in sizes}))
        for b in self._fixed:  # smallest first: none can be padded to a larger one that is not compiled yet
            self.prepare(b)

    def input_spec(self) -> InputSpec:
        return self._spec

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        if self._in_type is not np.float32:
            batch = batch.astype(self._in_type)
        n = batch.shape[0]
        req, m = self._request_for(n)
        if m != n:
            batch = np.concatenate([batch, np.zeros((m - n, *batch.shape[1:]), batch.dtype)])
            self.padded_calls += 1
        try:
            t0 = time.perf_counter()
            req.infer({0: batch}, share_inputs=True)
            self.engine_time = time.perf_counter() - t0
            if m in self._by_batch and (m == n or m not in self._call_s):  # a padded call times batch m once
                self._call_s[m] = self.engine_time
            return np.array(req.get_output_tensor(0).data[:n], dtype=np.float32, copy=True)
        except Exception as e:  # OpenVINO's RuntimeError: the graph failed at run time (e.g. a huge ConstantOfShape)
            raise run_error(self.path, "openvino", e) from None

    def deactivate_impl(self) -> None:
        self._by_batch = {}
        self._dynamic = None
        self._model = None
        self.compiled = None
        ensure_signal_stack()  # this thread may have freed the last reference to OpenVINO objects

    def describe_impl(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "device": "cpu",
            "precision": self.effective_precision,
            "artifact_precision": self.meta.precision if self.meta else "unknown",
            "inference_precision_hint": self._active_hint or _HINT[self.precision],
            "threads": self.threads,
            "path": self.path,
        }
        if getattr(self, "_spec", None) is not None:
            d["input"] = self._spec.name
        d["static_batches"] = sorted(b for b in self._by_batch) if self._by_batch else []
        d["compile_s"] = {str(k): v for k, v in self._compile_s.items()}
        d["padded_calls"] = self.padded_calls
        if self.compiled is not None:
            d["execution_devices"] = list(self.compiled.get_property("EXECUTION_DEVICES"))
            d["performance_hint"] = str(self.compiled.get_property("PERFORMANCE_HINT"))
        return d

    @property
    def effective_precision(self) -> str:
        """``int8`` for an INT8 artifact, else the compute precision (``fp32`` / ``bf16``)."""
        art = self.meta.precision if self.meta else "fp32"
        if art == "int8":
            return "int8" if self.precision == "fp32" else f"int8+{self.precision}"
        return self.precision
