"""The import rule of gui/: it talks to runtime and models and the Qt stack only (Grad-CAM comes through runtime).

Every ``import`` in gui/*.py is read from the source (AST, including imports inside functions), so an
import that only runs when a button is pressed is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GUI = Path(__file__).resolve().parents[1] / "gui"

#: Top-level packages gui/ must never import, and pawlens stages it must never import (absolute or relative).
FORBIDDEN_MODULES = ("torch", "torchvision")
FORBIDDEN_STAGES = ("export", "train")


def imported_modules(source: str, *, package: str = "pawlens.gui") -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``; relative imports resolved against ``package``.

    ``from X import a`` yields ``X`` and ``X.a`` (``a`` may be a module: ``from pawlens import export``).
    """
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names if a.name != "*"]
    return out


def violation(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] in FORBIDDEN_MODULES:
        return f"{parts[0]} (an ML framework: go through pawlens.runtime)"
    if parts[0] == "pawlens" and len(parts) > 1 and parts[1] in FORBIDDEN_STAGES:
        return f"pawlens.{parts[1]} (gui talks to runtime and models only)"
    if parts[0] in FORBIDDEN_STAGES and len(parts) == 1:
        return f"{parts[0]} (a stage imported by its bare name)"
    return None


def test_the_checker_sees_every_form():
    src = """
import torch
import torch.nn as nn
from torchvision import models
from pawlens.export.onnx import export_onnx
from pawlens import train
from .. import export
from ..train.loop import evaluate
import pawlens.train.data

def later():
    from ..export import onnx  # inside a function: still an import

from ..runtime.cam import CamExplainer
from pawlens.errors import ArtifactError
from PySide6 import QtCore
from . import session
"""
    found = [m for _line, m in imported_modules(src) if violation(m)]
    assert {m.split(".")[0] if not m.startswith("pawlens") else ".".join(m.split(".")[:2]) for m in found} == {
        "torch", "torchvision", "pawlens.export", "pawlens.train"}
    lines = {line for line, m in imported_modules(src) if violation(m)}
    assert lines == {2, 3, 4, 5, 6, 7, 8, 9, 12}
    ok = [m for _line, m in imported_modules(src) if not violation(m)]
    assert "pawlens.runtime.cam" in ok and "pawlens.gui.session" in ok and "PySide6.QtCore" in ok


@pytest.mark.parametrize("path", sorted(GUI.glob("*.py")), ids=lambda p: p.name)
def test_gui_imports_runtime_models_and_qt_only(path):
    bad = [f"{path.name}:{line}: {module} -> {why}" for line, module in imported_modules(path.read_text(encoding="utf-8"))
           if (why := violation(module))]
    assert not bad, "gui/ must not import:\n" + "\n".join(bad)
