"""The bad-input sweep: every command against a table of bad inputs.

Each case must end with a one-line error (no Python traceback: ``--debug`` is not passed), the
documented exit code, and no partial artifact where a later step would load it.  The table of
(command, input, exit code, message) is printed in the test output.

Commands run in-process through their ``main(argv)`` (the same function the console script calls),
except the GUI, which runs as a subprocess (it owns a QApplication).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.registry import create_model
from models.synthetic import write_image_folder

ROWS: list[tuple[str, str, int, str]] = []


@pytest.fixture(scope="module", autouse=True)
def _print_table(request):
    yield
    tr = request.config.pluginmanager.getplugin("terminalreporter")
    if tr is None or not ROWS:
        return
    capman = request.config.pluginmanager.getplugin("capturemanager")  # teardown output is captured (fd 1) unless suspended
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        tr.write_line("")
        tr.write_line(f"bad-input sweep: {len(ROWS)} cases")
        w = max(len(r[1]) for r in ROWS)
        tr.write_line(f"{'command':<16} {'input':<{w}} exit  message")
        for cmd, what, rc, msg in ROWS:
            tr.write_line(f"{cmd:<16} {what:<{w}} {rc:>4}  {msg[:150]}")


# ----------------------------------------------------------------------------- the bad files


class Pickled:
    """Any class instance in a checkpoint means pickled code: weights_only loading must refuse it."""


@pytest.fixture(scope="module")
def bad(tmp_path_factory, tiny_checkpoint):
    """A folder of bad inputs, built once: returns a dict name -> path."""
    from export.onnx import export_onnx
    from export.tensorrt import profile_shapes

    d = tmp_path_factory.mktemp("bad")
    f: dict[str, Path] = {}
    rng = np.random.default_rng(0)

    f["missing"] = d / "does-not-exist"
    f["two_class"] = write_image_folder(d / "good", n_per_class=4, size=40)  # valid data, so flag cases fail on the flag
    f["empty_dir"] = d / "empty"
    f["empty_dir"].mkdir()
    one = d / "one_class" / "cat"
    one.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(one / f"{i}.jpg")
    f["one_class"] = d / "one_class"
    junk = d / "junk"
    for c in ("cat", "dog"):
        (junk / c).mkdir(parents=True)
        for i in range(3):
            (junk / c / f"{i}.jpg").write_bytes(b"this is text, not a JPEG\n" if i else b"")
    f["unreadable_images"] = junk
    f["zero_byte"] = d / "zero.pt"
    f["zero_byte"].write_bytes(b"")
    good = open(tiny_checkpoint, "rb").read()
    f["truncated_ckpt"] = d / "truncated.pt"
    f["truncated_ckpt"].write_bytes(good[: len(good) // 3])
    f["text_ckpt"] = d / "notes.pt"
    f["text_ckpt"].write_text("not a checkpoint\n")
    torch.save({"format": "pawlens-checkpoint", "format_version": 1, "obj": Pickled()}, d / "pickled.pt")
    f["pickled_ckpt"] = d / "pickled.pt"
    ck = torch.load(tiny_checkpoint, weights_only=True)
    ck["format_version"] = 7
    torch.save(ck, d / "v7.pt")
    f["future_ckpt"] = d / "v7.pt"
    ck = torch.load(tiny_checkpoint, weights_only=True)
    ck["arch"] = "resnet50"
    torch.save(ck, d / "arch_mismatch.pt")
    f["arch_mismatch_ckpt"] = d / "arch_mismatch.pt"
    torch.save(create_model("baseline").state_dict(), d / "baseline_weights.pth")
    f["other_arch_weights"] = d / "baseline_weights.pth"
    onnx_path = export_onnx(str(tiny_checkpoint), str(d / "tiny.onnx"))
    f["onnx"] = Path(onnx_path)
    raw = open(onnx_path, "rb").read()
    f["truncated_onnx"] = d / "truncated.onnx"
    f["truncated_onnx"].write_bytes(raw[: len(raw) // 2])
    f["zero_onnx"] = d / "zero.onnx"
    f["zero_onnx"].write_bytes(b"")
    f["mismatched_onnx"] = d / "mismatched.onnx"
    _with_meta(onnx_path, f["mismatched_onnx"], class_names=["cat", "dog", "hamster"])
    f["bare_onnx"] = d / "bare.onnx"
    _with_meta(onnx_path, f["bare_onnx"], strip=True)
    # An engine whose sidecar is complete (so only TensorRT/the GPU is missing here), one without a sidecar,
    # and one whose sidecar lacks keys.
    f["engine"] = d / "tiny.fp16.engine"
    f["engine"].write_bytes(b"\x00" * 64)
    (d / "tiny.fp16.engine.json").write_text(json.dumps(_engine_sidecar(onnx_path, f["engine"])))
    f["engine_no_sidecar"] = d / "lonely.fp16.engine"
    f["engine_no_sidecar"].write_bytes(b"\x00" * 64)
    f["engine_partial_sidecar"] = d / "partial.fp16.engine"
    f["engine_partial_sidecar"].write_bytes(b"\x00" * 64)
    (d / "partial.fp16.engine.json").write_text('{"tensorrt_version": "0.0.1", "class_names": ["cat", "dog"]}')
    side = _engine_sidecar(onnx_path, f["engine"])
    side["profile"] = profile_shapes(224)  # the sidecar's profile disagrees with its own preprocessing (32 px)
    f["engine_mismatched"] = d / "mismatched.fp16.engine"
    f["engine_mismatched"].write_bytes(b"\x00" * 64)
    (d / "mismatched.fp16.engine.json").write_text(json.dumps(side))
    ck = torch.load(tiny_checkpoint, weights_only=True)
    ck["class_names"] = ["bird", "fish"]
    torch.save(ck, d / "other_classes.pt")
    f["other_classes_ckpt"] = d / "other_classes.pt"
    f["bomb"] = d / "bomb.png"
    f["bomb"].write_bytes(_png_header_only(40000, 30000))  # 1.2 gigapixels declared in a 60-byte file
    f["unknown_type"] = d / "model.tflite"
    f["unknown_type"].write_bytes(b"TFL3")
    f["bad_video"] = d / "clip.mp4"
    f["bad_video"].write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else")
    f["bad_yaml"] = d / "cfg.yaml"
    f["bad_yaml"].write_text("epochz: 3\n")
    f["a_file"] = d / "a_file"
    f["a_file"].write_text("x")
    f["unwritable_out"] = d / "a_file" / "out"  # a folder under a regular file: cannot be created, even as root
    imgs = d / "modes" / "cat"
    imgs.mkdir(parents=True)
    base = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    for mode in ("L", "RGBA", "CMYK", "P", "1"):
        base.convert(mode).save(imgs / f"{mode}.{'tiff' if mode == 'CMYK' else 'png'}")
    Image.fromarray(rng.integers(0, 65535, (30, 40)).astype(np.uint16)).save(imgs / "i16.png")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(imgs / "tiny.png")
    Image.new("RGB", (5000, 3000), (10, 200, 10)).save(imgs / "huge.png")
    f["every_mode"] = d / "modes"
    return f


def _engine_sidecar(onnx_path, engine_path) -> dict:
    """The sidecar pawlens-export would write for an engine built from ``onnx_path`` (GPU fields made up)."""
    from export.tensorrt import STRONGLY_TYPED, build_sidecar, profile_shapes
    from models.console import sha256_file
    from runtime.factory import read_meta

    meta = read_meta(onnx_path)
    meta.precision = "fp16"
    audit = {"fp16_layers": 10, "fp32_layers": 0, "other_layers": 2, "fraction_fp16": 1.0, "passed": True}
    return build_sidecar(meta, tensorrt_version="10.16.0.72", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0",
                         profile=profile_shapes(meta.preprocess.input_size), source_onnx_sha256=sha256_file(onnx_path),
                         engine_sha256=sha256_file(engine_path), build_mode=STRONGLY_TYPED, precision_audit=audit)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but holds no pixel data (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _with_meta(src, dst, **changes):
    import onnx

    m = onnx.load(str(src))
    if changes.pop("strip", False):
        del m.metadata_props[:]
    for p in m.metadata_props:
        key = p.key.removeprefix("pawlens.")
        if key in changes:
            p.value = json.dumps(changes[key])
    onnx.save(m, str(dst))


# ----------------------------------------------------------------------------- running a command


def _run(capsys, cmd: str, argv: list[str]) -> tuple[int, str]:
    if cmd == "pawlens-train":
        from train.cli import train_main as fn
    elif cmd == "pawlens-eval":
        from train.cli import eval_main as fn
    elif cmd == "pawlens-export":
        from export.cli import main as fn
    elif cmd == "pawlens-predict":
        from runtime.predict import main as fn
    elif cmd == "pawlens-bench":
        from runtime.bench import main as fn
    else:
        raise AssertionError(cmd)
    capsys.readouterr()
    try:
        rc = fn([str(a) for a in argv])
    except SystemExit as e:  # argparse
        rc = e.code if isinstance(e.code, int) else 2
    err = capsys.readouterr().err
    return rc, err


def _check(cmd, what, rc, err, want_rc, want_in):
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    ROWS.append((cmd, what, rc, last))
    assert "Traceback" not in err, f"{cmd} {what}: traceback printed:\n{err}"
    assert rc == want_rc, f"{cmd} {what}: exit {rc}, expected {want_rc}; stderr:\n{err}"
    assert last.startswith(f"{cmd}: error:"), f"{cmd} {what}: last stderr line is not a one-line error: {last!r}"
    for s in want_in:
        assert s.lower() in last.lower(), f"{cmd} {what}: {s!r} not in {last!r}"


TRAIN = ["--epochs", "1", "--img-size", "32", "--batch-size", "4", "--num-workers", "0"]


def _train_cases(f, tmp):
    return [
        ("missing data folder", ["--data", f["missing"], *TRAIN], 2, ["not found"]),
        ("empty data folder", ["--data", f["empty_dir"], *TRAIN], 2, [str(f["empty_dir"])]),
        ("one class only", ["--data", f["one_class"], *TRAIN], 2, ["class"]),
        ("all images unreadable", ["--data", f["unreadable_images"], *TRAIN], 2, [str(f["unreadable_images"]), "none of the 6 images", "read"]),
        ("--weights missing file", ["--data", f["two_class"], "--model", "resnet50", "--weights", f["missing"], *TRAIN], 2, ["not found"]),
        ("--weights other arch", ["--data", f["two_class"], "--model", "resnet50", "--weights", f["other_arch_weights"], *TRAIN],
         2, ["another architecture"]),
        ("--epochs -1", ["--data", f["two_class"], "--epochs", "-1"], 2, ["epochs"]),
        ("--img-size 0", ["--data", f["two_class"], "--img-size", "0"], 2, ["img"]),
        ("--config unknown key", ["--data", f["two_class"], "--config", f["bad_yaml"]], 2, ["epochz"]),
        ("--config missing", ["--data", f["two_class"], "--config", f["missing"]], 2, ["not found"]),
        ("unwritable --out", ["--data", f["two_class"], "--out", f["unwritable_out"], *TRAIN], 2, [str(f["unwritable_out"])]),
        ("--resume truncated", ["--resume", f["truncated_ckpt"]], 2, ["truncated"]),
    ]


def test_train_bad_inputs(capsys, bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for what, argv, want_rc, want_in in _train_cases(bad, tmp_path):
        rc, err = _run(capsys, "pawlens-train", argv)
        _check("pawlens-train", what, rc, err, want_rc, want_in)
    assert not glob.glob(str(tmp_path / "**" / "*.pt"), recursive=True), "a failed run left a checkpoint behind"


def test_eval_bad_inputs(capsys, bad, tmp_path, monkeypatch, image_folder, tiny_checkpoint):
    monkeypatch.chdir(tmp_path)
    cases = [
        ("checkpoint missing", ["--checkpoint", bad["missing"], "--data", image_folder], 2, ["not found"]),
        ("checkpoint zero-byte", ["--checkpoint", bad["zero_byte"], "--data", image_folder], 2, ["zero-byte"]),
        ("checkpoint truncated", ["--checkpoint", bad["truncated_ckpt"], "--data", image_folder], 2, ["truncated"]),
        ("checkpoint is text", ["--checkpoint", bad["text_ckpt"], "--data", image_folder], 2, [str(bad["text_ckpt"]), "not a torch checkpoint"]),
        ("checkpoint needs pickled code", ["--checkpoint", bad["pickled_ckpt"], "--data", image_folder], 2, ["pickled"]),
        ("checkpoint format v7", ["--checkpoint", bad["future_ckpt"], "--data", image_folder], 2, ["version"]),
        ("checkpoint of another arch", ["--checkpoint", bad["arch_mismatch_ckpt"], "--data", image_folder], 2, ["architecture"]),
        ("data missing", ["--checkpoint", tiny_checkpoint, "--data", bad["missing"]], 2, ["not found"]),
        ("data all unreadable", ["--checkpoint", tiny_checkpoint, "--data", bad["unreadable_images"]], 2,
         [str(bad["unreadable_images"]), "none of the 6 images", "read"]),
        ("data of other classes", ["--checkpoint", bad["other_classes_ckpt"], "--data", image_folder], 2, ["'cat'", "unknown to the checkpoint"]),
        ("unwritable --out", ["--checkpoint", tiny_checkpoint, "--data", image_folder, "--out", bad["unwritable_out"]], 2,
         [str(bad["unwritable_out"])]),
    ]
    for what, argv, want_rc, want_in in cases:
        rc, err = _run(capsys, "pawlens-eval", argv)
        _check("pawlens-eval", what, rc, err, want_rc, want_in)
    assert not glob.glob(str(tmp_path / "**" / "metrics.json"), recursive=True), "a failed evaluation left a report behind"


def test_export_bad_inputs(capsys, bad, tmp_path, tiny_checkpoint, image_folder):
    out = tmp_path / "exp"
    cases = [
        ("checkpoint missing", [bad["missing"], "--out", out], 2, ["not found"]),
        ("checkpoint truncated", [bad["truncated_ckpt"], "--out", out], 2, ["truncated"]),
        ("checkpoint zero-byte", [bad["zero_byte"], "--out", out], 2, ["zero-byte"]),
        ("checkpoint needs pickled code", [bad["pickled_ckpt"], "--out", out], 2, ["pickled"]),
        ("checkpoint format v7", [bad["future_ckpt"], "--out", out], 2, ["version"]),
        ("checkpoint of another arch", [bad["arch_mismatch_ckpt"], "--formats", "onnx", "--out", out], 2, ["architecture"]),
        ("--formats unknown", [tiny_checkpoint, "--formats", "onnx,tflite", "--out", out], 2, ["tflite"]),
        ("--parity-data no images", [tiny_checkpoint, "--parity-data", bad["unreadable_images"], "--out", out], 2,
         [str(bad["unreadable_images"]), "none of the 6", "read"]),
        ("--parity-data missing", [tiny_checkpoint, "--parity-data", bad["missing"], "--out", out], 2, ["not found"]),
        ("int8 without images", [tiny_checkpoint, "--formats", "int8", "--out", out], 2, ["calib"]),
        ("unwritable --out", [tiny_checkpoint, "--formats", "onnx", "--out", bad["unwritable_out"]], 2, [str(bad["unwritable_out"])]),
        ("--opset 3", [tiny_checkpoint, "--formats", "onnx", "--opset", "3", "--out", out], 2, ["opset"]),
    ]
    for what, argv, want_rc, want_in in cases:
        rc, err = _run(capsys, "pawlens-export", argv)
        _check("pawlens-export", what, rc, err, want_rc, want_in)
    from export.pipeline import LOCK_NAME
    from models.console import FolderLock

    out.mkdir(exist_ok=True)
    with FolderLock(out, LOCK_NAME, prog="pawlens-export"):  # as a running export into the same folder holds it
        rc, err = _run(capsys, "pawlens-export", [tiny_checkpoint, "--formats", "onnx", "--parity-data", image_folder, "--out", out])
    _check("pawlens-export", "--out locked by a running export", rc, err, 2, ["another pawlens-export", f"PID {os.getpid()}", "--out"])
    left = glob.glob(str(out / "*.onnx")) + glob.glob(str(out / "*.engine"))
    assert not left, f"failed exports left loadable artifacts: {left}"


def test_predict_bad_inputs(capsys, bad, tmp_path, image_folder):
    cases = [
        ("model of unknown type", [bad["unknown_type"], image_folder], 2, [".onnx"]),
        ("model missing", [bad["missing"], image_folder], 2, ["not found"]),
        ("ONNX truncated", [bad["truncated_onnx"], image_folder], 2, [str(bad["truncated_onnx"])]),
        ("ONNX zero-byte", [bad["zero_onnx"], image_folder], 2, ["zero-byte"]),
        ("ONNX metadata mismatch", [bad["mismatched_onnx"], image_folder], 2, [str(bad["mismatched_onnx"]), "outputs 2 classes", "names 3"]),
        ("ONNX without metadata", [bad["bare_onnx"], image_folder], 2, [str(bad["bare_onnx"]), "--classes"]),
        ("bare ONNX vs --classes", [bad["bare_onnx"], image_folder, "--classes", "cat,dog,hamster"], 2, ["outputs 2 classes", "names 3"]),
        ("checkpoint of another arch", [bad["arch_mismatch_ckpt"], image_folder], 2, [str(bad["arch_mismatch_ckpt"]), "architecture"]),
        ("checkpoint needs pickled code", [bad["pickled_ckpt"], image_folder], 2, ["pickled"]),
        ("checkpoint truncated", [bad["truncated_ckpt"], image_folder], 2, ["truncated"]),
        ("engine, no TensorRT", [bad["engine"], image_folder], 2, ["tensorrt"]),
        ("engine without sidecar", [bad["engine_no_sidecar"], image_folder], 2, ["json"]),
        ("engine sidecar incomplete", [bad["engine_partial_sidecar"], image_folder], 2, ["partial.fp16.engine.json", "lacks"]),
        ("engine metadata mismatch", [bad["engine_mismatched"], image_folder], 2, [str(bad["engine_mismatched"]), "224 px", "32 px"]),
        ("only a too-large image", [bad["onnx"], bad["bomb"]], 2, [str(bad["bomb"]), "too large"]),
        ("empty source folder", [bad["onnx"], bad["empty_dir"]], 2, ["no images"]),
        ("only unreadable sources", [bad["onnx"], bad["unreadable_images"], bad["bad_video"]], 2, ["readable"]),
        ("unwritable --out", [bad["onnx"], image_folder, "--out", bad["unwritable_out"] / "r.csv"], 2, [str(bad["unwritable_out"])]),
        ("--backend bogus", [bad["onnx"], image_folder, "--backend", "tflite"], 2, ["backend"]),
    ]
    for what, argv, want_rc, want_in in cases:
        rc, err = _run(capsys, "pawlens-predict", argv)
        _check("pawlens-predict", what, rc, err, want_rc, want_in)


def test_predict_survives_odd_images_and_skips_junk(capsys, bad, tmp_path):
    """Every image mode, a 1x1 and a 5000x3000 image are predicted; junk files beside them are reported and skipped."""
    import json

    src = tmp_path / "mixed"
    import shutil

    shutil.copytree(bad["every_mode"], src)
    (src / "cat" / "broken.jpg").write_bytes(b"not an image")
    shutil.copy(bad["bomb"], src / "cat" / "bomb.png")
    out = tmp_path / "r.json"
    rc, err = _run(capsys, "pawlens-predict", [bad["onnx"], src, bad["bad_video"], "--out", out, "--quiet"])
    ROWS.append(("pawlens-predict", "every mode + 1x1 + huge + junk", rc, (err.strip().splitlines() or [""])[-1]))
    assert rc == 0, err
    res = json.loads(out.read_text())
    rows = res["results"] if isinstance(res, dict) else res
    ok = [r for r in rows if r.get("label")]
    assert len(ok) == 8, rows
    assert "broken.jpg" in err and "clip.mp4" in err and "bomb.png" in err and "too large" in err
    labelled = {os.path.basename(r.get("source", r.get("path", ""))) for r in ok}
    assert {"huge.png", "tiny.png", "i16.png", "CMYK.tiff"} <= labelled, labelled


def test_bench_bad_inputs(capsys, bad, tmp_path):
    out = tmp_path / "bench"
    cases = [
        ("--batch-sizes 0", ["--models", bad["onnx"], "--batch-sizes", "0", "--out", out], 2, ["batch"]),
        ("--batch-sizes abc", ["--models", bad["onnx"], "--batch-sizes", "abc", "--out", out], 2, ["batch"]),
        ("--iters 0", ["--models", bad["onnx"], "--iters", "0", "--out", out], 2, ["iters"]),
        ("--models truncated ONNX", ["--models", bad["truncated_onnx"], "--out", out], 2, [str(bad["truncated_onnx"])]),
        ("--models unknown type", ["--models", bad["unknown_type"], "--out", out], 2, [".onnx"]),
        ("--models missing", ["--models", bad["missing"], "--out", out], 2, [str(bad["missing"]), "not found"]),
        ("--models ONNX metadata mismatch", ["--models", bad["mismatched_onnx"], "--out", out], 2,
         [str(bad["mismatched_onnx"]), "outputs 2 classes"]),
        ("--models engine without sidecar", ["--models", bad["engine_no_sidecar"], "--out", out], 2, ["lonely.fp16.engine.json", "missing"]),
        ("--models engine metadata mismatch", ["--models", bad["engine_mismatched"], "--out", out], 2, [str(bad["engine_mismatched"]), "224 px"]),
        ("--checkpoint truncated", ["--checkpoint", bad["truncated_ckpt"], "--out", out], 2, ["truncated"]),
        ("unwritable --out", ["--models", bad["onnx"], "--out", bad["unwritable_out"]], 2, [str(bad["unwritable_out"])]),
    ]
    for what, argv, want_rc, want_in in cases:
        rc, err = _run(capsys, "pawlens-bench", argv)
        _check("pawlens-bench", what, rc, err, want_rc, want_in)
    assert not glob.glob(str(out / "**" / "bench.json"), recursive=True)


@pytest.mark.gui
def test_gui_bad_inputs(bad, tmp_path):
    """pawlens-gui --exit-after documents exit 0 ok, 1 timeout, 2 model/source refused (README).

    A refusal found in the window must neither crash nor hang the app: it reaches the self-check's end
    (screenshot and JSON written, the problem among the window's reported errors) and exits 2 with the
    problem as the last stderr line.  Bad flags are refused before any window, with one line and exit 2.
    """
    pytest.importorskip("PySide6")
    import time

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    src = ["--source", bad["every_mode"], "--interval", "0.2"]
    cases = [  # (what, argv, message substrings, refused inside the window?)
        ("model not a model", ["--model", bad["truncated_onnx"], *src], [str(bad["truncated_onnx"]), "truncated"], True),
        ("model of unknown type", ["--model", bad["unknown_type"], *src], ["model.tflite", ".onnx"], True),
        ("ONNX metadata mismatch", ["--model", bad["mismatched_onnx"], *src], ["outputs 2 classes", "names 3"], True),
        ("engine without sidecar", ["--model", bad["engine_no_sidecar"], *src], ["lonely.fp16.engine.json", "missing"], True),
        ("engine metadata mismatch", ["--model", bad["engine_mismatched"], *src], ["mismatched.fp16.engine", "224 px"], True),
        ("reference of another arch", ["--model", bad["onnx"], "--reference", bad["arch_mismatch_ckpt"], *src], ["architecture"], True),
        ("reference of other classes", ["--model", bad["onnx"], "--reference", bad["other_classes_ckpt"], *src], ["bird, fish", "cat, dog"], True),
        ("video cannot be decoded", ["--model", bad["onnx"], "--source", bad["bad_video"]], ["clip.mp4", "cannot decode"], True),
        ("no camera", ["--model", bad["onnx"], "--source", "0"], ["camera 0", "not available"], True),
        ("folder of unreadable images", ["--model", bad["onnx"], "--source", bad["unreadable_images"]],
         [str(bad["unreadable_images"]), "read"], True),
        ("model missing", ["--model", bad["missing"], *src], [str(bad["missing"]), "not found"], False),
        ("--alpha 5", ["--model", bad["onnx"], *src, "--alpha", "5"], ["--alpha"], False),
        ("unwritable --screenshot", ["--model", bad["onnx"], *src], [str(bad["unwritable_out"])], False),
    ]
    for what, argv, want_in, in_window in cases:
        name = what.replace(" ", "_").replace("-", "")
        shot, js = tmp_path / f"{name}.png", tmp_path / f"{name}.json"
        if what == "unwritable --screenshot":
            shot = bad["unwritable_out"] / "s.png"
        t0 = time.perf_counter()
        try:
            p = subprocess.run([sys.executable, "-m", "gui.app", *map(str, argv), "--exit-after", "3", "--timeout", "60",
                                "--screenshot", str(shot), "--json", str(js)], capture_output=True, text=True, env=env, timeout=120)
        except subprocess.TimeoutExpired:
            ROWS.append(("pawlens-gui", what, -1, "HUNG (killed after 120 s)"))
            raise AssertionError(f"pawlens-gui {what}: hung (no exit within 120 s)") from None
        wall = time.perf_counter() - t0
        last = (p.stderr.strip().splitlines() or [""])[-1]
        ROWS.append(("pawlens-gui", what, p.returncode, last))
        assert "Traceback" not in p.stderr and "Fatal Python error" not in p.stderr, f"{what}: crashed:\n{p.stderr}"
        assert p.returncode == 2, f"{what}: exit {p.returncode}, expected 2 (refused); stderr:\n{p.stderr}"
        assert last.startswith("pawlens-gui: error:"), f"{what}: last stderr line is not a one-line error: {last!r}"
        for sub in want_in:
            assert sub.lower() in last.lower(), f"{what}: {sub!r} not in {last!r}"
        if in_window:  # the app ran to the self-check's end and showed the problem in the window
            assert wall < 60, f"{what}: took {wall:.0f} s: the self-check waited for its timeout instead of ending on the error"
            assert shot.stat().st_size > 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{what}: no screenshot"
            shown = json.loads(js.read_text())["errors"]
            assert any(all(sub.lower() in e.lower() for sub in want_in) for e in shown), f"{what}: not among the window's errors: {shown}"
        else:  # refused before any window
            assert not shot.exists() and not js.exists(), f"{what}: refused, yet it wrote {shot} / {js}"
