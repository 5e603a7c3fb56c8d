"""Hostile but in-limit requests on a real server with a default grpcio client (issue 15).

Each test here failed before its fix: error details too big for a client's metadata limit,
undecodable messages answered INTERNAL or ending a stream, and batch answers over the message limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.api.server import RunningServer
from service.client import AlignmentClient, field_violations, load_assessment
from tests.conftest import EXAMPLES
from tests.integration.conftest import rpc_error, start

ASSESSMENT = load_assessment(EXAMPLES / "toe_out_transtibial.json")


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start()
    yield running
    running.stop(0.5)


@pytest.fixture
def client(server: RunningServer) -> Iterator[AlignmentClient]:
    # A plain channel: grpcio's default metadata limit (8 KiB), as every integrator's client has.
    with AlignmentClient.connect(f"127.0.0.1:{server.port}", timeout_s=20) as c:
        yield c


def _with_features(names: list[str]) -> pb.GaitAssessment:
    a = pb.GaitAssessment()
    a.CopyFrom(ASSESSMENT)
    del a.features[:]
    for n in names:
        a.features.add(name=n, value=1.0)
    return a


def _error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, (err.code(), err.details())
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo")


BIG_REJECTIONS = {
    "120 unknown feature names": _with_features([f"no_such_feature_{i:03d}_with_a_long_name" for i in range(120)]),
    "256 duplicate features": _with_features(["walking_speed_m_per_s"] * 256),
    "one 20,000-character feature name": _with_features(["x" * 20_000]),
}


@pytest.mark.parametrize("case", list(BIG_REJECTIONS))
def test_big_rejections_arrive_as_invalid_argument_with_bounded_details(client: AlignmentClient, case: str) -> None:
    err = rpc_error(client.recommend, BIG_REJECTIONS[case])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details()[:200])
    violations = field_violations(err)
    assert violations, "the BadRequest must reach a default client"
    assert all(len(v.field) <= 200 and len(v.description) <= 400 for v in violations)
    info = _error_info(err)
    total = int(info.metadata["violations"])
    shown = int(info.metadata.get("violations_shown", str(total)))
    assert shown == len(violations) <= total
    assert shown == total or f"{total - shown} more violations not shown" in err.details()


def test_long_model_version_is_not_found_with_the_version_truncated(client: AlignmentClient) -> None:
    err = rpc_error(client.recommend, ASSESSMENT, model_version="9" * 4000)
    assert err.code() == grpc.StatusCode.NOT_FOUND, (err.code(), err.details()[:200])
    assert len(err.details()) <= 512
    assert _error_info(err).reason


def test_many_recordings_with_unknown_channels_are_invalid_argument_with_details(client: AlignmentClient) -> None:
    req = spb.ExtractFeaturesRequest(patient=ASSESSMENT.patient)
    for _ in range(32):
        rec = req.recordings.add(sensor_kind=pb.SENSOR_KIND_IMU, sampling_rate_hz=100.0)
        for k in range(5):
            rec.channels.add(name=f"unknown_channel_{k}_" + "y" * 40, values=[0.0] * 10, components=1)
    err = rpc_error(client.stub.ExtractFeatures, req, timeout=20)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details()[:200])
    assert field_violations(err)


# ------------------------------------------------------------------- finding 4: bounded work and answer
def test_a_full_batch_of_unknown_names_is_answered_quickly_and_within_the_limit(client: AlignmentClient) -> None:
    """1000 items x 256 unknown names (~7.5 MB, inside every limit) cost 23 s of server CPU and then
    failed because the 31.7 MB answer exceeded the message limit. Now each item is answered."""
    bad = _with_features([f"unknown_{i:03d}_abcdefg" for i in range(256)])
    req = spb.BatchRecommendAdjustmentsRequest(assessments=[bad] * 1000)
    assert req.ByteSize() < 8 * 1024 * 1024
    resp = client.stub.BatchRecommendAdjustments(req, timeout=20)
    assert len(resp.results) == 1000
    assert all(r.error.code == "INVALID_ARGUMENT" and r.error.field_violations for r in resp.results)
    assert resp.ByteSize() < 8 * 1024 * 1024
    assert "more violations not shown" in resp.results[0].error.message


@pytest.fixture(scope="module")
def tight() -> Iterator[RunningServer]:
    running = start(max_message_bytes=64 * 1024)
    yield running
    running.stop(0.5)


def test_a_batch_answer_over_the_message_limit_drops_item_details_and_says_so(tight: RunningServer) -> None:
    bad = _with_features([f"unknown_name_{i:02d}" for i in range(12)])
    req = spb.BatchRecommendAdjustmentsRequest(assessments=[bad] * 150)
    assert req.ByteSize() < 64 * 1024
    with AlignmentClient.connect(f"127.0.0.1:{tight.port}", timeout_s=20) as c:
        resp = c.stub.BatchRecommendAdjustments(req, timeout=20)
        assert len(resp.results) == 150
        assert all(r.error.code == "INVALID_ARGUMENT" and "field details dropped" in r.error.message for r in resp.results)
        # Answers that cannot fit (valid items, ~2-3 KB each) are a clear RESOURCE_EXHAUSTED.
        err = rpc_error(c.stub.BatchRecommendAdjustments, spb.BatchRecommendAdjustmentsRequest(assessments=[ASSESSMENT] * 60), timeout=20)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "send smaller batches" in err.details()


# ------------------------------------------------------------------- finding 5: decoding in the handler
def _raw(channel: grpc.Channel, method: str, kind: str = "unary_unary") -> Any:
    factory = getattr(channel, kind)
    return factory(method, request_serializer=None, response_deserializer=None)


GARBAGE = b"\xff\xff\xff\xff\x0f"  # an invalid tag: no message parses it


@pytest.mark.parametrize(
    "method",
    [
        "/prosthetic_alignment.v1.AlignmentService/RecommendAdjustments",
        "/prosthetic_alignment.v1.AlignmentService/BatchRecommendAdjustments",
        "/prosthetic_alignment.v1.AlignmentService/GetModel",
        "/prosthetic_alignment.v1.AlignmentService/ExtractFeatures",
        "/prosthetic_alignment.v1.AlignmentService/RecommendFromRecordings",
        "/grpc.health.v1.Health/Check",
    ],
)
def test_an_undecodable_unary_body_is_invalid_argument_without_a_logged_traceback(
    server: RunningServer, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch, caplog.at_level("ERROR"):
        with pytest.raises(grpc.RpcError) as exc:
            _raw(ch, method)(GARBAGE, timeout=10)
    err = exc.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert field_violations(err)[0].reason == "UNDECODABLE_MESSAGE"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_bad_stream_message_gets_its_own_error_and_the_stream_goes_on(server: RunningServer) -> None:
    good = spb.StreamRecommendAdjustmentsRequest(assessment=ASSESSMENT).SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        call = _raw(ch, "/prosthetic_alignment.v1.AlignmentService/StreamRecommendAdjustments", "stream_stream")
        answers = [spb.StreamRecommendAdjustmentsResponse.FromString(b) for b in call(iter([good, GARBAGE, good, good]), timeout=20)]
    assert [a.sequence for a in answers] == [1, 2, 3, 4]
    assert [a.WhichOneof("result") for a in answers] == ["recommendation", "error", "recommendation", "recommendation"]
    assert answers[1].error.code == "INVALID_ARGUMENT" and answers[1].error.reason


# ------------------------------------------------------------------- finding 9: one connection per client
def _established(port: int) -> int:
    """Server-side TCP connections of `port` (this process holds both ends)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


def test_each_client_has_its_own_connection_so_workers_share_the_load(server: RunningServer) -> None:
    """grpcio shares one connection among channels to the same address unless
    grpc.use_local_subchannel_pool is set: several clients would then all sit on one worker."""
    before = _established(server.port)
    clients = [AlignmentClient.connect(f"127.0.0.1:{server.port}", timeout_s=10) for _ in range(3)]
    try:
        for c in clients:
            assert c.get_model().model.version
        assert _established(server.port) - before == 3
    finally:
        for c in clients:
            c.close()
