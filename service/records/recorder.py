"""Recorder: validate a fitting record and write it on the store's own threads.

The store gets its own small thread pool (one thread per pooled connection), so a slow or locked
store ties up only those threads: the answer path (RecommendAdjustments on its own lane, the other
RPCs on the server pool) never waits on it. A write that does not finish within the call's deadline
or the store timeout is reported as StoreUnavailableError; it may still commit later, which is why
a retry with the same fitting_id is answered as already recorded.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from service.errors import StoreUnavailableError
from service.records.domain import FittingRecord, RecordInput, RecordResult
from service.records.validation import validate_record
from service.validation import Limits

_DEFAULT_LIMITS = Limits()

if TYPE_CHECKING:
    from service.records.store import RecordStore


class Recorder:
    def __init__(self, store: RecordStore, *, threads: int, timeout_s: float, limits: Limits) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.limits = limits
        self._pool = cf.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="records")
        self._closed = threading.Event()

    @classmethod
    def open(cls, url: str, *, threads: int = 4, timeout_s: float = 5.0, limits: Limits = _DEFAULT_LIMITS, run_migrations: bool = True) -> Recorder:
        from service.records.store import RecordStore

        store = RecordStore.open(url, pool_size=threads, timeout_s=timeout_s, run_migrations=run_migrations)
        return cls(store, threads=threads, timeout_s=timeout_s, limits=limits)

    def validate(self, r: RecordInput) -> FittingRecord:
        return validate_record(r, self.limits)

    def record(self, rec: FittingRecord, deadline_s: float | None = None) -> RecordResult:
        """Write `rec` and wait for the commit (at most the deadline, or the store timeout plus slack)."""
        return self._run(lambda: self.store.record(rec), deadline_s)

    def _run(self, fn: Callable[[], RecordResult], deadline_s: float | None) -> RecordResult:
        wait = self.timeout_s * 2 + 1.0
        if deadline_s is not None:
            wait = min(wait, max(deadline_s, 0.0))
        try:
            fut = self._pool.submit(fn)
        except RuntimeError:  # pool shut down: draining
            raise StoreUnavailableError("the server is shutting down; retry with the same fitting_id") from None
        try:
            return fut.result(timeout=wait)
        except cf.TimeoutError:
            raise StoreUnavailableError(
                "the record store did not confirm the write in time; retry with the same fitting_id"
            ) from None

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.shutdown(wait=True, cancel_futures=False)
            self.store.close()
