"""gui.sources (no Qt) and the Qt-free parts of gui.workers: sources, the one-frame slot, rate meters, overlay maths."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pawlens.gui import sources
from pawlens.gui.sources import CameraSource, FolderSource, ImageSource, SourceError, VideoSource, list_cameras, open_source

pytestmark = pytest.mark.gui


def write_video(path, n=10, size=(64, 48), fps=25):
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), (i * 20) % 256, np.uint8))
    w.release()
    return path


def write_png(path, rgb):
    from PIL import Image

    Image.fromarray(rgb).save(path)
    return path


def test_open_source_picks_the_kind(tmp_path):
    img = write_png(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    vid = write_video(tmp_path / "v.mp4")
    assert isinstance(open_source("0"), CameraSource) and open_source(3).index == 3
    assert isinstance(open_source(str(img)), ImageSource)
    assert isinstance(open_source(str(vid), loop=True), VideoSource) and open_source(str(vid), loop=True).loop
    assert isinstance(open_source(str(tmp_path)), FolderSource)
    with pytest.raises(SourceError, match="no such file"):
        open_source(str(tmp_path / "missing.jpg"))


def test_image_source_one_frame_then_end(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    with ImageSource(str(write_png(tmp_path / "a.png", rgb))) as s:
        f = s.read()
        assert f.shape == (20, 30, 3) and f.dtype == np.uint8 and np.array_equal(f, rgb)
        assert s.read() is None


def test_corrupt_image_is_a_source_error(tmp_path):
    p = tmp_path / "bad.jpg"
    p.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(SourceError, match="cannot show this image"):
        ImageSource(str(p)).open()


def test_video_plays_ends_and_loops(tmp_path):
    vid = str(write_video(tmp_path / "v.mp4", n=10))
    s = VideoSource(vid).open()
    assert s.fps == pytest.approx(25, abs=0.5)
    frames = []
    while (f := s.read()) is not None:
        frames.append(f)
    s.close()
    assert len(frames) == 10 and frames[0].shape == (48, 64, 3)
    assert frames[3].mean() > frames[1].mean()  # frames in order (grey level rises)
    s = VideoSource(vid, loop=True).open()
    got, pos = [], []
    for _ in range(25):
        got.append(s.read())
        pos.append(s.position)
    s.close()
    assert all(g is not None for g in got) and s.loops == 2
    assert pos == [*range(1, 11), *range(1, 11), *range(1, 6)]  # a looping clip's frame number starts again (never 25 of 10)


def test_undecodable_video_is_a_source_error(tmp_path):
    p = tmp_path / "broken.mp4"
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    with pytest.raises(SourceError, match="cannot decode|no decodable frame"):
        VideoSource(str(p)).open()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="zero-byte"):
        VideoSource(str(empty)).open()


def test_folder_slideshow_skips_corrupt_images(tmp_path):
    write_png(tmp_path / "a.png", np.full((8, 8, 3), 10, np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"not an image")
    write_png(tmp_path / "c.png", np.full((8, 8, 3), 200, np.uint8))
    s = FolderSource(str(tmp_path), interval_s=0.5).open()
    assert s.fps == pytest.approx(2.0)
    vals = [int(s.read().mean()) for _ in range(4)]
    assert vals == [10, 200, 10, 200]  # cycles, b.jpg skipped
    assert [p.endswith("b.jpg") for p in s.skipped] == [True]
    assert s.describe() == f"folder: {tmp_path.name} (c.png, 3 of 3, 1 skipped)" and s.position == 3


def test_folder_with_only_broken_images(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"nope")
    s = FolderSource(str(tmp_path)).open()
    with pytest.raises(SourceError, match="none of its 1 images"):
        s.read()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no images"):
        FolderSource(str(empty)).open()


class FakeCapture:
    """Stands in for cv2.VideoCapture: ``good`` frames, then failures (a camera unplugged)."""

    def __init__(self, index, good=3, opened=True):
        self.index, self.good, self.opened, self.reads = index, good, opened, 0

    def isOpened(self):  # noqa: N802 - OpenCV API
        return self.opened

    def read(self):
        self.reads += 1
        if self.reads <= self.good:
            return True, np.full((6, 8, 3), (0, 0, 255), np.uint8)  # BGR red
        return False, None

    def set(self, *_a):
        return True

    def release(self):
        pass


def test_camera_that_disappears_mid_stream(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", lambda i: FakeCapture(i, good=3))
    monkeypatch.setattr(sources.time, "sleep", lambda s: None)
    cam = CameraSource(0).open()
    f = cam.read()
    assert f[0, 0].tolist() == [255, 0, 0]  # converted to RGB
    cam.read(), cam.read()
    with pytest.raises(SourceError, match="camera 0: stopped delivering frames"):
        cam.read()


def test_no_camera(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", lambda i: FakeCapture(i, opened=i in (1,)))
    with pytest.raises(SourceError, match="camera 0: not available"):
        CameraSource(0).open()
    assert list_cameras() == [1]


def test_real_opencv_has_no_camera_index_99():
    with pytest.raises(SourceError, match="not available"):
        CameraSource(99).open()


# ----------------------------------------------------------------------------- workers' plain parts (PySide6 needed to import)


def test_latest_slot_newest_wins_and_counts_drops():
    pytest.importorskip("PySide6")
    from pawlens.gui.meters import LatestSlot

    s = LatestSlot()
    assert s.put(1) is True  # was empty: the consumer needs a wake-up
    assert s.put(2) is False and s.put(3) is False
    assert s.dropped == 2 and s.take_nowait() == 3 and s.take_nowait() is None
    got = []
    t = threading.Thread(target=lambda: got.append(s.take(timeout=2)))
    t.start()
    time.sleep(0.05)
    s.put("x")
    t.join(2)
    assert got == ["x"]
    t0 = time.perf_counter()
    assert s.take(timeout=0.1) is None and time.perf_counter() - t0 < 0.5  # empty: None after the timeout


def test_rate_meter():
    pytest.importorskip("PySide6")
    from pawlens.gui.meters import RateMeter

    m = RateMeter(window_s=10)
    for i in range(11):
        m.tick(duration_ms=float(i), now=100.0 + i * 0.1)
    assert m.rate(now=101.0) == pytest.approx(10.0) and m.mean_rate() == pytest.approx(10.0)
    assert m.percentile(50) == pytest.approx(5.0)
    assert m.rate(now=200.0) == 0.0  # events stopped: no stale rate


def test_colourise_and_blend():
    from pawlens.gui.overlay import blend, colourise  # plain NumPy: no Qt needed

    heat = np.zeros((4, 6), np.float32)
    heat[:, 3:] = 1.0
    rgba = colourise(heat)
    assert rgba.shape == (4, 6, 4) and rgba.dtype == np.uint8
    assert (rgba[:, :3, 3] == 0).all() and (rgba[:, 3:, 3] == 255).all()  # cold is transparent
    frame = np.full((4, 6, 3), 100, np.uint8)
    out = blend(frame, rgba, 0.5)
    assert np.array_equal(out[:, :3], frame[:, :3])  # untouched where the heat is zero
    hot = rgba[0, 5, :3].astype(float)
    assert np.allclose(out[0, 5], 0.5 * 100 + 0.5 * hot, atol=1)
    with pytest.raises(ValueError):
        blend(frame, colourise(np.zeros((2, 2), np.float32)), 0.5)


def test_model_view_box_and_the_heat_map_feathered_inside_it():
    from pawlens.gui.overlay import FEATHER, colourise, feather, model_view_box, model_view_or_none
    from pawlens.models.preprocess import PreprocessConfig

    cfg = PreprocessConfig.for_size(224)  # shorter side to 256, centre crop of 224
    x, y, w, h = model_view_box(720, 1280, cfg)
    assert h == pytest.approx(720 * 224 / 256, rel=0.01) and w == pytest.approx(h, rel=0.01)  # a square in the middle
    assert x + w / 2 == pytest.approx(640, abs=2) and y + h / 2 == pytest.approx(360, abs=2)
    assert model_view_or_none((720, 1280), None) is None and model_view_or_none((1, 5000), cfg) is None  # unknown / a strip
    box = (x / 10, y / 10, w / 10, h / 10)  # the same box on a 72 x 128 heat map
    wts = feather((72, 128), box)
    row = wts[36]
    assert row[: int(box[0])].max() == 0 and row[int(box[0] + box[2]) + 1 :].max() == 0  # nothing outside the model's view
    assert wts[36, 64] == 1.0  # untouched well inside
    ramp = row[int(box[0]) : int(box[0] + FEATHER * box[2]) + 2]
    assert ramp[0] < 0.2 and np.all(np.diff(ramp) >= 0)  # fades in from the edge: no hard edge
    a = colourise(np.ones((72, 128), np.float32), box=box)[..., 3]
    assert a[36, 64] == 255 and a[36, int(box[0])] < 60 and a[36, : int(box[0])].max() == 0
    assert colourise(np.ones((72, 128), np.float32))[..., 3].min() == 255  # no box: no feathering
