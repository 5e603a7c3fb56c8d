"""Marker / landmark trajectories (motion capture) -> spatiotemporal and kinematic features.

Input: ``markers`` mapping canonical landmark names to N x 3 positions in metres (NaN = gap):
``left_heel``, ``right_heel`` (required), ``left_toe``, ``right_toe``, ``left_knee``, ``right_knee``,
``left_ankle``, ``right_ankle``, ``left_hip``, ``right_hip`` (hip joint centres or ASIS markers),
``sacrum``, ``c7``, ``left_shoulder``, ``right_shoulder``. Lab axes are found from the data: vertical
= the axis along which hips sit highest above heels, progression = the horizontal axis the pelvis
travels along, left = the side where the left markers are. So C3D files with Y-up and JSON with Z-up
both work without configuration.

Events follow Zeni et al. 2008 (Gait Posture 27:710): heel strike at the maximum of heel-minus-pelvis
distance along the walking direction, toe-off at the minimum of toe-minus-pelvis distance.
Adapters: ``service.sensors.c3d`` (C3D files) and ``service.sensors.mocap_angles`` (gaitkit JSON).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from service.sensors.base import (
    ExtractionResult,
    FeatureCollector,
    FloatArray,
    Precision,
    SensorKind,
    Side,
    as_signal,
    check_channels,
    check_rate,
    check_same_length,
    check_sides_distinct,
    coerce_side,
    local_maxima,
    median_or_nan,
    smooth,
)
from service.sensors.errors import NoCompleteStrideError, RecordingTooShortError, SideMissingError

SEGMENTS = ("heel", "toe", "knee", "ankle", "hip", "shoulder")
KNOWN_MARKERS = (*tuple(f"{s}_{seg}" for s in ("left", "right") for seg in SEGMENTS), "sacrum", "c7")


@dataclass(frozen=True, slots=True)
class LabFrame:
    """Unit vectors of the lab in marker coordinates (progression sign may flip per frame)."""

    up: FloatArray
    forward: FloatArray
    left: FloatArray


@dataclass(frozen=True, slots=True)
class GaitEvents:
    """Per side, sorted sample indices of heel strikes and toe-offs."""

    heel_strike: dict[Side, tuple[int, ...]]
    toe_off: dict[Side, tuple[int, ...]]


def _fill(x: FloatArray) -> FloatArray:
    """Linear interpolation over NaN gaps (marker dropouts) per column; edges held."""
    out = x.copy()
    idx = np.arange(len(x))
    for c in range(x.shape[1]):
        ok = np.isfinite(x[:, c])
        if ok.sum() >= 2 and not ok.all():
            out[:, c] = np.interp(idx, idx[ok], x[ok, c])
    return out


def lab_frame(m: Mapping[str, FloatArray]) -> LabFrame:
    heel = np.nanmean(np.vstack([m["left_heel"], m["right_heel"]]), axis=0)
    top_name = next((k for k in ("left_hip", "right_hip", "sacrum", "c7") if k in m), None)
    if top_name is None:
        up_idx = 2
        up_sign = 1.0
    else:
        diff = np.nanmean(m[top_name], axis=0) - heel
        up_idx = int(np.argmax(np.abs(diff)))
        up_sign = float(np.sign(diff[up_idx]))
    pelvis = _pelvis(m)
    horiz = [i for i in range(3) if i != up_idx]
    rng = [float(np.nanmax(pelvis[:, i]) - np.nanmin(pelvis[:, i])) for i in horiz]
    fwd_idx = horiz[int(np.argmax(rng))]
    ml_idx = horiz[1 - int(np.argmax(rng))]
    lr = float(np.nanmean(m["left_heel"][:, ml_idx] - m["right_heel"][:, ml_idx]))
    up = np.zeros(3)
    up[up_idx] = up_sign
    left = np.zeros(3)
    left[ml_idx] = 1.0 if lr >= 0 else -1.0
    fwd = np.zeros(3)
    fwd[fwd_idx] = 1.0
    return LabFrame(up, fwd, left)


def _pelvis(m: Mapping[str, FloatArray]) -> FloatArray:
    if "left_hip" in m and "right_hip" in m:
        centre: FloatArray = 0.5 * (m["left_hip"] + m["right_hip"])
    elif "sacrum" in m:
        centre = m["sacrum"]
    else:
        centre = 0.5 * (m["left_heel"] + m["right_heel"])
    return centre


def detect_events(m: Mapping[str, FloatArray], fs: float, frame: LabFrame) -> tuple[GaitEvents, FloatArray]:
    """Zeni heel-strike / toe-off events. Also returns the per-frame walking direction sign."""
    pelvis = _pelvis(m)
    v = np.gradient(smooth(pelvis @ frame.forward, int(0.2 * fs)))
    direction = np.where(v >= 0, 1.0, -1.0)
    hs: dict[Side, tuple[int, ...]] = {}
    to: dict[Side, tuple[int, ...]] = {}
    gap = int(0.5 * fs)
    for s in Side:
        heel_rel = ((m[f"{s.prefix}_heel"] - pelvis) @ frame.forward) * direction
        toe = m.get(f"{s.prefix}_toe", m[f"{s.prefix}_heel"])
        toe_rel = ((toe - pelvis) @ frame.forward) * direction
        hs[s] = _peaks(smooth(heel_rel, int(0.03 * fs)), gap)
        to[s] = _peaks(-smooth(toe_rel, int(0.03 * fs)), gap)
    return GaitEvents(hs, to), direction


def _peaks(x: FloatArray, gap: int) -> tuple[int, ...]:
    """Local maxima above the signal median, at most one per ``gap`` samples, not at the edges."""
    cand = [int(i) for i in local_maxima(x) if 0 < i < len(x) - 1 and x[i] > np.median(x)]
    chosen: list[int] = []
    for i in sorted(cand, key=lambda j: -x[j]):
        if all(abs(i - c) >= gap for c in chosen):
            chosen.append(i)
    return tuple(sorted(chosen))


def _angle_deg(a: FloatArray, b: FloatArray) -> FloatArray:
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    angle: FloatArray = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return angle


def extract_mocap(
    markers: Mapping[str, object],
    sampling_rate_hz: float,
    prosthetic_side: Side | str,
    *,
    events: GaitEvents | None = None,
    knee_flexion_deg: Mapping[Side, FloatArray] | None = None,
    trunk_lean_left_deg: FloatArray | None = None,
) -> ExtractionResult:
    """Marker trajectories -> features. ``events`` (e.g. from force plates or annotations) override
    the marker-based ones; ``knee_flexion_deg`` (per side, from the mocap software) overrides the
    marker-based knee angle."""
    side = coerce_side(prosthetic_side)
    fs = check_rate(sampling_rate_hz)
    check_channels(markers, KNOWN_MARKERS)
    for s in Side:
        if f"{s.prefix}_heel" not in markers:
            raise SideMissingError(f"{s.prefix}_heel", "both heel trajectories are required")
    m = {k: _fill(as_signal(k, v, 3)) for k, v in markers.items()}
    n = check_same_length(m)
    if n < int(0.8 * fs):
        raise RecordingTooShortError("markers", f"need at least 0.8 s, got {n / fs:.2f} s")
    frame = lab_frame(m)
    ev_auto, direction = detect_events(m, fs, frame)
    ev = events or ev_auto
    check_sides_distinct(ev.heel_strike[Side.LEFT], ev.heel_strike[Side.RIGHT], "left_heel/right_heel", "heel strikes")
    out = FeatureCollector(SensorKind.MOTION_CAPTURE)
    role = {side: "prosthetic", side.other: "sound"}
    sign_p = 1.0 if side is Side.LEFT else -1.0  # left-positive -> toward-prosthesis positive

    # Stances: heel strike to the next toe-off of the same foot (before its next heel strike).
    stances: dict[Side, list[tuple[int, int]]] = {}
    for s in Side:
        st = []
        hs_all, to_all = ev.heel_strike[s], np.asarray(ev.toe_off[s])
        for k, h in enumerate(hs_all):
            nxt = hs_all[k + 1] if k + 1 < len(hs_all) else n
            cand = to_all[(to_all > h + int(0.2 * fs)) & (to_all < nxt)]
            if cand.size and (cand[0] - h) / fs < 2.0:
                st.append((int(h), int(cand[0])))
        stances[s] = st
        out.add(f"stance_time_{role[s]}_s", median_or_nan((b - a) / fs for a, b in st), "heel strike to toe-off", len(st), Precision.HIGH)
    out.add_asymmetry("stance_time_asymmetry_pct", "stance_time_prosthetic_s", "stance_time_sound_s", Precision.HIGH)

    all_hs = sorted((h, s) for s in Side for h in ev.heel_strike[s])
    step_len: dict[Side, list[float]] = {Side.LEFT: [], Side.RIGHT: []}
    widths: list[float] = []
    step_times: list[float] = []
    for (h0, s0), (h1, s1) in itertools.pairwise(all_hs):
        if s0 is s1 or h1 <= h0 or (h1 - h0) / fs > 1.5:  # h1 == h0: coinciding strikes, no step
            continue
        d = m[f"{s1.prefix}_heel"][h1] - m[f"{s0.prefix}_heel"][h1]
        step_len[s1].append(abs(float(d @ frame.forward)))
        widths.append(abs(float(d @ frame.left)))
        step_times.append((h1 - h0) / fs)
    for s in Side:
        out.add(f"step_length_{role[s]}_m", median_or_nan(step_len[s]), "heel-to-heel along progression at heel strike", len(step_len[s]), Precision.HIGH)
    out.add_asymmetry("step_length_asymmetry_pct", "step_length_prosthetic_m", "step_length_sound_m", Precision.HIGH)
    out.add("step_width_m", median_or_nan(widths), "heel-to-heel mediolateral at heel strike", len(widths), Precision.HIGH)
    if step_times:
        out.add("cadence_steps_per_min", 60.0 / float(np.median(step_times)), "60 / median step time", len(step_times), Precision.HIGH)
    pelvis_fwd = _pelvis(m) @ frame.forward
    speed = np.abs(np.gradient(smooth(pelvis_fwd, int(0.2 * fs)))) * fs
    if all_hs and len(all_hs) >= 2:
        a, b = all_hs[0][0], all_hs[-1][0]
        out.add("walking_speed_m_per_s", float(np.median(speed[a:b])), "pelvis forward speed between first and last heel strike", len(all_hs) - 1, Precision.HIGH)

    # Prosthetic strides (heel strike to heel strike) for kinematics.
    p_hs = ev.heel_strike[side]
    p_strides = [(p_hs[k], p_hs[k + 1]) for k in range(len(p_hs) - 1) if (p_hs[k + 1] - p_hs[k]) / fs < 2.5]
    p_stances = stances[side]

    # Knee flexion: given angles, or 180 - angle between thigh (hip->knee) and shank (knee->ankle).
    knee: FloatArray | None = None
    if knee_flexion_deg is not None and side in knee_flexion_deg:
        knee = np.asarray(knee_flexion_deg[side], dtype=np.float64)
        knee_prec = Precision.MEDIUM
    elif all(f"{side.prefix}_{j}" in m for j in ("hip", "knee", "ankle")):
        hip, kn, an = (m[f"{side.prefix}_{j}"] for j in ("hip", "knee", "ankle"))
        knee = _angle_deg(kn - hip, an - kn)
        knee_prec = Precision.LOW
        out.warn("knee flexion from hip/knee/ankle landmarks (no joint model): offsets of several degrees possible")
    if knee is not None:
        load = [float(np.max(knee[a : a + max(2, int(0.4 * (b - a)))])) for a, b in p_stances]
        out.add("knee_flexion_loading_prosthetic_deg", median_or_nan(load), "peak knee flexion in first 40 % of stance", len(load), knee_prec)
        swing = [float(np.max(knee[b:nxt])) for (a, b), nxt in _with_next(p_stances, p_hs, n) if nxt > b]
        out.add("knee_flexion_swing_prosthetic_deg", median_or_nan(swing), "peak knee flexion toe-off to next heel strike", len(swing), knee_prec)

    # Trunk lean: shoulders/C7 over pelvis in the frontal plane, + toward the prosthesis.
    lean_left = trunk_lean_left_deg
    top = None
    if "c7" in m:
        top = m["c7"]
    elif "left_shoulder" in m and "right_shoulder" in m:
        top = 0.5 * (m["left_shoulder"] + m["right_shoulder"])
        if not np.any(np.abs(top) > 0):
            top = None  # zero-filled shoulders (gaitkit healthy example)
    if lean_left is None and top is not None:
        v = top - _pelvis(m)
        lean_left = np.degrees(np.arctan2(v @ frame.left, v @ frame.up))
    if lean_left is not None and p_stances:
        peaks = [float(np.max(sign_p * lean_left[a:b])) for a, b in p_stances]
        out.add("trunk_lateral_lean_deg", median_or_nan(peaks), "peak frontal trunk angle in prosthetic stance", len(peaks), Precision.HIGH)

    # Pelvic obliquity from the two hip/ASIS markers: + = prosthetic side up.
    if "left_hip" in m and "right_hip" in m:
        d = m[side.prefix + "_hip"] - m[side.other.prefix + "_hip"]
        obliq = np.degrees(np.arctan2(d @ frame.up, np.abs(d @ frame.left)))
        if p_strides:
            out.add("pelvic_obliquity_range_deg", median_or_nan(float(np.ptp(obliq[a:b])) for a, b in p_strides), "hip-marker line range per prosthetic stride", len(p_strides), Precision.HIGH)
            hikes = [float(np.max(obliq[b:nxt])) for (a, b), nxt in _with_next(p_stances, p_hs, n) if nxt > b]
            out.add("hip_hike_prosthetic_swing_deg", median_or_nan(hikes), "peak prosthetic-side pelvic elevation in swing", len(hikes), Precision.MEDIUM)

    # Circumduction: lateral bulge of the prosthetic heel path in swing beyond the TO->HS chord.
    circ = []
    lat_p = sign_p * (m[f"{side.prefix}_heel"] @ frame.left)  # + = lateral for the prosthetic side
    for (_a, b), nxt in _with_next(p_stances, p_hs, n):
        if nxt <= b + 2:
            continue
        chord = np.linspace(lat_p[b], lat_p[nxt], nxt - b + 1)
        circ.append(float(np.max(lat_p[b : nxt + 1] - chord)))
    out.add("circumduction_prosthetic_m", median_or_nan(circ), "max lateral heel excursion beyond the TO-HS line", len(circ), Precision.MEDIUM)

    # Foot progression angle: heel->toe vector vs walking direction at mid-stance, + toe-out.
    if all(f"{s.prefix}_toe" in m for s in Side):
        for s in Side:
            sgn = 1.0 if s is Side.LEFT else -1.0
            vals = []
            for a, b in stances[s]:
                i = (a + b) // 2
                foot = m[f"{s.prefix}_toe"][i] - m[f"{s.prefix}_heel"][i]
                f_ax = float(foot @ frame.forward) * direction[i]
                l_ax = float(foot @ frame.left) * direction[i]
                vals.append(sgn * math.degrees(math.atan2(l_ax, f_ax)))
            out.add(f"foot_progression_angle_{role[s]}_deg", median_or_nan(vals), "heel-toe line vs progression at mid-stance", len(vals), Precision.MEDIUM)

    # Knee frontal shift: prosthetic knee marker mediolateral travel in each half of stance, + lateral.
    if f"{side.prefix}_knee" in m:
        kl = sign_p * (m[f"{side.prefix}_knee"] @ frame.left) * 1000.0
        early = [float(kl[(a + b) // 2] - kl[a]) for a, b in p_stances]
        late = [float(kl[b] - kl[(a + b) // 2]) for a, b in p_stances]
        out.add("knee_frontal_shift_early_stance_mm", median_or_nan(early), "knee ML displacement HS -> mid-stance", len(early), Precision.MEDIUM)
        out.add("knee_frontal_shift_late_stance_mm", median_or_nan(late), "knee ML displacement mid-stance -> TO", len(late), Precision.MEDIUM)

    used = len(stances[Side.LEFT]) + len(stances[Side.RIGHT])
    if used == 0:
        raise NoCompleteStrideError("markers", "no heel strike followed by a toe-off was found")
    dropped = max(0, len(ev.heel_strike[Side.LEFT]) + len(ev.heel_strike[Side.RIGHT]) - used)
    return out.result(used, dropped)


def _with_next(
    stances: list[tuple[int, int]], heel_strikes: tuple[int, ...], n: int
) -> list[tuple[tuple[int, int], int]]:
    """Pair each stance with the next heel strike of the same foot (end of its swing), if any."""
    out = []
    for a, b in stances:
        nxt = [h for h in heel_strikes if h > b]
        if nxt:
            out.append(((a, b), int(nxt[0])))
    return out


__all__ = ["KNOWN_MARKERS", "GaitEvents", "LabFrame", "detect_events", "extract_mocap", "lab_frame"]
