"""`python -m service` as a real process: startup to SERVING, CLI client, SIGTERM drains and exits 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import EXAMPLES, MODELS_DIR, ROOT


def _spawn(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "--address", "127.0.0.1:0", "--workers", "1", "--models-dir", str(MODELS_DIR), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"listening on port (\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no port line: {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}")
    return proc, int(m.group(1)), t0


@pytest.fixture
def proc() -> Iterator[tuple[subprocess.Popen[str], int, float]]:
    p, port, t0 = _spawn()
    yield p, port, t0
    if p.poll() is None:
        p.kill()
        p.wait(5)


def _wait_serving(port: int, timeout_s: float = 10.0) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.05)
        raise AssertionError("never SERVING")


def test_cli_client_prints_a_readable_table_then_sigterm_exits_zero(proc: tuple[subprocess.Popen[str], int, float]) -> None:
    p, port, _t0 = proc
    _wait_serving(port)
    out = subprocess.run(
        [sys.executable, "-m", "service.client", "--address", f"127.0.0.1:{port}", "recommend", str(EXAMPLES / "toe_out_transtibial.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "FOOT_ROTATION" in out.stdout and "rotate the foot internally" in out.stdout
    model = subprocess.run(
        [sys.executable, "-m", "service.client", "--address", f"127.0.0.1:{port}", "model"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert model.returncode == 0 and "walking_speed_m_per_s" in model.stdout and "LIMITATIONS" in model.stdout
    p.send_signal(signal.SIGTERM)
    assert p.wait(15) == 0


def test_cli_client_reports_field_violations(proc: tuple[subprocess.Popen[str], int, float], tmp_path: Path) -> None:
    _p, port, _t0 = proc
    _wait_serving(port)
    bad = tmp_path / "bad.json"
    bad.write_text('{"assessmentId": "x", "patient": {"amputationLevel": "AMPUTATION_LEVEL_TRANSTIBIAL", "prostheticSide": "SIDE_LEFT", "bodyMassKg": 80}, "features": [{"name": "walking_speed_m_per_s", "value": 12}]}')
    out = subprocess.run(
        [sys.executable, "-m", "service.client", "--address", f"127.0.0.1:{port}", "recommend", str(bad)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1
    assert "INVALID_ARGUMENT" in out.stderr and "assessment.features[0].value" in out.stderr


def test_startup_fails_cleanly_without_a_model(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "service", "--address", "127.0.0.1:0", "--workers", "1", "--models-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "no valid model" in out.stderr and "Traceback" not in out.stderr


def test_plaintext_on_a_public_address_is_refused() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "service", "--address", "0.0.0.0:0", "--models-dir", str(MODELS_DIR)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2 and "refusing plaintext" in out.stderr
