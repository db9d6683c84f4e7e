"""The demo's stages as library calls: train -> evaluate -> export -> parity -> tune -> bench -> CAM grid -> report.

The tune stage measures the deployed artifact's configurations on this machine (:func:`pawlens.bench.tune.tune`, a
short budget) and stores the winner, so ``--backend auto`` in the bench, the clips and the GUI the demo points to runs it.

Only :mod:`demo.cli` calls this; it imports every stage and nothing imports it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pawlens.document import Document
from pawlens.errors import PawlensError, WeightsError
from pawlens.runtime.formats import CHECKPOINT, ENGINE, ONNX

LOG = logging.getLogger("pawlens")


@dataclass
class DemoConfig:
    data: str | None
    out: str
    max_images: int | None = None
    models: list[str] = field(default_factory=lambda: ["baseline", "efficientnet_lite0", "resnet50"])
    img_size: int | None = None  # baseline; None: the product's default (models.baseline's train_defaults)
    epochs: int | None = None
    resnet_epochs: int = 3
    weights: str = "imagenet"
    clips: list[str] = field(default_factory=list)
    batch_size: int = 32
    formats: str = "onnx,fp16,int8"
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32])
    iters: int = 12
    bench_rounds: int = 5
    burst_ms: float = 200.0
    peers: bool = True
    cam_examples: int = 8
    seed: int = 42
    embedded_model: str = "resnet50"
    embedded_size: int = 224
    tune_budget_s: float = 15.0  # pawlens tune of the deployed artifact (0: skip)


def run_demo(cfg: DemoConfig, stages) -> dict[str, Any]:
    os.makedirs(cfg.out, exist_ok=True)
    if cfg.data:
        return _with_data(cfg, stages)
    return _embedded(cfg, stages)


# ----------------------------------------------------------------------------- with data


def _train_one(cfg: DemoConfig, name: str) -> tuple[Any, str]:
    """Train one model; returns (TrainResult, how its weights started), or (None, why it was not trained)."""
    from pawlens.train.loop import train

    base = dict(data=cfg.data, model=name, max_images=cfg.max_images, batch_size=cfg.batch_size, seed=cfg.seed, num_workers=2,
                out=os.path.join(cfg.out, "train", name), errors_grid=16)
    if name == "baseline":
        given = {k: v for k, v in (("img_size", cfg.img_size), ("epochs", cfg.epochs)) if v}
        return train({**base, **given, "weights": "none"}), "from scratch (random initialisation), the product's defaults"
    if name == "resnet50":
        # A from-scratch ResNet50 is a poor use of CPU minutes (0.63 test accuracy after 20 here): only with ImageNet weights.
        if cfg.weights in ("none", None):
            return None, "not trained: --weights none (a from-scratch ResNet50 is not worth the CPU time)"
        try:
            from pawlens.models.registry import create_model

            create_model("resnet50", weights=cfg.weights)  # downloads (or reads the local file) once, before any training
        except WeightsError as e:
            return None, f"not trained: no ImageNet weights ({str(e).split('] ', 1)[-1]})"
        start = "ImageNet weights (torchvision IMAGENET1K_V2)" if cfg.weights == "imagenet" else f"weights from {cfg.weights}"
        run = dict(base, epochs=cfg.resnet_epochs, head_epochs=1, weights=cfg.weights)
        return train(run), start + ": phase 1 head only (backbone frozen), phase 2 layer4 + head at differential learning rates"
    from pawlens.models.registry import model_info

    info = model_info(name)
    try:
        res = train(base)  # the product's own defaults for this model
    except WeightsError as e:
        return None, f"not trained: {str(e).split('] ', 1)[-1]}"
    c = res.config
    if info.pretrained and c.get("weights") != "none":
        return res, (f"ImageNet weights ({'from its package, offline' if name == 'efficientnet_lite0' else c.get('weights')}): phase 1 head "
                     f"only for {c['head_epochs']} epochs (lr {c['lr_head']:g}), phase 2 {', '.join(c['unfreeze'])} at lr "
                     f"{c['lr_backbone']:g}{' with BatchNorm frozen' if c.get('bn_frozen') else ''}")
    return res, "from scratch"


def _with_data(cfg: DemoConfig, stages) -> dict[str, Any]:
    from pawlens.train.data import load_split

    trained: dict[str, Any] = {}
    starts: dict[str, str] = {}
    seconds: dict[str, float] = {}
    import time

    for name in cfg.models:
        t0 = time.perf_counter()
        with stages(f"train {name}") as stage:
            res, starts[name] = _train_one(cfg, name)
            if res is None:
                stage.skip()
        if res is None:
            LOG.warning("[demo] %s %s", name, starts[name])
            continue
        trained[name], seconds[name] = res, time.perf_counter() - t0
    if not trained:
        raise PawlensError("[demo] no model could be trained: " + "; ".join(f"{n} {s}" for n, s in starts.items()))
    best_name = max(trained, key=lambda n: (trained[n].metrics.get("accuracy", 0.0), trained[n].metrics.get("macro_f1", 0.0)))
    best = trained[best_name]
    spec = load_split(os.path.join(best.out_dir, "split.json"))
    test_paths = [p for p, _ in spec.splits["test"]]
    train_paths = [p for p, _ in spec.splits["train"]]
    calib = train_paths[:: max(1, len(train_paths) // 200)][:200]

    reports = {}
    for n in dict.fromkeys([best_name, "baseline"]):  # the deployed model, and the baseline beside it for the accuracy/latency view
        if n in trained:
            with stages(f"export {n}"):
                reports[n] = _export(cfg, trained[n].best_ckpt, parity=test_paths, calib=calib, name=n)
    rep = reports[best_name]
    deployed = _deployed(rep)
    _tune(cfg, deployed, stages)
    with stages("benchmark"):
        others = [n for n in reports if n != best_name]
        bench = _bench(cfg, best.best_ckpt, [rep] + [reports[n] for n in others], images=test_paths,
                       checkpoints=[trained[n].best_ckpt for n in others])
    with stages("clips"):
        clips = _clips(cfg, deployed)
    with stages("grad-cam examples"):
        grid = _cam_grid(cfg, best.best_ckpt, deployed, test_paths)
    with stages("report"):
        doc = _report_with_data(cfg, trained, starts, seconds, best_name, rep, bench, grid, clips, stages)
        md, html = doc.write(cfg.out)
    clip_ok = all(c["share"] >= 0.5 for c in clips)
    source = cfg.clips[0] if cfg.clips else (grid["rows"][0]["path"] if grid["rows"] else None)
    return {"report_md": md, "report_html": html, "gui_model": deployed, "reference": best.best_ckpt, "gui_source": source,
            "parity_ok": rep.exit_code == 0 and clip_ok, "best_model": best_name,
            "clips": {os.path.basename(c["path"]): round(c["share"], 4) for c in clips}}


# ----------------------------------------------------------------------------- embedded default


def _embedded(cfg: DemoConfig, stages) -> dict[str, Any]:
    import torch

    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.models.registry import create_model
    from pawlens.synthetic import write_image_folder

    with stages("build embedded default"):
        torch.manual_seed(cfg.seed)
        arch = cfg.embedded_model
        model = create_model(arch, num_classes=2, weights="none")
        ckpt = save_checkpoint(os.path.join(cfg.out, "model", f"embedded_{arch}{CHECKPOINT}"), model=model, arch=arch,
                               class_names=["cat", "dog"], preprocess=PreprocessConfig.for_size(cfg.embedded_size),
                               train_config={"note": "embedded default: untrained, random weights (seed %d)" % cfg.seed})
        syn = write_image_folder(os.path.join(cfg.out, "synthetic"), n_per_class=16, size=max(64, cfg.embedded_size + 32), seed=cfg.seed)
    with stages("export embedded default"):
        rep = _export(cfg, ckpt, parity=syn, calib=syn)
    _tune(cfg, _deployed(rep), stages)
    with stages("benchmark"):
        bench = _bench(cfg, ckpt, rep, images=None)
    with stages("grad-cam examples"):
        from pawlens.models.preprocess import list_images

        grid = _cam_grid(cfg, ckpt, _deployed(rep), list_images(syn))
    with stages("report"):
        doc = _report_embedded(cfg, ckpt, rep, bench, grid, stages)
        md, html = doc.write(cfg.out)
    return {"report_md": md, "report_html": html, "gui_model": _deployed(rep), "reference": ckpt, "gui_source": syn,
            "parity_ok": rep.exit_code == 0}


# ----------------------------------------------------------------------------- shared stages


def _export(cfg: DemoConfig, ckpt: str, *, parity, calib, name: str = ""):
    from pawlens.export.pipeline import export_all

    return export_all(ckpt, formats=cfg.formats, out_dir=os.path.join(cfg.out, "export", name), parity_images=parity, calib=calib)


def _deployed(rep) -> str:
    """The artifact the GUI should open: the INT8 ONNX if it passed, else the fp32 ONNX."""
    for fmt in ("int8", "onnx"):
        a = rep.artifact(fmt)
        if a is not None and a.passed:
            return a.path
    a = rep.artifact("onnx")
    return a.path if a is not None else ""


def _tune(cfg: DemoConfig, deployed: str, stages) -> None:
    """Tune the deployed artifact here (batch 1, ``cfg.tune_budget_s``) and print what was stored; a failure is one warning
    (auto then keeps its static rule), never the demo's end."""
    from pawlens.bench.tune import stored_lines, tune

    with stages("tune deployed artifact") as stage:
        if not deployed or cfg.tune_budget_s <= 0:
            stage.skip()
            return
        try:
            res = tune(deployed, batch_sizes=[1], budget_s=cfg.tune_budget_s, progress=False)
        except PawlensError as e:
            LOG.warning("[demo] pawlens tune %s: %s; --backend auto keeps its static rule", os.path.basename(deployed), e)
            stage.skip()
            return
        for line in stored_lines(res)[:1] or res.notes[:1]:
            print(f"[demo] tuned {os.path.basename(deployed)}: {line}", flush=True)


def _bench(cfg: DemoConfig, ckpt: str, reps, images, checkpoints=()):
    from pawlens.bench.run import run_bench

    reps = reps if isinstance(reps, (list, tuple)) else [reps]
    models = [a.path for r in reps for a in r.artifacts if a.passed and a.path.endswith((ONNX, ENGINE)) and a.format != "fp16"]
    n = len(images) if isinstance(images, (list, tuple)) else 32
    return run_bench(ckpt, models, batch_sizes=cfg.batch_sizes, iters=cfg.iters, out=os.path.join(cfg.out, "bench"), images=images,
                     n_images=n, checkpoints=list(checkpoints), compile="off", latency_reference="resnet50", rounds=cfg.bench_rounds,
                     burst_ms=cfg.burst_ms, peers=cfg.peers)


def _clips(cfg: DemoConfig, model: str) -> list[dict[str, Any]]:
    """The deployed model on every frame of each clip; the clip's class is its file name (``cat.mp4``). Test data only."""
    from pawlens.runtime.predict import predict_sources

    out = []
    for path in cfg.clips:
        want = os.path.splitext(os.path.basename(path))[0].lower()
        results, info = predict_sources(model, [path], progress=False)
        ok = [r for r in results if r.status == "ok"]
        if not ok:
            out.append({"path": path, "class": want, "frames": 0, "right": 0, "share": 0.0, "backend": info.get("backend", "")})
            continue
        right = sum(r.label.lower() == want for r in ok)
        out.append({"path": path, "class": want, "frames": len(ok), "right": right, "share": right / len(ok),
                    "mean_conf": float(np.mean([r.probs.get(want, 0.0) for r in ok])), "backend": info.get("backend", "")})
    return out


def _cam_grid(cfg: DemoConfig, ckpt: str, deployed: str, paths: list[str]) -> dict[str, Any]:
    """Predictions of the deployed model beside Grad-CAM of the PyTorch reference, on a few photos."""
    from pawlens.errors import ImageError
    from pawlens.models.gradcam import overlay
    from pawlens.models.preprocess import load_image
    from pawlens.runtime.cam import CamExplainer
    from pawlens.runtime.factory import make_predictor

    n = cfg.cam_examples
    picks = paths[:: max(1, len(paths) // max(1, n))][:n]
    rows = []
    pred = make_predictor(deployed, backend="ort", device="cpu")
    with pred, CamExplainer(ckpt, device="cpu") as cam:
        for p in picks:
            try:
                img = load_image(p)
            except ImageError:
                continue
            d = pred.predict(img)
            c = cam.explain(img)
            rows.append({"path": p, "image": img, "overlay": overlay(img, c.heatmap, alpha=0.6), "deployed": d.label,
                         "deployed_conf": d.confidence, "reference": c.label, "reference_conf": float(c.probs[c.class_index]),
                         "cam_ms": c.ms, "true": os.path.basename(os.path.dirname(p))})
    out = os.path.join(cfg.out, "gradcam_grid.png")
    _plot_cam_grid(rows, out, os.path.basename(deployed))
    return {"png": out, "rows": [{k: v for k, v in r.items() if k not in ("image", "overlay")} for r in rows]}


def _plot_cam_grid(rows: list[dict], path: str, deployed_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(rows))
    cols = min(4, n)
    rws = (n + cols - 1) // cols
    fig, axes = plt.subplots(rws * 2, cols, figsize=(3.2 * cols, 3.3 * rws * 2), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, r in enumerate(rows):
        rr, cc = (i // cols) * 2, i % cols
        axes[rr][cc].imshow(r["image"])
        axes[rr][cc].set_title(f"{deployed_name}: {r['deployed']} {r['deployed_conf']:.0%}\n(true: {r['true']})", fontsize=8)
        axes[rr + 1][cc].imshow(r["overlay"])
        agree = "agrees" if r["reference"] == r["deployed"] else "DISAGREES"
        axes[rr + 1][cc].set_title(f"reference CAM: {r['reference']} {r['reference_conf']:.0%} ({agree})", fontsize=8,
                                   color="black" if agree == "agrees" else "crimson")
    fig.suptitle("Deployed model's prediction (top) and the PyTorch reference's Grad-CAM (bottom)", fontsize=10)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- report


def _rel(cfg: DemoConfig, path: str) -> str:
    return os.path.relpath(path, cfg.out)


def _stage_table(doc: Document, stages, level: str = "h2") -> None:
    (doc.h3 if level == "h3" else doc.h2)("Stage times")
    doc.table(["stage", "seconds", "status"], [[n, f"{t:.1f}", s] for n, t, s in stages.times])


def _parity_section(doc: Document, cfg: DemoConfig, rep, untrained: bool) -> None:
    doc.include(rep.to_document(), heading="Export and parity")
    doc.p(f"Full report: `{_rel(cfg, rep.parity_md)}` and `{_rel(cfg, rep.parity_json)}`. Exit code of the export stage: {rep.exit_code}.")
    doc.h3("What each gate means for this model")
    items = []
    for a in rep.artifacts:
        if a.parity is None:
            items.append(f"`{os.path.basename(a.path)}`: {a.status} {a.reason}")
            continue
        pr = a.parity.to_dict()
        ties = pr.get("near_ties")
        n = pr.get("n")
        base = (f"`{os.path.basename(a.path)}` ({a.precision}): {a.status}; max abs {pr.get('max_abs'):.3g}, "
                f"top-1 agreement {pr.get('top1_agreement'):.1%}")
        if untrained:
            base += (f". The model is untrained, so {ties} of {n} reference predictions are near ties and agreement on them says little; "
                     "the logit error (max abs, cosine) is what this gate really checks here")
        elif ties:
            base += (f" ({ties} of {n} reference predictions are near ties; a flip there counts as agreeing, raw agreement "
                     f"{pr.get('raw_top1_agreement'):.1%})")
        items.append(base)
    doc.bullets(items)


def _bench_section(doc: Document, cfg: DemoConfig, bench) -> None:
    from pawlens.bench.report import document

    doc.include(document(bench, appendix=False), heading="Latency, side by side")
    png = bench.files.get("png") if bench.files else None
    if png and os.path.exists(png):
        doc.img(_rel(cfg, png), "Latency (ms) and throughput (images/s) per backend and batch")
    pareto = bench.files.get("pareto") if bench.files else None
    if pareto and os.path.exists(pareto):
        doc.img(_rel(cfg, pareto), "Test accuracy against batch-1 latency, every model x precision x backend")


def _ship_table(doc: Document, cfg: DemoConfig, rep, bench, model: str | None = None) -> None:
    """What a user decides on: each artifact, its gate verdict and agreement, and its fastest backend at batch 1."""
    rows = []
    for a in rep.artifacts:
        if not a.requested and a.status not in ("passed", "failed"):
            continue
        name = os.path.basename(a.path)
        b1 = [r for r in bench.rows if r.batch == 1 and r.artifact == name and r.status == "ok" and r.p50_ms == r.p50_ms
              and r.within_gate is not False and (model is None or r.model == model)]  # a row outside the file's gate is no way to run it
        fastest = min(b1, key=lambda r: r.p50_ms, default=None)
        agree = a.parity.top1_agreement if a.parity is not None else None
        rows.append([f"`{_rel(cfg, a.path)}`" if a.path else a.format, a.precision, a.status,
                     f"{agree:.2%}" if agree is not None else "-", f"{fastest.p50_ms:.1f} ms" if fastest else "-",
                     fastest.label if fastest else "-"])
    doc.table(["artifact", "precision", "parity gate", "top-1 agreement (gate inputs)", "batch-1 latency", "fastest backend in its gate"], rows)


def _appendix(doc: Document, stages, bench=None) -> None:
    doc.h2("Appendix")
    _stage_table(doc, stages, level="h3")
    if bench is not None:
        from pawlens.bench.report import appendix_document

        doc.include(appendix_document(bench), heading="Appendix: the benchmark's goals, compute ceilings and method")


def _report_embedded(cfg: DemoConfig, ckpt: str, rep, bench, grid, stages) -> Document:
    doc = Document("Pawlens demo: embedded default")
    doc.p("**No photos were found and no training was done.** The model is the embedded default: an **untrained** 2-class "
          f"{cfg.embedded_model} (random weights) at {cfg.embedded_size} px. Its predictions mean nothing; its latency is that of "
          "any such network, and the parity gates still check that every exported artifact computes the same function as PyTorch. "
          "INT8 calibration and parity used 32 **synthetic images made by the demo** (orange discs and blue squares), "
          "not photos: they are labelled `cat`/`dog` only by folder name. Run `pawlens-demo --data DIR` with cat/dog photos "
          "for the real job.")
    doc.p(f"Checkpoint: `{_rel(cfg, ckpt)}`.")
    _ship_table(doc, cfg, rep, bench)
    _parity_section(doc, cfg, rep, untrained=True)
    _bench_section(doc, cfg, bench)
    doc.h2("Grad-CAM examples")
    doc.p("On synthetic images and an untrained model the heat maps show where random filters respond, nothing more.")
    doc.img(_rel(cfg, grid["png"]), "Deployed model's prediction and the reference model's Grad-CAM")
    _next_steps(doc, rep, ckpt, os.path.dirname(grid["rows"][0]["path"]) if grid["rows"] else None)
    _appendix(doc, stages, bench)
    return doc


def _images_seen(r) -> int:
    return int(sum(e.get("train_images", 0) for e in r.history.get("epochs", [])))


def _report_with_data(cfg: DemoConfig, trained: dict, starts: dict, seconds: dict, best_name: str, rep, bench, grid, clips,
                      stages) -> Document:
    doc = Document("Pawlens demo: from scratch vs. transfer learning")
    best = trained[best_name]
    deployed = _deployed(rep)
    b1 = [r for r in bench.rows if r.batch == 1 and r.artifact == os.path.basename(deployed) and r.model == bench.settings.get("model")]
    fastest = min((r for r in b1 if r.p50_ms == r.p50_ms), key=lambda r: r.p50_ms, default=None)
    lines = [f"**Deployed: `{_rel(cfg, deployed)}`** ({best_name}, test accuracy {best.metrics['accuracy']:.2%}, macro F1 "
             f"{best.metrics['macro_f1']:.3f})" + (f", {fastest.p50_ms:.1f} ms per image at batch 1 with {fastest.label}." if fastest else ".")]
    for c in clips:
        verdict = "FAILED: the deployed model gets this clip mostly wrong" if c["share"] < 0.5 else (
            "below the 90% goal" if c["share"] < 0.9 else "ok")
        lines.append(f"Clip `{os.path.basename(c['path'])}` ({c['class']}): {c['right']} of {c['frames']} frames labelled {c['class']} "
                     f"({c['share']:.1%}) - {verdict}.")
    if rep.exit_code != 0:
        lines.append(f"**An export parity gate failed** (exit code {rep.exit_code}); see Export and parity.")
    for n, why in starts.items():  # one short line each here; the reason in full is in the bullets under the table
        if n not in trained:
            lines.append(f"{n}: {why.split(' (')[0]} (why: under From scratch vs. transfer learning).")
    doc.p("  \n".join(lines))
    doc.p(f"Data: `{cfg.data}`{f', capped at {cfg.max_images} images (stratified)' if cfg.max_images else ''}, split 70/15/15 by seed "
          f"{cfg.seed}. The clips are test data only: no model was trained, calibrated or chosen on them.")
    doc.h2("From scratch vs. transfer learning (test split)")
    rows = []
    for n, r in trained.items():
        m = r.metrics
        rows.append([n, starts[n].split(":")[0], m.get("accuracy"), m.get("macro_f1"), len(r.history.get("epochs", [])),
                     f"{seconds[n] / 60:.1f} min", f"{_images_seen(r):,}", r.config.get("img_size"), m.get("n")])
    doc.table(["model", "started from", "accuracy", "macro F1", "epochs", "training time", "images seen", "input px", "test images"], rows)
    doc.bullets([f"**{n}**: {s}" for n, s in starts.items()])
    if len(trained) > 1:
        doc.p(f"Exported and deployed: **{best_name}** (the higher test accuracy, macro F1 breaking ties).")
    doc.h2(f"The artifacts to ship ({best_name})")
    _ship_table(doc, cfg, rep, bench, model=bench.settings.get("model"))
    doc.h2("Each model on the test split")
    for n, r in trained.items():
        doc.h3(f"{n}")
        pc = r.metrics.get("per_class", {})
        doc.table(["class", "precision", "recall", "F1"], [[c, v.get("precision"), v.get("recall"), v.get("f1")] for c, v in pc.items()])
        for f, cap in (("curves.png", "training curves"), ("confusion_matrix.png", "confusion matrix (test split)"),
                       ("errors.png", "most confidently wrong test images")):
            p = os.path.join(r.out_dir, f)
            if os.path.exists(p):
                doc.img(_rel(cfg, p), f"{n}: {cap}")
    if clips:
        doc.h2("The deployed model on the clips")
        doc.table(["clip", "class", "frames", "labelled right", "share", "mean probability of the class", "backend"],
                  [[os.path.basename(c["path"]), c["class"], c["frames"], c["right"], f"{c['share']:.1%}", c.get("mean_conf"), c["backend"]]
                   for c in clips])
    _parity_section(doc, cfg, rep, untrained=False)
    _bench_section(doc, cfg, bench)
    doc.h2("Grad-CAM examples")
    agree = sum(r["reference"] == r["deployed"] for r in grid["rows"])
    from pawlens.models.registry import model_info

    doc.p(f"Top: the deployed artifact's prediction. Bottom: where the PyTorch reference looks (Grad-CAM on "
          f"`{model_info(best.config['model']).cam_layer}`). They agree on {agree} of {len(grid['rows'])} photos; "
          "a disagreement is marked rather than passing one model's reasons off as the other's.")
    doc.img(_rel(cfg, grid["png"]), "Deployed model's prediction and the reference model's Grad-CAM")
    _next_steps(doc, rep, best.best_ckpt, cfg.clips[0] if cfg.clips else (grid["rows"][0]["path"] if grid["rows"] else None))
    _appendix(doc, stages, bench)
    return doc


def gui_command(model: str, reference: str | None, source: str | None) -> str:
    """One ``pawlens-gui`` command that can be pasted as it is: absolute, shell-quoted paths, a source to show."""
    import shlex

    parts = ["pawlens-gui", "--model", model] + (["--reference", reference] if reference else []) + (["--source", source] if source else [])
    return " ".join(shlex.quote(os.path.abspath(p)) if i > 1 and parts[i - 1].startswith("--") else p for i, p in enumerate(parts))


def _next_steps(doc: Document, rep, ckpt: str, source: str | None) -> None:
    doc.h2("Next")
    doc.p("Watch the deployed model live, with the reference's Grad-CAM over it (any image, video, folder or camera index as `--source`):")
    doc.code(gui_command(_deployed(rep), ckpt, source))


__all__ = ["DemoConfig", "run_demo", "gui_command", "PawlensError"]
