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
