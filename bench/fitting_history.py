"""What the fitting loop costs per request: a walk sent with a 4-walk history against the same walk alone.

    python -m bench.fitting_history [--duration 3] [--rounds 3] [--calls 2000]

Target (issue 14): a RecommendAdjustments request carrying the previous walk as reference, the change
since it and 4 earlier walks (each with the change after it) costs <= 2x a single-walk request.
Both requests are one simulated fitting's walks (training.fitting_loop, the all-sensor transtibial
patient of tests/integration/test_fitting_loop.py). Measured side by side in one run, interleaved:
1. in process, the servicer's RecommendAdjustments handler back to back (convert, validate, recommend,
   response): thread CPU per call;
2. `python -m service --workers 1` loaded by h2load at c=1 with each body in alternating rounds: the
   server's CPU per call and the p50 latency.
Loopback only; the server is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import h2load, payloads
from bench.equivalence import LiveCallContext
from bench.run import machine, start_service
from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb

ROOT = Path(__file__).resolve().parents[1]
RPC = f"/{payloads.SERVICE}/RecommendAdjustments"
HISTORY_WALKS = 4
TARGET_RATIO = 2.0


def requests() -> dict[str, spb.RecommendAdjustmentsRequest]:
    """The sixth walk of a simulated fitting alone, and with its reference, change and 4-walk history."""
    from service import catalog
    from training import cohort
    from training import fitting_loop as fl

    p = fl.example_patient()
    x = p.x.copy()
    j = catalog.PARAMETER_NAMES.index("FOOT_MEDIAL_SHIFT")
    kinds = cohort.SENSOR_SUBSETS["all_sensors"]
    ctx = pb.PatientContext(
        amputation_level=pb.AMPUTATION_LEVEL_TRANSTIBIAL, prosthetic_side=f"SIDE_{p.side}",
        body_mass_kg=p.mass, height_m=p.height, k_level=p.k_level, foot_type=f"FOOT_TYPE_{p.foot}",
    )
    walks: list[list[pb.FeatureValue]] = []
    for k in range(HISTORY_WALKS + 2):
        w = fl.simulate_walk(p, x, kinds, fl.walk_seed(fl.EXAMPLE_SEED, 0, 0, k))
        walks.append([
            pb.FeatureValue(name=f.name, value=f.value, source=f"SENSOR_KIND_{f.source.value}")
            for f in w.features if f.source is not None
        ])
        x[j] += 2.0  # a 2 mm inset after every walk (the smallest steps keep every walk misaligned)
    step = pb.AppliedChange(parameter=pb.ADJUSTMENT_PARAMETER_FOOT_MEDIAL_SHIFT, change=2.0)
    single = pb.GaitAssessment(assessment_id="bench-walk", patient=ctx, features=walks[-1])
    loop = pb.GaitAssessment(
        assessment_id="bench-walk", patient=ctx, features=walks[-1], reference_features=walks[-2],
        applied_since_reference=[step],
        fitting_history=[pb.FittingWalk(features=w, applied_after=[step]) for w in walks[:-2]],
    )
    return {
        "single walk": spb.RecommendAdjustmentsRequest(assessment=single),
        f"{HISTORY_WALKS}-walk history": spb.RecommendAdjustmentsRequest(assessment=loop),
    }


def in_process(reqs: dict[str, spb.RecommendAdjustmentsRequest], calls: int, rounds: int) -> dict[str, float]:
    from service.api.server import build_server
    from service.settings import Settings

    running = build_server(Settings(address="127.0.0.1:0", workers=1, models_dir=ROOT / "models"), serve_metrics=False)
    svc: Any = running.servicer
    ctx: Any = LiveCallContext()
    per: dict[str, list[float]] = {k: [] for k in reqs}
    try:
        for req in reqs.values():
            for _ in range(200):
                svc.RecommendAdjustments(req, ctx)
        for _ in range(rounds):
            for label, req in reqs.items():
                c0 = time.thread_time()
                for _ in range(calls):
                    svc.RecommendAdjustments(req, ctx)
                per[label].append((time.thread_time() - c0) / calls * 1e6)
    finally:
        running.stop(0.0)
    return {k: statistics.median(v) for k, v in per.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fitting_history")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per load")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=2000, help="in-process calls per variant and round")
    a = ap.parse_args(argv)
    reqs = requests()
    info = machine()
    print(f"# fitting history cost, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          + ", ".join(f"{k} {v}" for k, v in info.items()))
    print("request sizes: " + ", ".join(f"{k} {r.ByteSize()} B" for k, r in reqs.items()))
    labels = list(reqs)
    rows: list[tuple[str, float, float]] = []

    cpu = in_process(reqs, a.calls, a.rounds)
    rows.append(("in process: handler CPU per call (us)", cpu[labels[0]], cpu[labels[1]]))

    if not h2load.available():
        print("h2load not found (apt-get install -y nghttp2-client): in-process figures only", file=sys.stderr)
    else:
        out = Path(tempfile.mkdtemp(prefix="fitting-history-"))
        bodies = {}
        for i, (label, req) in enumerate(reqs.items()):
            bodies[label] = out / f"req{i}.framed"
            bodies[label].write_bytes(payloads.grpc_frame(req.SerializeToString()))
        svc, _ = start_service(out, "service", 1)
        try:
            srv: dict[str, list[float]] = {k: [] for k in reqs}
            p50: dict[str, list[float]] = {k: [] for k in reqs}
            for label, body in bodies.items():
                h2load.run(f"warm-{len(label)}", svc.port, RPC, body, concurrency=1, duration_s=1.0, warmup_s=0.2,
                           expected_response_bytes=None, server_pids=svc.pids, out_dir=out)
            for rnd in range(a.rounds):
                order = labels if rnd % 2 == 0 else labels[::-1]
                for label in order:
                    r = h2load.run(f"r{rnd}-{labels.index(label)}", svc.port, RPC, bodies[label], concurrency=1,
                                   duration_s=a.duration, warmup_s=0.2, expected_response_bytes=None,
                                   server_pids=svc.pids, out_dir=out)
                    if not r.ok:
                        raise RuntimeError(f"{label}: failed calls under load")
                    srv[label].append(r.server_cpu_us_per_req)
                    p50[label].append(r.p50_us)
        finally:
            svc.stop()
        med = {k: {"cpu": statistics.median(srv[k]), "p50": statistics.median(p50[k])} for k in reqs}
        rows.append(("server c=1: server CPU per call (us)", med[labels[0]]["cpu"], med[labels[1]]["cpu"]))
        rows.append(("server c=1: p50 latency (us)", med[labels[0]]["p50"], med[labels[1]]["p50"]))

    print(f"\n| measure | {labels[0]} | {labels[1]} | ratio | target <= {TARGET_RATIO:g}x |\n|---|---|---|---|---|")
    ok = True
    for name, one, many in rows:
        ratio = many / one
        ok &= ratio <= TARGET_RATIO
        print(f"| {name} | {one:.1f} | {many:.1f} | {ratio:.2f}x | {'PASS' if ratio <= TARGET_RATIO else 'FAIL'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
