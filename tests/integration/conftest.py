from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from service.api.server import RunningServer, build_server
from service.client import AlignmentClient
from service.settings import Settings
from tests.conftest import MODELS_DIR
from tests.integration.test_serving_support import add_version


def start(models_dir: Path = MODELS_DIR, **overrides: object) -> RunningServer:
    s = Settings(address="127.0.0.1:0", models_dir=models_dir, workers=1, metrics_port=0, **overrides)  # type: ignore[arg-type]
    return build_server(s, serve_metrics=bool(overrides.get("metrics_port")))


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start()
    yield running
    running.stop(0.5)


@pytest.fixture
def client(server: RunningServer) -> Iterator[AlignmentClient]:
    with AlignmentClient.connect(f"127.0.0.1:{server.port}", timeout_s=10) as c:
        yield c


def rpc_error(fn, *args, **kwargs) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as exc:
        fn(*args, **kwargs)
    return exc.value


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A private model tree holding a copy of the bundled model as version 1.0.0."""
    root = tmp_path / "models"
    add_version(root, "1.0.0")
    return root
