"""Before/after in one run: this checkout's service against another checkout's, same loads, interleaved.

    git worktree add /tmp/base <commit>      # or: git archive <commit> | tar -x -C /tmp/base
    python -m bench.compare --baseline /tmp/base [--rounds 3] [--duration 3]

Starts `python -m service` from each checkout (1 worker, and 2 workers on a fixed port), the same
models/ (this checkout's), and runs h2load on both in turn, the order rotated every round:
RecommendAdjustments at c=1 and c=16, BatchRecommendAdjustments (the bench's 1000-assessment request)
at c=1 and c=2 on 1 worker and c=8 on 2 workers. Prints medians of req/s (assessments/s for batch),
p50 and server CPU-us per request or per assessment. Every load is checked as in `python -m bench`
(no failures, responses of the expected size); the two checkouts must answer the same bytes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench import h2load, payloads, procs

ROOT = Path(__file__).resolve().parents[1]
RPC = f"/{payloads.SERVICE}/RecommendAdjustments"
BATCH_RPC = f"/{payloads.SERVICE}/BatchRecommendAdjustments"


def _start(root: Path, out: Path, name: str, workers: int) -> procs.Proc:
    port = 0 if workers == 1 else procs.free_port()
    env = dict(os.environ, ALIGN_METRICS_PORT="0", ALIGN_LOG_LEVEL="WARNING")
    p = procs.spawn(
        name,
        [
            sys.executable,
            "-m",
            "service",
            "--address",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--models-dir",
            str(ROOT / "models"),
        ],
        out,
        env=env,
        cwd=root,
        port=port,
    )
    return procs.await_serving(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.compare")
    ap.add_argument("--baseline", type=Path, required=True, help="another checkout of this repository")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    a = ap.parse_args(argv)
    if not h2load.available():
        raise SystemExit("h2load not found (apt-get install -y nghttp2-client)")
    out = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    req = payloads.recommend_request()
    batch = payloads.batch_request(1000)
    (out / "rec.framed").write_bytes(payloads.grpc_frame(req.SerializeToString()))
    (out / "batch.framed").write_bytes(payloads.grpc_frame(batch.SerializeToString()))
    started: list[procs.Proc] = []
    try:
        servers: dict[tuple[str, int], procs.Proc] = {}
        sizes: dict[str, tuple[bytes, bytes]] = {}
        for label, root in (("before", a.baseline.resolve()), ("after", ROOT)):
            for workers in (1, 2):
                p = _start(root, out, f"{label}-w{workers}", workers)
                started.append(p)
                servers[label, workers] = p
            with grpc.insecure_channel(f"127.0.0.1:{servers[label, 1].port}") as ch:
                stub = payloads.stub(ch)
                sizes[label] = (
                    stub.RecommendAdjustments(req, timeout=10).SerializeToString(),
                    stub.BatchRecommendAdjustments(batch, timeout=60).SerializeToString(),
                )
        if sizes["before"] != sizes["after"]:
            print("NOTE: the two checkouts answer different bytes (e.g. another model or policy)", flush=True)
        time.sleep(0.5)
        plan = []
        for label in ("before", "after"):
            rec_n, batch_n = (len(payloads.grpc_frame(b)) for b in sizes[label])
            plan += [
                (label, "unary c=1", 1, RPC, "rec.framed", 1, rec_n, 1),
                (label, "unary c=16", 1, RPC, "rec.framed", 16, rec_n, 1),
                (label, "batch w1 c=1", 1, BATCH_RPC, "batch.framed", 1, batch_n, 1000),
                (label, "batch w1 c=2", 1, BATCH_RPC, "batch.framed", 2, batch_n, 1000),
                (label, "batch w2 c=8", 2, BATCH_RPC, "batch.framed", 8, batch_n, 1000),
            ]
        results: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
        for rnd in range(a.rounds):
            k = (rnd * 3) % len(plan)
            for label, what, workers, path, body, conc, expect, per in plan[k:] + plan[:k]:
                p = servers[label, workers]
                r = h2load.run(
                    f"{label}-{what.replace(' ', '-')}",
                    p.port,
                    path,
                    out / body,
                    concurrency=conc,
                    duration_s=a.duration,
                    warmup_s=0.5,
                    expected_response_bytes=expect,
                    server_pids=p.pids,
                    out_dir=out,
                )
                if not r.ok:
                    raise SystemExit(f"{label} {what}: load not OK (failed/errored/unexpected bytes)")
                results.setdefault((label, what), []).append(
                    (r.rps * per, r.p50_us, r.server_cpu_us_per_req / per, r.other_cpu_pct)
                )
                print(
                    f"  {label:<6} {what:<13} {r.rps * per:9.0f}/s  p50 {r.p50_us / 1000:7.2f} ms  "
                    f"server {r.server_cpu_us_per_req / per:6.0f} CPU-us each  others {r.other_cpu_pct:3.0f}%",
                    flush=True,
                )
        print()
        print("| load | before | after |")
        print("|---|---|---|")
        for what in dict.fromkeys(w for _, w in results):
            cells = []
            for label in ("before", "after"):
                rs = results[label, what]
                rate, p50, cpu = (statistics.median(x[i] for x in rs) for i in range(3))
                unit = "assessments/s" if what.startswith("batch") else "req/s"
                cells.append(f"{rate:,.0f} {unit}, p50 {p50 / 1000:.2f} ms, {cpu:,.0f} server CPU-us each")
            print(f"| {what} | {cells[0]} | {cells[1]} |")
        others = [x[3] for rs in results.values() for x in rs]
        print(
            f"\nOther processes used {statistics.median(others):.0f}% of a core (median, max {max(others):.0f}%) during the loads."
        )
    finally:
        for p in started:
            p.stop()
    print(f"(raw h2load output in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
