"""Where a single RecommendAdjustments call's time goes inside a real server, and why it is more
than the same handler costs in a loop.

    python -m bench.unary_probe [--duration 3] [--rounds 2]

Three measurements, printed side by side:
1. in process, the servicer's handler with its stages timed (validate, model, recommend, response),
   called back to back, with a 300 us sleep between calls, and with a 300 us busy-wait between
   calls: whether the core going idle between requests (as it does at c=1) slows the next one;
2. the same stage timers inside a real server process (`--serve`, this module's child mode) under
   h2load at c=1: the handler's own CPU per call next to the whole server's CPU per call;
3. `python -m service --workers 1` with ALIGN_UNARY_THREADS 1, 2 (the default) and 16 (what every
   call had before the lane: the server's 16-thread pool), loaded at c=1 and c=16 in interleaved
   rounds: what the number of threads running single calls costs or buys.

Loopback only; every server is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench import h2load, payloads, procs
from bench.equivalence import LiveCallContext
from bench.run import start_service

ROOT = Path(__file__).resolve().parents[1]
RPC = f"/{payloads.SERVICE}/RecommendAdjustments"
STAGES = ("handler", "validate", "model", "recommend (incl. model)", "response")


class StageTimers:
    """Thread CPU time per call of a few service functions, wrapped in place (a probe, not a profiler:
    about 1 us of overhead per wrapped call)."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def wrap(self, owner: Any, name: str, label: str) -> None:
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            c0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.thread_time() - c0
                with self._lock:
                    t = self.totals.setdefault(label, [0.0, 0.0])
                    t[0] += 1
                    t[1] += dt

        setattr(owner, name, timed)

    def install(self) -> None:
        from service import model, recommender
        from service.api import convert, servicer

        self.wrap(servicer.AlignmentServicer, "RecommendAdjustments", "handler")
        self.wrap(servicer.AlignmentServicer, "_validate", "validate")
        self.wrap(model.OnnxModel, "predict", "model")
        self.wrap(recommender.Recommender, "recommend", "recommend (incl. model)")
        self.wrap(convert, "recommendation_to_proto", "response")

    def reset(self) -> None:
        with self._lock:
            self.totals.clear()

    def per_call_us(self) -> dict[str, float]:
        with self._lock:
            return {k: v[1] / v[0] * 1e6 for k, v in self.totals.items() if v[0]}


def _probe_server() -> Any:
    """The real server (build_server, default settings, bundled model) on a loopback port."""
    from service.api.server import build_server
    from service.settings import Settings

    return build_server(Settings(address="127.0.0.1:0", workers=1, models_dir=ROOT / "models"), serve_metrics=False)


def in_process(calls: int) -> dict[str, dict[str, float]]:
    timers = StageTimers()
    timers.install()
    running = _probe_server()
    svc = running.servicer
    req, ctx = payloads.recommend_request(), LiveCallContext()

    def spin(s: float) -> None:
        end = time.perf_counter() + s
        while time.perf_counter() < end:
            pass

    gaps: dict[str, Callable[[], None]] = {
        "back to back": lambda: None,
        "300 us sleep between calls": lambda: time.sleep(300e-6),
        "300 us busy-wait between calls": lambda: spin(300e-6),
    }
    out: dict[str, dict[str, float]] = {}
    try:
        for _ in range(200):
            svc.RecommendAdjustments(req, ctx)
        for label, gap in gaps.items():
            timers.reset()
            for _ in range(calls):
                svc.RecommendAdjustments(req, ctx)
                gap()
            out[label] = timers.per_call_us()
    finally:
        running.stop(0.0)
    return out


def serve() -> int:
    """Child mode: the real server (build_server) with the stage timers; SIGUSR1 resets them and
    SIGUSR2 prints them as one line `stages k=v ...`."""
    from service.api.server import tune_gc
    from service.logs import configure

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    timers = StageTimers()
    timers.install()
    configure("WARNING", "json")
    running = _probe_server()
    tune_gc()
    stop = threading.Event()

    def report(_s: int, _f: FrameType | None) -> None:
        print("stages " + " ".join(f"{k.replace(' ', '_')}={v:.1f}" for k, v in timers.per_call_us().items()), flush=True)

    signal.signal(signal.SIGUSR1, lambda _s, _f: timers.reset())
    signal.signal(signal.SIGUSR2, report)
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    print(f"listening on port {running.port}", flush=True)
    stop.wait()
    running.stop(0.5)
    return 0


def _read_stages(p: procs.Proc, timeout_s: float = 10.0) -> dict[str, float]:
    assert p.popen.stdout is not None
    os.kill(p.popen.pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = p.popen.stdout.readline().decode()
        if line.startswith("stages "):
            return {k.replace("_", " "): float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    raise TimeoutError("the probe server printed no stage line")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.unary_probe")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per load")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--calls", type=int, default=2000, help="in-process calls per variant")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.serve:
        return serve()
    if not h2load.available():
        print("h2load not found: apt-get install -y nghttp2-client", file=sys.stderr)
        return 2

    print("## 1. in process: the handler's stages, CPU us per call")
    for label, stages in in_process(a.calls).items():
        print(f"  {label:32s} " + "  ".join(f"{k} {stages.get(k, float('nan')):6.1f}" for k in STAGES))

    out = Path(tempfile.mkdtemp(prefix="unary-probe-"))
    body = out / "recommend.framed"
    body.write_bytes(payloads.grpc_frame(payloads.recommend_request().SerializeToString()))
    servers: dict[str, procs.Proc] = {}
    try:
        print("\n## 2. the same timers inside a real server at c=1")
        probe = procs.await_serving(procs.spawn("probe", [sys.executable, "-m", "bench.unary_probe", "--serve"], out, cwd=ROOT))
        servers["probe"] = probe
        h2load.run("probe-warm", probe.port, RPC, body, concurrency=1, duration_s=1.0, warmup_s=0.2,
                   expected_response_bytes=None, server_pids=probe.pids, out_dir=out)
        os.kill(probe.popen.pid, signal.SIGUSR1)
        r = h2load.run("probe", probe.port, RPC, body, concurrency=1, duration_s=a.duration, warmup_s=0.0,
                       expected_response_bytes=None, server_pids=probe.pids, out_dir=out)
        stages = _read_stages(probe)
        print(f"  server CPU per call {r.server_cpu_us_per_req:6.1f} us (p50 {r.p50_us / 1000:.2f} ms); inside it: "
              + "  ".join(f"{k} {stages.get(k, float('nan')):6.1f}" for k in STAGES))
        probe.stop()
        del servers["probe"]

        print("\n## 3. threads running single calls per worker (ALIGN_UNARY_THREADS), interleaved rounds")
        threads = ("1", "2", "16")
        for t in threads:
            servers[t], _ = start_service(out, f"threads-{t}", 1, unary_threads=t)
        rows: dict[tuple[str, int], list[h2load.LoadResult]] = {}
        for rnd in range(a.rounds):
            order = threads[rnd % len(threads):] + threads[: rnd % len(threads)]
            for t in order:
                for c in (1, 16):
                    p = servers[t]
                    rows.setdefault((t, c), []).append(
                        h2load.run(f"threads-{t}-c{c}", p.port, RPC, body, concurrency=c, duration_s=a.duration,
                                   warmup_s=0.3, expected_response_bytes=None, server_pids=p.pids, out_dir=out))
        for (t, c), rs in sorted(rows.items(), key=lambda kv: (int(kv[0][0]), kv[0][1])):
            rps = sorted(x.rps for x in rs)[len(rs) // 2]
            cpu = sorted(x.server_cpu_us_per_req for x in rs)[len(rs) // 2]
            print(f"  threads {t:>2}  c={c:<2}  {rps:7.0f} req/s  {cpu:5.0f} server CPU-us per call  (rounds: "
                  + ", ".join(f"{x.rps:.0f}" for x in rs) + ")")
    finally:
        for p in servers.values():
            p.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
