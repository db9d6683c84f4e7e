"""The export's report: one row per artifact (:class:`ArtifactResult`), the run (:class:`ExportReport`), written as
``parity.json`` and ``parity.md`` after every step, and the next step to try after a failed gate (:func:`next_step`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from dataclasses import dataclass, field
from typing import Any

from pawlens.console import library_versions
from pawlens.fs import atomic_write_text
from pawlens.runtime.compare import Gate, ParityResult

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


def environment() -> dict[str, Any]:
    env = {"machine": platform.machine(), "processor": platform.processor() or platform.machine()}
    return dict(library_versions(("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt")), **env)
