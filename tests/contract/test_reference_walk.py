"""The bundled model reads the reference walk: a deviation present since the accepted alignment is
weaker evidence of misalignment than the same deviation that appeared since."""

from __future__ import annotations

from service.catalog import REFERENCE_CHANGE_COLUMNS, AmputationLevel, Parameter, SensorKind, Side
from service.domain import AssessmentInput, FeatureInput, PatientContextInput
from service.model import OnnxModel
from service.recommender import Policy, Recommender
from service.validation import validate_assessment
from tests.clinical_cases import CASES


def _p_internal_rotation(model: OnnxModel, reference: dict[str, float] | None) -> float:
    case = next(c for c in CASES if c.name == "excessive toe-out")
    feats = case.features()
    patient = PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, 80.0, k_level=3)
    inp = AssessmentInput(
        "ref",
        patient,
        tuple(FeatureInput(n, v, "", SensorKind.MOTION_CAPTURE) for n, v in feats.items()),
        tuple(FeatureInput(n, v, "", SensorKind.MOTION_CAPTURE) for n, v in (reference or {}).items()),
    )
    rec = Recommender(Policy.default()).recommend(model, [validate_assessment(inp)])[0]
    est = next(e for e in rec.parameter_estimates if e.parameter is Parameter.FOOT_ROTATION)
    return est.probability_decrease


def test_bundled_model_reads_the_change_since_the_reference(bundled_model: OnnxModel) -> None:
    assert set(REFERENCE_CHANGE_COLUMNS) <= set(bundled_model.columns)
    case = next(c for c in CASES if c.name == "excessive toe-out")
    feats = case.features()
    toe_out = "foot_progression_angle_prosthetic_deg"
    # The same walk at the accepted alignment (toe-out already there) vs a reference with the
    # sound side's toe-out on the prosthetic side too (the toe-out is new since).
    always = _p_internal_rotation(bundled_model, dict(feats))
    new = _p_internal_rotation(bundled_model, {**feats, toe_out: feats["foot_progression_angle_sound_deg"]})
    assert new > always + 0.05, (always, new)
