"""runtime.ceiling: multiply-adds of a model and the CPU's measured GEMM rates (what the bench compares rows with)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pawlens.runtime.ceiling import count_macs, gemm_rates, rate_for


def test_count_macs_by_hand_and_hooks_removed():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    # 8x8 input: conv1 8*8*8 outputs x 3*9; conv2 8*4*4 outputs x (8/4)*9; linear 2 x 8
    assert count_macs(m, 8) == 8 * 8 * 8 * 27 + 8 * 4 * 4 * 18 + 2 * 8
    assert all(not mod._forward_hooks for mod in m.modules())


def test_resnet50_macs_match_the_published_figure():
    import torchvision

    macs = count_macs(torchvision.models.resnet50(num_classes=1000), 224)
    assert macs == pytest.approx(4.09e9, rel=0.01)  # torchvision's model card: 4.09 GFLOPS (multiply-adds)


def test_gemm_rates_are_measured_and_restore_threads():
    before = torch.get_num_threads()
    r = gemm_rates(threads=1, n=256, reps=2)
    assert torch.get_num_threads() == before
    from pawlens.models.device import cpu_supports_bf16

    for k in ("fp32_gflops", "bf16_gflops", "int8_gops"):
        if k == "bf16_gflops" and not cpu_supports_bf16():
            assert r[k] is None  # emulated bf16 bounds nothing and takes minutes: not measured
            continue
        assert r[k] is not None and math.isfinite(r[k]) and r[k] > 0.1, (k, r)
    assert rate_for("int8", r) == r["int8_gops"] and rate_for("bf16-autocast", r) == r["bf16_gflops"] and rate_for("fp16", r) is None


def test_each_ceiling_is_the_best_runtime_and_rows_above_it_are_flagged():
    r = gemm_rates(threads=1, n=192, reps=2)
    for prec, key in (("fp32", "fp32_gflops"), ("int8", "int8_gops")):
        found = r["by_runtime"][prec]
        assert found and r[key] == max(found.values())
    assert {"torch", "onnxruntime"} <= set(r["by_runtime"]["fp32"])  # the core runtimes always take part
    assert any(k.startswith("onnxruntime") for k in r["by_runtime"]["int8"])
    from pawlens.runtime.ceiling import best_runtime, over_ceiling

    assert r["by_runtime"]["fp32"][best_runtime("fp32", r)] == r["fp32_gflops"]
    assert over_ceiling(r["fp32_gflops"] * 1.2, "fp32", r) and not over_ceiling(r["fp32_gflops"] * 0.8, "fp32", r)
    assert not over_ceiling(None, "fp32", r) and not over_ceiling(5.0, "fp16", r)  # no ceiling for fp16: nothing to judge
