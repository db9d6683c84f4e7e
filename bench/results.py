"""What a bench run produces: one :class:`BenchRow` per (configuration, batch) and the :class:`BenchResult` around them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np


@dataclass
class BenchRow:
    key: str
    label: str
    backend: str
    precision: str
    device: str
    batch: int
    status: str = "ok"  # ok | failed: ...
    n: int = 0
    p50_ms: float = float("nan")
    p90_ms: float = float("nan")
    p99_ms: float = float("nan")
    mean_ms: float = float("nan")
    min_ms: float = float("nan")
    images_per_s: float = float("nan")
    speedup: float = float("nan")  # vs PyTorch fp32 eager, same batch and device
    vs_eager: float = float("nan")  # latency ratio p50 / eager p50 (the goals' form)
    gops: float = float("nan")  # 2 * MACs * batch / p50: the compute rate the row reaches (1e9 ops/s)
    of_gemm: float = float("nan")  # gops / this CPU's measured dense GEMM rate in the row's precision
    top1_agreement: float = float("nan")
    max_abs: float = float("nan")
    within_gate: bool | None = None
    decisive_flips: int | None = None  # top-1 flips where the reference was decisive, among agreement_n photos
    agreement_n: int | None = None
    gate: str = ""
    export_gate: str = ""  # the export's own verdict on this file and its sample ("passed on 60 photos, 98.3%"), if recorded
    export_sample: bool | None = None  # True: judged here on the very photos the export gated on
    artifact: str = ""
    model: str = ""  # the trained model this row runs (its architecture, or the checkpoint's run name)
    accuracy: float = float("nan")  # top-1 accuracy on the labelled agreement photos
    method: str = ""  # burst (steady calls back to back) | rounds (every call after a pause)
    cold_ms: float = float("nan")  # median of the first calls after idle (burst method; never in p50)
    overhead_ms: float = float("nan")  # median of each steady call's wall time minus the time spent in the library
    peer: str = ""  # the runtime's own tool this row was checked against (benchmark_app, a bare InferenceSession loop, trtexec)
    peer_ms: float = float("nan")  # that tool's median on the same file, precision, batch, threads and shape (the median of
    # its runs: each run's own median, the runs spread over the row's rounds)
    peer_runs_ms: list[float] = field(default_factory=list)  # each peer run's median, in the order they ran
    vs_peer: float = float("nan")  # p50_ms / peer_ms
    peer_gap: bool | None = None  # more than the goal's tolerance apart (None: no peer for this row)
    samples_ms: list[float] = field(default_factory=list)

    def to_dict(self, samples: bool = True) -> dict:
        d = asdict(self)
        if not samples:
            d.pop("samples_ms")
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

    def set_samples(self, samples_s: Sequence[float]) -> None:
        """Fill the latency columns from raw per-call times (seconds)."""
        a = np.asarray(samples_s, dtype=np.float64) * 1e3
        self.n = len(a)
        self.p50_ms, self.p90_ms, self.p99_ms = (float(np.percentile(a, q)) for q in (50, 90, 99))
        self.mean_ms, self.min_ms = float(a.mean()), float(a.min())
        self.images_per_s = self.batch / (self.p50_ms / 1e3)
        self.samples_ms = [round(float(x), 3) for x in a]

    def set_burst(self, cold_s: Sequence[float], steady_s: Sequence[float], inner_s: Sequence[float]) -> None:
        """The cold figure and the runner's per-call overhead of a burst-timed row (its p50 comes from ``set_samples``)."""
        if len(cold_s):
            self.cold_ms = float(np.median(np.asarray(cold_s, dtype=np.float64))) * 1e3
        if len(inner_s) and len(inner_s) == len(steady_s):
            self.overhead_ms = float(np.median(np.asarray(steady_s, dtype=np.float64) - np.asarray(inner_s, dtype=np.float64))) * 1e3

    def peer_spread(self) -> str:
        """``"3 runs 4.47-5.32"``: the range of the peer's runs, or "" with one run or none."""
        runs = self.peer_runs_ms
        return f"{len(runs)} runs {min(runs):.2f}-{max(runs):.2f}" if len(runs) > 1 else ""

    def set_peer(self, tool: str, peer_ms: float | Sequence[float], tolerance: float) -> None:
        """The peer's figure: one median, or the medians of several runs (their median is the figure)."""
        runs = [float(peer_ms)] if isinstance(peer_ms, (int, float)) else [float(v) for v in peer_ms]
        self.peer, self.peer_runs_ms = tool, [round(v, 4) for v in runs]
        self.peer_ms = float(np.median(runs)) if runs else float("nan")
        if math.isfinite(self.p50_ms) and math.isfinite(self.peer_ms) and self.peer_ms > 0:
            self.vs_peer = self.p50_ms / self.peer_ms
            self.peer_gap = abs(self.vs_peer - 1.0) > tolerance


@dataclass
class BenchResult:
    rows: list[BenchRow]
    settings: dict[str, Any]
    extras: dict[str, Any]
    goals: list[dict[str, Any]]
    auto_picks: list[dict[str, Any]]
    runners: dict[str, Any]
    notes: list[str]
    out_dir: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def row(self, key: str, batch: int) -> BenchRow | None:
        for r in self.rows:
            if r.key == key and r.batch == batch:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "rows": [r.to_dict() for r in self.rows], "extras": self.extras, "goals": self.goals,
                "auto_picks": self.auto_picks, "runners": self.runners, "notes": self.notes, "files": self.files}
