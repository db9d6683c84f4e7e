"""GUI benchmark: the real window playing a video, with each model, Grad-CAM off and on; no timed test, just figures.

    pawlens bench-gui --make-models runs/bench/gui/models                     # random ResNet50 -> fp32 + INT8 ONNX
    QT_QPA_PLATFORM=offscreen pawlens bench-gui --model runs/bench/gui/models/resnet50.onnx \\
        --int8 runs/bench/gui/models/resnet50.int8.onnx --reference runs/bench/gui/models/resnet50.pt \\
        --source ../shared/data/video/cat.mp4 --seconds 15

For every (model, CAM off/on) it builds a fresh :class:`pawlens.gui.window.MainWindow` with the app's own
:class:`pawlens.gui.app.RuntimeLoader`, waits until the models are loaded, plays the (looping) video for a
warm-up, resets the meters, then measures for ``--seconds``:

* display FPS: new frames actually painted by the frame view, per second;
* inference FPS and latency: predictions that came back, per second, and their ``infer_ms``;
* frames dropped as stale (captured, then replaced in the one-frame buffer before inference took them);
* Grad-CAM per second and its latency;
* UI event-loop latency: how late a 10 ms precise QTimer in the UI thread fired (max and p99), i.e.
  the longest the UI thread was unavailable.

Results go to ``<out>/gui_bench.json`` and a table on stdout.  The load average before and after is
recorded too: on a shared 2-core machine other processes change these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Sequence

from pawlens.console import HelpFormatter, run_cli
from pawlens.errors import InputError
from pawlens.fs import atomic_write_text, ensure_writable_dir
from pawlens.runtime.formats import CHECKPOINT, ONNX, by_key

PROG = "pawlens bench-gui"


def make_models(out_dir: str, *, calib_dir: str | None = None, n_calib: int = 64, seed: int = 0, arch: str = "resnet50") -> dict[str, str]:
    """A checkpoint of ``arch`` (random weights; a transfer model with ImageNet weights where they install offline,
    its head from the ImageNet cat/dog classes), its fp32 ONNX and an INT8 ONNX calibrated on real photos."""
    import numpy as np
    import torch

    from pawlens.export.onnx import export_onnx
    from pawlens.export.quantize import quantize_int8
    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.models.preprocess import list_images, load_image, preprocess_numpy
    from pawlens.models.registry import create_model, model_info

    ensure_writable_dir(out_dir)
    info = model_info(arch)
    ckpt = os.path.join(out_dir, f"{arch}{CHECKPOINT}")
    fp32 = os.path.join(out_dir, f"{arch}{ONNX}")
    int8 = os.path.join(out_dir, f"{arch}{by_key('int8').suffix}")
    cfg = info.preprocess()
    if not os.path.exists(ckpt):
        torch.manual_seed(seed)
        weights = "imagenet" if info.head_args is not None else "none"  # weights that install offline
        margs = info.model_args(cfg.input_size, ["cat", "dog"], weights)
        model = create_model(arch, num_classes=2, weights=weights, **margs)
        save_checkpoint(ckpt, model=model, arch=arch, model_args=margs, class_names=["cat", "dog"], preprocess=cfg)
    if not os.path.exists(fp32):
        export_onnx(ckpt, fp32)
    if not os.path.exists(int8):
        root = calib_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "catsdogs")
        paths = list_images(root)
        if not paths:
            raise InputError(f"no calibration photos under {root}; pass --calib DIR (a folder of real photos)")
        rng = np.random.default_rng(seed)
        pick = [paths[i] for i in sorted(rng.choice(len(paths), size=min(n_calib, len(paths)), replace=False))]
        calib = preprocess_numpy([load_image(p) for p in pick], cfg)
        quantize_int8(fp32, int8, calib)
    return {"checkpoint": ckpt, "fp32": fp32, "int8": int8}


def _spin(ms: int) -> None:
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(int(ms), loop.quit)
    loop.exec()


def _wait_until(pred, timeout_s: float) -> bool:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if pred():
            return True
        _spin(50)
    return bool(pred())


def run_one(model: str, reference: str | None, source: str, *, cam: bool, seconds: float, warmup: float, backend: str,
            threads: int | None, screenshot: str | None = None) -> dict[str, Any]:
    from pawlens.gui.app import RuntimeLoader
    from pawlens.gui.window import MainWindow, WindowOptions

    loader = RuntimeLoader(backend=backend, device="cpu", threads=threads)
    win = MainWindow(loader=loader, options=WindowOptions(cam_enabled=cam, loop=True, interactive=False, probe_cameras=False))
    win.resize(1280, 800)
    win.show()
    try:
        win.set_model(model)
        if reference:
            win.set_reference(reference)
        ok = _wait_until(lambda: win.model_info is not None and (not reference or win.ref_info is not None) or bool(win.errors), 180)
        if not ok or win.errors:
            raise InputError(f"models did not load: {'; '.join(win.errors) or 'timeout'}")
        win.open_source(source)
        _spin(int(warmup * 1e3))
        base = win.figures()
        win.reset_figures()
        t0 = time.perf_counter()
        _spin(int(seconds * 1e3))
        dt = time.perf_counter() - t0
        f = win.figures()
        if screenshot:
            win._update_figures()
            win.grab().save(screenshot, "PNG")
        return {
            "model": os.path.basename(model), "cam": cam, "seconds": round(dt, 2),
            "display_fps": f["display_fps_mean"], "inference_fps": f["inference_fps_mean"],
            "infer_ms_p50": f["infer_ms_p50"], "infer_ms_p95": f["infer_ms_p95"],
            "dropped_stale": f["frames_dropped_stale"] - base["frames_dropped_stale"],
            "frames_captured": f["frames_captured"] - base["frames_captured"],
            "frames_displayed": f["frames_displayed"], "frames_inferred": f["frames_inferred"],
            "cam_fps": f["cam_fps_mean"], "cam_ms_p50": f["cam_ms_p50"], "cams": f["cam_count"],
            "ui_latency_max_ms": f["ui_latency_max_ms"], "ui_latency_p99_ms": f["ui_latency_p99_ms"],
            "backend": f["backend"], "providers": f["providers"], "precision": f["precision"],
        }
    finally:
        win.close()


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, formatter_class=HelpFormatter, description=__doc__.split("\n")[0],
                                epilog="example: QT_QPA_PLATFORM=offscreen pawlens bench-gui --make-models runs/bench/gui/models "
                                       "--source ../shared/data/video/cat.mp4")
    p.add_argument("--model", default=None, help="fp32 ONNX (default: the one --make-models writes)")
    p.add_argument("--int8", default=None, help="INT8 ONNX (default: the one --make-models writes)")
    p.add_argument("--reference", default=None, help="reference checkpoint for Grad-CAM")
    p.add_argument("--make-models", default=None, metavar="DIR", help="make a checkpoint of --arch + fp32/INT8 ONNX in DIR first")
    p.add_argument("--arch", default="resnet50", help="architecture --make-models builds (efficientnet_lite0: its ImageNet weights, "
                   "head from the ImageNet cat/dog classes; others: random weights)")
    p.add_argument("--calib", default=None, help="folder of real photos for INT8 calibration (default ../shared/data/catsdogs)")
    p.add_argument("--source", default=os.path.join("..", "shared", "data", "video", "cat.mp4"), help="video to play (looped)")
    p.add_argument("--seconds", type=float, default=15.0, help="measured seconds per configuration")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds played before measuring")
    p.add_argument("--backend", default="ort", help="runtime backend for both models (ort: the app's runtime for ONNX files)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of the backend (default: its own)")
    p.add_argument("--only", default=None, help="comma list of configurations to run: fp32,fp32+cam,int8,int8+cam")
    p.add_argument("--screenshots", action="store_true", help="save a screenshot of each configuration next to the JSON")
    p.add_argument("--out", default=os.path.join("runs", "bench", "gui"), help="output folder")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def format_table(rows: list[dict[str, Any]]) -> str:
    from pawlens.document import Table

    def f(v, spec=".1f"):
        return "-" if v is None else format(v, spec)

    head = ["model", "CAM", "display fps", "infer fps", "infer ms p50/p95", "dropped", "CAM fps", "CAM ms", "UI max ms", "UI p99 ms"]
    body = [[r["model"], "on" if r["cam"] else "off", f(r["display_fps"]), f(r["inference_fps"]),
             f"{f(r['infer_ms_p50'])} / {f(r['infer_ms_p95'])}", str(r["dropped_stale"]), f(r["cam_fps"]) if r["cam"] else "-",
             f(r["cam_ms_p50"], ".0f") if r["cam"] else "-", f(r["ui_latency_max_ms"]), f(r["ui_latency_p99_ms"])] for r in rows]
    return "\n".join(Table.of(head, body, align="ll" + "r" * 8).console(rule=True))


def _main(argv: Sequence[str] | None) -> int:
    from pawlens.gui.app import quiet_openmp

    quiet_openmp()  # as the app does, before anything imports torch
    args = get_args_parser().parse_args(argv)
    made = make_models(args.make_models, calib_dir=args.calib, arch=args.arch) if args.make_models else {}
    fp32 = args.model or made.get("fp32")
    int8 = args.int8 or made.get("int8")
    ref = args.reference or made.get("checkpoint")
    if not fp32 and not int8:
        raise InputError("nothing to measure: pass --model / --int8, or --make-models DIR")
    if not os.path.isfile(args.source):
        raise InputError(f"--source {args.source}: video not found")
    out = ensure_writable_dir(args.out)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    from pawlens.gui.app import RuntimeLoader
    from pawlens.gui.window import apply_theme

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([PROG])
    apply_theme(app)
    RuntimeLoader(args.backend).preload()
    configs = [(name, path, cam) for name, path in (("fp32", fp32), ("int8", int8)) if path for cam in (False, True)]
    if args.only:
        want = {w.strip() for w in args.only.split(",")}
        configs = [c for c in configs if (c[0] + ("+cam" if c[2] else "")) in want]
    rows = []
    load0 = os.getloadavg()
    for name, path, cam in configs:
        shot = os.path.join(out, f"gui_{name}{'_cam' if cam else ''}.png") if args.screenshots else None
        print(f"{PROG}: {name} CAM {'on' if cam else 'off'} ... ", end="", flush=True, file=sys.stderr)
        r = run_one(path, ref, args.source, cam=cam, seconds=args.seconds, warmup=args.warmup,
                    backend=args.backend, threads=args.threads, screenshot=shot)
        r["config"] = name + ("+cam" if cam else "")
        rows.append(r)
        print(f"display {r['display_fps']:.1f} fps, inference {r['inference_fps']:.1f} fps", file=sys.stderr)
    result = {"rows": rows, "source": args.source, "seconds": args.seconds, "warmup": args.warmup, "backend": args.backend,
              "loadavg_before": load0, "loadavg_after": os.getloadavg(), "cpu_count": os.cpu_count()}
    atomic_write_text(os.path.join(out, "gui_bench.json"), json.dumps(result, indent=2, default=str) + "\n")
    print(format_table(rows))
    print(f"load average before {load0[0]:.2f}, after {result['loadavg_after'][0]:.2f} ({os.cpu_count()} CPUs); "
          f"results in {os.path.join(out, 'gui_bench.json')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
