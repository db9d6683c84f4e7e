"""The desktop app's first seconds: time from launch to the first frame, prediction and Grad-CAM overlay on screen.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tools/gui_first_cam.py MODEL.onnx REFERENCE.pt ../shared/data/video/cat.mp4

Launches the window in this process as ``pawlens gui --model MODEL --reference REFERENCE --source SOURCE`` does
(the same loader and window), and prints one JSON line: seconds from the start of this script to the first frame
shown, the first prediction, the reference ready, and the first Grad-CAM overlay drawn, with the Grad-CAM mode at
that moment and the clip's length.  To compare two checkouts side by side, run it with ``PYTHONPATH=<checkout>/src``
for each, alternating, on one otherwise idle machine.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("reference")
    p.add_argument("source")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from pawlens.gui import app as gui_app

    gui_app.quiet_openmp()
    from PySide6 import QtCore, QtWidgets

    from pawlens.gui.window import MainWindow, WindowOptions
    from pawlens.gui.workers import WorkerThread

    qapp = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["pawlens-gui"])
    loader = gui_app.RuntimeLoader("app", "auto", None, "cpu")
    loader.preload()
    win = MainWindow(loader=loader, options=WindowOptions(probe_cameras=False, interactive=False))
    win.resize(1280, 800)
    seen: dict[str, float] = {}
    mode_at_cam: list[str] = []

    def mark(key: str) -> None:
        seen.setdefault(key, round(time.perf_counter() - T0, 3))

    def on_cam(_fid: int) -> None:
        if "first_cam_s" not in seen:
            mode_at_cam.append(str((win.ref_info or {}).get("mode", "")))
        mark("first_cam_s")

    win.cam_shown.connect(on_cam)
    win.reference_ready.connect(lambda _i: mark("reference_ready_s"))
    win.model_ready.connect(lambda _i: mark("model_ready_s"))
    win.set_model(args.model)
    win.set_reference(args.reference)
    win.open_source(args.source)
    win.show()
    timer = QtCore.QTimer()
    timer.setInterval(10)

    def poll() -> None:
        if win.frame is not None:
            mark("first_frame_s")
        if win.prediction is not None:
            mark("first_prediction_s")
        if "first_cam_s" in seen or time.perf_counter() - T0 > args.timeout:
            timer.stop()
            qapp.exit(0)

    timer.timeout.connect(poll)
    timer.start()
    mark("window_shown_s")
    qapp.exec()
    import cv2

    cap = cv2.VideoCapture(args.source)
    clip_s = (cap.get(cv2.CAP_PROP_FRAME_COUNT) / cap.get(cv2.CAP_PROP_FPS)) if cap.isOpened() and cap.get(cv2.CAP_PROP_FPS) else None
    cap.release()
    out = {**seen, "cam_mode_at_first_cam": mode_at_cam[0] if mode_at_cam else None,
           "frame_at_first_cam": win.cam_out.frame.index if win.cam_out is not None else None,
           "clip_s": round(clip_s, 2) if clip_s else None, "errors": list(win.errors)}
    win.shutdown()
    WorkerThread.stop_all(timeout_ms=30000)
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0 if "first_cam_s" in seen else 1)


if __name__ == "__main__":
    sys.exit(main())
