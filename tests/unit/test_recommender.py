"""Ranking, thresholds, clamping and explanations, with a scripted model (no onnxruntime)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pytest

from service.catalog import (
    CONTEXT_COLUMNS,
    FEATURE_NAMES,
    FEATURES,
    MODEL_INPUT_COLUMNS,
    PARAMETER_NAMES,
    REFERENCE_CHANGE_PREFIX,
    AmputationLevel,
    Parameter,
    SensorKind,
    Side,
)
from service.domain import AssessmentInput, ConfidenceLevel, FeatureInput, ModelRef, PatientContextInput
from service.model import Prediction
from service.recommender import Policy, Recommender, model_input
from service.validation import validate_assessment

PARAMS = tuple(Parameter(n) for n in PARAMETER_NAMES)


@dataclass
class ScriptedModel:
    """Returns fixed per-parameter outputs: {param: (p_dec, p_inc, magnitude)}."""

    outputs: dict[Parameter, tuple[float, float, float]] = field(default_factory=dict)
    name: str = "scripted"
    version: str = "0.0.1"
    sha256: str = "0" * 64
    parameters: tuple[Parameter, ...] = PARAMS
    feature_columns: frozenset[str] = frozenset(FEATURE_NAMES)
    columns: tuple[str, ...] = MODEL_INPUT_COLUMNS

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, self.version, self.sha256)

    def predict(self, x: np.ndarray) -> Prediction:
        n = x.shape[0]
        arr = {k: np.zeros((n, len(PARAMS)), dtype=np.float32) for k in ("dec", "inc", "mag")}
        for j, p in enumerate(PARAMS):
            dec, inc, mag = self.outputs.get(p, (0.02, 0.02, 0.0))
            arr["dec"][:, j], arr["inc"][:, j], arr["mag"][:, j] = dec, inc, mag
        return Prediction(arr["dec"], arr["inc"], arr["mag"], arr["mag"] * 0.7, arr["mag"] * 1.3)


def _assessment(level: AmputationLevel = AmputationLevel.TRANSTIBIAL, **values: float):  # type: ignore[no-untyped-def]
    base = {f.name: f.normative[level].mean for f in FEATURES}
    base.update(values)
    feats = tuple(FeatureInput(n, v, "", SensorKind.MOTION_CAPTURE) for n, v in base.items())
    return validate_assessment(AssessmentInput("a", PatientContextInput(level, Side.LEFT, 80.0), feats))


def _rec(model: ScriptedModel, policy: Policy | None = None, **values: float):  # type: ignore[no-untyped-def]
    return Recommender(policy or Policy.default()).recommend(model, [_assessment(**values)])[0]  # type: ignore[arg-type]


def test_no_change_when_model_sees_none() -> None:
    r = _rec(ScriptedModel())
    assert r.no_change_needed and not r.adjustments
    assert r.confidence_level is ConfidenceLevel.HIGH


def test_change_below_minimum_is_not_recommended() -> None:
    r = _rec(ScriptedModel({Parameter.FOOT_ROTATION: (0.9, 0.0, 1.5)}))
    assert r.no_change_needed
    (est,) = [e for e in r.parameter_estimates if e.parameter is Parameter.FOOT_ROTATION]
    assert "below the smallest meaningful change" in est.reason


def test_low_probability_is_not_recommended() -> None:
    r = _rec(ScriptedModel({Parameter.FOOT_ROTATION: (0.45, 0.1, 8.0)}))
    assert r.no_change_needed


def test_large_change_is_clamped_to_the_safe_step_with_sign() -> None:
    r = _rec(ScriptedModel({Parameter.FOOT_ROTATION: (0.95, 0.0, 14.0), Parameter.PYLON_LENGTH: (0.0, 0.9, 18.0)}))
    by = {a.parameter: a for a in r.adjustments}
    assert by[Parameter.FOOT_ROTATION].change == -6.0 and by[Parameter.FOOT_ROTATION].clamped_to_safe_step
    assert by[Parameter.FOOT_ROTATION].suggested_change == pytest.approx(-14.0)
    assert by[Parameter.PYLON_LENGTH].change == 10.0 and by[Parameter.PYLON_LENGTH].unit == "mm"
    assert by[Parameter.FOOT_ROTATION].interval_lower <= by[Parameter.FOOT_ROTATION].interval_upper


def test_policy_thresholds_are_configurable() -> None:
    pol = Policy.from_values(
        min_change_deg=1.0, min_change_mm=3.0, min_change_length_mm=5.0, max_step_deg=4.0, max_step_mm=8.0,
        min_confidence=0.5, deviation_z=2.0, explain=False,
    )
    r = _rec(ScriptedModel({Parameter.FOOT_ROTATION: (0.9, 0.0, 1.5), Parameter.HEEL_HEIGHT: (0.0, 0.9, 12.0)}), pol)
    by = {a.parameter: a for a in r.adjustments}
    assert by[Parameter.FOOT_ROTATION].change == -1.5
    assert by[Parameter.HEEL_HEIGHT].change == 8.0


def test_sagittal_ranks_before_coronal_even_when_coronal_scores_higher() -> None:
    r = _rec(ScriptedModel({Parameter.FOOT_MEDIAL_SHIFT: (0.99, 0.0, 10.0), Parameter.SOCKET_FLEXION: (0.0, 0.85, 3.0)}))
    assert [a.parameter for a in r.adjustments] == [Parameter.SOCKET_FLEXION, Parameter.FOOT_MEDIAL_SHIFT]
    assert [a.rank for a in r.adjustments] == [1, 2]


def test_within_a_plane_group_rank_by_probability_and_size() -> None:
    r = _rec(ScriptedModel({Parameter.HEEL_HEIGHT: (0.0, 0.6, 6.0), Parameter.FOOT_ROTATION: (0.95, 0.0, 6.0)}))
    assert r.adjustments[0].parameter is Parameter.FOOT_ROTATION


def test_supporting_deviations_follow_the_effect_table() -> None:
    # Excess external rotation raises toe-out; the correction (negative) is supported by high toe-out.
    r = _rec(ScriptedModel({Parameter.FOOT_ROTATION: (0.95, 0.0, 6.0)}), foot_progression_angle_prosthetic_deg=25.0)
    adj = r.adjustments[0]
    assert adj.change < 0
    assert "foot_progression_angle_prosthetic_deg" in adj.supporting_deviations
    assert any(d.feature == "foot_progression_angle_prosthetic_deg" and d.z_score > 2 for d in r.deviations)
    assert "toe-out" in adj.direction


@pytest.mark.parametrize("level", list(AmputationLevel))
@pytest.mark.parametrize("param", PARAMS)
def test_driving_features_are_listed_once(level: AmputationLevel, param: Parameter) -> None:
    # Hip hike has two effect rows for PYLON_LENGTH (one shape for too long, one for too short); the
    # answer once named it twice. Every feature deviated, each in turn the most deviated one.
    rec = Recommender(dataclasses.replace(Policy.default(), explain=False))
    for top in FEATURES:
        deviated = {
            f.name: min(f.normative[level].mean + (6 if f is top else 3) * f.normative[level].sd, f.max_value) for f in FEATURES
        }
        r = rec.recommend(ScriptedModel({param: (0.0, 0.95, 8.0)}), [_assessment(level, **deviated)])[0]  # type: ignore[arg-type]
        (adj,) = [a for a in r.adjustments if a.parameter is param]
        assert adj.driving_features and len(set(adj.driving_features)) == len(adj.driving_features), (top.name, adj.driving_features)


def test_unexplained_deviation_becomes_a_non_alignment_finding() -> None:
    r = _rec(ScriptedModel(), knee_flexion_loading_prosthetic_deg=25.0)
    assert r.no_change_needed
    assert [f.code for f in r.non_alignment_findings] == ["HEEL_TOO_STIFF_SUSPECTED"]


def test_explained_deviation_is_not_a_non_alignment_finding() -> None:
    r = _rec(ScriptedModel({Parameter.SOCKET_FLEXION: (0.9, 0.0, 4.0)}), knee_flexion_loading_prosthetic_deg=25.0)
    assert not r.non_alignment_findings


def test_thin_evidence_lowers_confidence_and_suggests_measurements() -> None:
    g = validate_assessment(
        AssessmentInput(
            "thin",
            PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, 80.0),
            (FeatureInput("walking_speed_m_per_s", 1.0),),
        )
    )
    r = Recommender(Policy.default()).recommend(ScriptedModel({Parameter.PYLON_LENGTH: (0.3, 0.3, 6.0)}), [g])[0]  # type: ignore[arg-type]
    assert r.confidence_level is ConfidenceLevel.LOW
    assert any("too little information" in w for w in r.warnings)
    assert r.suggested_measurements
    assert any(s.sensor_kind is SensorKind.INSTRUMENTED_PYLON for s in r.suggested_measurements)


def test_moderate_probability_needs_a_supporting_deviation() -> None:
    model = ScriptedModel({Parameter.FOOT_ROTATION: (0.7, 0.0, 6.0)})
    assert _rec(model).no_change_needed
    (est,) = [e for e in _rec(model).parameter_estimates if e.parameter is Parameter.FOOT_ROTATION]
    assert "without a gait deviation" in est.reason
    # the same probability with the textbook deviation (marked toe-out) is recommended
    assert _rec(model, foot_progression_angle_prosthetic_deg=25.0).adjustments[0].parameter is Parameter.FOOT_ROTATION


def test_alternative_fixes_pool_when_together_likely() -> None:
    # Excessive knee flexion at loading: socket flexed or foot dorsiflexed; each alone below "no change".
    model = ScriptedModel({Parameter.SOCKET_FLEXION: (0.45, 0.0, 4.0), Parameter.HEEL_HEIGHT: (0.0, 0.4, 8.0)})
    r = _rec(model, knee_flexion_loading_prosthetic_deg=25.0)
    assert [a.parameter for a in r.adjustments] == [Parameter.SOCKET_FLEXION]
    assert "alternative fixes" in r.adjustments[0].rationale and "higher heel" in r.adjustments[0].rationale
    assert r.adjustments[0].confidence == pytest.approx(0.45)
    # without the deviation nothing pools
    assert _rec(model).no_change_needed


def test_model_input_carries_the_change_since_the_reference_walk() -> None:
    level = AmputationLevel.TRANSTIBIAL
    feats = (FeatureInput("step_width_m", 0.14), FeatureInput("cadence_steps_per_min", 100.0))
    ref = (FeatureInput("step_width_m", 0.11), FeatureInput("walking_speed_m_per_s", 1.0))
    g = validate_assessment(AssessmentInput("r", PatientContextInput(level, Side.LEFT, 80.0), feats, ref))
    plain = validate_assessment(AssessmentInput("p", PatientContextInput(level, Side.LEFT, 80.0), feats))
    x = model_input([g, plain])
    col = {c: i for i, c in enumerate(MODEL_INPUT_COLUMNS)}
    assert x[0, col[REFERENCE_CHANGE_PREFIX + "step_width_m"]] == pytest.approx(0.03)
    # Only one of the two walks measured these: no change is known.
    assert np.isnan(x[0, col[REFERENCE_CHANGE_PREFIX + "cadence_steps_per_min"]])
    assert np.isnan(x[0, col[REFERENCE_CHANGE_PREFIX + "walking_speed_m_per_s"]])
    # Without a reference every change column is missing, and the rest of the row is the same.
    assert np.isnan(x[1, len(FEATURES) + len(CONTEXT_COLUMNS) :]).all()
    first_change = col[REFERENCE_CHANGE_PREFIX + FEATURES[0].name]
    np.testing.assert_array_equal(x[0, :first_change], x[1, :first_change])


def test_reference_walk_hint_and_unread_reference_warning() -> None:
    from service.recommender import NO_REFERENCE_HINT, NOT_READ_REFERENCE_WARNING

    level = AmputationLevel.TRANSTIBIAL
    feats = tuple(FeatureInput(f.name, f.normative[level].mean, "", SensorKind.IMU) for f in FEATURES[:6])
    patient = PatientContextInput(level, Side.LEFT, 80.0)
    plain = validate_assessment(AssessmentInput("p", patient, feats))
    with_ref = validate_assessment(AssessmentInput("r", patient, feats, feats))
    model = ScriptedModel({PARAMS[0]: (0.3, 0.3, 4.0)})  # unsure: below HIGH confidence
    recs = Recommender(Policy.default()).recommend(model, [plain, with_ref])  # type: ignore[arg-type]
    assert NO_REFERENCE_HINT in recs[0].warnings
    assert NO_REFERENCE_HINT not in recs[1].warnings and NOT_READ_REFERENCE_WARNING not in recs[1].warnings
    # A model without the change-since-reference columns: the reference is checked, not used, and said so.
    old = ScriptedModel({PARAMS[0]: (0.3, 0.3, 4.0)}, columns=MODEL_INPUT_COLUMNS[: len(FEATURES) + len(CONTEXT_COLUMNS)])
    recs = Recommender(Policy.default()).recommend(old, [plain, with_ref])  # type: ignore[arg-type]
    assert NOT_READ_REFERENCE_WARNING in recs[1].warnings
    assert NO_REFERENCE_HINT not in recs[0].warnings


def test_changes_since_the_reference_walk_are_listed_largest_first() -> None:
    level = AmputationLevel.TRANSTIBIAL
    norm = {f.name: f.normative[level] for f in FEATURES}
    patient = PatientContextInput(level, Side.LEFT, 80.0)
    toe, width, speed = "foot_progression_angle_prosthetic_deg", "step_width_m", "walking_speed_m_per_s"
    ref = {toe: norm[toe].mean, width: norm[width].mean, speed: norm[speed].mean}
    now = {toe: norm[toe].mean + 3 * norm[toe].sd, width: norm[width].mean + 1.5 * norm[width].sd, speed: norm[speed].mean + 0.2 * norm[speed].sd}
    g = validate_assessment(
        AssessmentInput(
            "r",
            patient,
            tuple(FeatureInput(n, v) for n, v in now.items()),
            tuple(FeatureInput(n, v) for n, v in ref.items()),
        )
    )
    plain = validate_assessment(AssessmentInput("p", patient, tuple(FeatureInput(n, v) for n, v in now.items())))
    with_ref, alone = Recommender(Policy.default()).recommend(ScriptedModel(), [g, plain])  # type: ignore[arg-type]
    got = [(c.feature, round(c.change_in_sd, 2)) for c in with_ref.changes_since_reference]
    assert got == [(toe, 3.0), (width, 1.5)]  # the 0.2 SD speed change is within visit-to-visit drift
    c = with_ref.changes_since_reference[0]
    assert c.unit == "deg" and c.change == pytest.approx(c.value - c.reference_value)
    assert alone.changes_since_reference == ()
