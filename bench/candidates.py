"""The rows to time: every backend configuration that applies to the run's checkpoint(s) and files.

    cands = checkpoint_candidates(ckpt_path, devices=["cpu"], bf16=True, compile=False)
    cands += artifact_candidates(path, meta, devices=["cpu"], installed={"ort", "openvino"})

Which backends load a file, on the CPU and on CUDA, comes from the formats table (:data:`pawlens.runtime.formats.FORMATS`:
``Format.backends`` / ``Format.cuda_backends``); each candidate is built by the factory,
``make_runner(path, **Candidate.runner)``, in its worker.  A checkpoint gets the PyTorch variants the bench compares
(eager, channels_last, bf16 converted and autocast, torch.compile when asked for, fp32 and fp16 on CUDA).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from pawlens.runtime import formats
from pawlens.runtime.formats import ENGINE


@dataclass
class Candidate:
    """One backend configuration to time."""

    key: str  # unique, e.g. "ort-int8@model.int8.onnx"
    label: str  # human name, e.g. "ONNX Runtime INT8"
    backend: str  # torch | ort | openvino | trt
    precision: str  # what runs: fp32, bf16, bf16-autocast, fp16, int8
    device: str  # cpu | cuda
    path: str  # checkpoint (torch) or artifact file
    runner: dict[str, Any] = field(default_factory=dict)  # make_runner's keyword arguments (backend, device, precision, ...)
    gate_precision: str = "fp32"  # the parity gate that applies (the artifact's precision; bf16 paths: their own)
    comparable: bool = True  # agreement with the torch fp32 reference is meaningful (same weights)
    threads: int | None = None
    group: str = ""  # the trained model (checkpoint) it belongs to: "" is the main --checkpoint

    @property
    def compiled(self) -> bool:
        return bool(self.runner.get("compile"))

    def spec(self) -> dict[str, Any]:
        """What a worker process needs to build the runner (plain data)."""
        return asdict(self)


def _torch(key: str, label: str, path: str, *, device: str, precision: str, channels_last: bool = False, compile: bool = False,
           gate: str = "fp32", **kw) -> Candidate:
    run = {"backend": "torch", "device": device, "precision": precision, "channels_last": channels_last, "compile": compile}
    return Candidate(key, label, "torch", precision, device, path, run, gate_precision=gate, **kw)


def checkpoint_candidates(path: str, *, devices: Sequence[str], bf16: bool, compile: bool) -> list[Candidate]:
    """The PyTorch rows of the main checkpoint."""
    out: list[Candidate] = []
    if "cpu" in devices:
        out.append(_torch("torch-fp32", "PyTorch fp32 eager", path, device="cpu", precision="fp32"))
        out.append(_torch("torch-fp32-cl", "PyTorch fp32 channels_last", path, device="cpu", precision="fp32", channels_last=True))
        if bf16:
            out.append(_torch("torch-bf16-cl", "PyTorch bf16 (converted) channels_last", path, device="cpu", precision="bf16",
                              channels_last=True, gate="bf16"))
            out.append(_torch("torch-bf16ac-cl", "PyTorch bf16 autocast channels_last", path, device="cpu", precision="bf16-autocast",
                              channels_last=True, gate="bf16"))
        if compile:
            out.append(_torch("torch-fp32-cl-compiled", "PyTorch fp32 channels_last, torch.compile", path, device="cpu", precision="fp32",
                              channels_last=True, compile=True))
            if bf16:
                out.append(_torch("torch-bf16-cl-compiled", "PyTorch bf16 channels_last, torch.compile", path, device="cpu",
                                  precision="bf16", channels_last=True, compile=True, gate="bf16"))
    if "cuda" in devices:
        out.append(_torch("torch-fp32-cuda", "PyTorch fp32 eager (CUDA)", path, device="cuda", precision="fp32"))
        out.append(_torch("torch-fp16-cuda", "PyTorch fp16 (CUDA) channels_last", path, device="cuda", precision="fp16",
                          channels_last=True, gate="fp16"))
    return out


def _shown(precision: str) -> str:
    return precision.upper() if precision == "int8" else precision


def _in_table_order(backends: Iterable[str]) -> list[str]:
    """Backends in the formats table's own order (torch, ort, openvino, trt): the rows' order in the outputs."""
    have = set(backends)
    return [b for b in formats.BACKENDS if b in have]


def artifact_candidates(path: str, meta, *, devices: Sequence[str], installed: Iterable[str], bf16: bool = False,
                        comparable: bool = True, suffix: str = "", group: str = "", notes: list[str] | None = None) -> list[Candidate]:
    """The rows of one exported file: each backend the formats table lists for its kind and precision, per device.

    ``suffix`` (``#label``) and ``group`` mark a file of another checkpoint than the main one; those get CPU rows only.
    An FP16 ONNX is a GPU artifact (on the CPU its weights are upcast: it would time fp32), so it gets no CPU rows.
    """
    from pawlens.runtime.factory import file_kind

    kind, prec, base = file_kind(path), meta.precision, os.path.basename(path)
    fmt = formats.for_file(kind, prec)
    have = set(installed)
    out: list[Candidate] = []
    tag = f" [{suffix[1:]}]" if suffix else ""

    def add(key: str, label: str, backend: str, device: str, run: dict[str, Any], precision: str = prec, gate: str = prec):
        out.append(Candidate(f"{key}@{base}{suffix}", label + tag, backend, precision, device, path, {"backend": backend, **run},
                             gate_precision=gate, comparable=comparable, group=group))

    if kind == ENGINE:
        if group:  # the other checkpoints are compared on the CPU
            return out
        if "cuda" in devices:
            add(f"trt-{prec}", f"TensorRT {prec.upper()}", "trt", "cuda", {"device": "cuda"})
        elif notes is not None:
            notes.append(f"{base}: a TensorRT engine needs a CUDA GPU; not timed in this run")
        return out
    if "cpu" in devices and prec != "fp16":
        for be in _in_table_order(b for b in fmt.backends if b in have):
            name = formats.BACKENDS[be].name
            add(f"{be}-{prec}", f"{name} {_shown(prec)}", be, "cpu", {"device": "cpu"})
            for v in formats.variants(be, prec, bf16=bf16, purpose="bench") if not group else ():  # the formats table's variants
                add(f"{be}-{v.tag}", f"{name} {v.label}", be, "cpu", {"device": "cpu", **v.settings}, precision=v.runs or prec)
    if "cuda" in devices and not group:
        for be in _in_table_order(b for b in fmt.cuda_backends if b in have and not formats.BACKENDS[b].gpu_only):
            b = formats.BACKENDS[be]
            add(f"{be}-{prec}-cuda", f"{b.name} {prec}{b.cuda_label}", be, "cuda", {"device": "cuda"})
    return out


def reference_candidate(label: str, path: str, *, comparable: bool, group: str) -> Candidate:
    """The PyTorch fp32 eager row of another checkpoint (or of the untrained latency reference)."""
    return _torch(f"torch-fp32#{label}", f"PyTorch fp32 eager [{label}]", path, device="cpu", precision="fp32", comparable=comparable,
                  group=group)


def tuned_candidates(files, *, wanted: Iterable[str], threads: int | None, notes: list[str]) -> list[Candidate]:
    """One row per file that ``pawlens tune`` measured on this machine (at batch 1): the configuration ``auto`` runs it on
    now, beside the static rule's row, so the two choices are timed side by side.  ``threads`` (the run's ``--threads``)
    overrides the tuned thread count; by default the tuned one is kept."""
    from pawlens.errors import PawlensError
    from pawlens.runtime.factory import plan_runner

    out: list[Candidate] = []
    for path, meta in files:
        try:
            plan = plan_runner(path, backend="auto", device="cpu", meta=meta, tuned=True, batch=1)
        except PawlensError as e:
            notes.append(f"{os.path.basename(path)}: no tuned plan ({e})")
            continue
        if plan.source != "tuned" or plan.backend not in set(wanted):
            continue
        is_ckpt = plan.backend == "torch"
        base = os.path.basename(path)
        key = "torch-tuned" if is_ckpt else f"tuned@{base}"
        n = threads if threads else plan.threads
        how = [formats.BACKENDS[plan.backend].name, _shown(meta.precision if not is_ckpt else "fp32")]
        if plan.backend == "openvino":
            how.append(f"{'bf16' if plan.kwargs.get('precision') == 'bf16' else 'f32'} hint")
        if plan.kwargs.get("channels_last"):
            how.append("channels_last")
        how.append(f"{n} thread{'s' if n != 1 else ''}" if n else "default threads")
        c = Candidate(key, f"auto, tuned: {' '.join(how[:2])}, {', '.join(how[2:])}", plan.backend, "fp32" if is_ckpt else meta.precision,
                      "cpu", path, plan.make_kwargs(), gate_precision="fp32" if is_ckpt else meta.precision,
                      threads=n)
        out.append(c)
    return out


def restrict(cands: Sequence[Candidate], backends: Iterable[str], threads: int | None) -> list[Candidate]:
    """Only the candidates of the wanted backends, each with the run's thread count."""
    wanted = set(backends)
    out = [c for c in cands if c.backend in wanted]
    for c in out:
        c.threads = threads
    return out
