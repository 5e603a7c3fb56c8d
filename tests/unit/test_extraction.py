"""service.extraction: recordings -> merged features, reports, and field violations (pure, no grpc)."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from service.catalog import SensorKind, Side
from service.errors import DependencyMissingError, InvalidInputError, Violation
from service.extraction import (
    ChannelInput,
    ExtractionLimits,
    ExtractionOutcome,
    RecordingInput,
    extract_features,
)
from service.sensors.base import G_M_PER_S2
from tests.synthetic_gait import foot_gyr_ml

ROOT = Path(__file__).resolve().parents[2]
FS = 100.0
MASS = 72.0
BW = MASS * G_M_PER_S2
FloatArray = npt.NDArray[np.float64]


# ------------------------------------------------------------------------------ synthetic signals
def imu_channels(
    stance_left: float, stance_right: float, stride: float = 1.1, dur: float = 12.0, seed: int = 1
) -> dict[str, FloatArray]:
    rng = np.random.default_rng(seed)
    n = int(dur * FS)
    # Slight stride-to-stride variability (about 1 %), as in real walking.
    starts = 0.5 + np.cumsum(np.r_[0.0, stride * (1 + 0.01 * rng.standard_normal(int(dur / stride) + 2))])
    ics_l = [float(x) for x in starts if x < dur - 1.5]
    ics_r = [x + stride / 2 for x in ics_l]
    return {
        "left_foot_gyr_ml": foot_gyr_ml(n, ics_l, stance_left, stride, rng),
        "right_foot_gyr_ml": foot_gyr_ml(n, ics_r, stance_right, stride, rng),
    }


def pylon_channels(
    sag_early: float = 0.25,
    sag_late: float = -0.60,
    cor_early: float = 0.30,
    cor_late: float = 0.25,
    axial_peak_bw: float = 1.12,
    n_steps: int = 8,
    stance_s: float = 0.68,
    stride_s: float = 1.1,
) -> dict[str, FloatArray]:
    """Socket moments linear over stance through the requested values (N*m/kg) at 30 % and 75 %."""
    n = int((n_steps * stride_s + 1.0) * FS)
    t = np.arange(n) / FS
    axial, sag, cor = np.zeros(n), np.zeros(n), np.zeros(n)
    for k in range(n_steps):
        on = 0.5 + k * stride_s
        m = (t >= on) & (t < on + stance_s)
        frac = (t[m] - on) / stance_s
        axial[m] = axial_peak_bw * BW * np.sin(np.pi * frac)
        for out, early, late in ((sag, sag_early, sag_late), (cor, cor_early, cor_late)):
            slope = (late - early) / 0.45
            out[m] = MASS * (early + slope * (frac - 0.30))
    return {"axial_force_n": axial, "moment_sagittal_nm": sag, "moment_coronal_nm": cor}


def vgrf_one_stance_each(fs: float = 1000.0) -> dict[str, FloatArray]:
    """Force plates: one double-humped stance per foot (typical of a walkway pass)."""
    n = int(2.0 * fs)
    left, right = np.zeros(n), np.zeros(n)
    m = int(0.64 * fs)
    frac = np.linspace(0, 1, m)
    curve = BW * (1.1 * np.exp(-((frac - 0.25) / 0.12) ** 2) + 1.05 * np.exp(-((frac - 0.75) / 0.12) ** 2))
    curve = np.maximum(curve, 0.8 * BW * np.sin(np.pi * frac) ** 0.3) * np.sin(np.pi * frac) ** 0.2
    a, b = int(0.2 * fs), int(0.75 * fs)
    left[a : a + m] = curve
    right[b : b + m] = curve
    return {"left_vgrf_n": left, "right_vgrf_n": right}


def imu(stance_left: float = 0.66, stance_right: float = 0.66, **kw: object) -> RecordingInput:
    return RecordingInput.from_arrays(SensorKind.IMU, FS, imu_channels(stance_left, stance_right), **kw)  # type: ignore[arg-type]


def violations_of(exc: pytest.ExceptionInfo[InvalidInputError]) -> dict[str, Violation]:
    return {v.field: v for v in exc.value.violations}


# ------------------------------------------------------------------------------ architecture
def test_extraction_is_core_no_grpc_protobuf_or_onnxruntime() -> None:
    tree = ast.parse((ROOT / "service" / "extraction.py").read_text(encoding="utf-8"))
    mods: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
    forbidden = ("grpc", "google", "onnxruntime", "service.api", "service._generated")
    assert not {m for m in mods if any(m == f or m.startswith(f + ".") for f in forbidden)}


# ------------------------------------------------------------------------------ happy paths
def test_imu_recording_gives_cadence_and_stance_with_provenance() -> None:
    out = extract_features([imu(0.62, 0.72)], Side.LEFT, MASS)
    f = out.values
    assert f["cadence_steps_per_min"] == pytest.approx(120 / 1.1, rel=0.03)
    # The IMU's toe-off carries a -25 ms calibration shift (gaitmap), hence 40 ms tolerance.
    assert f["stance_time_prosthetic_s"] == pytest.approx(0.62, abs=0.04)
    assert f["stance_time_sound_s"] == pytest.approx(0.72, abs=0.04)
    assert f["stance_time_asymmetry_pct"] < -8
    (rep,) = out.reports
    assert rep.sensor_kind is SensorKind.IMU and rep.strides_used >= 12
    prov = dict(rep.provenance)
    assert prov["stance_time_prosthetic_s"].precision == "high" and prov["stance_time_prosthetic_s"].n_values >= 6
    assert all(x.source is SensorKind.IMU and x.unit for x in out.features)
    assert {x.name: x.unit for x in out.features}["cadence_steps_per_min"] == "steps/min"


def test_imu_units_per_channel_and_option_defaults_agree() -> None:
    ch = imu_channels(0.65, 0.70)
    deg = extract_features([RecordingInput.from_arrays(SensorKind.IMU, FS, ch)], Side.LEFT, None).values
    rad = {k: np.radians(v) for k, v in ch.items()}
    by_unit = RecordingInput.from_arrays(SensorKind.IMU, FS, rad, units={k: "rad/s" for k in rad})
    by_option = RecordingInput.from_arrays(SensorKind.IMU, FS, rad, options={"gyro_unit": "rad/s"})
    for rec in (by_unit, by_option):
        got = extract_features([rec], Side.LEFT, None).values
        assert got["stance_time_prosthetic_s"] == pytest.approx(deg["stance_time_prosthetic_s"])


def test_swapping_the_prosthetic_side_flips_asymmetries() -> None:
    rec = imu(0.62, 0.72)
    left = extract_features([rec], Side.LEFT, MASS).values
    right = extract_features([rec], Side.RIGHT, MASS).values
    assert left["stance_time_asymmetry_pct"] == pytest.approx(-right["stance_time_asymmetry_pct"])
    assert left["stance_time_prosthetic_s"] == pytest.approx(right["stance_time_sound_s"])


def test_pylon_recording_gives_socket_moments_per_kg() -> None:
    rec = RecordingInput.from_arrays(SensorKind.INSTRUMENTED_PYLON, FS, pylon_channels(0.30, -0.50, 0.45, 0.20))
    f = extract_features([rec], Side.RIGHT, MASS).values
    assert f["socket_sagittal_moment_early_stance_nm_per_kg"] == pytest.approx(0.30, abs=0.02)
    assert f["socket_sagittal_moment_late_stance_nm_per_kg"] == pytest.approx(-0.50, abs=0.02)
    assert f["socket_coronal_moment_early_stance_nm_per_kg"] == pytest.approx(0.45, abs=0.02)
    assert f["socket_coronal_moment_late_stance_nm_per_kg"] == pytest.approx(0.20, abs=0.02)
    assert f["pylon_axial_force_peak_bw"] == pytest.approx(1.12, abs=0.01)


def test_pylon_kilonewtons_are_converted() -> None:
    ch = pylon_channels()
    kn = {**ch, "axial_force_n": ch["axial_force_n"] / 1000.0}
    rec = RecordingInput.from_arrays(SensorKind.INSTRUMENTED_PYLON, FS, kn, units={"axial_force_n": "kN"})
    assert extract_features([rec], Side.LEFT, MASS).values["pylon_axial_force_peak_bw"] == pytest.approx(1.12, abs=0.01)


def test_observation_checklist() -> None:
    rec = RecordingInput(
        SensorKind.OBSERVATION, observations={"excessive_toe_out": "true", "lateral_trunk_lean": "mild", "wide_base": "false"}
    )
    out = extract_features([rec], Side.LEFT, None)
    f = out.values
    assert f["foot_progression_angle_prosthetic_deg"] > f["foot_progression_angle_sound_deg"]
    assert 6 <= f["trunk_lateral_lean_deg"] <= 10
    assert all(x.provenance.precision == "low" and x.source is SensorKind.OBSERVATION for x in out.features)


def test_video_pose_keypoints_are_reshaped_from_components() -> None:
    fps, n = 30.0, 180
    t = np.arange(n) / fps
    kp = np.full((n, 17, 3), 1.0)
    hip_x = 100 + 150 * t
    for idx, phase in (((5, 11, 13, 15), 0.0), ((6, 12, 14, 16), np.pi)):
        sh, hp, kn, an = idx
        swing = 60 * np.sin(2 * np.pi * t / 1.1 + phase)
        kp[:, sh, 0], kp[:, sh, 1] = hip_x, 200
        kp[:, hp, 0], kp[:, hp, 1] = hip_x, 300
        kp[:, kn, 0], kp[:, kn, 1] = hip_x + 0.5 * swing + 10, 400
        kp[:, an, 0], kp[:, an, 1] = hip_x + swing, 500
    rec = RecordingInput(SensorKind.VIDEO_POSE, fps, (ChannelInput("keypoints", kp.reshape(-1), 51),), options={"layout": "coco17"})
    out = extract_features([rec], Side.LEFT, None)
    assert out.values["cadence_steps_per_min"] == pytest.approx(120 / 1.1, rel=0.05)
    assert out.reports[0].warnings


# ------------------------------------------------------------------------------ merging
def test_pair_and_asymmetry_come_from_one_recording_and_superseded_values_are_reported() -> None:
    # The pylon measures only the prosthetic stance; the IMU measures both. Mixing the two would give
    # an asymmetry inconsistent with its own sides, so the IMU supplies the pair and the asymmetry.
    pylon = RecordingInput.from_arrays(SensorKind.INSTRUMENTED_PYLON, FS, pylon_channels(n_steps=12, stance_s=0.60))
    out = extract_features([pylon, imu(0.66, 0.72)], Side.LEFT, MASS)
    src = {x.name: x.recording_index for x in out.features}
    assert src["stance_time_prosthetic_s"] == src["stance_time_sound_s"] == src["stance_time_asymmetry_pct"] == 1
    assert src["socket_sagittal_moment_early_stance_nm_per_kg"] == 0
    assert any("stance_time_prosthetic_s" in w and "recordings[1]" in w for w in out.reports[0].warnings)
    # The superseded value is still reported with its provenance.
    assert "stance_time_prosthetic_s" in dict(out.reports[0].provenance)


def test_more_precise_source_wins() -> None:
    # Insole GRF peaks are MEDIUM precision (insoles under-read), force plates HIGH.
    n = int(10 * FS)
    ins = {"left_total_n": np.zeros(n), "right_total_n": np.zeros(n)}
    m = int(0.66 * FS)
    hump = 1.05 * BW * np.sin(np.pi * np.linspace(0, 1, m))
    for on in np.arange(0.3, 8.5, 1.1):
        for key, off in (("left_total_n", 0.0), ("right_total_n", 0.55)):
            a = int((on + off) * FS)
            ins[key][a : a + m] = hump
    insole = RecordingInput.from_arrays(SensorKind.PRESSURE_INSOLE, FS, ins)
    plate = RecordingInput.from_arrays(SensorKind.FORCE_PLATE, 1000.0, vgrf_one_stance_each())
    out = extract_features([insole, plate], Side.LEFT, MASS)
    by = {x.name: x for x in out.features}
    assert by["vgrf_loading_peak_prosthetic_bw"].source is SensorKind.FORCE_PLATE
    assert by["vgrf_loading_peak_prosthetic_bw"].provenance.precision == "high"
    assert by["cadence_steps_per_min"].source is SensorKind.PRESSURE_INSOLE  # plates give no cadence


def test_kinetic_sensor_wins_a_precision_tie_on_a_kinetic_feature() -> None:
    # heel_off_prosthetic_pct_stance is LOW from both the checklist and the force-plate proxy, each from
    # one value; the checklist comes first, so only the kinetic preference picks the plate.
    obs = RecordingInput(SensorKind.OBSERVATION, observations={"early_heel_rise": "true"})
    plate = RecordingInput.from_arrays(SensorKind.FORCE_PLATE, 1000.0, vgrf_one_stance_each())
    out = extract_features([obs, plate], Side.LEFT, MASS)
    by = {x.name: x for x in out.features}
    assert by["heel_off_prosthetic_pct_stance"].provenance.precision == "low"
    assert by["heel_off_prosthetic_pct_stance"].source is SensorKind.FORCE_PLATE


def test_values_outside_the_catalog_range_are_dropped_with_a_warning() -> None:
    ch = pylon_channels()
    ch["moment_sagittal_nm"] = ch["moment_sagittal_nm"] * 20  # e.g. a wrong unit in the vendor export
    out = extract_features([RecordingInput.from_arrays(SensorKind.INSTRUMENTED_PYLON, FS, ch)], Side.LEFT, MASS)
    assert "socket_sagittal_moment_late_stance_nm_per_kg" not in out.values
    assert "socket_coronal_moment_early_stance_nm_per_kg" in out.values
    assert any("outside the valid range" in w for w in out.reports[0].warnings)


# ------------------------------------------------------------------------------ violations
def _rejects(recordings: list[RecordingInput], side: Side | None = Side.LEFT, mass: float | None = MASS, **kw: object) -> dict[str, Violation]:
    with pytest.raises(InvalidInputError) as exc:
        extract_features(recordings, side, mass, **kw)  # type: ignore[arg-type]
    return violations_of(exc)


def test_too_short_recording() -> None:
    ch = {k: v[:150] for k, v in imu_channels(0.66, 0.66).items()}
    v = _rejects([RecordingInput.from_arrays(SensorKind.IMU, FS, ch)])
    (viol,) = v.values()
    assert viol.reason == "RECORDING_TOO_SHORT" and viol.field.startswith("recordings[0]")
    assert "3 s" in viol.description


def test_no_complete_stride() -> None:
    ch = {k: np.zeros_like(v) for k, v in imu_channels(0.66, 0.66).items()}
    (viol,) = _rejects([RecordingInput.from_arrays(SensorKind.IMU, FS, ch)]).values()
    assert viol.reason == "NO_COMPLETE_STRIDE" and viol.field.startswith("recordings[0]")


@pytest.mark.parametrize("rate", [0.0, -100.0, math.nan, math.inf])
def test_bad_sampling_rate(rate: float) -> None:
    rec = RecordingInput.from_arrays(SensorKind.IMU, rate, imu_channels(0.66, 0.66))
    v = _rejects([rec])
    assert v["recordings[0].sampling_rate_hz"].reason == "INVALID_SAMPLING_RATE"


def test_unknown_channel_names_the_channel() -> None:
    ch = imu_channels(0.66, 0.66)
    ch["left_fot_gyr_pa"] = ch["left_foot_gyr_ml"]
    v = _rejects([RecordingInput.from_arrays(SensorKind.IMU, FS, ch)])
    viol = v["recordings[0].channels[2].name"]
    assert viol.reason == "UNKNOWN_CHANNEL" and "left_fot_gyr_pa" in viol.description


def test_absurdly_large_samples_are_rejected_not_overflowed() -> None:
    ch = pylon_channels()
    ch["moment_sagittal_nm"] = ch["moment_sagittal_nm"].copy()
    ch["moment_sagittal_nm"][100] = 1e300
    v = _rejects([RecordingInput.from_arrays(SensorKind.INSTRUMENTED_PYLON, FS, ch)], mass=MASS)
    viol = v["recordings[0].channels[1].values"]
    assert viol.reason == "INVALID_VALUE" and "moment_sagittal_nm" in viol.description and "sample 100" in viol.description


def test_missing_foot_channel_is_side_missing() -> None:
    ch = imu_channels(0.66, 0.66)
    del ch["right_foot_gyr_ml"]
    (viol,) = _rejects([RecordingInput.from_arrays(SensorKind.IMU, FS, ch)]).values()
    assert viol.reason == "SIDE_MISSING" and "right_foot_gyr_ml" in viol.description


def test_side_missing_in_the_patient_context() -> None:
    v = _rejects([imu()], side=None)
    assert v["patient.prosthetic_side"].reason == "SIDE_MISSING"


def test_values_not_divisible_by_components() -> None:
    markers = ChannelInput("left_heel", np.zeros(301), 3)
    rec = RecordingInput(SensorKind.MOTION_CAPTURE, 100.0, (markers, ChannelInput("right_heel", np.zeros(300), 3)))
    v = _rejects([rec])
    assert v["recordings[0].channels[0].values"].reason == "INVALID_VALUE"
    assert "301 values" in v["recordings[0].channels[0].values"].description
    wrong = RecordingInput(SensorKind.MOTION_CAPTURE, 100.0, (ChannelInput("left_heel", np.zeros(300), 2),))
    assert _rejects([wrong])["recordings[0].channels[0].components"].reason == "INVALID_VALUE"


def test_all_gap_marker_channel_is_rejected() -> None:
    gap = RecordingInput.from_arrays(SensorKind.MOTION_CAPTURE, 100.0, {"left_heel": np.full((300, 3), np.nan), "right_heel": np.zeros((300, 3))})
    assert _rejects([gap])["recordings[0].channels[0].values"].reason == "INVALID_VALUE"


def test_channel_lengths_must_agree() -> None:
    ch = imu_channels(0.66, 0.66)
    ch["right_foot_gyr_ml"] = ch["right_foot_gyr_ml"][:-7]
    v = _rejects([RecordingInput.from_arrays(SensorKind.IMU, FS, ch)])
    assert v["recordings[0].channels[1].values"].reason == "INCONSISTENT_SAMPLING_RATE"


def test_non_finite_force_samples_are_rejected() -> None:
    ch = pylon_channels()
    ch["axial_force_n"][10] = np.nan
    v = _rejects([RecordingInput.from_arrays(SensorKind.INSTRUMENTED_PYLON, FS, ch)])
    assert v["recordings[0].channels[0].values"].reason == "INVALID_VALUE"


def test_structure_checks() -> None:
    v = _rejects(
        [
            RecordingInput(None, FS, ()),
            RecordingInput(SensorKind.IMU, FS, (), c3d_bytes=b"C3D"),
            RecordingInput(SensorKind.OBSERVATION),
            RecordingInput.from_arrays(SensorKind.IMU, FS, imu_channels(0.66, 0.66), options={"acc_units": "g"}),
            RecordingInput.from_arrays(SensorKind.IMU, FS, imu_channels(0.66, 0.66), units={"left_foot_gyr_ml": "rpm"}),
            RecordingInput(SensorKind.OBSERVATION, observations={"lateral_trunk_leen": "mild"}),
        ]
    )
    assert v["recordings[0].sensor_kind"].reason == "SENSOR_KIND_MISSING"
    assert v["recordings[1].c3d_file"].reason == "C3D_NOT_ACCEPTED"
    assert v["recordings[2].observations"].reason == "OBSERVATIONS_MISSING"
    assert v["recordings[3].options.acc_units"].reason == "UNKNOWN_OPTION"
    assert v["recordings[4].channels[0].unit"].reason == "UNKNOWN_UNIT"
    assert v["recordings[5].observations.lateral_trunk_leen"].reason == "UNKNOWN_CHANNEL"


def test_all_violations_of_all_recordings_are_collected() -> None:
    short = {k: v[:150] for k, v in imu_channels(0.66, 0.66).items()}
    v = _rejects(
        [
            RecordingInput.from_arrays(SensorKind.IMU, FS, short),
            RecordingInput.from_arrays(SensorKind.IMU, 0.0, imu_channels(0.66, 0.66)),
            RecordingInput.from_arrays(SensorKind.INSTRUMENTED_PYLON, FS, pylon_channels()),
        ],
        mass=None,
    )
    assert {x.reason for x in v.values()} == {"RECORDING_TOO_SHORT", "INVALID_SAMPLING_RATE", "PATIENT_CONTEXT_MISSING"}
    assert "patient.body_mass_kg" in v


def test_request_size_is_bounded_before_any_work() -> None:
    v = _rejects([imu(), imu()], limits=ExtractionLimits(max_total_values=3000))
    assert v["recordings"].reason == "RECORDINGS_TOO_LARGE"
    assert _rejects([])["recordings"].reason == "RECORDINGS_MISSING"


def test_missing_ezc3d_is_a_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ezc3d", None)  # makes `import ezc3d` raise ImportError
    rec = RecordingInput(SensorKind.MOTION_CAPTURE, c3d_bytes=b"not really a c3d file")
    with pytest.raises(DependencyMissingError, match=r"install \.\[sensors\]"):
        extract_features([rec], Side.LEFT, MASS)


def test_outcome_values_helper() -> None:
    out = ExtractionOutcome((), ())
    assert out.values == {}
