"""PyTorch backend: a pawlens checkpoint on CPU or CUDA, fp32 / bf16 (CPU, AMX) / fp16 (CUDA), channels_last.

    TorchRunner("best.pt", device="cpu", precision="bf16", channels_last=True)

    TorchRunner("best.pt", precision="bf16", channels_last=True, compile=True)   # PyTorch's fastest CPU path

``precision="bf16"`` converts the model once (``model.to(torch.bfloat16)``), which on this CPU beat
``torch.autocast`` (it re-casts the weights every call); ``precision="bf16-autocast"`` is offered for
comparison.  Outputs are always float32 logits.

``compile=True`` runs the model through ``torch.compile`` (TorchInductor, static shapes) with
``freezing``: the weights become constants, so batch norm is folded into the convolutions and the
convolution weights are pre-packed for oneDNN once.  Each new batch size compiles once (10-30 s on two
cores, logged); later calls with that size are fast.  On the CPU Inductor needs a C++ compiler (g++ or
clang++); without one the runner says so on activation.  The eager model stays the reference.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Any

import numpy as np

from pawlens.errors import BackendUnavailable, InputError
from pawlens.models.artifact import ArtifactMeta
from pawlens.models.checkpoint import load_checkpoint, model_from_checkpoint
from pawlens.models.device import resolve_device

from .base import InputSpec, Runner

PRECISIONS = ("fp32", "bf16", "bf16-autocast", "fp16")
LOG = logging.getLogger("pawlens")


def cxx_compiler() -> str | None:
    """The C++ compiler TorchInductor would use on the CPU ($CXX, else g++ / clang++ on PATH), or ``None``."""
    for c in (os.environ.get("CXX"), "g++", "clang++"):
        found = shutil.which(c) if c else None
        if found:
            return found
    return None


class TorchRunner(Runner):
    backend = "torch"

    @classmethod
    def for_file(cls, path, *, ckpt=None, meta=None, threads=None, spinning=False, compile=False, channels_last=None, name=None,
                 batch=1, **kw):
        if channels_last is not None:
            kw["channels_last"] = channels_last
        return cls(ckpt if ckpt is not None else path, threads=threads, compile=compile, name=name, **kw)

    def __init__(self, checkpoint, *, device: str = "cpu", precision: str = "fp32", channels_last: bool = False,
                 threads: int | None = None, compile: bool = False, name: str | None = None):
        """``checkpoint``: a path, a loaded checkpoint dict, or an ``nn.Module`` (then meta is ``None``)."""
        if precision not in PRECISIONS:
            raise InputError(f"unknown torch precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if precision == "fp16" and device == "cpu":
            raise InputError("torch fp16 needs CUDA; on the CPU use --precision bf16")
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        self.threads = threads
        self.compile = bool(compile)
        self.compile_s: dict[int, float] = {}  # batch size -> seconds its first (compiling) call took
        super().__init__(name or f"torch-{precision}{'-cl' if channels_last else ''}{'-compiled' if compile else ''}")
        self._source = checkpoint
        self.model = None
        if isinstance(checkpoint, (str, bytes)) or hasattr(checkpoint, "__fspath__"):
            self.ckpt = load_checkpoint(checkpoint)
        elif isinstance(checkpoint, dict):
            self.ckpt = checkpoint
        else:
            self.ckpt = None
        if self.ckpt is not None:
            self.meta = ArtifactMeta.from_checkpoint(self.ckpt)

    def activate_impl(self) -> None:
        import torch

        self.device = resolve_device(self.device)
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise InputError(f"[{self.name}] fp16 needs CUDA; on CPU use bf16")
        if self.threads:
            torch.set_num_threads(int(self.threads))
        model = model_from_checkpoint(self.ckpt) if self.ckpt is not None else self._source.eval()
        model = model.to(self.device)
        if self.precision == "bf16":
            model = model.to(torch.bfloat16)
        elif self.precision == "fp16":
            model = model.half()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model = model.eval()
        if self.compile:
            if not self.device.startswith("cuda"):
                if cxx_compiler() is None:
                    raise BackendUnavailable(
                        f"[{self.name}] torch.compile on the CPU needs a C++ compiler and none is on PATH (g++, clang++ or $CXX); "
                        "install one (apt-get install g++) or run without --compile"
                    )
                # Inductor's C++ build asks torch.utils.cpp_extension, which warns "No CUDA runtime is found" on every
                # compile of a CPU model: true, expected, and noise to a user who asked for a CPU model.
                logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            model = torch.compile(model, dynamic=False)
        self.model = model

    def input_spec(self) -> InputSpec:
        s = self.meta.preprocess.input_size if self.meta else None
        return InputSpec("input", (None, 3, s, s), "float32")

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(batch).to(self.device)
        if self.precision == "bf16":
            x = x.to(torch.bfloat16)
        elif self.precision == "fp16":
            x = x.half()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        first = self.compile and len(batch) not in self.compile_s
        t0 = time.perf_counter()
        with torch.inference_mode():
            if self.precision == "bf16-autocast":
                with torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16):
                    y = self._forward(x)
            else:
                y = self._forward(x)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        if first:
            self.compile_s[len(batch)] = round(time.perf_counter() - t0, 2)
            LOG.info("[%s] torch.compile: batch %d compiled in %.1f s", self.name, len(batch), self.compile_s[len(batch)])
        return y.float().cpu().numpy()

    def _forward(self, x):
        if not self.compile:
            return self.model(x)
        import torch._inductor.config as inductor_config

        try:
            # freezing is read when a shape compiles, i.e. inside a call; torch.compile(options={"freezing": True})
            # compiled without it (the weights stayed parameters, a slower graph), so the config is patched around each call.
            with inductor_config.patch(freezing=True):
                return self.model(x)
        except Exception as e:  # Inductor's errors run to pages; the first line names the cause
            if isinstance(e, (InputError, BackendUnavailable)):
                raise
            first_line = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise RuntimeError(f"[{self.name}] torch.compile failed ({type(e).__name__}: {first_line[:200]}); run without --compile") from None

    def deactivate_impl(self) -> None:
        self.model = None

    def describe_impl(self) -> dict[str, Any]:
        d = {"device": self.device, "precision": self.precision, "channels_last": self.channels_last, "threads": self.threads,
             "compiled": self.compile}
        if self.compile:
            d["compile_s"] = dict(self.compile_s)
        if self.ckpt is not None:
            d["arch"] = self.ckpt.get("arch")
            d["path"] = self.ckpt.get("path")
        return d
