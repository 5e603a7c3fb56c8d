"""Record-store back-ends for the integration tests: a SQLite file per test, one PostgreSQL server
per test session (started here, stopped at the end; skipped with the reason when it cannot start)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg_server import PostgresServer, unavailable_reason


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"no PostgreSQL server for the record-store tests: {reason}")
    srv = PostgresServer.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def records_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.db'}"
    pg: PostgresServer = request.getfixturevalue("postgres")
    pg.reset()
    return pg.url
