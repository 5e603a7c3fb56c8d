"""Settings.malloc_arenas caps glibc's malloc arenas in a serving process (service/api/server.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Eight threads allocate at once (each would get an arena of its own), then glibc's malloc_stats()
# lists the arenas on stderr ("Arena 0:", "Arena 1:", ...).
_PROBE = """
import ctypes, sys, threading
from service.api.server import limit_malloc_arenas
limit = int(sys.argv[1])
print(limit_malloc_arenas(limit))
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    keep = [bytes(4096) * 64 for _ in range(200)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""


def _arenas(limit: int) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(limit)], capture_output=True, text=True, cwd=ROOT, check=True, timeout=120
    )
    return out.stdout.strip(), sum(1 for line in out.stderr.splitlines() if line.startswith("Arena "))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_malloc_arenas_are_capped() -> None:
    applied, capped = _arenas(2)
    if applied != "True":
        pytest.skip("no glibc mallopt here (musl?): the setting is documented as ignored")
    _, default = _arenas(0)
    assert capped <= 2 < default, (capped, default)
