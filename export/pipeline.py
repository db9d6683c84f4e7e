"""The export pipeline: checkpoint -> ONNX / FP16 ONNX / INT8 ONNX / TensorRT engine, each gated against PyTorch.

    report = export_all("runs/train/baseline/best.pt")      # photos from the run's split.json -> runs/export/baseline
    report = export_all("runs/train/x/best.pt", out_dir="runs/export/best", parity_images="data/val", calib="data/calib")
    report.exit_code            # 0 all passed, 1 a gate failed, 2 TensorRT asked for but unavailable
    report.artifact("int8").parity.summary()
    doc.include(report.to_document())                        # parity.md as report blocks (pawlens.document)

Outputs in ``out_dir`` (default ``runs/export/<run name>``, the checkpoint's folder name), named from the checkpoint's
stem: ``<stem>.onnx``, ``<stem>.fp16.onnx``, ``<stem>.int8.onnx``, ``<stem>.fp16.engine`` (+ ``.json`` sidecar, +
``<stem>.fp16.timing.cache``), and ``parity.json`` + ``parity.md`` with one row per artifact.  A folder that already
holds outputs is never written into unless ``exist_ok``: the export takes the next free ``<folder>-2``, ``-3``, ...
(:func:`pawlens.fs.next_run_dir`, as training numbers its runs).  An artifact that fails its gate is renamed
``<file>.failed`` so nothing loads it by its usual name, and its row ends with the next step that would help
(:func:`next_step`); it never pushes aside a file that passed (with ``exist_ok``, that one stays, listed under ``kept``).

Parity inputs are the real images (``parity_images``; labels from class-named folders, or Kaggle-style
``cat.123.jpg`` names; default the test photos of the run's ``split.json``) preprocessed exactly as the runtime does,
plus a few random tensors; the reference is the checkpoint in PyTorch fp32 on CPU, run once and compared with every
artifact (:mod:`runtime.compare`).  INT8 calibration uses ``calib`` images (default the run's training photos), else
the parity images (then the INT8 parity is not independent of the calibration, and the report says so); with
neither it refuses, saying what to pass.

Interrupt-safe and exclusive: the export holds a lock in ``out_dir`` (:data:`LOCK_NAME`, ``flock``; a second export
into the folder gets OutputError at once), builds and gates each artifact in a staging folder ``.export.tmp-<PID>``
and renames it into place only once it has passed (a previous good file stays until then), and rewrites
``parity.json`` after every step (rows name only files that exist; a previous export's files it did not replace are
listed under ``kept``).  Temporaries of killed runs (``*.tmp-<PID>``, PID not running) are removed first.

Existing artifacts are never silently reused: by default every requested file is rebuilt (with ``exist_ok``, a file
made from another checkpoint, by the sha256 in its metadata, is reported as replaced); with ``reuse=True`` an
ONNX file whose metadata shows the same checkpoint sha256 and export options is kept, and still gated.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import platform
import shutil
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from pawlens.console import library_versions
from pawlens.errors import ArtifactError, BackendUnavailable, DataError, InputError, OutputError, ParityError
from pawlens.fs import FolderLock, atomic_write_text, ensure_writable_dir, holds_outputs, next_run_dir, remove_stale_temps, sha256_file
from pawlens.models.photos import split_entry
from pawlens.runtime.compare import Gate, ParityResult, compare_logits, default_gate, run_batches
from pawlens.runtime.formats import DEFAULT_EXPORT, EXPORT_FORMATS, by_key, gate_runner

LOG = logging.getLogger("pawlens")

#: The ``--formats`` names, in build order, and what each is (from :mod:`runtime.formats`, the one formats table).
FORMATS: tuple[str, ...] = EXPORT_FORMATS  # what --formats takes: the artifacts, then triton (a repository of those that passed)
ARTIFACTS: tuple[str, ...] = tuple(f for f in FORMATS if by_key(f).kind != "/")
PRECISION: dict[str, str] = {f: by_key(f).precision for f in ARTIFACTS}
SUFFIX: dict[str, str] = {f: by_key(f).suffix for f in ARTIFACTS}
SIDECAR: dict[str, str] = {f: by_key(f).sidecar for f in ARTIFACTS if by_key(f).sidecar}
DEFAULT_FORMATS: tuple[str, ...] = DEFAULT_EXPORT
EXPORT_ROOT = os.path.join("runs", "export")
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
    return {f: os.path.join(out_dir, stem + SUFFIX[f]) for f in ARTIFACTS}


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
    from pawlens.models.photos import sample_images, spread
    from pawlens.models.preprocess import preprocess_numpy

    paths = spread(paths, max_images)  # evenly spread, deterministic
    # loading and preprocessing can each refuse one image (a strip): skipped and listed, never fatal
    s = sample_images(paths, class_names, root=folder if folder and os.path.isdir(folder) else None,
                      prepare=lambda im: preprocess_numpy(im, cfg)[0])
    xs, labels, used, skipped = s.items, s.labels, s.used, s.skipped
    if not xs:
        where = folder or (os.path.dirname(paths[0]) if paths else "?")
        raise DataError(f"{where}: none of the {len(paths)} {what} image files could be read (e.g. {skipped[0] if skipped else '-'})")
    if skipped:
        LOG.warning("[%s] skipped %d unreadable image(s), e.g. %s", what, len(skipped), skipped[0])
    return np.stack(xs).astype(np.float32), np.asarray(labels, dtype=np.int64), used, skipped


def run_name(ckpt_path: str | os.PathLike) -> str:
    """The training run a checkpoint came from: its folder's name (``runs/train/baseline/best.pt`` -> ``baseline``)."""
    p = os.path.abspath(os.fspath(ckpt_path))
    return os.path.basename(os.path.dirname(p)) or os.path.splitext(os.path.basename(p))[0]


def export_sha(folder: str | os.PathLike) -> str | None:
    """The checkpoint sha256 a folder's ``parity.json`` was exported from, or None (no export there, or unreadable)."""
    try:
        with open(os.path.join(os.fspath(folder), "parity.json"), encoding="utf-8") as f:
            doc = json.load(f)
        sha = doc.get("source_sha256") if isinstance(doc, dict) and "artifacts" in doc else None
        return sha if isinstance(sha, str) and sha else None
    except (OSError, ValueError):
        return None


def resolve_out_dir(ckpt_path: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, exist_ok: bool = False,
                    sha: str | None = None) -> str:
    """Where an export goes: ``out_dir`` (default ``runs/export/<run name>``).

    A folder that already holds outputs is taken over only when it holds an export of the same checkpoint (``sha``, its
    sha256: a rerun with other gates or formats stays where the quick start's next command looks), or with ``exist_ok``;
    otherwise the next free ``-2``, ``-3``, ... is used (:func:`pawlens.fs.next_run_dir`).
    """
    if out_dir is None:
        root, name = EXPORT_ROOT, run_name(ckpt_path)
    else:
        out = os.path.normpath(os.fspath(out_dir))
        if os.path.exists(out) and not os.path.isdir(out):
            return out  # a file: refused with its own error, not numbered around
        root, name = os.path.dirname(out), os.path.basename(out)
    if exist_ok:
        return next_run_dir(root, name, True)
    base, i = os.path.join(root, name), 1
    cand = base
    while holds_outputs(cand) and not (sha and export_sha(cand) == sha):
        i += 1
        cand = f"{base}-{i}"
    return cand


@dataclass
class RunSplit:
    """The photo lists of the training run a checkpoint came from (its ``split.json``, written by pawlens-train)."""

    path: str
    class_names: list[str]
    splits: dict[str, list[tuple[str, int]]]

    def labels(self, class_names: Sequence[str]) -> dict[str, int]:
        """Path -> class index of the model's ``class_names`` (empty if the split's classes differ)."""
        if list(class_names) != self.class_names:
            return {}
        return {p: y for items in self.splits.values() for p, y in items}


def read_run_split(ckpt_path: str | os.PathLike) -> RunSplit | None:
    """The ``split.json`` next to the checkpoint, or None if there is none; DataError naming it when it is unusable.

    Paths in it are relative to its ``data`` folder (absolute ones stay as they are).
    """
    path = os.path.join(os.path.dirname(os.path.abspath(os.fspath(ckpt_path))), "split.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
        root = str(obj.get("data") or os.path.dirname(path))
        fix = "pass --images DIR and --calib DIR instead"
        splits = {s: [(split_entry(root, p, path, fix=fix), int(y)) for p, y in obj["splits"].get(s, [])] for s in ("train", "val", "test")}
        classes = [str(c) for c in obj["class_names"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{path}: not a readable pawlens split.json ({type(e).__name__}); pass --images DIR and --calib DIR instead") from None
    if obj.get("format") != "pawlens-split":
        raise DataError(f"{path}: not a pawlens split.json; pass --images DIR and --calib DIR instead")
    return RunSplit(path, classes, splits)


# ----------------------------------------------------------------------------- what to do after a failed gate

_GATE_KEY = {"max_abs": "max_abs", "max_rel": "max_rel", "min_cosine": "min_cosine", "top1_agreement": "min_top1_agreement",
             "max_acc_drop": "max_acc_drop"}


def _loosened(check) -> str:
    """The ``--gate`` value that the measured figure would just pass (rounded outwards, 2 significant digits)."""
    v = float(check.measured)
    if check.name in ("top1_agreement", "min_cosine"):
        return f"{math.floor(v * 1000) / 1000:g}"
    if check.name == "max_acc_drop":
        return f"{math.ceil(v * 10) / 10:g}"
    e = math.floor(math.log10(v)) - 1 if v > 0 else 0
    return f"{math.ceil(v / 10 ** e) * 10 ** e:.3g}"


def next_step(fmt: str, parity: ParityResult, inputs: dict[str, Any], int8_opts: dict[str, Any]) -> str:
    """The next step that would help after ``parity`` failed, chosen from which checks failed (one sentence, exact flags)."""
    failed = parity.failed_checks
    names = {c.name for c in failed}
    prec = parity.precision
    steps: list[str] = []
    if "finite" in names:
        steps.append({"fp16": "the model overflows fp16 (NaN/inf logits): deploy the fp32 ONNX or INT8 instead",
                      "int8": "the quantized model gives NaN/inf: calibrate on real photos (--calib DIR)"}.get(
            prec, "the exported graph gives NaN/inf: try the other exporter (--exporter dynamo --opset 18, or --exporter legacy)"))
    elif prec == "int8" and names & {"top1_agreement", "max_acc_drop", "min_cosine", "max_abs", "max_rel"}:
        n_cal, src = inputs.get("n_calib", 0), inputs.get("calib_source") or "-"
        if inputs.get("calib_is_parity"):
            steps.append(f"calibrate on training photos disjoint from the parity photos (--calib DIR; now {n_cal} from {src})")
        else:
            more = " more (a few hundred) or" if n_cal < 300 else ""
            steps.append(f"calibrate on{more} other photos (--calib DIR --calib-max N; now {n_cal} from {src})")
        others = [m for m in ("percentile", "entropy", "minmax") if m != int8_opts.get("method")]
        steps.append(f"try another calibration method (--calib-method {others[0]} or {others[1]})")
    elif fmt == "onnx":
        steps.append("the fp32 ONNX differs from PyTorch: try the other exporter (--exporter dynamo --opset 18, or --exporter legacy)")
    elif prec == "fp16":
        steps.append("fp16 rounding is larger than the gate allows for this model: deploy the fp32 ONNX")
    gated = [c for c in failed if c.name in _GATE_KEY and c.measured is not None and math.isfinite(float(c.measured))]
    if gated:
        flags = " ".join(f"--gate {prec}.{_GATE_KEY[c.name]}={_loosened(c)}" for c in gated)
        steps.append(f"accept these figures with {flags}")
    text = "; or ".join(steps)
    return text[0].upper() + text[1:] if text else "rerun with --verbose and read parity.json"


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
    triton: dict[str, Any] | None = None  # the Triton repository step (--formats ...,triton): status, path, models, reason

    def artifact(self, fmt: str) -> ArtifactResult | None:
        return next((a for a in self.artifacts if a.format == fmt), None)

    @property
    def exit_code(self) -> int:
        """1 if any artifact failed its gate (or its build), else 2 if a requested backend was unavailable, else 0."""
        if any(a.status == "failed" for a in self.artifacts) or (self.triton or {}).get("status") == "failed":
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
            "interrupted": self.interrupted, "artifacts": [a.to_dict() for a in self.artifacts], "triton": self.triton,
            "kept": [k for k in self.kept if os.path.exists(os.path.join(self.out_dir, k.get("file") or ""))],
        }

    def to_document(self):
        """The parity report as structured blocks (:class:`pawlens.document.Document`): ``parity.md`` is its markdown, and a
        larger report (the demo's) takes it whole with ``doc.include(report.to_document())``."""
        from pawlens.document import Document

        inp = self.inputs
        doc = Document(f"Parity report: {os.path.basename(self.checkpoint)}")
        facts = [f"checkpoint: `{self.checkpoint}` (sha256 `{self.source_sha256[:16]}...`), arch `{inp.get('arch')}`, "
                 f"classes {inp.get('class_names')}, input {inp.get('input_size')} px",
                 f"parity inputs: {inp.get('n_real', 0)} real images from `{inp.get('parity_source') or '-'}` "
                 f"({inp.get('n_labeled', 0)} labelled), {inp.get('n_random', 0)} random tensors; reference: PyTorch fp32 on CPU (TorchRunner)"]
        if inp.get("calib_source"):
            facts.append(f"int8 calibration: {inp.get('n_calib')} images from `{inp.get('calib_source')}`"
                         + (f" ({inp.get('calib_overlap')} of them are parity images: the INT8 figures are not independent of calibration)"
                            if inp.get("calib_is_parity") else " (disjoint from the parity images)"))
        facts.append(f"exit code: {self.exit_code}; total {self.seconds:.1f} s (reference run {self.reference_seconds:.1f} s)")
        doc.bullets(facts)
        gated = [a for a in self.artifacts if a.parity is not None]
        if gated:
            doc.table(list(ParityResult.COLUMNS), [a.parity.cells(os.path.basename(a.path)) for a in gated])
        steps = [self._step_cells(a) for a in self.artifacts]
        if self.triton is not None:
            steps.append(["triton", "triton/" if self.triton.get("path") else "-", self.triton["status"], f"{self.triton.get('seconds', 0):.2f}",
                          "-", "-", self.triton["reason"]])
        doc.table(["step", "file", "status", "build s", "parity s", "size", "notes"], steps)
        if self.interrupted:
            doc.note("**This export was interrupted**: the rows above are what it finished; nothing else was written.")
        kept = self.to_dict()["kept"]
        if kept:
            doc.p("Kept from a previous export (not rebuilt by this one, or its replacement did not pass): " + ", ".join(
                f"`{k['file']}` ({k.get('status')}, checkpoint sha256 `{str(k.get('source_sha256') or '?')[:12]}...`)" for k in kept))
        doc.h2("What the figures mean here")
        doc.p("Each figure is shown with its gate beside it: `measured (<= limit) ok|FAIL`; a figure without a limit is reported, not "
              "gated. Max rel is per sample, relative to the sample's largest reference logit. A near tie is a sample whose reference "
              "top-1/top-2 logit margin is below the tie margin. Top-1 agreement counts a flip at a near tie as agreeing (the reference "
              "itself was undecided there; the error size is gated by max abs): the gate judges `1 - decisive flips / N`, and the plain "
              "figure that counts every flip is shown beside it as `raw` when they differ.")
        notes = [f"{os.path.basename(a.path)}, {k}: {v}" for a in gated for k, v in a.parity.notes.items() if v]
        if notes:
            doc.bullets(notes)
        doc.p("Gates: " + "; ".join(f"{p}: " + ", ".join(f"{k}={v}" for k, v in g.to_dict().items() if v is not None)
                                    for p, g in self.gates.items()))
        return doc

    @staticmethod
    def _step_cells(a: ArtifactResult) -> list[str]:
        size = "-" if a.size_bytes is None else f"{a.size_bytes / 1e6:.1f} MB"
        note = a.reason + (" (reused)" if a.reused else "") + ("" if a.requested else " (built as a source of the others)")
        return [a.format, os.path.basename(a.path), a.status, f"{a.seconds:.2f}", f"{a.parity_seconds:.2f}", size, note.strip()]

    def to_markdown(self) -> str:
        return self.to_document().markdown()

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


def _sidecar(path: str) -> str | None:
    """The file that travels with ``path`` (an engine's ``.json``; also of its ``.failed`` / ``.unverified`` names), or None."""
    for fmt, side in SIDECAR.items():
        if path.endswith(tuple(SUFFIX[fmt] + tail for tail in ("", ".failed", ".unverified"))):
            return path + side
    return None


def _with_sidecar(path: str) -> list[str]:
    side = _sidecar(path)
    return [path, side] if side else [path]


def _remove(path: str) -> None:
    for p in _with_sidecar(path):
        if os.path.exists(p):
            os.remove(p)


def _move(src: str, dst: str) -> None:
    """Rename ``src`` (and an engine's ``.json`` sidecar, first, so an engine never sits without its sidecar) to ``dst``."""
    side = _sidecar(src)
    if side and os.path.exists(side):
        os.replace(side, dst + side[len(src):])
    os.replace(src, dst)


def _promote(staged: str, final: str) -> None:
    """Put a gated artifact under its loadable name: one atomic rename over the previous file (kept until now)."""
    _move(staged, final)


def _mark_failed(path: str, bad: str | None = None) -> str:
    """Rename a failed artifact (and an engine's sidecar) to ``*.failed``; returns the new path."""
    if not os.path.exists(path):
        return path
    bad = bad or path + ".failed"
    _move(path, bad)
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
        if fmt in SIDECAR:
            ok = ok and os.path.exists(path + SIDECAR[fmt])
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


def _parity_inputs(parity_images, cfg, meta, split, known_labels: dict, *, parity_max, random_inputs, seed, inputs: dict):
    """The parity set: real photos (with labels where known), then random tensors.  ``split``: the run's split when the
    photos are its test split.  Fills ``inputs`` (what the report says about them); returns ``(x, labels, x_real, used,
    n_random)``."""
    rng = np.random.default_rng(seed)
    if parity_images is not None:
        ppaths = resolve_images(parity_images, "parity")
        folder = os.fspath(parity_images) if isinstance(parity_images, (str, os.PathLike)) else ""
        x_real, labels_real, used, skipped = load_images(ppaths, cfg, meta.class_names, what="parity", max_images=parity_max, folder=folder)
        if known_labels:  # the run's split.json knows each photo's class (any layout)
            labels_real = np.asarray([known_labels.get(p, int(y)) for p, y in zip(used, labels_real)], dtype=np.int64)
        source = folder or (f"{split.path} (test photos)" if split is not None else f"{len(ppaths)} listed files")
        inputs.update(parity_source=source, n_real=len(used), n_labeled=int((labels_real >= 0).sum()), n_skipped=len(skipped))
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
    return x, labels, x_real, used, n_rand


def _calibration(calib, cfg, meta, split, x_real, used, *, calib_max, inputs: dict):
    """INT8's calibration set: an array, photos (``split``: the run's split when they are its training photos), or the
    parity photos themselves (said in the report and the log).  Fills ``inputs``; returns the preprocessed array."""
    if isinstance(calib, np.ndarray):
        x_cal, inputs["calib_source"] = calib.astype(np.float32, copy=False), "array"
    elif calib is not None:
        cpaths = resolve_images(calib, "calibration")
        x_cal, _l, cused, _s = load_images(cpaths, cfg, meta.class_names, what="calibration", max_images=calib_max,
                                           folder=os.fspath(calib) if isinstance(calib, (str, os.PathLike)) else "")
        inputs["calib_source"] = (os.fspath(calib) if isinstance(calib, (str, os.PathLike))
                                  else f"{split.path} (training photos)" if split is not None
                                  else f"{len(cpaths)} listed files")
        inputs["calib_overlap"] = len(set(cused) & set(used))
        inputs["calib_is_parity"] = inputs["calib_overlap"] > 0
    else:
        x_cal = x_real[: calib_max]
        inputs["calib_source"], inputs["calib_is_parity"], inputs["calib_overlap"] = inputs["parity_source"], True, len(x_cal)
        LOG.warning("[int8] no --calib: calibrating on the parity images, so the INT8 parity is not independent of calibration")
    inputs["n_calib"] = int(len(x_cal))
    return x_cal


def export_all(ckpt_path: str | os.PathLike, *, formats: Sequence[str] | str = DEFAULT_FORMATS, out_dir: str | os.PathLike | None = None,
               parity_images: str | os.PathLike | Sequence[str] | None = None, calib: str | os.PathLike | Sequence[str] | np.ndarray | None = None,
               batch_max: int = 32, opset: int = 17, gates: dict[str, Gate] | None = None, progress: bool = True,
               exporter: str = "legacy", random_inputs: int = 4, seed: int = 0, calib_max: int = 500, parity_max: int | None = None,
               int8_activation: str = "U8", int8_weight: str = "S8", int8_method: str | None = None, per_channel: bool = True,
               int8_reduce_range: bool = True,
               batch_opt: int = 8, workspace_gb: float = 4.0, reuse: bool = False, batch_size: int = 8, exist_ok: bool = False,
               use_split: bool = True) -> ExportReport:
    """Build every requested artifact, gate each against PyTorch fp32, and write ``parity.json`` + ``parity.md``.

    Args:
        ckpt_path: the pawlens checkpoint.
        formats: any of ``onnx``, ``fp16``, ``int8``, ``trt`` (the fp32 ONNX is always built: the others come from it).
        out_dir: output folder (default ``runs/export/<run name>``, the checkpoint's folder name); a folder that already
            holds outputs is never written into unless ``exist_ok``: the export goes to ``<out_dir>-2`` (``-3``, ...)
            instead (:func:`resolve_out_dir`; ``report.out_dir`` says where).
        parity_images: a folder (class-named subfolders give labels) or a list of image paths; default the test photos
            of the run's ``split.json`` (next to the checkpoint, ``use_split``), else random tensors only.
        calib: INT8 calibration images (folder, list, or a preprocessed ``(N,3,S,S)`` array); default the training
            photos of the run's ``split.json``, else the parity images.
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
        exist_ok: write into ``out_dir`` even when it holds an earlier export (its files are replaced once the new ones pass).
        use_split: fill a missing ``parity_images`` / ``calib`` from the run's ``split.json``.

    Raises:
        InputError, CheckpointError, DataError, OutputError: bad input, before anything is written.
    """
    from pawlens.models.artifact import ArtifactMeta
    from pawlens.models.checkpoint import load_checkpoint

    t_start = time.perf_counter()
    fmts = parse_formats(formats)
    requested = set(fmts)
    want_triton = "triton" in requested
    fmts = [f for f in fmts if f in ARTIFACTS]
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
    split = read_run_split(ckpt_path) if use_split and (parity_images is None or ("int8" in requested and calib is None)) else None
    known_labels: dict[str, int] = {}
    parity_from_split = split is not None and parity_images is None
    calib_from_split = split is not None and "int8" in requested and calib is None
    if split is not None:
        known_labels = split.labels(ckpt.get("class_names") or [])
        if parity_images is None:
            parity_images = [p for p, _ in split.splits["test"] or split.splits["val"]] or None
        if "int8" in requested and calib is None:
            calib = [p for p, _ in split.splits["train"]] or None
    if "int8" in requested and calib is None and parity_images is None:
        raise InputError(f"int8 needs calibration photos and {os.path.dirname(os.path.abspath(ckpt_path))} has no split.json "
                         "(pawlens-train writes one): pass --calib DIR (a few hundred training photos) and --images DIR "
                         "(held-out photos for the parity gate), or leave int8 out of --formats; refusing to calibrate on random noise")
    sha = sha256_file(ckpt_path)
    ckpt["sha256"] = sha
    meta = ArtifactMeta.from_checkpoint(ckpt, source_sha256=sha)
    cfg = meta.preprocess
    if int8_method is None:
        from pawlens.models.registry import list_models, model_info

        int8_opts["method"] = model_info(meta.arch).calib_method if meta.arch in list_models() else "minmax"
    stem = os.path.splitext(os.path.basename(ckpt_path))[0]
    out = resolve_out_dir(ckpt_path, out_dir, exist_ok=exist_ok, sha=sha)
    out_sha = export_sha(out)  # the checkpoint the folder's earlier export came from, if any
    if exist_ok and out_sha is None and holds_outputs(out):
        theirs = [n for n in ("parity.md", "parity.json", "args.yaml") if os.path.exists(os.path.join(out, n))]
        if theirs:  # --exist-ok replaces an export's files, not a user's files that happen to share their names
            raise OutputError(f"{out}: holds {', '.join(theirs)} that no pawlens export wrote (no readable parity.json); "
                              "choose another --out, or move them away first")
    out = ensure_writable_dir(out)
    if out_dir is not None and out != os.path.normpath(os.fspath(out_dir)):
        LOG.warning("[export] %s already holds files: writing to %s instead (--exist-ok writes into it)", os.fspath(out_dir), out)
    same_checkpoint = not exist_ok and out_sha == sha  # its passed artifacts stay; only failed or missing ones are built
    paths = artifact_paths(out, stem)

    lock = FolderLock(out, LOCK_NAME, prog="pawlens-export").acquire()  # a second export into this folder fails here
    try:
        remove_stale_temps(out)
        inputs: dict[str, Any] = {"arch": meta.arch, "class_names": meta.class_names, "input_size": cfg.input_size}
        x, labels, x_real, used, n_rand = _parity_inputs(parity_images, cfg, meta, split if parity_from_split else None, known_labels,
                                                         parity_max=parity_max, random_inputs=random_inputs, seed=seed, inputs=inputs)
        x_cal = (_calibration(calib, cfg, meta, split if calib_from_split else None, x_real, used, calib_max=calib_max, inputs=inputs)
                 if "int8" in requested else None)

        environment = _environment()
        prog = _Progress(1 + len(fmts) + want_triton, progress)
        results: list[ArtifactResult] = []
        report = ExportReport(ckpt_path, sha, out, results, inputs, all_gates, environment=environment)
        report.kept = _carry_over(out, paths)
        keep = {k.get("format") for k in report.kept if k.get("source_sha256") == sha} if same_checkpoint else set()
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
                    res.reason = (f"parity gate failed ({', '.join(c.name for c in res.parity.failed_checks)}); renamed to {os.path.basename(bad)}. "
                                  f"Next: {next_step(res.format, res.parity, inputs, int8_opts)}")
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
                        fault_point(f"built:{fmt}")
                        gate(res, gate_runner(fmt, res.path))
                    else:
                        _step_onnx(res, fmt, ckpt, paths, staged, results[0].path, sha, reuse, opset, exporter, x_cal, int8_opts,
                                   keep=fmt in keep)
                        fault_point(f"built:{fmt}")
                        gate(res, gate_runner(fmt, res.path))
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
            if want_triton:
                prog.start("triton")
                report.triton = _step_triton(out, results, run_name(ckpt_path))
                prog.done(f"triton: {report.triton['reason']}", logging.INFO if report.triton["status"] == "passed" else logging.ERROR)
            completed = True
            # A previous file whose replacement failed stays: a failed artifact never pushes aside one that passed.
            for k in report.kept:
                if k.get("format") in {r.format for r in results}:
                    other = k.get("source_sha256") not in (None, sha)
                    LOG.warning("[export] kept the previous %s%s: its replacement did not pass (listed under 'kept' in parity.json)",
                                k["file"], f" (exported from another checkpoint, sha256 {str(k['source_sha256'])[:12]}...)" if other else "")
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


def _step_onnx(res: ArtifactResult, fmt: str, ckpt, paths, staged, src_onnx, sha, reuse, opset, exporter, x_cal, int8_opts,
               keep: bool = False) -> None:
    """Build ``fmt`` into ``staged`` (``res.path`` then points there), or reuse the gated file already in place: with
    ``reuse`` when it was built with the same options, with ``keep`` (it passed before, from this checkpoint, in this
    folder) whatever the options: a passed artifact is replaced only with ``--exist-ok``.  Either way it is gated again."""
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
        if keep and old_sha == sha:
            res.reused = True
            res.info["reuse"] = "passed before, from this checkpoint" + ("" if same_opts else " (with other build options than this run's)")
            LOG.info("[export] %s passed before from this checkpoint: kept and gated again (--exist-ok rebuilds it)", os.path.basename(path))
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


def _step_triton(out: str, results: list[ArtifactResult], name: str) -> dict[str, Any]:
    """``<out>/triton``: a Triton repository of the artifacts that passed (:func:`pawlens.serve.repository.write_repository`)."""
    from pawlens.errors import PawlensError
    from pawlens.serve.repository import model_prefix, write_repository

    arts = [(r.format, r.path) for r in results if r.status == "passed"]
    dest = os.path.join(out, "triton")
    t0 = time.perf_counter()
    try:
        repo = write_repository(dest, arts, prefix=model_prefix(name))
    except PawlensError as e:
        return {"status": "failed", "path": None, "reason": str(e), "models": []}
    models = list(repo.models)
    return {"status": "passed", "path": dest, "models": models, "seconds": round(time.perf_counter() - t0, 3),
            "reason": f"triton/ with {len(models)} models ({', '.join(models)}) from {len(arts)} passed artifact(s); "
                      f"serve it with pawlens serve {out}"}


def _environment() -> dict[str, Any]:
    env = {"machine": platform.machine(), "processor": platform.processor() or platform.machine()}
    return dict(library_versions(("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt")), **env)

