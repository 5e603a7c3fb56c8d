"""Start-up failures exit 2 with one clear line, with 1 or 2 workers, and never enter the worker
restart loop; a second instance on a port already served is refused (issue 15, findings 6 and 7)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MODELS_DIR, ROOT
from tests.integration.test_serving_support import Pki, make_pki

# A supervisor that loops on restarts never exits by itself: bounded, well above a clean failure (~1-2 s).
EXIT_WITHIN_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(port: int, workers: int, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "service", "--address", f"127.0.0.1:{port}", "--workers", str(workers),
           "--models-dir", str(MODELS_DIR), *args]
    # Its own process group, so a supervisor that did not exit is stopped with its forked workers.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=EXIT_WITHIN_S)
    except subprocess.TimeoutExpired:  # the restart loop, or a second instance that started
        os.killpg(proc.pid, signal.SIGKILL)
        _out, err = proc.communicate()
        raise AssertionError(f"still running after {EXIT_WITHIN_S:g} s (restart loop?): {err[-2000:]!r}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _assert_clean_failure(out: subprocess.CompletedProcess[str], words: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr and '"trace"' not in out.stderr, out.stderr[-2000:]
    failed = [line for line in out.stderr.splitlines() if "startup failed" in line]
    assert failed and words in failed[0], out.stderr[-2000:]
    assert "restarting" not in out.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pytest.importorskip("cryptography")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize("workers", [1, 2])
def test_port_in_use_exits_2(workers: int) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        _assert_clean_failure(_run(held.getsockname()[1], workers), "Address already in use")


@pytest.mark.parametrize("workers", [1, 2])
def test_tls_key_not_matching_its_certificate_exits_2(workers: int, pki: Pki) -> None:
    out = _run(_free_port(), workers, "--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.client_key))
    _assert_clean_failure(out, "the key does not belong to the certificate")


@pytest.mark.parametrize("workers", [1, 2])
def test_short_token_exits_2(workers: int) -> None:
    _assert_clean_failure(_run(_free_port(), workers, "--auth-tokens", "clinic=short"), "shorter than 16 characters")


def test_invalid_settings_are_one_line() -> None:
    out = _run(_free_port(), 1, "--max-batch-size", "0")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr


# ----------------------------------------------------------------------- finding 7: a second instance
def _start(port: int, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "--address", f"127.0.0.1:{port}", "--workers", "2", "--models-dir", str(MODELS_DIR)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not re.search(r"listening on port \d+", line):
        proc.kill()
        raise AssertionError(f"no port line: {line!r}")
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
    try:  # whatever is left of its group (forked workers)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(5)


@pytest.fixture
def first() -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = _free_port()
    proc = _start(port)
    yield proc, port
    _stop(proc)


def test_a_second_instance_on_the_same_port_is_refused_unless_opted_in(first: tuple[subprocess.Popen[str], int]) -> None:
    _proc, port = first
    _assert_clean_failure(_run(port, 2), "another instance")
    t0 = time.monotonic()
    second = _start(port, env={"ALIGN_ALLOW_SHARED_PORT": "true"})  # on purpose: joins the port
    try:
        assert time.monotonic() - t0 < EXIT_WITHIN_S and second.poll() is None
    finally:
        _stop(second)


def test_a_stopped_instance_leaves_the_port_free_for_the_next(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(port)
    _stop(proc)
    again = _start(port)  # no false "another instance" after a clean stop
    _stop(again)
