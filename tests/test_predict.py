"""pawlens-predict: images, folders and videos in; bad inputs reported and skipped; CSV/JSON out; Grad-CAM overlays."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pawlens.runtime.media import iter_sources
from pawlens.runtime.predict import main
from pawlens.runtime.torch_runner import cxx_compiler


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
    assert im.shape == (256, 256, 3) and r0["cam_ms"] > 0  # 64 px frames enlarged so the caption reads


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
    assert main([rt_tiny_onnx["fp32"], str(sources["folder"]), "--workers", "-1"]) == 2
    assert "--workers -1: must be >= 0" in capsys.readouterr().err
    bad_model = tmp_path / "m.bin"
    bad_model.write_bytes(b"x")
    assert main([str(bad_model), str(sources["folder"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pawlens-predict: error: [artifact]") and "supported" in err and err.count("\n") == 1


def test_folder_of_videos_and_one_summary_row_per_video(rt_tiny_onnx, tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    _write_video(clips / "a.mp4", n=12)
    _write_video(clips / "b.mp4", n=7)
    out = tmp_path / "r.csv"
    assert main([rt_tiny_onnx["fp32"], str(clips), "--every-n", "2", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    rows = list(csv.DictReader(open(out)))
    frames = {name: [r for r in rows if r["status"] == "ok" and r["source"].endswith(name)] for name in ("a.mp4", "b.mp4")}
    assert [len(frames["a.mp4"]), len(frames["b.mp4"])] == [6, 4]  # 12 and 7 frames, every 2nd
    summary = {r["source"].rsplit("/", 1)[1]: r for r in rows if r["status"] == "video"}
    assert set(summary) == {"a.mp4", "b.mp4"}
    for name, s in summary.items():
        fr = frames[name]
        assert int(s["frames"]) == len(fr)
        assert float(s["share_cat"]) == pytest.approx(sum(r["label"] == "cat" for r in fr) / len(fr), abs=1e-6)
        assert float(s["share_cat"]) + float(s["share_dog"]) == pytest.approx(1.0)
        assert float(s["confidence"]) == pytest.approx(np.mean([float(r["confidence"]) for r in fr]), abs=1e-5)
        assert s["label"] == ("cat" if float(s["share_cat"]) >= 0.5 else "dog")
    assert "share(cat)" in cap.out and "mean conf" in cap.out
    for r in frames["a.mp4"]:  # the timing columns say what they are: the batch's time over its frames
        assert int(r["batch_frames"]) >= 1 and float(r["infer_ms_batch_avg"]) > 0


def test_json_has_video_summaries(rt_tiny_onnx, tmp_path):
    clip = _write_video(tmp_path / "c.mp4", n=9)
    out = tmp_path / "r.json"
    assert main([rt_tiny_onnx["fp32"], str(clip), "--every-n", "3", "--out", str(out), "--quiet", "--batch-size", "2"]) == 0
    doc = json.loads(out.read_text())
    assert [v["frames"] for v in doc["videos"]] == [3] and sum(doc["videos"][0]["share"].values()) == pytest.approx(1)
    assert [r["batch_frames"] for r in doc["results"]] == [2, 2, 1] and "batch" in doc["timing"]


def _runs_layout(rt_tiny_onnx, root):
    """A project folder as the commands leave it: runs/train/tiny/best.pt and runs/export/tiny/tiny.onnx."""
    import shutil

    (root / "runs" / "train" / "tiny").mkdir(parents=True)
    (root / "runs" / "export" / "tiny").mkdir(parents=True)
    shutil.copy(rt_tiny_onnx["pt"], root / "runs" / "train" / "tiny" / "best.pt")
    shutil.copy(rt_tiny_onnx["fp32"], root / "runs" / "export" / "tiny" / "tiny.onnx")
    return root / "runs" / "export" / "tiny" / "tiny.onnx"


def test_cam_finds_the_reference_by_sha256(rt_tiny_onnx, tmp_path, monkeypatch, caplog):
    import logging

    from pawlens.runtime.reference import find_reference

    model = _runs_layout(rt_tiny_onnx, tmp_path / "proj")
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)  # found from the model's own folder, not from the current one
    photo = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "o" / "r.json"
    with caplog.at_level(logging.INFO, logger="pawlens"):
        assert main([str(model), str(photo), "--cam", "--out", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())["results"][0]
    assert r["cam_path"] and Image.open(r["cam_path"]).size[0] > 80
    assert str(tmp_path / "proj" / "runs" / "train" / "tiny" / "best.pt") in caplog.text
    assert find_reference(str(model), "0" * 64) is None  # a sha256 nothing matches


def test_cam_without_a_matching_reference_says_what_to_pass(rt_tiny_onnx, tmp_path, monkeypatch, capsys):
    import shutil

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    model = tmp_path / "m" / "tiny.onnx"
    shutil.copy(rt_tiny_onnx["fp32"], model)
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(photo)
    assert main([str(model), str(photo), "--cam"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--reference" in err and "sha256" in err and str(model) in err


def test_cam_png_carries_label_probability_and_crop_box(rt_tiny_onnx, tmp_path):
    """The PNG differs from the bare overlay in the caption band and along the crop's outline, nowhere else."""
    from pawlens.models.gradcam import overlay
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.runtime.annotation import annotate, crop_in_frame
    from pawlens.runtime.cam import CamExplainer

    frame = np.random.default_rng(2).integers(0, 256, (300, 600, 3), dtype=np.uint8)
    cfg = PreprocessConfig.for_size(32)
    x0, y0, x1, y1 = crop_in_frame(300, 600, cfg)
    side = 300 * cfg.input_size / cfg.resize_size  # the centre square the model sees, in frame pixels
    assert abs((y1 - y0) - side) <= 1 and abs((x1 - x0) - side) <= 1 and abs((x0 + x1) / 2 - 300) <= 1 and abs((y0 + y1) / 2 - 150) <= 1
    with CamExplainer(rt_tiny_onnx["pt"]) as cam:
        heat = cam.explain(frame).heatmap
    bare = overlay(frame, heat)
    img = annotate(bare, "dog 0.73", (x0, y0, x1, y1))
    diff = np.abs(img.astype(int) - bare.astype(int)).sum(2) > 0
    assert diff[:10, :60].mean() > 0.5  # the caption band
    assert diff[150, x0] and diff[150, x1 - 1] and diff[y1 - 1, 300] and not diff[150, (x0 + x1) // 2]  # the box's sides, not its inside
    assert not diff[60:, : x0 - 5].any() and not diff[60:, x1 + 5:].any()  # outside the box and the band: untouched


def test_save_video_writes_an_annotated_copy_and_never_overwrites(rt_tiny_onnx, tmp_path, capsys):
    import cv2

    clip = _write_video(tmp_path / "clip.mp4", n=12, size=(96, 64))
    vids = tmp_path / "vids"
    args = [rt_tiny_onnx["pt"], str(clip), "--every-n", "3", "--save-video", str(vids), "--quiet", "--cam", "--cam-dir", str(tmp_path / "cam")]
    assert main(args) == 0
    dst = vids / "clip.pred.mp4"
    cap = cv2.VideoCapture(str(dst))
    n = 0
    while cap.read()[0]:
        n += 1
    # every frame of the clip, at its rate (not only the 4 classified ones, which made a slideshow), as H.264
    assert cap.isOpened() and n == 12 and (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (96, 64)
    assert cap.get(cv2.CAP_PROP_FPS) == 10 and int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") in (b"avc1", b"h264")
    cap.release()
    assert "annotated video: " + str(dst) + " (12 frames at 10 fps, H.264" in capsys.readouterr().err
    assert sorted(p.name for p in vids.iterdir()) == ["clip.pred.mp4"]  # no temporary left beside it
    stale = vids / ".clip.pred.mp4.tmp-999999.mp4"  # what a SIGKILLed run leaves (its PID is gone)
    stale.write_bytes(b"half a video")
    before = dst.read_bytes()
    capsys.readouterr()
    args[-1] = str(tmp_path / "cam2")  # a fresh Grad-CAM folder: the video is what this run would replace
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(dst) in err and "--exist-ok" in err and "classified" not in err
    assert dst.read_bytes() == before
    assert main(args + ["--exist-ok"]) == 0
    assert not stale.exists()


def test_video_sink_pads_odd_frames_and_names_its_codec(tmp_path, monkeypatch):
    """H.264 needs even sides (one edge pixel is repeated); without PyAV the sink falls back to mp4v and says so."""
    import builtins

    import cv2

    from pawlens.runtime.annotation import VideoSink

    def frames(path):
        cap = cv2.VideoCapture(str(path))
        n = 0
        while cap.read()[0]:
            n += 1
        out = (n, cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        cap.release()
        return out

    rgb = np.random.default_rng(1).integers(0, 256, (21, 33, 3), dtype=np.uint8)
    sink = VideoSink(str(tmp_path / "odd.mp4"), 7.5, (33, 21))
    for _ in range(5):
        sink.write(rgb)
    sink.close()
    assert sink.codec.startswith("H.264") and frames(tmp_path / "odd.mp4") == (5, 7.5, 34, 22)
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError("no av"))
                        if name == "av" else real_import(name, *a, **k))
    sink = VideoSink(str(tmp_path / "old.mp4"), 10, (32, 24))
    sink.write(rgb)
    sink.close()
    assert sink.codec.startswith("MPEG-4 Part 2") and "PyAV" in sink.codec and frames(tmp_path / "old.mp4")[:2] == (1, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4", "old.mp4"]


# ----------------------------------------------------------------------------- the pipeline (decode workers, writer thread)

TIMING = ("preprocess_ms_batch_avg", "infer_ms_batch_avg", "cam_ms")


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _slow_first_image(monkeypatch):
    """Delay the decoding of the first image asked for, so later ones finish first in the pool (order must not change)."""
    import time

    import pawlens.runtime.media as media

    real, first = media.load_image, []

    def load(path):
        if not first:
            first.append(path)
            time.sleep(0.05)
        return real(path)

    monkeypatch.setattr(media, "load_image", load)


def test_pipelined_gives_the_serial_rows_in_the_same_order(rt_tiny_onnx, sources, tmp_path, monkeypatch, capsys):
    _slow_first_image(monkeypatch)
    srcs = [str(sources[k]) for k in ("bad", "folder", "gray", "empty", "video", "rgba", "badvid", "missing")]
    got = {}
    for workers in ("0", "3"):
        csv_out, json_out = tmp_path / f"w{workers}.csv", tmp_path / f"w{workers}.json"
        for out in (csv_out, json_out):
            assert main([rt_tiny_onnx["fp32"], *srcs, "--every-n", "4", "--batch-size", "5", "--workers", workers, "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert "images/s" in err and "busy s: decode" in err and "inference" in err
        doc = json.loads(json_out.read_text())
        assert doc["throughput"]["workers"] == int(workers) and doc["throughput"]["frames"] == doc["n_ok"] == 24 + 3 + 2
        assert doc["throughput"]["images_per_s"] > 0 and doc["throughput"]["infer_s"] > 0
        got[workers] = (_without_timing(csv.DictReader(open(csv_out))), _without_timing(doc["results"]), doc["videos"])
    assert got["3"] == got["0"]
    rows = got["0"][0]
    assert [r["status"] for r in rows[:2]] == ["skipped", "ok"] and rows[0]["source"] == str(sources["bad"])
    assert {r["source"] for r in rows if r["status"] == "skipped"} == {str(sources[k]) for k in ("bad", "empty", "badvid", "missing")}


def test_a_decoder_crash_is_a_skipped_item_in_both_paths(rt_tiny_onnx, image_folder, monkeypatch):
    import pawlens.runtime.media as media
    from pawlens.runtime.predict import predict_sources

    real = media.load_image
    victim = sorted(p for p in image_folder.rglob("*") if p.is_file())[3]

    def load(path):
        if str(path) == str(victim):
            raise RuntimeError("decoder blew up")
        return real(path)

    monkeypatch.setattr(media, "load_image", load)
    for workers in (0, 2):
        results, info = predict_sources(rt_tiny_onnx["fp32"], [str(image_folder)], workers=workers, batch_size=4, progress=False)
        bad = [r for r in results if r.status != "ok"]
        assert len(results) == 24 and [r.source for r in bad] == [str(victim)], workers
        assert "RuntimeError: decoder blew up" in bad[0].error and info["throughput"]["frames"] == 23


def test_prefetcher_keeps_order_reads_ahead_a_bounded_amount_and_joins_its_threads():
    import threading
    import time

    from pawlens.runtime.pipeline import Prefetcher

    pulled = []

    def tasks():
        for i in range(1000):
            pulled.append(i)
            yield i

    def work(i):
        time.sleep(0.002 * (i % 3 == 0))  # some finish out of order
        return i * 10

    with Prefetcher(tasks(), work, workers=3, ahead=4) as items:
        it = iter(items)
        assert [next(it) for _ in range(5)] == [0, 10, 20, 30, 40]
        deadline = time.monotonic() + 5
        while len(pulled) < 5 + 4 and time.monotonic() < deadline:  # wait for the producer to fill the queue
            time.sleep(0.01)
        time.sleep(0.05)
        assert 5 + 4 <= len(pulled) <= 5 + 4 + 1  # taken + queued + the one in the producer's hand; not the 1000
    names = [t.name for t in threading.enumerate()]
    assert not any(n.startswith(("pawlens-decode", "pawlens-tasks")) for n in names), names

    def fail_on_7(i):
        if i == 7:
            raise ValueError("seven")
        return i

    with pytest.raises(ValueError, match="seven"), Prefetcher(range(20), fail_on_7, workers=2, ahead=3) as items:
        assert list(items) == []  # raises at the 8th result, after 0..6


def test_ctrl_c_exits_130_and_leaves_no_thread_running(rt_tiny_onnx, sources, tmp_path, monkeypatch, capsys):
    import threading

    import pawlens.runtime.predict as predict

    real, calls = predict._infer, []

    def infer(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(predict, "_infer", infer)
    args = [rt_tiny_onnx["pt"], str(sources["folder"]), str(sources["video"]), "--batch-size", "4", "--workers", "2",
            "--cam", "--cam-dir", str(tmp_path / "cam"), "--quiet"]
    assert main(args) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not [t.name for t in threading.enumerate() if t.name.startswith("pawlens-")]
    assert not [p.name for p in (tmp_path / "cam").iterdir() if ".tmp-" in p.name]  # nothing half written


def test_cam_pngs_come_from_the_writer_thread_with_the_traced_trunk(rt_tiny_onnx, tmp_path, monkeypatch):
    """Names and pixels are what drawing each frame inline gives; the writer thread writes them; the trunk is traced."""
    import threading

    import cv2

    import pawlens.runtime.annotation as annotation
    from pawlens.models.gradcam import overlay
    from pawlens.models.preprocess import PreprocessConfig, load_image
    from pawlens.runtime.cam import CamExplainer

    rng = np.random.default_rng(5)
    (tmp_path / "in").mkdir()
    for name, hw in (("a.png", (48, 80)), ("b.jpg", (300, 200))):
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(tmp_path / "in" / name)
    clip = _write_video(tmp_path / "in" / "clip.mp4", n=6)
    writers, real = [], annotation._write_png
    monkeypatch.setattr(annotation, "_write_png", lambda path, rgb: (writers.append(threading.current_thread().name), real(path, rgb)))
    out = tmp_path / "r.json"
    assert main([rt_tiny_onnx["pt"], str(tmp_path / "in"), "--every-n", "3", "--cam", "--out", str(out), "--quiet", "--workers", "2"]) == 0
    doc = json.loads(out.read_text())
    assert doc["cam"]["mode"] == "traced" and doc["cam"]["reference"] == rt_tiny_onnx["pt"]
    names = sorted(p.name for p in (tmp_path / "cam").iterdir())
    assert names == ["a.cam.png", "b.cam.png", "clip_f000000.cam.png", "clip_f000003.cam.png"]
    assert len(writers) == 4 and all(n.startswith("pawlens-writer") for n in writers)
    frames = {(it.source, it.frame): it.image for it in iter_sources([str(clip)], every_n=3)}
    cfg = PreprocessConfig.for_size(32)
    with CamExplainer(rt_tiny_onnx["pt"], trace=True) as cam, CamExplainer(rt_tiny_onnx["pt"]) as eager:
        assert cam.mode == "traced"
        for r in doc["results"]:
            img = frames[(r["source"], r["frame"])] if r["frame"] is not None else load_image(r["source"])
            heat = cam.explain(img, class_index=r["index"]).heatmap
            caption = f"{r['label']} {r['confidence']:.2f}" + (f"  frame {r['frame']}" if r["frame"] is not None else "") + "  (Grad-CAM)"
            want = annotation.annotate(overlay(img, heat, alpha=0.6), caption, annotation.crop_in_frame(*img.shape[:2], cfg), min_side=256)
            got = cv2.cvtColor(cv2.imread(r["cam_path"]), cv2.COLOR_BGR2RGB)
            assert np.array_equal(got, want), r["cam_path"]
            eager_heat = eager.explain(img, class_index=r["index"]).heatmap  # what --cam drew before it used the traced trunk
            assert np.abs(eager_heat - heat).max() < 1e-2
            before = annotation.annotate(overlay(img, eager_heat, alpha=0.6), caption, annotation.crop_in_frame(*img.shape[:2], cfg), min_side=256)
            assert np.abs(got.astype(int) - before).max() <= 3


def test_a_failed_png_write_is_reported(rt_tiny_onnx, image_folder, tmp_path, monkeypatch, capsys):
    import pawlens.runtime.annotation as annotation
    from pawlens.errors import OutputError

    real, n = annotation._write_png, []

    def write(path, rgb):
        n.append(path)
        if len(n) == 3:
            raise OutputError(f"{path}: disk full")
        real(path, rgb)

    monkeypatch.setattr(annotation, "_write_png", write)
    assert main([rt_tiny_onnx["pt"], str(image_folder), "--cam", "--cam-dir", str(tmp_path / "cam"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk full" in err and n[2] in err


def test_out_and_cam_pngs_are_never_replaced_without_exist_ok(rt_tiny_onnx, sources, tmp_path, capsys):
    out = tmp_path / "r" / "results.csv"
    args = [rt_tiny_onnx["fp32"], str(sources["folder"]), "--out", str(out), "--cam", "--reference", rt_tiny_onnx["pt"], "--quiet"]
    assert main(args) == 0
    first, pngs = out.read_bytes(), sorted((tmp_path / "r" / "cam").glob("*.cam.png"))
    assert pngs
    stamp = {p: p.stat().st_mtime_ns for p in pngs}
    capsys.readouterr()
    assert main(args) == 2  # refused before any work: the results file is there
    err = capsys.readouterr().err
    assert f"{out} already exists; pass --exist-ok" in err and err.count("\n") == 1
    other = tmp_path / "r" / "other.csv"
    assert main([*args[:3], str(other), *args[4:]]) == 2  # a new results file, but the same cam/ folder holds PNGs
    assert "Grad-CAM PNG(s)" in capsys.readouterr().err and not other.exists()
    assert out.read_bytes() == first and {p: p.stat().st_mtime_ns for p in pngs} == stamp
    assert main(args + ["--exist-ok"]) == 0


def test_default_cam_folder_is_numbered_not_reused(rt_tiny_onnx, sources, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [rt_tiny_onnx["fp32"], str(sources["folder"]), "--cam", "--reference", rt_tiny_onnx["pt"], "--quiet"]
    assert main(args) == 0 and main(args) == 0
    assert len(list(Path("runs/predict/cam").glob("*.cam.png"))) == len(list(Path("runs/predict/cam-2").glob("*.cam.png"))) > 0


def test_a_one_pixel_clip_does_not_stop_the_photos_after_it(rt_tiny_onnx, sources, tmp_path):
    import cv2

    clip = tmp_path / "dot.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (1, 1))
    for _ in range(3):
        w.write(np.zeros((1, 1, 3), np.uint8))
    w.release()
    out = tmp_path / "r.csv"
    assert main([rt_tiny_onnx["fp32"], str(clip), str(sources["gray"]), "--every-n", "1", "--out", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["source"] for r in rows if r["status"] == "ok"} == {str(clip), str(sources["gray"])}
