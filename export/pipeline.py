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

import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pawlens.errors import ArtifactError, BackendUnavailable, DataError, InputError, OutputError, ParityError
from pawlens.fs import FolderLock, ensure_writable_dir, holds_outputs, next_run_dir, remove_stale_temps, sha256_file
from pawlens.models.photos import split_entry
from pawlens.runtime.compare import Gate, compare_logits, default_gate, run_batches
from pawlens.runtime.formats import DEFAULT_EXPORT, EXPORT_FORMATS, by_key, gate_runner

from . import staging
from .report import ArtifactResult, ExportReport, environment, next_step  # noqa: F401  (next_step: re-exported)

LOG = logging.getLogger("pawlens")

#: The ``--formats`` names, in build order, and what each is (from :mod:`runtime.formats`, the one formats table).
FORMATS: tuple[str, ...] = EXPORT_FORMATS  # what --formats takes: the artifacts, then triton (a repository of those that passed)
ARTIFACTS: tuple[str, ...] = tuple(f for f in FORMATS if by_key(f).kind != "/")
PRECISION: dict[str, str] = {f: by_key(f).precision for f in ARTIFACTS}
SUFFIX, SIDECAR = staging.SUFFIX, staging.SIDECAR  # each artifact's file suffix and its sidecar's (an engine's .json)
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


# ----------------------------------------------------------------------------- progress


class _Progress:
    """The export's steps: ``[i/N] what`` as the bar's description, then one line per finished step, above the bar on a
    terminal (:class:`pawlens.progress.Progress`), else through the log at the step's level (warnings and errors stand out)."""

    def __init__(self, total: int, enabled: bool):
        from pawlens.progress import progress

        self.i, self.total = 0, total
        self.bar = progress(total=total, desc="export", unit="step", enabled=enabled, interval=float("inf"))  # no timed lines

    def start(self, desc: str) -> None:
        self.i += 1
        self.bar.set_description(f"[{self.i}/{self.total}] {desc}")

    def done(self, msg: str, level: int = logging.INFO) -> None:
        line = f"[{self.i}/{self.total}] {msg}"
        if self.bar.tty:
            self.bar.write(line)
        else:
            LOG.log(level, line)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# ----------------------------------------------------------------------------- pipeline


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


@dataclass
class ExportOptions:
    """Every option of an export (:func:`export_all`'s keywords; ``pawlens-export``'s flags)."""

    formats: Sequence[str] | str = DEFAULT_FORMATS
    out_dir: str | os.PathLike | None = None
    parity_images: str | os.PathLike | Sequence[str] | None = None
    calib: str | os.PathLike | Sequence[str] | np.ndarray | None = None
    batch_max: int = 32
    opset: int = 17
    gates: dict[str, Gate] | None = None
    progress: bool = True
    exporter: str = "legacy"
    random_inputs: int = 4
    seed: int = 0
    calib_max: int = 500
    parity_max: int | None = None
    int8_activation: str = "U8"
    int8_weight: str = "S8"
    int8_method: str | None = None
    per_channel: bool = True
    int8_reduce_range: bool = True
    batch_opt: int = 8
    workspace_gb: float = 4.0
    reuse: bool = False
    batch_size: int = 8
    exist_ok: bool = False
    use_split: bool = True


def export_all(ckpt_path: str | os.PathLike, **options) -> ExportReport:
    """Build every requested artifact, gate each against PyTorch fp32, and write ``parity.json`` + ``parity.md``.

    Args (the fields of :class:`ExportOptions`):
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
    return Exporter(ckpt_path, ExportOptions(**options)).run()


class Exporter:
    """One export run, in steps: :meth:`prepare` (options, checkpoint, split, output folder), :meth:`inputs` (parity
    and calibration sets), :meth:`reference` (PyTorch fp32, once), :meth:`build` and :meth:`gate` (each artifact, staged,
    then promoted or marked failed), :meth:`finish` (the report, whatever happened)."""

    def __init__(self, ckpt_path: str | os.PathLike, opts: ExportOptions):
        self.ckpt_path = os.fspath(ckpt_path)
        self.o = opts
        self.results: list[ArtifactResult] = []

    # ------------------------------------------------------------------ the run
    def run(self) -> ExportReport:
        self.t_start = time.perf_counter()
        self.prepare()
        lock = FolderLock(self.out, LOCK_NAME, prog="pawlens-export").acquire()  # a second export into this folder fails here
        try:
            remove_stale_temps(self.out)
            self.inputs()
            self.prog = _Progress(1 + len(self.fmts) + self.want_triton, self.o.progress)
            self.report = ExportReport(self.ckpt_path, self.sha, self.out, self.results, self.info, self.all_gates, environment=environment())
            self.report.kept = staging.carry_over(self.out, self.paths)
            self._note_foreign_kept()
            self.stage = os.path.join(self.out, f".export.tmp-{os.getpid()}")  # built and gated here, renamed into place once passed
            os.makedirs(self.stage, exist_ok=True)
            completed = False
            try:
                self.reference()
                for fmt in self.fmts:
                    self.build(fmt)
                if self.want_triton:
                    self.prog.start("triton")
                    self.report.triton = _step_triton(self.out, self.results, run_name(self.ckpt_path))
                    self.prog.done(f"triton: {self.report.triton['reason']}",
                                   logging.INFO if self.report.triton["status"] == "passed" else logging.ERROR)
                completed = True
                self._note_kept_over_failures()
            finally:
                self.finish(completed)
            return self.report
        finally:
            lock.release()

    # ------------------------------------------------------------------ prepare: options, checkpoint, split, folder
    def prepare(self) -> None:
        """Check the options, read the checkpoint and its run's split, and choose the output folder (nothing written)."""
        o = self.o
        fmts = parse_formats(o.formats)
        self.requested = set(fmts)
        self.want_triton = "triton" in self.requested
        fmts = [f for f in fmts if f in ARTIFACTS]
        self.fmts = fmts if "onnx" in fmts else ["onnx"] + fmts
        self.int8_opts = {"activation": o.int8_activation.upper(), "weight": o.int8_weight.upper(),
                          "method": (o.int8_method or "minmax").lower(), "per_channel": bool(o.per_channel),
                          "reduce_range": bool(o.int8_reduce_range)}
        from .quantize import METHODS, QTYPES

        if self.int8_opts["activation"] not in QTYPES or self.int8_opts["weight"] not in QTYPES or self.int8_opts["method"] not in METHODS:
            raise InputError(f"int8 options {self.int8_opts}: types must be one of {', '.join(QTYPES)}, method one of {', '.join(METHODS)}")
        gates = dict(o.gates or {})
        self.all_gates = {p: gates.get(p, default_gate(p)) for p in ("fp32", "fp16", "int8")}
        if "trt" in self.requested:  # validate the profile before doing any work
            from .tensorrt import profile_shapes

            profile_shapes(16, 1, o.batch_opt, o.batch_max)
        self._read_checkpoint()
        self._choose_folder()

    def _read_checkpoint(self) -> None:
        from pawlens.models.artifact import ArtifactMeta
        from pawlens.models.checkpoint import load_checkpoint

        o, int8 = self.o, "int8" in self.requested
        self.ckpt = load_checkpoint(self.ckpt_path)
        self.parity_images, self.calib = o.parity_images, o.calib
        split = read_run_split(self.ckpt_path) if o.use_split and (self.parity_images is None or (int8 and self.calib is None)) else None
        self.known_labels: dict[str, int] = {}
        self.parity_split = split if split is not None and self.parity_images is None else None
        self.calib_split = split if split is not None and int8 and self.calib is None else None
        if split is not None:
            self.known_labels = split.labels(self.ckpt.get("class_names") or [])
            if self.parity_images is None:
                self.parity_images = [p for p, _ in split.splits["test"] or split.splits["val"]] or None
            if int8 and self.calib is None:
                self.calib = [p for p, _ in split.splits["train"]] or None
        if int8 and self.calib is None and self.parity_images is None:
            raise InputError(f"int8 needs calibration photos and {os.path.dirname(os.path.abspath(self.ckpt_path))} has no split.json "
                             "(pawlens-train writes one): pass --calib DIR (a few hundred training photos) and --images DIR "
                             "(held-out photos for the parity gate), or leave int8 out of --formats; refusing to calibrate on random noise")
        self.sha = sha256_file(self.ckpt_path)
        self.ckpt["sha256"] = self.sha
        self.meta = ArtifactMeta.from_checkpoint(self.ckpt, source_sha256=self.sha)
        if o.int8_method is None:
            from pawlens.models.registry import list_models, model_info

            self.int8_opts["method"] = model_info(self.meta.arch).calib_method if self.meta.arch in list_models() else "minmax"

    def _choose_folder(self) -> None:
        o = self.o
        out = resolve_out_dir(self.ckpt_path, o.out_dir, exist_ok=o.exist_ok, sha=self.sha)
        out_sha = export_sha(out)  # the checkpoint the folder's earlier export came from, if any
        if o.exist_ok and out_sha is None and holds_outputs(out):
            theirs = [n for n in ("parity.md", "parity.json", "args.yaml") if os.path.exists(os.path.join(out, n))]
            if theirs:  # --exist-ok replaces an export's files, not a user's files that happen to share their names
                raise OutputError(f"{out}: holds {', '.join(theirs)} that no pawlens export wrote (no readable parity.json); "
                                  "choose another --out, or move them away first")
        self.out = ensure_writable_dir(out)
        if o.out_dir is not None and self.out != os.path.normpath(os.fspath(o.out_dir)):
            LOG.warning("[export] %s already holds files: writing to %s instead (--exist-ok writes into it)", os.fspath(o.out_dir), self.out)
        self.same_checkpoint = not o.exist_ok and out_sha == self.sha  # its passed artifacts stay; only failed or missing ones are built
        self.paths = artifact_paths(self.out, os.path.splitext(os.path.basename(self.ckpt_path))[0])

    def inputs(self) -> None:
        """The parity inputs (photos, then random tensors) and INT8's calibration set; ``self.info`` says what they are."""
        o, cfg = self.o, self.meta.preprocess
        self.info: dict[str, Any] = {"arch": self.meta.arch, "class_names": self.meta.class_names, "input_size": cfg.input_size}
        self.x, self.labels, x_real, used, self.n_rand = _parity_inputs(
            self.parity_images, cfg, self.meta, self.parity_split, self.known_labels, parity_max=o.parity_max,
            random_inputs=o.random_inputs, seed=o.seed, inputs=self.info)
        self.x_cal = (_calibration(self.calib, cfg, self.meta, self.calib_split, x_real, used, calib_max=o.calib_max, inputs=self.info)
                      if "int8" in self.requested else None)

    def _note_foreign_kept(self) -> None:
        kept = self.report.kept
        self.keep = {k.get("format") for k in kept if k.get("source_sha256") == self.sha} if self.same_checkpoint else set()
        for k in kept:
            if k.get("format") not in self.fmts and k.get("source_sha256") not in (None, self.sha):
                LOG.warning("[export] %s stays from an export of another checkpoint (sha256 %s...); add %s to --formats to rebuild it",
                            k["file"], str(k["source_sha256"])[:12], k["format"])

    # ------------------------------------------------------------------ reference, build, gate
    def reference(self) -> None:
        from pawlens.runtime.torch_runner import TorchRunner

        self.prog.start("reference")
        t0 = time.perf_counter()
        self.ref = run_batches(TorchRunner(self.ckpt, name="torch-fp32"), self.x, self.o.batch_size)
        self.report.reference_seconds = time.perf_counter() - t0
        self.prog.done(f"reference: PyTorch fp32 on {len(self.x)} inputs ({self.info['n_real']} images, {self.n_rand} random) "
                       f"in {self.report.reference_seconds:.1f} s")
        fault_point("reference")

    def build(self, fmt: str) -> None:
        """Build ``fmt`` in the staging folder and gate it; its row is written to ``parity.json`` whatever happens."""
        o, path = self.o, self.paths[fmt]
        res = ArtifactResult(fmt, path, PRECISION[fmt], "pending", requested=fmt in self.requested)
        self.results.append(res)
        self.prog.start(fmt)
        if fmt != "onnx" and self.results[0].status != "passed":
            res.status = "skipped"
            res.reason = f"skipped: the fp32 ONNX it is made from failed ({self.results[0].reason})"
            self.prog.done(f"{fmt}: {res.reason}", logging.WARNING)
            self.report.write()
            return
        staged = os.path.join(self.stage, os.path.basename(path))
        try:
            if fmt == "trt":
                _step_trt(res, self.paths, staged, o.batch_opt, o.batch_max, o.workspace_gb, self.results)
                if res.status == "unavailable":
                    self.prog.done("trt: unavailable (TensorRT or a GPU is missing; the reason is in the summary)", logging.WARNING)
                    self.report.write()
                    return
            else:
                _step_onnx(res, fmt, self.ckpt, self.paths, staged, self.results[0].path, self.sha, o.reuse, o.opset, o.exporter,
                           self.x_cal, self.int8_opts, keep=fmt in self.keep)
            fault_point(f"built:{fmt}")
            self.gate(res, gate_runner(fmt, res.path))
        except (ArtifactError, ParityError) as e:
            res.status, res.reason = "failed", str(e)
            res.path = staging.mark_failed(path) if res.reused else staging.keep_failed(staged, path)
        except BackendUnavailable as e:
            if fmt != "trt":
                raise
            res.status, res.reason = "unavailable", str(e)
        except ImportError as e:  # runtime.trt_runner missing: the engine cannot be gated
            res.status, res.reason = "failed", f"cannot gate the engine: {e}"
            res.path = staging.mark_failed(path) if res.reused else staging.keep_failed(staged, path)
        if res.status == "passed":
            self.report.kept = [k for k in self.report.kept if k.get("format") != fmt]
        self.report.write()
        fault_point(f"done:{fmt}")
        verdict = res.parity.short_summary() if res.parity else res.reason
        built = "reused" if res.reused else f"built in {res.seconds:.1f} s"
        self.prog.done(f"{fmt}: {os.path.basename(res.path)} {built}; parity {verdict}", logging.INFO if res.status == "passed" else logging.ERROR)

    def gate(self, res: ArtifactResult, runner) -> None:
        """Run the candidate on the parity inputs and judge it against the reference: promoted under its name if it
        passed, renamed ``.failed`` (with the next step to try) if not."""
        t1 = time.perf_counter()
        cand = run_batches(runner, self.x, self.o.batch_size)
        res.parity_seconds = time.perf_counter() - t1
        fault_point(f"gate:{res.format}")
        final = self.paths[res.format]
        res.parity = compare_logits(self.ref, cand, labels=self.labels, gate=self.all_gates[res.precision], n_real=self.info["n_real"],
                                    name=os.path.basename(final), precision=res.precision)
        res.size_bytes = os.path.getsize(res.path)
        if res.parity.passed:
            res.status = "passed"
            res.sha256 = sha256_file(res.path)
            if res.path != final:
                staging.promote(res.path, final)
                res.path = final
            if os.path.exists(final + ".failed"):
                staging.remove(final + ".failed")
        else:
            res.status = "failed"
            bad = staging.mark_failed(res.path, final + ".failed")
            res.reason = (f"parity gate failed ({', '.join(c.name for c in res.parity.failed_checks)}); renamed to {os.path.basename(bad)}. "
                          f"Next: {next_step(res.format, res.parity, self.info, self.int8_opts)}")
            res.path = bad

    # ------------------------------------------------------------------ finish
    def _note_kept_over_failures(self) -> None:
        """A previous file whose replacement failed stays: a failed artifact never pushes aside one that passed."""
        for k in self.report.kept:
            if k.get("format") in {r.format for r in self.results}:
                other = k.get("source_sha256") not in (None, self.sha)
                LOG.warning("[export] kept the previous %s%s: its replacement did not pass (listed under 'kept' in parity.json)",
                            k["file"], f" (exported from another checkpoint, sha256 {str(k['source_sha256'])[:12]}...)" if other else "")

    def finish(self, completed: bool) -> None:
        """Whatever happened: rows still pending become ``interrupted``, the staging folder goes, the report is written."""
        self.prog.close()
        for r in self.results:
            if r.status == "pending":  # interrupted (Ctrl-C, an error): nothing was written under its name
                r.status, r.reason = "interrupted", "interrupted before it passed its gate; nothing was written under its name"
        shutil.rmtree(self.stage, ignore_errors=True)
        self.report.seconds = time.perf_counter() - self.t_start
        self.report.interrupted = not completed
        self.report.write()


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


