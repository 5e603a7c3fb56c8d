"""`python -m service.client` against a real server: several files go as one batch and each answer
or error is printed with its file; --json is one document; exit 0/1/2; a closed pipe is quiet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.api.server import RunningServer
from service.client import main
from tests.conftest import EXAMPLES, ROOT

TOE_OUT = EXAMPLES / "toe_out_transtibial.json"
WELL = EXAMPLES / "well_aligned_transtibial.json"


def _run(server: RunningServer, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["--address", f"127.0.0.1:{server.port}", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    one = json.loads(TOE_OUT.read_text())
    bad = json.loads(WELL.read_text())
    bad["features"][0]["value"] = 12.0  # walking speed far outside the valid range
    array = tmp_path / "array.json"
    array.write_text(json.dumps([one, bad]))
    empty = tmp_path / "empty.json"
    empty.write_text("")
    broken = tmp_path / "broken.json"
    broken.write_text('{"assessmentId": ')
    return array, empty, broken


def test_several_files_and_an_array_are_answered_item_by_item(
    server: RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    array, empty, broken = _files(tmp_path)
    rc, out, raw_err = _run(server, capsys, "recommend", str(empty), str(array), str(broken), str(WELL))
    err = " ".join(raw_err.split())  # messages are wrapped at 100 columns
    assert rc == 1
    assert f"== {array}[0]" in out and f"== {WELL}" in out and "FOOT_ROTATION" in out
    assert f"error: {empty}: empty file" in err
    assert f"error: {broken}: not JSON" in err
    assert f"error: {array}[1]: INVALID_ARGUMENT" in err and "assessments[1].features[0].value" in err
    assert "3 of 5 rejected" in err
    assert max(len(line) for line in (out + raw_err).splitlines() if str(tmp_path) not in line) <= 100


def test_json_of_several_files_is_one_document_in_file_order(
    server: RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    array, empty, _broken = _files(tmp_path)
    rc, out, _err = _run(server, capsys, "--json", "recommend", str(array), str(empty), str(TOE_OUT))
    assert rc == 1
    doc = json.loads(out)
    assert [r["source"] for r in doc["results"]] == [f"{array}[0]", f"{array}[1]", str(empty), str(TOE_OUT)]
    assert [sorted(r)[0] for r in doc["results"]] == ["recommendation", "error", "error", "recommendation"]
    assert doc["results"][1]["error"]["fieldViolations"][0]["reason"] == "FEATURE_OUT_OF_RANGE"


def test_one_file_prints_the_raw_answer_and_exits_zero(server: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _err = _run(server, capsys, "--json", "recommend", str(TOE_OUT))
    assert rc == 0 and json.loads(out)["assessmentId"] == "fit-2026-001"


def test_json_health(server: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _err = _run(server, capsys, "--json", "health")
    assert rc == 0 and json.loads(out) == {"status": "SERVING"}


def test_no_server_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--address", "127.0.0.1:1", "--timeout", "2", "health"])
    assert rc == 2 and "UNAVAILABLE" in capsys.readouterr().err


def test_fit_replays_every_walk(server: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _err = _run(server, capsys, "fit", str(EXAMPLES / "fittings" / "toe_out_transtibial.json"))
    assert rc == 0
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("walk")] == ["walk 1", "walk 2", "walk 3"]
    assert "applied after this walk: FOOT_ROTATION -6 deg" in out
    rc, out, _err = _run(server, capsys, "--json", "fit", str(EXAMPLES / "fittings" / "toe_out_transtibial.json"))
    walks = json.loads(out)["walks"]
    assert rc == 0 and [w["recommendation"]["assessmentId"] for w in walks] == [f"fit-2026-007-walk{k}" for k in (1, 2, 3)]


def test_a_reader_that_closes_the_pipe_ends_the_client_quietly(server: RunningServer) -> None:
    files = [str(TOE_OUT)] * 200  # far more output than a pipe buffer holds
    p = subprocess.Popen(
        [sys.executable, "-m", "service.client", "--address", f"127.0.0.1:{server.port}", "recommend", *files],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.readline().startswith(b"== ")
    p.stdout.close()  # what `| head -1` does
    assert p.wait(60) == 0
    assert p.stderr.read() == b""
