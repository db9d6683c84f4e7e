"""Pawlens: cat/dog image classifier toolchain (train -> export -> verified runtimes -> desktop app).

The repository keeps one folder per stage at its top (``models/``, ``train/``, ``export/``, ``runtime/``,
``serve/``, ``gui/``, ``demo/``, ``bench/``), but they install under this one import name: ``pawlens.models``,
``pawlens.runtime`` and so on.  Nothing generic lands at the top of site-packages, so another
distribution's ``models`` or ``runtime`` package cannot shadow ours (``onnxruntime.quantization`` puts a
folder holding a ``models`` package on ``sys.path``, for one).

``pawlens/`` holds a symlink to each stage folder (``pawlens/models -> ../models``, ...), so a checkout is a
complete package on disk: a checkout's root on ``sys.path`` (``python tools/gpu_check.py`` with nothing installed),
an editable install (``src/`` on ``sys.path``: ``src/pawlens`` links here) and a wheel (the files copied through the
links) all resolve ``pawlens.models`` the same plain way, and static analysers follow the imports.  Only the
stages, ``pawlens.cli`` and the Python API (``pawlens.load``, ``pawlens.fit``: :mod:`pawlens.api`) are under this name.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: The stage packages, in the order data flows through them.
STAGES = ("models", "train", "export", "runtime", "serve", "bench", "gui", "demo")

#: The Python API (:mod:`pawlens.api`), imported on first use so that ``import pawlens`` stays light.
_API = ("Model", "load", "fit", "overlay", "load_image")
__all__ = ["STAGES", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'pawlens' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))

