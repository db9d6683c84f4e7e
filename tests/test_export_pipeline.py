"""export.pipeline / pawlens-export: end to end on the tiny model and a ResNet50, broken artifacts, TensorRT absent, bad input."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from conftest import SHARED_DATA, write_image_folder  # noqa: E402

from pawlens.errors import DataError, InputError  # noqa: E402
from pawlens.export.cli import main  # noqa: E402
from pawlens.export.pipeline import export_all, parse_formats  # noqa: E402
from pawlens.fs import sha256_file  # noqa: E402


def _link_photos(dst: Path, cls: str, files: list[Path]) -> None:
    (dst / cls).mkdir(parents=True, exist_ok=True)
    for f in files:
        os.symlink(f, dst / cls / f.name)


@pytest.fixture(scope="module")
def photo_sets(tmp_path_factory):
    """(parity_dir, calib_dir): disjoint class-named folders of real photos, or synthetic ones where ../shared/data is absent."""
    root = tmp_path_factory.mktemp("photos")
    par, cal = root / "parity", root / "calib"
    if (SHARED_DATA / "catsdogs" / "cat").is_dir():
        for cls in ("cat", "dog"):
            files = sorted((SHARED_DATA / "catsdogs" / cls).glob("*.jpg"))
            _link_photos(par, cls, files[:6])
            _link_photos(cal, cls, files[100:108])
    else:
        write_image_folder(par, n_per_class=6, seed=1)
        write_image_folder(cal, n_per_class=8, seed=2)
    return par, cal


def _perturb_classifier(path: str, delta: float = 0.05) -> None:
    """Add ``delta`` to the first row of the Gemm weight (the classifier) of an ONNX file, keeping its metadata."""
    m = onnx.load(path)
    gemm_w = next(n.input[1] for n in m.graph.node if n.op_type == "Gemm")
    w = next(t for t in m.graph.initializer if t.name == gemm_w)
    arr = onnx.numpy_helper.to_array(w).astype(np.float32)
    arr[0] += delta
    w.CopyFrom(onnx.numpy_helper.from_array(arr.astype(onnx.helper.tensor_dtype_to_np_dtype(w.data_type)), w.name))
    onnx.save(m, path)


def _report(out: Path) -> dict:
    return json.loads((out / "parity.json").read_text())


# ----------------------------------------------------------------------------- end to end


def test_cli_tiny_end_to_end(tiny_checkpoint, photo_sets, tmp_path, capsys):
    par, cal = photo_sets
    out = tmp_path / "out"
    rc = main([str(tiny_checkpoint), "--parity-data", str(par), "--calib", str(cal), "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    names = sorted(os.listdir(out))
    assert names == ["args.yaml", "parity.json", "parity.md", "tiny.fp16.onnx", "tiny.int8.onnx", "tiny.onnx"]
    rep = _report(out)
    assert rep["exit_code"] == 0 and rep["source_sha256"] == sha256_file(tiny_checkpoint)
    assert rep["inputs"]["n_real"] == 12 and rep["inputs"]["n_labeled"] == 12 and rep["inputs"]["n_random"] == 4
    assert rep["inputs"]["n_calib"] == 16 and rep["inputs"]["calib_is_parity"] is False
    by = {a["format"]: a for a in rep["artifacts"]}
    assert [a["format"] for a in rep["artifacts"]] == ["onnx", "fp16", "int8"]
    for fmt, prec in (("onnx", "fp32"), ("fp16", "fp16"), ("int8", "int8")):
        a = by[fmt]
        assert a["status"] == "passed" and a["precision"] == prec and a["seconds"] > 0 and a["size_bytes"] > 0
        p = a["parity"]
        assert p["n"] == 16 and p["n_real"] == 12 and p["n_labeled"] == 12 and p["passed"] is True
        assert isinstance(p["max_abs"], float) and 0 <= p["cosine_min"] <= 1.0 + 1e-9 and p["ref_acc"] is not None
        assert {c["name"] for c in p["checks"]} >= {"finite", "max_abs", "top1_agreement"}
    assert by["onnx"]["parity"]["max_abs"] < 1e-4 and by["int8"]["parity"]["max_abs"] > by["fp16"]["parity"]["max_abs"] > 0
    md = (out / "parity.md").read_text()
    for f in ("tiny.onnx", "tiny.fp16.onnx", "tiny.int8.onnx"):
        assert f"| {f} |" in md
    assert "(<= 0.001) ok" in md and "disjoint from the parity images" in md
    assert "gates_resolved" in (out / "args.yaml").read_text()


@pytest.fixture(scope="module")
def resnet_report(resnet_checkpoint, photo_sets, tmp_path_factory):
    par, cal = photo_sets
    out = tmp_path_factory.mktemp("r50")
    return export_all(resnet_checkpoint, out_dir=out, parity_images=par, calib=cal, random_inputs=2, progress=False), out


@pytest.mark.slow
def test_resnet50_onnx_fp16_int8(resnet_report):
    rep, out = resnet_report
    assert rep.exit_code == 0, [a.reason for a in rep.artifacts]
    for fmt, prec, limit in (("onnx", "fp32", 1e-3), ("fp16", "fp16", 5e-2)):
        a = rep.artifact(fmt)
        assert a.status == "passed" and a.parity.precision == prec and a.parity.max_abs <= limit
        assert a.parity.gate.max_abs == limit
    i8 = rep.artifact("int8")
    assert i8.status == "passed" and i8.parity.top1_agreement >= 0.99 and i8.parity.acc_drop <= 1.0
    assert i8.info["int8"]["calib_images"] == 16 and i8.info["int8"]["activation"] == "U8"
    # Sizes tell the precisions apart: fp16 about half, int8 about a quarter of fp32.
    s32, s16, s8 = (rep.artifact(f).size_bytes for f in ("onnx", "fp16", "int8"))
    assert 0.45 < s16 / s32 < 0.55 and 0.2 < s8 / s32 < 0.32
    # A random-weights ResNet50 predicts one class for everything: the report says the agreement is uninformative.
    assert "uninformative" in rep.artifact("onnx").parity.agreement_note
    md = (out / "parity.md").read_text()
    assert md.count("| resnet50.") == 6  # 3 parity rows + 3 step rows


def test_broken_onnx_fails_gate_exit_1_and_is_renamed(tiny_checkpoint, photo_sets, tmp_path, monkeypatch, capsys):
    import pawlens.export.onnx as eo

    real = eo.export_onnx

    def broken_export(*a, **k):
        p = real(*a, **k)
        _perturb_classifier(p)
        return p

    monkeypatch.setattr(eo, "export_onnx", broken_export)
    par, cal = photo_sets
    out = tmp_path / "out"
    rc = main([str(tiny_checkpoint), "--parity-data", str(par), "--calib", str(cal), "--out", str(out), "--no-progress"])
    assert rc == 1
    assert not (out / "tiny.onnx").exists() and (out / "tiny.onnx.failed").exists()
    by = {a["format"]: a for a in _report(out)["artifacts"]}
    assert by["onnx"]["status"] == "failed" and "max_abs" in by["onnx"]["reason"]
    failed = [c for c in by["onnx"]["parity"]["checks"] if c["ok"] is False]
    assert failed[0]["name"] == "max_abs" and failed[0]["measured"] > failed[0]["limit"]
    assert by["fp16"]["status"] == "skipped" and by["int8"]["status"] == "skipped"
    assert "FAIL" in capsys.readouterr().err
    assert "**FAIL**" in (out / "parity.md").read_text()


def test_broken_fp16_only_that_one_fails(tiny_checkpoint, photo_sets, tmp_path, monkeypatch):
    import pawlens.export.onnx as eo

    real = eo.convert_fp16

    def broken(*a, **k):
        p = real(*a, **k)
        _perturb_classifier(p, 0.5)
        return p

    monkeypatch.setattr(eo, "convert_fp16", broken)
    par, cal = photo_sets
    out = tmp_path / "o"
    # A stale .failed from an earlier run is removed once the artifact passes.
    out.mkdir()
    (out / "tiny.onnx.failed").write_bytes(b"old")
    rep = export_all(tiny_checkpoint, out_dir=out, parity_images=par, calib=cal, progress=False, exist_ok=True)
    assert rep.exit_code == 1
    assert [a.status for a in rep.artifacts] == ["passed", "failed", "passed"]
    assert (out / "tiny.fp16.onnx.failed").exists() and not (out / "tiny.fp16.onnx").exists()
    assert (out / "tiny.onnx").exists() and (out / "tiny.int8.onnx").exists() and not (out / "tiny.onnx.failed").exists()


def test_tensorrt_absent_others_still_written(tiny_checkpoint, photo_sets, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    par, _ = photo_sets
    out = tmp_path / "o"
    rc = main([str(tiny_checkpoint), "--formats", "onnx,trt", "--parity-data", str(par), "--out", str(out), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    trt_lines = [ln for ln in err.splitlines() if "TensorRT is not installed" in ln]
    assert len(trt_lines) == 1 and "trt" in trt_lines[0]
    by = {a["format"]: a for a in _report(out)["artifacts"]}
    assert by["onnx"]["status"] == "passed" and (out / "tiny.onnx").exists()
    assert by["trt"]["status"] == "unavailable" and "TensorRT" in by["trt"]["reason"] and by["trt"]["parity"] is None
    assert not (out / "tiny.fp16.engine").exists()


def test_trt_step_with_fake_tensorrt_and_runner(tiny_checkpoint, photo_sets, tmp_path, monkeypatch):
    """The pipeline's trt branch: build (fake TensorRT), sidecar, gate with a TrtRunner stand-in (the FP16 ONNX on ORT)."""
    from test_export_tensorrt import make_fake_trt

    import pawlens.export.tensorrt as T
    from pawlens.runtime.ort_runner import OrtRunner

    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt("10.16.1"))
    monkeypatch.setattr(T, "gpu_info", lambda: ("Fake GPU", "8.9"))
    fake_mod = types.ModuleType("pawlens.runtime.trt_runner")

    class FakeTrtRunner(OrtRunner):
        @classmethod
        def for_file(cls, path, **kw):  # what the formats table's gate calls
            assert kw == {"device": "cuda"}, kw
            return cls(path)

        def __init__(self, path):  # the engine is gated in the export's staging folder; the FP16 ONNX is already in place
            assert os.path.exists(str(path) + ".json"), "the engine is gated with its sidecar"
            super().__init__(str(tmp_path / "tiny.fp16.onnx"), name="fake-trt")

    fake_mod.TrtRunner = FakeTrtRunner
    monkeypatch.setitem(sys.modules, "pawlens.runtime.trt_runner", fake_mod)
    par, _ = photo_sets
    rep = export_all(tiny_checkpoint, formats="fp16,trt", out_dir=tmp_path, parity_images=par, progress=False)
    assert rep.exit_code == 0, [a.reason for a in rep.artifacts]
    t = rep.artifact("trt")
    assert t.status == "passed" and t.parity.precision == "fp16" and t.info["build_mode"] == "strongly_typed_fp16_onnx"
    sc = json.loads((tmp_path / "tiny.fp16.engine.json").read_text())
    assert sc["source_onnx_sha256"] == sha256_file(tmp_path / "tiny.fp16.onnx") and sc["profile"]["max"] == [32, 3, 32, 32]
    assert (tmp_path / "tiny.fp16.timing.cache").exists()
    assert not rep.artifact("onnx").requested


# ----------------------------------------------------------------------------- bad input (exit 2)


def _run_err(argv, capsys) -> tuple[int, str]:
    rc = main(argv)
    return rc, capsys.readouterr().err


def test_bad_checkpoints_exit_2(tmp_path, tiny_checkpoint, capsys):
    import torch

    rc, err = _run_err([str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "checkpoint not found" in err and err.count("\n") == 1
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(Path(tiny_checkpoint).read_bytes()[:5000])
    rc, err = _run_err([str(trunc), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "truncated" in err
    ck = torch.load(tiny_checkpoint, weights_only=True)
    ck["format_version"] = 99
    future = tmp_path / "future.pt"
    torch.save(ck, future)
    rc, err = _run_err([str(future), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "format version 99" in err
    assert not (tmp_path / "o").exists()  # nothing written before the input is known to be good


def test_bad_options_exit_2(tmp_path, tiny_checkpoint, image_folder, capsys):
    rc, err = _run_err([str(tiny_checkpoint), "--formats", "onnx,tflite", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "'tflite'" in err and "onnx, fp16, int8, trt" in err
    rc, err = _run_err([str(tiny_checkpoint), "--formats", "int8", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "refusing to calibrate on random noise" in err
    rc, err = _run_err([str(tiny_checkpoint), "--gate", "int8.max_abz=1", "--parity-data", str(image_folder)], capsys)
    assert rc == 2 and "unknown gate key" in err
    rc, err = _run_err([str(tiny_checkpoint), "--exporter", "dynamo", "--parity-data", str(image_folder), "--out", str(tmp_path / "d")], capsys)
    assert rc == 2 and "lowest is 18" in err
    with pytest.raises(SystemExit) as ei:  # argparse: bad choice
        main([str(tiny_checkpoint), "--exporter", "jit"])
    assert ei.value.code == 2
    with pytest.raises(InputError, match="unknown format"):
        parse_formats("onnx,bogus")


def test_unwritable_output_exit_2(tmp_path, tiny_checkpoint, image_folder, capsys):
    afile = tmp_path / "file"
    afile.write_text("x")
    rc, err = _run_err([str(tiny_checkpoint), "--parity-data", str(image_folder), "--out", str(afile)], capsys)
    assert rc == 2 and "[output]" in err and "cannot create the output folder" in err and "--out" in err
    rc, err = _run_err([str(tiny_checkpoint), "--parity-data", str(image_folder), "--out", str(afile / "sub")], capsys)
    assert rc == 2 and "cannot create" in err


def test_parity_folder_without_readable_images_exit_2(tmp_path, tiny_checkpoint, capsys):
    bad = tmp_path / "bad" / "cat"
    bad.mkdir(parents=True)
    (bad / "a.jpg").write_bytes(b"not a jpeg at all")
    (bad / "b.png").write_bytes(b"")
    (bad / "notes.txt").write_text("hello")
    rc, err = _run_err([str(tiny_checkpoint), "--parity-data", str(tmp_path / "bad"), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "none of the 2 parity image files could be read" in err
    (tmp_path / "empty").mkdir()
    rc, err = _run_err([str(tiny_checkpoint), "--parity-data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "no image files" in err
    rc, err = _run_err([str(tiny_checkpoint), "--parity-data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "folder not found" in err


def test_artifact_from_older_checkpoint_is_rebuilt_not_reused(tmp_path, tiny_checkpoint, image_folder):
    import torch

    from pawlens.export.onnx import read_meta
    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.models.registry import create_model

    out = tmp_path / "o"
    # Checkpoint A exported, then a retrained checkpoint B with the same file name.
    (tmp_path / "a").mkdir()
    a = tmp_path / "a" / "tiny.pt"
    a.write_bytes(Path(tiny_checkpoint).read_bytes())
    export_all(a, formats="onnx", out_dir=out, parity_images=image_folder, progress=False)
    sha_a = sha256_file(a)
    assert read_meta(out / "tiny.onnx").source_sha256 == sha_a
    torch.manual_seed(1)
    (tmp_path / "b").mkdir()
    b = tmp_path / "b" / "tiny.pt"
    save_checkpoint(b, model=create_model("baseline", num_classes=2), arch="baseline", class_names=["cat", "dog"],
                    preprocess=PreprocessConfig.for_size(32))
    rep = export_all(b, formats="onnx", out_dir=out, parity_images=image_folder, progress=False, reuse=True, exist_ok=True)
    res = rep.artifact("onnx")
    assert not res.reused and res.info["replaced_sha256"] == sha_a and res.status == "passed"
    assert read_meta(out / "tiny.onnx").source_sha256 == sha256_file(b) != sha_a
    # Same checkpoint and options with reuse=True: kept (same bytes), and still gated.
    before = (out / "tiny.onnx").stat().st_mtime_ns
    rep2 = export_all(b, formats="onnx", out_dir=out, parity_images=image_folder, progress=False, reuse=True, exist_ok=True)
    assert rep2.artifact("onnx").reused and rep2.artifact("onnx").parity.passed
    assert (out / "tiny.onnx").stat().st_mtime_ns == before
    # Default (no reuse): always rebuilt.
    rep3 = export_all(b, formats="onnx", out_dir=out, parity_images=image_folder, progress=False, exist_ok=True)
    assert not rep3.artifact("onnx").reused


def test_load_images_skips_unreadable_and_labels(tmp_path, image_folder):
    from pawlens.export.pipeline import load_images, resolve_images
    from pawlens.models.preprocess import PreprocessConfig

    (image_folder / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "dog.7.jpg").write_bytes((image_folder / "dog" / "dog.0.jpg").read_bytes())
    (flat / "mystery.jpg").write_bytes((image_folder / "dog" / "dog.1.jpg").read_bytes())
    paths = resolve_images(image_folder, "parity") + resolve_images(flat, "parity")
    x, labels, used, skipped = load_images(paths, PreprocessConfig.for_size(32), ["cat", "dog"], what="parity")
    assert x.shape == (26, 3, 32, 32) and x.dtype == np.float32 and len(skipped) == 1 and "broken.jpg" in skipped[0]
    lab = dict(zip((os.path.basename(p) for p in used), labels.tolist()))
    assert lab["cat.0.jpg"] == 0 and lab["dog.3.jpg"] == 1 and lab["dog.7.jpg"] == 1 and lab["mystery.jpg"] == -1
    with pytest.raises(DataError):
        load_images([str(image_folder / "cat" / "broken.jpg")], PreprocessConfig.for_size(32), ["cat", "dog"], what="parity")


def test_gates_yaml_and_config_file(tiny_checkpoint, photo_sets, tmp_path, capsys):
    """A stricter gate from --gates YAML fails the int8 artifact (exit 1); -c config sets flag defaults."""
    par, cal = photo_sets
    gates = tmp_path / "gates.yaml"
    gates.write_text("int8:\n  max_abs: 1.0e-6\nfp16:\n  max_abs: 0.1\n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"formats: onnx,int8\nparity-data: {par}\ncalib: {cal}\nno_such_key_is_fine: false\n")
    rc, err = _run_err([str(tiny_checkpoint), "-c", str(cfg), "--out", str(tmp_path / "x")], capsys)
    assert rc == 2 and "unknown config key(s) no_such_key_is_fine" in err
    cfg.write_text(f"formats: onnx,int8\nparity-data: {par}\ncalib: {cal}\n")
    out = tmp_path / "o"
    rc = main([str(tiny_checkpoint), "-c", str(cfg), "--gates", str(gates), "--out", str(out), "--no-progress"])
    assert rc == 1
    rep = _report(out)
    assert rep["gates"]["int8"]["max_abs"] == 1e-6 and rep["gates"]["fp16"]["max_abs"] == 0.1
    by = {a["format"]: a for a in rep["artifacts"]}
    assert list(by) == ["onnx", "int8"] and by["onnx"]["status"] == "passed" and by["int8"]["status"] == "failed"
    assert (out / "tiny.int8.onnx.failed").exists() and not (out / "tiny.int8.onnx").exists()
    chk = {c["name"]: c for c in by["int8"]["parity"]["checks"]}
    assert chk["max_abs"]["ok"] is False and chk["max_abs"]["measured"] > 1e-6
