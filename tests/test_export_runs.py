"""pawlens-export with default flags: run-named, numbered output folders (nothing replaced without --exist-ok), the run's
split.json as the photo source, and the next step printed after a failed gate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from conftest import write_image_folder  # noqa: E402

from pawlens.export.cli import main  # noqa: E402
from pawlens.export.pipeline import next_step, resolve_out_dir  # noqa: E402
from pawlens.fs import next_run_dir, sha256_file  # noqa: E402
from pawlens.runtime.compare import compare_logits, default_gate  # noqa: E402


def _checkpoint(path: Path, seed: int) -> Path:
    import torch

    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.models.registry import create_model

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    return Path(save_checkpoint(path, model=create_model("baseline", num_classes=2), arch="baseline", class_names=["cat", "dog"],
                                preprocess=PreprocessConfig.for_size(32)))


def _split_run(tmp_path: Path, name: str = "baseline") -> Path:
    """A tiny training-run folder: best.pt and a split.json (as pawlens-train writes it) over small images made here."""
    data = write_image_folder(tmp_path / "photos", n_per_class=6, size=40, seed=3)
    files = {c: sorted(str(p.relative_to(data)) for p in (data / c).glob("*")) for c in ("cat", "dog")}
    splits = {"train": [], "val": [], "test": []}
    for y, c in enumerate(("cat", "dog")):
        splits["train"] += [[f, y] for f in files[c][:4]]
        splits["val"] += [[files[c][4], y]]
        splits["test"] += [[files[c][5], y]]
    run = tmp_path / "runs" / "train" / name
    ckpt = _checkpoint(run / "best.pt", 0)
    (run / "split.json").write_text(json.dumps({"format": "pawlens-split", "version": 1, "data": str(data), "layout": "imagefolder",
                                                "class_names": ["cat", "dog"], "splits": splits}))
    return ckpt


def test_next_run_dir_numbers_taken_folders_only(tmp_path):
    assert next_run_dir(tmp_path, "a") == str(tmp_path / "a")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".lock").write_text("")  # hidden entries only: still free
    assert next_run_dir(tmp_path, "a") == str(tmp_path / "a")
    (tmp_path / "a" / "best.onnx").write_text("x")
    assert next_run_dir(tmp_path, "a") == str(tmp_path / "a-2")
    assert next_run_dir(tmp_path, "a", exist_ok=True) == str(tmp_path / "a")
    (tmp_path / "a-2").mkdir()
    (tmp_path / "a-2" / "f").write_text("x")
    assert next_run_dir(tmp_path, "a") == str(tmp_path / "a-3")
    assert resolve_out_dir(tmp_path / "x" / "a" / "best.pt") == os.path.join("runs", "export", "a")


def test_two_checkpoints_in_a_row_with_default_flags_replace_nothing(tmp_path, monkeypatch, capsys):
    from pawlens.runtime.factory import make_runner

    monkeypatch.chdir(tmp_path)
    images = write_image_folder(tmp_path / "imgs", n_per_class=3, size=40, seed=1)
    a = _checkpoint(tmp_path / "x" / "resnet50" / "best.pt", 1)
    b = _checkpoint(tmp_path / "y" / "resnet50" / "best.pt", 2)  # another run of the same name
    for ck in (a, b):
        assert main([str(ck), "--images", str(images), "--no-progress"]) == 0, capsys.readouterr().err
    first, second = Path("runs/export/resnet50"), Path("runs/export/resnet50-2")
    for folder, ck in ((first, a), (second, b)):
        doc = json.loads((folder / "parity.json").read_text())
        assert doc["source_sha256"] == sha256_file(ck)
        for row in doc["artifacts"]:
            path = folder / row["file"]
            assert row["status"] == "passed" and sha256_file(path) == row["sha256"], f"{path} was replaced"
            runner = make_runner(str(path))
            assert runner.meta.source_sha256 == sha256_file(ck)
            runner.activate()
            assert runner.infer(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 2)
            runner.deactivate()
    # The same checkpoint again, with other flags: its own folder (the quick start's paths stay valid); what passed
    # there stays as it is (gated again), nothing is numbered.
    first_files = {f.name: sha256_file(f) for f in first.glob("*.onnx")}
    assert main([str(a), "--images", str(images), "--formats", "onnx", "--opset", "18", "--no-progress"]) == 0
    assert not Path("runs/export/resnet50-3").exists()
    assert {f.name: sha256_file(f) for f in first.glob("*.onnx")} == first_files
    row = json.loads((first / "parity.json").read_text())["artifacts"][0]
    assert row["reused"] and "other build options" in row["info"]["reuse"] and row["status"] == "passed"
    before = {f: sha256_file(f) for f in second.glob("*.onnx")}
    assert main([str(a), "--images", str(images), "--formats", "onnx", "--no-progress", "--exist-ok"]) == 0
    assert not Path("runs/export/resnet50-3").exists(), "--exist-ok writes into runs/export/resnet50 itself"
    assert [r["format"] for r in json.loads((first / "parity.json").read_text())["artifacts"]] == ["onnx"]
    assert not json.loads((first / "parity.json").read_text())["artifacts"][0]["reused"], "--exist-ok rebuilds"
    assert {f: sha256_file(f) for f in second.glob("*.onnx")} == before


def test_zero_flag_export_uses_the_runs_split(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ckpt = _split_run(tmp_path)
    assert main([str(ckpt), "--no-progress"]) == 0, capsys.readouterr().err
    out = Path("runs/export/baseline")
    doc = json.loads((out / "parity.json").read_text())
    inp = doc["inputs"]
    assert inp["n_real"] == 2 and inp["n_labeled"] == 2 and "split.json (test photos)" in inp["parity_source"]
    assert inp["n_calib"] == 8 and "split.json (training photos)" in inp["calib_source"] and inp["calib_is_parity"] is False
    assert [a["status"] for a in doc["artifacts"]] == ["passed"] * 3


def test_without_a_split_int8_says_in_one_line_what_to_pass(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "run" / "best.pt", 0)
    rc = main([str(ckpt), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no split.json" in err[0] and "--calib DIR" in err[0] and "--images DIR" in err[0]
    assert not (tmp_path / "o").exists()


def test_failed_int8_gate_ends_with_the_next_step(tmp_path, capsys):
    ckpt = _split_run(tmp_path)
    gates = tmp_path / "g.yaml"
    gates.write_text("int8:\n  min_cosine: 0.9999999\n  max_abs: 1.0e-7\n")  # forced: no INT8 model is this close
    rc = main([str(ckpt), "--formats", "onnx,int8", "--gates", str(gates), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    line = next(ln for ln in err.splitlines() if "FAIL int8" in ln)
    assert "Next: Calibrate on more (a few hundred) or other photos (--calib DIR --calib-max N; now 8 from" in line
    assert "--calib-method percentile or entropy" in line and "--gate int8.max_abs=" in line and "--gate int8.min_cosine=" in line
    row = {r["format"]: r for r in json.loads((tmp_path / "o" / "parity.json").read_text())["artifacts"]}["int8"]
    assert "Next: " in row["reason"] and (tmp_path / "o" / "best.int8.onnx.failed").exists()
    assert "Next: Calibrate" in (tmp_path / "o" / "parity.md").read_text()


def test_next_step_override_passes_the_gate_it_names():
    r = np.tile(np.array([[1.0, 0.0]], np.float32), (100, 1))
    c = r.copy()
    c[:6] = c[:6, ::-1]  # six decisive flips: 94%, more than the 3 that 100 samples allow at 99%
    res = compare_logits(r, c, gate=default_gate("int8"), precision="int8")
    hint = next_step("int8", res, {"n_calib": 500, "calib_source": "data/calib"}, {"method": "percentile"})
    assert "calibrate on other photos" in hint.lower() and "--calib-method entropy or minmax" in hint
    flag = hint.rsplit("--gate ", 1)[1]
    assert flag == "int8.min_top1_agreement=0.94"
    assert compare_logits(r, c, gate=default_gate("int8").updated(min_top1_agreement=flag.split("=")[1])).passed
    fp32 = compare_logits(r, r + 0.01, gate=default_gate("fp32"))
    assert "--exporter dynamo --opset 18" in next_step("onnx", fp32, {}, {}) and "--gate fp32.max_abs=0.01" in next_step("onnx", fp32, {}, {})


def test_split_json_entries_outside_the_data_folder_are_refused(tmp_path):
    """An edited split.json naming ../../ paths (or another absolute folder) was read for calibration and parity."""
    from pawlens.errors import DataError
    from pawlens.export.pipeline import read_run_split
    from pawlens.models.photos import image_files
    from pawlens.train.data import load_split

    ckpt = _split_run(tmp_path)
    sj = ckpt.parent / "split.json"
    assert len(read_run_split(ckpt).splits["test"]) == 2  # as pawlens-train writes it: fine
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"x")
    for bad in ("../secret.jpg", "cat/../../secret.jpg", str(outside)):
        d = json.loads(sj.read_text())
        d["splits"]["test"][0][0] = bad
        sj.write_text(json.dumps(d))
        with pytest.raises(DataError, match="is outside its data folder"):
            read_run_split(ckpt)
        with pytest.raises(DataError, match="is outside its data folder"):
            load_split(str(sj))
        with pytest.raises(DataError, match="is outside its data folder"):
            image_files(str(sj))


def test_a_rerun_after_a_failed_gate_stays_in_its_folder_and_rebuilds_only_what_failed(tmp_path, monkeypatch):
    """The quick start on a small folder: INT8 failed its gate, the suggested --gate rerun wrote to runs/export/x-2 and
    the next command of the quick start ("model file not found") broke."""
    from pawlens.export.pipeline import export_all
    from pawlens.runtime.compare import Gate

    monkeypatch.chdir(tmp_path)
    images = write_image_folder(tmp_path / "imgs", n_per_class=4, size=40, seed=2)
    ck = _checkpoint(tmp_path / "x" / "lite" / "best.pt", 3)
    rep = export_all(ck, formats="onnx,int8", parity_images=images, calib=images, progress=False, gates={"int8": Gate(max_abs=0.0)})
    assert rep.artifact("int8").status == "failed" and rep.artifact("onnx").status == "passed"
    out = Path(rep.out_dir)
    assert out == Path("runs/export/lite")
    onnx_sha = sha256_file(out / "best.onnx")
    rep2 = export_all(ck, formats="onnx,int8", parity_images=images, calib=images, progress=False)
    assert Path(rep2.out_dir) == out and not Path("runs/export/lite-2").exists()
    assert rep2.artifact("onnx").reused and sha256_file(out / "best.onnx") == onnx_sha
    assert rep2.artifact("int8").status == "passed" and not rep2.artifact("int8").reused and (out / "best.int8.onnx").exists()
    other = _checkpoint(tmp_path / "y" / "lite" / "best.pt", 4)  # another checkpoint of the same name: the next number
    assert Path(export_all(other, formats="onnx", parity_images=images, progress=False).out_dir) == Path("runs/export/lite-2")


def test_exist_ok_never_replaces_files_no_export_wrote(tmp_path):
    from pawlens.errors import OutputError
    from pawlens.export.pipeline import export_all

    images = write_image_folder(tmp_path / "imgs", n_per_class=3, size=40, seed=2)
    ck = _checkpoint(tmp_path / "x" / "a" / "best.pt", 3)
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "parity.md").write_text("my notes")
    (mine / "args.yaml").write_text("mine: 1")
    with pytest.raises(OutputError, match="no pawlens export wrote"):
        export_all(ck, formats="onnx", out_dir=mine, exist_ok=True, parity_images=images, progress=False)
    assert (mine / "parity.md").read_text() == "my notes" and (mine / "args.yaml").read_text() == "mine: 1"
    assert sorted(p.name for p in mine.iterdir()) == ["args.yaml", "parity.md"]
