"""The photos every bench row sees (and the ones export gates and calibrates on): sampled and labelled by one rule.

    inputs = bench_inputs("photos/", 32, ["cat", "dog"], calibrate=True)   # agreement + calibration frames, .real_photos

Photos are listed, sampled and labelled by :mod:`pawlens.models.photos`, the rule export's parity and calibration
sets follow too.  Without photos the bench uses synthetic frames.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pawlens.errors import InputError
from pawlens.models.photos import Sample, image_files, sample_images

LOG = logging.getLogger("pawlens")


def export_gate(model_path: str | os.PathLike) -> dict | None:
    """What the export gated ``model_path`` on, from its folder's ``parity.json``; None without a record of this file.

    ``{"status", "n", "top1_agreement", "split", "source"}``: the artifact's status (passed, failed...), how many real
    photos its agreement was judged on, the agreement, and the ``split.json`` whose test photos those were ("" when
    they came from elsewhere or that file is gone).  A record whose sha256 is not the file's (the file was replaced
    since) is no record.
    """
    from pawlens.fs import sha256_file

    path = os.fspath(model_path)
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(path)), "parity.json"), encoding="utf-8") as f:
            doc = json.load(f)
        art = next(a for a in doc.get("artifacts", []) if isinstance(a, dict) and a.get("file") == os.path.basename(path))
        if art.get("sha256") != sha256_file(path):
            return None
        inputs = doc.get("inputs") or {}
        source = str(inputs.get("parity_source") or "")
        split = source.removesuffix(" (test photos)") if source.endswith(" (test photos)") else ""
        return {"status": str(art.get("status", "")), "n": int(inputs.get("n_real") or 0),
                "top1_agreement": (art.get("parity") or {}).get("top1_agreement"),
                "split": split if split and os.path.isfile(split) else "", "source": source}
    except (OSError, ValueError, StopIteration, AttributeError, TypeError):
        return None


def synthetic_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Deterministic stand-in frames (640x480 RGB): the toy two-class pictures of pawlens.synthetic, upscaled."""
    import cv2

    from pawlens.synthetic import synthetic_image

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
