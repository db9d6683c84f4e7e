"""PyTorch backend: a pawlens checkpoint on CPU or CUDA, fp32 / bf16 (CPU, AMX) / fp16 (CUDA), channels_last.

    TorchRunner("best.pt", device="cpu", precision="bf16", channels_last=True)

``precision="bf16"`` converts the model once (``model.to(torch.bfloat16)``), which on this CPU beat
``torch.autocast`` (it re-casts the weights every call); ``precision="bf16-autocast"`` is offered for
comparison.  Outputs are always float32 logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.artifact import ArtifactMeta
from models.checkpoint import load_checkpoint, model_from_checkpoint
from models.device import resolve_device
from models.errors import InputError

from .base import InputSpec, Runner

PRECISIONS = ("fp32", "bf16", "bf16-autocast", "fp16")


class TorchRunner(Runner):
    backend = "torch"

    def __init__(self, checkpoint, *, device: str = "cpu", precision: str = "fp32", channels_last: bool = False,
                 threads: int | None = None, name: str | None = None):
        """``checkpoint``: a path, a loaded checkpoint dict, or an ``nn.Module`` (then meta is ``None``)."""
        if precision not in PRECISIONS:
            raise InputError(f"unknown torch precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if precision == "fp16" and device == "cpu":
            raise InputError("torch fp16 needs CUDA; on the CPU use --precision bf16")
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        self.threads = threads
        super().__init__(name or f"torch-{precision}{'-cl' if channels_last else ''}")
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
        self.model = model.eval()

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
        with torch.inference_mode():
            if self.precision == "bf16-autocast":
                with torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16):
                    y = self.model(x)
            else:
                y = self.model(x)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return y.float().cpu().numpy()

    def deactivate_impl(self) -> None:
        self.model = None

    def describe_impl(self) -> dict[str, Any]:
        d = {"device": self.device, "precision": self.precision, "channels_last": self.channels_last, "threads": self.threads}
        if self.ckpt is not None:
            d["arch"] = self.ckpt.get("arch")
            d["path"] = self.ckpt.get("path")
        return d
