"""Shared fixtures: synthetic image folders, tiny checkpoints, and the real photos in ../shared/data.

Tests that need the real photos use the ``shared_data`` fixture (marker ``realdata``) and skip with
a reason where ``../shared/data`` is absent.  Everything else makes its own small images.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pawlens.synthetic import synthetic_image  # noqa: F401  (re-exported for tests)
from pawlens.synthetic import write_image_folder as _write

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PAWLENS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_configure(config):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # `pawlens tune`'s stored winners: a folder of this run's own, so a developer's cache never changes what auto picks here
    import tempfile

    os.environ["PAWLENS_CACHE_DIR"] = tempfile.mkdtemp(prefix="pawlens-test-cache-")
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "catsdogs" / "cat").is_dir():
        pytest.skip(f"real photos not found at {SHARED_DATA} (../shared/data is absent on this machine)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_photos(shared_data) -> list[str]:
    """A fixed, small, class-balanced list of real photo paths (8 cats, 8 dogs)."""
    cats = sorted((shared_data / "catsdogs" / "cat").glob("*.jpg"))[:8]
    dogs = sorted((shared_data / "catsdogs" / "dog").glob("*.jpg"))[:8]
    return [str(p) for p in cats + dogs]


def write_image_folder(root: Path, n_per_class: int = 12, size: int = 64, classes=("cat", "dog"), seed: int = 0) -> Path:
    """An ImageFolder of synthetic images (see pawlens.synthetic)."""
    _write(root, n_per_class=n_per_class, size=size, classes=classes, seed=seed)
    return Path(root)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """An ImageFolder layout with 12 synthetic 64 px images per class (cat, dog)."""
    return write_image_folder(tmp_path / "data")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained baseline checkpoint at 32 px (2 classes: cat, dog)."""
    import torch

    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.models.registry import create_model

    torch.manual_seed(0)
    m = create_model("baseline", num_classes=2)
    p = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(p, model=m, arch="baseline", class_names=["cat", "dog"], preprocess=PreprocessConfig.for_size(32))
    return p


@pytest.fixture(scope="session")
def resnet_checkpoint(tmp_path_factory) -> Path:
    """An untrained ResNet50 checkpoint at 224 px (random weights, 2 classes)."""
    import torch

    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.models.registry import create_model

    torch.manual_seed(0)
    m = create_model("resnet50", num_classes=2)
    p = tmp_path_factory.mktemp("ckpt") / "resnet50.pt"
    save_checkpoint(p, model=m, arch="resnet50", class_names=["cat", "dog"], preprocess=PreprocessConfig.for_size(224))
    return p


@pytest.fixture
def real_tensorrt():
    """The ``tensorrt`` module where engines can really be built; skips without TensorRT or a CUDA GPU."""
    trt = pytest.importorskip("tensorrt")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    return trt


@pytest.fixture
def make_window(qtbot):
    """Factory of shown ``MainWindow``s (no camera probing, no dialogs), shut down after the test.

    ``make(size=(W, H), options=None, **kw)``: ``kw`` go to ``MainWindow``; ``size=None`` keeps its own size.
    """
    from pawlens.gui.window import MainWindow, WindowOptions

    made = []

    def make(size=(1000, 640), options=None, **kw):
        w = MainWindow(options=options or WindowOptions(probe_cameras=False, interactive=False), **kw)
        qtbot.addWidget(w)
        if size:
            w.resize(*size)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        w.shutdown()


# ----------------------------------------------------------------------------- runtime fixtures (runtime helper)


@pytest.fixture(scope="session")
def rt_tiny_onnx(tiny_checkpoint, tmp_path_factory) -> dict:
    """The tiny checkpoint exported to fp32 and INT8 ONNX (INT8 calibrated on synthetic images): {"pt", "fp32", "int8"}."""
    import numpy as np

    from pawlens.export.onnx import export_onnx
    from pawlens.export.quantize import quantize_int8
    from pawlens.models.preprocess import PreprocessConfig, preprocess_numpy

    d = tmp_path_factory.mktemp("rt_onnx")
    fp32 = export_onnx(tiny_checkpoint, d / "tiny.onnx")
    rng = np.random.default_rng(1)
    calib = preprocess_numpy([synthetic_image(i % 2, 48, rng) for i in range(16)], PreprocessConfig.for_size(32))
    int8 = quantize_int8(fp32, d / "tiny.int8.onnx", calib)
    return {"pt": str(tiny_checkpoint), "fp32": fp32, "int8": int8}


@pytest.fixture(scope="session")
def rt_trained_baseline(shared_data, tmp_path_factory) -> dict:
    """A baseline at 64 px trained for a few steps on real photos (so its top-1 varies), exported to fp32 and INT8 ONNX.

    Returns {"pt", "fp32", "int8", "photos"}: ``photos`` are 16 other real photos (8 cats, 8 dogs) for parity checks.
    INT8 is calibrated on 32 further photos.  Takes a few seconds.
    """
    import torch

    from pawlens.export.onnx import export_onnx
    from pawlens.export.quantize import quantize_int8
    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig, load_image, preprocess_numpy
    from pawlens.models.registry import create_model

    cfg = PreprocessConfig.for_size(64)
    cats = sorted((shared_data / "catsdogs" / "cat").glob("*.jpg"))
    dogs = sorted((shared_data / "catsdogs" / "dog").glob("*.jpg"))
    train = [p for pair in zip(cats[100:132], dogs[100:132]) for p in pair]
    calib = [p for pair in zip(cats[200:216], dogs[200:216]) for p in pair]
    photos = [str(p) for p in cats[300:308] + dogs[300:308]]
    x = torch.from_numpy(preprocess_numpy([load_image(p) for p in train], cfg))
    y = torch.tensor([i % 2 for i in range(len(train))])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops on a shared 2-core machine: one thread is faster and steadier
    try:
        torch.manual_seed(0)
        m = create_model("baseline", num_classes=2)
        opt = torch.optim.Adam(m.parameters(), lr=2e-3)
        m.train()
        for _step in range(12):
            idx = torch.randperm(len(x))[:16]
            loss = torch.nn.functional.cross_entropy(m(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        m.eval()
        # A few steps do not make a classifier; centre the decision on the parity photos (half each class, the
        # split at the widest gap) so that top-1 agreement on them means something.
        with torch.no_grad():
            logits = m(torch.from_numpy(preprocess_numpy([load_image(p) for p in photos], cfg)))
            d = torch.sort(logits[:, 1] - logits[:, 0]).values
            shift = float(d[len(d) // 2 - 1] + d[len(d) // 2]) / 2
            m.classifier[-1].bias[1] -= shift / 2
            m.classifier[-1].bias[0] += shift / 2
    finally:
        torch.set_num_threads(threads)
    d = tmp_path_factory.mktemp("rt_trained")
    pt = save_checkpoint(d / "base64.pt", model=m, arch="baseline", class_names=["cat", "dog"], preprocess=cfg)
    fp32 = export_onnx(pt, d / "base64.onnx")
    int8 = quantize_int8(fp32, d / "base64.int8.onnx", preprocess_numpy([load_image(p) for p in calib], cfg))
    return {"pt": pt, "fp32": fp32, "int8": int8, "photos": photos}
