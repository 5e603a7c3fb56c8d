"""Observability on a real server: Prometheus metrics scraped over HTTP, JSON logs free of patient
data, and the optional OpenTelemetry span per RPC."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service.api.metrics import tracing_interceptor
from service.api.server import RunningServer, build_server
from service.client import AlignmentClient, load_assessment
from service.logs import JsonFormatter
from service.settings import Settings
from tests.conftest import EXAMPLES, MODELS_DIR
from tests.integration.conftest import rpc_error, start
from tests.integration.test_serving_support import free_port, metric, samples, scrape

SERVICE = "prosthetic_alignment.v1.AlignmentService"
TOKEN = "metrics-test-token-0123456789"
ASSESSMENT = load_assessment(EXAMPLES / "toe_out_transtibial.json")
# Values that must never show up in a log line.
SECRET_ID = "PATIENT-ZX81-4471"
SECRET_SPEED = 1.234567
SECRET_BAD = 97.531


def _marked(assessment_id: str = SECRET_ID, speed: float = SECRET_SPEED) -> pb.GaitAssessment:
    a = pb.GaitAssessment()
    a.CopyFrom(ASSESSMENT)
    a.assessment_id = assessment_id
    a.patient.body_mass_kg = 83.21
    for f in a.features:
        if f.name == "walking_speed_m_per_s":
            f.value, f.unit = speed, ""
            break
    else:
        a.features.add(name="walking_speed_m_per_s", value=speed, source=pb.SENSOR_KIND_IMU)
    return a


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    s = Settings(address="127.0.0.1:0", models_dir=MODELS_DIR, workers=1, metrics_port=free_port(), auth_tokens=f"m={TOKEN}")  # type: ignore[arg-type]
    running = build_server(s)
    yield running
    running.stop(0.5)


def test_metrics_are_scraped_over_http_and_reflect_the_traffic(server: RunningServer) -> None:
    assert server.metrics_port
    with AlignmentClient.connect(f"127.0.0.1:{server.port}", token=TOKEN, timeout_s=10) as c:
        for _ in range(3):
            c.recommend(ASSESSMENT)
        c.recommend_batch([ASSESSMENT] * 4)
        bad = load_assessment(EXAMPLES / "toe_out_transtibial.json")
        bad.features.add(name="no_such_feature", value=1.0)
        assert rpc_error(c.recommend, bad).code() == grpc.StatusCode.INVALID_ARGUMENT
        list(c.stream([ASSESSMENT, bad]))
    with AlignmentClient.connect(f"127.0.0.1:{server.port}", timeout_s=10) as anonymous:
        assert rpc_error(anonymous.recommend, ASSESSMENT).code() == grpc.StatusCode.UNAUTHENTICATED

    text = scrape(server.metrics_port)
    version = server.registry.get().version
    assert metric(text, "alignment_rpc_requests_total", rpc="RecommendAdjustments", code="OK") >= 3
    assert metric(text, "alignment_rpc_requests_total", rpc="RecommendAdjustments", code="INVALID_ARGUMENT") >= 1
    assert metric(text, "alignment_rpc_requests_total", rpc="BatchRecommendAdjustments", code="OK") >= 1
    assert metric(text, "alignment_rpc_latency_seconds_count", rpc="RecommendAdjustments", code="OK") >= 3
    assert metric(text, "alignment_rpc_latency_seconds_bucket", rpc="RecommendAdjustments", code="OK", le="+Inf") >= 3
    assert metric(text, "alignment_rpc_latency_seconds_sum", rpc="RecommendAdjustments", code="OK") > 0
    assert metric(text, "alignment_rpc_in_flight") == 0
    assert metric(text, "alignment_model_info", name="alignment", version=version) == 1
    assert metric(text, "alignment_model_swaps_total") >= 1
    assert metric(text, "alignment_rejected_inputs_total", reason="UNKNOWN_FEATURE") >= 2  # unary + stream item
    assert metric(text, "alignment_auth_failures_total", code="UNAUTHENTICATED") >= 1
    scored = metric(text, "alignment_assessments_total")
    assert scored >= 3 + 4 + 1
    # Every scored assessment is either "no change" or at least one recommended adjustment.
    recommended = metric(text, "alignment_recommendations_total")
    no_change = metric(text, "alignment_no_change_total")
    assert recommended + no_change >= scored
    assert all(SECRET_ID not in str(labels) for _n, labels, _v in samples(text))


def test_in_flight_gauge_counts_an_open_stream(server: RunningServer) -> None:
    import queue

    assert server.metrics_port
    q: queue.Queue[object] = queue.Queue()

    def reqs() -> Iterator[Any]:
        from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb

        yield spb.StreamRecommendAdjustmentsRequest(assessment=ASSESSMENT)
        q.get()

    with AlignmentClient.connect(f"127.0.0.1:{server.port}", token=TOKEN, timeout_s=10) as c:
        call = c.stub.StreamRecommendAdjustments(reqs(), metadata=c._metadata, timeout=10)
        next(call)
        assert metric(scrape(server.metrics_port), "alignment_rpc_in_flight") == 1
        q.put(None)
        list(call)
    assert metric(scrape(server.metrics_port), "alignment_rpc_in_flight") == 0


@contextlib.contextmanager
def json_logs() -> Iterator[io.StringIO]:
    """Everything any logger emits at DEBUG, formatted as the service formats it in production."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buf
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_logs_never_contain_feature_values_or_assessment_ids(server: RunningServer) -> None:
    with json_logs() as buf:
        with AlignmentClient.connect(f"127.0.0.1:{server.port}", token=TOKEN, timeout_s=10) as c:
            c.recommend(_marked())
            c.recommend_batch([_marked(), _marked(speed=SECRET_BAD)])
            list(c.stream([_marked(), _marked(speed=SECRET_BAD)]))
            err = rpc_error(c.recommend, _marked(speed=SECRET_BAD))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert str(SECRET_BAD) in (err.details() or "")  # the client is told; the log is not
            assert rpc_error(c.recommend, _marked(), model_version="0.0.0").code() == grpc.StatusCode.NOT_FOUND
        server.reload()
        # A caller passing forbidden keys by mistake is filtered by the formatter too.
        logging.getLogger("service.api").warning("oops", extra={"assessment_id": SECRET_ID, "value": SECRET_SPEED})
    text = buf.getvalue()
    assert text, "nothing was logged"
    for secret in (SECRET_ID, str(SECRET_SPEED), str(SECRET_BAD), "83.21"):
        assert secret not in text, f"{secret} leaked into the logs"


@pytest.fixture(scope="module")
def span_exporter() -> Any:
    """The real OpenTelemetry SDK with an in-memory exporter as the process's tracer provider.

    The global provider can be set once per process; tracers handed out before (proxies) delegate
    to it from then on, so servers built by other tests only gain spans nobody reads.
    """
    trace = pytest.importorskip("opentelemetry.trace", reason="the opentelemetry API is a dev dependency")
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace", reason="the opentelemetry SDK is a dev dependency")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_tracing_is_off_without_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import raise ImportError, as on a machine without the package.
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    assert tracing_interceptor() is None


def test_tracing_is_opt_in_and_needs_the_package(monkeypatch: pytest.MonkeyPatch, span_exporter: Any) -> None:
    span_exporter.clear()
    running = start()  # tracing defaults to off even with the package installed
    try:
        with AlignmentClient.connect(f"127.0.0.1:{running.port}", timeout_s=10) as c:
            c.recommend(ASSESSMENT)
    finally:
        running.stop(0.5)
    assert not span_exporter.get_finished_spans()
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ValueError, match="opentelemetry-api"):
        Settings(tracing=True)


def test_a_span_per_rpc_with_the_opentelemetry_sdk(span_exporter: Any) -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    span_exporter.clear()
    running = start(tracing=True)
    try:
        with AlignmentClient.connect(f"127.0.0.1:{running.port}", timeout_s=10) as c:
            c.recommend(ASSESSMENT)
            rpc_error(c.recommend, _marked(speed=SECRET_BAD))  # out of range: INVALID_ARGUMENT
            assert [r.sequence for r in c.stream([ASSESSMENT])] == [1]
            # The batch answer travels as pre-built bytes through the traced handler.
            batch = c.recommend_batch([ASSESSMENT, _marked(speed=SECRET_BAD)])
            assert [r.WhichOneof("result") for r in batch.results] == ["recommendation", "error"]
    finally:
        running.stop(0.5)
    # Nothing of the request reaches a span: not the id, not the rejected value (the SDK would put
    # it there with an exception event carrying the error message).
    exported = "".join(s.to_json() for s in span_exporter.get_finished_spans())
    for secret in (SECRET_ID, str(SECRET_BAD), "83.21"):
        assert secret not in exported, f"{secret} leaked into a span"
    # Health checks and reflection are traced too; look at the service's own RPCs.
    spans = [s for s in span_exporter.get_finished_spans() if s.attributes["rpc.service"] == SERVICE]
    by_status = [(s.attributes["rpc.method"], s.attributes["rpc.grpc.status_code"]) for s in spans]
    assert sorted(by_status) == [
        ("BatchRecommendAdjustments", "OK"),
        ("RecommendAdjustments", "INVALID_ARGUMENT"),
        ("RecommendAdjustments", "OK"),
        ("StreamRecommendAdjustments", "OK"),
    ]
    for s in spans:
        assert s.kind is SpanKind.SERVER and s.name == f"/{SERVICE}/{s.attributes['rpc.method']}"
        # RPC name and status only: never request content (no assessment id, no feature value).
        assert set(s.attributes) == {"rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code"}
        assert not s.events
        failed = s.attributes["rpc.grpc.status_code"] != "OK"
        assert (s.status.status_code is StatusCode.ERROR) == failed
