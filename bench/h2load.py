"""Drive a gRPC method with h2load (nghttp2-client) and account for what it measured and what it cost.

h2load is a C HTTP/2 load generator on one event-loop thread: a unary gRPC call is a POST with
`content-type: application/grpc`, `te: trailers` and a body that is the 5-byte length prefix plus the
serialized request. It does not read gRPC trailers, so a gRPC error would still count as "succeeded":
every run is therefore also checked on the bytes it received (DATA bytes per request must equal the
framed size of the expected response; an error carries no DATA), and the caller decodes one sample
response with a real client before loading.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import procs


def available() -> bool:
    return shutil.which("h2load") is not None


@dataclass
class LoadResult:
    label: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_us: float
    p90_us: float
    p99_us: float
    failed: int
    errored: int
    non2xx: int
    data_bytes: int
    bytes_ok: bool
    gen_cpu_s: float  # CPU used by h2load itself
    server_cpu_s: float  # CPU used by the server processes under test
    other_cpu_s: float  # CPU used by anything else on the machine meanwhile (noise)
    wall_s: float  # whole h2load run, warm-up included (the CPU figures cover this)
    all_requests: int  # warm-up included, counted from the DATA bytes when the response size is known

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.failed == 0 and self.errored == 0 and self.non2xx == 0 and self.bytes_ok

    @property
    def gen_cpu_pct(self) -> float:
        """h2load's CPU as % of one core."""
        return 100.0 * self.gen_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def server_cpu_pct(self) -> float:
        return 100.0 * self.server_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def server_cpu_us_per_req(self) -> float:
        return 1e6 * self.server_cpu_s / self.all_requests if self.all_requests else float("nan")

    @property
    def other_cpu_pct(self) -> float:
        """CPU used by processes that are not part of this measurement, % of one core."""
        return 100.0 * self.other_cpu_s / self.wall_s if self.wall_s else 0.0


_RE_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_RE_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored"
)
_RE_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_RE_TRAFFIC = re.compile(r"traffic: .*?\((\d+)\) total.*?\((\d+)\) data")


def run(
    label: str,
    port: int,
    path: str,
    body_file: Path,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    expected_response_bytes: int | None,
    server_pids: list[int],
    out_dir: Path,
    cpu: str | None = None,
) -> LoadResult:
    """Run h2load for duration_s at `concurrency` in-flight calls.

    Concurrency c uses min(c, 8) connections with c / connections streams each: several HTTP/2
    connections, as several client channels would, and so SO_REUSEPORT workers all get traffic.
    """
    conns = min(concurrency, 8)
    streams = max(1, concurrency // conns)
    log = out_dir / f"h2load-{label}.tsv"
    log.unlink(missing_ok=True)
    argv = [
        "h2load", "-t", "1", "-c", str(conns), "-m", str(streams),
        "-D", f"{round(duration_s * 1000)}ms", f"--warm-up-time={round(warmup_s * 1000)}ms",
        "-d", str(body_file),
        "-H", "content-type: application/grpc", "-H", "te: trailers",
        f"--log-file={log}",
        f"http://127.0.0.1:{port}{path}",
    ]
    if cpu is not None:
        argv = ["taskset", "-c", cpu, *argv]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s0 = procs.cpu_seconds(server_pids)
    m0 = procs.machine_busy_seconds()
    t0 = time.monotonic()
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + warmup_s + 60, check=False)
    wall = time.monotonic() - t0
    m1 = procs.machine_busy_seconds()
    s1 = procs.cpu_seconds(server_pids)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = cp.stdout
    (out_dir / f"h2load-{label}.txt").write_text(out + cp.stderr)
    gen = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    server = s1 - s0
    other = max(0.0, (m1 - m0) - gen - server)

    fin = _RE_FINISHED.search(out)
    req = _RE_REQUESTS.search(out)
    st = _RE_STATUS.search(out)
    tr = _RE_TRAFFIC.search(out)
    if cp.returncode != 0 or not (fin and req and st and tr):
        raise RuntimeError(f"h2load {label} failed (exit {cp.returncode}):\n{out}\n{cp.stderr}")
    # "finished in" includes the warm-up; req/s and the request counts are for the main phase only.
    secs = duration_s
    _done, succeeded, failed, errored = (int(req.group(i)) for i in (3, 4, 5, 6))
    non2xx = sum(int(st.group(i)) for i in (2, 3, 4))
    data = int(tr.group(2))
    # DATA bytes also count the warm-up's responses (the request counts do not), so there must be at
    # least `succeeded` whole responses' worth. A response that fits one DATA frame (16 KiB) is never
    # received in part, so then the total must be an exact multiple; larger ones (batch, stream
    # sessions) may be cut when h2load stops at the end of the duration.
    bytes_ok = True
    if expected_response_bytes is not None:
        bytes_ok = data // expected_response_bytes >= succeeded and (
            data % expected_response_bytes == 0 or expected_response_bytes > 16384
        )
    all_requests = data // expected_response_bytes if expected_response_bytes else round(succeeded * wall / secs)
    lat = _latencies_us(log)
    p50, p90, p99 = (float(np.percentile(lat, q)) if lat.size else float("nan") for q in (50, 90, 99))
    return LoadResult(
        label, concurrency, succeeded, secs, float(fin.group(3)), p50, p90, p99,
        failed, errored, non2xx, data, bytes_ok, gen, server, other, wall, all_requests,
    )


def _latencies_us(log: Path) -> np.ndarray:
    if not log.exists() or os.path.getsize(log) == 0:
        return np.array([])
    rows = np.loadtxt(log, dtype=np.float64, delimiter="\t", ndmin=2)
    ok = rows[:, 1] == 200
    lat: np.ndarray = rows[ok, 2]
    return lat
