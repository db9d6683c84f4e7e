"""Photos for a purpose (parity, calibration, agreement): listed, evenly sampled and labelled by one rule.

    s = sample_images(image_files("photos/"), ["cat", "dog"], limit=32)   # s.items, s.labels, s.used, s.skipped

Export's parity and calibration sets and the bench's agreement photos both come from here.  Labels follow the layouts
``pawlens-train`` reads (:mod:`pawlens.train.data`): a class folder anywhere above the file (``cat/x.jpg``,
``train/cat/x.jpg``, ``cat/sub/x.jpg``) or a Kaggle-flat name (``cat.123.jpg``, also inside ``train/``); -1 when
neither names one of the model's classes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from pawlens.errors import ImageError, InputError

__all__ = ["Sample", "image_files", "label_of", "sample_images", "spread"]


def label_of(path: str, class_names: Sequence[str], root: str | None = None) -> int:
    """The class index of a photo: :func:`~pawlens.models.preprocess.label_from_path` (its folder or Kaggle-flat name),
    else a class-named folder further up, below ``root`` (``cat/sub/x.jpg``); -1 if none."""
    from .preprocess import label_from_path

    y = label_from_path(path, class_names)
    if y >= 0 or root is None:
        return y
    lower = [c.lower() for c in class_names]
    rel = os.path.relpath(os.path.dirname(os.path.abspath(path)), os.path.abspath(root))
    for part in rel.split(os.sep)[:-1] if rel != "." else []:
        if part.lower() in lower:
            return lower.index(part.lower())
    return -1


def split_entry(root: str, p: str, split_path: str, *, fix: str = "delete it (pawlens-train writes a new one)") -> str:
    """A photo path from ``split_path`` (a run's ``split.json``), resolved against its data folder ``root``.

    DataError when it leaves that folder (``../..``, an absolute path elsewhere): pawlens-train writes only paths inside
    it, so such an entry was edited in, and reading it would calibrate or gate on files the user never gave.  The check
    is on the path as written (symlinks inside the folder stay allowed)."""
    from pawlens.errors import DataError

    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p))
    if os.path.commonpath([base, full]) != base:
        raise DataError(f"{split_path}: entry {p!r} is outside its data folder {base}; {fix}")
    return full


def image_files(images: str | os.PathLike | Sequence[str]) -> list[str]:
    """The photos ``--images`` names: a folder (searched recursively), a run's ``split.json`` (its test split), or a list of files."""
    from .preprocess import list_images

    if not isinstance(images, (str, os.PathLike)):
        return [os.fspath(p) for p in images]
    images = os.fspath(images)
    if images.endswith(".json") and os.path.isfile(images):
        try:
            with open(images, encoding="utf-8") as f:
                d = json.load(f)
            root = d.get("data") or os.path.dirname(images)
            test = d["splits"]["test"]
            return [split_entry(root, p, images, fix="pass a folder of photos to --images instead") for p, *_ in test]
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
    from .preprocess import load_image

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
