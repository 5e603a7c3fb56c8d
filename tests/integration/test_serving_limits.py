"""Limits and back-pressure answered with the right status codes on a real server."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.api.server import RunningServer
from service.client import AlignmentClient, field_violations, load_assessment
from tests.conftest import EXAMPLES
from tests.integration.conftest import rpc_error, start

ASSESSMENT = load_assessment(EXAMPLES / "toe_out_transtibial.json")
SMALL = load_assessment(EXAMPLES / "toe_out_transtibial.json")
del SMALL.features[3:]  # within max_features_per_request=3 of the `small` server


@pytest.fixture(scope="module")
def small() -> Iterator[RunningServer]:
    running = start(
        # Above GetModel's answer (~70 KB: the model card's metrics per sensor subset, with and
        # without a reference walk), far below the default 8 MiB.
        max_message_bytes=256 * 1024,
        max_features_per_request=3,
        max_batch_size=5,
        max_stream_messages=3,
        stream_idle_timeout_s=0.5,
        max_concurrent_rpcs=3,
    )
    yield running
    running.stop(0.5)


@pytest.fixture
def client(small: RunningServer) -> Iterator[AlignmentClient]:
    with AlignmentClient.connect(f"127.0.0.1:{small.port}", timeout_s=10) as c:
        yield c


class HeldStream:
    """A client stream whose requests come from a queue: the test decides when (if ever) to send."""

    def __init__(self, client: AlignmentClient) -> None:
        self.q: queue.Queue[spb.StreamRecommendAdjustmentsRequest | None] = queue.Queue()
        self.call = client.stub.StreamRecommendAdjustments(self._requests(), timeout=20)

    def _requests(self) -> Iterator[spb.StreamRecommendAdjustmentsRequest]:
        while (item := self.q.get()) is not None:
            yield item

    def send(self) -> spb.StreamRecommendAdjustmentsResponse:
        self.q.put(spb.StreamRecommendAdjustmentsRequest(assessment=ASSESSMENT))
        return next(self.call)

    def close(self) -> None:
        self.q.put(None)
        self.call.cancel()


def test_oversized_message_is_resource_exhausted(client: AlignmentClient) -> None:
    big = [ASSESSMENT] * 600  # ~390 KB > 256 KiB
    err = rpc_error(client.recommend_batch, big)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.recommend(SMALL).model.version  # the server is fine afterwards


def test_too_many_features_and_too_large_batch_are_invalid_argument(client: AlignmentClient) -> None:
    err = rpc_error(client.recommend, ASSESSMENT)  # the example has more than 3 features
    assert len(ASSESSMENT.features) > 3
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err)[0].reason == "TOO_MANY_FEATURES"
    err = rpc_error(client.recommend_batch, [SMALL] * 6)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err)[0].reason == "BATCH_TOO_LARGE"
    assert len(client.recommend_batch([SMALL] * 5).results) == 5


def test_stream_length_limit_ends_the_stream_with_resource_exhausted(client: AlignmentClient) -> None:
    answered = []
    with pytest.raises(grpc.RpcError) as exc:
        for resp in client.stream([SMALL] * 5):
            answered.append(resp.sequence)
    assert answered == [1, 2, 3]
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]


def test_idle_stream_is_closed_with_deadline_exceeded(client: AlignmentClient, small: RunningServer) -> None:
    held = HeldStream(client)
    try:
        assert held.send().sequence == 1  # answered (with a TOO_MANY_FEATURES item error): stream is live
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as exc:
            next(held.call)  # nothing more is sent
        waited = time.monotonic() - t0
    finally:
        held.close()
    err = exc.value
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    assert "no message within 0.5 s" in (err.details() or "")  # type: ignore[attr-defined]
    assert 0.4 <= waited < 5.0
    # The helper thread that read the idle stream is gone once the stream ended.
    deadline = time.monotonic() + 3
    while any(t.name == "stream-reader" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "stream-reader" for t in threading.enumerate())


def test_saturated_server_answers_resource_exhausted(client: AlignmentClient) -> None:
    held = [HeldStream(client) for _ in range(3)]  # max_concurrent_rpcs=3: every slot taken
    try:
        for h in held:
            h.send()
        err = rpc_error(client.get_model)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        for h in held:
            h.close()
    # Slots free again once the streams end.
    deadline = time.monotonic() + 5
    while True:
        try:
            assert client.get_model().model.version
            break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:  # type: ignore[attr-defined]
                raise
            time.sleep(0.05)


def test_deadlines_are_honoured_and_expired_calls_do_no_work() -> None:
    # 3000 assessments (a larger limit than the default 1000) keep a batch busy for well over 0.1 s;
    # one thread for single calls, so a call queued behind a held one waits past its deadline.
    running = start(unary_threads=1, max_batch_size=3000, max_message_bytes=32 * 1024 * 1024)
    try:
        assert running.servicer is not None
        with AlignmentClient.connect(f"127.0.0.1:{running.port}", timeout_s=30) as c:
            slow = [ASSESSMENT] * 3000
            t0 = time.monotonic()
            c.recommend_batch(slow)
            batch_s = time.monotonic() - t0
            assert batch_s > 0.1, "batch too fast for this test"
            # A deadline shorter than the work: DEADLINE_EXCEEDED, not a late answer.
            err = rpc_error(c.stub.BatchRecommendAdjustments, spb.BatchRecommendAdjustmentsRequest(assessments=slow), timeout=batch_s / 4)
            assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED

            # Hold the only single-call thread inside a call, queue a second call with a short
            # deadline behind it, then let the first one finish.
            rec = running.servicer.recommender
            original = rec.recommend
            entered, release = threading.Event(), threading.Event()

            def held(model: object, assessments: object, **kw: object) -> object:
                if not entered.is_set():
                    entered.set()
                    release.wait(10)
                return original(model, assessments, **kw)  # type: ignore[arg-type]

            rec.recommend = held  # type: ignore[method-assign]
            scored = running.metrics.assessments.labels("RecommendAdjustments")._value.get()
            first = threading.Thread(target=c.recommend, args=(ASSESSMENT,))
            first.start()
            try:
                assert entered.wait(5)
                req = spb.RecommendAdjustmentsRequest(assessment=ASSESSMENT)
                err = rpc_error(c.stub.RecommendAdjustments, req, timeout=0.05)
                assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            finally:
                release.set()
                first.join(10)
            time.sleep(0.2)
            # The queued call expired before the thread was free: it was never scored.
            assert running.metrics.assessments.labels("RecommendAdjustments")._value.get() == scored + 1
            assert c.recommend(ASSESSMENT).model.version
    finally:
        running.stop(0.5)


def test_batch_calls_beyond_the_slots_wait_within_their_deadline() -> None:
    """Batch calls past max_concurrent_batches wait for a slot; one whose deadline passes while
    waiting is DEADLINE_EXCEEDED, and the slot is given back after every call."""
    running = start(max_concurrent_batches=1)
    try:
        assert running.servicer is not None
        slots = running.servicer._batch_slots
        a = load_assessment(EXAMPLES / "toe_out_transtibial.json")
        with AlignmentClient.connect(f"127.0.0.1:{running.port}", timeout_s=10) as c:
            assert c.recommend_batch([a, a]).results[1].WhichOneof("result") == "recommendation"
            assert slots.acquire(timeout=1)  # the only slot is free again: hold it
            try:
                t0 = time.perf_counter()
                err = rpc_error(lambda: c.stub.BatchRecommendAdjustments(spb.BatchRecommendAdjustmentsRequest(assessments=[a]), timeout=0.3))
                assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert time.perf_counter() - t0 < 5
            finally:
                slots.release()
            assert c.recommend_batch([a]).results[0].WhichOneof("result") == "recommendation"
            # A call with no deadline waits as long as it takes.
            assert slots.acquire(timeout=1)
            done: queue.Queue[object] = queue.Queue()
            req = spb.BatchRecommendAdjustmentsRequest(assessments=[a])
            t = threading.Thread(target=lambda: done.put(c.stub.BatchRecommendAdjustments(req)))
            t.start()
            time.sleep(0.3)
            assert done.empty()  # still waiting for the slot
            slots.release()
            t.join(10)
            resp = done.get(timeout=1)
            assert resp.results[0].WhichOneof("result") == "recommendation"  # type: ignore[attr-defined]
    finally:
        running.stop(0.5)


@pytest.mark.parametrize("overrides", [{}, {"tracing": True}, {"auth_tokens": "lane-test-token-0123456789"}], ids=["plain", "traced", "auth"])
def test_single_calls_run_on_their_own_pool_and_streams_and_batches_do_not(overrides: dict[str, object]) -> None:
    """RecommendAdjustments and GetModel run on the `unary` threads (Settings.unary_threads), through
    the interceptors too; stream sessions and batches on their own lanes. Fails if grpc drops the
    per-method thread-pool hook the lanes rely on (api/lanes.py)."""
    running = start(unary_threads=1, **overrides)
    try:
        assert running.servicer is not None
        rec = running.servicer.recommender
        seen: list[tuple[int, str]] = []
        original = rec.recommend

        def spy(model: object, assessments: object, **kw: object) -> object:
            seen.append((len(assessments), threading.current_thread().name))  # type: ignore[arg-type]
            return original(model, assessments, **kw)  # type: ignore[arg-type]

        rec.recommend = spy  # type: ignore[method-assign]
        token = overrides.get("auth_tokens")
        with AlignmentClient.connect(f"127.0.0.1:{running.port}", timeout_s=10, token=token) as c:  # type: ignore[arg-type]
            c.recommend(ASSESSMENT)
            c.recommend_batch([ASSESSMENT, ASSESSMENT])
            assert [r.sequence for r in c.stream([ASSESSMENT])] == [1]
            c.get_model()
        single, batch, stream = seen
        assert single[1].startswith("unary"), seen
        assert batch[0] == 2 and batch[1].startswith("batch"), seen
        assert stream[1].startswith("stream"), seen
    finally:
        running.stop(0.5)


def test_a_busy_single_call_lane_does_not_hold_up_streams_or_batches() -> None:
    """With the one lane thread blocked, a stream session and a batch call are still answered."""
    running = start(unary_threads=1)
    try:
        assert running.servicer is not None
        release = threading.Event()
        entered = threading.Event()
        rec = running.servicer.recommender
        original = rec.recommend

        def blocking(model: object, assessments: object, **kw: object) -> object:
            if threading.current_thread().name.startswith("unary"):
                entered.set()
                release.wait(10)
            return original(model, assessments, **kw)  # type: ignore[arg-type]

        rec.recommend = blocking  # type: ignore[method-assign]
        with AlignmentClient.connect(f"127.0.0.1:{running.port}", timeout_s=10) as c:
            single = threading.Thread(target=lambda: c.recommend(ASSESSMENT))
            single.start()
            try:
                assert entered.wait(5)
                assert [r.sequence for r in c.stream([ASSESSMENT])] == [1]
                assert c.recommend_batch([ASSESSMENT]).results[0].WhichOneof("result") == "recommendation"
            finally:
                release.set()
                single.join(10)
    finally:
        running.stop(0.5)
