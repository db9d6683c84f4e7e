"""``pawlens-train`` and ``pawlens-eval``: flags (and an optional YAML file) -> :func:`train.loop.train` / :func:`train.report.evaluate_checkpoint`.

Usage::

    pawlens-train --data photos --model baseline --img-size 96 --epochs 10
    pawlens-train -c my.yaml --epochs 3                 # flags override the YAML file
    pawlens-train --resume runs/train/baseline/last.pt  # continue after an interruption
    torchrun --nproc_per_node 2 $(which pawlens-train) --data photos --device cpu
    pawlens-eval --checkpoint runs/train/baseline/best.pt --data photos

The config is read timm-style: a small parser takes ``-c/--config`` first, its keys become the main
parser's defaults, then the flags are parsed.  The resolved config is written as ``config.yaml``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from pawlens.console import HelpFormatter, config_flag, run_cli

from .config import AMP_CHOICES, AUGMENTS, CACHE_CHOICES, DEFAULTS, DEVICE_CHOICES, SCHEDULES, TRISTATE, load_yaml_config


def _d(key: str, suppress: bool):
    return argparse.SUPPRESS if suppress else DEFAULTS[key]


def _per_model(key: str) -> str:
    """``default: the model's (baseline 10, efficientnet_lite0 8, ...)``: the registry's training defaults for one key."""
    from pawlens.models.registry import list_models, model_info

    from .config import MODEL_DEFAULTS

    vals = []
    for n in list_models():
        info = model_info(n)
        v = info.default_input_size if key == "img_size" else info.unfreeze_default if key == "unfreeze" else \
            info.train_defaults.get(key, MODEL_DEFAULTS.get(key))
        if key == "unfreeze":
            if not info.pretrained:
                continue
            v = ",".join(v)
        vals.append(f"{n} {v:g}" if isinstance(v, float) else f"{n} {v}")
    return f"default: the model's ({', '.join(vals)})"


def _bool(s: str) -> bool:
    v = str(s).lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def get_args_parser(add_help: bool = True, *, suppress_defaults: bool = False) -> argparse.ArgumentParser:
    """The ``pawlens-train`` parser.  With ``suppress_defaults``, only flags given on the command line appear in the result."""
    from pawlens.models.registry import list_models

    s = suppress_defaults
    p = argparse.ArgumentParser(
        prog="pawlens-train",
        description="Train a cat/dog classifier (baseline CNN from scratch, or a transfer model, EfficientNet-Lite0 or\n"
        "ResNet50, from ImageNet weights in two phases: the head alone, then the top blocks at a lower rate)\n"
        "and evaluate it on the test split.  Writes best.pt, last.pt, config.yaml, split.json,\n"
        "history.json, metrics.json, curves.png, confusion_matrix.png and errors.png to --out.\n"
        "Runs unchanged under torchrun (DistributedDataParallel; gloo on CPU, NCCL on GPUs).",
        formatter_class=HelpFormatter,
        add_help=add_help,
        epilog="examples:\n"
        "  pawlens-train --data ../shared/data/catsdogs --model baseline --img-size 96 --epochs 12 --out runs/train/b96\n"
        "  pawlens-train --data photos --model efficientnet_lite0     # ImageNet weights from its package, offline\n"
        "  pawlens-train --data photos --model resnet50 --weights imagenet --epochs 8 --head-epochs 3\n"
        "  pawlens-train --resume runs/train/b96/last.pt            # after Ctrl-C\n"
        "  torchrun --nproc_per_node 2 $(which pawlens-train) --data photos --device cpu",
    )
    p.add_argument("-c", "--config", metavar="FILE.yaml", default=None,
                   help="YAML file of options (keys as the long flags, - or _); flags given here override it")
    g = p.add_argument_group("Dataset parameters")
    g.add_argument("--data", metavar="DIR", default=_d("data", s),
                   help="DIR/<class>/*.jpg, DIR/train|val|test/<class>/, Kaggle-flat DIR/cat.1.jpg, or 'oxford-pets' (download)")
    g.add_argument("--max-images", type=int, metavar="N", default=_d("max_images", s), help="stratified subset of N images (quick runs)")
    g.add_argument("--val-frac", type=float, default=_d("val_frac", s), help="validation share of a folder without a pre-split")
    g.add_argument("--test-frac", type=float, default=_d("test_frac", s), help="test share of a folder without a pre-split")
    g.add_argument("--data-cache", metavar="DIR", default=_d("data_cache", s), help="download folder for --data oxford-pets")
    g.add_argument("--num-workers", type=int, default=_d("num_workers", s), help="DataLoader worker processes (0: load in the main process)")
    g.add_argument("--cache", choices=CACHE_CHOICES, default=_d("cache", s),
                   help="decode the photos once and keep them in memory: the training photos resized to the model's resize size "
                   "(augmentation starts from there, as without the cache), the validation photos fully preprocessed. "
                   "auto: when they take at most a quarter of the available memory (and 4 GiB)")
    g = p.add_argument_group("Model parameters")
    g.add_argument("--model", choices=list_models(), default=_d("model", s), help="architecture")
    g.add_argument("--weights", metavar="imagenet|none|PATH", default=_d("weights", s),
                   help="initial weights (None: imagenet for transfer models, none for the baseline); PATH is a local state dict")
    g.add_argument("--img-size", type=int, metavar="PX", default=_d("img_size", s), help="input size; " + _per_model("img_size"))
    g = p.add_argument_group("Training parameters")
    g.add_argument("--epochs", type=int, default=_d("epochs", s), help="total epochs, both phases of a transfer model; " + _per_model("epochs"))
    g.add_argument("--head-epochs", type=int, default=_d("head_epochs", s),
                   help="transfer models, phase 1 (frozen backbone, head only) epochs; " + _per_model("head_epochs"))
    g.add_argument("--unfreeze", metavar="BLOCK[,BLOCK]", default=_d("unfreeze", s),
                   help="transfer models, phase 2: backbone blocks to train; " + _per_model("unfreeze"))
    g.add_argument("--bn-frozen", type=_bool, metavar="true|false", default=_d("bn_frozen", s),
                   help="phase 2: keep every BatchNorm layer in inference mode (running statistics kept); " + _per_model("bn_frozen"))
    g.add_argument("--l2sp", type=float, metavar="ALPHA", default=_d("l2sp", s),
                   help="pull each trainable pretrained weight back toward its pretrained value by lr x ALPHA per step "
                   "(L2-SP; keeps what ImageNet taught, 0 = off); " + _per_model("l2sp"))
    g.add_argument("--batch-size", type=int, default=_d("batch_size", s), help="images per step and process")
    g.add_argument("--accumulate", type=int, default=_d("accumulate", s), help="gradient accumulation steps per optimizer step")
    g.add_argument("--lr", type=float, default=_d("lr", s),
                   help="learning rate of a from-scratch run (baseline, --weights none); " + _per_model("lr"))
    g.add_argument("--lr-head", type=float, default=_d("lr_head", s), help="learning rate of the new head, both phases; " + _per_model("lr_head"))
    g.add_argument("--lr-backbone", type=float, default=_d("lr_backbone", s),
                   help="learning rate of the unfrozen blocks, phase 2; " + _per_model("lr_backbone"))
    g.add_argument("--weight-decay", type=float, default=_d("weight_decay", s), help="AdamW weight decay; " + _per_model("weight_decay"))
    g.add_argument("--label-smoothing", type=float, default=_d("label_smoothing", s),
                   help="label smoothing of the training loss; " + _per_model("label_smoothing"))
    g.add_argument("--augment", choices=AUGMENTS, default=_d("augment", s),
                   help="training augmentation: light = random crop of the resized photo, flip, +-10 deg rotation, colour jitter 0.1 "
                   "(fine-tuning); resized-crop = random resized crop (80-100%% of the area, aspect 3:4-4:3), flip, colour jitter 0.25 "
                   "(the baseline from scratch); "
                   + _per_model("augment"))
    g.add_argument("--patience", type=int, default=_d("patience", s),
                   help="early stopping: epochs without a val-loss gain; " + _per_model("patience"))
    g.add_argument("--min-delta", type=float, default=_d("min_delta", s), help="early stopping: smallest val-loss gain that counts")
    g.add_argument("--schedule", choices=SCHEDULES, default=_d("schedule", s),
                   help="learning-rate schedule of each phase: plateau (ReduceLROnPlateau on the val loss) or cosine (decay to 0 over "
                   "the phase's epochs); " + _per_model("schedule"))
    g.add_argument("--lr-patience", type=int, default=_d("lr_patience", s), help="ReduceLROnPlateau patience (epochs)")
    g.add_argument("--lr-factor", type=float, default=_d("lr_factor", s), help="ReduceLROnPlateau factor")
    g = p.add_argument_group("Runtime parameters")
    g.add_argument("--device", default=_d("device", s), help=f"{'|'.join(DEVICE_CHOICES)}|cuda:N; auto picks CUDA when available")
    g.add_argument("--amp", choices=AMP_CHOICES, default=_d("amp", s),
                   help="mixed precision: auto = fp16 + GradScaler on CUDA, bf16 on CPUs that support it, else off")
    g.add_argument("--channels-last", choices=TRISTATE, default=_d("channels_last", s), help="channels_last memory format (auto: with bf16/CUDA)")
    g.add_argument("--seed", type=int, default=_d("seed", s), help="seed of the split, the subset and every RNG")
    g.add_argument("--deterministic", type=_bool, metavar="true|false", default=_d("deterministic", s),
                   help="deterministic kernels where the device allows")
    g = p.add_argument_group("Output")
    g.add_argument("--out", metavar="DIR", default=_d("out", s), help="output folder (None: runs/train/<model>, numbered when taken)")
    g.add_argument("--resume", metavar="CKPT", default=_d("resume", s), help="continue the run of this last.pt (its config, updated by the flags)")
    g.add_argument("--errors-grid", type=int, metavar="N", default=_d("errors_grid", s), help="images in errors.png")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS if s else False, help="show tracebacks")
    g.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS if s else False, help="debug logging")
    return p


def parse_train_args(argv: Sequence[str]) -> dict:
    """Flags (+ ``-c FILE``) -> the config dict for :func:`train.loop.train`.

    A new run gets every key; a ``--resume`` run only the keys given (in the YAML file or as flags), which
    update the saved config.
    """
    config, rest = config_flag(argv)
    parser = get_args_parser()
    yaml_cfg = {}
    if config:
        yaml_cfg = load_yaml_config(config)
        parser.set_defaults(**yaml_cfg)
    args = parser.parse_args(rest)
    cfg = {k: v for k, v in vars(args).items() if k in DEFAULTS}
    if cfg.get("resume"):
        given = set(yaml_cfg) | set(vars(get_args_parser(suppress_defaults=True).parse_args(rest)))
        cfg = {k: cfg[k] for k in given if k in DEFAULTS}
        cfg["resume"] = args.resume
    return cfg


def _train(argv: Sequence[str]) -> int:
    from .loop import train

    cfg = parse_train_args(argv)
    res = train(cfg)
    m = res.metrics
    if m and os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"accuracy {m['accuracy']:.4f}  macro F1 {m['macro_f1']:.4f}  on {m.get('evaluated_on', 'test')}; best: {res.best_ckpt}")
    return 0


def _train_guarded(argv: Sequence[str] | None) -> int | None:
    from .data import sigint_recorded

    with sigint_recorded():  # from the first moment: a Ctrl-C swallowed while torch and the data load still stops the run
        return _train(argv)


def train_main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_train_guarded, argv, prog="pawlens-train")


# ----------------------------------------------------------------------------- pawlens-eval


def get_eval_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pawlens-eval",
        description="Evaluate a pawlens checkpoint on a data folder: accuracy, per-class precision/recall/F1,\n"
        "macro F1 and the confusion matrix; writes metrics.json, confusion_matrix.png and errors.png\n"
        "(the most confidently wrong images).",
        formatter_class=HelpFormatter,
        add_help=add_help,
        epilog="example:\n  pawlens-eval --checkpoint runs/train/baseline/best.pt --data ../shared/data/catsdogs",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="best.pt or last.pt written by pawlens-train")
    p.add_argument("--data", required=True, metavar="DIR", help="data folder (any layout pawlens-train reads) or oxford-pets")
    p.add_argument("--split", choices=("auto", "test", "all"), default="auto",
                   help="auto: DIR/test/, else the test list of split.json next to CKPT (same DIR), else every image")
    p.add_argument("--out", metavar="DIR", default=None, help="report folder (None: runs/eval/<run name>, numbered when taken)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch")
    p.add_argument("--max-images", type=int, default=None, metavar="N", help="stratified subset of N images")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda")
    p.add_argument("--errors-grid", type=int, default=16, help="images in errors.png")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _eval(argv: Sequence[str]) -> int:
    from pawlens.fs import next_run_dir

    from .report import evaluate_checkpoint

    a = get_eval_parser().parse_args(list(argv))
    out = a.out or next_run_dir(os.path.join("runs", "eval"), os.path.basename(os.path.dirname(os.path.abspath(a.checkpoint))) or "eval")
    m = evaluate_checkpoint(a.checkpoint, a.data, out, split=a.split, device=a.device, batch_size=a.batch_size, num_workers=a.num_workers,
                            max_images=a.max_images, errors_grid=a.errors_grid)
    per = ", ".join(f"{c} P {v['precision']:.3f} R {v['recall']:.3f} F1 {v['f1']:.3f}" for c, v in m["per_class"].items())
    print(f"accuracy {m['accuracy']:.4f}  macro F1 {m['macro_f1']:.4f}  ({per}) on {m['evaluated_on']}; report in {out}")
    return 0


def eval_main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_eval, argv, prog="pawlens-eval")


if __name__ == "__main__":
    sys.exit(train_main())
