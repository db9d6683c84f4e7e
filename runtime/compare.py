"""Numerical parity between a reference and a candidate runner (after Polygraphy's Comparator).

    from pawlens.runtime.compare import compare, default_gate
    res = compare(TorchRunner("best.pt"), OrtRunner("best.int8.onnx"), inputs, labels=labels)
    res.passed, res.max_abs, res.top1_agreement, res.checks      # [(name, measured, limit, ok), ...]
    print(ParityResult.markdown_header() + res.markdown_row())

``inputs`` is an ``(N, 3, S, S)`` float32 array preprocessed exactly as the runtime does
(:func:`models.preprocess.preprocess_numpy`); the first ``n_real`` rows may be real photos with labels
(``-1`` where unknown), the rest random tensors.  Both runners see the same inputs in the same batches.

What is measured (logits, per sample ``i``):

* ``max_abs``: ``max |c - r|`` over every logit;
* ``max_rel``: ``max_i  max_j |c_ij - r_ij| / max_j |r_ij|`` (relative to the sample's largest logit, so a
  logit near zero does not blow it up);
* ``cosine``: cosine similarity of each sample's logit vectors, minimum and mean;
* near ties: samples whose reference top-1/top-2 logit margin is below ``gate.tie_margin``;
* ``top1_agreement`` (gated, and what every report's agreement column shows): the fraction of samples whose
  arg-max agrees, where a flip at a reference near tie counts as agreeing (the reference itself was undecided
  there; the error size is gated by ``max_abs``): ``1 - decisive disagreements / N``, over the real inputs
  when there are any (``n_real``: random tensors lie outside what an INT8 model was calibrated on; their
  logits still count in max abs, max rel and cosine);
* ``raw_top1_agreement``: the plain fraction of samples whose arg-max agrees (reported beside it);
* ``ref_acc`` / ``cand_acc`` / ``acc_drop`` (points) on the labelled samples.

This is the one near-tie rule: the export's gates and the bench's agreement column both come from
:func:`compare_logits`.  What a gate means for the model at hand is stated next to it (``agreement_note``):
when the reference predicts one class for every input, or most samples are near ties (an untrained
model), top-1 agreement says little and is labelled so.  Non-finite candidate outputs always fail.

Default gates (:func:`default_gate`): fp32 ``max_abs <= 1e-3`` and 100% agreement; fp16 ``max_abs <= 5e-2``
and >= 99.5% agreement; int8 >= 99% agreement and an accuracy drop of at most 1 point.

The agreement gate knows its sample size (:func:`flips_allowed`): ``k`` decisive flips among ``n`` fail only when
they show, with 95% confidence, that the flip rate is above ``1 - min_top1_agreement`` (a one-sided exact binomial
test).  60 photos at 99% allow 2 flips (one flip is 98.33%, which says nothing about a 1% rate); 1,000 allow 15;
100% agreement (fp32) allows none at any n.  The accuracy drop stays gated on its own.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, NamedTuple, Sequence

import numpy as np

from pawlens.errors import ArtifactError, InputError

from .base import Runner

#: The reference top-1/top-2 logit margin below which a sample counts as a near tie.
DEFAULT_TIE_MARGIN = 0.05
#: Above this fraction of near ties, the agreement figure is labelled as weak evidence.
WEAK_TIE_FRACTION = 0.5
#: How sure the agreement gate must be that the flip rate is over its limit before it fails (see :func:`flips_allowed`).
CONFIDENCE = 0.95


def _sf_all(n: int, p: float) -> np.ndarray:
    """``P(X >= k)`` for every ``k`` in ``0..n`` (``X ~ Binomial(n, p)``, 0 < p < 1), in one pass."""
    lf = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])  # log k!
    i = np.arange(n + 1)
    logpmf = lf[n] - lf[i] - lf[n - i] + i * math.log(p) + (n - i) * math.log1p(-p)
    pmf = np.exp(logpmf - logpmf.max())
    pmf /= pmf.sum()
    return np.minimum(1.0, np.cumsum(pmf[::-1])[::-1])


def flips_allowed(n: int, min_agreement: float, confidence: float = CONFIDENCE) -> int:
    """The most decisive flips among ``n`` samples that pass ``min_agreement``.

    ``k`` flips fail when ``P(X >= k | n, 1 - min_agreement) < 1 - confidence``: so many flips would be unlikely if the
    true rate were at the limit, i.e. the rate is above it with ``confidence`` (the one-sided exact, Clopper-Pearson,
    bound on the rate exceeds the limit).  0 when ``min_agreement`` is 1.
    """
    rate = 1.0 - float(min_agreement)
    if n <= 0 or rate <= 0.0:
        return 0
    if rate >= 1.0:
        return int(n)
    sf = _sf_all(int(n), rate)
    ok = np.nonzero(sf >= 1.0 - confidence)[0]  # sf falls with k: the passing counts are 0..allowance
    return int(ok.max())


def _needed_n(k: int, min_agreement: float, confidence: float = CONFIDENCE) -> int | None:
    """The least test-set size for which ``k`` decisive flips pass ``min_agreement`` (None when none under 10**6)."""
    if float(min_agreement) >= 1.0:
        return None
    lo, hi = max(k, 1), max(k, 1)
    while flips_allowed(hi, min_agreement, confidence) < k:
        lo, hi = hi, hi * 2
        if hi > 1_000_000:
            return None
    while lo < hi:  # flips_allowed grows with n: the least n that allows k
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if flips_allowed(mid, min_agreement, confidence) < k else (lo, mid)
    return lo


@dataclass(frozen=True)
class Gate:
    """Limits for one artifact; ``None`` means "report, don't gate".

    Attributes:
        max_abs: largest allowed absolute logit difference.
        max_rel: largest allowed per-sample relative difference (see module docstring).
        min_cosine: smallest allowed per-sample cosine similarity.
        min_top1_agreement: smallest allowed top-1 agreement, as a fraction (0.995 = 99.5%).
        max_acc_drop: largest allowed accuracy drop in percentage points (labelled samples only).
        tie_margin: reference logit margin below which a sample is a near tie.
    """

    max_abs: float | None = None
    max_rel: float | None = None
    min_cosine: float | None = None
    min_top1_agreement: float | None = None
    max_acc_drop: float | None = None
    tie_margin: float = DEFAULT_TIE_MARGIN

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def updated(self, **changes: Any) -> "Gate":
        """A copy with some limits changed (values ``None``/``"none"`` switch a check off); validates names and values."""
        bad = sorted(set(changes) - set(self.keys()))
        if bad:
            raise InputError(f"unknown gate key(s) {', '.join(bad)}; choose from: {', '.join(self.keys())}")
        clean = {}
        for k, v in changes.items():
            if v is None or (isinstance(v, str) and v.strip().lower() in ("none", "off", "")):
                if k == "tie_margin":
                    raise InputError("tie_margin cannot be switched off; set it to 0 to count no near ties")
                clean[k] = None
                continue
            try:
                fv = float(v)
            except (TypeError, ValueError):
                raise InputError(f"gate {k}={v!r} is not a number") from None
            if not math.isfinite(fv) or fv < 0:
                raise InputError(f"gate {k}={v!r} must be a finite number >= 0")
            if k in ("min_top1_agreement", "min_cosine") and fv > 1:
                raise InputError(f"gate {k}={v!r} must be at most 1 (agreement is a fraction: 0.995 means 99.5%)")
            clean[k] = fv
        return replace(self, **clean)


DEFAULT_GATES: dict[str, Gate] = {
    "fp32": Gate(max_abs=1e-3, min_top1_agreement=1.0),
    "fp16": Gate(max_abs=5e-2, min_top1_agreement=0.995),
    "int8": Gate(min_top1_agreement=0.99, max_acc_drop=1.0),
}


def default_gate(precision: str) -> Gate:
    """The default gate of ``fp32``, ``fp16`` or ``int8``."""
    if precision not in DEFAULT_GATES:
        raise InputError(f"no default parity gate for precision {precision!r}; choose one of: {', '.join(DEFAULT_GATES)}")
    return DEFAULT_GATES[precision]


class Check(NamedTuple):
    """One gate check: ``ok`` is ``None`` when it could not be evaluated (e.g. no labels)."""

    name: str
    measured: float | None
    limit: float | None
    ok: bool | None


@dataclass
class ParityResult:
    name: str
    precision: str
    n: int
    n_real: int
    n_labeled: int
    max_abs: float
    mean_abs: float
    max_rel: float
    cosine_min: float
    cosine_mean: float
    top1_agreement: float  # near-tie flips counted as agreeing (the gated figure)
    raw_top1_agreement: float  # every flip counted
    disagreements: int
    disagreements_at_ties: int
    near_ties: int
    tie_margin: float
    margin_min: float
    margin_median: float
    ref_classes_predicted: int
    ref_acc: float | None
    cand_acc: float | None
    acc_drop: float | None  # percentage points, ref - cand
    finite_fraction: float
    checks: list[Check]
    passed: bool
    gate: Gate
    agreement_note: str = ""
    notes: dict[str, str] = field(default_factory=dict)
    flips_allowed: int | None = None  # decisive flips the agreement gate lets pass at this n (:func:`flips_allowed`)

    @property
    def decisive_flips(self) -> int:
        """Top-1 flips where the reference was decisive (the ones the agreement gate counts)."""
        return self.disagreements - self.disagreements_at_ties

    @property
    def n_judged(self) -> int:
        """The samples top-1 agreement is judged on: the real photos when there are any."""
        return min(self.n_real, self.n) if self.n_real else self.n

    def _detail(self, c: Check) -> str:
        """How a top-1 figure under its limit still passes: the flips against what n allows."""
        if c.name != "top1_agreement" or self.flips_allowed is None or c.measured is None or c.limit is None or c.measured >= c.limit:
            return ""
        return f"{self.decisive_flips} decisive flip(s) of {self.n_judged}, {self.flips_allowed} allowed"

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def summary(self) -> str:
        """One line: verdict and each check's measured figure beside its limit."""
        parts = [_check_text(c, self._detail(c)) for c in self.checks if c.measured is not None or c.limit is not None]
        verdict = "PASS" if self.passed else "FAIL"
        extra = [n for k, n in self.notes.items() if n and k != "finite"]
        return f"{verdict}: " + "; ".join(parts) + (f" [{'; '.join(extra)}]" if extra else "")

    def short_summary(self) -> str:
        """Verdict and the gated checks only (for a progress line)."""
        parts = [_check_text(c, self._detail(c)) for c in self.checks if c.limit is not None and c.name != "finite" and c.ok is not None]
        if self.finite_fraction < 1:
            parts.insert(0, "non-finite outputs")
        note = f" [{self.agreement_note}]" if self.agreement_note else ""
        return ("PASS" if self.passed else "FAIL") + ": " + "; ".join(parts) + note

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in (
            "name", "precision", "n", "n_real", "n_labeled", "max_abs", "mean_abs", "max_rel", "cosine_min", "cosine_mean",
            "top1_agreement", "raw_top1_agreement", "disagreements", "disagreements_at_ties", "near_ties", "tie_margin", "margin_min",
            "margin_median", "ref_classes_predicted", "ref_acc", "cand_acc", "acc_drop", "finite_fraction", "passed",
            "agreement_note")}
        d = {k: _json_num(v) for k, v in d.items()}
        d["gate"] = self.gate.to_dict()
        d["flips_allowed"] = self.flips_allowed
        d["checks"] = [{"name": c.name, "measured": _json_num(c.measured), "limit": c.limit, "ok": c.ok,
                        "note": self.notes.get(c.name, "")} for c in self.checks]
        return d

    # -- markdown -------------------------------------------------------------------------
    COLUMNS = ("artifact", "precision", "verdict", "max abs", "max rel", "cosine min / mean", "top-1 agreement",
               "near ties", "ref acc", "cand acc", "acc drop")

    @classmethod
    def markdown_header(cls) -> str:
        return "| " + " | ".join(cls.COLUMNS) + " |\n|" + "---|" * len(cls.COLUMNS) + "\n"

    def markdown_row(self, name: str | None = None) -> str:
        """One table row: each figure with its gate beside it (``measured (<= limit) ok``)."""
        return "| " + " | ".join(c.replace("|", "/") for c in self.cells(name)) + " |\n"

    def cells(self, name: str | None = None) -> list[str]:
        """The row's cells under :attr:`COLUMNS` (a report :class:`~pawlens.document.Document` table takes them as they are)."""
        by = {c.name: c for c in self.checks}
        top1 = by.get("top1_agreement")
        agree = _gated(top1, f"{self.top1_agreement * 100:.2f}%", pct=True, detail=self._detail(top1) if top1 else "")
        if self.raw_top1_agreement != self.top1_agreement:
            agree += f", raw {self.raw_top1_agreement * 100:.2f}%"
        if self.agreement_note:
            agree += f" ({self.agreement_note})"
        cells = [
            name or self.name,
            self.precision,
            "PASS" if self.passed else "**FAIL**",
            _gated(by.get("max_abs"), f"{self.max_abs:.2e}"),
            _gated(by.get("max_rel"), f"{self.max_rel:.2e}"),
            _gated(by.get("min_cosine"), f"{self.cosine_min:.6f} / {self.cosine_mean:.6f}"),
            agree,
            f"{self.near_ties}/{self.n} (margin < {self.tie_margin:g})",
            "-" if self.ref_acc is None else f"{self.ref_acc * 100:.2f}%",
            "-" if self.cand_acc is None else f"{self.cand_acc * 100:.2f}%",
            "-" if self.acc_drop is None else _gated(by.get("max_acc_drop"), f"{self.acc_drop:+.2f} pt"),
        ]
        return cells


def _json_num(v):
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else str(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _check_text(c: Check, detail: str = "") -> str:
    if c.limit is None:
        return f"{c.name} {_fmt(c.measured, c.name)} (not gated)"
    op = ">=" if c.name in ("min_cosine", "top1_agreement", "finite") else "<="
    mark = "ok" if c.ok else ("n/a" if c.ok is None else "FAIL")
    how = f" ({detail})" if detail else ""
    return f"{c.name} {_fmt(c.measured, c.name)} {op} {_fmt(c.limit, c.name)}{how} {mark}"


def _fmt(v, name: str) -> str:
    if v is None:
        return "n/a"
    if name in ("top1_agreement", "finite"):
        return f"{v * 100:.2f}%"
    if name == "max_acc_drop":
        return f"{v:.2f}pt"
    if name == "min_cosine":
        return f"{v:.6f}"
    return f"{v:.2e}"


def _gated(c: Check | None, text: str, pct: bool = False, detail: str = "") -> str:
    if c is None or c.limit is None:
        return text
    lim = f"{c.limit * 100:.1f}%" if pct else (f"{c.limit:.2f} pt" if c.name == "max_acc_drop" else (f"{c.limit:g}"))
    op = ">=" if c.name in ("min_cosine", "top1_agreement") else "<="
    mark = "ok" if c.ok else ("n/a" if c.ok is None else "FAIL")
    how = f"; {detail}" if detail else ""
    return f"{text} ({op} {lim}{how}) {mark}"


# ----------------------------------------------------------------------------- running


def run_batches(runner: Runner | np.ndarray, inputs: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Logits of ``inputs`` through ``runner`` in batches (activating and deactivating it if it was not active).

    A NumPy array is returned as it is (precomputed logits), so one reference can serve many candidates.
    """
    if isinstance(runner, np.ndarray):
        return np.asarray(runner, dtype=np.float32)
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    was_active = runner.is_active
    if not was_active:
        runner.activate()
    try:
        outs = [runner.infer(np.ascontiguousarray(inputs[i : i + batch_size])) for i in range(0, len(inputs), batch_size)]
    finally:
        if not was_active:
            runner.deactivate()
    return np.concatenate(outs, axis=0).astype(np.float32, copy=False)


def compare(reference: Runner | np.ndarray, candidate: Runner | np.ndarray, inputs: np.ndarray, *, labels: Sequence[int] | None = None,
            gate: Gate | None = None, batch_size: int = 8, n_real: int | None = None, name: str | None = None,
            precision: str | None = None) -> ParityResult:
    """Run both runners on ``inputs`` and gate the candidate against the reference.

    Args:
        reference: the reference runner (PyTorch fp32), or its precomputed ``(N, C)`` logits.
        candidate: the runner under test, or its logits.
        inputs: ``(N, 3, S, S)`` float32.
        labels: ``N`` class indices, ``-1`` where unknown (e.g. random tensors); ``None``: none known.
        gate: limits; default :func:`default_gate` of the candidate's precision (from its metadata; fp32 if unknown).
        batch_size: inference batch size for both runners.
        n_real: how many leading inputs are real images (for the report only); default all.
        name: label for the report (default: the candidate runner's name).
        precision: the candidate's precision (default: from its metadata).
    """
    x = np.asarray(inputs)
    if x.ndim != 4 or x.dtype != np.float32 or len(x) == 0:
        raise InputError(f"parity inputs must be a non-empty (N, 3, S, S) float32 array, got {x.shape} {x.dtype}")
    meta = getattr(candidate, "meta", None)
    precision = precision or (meta.precision if meta is not None else "fp32")
    if gate is None:
        gate = default_gate(precision) if precision in DEFAULT_GATES else default_gate("fp32")
    ref = run_batches(reference, x, batch_size)
    cand = run_batches(candidate, x, batch_size)
    nm = name or getattr(candidate, "name", "candidate")
    return compare_logits(ref, cand, labels=labels, gate=gate, n_real=len(x) if n_real is None else n_real, name=nm, precision=precision)


def compare_logits(ref: np.ndarray, cand: np.ndarray, *, labels: Sequence[int] | None = None, gate: Gate | None = None,
                   n_real: int | None = None, name: str = "candidate", precision: str = "fp32") -> ParityResult:
    """The measurements and the gate on two ``(N, C)`` logit arrays (the core of :func:`compare`)."""
    gate = gate or default_gate(precision)
    ref = np.asarray(ref, dtype=np.float64)
    cand = np.asarray(cand, dtype=np.float64)
    if ref.ndim != 2 or ref.shape != cand.shape:
        raise ArtifactError(f"[{name}] outputs {cand.shape} do not match the reference's {ref.shape} (class count or batch differs)")
    n, c = ref.shape
    if c < 2:
        raise ArtifactError(f"[{name}] outputs {c} logit per sample; a classifier needs at least 2")
    lab = np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(lab) != n:
        raise InputError(f"labels has {len(lab)} entries for {n} inputs")
    if np.any(lab >= c):
        raise InputError(f"labels contain class indices >= the model's {c} classes")

    finite = np.isfinite(cand).all(axis=1)
    finite_fraction = float(finite.mean())
    diff = np.abs(cand - ref)
    max_abs = float(diff.max()) if finite.all() else float("inf")
    mean_abs = float(diff[finite].mean()) if finite.any() else float("inf")
    scale = np.maximum(np.abs(ref).max(axis=1), 1e-12)
    max_rel = float((diff.max(axis=1) / scale).max()) if finite.all() else float("inf")
    num = (ref * cand).sum(axis=1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cos = np.where(den > 0, num / np.maximum(den, 1e-300), np.where(np.all(diff == 0, axis=1), 1.0, 0.0))
    cos = np.where(finite, cos, -1.0)
    cosine_min, cosine_mean = float(cos.min()), float(cos.mean())

    r_top = ref.argmax(axis=1)
    c_top = np.where(finite, cand.argmax(axis=1), -1)
    srt = np.sort(ref, axis=1)
    margin = srt[:, -1] - srt[:, -2]
    # Top-1 agreement is judged on the real inputs (they come first) when there are any: random tensors lie outside
    # what an INT8 model was calibrated on, and their logits are checked by max abs / cosine above all the same.
    judged = np.arange(n) < (n if not n_real else min(int(n_real), n))
    ties = margin < gate.tie_margin
    ref_classes = int(len(np.unique(r_top)))
    ag = _top1_agreement(r_top == c_top, ties, finite, judged, ref_classes=ref_classes, gate=gate)

    labeled = lab >= 0
    n_labeled = int(labeled.sum())
    ref_acc = cand_acc = acc_drop = None
    if n_labeled:
        ref_acc = float((r_top[labeled] == lab[labeled]).mean())
        cand_acc = float((c_top[labeled] == lab[labeled]).mean())
        acc_drop = (ref_acc - cand_acc) * 100.0

    notes: dict[str, str] = {}
    checks: list[Check] = [Check("finite", finite_fraction, 1.0, bool(finite.all()))]
    if not finite.all():
        notes["finite"] = f"{int((~finite).sum())} of {n} samples have NaN/inf logits"

    def bound(name_: str, measured: float, limit: float | None, upper: bool = True) -> None:
        ok = None if limit is None else (measured <= limit if upper else measured >= limit)
        checks.append(Check(name_, measured, limit, None if ok is None else bool(ok)))

    bound("max_abs", max_abs, gate.max_abs)
    bound("max_rel", max_rel, gate.max_rel)
    bound("min_cosine", cosine_min, gate.min_cosine, upper=False)

    checks.append(ag.check)
    if ag.note:
        notes["top1_agreement"] = ag.note

    if acc_drop is None:
        if gate.max_acc_drop is not None:
            checks.append(Check("max_acc_drop", None, gate.max_acc_drop, None))
            notes["max_acc_drop"] = "no labelled images (class folder names matching the model's classes): not evaluated"
    else:
        bound("max_acc_drop", acc_drop, gate.max_acc_drop)
        if ref_acc is not None and ref_acc <= 1.0 / c + 0.05:
            notes["max_acc_drop"] = f"the reference is at chance level ({ref_acc * 100:.1f}%): accuracy figures say little"

    passed = all(ch.ok is not False for ch in checks)
    return ParityResult(
        name=name, precision=precision, n=n, n_real=int(n if n_real is None else n_real), n_labeled=n_labeled,
        max_abs=max_abs, mean_abs=mean_abs, max_rel=max_rel, cosine_min=cosine_min, cosine_mean=cosine_mean,
        top1_agreement=ag.check.measured, raw_top1_agreement=ag.raw, disagreements=ag.flips, disagreements_at_ties=ag.flips_at_ties,
        near_ties=int(ties[judged].sum()),
        tie_margin=float(gate.tie_margin), margin_min=float(margin.min()), margin_median=float(np.median(margin)),
        ref_classes_predicted=ref_classes, ref_acc=ref_acc, cand_acc=cand_acc, acc_drop=acc_drop,
        finite_fraction=finite_fraction, checks=checks, passed=passed, gate=gate,
        agreement_note=ag.meaning, notes=notes, flips_allowed=ag.allowed,
    )


def markdown_table(results: Sequence[ParityResult], names: Sequence[str] | None = None) -> str:
    """A markdown table with one row per result."""
    names = list(names) if names is not None else [None] * len(results)
    return ParityResult.markdown_header() + "".join(r.markdown_row(nm) for r, nm in zip(results, names))


@dataclass(frozen=True)
class _Agreement:
    check: Check
    raw: float  # every flip counted
    flips: int
    flips_at_ties: int
    allowed: int | None  # decisive flips the gate allows at this n
    meaning: str  # what top-1 agreement can say for this reference (one class only, many near ties)
    note: str  # the meaning, the flips, and why the gate passed or failed


def _top1_agreement(agree: np.ndarray, ties: np.ndarray, finite: np.ndarray, judged: np.ndarray, *, ref_classes: int,
                    gate: Gate) -> _Agreement:
    """Top-1 agreement on the judged inputs: a flip at a reference near tie is not held against the candidate, and the
    decisive flips are judged against what n can support (:func:`flips_allowed`)."""
    n, n_judged = len(agree), int(judged.sum())
    disagreements = int((~agree & judged).sum())
    dis_ties = int((~agree & ties & finite & judged).sum())
    decisive_flips = disagreements - dis_ties
    raw_agreement = float(agree[judged].mean())
    agreement = 1.0 - decisive_flips / n_judged
    lim = gate.min_top1_agreement
    ok: bool | None = None
    note = ""
    if ref_classes == 1 and n > 1:
        note = "uninformative: the reference predicts one class for every input"
    elif ties[judged].mean() >= WEAK_TIE_FRACTION:
        note = f"weak evidence: {int(ties[judged].sum())}/{n_judged} reference near ties"
    allowed = None
    note_fail = ""
    if lim is not None:
        allowed = flips_allowed(n_judged, lim)
        ok = decisive_flips <= allowed
        if not ok:
            more = _needed_n(decisive_flips, lim)
            rate = decisive_flips / n_judged
            note_fail = (f"n={n_judged}: {decisive_flips} decisive flips show the flip rate ({rate * 100:.1f}%) above {(1 - lim) * 100:g}% "
                         f"with {CONFIDENCE * 100:.0f}% confidence (n={n_judged} allows {allowed})"
                         + (f"; the same {decisive_flips} flips would pass among {more:,} test photos" if more else ""))
        elif decisive_flips and agreement < lim:
            note_fail = (f"{decisive_flips} decisive flip(s) among {n_judged} photos do not show a flip rate above {(1 - lim) * 100:g}% "
                         f"({CONFIDENCE * 100:.0f}% one-sided binomial bound; n={n_judged} allows {allowed})")
    meaning = note
    if disagreements:
        note = (note + "; " if note else "") + (
            f"{disagreements} flip(s): {decisive_flips} where the reference was decisive, {dis_ties} at reference near ties "
            f"(margin < {gate.tie_margin:g}), not counted (raw agreement {raw_agreement * 100:.2f}%)")
    if n_judged < n:
        note = (note + "; " if note else "") + f"on the {n_judged} real inputs ({n - n_judged} random tensors: logit error only)"
    if note_fail:
        note = (note + "; " if note else "") + note_fail
    return _Agreement(Check("top1_agreement", agreement, lim, ok), raw_agreement, disagreements, dis_ties, allowed, meaning, note)
