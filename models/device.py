"""Which torch device a ``--device`` flag means: one rule for training, evaluation, the PyTorch runner and Grad-CAM."""

from __future__ import annotations

from pawlens.errors import BackendUnavailable, InputError


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda``/``cuda:N`` without a GPU -> BackendUnavailable."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"--device {device}: torch sees no CUDA GPU here; use --device cpu (or auto)")
        return device
    if device == "cpu":
        return "cpu"
    raise InputError(f"unknown device {device!r}; choose auto, cpu or cuda")


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively in oneDNN (AVX512-BF16 or AMX); without it bf16 is emulated, many times slower."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - older builds without the op
        return False
