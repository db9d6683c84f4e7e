"""What a bench run times: its checkpoints (the main one, the others compared beside it, the untrained latency
reference) and its model files (the ``--models`` given, sorted by the checkpoint they came from, or exported here).

    m = main_model(None, {}, workdir, notes)        # the embedded default: an untrained ResNet50, 2 classes, 224 px
    add_checkpoints(m, ["runs/train/baseline/best.pt"]); add_latency_reference(m, "resnet50", workdir, torch_cpu=True)
    files = export_artifacts(m.ckpt, model_dir, x_calib, want_ort=True, want_fp16=False, want_trt=False, notes=notes)
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from pawlens.errors import PawlensError
from pawlens.fs import sha256_file
from pawlens.runtime.formats import CHECKPOINT, ONNX, by_key

LOG = logging.getLogger("pawlens")

def _model_label(arch: str, embedded: bool) -> str:
    """How a checkpoint is named in the tables: its architecture (``efficientnet_lite0``), ``(untrained)`` for the embedded default."""
    return f"{arch} (untrained)" if embedded else arch



# ----------------------------------------------------------------------------- the models of the run


@dataclass
class Models:
    """The main checkpoint (``groups[""]``), the others compared beside it, and the latency reference."""

    ckpt: dict
    path: str
    meta: Any
    embedded: bool
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.groups[""]["label"]


def _untrained(arch: str, classes: list[str], pre, path: str, note: str) -> str:
    import torch

    from pawlens.models.checkpoint import build_checkpoint, save_checkpoint
    from pawlens.models.registry import create_model

    torch.manual_seed(0)
    ck = build_checkpoint(model=create_model(arch, num_classes=len(classes)), arch=arch, class_names=classes, preprocess=pre,
                          train_config={"note": note})
    return save_checkpoint(path, ck)


def main_model(checkpoint: str | None, metas: dict[str, Any], workdir: str, notes: list[str]) -> Models:
    """The checkpoint to compare against; without one, an untrained model shaped like the first ``--models`` file."""
    from pawlens.models.artifact import ArtifactMeta
    from pawlens.models.checkpoint import load_checkpoint
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.models.registry import list_models

    embedded = checkpoint is None
    if embedded:
        first = next(iter(metas.values()), None)
        arch = first.arch if first is not None and first.arch in list_models() else "resnet50"
        classes = list(first.class_names) if first is not None else ["cat", "dog"]
        pre = first.preprocess if first is not None else PreprocessConfig.for_size(224)
        path = _untrained(arch, classes, pre, os.path.join(workdir, f"embedded-{arch}{CHECKPOINT}"), "pawlens-bench embedded default: untrained")
        notes.append(f"Embedded default: an UNTRAINED {arch} ({len(classes)} classes, {pre.input_size} px) built and exported "
                     "on the fly. Latency does not depend on the weights; agreement figures only show how closely each backend "
                     "reproduces the same random network.")
    else:
        path = os.fspath(checkpoint)
    ckpt = load_checkpoint(path)
    meta = ArtifactMeta.from_checkpoint(ckpt)
    m = Models(ckpt, path, meta, embedded)
    m.groups[""] = {"label": _model_label(meta.arch, embedded), "path": path, "cfg": meta.preprocess, "classes": list(meta.class_names),
                    "sha": "" if embedded else sha256_file(path), "arch": meta.arch}
    return m


def add_checkpoints(m: Models, checkpoints: Sequence[str]) -> None:
    """The other trained models, each labelled by its architecture (and its run folder where two share one)."""
    from pawlens.models.artifact import ArtifactMeta
    from pawlens.models.checkpoint import load_checkpoint

    for extra in checkpoints:
        me = ArtifactMeta.from_checkpoint(load_checkpoint(extra))
        lab = _model_label(me.arch, False)
        if lab in {g["label"] for g in m.groups.values()}:
            lab = f"{lab} ({os.path.basename(os.path.dirname(os.path.abspath(extra)))})"
        m.groups[lab] = {"label": lab, "path": os.fspath(extra), "cfg": me.preprocess, "classes": list(me.class_names),
                         "sha": sha256_file(extra), "arch": me.arch}


def add_latency_reference(m: Models, arch: str | None, workdir: str, *, torch_cpu: bool) -> None:
    """An untrained ``arch`` timed in PyTorch fp32 eager, unless a trained one is in the run (or no CPU PyTorch rows)."""
    from pawlens.models.registry import list_models, model_info

    if arch not in list_models() or arch in {g["arch"] for g in m.groups.values()} or not torch_cpu:
        return
    classes = m.groups[""]["classes"]
    pre = model_info(arch).preprocess()
    path = _untrained(arch, classes, pre, os.path.join(workdir, f"reference-{arch}{CHECKPOINT}"), "pawlens-bench latency reference: untrained")
    lab = f"{arch} (latency reference)"
    m.groups[lab] = {"label": lab, "path": path, "cfg": pre, "classes": classes, "sha": "", "arch": arch, "reference": True}


# ----------------------------------------------------------------------------- artifacts


def sort_given_files(m: Models, metas: dict[str, Any], notes: list[str]):
    """``--models`` files: (path, meta, comparable) of the main checkpoint, and (path, meta, group) of the others (by source_sha256)."""
    main, extra = [], []
    by_sha = {gd["sha"]: g for g, gd in m.groups.items() if g and gd["sha"]}
    ck_sha = m.groups[""]["sha"]
    for path, me in metas.items():
        if me.source_sha256 and me.source_sha256 in by_sha and me.source_sha256 != ck_sha:
            extra.append((path, me, by_sha[me.source_sha256]))
            continue
        comparable = not m.embedded and (not me.source_sha256 or me.source_sha256 == ck_sha)
        if not m.embedded and not comparable:
            notes.append(f"{os.path.basename(path)} was exported from another checkpoint (source_sha256 differs): no agreement figures")
        main.append((path, me, comparable))
    if m.embedded and metas:
        notes.append("No --checkpoint: the --models files were not compared with a PyTorch reference (their weights are "
                     "unknown here); the PyTorch rows are an untrained model of the same architecture, for speed only.")
    return main, extra


def export_artifacts(ckpt, model_dir: str, x_calib: np.ndarray, *, want_ort: bool, want_fp16: bool, want_trt: bool, notes: list[str]):
    """Export fp32 and INT8 ONNX (+ FP16 ONNX and an FP16 TensorRT engine on a GPU) from ``ckpt`` into ``model_dir``."""
    if not want_ort and not want_trt:
        return []
    try:
        from pawlens.export.onnx import export_onnx
    except ImportError as e:
        notes.append(f"ONNX export unavailable ({e}); only PyTorch rows")
        return []
    from pawlens.runtime.factory import read_meta

    stem = os.path.join(model_dir, "model")
    t0 = time.perf_counter()
    try:
        fp32 = export_onnx(ckpt, stem + ONNX)
    except PawlensError as e:
        notes.append(f"ONNX export failed: {e}")
        return []
    LOG.info("bench: exported %s in %.1f s", os.path.basename(fp32), time.perf_counter() - t0)
    out = [(fp32, read_meta(fp32), True)]
    try:
        from pawlens.export.quantize import quantize_int8

        t0 = time.perf_counter()
        int8 = quantize_int8(fp32, stem + by_key("int8").suffix, x_calib)
        LOG.info("bench: quantized %s in %.1f s", os.path.basename(int8), time.perf_counter() - t0)
        out.append((int8, read_meta(int8), True))
    except (ImportError, PawlensError) as e:
        notes.append(f"INT8 quantization unavailable: {e}")
    if want_fp16:
        out += _gpu_artifacts(fp32, stem, want_trt=want_trt, notes=notes)
    return out


def _gpu_artifacts(fp32: str, stem: str, *, want_trt: bool, notes: list[str]):
    """The FP16 ONNX (ONNX Runtime CUDA EP) and the TensorRT FP16 engine."""
    from pawlens.export.onnx import convert_fp16
    from pawlens.runtime.factory import read_meta

    out = []
    try:
        fp16 = convert_fp16(fp32, stem + by_key("fp16").suffix)
        out.append((fp16, read_meta(fp16), True))
    except PawlensError as e:
        notes.append(f"FP16 ONNX not made: {e}")
        fp16 = None
    if want_trt:
        try:
            from pawlens.export.tensorrt import build_engine

            eng = stem + by_key("trt").suffix
            build_engine(fp32, eng, fp16_onnx_path=fp16)
            out.append((eng, read_meta(eng), True))
        except (ImportError, PawlensError) as e:
            notes.append(f"TensorRT engine not built: {e}")
    return out
