"""The training loop: one epoch, evaluation, the two-phase transfer schedule, early stopping, checkpoints, resume.

Schedules (chosen by the registry entry of the model):

* ``baseline`` (no pretrained weights): one phase, ``scratch``: every parameter trains at ``lr``.
* transfer models (``resnet50``, ``efficientnet_lite0``) from pretrained weights: phase ``head`` trains only
  the new head (``lr_head``, backbone frozen, its BatchNorm layers kept in eval mode) for ``head_epochs``;
  phase ``finetune`` starts from the best head weights and also trains the blocks in ``unfreeze`` (the
  registry default, e.g. ``layer4``) at ``lr_backbone``, the head staying at ``lr_head``.  With ``bn_frozen``
  every BatchNorm layer stays in inference mode in ``finetune`` too (running statistics kept, affine
  parameters of unfrozen blocks still train), which keeps the pretrained features' robustness.  A model
  whose registry entry has ``head_args`` keeps, for class names ImageNet has classes for (cat, dog), a head
  started from those classes (:class:`models.efficientnet.ClassGroupHead`).  ``l2sp`` pulls every pretrained
  parameter that trains back toward its pretrained value (L2-SP, Li et al. 2018, decoupled like AdamW's decay).
* a transfer model with ``--weights none`` has nothing worth freezing: one ``scratch`` phase, said in one line.

Per-model defaults (epochs, head epochs, learning rates, unfrozen blocks, input size) come from the
registry entry's ``train_defaults`` (see :mod:`train.config`).

Each phase has its own AdamW optimiser, ReduceLROnPlateau on the validation loss (or, with ``schedule: cosine``, a
cosine decay over the phase's epochs) and early stopping
(``patience`` epochs without a ``min_delta`` gain); early stopping in ``head`` moves on to ``finetune``,
in the last phase it ends training.  ``best.pt`` holds the weights with the lowest validation loss,
``last.pt`` everything needed to continue (optimiser, scheduler, scaler, phase, history, early-stopping
state); each epoch reseeds every RNG from (seed, epoch, rank), so a resumed run repeats the epochs an
uninterrupted one would have run.  Mixed precision: fp16 autocast with a GradScaler on CUDA, bf16 autocast
on CPUs with bf16 support.  Under ``torchrun`` the model is wrapped in DistributedDataParallel, the training
set is sharded with DistributedSampler, metrics are summed over ranks, and only rank 0 writes files.

Usage::

    from pawlens.train.loop import train
    result = train({"data": "photos", "model": "baseline", "epochs": 5, "img_size": 96})
    print(result.best_ckpt, result.metrics["accuracy"])
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from pawlens.errors import CheckpointError, InputError, OutputError
from pawlens.fs import next_run_dir  # noqa: F401 - also imported from here by train.cli and demo.cli
from pawlens.models.device import cpu_supports_bf16, resolve_device

from . import dist as D
from .config import merge_for_resume, resolve_config, to_yaml
from .data import batches, sigint_recorded

LOG = logging.getLogger("pawlens")


@dataclass
class TrainResult:
    """What :func:`train` returns (identical on every rank; files are written by rank 0)."""

    out_dir: str
    best_ckpt: str
    last_ckpt: str
    metrics: dict[str, Any]
    history: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- devices, precision, seeds



def resolve_precision(amp: str, device_type: str):
    """(autocast dtype or None, use a GradScaler) for ``--amp`` on this device."""
    import torch

    if amp == "off":
        return None, False
    if amp == "auto":
        if device_type == "cuda":
            return torch.float16, True
        return (torch.bfloat16, False) if cpu_supports_bf16() else (None, False)
    if amp == "fp16":
        if device_type != "cuda":
            raise InputError("--amp fp16 needs a CUDA device; on CPUs use --amp bf16 (if supported) or --amp off")
        return torch.float16, True
    if amp == "bf16":
        if device_type == "cpu" and not cpu_supports_bf16():
            raise InputError("--amp bf16: this CPU has no bf16 support in oneDNN; use --amp off")
        return torch.bfloat16, False
    raise InputError(f"--amp {amp!r} is not one of auto, off, bf16, fp16")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import torch

    seed = int(seed) % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_deterministic(on: bool, device_type: str) -> None:
    """Deterministic kernels where the device allows (warnings, not errors, where an op has none)."""
    import torch

    if on and device_type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(on), warn_only=True)
    torch.backends.cudnn.deterministic = bool(on)
    torch.backends.cudnn.benchmark = not on


# ----------------------------------------------------------------------------- phases and freezing


def phase_plan(arch: str, cfg: dict[str, Any]) -> list[str]:
    """Phase names in order: ``["scratch"]`` for models without pretrained weights or trained with ``weights none``, else
    ``["head", "finetune"]`` (a ``head_epochs`` of 0 skips ``head``; ``head_epochs >= epochs`` leaves only ``head``)."""
    from pawlens.models.registry import model_info

    if not model_info(arch).pretrained or cfg.get("weights") in (None, "none"):
        return ["scratch"]
    if cfg["head_epochs"] <= 0:
        return ["finetune"]
    if cfg["head_epochs"] >= cfg["epochs"]:
        return ["head"]
    return ["head", "finetune"]


def configure_phase(model, arch: str, phase: str, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Set ``requires_grad`` for ``phase`` and return the optimiser's parameter groups (named ``all``, ``head``, ``backbone``)."""
    from pawlens.models.registry import model_info

    info = model_info(arch)
    if phase == "scratch":
        for p in model.parameters():
            p.requires_grad_(True)
        return [{"params": list(model.parameters()), "lr": cfg["lr"], "name": "all"}]
    head = getattr(model, info.head)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    groups = [{"params": list(head.parameters()), "lr": cfg["lr_head"], "name": "head"}]
    if phase == "finetune":
        bb = []
        for name in cfg["unfreeze"]:
            mod = _submodule(model, name)
            for p in mod.parameters():
                if not p.requires_grad:
                    p.requires_grad_(True)
                    bb.append(p)
        if bb:
            groups.insert(0, {"params": bb, "lr": cfg["lr_backbone"], "name": "backbone"})
    elif phase != "head":
        raise InputError(f"unknown phase {phase!r}")
    return groups


def block_names(model) -> list[str]:
    """The names ``--unfreeze`` accepts: the model's children and, for a container child, its numbered blocks."""
    from torch import nn

    out = []
    for n, m in model.named_children():
        out.append(n)
        if isinstance(m, (nn.Sequential, nn.ModuleList)) and len(m) and all(k.isdigit() for k, _ in m.named_children()):
            out += [f"{n}.{k}" for k, _ in m.named_children()]
    return out


def _submodule(model, name: str):
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise InputError(f"--unfreeze {name!r}: no such block in the model; choose from {', '.join(block_names(model))}") from None


def train_mode(model, bn_frozen: bool = False) -> None:
    """``model.train()``, but BatchNorm layers whose parameters are all frozen stay in eval mode (running stats kept);
    with ``bn_frozen`` every BatchNorm layer does."""
    from torch.nn.modules.batchnorm import _BatchNorm

    model.train()
    for m in model.modules():
        if isinstance(m, _BatchNorm) and (bn_frozen or not any(p.requires_grad for p in m.parameters())):
            m.eval()


# ----------------------------------------------------------------------------- one epoch, evaluation


def _autocast(device_type: str, dtype):
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


_WARNED: set[str] = set()


def _batch(batch, device, channels_last: bool, desc: str):
    """Move a ``(x, y, idx, err)`` batch to ``device``; returns x, y, the ok mask and the number of unreadable samples."""
    import torch

    x, y, _idx, err = batch
    ok = torch.tensor([e == "" for e in err], dtype=torch.bool)
    bad = int((~ok).sum())
    if bad:
        for j in (~ok).nonzero().flatten().tolist():
            if err[j] not in _WARNED:  # once per file, not every epoch
                _WARNED.add(err[j])
                LOG.warning(f"{desc}: skipped unreadable image: {err[j]}")
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True), ok.to(device), bad


def train_one_epoch(model, loader, optimizer, criterion, *, device: str, amp_dtype=None, scaler=None, accumulate: int = 1,
                    channels_last: bool = False, ctx: D.DistContext | None = None, desc: str = "train",
                    on_batch: Callable[[int, float], None] | None = None, bn_frozen: bool = False,
                    anchors: list | None = None, l2sp: float = 0.0) -> dict[str, float]:
    """One pass over ``loader`` with gradient accumulation; unreadable samples are masked out of the loss and counted.

    ``anchors`` (``[(param_group, [(param, pretrained_value), ...]), ...]``) with ``l2sp > 0``: after each optimiser step
    every anchored parameter moves ``lr * l2sp`` of the way back to its pretrained value (L2-SP, decoupled).

    ``criterion`` must use ``reduction="none"``.  Returns loss, acc, n, skipped, time_s and images_per_s (summed over ranks).
    """
    import torch

    from pawlens.progress import progress

    ctx = ctx or D.DistContext()
    dev_type = str(device).split(":")[0]
    train_mode(model, bn_frozen)
    optimizer.zero_grad(set_to_none=True)
    loss_sum = correct = n = skipped = 0.0
    nb = len(loader)
    t0 = time.perf_counter()
    bar = progress(batches(loader), total=nb, desc=desc, enabled=ctx.is_main, unit="batch")
    for i, batch in enumerate(bar):
        x, y, ok, bad = _batch(batch, device, channels_last, desc)
        skipped += bad
        k = int(ok.sum())
        b0 = x.shape[0]
        if b0 == 1:  # BatchNorm cannot train on one value per channel: use the image twice
            x, y, ok = x.repeat(2, 1, 1, 1), y.repeat(2), ok.repeat(2)
        step_now = (i + 1) % accumulate == 0 or i + 1 == nb
        sync = model.no_sync() if (ctx.enabled and not step_now and hasattr(model, "no_sync")) else contextlib.nullcontext()
        with sync:
            with _autocast(dev_type, amp_dtype):
                logits = model(x)
            w = ok.float()
            per = criterion(logits.float(), y)
            loss = (per * w).sum() / w.sum().clamp_min(1.0)
            (scaler.scale(loss / accumulate) if scaler is not None else loss / accumulate).backward()
        if step_now:
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if anchors and l2sp > 0:
                with torch.no_grad():
                    for group, pairs in anchors:
                        pull = min(1.0, group["lr"] * l2sp)
                        for p, p0 in pairs:
                            p.sub_(pull * (p - p0))
        with torch.no_grad():
            loss_sum += float((per.detach()[:b0] * w[:b0]).sum())
            correct += float(((logits.detach().argmax(1)[:b0] == y[:b0]) & ok[:b0]).sum())
            n += k
        el = time.perf_counter() - t0
        if ctx.is_main and not bar.disable:
            bar.set_postfix(loss=f"{loss_sum / max(n, 1):.4f}", acc=f"{correct / max(n, 1):.3f}", img_s=f"{n * ctx.world_size / max(el, 1e-9):.0f}")
        if on_batch is not None:
            on_batch(i, float(loss.detach()))
    bar.close()
    dt = time.perf_counter() - t0
    loss_sum, correct, n, skipped = D.all_reduce_sum([loss_sum, correct, n, skipped], ctx, device)
    return {"loss": loss_sum / max(n, 1), "acc": correct / max(n, 1), "n": int(n), "skipped": int(skipped), "time_s": dt,
            "images_per_s": n / max(dt, 1e-9)}


def evaluate(model, loader, *, device: str, amp_dtype=None, channels_last: bool = False, ctx: D.DistContext | None = None,
             desc: str = "val") -> dict[str, float]:
    """Cross-entropy (no label smoothing) and accuracy over ``loader``, summed over ranks; unreadable samples skipped."""
    import torch
    import torch.nn.functional as F

    from pawlens.progress import progress

    ctx = ctx or D.DistContext()
    dev_type = str(device).split(":")[0]
    model.eval()
    loss_sum = correct = n = skipped = 0.0
    with torch.inference_mode():
        for batch in progress(batches(loader), total=len(loader), desc=desc, enabled=ctx.is_main, unit="batch"):
            x, y, ok, bad = _batch(batch, device, channels_last, desc)
            skipped += bad
            if not bool(ok.any()):
                continue
            with _autocast(dev_type, amp_dtype):
                logits = model(x[ok])
            loss_sum += float(F.cross_entropy(logits.float(), y[ok], reduction="sum"))
            correct += float((logits.argmax(1) == y[ok]).sum())
            n += int(ok.sum())
    loss_sum, correct, n, skipped = D.all_reduce_sum([loss_sum, correct, n, skipped], ctx, device)
    return {"loss": loss_sum / n if n else math.inf, "acc": correct / max(n, 1), "n": int(n), "skipped": int(skipped)}


# ----------------------------------------------------------------------------- the whole run


def train(cfg: dict[str, Any], *, on_epoch: Callable[[dict[str, Any]], None] | None = None,
          on_batch: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train a model as ``cfg`` says (keys: :data:`train.config.DEFAULTS`) and evaluate it on the test split.

    With ``cfg["resume"]`` (a ``last.pt``), the saved config is used, updated with the other keys given.

    Args:
        cfg: training options; missing keys take their defaults.
        on_epoch: called on every rank after each epoch with the history row.
        on_batch: called after each training batch with (batch index, loss).

    Returns:
        TrainResult with the output folder, checkpoint paths, test metrics and history.

    Raises:
        PawlensError subclasses (one-line messages) for bad data, flags, weights or outputs; KeyboardInterrupt
        after logging how to resume (``last.pt`` always holds the last completed epoch).
    """
    with sigint_recorded():  # a Ctrl-C that lands in start-up (imports, the data scan) and is swallowed there still stops it
        return _train(cfg, on_epoch, on_batch)


def _train(cfg: dict[str, Any], on_epoch, on_batch) -> TrainResult:
    cfg = dict(cfg)
    resume_ckpt = None
    if cfg.get("resume"):
        from pawlens.models.checkpoint import load_checkpoint

        resume_ckpt = load_checkpoint(cfg["resume"])
        if "train_state" not in resume_ckpt:
            raise CheckpointError(f"{cfg['resume']}: holds no training state (best.pt is weights only); pass the run's last.pt to --resume")
        cfg = merge_for_resume(resume_ckpt.get("train_config", {}), {k: v for k, v in cfg.items() if k != "resume"}, cfg["resume"])
    cfg = resolve_config(cfg)
    device = resolve_device(cfg["device"])
    import torch

    flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    # Setting them (to what they are) imports what torch needs for it, here, before anything needs undoing: a Ctrl-C that
    # lands in that first import (torch imports inductor's config there) then ends the run as a plain interrupt, and the
    # restore in `finally` below never meets a half-imported torch._dynamo.
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    ctx = D.init_distributed(device.split(":")[0])
    old_level = LOG.level
    try:
        if ctx.enabled and device.startswith("cuda"):
            device = f"cuda:{ctx.local_rank}"
        if not ctx.is_main:
            LOG.setLevel(logging.WARNING)
        with sigint_recorded():  # a Ctrl-C swallowed anywhere (e.g. while DataLoader workers start) is raised at the next batch
            result = _run(cfg, device, ctx, resume_ckpt, on_epoch, on_batch)
        # Both ranks done before the group is torn down: a rank destroying it while the other still had gloo work
        # in flight aborted ("terminate called without an active exception", 1 of ~14 two-process test runs).
        D.barrier(ctx)
        return result
    finally:
        LOG.setLevel(old_level)
        try:
            torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])  # leave the caller's process as it was
        except Exception as e:  # never let the restore replace the error (or the Ctrl-C) that is on its way out
            LOG.debug("could not restore torch's deterministic-algorithms flags: %s", e)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2], flags[3]
        D.cleanup(ctx)


def _rank0_first(fn, ctx):
    """``fn()`` on rank 0 first (a download, a data scan), then on the other ranks; rank 0's error is raised on every rank."""
    from pawlens.errors import PawlensError

    if not ctx.enabled:
        return fn()
    out, err = None, None
    if ctx.is_main:
        try:
            out = fn()
        except PawlensError as e:
            err = e
    box = D.broadcast_object((type(err).__name__, str(err).split("] ", 1)[-1]) if err else None, ctx)
    if err is not None:
        raise err
    if box is not None:
        import pawlens.errors as E

        raise getattr(E, box[0], E.PawlensError)(box[1])
    return out if ctx.is_main else fn()


def _output_dir(cfg, resume_ckpt, ctx) -> str:
    """The run's folder: the resumed run's, ``--out``, or the next free ``runs/train/MODEL[-N]``; never one holding a run."""
    if resume_ckpt is not None:
        out_dir = os.path.abspath(cfg["out"] or os.path.dirname(os.path.abspath(cfg["resume"])))
    else:
        out_dir = os.path.abspath(cfg["out"] or next_run_dir(os.path.join("runs", "train"), cfg["model"]))
        last = os.path.join(out_dir, "last.pt")
        if os.path.exists(last):
            raise OutputError(f"{out_dir} already holds a training run (last.pt); continue it with --resume {last} or choose another --out")
        if os.path.exists(os.path.join(out_dir, "best.pt")):  # no last.pt: nothing to resume, so no --resume hint
            raise OutputError(f"{out_dir} already holds a trained model (best.pt, no last.pt to resume from); choose another --out, "
                              "or move best.pt away first")
    return D.broadcast_object(out_dir, ctx)


def _data(cfg, resume_ckpt, ctx):
    """The split to train on: the resumed run's ``split.json`` (its classes must be the checkpoint's), else a new one."""
    from .data import discover, load_split

    if resume_ckpt is not None:
        split_path = os.path.join(os.path.dirname(os.path.abspath(cfg["resume"])), "split.json")
        if os.path.isfile(split_path):
            spec = load_split(split_path)
            if not os.path.isdir(spec.root) and cfg["data"] and os.path.isdir(cfg["data"]):
                spec = load_split(split_path, data_root=cfg["data"])
        else:
            LOG.warning(f"{split_path} is missing: re-splitting {cfg['data']} from seed {cfg['seed']}")
            spec = discover(cfg["data"], seed=cfg["seed"], max_images=cfg["max_images"], val_frac=cfg["val_frac"],
                            test_frac=cfg["test_frac"], cache=cfg["data_cache"])
        if list(spec.class_names) != list(resume_ckpt["class_names"]):
            raise CheckpointError(f"{cfg['resume']}: classes {resume_ckpt['class_names']} differ from the data's {spec.class_names}")
    else:
        spec = _rank0_first(lambda: discover(cfg["data"], seed=cfg["seed"], max_images=cfg["max_images"], val_frac=cfg["val_frac"],
                                             test_frac=cfg["test_frac"], cache=cfg["data_cache"]), ctx)
    spec.scan()
    if cfg["data"] and spec.layout != "oxford-pets":
        cfg["data"] = os.path.abspath(os.path.expanduser(cfg["data"]))
    LOG.info(f"data: {spec.describe()}")
    return spec


def _model(cfg, info, class_names, resume_ckpt, ctx, device, channels_last):
    """``(model, model_args, pretrained)``: the network on ``device`` (resumed weights, or its start: ImageNet or none)
    and the L2-SP anchors (each parameter's pretrained value, on ``device``; empty without L2-SP)."""
    import torch

    from pawlens.models.registry import create_model

    weights = "none" if resume_ckpt is not None else cfg["weights"]
    if resume_ckpt is not None:
        model_args = dict(resume_ckpt.get("model_args", {}))
    else:
        model_args = info.model_args(cfg["img_size"], class_names, cfg["weights"])
    model = _rank0_first(lambda: create_model(cfg["model"], num_classes=len(class_names), weights=weights, **model_args), ctx)  # one download
    for name in cfg["unfreeze"]:
        _submodule(model, name)
    if resume_ckpt is not None:
        model.load_state_dict(resume_ckpt["state_dict"])
    elif "class_groups" in model_args:
        sizes = ", ".join(f"{c} {len(g)}" for c, g in zip(class_names, model_args["class_groups"]))
        LOG.info(f"head: each class keeps the ImageNet classes it stands for ({sizes}), started from their rows of the ImageNet classifier")
    if info.pretrained and cfg["weights"] == "none":
        LOG.info(f"{cfg['model']} with --weights none: no pretrained backbone to freeze, so every layer trains from scratch "
                 f"in one phase at --lr {cfg['lr']:g} (no head-only phase)")
    pretrained: dict[str, Any] = {}  # L2-SP anchors: the pretrained value of each parameter (the head's too if it is pretrained)
    if cfg["l2sp"] > 0 and cfg["weights"] != "none":
        src = model if resume_ckpt is None else create_model(cfg["model"], num_classes=len(class_names), weights=cfg["weights"], **model_args)
        head_prefix = info.head + "."
        pretrained = {n: p.detach().clone() for n, p in src.named_parameters()
                      if not n.startswith(head_prefix) or "class_groups" in model_args}
        del src
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    pretrained = {n: v.to(device) for n, v in pretrained.items()}
    return model, model_args, pretrained


def _loaders(cfg, spec, pre, ctx, dev_type):
    """``(sampler, train_loader, val_loader)``: this rank's shards, with the photo cache filled when it fits."""
    from torch.utils.data.distributed import DistributedSampler

    from pawlens.models.preprocess import resized_uint8, torch_eval_transform, torch_train_transform

    from .data import ImageListDataset, ShardSampler, cache_plan, make_loader

    train_ds = ImageListDataset(spec.splits["train"], torch_train_transform(pre, augment=cfg["augment"]), pre.input_size)
    val_ds = ImageListDataset(spec.splits["val"], torch_eval_transform(pre), pre.input_size)
    cached, why = cache_plan(cfg["cache"], len(train_ds), len(val_ds), pre)
    LOG.info(f"augmentation {cfg['augment']}; photo cache {why}")
    if cached:  # the training photos after the eval resize (augmentation starts there), the validation photos preprocessed
        train_ds.fill_cache(lambda im: resized_uint8(im, pre), train_ds.transform, desc="cache train")
        val_ds.fill_cache(val_ds.transform, desc="cache val")
    sampler = DistributedSampler(train_ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg["seed"], drop_last=False)
    pin = dev_type == "cuda"
    train_loader = make_loader(train_ds, batch_size=cfg["batch_size"], sampler=sampler, num_workers=cfg["num_workers"],
                               seed=cfg["seed"] + ctx.rank, pin_memory=pin)
    val_loader = make_loader(val_ds, batch_size=cfg["batch_size"] * 2, sampler=ShardSampler(len(val_ds), ctx.rank, ctx.world_size),
                             num_workers=cfg["num_workers"], pin_memory=pin)
    return sampler, train_loader, val_loader


def _run(cfg, device, ctx, resume_ckpt, on_epoch, on_batch) -> TrainResult:
    run = _Run(cfg, device, ctx, resume_ckpt, on_epoch, on_batch)
    run.prepare()
    run.fit()
    return run.finish()


class _Run:
    """One training run, in named steps: :meth:`prepare` (options, output folder, data, model, loaders, state),
    :meth:`setup` (a phase's optimizer and schedule), :meth:`fit` (the epochs: :meth:`epoch`, then the phase change or
    early stop), :meth:`finish` (the best weights, evaluated).  What the closures of one long function shared is the
    object's state."""

    def __init__(self, cfg, device, ctx, resume_ckpt, on_epoch, on_batch):
        self.cfg, self.device, self.ctx, self.resume_ckpt = cfg, device, ctx, resume_ckpt
        self.on_epoch, self.on_batch = on_epoch, on_batch
        self.best_state = None
        self.anchors: list = []

    # ------------------------------------------------------------------ prepare
    def prepare(self) -> None:
        import torch

        cfg, ctx = self.cfg, self.ctx
        self._resolve_options()
        self.out_dir = cfg["out"] = _output_dir(cfg, self.resume_ckpt, ctx)  # checked before anything slow happens
        self.spec = _data(cfg, self.resume_ckpt, ctx)  # errors before any file is written
        self.class_names = self.spec.class_names
        seed_everything(cfg["seed"])
        set_deterministic(cfg["deterministic"], self.dev_type)
        self.model, self.model_args, self.pretrained = _model(cfg, self.info, self.class_names, self.resume_ckpt, ctx, self.device,
                                                              self.channels_last)  # weights errors: before any file
        self.pre = self.info.preprocess(cfg["img_size"])
        self._write_outputs()
        self.sampler, self.train_loader, self.val_loader = _loaders(cfg, self.spec, self.pre, ctx, self.dev_type)
        self.criterion = torch.nn.CrossEntropyLoss(reduction="none", label_smoothing=cfg["label_smoothing"])
        self.scaler = torch.amp.GradScaler("cuda") if self.use_scaler else None
        self._initial_state()

    def _resolve_options(self) -> None:
        """The registry's defaults for what the config leaves open; the precision and the memory layout."""
        from pawlens.models.registry import model_info

        cfg = self.cfg
        self.info = info = model_info(cfg["model"])
        cfg["img_size"] = cfg["img_size"] or info.default_input_size
        cfg["weights"] = cfg["weights"] or ("imagenet" if info.pretrained else "none")
        if cfg["unfreeze"] is None:
            cfg["unfreeze"] = list(info.unfreeze_default)
        self.dev_type = self.device.split(":")[0]
        self.amp_dtype, self.use_scaler = resolve_precision(cfg["amp"], self.dev_type)
        self.channels_last = cfg["channels_last"] == "on" or (cfg["channels_last"] == "auto" and (
            self.amp_dtype is not None or self.dev_type == "cuda" or info.channels_last_cpu))

    def _write_outputs(self) -> None:
        from pawlens.fs import atomic_write_text, ensure_writable_dir

        cfg, ctx, out_dir = self.cfg, self.ctx, self.out_dir
        if ctx.is_main:
            ensure_writable_dir(out_dir)
            atomic_write_text(os.path.join(out_dir, "config.yaml"), to_yaml(cfg))
            if self.resume_ckpt is None or not os.path.isfile(os.path.join(out_dir, "split.json")):
                self.spec.save(os.path.join(out_dir, "split.json"))
        D.barrier(ctx)
        self.best_path, self.last_path = os.path.join(out_dir, "best.pt"), os.path.join(out_dir, "last.pt")
        LOG.info(f"model {cfg['model']} ({sum(p.numel() for p in self.model.parameters()) / 1e6:.1f}M parameters, weights {cfg['weights']}) "
                 f"at {cfg['img_size']} px on {self.device}{f' x{ctx.world_size} ({ctx.backend})' if ctx.enabled else ''}; "
                 f"precision {self.amp_dtype and str(self.amp_dtype).replace('torch.', '') or 'fp32'}"
                 f"{', channels_last' if self.channels_last else ''}; outputs in {out_dir}")

    def _initial_state(self) -> None:
        """The run's counters and history: fresh, or those ``last.pt`` saved (a resume)."""
        cfg = self.cfg
        self.phases = phase_plan(cfg["model"], cfg)
        self.st = {"epoch": 0, "phase": self.phases[0], "best_val_loss": math.inf, "best_val_acc": 0.0, "best_epoch": 0,
                   "es_best": math.inf, "es_bad": 0, "stopped": False}
        self.history = {"model": cfg["model"], "img_size": cfg["img_size"], "epochs": [], "phase_boundaries": [], "best_epoch": 0,
                        "best_val_loss": None, "stopped_early": False, "skipped_images": len(self.spec.skipped)}
        self.ts = self.resume_ckpt["train_state"] if self.resume_ckpt is not None else None
        if self.ts is not None:
            self.st.update(self.ts["state"])
            self.history = self.ts["history"]

    # ------------------------------------------------------------------ phases
    def setup(self, phase: str, restore=None) -> None:
        """The optimizer, schedule (and DDP wrapper) of ``phase``; ``restore``: the saved state of a resumed run."""
        import torch

        cfg, model = self.cfg, self.model
        groups = configure_phase(model, cfg["model"], phase, cfg)
        opt = torch.optim.AdamW(groups, weight_decay=cfg["weight_decay"])
        if cfg["schedule"] == "cosine":  # over the epochs this phase can run
            span = cfg["head_epochs"] if phase == "head" else cfg["epochs"] - (cfg["head_epochs"] if "head" in self.phases else 0)
            sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, span), eta_min=0.0)
        else:
            sch = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg["lr_factor"], patience=cfg["lr_patience"])
        if restore is not None and restore.get("optimizer"):
            opt.load_state_dict(restore["optimizer"])
            sch.load_state_dict(restore["scheduler"])
            if self.scaler is not None and restore.get("scaler"):
                self.scaler.load_state_dict(restore["scaler"])
        wrapped = model
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            wrapped = DDP(model, device_ids=[self.ctx.local_rank] if self.dev_type == "cuda" else None)
        n_train = sum(p.numel() for g in groups for p in g["params"])
        names = {id(p): n for n, p in model.named_parameters()}
        self.anchors.clear()
        for g in opt.param_groups:
            pairs = [(p, self.pretrained[names[id(p)]]) for p in g["params"] if names.get(id(p)) in self.pretrained]
            if pairs:
                self.anchors.append((g, pairs))
        n_anch = sum(p.numel() for _, pairs in self.anchors for p, _ in pairs)
        LOG.info(f"phase {phase}: {n_train:,} trainable parameters; lr " + ", ".join(f"{g['name']} {g['lr']:g}" for g in groups)
                 + (f"; L2-SP {cfg['l2sp']:g} toward the pretrained values of {n_anch:,} of them" if n_anch else ""))
        self.opt, self.sch, self.wrapped = opt, sch, wrapped

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        elif os.path.isfile(self.best_path):
            from pawlens.models.checkpoint import load_checkpoint

            self.model.load_state_dict(load_checkpoint(self.best_path)["state_dict"])

    def _checkpoint(self, metrics: dict, train_state: dict | None = None) -> dict:
        from pawlens.models.checkpoint import build_checkpoint

        return build_checkpoint(model=self.model, arch=self.cfg["model"], model_args=self.model_args, class_names=self.class_names,
                                preprocess=self.pre, train_config=self.cfg, metrics=metrics, train_state=train_state)

    def save_last(self) -> None:
        from pawlens.fs import atomic_write_text
        from pawlens.models.checkpoint import save_checkpoint

        st = self.st
        save_checkpoint(self.last_path, self._checkpoint(
            {"val_loss": st["best_val_loss"], "best_epoch": st["best_epoch"]},
            {"epoch": st["epoch"], "phase": st["phase"], "state": dict(st), "history": self.history, "optimizer": self.opt.state_dict(),
             "scheduler": self.sch.state_dict(), "scaler": self.scaler.state_dict() if self.scaler is not None else {}}))
        atomic_write_text(os.path.join(self.out_dir, "history.json"), json.dumps(self.history, indent=1) + "\n")

    # ------------------------------------------------------------------ fit
    def fit(self) -> None:
        cfg, st, ts = self.cfg, self.st, self.ts
        self.setup(st["phase"], restore=ts)
        # The epoch last.pt really holds: it changes only once a save has completed (a Ctrl-C during the save leaves the old file).
        self.saved_epoch = ts["epoch"] if ts is not None and os.path.abspath(cfg["resume"]) == os.path.abspath(self.last_path) else 0
        if ts is not None:
            LOG.info(f"resumed from {cfg['resume']}: {st['epoch']} epoch(s) done, phase {st['phase']}, best val loss {st['best_val_loss']:.4f}")
        if st["epoch"] >= cfg["epochs"] or st["stopped"]:
            LOG.info(f"training already complete ({st['epoch']} epochs{', stopped early' if st['stopped'] else ''}); evaluating best.pt")
        try:
            while st["epoch"] < cfg["epochs"] and not st["stopped"]:
                row = self.epoch()
                self._next_phase_or_stop()
                if self.ctx.is_main:
                    self.save_last()
                    self.saved_epoch = st["epoch"]
                if self.on_epoch is not None:
                    self.on_epoch(row)
        except KeyboardInterrupt:
            if self.ctx.is_main:
                last = self.last_path
                where = (f"{last} holds epoch {self.saved_epoch}; continue with: pawlens-train --resume {last}" if self.saved_epoch
                         else "no epoch was saved to last.pt yet")
                when = (f"at the end of epoch {st['epoch']}, before last.pt was updated" if st["epoch"] > self.saved_epoch
                        else f"during epoch {st['epoch'] + 1}")
                LOG.warning(f"interrupted {when}: {where}")
            raise

    def epoch(self) -> dict:
        """One epoch: train, validate, step the schedule, keep the best weights, count toward early stopping."""
        from pawlens.models.checkpoint import save_checkpoint

        cfg, ctx, st = self.cfg, self.ctx, self.st
        e, phase = st["epoch"], st["phase"]
        seed_everything(cfg["seed"] + 1000 * (e + 1) + 7919 * ctx.rank)
        self.sampler.set_epoch(e)
        self.train_loader.generator.manual_seed(cfg["seed"] + 1000 * (e + 1) + 7919 * ctx.rank)  # worker seeds, same after a resume
        tag = f"epoch {e + 1}/{cfg['epochs']} [{phase}]"
        tr = train_one_epoch(self.wrapped, self.train_loader, self.opt, self.criterion, device=self.device, amp_dtype=self.amp_dtype,
                             scaler=self.scaler, accumulate=cfg["accumulate"], channels_last=self.channels_last, ctx=ctx, desc=tag,
                             on_batch=self.on_batch, bn_frozen=cfg["bn_frozen"] and phase == "finetune", anchors=self.anchors,
                             l2sp=cfg["l2sp"])
        va = evaluate(self.model, self.val_loader, device=self.device, amp_dtype=self.amp_dtype, channels_last=self.channels_last, ctx=ctx,
                      desc=f"{tag} val")
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(self.opt.param_groups)}
        self.sch.step(va["loss"]) if cfg["schedule"] == "plateau" else self.sch.step()
        improved = va["loss"] < st["best_val_loss"]
        if improved:
            st.update(best_val_loss=va["loss"], best_val_acc=va["acc"], best_epoch=e + 1)
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            if ctx.is_main:
                save_checkpoint(self.best_path, self._checkpoint({"val_loss": va["loss"], "val_acc": va["acc"], "epoch": e + 1, "phase": phase}))
        if va["loss"] < st["es_best"] - cfg["min_delta"]:
            st.update(es_best=va["loss"], es_bad=0)
        else:
            st["es_bad"] += 1
        row = {"epoch": e + 1, "phase": phase, "train_loss": tr["loss"], "train_acc": tr["acc"], "val_loss": va["loss"],
               "val_acc": va["acc"], "lr": lrs, "images_per_s": tr["images_per_s"], "time_s": tr["time_s"],
               "train_images": tr["n"], "val_images": va["n"], "skipped": tr["skipped"] + va["skipped"], "best": improved}
        self.history["epochs"].append(row)
        self.history.update(best_epoch=st["best_epoch"], best_val_loss=st["best_val_loss"])
        LOG.info(f"{tag} train loss {tr['loss']:.4f} acc {tr['acc']:.3f} | val loss {va['loss']:.4f} acc {va['acc']:.3f}"
                 f"{' *' if improved else ''} | lr {', '.join(f'{v:.2g}' for v in lrs.values())} | {tr['images_per_s']:.0f} img/s"
                 f" | {tr['time_s']:.1f} s")
        st["epoch"] = e + 1
        return row

    def _next_phase_or_stop(self) -> None:
        """After the head phase (its epochs done, or no gain): the best head weights go on to finetune; else early stop."""
        cfg, st = self.cfg, self.st
        es_hit = st["es_bad"] >= cfg["patience"]
        if st["phase"] == "head" and "finetune" in self.phases and (st["epoch"] >= cfg["head_epochs"] or es_hit) and st["epoch"] < cfg["epochs"]:
            if es_hit:
                LOG.info(f"phase head: no val-loss gain for {cfg['patience']} epochs; moving on to finetune")
            self.restore_best()
            st.update(phase="finetune", es_best=math.inf, es_bad=0)
            self.history["phase_boundaries"].append(st["epoch"] + 1)
            self.setup("finetune")
        elif es_hit:
            st["stopped"] = True
            self.history["stopped_early"] = True
            LOG.info(f"early stopping: no val-loss gain for {cfg['patience']} epochs (best epoch {st['best_epoch']})")

    # ------------------------------------------------------------------ finish
    def finish(self) -> TrainResult:
        self.restore_best()
        metrics = _final_evaluation(self.cfg, self.ctx, self.model, self.model_args, self.spec, self.pre, self.st, self.history,
                                    self.out_dir, self.best_path, self.device)
        return TrainResult(out_dir=self.out_dir, best_ckpt=self.best_path, last_ckpt=self.last_path, metrics=metrics,
                           history=self.history, config=self.cfg)


def _final_evaluation(cfg, ctx, model, model_args, spec, pre, st, history, out_dir, best_path, device) -> dict:
    """The best weights on the test split (the val split when there is none): metrics, plots, best.pt's test figures."""
    from pawlens.fs import atomic_write_text
    from pawlens.models.checkpoint import build_checkpoint, save_checkpoint

    from .report import evaluate_samples, plot_curves

    class_names = spec.class_names
    metrics: dict[str, Any] = {}
    if ctx.is_main:
        test = spec.splits["test"]
        where = f"the test split ({len(test)} images)"
        if not test:
            test, where = spec.splits["val"], f"the val split ({len(spec.splits['val'])} images; there is no test split)"
        extra = {"best_epoch": st["best_epoch"], "best_val_loss": st["best_val_loss"], "best_val_acc": st["best_val_acc"],
                 "skipped_images": len(spec.skipped), "split": "test" if spec.splits["test"] else "val"}
        metrics = evaluate_samples(model, test, class_names, pre, out_dir, device=device, batch_size=cfg["batch_size"] * 2,
                                   num_workers=cfg["num_workers"], evaluated_on=where, errors_grid=cfg["errors_grid"], extra=extra)
        LOG.info(f"test ({where}): accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")
        if os.path.isfile(best_path):
            save_checkpoint(best_path, build_checkpoint(
                model=model, arch=cfg["model"], model_args=model_args, class_names=class_names, preprocess=pre, train_config=cfg,
                metrics={"val_loss": st["best_val_loss"], "val_acc": st["best_val_acc"], "epoch": st["best_epoch"],
                         "test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"], "test_n": metrics["n"]}))
        atomic_write_text(os.path.join(out_dir, "history.json"), json.dumps(history, indent=1) + "\n")
        plot_curves(history, os.path.join(out_dir, "curves.png"))
        LOG.info(f"wrote {out_dir}: best.pt, last.pt, config.yaml, split.json, history.json, metrics.json, curves.png, "
                 "confusion_matrix.png, errors.png")
    return D.broadcast_object(metrics, ctx)
