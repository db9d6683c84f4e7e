"""Training data: the folder layouts users have, a reproducible stratified split, a cheap scan, the loaders.

Layouts (found by :func:`discover`):

* ``imagefolder``: ``DIR/<class>/*.jpg`` (torchvision ImageFolder; images may sit in sub-folders);
* ``presplit``: ``DIR/train/<class>/``, ``DIR/val/<class>/`` (or ``valid``/``validation``), optional
  ``DIR/test/<class>/``; each split may also be Kaggle-flat;
* ``kaggle-flat``: ``DIR/cat.123.jpg``, ``DIR/dog.456.jpg`` (the class is the name before the first dot);
  Kaggle's own download (``DIR/train/cat.1.jpg`` plus an unlabelled ``DIR/test1/``) is found too;
* ``oxford-pets``: ``--data oxford-pets`` downloads Oxford-IIIT Pet through torchvision into
  ``--data-cache`` and labels each image cat or dog (its ``binary-category``).

Without a pre-split the images are split per class (stratified) 70/15/15 from the seed, and the split is
saved as ``split.json`` (paths relative to the data folder).  ``--max-images N`` first takes a stratified
subset of N images.  Images are scanned once, cheaply (header, size and end-of-file marker); files that
fail are skipped and counted, and the Dataset skips anything that still fails to decode.

Usage::

    spec = discover("photos", seed=42, max_images=400)
    spec.scan()                          # drop unreadable files, DataError if nothing is left
    train_ds = ImageListDataset(spec.splits["train"], torch_train_transform(pre))
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pawlens.errors import DataError, one_line
from pawlens.fs import printable
from pawlens.models.photos import split_entry
from pawlens.models.preprocess import IMAGE_EXTENSIONS, MAX_ASPECT, MAX_PIXELS, list_images, load_image

LOG = logging.getLogger("pawlens")

SPLITS = ("train", "val", "test")
_VAL_NAMES = ("val", "valid", "validation")
_FLAT_NAME = re.compile(r"^(?P<cls>[A-Za-z][^.]*)\.[^.]+\.[A-Za-z]+$")
#: A camera's or phone's file-name prefix (IMG_cat.4199.jpg): what precedes the first dot is then no class name.
_CAMERA_PREFIX = re.compile(r"^(img|dsc|dscn|dscf|pxl|vid|mvimg|pict|photo|screenshot)[_-]", re.IGNORECASE)
SPLIT_FORMAT = "pawlens-split"
OXFORD_PETS = "oxford-pets"

Sample = tuple[str, int]  # (absolute path, class index)


@dataclass
class DataSpec:
    """What :func:`discover` found: classes, the three splits, and how they were made."""

    root: str
    layout: str
    class_names: list[str]
    splits: dict[str, list[Sample]]
    split_source: str  # "folders" | "seed" | "split.json" | "oxford-pets"
    seed: int = 42
    fractions: dict[str, float] = field(default_factory=dict)
    max_images: int | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for s, items in self.splits.items():
            c = np.bincount([y for _, y in items], minlength=len(self.class_names)) if items else np.zeros(len(self.class_names), int)
            out[s] = {name: int(c[i]) for i, name in enumerate(self.class_names)}
        return out

    def describe(self) -> str:
        c = self.counts()
        parts = [f"{s} {sum(c[s].values())}" for s in SPLITS if s in c]
        return f"{self.layout} layout, classes {', '.join(self.class_names)}; " + ", ".join(parts) + f" (split: {self.split_source})"

    def scan(self) -> int:
        """Drop unreadable images from every split (cheap checks, see :func:`quick_check`).

        Returns the number skipped.  Raises DataError when no image is readable, or fewer than two
        classes or no validation image remain.
        """
        total = sum(len(v) for v in self.splits.values())
        bad = []
        for s in list(self.splits):
            keep = []
            for path, y in self.splits[s]:
                why = quick_check(path)
                if why is None:
                    keep.append((path, y))
                else:
                    bad.append((path, why))
            self.splits[s] = keep
        self.skipped.extend(bad)
        if bad:
            ex = "; ".join(f"{p}: {w}" for p, w in bad[:3])
            LOG.warning(f"skipped {len(bad)} of {total} images that cannot be read (e.g. {ex})")
        left = sum(len(v) for v in self.splits.values())
        if left == 0:
            raise DataError(f"{self.root}: none of the {total} images can be read (e.g. {bad[0][0]}: {bad[0][1]}); check the files")
        present = sorted({self.class_names[y] for _, y in self.splits["train"]})
        if len(present) < 2:
            raise DataError(
                f"{self.root}: only class {present or ['(none)']} has readable training images; need at least two classes"
            )
        if not self.splits["val"]:
            raise DataError(f"{self.root}: no readable validation images; add images (at least 2 per class) or a val/ folder")
        return len(bad)

    def to_json(self) -> dict[str, Any]:
        def rel(p):
            if self.layout == OXFORD_PETS:
                return p
            r = os.path.relpath(p, self.root)
            return p if r.startswith("..") else r.replace(os.sep, "/")

        return {
            "format": SPLIT_FORMAT,
            "version": 1,
            "data": self.root,
            "layout": self.layout,
            "split_source": self.split_source,
            "seed": self.seed,
            "fractions": self.fractions,
            "max_images": self.max_images,
            "class_names": self.class_names,
            "counts": self.counts(),
            "skipped": [[rel(p), w] for p, w in self.skipped],
            "splits": {s: [[rel(p), int(y)] for p, y in items] for s, items in self.splits.items()},
        }

    def save(self, path: str) -> None:
        from pawlens.fs import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_json(), indent=1) + "\n")


# ----------------------------------------------------------------------------- discovery


def discover(
    data: str,
    *,
    seed: int = 42,
    max_images: int | None = None,
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    cache: str | None = None,
) -> DataSpec:
    """Find the layout of ``data`` and build the train/val/test lists (not yet scanned).

    Raises:
        DataError: missing or empty folder, no labels, fewer than two classes, Oxford Pets offline.
    """
    if data == OXFORD_PETS:
        return _oxford_pets(cache or os.path.join("~", ".cache", "pawlens"), seed=seed, max_images=max_images, val_frac=val_frac)
    root = os.path.abspath(os.path.expanduser(os.fspath(data)))
    if not os.path.exists(root):
        raise DataError(f"{data}: data folder not found; pass --data DIR with DIR/<class>/*.jpg (or --data oxford-pets)")
    if not os.path.isdir(root):
        raise DataError(f"{data}: is a file, not a data folder; pass the folder holding the class folders")
    fr = {"train": round(1 - val_frac - test_frac, 6), "val": val_frac, "test": test_frac}
    subdirs = {d.lower(): d for d in _subdirs(root)}
    val_dir = next((subdirs[n] for n in _VAL_NAMES if n in subdirs), None)
    if "train" in subdirs and val_dir is not None:
        return _presplit(root, subdirs, val_dir, seed=seed, max_images=max_images)
    if "train" in subdirs and not _class_folders(root, exclude=("train", "test", "test1")):
        inner = os.path.join(root, subdirs["train"])
        LOG.info(f"{root}: found train/ without val/: splitting {inner} by class {fr['train']:.0%}/{val_frac:.0%}/{test_frac:.0%}")
        spec = discover(inner, seed=seed, max_images=max_images, val_frac=val_frac, test_frac=test_frac)
        return spec
    samples, class_names, layout, notes = _labelled_images(root, data)
    spec = _make_split(root, layout, class_names, samples, seed=seed, max_images=max_images, fractions=fr)
    spec.notes += notes
    return spec


def _subdirs(root: str) -> list[str]:
    return sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))


def _class_folders(root: str, exclude=()) -> dict[str, list[str]]:
    """Sub-folders of ``root`` that hold images (recursively), by name."""
    out = {}
    for d in _subdirs(root):
        if d.lower() in exclude:
            continue
        imgs = list_images(os.path.join(root, d))
        if imgs:
            out[d] = imgs
    return out


def _flat_images(root: str) -> list[str]:
    return sorted(
        os.path.join(root, f)
        for f in os.listdir(root)
        if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".") and os.path.isfile(os.path.join(root, f))
    )


def _labelled_images(root: str, shown: str) -> tuple[list[tuple[str, str]], list[str], str, list[str]]:
    """(path, class name) pairs of an ImageFolder or Kaggle-flat folder, the class names and the layout."""
    notes = []
    folders = _class_folders(root)
    flat = _flat_images(root)
    if folders:
        if flat:
            notes.append(f"ignored {len(flat)} image(s) directly in {root} (the class folders are used)")
        pairs = [(p, c) for c, ps in folders.items() for p in ps]
        layout = "imagefolder"
    elif flat:
        pairs, unlabelled, camera = [], 0, []
        for p in flat:
            m = _FLAT_NAME.match(os.path.basename(p))
            if m and _CAMERA_PREFIX.match(m.group("cls")):
                camera.append(os.path.basename(p))
            elif m:
                pairs.append((p, m.group("cls").lower()))
            else:
                unlabelled += 1
        cam_note = ""
        if camera:
            ex = printable(camera[0])
            cam_note = (f"{len(camera)} image(s) named like a camera's files (e.g. {ex}), whose part before the first dot is no "
                        f"class; rename them CLASS.ID.jpg (cat.4199.jpg) or use DIR/<class>/*.jpg folders")
        if not pairs:
            raise DataError(f"{shown}: {len(flat)} images but no class in their names"
                            + (f": {cam_note}" if cam_note else "; use DIR/<class>/*.jpg folders or Kaggle names like cat.1.jpg"))
        if camera:
            notes.append(f"ignored in {root}: {cam_note}")
        if unlabelled:
            notes.append(f"ignored {unlabelled} image(s) in {root} whose names carry no class (expected CLASS.ID.jpg)")
        layout = "kaggle-flat"
    else:
        raise DataError(
            f"{shown}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)}); expected DIR/<class>/*.jpg, "
            "DIR/train|val|test/<class>/ or DIR/cat.1.jpg"
        )
    class_names = sorted({c for _, c in pairs})
    if len(class_names) < 2:
        n = len(pairs)
        deeper = os.path.join(root, class_names[0])
        inner = _class_folders(deeper) if os.path.isdir(deeper) else []
        fix = (f"; its class folders seem to sit one level deeper: pass --data {deeper}" if len(inner) >= 2 else
               "; need images of at least two classes (DIR/<class>/*.jpg, one folder per class)")
        raise DataError(f"{shown}: only one class ({class_names[0]!r}, {n} images){fix}")
    for n in notes:
        LOG.warning(n)
    return pairs, class_names, layout, notes


def _presplit(root: str, subdirs: dict[str, str], val_dir: str, *, seed: int, max_images: int | None) -> DataSpec:
    parts = {"train": subdirs["train"], "val": val_dir}
    if "test" in subdirs:
        parts["test"] = subdirs["test"]
    found = {s: _labelled_images(os.path.join(root, d), os.path.join(root, d)) for s, d in parts.items()}
    class_names = found["train"][1]
    for s, (_pairs, names, _l, _n) in found.items():
        extra = sorted(set(names) - set(class_names))
        if extra:
            raise DataError(f"{os.path.join(root, parts[s])}: class(es) {extra} are not in train/ ({', '.join(class_names)})")
    idx = {c: i for i, c in enumerate(class_names)}
    splits = {s: [(p, idx[c]) for p, c in found[s][0]] if s in found else [] for s in SPLITS}
    notes = [n for f in found.values() for n in f[3]]
    if not splits["test"]:
        notes.append(f"{root}: no test/ folder; the final evaluation uses val/")
        LOG.warning(notes[-1])
    total = sum(len(v) for v in splits.values())
    passed: list[tuple[str, str]] = []
    if max_images is not None and max_images < total:
        splits = {s: stratified_subset(v, round(max_images * len(v) / total), seed, check=quick_check, rejected=passed)
                  for s, v in splits.items()}
        notes.extend(_passed_note(passed))
    return DataSpec(root=root, layout="presplit", class_names=class_names, splits=splits, split_source="folders", seed=seed,
                    max_images=max_images, notes=notes, skipped=passed)


def _make_split(root, layout, class_names, pairs, *, seed, max_images, fractions) -> DataSpec:
    idx = {c: i for i, c in enumerate(class_names)}
    samples = sorted((p, idx[c]) for p, c in pairs)
    passed: list[tuple[str, str]] = []
    if max_images is not None and max_images < len(samples):
        samples = stratified_subset(samples, max_images, seed, check=quick_check, rejected=passed)
    splits = stratified_split(samples, fractions["val"], fractions["test"], seed)
    return DataSpec(root=root, layout=layout, class_names=class_names, splits=splits, split_source="seed", seed=seed,
                    fractions=fractions, max_images=max_images, skipped=passed, notes=_passed_note(passed))


def _passed_note(passed: list[tuple[str, str]]) -> list[str]:
    """The note (logged) for unreadable files --max-images passed over for readable ones."""
    if not passed:
        return []
    note = (f"--max-images: passed over {len(passed)} unreadable file(s) for readable ones "
            f"(e.g. {passed[0][0]}: {passed[0][1]})")
    LOG.warning(note)
    return [note]


# ----------------------------------------------------------------------------- splitting


def stratified_subset(samples: list[Sample], n: int, seed: int, *, check=None,
                      rejected: list[tuple[str, str]] | None = None) -> list[Sample]:
    """``n`` samples drawn per class in proportion to the class sizes (largest remainder), from ``seed``.

    With ``check`` (``path -> reason or None``, e.g. :func:`quick_check`), files it rejects are passed
    over for the next ones of the same class (and appended to ``rejected``), so ``--max-images N``
    means N readable images, not N files of which some cannot be read.
    """
    samples = sorted(samples)
    if n >= len(samples):
        return samples
    labels = np.array([y for _, y in samples])
    classes = np.unique(labels)
    sizes = np.array([(labels == c).sum() for c in classes])
    raw = n * sizes / sizes.sum()
    take = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - take), kind="stable")[: n - take.sum()]:
        take[i] += 1
    take = np.minimum(np.maximum(take, np.minimum(1, sizes)), sizes)
    out = []
    for c, k in zip(classes, take):
        members = [s for s in samples if s[1] == c]
        rng = np.random.default_rng([seed, int(c), 1])
        order = rng.permutation(len(members))
        if check is None:
            pick = order[:k]
        else:
            pick = []
            for i in order:
                if len(pick) == k:
                    break
                why = check(members[i][0])
                if why is None:
                    pick.append(i)
                elif rejected is not None:
                    rejected.append((members[i][0], why))
        out += [members[i] for i in sorted(pick)]
    return sorted(out)


def stratified_split(samples: list[Sample], val_frac: float, test_frac: float, seed: int) -> dict[str, list[Sample]]:
    """Split per class into train/val/test from ``seed`` (same input and seed -> same split).

    Each class with at least two images gets a validation image, with at least three a test image.
    """
    samples = sorted(samples)
    out = {s: [] for s in SPLITS}
    for c in sorted({y for _, y in samples}):
        members = [s for s in samples if s[1] == c]
        n = len(members)
        n_val = max(1, round(n * val_frac)) if n >= 2 else 0
        n_test = max(1, round(n * test_frac)) if n >= 3 and test_frac > 0 else 0
        order = np.random.default_rng([seed, int(c)]).permutation(n)
        out["val"] += [members[i] for i in order[:n_val]]
        out["test"] += [members[i] for i in order[n_val : n_val + n_test]]
        out["train"] += [members[i] for i in order[n_val + n_test :]]
    return {s: sorted(v) for s, v in out.items()}


def load_split(path: str, data_root: str | None = None) -> DataSpec:
    """Read a ``split.json`` (the lists a run trained and was tested on).

    Relative paths are resolved against ``data_root`` (default: the folder recorded in the file).
    """
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable split.json ({type(e).__name__}); delete it or start a new run") from None
    if not isinstance(obj, dict) or obj.get("format") != SPLIT_FORMAT:
        raise DataError(f"{path}: not a pawlens split.json")
    root = os.path.abspath(data_root or obj["data"]) if obj.get("layout") != OXFORD_PETS else obj["data"]

    def full(p):
        return split_entry(root, p, path, fix="delete it or start a new run")

    splits = {s: [(full(p), int(y)) for p, y in obj["splits"].get(s, [])] for s in SPLITS}
    return DataSpec(root=root, layout=obj["layout"], class_names=list(obj["class_names"]), splits=splits, split_source="split.json",
                    seed=int(obj.get("seed", 0)), fractions=obj.get("fractions", {}), max_images=obj.get("max_images"),
                    skipped=[(full(p), w) for p, w in obj.get("skipped", [])])


# ----------------------------------------------------------------------------- Oxford-IIIT Pet


def _oxford_pets(cache: str, *, seed: int, max_images: int | None, val_frac: float) -> DataSpec:
    """Oxford-IIIT Pet via torchvision (``target_types="binary-category"``: 0 cat, 1 dog).

    torchvision's ``trainval`` list is split into train/val (stratified, from the seed); its ``test`` list is the test split.
    """
    from torchvision.datasets import OxfordIIITPet

    root = os.path.abspath(os.path.expanduser(cache))
    try:
        os.makedirs(root, exist_ok=True)
        sets = {s: OxfordIIITPet(root, split=s, target_types="binary-category", download=True) for s in ("trainval", "test")}
    except Exception as e:  # URLError, socket errors, HTTP errors, md5 mismatch, disk full
        reason = one_line(str(getattr(e, "reason", e)), 100)
        raise DataError(
            f"oxford-pets: download into {root} failed ({type(e).__name__}: {reason}); offline? "
            "put the photos in DIR/cat, DIR/dog and pass --data DIR"
        ) from None
    lists = {}
    for s, ds in sets.items():
        ann = os.path.join(root, "oxford-iiit-pet", "annotations", f"{s}.txt")  # "Image CLASS-ID SPECIES BREED-ID", species 1 cat 2 dog
        img_dir = os.path.join(root, "oxford-iiit-pet", "images")
        items = []
        with open(ann, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and not line.startswith("#"):
                    items.append((os.path.join(img_dir, parts[0] + ".jpg"), int(parts[2]) - 1))
        if len(items) != len(ds):
            raise DataError(f"{ann}: lists {len(items)} images, torchvision reads {len(ds)}; delete {root}/oxford-iiit-pet and retry")
        lists[s] = sorted(items)
    total = sum(len(v) for v in lists.values())
    if max_images is not None and max_images < total:
        lists = {s: stratified_subset(v, round(max_images * len(v) / total), seed) for s, v in lists.items()}
    tv = stratified_split(lists["trainval"], val_frac, 0.0, seed)
    splits = {"train": tv["train"], "val": tv["val"], "test": lists["test"]}
    return DataSpec(root=root, layout=OXFORD_PETS, class_names=["cat", "dog"], splits=splits, split_source=OXFORD_PETS, seed=seed,
                    fractions={"val_of_trainval": val_frac}, max_images=max_images)


# ----------------------------------------------------------------------------- scanning and the Dataset


def quick_check(path: str) -> str | None:
    """Why ``path`` cannot be used (zero bytes, not an image, too large, truncated), or None; reads only the header and the tail."""
    from PIL import Image, UnidentifiedImageError

    try:
        size = os.path.getsize(path)
    except OSError:
        return "file not found"
    if size == 0:
        return "zero-byte file"
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the size check below replaces PIL's bomb guard (only the header is read)
    try:
        with Image.open(path) as im:
            w, h = im.size
            fmt = im.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "not a readable image"
    finally:
        Image.MAX_IMAGE_PIXELS = old
    if w * h > MAX_PIXELS:
        return f"{w}x{h} pixels is too large"
    if w < 1 or h < 1:
        return "empty image"
    if max(w, h) > MAX_ASPECT * min(w, h):
        return f"{w}x{h} pixels is a strip, not a photo (aspect ratio over {MAX_ASPECT}:1)"
    tail_marker = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}.get(fmt)
    if tail_marker:
        with open(path, "rb") as f:
            f.seek(max(0, size - 4096))
            if tail_marker not in f.read():
                return "truncated (no end-of-image marker)"
    return None


class ImageListDataset:
    """``(path, label)`` list -> ``(tensor, label, index, error)``; an image that fails to load gives ``error != ""``.

    The loop drops those samples from the batch and counts them, so one bad file never stops training.

    :meth:`fill_cache` decodes every photo once and keeps what ``prepare`` makes of it in memory; each item is then
    ``after(cached)`` instead of ``transform(load_image(path))`` (``--cache``).  Filled before the DataLoader starts its
    workers, the cache is shared with them (fork) rather than copied.
    """

    def __init__(self, samples: list[Sample], transform, input_size: int):
        self.samples = list(samples)
        self.transform = transform
        self.input_size = int(input_size)
        self._cache: list | None = None
        self._after = None

    def __len__(self) -> int:
        return len(self.samples)

    def fill_cache(self, prepare, after=None, *, desc: str = "cache") -> None:
        """Keep ``prepare(image)`` of every photo (or the error of one that fails) and serve ``after(kept)`` from now on."""
        from pawlens.errors import ImageError
        from pawlens.progress import progress

        cache: list = []
        for path, _y in progress(self.samples, total=len(self.samples), desc=desc, unit="img"):
            try:
                cache.append(prepare(load_image(path)))
            except ImageError as e:
                cache.append(str(e))
        self._cache, self._after = cache, after

    def __getitem__(self, i: int):
        import torch

        from pawlens.errors import ImageError

        path, y = self.samples[i]
        try:
            if self._cache is not None:
                kept = self._cache[i]
                if isinstance(kept, str):
                    raise ImageError(kept)
                x = self._after(kept) if self._after is not None else kept
            else:
                x = self.transform(load_image(path))
            err = ""
        except ImageError as e:
            x = torch.zeros(3, self.input_size, self.input_size)
            err = str(e)
        return x, int(y), int(i), err


def cache_plan(mode: str, n_train: int, n_val: int, cfg, *, available: int | None = None) -> tuple[bool, str]:
    """Whether ``--cache MODE`` keeps the photos in memory, and why, from an estimate of the bytes it takes: the training
    photos resized (uint8, a 4:3 photo's shorter side at ``resize_size``), the validation photos preprocessed (float32).

    ``auto`` caches when that is at most a quarter of the available memory and at most 4 GiB."""
    need = n_train * cfg.resize_size * round(cfg.resize_size * 4 / 3) * 3 + n_val * cfg.input_size ** 2 * 3 * 4
    size = f"about {need / 2**20:,.0f} MiB"
    if mode == "off":
        return False, "off (--cache off)"
    if mode == "ram":
        return True, f"{size} (--cache ram)"
    if available is None:
        available = _available_memory()
    limit = min(4 * 2**30, available // 4) if available else 4 * 2**30
    if need <= limit:
        return True, f"{size}, within a quarter of the available memory (--cache off to decode every epoch)"
    return False, f"off: {size} would exceed {limit / 2**20:,.0f} MiB (--cache ram to force it)"


def _available_memory() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed NumPy and ``random`` from torch's per-worker seed."""
    import random

    import torch

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def make_loader(dataset, *, batch_size: int, sampler=None, num_workers: int = 0, seed: int = 0, pin_memory: bool = False):
    import torch
    from torch.utils.data import DataLoader

    g = torch.Generator()
    g.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        worker_init_fn=seed_worker if num_workers else None,
        generator=g,
        pin_memory=pin_memory,
        persistent_workers=False,
        drop_last=False,
    )


class _Interrupt:
    """Ctrl-C as recorded by :func:`sigint_recorded`'s handler (``pending``), so that it cannot be lost."""

    pending = False


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C was recorded (under :func:`sigint_recorded`) and not yet acted on."""
    if _Interrupt.pending:
        raise KeyboardInterrupt


def _record_sigint(signum, frame):
    _Interrupt.pending = True
    raise KeyboardInterrupt


@contextmanager
def sigint_recorded():
    """Ctrl-C always wins inside this block: SIGINT sets a flag before raising KeyboardInterrupt as usual.

    A KeyboardInterrupt raised where the interpreter swallows exceptions (an ``os.register_at_fork`` callback
    while DataLoader workers start, e.g. logging's ``_releaseLock``, or a ``__del__``: "Exception ignored in ...")
    would otherwise be lost and training would run on.  :func:`batches` checks the flag at every batch boundary,
    and leaving the block raises KeyboardInterrupt if it is still set.  Installed only on the main thread, and only
    over Python's default handler (a caller's own SIGINT handling, or SIG_IGN, is left alone).
    """
    main = threading.current_thread() is threading.main_thread()
    old = signal.getsignal(signal.SIGINT) if main else None
    ours = main and old is signal.default_int_handler
    if ours:
        _Interrupt.pending = False
        signal.signal(signal.SIGINT, _record_sigint)
    try:
        yield
        if ours:
            raise_if_interrupted()
    finally:
        if ours:
            signal.signal(signal.SIGINT, old)
            _Interrupt.pending = False


def batches(loader):
    """Iterate ``loader``; with ``num_workers=0``, decode and augment at one torch thread, then restore the thread count.

    Per-image tensor ops are tiny: intra-op threads only add synchronisation, which on a busy machine with few cores
    slows the transforms many times over (DataLoader workers already run at one thread).  A Ctrl-C recorded by
    :func:`sigint_recorded` is raised at the next batch boundary, even if the interpreter swallowed it.
    """
    import torch

    raise_if_interrupted()
    n = torch.get_num_threads()
    if getattr(loader, "num_workers", 0) > 0 or n == 1:
        for b in loader:
            raise_if_interrupted()
            yield b
        raise_if_interrupted()
        return
    it = iter(loader)
    while True:
        raise_if_interrupted()
        torch.set_num_threads(1)
        try:
            b = next(it)
        except StopIteration:
            return
        finally:
            torch.set_num_threads(n)
        yield b


class ShardSampler:
    """Indices ``rank::world`` of a dataset, in order, without padding (evaluation under DDP: every image counted once)."""

    def __init__(self, n: int, rank: int = 0, world: int = 1):
        self.idx = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.idx)

    def __len__(self) -> int:
        return len(self.idx)
