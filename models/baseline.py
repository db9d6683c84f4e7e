"""The from-scratch baseline: four conv blocks (conv-BN-ReLU x2, max-pool), global pooling, dropout, linear.

About 1.2M parameters; works at any input size >= 32 (tests use 32-64 px; its training default is 96 px).

Its training defaults (the registry's ``train_defaults``) are a from-scratch recipe measured on the shared photos on a
2-core CPU (README, "Measured"): 96 px, 30 epochs, AdamW at 3e-3 with a cosine decay, weight decay 5e-4, label
smoothing 0.1 and random resized crops (80-100% of the area): 78.7% test / 80.5% validation accuracy in 3 minutes
with the photo cache; a small input buys the epochs it needs.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .registry import register_model
from .weights import load_state_dict_file


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class BaselineCNN(nn.Module):
    def __init__(self, num_classes: int = 2, widths=(32, 64, 128, 256), dropout: float = 0.3, stem_stride: int = 1):
        super().__init__()
        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        cin = 3
        if stem_stride > 1:  # a strided 3x3 stem: every block then runs at 1/stride^2 of the cost
            layers["stem"] = nn.Sequential(nn.Conv2d(3, widths[0], 3, stride=stem_stride, padding=1, bias=False),
                                           nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
            cin = widths[0]
        for i, w in enumerate(widths):
            layers[f"block{i + 1}"] = _block(cin, w)
            if i < len(widths) - 1:
                layers[f"pool{i + 1}"] = nn.MaxPool2d(2)
            cin = w
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def _cam_head(model: "BaselineCNN", acts: torch.Tensor) -> torch.Tensor:
    return model.classifier(model.pool(acts))  # what follows features.block4 (the last block has no pooling)


@register_model("baseline", head="classifier", cam_layer="features.block4", unfreeze_default=(), default_input_size=96,
                cam_head=_cam_head,
                new_args={"stem_stride": 2},
                train_defaults={"epochs": 30, "lr": 3e-3, "schedule": "cosine", "weight_decay": 5e-4, "label_smoothing": 0.1,
                                "augment": "resized-crop", "patience": 10})
def baseline(num_classes: int = 2, weights: str = "none", widths=(32, 64, 128, 256), dropout: float = 0.3, stem_stride: int = 1):
    """The from-scratch CNN; new models get ``stem_stride=2`` (the registry's ``new_args``: 3-4x cheaper per image, so a
    CPU budget buys more epochs), checkpoints made before it (no ``stem_stride`` in ``model_args``) rebuild with 1."""
    model = BaselineCNN(num_classes=num_classes, widths=tuple(widths), dropout=dropout, stem_stride=int(stem_stride))
    if weights not in (None, "none"):
        if weights == "imagenet":
            from pawlens.errors import WeightsError

            raise WeightsError("the baseline has no ImageNet weights; use --weights none or a state-dict PATH")
        load_state_dict_file(model, weights, arch="baseline")
    return model
