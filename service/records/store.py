"""RecordStore: fitting records in SQLite (default) or PostgreSQL, through SQLAlchemy Core.

Durability: a record is acknowledged only after its transaction committed. SQLite runs in WAL mode
with synchronous=FULL (every commit is fsynced: a kill -9 or power cut loses no acknowledged
record); PostgreSQL commits with its default synchronous_commit=on. Any failure to commit surfaces as
StoreUnavailableError, which the edge answers with UNAVAILABLE and a retry delay; retrying with the
same fitting_id is safe (idempotent).

Idempotency: the fitting row is inserted first (so a transaction starts by taking the write lock,
and SQLite's busy timeout, not an upgrade deadlock, governs concurrent writers); a primary-key clash
means the id exists, and the stored content_sha256 decides: equal is a no-op, different is
RecordConflictError.

SQLAlchemy and Alembic are imported here only: the module is loaded when recording is on.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url

from service.errors import RecordConflictError, StoreUnavailableError
from service.records.domain import (
    FittingRecord,
    RecordResult,
    changes_content,
    features_content,
    record_from_content,
)
from service.records.schema import fittings, walks

log = logging.getLogger("service.records")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SCHEMES = ("sqlite", "postgresql")
# How long a writer waits for another's lock (SQLite busy timeout, PostgreSQL lock/statement
# timeouts) and for a free pooled connection before the write counts as failed.
DEFAULT_TIMEOUT_S = 5.0


def store_url(url: str) -> URL:
    """The SQLAlchemy URL for ALIGN_RECORDS_URL: sqlite:///path or postgresql://... (psycopg 3)."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend not in SCHEMES:
        raise ValueError(f"records URL scheme {u.drivername!r} is not supported; use sqlite:///path or postgresql://...")
    if backend == "postgresql" and u.drivername in ("postgresql", "postgresql+psycopg"):
        return u.set(drivername="postgresql+psycopg")
    if backend == "postgresql":
        raise ValueError(f"records URL driver {u.drivername!r}: use postgresql:// (psycopg 3)")
    if backend == "sqlite" and not u.database:
        raise ValueError("records URL sqlite:// needs a file path (sqlite:///path/to/records.db); in-memory is not durable")
    return u


def make_engine(url: str, *, pool_size: int = 4, timeout_s: float = DEFAULT_TIMEOUT_S) -> Engine:
    u = store_url(url)
    if u.get_backend_name() == "sqlite":
        assert u.database is not None
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            u,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=timeout_s,
            connect_args={"timeout": timeout_s, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            cur.close()

        return engine
    ms = int(timeout_s * 1000)
    return sa.create_engine(
        u,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout_s,
        # A replica restart or a failover leaves dead pooled connections: test before use.
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": max(1, int(timeout_s)),
            "options": f"-c lock_timeout={ms} -c statement_timeout={ms} -c synchronous_commit=on",
        },
    )


def migrate(url: str) -> str:
    """Bring the store's schema to the newest Alembic revision; returns it. Idempotent."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    return str(head)


class RecordStore:
    """The one store interface: record, read back, count, iterate. Thread-safe (a connection pool)."""

    def __init__(self, engine: Engine, url_for_logs: str) -> None:
        self.engine = engine
        self.url_for_logs = url_for_logs

    @classmethod
    def open(cls, url: str, *, pool_size: int = 4, timeout_s: float = DEFAULT_TIMEOUT_S, run_migrations: bool = True) -> RecordStore:
        if run_migrations:
            migrate(url)
        u = store_url(url)
        return cls(make_engine(url, pool_size=pool_size, timeout_s=timeout_s), u.render_as_string(hide_password=True))

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def record(self, rec: FittingRecord) -> RecordResult:
        sha = rec.content_sha256()
        p, o = rec.patient, rec.outcome
        row = {
            "fitting_id": rec.fitting_id,
            "content_sha256": sha,
            "patient_key": rec.patient_key,
            "clinic_key": rec.clinic_key,
            "amputation_level": p.amputation_level,
            "prosthetic_side": p.prosthetic_side,
            "body_mass_kg": p.body_mass_kg,
            "height_m": p.height_m,
            "k_level": p.k_level,
            "foot_type": p.foot_type,
            "knee_type": p.knee_type,
            "accepted": o.accepted,
            "prosthetist_rating": o.prosthetist_rating,
            "socket_comfort_score": o.socket_comfort_score,
            "n_walks": len(rec.walks),
            "recorded_at": dt.datetime.now(dt.UTC),
        }
        walk_rows = [
            {
                "fitting_id": rec.fitting_id,
                "walk_index": i,
                "answer_model_name": w.answer.model_name if w.answer else None,
                "answer_model_version": w.answer.model_version if w.answer else None,
                "answer_model_sha256": w.answer.model_sha256 if w.answer else None,
                "answer_kind": w.answer.answer_kind if w.answer else None,
                "features": features_content(w.features),
                "recommended": changes_content(w.answer.recommended) if w.answer else [],
                "applied_after": changes_content(w.applied_after),
            }
            for i, w in enumerate(rec.walks)
        ]
        try:
            with self.engine.begin() as conn:
                conn.execute(fittings.insert(), row)
                conn.execute(walks.insert(), walk_rows)
        except exc.IntegrityError:
            stored = self._sha(rec.fitting_id)
            if stored is None:  # an integrity error that is not our id: unexpected, let it surface
                raise
            if stored != sha:
                raise RecordConflictError(
                    f"fitting_id {rec.fitting_id!r} is already recorded with different content; a corrected "
                    "fitting needs a new fitting_id"
                ) from None
            return RecordResult(rec.fitting_id, sha, already_recorded=True)
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as e:
            log.warning("record store write failed", extra={"error": type(e.orig if hasattr(e, "orig") else e).__name__})
            raise StoreUnavailableError("the record store did not commit the fitting; retry with the same fitting_id") from e
        return RecordResult(rec.fitting_id, sha, already_recorded=False)

    def _sha(self, fitting_id: str) -> str | None:
        try:
            with self.engine.connect() as conn:
                v = conn.execute(sa.select(fittings.c.content_sha256).where(fittings.c.fitting_id == fitting_id)).scalar()
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as e:
            raise StoreUnavailableError("the record store could not be read; retry with the same fitting_id") from e
        return None if v is None else str(v)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(fittings)).scalar_one())

    def fitting_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {str(r[0]) for r in conn.execute(sa.select(fittings.c.fitting_id))}

    def get(self, fitting_id: str) -> FittingRecord | None:
        for rec in self._read(fittings.c.fitting_id == fitting_id):
            return rec
        return None

    def iter_records(self) -> Iterator[FittingRecord]:
        """Every record, oldest first."""
        yield from self._read(None)

    def _read(self, where: Any) -> Iterator[FittingRecord]:
        q = sa.select(fittings).order_by(fittings.c.recorded_at, fittings.c.fitting_id)
        if where is not None:
            q = q.where(where)
        with self.engine.connect() as conn:
            heads = [dict(r._mapping) for r in conn.execute(q)]
            for h in heads:
                ws = conn.execute(
                    sa.select(walks).where(walks.c.fitting_id == h["fitting_id"]).order_by(walks.c.walk_index)
                ).all()
                yield record_from_content(_content(h, [dict(w._mapping) for w in ws]))

    def close(self) -> None:
        self.engine.dispose()


def _content(h: dict[str, Any], ws: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "fitting_id": h["fitting_id"],
        "patient_key": h["patient_key"],
        "clinic_key": h["clinic_key"],
        "patient": {k: h[k] for k in ("amputation_level", "prosthetic_side", "body_mass_kg", "height_m", "k_level", "foot_type", "knee_type")},
        "walks": [
            {
                "features": w["features"],
                "answer": None
                if w["answer_kind"] is None
                else {
                    "model_name": w["answer_model_name"],
                    "model_version": w["answer_model_version"],
                    "model_sha256": w["answer_model_sha256"],
                    "answer_kind": w["answer_kind"],
                    "recommended": w["recommended"],
                },
                "applied_after": w["applied_after"],
            }
            for w in ws
        ],
        "outcome": {k: h[k] for k in ("accepted", "prosthetist_rating", "socket_comfort_score")},
    }
