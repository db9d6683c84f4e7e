"""Shared fixtures: synthetic image folders, tiny checkpoints, and the real photos in ../shared/data.

Tests that need the real photos use the ``shared_data`` fixture (marker ``realdata``) and skip with
a reason where ``../shared/data`` is absent.  Everything else makes its own small images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PAWLENS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_configure(config):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "catsdogs" / "cat").is_dir():
        pytest.skip(f"real photos not found at {SHARED_DATA} (../shared/data is absent on this machine)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_photos(shared_data) -> list[str]:
    """A fixed, small, class-balanced list of real photo paths (8 cats, 8 dogs)."""
    cats = sorted((shared_data / "catsdogs" / "cat").glob("*.jpg"))[:8]
    dogs = sorted((shared_data / "catsdogs" / "dog").glob("*.jpg"))[:8]
    return [str(p) for p in cats + dogs]


def synthetic_image(label: int, size: int = 64, rng: np.random.Generator | None = None) -> np.ndarray:
    """A learnable synthetic photo: class 0 a bright disc, class 1 a dark-on-light square, random clutter."""
    rng = rng or np.random.default_rng(0)
    h = w = size
    img = rng.integers(60, 140, size=(h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.integers(h // 4, 3 * h // 4, size=2)
    r = size // 5
    if label == 0:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[mask] = (230, 120, 40)
    else:
        mask = (abs(yy - cy) < r) & (abs(xx - cx) < r)
        img[mask] = (40, 90, 220)
    return img


def write_image_folder(root: Path, n_per_class: int = 12, size: int = 64, classes=("cat", "dog"), seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for ci, c in enumerate(classes):
        d = root / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            Image.fromarray(synthetic_image(ci % 2, size, rng)).save(d / f"{c}.{i}.jpg", quality=95)
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """An ImageFolder layout with 12 synthetic 64 px images per class (cat, dog)."""
    return write_image_folder(tmp_path / "data")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained baseline checkpoint at 32 px (2 classes: cat, dog)."""
    import torch

    from models.checkpoint import save_checkpoint
    from models.preprocess import PreprocessConfig
    from models.registry import create_model

    torch.manual_seed(0)
    m = create_model("baseline", num_classes=2)
    p = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(p, model=m, arch="baseline", class_names=["cat", "dog"], preprocess=PreprocessConfig.for_size(32))
    return p


@pytest.fixture(scope="session")
def resnet_checkpoint(tmp_path_factory) -> Path:
    """An untrained ResNet50 checkpoint at 224 px (random weights, 2 classes)."""
    import torch

    from models.checkpoint import save_checkpoint
    from models.preprocess import PreprocessConfig
    from models.registry import create_model

    torch.manual_seed(0)
    m = create_model("resnet50", num_classes=2)
    p = tmp_path_factory.mktemp("ckpt") / "resnet50.pt"
    save_checkpoint(p, model=m, arch="resnet50", class_names=["cat", "dog"], preprocess=PreprocessConfig.for_size(224))
    return p
