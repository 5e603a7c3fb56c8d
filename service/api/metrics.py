"""Prometheus metrics and optional OpenTelemetry tracing for the gRPC edge.

One registry per process, served on its own port (ALIGN_METRICS_PORT). With several workers each
worker serves its own registry on `metrics_port + worker_index` (worker 0 on metrics_port): a scrape
of one port never mixes processes, and counters stay exact without prometheus_client's multiprocess
mode (which cannot export Info/Gauge-set values faithfully and needs a shared directory). Sum over
the ports (or let Prometheus do it: one target per worker port).

No label ever carries patient data: only RPC names, status codes, parameters, model versions and
violation reasons.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

log = logging.getLogger("service.metrics")
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("alignment_rpc_requests", "RPCs handled", ["rpc", "code"], registry=r)
        self.latency = Histogram(
            "alignment_rpc_latency_seconds", "RPC handling time", ["rpc", "code"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.in_flight = Gauge("alignment_rpc_in_flight", "RPCs being handled", registry=r)
        self.model_info = Info("alignment_model", "the served model", registry=r)
        self.model_swaps = Counter("alignment_model_swaps", "models published", registry=r)
        self.model_refused = Counter("alignment_model_refused", "model artifacts refused on load", registry=r)
        self.recommendations = Counter(
            "alignment_recommendations", "adjustments recommended", ["parameter", "direction"], registry=r
        )
        self.no_change = Counter("alignment_no_change", "assessments answered with no change needed", registry=r)
        self.rejected = Counter("alignment_rejected_inputs", "field violations by reason", ["reason"], registry=r)
        self.assessments = Counter("alignment_assessments", "assessments scored", ["rpc"], registry=r)
        self.auth_failures = Counter("alignment_auth_failures", "calls refused by bearer auth", ["code"], registry=r)
        # Fitting records (RecordFitting): written = committed ("stored") or a no-op repeat ("duplicate");
        # refused by reason (invalid record, id conflict, store unavailable, recording off).
        self.records_written = Counter("alignment_records_written", "fitting records acknowledged", ["result"], registry=r)
        self.records_refused = Counter("alignment_records_refused", "fitting records refused", ["reason"], registry=r)
        self._http: Any = None
        # Labelled children by label values: labels() validates and takes a lock on every call
        # (~1 us); the children themselves are thread-safe and never change.
        self._rpc_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._children: dict[tuple[object, ...], Any] = {}

    def observe_rpc(self, rpc: str, code: str, seconds: float) -> None:
        """One handled RPC: its count and latency by RPC and status code."""
        pair = self._rpc_children.get((rpc, code))
        if pair is None:
            pair = self._rpc_children[rpc, code] = (self.requests.labels(rpc, code), self.latency.labels(rpc, code))
        pair[0].inc()
        pair[1].observe(seconds)

    def child(self, metric: Any, *labels: str) -> Any:
        """metric.labels(*labels), cached."""
        key = (id(metric), *labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c

    def set_model(self, name: str, version: str, sha256: str) -> None:
        self.model_info.info({"name": name, "version": version, "sha256": sha256})
        self.model_swaps.inc()

    def serve(self, port: int, address: str = "127.0.0.1") -> int:
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        self._http = server
        return int(server.server_address[1])

    def close(self) -> None:
        """Stop the HTTP endpoint (in-process servers in tests; a real process just exits)."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


# -- OpenTelemetry (optional) ---------------------------------------------------------------------
def tracing_interceptor() -> grpc.ServerInterceptor | None:  # type: ignore[type-arg]
    """A span per RPC when the `opentelemetry` API is importable; None otherwise (Settings.tracing).

    Imported dynamically so the runtime never depends on it (DESIGN 2: the service needs only grpcio,
    protobuf, numpy, onnxruntime, pydantic). Without an SDK configured by the deployment the API
    hands out no-op spans. Span attributes are RPC name and status only: never request content.
    """
    try:
        trace = importlib.import_module("opentelemetry.trace")
    except ImportError:
        return None
    return _TracingInterceptor(trace)


# The SDK would otherwise attach an "exception" event with the traceback of a failed call, whose
# messages name the rejected feature values (patient data). The status is set by finish() instead.
_NO_EXCEPTION_EVENTS = {"record_exception": False, "set_status_on_exception": False}


class _TracingInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, trace: Any) -> None:
        self._trace = trace
        self._tracer = trace.get_tracer("prosthetic_alignment.service")

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],  # type: ignore[type-arg]
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        service, _, rpc = method.lstrip("/").partition("/")
        attrs = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc}
        tracer, kind = self._tracer, self._trace.SpanKind.SERVER
        status_cls = self._trace.Status
        error_code = self._trace.StatusCode.ERROR

        def finish(span: Any, context: grpc.ServicerContext, failed: BaseException | None) -> None:
            code = context.code()  # type: ignore[attr-defined]
            name = code.name if isinstance(code, grpc.StatusCode) else ("UNKNOWN" if failed else "OK")
            span.set_attribute("rpc.grpc.status_code", name)
            if name != "OK":
                span.set_status(status_cls(error_code, name))

        def unary(fn: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
            def wrapped(req: Any, context: grpc.ServicerContext) -> Any:
                with tracer.start_as_current_span(method, kind=kind, attributes=attrs, **_NO_EXCEPTION_EVENTS) as span:
                    failed: BaseException | None = None
                    try:
                        return fn(req, context)
                    except BaseException as exc:
                        failed = exc
                        raise
                    finally:
                        finish(span, context, failed)

            return wrapped

        def streaming(fn: Callable[[Any, grpc.ServicerContext], Iterator[Any]]) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
            def wrapped(req: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with tracer.start_as_current_span(method, kind=kind, attributes=attrs, **_NO_EXCEPTION_EVENTS) as span:
                    failed: BaseException | None = None
                    try:
                        yield from fn(req, context)
                    except BaseException as exc:
                        failed = exc
                        raise
                    finally:
                        finish(span, context, failed)

            return wrapped

        kw = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            traced = unary(handler.unary_unary)
            pool = getattr(handler.unary_unary, "experimental_thread_pool", None)
            if pool is not None:  # keep the method on its own pool (server.on_pool)
                traced.experimental_thread_pool = pool  # type: ignore[attr-defined]
            return grpc.unary_unary_rpc_method_handler(traced, **kw)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kw)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **kw)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **kw)
        return handler
