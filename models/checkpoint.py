"""The self-describing checkpoint: save atomically, load safely.

A checkpoint is a plain dict that ``torch.load(..., weights_only=True)`` can read (tensors, numbers,
strings, lists, dicts; no pickled classes)::

    format          "pawlens-checkpoint"
    format_version  1
    arch            registry name ("baseline", "resnet50")
    model_args      architecture arguments (create_model(**model_args))
    num_classes, class_names
    preprocess      PreprocessConfig.to_dict()
    state_dict      model weights (fp32, CPU)
    train_config    the resolved training config
    metrics         final / best metrics
    versions        torch, torchvision, numpy, pawlens, python
    created         ISO time
    train_state     optional: epoch, phase, optimizer, scheduler, scaler, history, early-stopping state

Usage::

    save_checkpoint("runs/train/x/best.pt", model=m, arch="baseline", class_names=["cat", "dog"], preprocess=cfg)
    ckpt = load_checkpoint("runs/train/x/best.pt")     # raises CheckpointError with one line
    model = model_from_checkpoint(ckpt)                  # eval mode, CPU
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import platform
from typing import Any

from pawlens.errors import CheckpointError

from .preprocess import PreprocessConfig

FORMAT = "pawlens-checkpoint"
FORMAT_VERSION = 1


def _versions() -> dict[str, str]:
    import numpy
    import torch
    import torchvision

    from pawlens import __version__

    return {
        "pawlens": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
    }


def build_checkpoint(
    *,
    model,
    arch: str,
    class_names: list[str],
    preprocess: PreprocessConfig,
    model_args: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    sd = model.module.state_dict() if hasattr(model, "module") else model.state_dict()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "model_args": dict(model_args or {}),
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "preprocess": preprocess.to_dict(),
        "state_dict": {k: v.detach().float().cpu() if v.is_floating_point() else v.detach().cpu() for k, v in sd.items()},
        "train_config": _plain(train_config or {}),
        "metrics": _plain(metrics or {}),
        "versions": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **({"train_state": train_state} if train_state is not None else {}),
    }


def save_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any] | None = None, **kwargs) -> str:
    """Write a checkpoint atomically (temp file in the same folder, fsync, rename).

    Either pass a dict made by :func:`build_checkpoint`, or its keyword arguments.
    An interrupted save leaves the previous file (if any) untouched and no partial file behind.
    """
    import torch

    if ckpt is None:
        ckpt = build_checkpoint(**kwargs)
    p = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    from pawlens.fs import atomic_write_bytes

    atomic_write_bytes(p, buf.getvalue())
    return p


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    """Load and validate a pawlens checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: missing, empty, truncated, foreign, unknown version, or needs pickled code.
    """
    import pickle

    import torch

    p = os.fspath(path)
    try:
        p.encode("utf-8")
    except UnicodeEncodeError:  # it would load, then fail in every UTF-8 report and in the ONNX export
        from pawlens.fs import printable

        raise CheckpointError(f"{printable(p)}: the checkpoint's name is not valid UTF-8; rename it") from None
    if not os.path.exists(p):
        raise CheckpointError(f"{p}: checkpoint not found; pass the best.pt or last.pt written by pawlens-train")
    if os.path.isdir(p):
        raise CheckpointError(f"{p}: is a folder; pass the checkpoint file inside it (e.g. {os.path.join(p, 'best.pt')})")
    if os.path.getsize(p) == 0:
        raise CheckpointError(f"{p}: zero-byte file; the save was interrupted or the copy failed; retrain or copy it again")
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        msg = " ".join(str(e).split())
        if "Unsupported global" in msg or "GLOBAL" in msg:  # every weights_only failure mentions weights_only; only these are code
            raise CheckpointError(
                f"{p}: refused: the file needs pickled code to load (unsafe); re-save it as a plain state dict "
                "or a pawlens checkpoint"
            ) from None
        why = msg.split("WeightsUnpickler error:", 1)[-1].split(" Check the documentation", 1)[0].strip()
        raise CheckpointError(f"{p}: not a torch checkpoint ({why[:100]}); pass the best.pt or last.pt written by pawlens-train") from None
    except Exception as e:  # truncated zip, foreign format, corrupt pickle stream (KeyError, EOFError, ...)
        raise CheckpointError(
            f"{p}: truncated or not a torch checkpoint ({type(e).__name__}); retrain or copy the file again"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        hint = " (it looks like a bare state dict: load it with --weights PATH instead)" if isinstance(obj, dict) else ""
        raise CheckpointError(f"{p}: not a pawlens checkpoint{hint}")
    ver = obj.get("format_version")
    if not isinstance(ver, int) or ver > FORMAT_VERSION or ver < 1:
        raise CheckpointError(
            f"{p}: checkpoint format version {ver!r} is not supported (this pawlens reads 1..{FORMAT_VERSION}); upgrade pawlens"
        )
    for key in ("arch", "class_names", "preprocess", "state_dict"):
        if key not in obj:
            raise CheckpointError(f"{p}: checkpoint lacks {key!r}; it is damaged or was not written by pawlens")
    try:  # everything that later sizes a model or a buffer, checked here once
        from .artifact import check_class_names

        check_class_names(obj["class_names"])
        PreprocessConfig.from_dict(obj["preprocess"])
        if not isinstance(obj["arch"], str):
            raise ValueError(f"arch must be a registry name, got {type(obj['arch']).__name__}")
        if not isinstance(obj.get("model_args", {}), dict):
            raise ValueError("model_args must be an object of arguments")
        if not isinstance(obj["state_dict"], dict):
            raise ValueError("state_dict must be a dict of tensors")
    except ValueError as e:
        raise CheckpointError(f"{p}: invalid checkpoint field: {e}; retrain, or use the checkpoint pawlens-train wrote") from None
    obj["path"] = p
    return obj


def model_from_checkpoint(ckpt: dict[str, Any], *, eval_mode: bool = True):
    """Rebuild the model a checkpoint describes and load its weights."""
    from .registry import create_model

    p = ckpt.get("path", "<checkpoint>")
    model = None
    try:
        model = create_model(ckpt["arch"], num_classes=len(ckpt["class_names"]), weights="none", **ckpt.get("model_args", {}))
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except CheckpointError:
        raise
    except Exception as e:
        sd = ckpt.get("state_dict")
        if model is not None and isinstance(sd, dict):  # say how far off it is, not torch's list of every key
            ref = model.state_dict()
            missing = [k for k in ref if k not in sd]
            unexpected = [k for k in sd if k not in ref]
            shaped = [k for k in ref if k in sd and tuple(getattr(sd[k], "shape", ())) != tuple(ref[k].shape)]
            example = (missing or unexpected or shaped or ["-"])[0]
            why = f"{len(missing)} missing, {len(unexpected)} unexpected, {len(shaped)} mis-shaped tensors, e.g. {example}"
        else:
            why = " ".join(str(e).split())[:150]
        raise CheckpointError(f"{p}: its weights do not fit architecture {ckpt.get('arch')!r} ({why}); the file is damaged or its "
                              "arch is wrong: retrain, or use the checkpoint pawlens-train wrote") from None
    return model.eval() if eval_mode else model


def preprocess_from_checkpoint(ckpt: dict[str, Any]) -> PreprocessConfig:
    return PreprocessConfig.from_dict(ckpt["preprocess"])


def _plain(obj):
    """Make a config JSON/weights_only-safe: paths to str, tuples to lists, drop non-plain objects."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)
