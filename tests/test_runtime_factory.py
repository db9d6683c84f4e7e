"""make_runner: backend from the file, metadata from the artifact, auto's choice, and one-line refusals."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pawlens.errors import ArtifactError, BackendUnavailable, InputError
from pawlens.runtime.factory import BACKENDS, make_predictor, make_runner, plan_runner
from pawlens.runtime.onnx_meta import read_onnx_meta
from pawlens.runtime.openvino_runner import OpenVINORunner
from pawlens.runtime.ort_runner import OrtRunner
from pawlens.runtime.torch_runner import TorchRunner


def test_backends_constant():
    assert BACKENDS == ("auto", "torch", "ort", "openvino", "trt")


def test_backend_from_file_and_metadata_before_activation(rt_tiny_onnx):
    r = make_runner(rt_tiny_onnx["pt"])
    # a .pt runs in plain NCHW on the CPU: faster at batch 1 (formats.auto_choice)
    assert isinstance(r, TorchRunner) and not r.is_active and not r.channels_last and r.device == "cpu"
    assert r.meta.class_names == ["cat", "dog"] and r.meta.preprocess.input_size == 32
    o = make_runner(rt_tiny_onnx["fp32"])  # fp32 on the CPU: OpenVINO f32 where installed (the faster at batch 1)
    assert isinstance(o, OpenVINORunner) and o.precision == "fp32" and o.meta.precision == "fp32"
    assert o.meta.class_names == ["cat", "dog"] and not o.is_active
    assert isinstance(make_runner(rt_tiny_onnx["fp32"], backend="ort"), OrtRunner)
    i = make_runner(rt_tiny_onnx["int8"])
    assert isinstance(i, OpenVINORunner) and i.meta.precision == "int8" and i.precision == "fp32"
    assert isinstance(make_runner(rt_tiny_onnx["int8"], backend="ort"), OrtRunner)
    bf = make_runner(rt_tiny_onnx["fp32"], precision="bf16")
    assert isinstance(bf, OpenVINORunner) and bf.precision == "bf16"
    assert "bf16" in bf.plan_reason


def test_auto_never_lowers_the_precision_of_an_fp32_artifact(rt_tiny_onnx):
    meta = read_onnx_meta(rt_tiny_onnx["fp32"])
    plan = plan_runner(rt_tiny_onnx["fp32"], device="cpu", meta=meta)
    assert plan.backend == "openvino" and plan.kwargs["precision"] == "fp32"
    plan = plan_runner(rt_tiny_onnx["fp32"], backend="openvino", meta=meta)
    assert plan.kwargs["precision"] == "fp32"


def test_predictor_from_factory_on_raw_frames(rt_tiny_onnx):
    frames = [np.full((50, 70, 3), 128, np.uint8), np.zeros((33, 33, 3), np.uint8)]
    outs = {}
    for key in ("pt", "fp32"):
        with make_predictor(rt_tiny_onnx[key]) as p:
            outs[key] = p.predict_batch(frames)
    for a, b in zip(outs["pt"], outs["fp32"]):
        assert a.label == b.label and np.abs(a.probs - b.probs).max() < 1e-4


def test_unknown_file_type_lists_supported_types(tmp_path):
    p = tmp_path / "model.tflite"
    p.write_bytes(b"x")
    with pytest.raises(ArtifactError) as e:
        make_runner(p)
    msg = str(e.value)
    assert ".pt" in msg and ".onnx" in msg and ".engine" in msg and "\n" not in msg
    with pytest.raises(ArtifactError, match="is a folder"):
        make_runner(tmp_path)


def test_truncated_and_foreign_onnx_are_refused(rt_tiny_onnx, tmp_path):
    data = open(rt_tiny_onnx["fp32"], "rb").read()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="truncated"):
        make_runner(cut)
    junk = tmp_path / "photo.onnx"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + b"JFIF" * 100)
    with pytest.raises(ArtifactError, match="not an ONNX model"):
        make_runner(junk)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ArtifactError, match="zero-byte"):
        make_runner(empty)
    with pytest.raises(ArtifactError, match="not found"):
        make_runner(tmp_path / "missing.onnx")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_without_pawlens_metadata(tmp_path):
    import torch

    from pawlens.models.registry import create_model

    p = tmp_path / "bare.onnx"
    torch.onnx.export(create_model("baseline").eval(), (torch.randn(2, 3, 32, 32),), str(p), dynamo=False, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    with pytest.raises(ArtifactError, match="no pawlens metadata"):
        make_runner(p)
    r = make_runner(p, class_names=["a", "b"])
    assert r.meta.class_names == ["a", "b"] and r.meta.preprocess.input_size == 224


def test_wrong_backend_device_precision_combinations(rt_tiny_onnx):
    with pytest.raises(InputError, match="cannot load a .pt"):
        make_runner(rt_tiny_onnx["pt"], backend="ort")
    with pytest.raises(InputError, match="cannot load a .onnx"):
        make_runner(rt_tiny_onnx["fp32"], backend="trt")
    with pytest.raises(InputError, match="choose one of: auto, torch, ort, openvino, trt"):
        make_runner(rt_tiny_onnx["fp32"], backend="tflite")
    with pytest.raises(InputError, match="does not match"):
        make_runner(rt_tiny_onnx["int8"], precision="fp16")
    with pytest.raises(InputError, match="no bf16 mode"):
        make_runner(rt_tiny_onnx["fp32"], backend="ort", precision="bf16")
    with pytest.raises(InputError, match="unknown device"):
        make_runner(rt_tiny_onnx["fp32"], device="tpu")


def test_auto_without_openvino_runs_onnx_on_onnxruntime(rt_tiny_onnx, monkeypatch):
    from pawlens.runtime import factory

    monkeypatch.setattr(factory, "backend_installed", lambda b: b != "openvino")
    for key in ("fp32", "int8"):
        assert factory.plan_runner(rt_tiny_onnx[key], device="cpu", meta=read_onnx_meta(rt_tiny_onnx[key])).backend == "ort"


def test_missing_backend_library_is_one_line(rt_tiny_onnx, monkeypatch):
    from pawlens.runtime import factory

    monkeypatch.setattr(factory, "backend_installed", lambda b: b == "torch")
    with pytest.raises(BackendUnavailable) as e:
        make_runner(rt_tiny_onnx["fp32"])
    assert "pip install" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(BackendUnavailable, match=r"\.\[openvino\]"):
        make_runner(rt_tiny_onnx["fp32"], backend="openvino")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    r = OrtRunner(rt_tiny_onnx["fp32"])  # construction needs no onnxruntime
    with pytest.raises(BackendUnavailable, match=r"\.\[cpu\]"):
        r.activate()
