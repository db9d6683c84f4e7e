"""bench.candidates on its own: rows from the formats table and the installed backends, no model loaded."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pawlens.bench import candidates as C
from pawlens.runtime import formats


def _file(tmp_path, name: str) -> str:
    p = tmp_path / name
    p.write_bytes(b"x")  # file_kind only looks at the name and that it exists
    return str(p)


def _keys(cands):
    return [c.key for c in cands]


def test_checkpoint_rows_follow_bf16_and_compile(tmp_path):
    pt = _file(tmp_path, "m.pt")
    assert _keys(C.checkpoint_candidates(pt, devices=["cpu"], bf16=False, compile=False)) == ["torch-fp32", "torch-fp32-cl"]
    full = C.checkpoint_candidates(pt, devices=["cpu", "cuda"], bf16=True, compile=True)
    assert _keys(full) == ["torch-fp32", "torch-fp32-cl", "torch-bf16-cl", "torch-bf16ac-cl", "torch-fp32-cl-compiled",
                           "torch-bf16-cl-compiled", "torch-fp32-cuda", "torch-fp16-cuda"]
    by = {c.key: c for c in full}
    assert by["torch-bf16ac-cl"].runner == {"backend": "torch", "device": "cpu", "precision": "bf16-autocast", "channels_last": True,
                                            "compile": False}
    assert by["torch-bf16-cl"].gate_precision == "bf16" and by["torch-fp32-cl-compiled"].compiled
    assert by["torch-fp16-cuda"].device == "cuda" and by["torch-fp16-cuda"].gate_precision == "fp16"


def test_onnx_rows_come_from_the_formats_table_and_what_is_installed(tmp_path):
    onnx = _file(tmp_path, "m.onnx")
    fp32 = SimpleNamespace(precision="fp32")
    only_ort = C.artifact_candidates(onnx, fp32, devices=["cpu"], installed={"ort"})
    assert _keys(only_ort) == ["ort-fp32@m.onnx"] and only_ort[0].label == "ONNX Runtime fp32"
    both = C.artifact_candidates(onnx, fp32, devices=["cpu", "cuda"], installed={"ort", "openvino"}, bf16=True)
    assert _keys(both) == ["ort-fp32@m.onnx", "openvino-fp32@m.onnx", "openvino-bf16@m.onnx", "ort-fp32-cuda@m.onnx"]
    bf = next(c for c in both if c.key == "openvino-bf16@m.onnx")
    assert bf.precision == "bf16" and bf.gate_precision == "fp32" and bf.runner == {"backend": "openvino", "device": "cpu", "precision": "bf16"}
    int8 = C.artifact_candidates(_file(tmp_path, "m.int8.onnx"), SimpleNamespace(precision="int8"), devices=["cpu"], installed={"openvino"})
    assert [(c.key, c.label, c.gate_precision) for c in int8] == [("openvino-int8@m.int8.onnx", "OpenVINO INT8", "int8")]
    # an FP16 ONNX is a GPU artifact: no CPU rows
    fp16 = _file(tmp_path, "m.fp16.onnx")
    assert C.artifact_candidates(fp16, SimpleNamespace(precision="fp16"), devices=["cpu"], installed={"ort", "openvino"}) == []


def test_rows_follow_a_changed_formats_table(tmp_path, monkeypatch):
    """A fake table where ONNX fp32 loads on OpenVINO only: the candidates follow it."""
    fake = tuple(f if f.key != "onnx" else formats.Format("onnx", "ONNX fp32", ".onnx", ".onnx", "fp32", ("openvino",), ())
                 for f in formats.FORMATS)
    monkeypatch.setattr(formats, "FORMATS", fake)
    onnx = _file(tmp_path, "m.onnx")
    got = C.artifact_candidates(onnx, SimpleNamespace(precision="fp32"), devices=["cpu", "cuda"], installed={"ort", "openvino"})
    assert _keys(got) == ["openvino-fp32@m.onnx"]


def test_variants_come_from_the_backends_table(tmp_path, monkeypatch):
    """A backend's variants live in the formats table only: a new one becomes a bench row and a tune candidate, and
    auto's own settings are the backend's ``auto``."""
    import dataclasses

    from pawlens.bench import tune as T

    extra = formats.Variant("fp32-x", "fp32 extra", {"precision": "fp32", "threads_hint": 3}, ("fp32",), needs_bf16=False)
    ort = dataclasses.replace(formats.BACKENDS["ort"], variants=(extra,), auto={"precision": None})
    monkeypatch.setitem(formats.BACKENDS, "ort", ort)
    got = C.artifact_candidates(_file(tmp_path, "m.onnx"), SimpleNamespace(precision="fp32"), devices=["cpu"], installed={"ort"})
    assert _keys(got) == ["ort-fp32@m.onnx", "ort-fp32-x@m.onnx"] and got[1].label == "ONNX Runtime fp32 extra"
    assert got[1].runner == {"backend": "ort", "device": "cpu", "precision": "fp32", "threads_hint": 3}
    cfgs = T.configs_for(".onnx", "fp32", installed=["ort"], bf16=False, cores=1)
    assert [c["precision"] for c in cfgs] == [None, "fp32"]
    assert formats.auto_choice(".onnx", "fp32", cuda=False, installed={"ort"})[1] == {"device": "cpu", "precision": None}


def test_engines_other_models_and_restrict(tmp_path):
    eng = _file(tmp_path, "m.fp16.engine")
    notes: list[str] = []
    assert C.artifact_candidates(eng, SimpleNamespace(precision="fp16"), devices=["cpu"], installed={"trt"}, notes=notes) == []
    assert notes and "needs a CUDA GPU" in notes[0]
    trt = C.artifact_candidates(eng, SimpleNamespace(precision="fp16"), devices=["cuda"], installed={"trt"})
    assert _keys(trt) == ["trt-fp16@m.fp16.engine"] and trt[0].runner == {"backend": "trt", "device": "cuda"}
    other = C.artifact_candidates(_file(tmp_path, "b.onnx"), SimpleNamespace(precision="fp32"), devices=["cpu", "cuda"],
                                  installed={"ort", "openvino"}, bf16=True, suffix="#baseline", group="baseline")
    assert _keys(other) == ["ort-fp32@b.onnx#baseline", "openvino-fp32@b.onnx#baseline"]  # CPU only, no bf16 hint
    assert other[0].label == "ONNX Runtime fp32 [baseline]" and all(c.group == "baseline" for c in other)
    ref = C.reference_candidate("resnet50 (latency reference)", _file(tmp_path, "r.pt"), comparable=False, group="r")
    assert ref.key == "torch-fp32#resnet50 (latency reference)" and not ref.comparable
    kept = C.restrict(trt + other + [ref], ["torch", "ort"], threads=2)
    assert _keys(kept) == ["ort-fp32@b.onnx#baseline", ref.key] and {c.threads for c in kept} == {2}


def test_spec_is_what_make_runner_takes(tiny_checkpoint):
    """A candidate's spec builds its runner through the factory (the only dispatch)."""
    from pawlens.bench.harness import build_runner

    c = C.checkpoint_candidates(str(tiny_checkpoint), devices=["cpu"], bf16=False, compile=False)[1]
    r = build_runner(c.spec())
    assert type(r).__name__ == "TorchRunner" and r.name == "torch-fp32-cl" and r.channels_last and r.precision == "fp32"
    with pytest.raises(Exception, match="cannot load"):
        build_runner({**c.spec(), "runner": {"backend": "ort"}})
