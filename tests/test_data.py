"""train.data: the three folder layouts, Oxford Pets, stratified subset and split, split.json, the image scan and the Dataset."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_image, write_image_folder
from PIL import Image

from pawlens.errors import DataError
from pawlens.models.preprocess import PreprocessConfig, torch_eval_transform
from pawlens.train.data import (
    ImageListDataset,
    discover,
    load_split,
    quick_check,
    stratified_split,
    stratified_subset,
)


def _flat(root: Path, n: int = 10, classes=("cat", "dog")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for ci, c in enumerate(classes):
        for i in range(n):
            Image.fromarray(synthetic_image(ci, 32, rng)).save(root / f"{c}.{i + 100}.jpg")
    return root


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header claims w x h (no pixel data): what an enormous image looks like to a header scan."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def _corrupt_png_with_end(path: Path) -> None:
    """A PNG with a damaged pixel stream but an intact header and IEND: passes the scan, fails to decode."""
    Image.fromarray(synthetic_image(0, 32)).save(path)
    b = bytearray(path.read_bytes())
    i = b.index(b"IDAT") + 8
    b[i : i + 40] = b"\x00" * 40
    path.write_bytes(bytes(b))


# ----------------------------------------------------------------------------- layouts


def test_imagefolder_split_is_stratified_and_complete(tmp_path):
    root = write_image_folder(tmp_path / "d", n_per_class=20, size=32)
    # unbalanced: drop 8 dogs
    for p in sorted((root / "dog").glob("*.jpg"))[:8]:
        p.unlink()
    spec = discover(str(root), seed=3)
    assert spec.layout == "imagefolder" and spec.class_names == ["cat", "dog"] and spec.split_source == "seed"
    c = spec.counts()
    assert c["val"] == {"cat": 3, "dog": 2} and c["test"] == {"cat": 3, "dog": 2}
    assert c["train"] == {"cat": 14, "dog": 8}
    allp = [p for s in spec.splits.values() for p, _ in s]
    assert len(allp) == len(set(allp)) == 32
    for s in spec.splits.values():
        for p, y in s:
            assert Path(p).parent.name == spec.class_names[y]


def test_split_reproducible_from_seed_and_saved(tmp_path):
    root = write_image_folder(tmp_path / "d", n_per_class=15, size=32)
    a, b, other = discover(str(root), seed=7), discover(str(root), seed=7), discover(str(root), seed=8)
    assert a.splits == b.splits
    assert a.splits["val"] != other.splits["val"]
    a.save(str(tmp_path / "split.json"))
    obj = json.loads((tmp_path / "split.json").read_text())
    assert obj["seed"] == 7 and obj["fractions"] == {"train": 0.7, "val": 0.15, "test": 0.15}
    assert all(not os.path.isabs(p) for p, _ in obj["splits"]["train"])  # relative to the data folder
    back = load_split(str(tmp_path / "split.json"))
    assert back.splits == a.splits and back.class_names == a.class_names


def test_stratified_split_counts_70_15_15():
    samples = [(f"a{i}", 0) for i in range(100)] + [(f"b{i}", 1) for i in range(40)]
    s = stratified_split(samples, 0.15, 0.15, seed=0)
    cnt = {k: Counter(y for _, y in v) for k, v in s.items()}
    assert cnt["val"] == {0: 15, 1: 6} and cnt["test"] == {0: 15, 1: 6} and cnt["train"] == {0: 70, 1: 28}
    assert sorted(sum(s.values(), [])) == sorted(samples)


def test_stratified_subset_keeps_class_ratio_and_is_deterministic():
    samples = [(f"a{i:03d}", 0) for i in range(300)] + [(f"b{i:03d}", 1) for i in range(100)]
    sub = stratified_subset(samples, 40, seed=1)
    assert len(sub) == 40 and Counter(y for _, y in sub) == {0: 30, 1: 10}
    assert sub == stratified_subset(list(reversed(samples)), 40, seed=1)
    assert sub != stratified_subset(samples, 40, seed=2)


def test_max_images_subset_then_split(tmp_path):
    root = write_image_folder(tmp_path / "d", n_per_class=30, size=32)
    spec = discover(str(root), seed=0, max_images=20)
    assert sum(len(v) for v in spec.splits.values()) == 20
    assert spec.counts()["train"] == {"cat": 6, "dog": 6}  # 10 per class: 2 val, 2 test


def test_presplit_layout(tmp_path):
    root = tmp_path / "d"
    for s, n in (("train", 8), ("val", 3), ("test", 2)):
        write_image_folder(root / s, n_per_class=n, size=32)
    spec = discover(str(root))
    assert spec.layout == "presplit" and spec.split_source == "folders"
    assert {s: sum(c.values()) for s, c in spec.counts().items()} == {"train": 16, "val": 6, "test": 4}
    assert all("/test/" in p for p, _ in spec.splits["test"])


def test_presplit_without_test_and_flat_splits(tmp_path):
    root = tmp_path / "d"
    _flat(root / "train", 6)
    _flat(root / "valid", 2)
    spec = discover(str(root))
    assert spec.layout == "presplit" and spec.class_names == ["cat", "dog"]
    assert len(spec.splits["train"]) == 12 and len(spec.splits["val"]) == 4 and spec.splits["test"] == []
    assert any("no test/" in n for n in spec.notes)


def test_presplit_val_class_not_in_train(tmp_path):
    root = tmp_path / "d"
    write_image_folder(root / "train", n_per_class=3, size=32)
    write_image_folder(root / "val", n_per_class=2, size=32, classes=("cat", "bird"))
    with pytest.raises(DataError, match="bird"):
        discover(str(root))


def test_kaggle_flat_layout(tmp_path):
    root = _flat(tmp_path / "train", 10)
    Image.fromarray(synthetic_image(0, 32)).save(root / "12345.jpg")  # no class in the name: ignored
    spec = discover(str(root), seed=1)
    assert spec.layout == "kaggle-flat" and spec.class_names == ["cat", "dog"]
    assert sum(len(v) for v in spec.splits.values()) == 20
    for s in spec.splits.values():
        for p, y in s:
            assert os.path.basename(p).startswith(spec.class_names[y] + ".")
    assert any("no class" in n for n in spec.notes)


def test_camera_names_are_no_class(tmp_path):
    """IMG_cat.4199.jpg (a phone's name) is not a photo of class 'img_cat': passed over with a note naming one and the fix,
    and a folder of only such names is refused in one line that says how to rename them."""
    root = _flat(tmp_path / "train", 6)
    for i, name in enumerate(("IMG_cat.4199.jpg", "DSC-dog.0001.jpg", "PXL_20240101.123.jpg")):
        Image.fromarray(synthetic_image(i % 2, 32)).save(root / name)
    spec = discover(str(root), seed=1)
    assert spec.class_names == ["cat", "dog"] and sum(len(v) for v in spec.splits.values()) == 12
    (note,) = [n for n in spec.notes if "camera" in n]
    assert "3 image(s)" in note and "DSC-dog.0001.jpg" in note and "cat.4199.jpg" in note, note
    only = tmp_path / "phone"
    only.mkdir()
    for i in range(4):
        Image.fromarray(synthetic_image(i % 2, 32)).save(only / f"IMG_{'cat' if i % 2 else 'dog'}.{4000 + i}.jpg")
    with pytest.raises(DataError, match=r"no class in their names: 4 image\(s\) named like a camera's files.*rename them"):
        discover(str(only), seed=1)


def test_kaggle_download_layout_train_and_unlabelled_test1(tmp_path):
    _flat(tmp_path / "k" / "train", 6)
    (tmp_path / "k" / "test1").mkdir()
    Image.fromarray(synthetic_image(0, 32)).save(tmp_path / "k" / "test1" / "1.jpg")
    spec = discover(str(tmp_path / "k"))
    assert spec.layout == "kaggle-flat" and spec.root.endswith("train") and sum(len(v) for v in spec.splits.values()) == 12


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda r: r / "nope", "data folder not found"),
        (lambda r: (r / "f.txt").write_text("x") and r / "f.txt", "is a file"),
        (lambda r: (r / "empty").mkdir() or r / "empty", "no images found"),
        (lambda r: write_image_folder(r / "one", 4, 32, classes=("cat",)), "only one class"),
        (lambda r: _flat(r / "flat", 3, classes=("cat",)), "only one class"),
    ],
    ids=["missing", "file", "empty", "one-class", "one-class-flat"],
)
def test_bad_data_folders_fail_in_one_line(tmp_path, make, match):
    p = make(tmp_path)
    with pytest.raises(DataError, match=match) as e:
        discover(str(p))
    assert "\n" not in str(e.value) and str(e.value).startswith("[data]")


def test_flat_names_without_classes(tmp_path):
    (tmp_path / "x").mkdir()
    for i in range(3):
        Image.fromarray(synthetic_image(0, 32)).save(tmp_path / "x" / f"{i}.jpg")
    with pytest.raises(DataError, match="no class in their names"):
        discover(str(tmp_path / "x"))


# ----------------------------------------------------------------------------- Oxford-IIIT Pet


def test_oxford_pets_offline_is_one_line(monkeypatch, tmp_path):
    import urllib.error

    def no_net(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.datasets.oxford_iiit_pet.download_and_extract_archive", no_net)
    with pytest.raises(DataError, match="oxford-pets: download .* failed .*offline") as e:
        discover("oxford-pets", cache=str(tmp_path / "cache"))
    assert "\n" not in str(e.value)


def test_oxford_pets_species_labels_from_an_extracted_copy(tmp_path):
    base = tmp_path / "cache" / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations").mkdir()
    rows = {"trainval": [], "test": []}
    rng = np.random.default_rng(0)
    for split, n in (("trainval", 10), ("test", 4)):
        for i in range(n):
            species = 1 + i % 2  # 1 cat, 2 dog
            name = f"{'Bengal' if species == 1 else 'beagle'}_{split}{i}"
            Image.fromarray(synthetic_image(species - 1, 32, rng)).save(base / "images" / f"{name}.jpg")
            rows[split].append(f"{name} {species} {species} 1")
    for split, r in rows.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(r) + "\n")
    spec = discover("oxford-pets", cache=str(tmp_path / "cache"), seed=0)
    assert spec.layout == "oxford-pets" and spec.class_names == ["cat", "dog"]
    assert len(spec.splits["test"]) == 4 and len(spec.splits["train"]) + len(spec.splits["val"]) == 10
    for s in spec.splits.values():
        for p, y in s:
            assert (y == 0) == os.path.basename(p).startswith("Bengal")


# ----------------------------------------------------------------------------- scan and Dataset


def test_quick_check_flags_bad_files_and_passes_odd_modes(tmp_path):
    good = tmp_path / "g.jpg"
    Image.fromarray(synthetic_image(0, 48)).save(good)
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not a picture\n")
    data = good.read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(synthetic_image(1, 48)).save(tmp_path / "p.png")
    (tmp_path / "trunc.png").write_bytes((tmp_path / "p.png").read_bytes()[:-30])
    _png_header_only(tmp_path / "huge.png", 30000, 20000)
    assert quick_check(str(good)) is None
    assert quick_check(str(tmp_path / "zero.jpg")) == "zero-byte file"
    assert quick_check(str(tmp_path / "text.jpg")) == "not a readable image"
    assert "truncated" in quick_check(str(tmp_path / "trunc.jpg"))
    assert "truncated" in quick_check(str(tmp_path / "trunc.png"))
    assert "too large" in quick_check(str(tmp_path / "huge.png"))
    rgb = synthetic_image(0, 40)
    odd = {
        "gray.png": Image.fromarray(rgb).convert("L"),
        "rgba.png": Image.fromarray(rgb).convert("RGBA"),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "p16.png": Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)),
    }
    ds_items = []
    for name, im in odd.items():
        im.save(tmp_path / name)
        assert quick_check(str(tmp_path / name)) is None, name
        ds_items.append((str(tmp_path / name), 0))
    ds = ImageListDataset(ds_items, torch_eval_transform(PreprocessConfig.for_size(32)), 32)
    for i in range(len(ds)):
        x, y, idx, err = ds[i]
        assert err == "" and tuple(x.shape) == (3, 32, 32) and idx == i


def test_scan_skips_and_counts_and_all_unreadable_is_an_error(tmp_path):
    root = write_image_folder(tmp_path / "d", n_per_class=10, size=32)
    (root / "cat" / "zero.jpg").write_bytes(b"")
    (root / "dog" / "notes.jpg").write_text("hello")
    spec = discover(str(root), seed=0)
    assert spec.scan() == 2
    assert sorted(os.path.basename(p) for p, _ in spec.skipped) == ["notes.jpg", "zero.jpg"]
    assert all(os.path.basename(p) not in ("zero.jpg", "notes.jpg") for v in spec.splits.values() for p, _ in v)

    bad = tmp_path / "bad"
    for c in ("cat", "dog"):
        (bad / c).mkdir(parents=True)
        for i in range(3):
            (bad / c / f"{i}.jpg").write_bytes(b"" if i % 2 else b"GIF89a? no")
    with pytest.raises(DataError, match="none of the 6 images can be read"):
        discover(str(bad)).scan()


def test_scan_class_left_without_readable_images(tmp_path):
    root = write_image_folder(tmp_path / "d", n_per_class=6, size=32, classes=("cat",))
    (root / "dog").mkdir()
    for i in range(6):
        (root / "dog" / f"{i}.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="only class \\['cat'\\]"):
        discover(str(root)).scan()


def test_dataset_skips_an_image_that_fails_to_decode(tmp_path):
    _corrupt_png_with_end(tmp_path / "bad.png")
    assert quick_check(str(tmp_path / "bad.png")) is None  # the cheap scan cannot see it
    ds = ImageListDataset([(str(tmp_path / "bad.png"), 1)], torch_eval_transform(PreprocessConfig.for_size(32)), 32)
    x, y, _i, err = ds[0]
    assert "bad.png" in err and y == 1 and tuple(x.shape) == (3, 32, 32)


def test_enormous_image_is_downscaled_on_load(tmp_path):
    Image.new("RGB", (4200, 2600), (200, 30, 30)).save(tmp_path / "big.jpg", quality=70)
    assert quick_check(str(tmp_path / "big.jpg")) is None
    ds = ImageListDataset([(str(tmp_path / "big.jpg"), 0)], torch_eval_transform(PreprocessConfig.for_size(32)), 32)
    x, _y, _i, err = ds[0]
    assert err == "" and tuple(x.shape) == (3, 32, 32)


# ----------------------------------------------------------------------------- the photo cache (--cache)


def test_cache_serves_what_decoding_would(tmp_path):
    """Validation photos come back bit for bit as decoding + preprocessing gives them; training photos keep the eval
    resize (the augmentation's first step) and still load after the files are gone; a bad file stays a counted error."""
    import torch

    from pawlens.models.preprocess import resized_uint8, torch_train_transform

    root = write_image_folder(tmp_path / "d", n_per_class=3, size=80)
    _corrupt_png_with_end(root / "cat" / "bad.png")
    spec = discover(str(root), seed=0)
    pre = PreprocessConfig.for_size(32)
    samples = [(str(p), 0) for p in sorted((root / "cat").iterdir())]
    plain = ImageListDataset(samples, torch_eval_transform(pre), 32)
    cached = ImageListDataset(samples, torch_eval_transform(pre), 32)
    cached.fill_cache(cached.transform, desc="cache val")
    for i in range(len(samples)):
        a, b = plain[i], cached[i]
        assert torch.equal(a[0], b[0]) and a[1:3] == b[1:3] and (a[3] == "") == (b[3] == "")
    assert any(cached[i][3] for i in range(len(samples)))  # the corrupt PNG is an error, not a crash

    train = ImageListDataset(spec.splits["train"], torch_train_transform(pre, augment="resized-crop"), 32)
    train.fill_cache(lambda im: resized_uint8(im, pre), train.transform, desc="cache train")
    kept = next(k for k in train._cache if not isinstance(k, str))
    assert kept.dtype == np.uint8 and min(kept.shape[:2]) == pre.resize_size
    for p, _ in spec.splits["train"]:
        os.remove(p)
    x, _y, _i, err = train[0]
    assert err == "" and tuple(x.shape) == (3, 32, 32)


def test_cache_plan_auto_ram_off():
    from pawlens.train.data import cache_plan

    pre = PreprocessConfig.for_size(96)
    ok, why = cache_plan("auto", 1249, 267, pre, available=24 * 2**30)
    assert ok and "MiB" in why
    ok, why = cache_plan("auto", 1_000_000, 200_000, pre, available=24 * 2**30)
    assert not ok and "--cache ram" in why  # a large data set is decoded every epoch unless asked for
    assert cache_plan("auto", 1249, 267, pre, available=64 * 2**20)[0] is False  # a quarter of 64 MiB is too little
    assert cache_plan("ram", 1_000_000, 0, pre, available=1)[0] is True
    assert cache_plan("off", 10, 10, pre)[0] is False


def test_a_layout_one_folder_too_deep_names_the_folder_to_pass(tmp_path):
    write_image_folder(tmp_path / "d" / "nested", 3, 32)  # d/nested/cat, d/nested/dog
    with pytest.raises(DataError, match="only one class \\('nested'.*one level deeper: pass --data .*nested$"):
        discover(str(tmp_path / "d"))
