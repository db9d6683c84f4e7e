"""Grad-CAM: the heat map finds the region that drives the class, hooks are scoped, memory stays flat; overlay; CamExplainer."""

from __future__ import annotations

import gc
import os
import weakref

import numpy as np
import pytest
import torch
from torch import nn

from pawlens.errors import InputError
from pawlens.models.gradcam import GradCAM, overlay
from pawlens.models.preprocess import PreprocessConfig, crop_box, resized_shape
from pawlens.runtime.cam import CamExplainer, heat_to_frame


class PatchNet(nn.Module):
    """Class 0 = 'there is red', class 1 = 'there is blue': each logit depends only on where that colour is."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 2, 3, padding=1, bias=False)
        self.act = nn.ReLU(inplace=True)  # in-place right after 'stem': the hook must cope
        self.head = nn.Conv2d(2, 2, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        with torch.no_grad():
            w = torch.zeros(2, 3, 3, 3)
            w[0, :, 1, 1] = torch.tensor([1.0, -1.0, -1.0])  # red - green - blue
            w[1, :, 1, 1] = torch.tensor([-1.0, -1.0, 1.0])  # blue - red - green
            self.stem.weight.copy_(w)
            self.head.weight.copy_(torch.eye(2).view(2, 2, 1, 1))

    def forward(self, x):
        return self.pool(self.head(self.act(self.stem(x)))).flatten(1)


def _two_patch_image(size=64):
    rng = np.random.default_rng(0)
    img = rng.uniform(0.3, 0.5, size=(3, size, size)).astype(np.float32)  # grey clutter: no colour wins
    red, blue = (slice(8, 24), slice(10, 26)), (slice(40, 56), slice(36, 52))
    img[:, red[0], red[1]] = np.array([0.9, 0.1, 0.1], np.float32)[:, None, None]
    img[:, blue[0], blue[1]] = np.array([0.1, 0.1, 0.9], np.float32)[:, None, None]
    return torch.from_numpy(img)[None], red, blue


def _peak(heat):
    return np.unravel_index(int(np.argmax(heat)), heat.shape)


def _inside(pt, box):
    return box[0].start <= pt[0] < box[0].stop and box[1].start <= pt[1] < box[1].stop


@pytest.mark.parametrize("layer", ["head", "stem"])  # "stem" is followed by an in-place ReLU
def test_heat_map_peaks_inside_the_region_that_drives_the_class(layer):
    model = PatchNet().eval()
    x, red, blue = _two_patch_image()
    with GradCAM(model, layer) as cam:
        h0, logits = cam(x, class_index=0)
        h1, _ = cam(x, class_index=1)
        hp, _ = cam(x)  # predicted class
    assert h0.shape == (64, 64) and h0.dtype == np.float32 and 0.0 <= h0.min() and h0.max() == pytest.approx(1.0)
    assert _inside(_peak(h0), red) and _inside(_peak(h1), blue)
    # most of the mass lies in the box, little outside it
    mask = np.zeros((64, 64), bool)
    mask[red] = True
    assert h0[mask].mean() > 5 * h0[~mask].mean()
    assert logits.shape == (2,)
    np.testing.assert_array_equal(hp, h0 if logits.argmax() == 0 else h1)


def test_matches_classic_full_backward_gradcam(tiny_checkpoint):
    from pawlens.models.checkpoint import load_checkpoint, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(tiny_checkpoint))
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with GradCAM(model, "features.block4") as cam:
        heat, logits = cam(x)
    store = {}
    h = model.features.block4.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    out = model(x.clone().requires_grad_(True))
    a = store["a"]
    a.retain_grad()
    out[0, out[0].argmax()].backward()
    h.remove()
    w = a.grad.mean(dim=(2, 3), keepdim=True)
    ref = torch.relu((w * a).sum(1, keepdim=True))
    ref = torch.nn.functional.interpolate(ref, size=(32, 32), mode="bilinear", align_corners=False)[0, 0].detach()
    ref = (ref / ref.max()).numpy()
    assert np.abs(heat - ref).max() < 1e-5
    np.testing.assert_allclose(logits, out[0].detach().numpy(), atol=1e-5)


def test_hooks_scoped_exceptions_propagate_and_requires_grad_restored():
    model = PatchNet()
    layer = model.head
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(ValueError, match="boom"):
        with GradCAM(model, "head") as cam:
            assert len(layer._forward_hooks) == 1 and not any(p.requires_grad for p in model.parameters())
            raise ValueError("boom")
    assert len(layer._forward_hooks) == 0 and [p.requires_grad for p in model.parameters()] == flags
    with pytest.raises(InputError, match="inside 'with GradCAM"):
        cam(torch.zeros(1, 3, 8, 8))
    # __del__ releases an instance opened without a with-block
    cam = GradCAM(model, layer).open()
    ref = weakref.ref(cam)
    del cam
    gc.collect()
    assert ref() is None and len(layer._forward_hooks) == 0
    # inference elsewhere with the hook registered is unaffected (the hook only acts during a CAM call)
    with GradCAM(model, "head"):
        with torch.inference_mode():
            assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 2)


def test_bad_arguments():
    model = PatchNet()
    with pytest.raises(InputError, match="no layer 'layer9'"):
        GradCAM(model, "layer9")
    with pytest.raises(InputError, match="not a sub-module"):
        GradCAM(model, nn.Conv2d(1, 1, 1))
    with GradCAM(model, "head") as cam:
        with pytest.raises(InputError, match=r"\(1, 3, S, S\)"):
            cam(torch.zeros(2, 3, 8, 8))
        with pytest.raises(InputError, match="out of range"):
            cam(torch.zeros(1, 3, 8, 8), class_index=5)


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc to read the resident memory")
def test_memory_flat_over_1000_calls():
    model = PatchNet().eval()
    x, _, _ = _two_patch_image(32)
    layer = model.head

    def call():
        with GradCAM(model, "head") as cam:
            cam(x)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread avoids OpenMP barrier spinning on a busy 2-core machine
    try:
        for _ in range(100):
            call()
        gc.collect()
        before = _rss_mb()
        for _ in range(1000):
            call()
        gc.collect()
        grown = _rss_mb() - before
    finally:
        torch.set_num_threads(threads)
    assert len(layer._forward_hooks) == 0
    assert grown < 8.0, f"resident memory grew by {grown:.1f} MB over 1000 Grad-CAM calls"


def test_resnet50_layer4_at_224():
    from pawlens.models.registry import create_model, model_info

    torch.manual_seed(0)
    model = create_model("resnet50").eval()
    with GradCAM(model, model_info("resnet50").cam_layer) as cam:
        heat, logits = cam(torch.randn(1, 3, 224, 224))
    assert heat.shape == (224, 224) and logits.shape == (2,) and np.isfinite(heat).all() and heat.max() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- overlay


def test_overlay_checks_and_blends():
    img = np.full((30, 40, 3), 100, np.uint8)
    heat = np.zeros((7, 9), np.float32)
    heat[3, 4] = 1.0
    out = overlay(img, heat, alpha=0.5)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img)
    np.testing.assert_array_equal(overlay(img, heat, alpha=0.0), img)
    # the hot spot is red-ish (JET at 1.0); where the heat is 0 the photo is untouched, not tinted blue
    assert out[15, 20, 0] > out[15, 20, 2]
    np.testing.assert_array_equal(out[0, 0], img[0, 0])
    for bad_img, bad_heat, alpha, match in [
        (img.astype(np.float32), heat, 0.4, "uint8"),
        (img[..., 0], heat, 0.4, "uint8"),
        (img, heat[None], 0.4, "2-D"),
        (img, heat * 2, 0.4, r"\[0, 1\]"),
        (img, np.full((3, 3), np.nan, np.float32), 0.4, "NaN"),
        (img, heat, 1.5, "alpha"),
    ]:
        with pytest.raises(InputError, match=match):
            overlay(bad_img, bad_heat, alpha=alpha)


# ----------------------------------------------------------------------------- CamExplainer


def test_heat_to_frame_places_the_crop_region():
    cfg = PreprocessConfig.for_size(32)  # resize 36, crop 32
    h, w = 60, 120
    heat = np.zeros((32, 32), np.float32)
    heat[16, 16] = 1.0
    full = heat_to_frame(heat, (h, w), cfg)
    assert full.shape == (h, w) and full.dtype == np.float32
    nh, nw = resized_shape(h, w, cfg)
    y0, x0 = crop_box(nh, nw, 32)
    sx = w / nw
    # outside the crop's columns the frame gets zeros
    assert full[:, : int(x0 * sx) - 1].max() == 0 and full[:, int((x0 + 32) * sx) + 1 :].max() == 0
    py, px = _peak(full)
    assert abs(px - (x0 + 16.5) * sx) < 2 * sx and abs(py - (y0 + 16.5) * h / nh) < 2 * h / nh


def test_cam_explainer_on_raw_frames(tiny_checkpoint):
    cam = CamExplainer(str(tiny_checkpoint))
    assert cam.class_names == ["cat", "dog"] and cam.arch == "baseline" and cam.preprocess.input_size == 32 and not cam.is_active
    frame = np.random.default_rng(0).integers(0, 256, size=(48, 96, 3), dtype=np.uint8)
    with pytest.raises(InputError, match="not active"):
        cam.explain(frame)
    with cam:
        r = cam.explain(frame)
        r1 = cam.explain(frame, class_index=1)
        g = cam.explain(frame[..., 0])  # grayscale accepted
        with pytest.raises(InputError, match="out of range"):
            cam.explain(frame, class_index=2)
    assert not cam.is_active
    assert r.heatmap.shape == (48, 96) and r.heatmap.dtype == np.float32 and 0 <= r.heatmap.min() and r.heatmap.max() <= 1
    assert r.label in ("cat", "dog") and r.class_index == int(np.argmax(r.probs)) and abs(float(r.probs.sum()) - 1) < 1e-5
    assert r1.class_index == 1 and r1.label == "dog" and r.ms > 0 and g.heatmap.shape == (48, 96)
    # the model saw the centre crop: the left and right margins of the wide frame are zero
    assert r.heatmap[:, :4].max() == 0 and r.heatmap[:, -4:].max() == 0
    with pytest.raises(InputError, match="needs the PyTorch checkpoint"):
        CamExplainer("model.onnx")


def test_cam_explainer_threads_and_channels_last_give_the_same_map(tiny_checkpoint, monkeypatch):
    """threads=1 (what the desktop app's "auto" picks for a light model) sets PyTorch's threads; channels_last
    (registry-driven) changes no heat map."""
    import torch

    from pawlens.models import registry

    before = torch.get_num_threads()
    frame = np.random.default_rng(1).integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    for bad in (0, "two"):
        with pytest.raises(InputError, match="threads must be >= 1"):
            CamExplainer(str(tiny_checkpoint), threads=bad)
    try:
        with CamExplainer(str(tiny_checkpoint), threads="auto") as cam:  # the tiny baseline is far below LIGHT_MACS
            assert torch.get_num_threads() == 1 and not cam._channels_last  # the baseline runs NCHW
            plain = cam.explain(frame)
        import dataclasses

        monkeypatch.setitem(registry._REGISTRY, "baseline", dataclasses.replace(registry.model_info("baseline"), channels_last_cpu=True))
        with CamExplainer(str(tiny_checkpoint)) as cam:
            assert cam._channels_last
            cl = cam.explain(frame)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(cl.heatmap, plain.heatmap, atol=1e-4)
    assert cl.class_index == plain.class_index


# ----------------------------------------------------------------------------- the traced trunk


@pytest.mark.parametrize("arch, size", [("baseline", 32), ("resnet50", 64), ("efficientnet_lite0", 64)])
def test_traced_trunk_gives_the_eager_heat_map_without_running_the_layer_from_python(arch, size):
    """Every registry model's ``cam_head`` completes the network after its ``cam_layer``: the traced path gives the eager
    heat maps and logits for both classes, and really runs traced (the layer's Python hooks no longer fire)."""
    from pawlens.models.registry import create_model, model_info

    info = model_info(arch)
    torch.manual_seed(0)
    model = create_model(arch, num_classes=2, **({info.size_arg: size} if info.size_arg else {})).eval()
    x = torch.rand(1, 3, size, size)
    with GradCAM(model, info.cam_layer, head=info.cam_head) as cam:
        assert cam.mode.startswith("eager")
        eager = [cam(x, class_index=k) for k in (0, 1)]
        assert cam.trace_trunk(x) == "traced" == cam.mode
        fired = []
        handle = cam.layer.register_forward_hook(lambda *_: fired.append(1))
        try:
            traced = [cam(x, class_index=k) for k in (0, 1)]
            assert fired == []  # the part before the layer ran as TorchScript
            other = torch.rand(1, 3, size + 8, size + 8) if arch != "efficientnet_lite0" else None  # lite0's padding is static
            if other is not None:
                cam(other)  # another shape: the eager path
                assert fired == [1]
        finally:
            handle.remove()
    for (he, le), (ht, lt) in zip(eager, traced):
        np.testing.assert_allclose(lt, le, atol=1e-3 * max(1.0, float(np.abs(le).max())))
        np.testing.assert_allclose(ht, he, atol=1e-2)
    assert max(float(h.max()) for h, _ in traced) > 0  # a real map was compared, not only blanks


def test_a_trunk_that_cannot_be_trusted_stays_eager(monkeypatch):
    """A head that does not complete the network, a tracer that fails, no head at all: eager, and the mode says why."""
    from pawlens.models.registry import create_model, model_info

    info = model_info("baseline")
    torch.manual_seed(0)
    model = create_model("baseline", num_classes=2).eval()
    x = torch.rand(1, 3, 32, 32)
    with GradCAM(model, info.cam_layer, head=lambda m, a: 2.0 * info.cam_head(m, a)) as cam:
        assert cam.trace_trunk(x).startswith("eager (the traced trunk differs from the model: logits by")
        heat, logits = cam(x)
    with GradCAM(model, info.cam_layer) as cam:
        assert cam.trace_trunk(x) == "eager (no head function for this architecture)"
        np.testing.assert_allclose(cam(x)[1], logits, atol=1e-6)  # the eager path still answers
    with GradCAM(model, info.cam_layer, head=info.cam_head) as cam:
        def broken(*_a, **_k):
            raise RuntimeError("no tracer here")

        monkeypatch.setattr(torch.jit, "trace", broken)
        assert cam.trace_trunk(x) == "eager (tracing failed: RuntimeError: no tracer here)"
    with pytest.raises(InputError, match="before trace_trunk"):
        GradCAM(model, info.cam_layer, head=info.cam_head).trace_trunk(x)


def test_cam_explainer_traced_gives_the_same_maps(tiny_checkpoint):
    frame = np.random.default_rng(2).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    with CamExplainer(str(tiny_checkpoint)) as cam:
        assert cam.mode.startswith("eager")
        plain = [cam.explain(frame, class_index=k) for k in (0, 1)]
    with CamExplainer(str(tiny_checkpoint), trace=True) as cam:
        assert cam.mode == "traced"
        fast = [cam.explain(frame, class_index=k) for k in (0, 1)]
    with CamExplainer(str(tiny_checkpoint), trace=True, target_layer="features.block3") as cam:
        assert cam.mode == "eager (no head function for this architecture)"  # the registry's head follows its own layer only
    for p, f in zip(plain, fast):
        np.testing.assert_allclose(f.heatmap, p.heatmap, atol=1e-2)
        np.testing.assert_allclose(f.probs, p.probs, atol=1e-4)


def test_background_trace_explains_eagerly_first_then_switches(tiny_checkpoint, monkeypatch):
    """trace="background" (the desktop app): activate() returns with the eager model, the first maps are eager, and
    the first explain after the trace is done checks it and runs traced from then on; the maps agree throughout."""
    import threading

    from pawlens.models.gradcam import GradCAM

    frame = np.random.default_rng(3).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    gate, real = threading.Event(), GradCAM.build_trunk

    def slow_build(self, example, model=None):
        gate.wait(10)  # the trace takes as long as the test wants
        return real(self, example, model=model)

    monkeypatch.setattr(GradCAM, "build_trunk", slow_build)
    with CamExplainer(str(tiny_checkpoint)) as cam:
        want = cam.explain(frame, class_index=1)
    with CamExplainer(str(tiny_checkpoint), trace="background") as cam:
        assert cam.mode == "eager (tracing the trunk in the background)"
        first = cam.explain(frame, class_index=1)  # while the trace is still running
        assert cam.mode.startswith("eager") and not cam.wait_for_trace(0)
        gate.set()
        assert cam.wait_for_trace(30)
        assert cam.mode.startswith("eager")  # adopted at the next explain, in the explaining thread
        later = cam.explain(frame, class_index=1)
        assert cam.mode == "traced" and cam._cam._trunk is not None
    for r in (first, later):
        np.testing.assert_allclose(r.heatmap, want.heatmap, atol=1e-2)
    with pytest.raises(InputError, match="trace must be"):
        CamExplainer(str(tiny_checkpoint), trace="later")


def test_cam_explainer_uses_the_deployed_models_input_only_when_made_alike(tiny_checkpoint):
    """``prepared=(x, config)`` (the desktop app's inference worker hands over the input its model saw) gives exactly the
    result of preprocessing the frame here, and is ignored when made with other preprocessing."""
    import dataclasses

    from pawlens.models.preprocess import preprocess_numpy

    rng = np.random.default_rng(3)
    frame, other = (rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8) for _ in range(2))
    with CamExplainer(str(tiny_checkpoint)) as cam:
        cfg = cam.preprocess
        x = preprocess_numpy([frame], cfg)[0]
        plain = cam.explain(frame, class_index=1)
        given = cam.explain(frame, class_index=1, prepared=(x, cfg))
        np.testing.assert_array_equal(given.heatmap, plain.heatmap)
        np.testing.assert_array_equal(given.probs, plain.probs)
        # proof that it is used: another frame's input (same preprocessing) gives that frame's map
        theirs = cam.explain(frame, class_index=1, prepared=(preprocess_numpy([other], cfg)[0], cfg))
        np.testing.assert_array_equal(theirs.heatmap, cam.explain(other, class_index=1).heatmap)
        assert not np.array_equal(theirs.heatmap, plain.heatmap)
        # made otherwise (other normalisation, another size, a wrong dtype): preprocessed here instead
        for bad in [(x, dataclasses.replace(cfg, mean=(0.0, 0.0, 0.0))), (x[:, :16, :16], cfg), (x.astype(np.float64), cfg)]:
            np.testing.assert_array_equal(cam.explain(frame, class_index=1, prepared=bad).heatmap, plain.heatmap)


def test_predictor_keeps_its_input_only_when_asked(rt_tiny_onnx):
    from pawlens.models.preprocess import preprocess_numpy
    from pawlens.runtime.ort_runner import OrtRunner
    from pawlens.runtime.predictor import Predictor

    frame = np.random.default_rng(4).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    with Predictor(OrtRunner(rt_tiny_onnx["fp32"])) as pred:
        assert pred.predict(frame).input is None
        p = pred.predict(frame, keep_input=True)
        np.testing.assert_array_equal(p.input, preprocess_numpy([frame], pred.preprocess)[0])


def test_heat_rgba_is_jet_premultiplied_by_heat_to_the_gamma():
    """The table lookup gives the float formula within 2/255, and a premultiplied layer (colour <= alpha) Qt can draw."""
    import cv2

    from pawlens.models.gradcam import ALPHA_GAMMA, heat_rgba

    rng = np.random.default_rng(6)
    heat = cv2.resize(rng.random((7, 7)).astype(np.float32), (96, 54))
    weight = rng.random((54, 96)).astype(np.float32)
    h8 = (heat * 255 + 0.5).astype(np.uint8)
    jet = cv2.cvtColor(cv2.applyColorMap(h8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB).astype(np.float32)
    for w in (None, weight):
        a = heat ** ALPHA_GAMMA * (1.0 if w is None else w)
        want = np.concatenate([jet * a[..., None], a[..., None] * 255], axis=2)
        got = heat_rgba(heat, w)
        assert got.shape == (54, 96, 4) and got.dtype == np.uint8
        assert np.abs(got.astype(np.float32) - want).max() <= 2.5
        assert (got[..., :3] <= got[..., 3:4]).all()
    assert heat_rgba(np.zeros((3, 4), np.float32)).max() == 0  # cold: fully transparent
    assert (heat_rgba(np.ones((3, 4), np.float32))[..., 3] == 255).all()


def test_blend_fast_is_blend_within_one_level():
    """The annotated video's blending (weights made once per heat map) draws what overlay() draws, within one level."""
    from pawlens.models.gradcam import blend, blend_fast, blend_weights, overlay_layer

    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    heat = np.clip(rng.random((7, 9)).astype(np.float32) * 1.2 - 0.1, 0, 1)
    for alpha in (0.0, 0.35, 1.0):
        layer = overlay_layer(heat, img.shape[:2])
        exact, fast = blend(img, layer, alpha), blend_fast(img, blend_weights(layer, alpha))
        assert fast.shape == exact.shape and fast.dtype == np.uint8
        assert np.abs(fast.astype(int) - exact).max() <= 1 and (alpha > 0 or np.array_equal(fast, img))
