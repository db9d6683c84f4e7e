"""Registry, architectures, weights loading and the checkpoint format."""

from __future__ import annotations

import os

import pytest
import torch

from pawlens.errors import CheckpointError, InputError, WeightsError
from pawlens.models.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from pawlens.models.preprocess import PreprocessConfig
from pawlens.models.registry import create_model, list_models, model_info


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_and_runs(name):
    m = create_model(name, num_classes=3).eval()
    size = 64
    with torch.no_grad():
        y = m(torch.randn(2, 3, size, size))
    assert y.shape == (2, 3)
    info = model_info(name)
    assert dict(m.named_modules())[info.cam_layer] is not None
    assert hasattr(m, info.head)


def test_baseline_is_small():
    assert sum(p.numel() for p in create_model("baseline").parameters()) < 5_000_000


def test_unknown_model_names_choices():
    with pytest.raises(InputError, match="baseline, efficientnet_lite0, resnet50"):
        create_model("vgg")


def test_imagenet_offline_fails_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache: torchvision must download

    def no_net(*a, **k):
        import urllib.error

        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torch.hub.download_url_to_file", no_net)
    with pytest.raises(WeightsError) as e:
        create_model("resnet50", weights="imagenet")
    msg = str(e.value)
    assert "--weights PATH" in msg and "--weights none" in msg and "\n" not in msg


def test_local_weights_file(tmp_path):
    from torchvision.models import resnet50

    src = resnet50(weights=None)
    p = tmp_path / "r50.pth"
    torch.save(src.state_dict(), p)
    m = create_model("resnet50", weights=str(p))
    assert torch.equal(m.conv1.weight, src.conv1.weight)
    assert m.fc[1].out_features == 2


def test_weights_of_another_architecture(tmp_path):
    p = tmp_path / "base.pth"
    torch.save(create_model("baseline").state_dict(), p)
    with pytest.raises(WeightsError, match="another architecture"):
        create_model("resnet50", weights=str(p))
    with pytest.raises(WeightsError, match="not found"):
        create_model("resnet50", weights=str(tmp_path / "missing.pth"))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    m = create_model("baseline", num_classes=2).eval()
    cfg = PreprocessConfig.for_size(32)
    p = save_checkpoint(tmp_path / "c.pt", model=m, arch="baseline", class_names=["cat", "dog"], preprocess=cfg,
                        train_config={"epochs": 1, "out": tmp_path}, metrics={"val_acc": 0.5})
    ck = load_checkpoint(p)
    assert ck["class_names"] == ["cat", "dog"] and ck["preprocess"] == cfg.to_dict()
    assert ck["versions"]["torch"] == torch.__version__ and ck["metrics"]["val_acc"] == 0.5
    m2 = model_from_checkpoint(ck)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


class Evil:
    """Stands for any pickled object: weights_only loading must refuse it."""


def test_checkpoint_refusals(tmp_path):
    good = save_checkpoint(tmp_path / "g.pt", model=create_model("baseline"), arch="baseline",
                           class_names=["a", "b"], preprocess=PreprocessConfig.for_size(32))
    data = open(good, "rb").read()
    cases = {
        "missing.pt": None,
        "empty.pt": b"",
        "trunc.pt": data[: len(data) // 2],
        "text.pt": b"hello world\n",
    }
    for name, content in cases.items():
        p = tmp_path / name
        if content is not None:
            p.write_bytes(content)
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)

    torch.save({"format": "pawlens-checkpoint", "obj": Evil()}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="pickled code"):
        load_checkpoint(tmp_path / "pickled.pt")
    torch.save({"w": torch.zeros(1)}, tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="bare state dict"):
        load_checkpoint(tmp_path / "sd.pt")
    ck = torch.load(good, weights_only=True)
    ck["format_version"] = 99
    torch.save(ck, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "v99.pt")


def test_interrupted_save_leaves_old_file(tmp_path, monkeypatch):
    p = tmp_path / "c.pt"
    kw = dict(arch="baseline", class_names=["a", "b"], preprocess=PreprocessConfig.for_size(32))
    save_checkpoint(p, model=create_model("baseline"), **kw)
    before = p.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(p, model=create_model("baseline"), **kw)
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]
