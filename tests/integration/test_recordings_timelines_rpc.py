"""Channel groups over the wire: a real server, a real stub, recordings whose sensors lost packets."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2_grpc as spb_grpc
from service.api.server import build_server
from service.settings import Settings
from tests.conftest import MODELS_DIR
from tests.integration.test_recordings_rpc import bad_request, imu_recording, patient, pylon_recording


@pytest.fixture(scope="module")
def stub() -> Iterator[spb_grpc.AlignmentServiceStub]:
    running = build_server(
        Settings(address="127.0.0.1:0", models_dir=MODELS_DIR, workers=1, metrics_port=0), serve_metrics=False
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield spb_grpc.AlignmentServiceStub(channel)  # type: ignore[no-untyped-call]
    finally:
        running.stop(0.5)


def _grouped(rec: pb.Recording, lost: dict[str, list[range]]) -> pb.Recording:
    """The same recording with each channel in its own group ("<channel>" minus the axis) and the
    given counter values removed, as a receiver that lost those packets would deliver it."""
    out = pb.Recording(sensor_kind=rec.sensor_kind, sampling_rate_hz=rec.sampling_rate_hz)
    for ch in rec.channels:
        group = ch.name.rsplit("_", 2)[0] if rec.sensor_kind == pb.SENSOR_KIND_IMU else "pylon"
        values = np.asarray(ch.values)
        keep = np.ones(len(values), dtype=bool)
        for r in lost.get(group, []):
            keep[r.start : r.stop] = False
        if group not in {g.name for g in out.channel_groups}:
            out.channel_groups.add(name=group, sample_counter=np.flatnonzero(keep).tolist())
        out.channels.add(name=ch.name, values=values[keep].tolist(), unit=ch.unit, group=group)
    return out


def test_feet_with_lost_packets_are_answered_and_the_report_lists_gaps_and_dropped_strides(
    stub: spb_grpc.AlignmentServiceStub,
) -> None:
    rec = _grouped(imu_recording(0.64, 0.70), {"left_foot": [range(300, 305), range(600, 630)], "right_foot": [range(200, 202)]})
    assert len(rec.channels[0].values) != len(rec.channels[1].values)
    resp = stub.ExtractFeatures(spb.ExtractFeaturesRequest(patient=patient(), recordings=[rec]), timeout=20)
    (report,) = resp.reports
    assert report.aligned_start_s == 0.0 and report.aligned_end_s == pytest.approx(11.99)
    assert report.samples_filled == 5 + 2
    left, right = report.channel_groups
    assert (left.name, list(left.channels), left.samples_received) == ("left_foot", ["left_foot_gyr_ml"], 1200 - 35)
    assert [(round(g.start_s, 2), g.samples_missing, g.filled) for g in left.gaps] == [(3.0, 5, True), (6.0, 30, False)]
    assert left.samples_filled == 5 and left.samples_unfilled == 30
    assert [(g.samples_missing, g.filled) for g in right.gaps] == [(2, True)]
    assert report.strides_dropped_for_gaps
    for d in report.strides_dropped_for_gaps:
        # Overlapping the gap, or within the 50 ms margin of it (GAP_MARGIN_S).
        assert d.side == pb.SIDE_LEFT and d.group == "left_foot" and d.start_s < 6.35 and d.end_s > 5.95
    assert any("dropped because of a gap too long to fill" in w for w in report.warnings)
    assert {f.name for f in resp.features} >= {"stance_time_prosthetic_s", "stance_time_sound_s"}


def test_recordings_without_groups_leave_the_new_report_fields_unset(stub: spb_grpc.AlignmentServiceStub) -> None:
    resp = stub.ExtractFeatures(spb.ExtractFeaturesRequest(patient=patient(), recordings=[imu_recording(0.66, 0.66)]), timeout=20)
    (report,) = resp.reports
    assert not report.channel_groups and not report.strides_dropped_for_gaps and report.samples_filled == 0


def test_a_long_gap_in_a_pylon_recording_is_invalid_argument_naming_the_channels(stub: spb_grpc.AlignmentServiceStub) -> None:
    rec = _grouped(pylon_recording(), {"pylon": [range(300, 320)]})
    with pytest.raises(grpc.RpcError) as exc:
        stub.ExtractFeatures(spb.ExtractFeaturesRequest(patient=patient(), recordings=[rec]), timeout=20)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    v = bad_request(exc.value)
    reason, description = v["recordings[0].channel_groups[0].sample_counter"]
    assert reason == "GAP_TOO_LONG" and "'axial_force_n'" in description and "200 ms at 3.00 s" in description


def test_a_channel_naming_an_undefined_group_is_invalid_argument(stub: spb_grpc.AlignmentServiceStub) -> None:
    rec = imu_recording(0.66, 0.66)
    rec.channels[1].group = "right_foot"
    with pytest.raises(grpc.RpcError) as exc:
        stub.ExtractFeatures(spb.ExtractFeaturesRequest(patient=patient(), recordings=[rec]), timeout=20)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request(exc.value)["recordings[0].channels[1].group"][0] == "UNKNOWN_CHANNEL_GROUP"
