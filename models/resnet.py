"""ResNet50 transfer model: torchvision's ResNet50 with a new head (dropout + linear).

Weights (``--weights``):

* ``imagenet``: torchvision's ``ResNet50_Weights.IMAGENET1K_V2`` download, cached where torchvision
  caches it (``$TORCH_HOME/hub/checkpoints``).  Offline and not cached -> a one-line
  :class:`~pawlens.errors.WeightsError` naming ``--weights PATH`` and ``--weights none``.
* a path to a local state dict of a torchvision ResNet50 (ImageNet head ignored), for machines
  without internet;
* ``none``: random initialisation (tests, latency benchmarks).
"""

from __future__ import annotations

from torch import nn

from pawlens.errors import WeightsError

from .registry import register_model
from .weights import load_state_dict_file


def _cam_head(model, acts):
    import torch

    return model.fc(torch.flatten(model.avgpool(acts), 1))  # torchvision's ResNet.forward after layer4


@register_model(
    "resnet50", head="fc", cam_layer="layer4", unfreeze_default=("layer4",), default_input_size=224, pretrained=True,
    cam_head=_cam_head,
)
def resnet50(num_classes: int = 2, weights: str = "none", dropout: float = 0.2):
    from torchvision.models import ResNet50_Weights
    from torchvision.models import resnet50 as tv_resnet50

    if weights == "imagenet":
        try:
            model = tv_resnet50(weights=ResNet50_Weights.IMAGENET1K_V2)
        except Exception as e:  # urllib.error.URLError, socket errors, HTTP errors, hash mismatch
            reason = " ".join(str(getattr(e, "reason", e)).split())[:100]
            raise WeightsError(
                f"could not download ImageNet weights for resnet50 ({type(e).__name__}: {reason}); "
                "offline? pass --weights PATH (a local torchvision resnet50 state dict) or --weights none"
            ) from None
    else:
        model = tv_resnet50(weights=None)
        if weights not in (None, "none"):
            load_state_dict_file(model, weights, arch="resnet50", ignore_prefixes=("fc.",))
    model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(model.fc.in_features, num_classes))
    return model
