"""What this CPU can compute at most, and what a model asks of it.

    macs = count_macs(model, 224)       # multiply-adds of one forward (convolutions and linear layers)
    rates = gemm_rates(threads=2)       # {"fp32_gflops": ..., "bf16_gflops": ..., "int8_gops": ...}

pawlens-bench uses both to put each latency next to the machine's limit: a row that runs at
``2 * macs * batch / latency`` operations per second close to the dense GEMM rate of its precision
is compute bound, and a latency goal that would need more than that rate cannot be met on this CPU
by tuning the runtime.  The rates are measured, not looked up: a large square matrix product
(2048 x 2048) in PyTorch for fp32 and bf16 (oneDNN), and ONNX Runtime's ``MatMulInteger`` with u8
activations and s8 weights (MLAS, VNNI where the CPU has it) for INT8.  They are what these libraries
reach on a well-shaped problem, not the vendor's peak figure; a convolution can come close to them,
not pass them by much.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np


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


def _median_seconds(fn, reps: int) -> float:
    fn()
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _int8_gemm_rate(n: int, threads: int | None, reps: int) -> float | None:
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return None
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "W")
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "W"], ["Y"])], "int8_gemm",
                              [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime this project supports
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or 0)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    return 2 * n**3 / _median_seconds(lambda: sess.run(None, {"A": a}), reps) / 1e9


def gemm_rates(threads: int | None = None, n: int = 2048, reps: int = 6) -> dict[str, Any]:
    """Dense GEMM throughput on the CPU: fp32 and bf16 (torch), INT8 u8 x s8 (onnxruntime); 1e9 ops/s."""
    import torch

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        out: dict[str, Any] = {"gemm_n": n, "fp32_gflops": 2 * n**3 / _median_seconds(lambda: a @ b, reps) / 1e9}
        from pawlens.models.device import cpu_supports_bf16

        if cpu_supports_bf16():  # emulated bf16 (AVX2 CPUs) takes minutes per 2048^3 product and bounds nothing
            a16, b16 = a.bfloat16(), b.bfloat16()
            out["bf16_gflops"] = 2 * n**3 / _median_seconds(lambda: a16 @ b16, reps) / 1e9
        else:
            out["bf16_gflops"] = None
    finally:
        torch.set_num_threads(old)
    out["int8_gops"] = _int8_gemm_rate(n, threads, reps)
    return out


def rate_for(precision: str, rates: dict[str, Any]) -> float | None:
    """The GEMM rate that bounds a row computing in ``precision`` (fp32, bf16, int8), or ``None``."""
    key = {"fp32": "fp32_gflops", "bf16": "bf16_gflops", "bf16-autocast": "bf16_gflops", "int8": "int8_gops"}.get(precision)
    return rates.get(key) if key else None


def measure(ckpt, threads: int | None = None) -> dict[str, Any]:
    """``count_macs`` of the checkpoint's model and :func:`gemm_rates`, as one dict (what the bench stores)."""
    from pawlens.models.checkpoint import model_from_checkpoint

    macs = count_macs(model_from_checkpoint(ckpt), int(ckpt["preprocess"]["input_size"]))
    return {"macs": macs, **gemm_rates(threads)}
