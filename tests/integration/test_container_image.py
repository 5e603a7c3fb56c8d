"""The container image, built here by scripts/build-image.sh: no build leftovers, non-root, every
worker's metrics port exposed; started on 127.0.0.1 its own HEALTHCHECK command reports SERVING,
it answers a recommendation, every worker serves metrics, and SIGTERM ends it with exit 0.

A build takes one to three minutes (the first one on a machine also makes a Debian base with
debootstrap), so this runs only with ALIGN_IMAGE_SMOKE=1. `.ci/run` sets it when it could install
buildah and debootstrap; otherwise the test is skipped and says so."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.client import AlignmentClient, load_assessment
from tests.conftest import EXAMPLES, ROOT

TAG = "localhost/prosthetic-alignment:smoke-test"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("ALIGN_IMAGE_SMOKE") != "1",
        reason="container smoke test off: set ALIGN_IMAGE_SMOKE=1 (.ci/run does when buildah can be installed)",
    ),
]


def _engine() -> str:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0:
        return "docker"
    if shutil.which("podman"):
        return "podman"
    if shutil.which("buildah"):
        if os.geteuid() != 0:
            pytest.skip("buildah builds here need root (debootstrap, a private network namespace)")
        return "buildah"
    pytest.skip("ALIGN_IMAGE_SMOKE=1 but no container engine (docker daemon, podman or buildah)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def image() -> Iterator[tuple[str, dict[str, object]]]:
    engine = _engine()
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-image.sh"), TAG],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, env={**os.environ, "ALIGN_IMAGE_ENGINE": engine},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    m = re.search(r"built \S+ with (\w+) in (\d+) s; size (.+)", out.stdout)
    assert m, out.stdout[-2000:]
    print(f"image built with {m.group(1)} in {m.group(2)} s, size {m.group(3)}")
    inspect = [engine, "inspect", "--type", "image"] if engine == "buildah" else [engine, "image", "inspect"]
    raw = json.loads(subprocess.run([*inspect, TAG], capture_output=True, text=True, check=True).stdout)
    if engine == "buildah":
        config = raw["Docker"]["config"]
    else:
        config = raw[0]["Config"]
    yield engine, config
    rmi = [engine, "rmi", "-f", TAG] if engine != "buildah" else [engine, "rmi", TAG]
    subprocess.run(rmi, capture_output=True, timeout=120)


def test_image_config(image: tuple[str, dict[str, object]]) -> None:
    _engine_name, config = image
    assert config["User"] == "10001:10001"
    env = dict(str(e).split("=", 1) for e in config["Env"])  # type: ignore[attr-defined]
    first, workers = int(env["ALIGN_METRICS_PORT"]), int(env["ALIGN_WORKERS"])
    exposed = set(config["ExposedPorts"])  # type: ignore[call-overload]
    assert {"50051/tcp", *(f"{p}/tcp" for p in range(first, first + workers))} <= exposed
    test = config["Healthcheck"]["Test"]  # type: ignore[index]
    assert test[:4] == ["CMD", "python", "-m", "service.client"] and test[-1] == "health"


class _Running:
    """The image running on 127.0.0.1 with one engine; `run` executes a command inside it."""

    def __init__(self, engine: str, port: int, metrics_port: int) -> None:
        self.engine, self.port, self.metrics_port = engine, port, metrics_port
        self.proc: subprocess.Popen[str] | None = None
        self.container = ""

    def start(self) -> None:
        env = {"ALIGN_METRICS_ADDRESS": "127.0.0.1" if self.engine == "buildah" else "0.0.0.0"}
        if self.engine == "buildah":
            self.container = subprocess.run(
                ["buildah", "from", TAG], capture_output=True, text=True, check=True
            ).stdout.strip()
            env |= {"ALIGN_ADDRESS": f"127.0.0.1:{self.port}", "ALIGN_METRICS_PORT": str(self.metrics_port)}
            flags = [f"--env={k}={v}" for k, v in env.items()]
            # buildah run does not forward signals: the SIGTERM goes to the entrypoint process itself.
            self.proc = subprocess.Popen(
                ["buildah", "run", "--isolation", "chroot", "--network", "host", *flags, self.container,
                 "--", "python", "-m", "service"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
        else:
            ports = [f"127.0.0.1:{self.port}:50051", f"127.0.0.1:{self.metrics_port}:9464",
                     f"127.0.0.1:{self.metrics_port + 1}:9465"]
            flags = [f"--env={k}={v}" for k, v in env.items()] + [f"--publish={p}" for p in ports]
            self.container = subprocess.run(
                [self.engine, "run", "--detach", *flags, TAG], capture_output=True, text=True, check=True
            ).stdout.strip()

    def run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        if self.engine == "buildah":
            argv = ["buildah", "run", "--isolation", "chroot", "--network", "host", self.container, "--", *cmd]
        else:
            argv = [self.engine, "exec", self.container, *cmd]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    def _entrypoint_pid(self) -> int:
        assert self.proc is not None
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        queue = [self.proc.pid]
        while queue:  # breadth first: the supervisor comes before its workers
            pid = queue.pop(0)
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
            except OSError:
                continue
            if argv[1:] == [b"-m", b"service"] and argv[0].endswith(b"python"):
                return pid
            queue.extend(sorted(children.get(pid, [])))
        raise AssertionError("entrypoint process not found")

    def sigterm_exit_code(self) -> int:
        if self.engine == "buildah":
            assert self.proc is not None
            os.kill(self._entrypoint_pid(), signal.SIGTERM)
            return self.proc.wait(60)
        subprocess.run([self.engine, "stop", "--time", "40", self.container], capture_output=True, timeout=90, check=True)
        out = subprocess.run([self.engine, "wait", self.container], capture_output=True, text=True, timeout=60)
        return int(out.stdout.strip().splitlines()[-1])

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for pid in (self._entrypoint_pid(), self.proc.pid):
                os.kill(pid, signal.SIGKILL)
            self.proc.wait(30)
        if self.container:
            rm = ["buildah", "rm", self.container] if self.engine == "buildah" else [self.engine, "rm", "-f", self.container]
            subprocess.run(rm, capture_output=True, timeout=60)


def _wait_serving(port: int, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    with AlignmentClient.connect(f"127.0.0.1:{port}", timeout_s=2) as client:
        while time.monotonic() < deadline:
            try:
                if client.health() == "SERVING":
                    return
            except Exception:  # not listening yet
                pass
            time.sleep(0.5)
    raise AssertionError(f"the container never reported SERVING on 127.0.0.1:{port}")


def test_image_serves_then_exits_zero_on_sigterm(image: tuple[str, dict[str, object]]) -> None:
    engine, config = image
    running = _Running(engine, _free_port(), _free_port())
    try:
        running.start()
        _wait_serving(running.port)
        # Nothing the build used is left in the image.
        leftovers = running.run("sh", "-c", "find / -xdev \\( -name '*.egg-info' -o -name build -type d "
                                "-o -path /tmp/wheels \\) -print 2>/dev/null")
        assert leftovers.stdout.strip() == ""
        # The image's own HEALTHCHECK command (pointed at the port the test chose).
        check = [a.replace("127.0.0.1:50051", f"127.0.0.1:{running.port}") for a in config["Healthcheck"]["Test"][1:]]  # type: ignore[index]
        health = running.run(*check)
        assert health.returncode == 0 and health.stdout.strip() == "SERVING", health.stderr
        assert running.run("id", "-u").stdout.strip() == "10001"
        with AlignmentClient.connect(f"127.0.0.1:{running.port}", timeout_s=10) as client:
            rec = client.recommend(load_assessment(EXAMPLES / "toe_out_transtibial.json"))
        assert rec.model.version and rec.adjustments
        for worker in range(2):
            with urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port + worker}/metrics", timeout=10) as r:
                assert b"alignment_model_info" in r.read()
        assert running.sigterm_exit_code() == 0
    finally:
        running.cleanup()
