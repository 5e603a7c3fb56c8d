"""Would grpc.aio lower the per-call cost? Echo and service, sync and aio, measured in one run.

    python -m bench.aio_probe [--duration 3] [--rounds 3]

Four servers, each one process on loopback, loaded in turn (order rotated every round) by h2load with
the bench's RecommendAdjustments request at c=1 and c=16:
- echo, sync: `python -m bench.echo_server` (what `python -m bench` measures);
- echo, aio: the same servicer semantics (parse the request, return the canned response) on
  `grpc.aio.server` with the same options, limits and health service;
- service, sync: `python -m service --workers 1`;
- service, aio: the service's own AlignmentServicer (registry, recommender, metrics; validation,
  model, response building all unchanged) called from `async def` handlers on `grpc.aio.server` with
  the same options. This is a probe of the framework's cost, not a port: auth, tracing, drain,
  stream idle timeout and reload are not wired here (the handler is CPU-bound and never awaits).

Reports p50 latency and server CPU-us per request (from /proc) per server, and the ratios the issue
targets (service/echo) for each framework. Everything is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bench import h2load, payloads, procs
from bench.equivalence import LiveCallContext
from bench.run import start_echo, start_service
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RPC = f"/{payloads.SERVICE}/RecommendAdjustments"



def _options(s: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", s.max_message_bytes),
        ("grpc.max_send_message_length", s.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]


async def _serve_aio(kind: str, response_file: Path | None) -> None:
    from service._generated.prosthetic_alignment.v1 import alignment_service_pb2_grpc as spb_grpc
    from service.api.server import tune_gc

    s = Settings(address="127.0.0.1:0", workers=1, models_dir=ROOT / "models")
    server = grpc.aio.server(options=_options(s), maximum_concurrent_rpcs=s.max_concurrent_rpcs)
    handler: Any
    if kind == "echo":
        assert response_file is not None
        canned = spb.RecommendAdjustmentsResponse.FromString(response_file.read_bytes())

        class Echo(spb_grpc.AlignmentServiceServicer):
            async def RecommendAdjustments(self, request: Any, context: Any) -> Any:
                return canned

        handler = Echo()
    else:
        from service.api.metrics import Metrics
        from service.api.server import policy_from_settings
        from service.api.servicer import AlignmentServicer
        from service.recommender import Recommender
        from service.registry import ModelRegistry
        from service.validation import Limits

        registry = ModelRegistry(
            s.models_dir, s.model_name, pinned_version=s.model_version, max_loaded=s.max_loaded_versions
        )
        registry.refresh()
        svc = AlignmentServicer(
            registry,
            Recommender(policy_from_settings(s)),
            Metrics(),
            limits=Limits(max_features=s.max_features_per_request),
            max_batch_size=s.max_batch_size,
            max_stream_messages=s.max_stream_messages,
        )
        ctx = LiveCallContext()

        class Service(spb_grpc.AlignmentServiceServicer):
            async def RecommendAdjustments(self, request: Any, context: Any) -> Any:
                return svc.RecommendAdjustments(request, ctx)  # type: ignore[arg-type]

        handler = Service()
    spb_grpc.add_AlignmentServiceServicer_to_server(handler, server)  # type: ignore[no-untyped-call]
    hs = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    port = server.add_insecure_port(s.address)
    await server.start()
    tune_gc()
    res = hs.set("", health_pb2.HealthCheckResponse.SERVING)
    if asyncio.iscoroutine(res):
        await res
    print(f"listening on port {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


def _start_aio(out: Path, name: str, kind: str, response_file: Path) -> procs.Proc:
    argv = [sys.executable, "-m", "bench.aio_probe", "serve", "--kind", kind, "--response-file", str(response_file)]
    return procs.await_serving(procs.spawn(name, argv, out, cwd=ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.aio_probe")
    ap.add_argument("mode", nargs="?", default="measure", choices=["measure", "serve"])
    ap.add_argument("--kind", choices=["echo", "service"], default="echo")
    ap.add_argument("--response-file", type=Path)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    if a.mode == "serve":
        asyncio.run(_serve_aio(a.kind, a.response_file))
        return 0
    if not h2load.available():
        raise SystemExit("h2load not found (apt-get install -y nghttp2-client)")
    out = Path(tempfile.mkdtemp(prefix="aio-probe-"))
    req = payloads.recommend_request()
    (out / "rec.framed").write_bytes(payloads.grpc_frame(req.SerializeToString()))
    started: list[procs.Proc] = []
    try:
        svc_sync, _ = start_service(out, "service-sync", 1)
        started.append(svc_sync)
        with grpc.insecure_channel(f"127.0.0.1:{svc_sync.port}") as ch:
            resp = payloads.stub(ch).RecommendAdjustments(req, timeout=10)
        canned = out / "canned.bin"
        canned.write_bytes(resp.SerializeToString())
        expect = len(payloads.grpc_frame(resp.SerializeToString()))
        servers = {"service-sync": svc_sync}
        servers["echo-sync"] = start_echo(out, "echo-sync", canned, 1)
        started.append(servers["echo-sync"])
        for kind in ("echo", "service"):
            servers[f"{kind}-aio"] = _start_aio(out, f"{kind}-aio", kind, canned)
            started.append(servers[f"{kind}-aio"])
        plan = [(name, c) for name in servers for c in (1, 16)]
        results: dict[tuple[str, int], list[h2load.LoadResult]] = {}
        for rnd in range(a.rounds):
            k = rnd % len(plan)
            for name, c in plan[k:] + plan[:k]:
                p = servers[name]
                r = h2load.run(
                    f"{name}-c{c}",
                    p.port,
                    RPC,
                    out / "rec.framed",
                    concurrency=c,
                    duration_s=a.duration,
                    warmup_s=0.5,
                    expected_response_bytes=expect,
                    server_pids=p.pids,
                    out_dir=out,
                )
                if not r.ok:
                    raise SystemExit(f"{name} c={c}: load not OK (failed/errored/unexpected bytes)")
                results.setdefault((name, c), []).append(r)
                print(
                    f"  {name:<13} c={c:<3} {r.rps:8.0f} req/s  p50 {r.p50_us / 1000:5.2f} ms  "
                    f"server {r.server_cpu_us_per_req:5.0f} CPU-us/req  others {r.other_cpu_pct:3.0f}%",
                    flush=True,
                )

        def med(name: str, c: int, attr: str) -> float:
            return statistics.median(float(getattr(r, attr)) for r in results[(name, c)])

        print()
        print("| server | c=1 p50 | c=1 CPU-us/req | c=16 req/s | c=16 CPU-us/req |")
        print("|---|---|---|---|---|")
        for name in servers:
            print(
                f"| {name} | {med(name, 1, 'p50_us') / 1000:.2f} ms | {med(name, 1, 'server_cpu_us_per_req'):.0f} | "
                f"{med(name, 16, 'rps'):,.0f} | {med(name, 16, 'server_cpu_us_per_req'):.0f} |"
            )
        for fw in ("sync", "aio"):
            p50 = med(f"service-{fw}", 1, "p50_us") / med(f"echo-{fw}", 1, "p50_us")
            tp = med(f"service-{fw}", 16, "rps") / med(f"echo-{fw}", 16, "rps")
            print(f"{fw}: service/echo p50 at c=1 {p50:.2f}x, throughput at c=16 {tp:.2f}x")
    finally:
        for p in started:
            p.stop()
    print(f"(raw h2load output in {out})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("ALIGN_METRICS_PORT", "0")
    sys.exit(main())
