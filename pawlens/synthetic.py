"""Synthetic stand-in photos for machines with no data: a learnable two-class toy problem.

Class 0 is an orange disc, class 1 a blue square, each at a random place on grey clutter.  The demo
uses them (labelled as synthetic) to calibrate and check an untrained model when no real photos
exist; tests use them to train tiny models in seconds.  They say nothing about real cats and dogs.
"""

from __future__ import annotations

import os

import numpy as np


def synthetic_image(label: int, size: int = 64, rng: np.random.Generator | None = None) -> np.ndarray:
    """One (size, size, 3) uint8 RGB image of class ``label % 2``."""
    rng = rng or np.random.default_rng(0)
    h = w = size
    img = rng.integers(60, 140, size=(h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.integers(h // 4, 3 * h // 4, size=2)
    r = size // 5
    if label % 2 == 0:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[mask] = (230, 120, 40)
    else:
        mask = (abs(yy - cy) < r) & (abs(xx - cx) < r)
        img[mask] = (40, 90, 220)
    return img


def write_image_folder(root, n_per_class: int = 12, size: int = 64, classes=("cat", "dog"), seed: int = 0):
    """Write an ImageFolder layout ``root/<class>/<class>.<i>.jpg`` of synthetic images; returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for ci, c in enumerate(classes):
        d = os.path.join(root, c)
        os.makedirs(d, exist_ok=True)
        for i in range(n_per_class):
            Image.fromarray(synthetic_image(ci, size, rng)).save(os.path.join(d, f"{c}.{i}.jpg"), quality=95)
    return root
