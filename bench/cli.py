"""pawlens-bench (also ``pawlens bench``): every available backend and precision, side by side, in one run, on the same inputs.

    pawlens-bench                                        # embedded default: untrained 2-class ResNet50 at 224, exported now
    pawlens-bench --checkpoint runs/train/x/best.pt --images ../shared/data/catsdogs
    pawlens-bench --checkpoint best.pt --models best.onnx best.int8.onnx best.fp16.engine --batch-sizes 1,8,32

Prints bench.md and writes bench.json, bench.csv, bench.md and bench.png (and pareto.png) into ``--out``; how the
figures are taken is in :mod:`pawlens.bench.run`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from pawlens.console import HelpFormatter, run_cli
from pawlens.errors import InputError


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pawlens-bench", add_help=add_help, formatter_class=HelpFormatter,
        description="Time every available backend and precision side by side on the same inputs, interleaved; report latency, "
        "throughput, speed-up against PyTorch fp32 eager and agreement with it. Without --checkpoint an untrained 2-class "
        "ResNet50 is built and exported on the fly (latency does not depend on the weights). Model files are untrusted input: "
        "bench only files you exported.",
        epilog="example: pawlens-bench --checkpoint runs/train/best/best.pt --images ../shared/data/catsdogs --batch-sizes 1,8",
    )
    g = p.add_argument_group("what to time")
    g.add_argument("--checkpoint", nargs="+", default=None, metavar="CKPT",
                   help="pawlens checkpoint(s); the first is the main one, the others are compared beside it (each with the --models "
                   "exported from it: accuracy against latency in pareto.png); if unset: the embedded untrained ResNet50")
    g.add_argument("--models", nargs="+", default=[], metavar="FILE", help=".onnx / .engine files; if unset: export fp32 + INT8 now")
    g.add_argument("--latency-reference", default="resnet50", metavar="ARCH|none",
                   help="also time an untrained ARCH in PyTorch fp32 eager, for latency ratios across architectures")
    g.add_argument("--backends", default=None, help="comma list to restrict to: torch,ort,openvino,trt; if unset: all installed")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CPU rows, plus CUDA rows on a GPU")
    g.add_argument("--images", default=None, help="real photos for agreement, accuracy and INT8 calibration: a folder, or a run's "
                   "split.json (its test photos); if unset: the test photos the --models' export gated them on (its parity.json "
                   "names the split.json), else synthetic")
    g.add_argument("--n-images", type=int, default=None, help="agreement images (as many again for calibration); if unset: all "
                   "the export's gate photos when those are used, else 32")
    g = p.add_argument_group("how")
    g.add_argument("--batch-sizes", default="1,8,32", help="comma-separated batch sizes (the largest shows how near each precision "
                   "comes to this CPU's compute ceiling)")
    g.add_argument("--method", default="burst", choices=("burst", "rounds"),
                   help="burst: per round, each row makes one call after idle (its cold figure), then calls back to back for "
                   "--burst-ms (the steady figures behind p50, as benchmark_app times); rounds: --round-iters calls per row per "
                   "round, --pause-ms apart, every call timed (the earlier method)")
    g.add_argument("--rounds", type=int, default=5, help="bursts per row and batch, interleaved across rows (burst method)")
    g.add_argument("--burst-ms", type=float, default=200.0, help="least duration of a burst's steady calls (burst method)")
    g.add_argument("--min-calls", type=int, default=3, help="least steady calls per burst (burst method)")
    g.add_argument("--no-peers", action="store_true", help="skip each row's runtime's own tool beside it (benchmark_app for "
                   "OpenVINO, a bare InferenceSession loop for ONNX Runtime, trtexec for TensorRT where installed)")
    g.add_argument("--peer-s", type=float, default=1.0, help="seconds of each peer tool run")
    g.add_argument("--peer-runs", type=int, default=3, help="peer tool runs per row and batch, spread over the rounds; the row is "
                   "compared with the median of their medians (one run alone can read a noisy stretch of the machine)")
    g.add_argument("--pause-ms", type=float, default=10.0, help="pause before each row's turn (lets idle thread pools fall asleep)")
    g.add_argument("--iters", type=int, default=20, help="timed calls per row and batch (rounds method)")
    g.add_argument("--warmup", type=int, default=3, help="untimed calls per row and batch")
    g.add_argument("--threads", type=int, default=None, help="CPU threads per backend; if unset: each backend's own, all cores")
    g.add_argument("--isolation", default="process", choices=("process", "inline"), help="one worker process per row, or all inline")
    g.add_argument("--round-iters", type=int, default=2, help="timed calls per row per interleaving round (rounds method)")
    g.add_argument("--allow-spinning", action="store_true", help="let ONNX Runtime / OpenMP threads spin (off by default, as in the runners)")
    g.add_argument("--no-cam", action="store_true", help="skip the Grad-CAM and overhead measurements")
    g.add_argument("--compile", nargs="?", const="auto", default="off", choices=("auto", "on", "off"),
                   help="also time PyTorch through torch.compile (Inductor, frozen weights; compiles once per batch size in the "
                   "warm-up, 10-30 s each). --compile alone or auto: where a C++ compiler is found; on: fail those rows without one")
    g = p.add_argument_group("served (a Triton server, e.g. pawlens serve): with --server only these and --models, --out apply")
    g.add_argument("--server", default=None, metavar="URL", help="time a served model instead: http://HOST:8000 or grpc://HOST:8001")
    g.add_argument("--model", dest="server_model", default=None, metavar="NAME", help="the served model (default: the server's one "
                   "Pawlens classifier)")
    g.add_argument("--concurrency", default="1,4,16", help="closed-loop clients per level, comma-separated")
    g.add_argument("--requests", type=int, default=2000, help="batch-1 requests per concurrency level")
    g.add_argument("--send", default="tensor", choices=("tensor", "image"), help="tensor: preprocessed here; image: a JPEG's bytes, "
                   "decoded and preprocessed by the server")
    g.add_argument("--image", default=None, help="the photo the requests carry (default: a synthetic one)")
    g.add_argument("--shared-memory", default="auto", choices=("auto", "on", "off"), help="tensors through Triton's system shared "
                   "memory (auto: when the server is on this machine; concurrency 1 is then also timed over the network)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="output folder; if unset: runs/bench/NAME, numbered if it exists")
    g.add_argument("--name", default=None, help="NAME for the default output folder; if unset: ARCH-default or the checkpoint's stem")
    g.add_argument("--keep-models", action="store_true", help="keep the exported files in OUT/models")
    g.add_argument("--debug", action="store_true", help="show tracebacks")
    g.add_argument("-v", "--verbose", action="store_true", help="more log output")
    return p


def _parse_ints(s: str, flag: str) -> list[int]:
    try:
        v = [int(x) for x in str(s).split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{flag} {s!r}: expected comma-separated integers, e.g. 1,8,32") from None
    if not v or min(v) < 1:
        raise InputError(f"{flag} {s!r}: expected positive integers")
    return v


def _main(argv: Sequence[str] | None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.server:
        return _serving(args)
    if args.server_model:
        raise InputError("--model names a served model: it needs --server URL")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads}: must be >= 1 (leave it unset for each backend's default)")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()] if args.backends else None
    ckpts = args.checkpoint or [None]
    from .report import disturbed_line, to_markdown
    from .run import run_bench

    res = run_bench(ckpts[0], args.models, checkpoints=ckpts[1:],
                    latency_reference=None if str(args.latency_reference).lower() == "none" else args.latency_reference,
                    batch_sizes=_parse_ints(args.batch_sizes, "--batch-sizes"), iters=args.iters,
                    warmup=args.warmup, threads=args.threads, out=args.out, name=args.name, images=args.images, n_images=args.n_images,
                    backends=backends, device=args.device, isolation=args.isolation, round_iters=args.round_iters, cam=not args.no_cam,
                    spinning=args.allow_spinning, keep_models=args.keep_models, compile=args.compile, method=args.method,
                    rounds=args.rounds, burst_ms=args.burst_ms, min_calls=args.min_calls, peers=not args.no_peers, peer_s=args.peer_s,
                    peer_runs=args.peer_runs, pause_ms=args.pause_ms)
    print(to_markdown(res))
    if res.settings.get("disturbed"):
        print(f"pawlens-bench: {disturbed_line(res).replace('**', '')}", file=sys.stderr)
    print(f"wrote {', '.join(res.files.values())}", file=sys.stderr)
    return 0


def _serving(args) -> int:
    from pawlens.fs import next_run_dir

    from .serving import run_serving, to_markdown

    out = args.out or next_run_dir("runs/bench", args.name or "serving")
    res = run_serving(args.server, model=args.server_model, concurrency=_parse_ints(args.concurrency, "--concurrency"),
                      requests=args.requests, artifact=args.models[0] if args.models else None, send=args.send, out=out, image=args.image,
                      shared_memory=args.shared_memory)
    print(to_markdown(res))
    print(f"wrote {', '.join(res['files'])}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pawlens-bench``."""
    return run_cli(_main, argv, prog="pawlens-bench")


if __name__ == "__main__":
    sys.exit(main())
