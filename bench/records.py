"""Fitting records: does recording slow the answer path, and what does RecordFitting itself cost?

    python -m bench.records [--rounds 3] [--calls 1500] [--seconds 3]

One run, side by side, interleaved rounds (the order rotates every round):
1. `RecommendAdjustments` p50 (c=1, sequential calls) and throughput (c=4) on three servers with the
   same tokens (so the auth interceptor costs the same everywhere): recording off; recording on
   (SQLite) with an idle store; recording on (SQLite) while a separate process records fittings at
   --record-rate per second. Target: recording on costs <= 5% (ratios printed).
2. `RecordFitting` on SQLite and on PostgreSQL (a throwaway server started here, Unix socket): p50 at
   c=1 and throughput at c=4 (3-walk fittings, fresh ids).
Clients are Python gRPC in this process (the recording load in its own process), so absolute
latencies include the client's ~0.2-0.3 ms; the ratios compare like with like. Loopback only; every
server and process is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from bench import payloads, procs
from bench.run import start_service

ROOT = Path(__file__).resolve().parents[1]
RECORDS_TOKEN = "bench-records-token-0123456789"
PLAIN = "bench=bench-plain-token-0123456789"
META = (("authorization", f"Bearer {RECORDS_TOKEN}"),)


def _stub(port: int) -> object:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
    return payloads.stub(channel)


def unary_p50_ms(port: int, calls: int) -> float:
    stub = _stub(port)
    req = payloads.recommend_request()
    for _ in range(50):
        stub.RecommendAdjustments(req, timeout=10, metadata=META)  # type: ignore[attr-defined]
    lat = []
    for _ in range(calls):
        t = time.perf_counter()
        stub.RecommendAdjustments(req, timeout=10, metadata=META)  # type: ignore[attr-defined]
        lat.append(time.perf_counter() - t)
    return statistics.median(lat) * 1000


def throughput(
    port: int, seconds: float, clients: int, call: Callable[[object, int], None], pids: list[int] | None = None
) -> tuple[float, float]:
    """(calls per second, server CPU-us per call) with `clients` threads calling back to back for
    `seconds`. Server CPU per call (from /proc) is what a crowded machine disturbs least."""
    stop = threading.Event()
    counts = [0] * clients

    def run(k: int) -> None:
        stub = _stub(port)
        n = 0
        while not stop.is_set():
            call(stub, k * 10_000_000 + n)
            n += 1
        counts[k] = n

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    cpu0 = procs.cpu_seconds(pids or [])
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(30)
    wall = time.perf_counter() - t0
    cpu = procs.cpu_seconds(pids or []) - cpu0
    n = max(sum(counts), 1)
    return n / wall, cpu / n * 1e6


_PREFIX = f"b{os.getpid()}-{int(time.time())}"


def _record_call(tag: str) -> Callable[[object, int], None]:
    from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
    from tests.records_cases import fitting_record

    def call(stub: object, n: int) -> None:
        rec = fitting_record(f"{_PREFIX}-{tag}-{n}", patient_key=f"P-{n % 97}", walks=3, seed=n)
        stub.RecordFitting(spb.RecordFittingRequest(record=rec), timeout=10, metadata=META)  # type: ignore[attr-defined]

    return call


def record_p50_ms(port: int, calls: int, tag: str) -> float:
    stub = _stub(port)
    call = _record_call(tag)
    lat = []
    for n in range(calls):
        t = time.perf_counter()
        call(stub, 20_000_000 + n)
        lat.append(time.perf_counter() - t)
    return statistics.median(lat) * 1000


def _recommend_call(stub: object, _n: int) -> None:
    stub.RecommendAdjustments(payloads.recommend_request(), timeout=10, metadata=META)  # type: ignore[attr-defined]


def record_load_child(port: int, rate: float) -> None:
    """Child mode: record fittings at `rate` per second until killed."""
    stub = _stub(port)
    call = _record_call(f"load{os.getpid()}")
    n = 0
    t0 = time.perf_counter()
    while True:
        call(stub, n)
        n += 1
        wait = t0 + n / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)


def _paired(servers: dict[str, procs.Proc], pairs: int, calls: int, rate: float) -> None:
    """Short p50 measurements of the three servers back to back, `pairs` times (order rotating); the
    ratio to "off" within each triple, then the median over triples: slow drifts of a shared machine
    cancel within a triple."""
    names = list(servers)
    ratios: dict[str, list[float]] = {n: [] for n in names[1:]}
    for i in range(pairs):
        order = names[i % 3:] + names[: i % 3]
        got = {n: unary_p50_ms(servers[n].port, calls) for n in order}
        for n in names[1:]:
            ratios[n].append(got[n] / got["off"])
    load = os.getloadavg()
    print(f"\n## RecommendAdjustments p50, paired ({pairs} triples of {calls} sequential calls per server)\n")
    print(f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores; "
          f"recording load beside 'on+load': {rate:g} fittings/s\n")
    print("| server | median p50 ratio vs off | quartiles |")
    print("|---|---|---|")
    for n, rs in ratios.items():
        q = statistics.quantiles(rs, n=4)
        print(f"| recording {n} | {statistics.median(rs):.3f} x | {q[0]:.3f}-{q[2]:.3f} |")
    worst = max(statistics.median(rs) for rs in ratios.values())
    print(f"\n{'PASS' if worst <= 1.05 else 'FAIL'}  recording on slows RecommendAdjustments p50 by <= 5% (paired): {worst:.3f} x")


def _start(out: Path, name: str, records_url: str = "") -> tuple[procs.Proc, float]:
    """One worker, the same tokens everywhere (the auth interceptor costs the same on every server)."""
    if records_url:
        return start_service(out, name, 1, 0, auth_tokens=PLAIN, records_tokens=f"bench={RECORDS_TOKEN}", records_url=records_url)
    return start_service(out, name, 1, 0, auth_tokens=PLAIN, records_tokens=f"bench={RECORDS_TOKEN}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=1500, help="sequential calls per p50 measurement")
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput load")
    ap.add_argument("--record-rate", type=float, default=20.0, help="fittings/s recorded beside the answer load")
    ap.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="instead of rounds: this many short back-to-back p50 triples (off, on, on+load), median of the "
        "per-triple ratios (steadier on a crowded machine)",
    )
    ap.add_argument("--pair-calls", type=int, default=300, help="sequential calls per server per triple")
    ap.add_argument("--child-record-load", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_record_load:
        record_load_child(args.child_record_load, args.record_rate)
        return 0

    from tests.pg_server import PostgresServer, unavailable_reason

    out = Path(tempfile.mkdtemp(prefix="bench-records-"))
    started: list[procs.Proc] = []
    loaders: list[subprocess.Popen[bytes]] = []
    pg: PostgresServer | None = None
    try:
        reason = unavailable_reason()
        pg = PostgresServer.start() if reason is None else None
        off, _ = _start(out, "records-off")
        started.append(off)
        on, _ = _start(out, "records-sqlite", f"sqlite:///{out / 'records.db'}")
        started.append(on)
        busy, _ = _start(out, "records-sqlite-busy", f"sqlite:///{out / 'busy.db'}")
        started.append(busy)
        servers: dict[str, procs.Proc] = {"off": off, "on": on, "on+load": busy}
        if pg is not None:
            pgs, _ = _start(out, "records-pg", pg.url)
            started.append(pgs)
        loader = subprocess.Popen(
            [sys.executable, "-m", "bench.records", "--child-record-load", str(busy.port), "--record-rate", str(args.record_rate)],
            cwd=ROOT, start_new_session=True,
        )
        loaders.append(loader)
        time.sleep(1.0)

        if args.pairs:
            _paired(servers, args.pairs, args.pair_calls, args.record_rate)
            return 0
        p50: dict[str, list[float]] = {k: [] for k in servers}
        rps: dict[str, list[float]] = {k: [] for k in servers}
        cpu: dict[str, list[float]] = {k: [] for k in servers}
        rec: dict[str, dict[str, list[float]]] = {"sqlite": {"p50": [], "rps": []}, "postgresql": {"p50": [], "rps": []}}
        rec_ports = {"sqlite": on.port, **({"postgresql": started[-1].port} if pg is not None else {})}
        names = list(servers)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                port = servers[name].port
                pids = servers[name].pids
                background = 0.0
                if name == "on+load":  # the recording load's own CPU, to take out of the answers' share
                    c0 = procs.cpu_seconds(pids)
                    time.sleep(2.0)
                    background = (procs.cpu_seconds(pids) - c0) / 2.0
                p50[name].append(unary_p50_ms(port, args.calls))
                c0, t0 = procs.cpu_seconds(pids), time.perf_counter()
                got, cpu_us = throughput(port, args.seconds, 4, _recommend_call, pids)
                calls = got * (time.perf_counter() - t0)
                cpu_us -= background * (time.perf_counter() - t0) / max(calls, 1) * 1e6
                rps[name].append(got)
                cpu[name].append(cpu_us)
                print(
                    f"round {r + 1} {name:8s} RecommendAdjustments p50 {p50[name][-1]:.3f} ms, c=4 {got:,.0f} req/s, "
                    f"{cpu_us:.0f} server CPU-us/call",
                    flush=True,
                )
            for backend, port in rec_ports.items():
                rec[backend]["p50"].append(record_p50_ms(port, max(100, args.calls // 5), f"r{r}"))
                rec[backend]["rps"].append(throughput(port, args.seconds, 4, _record_call(f"t{r}{backend}"))[0])
                print(f"round {r + 1} RecordFitting {backend:10s} p50 {rec[backend]['p50'][-1]:.2f} ms, c=4 {rec[backend]['rps'][-1]:,.0f} records/s", flush=True)

        med = statistics.median
        load = os.getloadavg()
        print("\n## Fitting records (python -m bench.records)\n")
        print(f"{args.rounds} interleaved rounds; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
              f"(1/5/15 min) on {os.cpu_count()} cores; recording load beside 'on+load': {args.record_rate:g} fittings/s.\n")
        print("| RecommendAdjustments | p50 c=1 (ms) | req/s c=4 | server CPU-us/call c=4 | p50 vs off | req/s vs off | CPU/call vs off |")
        print("|---|---|---|---|---|---|---|")
        base_p, base_r, base_c = med(p50["off"]), med(rps["off"]), med(cpu["off"])
        for name in names:
            print(
                f"| recording {name} | {med(p50[name]):.3f} | {med(rps[name]):,.0f} | {med(cpu[name]):.0f} | "
                f"{med(p50[name]) / base_p:.3f} x | {med(rps[name]) / base_r:.3f} x | {med(cpu[name]) / base_c:.3f} x |"
            )
        worst = max(med(p50[n]) / base_p for n in names[1:])
        worst_r = min(med(rps[n]) / base_r for n in names[1:])
        worst_c = max(med(cpu[n]) / base_c for n in names[1:])
        for label, ok, v in (
            ("server CPU per call", worst_c <= 1.05, worst_c),
            ("p50 at c=1", worst <= 1.05, worst),
            ("throughput at c=4 (ratio of req/s; >= 0.95 passes)", worst_r >= 0.95, worst_r),
        ):
            print(f"{'PASS' if ok else 'FAIL'}  recording on slows RecommendAdjustments by <= 5%, {label}: {v:.3f} x (worst case)")
        print()
        print("| RecordFitting (3 walks) | p50 c=1 (ms) | records/s c=4 |")
        print("|---|---|---|")
        for backend, vals in rec.items():
            if vals["p50"]:
                print(f"| {backend} | {med(vals['p50']):.2f} | {med(vals['rps']):,.0f} |")
        if pg is None:
            print(f"\nPostgreSQL not measured: {reason}")
    finally:
        for lp in loaders:
            procs.stop_group(lp)
        for p in started:
            p.stop()
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    # SIGTERM (a CI timeout, `kill`) must unwind through the `finally` that stops every server.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main())
