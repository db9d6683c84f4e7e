"""bench.inputs on its own: one labelling rule for every layout train/ reads, sampling, the inputs' real-photos flag."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pawlens.bench.inputs import bench_inputs
from pawlens.errors import InputError
from pawlens.models.photos import image_files, label_of, sample_images, spread

CLASSES = ["cat", "dog"]


def _jpg(path, value: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 48, 3), value, dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture()
def layouts(tmp_path):
    """The same six photos in a Kaggle-flat folder, in class subfolders, and nested one level deeper (train/ and sub/)."""
    names = [("cat", 1), ("cat", 2), ("cat", 3), ("dog", 1), ("dog", 2), ("dog", 3)]
    flat = [_jpg(tmp_path / "flat" / f"{c}.{i}.jpg", 40 * i) for c, i in names]
    folders = [_jpg(tmp_path / "folders" / c / f"{i}.jpg", 40 * i) for c, i in names]
    nested = [_jpg(tmp_path / "nested" / "train" / c / "sub" / f"{i}.jpg", 40 * i) for c, i in names]
    return tmp_path, flat, folders, nested


def test_kaggle_flat_and_class_folders_get_the_same_labels(layouts):
    root, flat, folders, nested = layouts
    want = [0, 0, 0, 1, 1, 1]
    for folder in ("flat", "folders", "nested"):
        files = image_files(str(root / folder))
        s = sample_images(files, CLASSES, root=str(root / folder))
        assert s.labels == want, folder
        assert s.n_labelled == 6 and not s.skipped and s.used == files
    # without the root, a class folder two levels up is not seen: that is what root= is for
    assert label_of(nested[0], CLASSES) == -1 and label_of(nested[0], CLASSES, str(root / "nested")) == 0
    assert label_of(str(root / "x" / "cat_photo.jpg"), CLASSES) == -1  # no class folder, not CLASS.ID.jpg


def test_export_labels_photos_with_the_same_function(layouts):
    from pawlens.export.pipeline import load_images
    from pawlens.models.preprocess import PreprocessConfig

    root, flat, folders, _ = layouts
    cfg = PreprocessConfig.for_size(32)
    x_flat, y_flat, used, skipped = load_images(flat, cfg, CLASSES, what="parity", folder=str(root / "flat"))
    x_fold, y_fold, _, _ = load_images(folders, cfg, CLASSES, what="parity", folder=str(root / "folders"))
    assert y_flat.tolist() == y_fold.tolist() == [0, 0, 0, 1, 1, 1]
    assert x_flat.shape == (6, 3, 32, 32) and np.array_equal(x_flat, x_fold) and not skipped


def test_sampling_spreads_evenly_and_skips_unreadable_files(tmp_path):
    assert spread(list("abcdefghij"), 4) == ["a", "d", "g", "j"] and spread(list("abc"), None) == list("abc")
    good = [_jpg(tmp_path / f"cat.{i}.jpg", 10 * i) for i in range(3)]
    bad = tmp_path / "dog.9.jpg"
    bad.write_bytes(b"not a jpeg")
    s = sample_images(good + [str(bad)], CLASSES, prepare=lambda im: im.shape)
    assert s.items == [(40, 48, 3)] * 3 and s.labels == [0, 0, 0] and s.used == good
    assert len(s.skipped) == 1 and str(bad) in s.skipped[0]


def test_split_json_names_its_test_photos(tmp_path):
    a = _jpg(tmp_path / "data" / "dog" / "a.jpg", 10)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"data": str(tmp_path / "data"), "splits": {"test": [["dog/a.jpg", 1]]}}))
    assert image_files(str(split)) == [a]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="split.json"):
        image_files(str(tmp_path / "bad.json"))


def test_bench_inputs_carry_a_real_photos_flag(layouts):
    root = layouts[0]
    syn = bench_inputs(None, 4, CLASSES, calibrate=True)
    assert not syn.real_photos and syn.n_labelled == 0 and len(syn.agree) == len(syn.calib) == 4
    assert "synthetic frames" in syn.note
    real = bench_inputs(str(root / "folders"), 3, CLASSES, calibrate=True)
    assert real.real_photos and len(real.agree) == 3 and len(real.calib) == 3 and not real.shared_calibration
    assert set(real.names) <= {"cat", "dog"} and real.n_labelled == 3
    given = bench_inputs(str(root / "flat"), 6, CLASSES, calibrate=False)  # --models given: nothing to calibrate
    assert given.shared_calibration and given.names == ["cat"] * 3 + ["dog"] * 3
    with pytest.raises(InputError, match="no images found"):
        bench_inputs(str(root / "empty_nothing_here"), 2, CLASSES, calibrate=False)
