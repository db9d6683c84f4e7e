"""What the window's panels say, without Qt: the model panel, the figures and their captions, the snapshot's
lines, and whether a reference checkpoint may explain the deployed model.  The window only puts these texts into
its widgets, so each rule is one plain function that a test can call.

    panel = model_panel(info, path="best.int8.onnx", classes_by_hand=False, loading=False)
    verdict, why = pair_verdict(ref_info, model_info, "best.pt", "best.int8.onnx")   # "ok" | "warn" | "refuse"
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Any

from pawlens.runtime import formats

from .meters import Meters
from .overlay import model_view_or_none

#: The figures of the Performance panel, in order: key, title in the panel, title in a snapshot (None: not drawn).
FIGURES = (("latency", "Inference latency", "inference"), ("e2e", "Capture → label", "capture → label"),
           ("ifps", "Inference FPS", "inference fps"), ("dfps", "Display FPS", "display fps"),
           ("dropped", "Dropped (stale)", "dropped"), ("cam", "Grad-CAM", None))
#: Figure texts that are no measurement (a snapshot leaves them out).
IDLE = ("–", "", "paused", "ended")


def backend_name(key: Any) -> str:
    b = formats.BACKENDS.get(str(key))
    return b.name if b else str(key if key is not None else "?")


def backend_line(d: dict) -> str:
    """``ONNX Runtime · CPUExecutionProvider · int8``: the backend, what it runs on, the precision."""
    prov = d.get("providers") or []
    dev = str(d.get("device", "?")).upper()
    return f"{backend_name(d.get('backend'))} · {prov[0] if prov else dev} · {d.get('precision', '?')}"


@dataclass(frozen=True)
class ModelPanel:
    """The Model section: three badges (empty: hidden), the fallback warning (empty: hidden) and the text below."""

    backend: str = ""
    backend_tip: str = ""
    device: str = ""
    device_tip: str = ""
    precision: str = ""
    fallback: str = ""
    text: str = ""


def model_panel(info: dict | None, *, path: str | None, classes_by_hand: bool, loading: bool) -> ModelPanel:
    if info is None:
        return ModelPanel(text="Loading…" if loading else "Model ▸ Open Model… (or drop a .onnx here)")
    d = info.get("describe", {})
    choice, note = info.get("backend_choice") or "", info.get("backend_note") or ""
    why = " · ".join(x for x in (choice, note) if x)
    prov = d.get("providers") or []
    fallback = ""
    if d.get("fallback"):
        fallback = f"⚠ CUDA was requested ({', '.join(d.get('providers_requested') or ['CUDA'])}) but ONNX Runtime is running on the CPU"
    name = os.path.basename(path) if path else "injected predictor"
    extra = " (class names given by hand)" if classes_by_hand else ""
    text = f"{name}\nclasses: {', '.join(info['class_names'])}{extra}"
    text += f"\nbackend ({choice}): {note}" if note else f"\nbackend: {choice}" if choice else ""
    return ModelPanel(backend=backend_name(d.get("backend")), backend_tip=f"Why this backend: {why}" if why else "",
                      device=str(prov[0]).replace("ExecutionProvider", "") if prov else str(d.get("device", "?")).upper(),
                      device_tip="Active providers: " + ", ".join(prov) if prov else f"device: {d.get('device')}",
                      precision=str(d.get("precision", "?")), fallback=fallback, text=text)


def pair_verdict(ref: dict, mod: dict | None, ref_path: str | None, model_path: str | None) -> tuple[str, str]:
    """Whether the reference may explain the deployed model: ``("ok", "")``, ``("warn", why)`` (another checkpoint of
    the same network: shown, with a warning) or ``("refuse", why)`` (other classes or another architecture)."""
    if mod is None:
        return "ok", ""
    rname = os.path.basename(ref_path or "reference")
    mname = os.path.basename(model_path or "the model")
    if list(ref["class_names"]) != list(mod["class_names"]):
        return "refuse", (f"Reference {rname} refused: its classes [{', '.join(ref['class_names'])}] differ from {mname}'s "
                          f"[{', '.join(mod['class_names'])}]. Open the checkpoint the model was exported from.")
    ra, ma = ref.get("arch"), mod.get("arch")
    if ra and ma and "unknown" not in (ra, ma) and ra != ma:
        return "refuse", (f"Reference {rname} refused: it is a {ra} but {mname} is a {ma}; its heat maps would explain a "
                          "different network. Open the checkpoint the model was exported from.")
    rs, ms = ref.get("sha256"), mod.get("source_sha256")
    if rs and ms and rs != ms:
        return "warn", (f"Reference {rname} is not the checkpoint {mname} was exported from (sha256 differs): the overlay "
                        "shows the reference's reasons, which may differ from the deployed model's.")
    return "ok", ""


def reference_text(path: str | None, ref: dict) -> str:
    mode = ref.get("mode") or ""
    return (f"{os.path.basename(path or 'reference')} · {ref.get('arch') or ''} · loaded in {ref.get('load_ms', 0):.0f} ms"
            + (f" · {mode}" if mode else ""))


def collect_figures(m: Meters, *, captured: int, infer_dropped: int, display_dropped: int, cam_dropped: int, prediction: Any,
                    heartbeat: Any, describe: dict) -> dict[str, Any]:
    """Every figure the window shows (and a few more), for the self-check and the benchmark."""
    return {
        "frames_captured": captured,
        "frames_displayed": m.frames_displayed,
        "frames_inferred": m.frames_inferred,
        "frames_dropped_stale": infer_dropped,
        "display_dropped": display_dropped,
        "display_fps": round(m.display.rate(), 2),
        "display_fps_mean": round(m.display.mean_rate(), 2),
        "inference_fps": round(m.infer.rate(), 2),
        "inference_fps_mean": round(m.infer.mean_rate(), 2),
        "infer_ms_last": round(float(getattr(prediction, "infer_ms", 0.0) or 0.0), 2),
        "infer_ms_p50": m.infer.percentile(50),
        "infer_ms_p95": m.infer.percentile(95),
        "total_ms_last": round(float(getattr(prediction, "total_ms", 0.0) or 0.0), 2) if prediction is not None else None,
        "cam_count": m.cams_done,
        "cam_fps_mean": round(m.cam.mean_rate(), 2),
        "cam_ms_p50": m.cam.percentile(50),
        "cam_dropped": cam_dropped,
        "ui_latency_max_ms": round(heartbeat.maxima["playing"], 2),
        "ui_latency_loading_max_ms": round(heartbeat.maxima["loading"], 2),
        "ui_latency_p99_ms": round(heartbeat.percentile(99), 2),
        "ui_latency_samples": len(heartbeat.samples["playing"]),
        "backend": describe.get("backend"),
        "providers": describe.get("providers"),
        "precision": describe.get("precision"),
        "fallback": bool(describe.get("fallback", False)),
    }


def figure_texts(f: dict[str, Any], m: Meters, *, playback: str, has_frame: bool, has_prediction: bool, model_ready: bool,
                 cam_enabled: bool, cam_active: bool, cam_ms: float | None) -> dict[str, str]:
    """The Performance panel's texts.  Rates are live figures, shown only while playing: a paused or ended source says
    so, and a source that never showed a frame (no camera, a bad file) shows none (it did not end: it never ran)."""

    def rate(value: float, count: int) -> str:
        if playback == "playing":
            return f"{value:.1f}" if count > 1 else "–"
        if not has_frame:
            return "–"
        return playback if playback in ("paused", "ended") else "–"

    if not cam_enabled:
        cam = "off"
    elif cam_active and cam_ms is not None:
        r = m.cam.rate() if playback == "playing" else 0.0
        cam = (f"{r:.1f} fps · " if r else "") + f"{cam_ms:.0f} ms"
    else:
        cam = "–"
    return {"latency": f"{f['infer_ms_last']:.1f} ms" if has_prediction else "–",
            "e2e": f"{m.e2e_ms:.0f} ms" if m.e2e_ms is not None else "–",
            "ifps": rate(f["inference_fps"], m.infer.count) if model_ready else "–",
            "dfps": rate(f["display_fps"], m.display.count),
            "dropped": f"{f['frames_dropped_stale']}",
            "cam": cam}


def snapshot_lines(texts: dict[str, str], describe: dict, source: str, index: int, now: _dt.datetime | None = None) -> list[str]:
    """The snapshot footer's lines: the measured figures (three, then two), the backend, the source and the time."""
    shown = [(title, texts[key]) for key, _panel, title in FIGURES if title]
    lines = [" · ".join(f"{t} {v}" for t, v in part if v not in IDLE) for part in (shown[:3], shown[3:])]
    lines = [ln for ln in lines if ln]
    if describe:
        lines.append(backend_line(describe) + ("  ·  CUDA requested, running on CPU" if describe.get("fallback") else ""))
    lines.append(f"{source} · frame {index} · {(now or _dt.datetime.now()).strftime('%Y-%m-%d %H:%M:%S')}")
    return lines


class ViewBox:
    """The crop the deployed model (else the paired reference) sees on a frame, in frame pixels; recomputed only when
    the preprocessing or the frame size changes."""

    def __init__(self):
        self._key: tuple | None = None
        self._box: tuple[float, float, float, float] | None = None

    def of(self, frame_shape: tuple[int, int], model_info: dict | None, ref_info: dict | None,
           reference_ready: bool) -> tuple[float, float, float, float] | None:
        cfg = (model_info or {}).get("preprocess")
        if cfg is None and reference_ready:
            cfg = (ref_info or {}).get("preprocess")
        key = (cfg, tuple(frame_shape))  # compared by value
        if self._key != key:
            self._key, self._box = key, model_view_or_none(frame_shape, cfg)
        return self._box
