"""Pawlens: cat/dog image classifier toolchain (train -> export -> verified runtimes -> desktop app).

The repository keeps one folder per stage at its top (``models/``, ``train/``, ``export/``, ``runtime/``,
``serve/``, ``gui/``, ``demo/``, ``bench/``), but they install under this one import name: ``pawlens.models``,
``pawlens.runtime`` and so on.  Nothing generic lands at the top of site-packages, so another
distribution's ``models`` or ``runtime`` package cannot shadow ours (``onnxruntime.quantization`` puts a
folder holding a ``models`` package on ``sys.path``, for one).

A wheel lays the stage folders out inside ``pawlens/`` (``[tool.setuptools] package-dir`` in
``pyproject.toml``).  In a source checkout, installed editable or not at all (``python tools/gpu_check.py``
on a machine with nothing installed), they sit beside this folder; ``__path__`` then also names the
checkout's root, so ``pawlens.models`` resolves to ``<checkout>/models``.  Only the stage folders are
reachable that way: the checkout must hold the stage folder and must not be a site-packages directory.
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

#: The stage packages, in the order data flows through them.
STAGES = ("models", "train", "export", "runtime", "serve", "bench", "gui", "demo")


def _source_checkout_root() -> str | None:
    here = _os.path.dirname(_os.path.abspath(__file__))
    if _os.path.isfile(_os.path.join(here, "models", "__init__.py")):
        return None  # installed from a wheel: the stages are inside this folder
    root = _os.path.dirname(here)
    if _os.path.isfile(_os.path.join(root, "pyproject.toml")) and _os.path.isfile(_os.path.join(root, "models", "__init__.py")):
        return root
    return None


_root = _source_checkout_root()
if _root is not None:
    __path__.append(_root)  # noqa: F821 (the package's own __path__)
del _root
