"""ExtractFeatures and RecommendFromRecordings over a real in-process server and a real client stub."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2_grpc as spb_grpc
from service.api.server import RunningServer, build_server
from service.settings import Settings
from tests.synthetic_gait import foot_gyr_ml

ROOT = Path(__file__).resolve().parents[2]
FS = 100.0
MASS = 72.0
BW = MASS * 9.80665
FloatArray = npt.NDArray[np.float64]


# ------------------------------------------------------------------------------ server and stub
@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    root = ROOT / "models" / "alignment"
    if not root.is_dir() or not any(p.is_dir() for p in root.iterdir()):
        pytest.fail("no bundled model under models/alignment: run `python -m training all`")
    running = build_server(
        Settings(address="127.0.0.1:0", models_dir=ROOT / "models", workers=1, metrics_port=0), serve_metrics=False
    )
    try:
        yield running
    finally:
        running.stop(0.5)


@pytest.fixture(scope="module")
def stub(server: RunningServer) -> Iterator[spb_grpc.AlignmentServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield spb_grpc.AlignmentServiceStub(channel)  # type: ignore[no-untyped-call]


def bad_request(err: grpc.RpcError) -> dict[str, tuple[str, str]]:
    """field -> (reason, description) from the google.rpc.BadRequest detail."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out: dict[str, tuple[str, str]] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            out.update({v.field: (v.reason, v.description) for v in br.field_violations})
    return out


# ------------------------------------------------------------------------------ synthetic recordings
def imu_recording(stance_left: float, stance_right: float, stride: float = 1.1, dur: float = 12.0) -> pb.Recording:
    rng = np.random.default_rng(7)
    n = int(dur * FS)
    starts = 0.5 + np.cumsum(np.r_[0.0, stride * (1 + 0.01 * rng.standard_normal(int(dur / stride) + 2))])
    ics_l = [float(x) for x in starts if x < dur - 1.5]
    ics_r = [x + stride / 2 for x in ics_l]
    rec = pb.Recording(sensor_kind=pb.SENSOR_KIND_IMU, sampling_rate_hz=FS)
    rec.channels.add(name="left_foot_gyr_ml", values=foot_gyr_ml(n, ics_l, stance_left, stride, rng).tolist(), unit="deg/s")
    rec.channels.add(name="right_foot_gyr_ml", values=foot_gyr_ml(n, ics_r, stance_right, stride, rng).tolist(), unit="deg/s")
    return rec


def pylon_recording(
    sag: tuple[float, float] = (0.25, -0.60), cor: tuple[float, float] = (0.30, 0.25), axial_bw: float = 1.12
) -> pb.Recording:
    """Moments (N*m) linear over stance through the given N*m/kg values at 30 % and 75 % of stance."""
    n_steps, stance_s, stride_s = 8, 0.68, 1.1
    n = int((n_steps * stride_s + 1.0) * FS)
    t = np.arange(n) / FS
    axial, m_sag, m_cor = np.zeros(n), np.zeros(n), np.zeros(n)
    for k in range(n_steps):
        on = 0.5 + k * stride_s
        m = (t >= on) & (t < on + stance_s)
        frac = (t[m] - on) / stance_s
        axial[m] = axial_bw * BW * np.sin(np.pi * frac)
        for out, (early, late) in ((m_sag, sag), (m_cor, cor)):
            out[m] = MASS * (early + (late - early) / 0.45 * (frac - 0.30))
    rec = pb.Recording(sensor_kind=pb.SENSOR_KIND_INSTRUMENTED_PYLON, sampling_rate_hz=FS)
    rec.channels.add(name="axial_force_n", values=axial.tolist())
    rec.channels.add(name="moment_sagittal_nm", values=m_sag.tolist())
    rec.channels.add(name="moment_coronal_nm", values=m_cor.tolist())
    return rec


def patient(side: int = pb.SIDE_LEFT) -> pb.PatientContext:
    return pb.PatientContext(amputation_level=pb.AMPUTATION_LEVEL_TRANSTIBIAL, prosthetic_side=side, body_mass_kg=MASS)  # type: ignore[arg-type]


def features(resp: spb.ExtractFeaturesResponse) -> dict[str, float]:
    return {f.name: f.value for f in resp.features}


# ------------------------------------------------------------------------------ ExtractFeatures
def test_imu_recording_gives_cadence_and_stance_times_with_provenance(stub: spb_grpc.AlignmentServiceStub) -> None:
    resp = stub.ExtractFeatures(spb.ExtractFeaturesRequest(patient=patient(), recordings=[imu_recording(0.62, 0.72)]), timeout=20)
    f = features(resp)
    assert f["cadence_steps_per_min"] == pytest.approx(120 / 1.1, rel=0.03)
    assert f["stance_time_prosthetic_s"] == pytest.approx(0.62, abs=0.04)
    assert f["stance_time_sound_s"] == pytest.approx(0.72, abs=0.04)
    assert all(x.source == pb.SENSOR_KIND_IMU for x in resp.features)
    assert {x.name: x.unit for x in resp.features}["stance_time_prosthetic_s"] == "s"
    (report,) = resp.reports
    assert report.sensor_kind == pb.SENSOR_KIND_IMU and report.strides_used >= 12
    prov = {p.feature: p for p in report.provenance}
    assert prov["stance_time_prosthetic_s"].precision == "high"
    assert prov["stance_time_prosthetic_s"].sensor_kind == pb.SENSOR_KIND_IMU
    assert prov["cadence_steps_per_min"].n_values >= 12 and prov["cadence_steps_per_min"].method


def test_pylon_recording_gives_socket_moments(stub: spb_grpc.AlignmentServiceStub) -> None:
    rec = pylon_recording(sag=(0.40, -0.45), cor=(0.50, 0.35))
    f = features(stub.ExtractFeatures(spb.ExtractFeaturesRequest(patient=patient(), recordings=[rec]), timeout=20))
    assert f["socket_sagittal_moment_early_stance_nm_per_kg"] == pytest.approx(0.40, abs=0.02)
    assert f["socket_sagittal_moment_late_stance_nm_per_kg"] == pytest.approx(-0.45, abs=0.02)
    assert f["socket_coronal_moment_early_stance_nm_per_kg"] == pytest.approx(0.50, abs=0.02)
    assert f["socket_coronal_moment_late_stance_nm_per_kg"] == pytest.approx(0.35, abs=0.02)
    assert f["pylon_axial_force_peak_bw"] == pytest.approx(1.12, abs=0.01)


def test_observation_checklist(stub: spb_grpc.AlignmentServiceStub) -> None:
    rec = pb.Recording(
        sensor_kind=pb.SENSOR_KIND_OBSERVATION,
        observations={"excessive_toe_out": "true", "lateral_trunk_lean": "marked", "prosthesis_long": "false"},
    )
    resp = stub.ExtractFeatures(spb.ExtractFeaturesRequest(patient=patient(), recordings=[rec]), timeout=20)
    f = features(resp)
    assert f["foot_progression_angle_prosthetic_deg"] > 15 and f["trunk_lateral_lean_deg"] > 10
    assert all(p.precision == "low" for p in resp.reports[0].provenance)


def _bts_c3d() -> bytes:
    data = Path(os.environ.get("ALIGN_SHARED_DATA", ROOT.parent / "shared" / "data"))
    path = data / "ezc3d-bts-gait-c3d" / "BTS.c3d"
    if not path.is_file():
        pytest.skip(f"{path} not present (set ALIGN_SHARED_DATA to the shared data folder)")
    try:
        import ezc3d  # noqa: F401
    except ImportError:
        pytest.skip("ezc3d not installed (install .[sensors])")
    return path.read_bytes()


def test_bts_c3d_bytes_give_grf_peaks(stub: spb_grpc.AlignmentServiceStub) -> None:
    rec = pb.Recording(sensor_kind=pb.SENSOR_KIND_MOTION_CAPTURE, c3d_file=_bts_c3d())
    # The file's subject mass is unknown: leave body_mass_kg unset so it is estimated from the plates.
    req = spb.ExtractFeaturesRequest(patient=pb.PatientContext(prosthetic_side=pb.SIDE_LEFT), recordings=[rec])
    resp = stub.ExtractFeatures(req, timeout=30)
    by = {f.name: f for f in resp.features}
    assert any("estimated" in w for w in resp.reports[0].warnings)
    for name in ("vgrf_loading_peak_prosthetic_bw", "vgrf_loading_peak_sound_bw", "vgrf_push_off_peak_prosthetic_bw"):
        assert 1.0 <= by[name].value <= 1.4, (name, by[name].value)
        assert by[name].source == pb.SENSOR_KIND_FORCE_PLATE  # GRF from the plates inside the C3D
    assert by["step_length_prosthetic_m"].source == pb.SENSOR_KIND_MOTION_CAPTURE
    assert resp.reports[0].sensor_kind == pb.SENSOR_KIND_MOTION_CAPTURE


def test_missing_ezc3d_is_failed_precondition(stub: spb_grpc.AlignmentServiceStub, monkeypatch: pytest.MonkeyPatch) -> None:
    # The server runs in this process, so hiding the module hides it from the extractor too.
    monkeypatch.setitem(sys.modules, "ezc3d", None)
    rec = pb.Recording(sensor_kind=pb.SENSOR_KIND_FORCE_PLATE, c3d_file=b"C3D bytes")
    with pytest.raises(grpc.RpcError) as exc:
        stub.ExtractFeatures(spb.ExtractFeaturesRequest(patient=patient(), recordings=[rec]), timeout=20)
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "install .[sensors]" in (exc.value.details() or "")


def test_swapping_the_prosthetic_side_flips_asymmetries(stub: spb_grpc.AlignmentServiceStub) -> None:
    rec = imu_recording(0.62, 0.72)
    left = features(stub.ExtractFeatures(spb.ExtractFeaturesRequest(patient=patient(pb.SIDE_LEFT), recordings=[rec]), timeout=20))
    right = features(stub.ExtractFeatures(spb.ExtractFeaturesRequest(patient=patient(pb.SIDE_RIGHT), recordings=[rec]), timeout=20))
    assert left["stance_time_asymmetry_pct"] < -8
    assert right["stance_time_asymmetry_pct"] == pytest.approx(-left["stance_time_asymmetry_pct"])
    assert right["stance_time_prosthetic_s"] == pytest.approx(left["stance_time_sound_s"])


# ------------------------------------------------------------------------------ bad recordings
def _short() -> pb.Recording:
    rec = imu_recording(0.66, 0.66)
    for ch in rec.channels:
        del ch.values[150:]
    return rec


def _flat() -> pb.Recording:
    rec = imu_recording(0.66, 0.66)
    for ch in rec.channels:
        ch.values[:] = [0.0] * len(ch.values)
    return rec


def _rate(rate: float) -> pb.Recording:
    rec = imu_recording(0.66, 0.66)
    rec.sampling_rate_hz = rate
    return rec


def _unknown_channel() -> pb.Recording:
    rec = imu_recording(0.66, 0.66)
    rec.channels.add(name="left_fot_gyr_pa", values=list(rec.channels[0].values))
    return rec


def _not_divisible() -> pb.Recording:
    rec = pb.Recording(sensor_kind=pb.SENSOR_KIND_MOTION_CAPTURE, sampling_rate_hz=100.0)
    rec.channels.add(name="left_heel", values=[0.0] * 301, components=3)
    rec.channels.add(name="right_heel", values=[0.0] * 300, components=3)
    return rec


def _unspecified() -> pb.Recording:
    rec = imu_recording(0.66, 0.66)
    rec.sensor_kind = pb.SENSOR_KIND_UNSPECIFIED
    return rec


@pytest.mark.parametrize(
    ("make", "side", "field", "reason", "mentions"),
    [
        (_short, pb.SIDE_LEFT, "recordings[0].channels", "RECORDING_TOO_SHORT", "3 s"),
        (_flat, pb.SIDE_LEFT, "recordings[0].channels", "NO_COMPLETE_STRIDE", "stride"),
        (lambda: _rate(0.0), pb.SIDE_LEFT, "recordings[0].sampling_rate_hz", "INVALID_SAMPLING_RATE", "sampling_rate_hz"),
        (lambda: _rate(math.nan), pb.SIDE_LEFT, "recordings[0].sampling_rate_hz", "INVALID_SAMPLING_RATE", "nan"),
        (_unknown_channel, pb.SIDE_LEFT, "recordings[0].channels[2].name", "UNKNOWN_CHANNEL", "left_fot_gyr_pa"),
        (lambda: imu_recording(0.66, 0.66), pb.SIDE_UNSPECIFIED, "patient.prosthetic_side", "SIDE_MISSING", "prosthetic_side"),
        (_not_divisible, pb.SIDE_LEFT, "recordings[0].channels[0].values", "INVALID_VALUE", "left_heel"),
        (_unspecified, pb.SIDE_LEFT, "recordings[0].sensor_kind", "SENSOR_KIND_MISSING", "sensor_kind"),
    ],
    ids=["too_short", "no_stride", "zero_rate", "nan_rate", "unknown_channel", "side_missing", "not_divisible", "no_kind"],
)
def test_bad_recordings_are_invalid_argument_with_field_violations(
    stub: spb_grpc.AlignmentServiceStub, make: object, side: int, field: str, reason: str, mentions: str
) -> None:
    rec = make()  # type: ignore[operator]
    req = spb.ExtractFeaturesRequest(patient=patient(side), recordings=[rec])
    with pytest.raises(grpc.RpcError) as exc:
        stub.ExtractFeatures(req, timeout=20)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = bad_request(exc.value)
    assert field in violations, violations
    got_reason, description = violations[field]
    assert got_reason == reason
    assert mentions in description


def test_every_bad_recording_is_reported_in_one_answer(stub: spb_grpc.AlignmentServiceStub) -> None:
    req = spb.ExtractFeaturesRequest(patient=patient(), recordings=[_short(), _rate(0.0), _unknown_channel()])
    with pytest.raises(grpc.RpcError) as exc:
        stub.ExtractFeatures(req, timeout=20)
    fields = set(bad_request(exc.value))
    assert {"recordings[0].channels", "recordings[1].sampling_rate_hz", "recordings[2].channels[2].name"} <= fields


# ------------------------------------------------------------------------------ RecommendFromRecordings
def test_recommend_from_recordings_names_the_model_and_returns_the_extraction(
    stub: spb_grpc.AlignmentServiceStub, server: RunningServer
) -> None:
    req = spb.RecommendFromRecordingsRequest(
        assessment_id="rec-1",
        patient=patient(),
        recordings=[imu_recording(0.62, 0.72), pylon_recording(cor=(0.55, 0.45))],
        # A measured value beats the extracted one of the same name.
        features=[pb.FeatureValue(name="cadence_steps_per_min", value=98.0, source=pb.SENSOR_KIND_IMU)],
    )
    resp = stub.RecommendFromRecordings(req, timeout=30)
    rec = resp.recommendation
    assert rec.assessment_id == "rec-1"
    assert rec.model.version == server.registry.get().version and len(rec.model.sha256) == 64
    assert len(rec.parameter_estimates) == 7
    assert rec.no_change_needed == (len(rec.adjustments) == 0)
    extracted = features(resp.extraction)
    assert "socket_coronal_moment_early_stance_nm_per_kg" in extracted and "stance_time_sound_s" in extracted
    assert "cadence_steps_per_min" not in rec.missing_features
    assert any("replaces the extracted cadence_steps_per_min" in w for r in resp.extraction.reports for w in r.warnings)


def test_recommend_from_bad_recordings_is_invalid_argument(stub: spb_grpc.AlignmentServiceStub) -> None:
    req = spb.RecommendFromRecordingsRequest(assessment_id="bad", patient=patient(pb.SIDE_UNSPECIFIED), recordings=[_short()])
    with pytest.raises(grpc.RpcError) as exc:
        stub.RecommendFromRecordings(req, timeout=20)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request(exc.value)["patient.prosthetic_side"][0] == "SIDE_MISSING"


def test_healthy_symmetric_recordings_need_no_change(stub: spb_grpc.AlignmentServiceStub) -> None:
    """Normative socket moments and symmetric stance: the answer must be 'no change' (every recommended
    adjustment exceeds the published minimum effect by policy, so 'below threshold' means none)."""
    req = spb.RecommendFromRecordingsRequest(
        assessment_id="healthy",
        patient=patient(pb.SIDE_RIGHT),
        recordings=[imu_recording(0.68, 0.68), pylon_recording()],
    )
    rec = stub.RecommendFromRecordings(req, timeout=30).recommendation
    adjustments = [(pb.AdjustmentParameter.Name(a.parameter), a.change_deg or a.change_mm, a.confidence) for a in rec.adjustments]
    assert rec.no_change_needed and not adjustments, adjustments
