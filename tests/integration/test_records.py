"""RecordFitting against real stores: SQLite and a PostgreSQL server this run starts itself.

Round trip, idempotency, ALREADY_EXISTS on conflicting content, the records scope, validation,
recording off, a store that cannot commit (UNAVAILABLE with RetryInfo), metrics and GetModel's audit
figure. The kill -9 durability test is in test_records_durability.py.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.api.records import record_from_proto
from service.api.server import RunningServer
from service.client import AlignmentClient, field_violations, load_assessment
from service.records.validation import validate_record
from tests.conftest import EXAMPLES
from tests.integration.conftest import rpc_error, start
from tests.integration.records_fixtures import postgres, records_url  # noqa: F401  (fixtures)
from tests.records_cases import ADMIN_TOKEN, PLAIN_TOKEN, RECORDS_TOKEN, fitting_record

TOKENS = {"auth_tokens": f"plain={PLAIN_TOKEN}", "admin_tokens": f"ops={ADMIN_TOKEN}", "records_tokens": f"clinic={RECORDS_TOKEN}"}


@pytest.fixture
def recording(records_url: str) -> Iterator[RunningServer]:  # noqa: F811
    srv = start(records_url=records_url, **TOKENS)
    yield srv
    srv.stop(0.5)


def _client(srv: RunningServer, token: str) -> AlignmentClient:
    return AlignmentClient.connect(f"127.0.0.1:{srv.port}", token=token, timeout_s=10)


def _metric(srv: RunningServer, name: str, **labels: str) -> float:
    v = srv.metrics.registry.get_sample_value(name, labels)
    return 0.0 if v is None else float(v)


def test_round_trip_stores_exactly_the_validated_record(recording: RunningServer) -> None:
    rec = fitting_record("F-rt-1", walks=4, seed=1)
    with _client(recording, RECORDS_TOKEN) as c:
        resp = c.record_fitting(rec)
    assert resp.fitting_id == "F-rt-1" and not resp.already_recorded
    assert recording.recorder is not None
    stored = recording.recorder.store.get("F-rt-1")
    expected = validate_record(record_from_proto(spb.RecordFittingRequest(record=rec)))
    assert stored == expected
    assert stored.content_sha256() == resp.content_sha256
    # What was applied, not what was advised, is kept per walk.
    assert [w.applied_after[0].change for w in stored.walks[:3]] == [-4.0, -4.0, -4.0]
    assert [w.answer.recommended[0].change for w in stored.walks[:3] if w.answer] == [-6.0, -6.0, -6.0]
    assert stored.walks[-1].applied_after == () and stored.outcome.socket_comfort_score == 8.0
    assert _metric(recording, "alignment_records_written_total", result="stored") == 1


def test_same_id_same_content_is_a_no_op(recording: RunningServer) -> None:
    rec = fitting_record("F-idem-1")
    with _client(recording, RECORDS_TOKEN) as c:
        first = c.record_fitting(rec)
        again = c.record_fitting(rec)
        # The same fitting in other accepted units is the same content (canonical units).
        in_cm = fitting_record("F-idem-1")
        for w in in_cm.walks:
            for f in w.features:
                if f.name == "knee_frontal_shift_late_stance_mm":
                    f.value, f.unit = f.value / 10.0, "cm"
        third = c.record_fitting(in_cm)
    assert not first.already_recorded and again.already_recorded and third.already_recorded
    assert first.content_sha256 == again.content_sha256 == third.content_sha256
    assert recording.recorder is not None and recording.recorder.store.count() == 1
    assert _metric(recording, "alignment_records_written_total", result="duplicate") == 2


def test_same_id_other_content_is_already_exists(recording: RunningServer) -> None:
    with _client(recording, RECORDS_TOKEN) as c:
        c.record_fitting(fitting_record("F-conf-1", seed=1))
        changed = fitting_record("F-conf-1", seed=1)
        changed.outcome.prosthetist_rating = 2
        err = rpc_error(c.record_fitting, changed)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "F-conf-1" in (err.details() or "")
    assert recording.recorder is not None
    stored = recording.recorder.store.get("F-conf-1")
    assert stored is not None and stored.outcome.prosthetist_rating == 4  # the first one stays
    assert _metric(recording, "alignment_records_refused_total", reason="FITTING_ID_CONFLICT") == 1


def test_only_records_scoped_tokens_may_write(recording: RunningServer) -> None:
    rec = fitting_record("F-scope-1")
    for token, code in ((PLAIN_TOKEN, grpc.StatusCode.PERMISSION_DENIED), (ADMIN_TOKEN, grpc.StatusCode.PERMISSION_DENIED)):
        with _client(recording, token) as c:
            assert rpc_error(c.record_fitting, rec).code() == code
    with _client(recording, "not-a-known-token-at-all-000") as c:
        assert rpc_error(c.record_fitting, rec).code() == grpc.StatusCode.UNAUTHENTICATED
    with AlignmentClient.connect(f"127.0.0.1:{recording.port}", timeout_s=10) as c:
        assert rpc_error(c.record_fitting, rec).code() == grpc.StatusCode.UNAUTHENTICATED
    assert recording.recorder is not None and recording.recorder.store.count() == 0
    assert _metric(recording, "alignment_records_refused_total", reason="PERMISSION_DENIED") == 2
    assert _metric(recording, "alignment_records_refused_total", reason="UNAUTHENTICATED") == 2
    with _client(recording, RECORDS_TOKEN) as c:
        assert not c.record_fitting(rec).already_recorded
        # The clinic platform's records token also asks for answers.
        assert c.recommend(load_assessment(EXAMPLES / "toe_out_transtibial.json")).model.version
    with _client(recording, PLAIN_TOKEN) as c:
        assert c.recommend(load_assessment(EXAMPLES / "toe_out_transtibial.json")).model.version


def test_invalid_record_lists_every_field(recording: RunningServer) -> None:
    rec = fitting_record("Jane Doe 1970-01-01")  # a name and a date of birth are not a pseudonym
    rec.walks[1].features[0].value = 99.0
    rec.walks[0].applied_after.add(parameter=pb.ADJUSTMENT_PARAMETER_PYLON_LENGTH, change=500.0)
    rec.outcome.prosthetist_rating = 0
    rec.outcome.socket_comfort_score = 11.0
    with _client(recording, RECORDS_TOKEN) as c:
        err = rpc_error(c.record_fitting, rec)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field: v.reason for v in field_violations(err)}
    assert fields == {
        "record.fitting_id": "RECORD_KEY_INVALID",
        "record.walks[1].features[0].value": "FEATURE_OUT_OF_RANGE",
        "record.walks[0].applied_after[1].change": "CHANGE_OUT_OF_RANGE",
        "record.outcome.prosthetist_rating": "OUTCOME_OUT_OF_RANGE",
        "record.outcome.socket_comfort_score": "OUTCOME_OUT_OF_RANGE",
    }
    empty = pb.FittingRecord()
    with _client(recording, RECORDS_TOKEN) as c:
        err = rpc_error(c.record_fitting, empty)
    reasons = {v.field: v.reason for v in field_violations(err)}
    assert reasons["record.walks"] == "WALKS_MISSING" and reasons["record.outcome"] == "OUTCOME_MISSING"
    assert reasons["record.patient"] == "PATIENT_CONTEXT_MISSING"
    assert recording.recorder is not None and recording.recorder.store.count() == 0
    assert _metric(recording, "alignment_records_refused_total", reason="INVALID_FITTING_RECORD") == 2


def test_many_writers_at_once_lose_nothing(recording: RunningServer) -> None:
    ids = [f"F-par-{i}" for i in range(40)]
    errors: list[BaseException] = []

    def write(chunk: list[str]) -> None:
        try:
            with _client(recording, RECORDS_TOKEN) as c:
                for fid in chunk:
                    c.record_fitting(fitting_record(fid, walks=2))
                    c.record_fitting(fitting_record(ids[0], walks=2))  # everyone also repeats one id
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(ids[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert recording.recorder is not None and recording.recorder.store.fitting_ids() == set(ids)


def test_recording_off_is_failed_precondition() -> None:
    srv = start()
    try:
        with AlignmentClient.connect(f"127.0.0.1:{srv.port}", timeout_s=10) as c:
            err = rpc_error(c.record_fitting, fitting_record("F-off-1"))
            assert c.get_model().model.metrics["training.real_fittings"] == 0.0
    finally:
        srv.stop(0.5)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ALIGN_RECORDS_URL" in (err.details() or "")


def test_a_store_that_cannot_commit_is_unavailable_with_retry_info(tmp_path: Path) -> None:
    db = tmp_path / "records.db"
    srv = start(records_url=f"sqlite:///{db}", records_timeout_s=0.3, **TOKENS)
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the lock past the store timeout
        with _client(srv, RECORDS_TOKEN) as c:
            err = rpc_error(c.record_fitting, fitting_record("F-busy-1"))
            status = rpc_status.from_call(err)  # type: ignore[arg-type]
            assert err.code() == grpc.StatusCode.UNAVAILABLE
            assert status is not None
            retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
            assert len(retry) == 1
            info = error_details_pb2.RetryInfo()
            retry[0].Unpack(info)
            assert info.retry_delay.ToTimedelta().total_seconds() > 0
            # The answer path does not wait on the locked store.
            assert c.recommend(load_assessment(EXAMPLES / "toe_out_transtibial.json")).model.version
            blocker.execute("ROLLBACK")
            assert not c.record_fitting(fitting_record("F-busy-1")).already_recorded  # the retry succeeds
        assert _metric(srv, "alignment_records_refused_total", reason="RECORD_STORE_UNAVAILABLE") == 1
    finally:
        blocker.close()
        srv.stop(0.5)


def test_migrations_build_exactly_the_declared_schema(records_url: str) -> None:  # noqa: F811
    """The Alembic revisions and service/records/schema.py describe the same tables (no drift)."""
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from service.records.schema import metadata
    from service.records.store import make_engine, migrate

    assert migrate(records_url) == migrate(records_url) == "0001"  # idempotent
    engine = make_engine(records_url, pool_size=1)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            mode = conn.execute(sa.text("PRAGMA journal_mode")).scalar() if engine.dialect.name == "sqlite" else "n/a"
            sync = conn.execute(sa.text("PRAGMA synchronous")).scalar() if engine.dialect.name == "sqlite" else 2
    finally:
        engine.dispose()
    assert diff == []
    assert mode in ("wal", "n/a") and sync == 2  # 2 = FULL


def test_a_fitting_history_walk_is_a_recorded_walk_on_the_wire() -> None:
    """A clinic tool's GaitAssessment.fitting_history entries can be sent as record walks unchanged."""
    fw = pb.FittingWalk()
    fw.features.add(name="step_width_m", value=0.2, source=pb.SENSOR_KIND_MOTION_CAPTURE)
    fw.applied_after.add(parameter=pb.ADJUSTMENT_PARAMETER_FOOT_MEDIAL_SHIFT, change=5.0)
    rw = pb.RecordedWalk.FromString(fw.SerializeToString())
    assert list(rw.features) == list(fw.features) and list(rw.applied_after) == list(fw.applied_after)
    assert not rw.HasField("answer")
