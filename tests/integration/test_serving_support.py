"""Helpers shared by the test_serving_* files (no tests here): model version trees, certificates,
real `python -m service` processes with their logs captured, metric scraping."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.model import sha256_file
from tests.conftest import ROOT, bundled_model_dir

# -- model trees ----------------------------------------------------------------------------------


def add_version(models: Path, version: str, *, src: Path | None = None) -> Path:
    """A valid copy of the bundled model as `version`, published atomically (written under a dot
    directory, which the registry ignores, then renamed): a poller never sees half a copy."""
    src = src or bundled_model_dir()
    root = models / "alignment"
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name in ("model.onnx", "manifest.json"):
        shutil.copyfile(src / name, tmp / name)
    manifest = json.loads((tmp / "manifest.json").read_text())
    manifest["version"] = version
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    dst = root / version
    os.rename(tmp, dst)
    return dst


def edit_manifest(version_dir: Path, **changes: object) -> None:
    path = version_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def corrupt_version(models: Path, version: str, how: str) -> Path:
    """A version dir that must be refused: `sha` (bytes changed, manifest sha kept), `truncated`
    (onnx cut in half, sha updated so onnxruntime's refusal is what is tested), `golden` (golden
    outputs off), `name` (manifest version differs from the directory)."""
    d = add_version(models, f".build-{version}")  # a dot dir: invisible to the registry until renamed
    onnx = d / "model.onnx"
    if how == "sha":
        data = bytearray(onnx.read_bytes())
        data[len(data) // 2] ^= 0xFF
        onnx.write_bytes(bytes(data))
        edit_manifest(d, version=version)
    elif how == "truncated":
        data = onnx.read_bytes()
        onnx.write_bytes(data[: len(data) // 2])
        edit_manifest(d, version=version, sha256=sha256_file(onnx))
    elif how == "golden":
        manifest = json.loads((d / "manifest.json").read_text())
        out = manifest["golden"]["outputs"]["magnitude"]
        out[0][0] = float(out[0][0]) + 1.0
        edit_manifest(d, version=version, golden=manifest["golden"])
    elif how == "name":
        edit_manifest(d, version="0.0.1-other")
    else:
        raise ValueError(how)
    final = d.parent / version
    os.rename(d, final)
    return final


# -- certificates ---------------------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # signed by a different CA
    rogue_key: Path
    unlisted_cert: Path  # signed by the CA, another identity (CN "unlisted-device")
    unlisted_key: Path


def make_pki(directory: Path) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return path

    def write_cert(cert: x509.Certificate, path: Path) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cert, key

    def leaf(
        cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], *, server: bool
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer[0].subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            import ipaddress

            b = b.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return b.sign(issuer[1], hashes.SHA256()), key

    root = ca("test alignment CA")
    other = ca("rogue CA")
    srv = leaf("localhost", root, server=True)
    cli = leaf("clinic-platform", root, server=False)
    rogue = leaf("rogue-client", other, server=False)
    unlisted = leaf("unlisted-device", root, server=False)
    directory.mkdir(parents=True, exist_ok=True)
    return Pki(
        ca=write_cert(root[0], directory / "ca.pem"),
        server_cert=write_cert(srv[0], directory / "server.pem"),
        server_key=write_key(srv[1], directory / "server.key"),
        client_cert=write_cert(cli[0], directory / "client.pem"),
        client_key=write_key(cli[1], directory / "client.key"),
        rogue_cert=write_cert(rogue[0], directory / "rogue.pem"),
        rogue_key=write_key(rogue[1], directory / "rogue.key"),
        unlisted_cert=write_cert(unlisted[0], directory / "unlisted.pem"),
        unlisted_key=write_key(unlisted[1], directory / "unlisted.key"),
    )


# -- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    """`python -m service` with stdout/stderr read by threads (a full pipe would block the server)."""

    proc: subprocess.Popen[str]
    started: float
    ports: list[int] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def port(self) -> int:
        return self.ports[0]

    def logs(self) -> list[dict[str, object]]:
        out = []
        with self._cond:
            lines = list(self.stderr)
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_for_log(self, predicate: object, timeout_s: float = 15.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for rec in self.logs():
                if predicate(rec):  # type: ignore[operator]
                    return rec
            time.sleep(0.05)
        raise AssertionError(f"log record not seen; stderr tail: {self.stderr[-10:]}")

    def wait_ports(self, n: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.ports) < n:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"{len(self.ports)}/{n} 'listening' lines; stderr tail: {self.stderr[-10:]}")
                self._cond.wait(min(left, 0.2))

    def stop(self) -> None:
        """Kill the whole process group: killing only the supervisor orphaned its workers (found
        after a failed two-worker test left them running)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group lives on while any worker does
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(10)


def spawn_service(*args: str, env: dict[str, str] | None = None) -> ServiceProcess:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("ALIGN_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean_env, **(env or {})},
        start_new_session=True,  # its own process group, so stop() reaches every worker
    )
    sp = ServiceProcess(proc, time.perf_counter())

    def read_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with sp._cond:
                sp.stdout.append(line)
                m = re.search(r"listening on port (\d+)", line)
                if m:
                    sp.ports.append(int(m.group(1)))
                sp._cond.notify_all()

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with sp._cond:
                sp.stderr.append(line.rstrip("\n"))

    threading.Thread(target=read_out, daemon=True).start()
    threading.Thread(target=read_err, daemon=True).start()
    return sp


def wait_serving(target: str, timeout_s: float = 15.0, channel: grpc.Channel | None = None) -> float:
    """Poll health until SERVING; return the monotonic time it was first seen."""
    ch = channel or grpc.insecure_channel(target)
    try:
        stub = health_pb2_grpc.HealthStub(ch)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return time.perf_counter()
            except grpc.RpcError:
                pass
            time.sleep(0.02)
        raise AssertionError(f"{target} never SERVING")
    finally:
        if channel is None:
            ch.close()


# -- metrics --------------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or line.startswith("#"):
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        yield m.group(1), labels, float(m.group(3))


def metric(text: str, metric_name: str, **labels: str) -> float:
    """Sum of the samples of `metric_name` whose labels include `labels`."""
    return sum(v for n, lab, v in samples(text) if n == metric_name and all(lab.get(k) == w for k, w in labels.items()))


def send_signal(sp: ServiceProcess, sig: signal.Signals) -> None:
    sp.proc.send_signal(sig)
