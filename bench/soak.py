"""Soak: mixed load for a long time, resident memory per worker every 10 s (issue 15, finding 8).

    python -m bench.soak                    # 10 minutes, 2 workers
    python -m bench.soak --minutes 1 --workers 1

Runs `python -m service --workers N` under single calls, 1000-assessment batches, stream sessions
and hostile requests (bench/fuzz.py's generator) at once, each client on its own connection, with
the health probe of bench/fuzz.py in its own process. Every `--interval` seconds it records each
worker's RSS and PSS. Passing: every worker <= 200 MB RSS throughout, no upward trend after the
warm-up (least-squares slope over the second half under 1 MB/min), no INTERNAL/UNKNOWN, no worker
death, every health probe answered.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench import fuzz, payloads, procs
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb

ROOT = Path(__file__).resolve().parents[1]
RSS_LIMIT_MB = 200.0
SLOPE_LIMIT_MB_PER_MIN = 1.0


@dataclass
class Soak:
    samples: list[tuple[float, dict[int, tuple[float, float]]]] = field(default_factory=list)  # t, pid -> (rss, pss)
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    health_s: list[float] = field(default_factory=list)
    health_failures: int = 0
    deaths: int = 0
    error_logs: int = 0

    def worker_series(self) -> dict[int, list[tuple[float, float]]]:
        out: dict[int, list[tuple[float, float]]] = {}
        for t, per in self.samples:
            for pid, (rss, _pss) in per.items():
                out.setdefault(pid, []).append((t, rss))
        return out

    def max_rss(self) -> float:
        return max((rss for _t, per in self.samples for rss, _ in per.values()), default=float("nan"))

    def slopes_mb_per_min(self) -> dict[int, float]:
        """Least-squares slope of each worker's RSS over the second half of the run."""
        out: dict[int, float] = {}
        for pid, series in self.worker_series().items():
            half = [(t, r) for t, r in series if t >= series[-1][0] / 2]
            if len(half) < 3:
                continue
            mt = statistics.fmean(t for t, _ in half)
            mr = statistics.fmean(r for _, r in half)
            den = sum((t - mt) ** 2 for t, _ in half)
            out[pid] = 60.0 * sum((t - mt) * (r - mr) for t, r in half) / den if den else 0.0
        return out

    def bad_codes(self) -> int:
        return sum(k for (_m, c), k in self.codes.items() if c not in fuzz.ALLOWED_NAMES)

    def passed(self) -> bool:
        slopes = self.slopes_mb_per_min()
        return (
            bool(self.samples)
            and self.max_rss() <= RSS_LIMIT_MB
            and all(s < SLOPE_LIMIT_MB_PER_MIN for s in slopes.values())
            and self.bad_codes() == 0
            and self.deaths == 0
            and self.error_logs == 0
            and self.health_failures == 0
        )

    def table(self) -> str:
        pids = sorted({pid for _t, per in self.samples for pid in per})
        head = "| t (s) | " + " | ".join(f"worker {i} RSS / PSS (MB)" for i in range(len(pids))) + " |"
        lines = [head, "|---|" + "---|" * len(pids)]
        for t, per in self.samples:
            cells = [f"{per[p][0]:.0f} / {per[p][1]:.0f}" if p in per else "-" for p in pids]
            lines.append(f"| {t:.0f} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def summary(self) -> str:
        by: dict[str, Counter[str]] = {}
        for (m, c), k in self.codes.items():
            by.setdefault(m, Counter())[c] += k
        calls = "; ".join(f"{m} {dict(sorted(cs.items()))}" for m, cs in sorted(by.items()))
        slopes = ", ".join(f"{s:+.2f}" for s in self.slopes_mb_per_min().values())
        hl = sorted(self.health_s)
        p99 = hl[int(0.99 * (len(hl) - 1))] if hl else float("nan")
        return (
            f"max RSS per worker {self.max_rss():.0f} MB (limit {RSS_LIMIT_MB:.0f}); RSS slope over the second half "
            f"{slopes} MB/min (limit {SLOPE_LIMIT_MB_PER_MIN:g})\n"
            f"calls: {calls}\n"
            f"health: {len(hl)} answered, {self.health_failures} failed, p50 {1000 * statistics.median(hl) if hl else float('nan'):.1f} ms, "
            f"p99 {1000 * p99:.1f} ms, max {1000 * (hl[-1] if hl else float('nan')):.1f} ms; "
            f"worker deaths {self.deaths}; ERROR log lines {self.error_logs}"
        )


def _loop(name: str, address: str, stop: threading.Event, record: Callable[[str, str], None], call: Callable[[grpc.Channel], None]) -> None:
    with grpc.insecure_channel(
        address, options=[("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    ) as ch:
        while not stop.is_set():
            try:
                call(ch)
                record(name, "OK")
            except grpc.RpcError as err:
                record(name, err.code().name)
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    time.sleep(0.05)  # back off as a client should


def run(minutes: float, workers: int, interval_s: float, *, unary: int = 2, batch: int = 3, stream: int = 2,
        hostile: int = 1, log: Callable[[str], None] = print, checkout: Path = ROOT) -> Soak:
    port = procs.free_port()
    address = f"127.0.0.1:{port}"
    soak = Soak()
    lock = threading.Lock()

    def record(name: str, code: str) -> None:
        with lock:
            soak.codes[name, code] += 1

    one = payloads.recommend_request().SerializeToString()
    many = payloads.batch_request(1000).SerializeToString()
    updates = [spb.StreamRecommendAdjustmentsRequest(assessment=payloads.sample_assessment()).SerializeToString()] * 50

    def call_unary(ch: grpc.Channel) -> None:
        ch.unary_unary(f"/{payloads.SERVICE}/RecommendAdjustments", request_serializer=None, response_deserializer=None)(one, timeout=30)

    def call_batch(ch: grpc.Channel) -> None:
        ch.unary_unary(f"/{payloads.SERVICE}/BatchRecommendAdjustments", request_serializer=None, response_deserializer=None)(many, timeout=60)

    def call_stream(ch: grpc.Channel) -> None:
        fn = ch.stream_stream(f"/{payloads.SERVICE}/StreamRecommendAdjustments", request_serializer=None, response_deserializer=None)
        for _ in fn(iter(updates), timeout=60):
            pass

    gen = fuzz.Generator(2026)
    gen_lock = threading.Lock()

    def call_hostile(ch: grpc.Channel) -> None:
        with gen_lock:
            case = gen.case()
        code, _details, _answers = fuzz._call(ch, case, 30.0)
        if code is not grpc.StatusCode.OK:
            raise _Coded(code)

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        argv = [sys.executable, "-m", "service", "--address", address, "--workers", str(workers), "--models-dir", str(ROOT / "models")]
        p = procs.await_serving(procs.spawn("service", argv, Path(tmp), cwd=checkout, port=port))
        stop = threading.Event()
        threads: list[threading.Thread] = []
        try:
            if workers > 1:
                procs.await_workers(p, workers)  # every worker bound before the clients connect
            plan = [("unary", call_unary)] * unary + [("batch", call_batch)] * batch + [("stream", call_stream)] * stream
            plan += [("hostile", call_hostile)] * hostile
            for name, fn in plan:
                t = threading.Thread(target=_loop, args=(name, address, stop, record, fn), daemon=True)
                t.start()
                threads.append(t)
            t0 = time.monotonic()
            with fuzz.HealthProbe(address) as probe:
                while (elapsed := time.monotonic() - t0) < 60.0 * minutes:
                    pids = procs.children(p.popen.pid) if workers > 1 else [p.popen.pid]
                    soak.samples.append((elapsed, {pid: procs.rss_mb(pid) for pid in pids}))
                    per = ", ".join(f"{r:.0f}" for r, _ in soak.samples[-1][1].values())
                    log(f"  t={elapsed:5.0f} s  RSS per worker {per} MB")
                    time.sleep(max(0.0, interval_s - ((time.monotonic() - t0) % interval_s)))
                stop.set()
                lat = probe.results()
            soak.health_s = [x for x in lat if x >= 0]
            soak.health_failures = sum(1 for x in lat if x < 0)
            for t in threads:
                t.join(70)
            lines = Path(p.log_path).read_text(errors="replace").splitlines()
            soak.deaths = sum(1 for line in lines if '"worker exited' in line or '"worker crashed' in line)
            soak.error_logs = sum(1 for line in lines if '"level":"ERROR"' in line)
        finally:
            stop.set()
            p.stop()
    return soak


class _Coded(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__()
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--clients", default="2,3,2,1", help="unary,batch,stream,hostile client connections")
    ap.add_argument("--checkout", type=Path, default=ROOT, help="run the service of another checkout (before/after)")
    a = ap.parse_args(argv)
    print(f"# bench.soak {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: {a.minutes:g} min, {a.workers} worker(s); "
          f"clients (unary, batch of 1000, stream of 50 updates, hostile): {a.clients}", flush=True)
    u, b, st, h = (int(x) for x in a.clients.split(","))
    soak = run(a.minutes, a.workers, a.interval, unary=u, batch=b, stream=st, hostile=h, log=lambda s: print(s, flush=True),
               checkout=a.checkout)
    print(soak.table())
    print(soak.summary())
    ok = soak.passed()
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
