"""2-D pose keypoints from video -> cadence, stance timing, knee flexion (sagittal view) or trunk
lean (frontal view). Precision is LOW throughout: pose estimators lose 37-76 % accuracy on prosthetic
limbs (Zhou et al. 2025, clinical-evidence.md Table C), so every result carries quality warnings.

Input ``keypoints``: array T x K x 2 (x, y pixels, y DOWN as in images) or T x K x 3 (+ confidence
0-1), K = 17 (``layout="coco17"``) or 33 (``layout="mediapipe33"``). NaN = not detected.
``view="sagittal"`` (camera at the side) or ``"frontal"``; for frontal, ``facing`` says whether the
person walks toward the camera (their left appears on image right) or away from it.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from service.sensors.base import (
    ExtractionResult,
    FeatureCollector,
    FloatArray,
    Precision,
    SensorKind,
    Side,
    check_rate,
    check_sides_distinct,
    coerce_side,
    local_maxima,
    median_or_nan,
    smooth,
)
from service.sensors.errors import InvalidValueError, NoCompleteStrideError, RecordingTooShortError

# Joint -> keypoint index per layout (COCO-17 and MediaPipe Pose-33 published orderings).
LAYOUTS: dict[str, dict[str, int]] = {
    "coco17": {"left_shoulder": 5, "right_shoulder": 6, "left_hip": 11, "right_hip": 12, "left_knee": 13,
               "right_knee": 14, "left_ankle": 15, "right_ankle": 16},
    "mediapipe33": {"left_shoulder": 11, "right_shoulder": 12, "left_hip": 23, "right_hip": 24, "left_knee": 25,
                    "right_knee": 26, "left_ankle": 27, "right_ankle": 28},
}
MIN_CONFIDENCE = 0.5


def _fill_1d(x: FloatArray) -> FloatArray:
    ok = np.isfinite(x)
    if ok.sum() < 2:
        return x
    idx = np.arange(len(x))
    return np.interp(idx, idx[ok], x[ok])


def extract_video_pose(
    keypoints: object,
    fps: float,
    prosthetic_side: Side | str,
    *,
    layout: Literal["coco17", "mediapipe33"] = "coco17",
    view: Literal["sagittal", "frontal"] = "sagittal",
    facing: Literal["toward_camera", "away_from_camera"] = "toward_camera",
) -> ExtractionResult:
    side = coerce_side(prosthetic_side)
    fs = check_rate(fps, "fps")
    if layout not in LAYOUTS:
        raise InvalidValueError("layout", f"must be one of {sorted(LAYOUTS)}")
    if view not in ("sagittal", "frontal"):
        raise InvalidValueError("view", "must be 'sagittal' or 'frontal'")
    kp = np.asarray(keypoints, dtype=np.float64)
    n_kp = 17 if layout == "coco17" else 33
    if kp.ndim != 3 or kp.shape[1] != n_kp or kp.shape[2] not in (2, 3):
        raise InvalidValueError("keypoints", f"expected T x {n_kp} x 2|3 for {layout}, got {kp.shape}")
    # And at least 3 frames whatever the rate: at 1 fps 1.5 s is one frame, too few for a gradient.
    if len(kp) < max(3, int(1.5 * fs)):
        raise RecordingTooShortError("keypoints", f"need at least 1.5 s and 3 frames of video, got {len(kp)} frames ({len(kp) / fs:.2f} s)")
    out = FeatureCollector(SensorKind.VIDEO_POSE)
    if fs < 25:
        out.warn(f"{fs:g} fps is low for gait events (each frame = {1000 / fs:.0f} ms)")
    idx = LAYOUTS[layout]
    xy = kp[:, :, :2].copy()
    if kp.shape[2] == 3:
        joint_idx = list(idx.values())
        conf = kp[:, joint_idx, 2]
        low = float(np.mean(conf < MIN_CONFIDENCE))
        if low > 0.1:
            out.warn(f"{100 * low:.0f} % of joint detections below confidence {MIN_CONFIDENCE}: treated as gaps")
        xy[kp[:, :, 2] < MIN_CONFIDENCE] = np.nan
    j = {name: np.column_stack([_fill_1d(xy[:, i, 0]), _fill_1d(xy[:, i, 1])]) for name, i in idx.items()}
    missing = [n for n, v in j.items() if not np.isfinite(v).all()]
    if missing:
        out.warn(f"joints never detected: {missing}")
    hip = 0.5 * (j["left_hip"] + j["right_hip"])
    shoulder = 0.5 * (j["left_shoulder"] + j["right_shoulder"])
    role = {side: "prosthetic", side.other: "sound"}

    if view == "frontal":
        v = shoulder - hip
        # Image y points down; person's left is image +x when they face the camera.
        lr = 1.0 if facing == "toward_camera" else -1.0
        lean_left = np.degrees(np.arctan2(lr * v[:, 0], -v[:, 1]))
        lean_p = lean_left if side is Side.LEFT else -lean_left
        ok = np.isfinite(lean_p)
        if ok.any():
            out.add("trunk_lateral_lean_deg", float(np.percentile(lean_p[ok], 95)), "95th percentile frontal trunk angle (no stance events in frontal view)", int(ok.sum()), Precision.LOW)
            out.warn("frontal view: lean is relative to the image vertical; level the camera")
        return out.result(0, 0)

    # Sagittal: Zeni-style events from ankle position relative to the hip midpoint.
    direction = np.sign(np.gradient(smooth(hip[:, 0], int(0.3 * fs))))
    direction[direction == 0] = 1.0
    events: dict[Side, tuple[list[int], list[int]]] = {}
    gap = int(0.5 * fs)
    for s in Side:
        rel = smooth((j[f"{s.prefix}_ankle"][:, 0] - hip[:, 0]) * direction, max(1, int(0.05 * fs)))
        if not np.isfinite(rel).all():
            events[s] = ([], [])
            continue
        events[s] = (_peaks(rel, gap), _peaks(-rel, gap))
    stances: dict[Side, list[tuple[int, int]]] = {}
    for s in Side:
        hs, to = events[s]
        stances[s] = []
        for h in hs:
            later = [t for t in to if h + int(0.2 * fs) < t < h + int(1.5 * fs)]
            if later:
                stances[s].append((h, later[0]))
        out.add(f"stance_time_{role[s]}_s", median_or_nan((b - a) / fs for a, b in stances[s]), "ankle fore/aft extremes vs hip", len(stances[s]), Precision.LOW)
    out.add_asymmetry("stance_time_asymmetry_pct", "stance_time_prosthetic_s", "stance_time_sound_s", Precision.LOW)
    check_sides_distinct(events[Side.LEFT][0], events[Side.RIGHT][0], "keypoints", "ankle heel strikes")
    all_hs = sorted(h for s in Side for h in events[s][0])
    steps = np.diff(all_hs) / fs
    steps = steps[steps > 0]  # an isolated coinciding left/right strike is no step
    if len(all_hs) < 2 or steps.size == 0:
        raise NoCompleteStrideError("keypoints", "fewer than two heel strikes detected from the ankles")
    out.add("cadence_steps_per_min", 60.0 / float(np.median(steps)), "60 / median step time", len(steps), Precision.LOW)
    hp, kn, an = (j[f"{side.prefix}_{n}"] for n in ("hip", "knee", "ankle"))
    a_vec, b_vec = kn - hp, an - kn
    norms = np.linalg.norm(a_vec, axis=1) * np.linalg.norm(b_vec, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # coincident keypoints: no angle (NaN) that frame
        cos = np.where(norms > 0, np.sum(a_vec * b_vec, axis=1) / norms, np.nan)
    knee = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    p_st = stances[side]
    # Peaks over the frames that have an angle: one undetected keypoint must not void a whole stance.
    load = [v for v in (_nanmax(knee[a : a + max(2, int(0.4 * (b - a)))]) for a, b in p_st) if math.isfinite(v)]
    out.add("knee_flexion_loading_prosthetic_deg", median_or_nan(load), "2-D knee angle peak, first 40 % stance", len(load), Precision.LOW)
    swing = []
    for _a, b in p_st:
        nxt = [h for h in events[side][0] if h > b]
        if nxt:
            swing.append(_nanmax(knee[b : nxt[0] + 1]))
    swing = [v for v in swing if math.isfinite(v)]
    out.add("knee_flexion_swing_prosthetic_deg", median_or_nan(swing), "2-D knee angle peak in swing", len(swing), Precision.LOW)
    out.warn("2-D pose: knee angles are projections (off-plane rotation and prosthetic-limb detection errors)")
    used = len(stances[Side.LEFT]) + len(stances[Side.RIGHT])
    return out.result(used, max(0, len(all_hs) - used))


def _nanmax(x: FloatArray) -> float:
    finite = x[np.isfinite(x)]
    return float(finite.max()) if finite.size else math.nan


def _peaks(x: FloatArray, gap: int) -> list[int]:
    cand = [int(i) for i in local_maxima(x) if 0 < i < len(x) - 1 and x[i] > np.median(x)]
    chosen: list[int] = []
    for i in sorted(cand, key=lambda k: -x[k]):
        if all(abs(i - c) >= gap for c in chosen):
            chosen.append(i)
    return sorted(chosen)


__all__ = ["LAYOUTS", "extract_video_pose"]
