"""Nothing generic at the top of site-packages: pawlens installs its stage folders under one ``pawlens`` namespace.

A throwaway distribution that installs its own top-level ``models`` and ``runtime`` packages (each raising on import)
is put on the path ahead of everything else; the pawlens commands, the bench's child processes and the desktop app
must still import pawlens' own code.  The first test proves the shadow is live (``import models`` does hit it), so
the others cannot pass by accident.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SHADOWED = ("models", "runtime")


@pytest.fixture(scope="module")
def shadow_site(tmp_path_factory) -> Path:
    """A site directory holding the throwaway distribution, installed with pip (no network: a local source tree)."""
    src = tmp_path_factory.mktemp("shadow_src")
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "throwaway-shadow"
        version = "0.0.1"
        [tool.setuptools]
        packages = {list(SHADOWED)!r}
        """))
    for pkg in SHADOWED:
        (src / pkg).mkdir()
        (src / pkg / "__init__.py").write_text(f"raise ImportError('the throwaway distribution\\'s top-level {pkg} was imported')\n")
    site = tmp_path_factory.mktemp("shadow_site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", "--no-deps",
                        "--target", str(site), str(src)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and "No module named pip" in r.stderr:
        pytest.skip("pip is not installed in this interpreter")
    assert r.returncode == 0, r.stderr
    assert (site / "models" / "__init__.py").is_file() and list(site.glob("throwaway_shadow-*.dist-info"))
    return site


def _env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run(cmd, site: Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=_env(site), cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _script(name: str) -> str:
    p = BIN / name
    if not p.is_file():
        pytest.skip(f"{name} is not installed beside {sys.executable} (pip install -e . puts it there)")
    return str(p)


def test_the_shadow_is_live(shadow_site, tmp_path):
    for pkg in SHADOWED:
        r = _run([sys.executable, "-c", f"import {pkg}"], shadow_site, tmp_path)
        assert r.returncode != 0 and "throwaway distribution's top-level" in r.stderr, r.stderr


def test_installed_distribution_names_only_pawlens():
    import importlib.metadata as md

    import pawlens.models.registry as reg

    assert md.distribution("pawlens").read_text("top_level.txt").split() == ["pawlens"]
    assert reg.__name__ == "pawlens.models.registry" and Path(reg.__file__).parent.name == "models"


def test_only_the_stages_resolve_under_pawlens(tmp_path):
    """The installed package is plain folders (pawlens/ links each stage; no import hook, no appended __path__):
    the checkout's other folders resolve neither under ``pawlens.`` nor at the top."""
    code = ("import importlib.util as u, sys, pawlens; "
            "print(len(pawlens.__path__)); "
            "print(all(u.find_spec('pawlens.' + s) is not None for s in pawlens.STAGES)); "
            "print(' '.join(n for n in ('pawlens.tests', 'pawlens.tools', 'pawlens.runs', 'pawlens.pawlens', 'pawlens.src', "
            "'models', 'runtime', 'tests', 'tools') if u.find_spec(n) is not None) or '-'); "
            "print(any('editable' in type(f).__name__.lower() or '__editable__' in type(f).__module__ for f in sys.meta_path))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["1", "True", "-", "False"], r.stdout


def test_wheel_lays_the_stages_inside_pawlens(tmp_path):
    """A built wheel has one top-level folder, ``pawlens/``, with the stage packages inside it."""
    import zipfile

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(root)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = tmp_path.glob("pawlens-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"pawlens"}, tops
    import pawlens

    for stage in pawlens.STAGES:
        assert f"pawlens/{stage}/__init__.py" in names, stage
    site = tmp_path / "site"  # installed from the wheel, the stages resolve inside it, not in this checkout
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(site), str(whl)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    code = ("import pawlens, pawlens.models.registry as r, pawlens.runtime.formats as f; "
            "print(r.__file__); print(f.__file__); print(len(pawlens.__path__))")
    r = _run([sys.executable, "-c", code], site, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    reg, fmt, n_path = r.stdout.split()
    assert Path(reg).is_relative_to(site) and Path(fmt).is_relative_to(site) and n_path == "1"


def test_commands_import_pawlens_code(shadow_site, tmp_path, rt_tiny_onnx):
    import cv2

    from pawlens.synthetic import synthetic_image

    r = _run([_script("pawlens"), "--version"], shadow_site, tmp_path)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    img = tmp_path / "cat.png"
    cv2.imwrite(str(img), synthetic_image(0, 48)[:, :, ::-1])
    out = tmp_path / "pred.csv"
    for cmd in ([_script("pawlens"), "predict"], [_script("pawlens-predict")]):
        out.unlink(missing_ok=True)
        r = _run(cmd + [rt_tiny_onnx["int8"], str(img), "--out", str(out)], shadow_site, tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "cat.png" in out.read_text()


def test_bench_child_process_imports_pawlens_code(shadow_site, tmp_path, rt_tiny_onnx):
    """A bench worker (a fresh interpreter) loads a model and answers, with the shadow ahead on its path too."""
    code = textwrap.dedent(f"""\
        from pawlens.bench.candidates import Candidate
        from pawlens.bench.harness import ProcessWorker
        w = ProcessWorker(Candidate("ort-int8", "ONNX Runtime INT8", "ort", "int8", "cpu", {rt_tiny_onnx["int8"]!r},
                                    runner={{"backend": "ort", "device": "cpu"}}, threads=1))
        try:
            print("worker:", w.call("describe")["backend"])
        finally:
            w.close()
        """)
    r = _run([sys.executable, "-c", code], shadow_site, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "worker: ort" in r.stdout


def test_gui_imports_pawlens_code(shadow_site, tmp_path, rt_tiny_onnx, tiny_checkpoint):
    pytest.importorskip("PySide6")
    import cv2

    from pawlens.synthetic import synthetic_image

    img = tmp_path / "dog.png"
    cv2.imwrite(str(img), synthetic_image(1, 48)[:, :, ::-1])
    shot, js = tmp_path / "shot.png", tmp_path / "gui.json"
    r = _run([_script("pawlens"), "gui", "--model", rt_tiny_onnx["fp32"], "--reference", str(tiny_checkpoint), "--source", str(img),
              "--exit-after", "2", "--screenshot", str(shot), "--json", str(js), "--timeout", "120"], shadow_site, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert shot.stat().st_size > 0 and js.stat().st_size > 0
