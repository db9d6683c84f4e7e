"""The photos every bench row sees (and the ones export gates and calibrates on): sampled and labelled by one rule.

    s = sample_images(image_files("photos/"), ["cat", "dog"], limit=32)   # s.items, s.labels, s.used, s.skipped
    inputs = bench_inputs("photos/", 32, ["cat", "dog"], calibrate=True)   # agreement + calibration frames, .real_photos

Labels come from the layouts ``pawlens-train`` reads (:mod:`pawlens.train.data`): a class folder anywhere above the
file (``cat/x.jpg``, ``train/cat/x.jpg``, ``cat/sub/x.jpg``) or a Kaggle-flat name (``cat.123.jpg``, also inside
``train/``); -1 when neither names one of the model's classes.  Without photos the bench uses synthetic frames.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from pawlens.models.errors import ImageError, InputError

LOG = logging.getLogger("pawlens")


def label_of(path: str, class_names: Sequence[str], root: str | None = None) -> int:
    """The class index of a photo: :func:`~pawlens.models.preprocess.label_from_path` (its folder or Kaggle-flat name),
    else a class-named folder further up, below ``root`` (``cat/sub/x.jpg``); -1 if none."""
    from pawlens.models.preprocess import label_from_path

    y = label_from_path(path, class_names)
    if y >= 0 or root is None:
        return y
    lower = [c.lower() for c in class_names]
    rel = os.path.relpath(os.path.dirname(os.path.abspath(path)), os.path.abspath(root))
    for part in rel.split(os.sep)[:-1] if rel != "." else []:
        if part.lower() in lower:
            return lower.index(part.lower())
    return -1


def image_files(images: str | os.PathLike | Sequence[str]) -> list[str]:
    """The photos ``--images`` names: a folder (searched recursively), a run's ``split.json`` (its test split), or a list of files."""
    from pawlens.models.preprocess import list_images

    if not isinstance(images, (str, os.PathLike)):
        return [os.fspath(p) for p in images]
    images = os.fspath(images)
    if images.endswith(".json") and os.path.isfile(images):
        try:
            with open(images, encoding="utf-8") as f:
                d = json.load(f)
            root = d.get("data") or os.path.dirname(images)
            test = d["splits"]["test"]
            return [p if os.path.isabs(p) else os.path.join(root, p) for p, *_ in test]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"--images {images}: not a pawlens split.json with a test split ({type(e).__name__})") from None
    return list_images(images)


def spread(paths: Sequence[str], limit: int | None) -> list[str]:
    """At most ``limit`` of ``paths``, evenly spread over the list (deterministic)."""
    paths = list(paths)
    if not limit or len(paths) <= limit:
        return paths
    idx = np.linspace(0, len(paths) - 1, int(limit)).round().astype(int)
    return [paths[i] for i in sorted(set(idx.tolist()))]


@dataclass
class Sample:
    """Photos read for one purpose: what was made of each (``items``), its label, the files used and the ones skipped."""

    items: list[Any]
    labels: list[int]
    used: list[str]
    skipped: list[str]

    @property
    def n_labelled(self) -> int:
        return sum(1 for y in self.labels if y >= 0)


def sample_images(paths: Sequence[str], class_names: Sequence[str], *, limit: int | None = None, root: str | None = None,
                  prepare: Callable[[np.ndarray], Any] | None = None) -> Sample:
    """Read up to ``limit`` of ``paths`` (evenly spread), label each (:func:`label_of`), and apply ``prepare`` to the
    decoded RGB frame; a file that fails to load or prepare (:class:`ImageError`) is skipped and listed, never fatal."""
    from pawlens.models.preprocess import load_image

    out = Sample([], [], [], [])
    for p in spread(paths, limit):
        try:
            frame = load_image(p)
            item = prepare(frame) if prepare is not None else frame
        except ImageError as e:
            out.skipped.append(str(e) if p in str(e) else f"{p}: {e}")
            continue
        out.items.append(item)
        out.labels.append(label_of(p, class_names, root))
        out.used.append(p)
    return out


def synthetic_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Deterministic stand-in frames (640x480 RGB): the toy two-class pictures of models.synthetic, upscaled."""
    import cv2
    from pawlens.models.synthetic import synthetic_image

    rng = np.random.default_rng(seed)
    return [cv2.resize(synthetic_image(i % 2, 160, rng), (640, 480), interpolation=cv2.INTER_LINEAR) for i in range(n)]


@dataclass
class BenchInputs:
    """The frames of one run: agreement (with labels, as class names) and calibration; what they are, as fields."""

    agree: list[np.ndarray]
    names: list[str | None]  # the class name of each agreement frame (None: unlabelled)
    calib: list[np.ndarray]
    real_photos: bool  # real photos (not synthetic frames): the INT8 agreement goal is judged only on these
    note: str  # how the report describes them
    files: list[str] = field(default_factory=list)

    @property
    def n_labelled(self) -> int:
        return sum(1 for n in self.names if n is not None)

    @property
    def shared_calibration(self) -> bool:
        return self.calib is self.agree


def _real_frames(images, n: int, class_names: Sequence[str]) -> Sample:
    files = image_files(images)
    if not files:
        raise InputError(f"--images {images}: no images found there")
    root = os.fspath(images) if isinstance(images, (str, os.PathLike)) and os.path.isdir(images) else None
    s = sample_images(files, class_names, limit=n, root=root)
    for msg in s.skipped:
        LOG.warning("bench: skipped %s", msg)
    if not s.items:
        raise InputError(f"--images {images}: none of the images could be read")
    return s


def bench_inputs(images, n_images: int, class_names: Sequence[str], *, calibrate: bool) -> BenchInputs:
    """``n_images`` agreement frames (and, with ``calibrate``, as many others for INT8 calibration): real photos from
    ``images`` (a folder, a list of files or a ``split.json``), or synthetic frames when ``images`` is empty."""
    def name(y: int) -> str | None:
        return class_names[y] if y >= 0 else None

    if not images:
        frames = synthetic_frames(2 * n_images)
        return BenchInputs(frames[1::2], [None] * n_images, frames[0::2], False,
                           f"{n_images} synthetic frames (no --images given; INT8 calibrated on {n_images} others)")
    where = os.fspath(images) if isinstance(images, (str, os.PathLike)) else f"{len(images)} listed files"
    if not calibrate:  # nothing to calibrate here: every photo serves agreement and accuracy
        s = _real_frames(images, n_images, class_names)
        return BenchInputs(s.items, [name(y) for y in s.labels], s.items, True, f"{len(s.items)} real photos from {where}", s.used)
    s = _real_frames(images, 2 * n_images, class_names)
    agree, labels = s.items[1::2] or s.items, s.labels[1::2] or s.labels
    calib = s.items[0::2]
    return BenchInputs(agree, [name(y) for y in labels], calib, True,
                       f"{len(agree)} real photos from {where} (calibration: {len(calib)} others)", s.used)
