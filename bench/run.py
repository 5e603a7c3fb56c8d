"""One command, one interleaved run, ratios and PASS/FAIL lines (DESIGN 7). See bench/README.md.

    python -m bench                 # ~4 min: 3 interleaved rounds, MLServer peer, 1 and 2 workers
    python -m bench --quick         # < 60 s smoke run (1 round, short loads, 1 worker only)
    python -m bench --profile       # also py-spy the service under load and say what dominates
    python -m bench --training      # also time `python -m training all` (into a scratch dir)

Everything listens on 127.0.0.1 only; every load is bounded in time; every process is started in its
own process group and stopped (SIGTERM, then SIGKILL of the group) in a finally block.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue

import grpc
import numpy as np

from bench import h2load, mlserver_peer, payloads, procs
from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.api import convert
from service.model import OUTPUT_NAMES, OnnxModel
from service.recommender import Policy, Recommender, model_input
from service.registry import version_key
from service.validation import validate_assessment

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models" / "alignment"
RPC = f"/{payloads.SERVICE}/RecommendAdjustments"
BATCH_RPC = f"/{payloads.SERVICE}/BatchRecommendAdjustments"
STREAM_RPC = f"/{payloads.SERVICE}/StreamRecommendAdjustments"
STREAM_UPDATES = 100

TARGET_P50_VS_ECHO = 1.3
TARGET_THROUGHPUT_VS_MLSERVER = 3.0
TARGET_THROUGHPUT_VS_ECHO = 0.8
TARGET_BATCH_PER_S = 50_000
TARGET_STARTUP_S = 2.0
TARGET_RSS_MB = 200.0
TARGET_TRAINING_S = 180.0


@dataclass
class Config:
    rounds: int
    duration_s: float
    warmup_s: float
    batch_size: int
    two_workers: bool
    mlserver: bool
    install: bool
    profile: bool
    profile_s: float
    training: bool
    gen_cpu: str | None
    wait_model_s: float
    out: Path


@dataclass
class Results:
    loads: dict[str, list[h2load.LoadResult]] = field(default_factory=dict)
    values: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_load(self, key: str, r: h2load.LoadResult) -> None:
        self.loads.setdefault(key, []).append(r)

    def add(self, key: str, v: float) -> None:
        self.values.setdefault(key, []).append(v)

    def med(self, key: str) -> float:
        v = self.values.get(key)
        return statistics.median(v) if v else float("nan")

    def load_med(self, key: str, attr: str) -> float:
        rs = self.loads.get(key)
        return statistics.median(float(getattr(r, attr)) for r in rs) if rs else float("nan")


def say(msg: str = "") -> None:
    print(msg, flush=True)


# -- machine and model ----------------------------------------------------------------------------
def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    import google.protobuf
    import onnxruntime

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "onnxruntime": onnxruntime.__version__,
        "loadavg": Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__(),
    }


def newest_model(wait_s: float) -> Path:
    deadline = time.monotonic() + wait_s
    while True:
        versions = sorted((p for p in MODELS.iterdir() if (p / "manifest.json").exists()), key=lambda p: version_key(p.name)) if MODELS.exists() else []
        if versions:
            return versions[-1]
        if time.monotonic() > deadline:
            raise SystemExit(f"no model under {MODELS}: train one (python -m training all) or wait with --wait-model")
        say(f"waiting for a model under {MODELS} ...")
        time.sleep(10)


# -- in-process measurements ----------------------------------------------------------------------
def time_per_call(fn: Callable[[], object], budget_s: float, min_calls: int = 5) -> float:
    """Median of 5 blocks, each the mean per call over ~budget_s/5, in microseconds."""
    fn()
    t = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t, 1e-7)
    n = max(min_calls, int(budget_s / 5 / one))
    blocks = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        blocks.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(blocks)


@dataclass
class InProcess:
    model: OnnxModel
    x1: np.ndarray
    x256: np.ndarray
    rec: Recommender
    req: spb.RecommendAdjustmentsRequest

    def measure(self, res: Results, budget_s: float) -> None:
        m = self.model
        res.add("floor_b1_us", time_per_call(lambda: m.predict_model_order(self.x1), budget_s))
        res.add("floor_b256_us", time_per_call(lambda: m.predict_model_order(self.x256), budget_s))
        # The service's hot path, step by step, in this process (no gRPC): where a request's time goes.
        msg = self.req.assessment
        a = validate_assessment(convert.assessment_from_proto(msg))
        recs = self.rec.recommend(m, [a])
        res.add("inproc_convert_validate_us", time_per_call(lambda: validate_assessment(convert.assessment_from_proto(msg)), budget_s / 4))
        res.add("inproc_recommend_us", time_per_call(lambda: self.rec.recommend(m, [a]), budget_s / 2))
        res.add("inproc_recommend_noexplain_us", time_per_call(lambda: self.rec.recommend(m, [a], explain=False), budget_s / 4))
        res.add("inproc_to_proto_us", time_per_call(lambda: convert.recommendation_to_proto(recs[0]), budget_s / 4))
        x = model_input([a])
        res.add("inproc_model_row_us", time_per_call(lambda: m.predict(x), budget_s / 4))


def in_process_setup(model_dir: Path, batch: spb.BatchRecommendAdjustmentsRequest) -> InProcess:
    model = OnnxModel.load(model_dir)
    req = payloads.recommend_request()
    a = validate_assessment(convert.assessment_from_proto(req.assessment))
    x1 = np.ascontiguousarray(model_input([a])[:, model.column_index], dtype=np.float32)
    rows = [validate_assessment(convert.assessment_from_proto(m)) for m in batch.assessments[:256]]
    x256 = np.ascontiguousarray(model_input(rows)[:, model.column_index], dtype=np.float32)
    return InProcess(model, x1, x256, Recommender(Policy.default()), req)


# -- servers --------------------------------------------------------------------------------------
def start_service(out: Path, name: str, workers: int, port: int = 0, **settings: str) -> tuple[procs.Proc, float]:
    """`python -m service --address 127.0.0.1:<port> --workers N`; returns (proc, seconds to SERVING)."""
    env = dict(os.environ, ALIGN_METRICS_PORT="0", ALIGN_LOG_LEVEL="INFO", **{f"ALIGN_{k.upper()}": v for k, v in settings.items()})
    t0 = time.monotonic()
    p = procs.spawn(name, [sys.executable, "-m", "service", "--address", f"127.0.0.1:{port}", "--workers", str(workers),
                           "--models-dir", str(ROOT / "models")], out, env=env, cwd=ROOT, port=port)
    try:
        if port == 0:
            p.port = procs.read_port_line(p, "listening on port ", 60)
        t1 = procs.wait_serving(p.port, 60)
    except BaseException:
        p.stop()
        raise
    return p, t1 - t0


def start_echo(out: Path, name: str, response: Path, processes: int) -> procs.Proc:
    port = 0 if processes == 1 else procs.free_port()
    argv = [sys.executable, "-m", "bench.echo_server", "--response-file", str(response)]
    lead = procs.spawn(name, [*argv, "--address", f"127.0.0.1:{port}", *(["--reuse-port"] if processes > 1 else [])], out, cwd=ROOT, port=port)
    try:
        for i in range(1, processes):
            extra = procs.spawn(f"{name}-{i}", [*argv, "--address", f"127.0.0.1:{port}", "--reuse-port"], out, cwd=ROOT)
            lead.extra.append(extra.popen)
    except BaseException:
        lead.stop()
        raise
    return procs.await_serving(lead, 30)


def measure_startup(out: Path, res: Results, i: int) -> None:
    p, secs = start_service(out, f"startup-{i}", 1)
    try:
        res.add("startup_s", secs)
        rss, _pss = procs.rss_mb(p.popen.pid)
        res.add("startup_rss_mb", rss)
    finally:
        p.stop()


def stream_pingpong(port: int, n: int) -> list[float]:
    """A live fitting: send an update, wait for its answer, send the next. Round trips in us."""
    req = spb.StreamRecommendAdjustmentsRequest(assessment=payloads.sample_assessment())
    q: Queue[object] = Queue()
    stop = object()

    def reqs() -> Iterator[spb.StreamRecommendAdjustmentsRequest]:
        while True:
            item = q.get()
            if item is stop:
                return
            yield req

    rtts: list[float] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = payloads.stub(ch)
        t = time.perf_counter()
        q.put(1)
        responses = stub.StreamRecommendAdjustments(reqs(), timeout=60)
        for k, resp in enumerate(responses, start=1):
            now = time.perf_counter()
            rtts.append((now - t) * 1e6)
            if resp.HasField("error"):
                raise RuntimeError(f"stream update {k} failed: {resp}")
            if k >= n:
                q.put(stop)
                break
            t = time.perf_counter()
            q.put(1)
        responses.cancel()
    return rtts


# -- the run --------------------------------------------------------------------------------------
def run(cfg: Config) -> int:
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    say(f"# bench {info['date']}: {info['nproc']} x {info['cpu']}, {info['memory']}, loadavg {info['loadavg']}")
    say(f"# python {info['python']}, grpcio {info['grpcio']}, protobuf {info['protobuf']}, onnxruntime {info['onnxruntime']}")
    if not h2load.available():
        raise SystemExit("h2load not found: apt-get update && apt-get install -y nghttp2-client")
    model_dir = newest_model(cfg.wait_model_s)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    say(f"# model {model_dir.relative_to(ROOT)} ({manifest.get('model_family', '?')}, "
        f"{manifest.get('onnx', {}).get('node_count', '?')} nodes, {(model_dir / 'model.onnx').stat().st_size / 1e6:.1f} MB)")
    res = Results()
    batch = payloads.batch_request(cfg.batch_size)
    inproc = in_process_setup(model_dir, batch)

    started: list[procs.Proc] = []
    with procs.all_stopped(started):
        # Our service, 1 worker: latency, throughput per process, startup, memory, and the sample answers.
        svc1, secs = start_service(out, "service-w1", 1)
        started.append(svc1)
        res.add("startup_s", secs)
        req = payloads.recommend_request()
        with grpc.insecure_channel(f"127.0.0.1:{svc1.port}") as ch:
            stub = payloads.stub(ch)
            resp = stub.RecommendAdjustments(req, timeout=10)
            bresp = stub.BatchRecommendAdjustments(batch, timeout=60)
            sresps = list(stub.StreamRecommendAdjustments(iter([spb.StreamRecommendAdjustmentsRequest(assessment=req.assessment)] * STREAM_UPDATES), timeout=60))
        if not resp.recommendation.model.version or resp.recommendation.assessment_id != req.assessment.assessment_id:
            raise SystemExit(f"unexpected sample response: {resp}")
        bad = [r.assessment_id for r in bresp.results if r.WhichOneof("result") != "recommendation"]
        if bad:
            raise SystemExit(f"batch sample has item errors: {bad[:5]}")
        if len(sresps) != STREAM_UPDATES or any(r.HasField("error") for r in sresps):
            raise SystemExit("stream sample did not answer every update")
        files = {
            "rec": out / "recommend.framed",
            "batch": out / "batch.framed",
            "stream": out / "stream.framed",
            "canned": out / "recommend-response.bin",
        }
        files["rec"].write_bytes(payloads.grpc_frame(req.SerializeToString()))
        files["batch"].write_bytes(payloads.grpc_frame(batch.SerializeToString()))
        files["stream"].write_bytes(payloads.stream_body(STREAM_UPDATES))
        files["canned"].write_bytes(resp.SerializeToString())
        rec_bytes = len(payloads.grpc_frame(resp.SerializeToString()))
        batch_bytes = len(payloads.grpc_frame(bresp.SerializeToString()))
        stream_bytes = sum(len(payloads.grpc_frame(r.SerializeToString())) for r in sresps)
        top = resp.recommendation.adjustments[0] if resp.recommendation.adjustments else None
        say(f"# sample: request {len(req.SerializeToString())} B, response {rec_bytes - 5} B; "
            f"rank 1 = {pb.AdjustmentParameter.Name(top.parameter) if top else 'no change'}; "
            f"batch of {cfg.batch_size}: request {files['batch'].stat().st_size} B, response {batch_bytes} B")

        echo1 = start_echo(out, "echo-w1", files["canned"], 1)
        started.append(echo1)
        with grpc.insecure_channel(f"127.0.0.1:{echo1.port}") as ch:
            eresp = payloads.stub(ch).RecommendAdjustments(req, timeout=10)
        if eresp.SerializeToString() != resp.SerializeToString():
            raise SystemExit("echo server does not answer the canned response")

        # The same service with explain=false (driving features from the effect table instead of
        # occlusion, which runs the model once more on one row per present feature): shows the cost
        # of the default explanations. Informational; the targets use the defaults.
        svc1x, _ = start_service(out, "service-w1-noexplain", 1, explain="false")
        started.append(svc1x)
        with grpc.insecure_channel(f"127.0.0.1:{svc1x.port}") as ch:
            xresp = payloads.stub(ch).RecommendAdjustments(req, timeout=10)
        rec_bytes_x = len(payloads.grpc_frame(xresp.SerializeToString()))

        svc2 = echo2 = None
        if cfg.two_workers:
            svc2, _ = start_service(out, "service-w2", 2, procs.free_port())
            started.append(svc2)
            echo2 = start_echo(out, "echo-w2", files["canned"], 2)
            started.append(echo2)
            time.sleep(0.5)  # let both forked workers finish warming up
            res.notes.append(f"service-w2 processes: {svc2.pids}")

        peer = None
        if cfg.mlserver:
            why = mlserver_peer.ensure_venv(cfg.install, out / "mlserver-pip.log")
            if why:
                res.notes.append(f"MLServer peer SKIPPED: {why}")
                say(f"# MLServer peer SKIPPED: {why}")
            else:
                pred = inproc.model.predict_model_order(inproc.x1)
                want = {k: getattr(pred, k) for k in OUTPUT_NAMES}
                try:
                    peer = mlserver_peer.start(model_dir / "model.onnx", inproc.x1, want, out)
                except Exception as exc:  # the peer is optional: say why and go on
                    res.notes.append(f"MLServer peer SKIPPED: could not start: {exc}")
                    say(f"# MLServer peer SKIPPED: could not start: {exc}")
                if peer is not None:
                    started.append(peer.proc)
                    res.add("mlserver_startup_s", peer.startup_s)
                    say(f"# MLServer 1.7.1 ready in {peer.startup_s:.2f} s; same input -> outputs differ from in-process "
                        f"by {peer.max_abs_diff:.2g} (same model); V2 request {peer.request_file.stat().st_size} B")
                    if peer.max_abs_diff > 1e-5:
                        raise SystemExit("MLServer answers differ from the in-process model: not the same model?")

        def load(key: str, proc: procs.Proc, path: str, body: Path, conc: int, expect: int) -> None:
            pids = proc.pids
            per_pid0 = [procs.cpu_seconds([p]) for p in pids]
            r = h2load.run(key, proc.port, path, body, concurrency=conc, duration_s=cfg.duration_s, warmup_s=cfg.warmup_s,
                           expected_response_bytes=expect, server_pids=proc.pids, out_dir=out, cpu=cfg.gen_cpu)
            res.add_load(key, r)
            if key.startswith("batch-w2"):
                split = [procs.cpu_seconds([p]) - c0 for p, c0 in zip(pids, per_pid0, strict=True)]
                res.notes.append(f"{key}: server CPU seconds per process {[round(c, 2) for c in split]} (supervisor first)")
            flag = "" if r.ok else "  <-- NOT OK (failed/errored/non-2xx/unexpected bytes)"
            say(f"  {key:<22} c={conc:<3} {r.rps:>9.0f} req/s  p50 {r.p50_us / 1000:6.2f} ms  p99 {r.p99_us / 1000:6.2f} ms  "
                f"server {r.server_cpu_us_per_req:7.0f} CPU-us/req ({r.server_cpu_pct:3.0f}%)  h2load {r.gen_cpu_pct:3.0f}%  "
                f"others {r.other_cpu_pct:3.0f}%{flag}")

        # (key, server, method path, request file, concurrency, expected framed response bytes)
        plan: list[tuple[str, procs.Proc, str, Path, int, int]] = []
        for c in (1, 16, 64):
            plan.append((f"echo-w1-c{c}", echo1, RPC, files["rec"], c, rec_bytes))
            plan.append((f"service-w1-c{c}", svc1, RPC, files["rec"], c, rec_bytes))
            if peer is not None:
                plan.append((f"mlserver-c{c}", peer.proc, mlserver_peer.INFER_PATH, peer.request_file, c, peer.response_bytes))
        for c in (1, 16):
            plan.append((f"service-w1-noexplain-c{c}", svc1x, RPC, files["rec"], c, rec_bytes_x))
        plan.append(("batch-w1-c1", svc1, BATCH_RPC, files["batch"], 1, batch_bytes))
        # Two calls in flight on one worker: onnxruntime releases the GIL, so one call's model runs
        # while the other's Python does.
        plan.append(("batch-w1-c2", svc1, BATCH_RPC, files["batch"], 2, batch_bytes))
        plan.append(("stream-w1-c1", svc1, STREAM_RPC, files["stream"], 1, stream_bytes))
        if svc2 is not None and echo2 is not None:
            plan.append(("echo-w2-c64", echo2, RPC, files["rec"], 64, rec_bytes))
            plan.append(("service-w2-c64", svc2, RPC, files["rec"], 64, rec_bytes))
            # 8 connections (one call each), as a platform re-scoring history with a few parallel
            # channels would send: SO_REUSEPORT places connections on workers by a hash of the
            # client port, so with 2 connections both land on one worker half of the time (that is
            # why batch-w2-c2 used to equal 1 worker); with 8, both workers get work.
            plan.append(("batch-w2-c8", svc2, BATCH_RPC, files["batch"], 8, batch_bytes))

        for rnd in range(cfg.rounds):
            say(f"## round {rnd + 1}/{cfg.rounds}")
            inproc.measure(res, 0.4 if cfg.rounds > 1 else 0.2)
            say(f"  in-process model      batch 1 {res.values['floor_b1_us'][-1]:8.1f} us/call   "
                f"batch 256 {res.values['floor_b256_us'][-1]:9.1f} us/call ({res.values['floor_b256_us'][-1] / 256:.1f} us/row)")
            # Rotate the order every round so slow drifts (other tenants, thermal) hit every target alike.
            k = rnd % len(plan)
            for step in plan[k:] + plan[:k]:
                load(*step)
            rtts = stream_pingpong(svc1.port, 100 if cfg.rounds > 1 else 40)
            res.add("stream_pingpong_p50_us", float(np.percentile(rtts[1:], 50)))
            say(f"  stream ping-pong      p50 round trip {res.values['stream_pingpong_p50_us'][-1] / 1000:.2f} ms per update")
            if rnd < 2:
                measure_startup(out, res, rnd)
                say(f"  startup to SERVING    {res.values['startup_s'][-1]:.2f} s")

        for label, proc in (("w1", svc1), ("w2", svc2)):
            if proc is None:
                continue
            workers = [proc.popen.pid] if label == "w1" else procs.children(proc.popen.pid)
            for pid in workers:
                rss, pss = procs.rss_mb(pid)
                res.add(f"rss_{label}_mb", rss)
                res.add(f"pss_{label}_mb", pss)
        if peer is not None:
            res.add("mlserver_rss_mb", procs.rss_mb(peer.proc.popen.pid)[0])

        if cfg.profile:
            profile(cfg, "default settings", svc1, files["rec"], rec_bytes, res)
            profile(cfg, "explain=false", svc1x, files["rec"], rec_bytes_x, res)

    if cfg.training:
        time_training(res)
    report = summarize(cfg, info, manifest, model_dir, res)
    (out / "report.md").write_text(report)
    say(report)
    say(f"(report also written to {(out / 'report.md').relative_to(ROOT) if out.is_relative_to(ROOT) else out})")
    return 0


def profile(cfg: Config, label: str, svc: procs.Proc, body: Path, expect: int, res: Results) -> None:
    from bench import profiling

    if shutil.which("py-spy") is None:
        res.notes.append("profile SKIPPED: py-spy not installed (pip install py-spy)")
        return
    say(f"## profiling the 1-worker service ({label}) with py-spy for {cfg.profile_s:.0f} s under c=16 load")
    raw = cfg.out / f"profile-{label.replace('=', '-').replace(' ', '-')}.collapsed"
    raw.unlink(missing_ok=True)
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(svc.popen.pid), "--rate", "250", "--duration", f"{cfg.profile_s:.0f}",
                            "--format", "raw", "--output", str(raw), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(0.5)
        h2load.run("profile-load", svc.port, RPC, body, concurrency=16, duration_s=cfg.profile_s, warmup_s=0.1,
                   expected_response_bytes=expect, server_pids=svc.pids, out_dir=cfg.out)
        spy.wait(30)
    finally:
        procs.stop_group(spy)
    if raw.exists():
        res.notes.append(profiling.summarize(raw, label))
    else:
        res.notes.append("profile: py-spy wrote nothing (ptrace not permitted?)")


def time_training(res: Results) -> None:
    """`python -m training all` with its defaults, into a scratch workdir and model root."""
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        say("## timing `python -m training all` (defaults; output to a scratch dir, models/ untouched)")
        t0 = time.monotonic()
        cp = subprocess.run([sys.executable, "-m", "training", "all", "--workdir", f"{tmp}/work", "--out", f"{tmp}/models"],
                            cwd=ROOT, capture_output=True, text=True, timeout=1800, start_new_session=True, check=False)
        secs = time.monotonic() - t0
        if cp.returncode != 0:
            res.notes.append(f"training FAILED after {secs:.0f} s (exit {cp.returncode}): {cp.stderr.strip()[-400:]}")
            return
        res.add("training_s", secs)


# -- report ---------------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> float:
    return a / b if b and not np.isnan(b) else float("nan")


def summarize(cfg: Config, info: dict[str, str], manifest: dict[str, object], model_dir: Path, res: Results) -> str:
    L: list[str] = []
    lm = res.load_med
    all_ok = all(r.ok for rs in res.loads.values() for r in rs)
    n = cfg.rounds
    L.append(f"## Results ({info['date']}; {n} interleaved round(s), {cfg.duration_s:g} s per load + {cfg.warmup_s:g} s warm-up; medians)")
    L.append("")
    L.append(f"Machine: {info['nproc']} cores, {info['cpu']}, {info['memory']}; Python {info['python']}, grpcio {info['grpcio']}, "
             f"protobuf {info['protobuf']}, onnxruntime {info['onnxruntime']}; load average at start {info['loadavg']}.")
    L.append(f"Model: {model_dir.relative_to(ROOT)} ({manifest.get('model_family', '?')}). Load generator: h2load "
             f"(nghttp2), 1 thread; every load: {'0 failed / 0 errored / all 2xx / every response the expected size' if all_ok else 'SOME LOADS NOT OK (see above)'}.")
    L.append("")
    L.append("| what | value |")
    L.append("|---|---|")
    b1, b256 = res.med("floor_b1_us"), res.med("floor_b256_us")
    L.append(f"| floor: OnnxModel.predict_model_order, batch 1 (in process) | {b1:.1f} us |")
    L.append(f"| floor: batch 256 | {b256 / 1000:.2f} ms ({b256 / 256:.1f} us/row, {256e6 / b256:,.0f} rows/s on one core) |")
    L.append(f"| in process: convert + validate one request | {res.med('inproc_convert_validate_us'):.0f} us |")
    L.append(f"| in process: recommend (explain on: occlusion) | {res.med('inproc_recommend_us'):.0f} us (model alone {res.med('inproc_model_row_us'):.0f} us) |")
    L.append(f"| in process: recommend (explain off) | {res.med('inproc_recommend_noexplain_us'):.0f} us |")
    L.append(f"| in process: response to proto | {res.med('inproc_to_proto_us'):.0f} us |")
    rows = [
        ("echo-w1-c1", "echo server, 1 process, c=1"), ("service-w1-c1", "service, 1 worker, c=1"), ("mlserver-c1", "MLServer, c=1"),
        ("echo-w1-c16", "echo, c=16"), ("service-w1-c16", "service w1, c=16"), ("mlserver-c16", "MLServer, c=16"),
        ("echo-w1-c64", "echo, c=64"), ("service-w1-c64", "service w1, c=64"), ("mlserver-c64", "MLServer, c=64"),
        ("echo-w2-c64", "echo, 2 processes (SO_REUSEPORT), c=64"), ("service-w2-c64", "service, 2 workers, c=64"),
        ("service-w1-noexplain-c1", "service w1, explain=false, c=1"), ("service-w1-noexplain-c16", "service w1, explain=false, c=16"),
    ]
    for key, label in rows:
        if key in res.loads:
            L.append(f"| {label} | {lm(key, 'rps'):,.0f} req/s, p50 {lm(key, 'p50_us') / 1000:.2f} ms, p99 {lm(key, 'p99_us') / 1000:.2f} ms; "
                     f"server {lm(key, 'server_cpu_us_per_req'):,.0f} CPU-us/req; h2load {lm(key, 'gen_cpu_pct'):.0f}% of a core |")
    batch_rates = {k: lm(k, "rps") * cfg.batch_size for k in ("batch-w1-c1", "batch-w1-c2", "batch-w2-c8") if k in res.loads}
    for bk, v in batch_rates.items():
        L.append(f"| BatchRecommendAdjustments ({cfg.batch_size}/call, {bk}) | {v:,.0f} assessments/s "
                 f"({lm(bk, 'p50_us') / 1000:.0f} ms per call; server {lm(bk, 'server_cpu_us_per_req') / cfg.batch_size:.0f} CPU-us "
                 "per assessment) |")
    if "stream-w1-c1" in res.loads:
        L.append(f"| stream session, {STREAM_UPDATES} updates pipelined (w1) | {lm('stream-w1-c1', 'rps') * STREAM_UPDATES:,.0f} updates/s |")
    L.append(f"| stream session, live ping-pong (send, await answer), Python client | p50 {res.med('stream_pingpong_p50_us') / 1000:.2f} ms "
             f"per update = {1e6 / res.med('stream_pingpong_p50_us'):,.0f} updates/s |")
    startups = res.values.get("startup_s", [])
    L.append(f"| startup to SERVING (`python -m service --workers 1`) | median {res.med('startup_s'):.2f} s, max {max(startups):.2f} s over {len(startups)} |")
    rss_keys = [k for k in ("rss_w1_mb", "rss_w2_mb") if k in res.values]
    for k in rss_keys:
        pk = k.replace("rss", "pss")
        L.append(f"| resident memory per worker after load ({k[4:6]}) | RSS {max(res.values[k]):.0f} MB (PSS {max(res.values[pk]):.0f} MB) |")
    if "mlserver_rss_mb" in res.values:
        L.append(f"| MLServer: RSS {res.med('mlserver_rss_mb'):.0f} MB, ready in {res.med('mlserver_startup_s'):.1f} s | |")
    L.append("")

    # Ratios and targets.
    checks: list[tuple[str, float, str, bool | None]] = []
    p50_ratio = _ratio(lm("service-w1-c1", "p50_us"), lm("echo-w1-c1", "p50_us"))
    checks.append((f"RecommendAdjustments p50 at c=1 vs bare echo (<= {TARGET_P50_VS_ECHO}x)", p50_ratio, "x", p50_ratio <= TARGET_P50_VS_ECHO))

    def peak(prefix: str) -> float:
        vals = [lm(f"{prefix}-c{c}", "rps") for c in (16, 64) if f"{prefix}-c{c}" in res.loads]
        return max(vals) if vals else float("nan")

    svc_tp, echo_tp, ml_tp = peak("service-w1"), peak("echo-w1"), peak("mlserver")
    if "mlserver-c16" in res.loads:
        r = _ratio(svc_tp, ml_tp)
        checks.append((f"throughput (best of c=16/64), service 1 worker vs tuned MLServer (>= {TARGET_THROUGHPUT_VS_MLSERVER}x)", r, "x", r >= TARGET_THROUGHPUT_VS_MLSERVER))
        if "service-w2-c64" in res.loads:
            r2 = _ratio(lm("service-w2-c64", "rps"), lm("mlserver-c64", "rps"))
            checks.append(("  (info) service 2 workers vs MLServer (parallel_workers 0), c=64", r2, "x", None))
    else:
        checks.append(("throughput vs tuned MLServer: NOT MEASURED (peer skipped)", float("nan"), "x", None))
    if "service-w1-noexplain-c1" in res.loads:
        rx = _ratio(lm("service-w1-noexplain-c1", "p50_us"), lm("echo-w1-c1", "p50_us"))
        checks.append(("  (info) the same p50 ratio with explain=false", rx, "x", None))
        rx = _ratio(lm("service-w1-noexplain-c16", "rps"), lm("mlserver-c16", "rps")) if "mlserver-c16" in res.loads else float("nan")
        checks.append(("  (info) c=16 throughput vs MLServer with explain=false", rx, "x", None))
    r = _ratio(svc_tp, echo_tp)
    checks.append((f"throughput (best of c=16/64), service 1 worker vs echo 1 process (>= {TARGET_THROUGHPUT_VS_ECHO}x)", r, "x", r >= TARGET_THROUGHPUT_VS_ECHO))
    if "service-w2-c64" in res.loads:
        r2 = _ratio(lm("service-w2-c64", "rps"), lm("echo-w2-c64", "rps"))
        checks.append((f"throughput c=64, service 2 workers vs echo 2 processes (>= {TARGET_THROUGHPUT_VS_ECHO}x)", r2, "x", r2 >= TARGET_THROUGHPUT_VS_ECHO))
    best_batch = max(batch_rates.values()) if batch_rates else float("nan")
    checks.append((f"BatchRecommendAdjustments (>= {TARGET_BATCH_PER_S:,} assessments/s)", best_batch, "/s", best_batch >= TARGET_BATCH_PER_S))
    checks.append((f"startup to SERVING, median (<= {TARGET_STARTUP_S:g} s)", res.med("startup_s"), "s", res.med("startup_s") <= TARGET_STARTUP_S))
    rss = max(max(res.values[k]) for k in rss_keys) if rss_keys else float("nan")
    checks.append((f"resident memory per worker, max RSS (<= {TARGET_RSS_MB:g} MB)", rss, "MB", rss <= TARGET_RSS_MB))
    if "training_s" in res.values:
        t = res.med("training_s")
        checks.append((f"`python -m training all`, timed in this run (<= {TARGET_TRAINING_S:g} s)", t, "s", t <= TARGET_TRAINING_S))
    else:
        t = float(manifest.get("pipeline_seconds", float("nan")))  # type: ignore[arg-type]
        checks.append((f"`python -m training all` as recorded by the pipeline in manifest.json, not timed here (<= {TARGET_TRAINING_S:g} s)",
                       t, "s", t <= TARGET_TRAINING_S if not np.isnan(t) else None))
    if not all_ok:
        checks.append(("every load answered without error, with the expected response size", float("nan"), "", False))
    L.append("### Targets")
    L.append("")
    L.append("```")
    for label, value, unit, ok in checks:
        verdict = "INFO" if ok is None else ("PASS" if ok else "FAIL")
        shown = f"{value:,.0f}" if unit == "/s" else f"{value:.2f}"
        L.append(f"{verdict:<4}  {label}: {shown}{'' if unit == '/s' else ' '}{unit if unit != '/s' else ' /s'}")
    L.append("```")
    L.append("")
    others = [r.other_cpu_pct for rs in res.loads.values() for r in rs]
    gens = [r.gen_cpu_pct for rs in res.loads.values() for r in rs]
    L.append(f"Trust: h2load used {statistics.median(gens):.0f}% of one core (median, max {max(gens):.0f}%) of the 2 cores; "
             f"processes outside the measurement used {statistics.median(others):.0f}% of a core (median, max {max(others):.0f}%) "
             "while loads ran. CPU-us/req is the server processes' own CPU time per request (warm-up included), which "
             "is less sensitive to such neighbours than req/s.")
    for note in res.notes:
        L.append("")
        L.append(note)
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="< 60 s smoke run: 1 round, short loads, no 2-worker runs")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; --quick 1)")
    ap.add_argument("--duration", type=float, default=None, help="seconds per load (default 3; --quick 1.2)")
    ap.add_argument("--batch-size", type=int, default=1000, help="assessments per BatchRecommendAdjustments call")
    ap.add_argument("--no-mlserver", action="store_true", help="skip the MLServer peer")
    ap.add_argument("--no-install", action="store_true", help="do not create bench/.venv-mlserver if missing (skip the peer)")
    ap.add_argument("--profile", action="store_true", help="py-spy the 1-worker service under c=16 load and summarize")
    ap.add_argument("--profile-seconds", type=float, default=10.0)
    ap.add_argument("--training", action="store_true", help="also time `python -m training all` (several minutes)")
    ap.add_argument("--gen-cpu", default=None, help="taskset CPU list for h2load, e.g. 1 (default: not pinned)")
    ap.add_argument("--wait-model", type=float, default=0.0, help="seconds to wait for models/alignment/<version>/")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    a = ap.parse_args(argv)
    cfg = Config(
        rounds=a.rounds or (1 if a.quick else 3),
        duration_s=a.duration or (1.2 if a.quick else 3.0),
        warmup_s=0.3 if a.quick else 0.5,
        batch_size=a.batch_size,
        two_workers=not a.quick,
        mlserver=not a.no_mlserver,
        install=not a.no_install,
        profile=a.profile,
        profile_s=a.profile_seconds,
        training=a.training,
        gen_cpu=a.gen_cpu,
        wait_model_s=a.wait_model,
        out=a.out,
    )
    return run(cfg)
