"""Fast synthetic tests for service.sensors: known answers, side mapping, errors."""

from __future__ import annotations

import numpy as np
import pytest

from service.sensors import EXTRACTORS, FEATURE_NAMES, SensorKind, Side
from service.sensors.base import G_M_PER_S2, asymmetry_pct, contact_intervals
from service.sensors.errors import (
    InconsistentSamplingRateError,
    MissingChannelError,
    NoCompleteStrideError,
    RecordingError,
    RecordingTooShortError,
    SideMissingError,
    UnknownChannelError,
)
from service.sensors.force_plate import extract_force_plate
from service.sensors.imu import detect_foot_events, extract_imu
from service.sensors.insole import extract_insole
from service.sensors.observation import extract_observation
from service.sensors.pylon import extract_pylon
from service.sensors.video_pose import extract_video_pose

FS = 100.0
MASS = 70.0
BW = MASS * G_M_PER_S2


def test_registry_covers_every_sensor_kind() -> None:
    assert set(EXTRACTORS) == {k.value for k in SensorKind}
    assert len(FEATURE_NAMES) == 29


def test_asymmetry_definition() -> None:
    assert asymmetry_pct(1.1, 0.9) == pytest.approx(20.0)
    assert asymmetry_pct(0.9, 1.1) == pytest.approx(-20.0)


def test_contact_intervals_drop_edges() -> None:
    f = np.zeros(100)
    f[:10] = 100  # starts loaded: incomplete
    f[30:60] = 100
    f[90:] = 100  # still loaded at the end: incomplete
    st, dropped = contact_intervals(f, 20.0)
    assert st == [(30, 60)] and dropped == 2


# ---------------------------------------------------------------- IMU
def _foot_gyr_ml(n: int, ics: list[float], stance_s: float, stride_s: float) -> np.ndarray:
    """Sagittal gyro (deg/s, ml = left, so toe-up is negative) with the textbook shape."""
    t = np.arange(n) / FS
    sag = np.zeros(n)  # toe-up positive
    for ic in ics:
        tc = ic + stance_s
        swing = stride_s - stance_s
        # Push-off burst (toe down) in the 0.12 s before TC, swing half-sine, slap after IC.
        m = (t >= tc - 0.12) & (t < tc)
        sag[m] -= 300 * np.sin(np.pi * (t[m] - (tc - 0.12)) / 0.12)
        m = (t >= tc) & (t < tc + swing)
        sag[m] += 350 * np.sin(np.pi * (t[m] - tc) / swing)
        m = (t >= ic) & (t < ic + 0.08)
        sag[m] -= 150 * np.sin(np.pi * (t[m] - ic) / 0.08)
    return -sag


def _imu_channels(stance_left: float, stance_right: float, stride: float = 1.1, dur: float = 12.0) -> dict[str, np.ndarray]:
    n = int(dur * FS)
    ics_l = list(np.arange(0.5, dur - 1.5, stride))
    ics_r = [x + stride / 2 for x in ics_l]
    return {
        "left_foot_gyr_ml": _foot_gyr_ml(n, ics_l, stance_left, stride),
        "right_foot_gyr_ml": _foot_gyr_ml(n, ics_r, stance_right, stride),
    }


def test_imu_events_and_stance_times() -> None:
    ch = _imu_channels(0.62, 0.72)
    res = extract_imu(ch, FS, Side.LEFT)
    f = res.features
    # TC carries a -25 ms calibration shift (gaitmap mocap), so allow 40 ms.
    assert f["stance_time_prosthetic_s"] == pytest.approx(0.62, abs=0.04)
    assert f["stance_time_sound_s"] == pytest.approx(0.72, abs=0.04)
    assert f["cadence_steps_per_min"] == pytest.approx(120 / 1.1, rel=0.02)
    assert f["stance_time_asymmetry_pct"] < -8
    assert res.sensor_kind == "IMU" and res.strides_used >= 14
    assert set(f) <= set(FEATURE_NAMES)


def test_imu_swapping_side_flips_asymmetry() -> None:
    ch = _imu_channels(0.62, 0.72)
    left = extract_imu(ch, FS, "left").features
    right = extract_imu(ch, FS, "RIGHT").features
    assert left["stance_time_asymmetry_pct"] == pytest.approx(-right["stance_time_asymmetry_pct"])
    assert left["stance_time_prosthetic_s"] == pytest.approx(right["stance_time_sound_s"])


def test_imu_rad_per_s_matches_deg_per_s() -> None:
    ch = _imu_channels(0.65, 0.65)
    deg = extract_imu(ch, FS, Side.LEFT).features
    rad = extract_imu({k: np.radians(v) for k, v in ch.items()}, FS, Side.LEFT, gyro_unit="rad/s").features
    assert deg["stance_time_prosthetic_s"] == pytest.approx(rad["stance_time_prosthetic_s"])


def test_imu_event_detector_positions() -> None:
    n = int(8 * FS)
    ev = detect_foot_events(_foot_gyr_ml(n, [1.0, 2.1, 3.2, 4.3], 0.65, 1.1), FS)
    assert [round(i / FS, 2) for i in ev.ic[:3]] == pytest.approx([2.1, 3.2, 4.3], abs=0.03)


def test_imu_errors() -> None:
    ch = _imu_channels(0.65, 0.65)
    with pytest.raises(SideMissingError):
        extract_imu({"left_foot_gyr_ml": ch["left_foot_gyr_ml"]}, FS, Side.LEFT)
    with pytest.raises(UnknownChannelError):
        extract_imu({**ch, "left_fot_gyr_ml": ch["left_foot_gyr_ml"]}, FS, Side.LEFT)
    with pytest.raises(RecordingTooShortError):
        extract_imu({k: v[:100] for k, v in ch.items()}, FS, Side.LEFT)
    with pytest.raises(InconsistentSamplingRateError):
        extract_imu({"left_foot_gyr_ml": ch["left_foot_gyr_ml"], "right_foot_gyr_ml": ch["right_foot_gyr_ml"][:-5]}, FS, Side.LEFT)
    with pytest.raises(InconsistentSamplingRateError):
        extract_imu(ch, 0.0, Side.LEFT)
    with pytest.raises(NoCompleteStrideError):
        extract_imu({k: np.zeros_like(v) for k, v in ch.items()}, FS, Side.LEFT)
    with pytest.raises(SideMissingError):
        extract_imu(ch, FS, "middle")
    err = SideMissingError("x", "y")
    assert isinstance(err, RecordingError) and err.field == "x" and err.reason == "y"


# ---------------------------------------------------------------- pylon
def _pylon(n_steps: int = 6, stance_s: float = 0.7, stride_s: float = 1.1) -> tuple[dict[str, np.ndarray], float]:
    n = int((n_steps * stride_s + 1.0) * FS)
    t = np.arange(n) / FS
    axial = np.zeros(n)
    sag = np.zeros(n)
    cor = np.zeros(n)
    for k in range(n_steps):
        on = 0.5 + k * stride_s
        m = (t >= on) & (t < on + stance_s)
        frac = (t[m] - on) / stance_s
        axial[m] = 1.2 * BW * np.sin(np.pi * frac)
        sag[m] = MASS * (0.4 - 1.0 * frac)  # N*m: +0.4 N*m/kg at IC falling linearly
        cor[m] = MASS * (0.2 + 0.2 * frac)
    return {"axial_force_n": axial, "moment_sagittal_nm": sag, "moment_coronal_nm": cor}, stance_s


def test_pylon_known_answers() -> None:
    ch, stance = _pylon()
    res = extract_pylon(ch, FS, Side.LEFT, MASS)
    f = res.features
    assert f["pylon_axial_force_peak_bw"] == pytest.approx(1.2, abs=0.01)
    assert f["stance_time_prosthetic_s"] == pytest.approx(stance, abs=0.03)
    # Stance detection at 5 % BW trims ~1.5 % of stance each end, so the 30 % point moves slightly.
    assert f["socket_sagittal_moment_early_stance_nm_per_kg"] == pytest.approx(0.4 - 0.3, abs=0.02)
    assert f["socket_sagittal_moment_late_stance_nm_per_kg"] == pytest.approx(0.4 - 0.75, abs=0.02)
    assert f["socket_coronal_moment_early_stance_nm_per_kg"] == pytest.approx(0.26, abs=0.01)
    assert f["socket_coronal_moment_late_stance_nm_per_kg"] == pytest.approx(0.35, abs=0.01)
    assert f["cadence_steps_per_min"] == pytest.approx(120 / 1.1, rel=0.01)


def test_pylon_raw_axes_varus_sign_depends_on_side() -> None:
    ch, _ = _pylon()
    raw = {"fz_n": -ch["axial_force_n"], "my_nm": ch["moment_sagittal_nm"], "mx_nm": ch["moment_coronal_nm"]}
    left = extract_pylon(raw, FS, Side.LEFT, MASS).features
    right = extract_pylon(raw, FS, Side.RIGHT, MASS).features
    assert left["socket_coronal_moment_early_stance_nm_per_kg"] == pytest.approx(-right["socket_coronal_moment_early_stance_nm_per_kg"])
    assert right["socket_coronal_moment_early_stance_nm_per_kg"] > 0
    assert left["pylon_axial_force_peak_bw"] == pytest.approx(1.2, abs=0.01)


def test_pylon_errors() -> None:
    ch, _ = _pylon()
    with pytest.raises(MissingChannelError):
        extract_pylon({"moment_sagittal_nm": ch["moment_sagittal_nm"]}, FS, Side.LEFT, MASS)
    with pytest.raises(RecordingError):
        extract_pylon(ch, FS, Side.LEFT, -3.0)
    with pytest.raises(NoCompleteStrideError):
        extract_pylon({"axial_force_n": np.zeros(500)}, FS, Side.LEFT, MASS)


# ---------------------------------------------------------------- insole / force plate
def _double_hump(m: int, p1: float, p2: float) -> np.ndarray:
    frac = np.linspace(0, 1, m)
    valley = 0.75 * min(p1, p2)
    # Sum of two bumps scaled so the maxima are close to p1 and p2 (checked with tolerance).
    curve = p1 * np.exp(-((frac - 0.25) / 0.12) ** 2) + p2 * np.exp(-((frac - 0.75) / 0.12) ** 2)
    curve = np.maximum(curve, valley * np.sin(np.pi * frac) ** 0.3)
    return curve * np.sin(np.pi * frac) ** 0.2


def _insole(stance_l: float, stance_r: float, stride: float = 1.1, dur: float = 10.0) -> dict[str, np.ndarray]:
    n = int(dur * FS)
    ch = {k: np.zeros(n) for k in ("left_total_n", "right_total_n", "left_heel_n")}
    for _k, on in enumerate(np.arange(0.3, dur - 1.5, stride)):
        for s, st, off in (("left", stance_l, 0.0), ("right", stance_r, stride / 2)):
            a = int((on + off) * FS)
            m = int(st * FS)
            ch[f"{s}_total_n"][a : a + m] += _double_hump(m, 1.1 * BW, 1.05 * BW)
            if s == "left":
                heel = np.zeros(m)
                heel[: int(0.6 * m)] = BW
                ch["left_heel_n"][a : a + m] = heel
    return ch


def test_insole_known_answers_and_side_swap() -> None:
    ch = _insole(0.64, 0.70)
    res = extract_insole(ch, FS, Side.LEFT, MASS)
    f = res.features
    assert f["stance_time_prosthetic_s"] == pytest.approx(0.64, abs=0.03)
    assert f["stance_time_sound_s"] == pytest.approx(0.70, abs=0.03)
    m = int(0.64 * FS)
    expected = float(np.max(_double_hump(m, 1.1 * BW, 1.05 * BW)[: m // 2])) / BW
    assert f["vgrf_loading_peak_prosthetic_bw"] == pytest.approx(expected, abs=0.01)
    assert f["heel_off_prosthetic_pct_stance"] == pytest.approx(60.0, abs=3.0)
    assert f["cadence_steps_per_min"] == pytest.approx(120 / 1.1, rel=0.02)
    swapped = extract_insole(ch, FS, Side.RIGHT, MASS).features
    assert swapped["stance_time_asymmetry_pct"] == pytest.approx(-f["stance_time_asymmetry_pct"])
    est = extract_insole(ch, FS, Side.LEFT)
    assert any("body weight estimated" in w for w in est.warnings)
    with pytest.raises(SideMissingError):
        extract_insole({"left_total_n": ch["left_total_n"]}, FS, Side.LEFT)


def test_force_plate_body_weight_estimate() -> None:
    fs = 1000.0
    n = int(2.0 * fs)
    left, right = np.zeros(n), np.zeros(n)
    stance, step = 0.64, 0.55
    m = int(stance * fs)
    a = int(0.2 * fs)
    b = a + int(step * fs)
    curve = _double_hump(m, 1.15 * BW, 1.1 * BW)
    left[a : a + m] = curve
    right[b : b + m] = curve
    # The impulse estimate assumes impulse = BW x step time; rescale so that holds exactly here.
    scale = BW * step / (curve.sum() / fs)
    left *= scale
    right *= scale
    res = extract_force_plate({"left_vgrf_n": left, "right_vgrf_n": right}, fs, Side.LEFT)
    assert any("estimated" in w for w in res.warnings)
    given = extract_force_plate({"left_vgrf_n": left, "right_vgrf_n": right}, fs, Side.LEFT, MASS).features
    assert res.features["vgrf_loading_peak_prosthetic_bw"] == pytest.approx(given["vgrf_loading_peak_prosthetic_bw"], rel=0.02)
    assert given["stance_time_prosthetic_s"] == pytest.approx(stance, abs=0.02)


# ---------------------------------------------------------------- video pose
def _pose(dur: float = 6.0, fps: float = 30.0, stride: float = 1.1) -> np.ndarray:
    n = int(dur * fps)
    t = np.arange(n) / fps
    kp = np.full((n, 17, 3), 1.0)
    hip_x = 100 + 150 * t  # walking to image right at 150 px/s
    for _side, idx, phase in (("left", (5, 11, 13, 15), 0.0), ("right", (6, 12, 14, 16), np.pi)):
        sh, hp, kn, an = idx
        swing = 60 * np.sin(2 * np.pi * t / stride + phase)
        kp[:, sh, 0], kp[:, sh, 1] = hip_x, 200
        kp[:, hp, 0], kp[:, hp, 1] = hip_x, 300
        kp[:, kn, 0], kp[:, kn, 1] = hip_x + 0.5 * swing + 10, 400
        kp[:, an, 0], kp[:, an, 1] = hip_x + swing, 500
    return kp


def test_video_pose_cadence_and_warnings() -> None:
    res = extract_video_pose(_pose(), 30.0, Side.LEFT)
    assert res.features["cadence_steps_per_min"] == pytest.approx(120 / 1.1, rel=0.05)
    assert "knee_flexion_loading_prosthetic_deg" in res.features
    assert res.warnings  # always carries quality warnings
    with pytest.raises(RecordingError):
        extract_video_pose(np.zeros((90, 33, 2)), 30.0, Side.LEFT)  # wrong layout


def test_video_pose_knee_angles_survive_a_missed_keypoint_in_every_stance() -> None:
    """An undetected knee every 10th frame (NaN, or the knee drawn on the hip) loses that frame's
    angle, not the whole stance's peak: the knee features stay and agree with the clean video."""
    clean = extract_video_pose(_pose(), 30.0, Side.LEFT)
    for gap in (np.nan, "on_hip"):
        kp = _pose()
        frames = np.arange(3, len(kp), 10)
        kp[frames, 13, :2] = kp[frames, 11, :2] if gap == "on_hip" else np.nan
        res = extract_video_pose(kp, 30.0, Side.LEFT)
        for name in ("knee_flexion_loading_prosthetic_deg", "knee_flexion_swing_prosthetic_deg"):
            assert res.features[name] == pytest.approx(clean.features[name], abs=3.0), (gap, name)


def test_video_pose_frontal_lean_sign() -> None:
    kp = _pose()
    kp[:, 5, 0] += 30  # shoulders shifted to image right: person's left when facing the camera
    kp[:, 6, 0] += 30
    left = extract_video_pose(kp, 30.0, Side.LEFT, view="frontal").features["trunk_lateral_lean_deg"]
    right = extract_video_pose(kp, 30.0, Side.RIGHT, view="frontal").features["trunk_lateral_lean_deg"]
    assert left > 10 and right < -10


# ---------------------------------------------------------------- observation
def test_observation_mapping() -> None:
    res = extract_observation({"lateral_trunk_lean": "marked", "excessive_toe_out": True, "wide_base": False}, "left")
    f = res.features
    assert f["trunk_lateral_lean_deg"] > 10
    assert f["foot_progression_angle_prosthetic_deg"] > f["foot_progression_angle_sound_deg"]
    assert 0.05 <= f["step_width_m"] <= 0.10
    assert all(p.precision == "low" for p in res.provenance.values())
    assert "knee_flexion_loading_prosthetic_deg" not in f  # not assessed -> not emitted
    with pytest.raises(UnknownChannelError):
        extract_observation({"lateral_trunk_leen": "mild"}, "left")
    with pytest.raises(RecordingError):
        extract_observation({"wide_base": True, "narrow_base": True}, "left")


# ---------------------------------------------------------------- degenerate signals (issue 15, finding 1)
def _walking_markers(n: int = 600, fs: float = FS) -> dict[str, np.ndarray]:
    """Heels swinging about a pelvis that walks at 1.2 m/s along x; the two heels identical."""
    t = np.arange(n) / fs
    x = 1.2 * t
    heel = np.column_stack([x + 0.3 * np.sin(2 * np.pi * t / 1.1), np.zeros(n), 0.05 + 0.05 * np.maximum(0, np.sin(2 * np.pi * t / 1.1))])
    hip = np.column_stack([x, np.zeros(n), np.full(n, 0.9)])
    toe, hip_ml = np.array([0.2, 0.0, 0.0]), np.array([0.0, 0.1, 0.0])
    return {
        "left_heel": heel.copy(), "right_heel": heel.copy(), "left_toe": heel + toe, "right_toe": heel + toe,
        "left_hip": hip + hip_ml, "right_hip": hip - hip_ml,
    }


def test_identical_left_and_right_heel_tracks_are_an_invalid_value_naming_the_channels() -> None:
    """Both heels on one track put left and right heel strikes on the same frames: a 0 s step time
    (ZeroDivisionError in the cadence before the fix)."""
    from service.sensors.errors import InvalidValueError
    from service.sensors.mocap import extract_mocap

    with pytest.raises(InvalidValueError) as exc:
        extract_mocap(_walking_markers(), FS, Side.LEFT)
    assert exc.value.field == "left_heel/right_heel" and "same frames" in exc.value.reason


def test_identical_left_and_right_ankle_keypoints_are_an_invalid_value() -> None:
    from service.sensors.errors import InvalidValueError

    kp = _pose()
    kp[:, (6, 12, 14, 16)] = kp[:, (5, 11, 13, 15)]  # right side drawn on the left
    with pytest.raises(InvalidValueError) as exc:
        extract_video_pose(kp, 30.0, Side.LEFT)
    assert exc.value.field == "keypoints" and "same frames" in exc.value.reason


def test_identical_insole_channels_are_an_invalid_value() -> None:
    from service.sensors.errors import InvalidValueError

    t = np.arange(600) / FS
    f = np.maximum(0.0, np.sin(2 * np.pi * t / 1.1)) * 800.0
    with pytest.raises(InvalidValueError) as exc:
        extract_insole({"left_total_n": f, "right_total_n": f.copy()}, FS, Side.LEFT, MASS)
    assert exc.value.field == "left_total_n/right_total_n"


def test_two_sample_stances_at_a_low_sampling_rate_give_no_heel_off_proxy_instead_of_failing() -> None:
    """Found by bench/fuzz.py: at 2 Hz a stance is 2 samples, its first half empty (ValueError from
    argmax before the fix, INTERNAL on the wire)."""
    f = np.zeros(40)
    f[5:7] = f[15:17] = f[25:27] = 700.0
    res = extract_force_plate({"left_vgrf_n": f, "right_vgrf_n": np.roll(f, 5)}, 2.0, Side.LEFT, MASS)
    assert "heel_off_prosthetic_pct_stance" not in res.features and "stance_time_prosthetic_s" in res.features


def test_a_one_frame_video_at_a_low_frame_rate_is_too_short() -> None:
    """Found by bench/fuzz.py: at 0.5 fps 1.5 s is under one frame, and one frame reached
    np.gradient (ValueError, INTERNAL on the wire) before the fix."""
    with pytest.raises(RecordingTooShortError):
        extract_video_pose(_pose()[:1], 0.5, Side.LEFT)
