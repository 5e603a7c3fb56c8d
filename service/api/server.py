"""Server assembly and lifecycle: build, start, health transitions, reload, drain, workers.

Lifecycle (DESIGN 4, issue 5):
- health is NOT_SERVING until a verified model is loaded and warmed (its golden outputs checked);
- SIGHUP (or a new version in models_dir when watching) reloads; a bad artifact is refused and the
  old model keeps serving;
- SIGTERM/SIGINT: health NOT_SERVING at once (load balancers stop sending), in-flight calls drain for
  up to grace_period_s, then exit 0;
- workers > 1: the supervisor forks before any gRPC object exists (gRPC's fork rules) and every
  worker binds the same port with SO_REUSEPORT; the kernel spreads connections.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2_grpc as spb_grpc
from service.api.auth import BearerAuthInterceptor, load_tokens
from service.api.metrics import Metrics
from service.api.servicer import AlignmentServicer
from service.errors import ModelArtifactError
from service.recommender import Policy, Recommender
from service.registry import ModelRegistry
from service.settings import Settings
from service.validation import Limits

log = logging.getLogger("service.server")
SERVICE_NAME = spb.DESCRIPTOR.services_by_name["AlignmentService"].full_name


def policy_from_settings(s: Settings) -> Policy:
    return Policy.from_values(
        min_change_deg=s.min_change_deg,
        min_change_mm=s.min_change_mm,
        min_change_length_mm=s.min_change_length_mm,
        max_step_deg=s.max_step_deg,
        max_step_mm=s.max_step_mm,
        min_confidence=s.min_confidence,
        deviation_z=s.deviation_z,
        explain=s.explain,
    )


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    registry: ModelRegistry
    health: health.HealthServicer
    metrics: Metrics
    settings: Settings
    metrics_port: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def reload(self) -> None:
        try:
            result = self.registry.refresh()
        except Exception:
            log.exception("model reload failed; the current model keeps serving")
            return
        for version, err in result.refused:
            log.error("model version refused", extra={"model_version": version, "error": err})
        self.set_serving(self.registry.ready)

    def stop(self, grace_s: float | None = None) -> None:
        """Drain: NOT_SERVING first, then stop accepting and wait for in-flight calls."""
        self.set_serving(False)
        grace = self.settings.grace_period_s if grace_s is None else grace_s
        self.server.stop(grace).wait(grace + 1.0)
        self._stop.set()

    def wait(self) -> None:
        self._stop.wait()


def _credentials(s: Settings) -> grpc.ServerCredentials | None:
    if not s.tls_enabled:
        return None
    assert s.tls_cert_file is not None and s.tls_key_file is not None
    key = Path(s.tls_key_file).read_bytes()
    cert = Path(s.tls_cert_file).read_bytes()
    ca = Path(s.tls_client_ca_file).read_bytes() if s.tls_client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def build_server(s: Settings, *, reuse_port: bool = False, serve_metrics: bool = True) -> RunningServer:
    """Load the model, assemble and start the server. Raises ModelArtifactError if no model is valid."""
    registry = ModelRegistry(s.models_dir, s.model_name, pinned_version=s.model_version, max_loaded=s.max_loaded_versions)
    metrics = Metrics()
    registry.on_change(lambda m: metrics.set_model(m.name, m.version, m.sha256))
    result = registry.refresh()
    for version, err in result.refused:
        log.error("model version refused", extra={"model_version": version, "error": err})
    if not registry.ready:
        raise ModelArtifactError(
            f"no valid model under {s.models_dir / s.model_name}"
            + (f" (version {s.model_version})" if s.model_version else "")
            + (f": {result.refused[-1][1]}" if result.refused else "")
        )

    tokens = load_tokens(s.auth_tokens.get_secret_value() if s.auth_tokens else None, s.auth_tokens_file)
    admin = load_tokens(s.admin_tokens.get_secret_value() if s.admin_tokens else None, None)
    interceptors: list[grpc.ServerInterceptor] = [BearerAuthInterceptor(  # type: ignore[type-arg]
        tokens, admin, exempt_health=s.auth_exempt_health)] if (tokens or admin) else []
    options = [
        ("grpc.max_receive_message_length", s.max_message_bytes),
        ("grpc.max_send_message_length", s.max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=s.grpc_threads, thread_name_prefix="rpc"),
        options=options,
        interceptors=interceptors,
        maximum_concurrent_rpcs=s.max_concurrent_rpcs,
    )
    servicer = AlignmentServicer(
        registry,
        Recommender(policy_from_settings(s)),
        metrics,
        limits=Limits(max_features=s.max_features_per_request),
        max_batch_size=s.max_batch_size,
        max_stream_messages=s.max_stream_messages,
    )
    spb_grpc.add_AlignmentServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    creds = _credentials(s)
    port = server.add_secure_port(s.address, creds) if creds else server.add_insecure_port(s.address)
    if port == 0:
        raise OSError(f"cannot bind {s.address}")
    running = RunningServer(server, port, registry, health_servicer, metrics, s)
    running.set_serving(False)
    server.start()
    if serve_metrics and s.metrics_port:
        running.metrics_port = metrics.serve(s.metrics_port, s.metrics_address)
    current = registry.get()
    running.set_serving(True)
    log.info(
        "serving",
        extra={
            "port": port,
            "tls": s.tls_enabled,
            "mtls": s.tls_client_ca_file is not None,
            "auth": bool(interceptors),
            "model_name": current.name,
            "model_version": current.version,
            "pid": os.getpid(),
        },
    )
    if not s.tls_enabled and not s.is_loopback:
        log.warning("plaintext on a non-loopback address (allow_insecure_remote is set)")
    return running


def _watch(running: RunningServer, interval_s: float) -> None:
    while not running._stop.wait(interval_s):
        running.reload()


def serve_one(s: Settings, *, reuse_port: bool = False) -> int:
    """Run one server process until SIGTERM/SIGINT; return the exit code."""
    try:
        running = build_server(s, reuse_port=reuse_port)
    except (ModelArtifactError, OSError) as exc:
        log.error("startup failed", extra={"error": str(exc)})
        return 2

    def on_term(signum: int, _frame: FrameType | None) -> None:
        log.info("draining", extra={"signal": signal.Signals(signum).name, "grace_s": s.grace_period_s})
        threading.Thread(target=running.stop, name="drain", daemon=True).start()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=running.reload, name="reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    if s.watch_models_interval_s > 0:
        threading.Thread(target=_watch, args=(running, s.watch_models_interval_s), name="watch", daemon=True).start()
    print(f"listening on port {running.port}", flush=True)
    running.wait()
    log.info("stopped")
    return 0


def serve(s: Settings) -> int:
    """Single process, or a supervisor of `workers` forked processes sharing the port."""
    workers = s.workers
    if workers > 1 and s.address.rsplit(":", 1)[-1] == "0":
        log.warning("port 0 with several workers cannot share a port: running one worker")
        workers = 1
    if workers == 1:
        return serve_one(s)
    return _supervise(s, workers)


def _supervise(s: Settings, workers: int) -> int:
    children: dict[int, int] = {}

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # child: no gRPC object exists yet in this process
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            code = 1
            try:
                code = serve_one(s, reuse_port=True)
            finally:
                os._exit(code)
        children[pid] = slot

    for slot in range(workers):
        spawn(slot)
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    worst = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        finished = children.pop(pid, None)
        code = os.waitstatus_to_exitcode(status)
        worst = max(worst, abs(code))
        if not stopping and finished is not None:
            if code == 2:  # startup failure: restarting would loop
                log.error("worker failed to start; stopping", extra={"worker": finished})
                forward(signal.SIGTERM, None)
                stopping = True
                continue
            log.error("worker exited; restarting", extra={"worker": finished, "exit_code": code})
            time.sleep(0.2)
            spawn(finished)
    return 0 if stopping and worst == 0 else worst
