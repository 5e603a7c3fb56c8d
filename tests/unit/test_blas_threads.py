"""A serving process runs numpy's BLAS on one thread (see service/api/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The import order of `python -m service`: settings and logging, then the edge (which loads numpy).
_PROBE = """
import sys
import service.logs, service.settings
assert "numpy" not in sys.modules, "numpy is loaded before the edge can limit its BLAS threads"
import service.api.server
from threadpoolctl import threadpool_info
print(max(i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openblas"))
"""


def test_service_process_runs_blas_on_one_thread() -> None:
    pytest.importorskip("threadpoolctl")  # a dev/training dependency, not a runtime one
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=ROOT, env=env, check=True, timeout=120
    )
    assert out.stdout.strip() == "1"
