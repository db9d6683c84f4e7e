"""pawlens-export: build ONNX / FP16 / INT8 / TensorRT artifacts from a checkpoint, each gated against PyTorch.

    pawlens-export runs/train/baseline/best.pt          # -> runs/export/baseline: photos from the run's split.json
    pawlens-export runs/train/x/best.pt --parity-data data/val --calib data/calib --formats onnx,fp16,int8,trt

Thin CLI over :func:`export.pipeline.export_all`.  Exit codes: 0 every requested artifact passed its
parity gate; 1 a gate (or a build) failed, the failing file renamed ``*.failed`` and its line ending with the next
step that would help; 2 bad input (missing or
damaged checkpoint, unknown format, unusable folders), and also when ``trt`` was requested but TensorRT
or a GPU is unavailable (the other formats are still built, gated and reported).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from pawlens.console import HelpFormatter, config_flag, read_config, run_cli
from pawlens.errors import InputError
from pawlens.fs import atomic_write_text

PROG = "pawlens-export"


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    from .pipeline import DEFAULT_FORMATS, FORMATS

    p = argparse.ArgumentParser(
        prog=PROG, add_help=add_help, formatter_class=HelpFormatter,
        description="Export a pawlens checkpoint to ONNX (fp32), FP16 ONNX, INT8 ONNX (static QDQ) and a TensorRT FP16 engine; "
                    "gate each against PyTorch fp32 and write parity.json + parity.md.",
        epilog="examples:\n  pawlens-export runs/train/resnet50/best.pt\n"
               "      (no flags: INT8 calibrated on the run's training photos, gates on its test photos, both from the\n"
               "      split.json next to the checkpoint; outputs in runs/export/resnet50)\n"
               "  pawlens-export runs/train/resnet50/best.pt --parity-data data/val --calib data/calib \\\n"
               "      --formats onnx,fp16,int8,trt --out runs/export/best\n\n"
               "output folders (as Ultralytics' exist_ok): an export never writes into a folder that already holds outputs;\n"
               "it takes the next free runs/export/NAME-2, -3, ... (also for --out DIR: DIR-2, ...) and says so;\n"
               "--exist-ok writes into the folder itself, replacing each artifact only once its replacement has passed\n\n"
               "exit codes: 0 all requested artifacts passed; 1 a parity gate failed (file renamed *.failed); "
               "2 bad input, or trt requested but TensorRT/GPU unavailable (the other formats are still written)",
    )
    p.add_argument("ckpt", help="pawlens checkpoint (best.pt / last.pt from pawlens-train)")
    p.add_argument("-c", "--config", default=None, help="YAML file whose keys (flag names) set the defaults of the flags below (default: none)")
    g = p.add_argument_group("outputs")
    g.add_argument("--formats", default=",".join(DEFAULT_FORMATS), help=f"comma-separated subset of {','.join(FORMATS)} (or all); triton: "
                   "a Triton model repository (triton/) of the artifacts that pass their gates, for pawlens serve")
    g.add_argument("--out", default=None, help="output folder (default: runs/export/<run name>, the checkpoint's folder name; "
                   "numbered -2, -3, ... when it already holds outputs)")
    g.add_argument("--exist-ok", action="store_true",
                   help="write into the output folder even when it holds an earlier export, replacing its artifacts once the new "
                   "ones pass (default: the next free numbered folder)")
    g.add_argument("--reuse", action="store_true",
                   help="keep an existing ONNX made from the same checkpoint (sha256) and options, still gated (default: rebuild all)")
    g = p.add_argument_group("parity and calibration data")
    g.add_argument("--parity-data", "--images", dest="parity_data", default=None, metavar="DIR",
                   help="real images for the parity gate (class-named subfolders give labels; default: the test photos of the "
                   "split.json next to the checkpoint, else none: random tensors only)")
    g.add_argument("--parity-max", type=int, default=None, help="use at most this many parity images (evenly spread); default: all")
    g.add_argument("--random-inputs", type=int, default=4, help="random tensors added to the parity inputs (16 without --parity-data)")
    g.add_argument("--calib", default=None, metavar="DIR", help="INT8 calibration images (a few hundred; default: the training photos "
                   "of the split.json next to the checkpoint, else the --parity-data images)")
    g.add_argument("--calib-max", type=int, default=500, help="use at most this many calibration images")
    g.add_argument("--seed", type=int, default=0, help="seed of the random parity tensors")
    g = p.add_argument_group("ONNX")
    g.add_argument("--opset", type=int, default=17, help="ONNX opset (tested: 17 with legacy, 18 with dynamo)")
    g.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy", help="torch.onnx exporter (the parity gate decides)")
    g = p.add_argument_group("INT8")
    g.add_argument("--int8-activation", choices=("U8", "S8"), default="U8", help="activation type (U8 is fast on x86 VNNI)")
    g.add_argument("--int8-weight", choices=("S8", "U8"), default="S8", help="weight type")
    g.add_argument("--calib-method", choices=("minmax", "entropy", "percentile"), default=None,
                   help="calibration method (default: the model's own, minmax unless its registry entry says otherwise): "
                   "minmax streams any number of images; entropy and percentile keep every activation "
                   "of every image in memory (ResNet50 at 224 px: ~0.13 GB per image) and are refused up front when they "
                   "would not fit")
    g.add_argument("--no-per-channel", dest="per_channel", action="store_false", help="per-tensor weight scales (default: per-channel)")
    g.add_argument("--int8-full-range", dest="int8_reduce_range", action="store_false",
                   help="8-bit weights instead of the default 7: slightly finer, but INT8 results drift on x86 CPUs without VNNI "
                   "(AVX2), whose 16-bit partial sums saturate (default: 7-bit weights, the same answers on every x86 CPU)")
    g = p.add_argument_group("TensorRT")
    g.add_argument("--batch-max", type=int, default=32, help="largest batch of the engine's optimisation profile")
    g.add_argument("--batch-opt", type=int, default=8, help="batch the engine is tuned for")
    g.add_argument("--workspace-gb", type=float, default=4.0, help="builder workspace limit in GiB")
    g = p.add_argument_group("parity gates")
    g.add_argument("--gates", default=None, metavar="YAML",
                   help="YAML {fp32|fp16|int8: {max_abs, max_rel, min_cosine, min_top1_agreement, max_acc_drop, tie_margin}} (default: built-in)")
    g.add_argument("--gate", action="append", default=[], metavar="PREC.KEY=VALUE",
                   help="override one gate, e.g. --gate int8.min_top1_agreement=0.98 (repeatable; 'none' switches a check off; default: none)")
    g = p.add_argument_group("other")
    g.add_argument("--batch-size", type=int, default=8, help="parity inference batch size")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar (default: a bar on a terminal, one line per step)")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging (default: off)")
    g.add_argument("--debug", action="store_true", help="show tracebacks (default: off)")
    return p


def resolve_gates(gates_yaml: str | None, overrides: Sequence[str]):
    """Default gates, updated by a YAML file, then by ``PREC.KEY=VALUE`` overrides."""
    from pawlens.runtime.compare import default_gate

    gates = {p: default_gate(p) for p in ("fp32", "fp16", "int8")}
    changes: dict[str, dict[str, Any]] = {}
    if gates_yaml:
        for prec, kv in read_config(gates_yaml, "gates").items():
            if not isinstance(kv, dict):
                raise InputError(f"{gates_yaml}: gates for {prec!r} must be a mapping of key: value")
            changes.setdefault(str(prec), {}).update(kv)
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise InputError(f"--gate {item!r}: expected PREC.KEY=VALUE, e.g. int8.min_top1_agreement=0.98")
        lhs, val = item.split("=", 1)
        prec, key = lhs.split(".", 1)
        changes.setdefault(prec.strip(), {})[key.strip()] = val.strip()
    for prec, kv in changes.items():
        if prec not in gates:
            raise InputError(f"gates: unknown precision {prec!r}; choose from: {', '.join(gates)}")
        gates[prec] = gates[prec].updated(**kv)
    return gates


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    config, _ = config_flag(argv)
    parser = get_args_parser()
    if config:
        cfg = read_config(config)
        dests = {a.dest for a in parser._actions}
        bad = sorted(set(cfg) - dests)
        if bad:
            raise InputError(f"{config}: unknown config key(s) {', '.join(bad)}")
        parser.set_defaults(**cfg)
    return parser.parse_args(argv)  # bad flags: argparse prints usage and exits 2


def _main(argv: Sequence[str] | None) -> int:
    import yaml

    from .pipeline import export_all, parse_formats

    args = _parse(list(argv or []))
    for flag, v in (("--calib-max", args.calib_max), ("--parity-max", args.parity_max), ("--batch-size", args.batch_size)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):  # 0 used to mean "all", silently
            raise InputError(f"{flag} {v}: must be a whole number >= 1" + (" (leave it unset for all images)" if flag == "--parity-max" else ""))
    formats = parse_formats(args.formats)
    gates = resolve_gates(args.gates, args.gate)
    report = export_all(
        args.ckpt, formats=formats, out_dir=args.out, exist_ok=args.exist_ok, parity_images=args.parity_data, calib=args.calib,
        batch_max=args.batch_max,
        opset=args.opset, gates=gates, progress=args.progress, exporter=args.exporter, random_inputs=args.random_inputs, seed=args.seed,
        calib_max=args.calib_max, parity_max=args.parity_max, int8_activation=args.int8_activation, int8_weight=args.int8_weight,
        int8_method=args.calib_method, per_channel=args.per_channel, int8_reduce_range=args.int8_reduce_range,
        batch_opt=args.batch_opt, workspace_gb=args.workspace_gb,
        reuse=args.reuse, batch_size=args.batch_size,
    )
    resolved = {k: v for k, v in vars(args).items() if k not in ("debug",)}
    resolved["gates_resolved"] = {k: g.to_dict() for k, g in gates.items()}
    atomic_write_text(os.path.join(report.out_dir, "args.yaml"), yaml.safe_dump(resolved, sort_keys=True))
    for a in report.artifacts:
        tag = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip", "unavailable": "n/a "}[a.status]
        line = f"{PROG}: {tag} {a.format:5s} {a.path or '(no file written)'}"
        if a.status != "passed" and a.reason:
            line += f": {a.reason}"
        print(line, file=sys.stderr if a.status != "passed" else sys.stdout)
    if report.triton is not None:
        ok = report.triton["status"] == "passed"
        print(f"{PROG}: {'ok  ' if ok else 'FAIL'} triton {report.triton['path'] if ok else ''}: {report.triton['reason']}",
              file=sys.stdout if ok else sys.stderr)
    print(f"{PROG}: parity report: {report.parity_md} (exit {report.exit_code})")
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
