"""A real Node client (@grpc/grpc-js + @grpc/proto-loader, google.rpc protos from google-proto-files)
against a real server: a ranked answer, and a bad request whose BadRequest field violations it
decodes from the status details. The npm packages are pinned in tests/node/package-lock.json and
installed into tests/node/node_modules (git-ignored; never a global prefix) on first use."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service.api.server import RunningServer
from service.client import AlignmentClient, load_assessment
from tests.conftest import EXAMPLES, ROOT

NODE_DIR = ROOT / "tests" / "node"
NODE, NPM = shutil.which("node"), shutil.which("npm")
pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None, reason="node and npm are not installed (Node >= 18 runs the Node client test)"
)


@pytest.fixture(scope="module")
def node_modules() -> None:
    if (NODE_DIR / "node_modules" / "@grpc" / "grpc-js" / "package.json").exists():
        return
    assert NPM is not None
    out = subprocess.run(
        [NPM, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", str(NODE_DIR)],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, f"npm ci in tests/node failed (needs the npm registry):\n{out.stderr[-2000:]}"


def test_node_client_gets_a_ranked_answer_and_decodes_field_violations(
    server: RunningServer, node_modules: None
) -> None:
    assert NODE is not None
    example = EXAMPLES / "toe_out_transtibial.json"
    out = subprocess.run(
        [NODE, str(NODE_DIR / "client.js"), f"127.0.0.1:{server.port}", str(ROOT / "protos"), str(example)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    with AlignmentClient.connect(f"127.0.0.1:{server.port}") as py:
        expected = py.recommend(load_assessment(example))
    assert got["model"] == expected.model.version
    assert got["ranked"], "the toe-out example gets at least one adjustment"
    assert [(a["rank"], a["parameter"], a["change"], a["unit"]) for a in got["ranked"]] == [
        (a.rank, pb.AdjustmentParameter.Name(a.parameter), _change(a), a.unit)
        for a in expected.adjustments
    ]
    assert got["rejected"]["code"] == "INVALID_ARGUMENT"
    [violation] = got["rejected"]["violations"]
    assert violation["field"] == "assessment.features[0].value"
    assert violation["reason"] == "FEATURE_OUT_OF_RANGE"
    assert "12 m/s" in violation["description"] and "0.05 to 3 m/s" in violation["description"]


def _change(a: pb.Adjustment) -> float:
    return float(a.change_deg if a.WhichOneof("change") == "change_deg" else a.change_mm)
