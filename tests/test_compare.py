"""runtime.compare: the parity measurements, the gates, and what the report says about them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pawlens.errors import ArtifactError, InputError
from pawlens.runtime.base import InputSpec, Runner
from pawlens.runtime.compare import (
    DEFAULT_TIE_MARGIN,
    Gate,
    ParityResult,
    compare,
    compare_logits,
    default_gate,
    markdown_table,
    run_batches,
)


def _logits(n=40, c=2, seed=0, scale=3.0):
    return (np.random.default_rng(seed).standard_normal((n, c)) * scale).astype(np.float32)


def test_default_gates_per_precision():
    assert default_gate("fp32").max_abs == 1e-3 and default_gate("fp32").min_top1_agreement == 1.0
    assert default_gate("fp16").max_abs == 5e-2 and default_gate("fp16").min_top1_agreement == 0.995
    g8 = default_gate("int8")
    assert g8.min_top1_agreement == 0.99 and g8.max_acc_drop == 1.0 and g8.max_abs is None
    with pytest.raises(InputError, match="fp32, fp16, int8"):
        default_gate("bf17")


def test_gate_updated_validates():
    g = default_gate("int8").updated(min_top1_agreement="0.98", max_abs=0.5, max_acc_drop="none")
    assert (g.min_top1_agreement, g.max_abs, g.max_acc_drop) == (0.98, 0.5, None)
    with pytest.raises(InputError, match="choose from: max_abs"):
        g.updated(max_abss=1)
    with pytest.raises(InputError, match="fraction"):
        g.updated(min_top1_agreement=99.5)
    with pytest.raises(InputError, match=">= 0"):
        g.updated(max_abs=-1)
    with pytest.raises(InputError, match="not a number"):
        g.updated(max_abs="abc")


def test_identical_logits_pass_with_exact_figures():
    r = _logits()
    res = compare_logits(r, r.copy(), gate=default_gate("fp32"))
    assert res.passed and res.max_abs == 0 and res.max_rel == 0
    assert res.cosine_min == pytest.approx(1.0) and res.top1_agreement == 1.0
    for name, _measured, _limit, ok in res.checks:  # the documented 4-tuple
        assert ok in (True, None), name
    assert res.n == 40 and res.n_real == 40 and res.ref_acc is None


def test_perturbation_beyond_max_abs_fails_and_is_measured():
    r = _logits()
    c = r.copy()
    c[3, 1] += 0.01
    res = compare_logits(r, c, gate=default_gate("fp32"))
    assert not res.passed
    assert res.max_abs == pytest.approx(0.01, rel=1e-4)
    assert [ch.name for ch in res.failed_checks] == ["max_abs"]
    assert "max_abs 1.00e-02 <= 1.00e-03 FAIL" in res.summary()
    # Same error is within the fp16 gate.
    assert compare_logits(r, c, gate=default_gate("fp16")).passed


def test_max_rel_is_relative_to_the_samples_largest_logit():
    r = np.array([[10.0, 0.0], [1.0, -0.5]], np.float32)
    c = r + np.array([[0.0, 0.1], [0.05, 0.0]], np.float32)
    res = compare_logits(r, c, gate=Gate())
    assert res.max_rel == pytest.approx(max(0.1 / 10.0, 0.05 / 1.0), rel=1e-5)


def test_nan_outputs_always_fail_even_without_an_abs_gate():
    r = _logits()
    c = r.copy()
    c[0, 0] = np.nan
    res = compare_logits(r, c, gate=default_gate("int8"))
    assert not res.passed
    assert "finite" in [ch.name for ch in res.failed_checks]
    json.dumps(res.to_dict())  # inf/nan are stored as strings, so the report stays valid JSON


def test_disagreement_at_a_near_tie_is_not_held_against_the_candidate():
    r = _logits(n=50, seed=1)
    r[0] = [1.0, 1.0 + DEFAULT_TIE_MARGIN / 5]  # a near tie: reference margin 0.01
    c = r.copy()
    c[0] = [1.0 + DEFAULT_TIE_MARGIN / 5, 1.0]  # flipped by an error of 0.01
    res = compare_logits(r, c, gate=default_gate("fp16"))
    assert res.top1_agreement == 1.0 and res.raw_top1_agreement == pytest.approx(49 / 50)
    assert res.disagreements == 1 and res.disagreements_at_ties == 1
    assert res.passed, res.summary()
    assert "0 where the reference was decisive, 1 at reference near ties" in res.notes["top1_agreement"]
    assert "raw 98.00%" in res.markdown_row()
    # A flip where the reference was decisive counts.
    c2 = r.copy()
    c2[5] = c2[5][::-1] if abs(r[5, 0] - r[5, 1]) > 0.2 else c2[5]
    assert abs(r[5, 0] - r[5, 1]) > 0.2
    res2 = compare_logits(r, c2, gate=default_gate("int8"))
    assert res2.top1_agreement == pytest.approx(49 / 50) and res2.disagreements - res2.disagreements_at_ties == 1
    assert "1 where the reference was decisive" in res2.notes["top1_agreement"]
    # ... but one decisive flip among 50 says nothing about a 1% rate: it passes, and says how (the sample-size rule)
    assert res2.passed and res2.flips_allowed == 2
    assert "98.00% (>= 99.0%; 1 decisive flip(s) of 50, 2 allowed) ok" in res2.markdown_row()


def _flips(n: int, at_ties: int, decisive: int) -> tuple[np.ndarray, np.ndarray]:
    """Hand-made 2-class logits: every reference margin is 1.0 except ``at_ties`` samples at margin 0.01; the candidate
    flips those and ``decisive`` others."""
    r = np.tile(np.array([[1.0, 0.0]], np.float32), (n, 1))
    r[n // 2:] = r[n // 2:, ::-1]
    r[:at_ties] = [0.505, 0.495]
    c = r.copy()
    c[:at_ties] = c[:at_ties, ::-1]
    c[n // 2: n // 2 + decisive] = c[n // 2: n // 2 + decisive, ::-1]
    return r, c


def test_one_near_tie_rule_gates_decisive_flips_only():
    # 10 flips in 500 samples, 6 at near ties: raw agreement 98% is under the INT8 gate's 99%, but only the 4 decisive
    # flips count (99.2%), so it passes, and the raw figure is reported beside the gated one.
    r, c = _flips(500, at_ties=6, decisive=4)
    res = compare_logits(r, c, gate=default_gate("int8"))
    assert (res.disagreements, res.disagreements_at_ties, res.near_ties) == (10, 6, 6)
    assert res.raw_top1_agreement == pytest.approx(0.98) and res.top1_agreement == pytest.approx(1 - 4 / 500)
    assert res.passed, res.summary()
    check = next(ch for ch in res.checks if ch.name == "top1_agreement")
    assert check.measured == res.top1_agreement and check.ok
    assert "99.20% (>= 99.0%) ok, raw 98.00%" in res.markdown_row()
    assert res.to_dict()["raw_top1_agreement"] == pytest.approx(0.98)
    # 14 flips with 10 decisive: more than the 9 that 500 samples allow at 99%, so it fails on the same rule; the 4 at
    # near ties do not count.
    r, c = _flips(500, at_ties=4, decisive=10)
    res = compare_logits(r, c, gate=default_gate("int8"))
    assert res.top1_agreement == pytest.approx(1 - 10 / 500) and not res.passed and res.flips_allowed == 9
    assert [ch.name for ch in res.failed_checks] == ["top1_agreement"]
    assert "n=500: 10 decisive flips show the flip rate (2.0%) above 1% with 95% confidence" in res.notes["top1_agreement"]
    r, c = _flips(500, at_ties=5, decisive=9)
    assert compare_logits(r, c, gate=default_gate("int8")).passed


def test_agreement_gate_knows_its_sample_size():
    from pawlens.runtime.compare import _needed_n, flips_allowed

    assert [flips_allowed(n, 0.99) for n in (6, 60, 100, 500, 1000)] == [1, 2, 3, 9, 15]
    assert flips_allowed(1, 0.99) == 0 and flips_allowed(10_000, 1.0) == 0  # 100% agreement: no flip at any n
    assert all(flips_allowed(n, 0.99) <= flips_allowed(n + 1, 0.99) for n in range(1, 400))
    # the quick start's case: 60 test photos, one decisive INT8 flip (98.33%) passes; five fail and say what n would take
    r, c = _flips(60, at_ties=0, decisive=1)
    assert compare_logits(r, c, gate=default_gate("int8")).passed
    r, c = _flips(60, at_ties=0, decisive=5)
    res = compare_logits(r, c, gate=default_gate("int8"))
    assert not res.passed and f"would pass among {_needed_n(5, 0.99):,} test photos" in res.notes["top1_agreement"]
    assert flips_allowed(_needed_n(5, 0.99), 0.99) == 5 > flips_allowed(_needed_n(5, 0.99) - 1, 0.99)
    assert compare_logits(r, c, gate=default_gate("fp32")).flips_allowed == 0


def test_agreement_is_labelled_weak_when_most_samples_are_near_ties():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((20, 1)).astype(np.float32)
    r = np.concatenate([base, base + rng.uniform(-0.01, 0.01, (20, 1)).astype(np.float32)], axis=1)
    res = compare_logits(r, r.copy(), gate=default_gate("fp32"))
    assert res.near_ties == 20 and res.passed
    assert res.agreement_note.startswith("weak evidence: 20/20")
    assert "weak evidence" in res.markdown_row()


def test_one_class_reference_makes_agreement_uninformative():
    r = np.tile(np.array([[2.0, -1.0]], np.float32), (10, 1))
    res = compare_logits(r, r.copy(), gate=default_gate("fp32"))
    assert res.ref_classes_predicted == 1
    assert "uninformative" in res.agreement_note


def test_accuracy_and_accuracy_drop_gate():
    r = np.array([[2, 0], [0, 2], [2, 0], [0, 2]] * 25, np.float32)  # 100 samples
    labels = np.array([0, 1, 0, 1] * 25)
    c = r.copy()
    c[:2] = c[:2, ::-1]  # two decisive flips: accuracy 100% -> 98%
    res = compare_logits(r, c, labels=labels, gate=default_gate("int8"))
    assert res.ref_acc == 1.0 and res.cand_acc == pytest.approx(0.98) and res.acc_drop == pytest.approx(2.0)
    # 2 flips of 100 are within what 100 samples allow at 99% agreement (3); the accuracy drop stays gated on its own
    assert {ch.name for ch in res.failed_checks} == {"max_acc_drop"}
    loose = default_gate("int8").updated(min_top1_agreement=0.97, max_acc_drop=2.5)
    assert compare_logits(r, c, labels=labels, gate=loose).passed
    # Unknown labels (-1) are left out of accuracy.
    part = labels.copy()
    part[50:] = -1
    assert compare_logits(r, r, labels=part, gate=default_gate("int8")).n_labeled == 50


def test_no_labels_leaves_the_accuracy_gate_unevaluated():
    r = _logits()
    res = compare_logits(r, r.copy(), gate=default_gate("int8"))
    acc = [ch for ch in res.checks if ch.name == "max_acc_drop"][0]
    assert acc.ok is None and acc.measured is None and res.passed
    assert "not evaluated" in res.notes["max_acc_drop"]


def test_bad_shapes_and_labels():
    r = _logits()
    with pytest.raises(ArtifactError, match="do not match"):
        compare_logits(r, r[:, :1])
    with pytest.raises(InputError, match="labels has 3"):
        compare_logits(r, r, labels=[0, 1, 0])
    with pytest.raises(InputError, match="class indices"):
        compare_logits(r, r, labels=[5] * len(r))


def test_markdown_and_dict():
    r = _logits()
    res = compare_logits(r, r + 1e-4, gate=default_gate("fp32"), name="m.onnx")
    row = res.markdown_row()
    assert row.startswith("| m.onnx | fp32 | PASS | 1.00e-04 (<= 0.001) ok")
    table = markdown_table([res])
    assert table.count("\n") == 3 and table.splitlines()[0].count("|") == len(ParityResult.COLUMNS) + 1
    d = res.to_dict()
    assert d["checks"][1] == {"name": "max_abs", "measured": pytest.approx(1e-4, rel=1e-2), "limit": 1e-3, "ok": True, "note": ""}
    json.dumps(d)


class LinearRunner(Runner):
    """A NumPy 'model' (global average pool + linear) that records its batch sizes."""

    backend = "fake"

    def __init__(self, w, noise=0.0):
        super().__init__("linear")
        self.w, self.noise, self.batches = w, noise, []

    def activate_impl(self):
        pass

    def input_spec(self):
        return InputSpec("input", (None, 3, 8, 8))

    def infer_impl(self, batch):
        self.batches.append(len(batch))
        return (batch.mean(axis=(2, 3)) @ self.w + self.noise).astype(np.float32)


def test_compare_runs_both_runners_in_batches_and_restores_state():
    w = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((19, 3, 8, 8)).astype(np.float32)
    ref, cand = LinearRunner(w), LinearRunner(w, noise=2e-3)
    res = compare(ref, cand, x, batch_size=8, gate=default_gate("fp32"))
    assert ref.batches == [8, 8, 3] and cand.batches == [8, 8, 3]
    assert not ref.is_active and not cand.is_active
    assert res.max_abs == pytest.approx(2e-3, rel=1e-3) and not res.passed
    # A precomputed reference serves several candidates; an active runner stays active.
    pre = run_batches(ref, x)
    cand2 = LinearRunner(w).activate()
    assert compare(pre, cand2, x, gate=default_gate("fp32")).passed and cand2.is_active
    with pytest.raises(InputError, match="float32"):
        compare(ref, cand, x.astype(np.float64))


def test_agreement_is_judged_on_the_real_inputs_only():
    import numpy as np

    from pawlens.runtime.compare import compare_logits, default_gate

    ref = np.array([[3.0, 0.0]] * 10 + [[0.0, 3.0]] * 4)
    cand = ref.copy()
    cand[10:] = [[3.0, 0.0]] * 4  # the 4 random tensors (last) flip decisively
    r = compare_logits(ref, cand, n_real=10, gate=default_gate("int8"), precision="int8")
    assert r.top1_agreement == 1.0 and r.raw_top1_agreement == 1.0 and r.disagreements == 0
    assert "10 real inputs" in r.notes["top1_agreement"]
    assert r.max_abs == 3.0  # their logit error is still measured
    allr = compare_logits(ref, cand, n_real=14, gate=default_gate("int8"), precision="int8")
    assert allr.top1_agreement == 10 / 14 and not allr.passed
    none_real = compare_logits(ref, cand, n_real=0, gate=default_gate("int8"), precision="int8")  # random only: judged on them
    assert none_real.top1_agreement == 10 / 14
