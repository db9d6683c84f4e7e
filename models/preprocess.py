"""The one definition of preprocessing, with two implementations that agree.

A :class:`PreprocessConfig` is saved with every artifact (checkpoint, ONNX metadata, engine
sidecar).  From it come

* :func:`torch_eval_transform` / :func:`torch_train_transform`: torch transforms on PIL images used
  by training and evaluation, and
* :func:`preprocess_numpy`: a NumPy/OpenCV path on raw ``uint8`` RGB frames, used by every runtime
  backend and the GUI.

Resize rule (both paths): scale so the shorter side is ``resize_size`` (aspect kept), bilinear
interpolation with half-pixel centres and **no antialiasing**, computed in float32; then a centre
crop of ``input_size`` x ``input_size``; then ``(x / 255 - mean) / std`` in RGB order, NCHW.

Why no antialiasing: OpenCV's ``INTER_LINEAR`` on float32 and ``torch.nn.functional.interpolate(
mode="bilinear", align_corners=False, antialias=False)`` compute the same thing (agreement ~1e-5
after normalisation, tested on real photos), and the OpenCV path takes ~1 ms on a 640x480 frame.
Antialiased (PIL-style) resizing has no fast OpenCV twin, and OpenCV's uint8 kernels use fixed-point
weights that differ by up to one grey level (~0.017 after normalisation).  The model is trained
with exactly this resize, so it sees at deployment what it saw in training.

Images are read by :func:`load_image`, which converts every mode (grayscale, RGBA, CMYK, palette,
16-bit) to 8-bit RGB, honours EXIF orientation, downsizes enormous images on load and refuses
files that are not images with an :class:`~models.errors.ImageError`.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import ImageError, InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Images above this many pixels are refused outright (decompression-bomb guard).
MAX_PIXELS = 200_000_000
#: Images whose shorter side exceeds this are reduced on load (cheap JPEG draft or a box filter),
#: which keeps memory bounded; it is far above any model input size.
MAX_SIDE_ON_LOAD = 2048

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything needed to turn a raw RGB frame into the model's input tensor."""

    input_size: int = 224
    resize_size: int = 256
    crop: str = "center"
    interpolation: str = "bilinear"
    antialias: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    layout: str = "NCHW"
    scale: float = 255.0
    version: int = field(default=1)

    @classmethod
    def for_size(cls, input_size: int, crop_pct: float = 0.875) -> "PreprocessConfig":
        if int(input_size) < 16:
            raise InputError(f"--img-size {input_size} is too small; use at least 16 (224 for ResNet50)")
        return cls(input_size=int(input_size), resize_size=int(math.floor(input_size / crop_pct)))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown preprocessing keys {sorted(unknown)}; this file was made by a newer pawlens")
        kw = dict(d)
        for k in ("mean", "std"):
            if k in kw:
                kw[k] = tuple(float(x) for x in kw[k])
        cfg = cls(**kw)
        if cfg.interpolation != "bilinear" or cfg.crop != "center" or cfg.channel_order != "RGB" or cfg.antialias:
            raise InputError(f"unsupported preprocessing {cfg}; only bilinear/center/RGB without antialias is implemented")
        return cfg


def resized_shape(h: int, w: int, cfg: PreprocessConfig) -> tuple[int, int]:
    """(new_h, new_w) after scaling the shorter side to ``cfg.resize_size``; shared by both paths."""
    s = cfg.resize_size
    if h <= w:
        return s, max(cfg.input_size, int(round(w * s / h)))
    return max(cfg.input_size, int(round(h * s / w))), s


def crop_box(h: int, w: int, size: int) -> tuple[int, int]:
    """Top-left corner of the centre crop of ``size`` from an ``h`` x ``w`` image."""
    return (h - size) // 2, (w - size) // 2


# ----------------------------------------------------------------------------- image loading


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an ``(H, W, 3)`` ``uint8`` RGB array.

    Raises:
        ImageError: zero-byte, truncated or non-image files, and images over ``MAX_PIXELS``.
    """
    from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

    p = os.fspath(path)
    try:
        size = os.path.getsize(p)
    except OSError:
        raise ImageError(f"{p}: file not found") from None
    if size == 0:
        raise ImageError(f"{p}: zero-byte file, not an image")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            try:
                with Image.open(p) as im:
                    w, h = im.size
                    if w * h > MAX_PIXELS:
                        raise ImageError(f"{p}: {w}x{h} pixels is too large (limit {MAX_PIXELS:,}); downscale it first")
                    if min(w, h) > MAX_SIDE_ON_LOAD and im.format == "JPEG":
                        im.draft("RGB", (max(1, w * MAX_SIDE_ON_LOAD // min(w, h)), max(1, h * MAX_SIDE_ON_LOAD // min(w, h))))
                    im.load()
                    im = ImageOps.exif_transpose(im)
                    return _to_rgb8(im, p)
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        kind = "not a readable image" if isinstance(e, UnidentifiedImageError) else f"too large (over {MAX_PIXELS:,} pixels); downscale it first"
        raise ImageError(f"{p}: {kind}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{p}: truncated or corrupt image ({' '.join(str(e).split())[:120]})") from None


def _to_rgb8(im, p: str) -> np.ndarray:
    from PIL import Image

    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        arr = np.repeat(a[..., None], 3, axis=2)
    elif mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = a / a.max() if a.max() > 1 else a
        arr = np.repeat(np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    elif mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        arr = np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
    else:
        arr = np.asarray(im.convert("RGB"))
    h, w = arr.shape[:2]
    if min(h, w) > MAX_SIDE_ON_LOAD:
        import cv2

        s = MAX_SIDE_ON_LOAD / min(h, w)
        arr = cv2.resize(arr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    if arr.ndim != 3 or arr.shape[2] != 3 or h == 0 or w == 0:
        raise ImageError(f"{p}: unexpected image shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image files (by extension) below ``folder``, sorted; not opened."""
    out = []
    for root, _dirs, files in os.walk(folder):
        for f in files:
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."):
                out.append(os.path.join(root, f))
    return sorted(out)


# ----------------------------------------------------------------------------- NumPy / OpenCV path


def preprocess_numpy(frames: np.ndarray | list[np.ndarray], cfg: PreprocessConfig, *, bgr: bool = False) -> np.ndarray:
    """Raw ``uint8`` frame(s) ``(H, W, 3)`` (RGB, or BGR with ``bgr=True``) -> ``(N, 3, S, S)`` float32."""
    import cv2

    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        frames = [frames]
    n = len(frames)
    s = cfg.input_size
    out = np.empty((n, 3, s, s), dtype=np.float32)
    mean = np.asarray(cfg.mean, dtype=np.float32) * cfg.scale
    inv_std = 1.0 / (np.asarray(cfg.std, dtype=np.float32) * cfg.scale)
    for i, f in enumerate(frames):
        f = np.asarray(f)
        if f.ndim == 2:
            f = np.repeat(f[..., None], 3, axis=2)
        if f.ndim != 3 or f.shape[2] not in (3, 4) or f.shape[0] < 1 or f.shape[1] < 1:
            raise InputError(f"expected an (H, W, 3) image, got shape {f.shape}")
        if f.shape[2] == 4:
            f = f[..., :3]
        if bgr:
            f = f[..., ::-1]
        h, w = f.shape[:2]
        nh, nw = resized_shape(h, w, cfg)
        r = cv2.resize(f.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR)
        if r.ndim == 2:
            r = r[..., None]
        y0, x0 = crop_box(nh, nw, s)
        c = r[y0 : y0 + s, x0 : x0 + s]
        out[i] = ((c - mean) * inv_std).transpose(2, 0, 1)
    return out


# ----------------------------------------------------------------------------- torch path


class _TorchResizeCrop:
    """Shorter-side bilinear resize (no antialias) + optional centre crop on a float CHW tensor."""

    def __init__(self, cfg: PreprocessConfig, crop: bool = True):
        self.cfg = cfg
        self.crop = crop

    def __call__(self, x):
        import torch.nn.functional as F

        h, w = x.shape[-2:]
        nh, nw = resized_shape(h, w, self.cfg)
        x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)[0]
        if self.crop:
            s = self.cfg.input_size
            y0, x0 = crop_box(nh, nw, s)
            x = x[:, y0 : y0 + s, x0 : x0 + s]
        return x


class _ToFloatTensor:
    def __call__(self, img):
        import torch

        a = np.asarray(img, dtype=np.uint8)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()


class _Normalize:
    def __init__(self, cfg: PreprocessConfig):
        import torch

        self.mean = torch.tensor(cfg.mean).view(3, 1, 1) * cfg.scale
        self.std = torch.tensor(cfg.std).view(3, 1, 1) * cfg.scale

    def __call__(self, x):
        return (x - self.mean) / self.std


def torch_eval_transform(cfg: PreprocessConfig):
    """PIL image or ``uint8`` RGB array -> normalised ``(3, S, S)`` float tensor (matches :func:`preprocess_numpy`)."""
    from torchvision import transforms as T

    return T.Compose([_ToFloatTensor(), _TorchResizeCrop(cfg), _Normalize(cfg)])


def torch_train_transform(cfg: PreprocessConfig, *, rotation: float = 10.0, jitter: float = 0.1, hflip: bool = True):
    """Training augmentation: the eval resize, a random crop, horizontal flip, small rotation, colour jitter.

    No vertical flips (cats and dogs are seldom upside down).
    """
    from torchvision import transforms as T

    ops = [_ToFloatTensor(), _TorchResizeCrop(cfg, crop=False), T.RandomCrop(cfg.input_size)]
    if hflip:
        ops.append(T.RandomHorizontalFlip())
    if rotation:
        ops.append(T.RandomRotation(rotation, interpolation=T.InterpolationMode.BILINEAR))
    if jitter:
        ops += [_Scale(1 / 255.0), T.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter), _Scale(255.0)]
    ops.append(_Normalize(cfg))
    return T.Compose(ops)


class _Scale:
    def __init__(self, k: float):
        self.k = k

    def __call__(self, x):
        return x * self.k
