"""Prometheus metrics: one registry per process, served on its own port (ALIGN_METRICS_PORT).

No label ever carries patient data: only RPC names, status codes, parameters, model versions and
violation reasons.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

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
        self.recommendations = Counter(
            "alignment_recommendations", "adjustments recommended", ["parameter", "direction"], registry=r
        )
        self.no_change = Counter("alignment_no_change", "assessments answered with no change needed", registry=r)
        self.rejected = Counter("alignment_rejected_inputs", "field violations by reason", ["reason"], registry=r)
        self.assessments = Counter("alignment_assessments", "assessments scored", ["rpc"], registry=r)

    def set_model(self, name: str, version: str, sha256: str) -> None:
        self.model_info.info({"name": name, "version": version, "sha256": sha256})
        self.model_swaps.inc()

    def serve(self, port: int, address: str = "127.0.0.1") -> int:
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return int(server.server_address[1])
