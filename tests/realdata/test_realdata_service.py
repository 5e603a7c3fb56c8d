"""Real healthy recordings through extraction and the bundled model: no alignment change.

A healthy, symmetric walker "wearing" a prosthesis on either side must get "no change needed" (or
only changes below the thresholds, which the service never recommends by construction).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service.catalog import AmputationLevel, SensorKind
from service.catalog import Side as CatalogSide
from service.domain import AssessmentInput, FeatureInput, PatientContextInput
from service.model import OnnxModel
from service.recommender import Policy, Recommender
from service.sensors import Side, extract_imu
from service.validation import validate_assessment
from tests.realdata.conftest import need
from tests.realdata.test_realdata_imu import GAITMAP_FS, _channels, _gaitmap


@pytest.mark.parametrize("side", [Side.LEFT, Side.RIGHT])
def test_gaitmap_healthy_imu_needs_no_change(data_dir: Path, bundled_model: OnnxModel, side: Side) -> None:
    need(data_dir / "gaitmap-example")
    cols, _events = _gaitmap(data_dir)
    res = extract_imu(_channels(cols), GAITMAP_FS, side)
    feats = tuple(FeatureInput(n, v, "", SensorKind.IMU) for n, v in res.features.items())
    patient = PatientContextInput(AmputationLevel.TRANSTIBIAL, CatalogSide(side.value), 75.0, k_level=4)
    g = validate_assessment(AssessmentInput("gaitmap", patient, feats))
    rec = Recommender(Policy.default()).recommend(bundled_model, [g])[0]
    assert rec.no_change_needed, [(a.parameter, a.change, a.confidence) for a in rec.adjustments]
    # IMU-only evidence: the service must not claim high confidence and should say what to measure.
    assert rec.confidence_level.value != "HIGH"
