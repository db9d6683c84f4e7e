"""pawlens-gui: point a webcam (or a file) at a cat and see, live, what the deployed model says and where the reference looks.

    pawlens-gui --model runs/export/best/best.onnx --reference runs/train/best/best.pt --source 0
    QT_QPA_PLATFORM=offscreen pawlens-gui --model m.onnx --reference best.pt --source cat.mp4 \\
        --exit-after 100 --screenshot runs/gui/check.png          # headless self-check: prints the FPS figures

This module parses the flags, builds the loaders that turn files into a ``runtime`` Predictor and a
Grad-CAM explainer (:class:`RuntimeLoader`), and injects them into :class:`gui.window.MainWindow`
(the Dangerzone pattern: the window never decides which backend runs).  The loaders are called in
the workers' threads, so the models are built, activated and run there, never on the UI thread.
No ML framework is imported by the GUI itself: ``runtime`` does that, lazily.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Sequence

from pawlens.console import HelpFormatter, run_cli
from pawlens.errors import BackendUnavailable, InputError
from pawlens.fs import check_utf8_path, ensure_writable_dir
from pawlens.runtime import formats

PROG = "pawlens-gui"


#: ``--backend`` values: the app's own choice (the formats table's ``app_backend``), the table's ``auto``, or one backend.
BACKEND_CHOICES = ("app", "auto", *formats.BACKENDS)


class RuntimeLoader:
    """Builds predictors and explainers from files through ``runtime`` (called inside the worker threads).

    Args:
        backend: ``app`` (default: the formats table's ``app_backend`` where a row names one, i.e. ONNX files on
            ONNX Runtime, else ``auto``), ``auto`` (:func:`runtime.formats.auto_choice`, as pawlens-predict), or a
            backend key of :data:`runtime.formats.BACKENDS` (``ort``, ``openvino``, ``trt``, ``torch``).
        device: ``auto``, ``cpu`` or ``cuda`` for the deployed model.
        threads: CPU threads for the deployed model's backend (``None``: its default).
        cam_device: device of the PyTorch reference (Grad-CAM).
    """

    def __init__(self, backend: str = "app", device: str = "auto", threads: int | None = None, cam_device: str = "cpu"):
        if backend not in BACKEND_CHOICES:
            raise InputError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKEND_CHOICES)}")
        self.backend, self.device, self.threads, self.cam_device = backend, device, threads, cam_device

    def _cuda(self) -> bool:
        from pawlens.runtime.ort_runner import cuda_visible

        return str(self.device).startswith("cuda") or (self.device == "auto" and cuda_visible())

    def choose(self, path: str) -> tuple[str, str]:
        """The backend to ask ``make_runner`` for and, when the app keeps a choice of its own, the line that says so
        (``formats.app_choice``); ``("auto", "")`` where the app follows the table's ``auto``."""
        if self.backend != "app":
            return self.backend, ""
        from pawlens.runtime import factory

        kind = formats.suffix_kind(path)
        rows = [f for f in formats.FORMATS if f.kind == kind]
        if not rows or not any(f.app_backend for f in rows):
            return "auto", ""
        precision = rows[0].precision
        if len({f.app_backend for f in rows}) > 1:  # the choice depends on the precision: ask the file
            precision = factory.read_meta(path).precision
        installed = [b for b in formats.BACKENDS if factory.backend_installed(b)]
        choice = formats.app_choice(kind, precision, cuda=self._cuda(), installed=installed)
        return choice if choice is not None else ("auto", "")

    def preload(self) -> float:
        """Import the runtime's backends now, before the window is shown; returns the seconds it took.

        A first import of torch or onnxruntime runs extension initialisers that hold the GIL for up to
        a few seconds; done later from a worker thread it would freeze a visible window.  The imports
        go through ``runtime`` (which is what makes them); the GUI itself uses no ML framework.  Which
        backends: those the formats table would pick for a deployed model (:meth:`backends_to_preload`).
        """
        t0 = time.perf_counter()
        from pawlens.runtime import cam, factory, predictor  # noqa: F401
        from pawlens.runtime.base import lazy_import

        cuda = self._cuda()  # the factory asks torch whether CUDA is visible: pay for that import here
        try:  # the reference's architectures: importing torchvision holds the GIL long enough to stall the UI
            lazy_import("torchvision.models", "torch", "torchvision")
        except Exception:  # noqa: BLE001 - a core dependency; loading the reference will say what is wrong
            pass
        for key in self.backends_to_preload(cuda=cuda):
            try:
                lazy_import(formats.BACKENDS[key].module, key)
            except Exception:  # noqa: BLE001 - reported properly when the model is loaded
                pass
        return time.perf_counter() - t0

    def backends_to_preload(self, *, cuda: bool) -> list[str]:
        """The backends a deployed model would run on here, by the formats table (torch and GPU-only ones excluded:
        torch is imported anyway, TensorRT only when an engine is opened)."""
        from pawlens.runtime import factory

        installed = [b for b in formats.BACKENDS if factory.backend_installed(b)]
        if self.backend not in ("app", "auto"):
            keys = [self.backend] if self.backend in installed else []
        else:
            keys = []
            for f in formats.FORMATS:
                app = formats.app_choice(f.kind, f.precision, cuda=cuda, installed=installed) if self.backend == "app" else None
                auto = formats.auto_choice(f.kind, f.precision, cuda=cuda, installed=installed)
                pick = app[0] if app else (auto[0] if auto else None)
                if pick and pick not in keys:
                    keys.append(pick)
        return [k for k in keys if k != "torch" and not formats.BACKENDS[k].gpu_only]

    def load_predictor(self, path: str, class_names: Sequence[str] | None = None):
        from pawlens.runtime.factory import make_runner
        from pawlens.runtime.predictor import Predictor

        names = list(class_names) if class_names else None
        backend, why = self.choose(path)
        runner = make_runner(path, backend=backend, device=self.device, threads=self.threads, class_names=names)
        pred = Predictor(runner, class_names=names)
        pred.path = os.fspath(path)
        reason = getattr(runner, "plan_reason", "") or ""
        if why:  # the app keeps a choice of its own: the formats table says which, and why
            pred.backend_choice, pred.backend_note = "app's choice", why
        elif backend == "auto":
            pred.backend_choice, pred.backend_note = "auto", reason
        else:
            pred.backend_choice, pred.backend_note = f"--backend {backend}", ""
        return pred

    def load_explainer(self, path: str):
        from pawlens.runtime.cam import CamExplainer

        # threads auto: one PyTorch thread for a light reference (EfficientNet-Lite0), PyTorch's default for a heavy one
        # (ResNet50); CamExplainer says why.
        # trace: the part before the Grad-CAM layer runs as one frozen TorchScript call (checked against the eager model),
        # traced in the background: the first overlays come from the eager model instead of waiting for the trace
        cam = CamExplainer(path, device=self.cam_device, threads="auto" if self.cam_device == "cpu" else None, trace="background")
        cam.path = os.fspath(path)
        return cam


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, add_help=add_help, formatter_class=HelpFormatter,
        description="Live cat/dog classification with the deployed model (ONNX Runtime, OpenVINO or TensorRT) and a Grad-CAM "
                    "overlay from the PyTorch reference. Drop images, videos, folders, .onnx models or .pt checkpoints onto the window.",
        epilog="examples:\n"
               "  pawlens-gui --model runs/export/best/best.onnx --reference runs/train/best/best.pt --source 0\n"
               "  pawlens-gui --model m.onnx --classes cat,dog --source photos/            # an ONNX without metadata\n"
               "  QT_QPA_PLATFORM=offscreen pawlens-gui --model m.onnx --reference best.pt \\\n"
               "      --source ../shared/data/video/cat.mp4 --exit-after 100 --screenshot runs/gui/check.png   # headless self-check",
    )
    g = p.add_argument_group("Model")
    g.add_argument("--model", metavar="M.onnx", default=None,
                   help=f"deployed model: {', '.join(formats.KINDS)} (fp32/fp16/int8 ONNX, a TensorRT engine, a checkpoint)")
    g.add_argument("--reference", metavar="CKPT", default=None, help="PyTorch reference checkpoint (.pt) for Grad-CAM; "
                   "its classes must match the model's")
    g.add_argument("--classes", default=None, help="comma-separated class names, for an ONNX without pawlens metadata (e.g. cat,dog)")
    g.add_argument("--backend", default="app", choices=BACKEND_CHOICES,
                   help="runtime backend of the model. app: the desktop app's choice from the formats table (ONNX files on "
                   "ONNX Runtime; shown in the window), else auto; auto: what every other pawlens command picks (OpenVINO "
                   "for ONNX on a CPU where it is installed, TensorRT for .engine); or one backend")
    g.add_argument("--device", default="auto", help="device of the model: auto, cpu, cuda or cuda:N")
    g.add_argument("--threads", type=int, default=None, help="CPU threads of the model's backend; none: the backend's own choice")
    g.add_argument("--cam-device", default="cpu", help="device of the Grad-CAM reference: cpu, cuda or auto")
    g = p.add_argument_group("Source")
    g.add_argument("--source", default=None, metavar="0|PATH",
                   help="camera index, image, video or folder; none: the first camera found, else wait for a file to be opened")
    g.add_argument("--loop", action="store_true", help="replay a video when it ends")
    g.add_argument("--interval", type=float, default=2.0, help="seconds per image in a folder slideshow")
    g = p.add_argument_group("Display")
    g.add_argument("--no-cam", action="store_true", help="start with the Grad-CAM overlay off")
    g.add_argument("--alpha", type=float, default=0.6, help="overlay opacity, 0..1 (each pixel is also weighted by its heat)")
    g.add_argument("--sync-cam", action="store_true", help="show only frames that have their own Grad-CAM (exact, slower)")
    g.add_argument("--size", default="1280x800", help="window size WxH")
    g = p.add_argument_group("Headless self-check")
    g.add_argument("--exit-after", type=int, default=None, metavar="N",
                   help="quit after N frames were classified (displayed, without a model) and print the FPS figures")
    g.add_argument("--screenshot", default=None, metavar="OUT.png", help="with --exit-after: save a screenshot of the window")
    g.add_argument("--json", default=None, metavar="OUT.json", help="with --exit-after: write the figures as JSON")
    g.add_argument("--timeout", type=float, default=180.0, help="with --exit-after: give up after this many seconds")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("-v", "--verbose", action="store_true", help="more log output")
    return p


def _parse_size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in s.lower().split("x"))
    except ValueError:
        raise InputError(f"--size {s!r}: use WxH, e.g. 1280x800") from None
    if w < 400 or h < 300:
        raise InputError(f"--size {s}: at least 400x300")
    return w, h


def _check_args(args: argparse.Namespace) -> None:
    if args.classes is not None:
        names = [n.strip() for n in args.classes.split(",") if n.strip()]
        if len(names) < 2 or len(set(names)) != len(names):
            raise InputError(f"--classes {args.classes!r}: give at least two distinct comma-separated names, e.g. cat,dog")
        args.classes = names
    if not 0.0 <= args.alpha <= 1.0:
        raise InputError(f"--alpha {args.alpha}: must lie in 0..1")
    if args.interval <= 0:
        raise InputError(f"--interval {args.interval}: must be positive")
    if args.exit_after is not None:
        if args.exit_after < 1:
            raise InputError(f"--exit-after {args.exit_after}: must be at least 1")
        if args.source is None:
            raise InputError("--exit-after needs --source (a camera index, image, video or folder)")
    elif args.screenshot or args.json:
        raise InputError("--screenshot and --json go with --exit-after N (the headless self-check)")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads}: must be >= 1 (leave it unset for the backend's default)")
    for flag in ("screenshot", "json"):
        out = getattr(args, flag)
        if out:
            check_utf8_path(out, f"--{flag}")
            if os.path.isdir(out):
                example = os.path.join(out, "self-check." + ("png" if flag == "screenshot" else "json"))
                raise InputError(f"--{flag} {out}: is a folder; name the file to write (e.g. {example})")
            ensure_writable_dir(os.path.dirname(os.path.abspath(out)), f"--{flag} folder")
    for flag in ("model", "reference"):
        path = getattr(args, flag)
        if path and not os.path.exists(path):
            raise InputError(f"--{flag} {path}: file not found")


def _ensure_display(args: argparse.Namespace) -> None:
    """Without a display Qt aborts the process; fail with one line instead (or go offscreen for the self-check)."""
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM") \
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        if args.exit_after is not None:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        else:
            raise InputError("no display (DISPLAY is not set): run it on a desktop, under xvfb-run, or headless with "
                             "QT_QPA_PLATFORM=offscreen and --exit-after N")


def quiet_openmp() -> None:
    """Make torch's OpenMP threads sleep instead of spin when idle (must happen before torch is imported).

    Two runtimes share the CPU here (ONNX Runtime for predictions, torch for Grad-CAM): with OpenMP's
    default spin-waiting, each runtime's idle threads keep the cores from the other, and Grad-CAM crawls; with
    ``OMP_WAIT_POLICY=PASSIVE`` both get useful work done.  A value the user set is kept.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _main(argv: Sequence[str] | None) -> int:
    quiet_openmp()
    args = get_args_parser().parse_args(argv)
    _check_args(args)
    size = _parse_size(args.size)
    _ensure_display(args)
    try:
        from PySide6 import QtWidgets
    except ImportError:
        raise BackendUnavailable("PySide6 is not installed; install the desktop app with: pip install -e '.[gui]'") from None
    from .window import MainWindow, WindowOptions, apply_theme
    from .workers import WorkerThread

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([PROG])
    app.setApplicationName("Pawlens")
    apply_theme(app)
    opts = WindowOptions(cam_enabled=not args.no_cam, alpha=args.alpha, loop=args.loop, interval_s=args.interval,
                         sync_cam=args.sync_cam, interactive=args.exit_after is None,
                         probe_cameras=args.source is None)  # probing opens each camera (its light flashes): only when asked
    loader = RuntimeLoader(args.backend, args.device, args.threads, args.cam_device)
    loader.preload()
    win = MainWindow(loader=loader, options=opts)
    win.resize(*size)
    if args.model:
        win.set_model(args.model, class_names=args.classes)
    if args.reference:
        win.set_reference(args.reference)
    if args.source is not None:
        win.open_source(args.source)
    else:
        win.auto_open_camera = True
    win.show()
    check = None
    if args.exit_after is not None:
        from .selfcheck import SelfCheck

        check = SelfCheck(win, args.exit_after, screenshot=args.screenshot, json_path=args.json, timeout_s=args.timeout,
                          model_expected=bool(args.model))
        check.start()
    rc = app.exec()
    win.shutdown()
    rc = check.rc if check is not None else int(rc)
    if not WorkerThread.stop_all(timeout_ms=60000):
        # A model still loading cannot be interrupted; leaving now beats Qt aborting on a running QThread.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
