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

from pawlens.models.registry import create_model
from pawlens.synthetic import write_image_folder

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
    from pawlens.export.onnx import export_onnx
    from pawlens.export.tensorrt import profile_shapes

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
    f["fp32_says_int8"] = d / "lie.int8.onnx"  # an fp32 graph whose metadata claims int8
    _with_meta(onnx_path, f["fp32_says_int8"], precision="int8")
    f["fp32_says_fp16"] = d / "lie.fp16.onnx"
    _with_meta(onnx_path, f["fp32_says_fp16"], precision="fp16")
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
    from pawlens.export.tensorrt import STRONGLY_TYPED, build_sidecar, profile_shapes
    from pawlens.fs import sha256_file
    from pawlens.runtime.factory import read_meta

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
        if key in changes:  # class_names, preprocess and extra are JSON; the others plain strings
            p.value = json.dumps(changes[key]) if key in ("class_names", "preprocess", "extra") else changes[key]
    onnx.save(m, str(dst))


# ----------------------------------------------------------------------------- running a command


def _run(capsys, cmd: str, argv: list[str]) -> tuple[int, str]:
    if cmd == "pawlens-train":
        from pawlens.train.cli import train_main as fn
    elif cmd == "pawlens-eval":
        from pawlens.train.cli import eval_main as fn
    elif cmd == "pawlens-export":
        from pawlens.export.cli import main as fn
    elif cmd == "pawlens-predict":
        from pawlens.runtime.predict import main as fn
    elif cmd == "pawlens-bench":
        from pawlens.bench.cli import main as fn
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
        ("--img-size 4096", ["--data", f["two_class"], "--img-size", "4096"], 2, ["at most 2048"]),
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
    from pawlens.export.pipeline import LOCK_NAME
    from pawlens.fs import FolderLock

    out.mkdir(exist_ok=True)
    with FolderLock(out, LOCK_NAME, prog="pawlens-export"):  # as a running export into the same folder holds it
        rc, err = _run(capsys, "pawlens-export", [tiny_checkpoint, "--formats", "onnx", "--parity-data", image_folder, "--out", out,
                                                  "--exist-ok"])  # into this folder although an earlier case left its report there
    _check("pawlens-export", "--out locked by a running export", rc, err, 2, ["another pawlens-export", f"PID {os.getpid()}", "--out"])
    left = glob.glob(str(out / "*.onnx")) + glob.glob(str(out / "*.engine"))
    assert not left, f"failed exports left loadable artifacts: {left}"


def _free_port() -> int:
    """A local port nothing listens on (a network camera that is off)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_predict_bad_inputs(capsys, bad, tmp_path, image_folder):
    cases = [
        ("model of unknown type", [bad["unknown_type"], image_folder], 2, [".onnx"]),
        ("model missing", [bad["missing"], image_folder], 2, ["not found"]),
        ("ONNX truncated", [bad["truncated_onnx"], image_folder], 2, [str(bad["truncated_onnx"])]),
        ("ONNX zero-byte", [bad["zero_onnx"], image_folder], 2, ["zero-byte"]),
        ("ONNX metadata mismatch", [bad["mismatched_onnx"], image_folder], 2, [str(bad["mismatched_onnx"]), "outputs 2 classes", "names 3"]),
        ("ONNX without metadata", [bad["bare_onnx"], image_folder], 2, [str(bad["bare_onnx"]), "--classes"]),
        ("fp32 graph labelled int8", [bad["fp32_says_int8"], image_folder], 2, [str(bad["fp32_says_int8"]), "says int8", "(fp32)"]),
        ("fp32 graph labelled fp16", [bad["fp32_says_fp16"], image_folder], 2, ["says fp16", "float32 weights"]),
        ("fp32 labelled int8, OpenVINO", [bad["fp32_says_int8"], image_folder, "--backend", "openvino"], 2, ["says int8"]),
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
        ("stream nobody serves", [bad["onnx"], f"rtsp://127.0.0.1:{_free_port()}/live", "--stream-timeout", "1"], 2,
         ["rtsp://127.0.0.1:", "cannot connect within 1 s"]),
        ("stream password in the URL", [bad["onnx"], f"http://me:hunter2@127.0.0.1:{_free_port()}/v.mjpg", "--stream-timeout", "1"], 2,
         ["me:***@", "cannot connect"]),
        ("--duration 0", [bad["onnx"], image_folder, "--duration", "0"], 2, ["--duration", "> 0"]),
        ("--stream-timeout 0", [bad["onnx"], image_folder, "--stream-timeout", "0"], 2, ["--stream-timeout 0"]),
    ]
    for what, argv, want_rc, want_in in cases:
        rc, err = _run(capsys, "pawlens-predict", argv)
        assert "hunter2" not in err
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
            p = subprocess.run([sys.executable, "-m", "pawlens.gui.app", *map(str, argv), "--exit-after", "3", "--timeout", "60",
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


# ----------------------------------------------------------------------------- issue 12: bounded images, validated metadata, early checks


def _png(path, width: int, height: int, *, bit_depth: int = 8, color_type: int = 2) -> Path:
    """A valid PNG of ``width`` x ``height`` written row by row (no full-size array in this process); rows are a pattern."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ch = {0: 1, 2: 3, 6: 4}[color_type]
    row = b"\x00" + bytes((i * 37) % 251 for i in range(width * ch * bit_depth // 8))
    c = zlib.compressobj(1)
    body = b"".join(c.compress(row) for _ in range(height)) + c.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return Path(path)


def _graft(src, dst, kind: str) -> Path:
    """A copy of a pawlens ONNX file whose graph breaks the I/O contract in one way (metadata kept)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    if kind in ("uint8_input", "int64_input"):
        for n in g.node:
            n.input[:] = ["input_f" if i == "input" else i for i in n.input]
        dims = [d.dim_param or d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
        del g.input[:]
        g.input.append(helper.make_tensor_value_info("input", TensorProto.UINT8 if kind == "uint8_input" else TensorProto.INT64, dims))
        g.node.insert(0, helper.make_node("Cast", ["input"], ["input_f"], to=TensorProto.FLOAT))
    else:
        for n in g.node:
            n.output[:] = ["logits0" if o == "logits" else o for o in n.output]
        if kind == "two_inputs":
            g.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
            g.node.append(helper.make_node("Add", ["logits0", "extra"], ["logits"]))
        elif kind == "rank3_output":
            g.initializer.append(numpy_helper.from_array(np.array([2], np.int64), "ax2"))
            g.node.append(helper.make_node("Unsqueeze", ["logits0", "ax2"], ["logits"]))
            del g.output[:]
            g.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2, 1]))
        elif kind == "two_outputs":
            g.node.append(helper.make_node("Identity", ["logits0"], ["logits"]))
            g.node.append(helper.make_node("Softmax", ["logits0"], ["probs"], axis=1))
            g.output.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 2]))
        elif kind == "bomb":  # ConstantOfShape sized by the batch at run time: N x 10^6 x 10^6 floats (4 TB a frame)
            g.initializer.extend([numpy_helper.from_array(np.array(v, np.int64), k)
                                  for k, v in (("huge", [10**6, 10**6]), ("s0", [0]), ("s1", [1]), ("ax12", [1, 2]))])
            g.node.extend([helper.make_node("Shape", ["input"], ["shp"]), helper.make_node("Slice", ["shp", "s0", "s1"], ["n"]),
                           helper.make_node("Concat", ["n", "huge"], ["bshape"], axis=0),
                           helper.make_node("ConstantOfShape", ["bshape"], ["zeros"],
                                            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])),
                           helper.make_node("ReduceSum", ["zeros", "ax12"], ["z"], keepdims=0),
                           helper.make_node("Unsqueeze", ["z", "s1"], ["z2"]), helper.make_node("Add", ["logits0", "z2"], ["logits"])])
        else:
            raise AssertionError(kind)
    onnx.save(m, str(dst))
    return Path(dst)


def _video(path, n_frames: int, size=(64, 48)) -> Path:
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    rng = np.random.default_rng(0)
    for _ in range(n_frames):
        w.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    w.release()
    return Path(path)


@pytest.fixture(scope="module")
def robust(bad, tiny_checkpoint, tmp_path_factory):
    """The inputs of issue 12 (strips, lying metadata, contract-breaking graphs, bombs, odd names, damaged clips)."""
    d = tmp_path_factory.mktemp("robust")
    f: dict[str, Path] = {}
    f["strip1"] = _png(d / "strip_1x1000000.png", 1_000_000, 1)
    f["strip2"] = _png(d / "strip_2x100000.png", 100_000, 2)
    mixed = write_image_folder(d / "mixed", n_per_class=4, size=40)
    for k in ("strip1", "strip2"):
        (mixed / "cat" / f"a_{f[k].name}").write_bytes(f[k].read_bytes())  # sorted first: a slideshow meets them at once
    f["mixed"] = mixed  # 8 good photos and the two strips
    pre = json.loads(next(p.value for p in __import__("onnx").load(str(bad["onnx"])).metadata_props if p.key == "pawlens.preprocess"))
    meta_cases = {"resize_1e6": {"resize_size": 10**6}, "mean_two": {"mean": [0.5, 0.5]}, "size_0": {"input_size": 0},
                  "size_neg": {"input_size": -64}, "size_str": {"input_size": "64"}, "std_0": {"std": [0.0, 0.224, 0.225]}}
    for name, change in meta_cases.items():
        f[f"onnx_{name}"] = d / f"{name}.onnx"
        _with_meta(bad["onnx"], f[f"onnx_{name}"], preprocess={**pre, **change})
    f["onnx_nested_classes"] = d / "nested_classes.onnx"
    _with_meta(bad["onnx"], f["onnx_nested_classes"], class_names=[["cat"], "dog"])
    for kind in ("two_inputs", "rank3_output", "two_outputs", "bomb", "uint8_input", "int64_input"):
        f[f"onnx_{kind}"] = _graft(bad["onnx"], d / f"{kind}.onnx", kind)
    for name, change in (("size_0", {"input_size": 0}), ("resize_1e6", {"resize_size": 10**6})):
        ck = torch.load(tiny_checkpoint, weights_only=True)
        ck["preprocess"] = {**ck["preprocess"], **change}
        torch.save(ck, d / f"ckpt_{name}.pt")
        f[f"ckpt_{name}"] = d / f"ckpt_{name}.pt"
    side = _engine_sidecar(bad["onnx"], bad["engine"])
    for name, s in (("resize_1e6", {**side, "preprocess": {**side["preprocess"], "resize_size": 10**6}}),
                    ("batch_1e9", {**side, "profile": {**side["profile"], "max": [10**9, 3, 32, 32]}})):
        f[f"engine_{name}"] = d / f"{name}.fp16.engine"
        f[f"engine_{name}"].write_bytes(b"\x00" * 64)
        (d / f"{name}.fp16.engine.json").write_text(json.dumps(s))
    f["yaml_bomb"] = d / "bomb.yaml"  # 9 levels of 9 aliases: 387 million items once walked (a repr)
    f["yaml_bomb"].write_text('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
                              + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
                              + "epochs: *i\n")
    f["out_dir_named_csv"] = d / "results.csv"
    f["out_dir_named_csv"].mkdir()
    f["clip"] = _video(d / "clip.avi", 162)
    raw = f["clip"].read_bytes()
    f["truncated_clip"] = d / "truncated.avi"
    f["truncated_clip"].write_bytes(raw[: len(raw) // 3])
    f["one_frame_clip"] = _video(d / "one.avi", 1)
    dd = os.fsencode(d)
    f["odd_name_model"] = Path(os.fsdecode(dd + b"/m\xff.onnx"))
    f["odd_name_model"].write_bytes(Path(bad["onnx"]).read_bytes())
    odd = write_image_folder(d / "odd_names", n_per_class=2, size=40)
    Image.new("RGB", (40, 30), (9, 99, 199)).save(os.fsdecode(os.fsencode(odd / "cat") + b"/\xff\xfe.png"))
    f["odd_names"] = odd
    f["odd_out"] = Path(os.fsdecode(dd + b"/r\xff.csv"))
    f["odd_out_dir"] = Path(os.fsdecode(dd + b"/out\xff"))
    return f


def test_predict_refuses_lying_metadata_and_contract_breaking_graphs(capsys, bad, robust):
    """Every field that sizes a buffer is checked at load; both ONNX backends accept and refuse the same graphs."""
    cases = [
        ("ONNX resize_size 10^6", "onnx_resize_1e6", 2, ["resize_size", "1000000"]),
        ("ONNX mean of two values", "onnx_mean_two", 2, ["mean", "three numbers"]),
        ("ONNX input_size 0", "onnx_size_0", 2, ["input_size = 0"]),
        ("ONNX input_size -64", "onnx_size_neg", 2, ["input_size = -64"]),
        ('ONNX input_size "64"', "onnx_size_str", 2, ["input_size = '64'", "whole number"]),
        ("ONNX std 0", "onnx_std_0", 2, ["std", "out of range"]),
        ("ONNX nested class names", "onnx_nested_classes", 2, ["class_names", "list"]),
        ("checkpoint input_size 0", "ckpt_size_0", 2, ["input_size = 0"]),
        ("checkpoint resize_size 10^6", "ckpt_resize_1e6", 2, ["resize_size"]),
        ("engine sidecar resize 10^6", "engine_resize_1e6", 2, ["resize_size"]),
        ("engine profile batch 10^9", "engine_batch_1e9", 2, ["profile", "N 1.."]),
    ]
    for what, key, want_rc, want_in in cases:
        rc, err = _run(capsys, "pawlens-predict", [robust[key], bad["two_class"]])
        _check("pawlens-predict", what, rc, err, want_rc, [robust[key].name, *want_in])
    graphs = [
        ("two-input graph", "onnx_two_inputs", 2, ["2 input(s)"]),
        ("two-output graph", "onnx_two_outputs", 2, ["2 output(s)"]),
        ("output of rank 3", "onnx_rank3_output", 2, ["(?, 2, 1)", "(N, C)"]),
        ("uint8-input graph", "onnx_uint8_input", 2, ["is uint8", "float32"]),
        ("int64-input graph", "onnx_int64_input", 2, ["is int64", "float32"]),
        # onnxruntime fails running it; OpenVINO, compiling a static shape, fails folding it: both say out of memory, exit 1
        ("ConstantOfShape bomb", "onnx_bomb", 1, ["ran out of memory", "the graph asks for absurd memory"]),
    ]
    for backend in ("auto", "ort", "openvino"):  # auto on the CPU is OpenVINO: the same answer as ort
        for what, key, want_rc, want_in in graphs:
            rc, err = _run(capsys, "pawlens-predict", [robust[key], bad["two_class"], "--backend", backend])
            _check("pawlens-predict", f"{what} (--backend {backend})", rc, err, want_rc, [robust[key].name, *want_in])
    for what, argv in (("checkpoint input_size 0", [robust["ckpt_size_0"], "--formats", "onnx", "--random-inputs", "8"]),):
        rc, err = _run(capsys, "pawlens-export", [*argv, "--out", robust["mixed"].parent / "exp_bad_ckpt"])
        _check("pawlens-export", what, rc, err, 2, ["input_size = 0"])
    rc, err = _run(capsys, "pawlens-eval", ["--checkpoint", robust["ckpt_resize_1e6"], "--data", bad["two_class"],
                                            "--out", robust["mixed"].parent / "ev_bad_ckpt"])
    _check("pawlens-eval", "checkpoint resize_size 10^6", rc, err, 2, ["resize_size"])


def test_strips_are_skipped_and_counted_everywhere(capsys, bad, robust, tmp_path, monkeypatch):
    """1x1,000,000 and 2x100,000 PNGs among good photos: every command finishes, the strips skipped and counted."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.json"
    rc, err = _run(capsys, "pawlens-predict", [bad["onnx"], robust["mixed"], "--out", out, "--quiet"])
    ROWS.append(("pawlens-predict", "8 photos + 2 strips", rc, (err.strip().splitlines() or [""])[-1]))
    assert rc == 0, err
    doc = json.loads(out.read_text())
    assert doc["n_ok"] == 8 and doc["n_skipped"] == 2, doc
    assert all("strip" in r["error"] for r in doc["results"] if r["status"] != "ok")
    rc, err = _run(capsys, "pawlens-predict", [bad["onnx"], robust["strip1"], robust["strip2"]])
    _check("pawlens-predict", "only strips", rc, err, 2, ["none of the sources", "strip"])

    rc, err = _run(capsys, "pawlens-eval", ["--checkpoint", _tiny(bad), "--data",
                                            robust["mixed"], "--out", tmp_path / "ev"])
    ROWS.append(("pawlens-eval", "8 photos + 2 strips", rc, (err.strip().splitlines() or [""])[-1]))
    assert rc == 0, err
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["skipped"] == 2, m

    rc, err = _run(capsys, "pawlens-export", [_tiny(bad), "--formats", "onnx", "--parity-data", robust["mixed"], "--out", tmp_path / "exp"])
    ROWS.append(("pawlens-export", "--parity-data 8 photos + 2 strips", rc, (err.strip().splitlines() or [""])[-1]))
    assert rc == 0, err
    inputs = json.loads((tmp_path / "exp" / "parity.json").read_text())["inputs"]
    assert inputs["n_real"] == 8 and inputs["n_skipped"] == 2, inputs

    rc, err = _run(capsys, "pawlens-train", ["--data", robust["mixed"], *TRAIN, "--out", tmp_path / "tr"])
    ROWS.append(("pawlens-train", "8 photos + 2 strips", rc, (err.strip().splitlines() or [""])[-1]))
    assert rc == 0, err
    split = json.loads((tmp_path / "tr" / "split.json").read_text())
    assert sorted(os.path.basename(p) for p, _why in split["skipped"]) == sorted(f"a_{robust[k].name}" for k in ("strip1", "strip2"))


def _tiny(bad) -> Path:
    """The tiny checkpoint the sweep's ONNX file was exported from (beside the bad files' parent)."""
    ck = glob.glob(str(Path(bad["onnx"]).parents[1] / "ckpt*" / "tiny.pt"))
    assert ck, "tiny checkpoint not found"
    return Path(ck[0])


_PEAK = """
import resource, sys, time
t0 = time.perf_counter()
from pawlens.errors import ImageError
from pawlens.models.preprocess import PreprocessConfig, load_image, preprocess_numpy
try:
    a = load_image(sys.argv[1])
    x = preprocess_numpy(a, PreprocessConfig())
    out = f"ok {a.shape[1]}x{a.shape[0]}"
except ImageError as e:
    out = "ImageError " + str(e)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - t0, out)
"""


_RELAY = "import subprocess, sys; r = subprocess.run(sys.argv[1:]); sys.exit(r.returncode)"


def test_peak_memory_of_huge_and_strip_images_stays_under_1gb(robust, tmp_path):
    """Measured in a fresh process (ru_maxrss): strips are refused from the header, the largest allowed 16-bit PNG decodes in bounds.

    Before issue 12: 1x1,000,000 and 2x100,000 PNGs made the resize ask for 786 GB / 39 GB (fatal cv2.error,
    897 MB on the torch path); a 200 MP 16-bit PNG peaked at 5.4 GB (float64 copies), a 200 MP RGB PNG at 3.5 GB.
    """
    from pawlens.models.preprocess import MAX_PIXELS

    side = int(MAX_PIXELS ** 0.5)
    cases = [("1x1,000,000 PNG", robust["strip1"], "ImageError"), ("2x100,000 PNG", robust["strip2"], "ImageError"),
             (f"{side}x{side} 16-bit PNG", _png(tmp_path / "g16.png", side, side, bit_depth=16, color_type=0), "ok"),
             (f"{side}x{side} RGB PNG", _png(tmp_path / "rgb.png", side, side), "ok")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")) if p))
    for what, path, want in cases:
        # Through a small intermediate process: Linux carries the parent's high-water mark into a child's ru_maxrss at
        # exec (fork and vfork alike), so a child of this test process would report pytest's own 1+ GB.
        p = subprocess.run([sys.executable, "-c", _RELAY, sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True,
                           env=env, timeout=300)
        assert p.returncode == 0, p.stderr
        mb, secs, out = p.stdout.split(" ", 2)
        out = out.strip().replace(f"[image] {path}: ", "")
        ROWS.append(("load_image", f"{what}: peak RSS", 0, f"{float(mb):.0f} MB in {float(secs):.1f} s: {out}"))
        assert out.startswith(want), out
        assert float(mb) < 1024, f"{what}: peak RSS {float(mb):.0f} MB"


def test_flags_and_outputs_are_checked_before_any_work(capsys, bad, robust, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    predict = [
        ("--out names a folder", [bad["onnx"], bad["two_class"], "--out", robust["out_dir_named_csv"]], 2, ["is a folder"]),
        ("--out non-UTF-8 name", [bad["onnx"], bad["two_class"], "--out", robust["odd_out"]], 2, ["not valid utf-8"]),
        ("model with non-UTF-8 name", [robust["odd_name_model"], bad["two_class"]], 2, ["not valid utf-8"]),
        ("--threads -1", [bad["onnx"], bad["two_class"], "--threads", "-1"], 2, ["--threads -1", ">= 1"]),
        ("--batch-size 0", [bad["onnx"], bad["two_class"], "--batch-size", "0"], 2, ["--batch-size"]),
    ]
    for what, argv, want_rc, want_in in predict:
        rc, err = _run(capsys, "pawlens-predict", argv)
        _check("pawlens-predict", what, rc, err, want_rc, want_in)
        assert "classified" not in err, f"{what}: refused only after the work:\n{err}"
    export = [
        ("--calib-max -5", [_tiny(bad), "--formats", "int8", "--calib", bad["two_class"], "--calib-max", "-5"], 2, ["--calib-max -5"]),
        ("--calib-max 0", [_tiny(bad), "--formats", "int8", "--calib", bad["two_class"], "--calib-max", "0"], 2, ["--calib-max 0"]),
        ("--parity-max 0", [_tiny(bad), "--formats", "onnx", "--parity-max", "0"], 2, ["--parity-max 0"]),
        ("--out non-UTF-8 name", [_tiny(bad), "--formats", "onnx", "--random-inputs", "8", "--out", robust["odd_out_dir"]], 2,
         ["not valid utf-8"]),
        ("--gates YAML alias bomb", [_tiny(bad), "--formats", "onnx", "--gates", robust["yaml_bomb"]], 2, ["alias"]),
    ]
    for what, argv, want_rc, want_in in export:
        rc, err = _run(capsys, "pawlens-export", [*argv, *(["--out", tmp_path / "exp"] if "--out" not in map(str, argv) else [])])
        _check("pawlens-export", what, rc, err, want_rc, want_in)
    assert not glob.glob(str(tmp_path / "exp" / "*.onnx")) and not os.path.exists(robust["odd_out_dir"])
    rc, err = _run(capsys, "pawlens-train", ["--data", bad["two_class"], "-c", robust["yaml_bomb"], *TRAIN])
    _check("pawlens-train", "-c YAML alias bomb (353 bytes)", rc, err, 2, ["alias"])
    assert len(err) < 1000, f"the error is {len(err)} characters"
    rc, err = _run(capsys, "pawlens-train", ["--data", bad["two_class"], *TRAIN, "--out", robust["odd_out_dir"]])
    _check("pawlens-train", "--out non-UTF-8 name", rc, err, 2, ["not valid utf-8"])
    rc, err = _run(capsys, "pawlens-bench", ["--models", bad["onnx"], "--threads", "-1", "--out", tmp_path / "bench"])
    _check("pawlens-bench", "--threads -1", rc, err, 2, ["--threads -1"])


def test_non_utf8_source_names_are_classified_and_written(capsys, bad, robust, tmp_path):
    out = tmp_path / "r.csv"
    rc, err = _run(capsys, "pawlens-predict", [bad["onnx"], robust["odd_names"], "--out", out])
    ROWS.append(("pawlens-predict", "a source named in non-UTF-8 bytes", rc, (err.strip().splitlines() or [""])[-1]))
    assert rc == 0, err
    rows = out.read_bytes().splitlines()
    assert len(rows) == 1 + 5 and any(b"\xff\xfe.png" in r for r in rows), rows


def test_clips_say_how_they_ended_and_ffmpeg_stays_quiet(bad, robust, tmp_path):
    """Run as a subprocess: FFmpeg writes to the stderr file descriptor itself, which capsys cannot see."""
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")) if p)

    def predict(*srcs):
        p = subprocess.run([sys.executable, "-m", "pawlens.runtime.predict", str(bad["onnx"]), *map(str, srcs), "--quiet", "--every-n", "10"],
                           capture_output=True, text=True, env=env, timeout=300)
        return p.returncode, p.stderr

    rc, err = predict(robust["truncated_clip"])
    warn = next((ln for ln in err.splitlines() if "frames its header declares" in ln), "")
    ROWS.append(("pawlens-predict", "clip truncated to a third", rc, warn or err.strip().splitlines()[-1]))
    assert rc == 0, err
    assert "read 51 of the 162 frames" in warn and "damage" in warn, err
    rc, err = predict(bad["bad_video"])
    ROWS.append(("pawlens-predict", "not a video (FFmpeg quiet)", rc, err.strip().splitlines()[-1]))
    assert rc == 2 and err.strip().splitlines()[-1].startswith("pawlens-predict: error:"), err
    assert " @ 0x" not in err and "moov atom" not in err, f"FFmpeg printed:\n{err}"
    rc, err = predict(robust["clip"])
    assert rc == 0 and "declares" not in err, err


def test_one_frame_clip_loops_and_damaged_clip_says_so(robust):
    pytest.importorskip("PySide6")
    from pawlens.gui.sources import VideoSource

    src = VideoSource(str(robust["one_frame_clip"]), loop=True).open()
    got = [src.read() is not None for _ in range(4)]
    ROWS.append(("gui source", "one-frame clip, Loop on", 0, f"frames {sum(got)} of 4 reads, loops {src.loops}"))
    assert all(got) and src.loops == 3
    src.close()
    src = VideoSource(str(robust["truncated_clip"])).open()
    n = 0
    while src.read() is not None:
        n += 1
    ROWS.append(("gui source", "clip truncated to a third", 0, f"{n} frames; {src.end_note}"))
    assert n == 51 and "51 of the 162" in src.end_note
    src.close()


def test_max_images_counts_readable_images(bad, tmp_path):
    """--max-images N takes N readable images: unreadable files met on the way are passed over (and reported)."""
    from pawlens.train.data import discover

    data = write_image_folder(tmp_path / "d", n_per_class=6, size=40)
    for c in ("cat", "dog"):
        for i in range(6):
            (data / c / f"junk{i}.jpg").write_bytes(b"not an image")
    spec = discover(str(data), seed=0, max_images=10)
    n = sum(len(v) for v in spec.splits.values())
    ROWS.append(("train.data", "--max-images 10, half the files junk", 0, f"{n} images taken, {len(spec.skipped)} junk passed over"))
    assert n == 10 and spec.scan() == 0
    assert all("junk" not in p for v in spec.splits.values() for p, _ in v)


def test_library_warnings_never_precede_a_one_line_error(capsys):
    import warnings

    from pawlens.console import run_cli
    from pawlens.errors import InputError

    def fails(_argv):
        warnings.warn("Possibly corrupt EXIF data", UserWarning, stacklevel=2)
        raise InputError("--x 5: must be 1..3")

    def works(_argv):
        warnings.warn("TypedStorage is deprecated", UserWarning, stacklevel=2)
        print("done", file=sys.stderr)
        return 0

    def refuses(_argv):  # the GUI self-check: prints its own error line, then returns 2
        warnings.warn("`torch.jit.freeze` is deprecated", FutureWarning, stacklevel=2)
        print("pawlens-x: error: [input] reference names bird, fish", file=sys.stderr)
        return 2

    rc = run_cli(fails, [], prog="pawlens-x")
    err = capsys.readouterr().err
    ROWS.append(("run_cli", "UserWarning, then an error", rc, err.strip().splitlines()[-1]))
    assert rc == 2 and err.strip().splitlines() == ["pawlens-x: error: [input] --x 5: must be 1..3"], err
    rc = run_cli(works, [], prog="pawlens-x")
    err = capsys.readouterr().err
    assert rc == 0 and err.strip().splitlines() == ["done", "pawlens-x: warning: UserWarning: TypedStorage is deprecated"], err
    rc = run_cli(refuses, [], prog="pawlens-x")
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().splitlines() == ["pawlens-x: error: [input] reference names bird, fish"], err


@pytest.mark.gui
def test_gui_slideshow_survives_strips_and_refuses_a_folder_as_screenshot(bad, robust, tmp_path):
    pytest.importorskip("PySide6")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    base = [sys.executable, "-m", "pawlens.gui.app", "--model", str(bad["onnx"]), "--exit-after", "3", "--timeout", "60"]
    p = subprocess.run([*base, "--source", str(robust["mixed"]), "--interval", "0.2", "--json", str(tmp_path / "s.json")],
                       capture_output=True, text=True, env=env, timeout=120)
    ROWS.append(("pawlens-gui", "slideshow: 8 photos + 2 strips", p.returncode, (p.stderr.strip().splitlines() or [""])[-1]))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert json.loads((tmp_path / "s.json").read_text())["errors"] == [], "a skipped strip was reported as an error"
    p = subprocess.run([*base, "--source", str(robust["mixed"]), "--screenshot", str(robust["out_dir_named_csv"])],
                       capture_output=True, text=True, env=env, timeout=120)
    last = (p.stderr.strip().splitlines() or [""])[-1]
    ROWS.append(("pawlens-gui", "--screenshot names a folder", p.returncode, last))
    assert p.returncode == 2 and last.startswith("pawlens-gui: error:") and "is a folder" in last, p.stderr
