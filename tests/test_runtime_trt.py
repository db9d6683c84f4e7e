"""TrtRunner: the refusal paths with a fake sidecar (no TensorRT needed), and a real engine where TensorRT and a GPU exist."""

from __future__ import annotations

import hashlib
import json
import sys
import types

import numpy as np
import pytest

from pawlens.errors import ArtifactError, BackendUnavailable, InputError
from pawlens.models.preprocess import PreprocessConfig
from pawlens.runtime.factory import make_runner
from pawlens.runtime.trt_runner import TrtRunner, check_engine_compat, read_sidecar

BLOB = b"not really an engine, but bytes with a known sha256"


def _sidecar(**over):
    d = {
        "class_names": ["cat", "dog"], "preprocess": PreprocessConfig.for_size(224).to_dict(), "arch": "resnet50", "precision": "fp16",
        "source_sha256": "ab" * 32, "tool_version": "0.1.0", "input_name": "input", "output_name": "logits",
        "tensorrt_version": "10.16.0.72", "gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
        "profile": {"min": [1, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [32, 3, 224, 224]},
        "source_onnx_sha256": "cd" * 32, "engine_sha256": hashlib.sha256(BLOB).hexdigest(), "build_mode": "strongly_typed_fp16_onnx",
        "precision_audit": {"fp16_layers": 50, "fp32_layers": 2, "other_layers": 3, "fraction_fp16": 0.96, "passed": True},
        "created": "2025-01-01T00:00:00+00:00",
    }
    d.update(over)
    return d


@pytest.fixture
def engine(tmp_path):
    def make(blob=BLOB, **over):
        p = tmp_path / "model.fp16.engine"
        p.write_bytes(blob)
        (tmp_path / "model.fp16.engine.json").write_text(json.dumps(_sidecar(**over)))
        return str(p)

    return make


@pytest.fixture
def fake_gpu(monkeypatch):
    """A fake ``tensorrt`` module and a fake CUDA device, enough to reach the compatibility checks."""
    import torch

    def install(trt_version="10.16.0.72", gpu="NVIDIA H100 80GB HBM3", cc=(9, 0)):
        trt = types.ModuleType("tensorrt")
        trt.__version__ = trt_version

        class Boom:  # deserialization must never be reached by a refused engine
            def __init__(self, *a, **k):
                raise AssertionError("TensorRT was called for an engine that should have been refused")

        trt.Logger = Boom
        trt.Runtime = Boom
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(name=gpu, major=cc[0], minor=cc[1]))
        return trt

    return install


def test_sidecar_metadata_is_read_without_tensorrt(engine, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr("pawlens.runtime.factory.backend_installed", lambda b: b != "trt")
    with pytest.raises(BackendUnavailable) as e:
        make_runner(engine(), device="auto")
    assert "NVIDIA" in str(e.value) and "\n" not in str(e.value)
    r = TrtRunner(engine())
    assert isinstance(r, TrtRunner) and r.meta.class_names == ["cat", "dog"] and r.meta.precision == "fp16"
    assert (r.min_batch, r.opt_batch, r.max_batch) == (1, 8, 32) and r.input_spec().max_batch == 32
    with pytest.raises(BackendUnavailable) as e:
        r.activate()
    assert "TensorRT" in str(e.value) and "\n" not in str(e.value)


def test_missing_or_broken_sidecar(engine, tmp_path):
    p = engine()
    (tmp_path / "model.fp16.engine.json").unlink()
    with pytest.raises(ArtifactError, match="sidecar .* is missing.*rebuild it with pawlens-export"):
        TrtRunner(p)
    (tmp_path / "model.fp16.engine.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable sidecar"):
        TrtRunner(p)
    engine(profile={"min": [1, 3, 224, 224]})
    with pytest.raises(ArtifactError, match="profile"):
        TrtRunner(p)
    d = _sidecar()
    del d["tensorrt_version"]
    (tmp_path / "model.fp16.engine.json").write_text(json.dumps(d))
    with pytest.raises(ArtifactError, match="lacks tensorrt_version"):
        TrtRunner(p)
    p = engine(blob=b"")
    with pytest.raises(ArtifactError, match="zero-byte"):
        TrtRunner(p)


def test_other_tensorrt_version_is_refused(engine, fake_gpu):
    fake_gpu(trt_version="10.3.0")
    with pytest.raises(ArtifactError) as e:
        TrtRunner(engine()).activate()
    msg = str(e.value)
    assert "TensorRT 10.16.0.72" in msg and "10.3.0" in msg and "rebuild it with pawlens-export" in msg and "\n" not in msg


def test_other_gpu_is_refused(engine, fake_gpu):
    fake_gpu(gpu="NVIDIA A100-SXM4-40GB", cc=(8, 0))
    with pytest.raises(ArtifactError, match="compute capability 9.0.*this GPU is 8.0.*rebuild it with pawlens-export"):
        TrtRunner(engine()).activate()


def test_replaced_engine_is_refused(engine, fake_gpu, tmp_path):
    fake_gpu()
    p = engine()
    with open(p, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ArtifactError, match="engine_sha256"):
        TrtRunner(p).activate()


def test_compat_check_directly():
    side = _sidecar()
    check_engine_compat(side, trt_version="10.16.0.72", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")
    check_engine_compat(side, trt_version="10.16.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")  # build number ignored
    with pytest.raises(ArtifactError, match="rebuild"):
        check_engine_compat(side, trt_version="10.16.1", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")
    with pytest.raises(ArtifactError, match="engine built on NVIDIA H100"):
        check_engine_compat(side, trt_version="10.16.0", gpu_name="NVIDIA H200", compute_capability="9.0")


def test_cpu_device_and_precision_refused(engine, monkeypatch):
    monkeypatch.setattr("pawlens.runtime.factory.backend_installed", lambda b: True)
    p = engine()
    with pytest.raises(InputError, match="CUDA GPU only"):
        make_runner(p, device="cpu")
    with pytest.raises(InputError, match="fixed when it was built"):
        make_runner(p, precision="int8")
    with pytest.raises(InputError, match="needs a CUDA GPU"):
        TrtRunner(p, device="cpu")
    assert read_sidecar(p)["profile"]["max"][0] == 32


@pytest.mark.gpu
@pytest.mark.trt
def test_real_engine_matches_torch(real_tensorrt, tmp_path, resnet_checkpoint):
    """Build a real FP16 engine (export.tensorrt) and run it against PyTorch fp32, with a batch above the profile's max."""
    from pawlens.export.onnx import export_onnx
    from pawlens.export.tensorrt import build_engine
    from pawlens.runtime.torch_runner import TorchRunner

    onnx_path = export_onnx(resnet_checkpoint, tmp_path / "m.onnx")
    eng = str(tmp_path / "m.fp16.engine")
    build_engine(onnx_path, eng, batch_min=1, batch_opt=2, batch_max=4)
    x = np.random.default_rng(0).standard_normal((6, 3, 224, 224)).astype(np.float32)
    with TorchRunner(resnet_checkpoint, device="cuda") as ref_r:
        ref = ref_r.infer(x)
    with TrtRunner(eng) as r:
        out = r.infer(x)  # 6 > max 4: split into chunks
        d = r.describe()
    assert out.shape == ref.shape and np.abs(out - ref).max() < 5e-2 * max(1.0, np.abs(ref).max())
    assert d["precision"] == "fp16" and d["profile_batch"] == [1, 2, 4]
