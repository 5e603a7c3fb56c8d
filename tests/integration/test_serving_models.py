"""Model registry on a real server: hot swaps under concurrent load lose nothing, corrupt artifacts
are refused while the old model keeps serving, requests may pin a version, responses name it."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from service._generated.prosthetic_alignment.v1 import alignment_admin_service_pb2 as admin_pb
from service._generated.prosthetic_alignment.v1 import alignment_admin_service_pb2_grpc as admin_grpc
from service.api.server import RunningServer
from service.client import AlignmentClient, load_assessment
from tests.conftest import EXAMPLES
from tests.integration.conftest import rpc_error, start
from tests.integration.test_serving_support import add_version, corrupt_version

ASSESSMENT = load_assessment(EXAMPLES / "toe_out_transtibial.json")


@pytest.fixture
def server(models: Path) -> Iterator[RunningServer]:
    running = start(models, max_loaded_versions=2)
    yield running
    running.stop(0.5)


def reload_rpc(port: int) -> admin_pb.ReloadModelsResponse:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return admin_grpc.AlignmentAdminServiceStub(ch).ReloadModels(admin_pb.ReloadModelsRequest(), timeout=30)


def test_hot_swaps_under_concurrent_load_lose_no_call(server: RunningServer, models: Path) -> None:
    target = f"127.0.0.1:{server.port}"
    stop = threading.Event()
    published = ["1.0.0"]
    seen: Counter[str] = Counter()
    failures: list[str] = []
    calls = Counter[str]()
    lock = threading.Lock()

    def load(kind: str) -> None:
        # Each load thread has its own channel: swaps must be invisible to every connection.
        with AlignmentClient.connect(target, timeout_s=10) as c:
            while not stop.is_set():
                try:
                    if kind == "unary":
                        versions = [c.recommend(ASSESSMENT).model.version]
                    elif kind == "batch":
                        resp = c.recommend_batch([ASSESSMENT] * 8)
                        versions = [resp.model.version, *(r.recommendation.model.version for r in resp.results)]
                        assert all(r.WhichOneof("result") == "recommendation" for r in resp.results)
                    else:
                        out = list(c.stream([ASSESSMENT] * 5))
                        assert all(o.WhichOneof("result") == "recommendation" for o in out), out
                        versions = [o.recommendation.model.version for o in out]
                    with lock:
                        calls[kind] += 1
                        seen.update(versions)
                except Exception as exc:  # any failure is a lost call
                    with lock:
                        failures.append(f"{kind}: {exc!r}")

    threads = [threading.Thread(target=load, args=(k,)) for k in ("unary", "unary", "batch", "stream")]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    swaps = 0
    try:
        time.sleep(0.3)
        for i in range(1, 13):
            version = f"1.0.{i}"
            add_version(models, version)
            resp = reload_rpc(server.port)
            assert resp.current_version == version and resp.changed and not resp.refused
            published.append(version)
            swaps += 1
            # Keep the tree small; the evicted version may still be serving a call right now.
            if i >= 3:
                shutil.rmtree(models / "alignment" / f"1.0.{i - 3}", ignore_errors=True)
            time.sleep(0.25)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    elapsed = time.monotonic() - t0
    print(f"\nhot swap: {swaps} swaps in {elapsed:.1f} s, calls {dict(calls)}, failures {len(failures)}, "
          f"versions answering {len(seen)}")
    assert not failures, failures[:5]
    assert swaps == 12 and sum(calls.values()) > 50
    assert set(seen) <= set(published)
    assert len(seen) >= 6, seen  # the load really ran across the swaps
    assert server.registry.get().version == "1.0.12"


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("sha", "sha256 of model.onnx is"),
        ("truncated", "onnxruntime cannot load"),
        ("golden", "golden output magnitude differs"),
        ("name", "manifest names alignment 0.0.1-other"),
    ],
)
def test_corrupt_artifact_is_refused_and_the_old_model_keeps_serving(
    server: RunningServer, models: Path, how: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    target = f"127.0.0.1:{server.port}"
    swaps_before = server.metrics.model_swaps._value.get()
    corrupt_version(models, "2.0.0", how)
    with caplog.at_level(logging.ERROR, logger="service.registry"):
        resp = reload_rpc(server.port)
    assert resp.current_version == "1.0.0" and not resp.changed
    (refused,) = resp.refused
    assert refused.version == "2.0.0" and reason in refused.reason, refused.reason
    records = [r for r in caplog.records if r.getMessage().startswith("model artifact refused")]
    assert records and reason in records[0].error  # type: ignore[attr-defined]
    assert records[0].model_version == "2.0.0"  # type: ignore[attr-defined]
    with AlignmentClient.connect(target, timeout_s=10) as c:
        assert c.recommend(ASSESSMENT).model.version == "1.0.0"
        assert c.health() == "SERVING"
        assert rpc_error(c.recommend, ASSESSMENT, model_version="2.0.0").code() == grpc.StatusCode.NOT_FOUND
    assert server.metrics.model_refused._value.get() >= 1
    assert server.metrics.model_swaps._value.get() == swaps_before
    # A refusal is remembered: polling again does not re-verify (or re-log) the same bytes.
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="service.registry"):
        assert reload_rpc(server.port).refused[0].version == "2.0.0"
    assert not [r for r in caplog.records if r.getMessage().startswith("model artifact refused")]


def test_current_version_rewritten_corrupt_in_place_keeps_the_loaded_copy(server: RunningServer, models: Path) -> None:
    onnx = models / "alignment" / "1.0.0" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:1000])
    resp = reload_rpc(server.port)
    assert resp.current_version == "1.0.0" and resp.refused and "sha256" in resp.refused[0].reason
    with AlignmentClient.connect(f"127.0.0.1:{server.port}", timeout_s=10) as c:
        assert c.recommend(ASSESSMENT).model.version == "1.0.0"


def test_requests_pin_a_loaded_version_and_every_response_names_it(server: RunningServer, models: Path) -> None:
    add_version(models, "1.1.0")
    assert reload_rpc(server.port).current_version == "1.1.0"
    with AlignmentClient.connect(f"127.0.0.1:{server.port}", timeout_s=10) as c:
        assert c.recommend(ASSESSMENT).model.version == "1.1.0"
        assert c.recommend(ASSESSMENT, model_version="1.0.0").model.version == "1.0.0"
        batch = c.recommend_batch([ASSESSMENT, ASSESSMENT], model_version="1.0.0")
        assert batch.model.version == "1.0.0"
        assert {r.recommendation.model.version for r in batch.results} == {"1.0.0"}
        assert {o.recommendation.model.version for o in c.stream([ASSESSMENT], model_version="1.0.0")} == {"1.0.0"}
        info = c.get_model("1.0.0")
        assert info.model.version == "1.0.0"
        assert rpc_error(c.recommend, ASSESSMENT, model_version="0.9.0").code() == grpc.StatusCode.NOT_FOUND
