"""Evaluation and reports: metrics, ``metrics.json``, ``confusion_matrix.png``, ``errors.png``, ``curves.png``.

The test split is evaluated at the end of training; :func:`evaluate_checkpoint` does the same for any
checkpoint and data folder (``pawlens-eval``)::

    metrics = evaluate_checkpoint("runs/train/baseline/best.pt", "photos", "runs/eval/baseline")
    print(metrics["accuracy"], metrics["macro_f1"])

Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import numpy as np

from pawlens.errors import DataError
from pawlens.fs import printable

LOG = logging.getLogger("pawlens")


# ----------------------------------------------------------------------------- metrics


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of images of true class ``i`` predicted as ``j``."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def classification_metrics(y_true, y_pred, class_names: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro F1 and the confusion matrix (0 where undefined)."""
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    n = int(cm.sum())
    tp = np.diag(cm).astype(float)
    pred_n = cm.sum(axis=0).astype(float)
    true_n = cm.sum(axis=1).astype(float)
    prec = np.divide(tp, pred_n, out=np.zeros(k), where=pred_n > 0)
    rec = np.divide(tp, true_n, out=np.zeros(k), where=true_n > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(k), where=(prec + rec) > 0)
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()) if k else 0.0,
        "per_class": {
            name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(true_n[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
    }


def confident_errors(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the misclassified rows, most confident (highest predicted-class probability) first, at most ``k``."""
    pred = probs.argmax(1)
    wrong = np.nonzero(pred != labels)[0]
    return wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:k]


# ----------------------------------------------------------------------------- running a model over a list


def predict_samples(model, samples, preprocess, *, device: str = "cpu", batch_size: int = 32, num_workers: int = 0,
                    amp_dtype=None, channels_last: bool = False, desc: str = "eval"):
    """Softmax probabilities of ``model`` for each readable sample.

    Returns:
        (probs (N, C) float32, labels (N,), kept indices into ``samples`` (N,), skipped [(path, reason)]).
    """
    import torch

    from pawlens.models.preprocess import torch_eval_transform
    from pawlens.progress import progress

    from .data import ImageListDataset, batches, make_loader

    ds = ImageListDataset(samples, torch_eval_transform(preprocess), preprocess.input_size)
    loader = make_loader(ds, batch_size=batch_size, num_workers=num_workers, pin_memory=str(device).startswith("cuda"))
    probs, labels, kept, skipped = [], [], [], []
    model.eval()
    dev_type = "cuda" if str(device).startswith("cuda") else "cpu"
    with torch.inference_mode():
        for x, y, idx, err in progress(batches(loader), total=len(loader), desc=desc, unit="batch"):
            ok = torch.tensor([e == "" for e in err], dtype=torch.bool)
            for j in (~ok).nonzero().flatten().tolist():
                skipped.append((samples[int(idx[j])][0], err[j]))
            if not ok.any():
                continue
            x = x[ok].to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev_type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(x)
            probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            labels.append(y[ok].numpy())
            kept.append(idx[ok].numpy())
    if skipped:  # the reason usually names the file already ("[image] path: zero-byte file")
        example = skipped[0][1] if skipped[0][0] in skipped[0][1] else f"{skipped[0][0]}: {skipped[0][1]}"
        if not probs:
            raise DataError(f"{desc}: none of the {len(samples)} images could be read (e.g. {example}); check the files")
        LOG.warning(f"{desc}: skipped {len(skipped)} unreadable image(s) (e.g. {example})")
    if not probs:
        raise DataError(f"{desc}: none of the {len(samples)} images could be read")
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(kept), skipped


def evaluate_samples(model, samples, class_names, preprocess, out_dir: str | None, *, device: str = "cpu", batch_size: int = 32,
                     num_workers: int = 0, evaluated_on: str = "", errors_grid: int = 16, extra: dict | None = None) -> dict[str, Any]:
    """Metrics of ``model`` on ``samples``; with ``out_dir``, writes metrics.json, confusion_matrix.png and errors.png."""
    probs, labels, kept, skipped = predict_samples(model, samples, preprocess, device=device, batch_size=batch_size,
                                                   num_workers=num_workers, desc="test")
    pred = probs.argmax(1)
    m = classification_metrics(labels, pred, class_names)
    eps = 1e-7
    m["loss"] = float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + eps)))
    m["evaluated_on"] = evaluated_on
    m["skipped"] = len(skipped)
    if extra:
        m.update(extra)
    if out_dir:
        from pawlens.fs import atomic_write_text

        atomic_write_text(os.path.join(out_dir, "metrics.json"), json.dumps(m, indent=1) + "\n")
        plot_confusion(np.asarray(m["confusion_matrix"]), class_names, os.path.join(out_dir, "confusion_matrix.png"))
        order = confident_errors(probs, labels, errors_grid)
        items = [(samples[kept[i]][0], class_names[labels[i]], class_names[pred[i]], float(probs[i, pred[i]])) for i in order]
        m["errors_shown"] = len(items)
        m["errors"] = [{"path": p, "true": t, "pred": pr, "confidence": c} for p, t, pr, c in items]
        plot_errors(items, os.path.join(out_dir, "errors.png"), n_wrong=int((pred != labels).sum()), preprocess=preprocess)
        atomic_write_text(os.path.join(out_dir, "metrics.json"), json.dumps(m, indent=1) + "\n")
    return m


def evaluate_checkpoint(ckpt_path: str, data: str, out_dir: str | None = None, *, split: str = "auto", device: str = "auto",
                        batch_size: int = 32, num_workers: int = 0, max_images: int | None = None, errors_grid: int = 16) -> dict[str, Any]:
    """Evaluate a pawlens checkpoint on a data folder and write the report to ``out_dir``.

    Which images (``split``):
        ``auto``: the ``test/`` folder of a pre-split DIR; else the test list of ``split.json`` in the checkpoint's run
        folder when it was made from this same DIR; else every image.  ``test`` insists on a test list; ``all`` takes every image.
    The choice is logged and stored as ``metrics["evaluated_on"]``.

    Raises:
        CheckpointError, DataError, InputError: one line each.
    """
    from pawlens.errors import InputError
    from pawlens.models.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_from_checkpoint
    from pawlens.models.device import resolve_device

    from .data import discover, load_split, stratified_subset

    if split not in ("auto", "test", "all"):
        raise InputError(f"--split {split!r} is not one of auto, test, all")
    ckpt = load_checkpoint(ckpt_path)
    class_names = list(ckpt["class_names"])
    model = model_from_checkpoint(ckpt)
    pre = preprocess_from_checkpoint(ckpt)
    dev = resolve_device(device)
    model.to(dev)

    samples, names, where = _eval_samples(ckpt_path, data, split, discover, load_split)
    remap = {}
    for i, n in enumerate(names):
        if n not in class_names:
            raise DataError(f"{data}: class {n!r} is unknown to the checkpoint (it knows {', '.join(class_names)}); rename the folder")
        remap[i] = class_names.index(n)
    samples = [(p, remap[y]) for p, y in samples]
    if max_images is not None and max_images < len(samples):
        from .data import quick_check

        passed: list[tuple[str, str]] = []
        samples = stratified_subset(samples, max_images, 0, check=quick_check, rejected=passed)
        where += f", stratified subset of {len(samples)}"
        if passed:
            where += f" (passed over {len(passed)} unreadable file(s), e.g. {passed[0][0]}: {passed[0][1]})"
    if not samples:
        raise DataError(f"{data}: no images to evaluate ({where})")
    LOG.info(f"evaluating {ckpt_path} on {where}")
    if out_dir:
        from pawlens.fs import ensure_writable_dir

        ensure_writable_dir(out_dir)
    return evaluate_samples(model, samples, class_names, pre, out_dir, device=dev, batch_size=batch_size, num_workers=num_workers,
                            evaluated_on=where, errors_grid=errors_grid, extra={"checkpoint": os.path.abspath(ckpt_path), "data": str(data)})


def _eval_samples(ckpt_path, data, split, discover, load_split):
    """(samples, class names, description) for :func:`evaluate_checkpoint`."""
    from .data import OXFORD_PETS

    spec = discover(data, seed=0, val_frac=0.15, test_frac=0.15)
    if spec.split_source in ("folders", OXFORD_PETS) and split in ("auto", "test"):
        if spec.splits["test"]:
            return spec.splits["test"], spec.class_names, f"the test split of {spec.root} ({len(spec.splits['test'])} images)"
        if split == "test":
            raise DataError(f"{data}: has no test/ folder; use --split all or add DIR/test/<class>/")
    run_split = os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), "split.json")
    if split in ("auto", "test") and spec.split_source == "seed" and os.path.isfile(run_split):
        saved = load_split(run_split)
        if os.path.abspath(saved.root) == os.path.abspath(spec.root):
            return (saved.splits["test"], saved.class_names,
                    f"the test list of {run_split} ({len(saved.splits['test'])} images of {spec.root})")
        LOG.info(f"{run_split} was made from {saved.root}, not {spec.root}: evaluating every image instead")
    if split == "test":
        raise DataError(f"{data}: no test split (no test/ folder, no split.json for this data next to {ckpt_path}); use --split all")
    allv = [s for v in spec.splits.values() for s in v]
    return sorted(allv), spec.class_names, f"all {len(allv)} images of {spec.root}"


# ----------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    import io

    from pawlens.fs import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def robust_limits(values, *, k: float = 3.0) -> tuple[float, float] | None:
    """``(lo, hi)`` that leave out far outliers (beyond ``k`` interquartile ranges from the quartiles), or ``None`` if there are none.

    With fewer than 5 values nothing counts as an outlier.  The limits are the extremes of the values kept, padded by 5%.
    """
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size < 5:
        return None
    q1, q3 = np.percentile(v, [25, 75])
    iqr = max(q3 - q1, 1e-12)
    keep = v[(v >= q1 - k * iqr) & (v <= q3 + k * iqr)]
    if keep.size == v.size:
        return None
    lo, hi = float(keep.min()), float(keep.max())
    pad = 0.05 * max(hi - lo, 1e-6)
    return lo - pad, hi + pad


def phase_switches(history: dict[str, Any]) -> list[int]:
    """The epochs (1-based) at which a new phase really started: a recorded boundary with another phase on each side."""
    ep = history.get("epochs", [])
    by_epoch = {e["epoch"]: e.get("phase") for e in ep}
    return [b for b in history.get("phase_boundaries", []) if b in by_epoch and b - 1 in by_epoch and by_epoch[b] != by_epoch[b - 1]]


def _clip_axis(ax, x, series: dict[str, list], key: str) -> str:
    """Clip ``ax``'s y-axis to a robust range when a few points would squash the rest; the off-chart points as triangles at the edge."""
    lim = robust_limits([v for ys in series.values() for v in ys])
    if lim is None:
        return ""
    lo, hi = lim
    ax.set_ylim(lo, hi)
    out = []
    for name, ys in series.items():
        for xi, yi in zip(x, ys):
            if yi is not None and np.isfinite(yi) and not lo <= yi <= hi:
                edge = hi if yi > hi else lo
                ax.plot([xi], [edge], "^" if yi > hi else "v", color="red", ms=8, clip_on=False, zorder=5)
                out.append(f"{name} {yi:.3g} at epoch {xi}")
    shown = "; ".join(out[:3]) + (f"; {len(out) - 3} more" if len(out) > 3 else "")
    note = f"y-axis clipped to {lo:.3g}..{hi:.3g} (3 IQR beyond the quartiles)\noff the chart (red triangles): {shown}"
    ax.text(0.5, -0.2, note, transform=ax.transAxes, fontsize=7.5, color="red", ha="center", va="top")
    return note.replace("\n", "; ")


def plot_curves(history: dict[str, Any], path: str) -> list[str]:
    """Loss and accuracy per epoch (train and val), a dashed line where a two-phase run switched phase, a dotted one at the best epoch.

    A y-axis that a few far outliers (an early spike of validation loss) would squash is clipped to a robust range
    (:func:`robust_limits`); the plot says so and marks the points left out.  Returns those notes (empty if none).
    """
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    ep = history.get("epochs", [])
    x = [e["epoch"] for e in ep]
    by_epoch = {e["epoch"]: e for e in ep}
    switches = phase_switches(history)
    best = history.get("best_epoch")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    notes = []
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        series = {f"train {title}": [e.get(f"train_{key}") for e in ep], f"val {title}": [e.get(f"val_{key}") for e in ep]}
        ax.plot(x, series[f"train {title}"], "o-", label="train")
        ax.plot(x, series[f"val {title}"], "o-", label="val")
        note = _clip_axis(ax, x, series, key)
        if note:
            notes.append(note)
        for b in switches:
            ax.axvline(b - 0.5, color="gray", ls="--", lw=1, label=f"{by_epoch[b]['phase']} from epoch {b}")
        if best:
            ax.axvline(best, color="green", ls=":", lw=1, label=f"best epoch {best}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    phases = " -> ".join(dict.fromkeys(e.get("phase", "") for e in ep if e.get("phase")))
    fig.suptitle(f"{history.get('model', '')}: best epoch {best}" + (f"; phase {phases}" if phases else ""))
    _save(fig, path)
    plt.close(fig)
    return notes


def plot_confusion(cm: np.ndarray, class_names: list[str], path: str) -> None:
    plt = _plt()
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.5, 1.2 * k + 2))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), class_names)
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    hi = cm.max() if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color="white" if cm[i, j] > hi / 2 else "black")
    acc = np.trace(cm) / max(1, cm.sum())
    ax.set_title(f"confusion matrix (accuracy {acc:.3f}, n={int(cm.sum())})")
    _save(fig, path)
    plt.close(fig)


def model_crop(img: np.ndarray, cfg, side: int) -> np.ndarray:
    """The part of ``img`` the model sees (its centre crop after the resize, :mod:`models.preprocess`), as a ``side`` px square."""
    import cv2

    from pawlens.models.preprocess import crop_box, resized_shape

    h, w = img.shape[:2]
    nh, nw = resized_shape(h, w, cfg)
    y0, x0 = crop_box(nh, nw, cfg.input_size)
    sy, sx = h / nh, w / nw
    c = img[round(y0 * sy): max(round(y0 * sy) + 1, round((y0 + cfg.input_size) * sy)),
            round(x0 * sx): max(round(x0 * sx) + 1, round((x0 + cfg.input_size) * sx))]
    interp = cv2.INTER_AREA if max(c.shape[:2]) > side else cv2.INTER_LINEAR
    return cv2.resize(c, (side, side), interpolation=interp)


def plot_errors(items: list[tuple[str, str, str, float]], path: str, *, n_wrong: int, preprocess=None, size: int = 128) -> None:
    """A grid of (path, true, predicted, confidence), most confident first; a note when nothing was wrong.

    Each tile is the crop the model saw (``preprocess``; a centre square when it is ``None``), all tiles the same size.
    """
    from pawlens.errors import ImageError
    from pawlens.models.preprocess import PreprocessConfig, load_image

    plt = _plt()
    if not items:
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
        _save(fig, path)
        plt.close(fig)
        return
    cfg = preprocess or PreprocessConfig.for_size(size)
    side = max(96, min(256, cfg.input_size * 2))
    cols = min(4, len(items))
    rows = (len(items) + cols - 1) // cols
    tile, cap, head = 2.4, 0.42, 0.5  # inches: the image, its two-line caption, the figure title
    fig = plt.figure(figsize=(tile * cols, (tile + cap) * rows + head))
    H = (tile + cap) * rows + head
    for k, (p, t, pr, c) in enumerate(items):
        r, col = divmod(k, cols)
        bottom = H - head - (r + 1) * (tile + cap)
        ax = fig.add_axes((col / cols + 0.01 / cols, bottom / H, 0.98 / cols, tile / H))
        ax.axis("off")
        try:
            ax.imshow(model_crop(load_image(p), cfg, side))
        except ImageError:
            ax.imshow(np.full((side, side, 3), 235, np.uint8))
            ax.text(0.5, 0.5, "(unreadable)", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"true {t}, pred {pr} {c:.2f}\n{printable(os.path.basename(p))[:28]}", fontsize=8)
    fig.suptitle(f"most confidently wrong: {len(items)} of {n_wrong} errors (the {cfg.input_size} px centre crop each was classified on)",
                 y=1 - 0.12 / H)
    _save(fig, path)
    plt.close(fig)
