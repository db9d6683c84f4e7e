"""Network cameras: a local MJPEG stream (tests/mjpeg_server.py) read by LiveStream, pawlens-predict and the app,
including a drop and a recovery.  One server for the module; each test leaves it up."""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest
from mjpeg_server import MjpegServer

from pawlens.errors import DataError
from pawlens.runtime.media import LiveStream, expand_sources, is_stream, redact

FAST = {"open_timeout_s": 2.0, "read_timeout_s": 1.0, "backoff_s": (0.2, 0.4, 0.8)}


@pytest.fixture(scope="module")
def server():
    with MjpegServer(fps=25) as srv:
        yield srv


def _until(cond, timeout: float, step: float = 0.02) -> bool:
    t = time.monotonic() + timeout
    while time.monotonic() < t:
        if cond():
            return True
        time.sleep(step)
    return cond()


def test_stream_urls_are_sources_not_paths():
    assert all(is_stream(u) for u in ("rtsp://cam/live", "RTSP://x", "http://h:8080/video.mjpg", "https://h/x.m3u8", "udp://@:5000"))
    assert not any(is_stream(u) for u in ("cat.mp4", "runs/http/x.jpg", "file:///x.mp4", "0", ""))
    assert expand_sources(["rtsp://cam/live"]) == [("rtsp://cam/live", "")]  # not "not found"
    assert redact("rtsp://admin:s3cret@10.0.0.2:554/live") == "rtsp://admin:***@10.0.0.2:554/live"
    assert redact("http://h/x?a=b@c") == "http://h/x?a=b@c"


def test_live_stream_keeps_the_newest_frame_drops_and_recovers(server):
    with LiveStream(server.url, give_up_s=None, **FAST) as s:
        first = s.read(timeout=3)
        assert first is not None and first.shape == (120, 160, 3) and s.state == "live"
        time.sleep(0.5)  # a slow consumer: about 12 frames arrive, only the newest is kept
        s.read(timeout=1)
        assert s.dropped >= 5 and s.seq == s.received
        server.drop()
        assert _until(lambda: s.state == "reconnecting", 3), s.state
        assert "stream dropped; reconnecting" in s.message
        assert s.read(timeout=0.3) is None  # nothing new while it is down
        server.restore()
        assert _until(lambda: s.state == "live", 5), (s.state, s.message)
        assert s.read(timeout=3) is not None and s.reconnects == 1 and len(s.outages) == 1 and s.summary()["state"] == "live"
        thread = s._thread
    assert s.state == "closed" and not thread.is_alive()


def test_a_stream_that_stays_down_is_lost(server):
    s = LiveStream(server.url, give_up_s=1.0, **FAST).open()
    try:
        assert s.read(timeout=3) is not None
        server.drop()
        assert _until(lambda: s.state == "lost", 5), s.state
        assert s.read(timeout=0.1) is None and "stream lost" in s.message
    finally:
        s.close()
        server.restore()


def test_connecting_times_out_with_one_line():
    srv = socket.socket()  # accepts, never answers: a camera that hangs
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        t0 = time.monotonic()
        with pytest.raises(DataError) as e:
            LiveStream(f"http://u:pw@127.0.0.1:{srv.getsockname()[1]}/x", open_timeout_s=1.0).open()
        assert time.monotonic() - t0 < 6
        msg = str(e.value)
        assert "cannot connect within 1 s" in msg and "u:***@" in msg and "pw" not in msg and "\n" not in msg
    finally:
        srv.close()


def test_predict_reads_a_stream_for_its_duration(server, rt_tiny_onnx, tmp_path, capsys):
    from pawlens.runtime.predict import main

    out = tmp_path / "r.json"
    assert main([rt_tiny_onnx["fp32"], server.url, "--duration", "1.5", "--out", str(out), "--quiet", "--batch-size", "2"]) == 0
    err = capsys.readouterr().err
    doc = json.loads(out.read_text())
    rows = doc["results"]
    assert rows and all(r["status"] == "ok" and r["source"] == server.url for r in rows)
    frames = [r["frame"] for r in rows]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)  # newest frames, in order, none twice
    st = doc["streams"][server.url]
    assert st["received"] >= len(rows) and st["reconnects"] == 0
    assert f"stream {server.url}: {st['received']} frames received" in err


def test_predict_goes_on_after_a_dead_stream(rt_tiny_onnx, image_folder, tmp_path):
    from pawlens.runtime.predict import main

    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there
    photos = sorted(str(p) for p in image_folder.rglob("*") if p.is_file())[:2]
    out = tmp_path / "r.json"
    assert main([rt_tiny_onnx["fp32"], f"rtsp://127.0.0.1:{port}/live", *photos, "--stream-timeout", "1", "--out", str(out), "--quiet"]) == 0
    rows = json.loads(out.read_text())["results"]
    assert rows[0]["status"] == "skipped" and rows[0]["error"].startswith("cannot connect within 1 s")
    assert [(r["source"], r["status"]) for r in rows[1:]] == [(p, "ok") for p in photos]  # the photos after it: classified


def test_the_app_shows_a_drop_and_the_recovery(server, qtbot, make_window):
    """The banner says the stream dropped while it reconnects (the last frame stays), and goes once frames flow again."""
    w = make_window()
    assert w.open_source(server.url)
    qtbot.waitUntil(lambda: w.frame is not None, timeout=8000)
    assert w.status_source.text() == f"stream: {server.url}"
    server.drop()
    try:
        qtbot.waitUntil(lambda: "stream dropped" in w.banner.text(), timeout=8000)
        assert w.banner.level == "warn" and "the last frame stays on screen" in w.banner.text()
        assert w.frame is not None and "(reconnecting)" in w.status_source.text()
        before = w.frame.index
    finally:
        server.restore()
    qtbot.waitUntil(lambda: w.banner.text() == "" and w.frame.index > before, timeout=10000)
    assert w.status_source.text() == f"stream: {server.url}"
    wt = w._capture
    w._stop_capture()
    qtbot.waitUntil(wt.thread.isFinished, timeout=3000)  # stopping does not wait out a network read
    assert np.asarray(w.frame.rgb).shape == (120, 160, 3)


def test_udp_mpegts_stream_is_read_and_classified(rt_tiny_onnx, tmp_path):
    """A UDP camera (MPEG-TS, H.264, sent by PyAV: tests/udp_sender.py): LiveStream decodes it, and predict classifies
    its frames for --duration; FFmpeg's udp:// goes through the same path as the HTTP stream above."""
    pytest.importorskip("av")
    from udp_sender import UdpSender

    from pawlens.runtime.predict import main

    with UdpSender(fps=25) as cam:
        with LiveStream(cam.url, give_up_s=None, open_timeout_s=5.0, read_timeout_s=2.0) as s:
            first = s.read(timeout=5)
            assert first is not None, (cam.error, s.state, s.message)
            assert first.shape == (120, 160, 3) and s.state == "live"
            assert s.read(timeout=2) is not None and s.received >= 2
        out = tmp_path / "udp.json"
        assert main([rt_tiny_onnx["fp32"], cam.url, "--duration", "1.5", "--out", str(out), "--quiet", "--stream-timeout", "5"]) == 0
        assert cam.error is None and cam.sent > 0
    doc = json.loads(out.read_text())
    rows = doc["results"]
    assert rows and all(r["status"] == "ok" and r["source"] == cam.url for r in rows)
    assert doc["streams"][cam.url]["received"] >= len(rows)


def test_save_video_of_a_stream_plays_in_stream_time(rt_tiny_onnx, tmp_path):
    """--save-video on a stream: DIR/<scheme_host_port>.pred.mp4 (no password in the name), H.264 with each classified
    frame at the time it arrived, so the copy lasts as long as the stream was read."""
    av = pytest.importorskip("av")
    from udp_sender import UdpSender

    from pawlens.runtime.annotation import stream_stem
    from pawlens.runtime.predict import main

    assert stream_stem("rtsp://admin:s3cret@10.0.0.2:554/live/ch1") == "rtsp_10.0.0.2_554_live_ch1"
    with UdpSender(fps=25) as cam:
        out = tmp_path / "r.json"
        assert main([rt_tiny_onnx["fp32"], cam.url, "--duration", "2", "--save-video", str(tmp_path / "v"), "--out", str(out),
                     "--quiet", "--stream-timeout", "5"]) == 0
    doc = json.loads(out.read_text())
    (video,) = doc["videos_written"]
    assert video["path"].endswith(f"udp_127.0.0.1_{cam.port}.pred.mp4") and "variable frame rate" in video["codec"]
    with av.open(video["path"]) as c:
        s = c.streams.video[0]
        times = [float(f.pts * f.time_base) for f in c.decode(s)]
    assert len(times) == video["frames"] == len(doc["results"]) and s.codec_context.name == "h264"
    assert times == sorted(times) and 1.0 < times[-1] - times[0] < 2.5  # about the --duration read, in real time
