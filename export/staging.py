"""Where an export's files live while they are built and gated: a staging folder, renamed into place only once an
artifact passed; ``<file>.failed`` for one that did not; ``<file>.unverified`` for a file under a loadable name that no
gate on record passed.  An engine's ``.json`` sidecar always moves with it.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from pawlens.fs import sha256_file
from pawlens.runtime.formats import EXPORT_FORMATS, by_key

LOG = logging.getLogger("pawlens")

_ARTIFACTS = tuple(f for f in EXPORT_FORMATS if by_key(f).kind != "/")
SUFFIX: dict[str, str] = {f: by_key(f).suffix for f in _ARTIFACTS}
SIDECAR: dict[str, str] = {f: by_key(f).sidecar for f in _ARTIFACTS if by_key(f).sidecar}


def sidecar_of(path: str) -> str | None:
    """The file that travels with ``path`` (an engine's ``.json``; also of its ``.failed`` / ``.unverified`` names), or None."""
    for fmt, side in SIDECAR.items():
        if path.endswith(tuple(SUFFIX[fmt] + tail for tail in ("", ".failed", ".unverified"))):
            return path + side
    return None


def with_sidecar(path: str) -> list[str]:
    side = sidecar_of(path)
    return [path, side] if side else [path]


def remove(path: str) -> None:
    for p in with_sidecar(path):
        if os.path.exists(p):
            os.remove(p)


def move(src: str, dst: str) -> None:
    """Rename ``src`` (and an engine's ``.json`` sidecar, first, so an engine never sits without its sidecar) to ``dst``."""
    side = sidecar_of(src)
    if side and os.path.exists(side):
        os.replace(side, dst + side[len(src):])
    os.replace(src, dst)


def promote(staged: str, final: str) -> None:
    """Put a gated artifact under its loadable name: one atomic rename over the previous file (kept until now)."""
    move(staged, final)


def mark_failed(path: str, bad: str | None = None) -> str:
    """Rename a failed artifact (and an engine's sidecar) to ``*.failed``; returns the new path."""
    if not os.path.exists(path):
        return path
    bad = bad or path + ".failed"
    move(path, bad)
    return bad


def keep_failed(staged: str, final: str) -> str:
    """After a build error: what it left in the staging folder (e.g. TensorRT's ``.failed``) goes to ``<final>.failed``."""
    for src in (staged + ".failed", staged):
        if os.path.exists(src):
            bad = final + ".failed"
            if os.path.exists(src + ".json"):
                os.replace(src + ".json", bad + ".json")
            os.replace(src, bad)
            return bad
    return ""  # nothing was written (the previous file, if any, is still there and not this row's)


def carry_over(out: str, paths: dict[str, str]) -> list[dict[str, Any]]:
    """Rows of the previous ``parity.json`` for artifacts still in ``out`` that passed their gate (sha256 or size matches).

    A file under a loadable name that no previous row shows as passed (left by an export killed before this version
    gated under temporary names, or copied in) is renamed ``<file>.unverified``: nothing may load an ungated artifact.
    """
    old: dict[str, dict[str, Any]] = {}
    try:
        with open(os.path.join(out, "parity.json")) as f:
            doc = json.load(f)
        for row in list(doc.get("artifacts") or []) + list(doc.get("kept") or []):
            if isinstance(row, dict) and row.get("status") == "passed" and row.get("file"):
                old.setdefault(row["file"], dict(row, source_sha256=row.get("source_sha256") or doc.get("source_sha256")))
    except (OSError, ValueError, AttributeError):
        pass
    kept = []
    for fmt, path in paths.items():
        if not os.path.exists(path):
            continue
        row = old.get(os.path.basename(path))
        ok = row is not None and row.get("format") == fmt and (
            row.get("sha256") == sha256_file(path) if row.get("sha256") else row.get("size_bytes") == os.path.getsize(path))
        if fmt in SIDECAR:
            ok = ok and os.path.exists(path + SIDECAR[fmt])
        if ok:
            kept.append(dict(row, kept=True, reason="kept from a previous export; not rebuilt by this one"))
        else:
            bad = path + ".unverified"
            mark_failed(path, bad)
            LOG.warning("[export] %s has no passed gate on record (left by an interrupted export?); renamed to %s",
                        os.path.basename(path), os.path.basename(bad))
    return kept
