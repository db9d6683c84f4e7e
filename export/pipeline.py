"""The export pipeline: checkpoint -> ONNX / FP16 ONNX / INT8 ONNX / TensorRT engine, each gated against PyTorch.

    report = export_all("runs/train/x/best.pt", out_dir="runs/export/best", parity_images="data/val", calib="data/calib")
    report.exit_code            # 0 all passed, 1 a gate failed, 2 TensorRT asked for but unavailable
    report.artifact("int8").parity.summary()

Outputs in ``out_dir``, named from the checkpoint's stem: ``<stem>.onnx``, ``<stem>.fp16.onnx``,
``<stem>.int8.onnx``, ``<stem>.fp16.engine`` (+ ``.json`` sidecar, + ``<stem>.fp16.timing.cache``), and
``parity.json`` + ``parity.md`` with one row per artifact.  An artifact that fails its gate is renamed
``<file>.failed`` so nothing loads it by its usual name.

Parity inputs are the real images (``parity_images``; labels from class-named folders, or Kaggle-style
``cat.123.jpg`` names) preprocessed exactly as the runtime does, plus a few random tensors; the
reference is the checkpoint in PyTorch fp32 on CPU, run once and compared with every artifact
(:mod:`runtime.compare`).  INT8 calibration uses ``calib`` images, else the parity images (then the
INT8 parity is not independent of the calibration, and the report says so); with neither it refuses.

Interrupt-safe and exclusive: the export holds a lock in ``out_dir`` (:data:`LOCK_NAME`, ``flock``; a second export
into the folder gets OutputError at once), builds and gates each artifact in a staging folder ``.export.tmp-<PID>``
and renames it into place only once it has passed (a previous good file stays until then), and rewrites
``parity.json`` after every step (rows name only files that exist; a previous export's files it did not replace are
listed under ``kept``).  Temporaries of killed runs (``*.tmp-<PID>``, PID not running) are removed first.

Existing artifacts are never silently reused: by default every requested file is rebuilt (a file made
from another checkpoint, by the sha256 in its metadata, is reported as replaced); with ``reuse=True`` an
ONNX file whose metadata shows the same checkpoint sha256 and export options is kept, and still gated.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import shutil
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from pawlens.models.console import FolderLock, atomic_write_text, ensure_writable_dir, remove_stale_temps, sha256_file
from pawlens.models.errors import ArtifactError, BackendUnavailable, DataError, ImageError, InputError, ParityError
from pawlens.runtime.compare import Gate, ParityResult, compare_logits, default_gate, markdown_table, run_batches

LOG = logging.getLogger("pawlens")

FORMATS = ("onnx", "fp16", "int8", "trt")
PRECISION = {"onnx": "fp32", "fp16": "fp16", "int8": "int8", "trt": "fp16"}
SUFFIX = {"onnx": ".onnx", "fp16": ".fp16.onnx", "int8": ".int8.onnx", "trt": ".fp16.engine"}
DEFAULT_FORMATS = ("onnx", "fp16", "int8")
LOCK_NAME = ".pawlens-export.lock"
#: Test hook (fault injection), not a user option: ``PAWLENS_TEST_FAULT=<point>[:INT|KILL]`` sends this process
#: SIGKILL (default) or SIGINT when the export reaches ``<point>``: ``reference``, ``built:<fmt>`` (built, not gated),
#: ``gate:<fmt>`` (candidate run, verdict not yet taken), ``done:<fmt>`` (its outcome written to parity.json).
FAULT_ENV = "PAWLENS_TEST_FAULT"


def fault_point(name: str) -> None:
    """Kill or interrupt this process here if :data:`FAULT_ENV` names this point (tests only; see above)."""
    want = os.environ.get(FAULT_ENV)
    if not want:
        return
    point, _, sig = want.rpartition(":") if want.endswith((":INT", ":KILL")) else (want, "", "KILL")
    if point == name:
        os.kill(os.getpid(), signal.SIGINT if sig == "INT" else signal.SIGKILL)
        time.sleep(5)  # SIGINT: the KeyboardInterrupt is raised here


def parse_formats(formats: str | Sequence[str]) -> list[str]:
    """``"onnx,int8"`` or a list -> canonical order; InputError naming the valid choices for an unknown name."""
    items = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if str(f).strip()]
    if "all" in items:
        items = list(FORMATS)
    bad = [f for f in items if f not in FORMATS]
    if bad:
        raise InputError(f"unknown format(s) {', '.join(map(repr, bad))} in --formats; choose from: {', '.join(FORMATS)} (or all)")
    if not items:
        raise InputError(f"--formats is empty; choose from: {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in items]


def artifact_paths(out_dir: str, stem: str) -> dict[str, str]:
    return {f: os.path.join(out_dir, stem + SUFFIX[f]) for f in FORMATS}


# ----------------------------------------------------------------------------- inputs


def resolve_images(source: str | os.PathLike | Sequence[str], what: str) -> list[str]:
    """A folder (searched recursively) or a list of image paths -> sorted list of paths; DataError if none."""
    from pawlens.models.preprocess import list_images

    if isinstance(source, (str, os.PathLike)):
        src = os.fspath(source)
        if os.path.isfile(src):
            return [src]
        if not os.path.isdir(src):
            raise DataError(f"{src}: {what} folder not found")
        paths = list_images(src)
        if not paths:
            raise DataError(f"{src}: no image files (.jpg, .png, ...) in the {what} folder")
        return paths
    paths = [os.fspath(p) for p in source]
    if not paths:
        raise DataError(f"the {what} image list is empty")
    return paths


def load_images(paths: Sequence[str], cfg, class_names: Sequence[str], *, what: str, max_images: int | None = None,
                folder: str = "") -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Load + preprocess images exactly as the runtime does (unreadable files are skipped and listed).

    Returns:
        ``(x, labels, used_paths, skipped)``; ``labels`` is ``-1`` where the class is unknown.

    Raises:
        DataError: none of the files could be read.
    """
    from pawlens.models.preprocess import label_from_path, load_image, preprocess_numpy

    paths = list(paths)
    if max_images and len(paths) > max_images:  # evenly spread, deterministic
        idx = np.linspace(0, len(paths) - 1, int(max_images)).round().astype(int)
        paths = [paths[i] for i in sorted(set(idx.tolist()))]
    xs, labels, used, skipped = [], [], [], []
    for p in paths:
        try:
            x = preprocess_numpy(load_image(p), cfg)[0]  # both can refuse one image (a strip): skipped, never fatal
        except ImageError as e:
            skipped.append(str(e) if p in str(e) else f"{p}: {e}")
            continue
        xs.append(x)
        labels.append(label_from_path(p, class_names))
        used.append(p)
    if not xs:
        where = folder or (os.path.dirname(paths[0]) if paths else "?")
        raise DataError(f"{where}: none of the {len(paths)} {what} image files could be read (e.g. {skipped[0] if skipped else '-'})")
    if skipped:
        LOG.warning("[%s] skipped %d unreadable image(s), e.g. %s", what, len(skipped), skipped[0])
    return np.stack(xs).astype(np.float32), np.asarray(labels, dtype=np.int64), used, skipped


# ----------------------------------------------------------------------------- report


@dataclass
class ArtifactResult:
    """One artifact of an export run."""

    format: str
    path: str
    precision: str
    status: str  # passed | failed | skipped | unavailable | interrupted (pending while it is being built)
    reason: str = ""
    seconds: float = 0.0  # building it
    parity_seconds: float = 0.0  # running it on the parity inputs
    parity: ParityResult | None = None
    requested: bool = True
    reused: bool = False
    size_bytes: int | None = None
    sha256: str | None = None  # of the file, once it passed
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        # Never name a file that is not there, nor a file this row did not make (e.g. a kept one of an unavailable format).
        there = self.status in ("passed", "failed") and bool(self.path) and os.path.exists(self.path)
        return {
            "format": self.format, "path": self.path if there else None, "file": os.path.basename(self.path) if there else None,
            "sha256": self.sha256 if there else None, "precision": self.precision,
            "status": self.status, "reason": self.reason, "seconds": round(self.seconds, 3),
            "parity_seconds": round(self.parity_seconds, 3), "requested": self.requested, "reused": self.reused,
            "size_bytes": self.size_bytes, "info": self.info, "parity": self.parity.to_dict() if self.parity else None,
        }


@dataclass
class ExportReport:
    checkpoint: str
    source_sha256: str
    out_dir: str
    artifacts: list[ArtifactResult]
    inputs: dict[str, Any]
    gates: dict[str, Gate]
    seconds: float = 0.0
    reference_seconds: float = 0.0
    parity_json: str = ""
    parity_md: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    kept: list[dict[str, Any]] = field(default_factory=list)  # rows of a previous export whose files are still here
    interrupted: bool = False

    def artifact(self, fmt: str) -> ArtifactResult | None:
        return next((a for a in self.artifacts if a.format == fmt), None)

    @property
    def exit_code(self) -> int:
        """1 if any artifact failed its gate (or its build), else 2 if a requested backend was unavailable, else 0."""
        if any(a.status == "failed" for a in self.artifacts):
            return 1
        if any(a.status == "unavailable" and a.requested for a in self.artifacts):
            return 2
        if any(a.status in ("skipped", "interrupted") and a.requested for a in self.artifacts):
            return 1
        return 0

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint, "source_sha256": self.source_sha256, "out_dir": self.out_dir,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "exit_code": self.exit_code,
            "seconds": round(self.seconds, 2), "reference_seconds": round(self.reference_seconds, 2), "inputs": self.inputs,
            "gates": {k: g.to_dict() for k, g in self.gates.items()}, "environment": self.environment,
            "interrupted": self.interrupted, "artifacts": [a.to_dict() for a in self.artifacts],
            "kept": [k for k in self.kept if os.path.exists(os.path.join(self.out_dir, k.get("file") or ""))],
        }

    def to_markdown(self) -> str:
        inp = self.inputs
        lines = [f"# Parity report: {os.path.basename(self.checkpoint)}", ""]
        lines.append(f"- checkpoint: `{self.checkpoint}` (sha256 `{self.source_sha256[:16]}...`), arch `{inp.get('arch')}`, "
                     f"classes {inp.get('class_names')}, input {inp.get('input_size')} px")
        lines.append(f"- parity inputs: {inp.get('n_real', 0)} real images from `{inp.get('parity_source') or '-'}` "
                     f"({inp.get('n_labeled', 0)} labelled), {inp.get('n_random', 0)} random tensors; "
                     "reference: PyTorch fp32 on CPU (TorchRunner)")
        if inp.get("calib_source"):
            lines.append(f"- int8 calibration: {inp.get('n_calib')} images from `{inp.get('calib_source')}`"
                         + (f" ({inp.get('calib_overlap')} of them are parity images: the INT8 figures are not independent of calibration)"
                            if inp.get("calib_is_parity") else " (disjoint from the parity images)"))
        lines.append(f"- exit code: {self.exit_code}; total {self.seconds:.1f} s (reference run {self.reference_seconds:.1f} s)")
        lines.append("")
        gated = [a for a in self.artifacts if a.parity is not None]
        if gated:
            lines.append(markdown_table([a.parity for a in gated], [os.path.basename(a.path) for a in gated]).rstrip("\n"))
            lines.append("")
        lines.append("| step | file | status | build s | parity s | size | notes |")
        lines.append("|---|---|---|---|---|---|---|")
        for a in self.artifacts:
            size = "-" if a.size_bytes is None else f"{a.size_bytes / 1e6:.1f} MB"
            note = a.reason + (" (reused)" if a.reused else "") + ("" if a.requested else " (built as a source of the others)")
            lines.append(f"| {a.format} | {os.path.basename(a.path)} | {a.status} | {a.seconds:.2f} | {a.parity_seconds:.2f} | {size} | "
                         f"{note.strip().replace('|', '/')} |")
        if self.interrupted:
            lines.append("")
            lines.append("**This export was interrupted**: the rows above are what it finished; nothing else was written.")
        kept = self.to_dict()["kept"]
        if kept:
            lines.append("")
            lines.append("Kept from a previous export (not rebuilt by this one): " + ", ".join(
                f"`{k['file']}` ({k.get('status')}, checkpoint sha256 `{str(k.get('source_sha256') or '?')[:12]}...`)" for k in kept))
        lines.append("")
        lines.append("## What the figures mean here")
        lines.append("")
        lines.append("Each figure is shown with its gate beside it: `measured (<= limit) ok|FAIL`; a figure without a limit is "
                     "reported, not gated. Max rel is per sample, relative to the sample's largest reference logit. A near tie "
                     "is a sample whose reference top-1/top-2 logit margin is below the tie margin; a disagreement there is not "
                     "held against the candidate (the error size is gated by max abs).")
        lines.append("")
        for a in gated:
            for k, v in a.parity.notes.items():
                if v:
                    lines.append(f"- {os.path.basename(a.path)}, {k}: {v}")
        lines.append("")
        lines.append("Gates: " + "; ".join(f"{p}: " + ", ".join(f"{k}={v}" for k, v in g.to_dict().items() if v is not None)
                                           for p, g in self.gates.items()))
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        self.parity_json = os.path.join(self.out_dir, "parity.json")
        self.parity_md = os.path.join(self.out_dir, "parity.md")
        atomic_write_text(self.parity_json, json.dumps(self.to_dict(), indent=2) + "\n")
        atomic_write_text(self.parity_md, self.to_markdown())


# ----------------------------------------------------------------------------- progress


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.bar = None
        self.i = 0
        self.total = total
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", desc="export", disable=None, leave=False)

    def start(self, desc: str) -> None:
        self.i += 1
        if self.bar is not None:
            self.bar.set_description(f"[{self.i}/{self.total}] {desc}")

    def done(self, msg: str, level: int = logging.INFO) -> None:
        line = f"[{self.i}/{self.total}] {msg}"
        if self.bar is not None and not self.bar.disable:
            self.bar.write(line)
            self.bar.update(1)
        else:
            LOG.log(level, line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------- pipeline


def _with_sidecar(path: str) -> list[str]:
    return [path, path + ".json"] if path.endswith((".engine", ".engine.failed", ".engine.unverified")) else [path]


def _remove(path: str) -> None:
    for p in _with_sidecar(path):
        if os.path.exists(p):
            os.remove(p)


def _move(src: str, dst: str) -> None:
    """Rename ``src`` (and an engine's ``.json`` sidecar, first, so an engine never sits without its sidecar) to ``dst``."""
    if src.endswith(".engine") and os.path.exists(src + ".json"):
        os.replace(src + ".json", dst + ".json")
    os.replace(src, dst)


def _promote(staged: str, final: str) -> None:
    """Put a gated artifact under its loadable name: one atomic rename over the previous file (kept until now)."""
    _move(staged, final)


def _mark_failed(path: str, bad: str | None = None) -> str:
    """Rename a failed artifact (and an engine's sidecar) to ``*.failed``; returns the new path."""
    if not os.path.exists(path):
        return path
    bad = bad or path + ".failed"
    if path.endswith(".engine") and os.path.exists(path + ".json"):
        os.replace(path + ".json", bad + ".json")
    os.replace(path, bad)
    return bad


def _keep_failed(staged: str, final: str) -> str:
    """After a build error: what it left in the staging folder (e.g. TensorRT's ``.failed``) goes to ``<final>.failed``."""
    for src in (staged + ".failed", staged):
        if os.path.exists(src):
            bad = final + ".failed"
            if os.path.exists(src + ".json"):
                os.replace(src + ".json", bad + ".json")
            os.replace(src, bad)
            return bad
    return ""  # nothing was written (the previous file, if any, is still there and not this row's)


def _carry_over(out: str, paths: dict[str, str]) -> list[dict[str, Any]]:
    """Rows of the previous ``parity.json`` for artifacts still in ``out`` that passed their gate (sha256 or size matches).

    A file under a loadable name that no previous row shows as passed (left by an export killed before this version
    gated under temporary names, or copied in) is renamed ``<file>.unverified``: nothing may load an ungated artifact.
    """
    old: dict[str, dict[str, Any]] = {}
    try:
        with open(os.path.join(out, "parity.json")) as f:
            doc = json.load(f)
        for row in list(doc.get("artifacts") or []) + list(doc.get("kept") or []):
            if isinstance(row, dict) and row.get("status") == "passed" and row.get("file"):
                old.setdefault(row["file"], dict(row, source_sha256=row.get("source_sha256") or doc.get("source_sha256")))
    except (OSError, ValueError, AttributeError):
        pass
    kept = []
    for fmt, path in paths.items():
        if not os.path.exists(path):
            continue
        row = old.get(os.path.basename(path))
        ok = row is not None and row.get("format") == fmt and (
            row.get("sha256") == sha256_file(path) if row.get("sha256") else row.get("size_bytes") == os.path.getsize(path))
        if fmt == "trt":
            ok = ok and os.path.exists(path + ".json")
        if ok:
            kept.append(dict(row, kept=True, reason="kept from a previous export; not rebuilt by this one"))
        else:
            bad = path + ".unverified"
            _mark_failed(path, bad)
            LOG.warning("[export] %s has no passed gate on record (left by an interrupted export?); renamed to %s",
                        os.path.basename(path), os.path.basename(bad))
    return kept


def _existing_sha(path: str) -> tuple[str | None, dict[str, Any]]:
    """(source_sha256, extra) stored in an existing ONNX file's metadata; (None, {}) if unreadable or foreign."""
    try:
        from .onnx import read_meta

        m = read_meta(path)
        return m.source_sha256, dict(m.extra)
    except Exception:
        return None, {}


def export_all(ckpt_path: str | os.PathLike, *, formats: Sequence[str] | str = DEFAULT_FORMATS, out_dir: str | os.PathLike | None = None,
               parity_images: str | os.PathLike | Sequence[str] | None = None, calib: str | os.PathLike | Sequence[str] | np.ndarray | None = None,
               batch_max: int = 32, opset: int = 17, gates: dict[str, Gate] | None = None, progress: bool = True,
               exporter: str = "legacy", random_inputs: int = 4, seed: int = 0, calib_max: int = 500, parity_max: int | None = None,
               int8_activation: str = "U8", int8_weight: str = "S8", int8_method: str | None = None, per_channel: bool = True,
               int8_reduce_range: bool = True,
               batch_opt: int = 8, workspace_gb: float = 4.0, reuse: bool = False, batch_size: int = 8) -> ExportReport:
    """Build every requested artifact, gate each against PyTorch fp32, and write ``parity.json`` + ``parity.md``.

    Args:
        ckpt_path: the pawlens checkpoint.
        formats: any of ``onnx``, ``fp16``, ``int8``, ``trt`` (the fp32 ONNX is always built: the others come from it).
        out_dir: output folder (default ``runs/export/<stem>``).
        parity_images: a folder (class-named subfolders give labels) or a list of image paths.
        calib: INT8 calibration images (folder, list, or a preprocessed ``(N,3,S,S)`` array); default the parity images.
        batch_max: the engine profile's largest batch; batch_opt its optimum.
        opset, exporter: ONNX export options (:func:`export.onnx.export_onnx`).
        gates: ``{"fp32"|"fp16"|"int8": Gate}`` overriding :func:`runtime.compare.default_gate`.
        progress: show a progress bar and one line per step.
        random_inputs: random tensors added to the parity inputs (16 when there are no images).
        calib_max, parity_max: at most this many images (evenly spread) are used.
        int8_activation, int8_weight, int8_method, per_channel: :func:`export.quantize.quantize_int8` options
            (``int8_method`` None: the model's own, from its registry entry; minmax unless the entry says otherwise);
            ``int8_reduce_range``: 7-bit weights, correct on x86 CPUs without VNNI too (see :func:`export.quantize.quantize_int8`).
        workspace_gb: TensorRT builder workspace limit.
        reuse: keep an existing ONNX made from the same checkpoint with the same options (it is still gated).
        batch_size: parity inference batch size.

    Raises:
        InputError, CheckpointError, DataError, OutputError: bad input, before anything is written.
    """
    from pawlens.models.artifact import ArtifactMeta
    from pawlens.models.checkpoint import load_checkpoint

    t_start = time.perf_counter()
    fmts = parse_formats(formats)
    requested = set(fmts)
    if "onnx" not in fmts:
        fmts = ["onnx"] + fmts
    int8_opts = {"activation": int8_activation.upper(), "weight": int8_weight.upper(), "method": (int8_method or "minmax").lower(),
                 "per_channel": bool(per_channel), "reduce_range": bool(int8_reduce_range)}
    from .quantize import METHODS, QTYPES

    if int8_opts["activation"] not in QTYPES or int8_opts["weight"] not in QTYPES or int8_opts["method"] not in METHODS:
        raise InputError(f"int8 options {int8_opts}: types must be one of {', '.join(QTYPES)}, method one of {', '.join(METHODS)}")
    gates = dict(gates or {})
    all_gates = {p: gates.get(p, default_gate(p)) for p in ("fp32", "fp16", "int8")}
    if "trt" in requested:  # validate the profile before doing any work
        from .tensorrt import profile_shapes

        profile_shapes(16, 1, batch_opt, batch_max)

    ckpt_path = os.fspath(ckpt_path)
    ckpt = load_checkpoint(ckpt_path)
    if "int8" in requested and calib is None and parity_images is None:
        raise InputError("int8 needs calibration images: pass --calib DIR (a few hundred real photos) or --parity-data DIR; "
                         "refusing to calibrate on random noise")
    sha = sha256_file(ckpt_path)
    ckpt["sha256"] = sha
    meta = ArtifactMeta.from_checkpoint(ckpt, source_sha256=sha)
    cfg = meta.preprocess
    if int8_method is None:
        from pawlens.models.registry import list_models, model_info

        int8_opts["method"] = model_info(meta.arch).calib_method if meta.arch in list_models() else "minmax"
    stem = os.path.splitext(os.path.basename(ckpt_path))[0]
    out = ensure_writable_dir(out_dir or os.path.join("runs", "export", stem))
    paths = artifact_paths(out, stem)

    lock = FolderLock(out, LOCK_NAME, prog="pawlens-export").acquire()  # a second export into this folder fails here
    try:
        remove_stale_temps(out)
        # Parity inputs: real images (+ labels), then random tensors.
        inputs: dict[str, Any] = {"arch": meta.arch, "class_names": meta.class_names, "input_size": cfg.input_size}
        rng = np.random.default_rng(seed)
        if parity_images is not None:
            ppaths = resolve_images(parity_images, "parity")
            folder = os.fspath(parity_images) if isinstance(parity_images, (str, os.PathLike)) else ""
            x_real, labels_real, used, skipped = load_images(ppaths, cfg, meta.class_names, what="parity", max_images=parity_max, folder=folder)
            inputs.update(parity_source=folder or f"{len(ppaths)} listed files", n_real=len(used), n_labeled=int((labels_real >= 0).sum()),
                          n_skipped=len(skipped))
        else:
            x_real, labels_real, used = np.zeros((0, 3, cfg.input_size, cfg.input_size), np.float32), np.zeros(0, np.int64), []
            inputs.update(parity_source=None, n_real=0, n_labeled=0, n_skipped=0)
            random_inputs = max(int(random_inputs), 16)
            LOG.warning("[export] no --parity-data: parity is checked on %d random tensors only, which says little about real photos", random_inputs)
        n_rand = max(0, int(random_inputs))
        x_rand = rng.standard_normal((n_rand, 3, cfg.input_size, cfg.input_size)).astype(np.float32)
        x = np.concatenate([x_real, x_rand]) if n_rand else x_real
        labels = np.concatenate([labels_real, np.full(n_rand, -1, np.int64)])
        inputs["n_random"] = n_rand

        # Calibration data (int8 only).
        x_cal = None
        if "int8" in requested:
            if isinstance(calib, np.ndarray):
                x_cal, inputs["calib_source"] = calib.astype(np.float32, copy=False), "array"
            elif calib is not None:
                cpaths = resolve_images(calib, "calibration")
                x_cal, _l, cused, _s = load_images(cpaths, cfg, meta.class_names, what="calibration", max_images=calib_max,
                                                   folder=os.fspath(calib) if isinstance(calib, (str, os.PathLike)) else "")
                inputs["calib_source"] = os.fspath(calib) if isinstance(calib, (str, os.PathLike)) else f"{len(cpaths)} listed files"
                inputs["calib_overlap"] = len(set(cused) & set(used))
                inputs["calib_is_parity"] = inputs["calib_overlap"] > 0
            else:
                x_cal = x_real[: calib_max]
                inputs["calib_source"], inputs["calib_is_parity"], inputs["calib_overlap"] = inputs["parity_source"], True, len(x_cal)
                LOG.warning("[int8] no --calib: calibrating on the parity images, so the INT8 parity is not independent of calibration")
            inputs["n_calib"] = int(len(x_cal))

        environment = _environment()
        prog = _Progress(1 + len(fmts), progress)
        results: list[ArtifactResult] = []
        report = ExportReport(ckpt_path, sha, out, results, inputs, all_gates, environment=environment)
        report.kept = _carry_over(out, paths)
        for k in report.kept:
            if k.get("format") not in fmts and k.get("source_sha256") not in (None, sha):
                LOG.warning("[export] %s stays from an export of another checkpoint (sha256 %s...); add %s to --formats to rebuild it",
                            k["file"], str(k["source_sha256"])[:12], k["format"])
        stage = os.path.join(out, f".export.tmp-{os.getpid()}")  # built and gated here, renamed into place once passed
        os.makedirs(stage, exist_ok=True)
        completed = False
        try:
            # Reference: PyTorch fp32, once.
            from pawlens.runtime.torch_runner import TorchRunner

            prog.start("reference")
            t0 = time.perf_counter()
            ref = run_batches(TorchRunner(ckpt, name="torch-fp32"), x, batch_size)
            report.reference_seconds = time.perf_counter() - t0
            prog.done(f"reference: PyTorch fp32 on {len(x)} inputs ({inputs['n_real']} images, {n_rand} random) in {report.reference_seconds:.1f} s")
            fault_point("reference")

            def gate(res: ArtifactResult, runner) -> None:
                t1 = time.perf_counter()
                cand = run_batches(runner, x, batch_size)
                res.parity_seconds = time.perf_counter() - t1
                fault_point(f"gate:{res.format}")
                g = all_gates[res.precision]
                res.parity = compare_logits(ref, cand, labels=labels, gate=g, n_real=inputs["n_real"], name=os.path.basename(paths[res.format]),
                                            precision=res.precision)
                res.size_bytes = os.path.getsize(res.path)
                final = paths[res.format]
                if res.parity.passed:
                    res.status = "passed"
                    res.sha256 = sha256_file(res.path)
                    if res.path != final:
                        _promote(res.path, final)
                        res.path = final
                    if os.path.exists(final + ".failed"):
                        _remove(final + ".failed")
                else:
                    res.status = "failed"
                    bad = _mark_failed(res.path, final + ".failed")
                    res.reason = f"parity gate failed ({', '.join(c.name for c in res.parity.failed_checks)}); renamed to {os.path.basename(bad)}"
                    res.path = bad

            for fmt in fmts:
                path = paths[fmt]
                res = ArtifactResult(fmt, path, PRECISION[fmt], "pending", requested=fmt in requested)
                results.append(res)
                prog.start(fmt)
                src_ok = fmt == "onnx" or (results[0].status == "passed")
                if not src_ok:
                    res.status = "skipped"
                    res.reason = f"skipped: the fp32 ONNX it is made from failed ({results[0].reason})"
                    prog.done(f"{fmt}: {res.reason}", logging.WARNING)
                    report.write()
                    continue
                staged = os.path.join(stage, os.path.basename(path))
                try:
                    if fmt == "trt":
                        _step_trt(res, paths, staged, batch_opt, batch_max, workspace_gb, results)
                        if res.status == "unavailable":
                            prog.done("trt: unavailable (TensorRT or a GPU is missing; the reason is in the summary)", logging.WARNING)
                            report.write()
                            continue
                        from pawlens.runtime.trt_runner import TrtRunner

                        fault_point(f"built:{fmt}")
                        gate(res, TrtRunner(res.path))
                    else:
                        _step_onnx(res, fmt, ckpt, paths, staged, results[0].path, sha, reuse, opset, exporter, x_cal, int8_opts)
                        from pawlens.runtime.ort_runner import OrtRunner

                        fault_point(f"built:{fmt}")
                        gate(res, OrtRunner(res.path, device="cpu"))
                except (ArtifactError, ParityError) as e:
                    res.status, res.reason = "failed", str(e)
                    res.path = _mark_failed(path) if res.reused else _keep_failed(staged, path)
                except BackendUnavailable as e:
                    if fmt != "trt":
                        raise
                    res.status, res.reason = "unavailable", str(e)
                except ImportError as e:  # runtime.trt_runner missing: the engine cannot be gated
                    res.status, res.reason = "failed", f"cannot gate the engine: {e}"
                    res.path = _mark_failed(path) if res.reused else _keep_failed(staged, path)
                if res.status == "passed":
                    report.kept = [k for k in report.kept if k.get("format") != fmt]
                report.write()
                fault_point(f"done:{fmt}")
                verdict = res.parity.short_summary() if res.parity else res.reason
                built = "reused" if res.reused else f"built in {res.seconds:.1f} s"
                prog.done(f"{fmt}: {os.path.basename(res.path)} {built}; parity {verdict}",
                          logging.INFO if res.status == "passed" else logging.ERROR)
            completed = True
            # A finished run leaves, of each format it built, only what passed now: a previous file whose replacement
            # failed is retired rather than left beside artifacts of another checkpoint.
            for k in list(report.kept):
                if k.get("format") in {r.format for r in results}:
                    _remove(os.path.join(out, k["file"]))
                    report.kept.remove(k)
                    LOG.warning("[export] removed the previous %s: its replacement did not pass", k["file"])
        finally:
            prog.close()
            for r in results:
                if r.status == "pending":  # interrupted (Ctrl-C, an error): nothing was written under its name
                    r.status, r.reason = "interrupted", "interrupted before it passed its gate; nothing was written under its name"
            shutil.rmtree(stage, ignore_errors=True)
            report.seconds = time.perf_counter() - t_start
            report.interrupted = not completed
            report.write()
        return report
    finally:
        lock.release()


def _step_onnx(res: ArtifactResult, fmt: str, ckpt, paths, staged, src_onnx, sha, reuse, opset, exporter, x_cal, int8_opts) -> None:
    """Build ``fmt`` into ``staged`` (``res.path`` then points there), or reuse the gated file already in place."""
    from . import onnx as eo
    from .quantize import quantize_int8

    path = paths[fmt]
    if os.path.exists(path):
        old_sha, extra = _existing_sha(path)
        same_opts = {
            "onnx": extra.get("exporter") == exporter and extra.get("opset") == int(opset),
            "fp16": extra.get("exporter") == exporter and extra.get("opset") == int(opset),
            "int8": {k: (extra.get("int8") or {}).get(k) for k in int8_opts} == int8_opts,
        }[fmt]
        if reuse and old_sha == sha and same_opts:
            res.reused = True
            res.info["reuse"] = "same checkpoint sha256 and options"
            return
        if old_sha and old_sha != sha:
            LOG.warning("[export] replacing %s: it was exported from another checkpoint (sha256 %s..., this one %s...)",
                        os.path.basename(path), old_sha[:12], sha[:12])
            res.info["replaced_sha256"] = old_sha
    t0 = time.perf_counter()
    res.path = staged  # the previous file stays where it is until this one has passed
    if fmt == "onnx":
        eo.export_onnx(ckpt, staged, opset=opset, exporter=exporter)
    elif fmt == "fp16":
        eo.convert_fp16(src_onnx, staged)
    else:
        quantize_int8(src_onnx, staged, x_cal, per_channel=int8_opts["per_channel"], activation=int8_opts["activation"],
                      weight=int8_opts["weight"], method=int8_opts["method"], reduce_range=int8_opts["reduce_range"])
        res.info["int8"] = dict(int8_opts, calib_images=int(len(x_cal)))
    res.seconds = time.perf_counter() - t0


def _step_trt(res: ArtifactResult, paths, staged, batch_opt, batch_max, workspace_gb, results) -> None:
    from .tensorrt import build_engine, tensorrt_available, timing_cache_path

    ok, why = tensorrt_available()
    if not ok:
        res.status, res.reason = "unavailable", why
        return
    fp16 = next((r for r in results if r.format == "fp16" and r.status == "passed"), None)
    t0 = time.perf_counter()
    res.path = staged
    sidecar = build_engine(results[0].path, staged, fp16_onnx_path=fp16.path if fp16 else None, batch_opt=batch_opt, batch_max=batch_max,
                           workspace_gb=workspace_gb, timing_cache=timing_cache_path(paths["trt"]))
    res.seconds = time.perf_counter() - t0
    res.info.update({k: sidecar[k] for k in ("tensorrt_version", "gpu_name", "compute_capability", "build_mode", "precision_audit", "profile")})


def _environment() -> dict[str, Any]:
    import importlib.metadata as md

    env = {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor() or platform.machine()}
    for pkg in ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return env

