"""The desktop app on the real runtime: ONNX Runtime predictions, PyTorch Grad-CAM, the CLI and its headless self-check.

Models are tiny (the 32 px baseline of ``tiny_checkpoint``, exported on the fly), so this stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from pawlens.gui.app import RuntimeLoader, main  # noqa: E402
from pawlens.gui.window import WindowOptions  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    from pawlens.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("gui_onnx") / "tiny.onnx"
    export_onnx(tiny_checkpoint, out)
    return out


@pytest.fixture(scope="session")
def nometa_onnx(tmp_path_factory) -> Path:
    """A 224 px baseline ONNX with its pawlens metadata removed (as a foreign ONNX file would be)."""
    import onnx
    import torch

    from pawlens.export.onnx import export_onnx
    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.models.registry import create_model

    d = tmp_path_factory.mktemp("gui_nometa")
    torch.manual_seed(1)
    ck = save_checkpoint(d / "b224.pt", model=create_model("baseline", num_classes=2), arch="baseline", class_names=["cat", "dog"],
                         preprocess=PreprocessConfig.for_size(224))
    export_onnx(ck, d / "with.onnx")
    m = onnx.load(str(d / "with.onnx"))
    del m.metadata_props[:]
    onnx.save(m, str(d / "nometa.onnx"))
    return d / "nometa.onnx"


@pytest.fixture(scope="session")
def three_class_checkpoint(tmp_path_factory) -> Path:
    import torch

    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.models.registry import create_model

    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("ckpt3") / "fox.pt"
    save_checkpoint(p, model=create_model("baseline", num_classes=3), arch="baseline", class_names=["cat", "dog", "fox"],
                    preprocess=PreprocessConfig.for_size(32))
    return p


@pytest.fixture
def photo(tmp_path) -> str:
    from PIL import Image

    from pawlens.synthetic import synthetic_image

    p = tmp_path / "photo.png"
    Image.fromarray(synthetic_image(0, 96, np.random.default_rng(3))).save(p)
    return str(p)


@pytest.fixture
def window(make_window):
    """A window that loads its models through a RuntimeLoader (CPU unless the test passes its own loader)."""

    def make(loader=None, options=None):
        return make_window(size=None, loader=loader or RuntimeLoader(device="cpu"), options=options)

    return make


def test_real_models_label_and_overlay(window, qtbot, tiny_onnx, tiny_checkpoint, photo):
    from pawlens.models.preprocess import load_image
    from pawlens.runtime.factory import make_predictor

    w = window()
    w.set_model(str(tiny_onnx))
    w.set_reference(str(tiny_checkpoint))
    w.open_source(photo)
    qtbot.waitUntil(lambda: w.prediction is not None and w.view.overlay_state == "exact", timeout=60000)
    with make_predictor(str(tiny_onnx), device="cpu") as p:  # the same model, run directly
        direct = p.predict(load_image(photo))
    assert w.label_big.text() == direct.label
    assert np.allclose(w.prediction.probs, direct.probs, atol=1e-5)
    assert w.badge_backend.text() == "ONNX Runtime" and w.badge_precision.text() == "fp32" and "CPU" in w.badge_device.text()
    assert w.model_info["describe"]["providers"] == ["CPUExecutionProvider"]
    out = w.cam_out
    assert out.heat.shape == (96, 96) and out.heat.max() > 0 and out.class_names == ["cat", "dog"]
    assert "agrees" in w.view.caption or "disagree" in w.view.caption
    assert w.ref_info["sha256"] and w.model_info["source_sha256"] == w.ref_info["sha256"]  # the exported-from checkpoint
    # the reference is traced in the background: the first overlays may be eager; once adopted, the panel says so
    qtbot.waitUntil(lambda: w.ref_info.get("mode") == "traced", timeout=30000)
    assert "traced" in w.cam_text.text()
    assert not w.errors


def test_backend_choice_follows_the_formats_table_and_is_shown(window, qtbot, tiny_onnx):
    from pawlens.gui.app import BACKEND_CHOICES, get_args_parser
    from pawlens.runtime import factory, formats

    assert get_args_parser().get_default("backend") == "app" and set(formats.BACKENDS) < set(BACKEND_CHOICES)
    installed = [b for b in formats.BACKENDS if factory.backend_installed(b)]
    backend, why = RuntimeLoader(device="cpu").choose(str(tiny_onnx))  # the app's own choice, as the table states it
    assert (backend, why) == formats.app_choice(".onnx", "fp32", cuda=False, installed=installed)
    assert backend == formats.by_key("onnx").app_backend == "ort" and "ONNX Runtime" in why
    assert RuntimeLoader(backend="auto", device="cpu").choose(str(tiny_onnx)) == ("auto", "")  # auto means the table's auto
    auto = formats.auto_choice(".onnx", "fp32", cuda=False, installed=installed)
    assert RuntimeLoader(backend="auto").backends_to_preload(cuda=False) == [auto[0]]
    assert RuntimeLoader().backends_to_preload(cuda=False) == ["ort"]
    assert RuntimeLoader(backend="trt").backends_to_preload(cuda=True) == []  # GPU-only backends load with their engine
    w = window(loader=RuntimeLoader(backend="auto", device="cpu"))
    w.set_model(str(tiny_onnx))
    qtbot.waitUntil(lambda: w.model_info is not None, timeout=60000)
    assert w.model_info["describe"]["backend"] == auto[0] and w.model_info["backend_choice"] == "auto" and w.model_info["backend_note"]
    assert "backend (auto): " in w.model_text.text()
    w2 = window()
    w2.set_model(str(tiny_onnx))
    qtbot.waitUntil(lambda: w2.model_info is not None, timeout=60000)
    assert w2.model_info["describe"]["backend"] == "ort"
    assert f"backend (app's choice): {why}" in w2.model_text.text() and "app's choice" in w2.badge_backend.toolTip()
    assert "(app's choice)" in w2.statusBar().currentMessage()


def test_cuda_asked_cpu_running_shows_the_badge(window, qtbot, tiny_onnx):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: ONNX Runtime would not fall back")
    w = window(loader=RuntimeLoader(backend="ort", device="cuda"))
    w.set_model(str(tiny_onnx))
    qtbot.waitUntil(lambda: w.model_info is not None or bool(w.errors), timeout=60000)
    assert not w.errors
    d = w.model_info["describe"]
    assert d["fallback"] is True and "CUDAExecutionProvider" in d["providers_requested"] and d["providers"] == ["CPUExecutionProvider"]
    assert w.badge_fallback.isVisible() and "CUDA was requested" in w.badge_fallback.text()


def test_onnx_without_metadata(window, qtbot, nometa_onnx, photo):
    from pawlens.errors import ArtifactError, MissingMetadata

    with pytest.raises(MissingMetadata) as e:  # the type the window catches (a subclass: older callers still see ArtifactError)
        RuntimeLoader(device="cpu").load_predictor(str(nometa_onnx))
    assert isinstance(e.value, ArtifactError)
    w = window()
    with qtbot.waitSignal(w.problem, timeout=60000):
        w.set_model(str(nometa_onnx))
    assert "no pawlens metadata" in w.errors[-1] and "--classes" in w.errors[-1] and "refused" in w.errors[-1]
    w2 = window(options=WindowOptions(probe_cameras=False, interactive=True))
    w2.ask_class_names = lambda path, msg: ["cat", "dog"]
    w2.set_model(str(nometa_onnx))
    w2.open_source(photo)
    qtbot.waitUntil(lambda: w2.prediction is not None, timeout=60000)
    assert w2.label_big.text() in ("cat", "dog") and w2.model_info["class_names"] == ["cat", "dog"]


def test_bad_model_and_reference_files(window, qtbot, tmp_path, tiny_onnx, three_class_checkpoint, photo):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(os.urandom(2000))
    bad_ref = tmp_path / "junk.pt"
    bad_ref.write_bytes(b"PK\x03\x04 not really a zip")
    w = window()
    w.open_source(photo)
    with qtbot.waitSignal(w.problem, timeout=60000):
        w.set_model(str(junk))
    assert "[artifact]" in w.errors[-1] and "junk.onnx" in w.errors[-1]
    with qtbot.waitSignal(w.problem, timeout=60000):
        w.set_reference(str(bad_ref))
    assert "[checkpoint]" in w.errors[-1] and "junk.pt" in w.errors[-1]
    onnx_ref = tmp_path / "ref.onnx"
    onnx_ref.write_bytes(tiny_onnx.read_bytes())
    with qtbot.waitSignal(w.problem, timeout=60000):
        w.set_reference(str(onnx_ref))  # an ONNX is no reference: Grad-CAM needs the PyTorch checkpoint
    assert "needs the PyTorch checkpoint" in w.errors[-1]
    w.set_model(str(tiny_onnx))
    with qtbot.waitSignal(w.problem, timeout=60000):
        w.set_reference(str(three_class_checkpoint))
    assert "refused" in w.errors[-1] and "[cat, dog, fox]" in w.errors[-1]
    qtbot.waitUntil(lambda: w.prediction is not None, timeout=60000)  # the model still works
    assert w._cam is None and not w.cam_check.isEnabled()


# ----------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("argv,msg", [
    (["--screenshot", "x.png"], "--screenshot and --json go with --exit-after"),
    (["--exit-after", "3"], "--exit-after needs --source"),
    (["--classes", "cat"], "at least two distinct"),
    (["--model", "/nonexistent/m.onnx"], "file not found"),
    (["--alpha", "2"], "must lie in 0..1"),
])
def test_cli_refuses_bad_flags(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pawlens-gui: error: [input]") and msg in err


def _run_cli(args, tmp_path, timeout=150):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pawlens.gui.app", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_headless_self_check_on_a_video(tmp_path, tiny_onnx, tiny_checkpoint):
    import cv2

    vid = tmp_path / "clip.mp4"
    vw = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 240))
    from pawlens.synthetic import synthetic_image

    rng = np.random.default_rng(0)
    for i in range(60):
        vw.write(cv2.resize(synthetic_image(i % 2, 64, rng), (320, 240))[..., ::-1].copy())
    vw.release()
    shot, js = tmp_path / "shot.png", tmp_path / "fig.json"
    r = _run_cli(["--model", str(tiny_onnx), "--reference", str(tiny_checkpoint), "--source", str(vid), "--exit-after", "20",
                  "--screenshot", str(shot), "--json", str(js), "--size", "1100x700"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "display" in r.stdout and "inference" in r.stdout and "max event-loop latency" in r.stdout
    f = json.loads(js.read_text())
    assert f["frames_inferred"] >= 20 and f["display_fps_mean"] > 0 and f["backend"] == "ort" and f["errors"] == []
    assert f["overlay_state_in_screenshot"] == "exact"
    from PIL import Image

    im = Image.open(shot)
    assert im.size == (1100, 700)
    a = np.asarray(im.convert("RGB"))
    assert a.std() > 10  # a rendered window, not a blank image


def test_headless_self_check_reports_a_bad_model(tmp_path, photo):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07" + os.urandom(500))
    shot = tmp_path / "s.png"
    r = _run_cli(["--model", str(junk), "--source", photo, "--exit-after", "1", "--screenshot", str(shot)], tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "pawlens-gui: error: Model: [artifact]" in r.stderr and "junk.onnx" in r.stderr
    assert "Traceback" not in r.stderr and shot.is_file()  # the window (showing the error) was still captured


def test_gui_imports_no_ml_framework():
    code = ("import sys, gui.app, gui.window, gui.workers, gui.sources; "
            "print([m for m in ('torch', 'onnxruntime', 'onnx', 'openvino', 'tensorrt') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
