"""Measurements beside the rows: the runtime's own overhead per frame, one Grad-CAM against one forward, and this
CPU's compute ceiling (:mod:`pawlens.runtime.ceiling`).  The ``*_from_file`` forms run in a fresh worker process
(:func:`pawlens.bench.harness.run_in_child`), after the timed workers are gone.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def measure_overhead(cfg, n_classes: int, reps: int = 30) -> dict[str, Any]:
    """Preprocessing of one 640x480 frame + softmax: the runtime's own cost per frame."""
    from pawlens.models.preprocess import preprocess_numpy
    from pawlens.runtime.predictor import softmax

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


def ceiling_from_file(ckpt_path: str, threads: int | None) -> dict[str, Any]:
    from pawlens.models.checkpoint import load_checkpoint
    from pawlens.runtime.ceiling import measure

    return measure(load_checkpoint(ckpt_path), threads)


def cam_from_file(ckpt_path: str, threads: int | None) -> dict[str, Any]:
    from pawlens.models.checkpoint import load_checkpoint

    return measure_cam(load_checkpoint(ckpt_path), threads=threads)


def measure_cam(ckpt, *, threads: int | None, reps: int = 7) -> dict[str, Any]:
    """One Grad-CAM (a frame at the model's size, CPU) against one PyTorch fp32 forward, interleaved; medians.

    Two Grad-CAM paths: the eager one (hooks on the whole model) and the one the desktop app and ``pawlens-predict --cam``
    use (the network up to the Grad-CAM layer traced and frozen, channels_last where the registry says so:
    :meth:`models.gradcam.GradCAM.trace_trunk`).  ``cam_vs_forward`` is the product's path (traced, or eager where the
    trace was refused, as ``cam_mode`` says).
    """
    import torch

    from pawlens.models.checkpoint import model_from_checkpoint
    from pawlens.models.gradcam import GradCAM
    from pawlens.models.registry import model_info

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        info = model_info(ckpt["arch"])
        model = model_from_checkpoint(ckpt)
        s = int(ckpt["preprocess"]["input_size"])
        x = torch.randn(1, 3, s, s, generator=torch.Generator().manual_seed(0))
        fast_model = model_from_checkpoint(ckpt)
        xf = x
        if info.channels_last_cpu:
            fast_model.to(memory_format=torch.channels_last)
            xf = x.contiguous(memory_format=torch.channels_last)
        fwd, eager_t, fast_t = [], [], []
        with GradCAM(model, info.cam_layer) as eager, GradCAM(fast_model, info.cam_layer, head=info.cam_head) as fast:
            mode = fast.trace_trunk(xf)
            for _ in range(2):
                eager(x)
                fast(xf)
                with torch.inference_mode():
                    model(x)
            for _ in range(reps):
                t0 = time.perf_counter()
                with torch.inference_mode():
                    model(x)
                t1 = time.perf_counter()
                eager(x)
                t2 = time.perf_counter()
                fast(xf)
                t3 = time.perf_counter()
                fwd.append(t1 - t0)
                eager_t.append(t2 - t1)
                fast_t.append(t3 - t2)
        f, e, c = (float(np.median(v) * 1e3) for v in (fwd, eager_t, fast_t))
        return {"forward_ms": f, "cam_ms": c, "cam_vs_forward": c / f, "cam_eager_ms": e, "cam_eager_vs_forward": e / f,
                "cam_mode": mode + (", channels_last" if info.channels_last_cpu else ""), "cam_layer": info.cam_layer}
    finally:
        torch.set_num_threads(old)
