"""AlignmentService: convert the request, call the core, convert back. Nothing clinical here."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

from service._generated.prosthetic_alignment.v1 import alignment_admin_service_pb2 as admin_pb
from service._generated.prosthetic_alignment.v1 import alignment_admin_service_pb2_grpc as admin_grpc
from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2_grpc as spb_grpc
from service.api import convert, recordings
from service.api import records as records_convert
from service.api.decoding import Undecodable
from service.api.errors import abort, clip, code_for, item_error
from service.api.metrics import Metrics
from service.domain import GaitAssessment, Recommendation
from service.errors import AlignmentError, InvalidInputError, LimitExceededError, RecordingDisabledError, Violation
from service.recommender import Recommender
from service.records.recorder import Recorder
from service.registry import ModelRegistry, RefreshResult
from service.validation import MAX_HISTORY_WALKS, Limits, validate_assessment, validate_batch

log = logging.getLogger("service.api")
T = TypeVar("T")


# Deadlines longer than this (or none) wait for a batch slot without a timeout.
_LONGEST_WAIT_S = 86_400.0


class AlignmentServicer(spb_grpc.AlignmentServiceServicer):
    def __init__(
        self,
        registry: ModelRegistry,
        recommender: Recommender,
        metrics: Metrics,
        *,
        limits: Limits,
        max_batch_size: int,
        max_stream_messages: int,
        stream_idle_timeout_s: float = 300.0,
        max_concurrent_batches: int = 2,
        max_response_bytes: int = 8 * 1024 * 1024,
        recorder: Recorder | None = None,
    ) -> None:
        self.registry = registry
        # None: recording is off (no ALIGN_RECORDS_URL).
        self.recorder = recorder
        self.recommender = recommender
        self.metrics = metrics
        self.limits = limits
        self.max_batch_size = max_batch_size
        self.max_response_bytes = max_response_bytes
        # Batch calls beyond this many wait for a slot (within their deadline) instead of running
        # together: same throughput on one core, bounded memory (Settings.max_concurrent_batches).
        self._batch_slots = threading.BoundedSemaphore(max_concurrent_batches)
        self.max_stream_messages = max_stream_messages
        self.stream_idle_timeout_s = stream_idle_timeout_s

    # -- shared ---------------------------------------------------------------------------------
    def _observe(self, rpc: str, context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
        m = self.metrics
        m.in_flight.inc()
        t0 = time.perf_counter()
        code = "OK"
        try:
            if _expired(context):  # queued past its deadline: do no work for it
                code = "DEADLINE_EXCEEDED"
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired before the call was handled")
            return fn()
        except AlignmentError as exc:
            code = _code_name(exc)
            self._count_rejections(exc)
            abort(context, exc)
        except Exception as exc:
            # context.abort raises a plain Exception subclass; keep its status, otherwise INTERNAL.
            if context.code() is not None:  # type: ignore[attr-defined]
                code = context.code().name  # type: ignore[attr-defined]
                raise
            code = "INTERNAL"
            abort(context, exc)
        finally:
            dt = time.perf_counter() - t0
            m.in_flight.dec()
            m.observe_rpc(rpc, code, dt)

    def _count_rejections(self, exc: BaseException) -> None:
        if isinstance(exc, InvalidInputError):
            # One metric update per reason: a bad batch item can carry 256 violations.
            for reason, k in Counter(v.reason for v in exc.violations).items():
                self.metrics.rejected.labels(reason).inc(k)

    def _count(self, rpc: str, recs: list[Recommendation]) -> None:
        m = self.metrics
        m.child(m.assessments, rpc).inc(len(recs))
        if len(recs) == 1:
            r = recs[0]
            if r.no_change_needed:
                m.no_change.inc()
            for a in r.adjustments:
                m.child(m.recommendations, a.parameter.value, "increase" if a.change > 0 else "decrease").inc()
            return
        # A batch: counted locally, then one metric update per label.
        no_change = 0
        per_label: Counter[tuple[str, str]] = Counter()
        for r in recs:
            if r.no_change_needed:
                no_change += 1
            for a in r.adjustments:
                per_label[a.parameter.value, "increase" if a.change > 0 else "decrease"] += 1
        if no_change:
            m.no_change.inc(no_change)
        for (param, way), k in per_label.items():
            m.child(m.recommendations, param, way).inc(k)

    def _validate(self, msg: pb.GaitAssessment) -> GaitAssessment:
        return validate_assessment(convert.assessment_from_proto(msg), self.limits)

    # -- RPCs -----------------------------------------------------------------------------------
    def RecommendAdjustments(
        self, request: spb.RecommendAdjustmentsRequest, context: grpc.ServicerContext
    ) -> spb.RecommendAdjustmentsResponse:
        def run() -> spb.RecommendAdjustmentsResponse:
            model = self.registry.get(request.model_version)
            if not request.HasField("assessment"):
                raise InvalidInputError([Violation("assessment", "assessment is required", "ASSESSMENT_MISSING")])
            a = self._validate(request.assessment)
            recs = self.recommender.recommend(model, [a])
            self._count("RecommendAdjustments", recs)
            resp = spb.RecommendAdjustmentsResponse()
            convert.recommendation_to_proto(recs[0], resp.recommendation)
            return resp

        return self._observe("RecommendAdjustments", context, run)

    def BatchRecommendAdjustments(
        self, request: spb.BatchRecommendAdjustmentsRequest, context: grpc.ServicerContext
    ) -> spb.BatchRecommendAdjustmentsResponse:
        def run() -> spb.BatchRecommendAdjustmentsResponse:
            n = len(request.assessments)
            if n > self.max_batch_size:
                raise InvalidInputError(
                    [
                        Violation(
                            "assessments",
                            f"{n} assessments sent; at most {self.max_batch_size} per batch",
                            "BATCH_TOO_LARGE",
                        )
                    ]
                )
            # Without a deadline gRPC reports a huge remaining time, which threading rejects
            # (OverflowError): wait without a timeout then.
            remaining = context.time_remaining()
            timeout = remaining if remaining is not None and remaining < _LONGEST_WAIT_S else None
            if not self._batch_slots.acquire(timeout=timeout):
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired waiting for a batch slot")
            try:
                return self._batch(request, context)
            finally:
                self._batch_slots.release()

        return self._observe("BatchRecommendAdjustments", context, run)

    def _batch(
        self, request: spb.BatchRecommendAdjustmentsRequest, context: grpc.ServicerContext
    ) -> spb.BatchRecommendAdjustmentsResponse:
        model = self.registry.get(request.model_version)
        msgs = request.assessments
        # The whole batch is validated at once; a bad item gets its own error and the others are
        # still answered (DEVELOPERS: nothing already accepted is lost).
        batch, good, errors = validate_batch(convert.batch_from_proto(msgs), self.limits)
        results: list[Recommendation | pb.ItemError | None] = [None] * len(msgs)
        for i, exc in errors.items():
            self._count_rejections(exc)
            results[i] = item_error(exc, f"assessments[{i}].")
        if batch is not None and _expired(context):
            # Validation of a big batch can outlast the deadline: skip the model work nobody awaits.
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired before the model ran")
        if batch is not None:
            recs = self.recommender.recommend(model, batch, explain=False)
            for rec, i in zip(recs, good, strict=True):
                results[i] = rec
            self._count("BatchRecommendAdjustments", recs)
        items = [(m.assessment_id, r) for m, r in zip(msgs, results, strict=True)]
        resp = convert.batch_response(model.ref, items)
        if resp.ByteSize() > self.max_response_bytes and errors:
            # Over the limit grpc would fail the whole call and the client get nothing: the bad
            # items keep their code, reason and message, and say their field details were dropped.
            for i in errors:
                err = results[i]
                assert isinstance(err, pb.ItemError)
                del err.field_violations[:]
                err.message = clip(err.message, 160) + " (field details dropped: the answer had to fit max_message_bytes)"
            resp = convert.batch_response(model.ref, items)
        size = resp.ByteSize()
        if size > self.max_response_bytes:
            raise LimitExceededError(
                f"the answer to {len(msgs)} assessments would be {size} bytes, over the "
                f"{self.max_response_bytes}-byte message limit: send smaller batches"
            )
        return resp

    def StreamRecommendAdjustments(
        self, request_iterator: Iterator[spb.StreamRecommendAdjustmentsRequest | Undecodable], context: grpc.ServicerContext
    ) -> Iterator[spb.StreamRecommendAdjustmentsResponse]:
        m = self.metrics
        m.in_flight.inc()
        t0 = time.perf_counter()
        code = "OK"
        try:
            fitting = _StreamFitting()
            for seq, req in enumerate(_idle_limited(request_iterator, self.stream_idle_timeout_s, context), start=1):
                if seq > self.max_stream_messages:
                    code = "RESOURCE_EXHAUSTED"
                    abort(context, LimitExceededError(f"stream exceeded {self.max_stream_messages} messages"))
                resp = spb.StreamRecommendAdjustmentsResponse(sequence=seq)
                if isinstance(req, Undecodable):  # its own error answer; the fitting goes on
                    self._count_rejections(req.error)
                    resp.error.CopyFrom(item_error(req.error))
                    yield resp
                    continue
                try:
                    model = self.registry.get(req.model_version)
                    a = self._validate(fitting.complete(req.assessment))
                    fitting.record(req.assessment)
                    recs = self.recommender.recommend(model, [a])
                    self._count("StreamRecommendAdjustments", recs)
                    convert.recommendation_to_proto(recs[0], resp.recommendation)
                except AlignmentError as exc:
                    # An invalid update does not end a live fitting: answer it and keep going.
                    self._count_rejections(exc)
                    resp.error.CopyFrom(item_error(exc))
                except Exception as exc:
                    resp.error.CopyFrom(item_error(exc))
                yield resp
        except _StreamIdle:
            code = "DEADLINE_EXCEEDED"
            context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"stream closed: no message within {self.stream_idle_timeout_s:g} s (stream_idle_timeout_s)",
            )
        finally:
            m.in_flight.dec()
            m.observe_rpc("StreamRecommendAdjustments", code, time.perf_counter() - t0)

    def GetModel(self, request: spb.GetModelRequest, context: grpc.ServicerContext) -> spb.GetModelResponse:
        def run() -> spb.GetModelResponse:
            model = self.registry.get(request.model_version)
            resp = convert.model_info_to_proto(model, sorted(self.registry.snapshot.loaded))
            pol = self.recommender.policy
            convert.parameters_to_proto(resp, pol.min_change, pol.max_step)
            return resp

        return self._observe("GetModel", context, run)


    def ExtractFeatures(self, request: spb.ExtractFeaturesRequest, context: grpc.ServicerContext) -> spb.ExtractFeaturesResponse:
        return self._observe("ExtractFeatures", context, lambda: recordings.extract_features_rpc(request))

    def RecommendFromRecordings(
        self, request: spb.RecommendFromRecordingsRequest, context: grpc.ServicerContext
    ) -> spb.RecommendFromRecordingsResponse:
        def run() -> spb.RecommendFromRecordingsResponse:
            model = self.registry.get(request.model_version)
            extraction, assessment = recordings.assessment_from_recordings(request)
            a = self._validate(assessment)
            recs = self.recommender.recommend(model, [a])
            self._count("RecommendFromRecordings", recs)
            resp = spb.RecommendFromRecordingsResponse(extraction=extraction)
            convert.recommendation_to_proto(recs[0], resp.recommendation)
            return resp

        return self._observe("RecommendFromRecordings", context, run)


    def RecordFitting(self, request: spb.RecordFittingRequest, context: grpc.ServicerContext) -> spb.RecordFittingResponse:
        def run() -> spb.RecordFittingResponse:
            refused = self.metrics.records_refused
            try:
                if self.recorder is None:
                    raise RecordingDisabledError(
                        "recording is off on this server: the operator sets ALIGN_RECORDS_URL (and ALIGN_RECORDS_TOKENS) "
                        "to turn it on"
                    )
                rec = self.recorder.validate(records_convert.record_from_proto(request))
                # Waits on the store's own threads, never the answer lane (service/records/recorder.py).
                res = self.recorder.record(rec, deadline_s=context.time_remaining())
            except AlignmentError as exc:
                self.metrics.child(refused, exc.reason).inc()
                raise
            self.metrics.child(self.metrics.records_written, "duplicate" if res.already_recorded else "stored").inc()
            return records_convert.response_to_proto(res)

        return self._observe("RecordFitting", context, run)


class AdminServicer(admin_grpc.AlignmentAdminServiceServicer):
    """Operator RPCs; the auth interceptor requires an admin token for them when auth is on."""

    def __init__(self, reload: Callable[[], RefreshResult]) -> None:
        self._reload = reload

    def ReloadModels(self, request: admin_pb.ReloadModelsRequest, context: grpc.ServicerContext) -> admin_pb.ReloadModelsResponse:
        try:
            result = self._reload()
        except AlignmentError as exc:
            abort(context, exc)
        return admin_pb.ReloadModelsResponse(
            current_version=result.current_version or "",
            loaded_versions=list(result.loaded),
            refused=[admin_pb.RefusedModel(version=v, reason=r) for v, r in result.refused],
            changed=result.changed,
        )


def _expired(context: grpc.ServicerContext) -> bool:
    remaining = context.time_remaining()
    return (remaining is not None and remaining <= 0) or not context.is_active()


class _StreamFitting:
    """The stream keeps the fitting's walks for the client (DESIGN 3.4), a convenience over the same
    stateless rule: a message with applied_since_reference but no reference_features is answered as if
    it carried the previous message's walk as reference and the walks before that as fitting_history
    (each with the change the next message reported). A message without applied_since_reference starts
    the memory afresh (no known change links it to the walks before). Only validated messages are kept,
    at most validation.MAX_HISTORY_WALKS of history (the oldest are dropped)."""

    def __init__(self) -> None:
        self._walks: list[pb.GaitAssessment] = []  # features and applied_since_reference of each walk

    def complete(self, msg: pb.GaitAssessment) -> pb.GaitAssessment:
        if not msg.applied_since_reference or msg.reference_features or not self._walks:
            return msg
        out = pb.GaitAssessment()
        out.CopyFrom(msg)
        out.reference_features.extend(self._walks[-1].features)
        for walk, nxt in zip(self._walks[:-1], self._walks[1:], strict=True):
            out.fitting_history.add(features=walk.features, applied_after=nxt.applied_since_reference)
        return out

    def record(self, msg: pb.GaitAssessment) -> None:
        if not msg.applied_since_reference:
            self._walks.clear()
        self._walks.append(pb.GaitAssessment(features=msg.features, applied_since_reference=msg.applied_since_reference))
        del self._walks[: -(MAX_HISTORY_WALKS + 1)]


class _StreamIdle(Exception):
    """No request message arrived within stream_idle_timeout_s."""


_END = object()


def _idle_limited(requests: Iterator[T], timeout_s: float, context: grpc.ServicerContext) -> Iterator[T]:
    """Yield from `requests`, raising _StreamIdle when the next message takes longer than timeout_s.

    grpc's request iterator blocks without a timeout, so a helper thread reads it into a one-slot
    queue (one slot keeps grpc's flow control: the client cannot run ahead of the handler). When the
    handler ends, the RPC terminates and grpc wakes the helper's blocked read, so it exits too.
    """
    q: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=1)
    done = threading.Event()

    def put(item: tuple[object, BaseException | None]) -> bool:
        while not done.is_set():
            try:
                q.put(item, timeout=0.25)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for req in requests:
                if not put((req, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # client cancelled: grpc raises from the iterator
            put((_END, exc))

    threading.Thread(target=pump, name="stream-reader", daemon=True).start()
    try:
        while True:
            try:
                item, exc = q.get(timeout=timeout_s)
            except queue.Empty:
                if not context.is_active():  # the client went away: nothing to answer
                    return
                raise _StreamIdle() from None
            if item is _END:
                if exc is not None:
                    raise exc
                return
            yield item  # type: ignore[misc]
    finally:
        done.set()


def _code_name(exc: BaseException) -> str:
    return code_for(exc).name
