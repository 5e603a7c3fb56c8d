"""The real bundled artifact and the real proto agree with the catalog."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service.catalog import (
    CATALOG_VERSION,
    MODEL_INPUT_COLUMNS,
    PARAMETER_NAMES,
    AmputationLevel,
    Parameter,
    SensorKind,
    Side,
)
from service.model import OUTPUT_NAMES, OnnxModel, sha256_file
from tests.conftest import bundled_model_dir


def test_proto_enums_match_the_catalog() -> None:
    def names(enum, prefix: str) -> set[str]:  # type: ignore[no-untyped-def]
        return {n.removeprefix(prefix) for n in enum.keys()} - {"UNSPECIFIED"}

    assert names(pb.AdjustmentParameter, "ADJUSTMENT_PARAMETER_") == {p.value for p in Parameter}
    assert names(pb.SensorKind, "SENSOR_KIND_") == {s.value for s in SensorKind}
    assert names(pb.AmputationLevel, "AMPUTATION_LEVEL_") == {a.value for a in AmputationLevel}
    assert names(pb.Side, "SIDE_") == {s.value for s in Side}
    # Wire numbers are the catalog order + 1: integrators persist them.
    assert [pb.AdjustmentParameter.Value("ADJUSTMENT_PARAMETER_" + n) for n in PARAMETER_NAMES] == list(range(1, 8))


def test_manifest_matches_catalog_and_file(bundled_model: OnnxModel) -> None:
    d = bundled_model_dir()
    man = json.loads((d / "manifest.json").read_text())
    assert man["sha256"] == sha256_file(d / man["model_file"])
    assert man["catalog_version"].split(".")[0] == CATALOG_VERSION.split(".")[0]
    assert man["input"]["columns"] == list(MODEL_INPUT_COLUMNS)
    assert man["outputs"] == list(OUTPUT_NAMES)
    assert [p["name"] for p in man["parameters"]] == list(PARAMETER_NAMES)
    assert man["training_data"]["kind"] == "simulated" and man["training_data"]["fingerprint"]
    assert (d / "model_card.md").read_text().lower().count("simulated") >= 1
    assert "not clinically validated" in (d / "model_card.md").read_text().lower()


def test_onnx_graph_is_compact(bundled_model: OnnxModel) -> None:
    """One tree-ensemble node per fitted model, not one per tree (DESIGN 6, 8)."""
    d = bundled_model_dir()
    graph = onnx.load(str(d / "model.onnx")).graph
    assert len(graph.node) < 200, len(graph.node)
    assert (d / "model.onnx").stat().st_size < 30 * 1024 * 1024


def test_golden_predictions_reproduce(bundled_model: OnnxModel) -> None:
    bundled_model.check_golden()  # raises on mismatch
    g = bundled_model.manifest.golden
    x = np.array([[np.nan if v is None else v for v in row] for row in g.inputs], dtype=np.float32)
    pred = bundled_model.predict_model_order(x)
    p_none = 1.0 - pred.p_decrease - pred.p_increase
    assert np.all(pred.p_decrease >= 0) and np.all(pred.p_increase >= 0) and np.all(p_none >= -1e-5)
    assert np.all(pred.magnitude_lo <= pred.magnitude + 1e-4) and np.all(pred.magnitude <= pred.magnitude_hi + 1e-4)


def test_model_handles_all_missing_features(bundled_model: OnnxModel) -> None:
    x = np.full((1, len(MODEL_INPUT_COLUMNS)), np.nan)
    x[0, MODEL_INPUT_COLUMNS.index("context_transfemoral")] = 0.0
    x[0, MODEL_INPUT_COLUMNS.index("context_body_mass_kg")] = 80.0
    pred = bundled_model.predict(x)
    assert np.all(np.isfinite(pred.p_decrease)) and np.all(np.isfinite(pred.magnitude))


@pytest.mark.parametrize("corruption", ["sha", "golden", "columns", "truncated"])
def test_corrupt_artifacts_are_refused(tmp_models, corruption: str) -> None:  # type: ignore[no-untyped-def]
    from service.errors import ModelArtifactError

    (d,) = list((tmp_models / "alignment").iterdir())
    man = json.loads((d / "manifest.json").read_text())
    if corruption == "sha":
        man["sha256"] = "0" * 64
    elif corruption == "golden":
        man["golden"]["outputs"]["magnitude"][0][0] += 1.0
    elif corruption == "columns":
        man["input"]["columns"][0] = "toe_out"
    else:
        data = (d / "model.onnx").read_bytes()
        (d / "model.onnx").write_bytes(data[: len(data) // 2])
        man["sha256"] = sha256_file(d / "model.onnx")
    (d / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelArtifactError):
        OnnxModel.load(d)
