"""Every line the service writes to stderr is a JSON log record (issue 15, finding 9)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_numpy_warnings_are_json_log_lines() -> None:
    code = (
        "from service.logs import configure; configure('INFO', 'json'); import numpy as np; "
        "np.log(np.zeros(1)); np.mean(np.array([]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) >= 2, out.stderr  # the divide-by-zero and the mean of an empty slice
    for line in lines:
        record = json.loads(line)  # raises on a raw warning line
        assert record["logger"] == "py.warnings" and record["level"] == "WARNING"
