"""Capacity per kind of call ("lanes"), refused at once when full (issue 15, finding 3).

Health, batches and streams shared one pool of 16 threads: 16 streams that never sent made
`Health/Check` time out for up to 300 s, and 400 concurrent batches 7 of 8 probes over 25 s. A
Kubernetes liveness probe would then restart a pod that only needed to shed load. Now every kind of
call has its own pool (grpc's per-method `experimental_thread_pool`, see server.on_pool):

    lane        methods                                 threads                 refused beyond
    unary       RecommendAdjustments, GetModel          unary_threads           max_concurrent_rpcs
    batch       BatchRecommendAdjustments               max_concurrent_batches + max_queued_batches (same)
    recordings  ExtractFeatures, RecommendFromRecordings 2                      4
    stream      StreamRecommendAdjustments              max_concurrent_streams  (same)
    rpc         admin, anything else (grpc's default)   grpc_threads            grpc_threads
    health      Health.Check/List                       2                       64
    observe     Health.Watch, reflection (long-lived)   8                       8
    reject      the refusals themselves                 2                       never refused

The batch and recordings lanes also bound memory (finding 8): an admitted batch holds its parsed
request (up to 8 MiB on the wire, several times that as objects) while it waits for a slot, and one
recordings call may carry 2,000,000 samples; without the lanes 16 of each could be held at once.

A call's lane is checked when it arrives, in grpc's poll thread before anything is queued
(AdmissionInterceptor): a full lane, or work lanes together holding max_concurrent_rpcs calls, is
answered RESOURCE_EXHAUSTED at once from the `reject` pool, never left waiting in a queue. So an
idle stream holds a thread of the stream lane only (a bounded share), and health has threads no
other call can take. grpc's own global limit (maximum_concurrent_rpcs) counts health too, so it is
only a backstop far above the lanes (Lanes.backstop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

from service.api.metrics import Metrics

HEALTH_THREADS = 2
HEALTH_QUEUE = 64
OBSERVE_STREAMS = 8
REJECT_THREADS = 2
# Recordings are CPU-bound numpy work under one GIL: two at a time use the core, two more may wait.
RECORDINGS_THREADS = 2
RECORDINGS_QUEUE = 4
# Refusals waiting for a `reject` thread, beyond every lane's own bound: past this grpc's global
# limit (maximum_concurrent_rpcs) refuses in its poll thread, health included. Only a flood far
# beyond what the refusal threads keep up with gets there; it keeps that flood's memory bounded.
REJECT_BACKLOG = 1024
# The refusal of a new call once the server drains (UNAVAILABLE: retry on another replica).
DRAINING = "server is draining: retry on another replica"


class LanePool(futures.ThreadPoolExecutor):
    """A thread pool that knows how many of its calls are queued or running (`outstanding`)."""

    def __init__(self, name: str, threads: int, limit: int, *, work: bool = True) -> None:
        super().__init__(max_workers=threads, thread_name_prefix=name)
        self.name = name
        self.limit = limit
        self.work = work  # counts towards max_concurrent_rpcs (health and refusals do not)
        self._outstanding = 0
        self._count_lock = threading.Lock()

    @property
    def outstanding(self) -> int:
        return self._outstanding

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        with self._count_lock:
            self._outstanding += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)  # runs at once if the call already finished
        return future

    def _done(self, _future: object) -> None:
        with self._count_lock:
            self._outstanding -= 1


class Lanes:
    def __init__(self, *, grpc_threads: int, unary_threads: int, max_streams: int, max_batches: int, max_work: int) -> None:
        self.rpc = LanePool("rpc", grpc_threads, grpc_threads)
        self.unary = LanePool("unary", unary_threads, max_work)
        self.batch = LanePool("batch", max_batches, max_batches)
        self.recordings = LanePool("recordings", RECORDINGS_THREADS, RECORDINGS_QUEUE)
        self.stream = LanePool("stream", max_streams, max_streams)
        self.health = LanePool("health", HEALTH_THREADS, HEALTH_QUEUE, work=False)
        self.observe = LanePool("observe", OBSERVE_STREAMS, OBSERVE_STREAMS, work=False)
        self.reject = LanePool("reject", REJECT_THREADS, 1 << 30, work=False)
        self.max_work = max_work
        self.draining = False

    @property
    def pools(self) -> tuple[LanePool, ...]:
        return (self.rpc, self.unary, self.batch, self.recordings, self.stream, self.health, self.observe, self.reject)

    @property
    def backstop(self) -> int:
        """grpc's global limit: every lane full plus REJECT_BACKLOG refusals queued."""
        return sum(p.limit for p in self.pools if p is not self.reject) + REJECT_BACKLOG

    def work_outstanding(self) -> int:
        """Calls queued or running on the work lanes (health, observe streams and refusals excluded)."""
        return sum(p.outstanding for p in self.pools if p.work)

    def refusal(self, lane: LanePool) -> str | None:
        """Why a new call on `lane` is refused now, or None to admit it."""
        if self.draining and lane.work:
            return DRAINING
        if lane.outstanding >= lane.limit:
            return f"server busy: {lane.outstanding} {lane.name} calls in progress (limit {lane.limit}); retry with back-off"
        if lane.work:
            busy = self.work_outstanding()
            if busy >= self.max_work:
                return f"server busy: {busy} calls in progress (max_concurrent_rpcs {self.max_work}); retry with back-off"
        return None

    def shutdown(self) -> None:
        for p in self.pools:
            p.shutdown(wait=False)


def _behaviour(handler: grpc.RpcMethodHandler) -> Any:  # type: ignore[type-arg]
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream


class AdmissionInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Innermost interceptor: admit a call to its lane, or answer RESOURCE_EXHAUSTED at once."""

    def __init__(self, lanes: Lanes, metrics: Metrics) -> None:
        self.lanes = lanes
        self.metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],  # type: ignore[type-arg]
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        handler = continuation(details)
        if handler is None:
            return None
        pool = getattr(_behaviour(handler), "experimental_thread_pool", None)
        lane = pool if isinstance(pool, LanePool) else self.lanes.rpc
        why = self.lanes.refusal(lane)
        if why is None:
            return handler
        return self._refusal(handler, details.method.rsplit("/", 1)[-1], why)

    def _refusal(self, handler: grpc.RpcMethodHandler, rpc: str, message: str) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
        metrics = self.metrics

        code = grpc.StatusCode.UNAVAILABLE if message == DRAINING else grpc.StatusCode.RESOURCE_EXHAUSTED

        def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
            metrics.observe_rpc(rpc, code.name, 0.0)
            context.abort(code, message)

        refuse.experimental_thread_pool = self.lanes.reject  # type: ignore[attr-defined]
        kw: dict[str, Any] = {"request_deserializer": None, "response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(refuse, **kw)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(refuse, **kw)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(refuse, **kw)
        return grpc.stream_stream_rpc_method_handler(refuse, **kw)
