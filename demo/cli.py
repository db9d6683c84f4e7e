"""pawlens-demo: the main job end to end, in one command.

    pawlens-demo                         # ../shared/data/catsdogs if it exists, else the embedded default
    pawlens-demo --data photos/          # ImageFolder / pre-split / Kaggle-flat folder of cat and dog photos
    pawlens-demo --no-data               # force the embedded default (untrained ResNet50, synthetic images)

With data: trains the from-scratch baseline and EfficientNet-Lite0 from its ImageNet weights (they
install with pawlens: no network), and ResNet50 from ImageNet weights when they can be had (online, or
``--weights PATH``; otherwise it says so in one line and trains no from-scratch ResNet50), evaluates each
on the test split, exports the best one (and the baseline beside it) to ONNX / FP16 / INT8 (INT8
calibrated on training images), gates each against PyTorch, benchmarks every backend side by side
(accuracy against latency in ``pareto.png``), runs the deployed model on the clips in
``../shared/data/video`` (test data: share of frames labelled right), draws Grad-CAM examples, and writes
``report.md`` + ``report.html``.

Without data (a fresh machine, no internet): builds the embedded default, an *untrained* 2-class
ResNet50 at 224 px, exports it (INT8 calibrated on synthetic images the demo makes, and labelled so),
runs the parity gates and the benchmark, and writes the same report, which says plainly what an
untrained model's figures do and do not mean.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from pawlens.console import HelpFormatter, run_cli
from pawlens.errors import InputError, WeightsError
from pawlens.fs import ensure_writable_dir

LOG = logging.getLogger("pawlens")
REPO = Path(__file__).resolve().parents[1]


def default_data() -> str | None:
    """``../shared/data/catsdogs`` beside the working directory or beside the repository, if present."""
    for base in (Path.cwd(), REPO):
        p = base.parent / "shared" / "data" / "catsdogs"
        if p.is_dir():
            return str(p)
    return None


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pawlens-demo",
        description="Run the main job end to end: train -> evaluate -> export -> parity -> benchmark -> report.",
        formatter_class=HelpFormatter,
        add_help=add_help,
        epilog="examples:\n  pawlens-demo\n  pawlens-demo --data ~/photos/catsdogs --weights ~/resnet50.pth\n  pawlens-demo --no-data",
    )
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, help="photo folder (ImageFolder, pre-split or Kaggle flat); default: ../shared/data/catsdogs if present")
    g.add_argument("--no-data", action="store_true", help="ignore any data and run the embedded default (untrained ResNet50)")
    g.add_argument("--embedded-model", choices=("resnet50", "baseline"), default="resnet50",
                   help="architecture of the embedded default (baseline: a quick check of the whole chain)")
    g.add_argument("--embedded-size", type=int, default=224, help="input size of the embedded default")
    g.add_argument("--max-images", type=int, default=None, help="stratified cap on the images used for training/validation/test (None: all)")
    g.add_argument("--clips", nargs="*", default=None, metavar="VIDEO",
                   help="clips named after their class (cat.mp4) to run the deployed model on; default: ../shared/data/video/*.mp4")
    g = p.add_argument_group("training (with data)")
    g.add_argument("--models", default="baseline,efficientnet_lite0,resnet50",
                   help="which models to train and compare (transfer models with their own defaults; resnet50 only with weights)")
    g.add_argument("--img-size", type=int, default=None, help="baseline input size; if unset: pawlens-train's default (96)")
    g.add_argument("--epochs", type=int, default=None,
                   help="baseline epochs; if unset: pawlens-train's default (30; README, 'Measured', says how long they take)")
    g.add_argument("--resnet-epochs", type=int, default=3, help="ResNet50 epochs (phase 1 + phase 2)")
    g.add_argument("--weights", default="imagenet",
                   help="ResNet50 start: imagenet (download/cache) or a local state-dict PATH; none skips ResNet50")
    g.add_argument("--batch-size", type=int, default=32, help="training batch size")
    g = p.add_argument_group("export and benchmark")
    g.add_argument("--formats", default="onnx,fp16,int8", help="export formats (trt needs TensorRT and a GPU)")
    g.add_argument("--batch-sizes", default="1,8,32", help="benchmark batch sizes")
    g.add_argument("--bench-rounds", type=int, default=5, help="benchmark bursts per row and batch (pawlens-bench --rounds)")
    g.add_argument("--burst-ms", type=float, default=200.0, help="least duration of a benchmark burst (pawlens-bench --burst-ms)")
    g.add_argument("--no-peers", action="store_true", help="skip benchmark_app / the bare ONNX Runtime loop beside each row")
    g.add_argument("--tune-budget-s", type=float, default=15.0, help="seconds for `pawlens tune` on the deployed artifact (0: skip)")
    g.add_argument("--iters", type=int, default=12, help="timed benchmark calls per row with the rounds method (unused by bursts)")
    g.add_argument("--cam-examples", type=int, default=8, help="photos in the Grad-CAM grid")
    p.add_argument("--out", default=None, help="output folder (default runs/demo/NAME, numbered)")
    p.add_argument("--seed", type=int, default=42, help="random seed")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("-v", "--verbose", action="store_true", help="more logging")
    return p


class Stage:
    """What ``with stages(name) as stage:`` gives the stage: ``stage.skip()`` when it found nothing to do."""

    def __init__(self):
        self.status = "ok"

    def skip(self) -> None:
        self.status = "skipped"


class Stages:
    """Times each stage and prints one line per stage as it ends (ok, skipped or failed)."""

    def __init__(self):
        self.times: list[tuple[str, float, str]] = []

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        print(f"[demo] {name} ...", flush=True)
        stage = Stage()
        try:
            yield stage
        except BaseException:
            stage.status = "failed"
            raise
        finally:
            dt = time.perf_counter() - t0
            self.times.append((name, dt, stage.status))
            print(f"[demo] {name}: {stage.status} in {dt:.1f} s", flush=True)


def default_clips(data: str | None) -> list[str]:
    """The shipped clips beside the photos (``../shared/data/video/*.mp4``), if any."""
    if not data:
        return []
    d = Path(data).resolve().parent / "video"
    return sorted(str(p) for p in d.glob("*.mp4")) if d.is_dir() else []


def _main(argv: Sequence[str] | None) -> int:
    args = get_args_parser().parse_args(argv)
    from .pipeline import DemoConfig, run_demo

    data = None if args.no_data else (args.data or default_data())
    if args.data and not os.path.exists(args.data):
        raise InputError(f"--data {args.data}: folder not found; pass a folder of cat/dog photos or --no-data")
    from pawlens.train.loop import next_run_dir

    out = args.out or next_run_dir(os.path.join("runs", "demo"), "data" if data else "embedded")
    ensure_writable_dir(out)
    cfg = DemoConfig(
        data=data, out=out, max_images=args.max_images, models=[m.strip() for m in args.models.split(",") if m.strip()],
        img_size=args.img_size, epochs=args.epochs, resnet_epochs=args.resnet_epochs, weights=args.weights,
        batch_size=args.batch_size, formats=args.formats, batch_sizes=[int(b) for b in args.batch_sizes.split(",")],
        iters=args.iters, bench_rounds=args.bench_rounds, burst_ms=args.burst_ms, peers=not args.no_peers,
        tune_budget_s=args.tune_budget_s,
        cam_examples=args.cam_examples, seed=args.seed,
        embedded_model=args.embedded_model, embedded_size=args.embedded_size,
        clips=default_clips(data) if args.clips is None else list(args.clips),
    )
    stages = Stages()
    t0 = time.perf_counter()
    result = run_demo(cfg, stages)
    total = time.perf_counter() - t0
    print()
    print("[demo] stage times: " + ", ".join(f"{n} {t:.0f}s" for n, t, _ in stages.times) + f"; total {total:.0f} s")
    print(f"[demo] report: {os.path.abspath(result['report_md'])}")
    print(f"[demo]         {os.path.abspath(result['report_html'])}")
    from .pipeline import gui_command

    print(f"[demo] open the GUI on the exported model:\n  {gui_command(result['gui_model'], result.get('reference'), result.get('gui_source'))}")
    with open(os.path.join(out, "demo.json"), "w") as f:
        json.dump({"stages": [{"name": n, "seconds": round(t, 2), "status": s} for n, t, s in stages.times],
                   "total_seconds": round(total, 2), **{k: v for k, v in result.items() if isinstance(v, (str, int, float, bool))}}, f, indent=1)
    return 0 if result.get("parity_ok", True) else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv, prog="pawlens-demo")


__all__ = ["main", "get_args_parser", "default_data", "WeightsError"]


if __name__ == "__main__":
    raise SystemExit(main())
