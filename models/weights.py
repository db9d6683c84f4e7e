"""Loading a local state-dict file into a model, with one-line errors for the usual mistakes."""

from __future__ import annotations

import os

from pawlens.errors import WeightsError


def load_state_dict_file(model, path: str, *, arch: str, ignore_prefixes: tuple[str, ...] = (), transform=None) -> None:
    """Load ``path`` (a state dict, or a dict holding one under ``state_dict``/``model``) into ``model``.

    Keys starting with ``ignore_prefixes`` (the old head) are skipped; ``transform`` (a callable on the state
    dict) renames keys from another implementation's layout first.  Raises WeightsError when the
    file does not exist, cannot be read safely, or holds weights of another architecture.
    """
    import torch

    if not os.path.isfile(path):
        raise WeightsError(f"{path}: weights file not found; pass an existing state-dict file, --weights imagenet or --weights none")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{path}: cannot load as a state dict ({type(e).__name__}); truncated, not a torch file, or needs pickled code") from None
    if isinstance(obj, dict) and obj.get("format") == "pawlens-checkpoint":
        obj = obj["state_dict"]
    elif isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"{path}: does not hold a state dict")
    sd = {k.removeprefix("module."): v for k, v in obj.items() if hasattr(v, "shape")}
    if transform is not None:
        sd = transform(sd)
    own = model.state_dict()
    sd = {k: v for k, v in sd.items() if not k.startswith(ignore_prefixes)}
    wanted = {k for k in own if not k.startswith(ignore_prefixes)}
    missing = sorted(wanted - set(sd))
    shape_bad = sorted(k for k in wanted & set(sd) if tuple(sd[k].shape) != tuple(own[k].shape))
    if missing or shape_bad:
        frac = 1 - (len(missing) + len(shape_bad)) / max(1, len(wanted))
        detail = (missing + shape_bad)[:2]
        raise WeightsError(
            f"{path}: holds weights of another architecture, not {arch} ({len(missing)} missing and "
            f"{len(shape_bad)} mis-shaped tensors, e.g. {detail}; {frac:.0%} match)"
        )
    model.load_state_dict(sd, strict=False)
