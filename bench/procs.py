"""Process plumbing for the bench: spawn in own process group, stop the whole group, /proc accounting."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A server we started: its Popen, in its own session so the whole group can be stopped."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        """The processes of this server: leader, its children (forked workers), and extra processes."""
        roots = [self.popen.pid, *(p.pid for p in self.extra)]
        out: list[int] = []
        for r in roots:
            out.append(r)
            out.extend(children(r))
        return out

    def stop(self) -> None:
        for p in [self.popen, *self.extra]:
            stop_group(p)


def spawn(name: str, argv: Sequence[str], log_dir: Path, *, env: dict[str, str] | None = None,
          cwd: Path | None = None, port: int = 0) -> Proc:
    log_path = log_dir / f"{name}.log"
    fh = open(log_path, "ab")  # handed to the child, closed when we return
    try:
        p = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=fh, stdin=subprocess.DEVNULL,
                             env=env, cwd=cwd, start_new_session=True)
    finally:
        fh.close()
    return Proc(name, p, port, log_path)


def stop_group(p: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL whatever is left."""
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)  # stragglers in the group (forked workers)
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(2.0)
    if p.stdout is not None:
        p.stdout.close()


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out.extend(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
    except OSError:
        return []
    for c in list(out):
        out.extend(children(c))
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes (all their threads), from /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    v = [int(x) for x in parts]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK


def rss_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB: PSS splits shared pages (libraries, forked copy-on-write) between sharers."""
    rss = pss = 0.0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    return rss, pss


def wait_serving(port: int, timeout_s: float, service: str = "", poll_s: float = 0.005) -> float:
    """Poll grpc.health.v1 Check until SERVING; return the monotonic time it was first seen."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=0.5)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic()
            except grpc.RpcError:
                pass
            time.sleep(poll_s)
    raise TimeoutError(f"port {port} not SERVING after {timeout_s:.0f} s")


def read_port_line(p: Proc, marker: str, timeout_s: float) -> int:
    """Read the child's stdout until `marker <port>` appears (python -m service prints it)."""
    assert p.popen.stdout is not None
    deadline = time.monotonic() + timeout_s
    fd = p.popen.stdout.fileno()
    buf = b""
    while time.monotonic() < deadline:
        if p.popen.poll() is not None:
            raise RuntimeError(f"{p.name} exited with {p.popen.returncode}; see {p.log_path}")
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            chunk = os.read(fd, 4096)
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                if line.startswith(marker):
                    return int(line[len(marker):].split()[0])
    raise TimeoutError(f"{p.name}: no {marker!r} line after {timeout_s:.0f} s; see {p.log_path}")


@contextlib.contextmanager
def all_stopped(procs: list[Proc]) -> Iterator[list[Proc]]:
    try:
        yield procs
    finally:
        for p in reversed(procs):
            p.stop()


def await_serving(p: Proc, timeout_s: float = 60.0) -> Proc:
    """Learn the port from the child's `listening on port <n>` line when it was started on port 0,
    wait until it answers health SERVING, and stop it (then re-raise) if either fails."""
    try:
        if p.port == 0:
            p.port = read_port_line(p, "listening on port ", timeout_s)
        wait_serving(p.port, timeout_s)
    except BaseException:
        p.stop()
        raise
    return p


def await_workers(p: Proc, workers: int, timeout_s: float = 60.0) -> None:
    """Wait until `workers` processes announced `listening on port` (each worker prints one line).

    Health answers SERVING as soon as the first worker is up; clients that connect before the
    others have bound all land on it (SO_REUSEPORT only spreads over sockets already bound)."""
    assert p.popen.stdout is not None
    fd = p.popen.stdout.fileno()
    deadline = time.monotonic() + timeout_s
    seen = 0
    buf = b""
    while seen < workers and time.monotonic() < deadline:
        if p.popen.poll() is not None:
            raise RuntimeError(f"{p.name} exited with {p.popen.returncode}; see {p.log_path}")
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            buf += os.read(fd, 4096)
            seen = buf.decode(errors="replace").count("listening on port ")
    if seen < workers:
        raise TimeoutError(f"{p.name}: {seen} of {workers} workers listening after {timeout_s:.0f} s")

