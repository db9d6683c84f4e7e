"""pawlens-predict: images, folders and videos in; bad inputs reported and skipped; CSV/JSON out; Grad-CAM overlays."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from pawlens.runtime.predict import iter_sources, main
from pawlens.runtime.torch_runner import cxx_compiler
from PIL import Image


def _write_video(path, n=12, size=(80, 60)):
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    if not w.isOpened():
        pytest.skip("OpenCV cannot write mp4v here")
    rng = np.random.default_rng(0)
    for _ in range(n):
        w.write(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))
    w.release()
    return path


@pytest.fixture
def sources(tmp_path, image_folder):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    gray = tmp_path / "gray16.png"
    Image.fromarray(np.linspace(0, 65535, 40 * 30, dtype=np.uint16).reshape(30, 40)).save(gray)
    rgba = tmp_path / "alpha.png"
    Image.fromarray(np.zeros((20, 50, 4), np.uint8)).save(rgba)
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    video = _write_video(tmp_path / "clip.mp4")
    badvid = tmp_path / "fake.mp4"
    badvid.write_bytes(b"\x00" * 100)
    return {"folder": image_folder, "bad": bad, "gray": gray, "rgba": rgba, "empty": empty, "video": video, "badvid": badvid,
            "missing": tmp_path / "nope.jpg"}


def test_iter_sources_expands_and_reports(sources):
    items = list(iter_sources([str(sources[k]) for k in ("folder", "bad", "empty", "video", "badvid", "missing")], every_n=4))
    ok = [i for i in items if not i.error]
    errs = {i.source: i.error for i in items if i.error}
    assert sum(1 for i in ok if i.frame is None) == 24  # the folder's images
    assert [i.frame for i in ok if i.frame is not None] == [0, 4, 8]  # 12 frames, every 4th
    assert "truncated" in errs[str(sources["bad"])] or "not a readable" in errs[str(sources["bad"])]
    assert "empty folder" in errs[str(sources["empty"])]
    assert "cannot open the video" in errs[str(sources["badvid"])]
    assert errs[str(sources["missing"])] == "not found"


@pytest.mark.parametrize("model_key", ["pt", "fp32"])
def test_cli_writes_csv_and_skips_bad_inputs(rt_tiny_onnx, sources, tmp_path, capsys, model_key):
    out = tmp_path / "out" / "results.csv"
    args = [rt_tiny_onnx[model_key], str(sources["folder"]), str(sources["bad"]), str(sources["gray"]), str(sources["rgba"]),
            str(sources["empty"]), str(sources["video"]), str(sources["badvid"]), "--every-n", "6", "--out", str(out), "--batch-size", "5"]
    assert main(args) == 0
    cap = capsys.readouterr()
    assert "SKIPPED" in cap.out and "label" in cap.out.splitlines()[0]
    assert "classified" in cap.err
    rows = list(csv.DictReader(open(out)))
    ok = [r for r in rows if r["status"] == "ok"]
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(ok) == 24 + 2 + 2 and len(skipped) == 3  # folder + gray + rgba + 2 video frames; bad, empty, badvid
    for r in ok:
        p = float(r["prob_cat"]) + float(r["prob_dog"])
        assert abs(p - 1) < 1e-4 and r["label"] in ("cat", "dog") and float(r["confidence"]) >= 0.5
    assert {r["frame"] for r in ok if r["source"].endswith("clip.mp4")} == {"0", "6"}


def test_cli_json_with_cam_overlays(rt_tiny_onnx, sources, tmp_path):
    out = tmp_path / "res" / "results.json"
    assert main([rt_tiny_onnx["fp32"], str(sources["folder"]), str(sources["video"]), "--every-n", "12", "--out", str(out),
                 "--cam", "--reference", rt_tiny_onnx["pt"], "--quiet"]) == 0
    doc = json.loads(out.read_text())
    assert doc["runner"]["backend"] == "openvino" and doc["n_ok"] == 25 and doc["class_names"] == ["cat", "dog"]
    pngs = sorted((tmp_path / "res" / "cam").glob("*.png"))
    assert len(pngs) == 25 and len({p.name for p in pngs}) == 25
    r0 = doc["results"][0]
    im = np.asarray(Image.open(r0["cam_path"]))
    assert im.shape == (64, 64, 3) and r0["cam_ms"] > 0


@pytest.mark.skipif(cxx_compiler() is None, reason="torch.compile needs a C++ compiler")
def test_cli_compile_gives_the_eager_results(rt_tiny_onnx, sources, tmp_path, capsys):
    outs = {}
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        out = tmp_path / f"{name}.json"
        assert main([rt_tiny_onnx["pt"], str(sources["folder"]), "--batch-size", "8", "--out", str(out), "--quiet", *extra]) == 0
        outs[name] = json.loads(out.read_text())
    assert outs["compiled"]["runner"]["compiled"] and outs["compiled"]["runner"]["compile_s"]
    assert not outs["eager"]["runner"]["compiled"]
    for a, b in zip(outs["eager"]["results"], outs["compiled"]["results"]):
        assert a["label"] == b["label"] and abs(a["probs"]["cat"] - b["probs"]["cat"]) < 1e-4, (a, b)
    capsys.readouterr()
    assert main([rt_tiny_onnx["fp32"], str(sources["folder"]), "--compile"]) == 2
    assert "--compile applies to a .pt checkpoint" in capsys.readouterr().err


def test_cli_errors(rt_tiny_onnx, sources, tmp_path, capsys):
    assert main([rt_tiny_onnx["fp32"], str(sources["empty"]), str(sources["bad"])]) == 2
    assert "none of the sources could be read" in capsys.readouterr().err
    assert main([rt_tiny_onnx["fp32"], str(sources["folder"]), "--cam"]) == 2
    assert "--reference" in capsys.readouterr().err
    assert main([rt_tiny_onnx["fp32"], str(sources["folder"]), "--out", str(tmp_path / "r.txt")]) == 2
    assert ".csv or .json" in capsys.readouterr().err
    bad_model = tmp_path / "m.bin"
    bad_model.write_bytes(b"x")
    assert main([str(bad_model), str(sources["folder"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pawlens-predict: error: [artifact]") and "supported" in err and err.count("\n") == 1
