"""The training configuration: defaults, validation, YAML files and the merge used by ``--resume``.

One flat dict of plain values drives everything (the CLI flags, a ``-c FILE.yaml`` and the library call
``train.loop.train(cfg)`` all use the same keys)::

    from pawlens.train.config import resolve_config
    cfg = resolve_config({"data": "photos", "model": "baseline", "epochs": 3})   # defaults filled in, checked

The resolved config is written as ``config.yaml`` next to the outputs and stored in every checkpoint
(``train_config``), so a run can be repeated or resumed without the original flags.
"""

from __future__ import annotations

import os
from typing import Any

from pawlens.console import read_config
from pawlens.errors import InputError
from pawlens.models.preprocess import AUGMENTS

#: Every training option with its default.  ``None`` means "derived": ``img_size``, ``unfreeze`` and the
#: keys of :data:`MODEL_DEFAULTS` come from the model's registry entry (its ``train_defaults``), else from
#: :data:`MODEL_DEFAULTS`; ``weights`` is ``imagenet`` for a model with pretrained weights and ``none`` for
#: the baseline; ``out`` is ``runs/train/<model>`` (numbered when taken).
DEFAULTS: dict[str, Any] = {
    # data
    "data": None,
    "max_images": None,
    "val_frac": 0.15,
    "test_frac": 0.15,
    "data_cache": os.path.join("~", ".cache", "pawlens"),
    "num_workers": 2,
    "cache": "auto",
    # model
    "model": "baseline",
    "weights": None,
    "img_size": None,
    # schedule
    "epochs": None,
    "head_epochs": None,
    "unfreeze": None,
    "bn_frozen": None,
    "l2sp": None,
    "batch_size": 32,
    "accumulate": 1,
    "lr": None,
    "lr_head": None,
    "lr_backbone": None,
    "weight_decay": None,
    "label_smoothing": None,
    "augment": None,
    "patience": None,
    "min_delta": 1e-4,
    "lr_patience": 1,
    "schedule": None,
    "lr_factor": 0.3,
    # runtime
    "device": "auto",
    "amp": "auto",
    "channels_last": "auto",
    "seed": 42,
    "deterministic": True,
    # output
    "out": None,
    "resume": None,
    "errors_grid": 16,
}

#: Fallbacks of the per-model keys, for a model whose registry entry does not set them.
MODEL_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "head_epochs": 3,
    "lr": 1e-3,
    "lr_head": 3e-4,
    "lr_backbone": 1e-5,
    "bn_frozen": False,
    "l2sp": 0.0,
    "schedule": "plateau",
    "weight_decay": 1e-4,
    "label_smoothing": 0.0,
    "augment": "light",
    "patience": 4,
}

AMP_CHOICES = ("auto", "off", "bf16", "fp16")
SCHEDULES = ("plateau", "cosine")
CACHE_CHOICES = ("auto", "ram", "off")
TRISTATE = ("auto", "on", "off")
DEVICE_CHOICES = ("auto", "cpu", "cuda")

#: Keys a resumed run may not change (the weights and the split depend on them).
FROZEN_ON_RESUME = ("model", "img_size", "seed", "max_images", "val_frac", "test_frac", "weights")

_INT = ("max_images", "num_workers", "img_size", "epochs", "head_epochs", "batch_size", "accumulate", "patience", "lr_patience", "seed",
        "errors_grid")
_FLOAT = ("val_frac", "test_frac", "lr", "lr_head", "lr_backbone", "weight_decay", "label_smoothing", "min_delta", "lr_factor", "l2sp")
_STR = ("schedule", "augment", "cache", "data", "data_cache", "model", "weights", "device", "amp", "channels_last", "out", "resume")


def valid_keys() -> list[str]:
    return sorted(DEFAULTS)


def check_keys(cfg: dict[str, Any], where: str) -> None:
    """Raise a one-line InputError naming the unknown keys and listing the valid ones."""
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid_keys())}")


def load_yaml_config(path: str) -> dict[str, Any]:
    """Read a YAML mapping of training options (``img-size`` and ``img_size`` both accepted)."""
    cfg = read_config(path)
    check_keys(cfg, path)
    return cfg


def resolve_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fill in defaults, coerce types and check ranges; returns a new dict with every key of DEFAULTS.

    Raises:
        InputError: unknown keys, wrong types or values out of range (one line each).
    """
    check_keys(cfg, "training config")
    out = {**DEFAULTS, **cfg}
    for k in _INT:
        out[k] = _coerce(k, out[k], int)
    for k in _FLOAT:
        out[k] = _coerce(k, out[k], float)
    for k in _STR:
        if out[k] is not None:
            out[k] = os.fspath(out[k]) if isinstance(out[k], os.PathLike) else str(out[k])
    _fill_model_defaults(out)
    out["deterministic"] = _coerce_bool("deterministic", out["deterministic"])
    out["bn_frozen"] = _coerce_bool("bn_frozen", out["bn_frozen"])
    if isinstance(out["unfreeze"], str):
        out["unfreeze"] = [s.strip() for s in out["unfreeze"].split(",") if s.strip()]
    if out["unfreeze"] is not None:
        out["unfreeze"] = [str(s) for s in out["unfreeze"]]

    if not out["data"] and not out["resume"]:
        raise InputError("no data: pass --data DIR (DIR/<class>/*.jpg, DIR/train|val|test/<class>/, DIR/cat.1.jpg) or --data oxford-pets")
    _choice("amp", out["amp"], AMP_CHOICES)
    _choice("schedule", out["schedule"], SCHEDULES)
    _choice("augment", out["augment"], AUGMENTS)
    _choice("cache", out["cache"], CACHE_CHOICES)
    _choice("channels_last", out["channels_last"], TRISTATE)
    dev = out["device"]
    if dev not in DEVICE_CHOICES and not dev.startswith("cuda:"):
        raise InputError(f"--device {dev!r} is not one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    _at_least("epochs", out["epochs"], 1)
    _at_least("batch_size", out["batch_size"], 1)
    _at_least("accumulate", out["accumulate"], 1)
    _at_least("num_workers", out["num_workers"], 0)
    _at_least("head_epochs", out["head_epochs"], 0)
    _at_least("patience", out["patience"], 1)
    _at_least("lr_patience", out["lr_patience"], 0)
    _at_least("errors_grid", out["errors_grid"], 0)
    if out["max_images"] is not None:
        _at_least("max_images", out["max_images"], 4)
    if out["img_size"] is not None:
        _at_least("img_size", out["img_size"], 16)
        from pawlens.models.preprocess import MAX_INPUT_SIZE

        if out["img_size"] > MAX_INPUT_SIZE:  # every artifact's loader refuses larger input sizes (see PreprocessConfig.from_dict)
            raise InputError(f"--img-size must be at most {MAX_INPUT_SIZE}, got {out['img_size']}")
    for k in ("lr", "lr_head", "lr_backbone"):
        if not out[k] > 0:
            raise InputError(f"--{k.replace('_', '-')} must be > 0, got {out[k]}")
    if not (0 <= out["val_frac"] < 1 and 0 <= out["test_frac"] < 1 and out["val_frac"] + out["test_frac"] < 0.9 and out["val_frac"] > 0):
        raise InputError(f"--val-frac {out['val_frac']} / --test-frac {out['test_frac']}: need 0 < val, 0 <= test, val + test < 0.9")
    if out["l2sp"] < 0:
        raise InputError(f"--l2sp must be >= 0 (0 turns it off), got {out['l2sp']}")
    if out["weight_decay"] < 0:
        raise InputError(f"--weight-decay must be >= 0, got {out['weight_decay']}")
    if not 0 <= out["label_smoothing"] < 1:
        raise InputError(f"--label-smoothing must be in [0, 1), got {out['label_smoothing']}")
    if not 0 < out["lr_factor"] < 1:
        raise InputError(f"--lr-factor must be in (0, 1), got {out['lr_factor']}")
    return out


def _fill_model_defaults(out: dict[str, Any]) -> None:
    """Replace the derived (None) per-model keys by the model's ``train_defaults``, then by :data:`MODEL_DEFAULTS`."""
    from pawlens.models.registry import list_models, model_info

    own: dict[str, Any] = {}
    if isinstance(out.get("model"), str) and out["model"] in list_models():
        own = model_info(out["model"]).train_defaults
    for k, v in MODEL_DEFAULTS.items():
        if out.get(k) is None:
            out[k] = own.get(k, v)
    if out.get("img_size") is None and own.get("img_size") is not None:
        out["img_size"] = own["img_size"]


def merge_for_resume(saved: dict[str, Any], overrides: dict[str, Any], ckpt_path: str) -> dict[str, Any]:
    """The config of a resumed run: the saved one, updated with the keys the user gave explicitly.

    Keys in :data:`FROZEN_ON_RESUME` must not change (InputError otherwise).
    """
    check_keys(overrides, "training config")
    saved = {k: v for k, v in saved.items() if k in DEFAULTS}
    saved.setdefault("augment", "light")  # runs saved before --augment existed trained with the light augmentation
    for k in FROZEN_ON_RESUME:
        if k in overrides and overrides[k] is not None and k in saved and _norm(overrides[k]) != _norm(saved[k]):
            raise InputError(
                f"--{k.replace('_', '-')} {overrides[k]} differs from the run being resumed ({saved[k]}, in {ckpt_path}); "
                "drop the flag, or start a new run with another --out"
            )
    merged = {**saved, **{k: v for k, v in overrides.items() if k not in FROZEN_ON_RESUME}}
    merged["out"] = overrides.get("out")  # default: the folder of the checkpoint, wherever the run was moved to
    merged["resume"] = ckpt_path
    return merged


def to_yaml(cfg: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump({k: cfg[k] for k in sorted(cfg)}, sort_keys=False)


def _norm(v):
    return str(v) if v is not None else None


def _r(value) -> str:
    """A value for an error line: its repr, cut short (a YAML value can be enormous)."""
    r = repr(value) if not isinstance(value, (list, dict, tuple)) or len(value) < 20 else f"a {type(value).__name__} of {len(value)} items"
    return r if len(r) <= 80 else r[:77] + "..."


def _coerce(key: str, value, typ):
    if value is None:
        return None
    if isinstance(value, bool) or (typ is int and isinstance(value, float) and not value.is_integer()):
        raise InputError(f"{key}: expected {typ.__name__}, got {_r(value)}")
    try:
        return typ(value)
    except (TypeError, ValueError):
        raise InputError(f"{key}: expected {typ.__name__}, got {_r(value)}") from None


def _coerce_bool(key: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InputError(f"{key}: expected true/false, got {_r(value)}")


def _choice(key: str, value, choices) -> None:
    if value not in choices:
        raise InputError(f"--{key.replace('_', '-')} {_r(value)} is not one of {', '.join(choices)}")


def _at_least(key: str, value, lo) -> None:
    if value is not None and value < lo:
        raise InputError(f"--{key.replace('_', '-')} must be at least {lo}, got {value}")
