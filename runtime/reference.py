"""The Grad-CAM reference: the PyTorch checkpoint an exported model came from, found by the sha256 its metadata records.

    ckpt = resolve_reference("runs/export/best/best.int8.onnx", runner.meta, None)   # or raises InputError naming the fix

Grad-CAM needs gradients, so it runs on the checkpoint, never on the ONNX graph or engine being explained.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Iterator

from pawlens.errors import InputError

from .formats import CHECKPOINT

LOG = logging.getLogger("pawlens")


def _reference_candidates(model: str) -> Iterator[str]:
    """Checkpoints that may be the one ``model`` was exported from, nearest first (not yet checked)."""
    import glob

    here = os.path.dirname(os.path.abspath(model))
    yield from sorted(glob.glob(os.path.join(here, "*" + CHECKPOINT)) + glob.glob(os.path.join(here, "model", "*" + CHECKPOINT)))
    try:  # the export's own record of its checkpoint
        with open(os.path.join(here, "parity.json"), encoding="utf-8") as f:
            ck = json.load(f).get("checkpoint")
        if isinstance(ck, str) and ck:
            yield ck if os.path.isabs(ck) else os.path.join(here, ck)
            yield ck
    except (OSError, ValueError, AttributeError):
        pass
    dirs, d = [], here
    for _ in range(4):  # runs/export/NAME/ -> runs/ -> the project folder
        dirs.append(d)
        d = os.path.dirname(d)
    dirs.append(os.getcwd())
    for d in dirs:
        for pattern in (os.path.join(d, "train", "*", "*" + CHECKPOINT), os.path.join(d, "runs", "train", "*", "*" + CHECKPOINT)):
            files = glob.glob(pattern)
            yield from sorted(files, key=lambda f: (os.path.basename(f) != "best.pt", -os.path.getmtime(f)))


def find_reference(model: str, sha256: str, *, limit: int = 64) -> str | None:
    """The checkpoint whose sha256 is ``sha256`` (the one ``model`` was exported from), or ``None``.

    Looks next to ``model`` (``*.pt``, ``model/*.pt``), at the checkpoint its export's ``parity.json`` names, and in
    ``train/*/`` and ``runs/train/*/`` below the model's folder, its parents (up to three levels up) and the current
    folder; at most ``limit`` files are hashed.
    """
    from pawlens.fs import sha256_file

    seen: set[str] = set()
    for c in _reference_candidates(model):
        real = os.path.realpath(c)
        if real in seen or not os.path.isfile(real):
            continue
        seen.add(real)
        if len(seen) > limit:
            break
        try:
            if sha256_file(real) == sha256:
                return c
        except OSError:
            continue
    return None


def resolve_reference(model: str, meta, reference: str | None) -> str:
    """The .pt checkpoint Grad-CAM runs on: ``reference``, MODEL itself if it is one, or the one found by sha256."""
    from .factory import file_kind

    if reference:
        return reference
    if file_kind(model) == CHECKPOINT:
        return model
    sha = getattr(meta, "source_sha256", "") or ""
    if not sha:
        raise InputError(f"--cam: {model} does not record the checkpoint it was exported from; "
                         "pass --reference CKPT (the .pt it was exported from; Grad-CAM runs on PyTorch)")
    found = find_reference(model, sha)
    if found is None:
        raise InputError(f"--cam: no checkpoint with sha256 {sha[:12]}... (the one {model} was exported from) next to it, in its "
                         "parity.json or under runs/train/*/; pass --reference CKPT (the .pt it was exported from)")
    LOG.info(f"Grad-CAM reference: {found} (its sha256 matches {os.path.basename(model)}'s metadata)")
    return found
