"""The desktop app's window, offscreen, with injected fakes (no ML framework): what the person sees and does.

The predictor and the Grad-CAM explainer are small fakes (Dangerzone style: the window receives them);
``tests/test_gui_app.py`` runs the same window on real ONNX Runtime / PyTorch models.
"""

from __future__ import annotations

import os
import re
import threading
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6 import QtCore, QtGui  # noqa: E402

from pawlens.gui.sources import FrameSource  # noqa: E402
from pawlens.gui.window import WindowOptions  # noqa: E402
from pawlens.gui.workers import Frame  # noqa: E402
from pawlens.runtime.cam import CamResult  # noqa: E402  (no torch at import)
from pawlens.runtime.predictor import Prediction, softmax  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]

MAIN = threading.main_thread().ident


# ----------------------------------------------------------------------------- fakes


class FakePredictor:
    """Says 'dog' for bright frames, 'cat' for dark ones; records the threads it runs in."""

    def __init__(self, class_names=("cat", "dog"), delay=0.0, fallback=False, arch="baseline", flip=False):
        self.class_names = list(class_names)
        self.delay, self.fallback, self.flip = delay, fallback, flip
        self.runner = type("R", (), {"meta": type("M", (), {"arch": arch, "source_sha256": ""})()})()
        self.threads: set[int] = set()
        self.is_active = False
        self.calls = 0

    def activate(self):
        self.threads.add(threading.get_ident())
        self.is_active = True
        return self

    def deactivate(self):
        self.is_active = False

    def describe(self):
        req = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.fallback else ["CPUExecutionProvider"]
        return {"backend": "ort", "device": "cpu", "precision": "fp32", "providers": ["CPUExecutionProvider"],
                "providers_requested": req, "fallback": self.fallback}

    def predict(self, frame, keep_input=False):
        self.threads.add(threading.get_ident())
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        bright = float(frame.mean()) / 255.0
        if self.flip:
            bright = 1 - bright
        logits = np.array([2.0 * (0.5 - bright), 2.0 * (bright - 0.5)] + [-3.0] * (len(self.class_names) - 2), np.float32)
        probs = softmax(logits[None])[0]
        i = int(probs.argmax())
        return Prediction(i, self.class_names[i], probs, logits, self.class_names, 0.5, 1.0 + self.delay * 1e3, 0.1)


class FakeCam:
    """Grad-CAM stand-in whose heat map encodes the frame it was computed on: a hot vertical band whose
    column is the frame's grey level.  The reference says 'dog' for bright frames (or always ``says``)."""

    def __init__(self, class_names=("cat", "dog"), delay=0.0, arch="baseline", says=None):
        self.class_names = list(class_names)
        self.arch, self.delay, self.says = arch, delay, says
        self.threads: set[int] = set()
        self.calls = 0

    def activate(self):
        self.threads.add(threading.get_ident())
        return self

    def deactivate(self):
        pass

    @staticmethod
    def band_column(frame) -> int:
        return int(frame[..., 0].mean()) * (frame.shape[1] - 1) // 255

    def explain(self, frame, class_index=None, prepared=None):
        self.threads.add(threading.get_ident())
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        h, w = frame.shape[:2]
        heat = np.zeros((h, w), np.float32)
        c = self.band_column(frame)
        heat[:, max(0, c - 2) : c + 3] = 1.0
        bright = float(frame.mean()) / 255.0
        top = self.says if self.says is not None else int(bright > 0.5)
        probs = np.full(len(self.class_names), 0.1 / max(1, len(self.class_names) - 1), np.float32)
        probs[top] = 0.9
        idx = top if class_index is None else int(class_index)
        return CamResult(heat, idx, self.class_names[idx], probs, 1.0 + self.delay * 1e3)


class ClassCam(FakeCam):
    """A FakeCam whose band sits left for "cat" (class 0) and right for "dog" (class 1): the map shows which class it explains."""

    def explain(self, frame, class_index=None, prepared=None):
        r = FakeCam.explain(self, frame, class_index)
        h, w = frame.shape[:2]
        heat = np.zeros((h, w), np.float32)
        c = w // 5 if r.class_index == 0 else 4 * w // 5
        heat[:, c - 3 : c + 4] = 1.0
        r.heatmap = heat
        return r


class SyntheticSource(FrameSource):
    """``n`` frames at ``fps``; frame k is a uniform grey of level (37 k) mod 256 (so every frame is told apart)."""

    kind = "video"

    def __init__(self, n=10_000, fps=30.0, size=(96, 128), fail_after=None):
        super().__init__("synthetic")
        self.n, self.fps, self.size, self.fail_after = n, fps, size, fail_after
        self.loop = False

    @staticmethod
    def level(k: int) -> int:
        return (37 * k) % 256

    def read(self):
        from pawlens.gui.sources import SourceError

        k = self.frames_read
        if self.fail_after is not None and k >= self.fail_after:
            raise SourceError("camera 7: stopped delivering frames (unplugged or taken by another app); reconnect it")
        if k >= self.n:
            return None
        self.frames_read += 1
        return np.full(self.size + (3,), self.level(k), np.uint8)


# ----------------------------------------------------------------------------- helpers


def write_png(path, rgb):
    from PIL import Image

    Image.fromarray(rgb).save(path)
    return str(path)


def grab_rgb(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, img.bytesPerLine())
    return buf[:, : w * 3].reshape(h, w, 3).copy()


# ----------------------------------------------------------------------------- what must be shown


def test_open_image_shows_the_label(make_window, qtbot, tmp_path):
    pred = FakePredictor()
    w = make_window(predictor=pred)
    path = write_png(tmp_path / "bright.png", np.full((60, 80, 3), 230, np.uint8))
    w.open_source(path)
    qtbot.waitUntil(lambda: w.label_big.text() == "dog", timeout=10000)
    assert w.prediction_frame.id == w.view.frame.id  # the label is for the frame on screen
    assert w.label_conf.text().endswith("%") and float(w.label_conf.text()[:-1]) > 50
    assert w.bars.names == ["cat", "dog"] and w.bars.probs is not None and w.bars.probs[1] > w.bars.probs[0]
    assert w.badge_backend.text() == "ONNX Runtime" and "CPU" in w.badge_device.text() and not w.badge_fallback.isVisible()
    assert not w.act_pause.isEnabled()  # an image has nothing to play
    dark = write_png(tmp_path / "dark.png", np.full((60, 80, 3), 20, np.uint8))
    w.open_path(dark)
    qtbot.waitUntil(lambda: w.label_big.text() == "cat", timeout=10000)


def test_models_are_activated_and_run_in_worker_threads(make_window, qtbot, tmp_path):
    pred, cam = FakePredictor(), FakeCam()
    w = make_window(predictor=pred, explainer=cam)
    w.open_source(write_png(tmp_path / "a.png", np.full((40, 40, 3), 200, np.uint8)))
    qtbot.waitUntil(lambda: w.view.overlay_state == "exact", timeout=10000)
    assert pred.calls >= 1 and cam.calls >= 1
    assert MAIN not in pred.threads and MAIN not in cam.threads  # never on the UI thread
    assert len(pred.threads) == 1 and len(cam.threads) == 1  # activated in the thread that runs it
    assert pred.threads != cam.threads


def test_play_video_processes_frames_and_drops_stale_ones(make_window, qtbot, shared_data):
    pred = FakePredictor(delay=0.08)  # ~12 fps of "inference" against a 30 fps video
    w = make_window(predictor=pred)
    seen: list[int] = []
    w.prediction_shown.connect(seen.append)
    assert w.open_source(str(shared_data / "video" / "cat.mp4"))
    qtbot.waitUntil(lambda: w.frames_inferred >= 12, timeout=20000)
    f = w.figures()
    assert f["frames_captured"] > f["frames_inferred"] >= 12
    assert f["frames_dropped_stale"] > 0  # frames replaced in the one-frame buffer while the model was busy
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # newest first, never an old frame later
    assert f["frames_displayed"] >= 20 and w.view.frame.rgb.shape == (720, 1280, 3)
    assert w.display_meter.rate() > 5
    assert w._infer_slot.peek() is None or isinstance(w._infer_slot.peek(), Frame)  # at most one frame waits
    photo = next((shared_data / "catsdogs").rglob("*.jpg"))
    assert w.open_source(str(photo))  # counters are per source: the clip's drops and frames do not carry over
    g = w.figures()
    assert g["frames_dropped_stale"] == 0 and g["frames_inferred"] <= 1 and g["frames_displayed"] <= 1, g


def test_cam_overlay_differs_from_frame_and_follows_its_frame(make_window, qtbot):
    cam = FakeCam(delay=0.12)  # slower than the video: overlays lag behind
    w = make_window(predictor=FakePredictor(), explainer=cam, options=WindowOptions(probe_cameras=False, interactive=False, alpha=0.8))
    log = []
    orig = w.view.set_overlay

    def spy(out, state, caption="", level="info"):
        orig(out, state, caption, level)
        v = w.view
        log.append((v.frame_id, v.overlay_state, v.overlay_frame_id, v.caption, v.frame.index if v.frame else None,
                    out.frame.index if out is not None else None, v.caption_level))

    w.view.set_overlay = spy
    outs = []
    w.cam_shown.connect(lambda _i: outs.append(w.cam_out))
    w.open_source(source=SyntheticSource(fps=30))
    qtbot.waitUntil(lambda: len(outs) >= 6, timeout=20000)
    # every CAM result was computed on the frame it carries (the band sits where that frame's grey level puts it)
    for o in outs:
        assert int(np.argmax(o.heat[0])) == pytest.approx(FakeCam.band_column(o.frame.rgb), abs=2)
    exact = [e for e in log if e[1] == "exact"]
    stale = [e for e in log if e[1] == "stale"]
    assert stale, "with a CAM slower than the video some overlays must be shown as stale"
    for fid, _state, ofid, cap, *_ in exact:
        assert ofid == fid and "Stale overlay" not in cap
    for fid, _state, ofid, cap, fi, oi, _lvl in stale:
        assert ofid < fid and "Stale overlay" in cap and f"{fi - oi} frame" in cap
        assert float(re.search(r"\((\d+) ms\) earlier", cap).group(1)) <= w.opts.stale_ms  # too old: not drawn at all
    first = next(k for k, e in enumerate(log) if e[1] == "stale")
    assert {e[6] for e in log[first:]} == {"warn"}  # once behind, the caption keeps its warning form: no flicker
    for _fid, state, ofid, *_ in log:
        assert state in ("exact", "stale", "none") and (state != "none" or ofid is None)
    # pause: the frame on screen gets its own overlay, and it is drawn (pixels differ from the raw frame)
    w.set_paused(True)
    qtbot.waitUntil(lambda: w.view.overlay_state == "exact" and w.view.overlay_frame_id == w.view.frame_id, timeout=10000)
    with_cam = grab_rgb(w.view)
    col = FakeCam.band_column(w.view.frame.rgb)
    w.cam.set_enabled(False)
    assert w.view.overlay_state == "none"
    raw = grab_rgb(w.view)
    r = w.view.image_rect()
    top = slice(int(r.top()) + 40, int(r.top() + 0.6 * r.height()))  # above the caption, below the PAUSED pill
    diff = np.abs(with_cam.astype(int) - raw.astype(int)).sum(axis=2)[top]
    assert diff.max() > 60 and (diff > 30).mean() < 0.2  # a band, not the whole view
    xs = np.nonzero((diff > 30).any(axis=0))[0]
    expect_x = r.left() + (col + 0.5) * r.width() / w.view.frame.rgb.shape[1]
    assert abs(float(np.median(xs)) - expect_x) < r.width() / 20  # drawn where this frame's heat is


def test_overlays_older_than_the_limit_are_not_drawn(make_window, qtbot):
    opts = WindowOptions(probe_cameras=False, interactive=False, stale_ms=1.0)
    w = make_window(predictor=FakePredictor(), explainer=FakeCam(delay=0.1), options=opts)
    states = []
    w.prediction_shown.connect(lambda _i: states.append((w.view.overlay_state, w.view.caption)))
    w.open_source(source=SyntheticSource(fps=30))
    qtbot.waitUntil(lambda: w.cams_done >= 3 and len(states) > 20, timeout=20000)
    assert "stale" not in {st for st, _ in states}
    assert any(st == "none" and "computing" in cap for st, cap in states)


def test_sync_mode_only_shows_frames_with_their_own_overlay(make_window, qtbot):
    w = make_window(predictor=FakePredictor(), explainer=FakeCam(delay=0.08))
    w.cam.set_sync(True)
    states = []
    w.cam_shown.connect(lambda _i: states.append((w.view.overlay_state, w.view.overlay_frame_id, w.view.frame_id)))
    w.open_source(source=SyntheticSource(fps=30))
    qtbot.waitUntil(lambda: len(states) >= 5, timeout=20000)
    assert all(s == "exact" and o == f for s, o, f in states)


def test_overlay_says_when_models_disagree(make_window, qtbot, tmp_path):
    # deployed says "dog" for a bright frame; the reference says "cat"
    w = make_window(predictor=FakePredictor(), explainer=FakeCam(says=0))
    w.open_source(write_png(tmp_path / "b.png", np.full((50, 50, 3), 240, np.uint8)))
    qtbot.waitUntil(lambda: w.view.overlay_state == "exact" and w.cam_out.prediction is not None, timeout=10000)
    assert w.cam_out.disagrees
    cap = w.view.caption
    assert "disagree" in cap and "deployed says dog" in cap and "reference says cat" in cap and "not the deployed model" in cap
    assert w.view.caption_level == "warn"


def test_cam_explains_a_chosen_class(make_window, qtbot, tmp_path):
    w = make_window(predictor=FakePredictor(), explainer=FakeCam())
    w.open_source(write_png(tmp_path / "d.png", np.full((50, 50, 3), 10, np.uint8)))
    qtbot.waitUntil(lambda: w.view.overlay_state == "exact", timeout=10000)
    assert w.cam_out.label == "cat" and w.target_combo.count() == 3
    w.target_combo.setCurrentIndex(2)  # “dog”
    qtbot.waitUntil(lambda: w.cam_out is not None and w.cam_out.class_index == 1 and w.view.overlay_state == "exact", timeout=10000)
    assert w.cam_out.target == 1 and "(chosen)" in w.view.caption and "“dog”" in w.view.caption
    assert w.prediction.label == "cat" and "agrees" not in w.view.caption  # the deployed model predicted another class
    assert "not the predicted class: the deployed model says cat" in w.view.caption
    w.cam.set_target(None)
    qtbot.waitUntil(lambda: w.cam_out.target is None, timeout=10000)


def _band_x(w) -> float:
    """Where (view x) the overlay band is drawn: the columns that differ from the frame without overlay."""
    with_cam = grab_rgb(w.view)
    state = w.view.overlay_state
    w.view.set_overlay(None, "none")
    raw = grab_rgb(w.view)
    w._refresh_view()
    assert w.view.overlay_state == state
    r = w.view.image_rect()
    rows = slice(int(r.top()) + 40, int(r.top() + 0.6 * r.height()))
    diff = np.abs(with_cam.astype(int) - raw.astype(int)).sum(axis=2)[rows]
    xs = np.nonzero((diff > 30).any(axis=0))[0]
    assert len(xs), "no overlay drawn"
    return (float(np.median(xs)) - r.left()) / r.width()


def test_paused_class_change_redraws_the_heat_map_at_once(make_window, qtbot):
    """Paused: choosing another class under "Explain" re-explains the paused frame now, and the heat map (not only the
    caption) changes, with no new frame."""
    w = make_window(predictor=FakePredictor(), explainer=ClassCam())
    src = SyntheticSource(fps=30)
    w.open_source(source=src)
    qtbot.waitUntil(lambda: w.frames_displayed >= 5, timeout=10000)
    w.set_paused(True)
    qtbot.waitUntil(lambda: w.view.overlay_state == "exact" and w.view.overlay_frame_id == w.view.frame_id, timeout=10000)
    qtbot.wait(100)
    fid, n = w.view.frame_id, src.frames_read
    shown = w.cam_out.class_index
    x0 = _band_x(w)
    assert x0 == pytest.approx(0.2 if shown == 0 else 0.8, abs=0.05)
    other = 1 - shown
    w.target_combo.setCurrentIndex(w.target_combo.findData(other))
    qtbot.waitUntil(lambda: w.cam_out.target == other and w.view.overlay_state == "exact", timeout=10000)
    assert w.view.frame_id == fid and src.frames_read == n  # the same paused frame, re-explained
    assert f"“{w.cam_out.class_names[other]}” (chosen)" in w.view.caption
    assert _band_x(w) == pytest.approx(0.2 if other == 0 else 0.8, abs=0.05)  # the heat map itself moved


def test_the_models_view_is_drawn_as_a_labelled_box_with_the_heat_map_feathered_inside(make_window, qtbot, tmp_path):
    from pawlens.gui.overlay import model_view_box
    from pawlens.models.preprocess import PreprocessConfig

    cfg = PreprocessConfig.for_size(32)
    pred, cam = FakePredictor(), FakeCam()
    pred.preprocess = cam.preprocess = cfg
    w = make_window(predictor=pred, explainer=cam)
    w.open_source(write_png(tmp_path / "wide.png", np.full((60, 160, 3), 120, np.uint8)))
    qtbot.waitUntil(lambda: w.view.overlay_state == "exact" and w.view.model_view is not None, timeout=10000)
    box = model_view_box(60, 160, cfg)
    assert w.view.model_view == pytest.approx(box) and w.cam_out.crop == pytest.approx(box)
    x, _y, bw, _bh = box
    a = w.cam_out.colour[..., 3]  # the band (heat 1) runs down the middle column; cut by the box's top and bottom edges
    col = int(np.argmax(a.max(axis=0)))
    assert a[:, col].max() == 255 and a[0, col] < 60  # feathered to (almost) nothing at the box's edge, not cut hard
    with_box = grab_rgb(w.view)
    w.view.set_model_view(None)
    without = grab_rgb(w.view)
    r = w.view.image_rect()
    left = int(round(r.left() + x * r.width() / 160))
    diff = np.abs(with_box.astype(int) - without.astype(int)).sum(axis=2)
    assert diff[:, left - 2 : left + 3].max() > 60  # the dashed edge of the model's view
    assert (diff[:, : max(0, left - 4)] > 0).sum() == 0  # nothing drawn left of it (outside the model's view)


def test_controls_opacity_pause_step(make_window, qtbot):
    w = make_window(predictor=FakePredictor(), explainer=FakeCam())
    w.alpha_slider.setValue(25)
    assert w.view.opacity == pytest.approx(0.25) and w.alpha_value.text() == "25%"
    src = SyntheticSource(fps=30)
    w.open_source(source=src)
    qtbot.waitUntil(lambda: w.frames_displayed >= 5, timeout=10000)
    w.act_pause.trigger()
    assert w.paused and w.view.paused
    qtbot.wait(150)
    n = src.frames_read
    qtbot.wait(300)
    assert src.frames_read == n  # paused: nothing is read
    w.step()
    qtbot.waitUntil(lambda: src.frames_read == n + 1, timeout=5000)
    qtbot.waitUntil(lambda: w.view.frame.index == n + 1, timeout=5000)
    qtbot.wait(200)
    assert src.frames_read == n + 1
    w.act_pause.trigger()
    qtbot.waitUntil(lambda: src.frames_read > n + 3, timeout=5000)


def test_paused_shows_no_live_fps(make_window, qtbot):
    w = make_window(predictor=FakePredictor(), explainer=FakeCam())
    w.open_source(source=SyntheticSource(fps=30))
    qtbot.waitUntil(lambda: w.frames_inferred >= 10 and w.frames_displayed >= 10, timeout=10000)
    w._update_figures()
    assert float(w.fig["dfps"].text()) > 0 and float(w.fig["ifps"].text()) > 0 and "fps" in w.fig["cam"].text()
    w.set_paused(True)
    w._update_figures()
    assert w.fig["dfps"].text() == "paused" and w.fig["ifps"].text() == "paused"  # not the rate measured before the pause
    assert "fps" not in w.fig["cam"].text() and w.fig["cam"].text().endswith("ms")  # the last CAM's duration only
    w.set_paused(False)
    qtbot.waitUntil(lambda: (w._update_figures() or w.fig["dfps"].text()) not in ("paused", "–"), timeout=10000)


def test_snapshot_writes_a_png(make_window, qtbot, tmp_path):
    w = make_window(predictor=FakePredictor(), explainer=FakeCam())
    w.open_source(write_png(tmp_path / "a.png", np.full((120, 160, 3), 220, np.uint8)))
    qtbot.waitUntil(lambda: w.view.overlay_state == "exact" and w.prediction is not None, timeout=10000)
    out = tmp_path / "shots" / "snap.png"
    out.parent.mkdir()
    with qtbot.waitSignal(w.snapshot_saved, timeout=10000) as sig:
        w.save_snapshot(str(out))
    assert sig.args == [str(out)] and out.is_file()
    from PIL import Image

    im = np.asarray(Image.open(out).convert("RGB"))
    assert im.shape[1] >= 960 and im.shape[0] > 960 * 120 / 160  # the frame, scaled up, plus the footer
    assert not [p for p in os.listdir(out.parent) if ".tmp" in p]  # written atomically
    frame_part = im[: int(960 * 120 / 160) - 2]
    assert frame_part.std() > 3  # the overlay band is in it (a uniform frame alone would be flat)
    bad = tmp_path / "no" / "such" / "dir" / "x.png"
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.save_snapshot(str(bad))
    assert "snapshot not saved" in w.errors[-1] and not bad.exists()


def test_drop_a_file_onto_the_window(make_window, qtbot, tmp_path):
    w = make_window(predictor=FakePredictor())
    path = write_png(tmp_path / "dropped.png", np.full((30, 30, 3), 240, np.uint8))
    md = QtCore.QMimeData()
    md.setUrls([QtCore.QUrl.fromLocalFile(path)])
    enter = QtGui.QDragEnterEvent(QtCore.QPoint(10, 10), QtCore.Qt.DropAction.CopyAction, md,
                                  QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    w.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QtGui.QDropEvent(QtCore.QPointF(10, 10), QtCore.Qt.DropAction.CopyAction, md,
                            QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    w.dropEvent(drop)
    qtbot.waitUntil(lambda: w.label_big.text() == "dog", timeout=10000)
    assert w.status_source.text() == "image: dropped.png"


def test_file_kinds_and_dialog_filters_come_from_the_formats_table(make_window, tmp_path):
    from pawlens.gui import dialogs as gw
    from pawlens.runtime import formats

    assert gw.model_file_filter() == formats.file_filter()
    for f in formats.FORMATS:
        assert f"*{f.kind}" in gw.model_file_filter()
    assert "*.plan" not in gw.model_file_filter() and "*.trt" not in gw.model_file_filter()  # the factory refuses them
    assert "*.pt" in gw.reference_file_filter() and "*.pth" in gw.reference_file_filter() and "*.ckpt" not in gw.reference_file_filter()
    assert "*.mp4" in gw.media_file_filter() and "*.jpg" in gw.media_file_filter()
    w = make_window()
    calls = []
    w.set_model = lambda path: calls.append(("model", os.path.basename(path)))
    w.set_reference = lambda path: calls.append(("reference", os.path.basename(path)))
    w.open_source = lambda path: calls.append(("source", os.path.basename(path)))
    for name in ("a.onnx", "a.int8.onnx", "a.fp16.engine", "a.pt", "a.PTH", "a.plan", "a.trt", "a.ckpt", "a.mp4"):
        w.open_path(str(tmp_path / name))
    assert calls == [("model", "a.onnx"), ("model", "a.int8.onnx"), ("model", "a.fp16.engine"), ("reference", "a.pt"),
                     ("reference", "a.PTH"), ("source", "a.plan"), ("source", "a.trt"), ("source", "a.ckpt"), ("source", "a.mp4")]


def test_open_dialogs_start_in_the_last_used_folder_else_the_cwd(make_window, qtbot, tmp_path, monkeypatch):
    from PySide6 import QtWidgets

    w = make_window(predictor=FakePredictor())
    photos = tmp_path / "photos"
    photos.mkdir()
    img = write_png(photos / "bright.png", np.full((30, 30, 3), 240, np.uint8))
    asked = []

    def fake_open(parent, caption, folder, filt):
        asked.append(folder)
        return (img if len(asked) == 1 else "", "")

    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", staticmethod(fake_open))
    monkeypatch.chdir(tmp_path)
    w.dialogs.open_file()
    qtbot.waitUntil(lambda: w.label_big.text() == "dog", timeout=10000)
    w.dialogs.open_model()  # cancelled: nothing changes
    assert asked == [str(tmp_path), str(photos)]  # the cwd first (not the home folder), then where the photo was


def test_fallback_badge_when_cuda_was_asked_and_cpu_runs(make_window, qtbot):
    w = make_window(predictor=FakePredictor(fallback=True))
    qtbot.waitUntil(lambda: w.model_info is not None, timeout=10000)
    assert w.badge_fallback.isVisible() and "CUDA was requested" in w.badge_fallback.text() and "CPU" in w.badge_fallback.text()


# ----------------------------------------------------------------------------- bad input: messages, never a crash or a freeze


def _still_works(w, qtbot, tmp_path, level=230, label="dog"):
    w.open_source(write_png(tmp_path / f"ok{level}.png", np.full((40, 40, 3), level, np.uint8)))
    qtbot.waitUntil(lambda: w.label_big.text() == label, timeout=10000)


def test_no_camera(make_window, qtbot, tmp_path):
    w = make_window(predictor=FakePredictor(), options=WindowOptions(probe_cameras=True, interactive=False))
    qtbot.waitUntil(lambda: w.camera_combo.itemText(0) in ("No camera found", "Choose a camera…"), timeout=10000)
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.open_source("99")
    assert "camera 99: not available" in w.statusBar().currentMessage() and w.banner.isVisible()
    _still_works(w, qtbot, tmp_path)


def test_camera_disappears_mid_stream(make_window, qtbot, tmp_path):
    w = make_window(predictor=FakePredictor())
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.open_source(source=SyntheticSource(fps=60, fail_after=12))
    assert "stopped delivering frames" in w.banner.text()
    assert w.view.frame is not None and w.view.frame.index == 12  # the last frame stays on screen
    _still_works(w, qtbot, tmp_path)


def test_corrupt_image(make_window, qtbot, tmp_path):
    w = make_window(predictor=FakePredictor())
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.open_source(str(bad))
    assert "broken.jpg" in w.errors[-1] and "cannot show this image" in w.errors[-1]
    assert w.model_info is not None and "No frames from this source" in w.label_sub.text()  # not "Waiting for the first frame"
    w._update_figures()
    assert w.fig["dfps"].text() == "–" and w.fig["ifps"].text() == "–"  # it never ran, so it did not "end"
    _still_works(w, qtbot, tmp_path)


def test_video_that_ends_and_one_that_cannot_be_decoded(make_window, qtbot, tmp_path):
    import cv2

    vid = tmp_path / "short.mp4"
    vw = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for _ in range(8):
        vw.write(np.full((48, 64, 3), 200, np.uint8))
    vw.release()
    w = make_window(predictor=FakePredictor())
    with qtbot.waitSignal(w.source_ended, timeout=10000) as sig:
        w.open_source(str(vid))
    assert "ended after 8 frames" in sig.args[0] and w.view.frame.index == 8 and not w.errors
    assert w.act_pause.text() == "Play"
    w.set_loop(True)
    w.set_paused(False)  # Play after the end: starts again, now looping
    qtbot.waitUntil(lambda: w._capture.worker.source.frames_read > 12, timeout=10000)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(4096))
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.open_source(str(broken))
    assert "broken.mp4" in w.errors[-1] and "decode" in w.errors[-1]
    _still_works(w, qtbot, tmp_path)


class FailingLoader:
    """A loader whose files are all bad, as the runtime reports them."""

    def load_predictor(self, path, class_names=None):
        from pawlens.errors import ArtifactError, MissingMetadata

        if class_names:
            return FakePredictor(class_names)
        if "nometa" in path:
            raise MissingMetadata(f"{path}: no pawlens metadata (class names, preprocessing); export it with pawlens-export, "
                                  "or pass --classes NAME,NAME")
        if "wordy" in path:  # an error whose text looks like missing metadata but is not that type
            raise ArtifactError(f"{path}: damaged: no pawlens metadata, no class names in this file; re-export it")
        raise ArtifactError(f"{path}: onnxruntime cannot load it (InvalidProtobuf); truncated or not ONNX? re-export it")

    def load_explainer(self, path):
        from pawlens.errors import CheckpointError

        raise CheckpointError(f"{path}: truncated or not a torch checkpoint (EOFError); retrain or copy the file again")


def test_model_file_that_is_not_a_model(make_window, qtbot, tmp_path):
    w = make_window(loader=FailingLoader())
    w.open_source(source=SyntheticSource(fps=30))
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.set_model(str(tmp_path / "junk.onnx"))
    assert "[artifact]" in w.errors[-1] and "junk.onnx" in w.errors[-1]
    n = w.frames_displayed
    qtbot.waitUntil(lambda: w.frames_displayed > n + 5, timeout=10000)  # the video keeps playing
    assert w.label_big.text() == "—" and not w.badge_backend.isVisible()
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.set_reference(str(tmp_path / "junk.pt"))
    assert "[checkpoint]" in w.errors[-1] and not w.cam_check.isEnabled()


def test_onnx_without_class_names_refused_or_asked(make_window, qtbot, tmp_path):
    w = make_window(loader=FailingLoader())
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.set_model(str(tmp_path / "nometa.onnx"))
    assert "refused" in w.errors[-1] and "--classes" in w.errors[-1]
    w2 = make_window(loader=FailingLoader(), options=WindowOptions(probe_cameras=False, interactive=True))
    asked = []
    w2.ask_class_names = lambda path, msg: asked.append(path) or ["cat", "dog"]
    w2.set_model(str(tmp_path / "nometa.onnx"))
    qtbot.waitUntil(lambda: w2.model_info is not None, timeout=10000)
    assert asked and w2.model_info["class_names"] == ["cat", "dog"] and "by hand" in w2.model_text.text()
    _still_works(w2, qtbot, tmp_path)


def test_only_the_missing_metadata_error_type_asks_for_class_names(make_window, qtbot, tmp_path):
    """The window decides by the error's type (MissingMetadata), never by searching its text."""
    w = make_window(loader=FailingLoader(), options=WindowOptions(probe_cameras=False, interactive=True))
    asked = []
    w.ask_class_names = lambda path, msg: asked.append(path) or ["cat", "dog"]
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.set_model(str(tmp_path / "wordy.onnx"))
    assert not asked and w.errors[-1].startswith("Model: [artifact]") and "refused" not in w.errors[-1]
    assert w.model_info is None and w._inference is None


def test_reference_with_other_classes_is_refused(make_window, qtbot, tmp_path):
    w = make_window(predictor=FakePredictor())
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.set_reference(explainer=FakeCam(class_names=("cat", "dog", "fox")))
    assert "refused" in w.errors[-1] and "[cat, dog, fox]" in w.errors[-1] and "[cat, dog]" in w.errors[-1]
    assert not w.cam_check.isEnabled() and w._cam is None
    _still_works(w, qtbot, tmp_path)
    assert w.view.overlay_state == "none"


def test_reference_of_another_architecture_is_refused(make_window, qtbot, tmp_path):
    w = make_window(predictor=FakePredictor(arch="resnet50"))
    qtbot.waitUntil(lambda: w.model_info is not None, timeout=10000)
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.set_reference(explainer=FakeCam(arch="baseline"))
    assert "is a baseline but" in w.errors[-1] and "resnet50" in w.errors[-1]
    assert w._cam is None


def test_model_failing_on_frames_is_reported_and_the_app_goes_on(make_window, qtbot, tmp_path):
    class Broken(FakePredictor):
        def predict(self, frame, keep_input=False):
            from pawlens.errors import ArtifactError

            raise ArtifactError("model outputs 3 classes but its metadata names 2")

    w = make_window(predictor=Broken())
    with qtbot.waitSignal(w.problem, timeout=10000):
        w.open_source(write_png(tmp_path / "x.png", np.full((20, 20, 3), 9, np.uint8)))
    assert "outputs 3 classes" in w.errors[-1] and w._inference is None
    w.set_model(predictor=FakePredictor())
    _still_works(w, qtbot, tmp_path)


def test_the_workers_docstring_example_runs(qtbot):
    """The usage lines at the top of gui/workers.py name real classes, keywords and signals: run them with fakes."""
    import textwrap

    from pawlens.gui import workers

    doc = workers.__doc__
    code = textwrap.dedent(doc[doc.index("\n") + 1 : doc.index("The pipeline::")])
    results, cams = [], []
    ns = dict(vars(workers), source=SyntheticSource(n=40, fps=60), predictor=FakePredictor(), explainer=FakeCam(),
              on_result=lambda gen, frame, pred: results.append((gen, frame.id, pred.label)),
              on_cam=lambda gen, out: cams.append((gen, out.frame.id, out.prediction)))
    exec(compile(code, "gui/workers.py docstring", "exec"), ns)
    try:
        qtbot.waitUntil(lambda: len(results) >= 3 and len(cams) >= 2, timeout=10000)
        assert {r[0] for r in results} == {2} and {c[0] for c in cams} == {3}
        assert all(pred is not None for _g, _fid, pred in cams)  # forwarded with the deployed prediction of that frame
    finally:
        workers.WorkerThread.stop_all()


def test_ui_thread_stays_responsive_with_slow_models(make_window, qtbot):
    """Slow 'models' (sleeping 400 ms a call) must not hold the event loop: the heartbeat stays punctual."""
    w = make_window(predictor=FakePredictor(delay=0.4), explainer=FakeCam(delay=0.4))
    w.open_source(source=SyntheticSource(fps=30))
    qtbot.waitUntil(lambda: w.cams_done >= 2, timeout=20000)
    w.heartbeat.reset()
    qtbot.wait(1200)
    assert len(w.heartbeat.lateness) > 30 and w.frames_inferred >= 3
    assert w.heartbeat.max_ms < 300  # well under one model call (400 ms): the UI never waited on one


def test_the_view_repaints_only_when_its_overlay_changes(qtbot, monkeypatch):
    """The window hands the view its overlay on every frame and every result; an unchanged one must not repaint (twice the
    paints took CPU from Grad-CAM on 2 cores)."""
    from pawlens.gui.session import CamOutput
    from pawlens.gui.widgets import FrameView

    view = FrameView()
    qtbot.addWidget(view)
    f = Frame(id=1, rgb=np.zeros((24, 32, 3), np.uint8), t=0.0, session=1, index=0, source="test")
    c = CamOutput(f, np.zeros((24, 32), np.float32), np.zeros((24, 32, 4), np.uint8), 0, "cat", np.array([0.9, 0.1], np.float32),
                  ["cat", "dog"], 5.0, None, None)
    updates = []
    monkeypatch.setattr(view, "update", lambda *a: updates.append(1))
    view.set_overlay(c, "exact", "caption")
    view.set_overlay(c, "exact", "caption")  # nothing changed
    assert len(updates) == 1
    view.set_overlay(c, "stale", "caption")
    view.set_overlay(c, "stale", "another caption")
    c2 = CamOutput(*[getattr(c, k) for k in c.__dataclass_fields__])  # another result, equal fields: a new map all the same
    view.set_overlay(c2, "stale", "another caption")
    view.set_overlay(None, "none")
    assert len(updates) == 5


def test_inference_worker_hands_the_cam_worker_its_input_and_keeps_it_out_of_the_window(qtbot, rt_tiny_onnx):
    """Each classified frame goes to the CAM slot with the deployed model's input and its preprocessing; the prediction the
    window keeps (120 of them) does not hold the 600 KB input."""
    from PySide6 import QtCore

    from pawlens.gui.meters import LatestSlot
    from pawlens.gui.workers import InferenceWorker, WorkerThread
    from pawlens.models.preprocess import preprocess_numpy
    from pawlens.runtime.ort_runner import OrtRunner
    from pawlens.runtime.predictor import Predictor

    slot, cams, results = LatestSlot(), LatestSlot(), []
    inf = WorkerThread(InferenceWorker(lambda: Predictor(OrtRunner(rt_tiny_onnx["fp32"])), slot, gen=1, forward=cams))
    inf.worker.result.connect(lambda gen, frame, pred: results.append(pred), QtCore.Qt.ConnectionType.DirectConnection)
    inf.worker.forward_enabled.set()
    rgb = np.random.default_rng(5).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    f = Frame(id=7, rgb=rgb, t=0.0, session=1, index=0, source="test")
    slot.put(f)
    inf.start()
    try:
        job = cams.take(timeout=30)
    finally:
        assert inf.stop(wait=True)
    assert job is not None and job[0] is f and job[1] is results[0] and results[0].input is None
    x, cfg = job[2]
    assert cfg.input_size == 32
    np.testing.assert_array_equal(x, preprocess_numpy([rgb], cfg)[0])


def test_snapshot_figures_wrap_without_overlap(qtbot):
    """Long figure lines wrap, and each is drawn below the previous one as wrapped: the footer grows to hold them
    (the figures once drew 'inference fps' on top of 'display fps')."""
    from PySide6 import QtGui

    from pawlens.gui.snapshot import SnapshotContent, _wrapped_height, compose_snapshot

    rgb = np.full((480, 640, 3), 235, np.uint8)
    long = "inference 4.1 ms · capture → label 52 ms · inference fps 12.3 · " * 2
    short = compose_snapshot(SnapshotContent(rgb=rgb, lines=["display fps 30"]), QtGui.QFont())
    tall = compose_snapshot(SnapshotContent(rgb=rgb, lines=[long] * 5, caption="Grad-CAM"), QtGui.QFont())
    f = QtGui.QFont()
    f.setPointSizeF(10)
    assert _wrapped_height(f, long, 332) >= 2 * _wrapped_height(f, "x", 332)  # the figures' column is 332 px at 960 wide
    assert short.height() == 720 + 170 and tall.height() >= 720 + 24 + 5 * _wrapped_height(f, long, 332) + 52
