"""Overload on a real server: health keeps its own capacity, idle streams take a bounded share, and
a full lane answers RESOURCE_EXHAUSTED at once instead of queueing (issue 15, finding 3).

The deadlines below tell "answered" from "timed out"; the latency itself (< 100 ms) is measured by
`python -m bench.hostile` (bench/RESULTS.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.api.server import RunningServer
from service.client import AlignmentClient
from tests.integration.conftest import start
from tests.integration.test_serving_limits import ASSESSMENT, HeldStream

SERVING = health_pb2.HealthCheckResponse.SERVING


def _check(port: int, timeout_s: float = 1.0) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return int(health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s).status)


@pytest.fixture
def server() -> Iterator[RunningServer]:
    running = start()  # the defaults: grpc_threads 16, max_concurrent_streams 16
    yield running
    running.stop(0.5)


def test_sixteen_idle_streams_leave_health_batches_and_single_calls_answering(server: RunningServer) -> None:
    """Before: the 16 idle streams held all 16 handler threads, and Health/Check timed out."""
    clients = [AlignmentClient.connect(f"127.0.0.1:{server.port}", timeout_s=10) for _ in range(2)]
    held: list[HeldStream] = []
    try:
        for k in range(16):
            h = HeldStream(clients[k % 2])
            held.append(h)
            assert h.send().sequence == 1  # live, then idle
        assert _check(server.port) == SERVING
        c = clients[0]
        assert c.recommend(ASSESSMENT).model.version
        assert c.recommend_batch([ASSESSMENT]).results[0].WhichOneof("result") == "recommendation"
        # A 17th stream is refused at once, not queued behind the idle ones.
        extra = HeldStream(c)
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as exc:
            extra.send()
        extra.close()
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.value  # type: ignore[attr-defined]
        assert time.monotonic() - t0 < 5.0
    finally:
        for h in held:
            h.close()
        for cl in clients:
            cl.close()


def test_a_flood_of_batches_is_refused_at_once_and_health_answers() -> None:
    """More batch calls than the batch lane holds: the rest RESOURCE_EXHAUSTED at once, never a timeout,
    and health answers throughout. The model is held, so the lane stays full for the whole test."""
    running = start(max_concurrent_batches=2, max_queued_batches=2)  # a batch lane of 4
    release = threading.Event()
    try:
        assert running.servicer is not None
        rec = running.servicer.recommender
        original = rec.recommend

        def held(model: object, assessments: object, **kw: object) -> object:
            if threading.current_thread().name.startswith("batch"):
                release.wait(20)
            return original(model, assessments, **kw)  # type: ignore[arg-type]

        rec.recommend = held  # type: ignore[method-assign]
        req = spb.BatchRecommendAdjustmentsRequest(assessments=[ASSESSMENT] * 10)
        with AlignmentClient.connect(f"127.0.0.1:{running.port}", timeout_s=30) as c:
            calls = [c.stub.BatchRecommendAdjustments.future(req, timeout=30) for _ in range(40)]
            deadline = time.monotonic() + 10
            while sum(f.done() for f in calls) < 36 and time.monotonic() < deadline:
                time.sleep(0.02)
            finished = [f for f in calls if f.done()]
            for f in finished:
                err = f.exception()
                assert err is not None and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err  # type: ignore[attr-defined]
            refused = len(finished)
            assert refused == 36, refused  # 4 admitted (2 running, 2 waiting for a slot), the rest refused
            for _ in range(5):
                assert _check(running.port) == SERVING
            release.set()
            done = [f.result(timeout=30) for f in calls if not f.exception(timeout=30)]
            assert len(done) == 4 and all(len(r.results) == 10 for r in done)
    finally:
        release.set()
        running.stop(0.5)
