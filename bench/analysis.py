"""From raw samples to judged rows: latency columns, parity against each model's PyTorch fp32 reference, speed-ups,
the share of this CPU's compute ceiling, the verdict on ``--backend auto``, and the goals (``goals.json``).

    rows = make_rows(cands, batch_sizes, samples, failed, parity, iters=20, model_of=lambda c: "resnet50")
    set_speedups(rows, main_label); apply_ceiling(rows, extras, main_label)
    res.goals = evaluate_goals(res)          # a list of {"goal", "measured", "ok", "note"}

Everything here is pure: no worker, no clock.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Sequence

from .results import BenchResult, BenchRow

GOALS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goals.json")


def load_goals(path: str = GOALS_FILE) -> dict[str, float]:
    """The goal ratios (keys starting with ``_`` are comments)."""
    with open(path, encoding="utf-8") as f:
        return {k: float(v) for k, v in json.load(f).items() if not k.startswith("_")}


# ----------------------------------------------------------------------------- parity and rows


def gate_for(c):
    """The parity gate of a row: the artifact's own; bf16 paths are judged by the fp16 gate (both are 16-bit floats)."""
    from pawlens.runtime.compare import default_gate

    prec = c.gate_precision if c.gate_precision in ("fp32", "fp16", "int8") else "fp16"
    return default_gate(prec), prec


def parity_per_row(cands, logits: dict[str, Any], ref_logits: dict[str, Any], labels_of: dict[str, list[int]]) -> dict[str, Any]:
    """Each comparable row's ParityResult against the fp32 reference of its own model."""
    from pawlens.runtime.compare import compare_logits

    out = {}
    for c in cands:
        if c.key in logits and c.comparable and c.group in ref_logits:
            gate, prec = gate_for(c)
            out[c.key] = compare_logits(ref_logits[c.group], logits[c.key], labels=labels_of[c.group], gate=gate, name=c.key, precision=prec)
    return out


def make_rows(cands, batch_sizes: Sequence[int], samples: dict[tuple[str, int], list[float]], failed: dict[str, str],
              parity: dict[str, Any], *, iters: int, model_of: Callable[[Any], str], timing=None) -> list[BenchRow]:
    """One row per candidate and batch size, with its latency columns and its parity figures.  ``timing``: the burst
    method's :class:`~pawlens.bench.schedule.Timing` (its steady calls are ``samples``), ``None`` for the rounds method."""
    rows = []
    for c in cands:
        for b in batch_sizes:
            row = BenchRow(c.key, c.label, c.backend, c.precision, c.device, b,
                           artifact=os.path.basename(c.path) if c.backend != "torch" else "checkpoint", model=model_of(c),
                           method="burst" if timing is not None else "rounds")
            s = samples.get((c.key, b), [])
            if c.key in failed and len(s) < iters:
                row.status = f"failed: {failed[c.key]}"
            if s:
                row.set_samples(s)
                if timing is not None:
                    row.set_burst(timing.cold.get((c.key, b), []), s, timing.inner.get((c.key, b), []))
            pr = parity.get(c.key)
            if pr is not None:
                row.top1_agreement, row.max_abs, row.within_gate = pr.top1_agreement, pr.max_abs, bool(pr.passed)
                row.decisive_flips, row.agreement_n = pr.decisive_flips, pr.n_judged
                row.gate = f"{pr.precision} gate"
                if pr.cand_acc is not None:
                    row.accuracy = pr.cand_acc
            rows.append(row)
    return rows


def set_speedups(rows: list[BenchRow], main_label: str) -> None:
    """Speed-up and latency ratio of every row against PyTorch fp32 eager of its own model, batch and device."""
    for r in rows:
        own = ("torch-fp32" if r.device == "cpu" else "torch-fp32-cuda") if r.model == main_label else f"torch-fp32#{r.model}"
        ref = next((x for x in rows if x.key == own and x.batch == r.batch), None)
        if ref is not None and math.isfinite(ref.p50_ms) and math.isfinite(r.p50_ms):
            r.speedup = ref.p50_ms / r.p50_ms
            r.vs_eager = r.p50_ms / ref.p50_ms


def apply_ceiling(rows: list[BenchRow], extras: dict[str, Any], main_label: str) -> None:
    """The compute rate of each CPU row of the main model, and its share of the GEMM rate in its precision."""
    from pawlens.runtime.ceiling import rate_for

    if not extras.get("macs"):
        return
    for r in rows:
        if r.device == "cpu" and math.isfinite(r.p50_ms) and r.model == main_label:
            r.gops = 2 * extras["macs"] * r.batch / (r.p50_ms / 1e3) / 1e9
            rate = rate_for(r.precision, extras)
            if rate:
                r.of_gemm = r.gops / rate


def agreement_notes(parity: dict[str, Any]) -> list[str]:
    notes = []
    for note in sorted({pr.agreement_note for pr in parity.values() if pr.agreement_note}):
        who = [k for k, pr in parity.items() if pr.agreement_note == note]
        notes.append(f"Top-1 agreement for {len(who)} row(s) ({', '.join(who[:4])}{', ...' if len(who) > 4 else ''}): {note}.")
    return notes


# ----------------------------------------------------------------------------- --backend auto


def key_for_plan(plan, path: str, meta) -> str:
    """The row key of what ``plan_runner(path, backend="auto")`` chose."""
    if plan.backend == "torch":
        dev = plan.kwargs.get("device", "cpu")
        if dev.startswith("cuda"):
            return "torch-fp32-cuda"
        return "torch-fp32-cl" if plan.kwargs.get("channels_last") else "torch-fp32"
    base = os.path.basename(path)
    if plan.backend == "openvino":
        bf16 = plan.kwargs.get("precision") == "bf16"
        if meta.precision == "int8":
            return f"openvino-int8{'-bf16' if bf16 else ''}@{base}"
        return f"openvino-{'bf16' if bf16 else meta.precision}@{base}"
    if plan.backend == "ort":
        return f"ort-{meta.precision}{'-cuda' if str(plan.kwargs.get('device', 'cpu')).startswith('cuda') else ''}@{base}"
    return f"trt-{meta.precision}@{base}"


def _competitors(rows: list[BenchRow], b: int, base: str, key: str, by_key: dict, is_ckpt: bool) -> list[BenchRow]:
    if is_ckpt:
        # auto never compiles (a 10-30 s stall per batch size the user did not ask for): --compile is opt-in,
        # so the torch.compile rows are not auto's competitors; nor are the rows of another model's checkpoint.
        same = [r for r in rows if r.backend == "torch" and r.batch == b and r.precision == "fp32" and r.device == by_key[key].device
                and not by_key[r.key].compiled and by_key[r.key].group == by_key[key].group]
    else:
        same = [r for r in rows if r.batch == b and r.key.endswith("@" + base)]
    # auto never lowers the precision (a bf16 path for an fp32 artifact may pass a gate on one set of
    # inputs and not on the next), so only rows computing in the artifact's own precision compete.
    return [r for r in same if math.isfinite(r.p50_ms) and r.precision == by_key[r.key].gate_precision]


def judge_auto(path, meta, plan, key, rows: list[BenchRow], batch_sizes, by_key, tolerance: float) -> dict[str, Any]:
    """Is auto's pick the fastest row for this artifact that stays inside the artifact's gate?"""
    base = os.path.basename(path)
    is_ckpt = by_key.get(key) is not None and by_key[key].backend == "torch"
    d: dict[str, Any] = {"artifact": base if not is_ckpt else "checkpoint (.pt)", "precision": meta.precision, "auto": plan.backend,
                         "auto_key": key, "reason": plan.reason, "per_batch": {}}
    for b in batch_sizes:
        same = _competitors(rows, b, base, key, by_key, is_ckpt)
        timed = next((r for r in same if r.key == key), None)
        same = [r for r in same if r.within_gate is not False]
        picked = next((r for r in same if r.key == key), None)
        if picked is None:
            note = ("auto's pick was not timed" if timed is None else
                    "auto's pick is outside the artifact's parity gate on these inputs (see its agreement)")
            d["per_batch"][b] = {"ok": None, "note": note}
            continue
        best = min(same, key=lambda r: r.p50_ms)
        ratio = picked.p50_ms / best.p50_ms
        d["per_batch"][b] = {"ok": ratio <= tolerance, "fastest": best.key, "fastest_ms": best.p50_ms, "auto_ms": picked.p50_ms,
                             "ratio": ratio}
    return d


def auto_picks(files: Sequence[tuple[str, Any]], rows: list[BenchRow], batch_sizes, by_key, *, cuda: bool,
               tolerance: float) -> list[dict[str, Any]]:
    """The verdict on ``--backend auto`` for each (path, meta) of the run."""
    from pawlens.errors import PawlensError
    from pawlens.runtime.factory import plan_runner

    out = []
    for path, me in files:
        try:
            static = plan_runner(path, backend="auto", device="auto" if cuda else "cpu", meta=me, tuned=False)
            plan = plan_runner(path, backend="auto", device="auto" if cuda else "cpu", meta=me)
        except PawlensError as e:
            out.append({"artifact": os.path.basename(path), "error": str(e)})
            continue
        static_v = judge_auto(path, me, static, key_for_plan(static, path, me), rows, batch_sizes, by_key, tolerance)
        static_v["source"] = "static"
        tuned_key = ("torch-tuned" if plan.backend == "torch" else f"tuned@{os.path.basename(path)}")
        if plan.source == "tuned" and tuned_key in by_key:
            d = judge_auto(path, me, plan, tuned_key, rows, batch_sizes, by_key, tolerance)
            d["source"], d["static"] = "tuned", static_v
        else:
            d = static_v
        out.append(d)
    return out


# ----------------------------------------------------------------------------- goals


def _min_ratio(r: BenchRow, ref: BenchRow) -> str:
    """The same ratio on the fastest call of each row (other load only ever adds time, so it shows the noise floor)."""
    if not (math.isfinite(r.min_ms) and math.isfinite(ref.min_ms)) or ref.min_ms <= 0:
        return ""
    return f"; on min latency {r.min_ms / ref.min_ms:.2f}x"


class _Goals:
    """The goals table being built for one result."""

    def __init__(self, res: BenchResult, goals: dict[str, float]):
        self.res, self.g, self.out = res, goals, []
        self.main = res.settings.get("model", "")
        bs = res.settings["batch_sizes"]
        self.b1 = 1 if 1 in bs else bs[0]
        self.e1 = res.row("torch-fp32", self.b1)

    def add(self, goal: str, measured: str, ok: bool | None, note: str = "") -> None:
        self.out.append({"goal": goal, "measured": measured, "ok": ok, "note": note})

    def fastest(self, pred, b: int, device: str = "cpu") -> BenchRow | None:
        rows = [r for r in self.res.rows if r.batch == b and r.device == device and math.isfinite(r.p50_ms) and pred(r)
                and r.model in (self.main, "")]
        return min(rows, key=lambda r: r.p50_ms) if rows else None

    def ceiling(self, r: BenchRow, ratio: float) -> str:
        """How the row's compute rate and the rate the goal needs compare with this CPU's GEMM rate in that precision."""
        from pawlens.runtime.ceiling import rate_for

        rate, macs = rate_for(r.precision, self.res.extras), self.res.extras.get("macs")
        if not rate or not macs or not math.isfinite(r.gops):
            return ""
        need = 2 * macs * r.batch / (ratio * self.e1.p50_ms / 1e3) / 1e9
        return (f"runs at {r.gops:.0f} GOP/s, {r.of_gemm:.0%} of this CPU's {r.precision} GEMM rate ({rate:.0f}); "
                f"the goal needs {need:.0f} GOP/s = {need / rate:.2f}x that rate")

    def vs_eager(self, r: BenchRow, text: str, limit: float, named: bool = True) -> None:
        e1 = self.e1
        shown = f"{r.label}: " if named else ""
        self.add(text, f"{shown}{r.vs_eager:.2f}x ({r.p50_ms:.1f} vs {e1.p50_ms:.1f} ms){_min_ratio(r, e1)}", r.vs_eager <= limit,
                 self.ceiling(r, limit))


def _cpu_ratio_goals(j: _Goals) -> None:
    g, b1 = j.g, j.b1
    if j.e1 is None or not math.isfinite(j.e1.p50_ms):
        return
    ort = j.fastest(lambda r: r.backend == "ort" and r.precision == "fp32", b1)
    if ort:
        j.vs_eager(ort, f"ONNX Runtime fp32 at batch {b1} <= {g['ort_fp32_vs_eager_b1']}x PyTorch fp32 eager", g["ort_fp32_vs_eager_b1"],
                   named=False)
    i8 = j.fastest(lambda r: r.precision == "int8", b1)
    if i8:
        j.vs_eager(i8, f"fastest INT8 path at batch {b1} <= {g['int8_vs_eager_b1']}x PyTorch fp32 eager", g["int8_vs_eager_b1"])
        _int8_agreement_goal(j, i8)
    tb = j.fastest(lambda r: r.backend == "torch" and r.precision == "bf16", b1)
    if tb:
        j.vs_eager(tb, f"PyTorch best CPU path (bf16 + channels_last, converted or compiled) at batch {b1} <= {g['torch_best_vs_eager']}x eager",
                   g["torch_best_vs_eager"])


def _int8_agreement_goal(j: _Goals, i8: BenchRow) -> None:
    """Judged only on real photos (the inputs' own flag) with a trained checkpoint."""
    if not math.isfinite(i8.top1_agreement):
        return
    judged = bool(j.res.settings.get("real_photos")) and not j.res.settings["embedded_default"]
    from pawlens.runtime.compare import flips_allowed

    lim = j.g["int8_agreement"]
    ok, how = None, ""
    if judged and i8.agreement_n:  # the export's rule: fail only on evidence that the flip rate is over the limit
        allowed = flips_allowed(i8.agreement_n, lim)
        ok = i8.decisive_flips <= allowed
        how = f"; {i8.decisive_flips} decisive flip(s) of {i8.agreement_n}, {allowed} allowed"
    elif judged:
        ok = i8.top1_agreement >= lim
    j.add(f"INT8 top-1 agreement >= {lim:.0%} on real photos", f"{i8.top1_agreement:.2%} ({i8.label}{how})",
          ok, "" if judged else "not judged: needs a trained --checkpoint and --images with real photos")


def _bf16_modes(j: _Goals) -> None:
    for b in j.res.settings["batch_sizes"]:
        conv, ac = j.res.row("torch-bf16-cl", b), j.res.row("torch-bf16ac-cl", b)
        if conv and ac and math.isfinite(conv.p50_ms) and math.isfinite(ac.p50_ms) and b > 1:
            j.add(f"bf16 converted vs autocast at batch {b} (measure both)", f"{conv.p50_ms:.1f} vs {ac.p50_ms:.1f} ms", None,
                  "converted is faster" if conv.p50_ms < ac.p50_ms else "autocast is faster here")


def _auto_vs_openvino(j: _Goals) -> None:
    """The fastest path auto picks vs OpenVINO bf16 / INT8 (what Intel-CPU users pick instead)."""
    auto_keys = {a.get("auto_key") for a in j.res.auto_picks}
    for b in j.res.settings["batch_sizes"]:
        if b not in (1, 8):
            continue
        rivals = [r for r in (j.fastest(lambda r, p=p: r.backend == "openvino" and r.precision == p, b) for p in ("bf16", "int8")) if r]
        ours = j.fastest(lambda r: r.key in auto_keys, b)
        if not (ours and rivals):
            continue
        best = min(rivals, key=lambda r: r.p50_ms)
        ort_fp32 = j.fastest(lambda r: r.backend == "ort" and r.precision == "fp32", b)
        rel = ""
        if ort_fp32:
            rel = "vs ORT fp32: " + ", ".join(f"{r.label} {r.p50_ms / ort_fp32.p50_ms:.2f}x" for r in [*rivals, ours])
        j.add(f"fastest path auto picks at batch {b} at least as fast as the best of OpenVINO bf16 / INT8",
              f"{ours.label} {ours.p50_ms:.1f} ms vs {best.label} {best.p50_ms:.1f} ms", ours.p50_ms <= best.p50_ms * j.g["auto_tolerance"], rel)


def _auto_fastest(j: _Goals) -> None:
    for a in j.res.auto_picks:
        for b, pb in a.get("per_batch", {}).items():
            if pb.get("ok") is not None:
                j.add(f"--backend auto picks the fastest path within the gate for {a['artifact']} (batch {b})",
                      f"auto={a['auto_key']} ({pb['auto_ms']:.1f} ms), fastest={pb['fastest']} ({pb['fastest_ms']:.1f} ms)", pb["ok"])


def _extras_goals(j: _Goals) -> None:
    ex, g = j.res.extras, j.g
    if "overhead_ms" in ex:
        j.add(f"runtime overhead (preprocess {ex['overhead_frame']} + softmax) <= {g['overhead_ms']} ms", f"{ex['overhead_ms']:.2f} ms",
              ex["overhead_ms"] <= g["overhead_ms"])
    if "cam_vs_forward" in ex:
        j.add(f"Grad-CAM of one frame <= {g['cam_vs_forward']}x one PyTorch fp32 forward (CPU)",
              f"{ex['cam_vs_forward']:.2f}x ({ex['cam_ms']:.1f} vs {ex['forward_ms']:.1f} ms{', ' + ex['cam_mode'] if 'cam_mode' in ex else ''})",
              ex["cam_vs_forward"] <= g["cam_vs_forward"])


def _vs_resnet50(j: _Goals) -> None:
    r50 = next((r for r in j.res.rows if r.key.startswith("torch-fp32#resnet50") and r.batch == 1 and math.isfinite(r.p50_ms)), None)
    if r50 is None or j.main.startswith("resnet50"):
        return
    fast = j.fastest(lambda r: r.within_gate is not False, 1)
    if fast is not None:
        ratio, lim = fast.p50_ms / r50.p50_ms, j.g["fastest_vs_resnet50_eager_b1"]
        j.add(f"fastest CPU path of {j.main} at batch 1 <= {lim}x ResNet50 fp32 eager ({r50.model})",
              f"{fast.label}: {ratio:.3f}x ({fast.p50_ms:.2f} vs {r50.p50_ms:.1f} ms){_min_ratio(fast, r50)}", ratio <= lim)


def _tensorrt(j: _Goals) -> None:
    lim = j.g["trt_fp16_speedup_b1"]
    goal = f"TensorRT FP16 >= {lim}x PyTorch fp32 eager (CUDA) at batch 1"
    te = j.res.row("torch-fp32-cuda", 1)
    trt = j.fastest(lambda r: r.backend == "trt" and r.precision == "fp16", 1, device="cuda")
    if te and trt and math.isfinite(te.p50_ms):
        j.add(goal, f"{trt.speedup:.2f}x", trt.speedup >= lim)
    else:
        j.add(goal, "not measured", None, "no GPU / TensorRT in this run")


def _peers(j: _Goals) -> None:
    """Every row with a peer within ``peer_tolerance`` of it (one goal per tool), and the OpenVINO runner at batch 1 on the
    main model within ``runner_vs_peer`` of ``benchmark_app``."""
    tol = j.g.get("peer_tolerance", 0.10)
    for tool in sorted({r.peer for r in j.res.rows if r.peer}):
        rows = [r for r in j.res.rows if r.peer == tool and math.isfinite(r.vs_peer)]
        worst = max(rows, key=lambda r: abs(r.vs_peer - 1))
        gaps = [f"{r.label} b{r.batch} {r.vs_peer:.2f}x" for r in rows if r.peer_gap]
        j.add(f"every row timed by its runtime's tool within {tol:.0%} of {tool}",
              f"{len(rows) - len(gaps)} of {len(rows)} rows; widest {worst.label} batch {worst.batch}: {worst.p50_ms:.2f} vs "
              f"{worst.peer_ms:.2f} ms ({worst.vs_peer:.2f}x)", not gaps, ("outside: " + ", ".join(gaps)) if gaps else "")
    lim = j.g.get("runner_vs_peer", 0.05)
    for r in j.res.rows:
        if r.backend == "openvino" and r.batch == 1 and r.model == j.main and r.peer == "benchmark_app" and math.isfinite(r.vs_peer):
            j.add(f"{r.label} runner at batch 1 within {lim:.0%} of benchmark_app's static latency",
                  f"{r.p50_ms:.2f} vs {r.peer_ms:.2f} ms ({r.vs_peer:.2f}x)", r.vs_peer <= 1 + lim)


def evaluate_goals(res: BenchResult, goals: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """The performance goals (``goals.json``), checked against this run's own figures (ratios within the run)."""
    j = _Goals(res, goals or load_goals())
    for check in (_cpu_ratio_goals, _bf16_modes, _auto_vs_openvino, _auto_fastest, _extras_goals, _vs_resnet50, _tensorrt, _peers):
        check(j)
    return j.out
