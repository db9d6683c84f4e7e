"""The two preprocessing implementations agree, and every image mode loads as 8-bit RGB."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pawlens.errors import ImageError
from pawlens.models.preprocess import (
    PreprocessConfig,
    load_image,
    preprocess_numpy,
    torch_eval_transform,
    torch_train_transform,
)


@pytest.mark.realdata
@pytest.mark.parametrize("size", [224, 96])
def test_torch_and_numpy_paths_agree_on_real_photos(real_photos, size):
    cfg = PreprocessConfig.for_size(size)
    tf = torch_eval_transform(cfg)
    worst = 0.0
    for p in real_photos:
        img = load_image(p)
        a = tf(img).numpy()
        b = preprocess_numpy(img, cfg)[0]
        assert a.shape == b.shape == (3, size, size)
        worst = max(worst, float(np.abs(a - b).max()))
    assert worst <= 1e-3, f"max abs difference {worst:.2e} after normalisation"


def test_paths_agree_on_odd_shapes():
    rng = np.random.default_rng(1)
    cfg = PreprocessConfig.for_size(64)
    tf = torch_eval_transform(cfg)
    for h, w in [(1, 1), (3, 500), (480, 640), (73, 64), (64, 64), (1000, 20)]:
        img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        a = tf(img).numpy()
        b = preprocess_numpy(img, cfg)[0]
        assert a.shape == (3, 64, 64)
        assert np.abs(a - b).max() <= 1e-3, (h, w)


def test_bgr_flag_and_batch():
    rng = np.random.default_rng(2)
    cfg = PreprocessConfig.for_size(32)
    img = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    a = preprocess_numpy([img, img], cfg)
    b = preprocess_numpy(img[..., ::-1].copy(), cfg, bgr=True)
    assert a.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)


def test_numpy_path_is_the_broadcast_formula_bit_for_bit():
    """The per-plane normalisation gives exactly ``(crop - mean) / std`` broadcast over HWC, for 3/4-channel, grey and
    BGR frames (the one definition of preprocessing: only how it is computed changed)."""
    import cv2

    from pawlens.models.preprocess import crop_box, resized_shape

    rng = np.random.default_rng(3)
    cfg = PreprocessConfig(input_size=48, resize_size=56, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

    def formula(rgb):
        mean = np.asarray(cfg.mean, np.float32) * cfg.scale
        inv_std = 1.0 / (np.asarray(cfg.std, np.float32) * cfg.scale)
        nh, nw = resized_shape(*rgb.shape[:2], cfg)
        r = cv2.resize(rgb.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR)
        y0, x0 = crop_box(nh, nw, cfg.input_size)
        return ((r[y0 : y0 + 48, x0 : x0 + 48] - mean) * inv_std).transpose(2, 0, 1)

    for h, w in [(60, 90), (333, 250), (48, 48)]:
        img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        want = formula(img)
        np.testing.assert_array_equal(preprocess_numpy(img, cfg)[0], want)
        np.testing.assert_array_equal(preprocess_numpy(img[..., ::-1].copy(), cfg, bgr=True)[0], want)
        rgba = np.concatenate([img, np.full((h, w, 1), 7, np.uint8)], axis=2)
        np.testing.assert_array_equal(preprocess_numpy(rgba, cfg)[0], want)
        grey = img[..., 0]
        np.testing.assert_array_equal(preprocess_numpy([grey], cfg)[0], formula(np.repeat(grey[..., None], 3, axis=2)))


def test_rgb_jpeg_loads_as_pillow_converts_it(tmp_path):
    img = np.random.default_rng(4).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "x.jpg", quality=90)
    got = load_image(tmp_path / "x.jpg")
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, np.asarray(Image.open(tmp_path / "x.jpg").convert("RGB")))


def test_train_transform_shape():
    import torch

    torch.manual_seed(0)
    cfg = PreprocessConfig.for_size(48)
    x = torch_train_transform(cfg)(np.full((60, 90, 3), 128, np.uint8))
    assert tuple(x.shape) == (3, 48, 48)


def test_config_round_trip():
    cfg = PreprocessConfig.for_size(96)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.resize_size == 109


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16", "LA", "1"])
def test_every_mode_loads_as_rgb8(tmp_path, mode):
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8))
    if mode == "I;16":
        im = Image.fromarray((rng.integers(0, 65535, size=(20, 30))).astype(np.uint16))
    else:
        im = base.convert(mode)
    ext = "tiff" if mode == "CMYK" else "png"
    p = tmp_path / f"x.{ext}"
    im.save(p)
    a = load_image(p)
    assert a.dtype == np.uint8 and a.shape == (20, 30, 3)


def test_sixteen_bit_png_scaled_not_clipped(tmp_path):
    a16 = np.full((8, 8), 65535, np.uint16)
    a16[:4] = 32768
    p = tmp_path / "16.png"
    Image.fromarray(a16).save(p)
    a = load_image(p)
    assert a[0, 0, 0] == 128 and a[7, 7, 0] == 255


@pytest.mark.parametrize("content", [b"", b"this is text, not a jpeg\n", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"])
def test_bad_files_raise_one_line_image_error(tmp_path, content):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageError) as e:
        load_image(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_truncated_jpeg(tmp_path):
    p = tmp_path / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:1500])
    with pytest.raises(ImageError, match="truncated"):
        load_image(p)


def test_enormous_image_downscaled_on_load(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (6000, 4000), (10, 200, 30)).save(p)
    a = load_image(p)
    assert min(a.shape[:2]) == 2048 and a[0, 0].tolist() == [10, 200, 30]


@pytest.mark.parametrize("change, field", [
    ({"resize_size": 10**6}, "resize_size"), ({"resize_size": 100}, "resize_size"), ({"mean": [0.5, 0.5]}, "mean"),
    ({"input_size": 0}, "input_size"), ({"input_size": -64}, "input_size"), ({"input_size": "64"}, "input_size"),
    ({"input_size": 64.0}, "input_size"), ({"input_size": True}, "input_size"), ({"std": [0, 0.2, 0.2]}, "std"),
    ({"std": [float("nan"), 1, 1]}, "std"), ({"mean": [[0.5], 0.5, 0.5]}, "mean"), ({"mean": "0.5"}, "mean"),
    ({"layout": "NHWC"}, "layout"), ({"antialias": 1}, "antialias"), ({"scale": 0}, "scale"), ({"bogus": 1}, "bogus"),
])
def test_from_dict_checks_every_field(change, field):
    d = {**PreprocessConfig.for_size(224).to_dict(), **change}
    with pytest.raises(ValueError) as e:
        PreprocessConfig.from_dict(d)
    assert field in str(e.value) and "\n" not in str(e.value)


def test_from_dict_accepts_other_normalisations():
    cfg = PreprocessConfig.from_dict({**PreprocessConfig.for_size(224).to_dict(), "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]})
    assert cfg.mean == (0.5, 0.5, 0.5) and cfg.std == (0.5, 0.5, 0.5)


def test_strips_are_refused_from_the_header_and_by_resized_shape(tmp_path):
    from pawlens.models.preprocess import MAX_ASPECT, resized_shape

    p = tmp_path / "strip.png"
    Image.new("RGB", (MAX_ASPECT * 4 + 4, 4)).save(p)
    with pytest.raises(ImageError, match="strip"):
        load_image(p)
    with pytest.raises(ImageError, match="strip"):
        resized_shape(1, 1_000_000, PreprocessConfig.for_size(224))
    assert resized_shape(3, 500, PreprocessConfig.for_size(64)) == (73, 12167)  # odd but bounded shapes still work


def test_sixteen_bit_integer_scaling_matches_the_float_formula(tmp_path):
    a16 = np.arange(0, 65536, 8, dtype=np.uint16).reshape(64, 128)
    p = tmp_path / "ramp.png"
    Image.fromarray(a16).save(p)
    want = np.clip(a16.astype(np.float64) / 65535 * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(load_image(p)[..., 0], want)


def test_large_images_are_reduced_in_strips_to_the_pixel_cap(tmp_path):
    from pawlens.models.preprocess import MAX_LOAD_PIXELS

    p = tmp_path / "pano.png"
    Image.new("RGB", (12000, 1500), (10, 200, 30)).save(p)  # 18 MP, shorter side under 2048: reduced by the pixel cap
    a = load_image(p)
    assert a.shape[0] * a.shape[1] <= MAX_LOAD_PIXELS * 1.01 and abs(a.shape[1] / a.shape[0] - 8) < 0.05
    assert a[0, 0].tolist() == [10, 200, 30]
