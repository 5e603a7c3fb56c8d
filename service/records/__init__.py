"""Fitting records (DESIGN 6.1): finished fittings kept as the training data that does not exist yet.

    domain.py       the record as received (RecordInput) and as validated (FittingRecord)
    validation.py   RecordInput -> FittingRecord in canonical units, or InvalidInputError
    schema.py       the tables (SQLAlchemy Core); migrations/ holds the Alembic revisions that build them
    store.py        RecordStore: SQLite (default, WAL, synchronous=FULL) or PostgreSQL through
                    SQLAlchemy Core; the schema is brought to the newest revision on open
    recorder.py     Recorder: validate, then write on the store's own threads (never the answer path's)

Part of the core: no grpc or protobuf imports. SQLAlchemy and Alembic come with the `records` extra
and are imported only when a store is opened, so the runtime install works without them while
recording is off.
"""

from __future__ import annotations

RECORDS_EXTRA_HINT = "recording fittings needs the records extra: pip install '.[records]' (SQLAlchemy, Alembic, psycopg)"
