"""Model registry and factory (after timm's ``@register_model`` / ``create_model``).

    >>> from models.registry import create_model, list_models
    >>> list_models()
    ['baseline', 'resnet50']
    >>> m = create_model("baseline", num_classes=2)

Each entry records what the rest of the product needs to know about an architecture: which
module is the classification head (trained alone in phase 1), which backbone blocks phase 2
unfreezes by default, which layer Grad-CAM explains, and the default input size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .errors import InputError


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable
    head: str  # attribute name of the classification head
    cam_layer: str  # dotted module path Grad-CAM hooks
    unfreeze_default: tuple[str, ...] = field(default_factory=tuple)  # phase-2 blocks
    default_input_size: int = 224
    pretrained: bool = False  # has ImageNet weights


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, *, head: str, cam_layer: str, unfreeze_default=(), default_input_size=224, pretrained=False):
    def deco(fn):
        _REGISTRY[name] = ModelInfo(name, fn, head, cam_layer, tuple(unfreeze_default), default_input_size, pretrained)
        return fn

    return deco


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise InputError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int = 2, weights: str | None = "none", **kwargs):
    """Build a registered model.

    Args:
        name: ``baseline`` or ``resnet50``.
        num_classes: size of the new classification head.
        weights: ``none``; ``imagenet`` (resnet50 only: torchvision's download, cached as torchvision
            caches it); or a path to a local state dict.
        **kwargs: architecture arguments (saved in checkpoints as ``model_args``).
    """
    info = model_info(name)
    if int(num_classes) < 2:
        raise InputError(f"num_classes must be at least 2, got {num_classes}")
    return info.builder(num_classes=int(num_classes), weights=weights or "none", **kwargs)


def _ensure_loaded() -> None:
    from . import baseline, resnet  # noqa: F401  (registration side effect)
