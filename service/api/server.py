"""Server assembly and lifecycle: build, start, health transitions, reload, drain, workers.

Lifecycle (DESIGN 4, issue 5):
- health is NOT_SERVING until a verified model is loaded and warmed (its golden outputs checked);
- SIGHUP, a new version in models_dir (when watching) or the admin RPC `ReloadModels` reloads; a bad
  artifact is refused and the old model keeps serving;
- SIGTERM/SIGINT: health NOT_SERVING at once (load balancers watching health stop sending), then
  after `shutdown_delay_s` new calls are refused and in-flight calls drain for up to
  `grace_period_s`; exit 0;
- workers > 1: the supervisor forks before any gRPC object exists (gRPC's fork rules: a process that
  has created a channel or server must not fork) and every worker binds the same port with
  SO_REUSEPORT; the kernel spreads connections. The supervisor forwards SIGTERM/SIGINT/SIGHUP to the
  workers and restarts a worker that dies.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from service._generated.prosthetic_alignment.v1 import alignment_admin_service_pb2 as admin_pb
from service._generated.prosthetic_alignment.v1 import alignment_admin_service_pb2_grpc as admin_grpc
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2_grpc as spb_grpc
from service.api import reflection as commented_reflection
from service.api.auth import BearerAuthInterceptor, ClientIdentityInterceptor, load_tokens
from service.api.decoding import decoding_handler
from service.api.lanes import AdmissionInterceptor, Lanes
from service.api.metrics import Metrics, tracing_interceptor
from service.api.servicer import AdminServicer, AlignmentServicer
from service.errors import ConfigurationError, DependencyMissingError, ModelArtifactError, StoreUnavailableError
from service.recommender import Policy, Recommender
from service.records import RECORDS_EXTRA_HINT
from service.records.recorder import Recorder
from service.registry import ModelRegistry, RefreshResult
from service.settings import Settings
from service.validation import Limits

log = logging.getLogger("service.server")
SERVICE_NAME = spb.DESCRIPTOR.services_by_name["AlignmentService"].full_name
ADMIN_SERVICE_NAME = admin_pb.DESCRIPTOR.services_by_name["AlignmentAdminService"].full_name
EXIT_STARTUP_FAILED = 2


# Young-generation GC threshold while serving. Python's default (700) runs a collection every 700
# container allocations; answering a batch of 1000 allocates ~100,000 (recommendations, their
# tuples and proto wrappers), so the collector ran ~150 times per call and took 10-20% of its CPU,
# finding nothing: these objects are freed by reference counting. 20,000 cuts that to ~2%.
GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Freeze what startup allocated (modules, catalog, model tables: never garbage) out of the
    collector's scans, and collect the young generation less often (see GC_GEN0_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


_M_ARENA_MAX = -8  # glibc malloc.h


def limit_malloc_arenas(n: int) -> bool:
    """Cap glibc's malloc arenas for the threads created from here on (Settings.malloc_arenas).

    Returns False where there is no glibc mallopt (musl, macOS) or n is 0: the default then stays."""
    if n <= 0 or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, n))
    except (OSError, AttributeError):
        return False


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


class HealthServicer(health.HealthServicer):
    """grpc's health servicer, plus ending open Watch streams when draining.

    A Watch stream never ends on its own, so without this every watching load balancer would hold
    the drain for the whole grace period (and a handler thread with it).
    """

    def end_watches(self) -> None:
        # Private state of grpcio-health-checking (pinned with grpcio); a None response is its own
        # way of closing a watcher. Guarded so a future layout change only loses this nicety.
        lock = getattr(self, "_lock", None)
        callbacks = getattr(self, "_send_response_callbacks", None)
        if lock is None or not isinstance(callbacks, dict):
            return
        with lock:
            pending = [cb for cbs in callbacks.values() for cb in list(cbs)]
        for cb in pending:
            cb(None)


# The quick, single-assessment RPCs that get their own small pool (Settings.unary_threads).
UNARY_LANE_METHODS = ("RecommendAdjustments", "GetModel")


def on_pool(fn: Callable[[Any, grpc.ServicerContext], Any], pool: futures.ThreadPoolExecutor) -> Callable[[Any, grpc.ServicerContext], Any]:
    """`fn` marked to run on `pool` instead of the server's pool.

    grpc's sync server looks for `experimental_thread_pool` on a method's behaviour
    (grpc/_server.py, _select_thread_pool_for_behavior); interceptors that wrap a behaviour carry
    the mark over (metrics.tracing_interceptor), and tests/integration checks the call really runs
    on the pool's threads, so a grpc upgrade that drops the hook is caught.
    """

    def call(request: Any, context: grpc.ServicerContext) -> Any:
        return fn(request, context)

    call.experimental_thread_pool = pool  # type: ignore[attr-defined]
    return call


class _OnPool:
    """The servicer as the generated registration sees it, with methods marked for their pools."""

    def __init__(self, servicer: object, pools: Mapping[str, futures.ThreadPoolExecutor]) -> None:
        self._servicer = servicer
        self._marked = {m: on_pool(getattr(servicer, m), pool) for m, pool in pools.items()}

    def __getattr__(self, name: str) -> Any:
        marked = self._marked.get(name)
        return marked if marked is not None else getattr(self._servicer, name)


# Stream handlers that answer a message that does not parse with their own error item (and go on).
UNDECODABLE_ANSWERED = ("StreamRecommendAdjustments",)


class _Registration:
    """Stands in for the server while the generated code registers a service, so its handlers can be
    wrapped (requests decoded in the handler, api/decoding.py) before the real server gets them."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, _handlers: object) -> None:
        pass  # the same handlers arrive through add_registered_method_handlers

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]) -> None:
        self.service, self.handlers = service, dict(handlers)


def _add_service(
    server: grpc.Server,
    servicer: object,
    add_to_server: Callable[[Any, Any], None] = spb_grpc.add_AlignmentServiceServicer_to_server,
) -> None:
    """Register a generated service with its requests decoded in the handlers (api/decoding.py)."""
    reg = _Registration()
    add_to_server(servicer, reg)
    if not reg.handlers:  # generated by grpcio-tools older than the pinned one: fail loudly at startup
        raise RuntimeError(f"the generated registration of {servicer!r} did not use add_registered_method_handlers")
    for name, h in reg.handlers.items():
        reg.handlers[name] = decoding_handler(h, answers_undecodable=name in UNDECODABLE_ANSWERED)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(reg.service, reg.handlers),))
    server.add_registered_method_handlers(reg.service, reg.handlers)  # type: ignore[attr-defined]


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    registry: ModelRegistry
    health: HealthServicer
    metrics: Metrics
    settings: Settings
    metrics_port: int | None = None
    worker: int = 0
    servicer: AlignmentServicer | None = None
    lanes: Lanes | None = None
    recorder: Recorder | None = None
    # Set when this process is one of several workers: the admin RPC then asks the supervisor to
    # make the whole group reload (a reload in one worker alone would leave the others stale).
    supervisor_pid: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _stop_lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: bool = False

    def set_serving(self, serving: bool) -> None:
        # After enter_graceful_shutdown the health servicer ignores this: a reload racing a drain
        # can never flip a draining server back to SERVING.
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def reload(self) -> RefreshResult | None:
        """SIGHUP / watcher reload. Never raises: whatever was serving keeps serving."""
        try:
            result = self.registry.refresh()
        except Exception:
            log.exception("model reload failed; the current model keeps serving")
            return None
        self.set_serving(self.registry.ready)
        return result

    def admin_reload(self) -> RefreshResult:
        """`AlignmentAdminService.ReloadModels`: reload here (to answer with the outcome), then the group."""
        result = self.registry.refresh()
        self.set_serving(self.registry.ready)
        if self.supervisor_pid is not None and os.getppid() == self.supervisor_pid:
            # The supervisor forwards SIGHUP to every worker (this one too: a second refresh finds
            # nothing changed and is a no-op). getppid() guards against signalling a reused pid.
            os.kill(self.supervisor_pid, signal.SIGHUP)
        log.info(
            "reload requested over admin RPC",
            extra={"model_version": result.current_version, "changed": result.changed, "refused": len(result.refused)},
        )
        return result

    def stop(self, grace_s: float | None = None, *, delay_s: float = 0.0) -> None:
        """Drain: NOT_SERVING first, optionally keep serving `delay_s`, then stop accepting and wait."""
        with self._stop_lock:
            first = not self._stopping
            self._stopping = True
        if not first:  # a second SIGTERM, or stop() after the signal: just wait for the first drain
            self._stop.wait()
            return
        t0 = time.monotonic()
        self.health.enter_graceful_shutdown()
        if delay_s > 0:
            # Load balancers that watch health (or Kubernetes endpoints) need a moment to stop
            # routing here; until then new calls are still answered normally.
            time.sleep(delay_s)
        self.health.end_watches()  # they have seen NOT_SERVING; do not let them hold the drain
        grace = self.settings.grace_period_s if grace_s is None else grace_s
        deadline = time.monotonic() + grace
        if self.lanes is not None:
            # Drain before grpc's own stop: stopping grpc with calls still running reset clients that
            # were still reading a large answer (measured: 1 in 4 drains lost one of four 2.6 MB batch
            # answers to "Connection reset by peer"; draining first, 0 in 36). New calls are refused
            # here (UNAVAILABLE: retry on another replica) and the admitted ones finish.
            self.lanes.draining = True
            while self.lanes.work_outstanding() and time.monotonic() < deadline:
                time.sleep(0.01)
        # grpc refuses new calls from here on and cancels whatever is still running after the grace left.
        remaining = max(0.0, deadline - time.monotonic())
        self.server.stop(remaining).wait(remaining + 1.0)
        if self.lanes is not None:
            self.lanes.shutdown()
        if self.recorder is not None:  # after the drain: writes in flight have committed or failed
            self.recorder.close()
        self.metrics.close()
        log.info("drained", extra={"drain_s": round(time.monotonic() - t0, 3), "worker": self.worker})
        self._stop.set()

    def wait(self) -> None:
        self._stop.wait()


def check_tls(s: Settings) -> None:
    """Raise ConfigurationError unless the TLS files load and the key matches the certificate.

    grpc only finds out when binding, and then says "Failed to bind to address" (issue 15): the
    standard library's TLS context names the actual problem."""
    if not s.tls_enabled:
        return
    import ssl

    assert s.tls_cert_file is not None and s.tls_key_file is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(s.tls_cert_file, s.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"TLS certificate {s.tls_cert_file} / key {s.tls_key_file} unusable: {exc.strerror or exc}"
            + (" (the key does not belong to the certificate)" if "mismatch" in str(exc) else "")
        ) from None
    if s.tls_client_ca_file is not None:
        try:
            ctx.load_verify_locations(s.tls_client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"client CA {s.tls_client_ca_file} unusable: {exc.strerror or exc}") from None


def _credentials(s: Settings) -> grpc.ServerCredentials | None:
    if not s.tls_enabled:
        return None
    check_tls(s)
    assert s.tls_cert_file is not None and s.tls_key_file is not None
    key = Path(s.tls_key_file).read_bytes()
    cert = Path(s.tls_cert_file).read_bytes()
    ca = Path(s.tls_client_ca_file).read_bytes() if s.tls_client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def _tokens(s: Settings) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(client, admin, records tokens); ConfigurationError for a short token or an unreadable file."""
    try:
        tokens = load_tokens(s.auth_tokens.get_secret_value() if s.auth_tokens else None, s.auth_tokens_file)
        admin = load_tokens(s.admin_tokens.get_secret_value() if s.admin_tokens else None, None)
        records = load_tokens(s.records_tokens.get_secret_value() if s.records_tokens else None, None)
    except (ValueError, OSError) as exc:
        raise ConfigurationError(f"bearer tokens: {exc}") from None
    return tokens, admin, records


def check_port_free(s: Settings) -> None:
    """Raise ConfigurationError when something already listens on the configured address.

    The workers bind with SO_REUSEPORT, which also lets a second, forgotten instance (maybe on
    another model version) bind the same port silently and take half the connections (issue 15).
    A probe bound without SO_REUSEPORT fails while any socket listens there, ours or not; with
    SO_REUSEADDR, connections of a stopped instance in TIME_WAIT do not count. Port 0 is always
    free; `allow_shared_port` skips the probe for operators who want two processes on one port.
    """
    import socket

    host, _, port_text = s.address.rpartition(":")
    port = int(port_text) if port_text.isdigit() else -1
    if port <= 0 or s.allow_shared_port:
        return
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot resolve address {s.address!r}: {exc}") from None
    for family, kind, proto, _name, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot bind {s.address}: {exc.strerror or exc} (is another instance running? "
                    "set ALIGN_ALLOW_SHARED_PORT=true to share the port on purpose)"
                ) from None


def preflight(s: Settings) -> None:
    """Every start-up check that needs no model and no gRPC object: run before any worker is forked,
    so a configuration error exits 2 with one line instead of entering the restart loop."""
    _tokens(s)
    check_tls(s)
    check_port_free(s)


def grpc_server(
    s: Settings,
    reuse_port: bool,
    interceptors: Sequence[grpc.ServerInterceptor] = (),  # type: ignore[type-arg]
    lanes: Lanes | None = None,
) -> grpc.Server:
    """The grpc.Server every serving process uses (and bench/echo_server.py, so the bare echo
    ceiling is measured with exactly the same framework settings)."""
    options = [
        ("grpc.max_receive_message_length", s.max_message_bytes),
        ("grpc.max_send_message_length", s.max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]
    return grpc.server(
        lanes.rpc if lanes is not None else futures.ThreadPoolExecutor(max_workers=s.grpc_threads, thread_name_prefix="rpc"),
        options=options,
        interceptors=list(interceptors),
        # Past this many in-flight calls RESOURCE_EXHAUSTED at once instead of queueing without
        # bound (back-pressure the client can see and retry elsewhere). With lanes the admission
        # interceptor does it per lane, and grpc's global count (which would refuse health checks
        # too) is only a backstop above them.
        maximum_concurrent_rpcs=lanes.backstop if lanes is not None else s.max_concurrent_rpcs,
    )


def build_server(
    s: Settings,
    *,
    reuse_port: bool = False,
    serve_metrics: bool = True,
    worker: int = 0,
    supervisor_pid: int | None = None,
    migrate_records: bool = True,
) -> RunningServer:
    """Load the model, assemble and start the server. Raises ModelArtifactError if no model is valid,
    DependencyMissingError or StoreUnavailableError when recording is on and the store cannot open."""
    registry = ModelRegistry(s.models_dir, s.model_name, pinned_version=s.model_version, max_loaded=s.max_loaded_versions)
    metrics = Metrics()
    registry.on_change(lambda m: metrics.set_model(m.name, m.version, m.sha256))
    registry.on_refused(lambda _version, _err: metrics.model_refused.inc())
    result = registry.refresh()
    if not registry.ready:
        raise ModelArtifactError(
            f"no valid model under {s.models_dir / s.model_name}"
            + (f" (version {s.model_version})" if s.model_version else "")
            + (f": {result.refused[-1][1]}" if result.refused else "")
        )

    tokens, admin, records_tokens = _tokens(s)
    recorder = open_recorder(s, migrate_records) if s.records_url is not None else None
    interceptors: list[grpc.ServerInterceptor] = []  # type: ignore[type-arg]
    tracer = tracing_interceptor() if s.tracing else None
    if s.tracing and tracer is None:  # the settings checked the package; its trace module did not import
        raise DependencyMissingError("tracing is on but opentelemetry.trace cannot be imported")
    if tracer is not None:  # outermost, so refused calls are traced too
        interceptors.append(tracer)
    if s.client_allowed_names:
        interceptors.append(
            ClientIdentityInterceptor(
                s.client_allowed_names,
                exempt_health=s.auth_exempt_health,
                on_denied=lambda c: metrics.auth_failures.labels(c.name).inc(),
            )
        )
    if tokens or admin or records_tokens:
        interceptors.append(
            BearerAuthInterceptor(
                tokens,
                admin,
                exempt_health=s.auth_exempt_health,
                on_denied=lambda c: metrics.auth_failures.labels(c.name).inc(),
                records_tokens=records_tokens,
                on_records_denied=lambda c: metrics.records_refused.labels(c.name).inc(),
            )
        )
    lanes = Lanes(
        grpc_threads=s.grpc_threads,
        unary_threads=s.unary_threads,
        max_streams=s.max_concurrent_streams,
        max_batches=s.max_concurrent_batches + s.max_queued_batches,
        max_work=s.max_concurrent_rpcs,
    )
    interceptors.append(AdmissionInterceptor(lanes, metrics))  # innermost: sees the method's lane
    server = grpc_server(s, reuse_port, interceptors, lanes)
    running = RunningServer(
        server, 0, registry, HealthServicer(), metrics, s, worker=worker, supervisor_pid=supervisor_pid, lanes=lanes
    )
    servicer = AlignmentServicer(
        registry,
        Recommender(policy_from_settings(s)),
        metrics,
        limits=Limits(max_features=s.max_features_per_request),
        max_batch_size=s.max_batch_size,
        max_concurrent_batches=s.max_concurrent_batches,
        max_response_bytes=s.max_message_bytes,
        max_stream_messages=s.max_stream_messages,
        stream_idle_timeout_s=s.stream_idle_timeout_s,
        recorder=recorder,
    )
    running.servicer = servicer
    running.recorder = recorder
    lane_of = {m: lanes.unary for m in UNARY_LANE_METHODS} | {
        "StreamRecommendAdjustments": lanes.stream,
        "BatchRecommendAdjustments": lanes.batch,
        "ExtractFeatures": lanes.recordings,
        "RecommendFromRecordings": lanes.recordings,
    }
    _add_service(server, _OnPool(servicer, lane_of))
    _add_service(server, AdminServicer(running.admin_reload), admin_grpc.add_AlignmentAdminServiceServicer_to_server)
    health_lanes = {"Check": lanes.health, "List": lanes.health, "Watch": lanes.observe}
    _add_service(server, _OnPool(running.health, health_lanes), health_pb2_grpc.add_HealthServicer_to_server)
    # Reflection serves the protos' comments (service/api/reflection.py) on its own lane.
    reflector = reflection.ReflectionServicer(
        (SERVICE_NAME, ADMIN_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
        pool=commented_reflection.CommentedPool.default(),
    )
    _add_service(
        server,
        _OnPool(reflector, {"ServerReflectionInfo": lanes.observe}),
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server,
    )

    creds = _credentials(s)
    try:
        port = server.add_secure_port(s.address, creds) if creds else server.add_insecure_port(s.address)
    except RuntimeError as exc:  # grpc's "Failed to bind to address ..."
        raise OSError(f"cannot bind {s.address}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot bind {s.address}")
    running.port = port
    running.set_serving(False)
    server.start()
    if serve_metrics and s.metrics_port:
        running.metrics_port = metrics.serve(s.metrics_port + worker, s.metrics_address)
    current = registry.get()
    running.set_serving(True)
    log.info(
        "serving",
        extra={
            "port": port,
            "tls": s.tls_enabled,
            "mtls": s.tls_client_ca_file is not None,
            "auth": bool(tokens or admin or records_tokens),
            "recording": recorder.store.backend if recorder is not None else "off",
            "tracing": tracer is not None,
            "metrics_port": running.metrics_port or 0,
            "model_name": current.name,
            "model_version": current.version,
            "worker": worker,
            "pid": os.getpid(),
        },
    )
    if not s.tls_enabled and not s.is_loopback:
        log.warning("plaintext on a non-loopback address (allow_insecure_remote is set): use TLS outside a trusted network")
    if not (tokens or admin) and not s.is_loopback:
        log.warning("no bearer tokens configured on a non-loopback address: every client may call every RPC")
    return running


def open_recorder(s: Settings, migrate: bool = True) -> Recorder:
    """The record store of ALIGN_RECORDS_URL, migrated to the newest schema unless `migrate` is False
    (workers: the supervisor migrated once before forking)."""
    assert s.records_url is not None
    try:
        return Recorder.open(
            s.records_url.get_secret_value(),
            threads=s.records_threads,
            timeout_s=s.records_timeout_s,
            limits=Limits(max_features=s.max_features_per_request),
            run_migrations=migrate,
        )
    except ImportError as exc:
        raise DependencyMissingError(f"{RECORDS_EXTRA_HINT} ({exc.name} missing)") from None
    except ValueError as exc:
        raise DependencyMissingError(f"records_url: {exc}") from None
    except Exception as exc:  # the driver's connection errors: the store is not reachable
        raise StoreUnavailableError(f"record store unreachable at startup: {type(exc).__name__}: {exc}") from None


def migrate_record_store(s: Settings) -> None:
    """Once per deployment start, before workers fork (each would otherwise race the others)."""
    assert s.records_url is not None
    try:
        from service.records.store import migrate
    except ImportError as exc:
        raise DependencyMissingError(f"{RECORDS_EXTRA_HINT} ({exc.name} missing)") from None
    try:
        migrate(s.records_url.get_secret_value())
    except Exception as exc:
        raise StoreUnavailableError(f"record store migration failed: {type(exc).__name__}: {exc}") from None


def _watch(running: RunningServer, interval_s: float) -> None:
    while not running._stop.wait(interval_s):
        running.reload()


def _announce(port: int) -> None:
    """The `listening on port N` line that launchers read, in one write(2).

    Workers share stdout, and print() writes the text and its newline separately: two workers
    starting together produced "listening on port Nlistening on port N" on one line (seen in CI, and
    3 times in 40 starts). One write of a short line to a pipe is atomic.
    """
    line = f"listening on port {port}\n"
    sys.stdout.flush()
    try:
        os.write(sys.stdout.fileno(), line.encode())
    except (AttributeError, OSError, ValueError):  # stdout replaced by an object without a descriptor
        sys.stdout.write(line)
        sys.stdout.flush()


def serve_one(
    s: Settings, *, reuse_port: bool = False, worker: int = 0, supervisor_pid: int | None = None, migrate_records: bool = True
) -> int:
    """Run one server process until SIGTERM/SIGINT; return the exit code."""
    holder: list[RunningServer] = []
    pending_hup = threading.Event()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        if not holder:  # still starting: reload once started (the scan may have missed the new version)
            pending_hup.set()
            return
        threading.Thread(target=holder[0].reload, name="reload", daemon=True).start()

    # Installed before the (slow) model load so a SIGHUP during startup is not lost or fatal.
    signal.signal(signal.SIGHUP, on_hup)
    t0 = time.perf_counter()
    limit_malloc_arenas(s.malloc_arenas)  # before build_server starts grpc's threads
    try:
        running = build_server(
            s, reuse_port=reuse_port, worker=worker, supervisor_pid=supervisor_pid, migrate_records=migrate_records
        )
    except (ModelArtifactError, DependencyMissingError, ConfigurationError, StoreUnavailableError, OSError) as exc:
        log.error("startup failed", extra={"error": str(exc), "worker": worker})
        return EXIT_STARTUP_FAILED
    holder.append(running)
    tune_gc()
    log.info("startup", extra={"startup_s": round(time.perf_counter() - t0, 3), "worker": worker})

    def on_term(signum: int, _frame: FrameType | None) -> None:
        log.info("draining", extra={"signal": signal.Signals(signum).name, "grace_s": s.grace_period_s, "worker": worker})
        threading.Thread(target=running.stop, kwargs={"delay_s": s.shutdown_delay_s}, name="drain", daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if pending_hup.is_set():
        running.reload()
    if s.watch_models_interval_s > 0:
        threading.Thread(target=_watch, args=(running, s.watch_models_interval_s), name="watch", daemon=True).start()
    _announce(running.port)
    running.wait()
    log.info("stopped", extra={"worker": worker})
    return 0


def serve(s: Settings) -> int:
    """Single process, or a supervisor of `workers` forked processes sharing the port."""
    try:
        preflight(s)
    except ConfigurationError as exc:
        log.error("startup failed", extra={"error": str(exc)})
        return EXIT_STARTUP_FAILED
    workers = s.workers
    if workers > 1 and s.address.rsplit(":", 1)[-1] == "0":
        log.warning("port 0 with several workers cannot share a port: running one worker")
        workers = 1
    if workers == 1:
        return serve_one(s)
    if s.records_url is not None:
        try:
            migrate_record_store(s)
        except (DependencyMissingError, StoreUnavailableError) as exc:
            log.error("startup failed", extra={"error": str(exc)})
            return EXIT_STARTUP_FAILED
    return _supervise(s, workers)


def _supervise(s: Settings, workers: int) -> int:
    """Fork `workers` servers, forward signals, restart crashed workers; exit 0 after a clean drain.

    The supervisor itself never creates a gRPC object, so forking it (also later, to replace a
    crashed worker) is safe.
    """
    supervisor_pid = os.getpid()
    children: dict[int, tuple[int, float, int]] = {}  # pid -> (slot, started monotonic, generation)
    failures = [0] * workers  # consecutive quick deaths per slot, for back-off

    def spawn(slot: int, generation: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                # Drop the supervisor's handlers: forward() would act on this process's copy of
                # `children`. serve_one installs the worker's own handlers.
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                code = serve_one(s, reuse_port=True, worker=slot, supervisor_pid=supervisor_pid, migrate_records=False)
            except BaseException:
                log.exception("worker crashed", extra={"worker": slot})
            finally:
                os._exit(code)
        children[pid] = (slot, time.monotonic(), generation)
        log.info("worker started", extra={"worker": slot, "worker_pid": pid})

    stopping = False
    startup_failed = False

    def kill_stragglers() -> None:
        for pid in list(children):
            log.error("worker did not drain in time; killing", extra={"worker_pid": pid})
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT) and not stopping:
            stopping = True
            log.info("supervisor draining workers", extra={"signal": signal.Signals(signum).name})
            # Backstop: a worker stuck past its own grace period must not block the exit forever.
            timer = threading.Timer(s.shutdown_delay_s + s.grace_period_s + 5.0, kill_stragglers)
            timer.daemon = True
            timer.start()
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for slot in range(workers):
        spawn(slot, 0)
    worst = 0
    while children:
        try:
            pid, status = os.wait()  # PEP 475: retried after a signal handler runs
        except ChildProcessError:
            break
        entry = children.pop(pid, None)
        if entry is None:
            continue
        slot, started, generation = entry
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            # -SIGTERM: the worker was still starting (default handler) and had served nothing.
            if code not in (0, -signal.SIGTERM):
                worst = max(worst, abs(code))
            continue
        if code == EXIT_STARTUP_FAILED and generation == 0:
            # The first start failed (no valid model, port taken...): restarting would only loop.
            log.error("worker failed to start; stopping", extra={"worker": slot})
            startup_failed = True
            forward(signal.SIGTERM, None)
            continue
        lived = time.monotonic() - started
        failures[slot] = failures[slot] + 1 if lived < 5.0 else 0
        backoff = min(0.2 * 2 ** max(failures[slot] - 1, 0), 10.0)
        log.error("worker exited; restarting", extra={"worker": slot, "exit_code": code, "restart_in_s": backoff})
        time.sleep(backoff)
        if not stopping:
            spawn(slot, generation + 1)
    if startup_failed:
        return EXIT_STARTUP_FAILED
    return worst
