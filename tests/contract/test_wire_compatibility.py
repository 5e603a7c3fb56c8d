"""The v1 wire contract only grows: buf's FILE breaking rules against the first released contract.

`protos/contract-v1.0.binpb` is `buf build` of protos/ as first released (commit 639eddb). CI runs the
same check (scripts/test.sh); this test also shows the check bites, on a renamed field.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROTOS = Path(__file__).resolve().parents[2] / "protos"
BASELINE = PROTOS / "contract-v1.0.binpb"


def _breaking(protos: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["buf", "breaking", "--against", str(BASELINE)], cwd=protos, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture(scope="module")
def buf() -> None:
    if shutil.which("buf") is None:
        pytest.skip("buf is not installed (scripts/test.sh installs it from npm)")


def test_current_protos_keep_the_first_released_contract(buf: None) -> None:
    r = _breaking(PROTOS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_renamed_field_is_reported_as_breaking(buf: None, tmp_path: Path) -> None:
    copy = tmp_path / "protos"
    shutil.copytree(PROTOS, copy)
    proto = copy / "prosthetic_alignment" / "v1" / "alignment.proto"
    text = proto.read_text()
    assert "  string assessment_id = 1;" in text
    proto.write_text(text.replace("  string assessment_id = 1;", "  string assessment_key = 1;", 1))
    r = _breaking(copy)
    assert r.returncode != 0 and "assessment_key" in r.stdout, r.stdout + r.stderr
