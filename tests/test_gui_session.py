"""The GUI session without Qt: which CAM pairs with which frame, staleness, when to ask for a CAM, captions.

Plain objects in, decisions out: no QApplication, no threads, no models.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pawlens.gui.session import COMPUTING, COMPUTING_CURRENT, LAGGING, CamOutput, Frame, GuiSession

NAMES = ["cat", "dog"]
FPS = 30.0


def frame(i: int, gen: int = 1, shape=(24, 32)) -> Frame:
    """Frame i of capture run ``gen`` at 30 fps (ids unique across runs)."""
    return Frame(id=gen * 10_000 + i, rgb=np.zeros(shape + (3,), np.uint8), t=i / FPS, session=gen, index=i, source="test")


def pred(label: str = "cat", p: float = 0.9):
    i = NAMES.index(label)
    probs = np.array([p, 1 - p] if i == 0 else [1 - p, p], np.float32)
    return SimpleNamespace(label=label, index=i, probs=probs, class_names=NAMES)


def cam(f: Frame, cls: int = 0, target: int | None = None, ref_top: int = 0, prediction=None, empty=False) -> CamOutput:
    probs = np.array([0.8, 0.2] if ref_top == 0 else [0.2, 0.8], np.float32)
    h, w = f.rgb.shape[:2]
    heat = np.zeros((h, w), np.float32)
    heat[h // 2, w // 2] = 0.0 if empty else 1.0
    return CamOutput(f, heat, np.zeros((h, w, 4), np.uint8), cls, NAMES[cls], probs, NAMES, 5.0, target, prediction)


def session(**kw) -> GuiSession:
    s = GuiSession(**kw)
    s.new_source(1)
    s.model_ready = True
    s.reference_ready = True
    return s


# ----------------------------------------------------------------------------- one definition of "CAM active"


def test_cam_active_needs_the_switch_and_a_paired_reference():
    s = GuiSession()
    assert not s.cam_active  # nothing loaded
    s.reference_ready = True
    assert s.cam_active
    s.cam_enabled = False
    assert not s.cam_active
    s.cam_enabled = True
    s.forget_cams()  # another reference is loading
    assert not s.cam_active and s.cam_out is None
    s.reference_ready = True
    s.cam_out = cam(frame(1))
    s.cam_enabled = False
    assert s.overlay_for(frame(1)).state == "none"  # switched off: nothing drawn, whatever is there
    assert s.cam_job() is None


# ----------------------------------------------------------------------------- pairing


def test_a_cam_pairs_with_the_prediction_of_its_own_frame():
    s = session()
    f1, f2 = frame(1), frame(2)
    p1, p2 = pred("cat"), pred("dog")
    s.on_frame(f1)
    s.on_frame(f2)
    assert s.on_prediction(f1, p1) and s.on_prediction(f2, p2)
    out = cam(f1)
    assert s.on_cam(out)
    assert out.prediction is p1  # not the newest prediction (p2): the one for the frame the CAM explains
    assert s.prediction is p2 and s.prediction_frame is f2


def test_a_cam_that_comes_before_its_prediction_gets_it_later():
    s = session()
    f = frame(1)
    s.on_frame(f)
    out = cam(f, ref_top=1)
    s.on_cam(out)
    assert out.prediction is None and not out.disagrees
    s.on_prediction(f, pred("cat"))
    assert out.prediction is not None and out.disagrees  # now the two models can be compared
    shown = s.view()
    assert shown.state == "exact" and shown.level == "warn" and "Models disagree" in shown.caption


def test_results_of_another_capture_run_are_refused():
    s = session()
    old = frame(5, gen=1)
    s.on_frame(old)
    s.new_source(2)
    assert s.frame is None and s.cam_out is None and not s.preds  # nothing of the previous source stays
    assert not s.on_prediction(old, pred())
    assert not s.on_cam(cam(old))
    assert s.on_frame(old) is None and s.frame is None
    assert s.prediction is None and s.cam_out is None


def test_predictions_kept_are_bounded():
    s = session()
    for i in range(s.KEEP_PREDICTIONS + 30):
        s.on_prediction(frame(i), pred())
    assert len(s.preds) == s.KEEP_PREDICTIONS and min(s.preds) == frame(30).id


# ----------------------------------------------------------------------------- exact, stale, none


def test_overlay_states():
    s = session(stale_ms=200)
    s.on_frame(frame(10))
    assert s.view().state == "none" and s.view().caption == COMPUTING  # no CAM yet
    s.on_cam(cam(frame(10)))
    v = s.view()
    assert v.state == "exact" and v.cam.frame.id == frame(10).id and v.caption.startswith("Grad-CAM of the reference")
    s.on_frame(frame(13))  # three frames (100 ms) later, its CAM not there yet
    v = s.view()
    assert v.state == "stale" and v.cam.frame.index == 10 and v.level == "warn"
    assert v.caption.startswith("Stale overlay from 3 frames (100 ms) earlier")
    s.on_frame(frame(17))  # 233 ms > stale_ms: hidden
    v = s.view()
    assert v.state == "none" and v.cam is None and v.caption == COMPUTING_CURRENT
    assert s.overlay_for(frame(9)).state == "none"  # a CAM of a later frame is never drawn on an earlier one
    assert s.overlay_for(frame(11, shape=(10, 10))).state == "none"  # nor one of another size


def test_sync_mode_shows_the_frame_of_the_cam():
    s = session(sync_cam=True)
    s.on_frame(frame(1))
    v = s.view(on_screen=None)
    assert v.frame is s.frame and v.state == "none" and v.caption == COMPUTING
    s.on_cam(cam(frame(1)))
    s.on_frame(frame(4))
    v = s.view(on_screen=frame(1))
    assert v.frame.index == 1 and v.state == "exact"  # never a stale overlay: the video waits for the CAM


# ----------------------------------------------------------------------------- the stale warning does not flicker


def test_stale_warning_is_held_while_playing_then_released():
    s = session(stale_ms=1500, stale_hold_ms=500)
    s.on_frame(frame(0))
    s.on_cam(cam(frame(0)))
    assert s.view().level == "info"  # never stale so far: the plain caption
    s.on_frame(frame(3))
    assert s.view().state == "stale"
    levels = []
    for i in range(4, 12):  # CAMs arrive for every other frame: exact and stale frames alternate
        s.on_frame(frame(i))
        if i % 2 == 0:
            s.on_cam(cam(frame(i)))
        v = s.view()
        levels.append(v.level)
        if v.state == "exact":
            assert v.caption.startswith(LAGGING) and "Stale overlay" not in v.caption
    assert set(levels) == {"warn"}  # one warning form throughout: no flicker between warn and info
    s.on_frame(frame(30))  # 19 frames (633 ms) after the last stale frame: past the hold
    s.on_cam(cam(frame(30)))
    v = s.view()
    assert v.state == "exact" and v.level == "info" and not v.caption.startswith(LAGGING)


def test_no_lag_warning_once_paused():
    s = session(stale_hold_ms=5000)
    s.on_frame(frame(0))
    s.on_cam(cam(frame(0)))
    s.on_frame(frame(2))
    assert s.view().state == "stale"
    s.paused = True
    s.on_prediction(frame(2), pred())
    s.on_cam(cam(frame(2)))
    v = s.view()
    assert v.state == "exact" and v.level == "info" and LAGGING not in v.caption


# ----------------------------------------------------------------------------- when to ask for a CAM


def test_no_cam_job_while_playing():
    s = session()
    f = frame(1)
    assert s.on_frame(f) is None
    s.on_prediction(f, pred())
    assert s.cam_job() is None  # the inference worker forwards classified frames itself


def test_without_a_deployed_model_every_displayed_frame_is_explained():
    s = session()
    s.model_ready = False
    f = frame(1)
    assert s.on_frame(f) == (f, None)
    s.cam_enabled = False
    assert s.on_frame(frame(2)) is None


def test_paused_frame_is_explained_once_classified_and_once_only():
    s = session()
    f = frame(7)
    s.on_frame(f)
    s.paused = True
    assert s.cam_job() is None  # not classified yet: the inference worker forwards it with its prediction
    p = pred()
    s.on_prediction(f, p)
    assert s.cam_job() == (f, p)
    assert s.cam_job(queued_frame_id=f.id) is None  # already waiting in the CAM slot
    s.on_cam(cam(f))
    assert s.cam_job() is None  # already there


def test_paused_class_change_re_explains_the_paused_frame_now():
    s = session()
    f = frame(7)
    s.on_frame(f)
    p = pred("cat")
    s.on_prediction(f, p)
    s.paused = True
    s.on_cam(cam(f, cls=0, target=None, prediction=p))
    assert s.cam_job() is None
    assert s.set_target(1) == (f, p)  # "dog" chosen: the paused frame is explained again, now
    v = s.view()
    assert v.state == "exact" and "computing the map of “dog”" in v.caption  # until it comes, the caption says so
    s.on_cam(cam(f, cls=1, target=1))
    v = s.view()
    assert v.cam.class_index == 1 and "computing" not in v.caption and "“dog” (chosen)" in v.caption
    assert s.set_target(1) is None  # nothing new to ask
    s.paused = False
    assert s.set_target(0) is None  # playing: the next frames bring it


def test_still_and_ended_sources_are_explained_without_new_frames():
    for kind in ("still", "ended"):
        s = GuiSession()
        s.new_source(1, still=kind == "still")
        s.ended = kind == "ended"
        s.reference_ready = True  # no deployed model
        f = frame(1)
        s.frame = f
        assert s.playback == kind and not s.live
        assert s.cam_job() == (f, None)


def test_playback_states():
    s = session()
    assert s.playback == "playing" and s.live
    s.paused = True
    assert s.playback == "paused"
    s.ended = True
    assert s.playback == "ended"
    s.new_source(2, still=True)
    assert s.playback == "still"


# ----------------------------------------------------------------------------- captions


def test_agrees_only_when_the_explained_class_is_the_predicted_one():
    p = pred("cat")
    text, level = GuiSession.caption(cam(frame(1), cls=0, prediction=p))
    assert "agrees with the deployed model" in text and level == "info"
    text, level = GuiSession.caption(cam(frame(1), cls=1, target=1, prediction=p))  # "dog" chosen, "cat" predicted
    assert "agrees" not in text and level == "info"
    assert "evidence for “dog” (chosen)" in text and "not the predicted class: the deployed model says cat (90.0%)" in text
    text, _ = GuiSession.caption(cam(frame(1), cls=0))  # no prediction to compare with
    assert "agrees" not in text and "deployed" not in text


def test_an_empty_map_says_so():
    text, _ = GuiSession.caption(cam(frame(1), cls=1, target=1, prediction=pred("cat"), empty=True))
    assert "evidence for “dog” (chosen) (20.0%): none found, the map is empty · not the predicted class" in text
    assert "none found" not in GuiSession.caption(cam(frame(1)))[0]


def test_disagreement_is_a_warning():
    text, level = GuiSession.caption(cam(frame(1), cls=1, ref_top=1, prediction=pred("cat")))
    assert level == "warn" and "deployed says cat (90.0%), reference says dog (80.0%)" in text


# ----------------------------------------------------------------------------- no Qt


def test_session_imports_no_qt_and_no_ml_framework():
    root = Path(__file__).resolve().parents[1]
    code = ("import sys, pawlens.gui.session; "
            "print([m for m in ('PySide6', 'torch', 'onnxruntime', 'cv2') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(root)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("hold", [0.0, 1000.0])
def test_exact_frames_never_show_the_stale_text(hold):
    s = session(stale_hold_ms=hold)
    for i in range(20):
        s.on_frame(frame(i))
        if i % 3 == 0:
            s.on_cam(cam(frame(i)))
        v = s.view()
        if v.state == "exact":
            assert v.cam.frame.id == v.frame.id and "Stale overlay" not in v.caption
        if v.state == "stale":
            assert v.cam.frame.id < v.frame.id and f"from {v.frame.index - v.cam.frame.index} frame" in v.caption
