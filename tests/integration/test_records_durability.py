"""0 acknowledged fitting records lost across 20 `kill -9` restarts of the server under recording
load, on SQLite and on a real PostgreSQL server.

Four clients record fittings with fresh ids as fast as the server answers; after a random 0.1-0.35 s
the server's whole process group gets SIGKILL (mid-write: some calls are in flight), and a new server
starts on the same store. Every id a client saw acknowledged must be in the store at the end.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import grpc
import pytest

from service.client import AlignmentClient
from service.records.store import RecordStore
from tests.conftest import MODELS_DIR
from tests.integration.records_fixtures import postgres  # noqa: F401  (fixture)
from tests.integration.test_serving_support import ServiceProcess, spawn_service, wait_serving
from tests.pg_server import PostgresServer
from tests.records_cases import RECORDS_TOKEN, fitting_record

RESTARTS = 20
CLIENTS = 4

pytestmark = pytest.mark.slow


def _launch(url: str) -> ServiceProcess:
    sp = spawn_service(
        "--address", "127.0.0.1:0", "--workers", "1", "--models-dir", str(MODELS_DIR), "--log-level", "WARNING",
        env={"ALIGN_RECORDS_URL": url, "ALIGN_RECORDS_TOKENS": f"clinic={RECORDS_TOKEN}"},
    )
    sp.wait_ports(1, timeout_s=30)
    return sp


def test_no_acknowledged_record_is_lost_across_kill_9(tmp_path: Path, postgres: PostgresServer) -> None:  # noqa: F811
    """Both back-ends side by side (two kill loops in parallel), to keep the test near 40 s."""
    postgres.reset()
    urls = {"sqlite": f"sqlite:///{tmp_path / 'records.db'}", "postgresql": postgres.url}
    results: dict[str, tuple[int, int, list[int], set[str]]] = {}
    failures: list[BaseException] = []

    def run(name: str) -> None:
        try:
            results[name] = _kill_loop(urls[name], seed=len(name))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not failures, failures
    for name, (acked, stored, per_cycle, lost) in results.items():
        print(f"{name}: {acked} acknowledged over {RESTARTS} kill -9 restarts ({min(per_cycle)}-{max(per_cycle)} "
              f"per cycle), {stored} stored, {len(lost)} lost")
        assert min(per_cycle) > 0, f"{name}: a cycle acknowledged nothing: {per_cycle}"
        assert not lost, f"{name}: {len(lost)} acknowledged records lost, e.g. {sorted(lost)[:5]}"
    assert set(results) == set(urls)


def _kill_loop(records_url: str, seed: int) -> tuple[int, int, list[int], set[str]]:
    rng = random.Random(seed)
    acknowledged: list[str] = []
    lock = threading.Lock()
    per_cycle: list[int] = []
    started: list[ServiceProcess] = []
    try:
        for cycle in range(RESTARTS):
            sp = _launch(records_url)
            started.append(sp)
            target = f"127.0.0.1:{sp.port}"
            wait_serving(target, timeout_s=30)
            stop = threading.Event()
            before = len(acknowledged)

            def load(k: int, cycle: int = cycle, target: str = target, stop: threading.Event = stop) -> None:
                channel = grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                with AlignmentClient(channel, token=RECORDS_TOKEN, timeout_s=5) as c:
                    n = 0
                    while not stop.is_set():
                        fid = f"K-{cycle}-{k}-{n}"
                        n += 1
                        try:
                            c.record_fitting(fitting_record(fid, patient_key=f"P-{k}", walks=2, seed=n))
                        except grpc.RpcError:
                            continue  # the kill: not acknowledged, so not counted
                        with lock:
                            acknowledged.append(fid)

            threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(CLIENTS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.1, 0.35))
            sp.stop()  # SIGKILL to the process group, while the clients keep writing
            stop.set()
            for t in threads:
                t.join(10)
            per_cycle.append(len(acknowledged) - before)
    finally:
        for sp in started:
            sp.stop()
    store = RecordStore.open(records_url, run_migrations=False)
    try:
        stored = store.fitting_ids()
    finally:
        store.close()
    return len(acknowledged), len(stored), per_cycle, set(acknowledged) - stored
