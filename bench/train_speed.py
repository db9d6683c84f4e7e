"""Training throughput on this machine: fp32 vs bf16 autocast + channels_last (and others), interleaved, side by side.

Times full training steps (forward, loss, backward, AdamW step) on random input of the model's size, so the
figure is the compute ceiling of the loop (no JPEG decoding).  Configurations are run in turns, round after
round, so a neighbour's load disturbs all of them alike; the table reports the median step of each.

Usage::

    pawlens bench-train --model resnet50 --img-size 224 --batch-size 16 --steps 4 --rounds 3
    pawlens bench-train --configs fp32,fp32-cl,bf16,bf16-cl --trainable all --json runs/speed.json

``--trainable``: ``finetune`` (layer4 + head, phase 2 of the transfer schedule), ``head`` (phase 1) or ``all``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Sequence

from pawlens.console import HelpFormatter

CONFIGS = {
    "fp32": (None, False),
    "fp32-cl": (None, True),
    "bf16": ("bf16", False),
    "bf16-cl": ("bf16", True),
    "fp16": ("fp16", False),
    "fp16-cl": ("fp16", True),
}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pawlens bench-train", description=__doc__.split("\n")[0], add_help=add_help,
                                formatter_class=HelpFormatter,
                                epilog="example: pawlens bench-train --model resnet50 --img-size 224 --batch-size 16 --steps 4")
    p.add_argument("--model", default="resnet50", help="registry name")
    p.add_argument("--img-size", type=int, default=224, help="input size")
    p.add_argument("--batch-size", type=int, default=16, help="images per step")
    p.add_argument("--steps", type=int, default=4, help="timed steps per configuration and round")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per configuration before the first round")
    p.add_argument("--rounds", type=int, default=3, help="rounds of all configurations in turn")
    p.add_argument("--configs", default="fp32,bf16-cl", help=f"comma list of {', '.join(CONFIGS)} (cl = channels_last)")
    p.add_argument("--trainable", choices=("finetune", "head", "all"), default="finetune", help="which parameters train")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results here")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _setup(model_name: str, trainable: str, channels_last: bool, device: str, seed: int = 0):
    import torch

    from pawlens.models.registry import create_model, model_info
    from pawlens.train.loop import configure_phase

    torch.manual_seed(seed)
    info = model_info(model_name)
    model = create_model(model_name, num_classes=2, weights="none")
    cfg = {"lr": 1e-3, "lr_head": 3e-4, "lr_backbone": 1e-5, "unfreeze": list(info.unfreeze_default)}
    if trainable == "all" or not info.pretrained:
        groups = configure_phase(model, model_name, "scratch", cfg)
    else:
        groups = configure_phase(model, model_name, trainable, cfg)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model, torch.optim.AdamW(groups, weight_decay=1e-4)


def run(args) -> list[dict]:
    import torch

    from pawlens.errors import InputError
    from pawlens.train.loop import resolve_precision, train_mode

    if args.threads:
        torch.set_num_threads(args.threads)
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in names if c not in CONFIGS]
    if bad:
        raise InputError(f"--configs: unknown {bad}; choose from {', '.join(CONFIGS)}")
    dev_type = args.device.split(":")[0]
    sync = torch.cuda.synchronize if dev_type == "cuda" else (lambda: None)
    runs = {}
    for name in names:
        amp, cl = CONFIGS[name]
        dtype, _ = resolve_precision(amp or "off", dev_type)
        model, opt = _setup(args.model, args.trainable, cl, args.device)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=g).to(args.device)
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 2, (args.batch_size,), generator=g).to(args.device)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        runs[name] = {"model": model, "opt": opt, "x": x, "y": y, "dtype": dtype, "scaler": scaler, "times": []}

    def step(r):
        m, opt = r["model"], r["opt"]
        train_mode(m)
        with torch.autocast(dev_type, dtype=r["dtype"], enabled=r["dtype"] is not None):
            loss = torch.nn.functional.cross_entropy(m(r["x"]).float(), r["y"])
        opt.zero_grad(set_to_none=True)
        if r["scaler"] is not None:
            r["scaler"].scale(loss).backward()
            r["scaler"].step(opt)
            r["scaler"].update()
        else:
            loss.backward()
            opt.step()

    for name in names:
        for _ in range(args.warmup):
            step(runs[name])
    sync()
    for rnd in range(args.rounds):
        for name in names:
            for _ in range(args.steps):
                sync()
                t = time.perf_counter()
                step(runs[name])
                sync()
                runs[name]["times"].append(time.perf_counter() - t)
        print(f"round {rnd + 1}/{args.rounds}: " + ", ".join(f"{n} {statistics.median(runs[n]['times'][-args.steps:]) * 1e3:.0f} ms"
                                                               for n in names), file=sys.stderr, flush=True)
    out = []
    base = None
    for name in names:
        ts = sorted(runs[name]["times"])
        med = statistics.median(ts)
        ips = args.batch_size / med
        base = base or ips
        out.append({"config": name, "model": args.model, "img_size": args.img_size, "batch_size": args.batch_size,
                    "trainable": args.trainable, "steps": len(ts), "median_step_ms": med * 1e3, "min_step_ms": ts[0] * 1e3,
                    "max_step_ms": ts[-1] * 1e3, "images_per_s": ips, "speedup": ips / base,
                    "threads": torch.get_num_threads(), "device": args.device})
    return out


def format_table(rows: list[dict]) -> str:
    from pawlens.document import Table

    lines = Table.of(["config", "median ms/step", "min", "max", "img/s", "vs first"],
                     [[r["config"], f"{r['median_step_ms']:.0f}", f"{r['min_step_ms']:.0f}", f"{r['max_step_ms']:.0f}",
                       f"{r['images_per_s']:.1f}", f"{r['speedup']:.2f}x"] for r in rows]).console(rule=True)
    r0 = rows[0]
    lines.append(f"({r0['model']} {r0['img_size']} px, batch {r0['batch_size']}, trainable {r0['trainable']}, {r0['steps']} timed steps "
                 f"each in interleaved rounds, {r0['threads']} threads, {r0['device']}, random input)")
    return "\n".join(lines)


def _main(argv: Sequence[str]) -> int:
    args = get_args_parser().parse_args(list(argv))
    rows = run(args)
    print(format_table(rows))
    if args.json:
        from pawlens.fs import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=1) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from pawlens.console import run_cli

    return run_cli(_main, argv, prog="pawlens bench-train")


if __name__ == "__main__":
    sys.exit(main())
