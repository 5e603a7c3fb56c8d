"""Foot-mounted (and optional trunk / pelvis) IMUs -> gait features.

Channel names: ``<location>_<acc|gyr>_<pa|ml|si>`` with location ``left_foot``, ``right_foot``,
``trunk``, ``pelvis`` or ``lower_back`` (treated as pelvis; L5 sensors move with the pelvis). Axes are
the segment body frame, the same for every sensor and right-handed: ``pa`` forward, ``ml`` to the
person's LEFT, ``si`` up. So a foot's ``gyr_ml`` is negative while the toe rotates up (mid-swing) and
``acc_si`` reads about +1 g at rest. Units: acc ``m/s^2`` or ``g``; gyro ``deg/s`` or ``rad/s``.

Required: ``left_foot_gyr_ml`` and ``right_foot_gyr_ml``. With all six foot axes we also integrate
stride length and speed (zero-velocity updates) and a foot progression angle.

Channels are equal-length arrays on one uniform timeline. Sensors that lost packets are first put on
one by ``service.sensors.timeline.align_groups``; samples inside gaps too long to fill arrive marked in
``unreliable``, and every stride (or step, or trunk/pelvis stride) that touches one, or comes within
``GAP_MARGIN_S`` of it, is dropped and listed in ``ExtractionResult.gap_drops``.

Events (per foot, from the sagittal gyro ``sag = -gyr_ml``, positive = toe up):
mid-swing = the large positive peak; terminal contact (TC) = the negative minimum (push-off rotation)
before it; initial contact (IC) = the first negative minimum after it (the foot slaps flat). These are
the classic foot/shank gyroscope events (Salarian et al. 2004 for the shank; the same shape on the
foot); their fixed offsets from force-plate events are compensated with the constants below, measured
on the gaitmap example data (see tests/realdata).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from service.sensors.base import (
    G_M_PER_S2,
    ExtractionResult,
    FeatureCollector,
    FloatArray,
    GapDrop,
    Precision,
    SensorKind,
    Side,
    as_signal,
    check_channels,
    check_rate,
    check_same_length,
    coerce_side,
    local_maxima,
    median_or_nan,
    smooth,
)
from service.sensors.errors import NoCompleteStrideError, RecordingTooShortError, SideMissingError
from service.sensors.timeline import BoolArray

AccUnit = Literal["m/s^2", "g"]
GyroUnit = Literal["deg/s", "rad/s"]

LOCATIONS = ("left_foot", "right_foot", "trunk", "pelvis", "lower_back")
AXES = ("pa", "ml", "si")
KNOWN_CHANNELS = tuple(f"{loc}_{q}_{ax}" for loc in LOCATIONS for q in ("acc", "gyr") for ax in AXES)

# Gyro event times lag/lead force-plate events by a roughly constant amount; these shifts (s) are
# added to the raw zero crossings. The TC shift (-25 ms) is the median lag measured on the gaitmap
# example (mocap events, +24 ms) and agrees with IPOL (+20..+40 ms); IC needs none (gaitmap: 0..5 ms).
IC_OFFSET_S = 0.0
TC_OFFSET_S = -0.025

# Plausible stride bounds for walking (turns, stops and artefacts fall outside and are dropped).
MIN_STRIDE_S, MAX_STRIDE_S = 0.6, 2.5
MIN_STANCE_FRACTION, MAX_STANCE_FRACTION = 0.45, 0.85
# A stride this close to an unfilled gap is not trusted either: its contacts are zero crossings of
# the gyro, and one next to the gap (or the swing peak that brackets it) can be shifted by the
# straight line drawn through the gap.
GAP_MARGIN_S = 0.05


class _GapCheck:
    """Which channel (if any) has an unfilled-gap sample in a span, per sensor location."""

    def __init__(self, unreliable: Mapping[str, BoolArray] | None, names: Iterable[str], margin: int) -> None:
        known = set(names)
        self._bad = {k: v for k, v in (unreliable or {}).items() if k in known and v.any()}
        self._margin = margin

    def channel(self, location: str, start: int, end: int) -> str | None:
        """First channel of ``location`` with an unfilled sample in [start - margin, end + margin]."""
        a, b = max(0, start - self._margin), end + self._margin + 1
        for name in sorted(self._bad):
            if name.startswith(f"{location}_") and self._bad[name][a:b].any():
                return name
        return None


@dataclass(frozen=True, slots=True)
class FootEvents:
    """Per-foot gait events in samples. ``ic[k] < tc[k] < ic[k+1]`` for stride k (IC to IC)."""

    ic: tuple[int, ...]
    tc: tuple[int, ...]
    mid_swing: tuple[int, ...]


def _to_deg_s(x: FloatArray, unit: GyroUnit) -> FloatArray:
    return np.degrees(x) if unit == "rad/s" else x


def _to_m_s2(x: FloatArray, unit: AccUnit) -> FloatArray:
    return x * G_M_PER_S2 if unit == "g" else x


def detect_foot_events(gyr_ml_deg_s: FloatArray, sampling_rate_hz: float) -> FootEvents:
    """Initial/terminal contacts of one foot from its sagittal angular velocity (deg/s, ml = left).

    With ``sag = -gyr_ml`` (toe-up positive) a walking stride shows: a sharp negative burst at push-off
    (heel rising, toe down), a broad positive swing (foot rotates from plantar- to dorsiflexed), and a
    short negative burst when the foot slaps flat after heel strike. TC is the neg->pos zero crossing
    entering the swing, IC the pos->neg crossing leaving it (the foot's rotation reverses at contact).
    """
    fs = check_rate(sampling_rate_hz)
    sag = -np.asarray(gyr_ml_deg_s, dtype=np.float64)
    # Broad smoothing finds the swing phases (each ~0.4 s of positive rotation); narrow push-off and
    # slap bursts average out.
    broad = smooth(sag, max(1, round(0.1 * fs)))
    hi = float(np.percentile(broad, 99.0))
    peaks = [int(i) for i in local_maxima(broad) if broad[i] > max(0.3 * hi, 30.0)]
    min_gap = int(0.5 * fs)  # one mid-swing per stride
    chosen: list[int] = []
    for i in sorted(peaks, key=lambda j: -broad[j]):
        if all(abs(i - c) >= min_gap for c in chosen):
            chosen.append(i)
    fine = smooth(sag, max(1, round(0.01 * fs)))
    ics: list[int] = []
    tcs: list[int] = []
    mids: list[int] = []
    search = int(0.4 * fs)
    for m in sorted(chosen):
        a, b = max(0, m - search), min(len(fine) - 1, m + search)
        before = np.flatnonzero((fine[a:m] <= 0) & (fine[a + 1 : m + 1] > 0))
        after = np.flatnonzero((fine[m:b] > 0) & (fine[m + 1 : b + 1] <= 0))
        if before.size == 0 or after.size == 0:
            continue  # swing not bounded by contacts inside the window (edge of recording, shuffle)
        tc = _crossing(fine, a + int(before[-1]))
        ic = _crossing(fine, m + int(after[0]))
        tcs.append(tc + round(TC_OFFSET_S * fs))
        ics.append(ic + round(IC_OFFSET_S * fs))
        mids.append(m)
    return FootEvents(tuple(ics), tuple(tcs), tuple(mids))


def _crossing(x: FloatArray, i: int) -> int:
    """Sample nearest to the zero crossing between x[i] and x[i+1] (linear interpolation)."""
    d = x[i + 1] - x[i]
    frac = 0.0 if d == 0 else float(-x[i] / d)
    return i + round(min(1.0, max(0.0, frac)))


def _rotation_to_vertical(specific_force: FloatArray) -> FloatArray:
    """Smallest rotation taking the measured gravity direction (sensor frame) onto world +z.

    Keeps the sensor's own forward axis as the world heading, which is what the foot progression
    angle is measured against."""
    a = specific_force / np.linalg.norm(specific_force)
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(a, z)
    s, c = float(np.linalg.norm(v)), float(np.dot(a, z))
    if s < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    rot: FloatArray = np.eye(3) + vx + vx @ vx * ((1 - c) / s**2)
    return rot


def integrate_stride(
    acc_m_s2: FloatArray, gyr_rad_s: FloatArray, sampling_rate_hz: float
) -> tuple[FloatArray, FloatArray]:
    """Zero-velocity-update integration of one stride from rest to rest (N x 3 each, body frame).

    Returns (positions N x 3 in m, world frame with the first sample's sensor heading as +x; and the
    velocity). Velocity drift is removed linearly so the foot is at rest at both ends."""
    dt = 1.0 / sampling_rate_hz
    n = len(acc_m_s2)
    rest = max(1, min(n // 10, int(0.02 * sampling_rate_hz)))
    rot = _rotation_to_vertical(acc_m_s2[:rest].mean(axis=0))
    acc_world = np.empty_like(acc_m_s2)
    for k in range(n):
        acc_world[k] = rot @ acc_m_s2[k]
        w = gyr_rad_s[k] * dt
        angle = float(np.linalg.norm(w))
        if angle > 1e-12:
            ax = w / angle
            kx = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
            rot = rot @ (np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx)
    acc_world[:, 2] -= G_M_PER_S2
    vel = np.vstack((np.zeros(3), np.cumsum(0.5 * (acc_world[1:] + acc_world[:-1]) * dt, axis=0)))
    vel -= np.outer(np.linspace(0.0, 1.0, n), vel[-1])
    pos = np.vstack((np.zeros(3), np.cumsum(0.5 * (vel[1:] + vel[:-1]) * dt, axis=0)))
    return pos, vel


def _roll_toward_left_deg(acc: FloatArray, gyr_pa_deg_s: FloatArray | None, fs: float) -> FloatArray:
    """Segment roll (+ = top of the segment tilted to the person's left), complementary filter:
    gyro for the fast part, gravity direction (low-passed acc) for the slow part."""
    acc_lp = np.column_stack([smooth(acc[:, i], int(0.25 * fs)) for i in range(3)])
    roll_acc = np.degrees(np.arctan2(-acc_lp[:, 1], acc_lp[:, 2]))
    if gyr_pa_deg_s is None:
        return roll_acc
    # Roll about +pa (forward) by a positive angle tilts the top (si) toward -ml (right), so the
    # leftward tilt rate is -gyr_pa.
    alpha = 1.0 / (1.0 + 1.0 * fs)  # ~1 s time constant
    out = np.empty(len(roll_acc))
    out[0] = roll_acc[0]
    for k in range(1, len(out)):
        out[k] = (1 - alpha) * (out[k - 1] - gyr_pa_deg_s[k] / fs) + alpha * roll_acc[k]
    return out


def extract_imu(
    channels: Mapping[str, object],
    sampling_rate_hz: float,
    prosthetic_side: Side | str,
    *,
    acc_unit: AccUnit = "m/s^2",
    gyro_unit: GyroUnit = "deg/s",
    integrate_spatial: bool = True,
    unreliable: Mapping[str, BoolArray] | None = None,
    foot_yaw_known: bool = True,
) -> ExtractionResult:
    """IMU recording -> catalog features. See the module docstring for channel names and frames.

    ``foot_yaw_known`` False: the sensors' rotation about the vertical on the feet is unknown, so the
    foot progression angles (stride direction against the sensor's forward axis, off 1:1 by that
    rotation) are not reported; speed and step lengths do not depend on it and still are.

    ``unreliable``: channel -> mask of samples that are not measurements (gaps too long to fill);
    strides touching them are dropped and reported in ``gap_drops``."""
    side = coerce_side(prosthetic_side)
    fs = check_rate(sampling_rate_hz)
    check_channels(channels, KNOWN_CHANNELS)
    for s in (side, side.other):
        if f"{s.prefix}_foot_gyr_ml" not in channels:
            which = "prosthetic" if s is side else "sound"
            raise SideMissingError(f"{s.prefix}_foot_gyr_ml", f"the {which}-side foot gyro is required")
    sig = {name: as_signal(name, v) for name, v in channels.items()}
    n = check_same_length(sig)
    if n < int(3.0 * fs):
        raise RecordingTooShortError("channels", f"need at least 3 s of walking, got {n / fs:.2f} s")
    out = FeatureCollector(SensorKind.IMU)
    conv: dict[str, FloatArray] = {
        k: (_to_deg_s(v, gyro_unit) if "_gyr_" in k else _to_m_s2(v, acc_unit)) for k, v in sig.items()
    }

    events: dict[Side, FootEvents] = {}
    strides: dict[Side, list[tuple[int, int, int]]] = {}  # (ic, tc, next ic)
    dropped = 0
    gaps = _GapCheck(unreliable, sig, round(GAP_MARGIN_S * fs))
    gap_drops: list[GapDrop] = []
    for s in Side:
        ev = detect_foot_events(conv[f"{s.prefix}_foot_gyr_ml"], fs)
        events[s] = ev
        good: list[tuple[int, int, int]] = []
        for k in range(len(ev.ic) - 1):
            ic, tc, ic2 = ev.ic[k], ev.tc[k + 1], ev.ic[k + 1]
            gap = gaps.channel(f"{s.prefix}_foot", ic, ic2)
            if gap is not None:
                # Checked before the stride bounds: a gap that swallowed a swing merges two strides
                # into one too long, and the gap is the reason it is not used.
                gap_drops.append(GapDrop(s, ic, ic2, gap))
                dropped += 1
                continue
            stride_s = (ic2 - ic) / fs
            stance_frac = (tc - ic) / max(1, ic2 - ic)
            if MIN_STRIDE_S <= stride_s <= MAX_STRIDE_S and MIN_STANCE_FRACTION <= stance_frac <= MAX_STANCE_FRACTION:
                good.append((ic, tc, ic2))
            else:
                dropped += 1
        strides[s] = good
    if not strides[side] or not strides[side.other]:
        why = f" ({len(gap_drops)} strides overlap gaps too long to fill)" if gap_drops else ""
        raise NoCompleteStrideError("channels", f"no complete stride (IC-TC-IC) on both feet{why}; is this walking?")

    role = {side: "prosthetic", side.other: "sound"}
    stride_times: list[float] = []
    for s in Side:
        st = [(tc - ic) / fs for ic, tc, _ in strides[s]]
        stride_times += [(b - a) / fs for a, _, b in strides[s]]
        out.add(f"stance_time_{role[s]}_s", median_or_nan(st), "gyro IC->TC, median", len(st), Precision.HIGH)
    out.add_asymmetry("stance_time_asymmetry_pct", "stance_time_prosthetic_s", "stance_time_sound_s", Precision.HIGH)
    stride_s = median_or_nan(stride_times)
    out.add("cadence_steps_per_min", 120.0 / stride_s, "120 / median stride time", len(stride_times), Precision.HIGH)

    # Step time of side X: from the other foot's IC to X's IC (the step that ends on X's heel strike).
    step_times: dict[Side, list[float]] = {Side.LEFT: [], Side.RIGHT: []}
    for s in Side:
        other_ics = np.asarray(events[s.other].ic)
        for ic, _, _ in strides[s]:
            prev = other_ics[other_ics < ic]
            if prev.size and gaps.channel(f"{s.other.prefix}_foot", int(prev[-1]), ic) is not None:
                continue  # the other foot's contact may be lost in a gap: no trustworthy step
            if prev.size and (ic - prev[-1]) / fs < 0.75 * MAX_STRIDE_S:
                step_times[s].append((ic - prev[-1]) / fs)

    # Spatial features need all six foot axes.
    speed_vals: list[float] = []
    stride_len: dict[Side, list[float]] = {Side.LEFT: [], Side.RIGHT: []}
    fpa: dict[Side, list[float]] = {Side.LEFT: [], Side.RIGHT: []}
    have_6 = all(f"{s.prefix}_foot_{q}_{a}" in conv for s in Side for q in ("acc", "gyr") for a in AXES)
    if integrate_spatial and have_6:
        for s in Side:
            acc = np.column_stack([conv[f"{s.prefix}_foot_acc_{a}"] for a in AXES])
            gyr = np.radians(np.column_stack([conv[f"{s.prefix}_foot_gyr_{a}"] for a in AXES]))
            gnorm = smooth(np.linalg.norm(gyr, axis=1), int(0.05 * fs))
            rest_pts = []
            for ic, tc, _ in strides[s]:
                # Mid-stance (foot flat, ~zero velocity): least rotation between IC and TC.
                lo, hi_ = ic + (tc - ic) // 5, tc - (tc - ic) // 5
                rest_pts.append((lo + int(np.argmin(gnorm[lo:hi_])), ic))
            for (r0, _), (r1, _) in itertools.pairwise(rest_pts):
                if not MIN_STRIDE_S <= (r1 - r0) / fs <= MAX_STRIDE_S:
                    continue
                pos, _ = integrate_stride(acc[r0 : r1 + 1], gyr[r0 : r1 + 1], fs)
                dx, dy, dz = pos[-1]
                length = math.hypot(dx, dy)
                if not 0.2 <= length <= 2.5 or abs(dz) > 0.15:
                    continue  # turn, stairs or integration failure
                stride_len[s].append(length)
                speed_vals.append(length / ((r1 - r0) / fs))
                heading = math.degrees(math.atan2(dy, dx))
                # Toe-out: a left foot points left of the walking direction, so the walking direction
                # lies to its right (negative heading in a y-left frame); mirror for the right foot.
                fpa[s].append(-heading if s is Side.LEFT else heading)
        out.add("walking_speed_m_per_s", median_or_nan(speed_vals), "ZUPT stride length / time", len(speed_vals), Precision.MEDIUM)
        for s in Side:
            if not foot_yaw_known:
                out.warn(
                    "foot progression angles not reported: the sensors' yaw on the feet is unknown "
                    "(option foot_yaw=unknown); a yaw error adds to the angle one for one"
                )
                break
            out.add(
                f"foot_progression_angle_{role[s]}_deg",
                median_or_nan(fpa[s]),
                "ZUPT stride direction vs sensor forward axis (assumes sensor aligned to the foot)",
                len(fpa[s]),
                Precision.LOW,
            )
        # Feet are integrated separately, so their relative position is unknown: split each side's
        # mean stride length by the step-time ratio (constant-speed assumption).
        all_len = stride_len[Side.LEFT] + stride_len[Side.RIGHT]
        if all_len and step_times[Side.LEFT] and step_times[Side.RIGHT]:
            mean_len = float(np.median(all_len))
            for s in Side:
                step = mean_len * median_or_nan(step_times[s]) / stride_s
                out.add(
                    f"step_length_{role[s]}_m",
                    step,
                    "stride length x step-time fraction (constant-speed assumption)",
                    len(step_times[s]),
                    Precision.LOW,
                )
            out.add_asymmetry("step_length_asymmetry_pct", "step_length_prosthetic_m", "step_length_sound_m", Precision.LOW)
    elif integrate_spatial:
        out.warn("speed, stride/step length and foot progression need acc_pa/ml/si and gyr_pa/ml/si on both feet")

    _trunk_pelvis(conv, fs, side, strides, out, gaps)
    n_used = len(strides[Side.LEFT]) + len(strides[Side.RIGHT])
    return out.result(n_used, dropped, sorted(gap_drops, key=lambda d: (d.side.value, d.start_sample)))


def _segment(conv: Mapping[str, FloatArray], loc: str) -> tuple[FloatArray, FloatArray | None, str] | None:
    if not all(f"{loc}_acc_{a}" in conv for a in AXES):
        return None
    acc = np.column_stack([conv[f"{loc}_acc_{a}"] for a in AXES])
    return acc, conv.get(f"{loc}_gyr_pa"), loc


def _trunk_pelvis(
    conv: Mapping[str, FloatArray],
    fs: float,
    side: Side,
    strides: Mapping[Side, list[tuple[int, int, int]]],
    out: FeatureCollector,
    gaps: _GapCheck,
) -> None:
    sign = 1.0 if side is Side.LEFT else -1.0  # roll-to-left -> lean toward the prosthetic side
    pelvis = _segment(conv, "pelvis") or _segment(conv, "lower_back")
    trunk = _segment(conv, "trunk")
    if trunk is None and pelvis is not None:
        trunk = pelvis
        out.warn("trunk_lateral_lean_deg from the pelvis/lower-back sensor (no trunk sensor): underestimates trunk lean")

    def clean(seg: tuple[FloatArray, FloatArray | None, str]) -> list[tuple[int, int, int]]:
        # Prosthetic strides whose trunk/pelvis samples were all measured (the feet were checked).
        kept = [st for st in strides[side] if gaps.channel(seg[2], st[0], st[2]) is None]
        if not kept:
            out.warn(f"{seg[2]} sensor: every prosthetic stride overlaps a gap too long to fill; no {seg[2]} features")
        return kept

    if trunk is not None and (p_strides := clean(trunk)):
        roll = sign * _roll_toward_left_deg(trunk[0], trunk[1], fs)
        ref = np.median(np.concatenate([roll[a:b] for a, _, b in p_strides]))
        # Peak lean during prosthetic stance, relative to the stride-mean roll (removes the unknown
        # mounting tilt; a constant lean is therefore not visible).
        peaks = [float(np.max(roll[a:tc]) - ref) for a, tc, _ in p_strides]
        prec = Precision.MEDIUM if _segment(conv, "trunk") is not None else Precision.LOW
        out.add("trunk_lateral_lean_deg", median_or_nan(peaks), "trunk roll peak in prosthetic stance minus stride mean", len(peaks), prec)
    if pelvis is not None and (p_strides := clean(pelvis)):
        roll = sign * _roll_toward_left_deg(pelvis[0], pelvis[1], fs)
        ranges = [float(np.ptp(roll[a:b])) for a, _, b in p_strides]
        out.add("pelvic_obliquity_range_deg", median_or_nan(ranges), "pelvis roll range per prosthetic stride", len(ranges), Precision.MEDIUM)
        ref = np.median(np.concatenate([roll[a:b] for a, _, b in p_strides]))
        # Prosthetic hip up = pelvis rolled toward the sound side = negative lean toward prosthesis.
        hikes = [float(np.max(-(roll[tc:b] - ref))) for _, tc, b in p_strides if b > tc]
        out.add("hip_hike_prosthetic_swing_deg", median_or_nan(hikes), "pelvis elevation peak in prosthetic swing", len(hikes), Precision.LOW)


__all__ = ["KNOWN_CHANNELS", "FootEvents", "detect_foot_events", "extract_imu", "integrate_stride"]
