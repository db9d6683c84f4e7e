"""Model registry and factory (after timm's ``@register_model`` / ``create_model``).

    >>> from pawlens.models.registry import create_model, list_models
    >>> list_models()
    ['baseline', 'efficientnet_lite0', 'resnet50']
    >>> m = create_model("baseline", num_classes=2)

Each entry records what the rest of the product needs to know about an architecture: which
module is the classification head (trained alone in phase 1), which backbone blocks phase 2
unfreezes by default, which layer Grad-CAM explains, and its data config: the input size, the share of
the resized image the centre crop keeps, and the normalisation its weights were trained with (timm's
``pretrained_cfg`` / ``resolve_data_config``).  :meth:`ModelInfo.preprocess` turns it into the
:class:`~models.preprocess.PreprocessConfig` every artifact made from the model carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from pawlens.errors import InputError

from .preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable
    head: str  # attribute name of the classification head
    cam_layer: str  # dotted module path Grad-CAM hooks
    unfreeze_default: tuple[str, ...] = field(default_factory=tuple)  # phase-2 blocks
    default_input_size: int = 224
    pretrained: bool = False  # has ImageNet weights
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875  # input_size / resize_size
    #: ``head_args(class_names) -> dict | None``: builder arguments of a head that starts from the pretrained
    #: classifier's classes these class names stand for (None, or a None result: a new random head)
    head_args: Callable | None = None
    #: the name of the builder argument that takes the input size (saved in the checkpoint's ``model_args``)
    size_arg: str | None = None
    #: INT8 calibration method export uses for this model unless told otherwise (minmax, entropy, percentile)
    calib_method: str = "minmax"
    #: builder arguments every new model of this kind gets (saved in its checkpoint's ``model_args``, so older
    #: checkpoints without them keep building as they were)
    new_args: dict = field(default_factory=dict)
    #: train in channels_last on CPUs too (measured faster there); others only with bf16 or on CUDA
    channels_last_cpu: bool = False
    #: training defaults of this model (keys of ``train.config.MODEL_DEFAULTS``); flags and YAML override them
    train_defaults: dict = field(default_factory=dict)
    #: ``cam_head(model, activations) -> logits``: the part of the network after ``cam_layer`` (timm's ``forward_head``).
    #: With it, Grad-CAM can run the part before the layer as one frozen TorchScript call (``GradCAM.trace_trunk``).
    cam_head: Callable | None = None

    def model_args(self, input_size: int | None, class_names, weights: str | None) -> dict:
        """The builder arguments a new model of this kind gets (saved as the checkpoint's ``model_args``): its input size
        where the architecture depends on it, and a head started from the pretrained classes when the weights have them."""
        args = dict(self.new_args)
        if self.size_arg:
            args[self.size_arg] = int(input_size or self.default_input_size)
        if weights not in (None, "none") and self.head_args is not None:
            args.update(self.head_args(class_names) or {})
        return args

    def preprocess(self, input_size: int | None = None) -> PreprocessConfig:
        """The preprocessing of this model at ``input_size`` (default: its own)."""
        return PreprocessConfig.for_size(input_size or self.default_input_size, self.crop_pct, mean=self.mean, std=self.std)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, *, head: str, cam_layer: str, unfreeze_default=(), default_input_size=224, pretrained=False, **data):
    """Register ``fn`` as ``name``; ``data`` holds the optional :class:`ModelInfo` fields (mean, std, crop_pct, head_args, ...)."""

    def deco(fn):
        _REGISTRY[name] = ModelInfo(name, fn, head, cam_layer, tuple(unfreeze_default), default_input_size, pretrained, **data)
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
        name: one of :func:`list_models`.
        num_classes: size of the new classification head.
        weights: ``none``; ``imagenet`` (resnet50: torchvision's download, cached as torchvision caches it;
            efficientnet_lite0: the file inside its weights package, no network); or a path to a local state dict.
        **kwargs: architecture arguments (saved in checkpoints as ``model_args``).
    """
    info = model_info(name)
    if int(num_classes) < 2:
        raise InputError(f"num_classes must be at least 2, got {num_classes}")
    return info.builder(num_classes=int(num_classes), weights=weights or "none", **kwargs)


def _ensure_loaded() -> None:
    from . import baseline, efficientnet, resnet  # noqa: F401  (registration side effect)
