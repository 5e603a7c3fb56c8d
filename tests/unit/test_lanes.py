"""The lanes' bookkeeping (api/lanes.py): outstanding calls counted exactly, refusals by lane and total."""

from __future__ import annotations

import threading

from service.api.lanes import DRAINING, REJECT_BACKLOG, LanePool, Lanes


def test_outstanding_counts_queued_and_running_calls_until_they_finish() -> None:
    pool = LanePool("t", threads=1, limit=2)
    release = threading.Event()
    try:
        futures = [pool.submit(release.wait, 5) for _ in range(3)]  # 1 running, 2 queued
        assert pool.outstanding == 3
        release.set()
        for f in futures:
            f.result(5)
        assert pool.outstanding == 0
        pool.submit(lambda: None).result(5)  # a call already done when its callback is added
        assert pool.outstanding == 0
    finally:
        release.set()
        pool.shutdown(wait=True)


def test_a_full_lane_or_full_work_total_is_refused_but_health_is_not() -> None:
    lanes = Lanes(grpc_threads=2, unary_threads=1, max_streams=2, max_batches=2, max_work=3)
    release = threading.Event()
    try:
        held = [lanes.stream.submit(release.wait, 5) for _ in range(2)]
        assert lanes.refusal(lanes.stream) is not None  # the stream lane is full
        assert lanes.refusal(lanes.batch) is None
        held.append(lanes.batch.submit(release.wait, 5))
        why = lanes.refusal(lanes.unary)  # 3 work calls in progress: max_work reached
        assert why is not None and "max_concurrent_rpcs" in why
        assert lanes.refusal(lanes.health) is None  # health never counts towards, nor waits for, work
        assert lanes.backstop == sum(p.limit for p in lanes.pools if p is not lanes.reject) + REJECT_BACKLOG
        release.set()
        for f in held:
            f.result(5)
        assert lanes.refusal(lanes.unary) is None
    finally:
        release.set()
        lanes.shutdown()


def test_a_draining_server_refuses_new_work_but_answers_health() -> None:
    lanes = Lanes(grpc_threads=2, unary_threads=1, max_streams=2, max_batches=2, max_work=3)
    try:
        held = lanes.batch.submit(lambda: None)
        held.result(5)
        lanes.draining = True
        for lane in (lanes.unary, lanes.batch, lanes.stream, lanes.recordings, lanes.rpc):
            assert lanes.refusal(lane) == DRAINING
        assert lanes.refusal(lanes.health) is None and lanes.refusal(lanes.observe) is None
        assert lanes.work_outstanding() == 0
    finally:
        lanes.shutdown()
