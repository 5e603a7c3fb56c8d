"""Hostile requests on the wire, with a health probe running throughout (issue 15).

    python -m bench.fuzz                      # 100,000 calls against `python -m service --workers 2`
    python -m bench.fuzz --count 5000 --workers 1

Every RPC of the service (the six AlignmentService methods, ReloadModels, Health.Check and
reflection) gets random and malformed messages as raw bytes: valid requests, byte-level mutations
of them (unknown enum values, odd floats, repeated fields, cut strings, undecodable tags), generated
recordings for every sensor kind (wrong channels, lengths, rates, NaN and infinities, a side copied
onto the other), and plain garbage. A second process probes Health/Check every 50 ms on its own
connection. Passing means: no INTERNAL and no UNKNOWN (nor in a batch or stream item), the server
alive at the end, and every health probe answered SERVING within 100 ms.

tests/integration/test_fuzz_requests.py runs the same driver with a bounded count in CI.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from bench import procs
from service._generated.prosthetic_alignment.v1 import alignment_admin_service_pb2 as admin_pb
from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.catalog import FEATURE_NAMES, SensorKind
from service.client import load_assessment
from service.extraction import CHANNELS, OPTIONS
from service.sensors import observation

ROOT = Path(__file__).resolve().parents[1]
SVC = "/prosthetic_alignment.v1.AlignmentService/"
# The codes a client may get for a bad request or an overloaded server; anything else is our bug
# (INTERNAL, UNKNOWN) or a dead server (UNAVAILABLE).
ALLOWED = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
ALLOWED_NAMES = frozenset(c.name for c in ALLOWED)
HEALTH_LIMIT_S = 0.100


@dataclass(frozen=True)
class Case:
    method: str  # full path
    kind: str  # "unary" or "stream"
    payload: tuple[bytes, ...]  # one message, or a stream's messages


@dataclass
class Report:
    sent: int = 0
    elapsed_s: float = 0.0
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)  # INTERNAL/UNKNOWN/unexpected, with the method
    bad_items: int = 0
    health_s: list[float] = field(default_factory=list)
    health_failures: int = 0
    server_alive: bool = True
    error_logs: int = 0  # ERROR lines in the server's log (tracebacks of unexpected failures)

    @property
    def internal_or_unknown(self) -> int:
        return sum(k for (_m, c), k in self.codes.items() if c in ("INTERNAL", "UNKNOWN")) + self.bad_items

    @property
    def unexpected(self) -> int:
        return sum(k for (_m, c), k in self.codes.items() if c not in ALLOWED_NAMES)

    def health_max_s(self) -> float:
        return max(self.health_s) if self.health_s else math.nan

    def health_p99_s(self) -> float:
        if len(self.health_s) < 2:
            return self.health_max_s()
        return statistics.quantiles(self.health_s, n=100)[98]

    def passed(self, health_limit_s: float = HEALTH_LIMIT_S) -> bool:
        return (
            self.unexpected == 0
            and self.bad_items == 0
            and self.error_logs == 0
            and self.server_alive
            and self.health_failures == 0
            and bool(self.health_s)
            and self.health_max_s() < health_limit_s
        )

    def summary(self) -> str:
        by_code: Counter[str] = Counter()
        for (_m, c), k in self.codes.items():
            by_code[c] += k
        lines = [
            f"{self.sent:,} calls in {self.elapsed_s:.1f} s ({self.sent / max(self.elapsed_s, 1e-9):,.0f}/s); "
            f"codes: {dict(sorted(by_code.items()))}",
            f"INTERNAL or UNKNOWN (calls and items): {self.internal_or_unknown}; other unexpected codes: "
            f"{self.unexpected - sum(k for (_m, c), k in self.codes.items() if c in ('INTERNAL', 'UNKNOWN'))}; "
            f"server alive: {self.server_alive}",
            f"health probes: {len(self.health_s)} answered, {self.health_failures} failed; latency p50 "
            f"{1000 * statistics.median(self.health_s) if self.health_s else math.nan:.1f} ms, "
            f"p99 {1000 * self.health_p99_s():.1f} ms, max {1000 * self.health_max_s():.1f} ms; "
            f"{sum(1 for x in self.health_s if x >= HEALTH_LIMIT_S)} at or over {1000 * HEALTH_LIMIT_S:.0f} ms",
        ]
        per_method: dict[str, Counter[str]] = {}
        for (m, c), k in self.codes.items():
            per_method.setdefault(m.rsplit("/", 1)[-1], Counter())[c] += k
        for m, cs in sorted(per_method.items()):
            lines.append(f"  {m:28s} {dict(sorted(cs.items()))}")
        shown: Counter[str] = Counter()
        for b in self.bad:  # a few of each kind
            key = b.split(":", 1)[0]
            shown[key] += 1
            if shown[key] <= 3:
                lines.append(f"  BAD {b}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ generation
class Generator:
    """Reproducible hostile requests (seeded)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        examples = sorted((ROOT / "examples").glob("*.json"))
        self.assessments = [load_assessment(p) for p in examples]
        self.bases = [a.SerializeToString() for a in self.assessments]

    # -- bytes -----------------------------------------------------------------------------------
    def mutate(self, data: bytes) -> bytes:
        rng = self.rng
        b = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            i = rng.randrange(len(b)) if b else 0
            if op < 0.35 and b:
                b[i] = rng.randrange(256)  # any byte: tags, lengths, enum values, float bits
            elif op < 0.55 and b:
                b[i] ^= 1 << rng.randrange(8)
            elif op < 0.7:
                b[i:i] = rng.randbytes(rng.randint(1, 9))
            elif op < 0.85 and b:
                del b[i : i + rng.randint(1, 9)]
            else:  # repeat a slice: duplicated features and fields
                j = rng.randrange(len(b) + 1)
                b[j:j] = b[i : i + rng.randint(1, 60)]
        return bytes(b)

    def garbage(self) -> bytes:
        rng = self.rng
        pick = rng.random()
        if pick < 0.3:
            return rng.randbytes(rng.randint(0, 64))
        if pick < 0.5:
            return b"\xff\xff\xff\xff\x0f" + rng.randbytes(rng.randint(0, 16))  # an invalid tag
        if pick < 0.7:  # a length-delimited field claiming more bytes than follow
            return bytes([0x0A]) + bytes([0xFF, 0xFF, 0x03]) + rng.randbytes(rng.randint(0, 32))
        if pick < 0.85:  # deep nesting
            depth = rng.randint(50, 200)
            out = b""
            for _ in range(depth):
                out = b"\x0a" + _varint(len(out)) + out
            return out
        return self.mutate(rng.choice(self.bases))[: rng.randint(0, 40)]

    def shaped(self, valid: bytes) -> bytes:
        """The valid message, mutated, cut or replaced by garbage."""
        r = self.rng.random()
        if r < 0.25:
            return valid
        if r < 0.8:
            return self.mutate(valid)
        if r < 0.9:
            return valid[: self.rng.randrange(len(valid) + 1)]
        return self.garbage()

    # -- messages --------------------------------------------------------------------------------
    def assessment(self) -> pb.GaitAssessment:
        rng = self.rng
        a = pb.GaitAssessment()
        a.CopyFrom(rng.choice(self.assessments))
        r = rng.random()
        if r < 0.15:  # hostile but parseable content
            choice = rng.randrange(6)
            if choice == 0:
                for k in range(rng.randint(1, 300)):
                    a.features.add(name=f"no_such_feature_{k}", value=rng.random())
            elif choice == 1:
                for _ in range(rng.randint(1, 300)):
                    a.features.add(name=rng.choice(FEATURE_NAMES), value=rng.uniform(-1e6, 1e6))
            elif choice == 2:
                a.features.add(name="x" * rng.randint(100, 30_000), value=1.0)
            elif choice == 3:
                a.assessment_id = "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(1, 400)))
            elif choice == 4:
                for f in a.features:
                    f.value = rng.choice([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324])
                    f.unit = rng.choice(["", "furlongs", "rad", "cm", "N*m", "%" * 50])
            else:
                a.patient.body_mass_kg = rng.choice([0.0, -1.0, math.nan, 1e12])
                a.patient.amputation_level = rng.choice([0, 3, 99, -5])  # type: ignore[assignment]
        return a

    def recording(self) -> pb.Recording:
        rng = self.rng
        kind = rng.choice(list(CHANNELS))
        rec = pb.Recording()
        wire_kind: int = pb.SensorKind.Value("SENSOR_KIND_" + kind.value)
        if rng.random() < 0.05:
            wire_kind = rng.choice([0, 42, *range(1, 8)])  # unset, unknown, or another kind's
        rec.sensor_kind = wire_kind  # type: ignore[assignment]
        rate = rng.choice([100.0, 60.0, 200.0, 30.0])
        if rng.random() < 0.05:
            rate = rng.choice([0.0, -50.0, math.nan, math.inf, 1e-9, 1e9])
        rec.sampling_rate_hz = rate
        for k, values in OPTIONS[kind].items():
            if rng.random() < 0.5:
                rec.options[k] = rng.choice(values)
        if rng.random() < 0.05:
            rec.options[rng.choice(["layout", "view", "junk"])] = rng.choice(["", "??", "coco17"])
        names = list(CHANNELS[kind])
        chosen = rng.sample(names, rng.randint(1, len(names))) if names else []
        if rng.random() < 0.1:
            chosen.append(rng.choice(["no_such_channel", "", "x" * 300]))
        n = rng.choice([700, 1200]) if rng.random() < 0.9 else rng.choice([0, 1, 7, 240])
        comps = 3 if kind is SensorKind.MOTION_CAPTURE else 1
        if kind is SensorKind.VIDEO_POSE:
            comps = (33 if rec.options.get("layout") == "mediapipe33" else 17) * rng.choice([2, 3])
            n = min(n, 300)
        signals: dict[str, list[float]] = {}
        for name in chosen:
            c = comps if rng.random() > 0.05 else rng.choice([0, 2, 5, -1])
            mirrored = name.replace("left", "right") if "left" in name else None
            if mirrored is not None and mirrored in signals and rng.random() < 0.3:
                vals = list(signals[mirrored])  # a side copied onto the other
            else:
                vals = self.signal(n, max(c, 1), rate)
            signals[name] = vals
            unit = rng.choice(["g", "m/s^2", "deg/s", "rad/s", "mm", "px", "kN", "furlongs"]) if rng.random() < 0.05 else ""
            rec.channels.add(name=name, values=vals, components=c, unit=unit)
        if kind is SensorKind.OBSERVATION or rng.random() < 0.03:
            for item in rng.sample([*observation.ITEMS, "not_an_item"], rng.randint(0, 4)):
                rec.observations[item] = rng.choice(["true", "false", "", "2", "marked"])
        if rng.random() < 0.03:
            rec.c3d_file = rng.randbytes(rng.randint(0, 300))
        return rec

    def signal(self, n: int, comps: int, rate: float) -> list[float]:
        rng = self.rng
        kind = rng.choice(["gait", "gait", "gait", "noise", "zeros", "constant", "huge", "stuck"])
        fs = rate if math.isfinite(rate) and 1.0 <= rate <= 1000.0 else 100.0
        period = rng.choice([0.55, 1.1, 1.4, 3.0])
        amp = rng.choice([800.0, 40.0, 2.0])
        noise = rng.choice([0.0, 5.0, 50.0])
        phase = rng.random() * 2 * math.pi
        out: list[float] = []
        for i in range(n):
            t = i / fs
            base = max(0.0, math.sin(2 * math.pi * t / period + phase)) * amp
            for c in range(comps):
                if kind == "gait":
                    v = base + (c * 0.1) + rng.gauss(0.0, noise) if noise else base + c * 0.1
                elif kind == "noise":
                    v = rng.gauss(0.0, 100.0)
                elif kind == "zeros":
                    v = 0.0
                elif kind == "constant":
                    v = -700.0
                elif kind == "stuck":
                    v = base if i < n // 3 else out[(n // 3 - 1) * comps + c] if n >= 3 else 0.0
                else:
                    v = 1e300 if (i + c) % 2 else -1e300
                out.append(v)
        if out and rng.random() < 0.25:
            for _ in range(max(1, len(out) // 20)):
                out[rng.randrange(len(out))] = rng.choice([math.nan, math.inf, -math.inf])
        return out

    def patient(self) -> pb.PatientContext | None:
        rng = self.rng
        if rng.random() < 0.05:
            return None
        p = pb.PatientContext(amputation_level=rng.choice([1, 2]), prosthetic_side=rng.choice([1, 2]), body_mass_kg=80.0)  # type: ignore[arg-type]
        if rng.random() < 0.07:
            p.amputation_level = rng.choice([0, 9])  # type: ignore[assignment]
            p.prosthetic_side = rng.choice([0, 9])  # type: ignore[assignment]
            p.body_mass_kg = rng.choice([0.0, -3.0, math.nan, 1e9])
        return p

    def model_version(self) -> str:
        rng = self.rng
        return rng.choice(["", "", "", "1.0.0", "9.9.9", "v" * rng.randint(1, 5000), "../../etc/passwd", "\u0000\u202e"])

    # -- cases -----------------------------------------------------------------------------------
    def case(self, only: str = "") -> Case:
        """One call; `only` keeps drawing until the method's name contains it (for bisecting)."""
        while True:
            c = self._case()
            if only in c.method:
                return c

    def _case(self) -> Case:
        rng = self.rng
        r = rng.random()
        if r < 0.30:
            req = spb.RecommendAdjustmentsRequest(assessment=self.assessment(), model_version=self.model_version())
            return Case(SVC + "RecommendAdjustments", "unary", (self.shaped(req.SerializeToString()),))
        if r < 0.40:
            breq = spb.BatchRecommendAdjustmentsRequest(model_version=self.model_version())
            for _ in range(rng.randint(0, 20)):
                breq.assessments.append(self.assessment())
            return Case(SVC + "BatchRecommendAdjustments", "unary", (self.shaped(breq.SerializeToString()),))
        if r < 0.52:
            msgs = []
            for _ in range(rng.randint(1, 6)):
                sreq = spb.StreamRecommendAdjustmentsRequest(assessment=self.assessment(), model_version=self.model_version())
                msgs.append(self.shaped(sreq.SerializeToString()))
            return Case(SVC + "StreamRecommendAdjustments", "stream", tuple(msgs))
        if r < 0.57:
            return Case(SVC + "GetModel", "unary", (self.shaped(spb.GetModelRequest(model_version=self.model_version()).SerializeToString()),))
        if r < 0.77:
            ereq = spb.ExtractFeaturesRequest(recordings=[self.recording() for _ in range(rng.randint(1, 3))])
            pat = self.patient()
            if pat is not None:
                ereq.patient.CopyFrom(pat)
            data = ereq.SerializeToString()
            return Case(SVC + "ExtractFeatures", "unary", (data if rng.random() < 0.7 else self.shaped(data),))
        if r < 0.92:
            rreq = spb.RecommendFromRecordingsRequest(assessment_id="fuzz", recordings=[self.recording() for _ in range(rng.randint(1, 3))])
            pat = self.patient()
            if pat is not None:
                rreq.patient.CopyFrom(pat)
            data = rreq.SerializeToString()
            return Case(SVC + "RecommendFromRecordings", "unary", (data if rng.random() < 0.7 else self.shaped(data),))
        if r < 0.97:
            hreq = health_pb2.HealthCheckRequest(service=rng.choice(["", "prosthetic_alignment.v1.AlignmentService", "nope", "x" * 300]))
            return Case("/grpc.health.v1.Health/Check", "unary", (self.shaped(hreq.SerializeToString()),))
        if r < 0.99:
            from grpc_reflection.v1alpha import reflection_pb2

            ref = reflection_pb2.ServerReflectionRequest(list_services="*") if rng.random() < 0.5 else reflection_pb2.ServerReflectionRequest(
                file_containing_symbol=rng.choice(["prosthetic_alignment.v1.AlignmentService", "nope", "x" * 500])
            )
            return Case("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "stream", (self.shaped(ref.SerializeToString()),))
        # The admin reload rescans the model directory: rare, and mostly malformed.
        return Case(
            "/prosthetic_alignment.v1.AlignmentAdminService/ReloadModels", "unary",
            (self.garbage() if rng.random() < 0.7 else admin_pb.ReloadModelsRequest().SerializeToString(),),
        )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# --------------------------------------------------------------------------------------- checking
def _check_items(method: str, answers: list[bytes]) -> list[str]:
    """INTERNAL/UNKNOWN (or unexpected) codes inside batch and stream items."""
    bad: list[str] = []
    if method.endswith("BatchRecommendAdjustments"):
        for b in answers:
            resp = spb.BatchRecommendAdjustmentsResponse.FromString(b)
            bad += [r.error.code for r in resp.results if r.WhichOneof("result") == "error" and r.error.code not in ALLOWED_NAMES]
    elif method.endswith("StreamRecommendAdjustments"):
        for b in answers:
            sresp = spb.StreamRecommendAdjustmentsResponse.FromString(b)
            if sresp.WhichOneof("result") == "error" and sresp.error.code not in ALLOWED_NAMES:
                bad.append(sresp.error.code)
    return bad


def _call(channel: grpc.Channel, case: Case, timeout_s: float) -> tuple[grpc.StatusCode, str, list[bytes]]:
    try:
        if case.kind == "unary":
            fn = channel.unary_unary(case.method, request_serializer=None, response_deserializer=None)
            return grpc.StatusCode.OK, "", [fn(case.payload[0], timeout=timeout_s)]
        sfn = channel.stream_stream(case.method, request_serializer=None, response_deserializer=None)
        return grpc.StatusCode.OK, "", list(sfn(iter(case.payload), timeout=timeout_s))
    except grpc.RpcError as err:
        return err.code(), (err.details() or "")[:200], []


# ---------------------------------------------------------------------------------------- probing
def _probe(address: str, interval_s: float, stop: Any, out: Any) -> None:
    """In its own process (own GIL): Health/Check every interval_s; latencies or -1 for a failure."""
    from grpc_health.v1 import health_pb2_grpc

    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        stub.Check(health_pb2.HealthCheckRequest(), timeout=10)  # connected before timing
        lat: list[float] = []
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                ok = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status == health_pb2.HealthCheckResponse.SERVING
                lat.append(time.perf_counter() - t0 if ok else -1.0)
            except grpc.RpcError:
                lat.append(-1.0)
            time.sleep(interval_s)
        out.put(lat)


class HealthProbe:
    def __init__(self, address: str, interval_s: float = 0.05) -> None:
        ctx = mp.get_context("spawn")  # no fork of a process holding gRPC channels
        self._stop = ctx.Event()
        self._out: Any = ctx.Queue()
        self._proc = ctx.Process(target=_probe, args=(address, interval_s, self._stop, self._out), daemon=True)

    def __enter__(self) -> HealthProbe:
        self._proc.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._proc.is_alive():
            self._stop.set()

    def results(self, timeout_s: float = 20.0) -> list[float]:
        self._stop.set()
        try:
            lat: list[float] = self._out.get(timeout=timeout_s)
        finally:
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
        return lat


# ---------------------------------------------------------------------------------------- driving
def run(
    address: str,
    count: int,
    *,
    seed: int = 0,
    threads: int = 4,
    time_limit_s: float = 600.0,
    call_timeout_s: float = 15.0,
    alive: Callable[[], bool] = lambda: True,
    progress: Callable[[int], None] | None = None,
    only: str = "",
) -> Report:
    """Send `count` hostile calls (or as many as fit `time_limit_s`) with a health probe throughout."""
    report = Report()
    lock = threading.Lock()
    gens = [Generator(seed * 1000 + k) for k in range(threads)]
    stop_at = time.monotonic() + time_limit_s
    next_index = iter(range(count))

    def worker(k: int) -> None:
        gen = gens[k]
        # One channel per thread, each its own connection (a multi-worker server spreads them).
        with grpc.insecure_channel(
            address, options=[("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        ) as ch:
            while time.monotonic() < stop_at:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                case = gen.case(only)
                code, details, answers = _call(ch, case, call_timeout_s)
                try:
                    items = _check_items(case.method, answers)
                except Exception as exc:  # an answer that does not parse is our bug too
                    items = [f"unparseable answer: {exc}"]
                with lock:
                    report.sent += 1
                    report.codes[case.method, code.name] += 1
                    if code not in ALLOWED:
                        report.bad.append(f"{case.method} {code.name}: {details}")
                    if items:
                        report.bad_items += len(items)
                        report.bad.append(f"{case.method} items {items[:3]}")
                    if progress is not None and report.sent % 5000 == 0:
                        progress(report.sent)

    t0 = time.monotonic()
    with HealthProbe(address) as probe, futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
        lat = probe.results()
    report.elapsed_s = time.monotonic() - t0
    report.health_s = [x for x in lat if x >= 0]
    report.health_failures = sum(1 for x in lat if x < 0)
    report.server_alive = alive()
    return report


def _serving(address: str) -> bool:
    from grpc_health.v1 import health_pb2_grpc

    try:
        with grpc.insecure_channel(address) as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status
            return bool(status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def serve_and_run(count: int, *, workers: int, seed: int, threads: int, time_limit_s: float,
                  log: Callable[[str], None] = print, log_dir: Path | None = None, only: str = "") -> Report:
    """Start `python -m service` (its own process group), fuzz it, stop it."""
    port = procs.free_port()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as scratch:
        tmp = log_dir or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "service", "--address", f"127.0.0.1:{port}", "--workers", str(workers),
                "--models-dir", str(ROOT / "models")]
        p = procs.await_serving(procs.spawn("service", argv, Path(tmp), cwd=ROOT, port=port))
        try:
            if workers > 1:
                procs.await_workers(p, workers)  # every worker bound before the clients connect
            address = f"127.0.0.1:{port}"

            def alive() -> bool:
                return p.popen.poll() is None and _serving(address)

            report = run(address, count, seed=seed, threads=threads, time_limit_s=time_limit_s, alive=alive,
                         progress=lambda n: log(f"  {n:,} calls"), only=only)
            lines = Path(p.log_path).read_text(errors="replace").splitlines()
            deaths = [line for line in lines if '"worker exited' in line or '"worker crashed' in line]
            if deaths:  # a worker that died and was restarted by the supervisor
                report.server_alive = False
                report.bad.append(f"{len(deaths)} worker deaths, first: {deaths[0][:300]}")
            errors = [line for line in lines if '"level":"ERROR"' in line]
            if errors:
                report.bad.append(f"{len(errors)} ERROR log lines, first: {errors[0][:300]}")
                report.error_logs = len(errors)
            return report
        finally:
            p.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4, help="client threads (one connection each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=1800.0, help="stop sending after this many seconds")
    ap.add_argument("--only", default="", help="only methods whose path contains this (bisecting a finding)")
    a = ap.parse_args(argv)
    print(f"# bench.fuzz {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: {a.count:,} calls, "
          f"{a.workers} worker(s), {a.threads} client threads, seed {a.seed}", flush=True)
    log_dir = ROOT / "bench" / "out" / "fuzz"
    (log_dir / "service.log").unlink(missing_ok=True)
    report = serve_and_run(a.count, workers=a.workers, seed=a.seed, threads=a.threads, time_limit_s=a.time_limit,
                           log=lambda s: print(s, flush=True), log_dir=log_dir, only=a.only)
    print(f"server log: {log_dir / 'service.log'}")
    print(report.summary())
    ok = report.passed() and report.sent >= a.count
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ALLOWED", "Case", "Generator", "HealthProbe", "Report", "run", "serve_and_run"]
