"""What this CPU can compute at most, and what a model asks of it.

    macs = count_macs(model, 224)       # multiply-adds of one forward (convolutions and linear layers)
    rates = gemm_rates(threads=2)       # {"fp32_gflops": ..., "bf16_gflops": ..., "int8_gops": ...}

pawlens-bench uses both to put each latency next to the machine's limit: a row that runs at
``2 * macs * batch / latency`` operations per second close to the dense GEMM rate of its precision
is compute bound, and a latency goal that would need more than that rate cannot be met on this CPU
by tuning the runtime.

The rates are measured in the same run, not looked up, and each precision's ceiling is the **best** rate that a
large dense matrix product (2048 x 2048) reaches in any installed runtime: fp32 in PyTorch (oneDNN), ONNX Runtime
(MLAS) and OpenVINO (f32 hint); bf16 in PyTorch and OpenVINO (bf16 hint), only where the CPU computes bf16
natively; INT8 as ONNX Runtime's ``MatMulInteger`` (u8 x s8), its QDQ ``MatMul`` and OpenVINO on the same QDQ
graph.  One library's matmul is not a ceiling: one library's GEMM can read slower than another library's whole
network (torch's fp32 product below OpenVINO's ResNet50, once).  The nominal clock is not one either (the cores boost above it).
Each rate is the fastest of a few calls (a ceiling is the best the CPU did).  Even so, oneDNN's convolutions in
OpenVINO and ONNX Runtime read 103-113% of it on a quiet run here (ResNet50 fp32), so a model row well above it,
over ``tolerance`` (the bench uses 120%), means the run was disturbed (:func:`over_ceiling`).
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np

from .formats import ONNX


def count_macs(model, input_size: int) -> int:
    """Multiply-accumulates of one forward of ``model`` on a 1x3xSxS input (Conv2d and Linear layers only)."""
    import torch
    from torch import nn

    total = 0

    def conv_hook(m, _inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m, _inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in handles:
            h.remove()
    return int(total)


def _best_seconds(fn, reps: int) -> float:
    """The fastest of ``reps`` timed calls (after two warm-up calls): a ceiling is the best the CPU did, not its typical."""
    fn()
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(min(ts))


def _matmul_onnx(n: int, kind: str) -> bytes:
    """A one-node ONNX graph ``Y = A @ W`` (W a constant): ``fp32``, ``int8`` (MatMulInteger, u8 x s8) or ``qdq``
    (QuantizeLinear/DequantizeLinear around an fp32 MatMul, as the INT8 export writes it)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "int8":
        inits = [numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "W")]
        nodes = [helper.make_node("MatMulInteger", ["A", "W"], ["Y"])]
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    elif kind == "fp32":
        inits = [numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "W")]
        nodes = [helper.make_node("MatMul", ["A", "W"], ["Y"])]
        a_type = y_type = TensorProto.FLOAT
    else:  # qdq
        inits = [numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "Wq"),
                 numpy_helper.from_array(np.array(0.01, np.float32), "ws"), numpy_helper.from_array(np.array(0, np.int8), "wz"),
                 numpy_helper.from_array(np.array(0.02, np.float32), "as"), numpy_helper.from_array(np.array(128, np.uint8), "az")]
        nodes = [helper.make_node("QuantizeLinear", ["A", "as", "az"], ["Aq"]),
                 helper.make_node("DequantizeLinear", ["Aq", "as", "az"], ["Ad"]),
                 helper.make_node("DequantizeLinear", ["Wq", "ws", "wz"], ["Wd"]),
                 helper.make_node("MatMul", ["Ad", "Wd"], ["Y"])]
        a_type = y_type = TensorProto.FLOAT
    graph = helper.make_graph(nodes, f"{kind}_gemm", [helper.make_tensor_value_info("A", a_type, [n, n])],
                              [helper.make_tensor_value_info("Y", y_type, [n, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime this project supports
    return model.SerializeToString()


def _input(n: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (n, n), dtype=np.uint8) if kind == "int8" else rng.standard_normal((n, n)).astype(np.float32)


def _ort_rate(n: int, kind: str, threads: int | None, reps: int) -> float | None:
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return None
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or 0)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(_matmul_onnx(n, kind), so, providers=["CPUExecutionProvider"])
    a = _input(n, kind)
    return 2 * n**3 / _best_seconds(lambda: sess.run(None, {"A": a}), reps) / 1e9


def _openvino_rate(n: int, kind: str, hint: str, threads: int | None, reps: int) -> float | None:
    if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("onnx") is None:
        return None
    import os
    import tempfile

    import openvino as ov

    core = ov.Core()
    with tempfile.TemporaryDirectory(prefix="pawlens-ceiling-") as d:  # OpenVINO reads ONNX from a file
        path = os.path.join(d, f"{kind}{ONNX}")
        with open(path, "wb") as f:
            f.write(_matmul_onnx(n, kind))
        cfg: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            cfg["INFERENCE_NUM_THREADS"] = int(threads)
        compiled = core.compile_model(core.read_model(path), "CPU", cfg)
    req = compiled.create_infer_request()
    a = _input(n, kind)
    return 2 * n**3 / _best_seconds(lambda: req.infer({0: a}), reps) / 1e9


def _torch_rate(n: int, dtype: str, reps: int) -> float:
    import torch

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    if dtype == "bf16":
        a, b = a.bfloat16(), b.bfloat16()
    return 2 * n**3 / _best_seconds(lambda: a @ b, reps) / 1e9


def _best(found: dict[str, float | None]) -> float | None:
    vals = [v for v in found.values() if v is not None]
    return max(vals) if vals else None


def gemm_rates(threads: int | None = None, n: int = 2048, reps: int = 6) -> dict[str, Any]:
    """Each precision's dense GEMM ceiling on the CPU, in 1e9 ops/s: the best over the installed runtimes.

    Returns ``{"gemm_n", "fp32_gflops", "bf16_gflops", "int8_gops", "by_runtime": {precision: {runtime: rate}}}``;
    a precision nothing can measure is ``None`` (bf16 where the CPU would only emulate it: minutes per product, and it
    bounds nothing).  A runtime that fails to run the product is recorded as ``None`` with the others kept.
    """
    import torch

    from pawlens.models.device import cpu_supports_bf16

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    by: dict[str, dict[str, float | None]] = {"fp32": {}, "bf16": {}, "int8": {}}
    bf16 = cpu_supports_bf16()

    def attempt(prec: str, name: str, fn) -> None:
        try:
            by[prec][name] = fn()
        except Exception:  # noqa: BLE001 - one runtime that cannot run the product does not void the others
            by[prec][name] = None

    try:
        attempt("fp32", "torch", lambda: _torch_rate(n, "fp32", reps))
        if bf16:
            attempt("bf16", "torch", lambda: _torch_rate(n, "bf16", reps))
    finally:
        torch.set_num_threads(old)
    attempt("fp32", "onnxruntime", lambda: _ort_rate(n, "fp32", threads, reps))
    attempt("fp32", "openvino", lambda: _openvino_rate(n, "fp32", "f32", threads, reps))
    if bf16:
        attempt("bf16", "openvino", lambda: _openvino_rate(n, "fp32", "bf16", threads, reps))
    attempt("int8", "onnxruntime MatMulInteger", lambda: _ort_rate(n, "int8", threads, reps))
    attempt("int8", "onnxruntime QDQ", lambda: _ort_rate(n, "qdq", threads, reps))
    attempt("int8", "openvino QDQ", lambda: _openvino_rate(n, "qdq", "f32", threads, reps))
    by = {p: {k: v for k, v in d.items() if v is not None} for p, d in by.items()}
    return {"gemm_n": n, "fp32_gflops": _best(by["fp32"]), "bf16_gflops": _best(by["bf16"]), "int8_gops": _best(by["int8"]),
            "by_runtime": by}


def best_runtime(precision: str, rates: dict[str, Any]) -> str | None:
    """Which runtime set the ceiling of ``precision`` (``"openvino"``, ``"onnxruntime QDQ"``, ...)."""
    d = rates.get("by_runtime", {}).get({"bf16-autocast": "bf16"}.get(precision, precision)) or {}
    return max(d, key=d.get) if d else None


def over_ceiling(rate: float | None, precision: str, rates: dict[str, Any], tolerance: float = 1.0) -> bool:
    """Whether a measured rate is above its precision's ceiling: with the best of the runtimes as the ceiling, that
    only happens when the run was disturbed (the ceiling measured while something else ran)."""
    ceiling = rate_for(precision, rates)
    return bool(rate and ceiling and rate > ceiling * tolerance)


def rate_for(precision: str, rates: dict[str, Any]) -> float | None:
    """The GEMM rate that bounds a row computing in ``precision`` (fp32, bf16, int8), or ``None``."""
    key = {"fp32": "fp32_gflops", "bf16": "bf16_gflops", "bf16-autocast": "bf16_gflops", "int8": "int8_gops"}.get(precision)
    return rates.get(key) if key else None


def measure(ckpt, threads: int | None = None) -> dict[str, Any]:
    """``count_macs`` of the checkpoint's model and :func:`gemm_rates`, as one dict (what the bench stores)."""
    from pawlens.models.checkpoint import model_from_checkpoint

    macs = count_macs(model_from_checkpoint(ckpt), int(ckpt["preprocess"]["input_size"]))
    return {"macs": macs, **gemm_rates(threads)}
