"""``pawlens``: one command with a subcommand per stage, as ``yolo train`` / ``yolo export``.

    pawlens train --data DIR --model efficientnet_lite0
    pawlens export runs/train/efficientnet_lite0/best.pt
    pawlens tune runs/export/efficientnet_lite0/model.int8.onnx      # measure this machine for --backend auto
    pawlens predict runs/export/efficientnet_lite0/model.int8.onnx photos/
    pawlens gui --model runs/export/efficientnet_lite0/model.int8.onnx

Each subcommand is the same program as its ``pawlens-<name>`` alias and keeps its own ``--help``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

#: subcommand -> (module, function, one-line summary).  Imported only when chosen, so ``pawlens --help``
#: starts without torch.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("pawlens.train.cli", "train_main", "train a model on a folder of photos (baseline, ResNet50, EfficientNet-Lite0)"),
    "eval": ("pawlens.train.cli", "eval_main", "evaluate a checkpoint on a split or a folder"),
    "export": ("pawlens.export.cli", "main", "checkpoint -> ONNX, FP16, INT8 (and a TensorRT engine), each parity-gated"),
    "predict": ("pawlens.runtime.predict", "main", "label photos, folders and videos with any artifact"),
    "tune": ("pawlens.bench.tune", "main", "time an artifact's configurations here; --backend auto then runs the fastest in its gate"),
    "serve": ("pawlens.serve.cli", "main", "serve an export on the real Triton Inference Server (HTTP, gRPC, metrics)"),
    "bench": ("pawlens.bench.cli", "main", "latency and agreement of every backend side by side"),
    "bench-gui": ("pawlens.bench.gui", "main", "the desktop app's frame and Grad-CAM rates on a clip"),
    "bench-train": ("pawlens.bench.train_speed", "main", "training throughput per precision and memory format"),
    "gui": ("pawlens.gui.app", "main", "the desktop app: webcam, image, video or folder, with Grad-CAM"),
    "demo": ("pawlens.demo.cli", "main", "train, export, benchmark and report on the shared photos in one go"),
}


#: Flags every command takes, accepted before the command's name too.
GLOBAL_FLAGS = ("--debug", "-v", "--verbose")


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: pawlens COMMAND [ARGS ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, _, summary) in COMMANDS.items()]
    lines += ["", "`pawlens COMMAND --help` explains each; `pawlens-COMMAND` is the same program (e.g. pawlens-train)."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        from pawlens import __version__

        print(f"pawlens {__version__}")
        return 0
    lead = []
    while args and args[0] in GLOBAL_FLAGS:  # `pawlens --debug train ...`: the flag belongs to the command
        lead.append(args.pop(0))
    if not args:
        print(f"pawlens: error: {' '.join(lead)} needs a command after it (pawlens --help lists them)", file=sys.stderr)
        return 2
    name, rest = args[0], args[1:] + lead
    if name not in COMMANDS:
        print(f"pawlens: error: unknown command {name!r}; choose one of: {', '.join(COMMANDS)} (pawlens --help lists them)",
              file=sys.stderr)
        return 2
    return _run(name, rest)


def _run(name: str, argv: Sequence[str]) -> int:
    """Import the command's module and run it.  A Ctrl-C while its imports load (torch's take a second or more) exits
    130 with one line, like a Ctrl-C inside the command (its ``run_cli`` handles that one)."""
    module, func, _ = COMMANDS[name]
    try:
        entry = getattr(importlib.import_module(module), func)
    except KeyboardInterrupt:
        print(f"pawlens-{name}: interrupted (Ctrl-C) while starting; nothing was written", file=sys.stderr)
        return 130
    return int(entry(list(argv)) or 0)


def _alias(name: str):
    def entry(argv: Sequence[str] | None = None) -> int:
        return _run(name, sys.argv[1:] if argv is None else argv)

    entry.__name__ = entry.__qualname__ = f"{name.replace('-', '_')}_main"
    entry.__doc__ = f"``pawlens-{name}``: the same program as ``pawlens {name}`` (its module is imported under the Ctrl-C guard)."
    return entry


# The ``pawlens-<name>`` console scripts point here (pyproject.toml), so their imports run under the same guard.
train_main, eval_main, export_main, predict_main, tune_main, serve_main = map(_alias, ("train", "eval", "export", "predict", "tune", "serve"))
bench_main, bench_gui_main, bench_train_main, gui_main, demo_main = map(_alias, ("bench", "bench-gui", "bench-train", "gui", "demo"))


if __name__ == "__main__":
    sys.exit(main())
