"""The import graph between the stage packages runs one way (README, "Layout").

Under every stage lies the base layer: the small utility modules at the top of ``pawlens/`` (errors, console, fs,
document, progress, safe_yaml, synthetic).  Any module may import them; they import no stage and no command.

Every import in every stage module is read from the source (AST, imports inside functions included, relative ones
resolved), so a lazy import cannot hide an edge.  Library modules may import only the stages below them; command
modules (the CLIs, ``bench/``, ``demo/``) sit on top and may import any stage, and no library module imports a
command module.
"""

from __future__ import annotations

from pathlib import Path

from test_gui_imports import imported_modules  # the one AST import reader of the tests

import pawlens

ROOT = Path(__file__).resolve().parents[1]

#: Which stages a library module of each stage may import (besides its own).
ALLOWED = {
    "models": set(),
    "train": {"models"},
    "runtime": {"models"},
    "serve": {"models", "runtime"},
    "export": {"models", "runtime", "serve"},
    "gui": {"models", "runtime"},
}
#: Command modules: entry points, free to use any stage.
COMMANDS = {"pawlens.cli", "pawlens.train.cli", "pawlens.export.cli", "pawlens.serve.cli", "pawlens.runtime.predict",
            "pawlens.gui.app"}
TOP = ("bench", "demo")  # whole stages of commands
#: The base layer: utilities every stage may use, which import only each other.
BASE = {"pawlens.errors", "pawlens.console", "pawlens.fs", "pawlens.document", "pawlens.progress", "pawlens.safe_yaml",
        "pawlens.synthetic"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts[1:] if rel.parts[0] == "pawlens" else rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["pawlens", *parts])


def _imports(path: Path, name: str) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    return {m for _line, m in imported_modules(path.read_text(encoding="utf-8"), package=package) if m.startswith("pawlens.")}


def graph() -> dict[str, set[str]]:
    """Module -> the pawlens modules it imports (``from X import a`` counts ``X`` and ``X.a``)."""
    files = [p for s in pawlens.STAGES for p in (ROOT / s).rglob("*.py")] + list((ROOT / "pawlens").glob("*.py"))
    return {_module_name(p): _imports(p, _module_name(p)) for p in files}


def _stage(module: str) -> str:
    return (module.split(".") + [""])[1]


def _is_base(module: str) -> bool:
    return any(module == b or module.startswith(b + ".") for b in BASE)


def _is_command(module: str) -> bool:
    if _is_base(module):
        return False
    return module in COMMANDS or _stage(module) in TOP or _stage(module) not in pawlens.STAGES  # pawlens, .cli, .api: the top


def test_the_graph_is_read():  # the reader finds the edges README names, so the checks below are not vacuous
    g = graph()
    assert "pawlens.models.registry" in g["pawlens.train.loop"] | g["pawlens.train.data"] | g["pawlens.train.cli"]
    assert any(m.startswith("pawlens.runtime.") for m in g["pawlens.serve.model"])  # a lazy import inside a method
    assert len(g) > 60


def test_the_base_layer_imports_no_stage():
    g = graph()
    assert BASE <= set(g), sorted(BASE - set(g))  # each named module exists
    assert any("pawlens.errors" in deps for mod, deps in g.items() if _stage(mod) == "models")  # the edges are read
    bad = [f"{mod} imports {dep}" for mod in BASE for dep in g[mod] if not _is_base(dep)]
    assert not bad, "\n".join(sorted(bad))


def test_nothing_generic_is_left_in_models():
    """models/ holds architectures, preprocessing, checkpoints and Grad-CAM; the utilities live in the base layer."""
    names = {p.stem for p in (ROOT / "models").glob("*.py")}
    assert not names & {"errors", "console", "document", "progress", "safe_yaml", "synthetic"}, sorted(names)


def test_library_modules_import_only_the_stages_below():
    bad = []
    for mod, deps in graph().items():
        if _is_command(mod) or _is_base(mod):
            continue
        for dep in deps:
            stage = _stage(dep)
            if stage in pawlens.STAGES and stage != _stage(mod) and stage not in ALLOWED[_stage(mod)]:
                bad.append(f"{mod} imports {dep}")
    assert not bad, "\n".join(sorted(bad))


def test_no_library_module_imports_a_command():
    g = graph()
    bad = [f"{mod} imports {dep}" for mod, deps in g.items() if not _is_command(mod)
           for dep in deps if dep in g and _is_command(dep) and dep != "pawlens"]
    assert not bad, "\n".join(sorted(bad))


def test_stage_dependencies_have_no_cycle():
    """Between library stages (commands left out) the graph is acyclic: Kahn's order exists."""
    edges = {s: set() for s in ALLOWED}
    for mod, deps in graph().items():
        if not _is_command(mod) and _stage(mod) in edges:
            edges[_stage(mod)] |= {_stage(d) for d in deps if _stage(d) in edges and _stage(d) != _stage(mod)}
    order, left = [], dict(edges)
    while left:
        free = [s for s, d in left.items() if not d - set(order)]
        assert free, f"a cycle among {sorted(left)}: {left}"
        order += sorted(free)
        left = {s: d for s, d in left.items() if s not in free}
    assert order.index("models") == 0
