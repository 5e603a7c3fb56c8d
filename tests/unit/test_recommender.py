"""The recommender's stages with a scripted model (no onnxruntime): thresholds, clamping, ranking,
answer kinds, trials, the veto against the rule table, noise-aware deviations, the fitting loop and
the explanations."""

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
from service.domain import (
    AnswerKind,
    AppliedChangeInput,
    AssessmentInput,
    ConfidenceLevel,
    FeatureInput,
    FittingWalkInput,
    ModelRef,
    PatientContextInput,
)
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
    input_ranges: tuple[np.ndarray, np.ndarray] | None = None

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


def test_no_change_confidence_is_the_joint_probability_of_the_band() -> None:
    # Seven parameters each 96% "no change" leave a 25% chance that one of them is off: the answer must
    # not claim the 96% of the surest one (measured overconfident, decide.BatchArrays.no_change).
    r = _rec(ScriptedModel())
    assert r.answer_kind is AnswerKind.NO_CHANGE
    assert r.overall_confidence == pytest.approx(0.96**7, abs=1e-3)
    assert r.confidence_level is ConfidenceLevel.MEDIUM


def test_no_change_when_model_sees_none() -> None:
    r = _rec(ScriptedModel({p: (0.005, 0.005, 0.0) for p in PARAMS}))
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
    answered = 0
    for top in FEATURES:
        deviated = {
            f.name: min(f.normative[level].mean + (6 if f is top else 3) * f.normative[level].sd, f.max_value) for f in FEATURES
        }
        r = rec.recommend(ScriptedModel({param: (0.0, 0.95, 8.0)}), [_assessment(level, **deviated)])[0]  # type: ignore[arg-type]
        answered += bool(r.adjustments)
        for adj in r.adjustments:
            assert adj.driving_features and len(set(adj.driving_features)) == len(adj.driving_features), (top.name, adj.driving_features)
    assert answered


def test_a_clear_deviation_whose_every_candidate_is_vetoed_is_not_alignment() -> None:
    # Excessive knee flexion at loading (Table A T1): the model finds the opposite of every textbook fix
    # more likely, so none is advised and the non-alignment causes are what to check.
    model = ScriptedModel(
        {Parameter.SOCKET_FLEXION: (0.05, 0.3, 4.0), Parameter.HEEL_HEIGHT: (0.3, 0.05, 8.0), Parameter.FOOT_ANTERIOR_SHIFT: (0.3, 0.05, 8.0)}
    )
    r = _rec(model, knee_flexion_loading_prosthetic_deg=26.0)
    assert r.answer_kind is AnswerKind.NOT_ALIGNMENT and not r.no_change_needed and not r.adjustments
    (f,) = r.non_alignment_findings
    assert f.code == "KNEE_FLEXION_LOADING_PROSTHETIC_DEG_HIGH_NOT_ALIGNMENT" and "heel cushion" in f.message
    (d,) = [d for d in r.differentials if d.feature == "knee_flexion_loading_prosthetic_deg"]
    assert {c.parameter for c in d.candidates} == {Parameter.SOCKET_FLEXION, Parameter.HEEL_HEIGHT, Parameter.FOOT_ANTERIOR_SHIFT}
    assert all(c.vetoed for c in d.candidates)
    assert any("heel cushion" in c for c in d.non_alignment_causes)


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
    model = ScriptedModel({Parameter.FOOT_ROTATION: (0.75, 0.0, 6.0)})
    assert _rec(model).no_change_needed
    (est,) = [e for e in _rec(model).parameter_estimates if e.parameter is Parameter.FOOT_ROTATION]
    assert "without a gait deviation" in est.reason
    # the same probability with the textbook deviation (marked toe-out) is recommended
    assert _rec(model, foot_progression_angle_prosthetic_deg=25.0).adjustments[0].parameter is Parameter.FOOT_ROTATION


def test_a_clear_deviation_with_moderate_evidence_gets_a_trial_at_the_smallest_step() -> None:
    # Excessive knee flexion at loading: socket flexed or foot dorsiflexed, each below min_confidence.
    model = ScriptedModel({Parameter.SOCKET_FLEXION: (0.45, 0.0, 4.0), Parameter.HEEL_HEIGHT: (0.0, 0.4, 8.0)})
    r = _rec(model, knee_flexion_loading_prosthetic_deg=26.0)
    assert r.answer_kind is AnswerKind.TRIAL and not r.no_change_needed
    (a,) = r.adjustments
    assert a.trial and a.parameter is Parameter.SOCKET_FLEXION and a.change == -2.0
    assert a.confidence == pytest.approx(0.45)  # its own, honest probability
    assert "walk again" in r.summary
    (d,) = [d for d in r.differentials if d.feature == "knee_flexion_loading_prosthetic_deg"]
    assert [c.parameter for c in d.candidates][:2] == [Parameter.SOCKET_FLEXION, Parameter.HEEL_HEIGHT]
    assert d.candidates[0].table_rows.startswith("Table A T1") and not d.candidates[0].vetoed
    assert d.separating_measurement is not None
    # Below the clear threshold the same evidence is no trial (a listed deviation may sit in the band).
    assert _rec(model, knee_flexion_loading_prosthetic_deg=20.0).answer_kind is AnswerKind.NO_CHANGE


def test_never_advises_against_the_rule_table() -> None:
    # High toe-out (Table A T9: rotate internally). A confident model for external rotation is refused.
    r = _rec(ScriptedModel({Parameter.FOOT_ROTATION: (0.02, 0.9, 6.0)}), foot_progression_angle_prosthetic_deg=26.0)
    assert all(not (a.parameter is Parameter.FOOT_ROTATION and a.change > 0) for a in r.adjustments)
    (est,) = [e for e in r.parameter_estimates if e.parameter is Parameter.FOOT_ROTATION]
    assert "rule table" in est.reason or "trial" in est.reason or est.reason.startswith("recommended") is False


def test_a_deviation_counts_the_error_of_the_sensor_that_sent_it() -> None:
    level = AmputationLevel.TRANSTIBIAL
    value = {"hip_hike_prosthetic_swing_deg": 6.0}

    def z(kind: SensorKind) -> float:
        feats = tuple(FeatureInput(n, v, "", kind) for n, v in value.items())
        g = validate_assessment(AssessmentInput("a", PatientContextInput(level, Side.LEFT, 80.0), feats))
        r = Recommender(Policy.default()).recommend(ScriptedModel(), [g])[0]  # type: ignore[arg-type]
        return r.deviations[0].z_score

    assert z(SensorKind.MOTION_CAPTURE) > z(SensorKind.IMU) > z(SensorKind.VIDEO_POSE)


def test_no_change_is_never_said_beside_a_clear_deviation() -> None:
    for f in FEATURES:
        level = AmputationLevel.TRANSTIBIAL
        n = f.normative[level]
        for sign in (-1, 1):
            v = min(max(n.mean + sign * 4.0 * n.sd / np.sqrt(0.9), f.min_value), f.max_value)
            r = _rec(ScriptedModel(), **{f.name: v})
            if any(abs(d.z_score) >= 3 for d in r.deviations):
                assert not r.no_change_needed and r.answer_kind is not AnswerKind.NO_CHANGE, (f.name, sign)


def test_too_few_features_is_insufficient_evidence() -> None:
    g = validate_assessment(
        AssessmentInput("t", PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, 80.0), (FeatureInput("walking_speed_m_per_s", 0.95),))
    )
    r = Recommender(Policy.default()).recommend(ScriptedModel(), [g])[0]  # type: ignore[arg-type]
    assert r.answer_kind is AnswerKind.INSUFFICIENT_EVIDENCE and not r.no_change_needed
    assert r.suggested_measurements


def test_inputs_outside_the_training_range_never_read_high() -> None:
    lo = np.full(len(FEATURES), -np.inf)
    hi = np.full(len(FEATURES), np.inf)
    hi[FEATURE_NAMES.index("step_width_m")] = 0.2
    model = ScriptedModel({Parameter.PYLON_LENGTH: (0.97, 0.0, 8.0)}, input_ranges=(lo, hi))
    r = _rec(model, step_width_m=0.3)
    assert r.confidence_level is not ConfidenceLevel.HIGH
    assert any("outside the range the model was trained on" in w for w in r.warnings)


def _walks(level: AmputationLevel, before: dict[str, float], now: dict[str, float], applied: tuple[AppliedChangeInput, ...],
           history: tuple[FittingWalkInput, ...] = ()):  # type: ignore[no-untyped-def]
    base = {f.name: f.normative[level].mean for f in FEATURES}

    def feats(d: dict[str, float]) -> tuple[FeatureInput, ...]:
        return tuple(FeatureInput(n, v, "", SensorKind.MOTION_CAPTURE) for n, v in {**base, **d}.items())

    return validate_assessment(
        AssessmentInput("loop", PatientContextInput(level, Side.LEFT, 80.0), feats(now), feats(before), applied, history)
    )


def test_a_change_that_made_things_worse_is_undone_first() -> None:
    tt = AmputationLevel.TRANSTIBIAL
    coronal = "socket_coronal_moment_early_stance_nm_per_kg"
    # The foot was inset by 5 mm; the varus moment went from z ~ +3.5 to ~ +6: worse.
    g = _walks(tt, {coronal: 0.59}, {coronal: 0.80}, (AppliedChangeInput(Parameter.FOOT_MEDIAL_SHIFT, 5.0),))
    r = Recommender(Policy.default()).recommend(ScriptedModel(), [g])[0]  # type: ignore[arg-type]
    first = r.adjustments[0]
    assert first.reverts_applied_change and first.parameter is Parameter.FOOT_MEDIAL_SHIFT and first.change == -5.0
    assert r.answer_kind is AnswerKind.RECOMMENDED and r.summary.startswith("Undo the last change")


def test_a_change_that_helped_is_continued_and_one_undone_is_not_tried_again() -> None:
    tt = AmputationLevel.TRANSTIBIAL
    coronal = "socket_coronal_moment_early_stance_nm_per_kg"
    # Outset by 5 mm brought the varus moment from z ~ +7 to ~ +4.5: helped; keep going.
    g = _walks(tt, {coronal: 0.89}, {coronal: 0.68}, (AppliedChangeInput(Parameter.FOOT_MEDIAL_SHIFT, -5.0),))
    r = Recommender(Policy.default()).recommend(ScriptedModel(), [g])[0]  # type: ignore[arg-type]
    a = r.adjustments[0]
    assert a.parameter is Parameter.FOOT_MEDIAL_SHIFT and a.change < 0 and not a.reverts_applied_change
    assert "helped" in a.rationale
    # The same fitting, where an outset was tried before and undone: it is not offered again.
    history = (
        FittingWalkInput(tuple(FeatureInput(coronal, 0.68, "", SensorKind.MOTION_CAPTURE) for _ in range(1)), (AppliedChangeInput(Parameter.FOOT_MEDIAL_SHIFT, -5.0),)),
    )
    g2 = _walks(tt, {coronal: 0.68}, {coronal: 0.68}, (AppliedChangeInput(Parameter.FOOT_MEDIAL_SHIFT, 5.0),), history)
    r2 = Recommender(Policy.default()).recommend(ScriptedModel(), [g2])[0]  # type: ignore[arg-type]
    assert all(not (x.parameter is Parameter.FOOT_MEDIAL_SHIFT and x.change < 0 and not x.reverts_applied_change) for x in r2.adjustments)


def test_a_change_with_no_measurable_effect_is_replaced_not_undone() -> None:
    tt = AmputationLevel.TRANSTIBIAL
    early, late = "socket_coronal_moment_early_stance_nm_per_kg", "socket_coronal_moment_late_stance_nm_per_kg"
    # Outset by 10 mm should have moved the varus moments by ~2 z; they did not move at all.
    g = _walks(tt, {early: 0.68, late: 0.6}, {early: 0.68, late: 0.6}, (AppliedChangeInput(Parameter.FOOT_MEDIAL_SHIFT, -10.0),))
    r = Recommender(Policy.default()).recommend(ScriptedModel(), [g])[0]  # type: ignore[arg-type]
    assert r.adjustments and not any(a.reverts_applied_change for a in r.adjustments)
    assert all(a.parameter is not Parameter.FOOT_MEDIAL_SHIFT for a in r.adjustments)  # the next candidate


def test_a_change_that_crossed_the_norm_is_neither_undone_nor_continued() -> None:
    tt = AmputationLevel.TRANSTIBIAL
    early = "socket_coronal_moment_early_stance_nm_per_kg"
    # The moment moved as the outset predicts, from z ~ +1.2 to ~ -1.2: the walks cannot call it better.
    g = _walks(tt, {early: 0.40}, {early: 0.20}, (AppliedChangeInput(Parameter.FOOT_MEDIAL_SHIFT, -10.0),))
    r = Recommender(Policy.default()).recommend(ScriptedModel(), [g])[0]  # type: ignore[arg-type]
    assert not any(a.parameter is Parameter.FOOT_MEDIAL_SHIFT for a in r.adjustments)


def test_the_loop_accepts_only_on_evidence_of_the_band() -> None:
    tt = AmputationLevel.TRANSTIBIAL
    early = "socket_coronal_moment_early_stance_nm_per_kg"
    # Every parameter 88% "no change": a 41% chance that all seven are inside the band.
    unsure = ScriptedModel({p: (0.06, 0.06, 0.0) for p in PARAMS})
    g = _walks(tt, {early: 0.40}, {early: 0.20}, (AppliedChangeInput(Parameter.FOOT_MEDIAL_SHIFT, -10.0),))
    r = Recommender(Policy.default()).recommend(unsure, [g])[0]  # type: ignore[arg-type]
    assert not r.adjustments and r.answer_kind is AnswerKind.INSUFFICIENT_EVIDENCE and not r.no_change_needed
    assert "not accepted" in r.summary and "41%" in r.summary
    # The same walk alone (no loop): the first walk's answer stays NO_CHANGE, with its honest confidence.
    alone = _rec(unsure)
    assert alone.answer_kind is AnswerKind.NO_CHANGE and alone.overall_confidence == pytest.approx(0.88**7, abs=1e-3)
    sure = ScriptedModel({p: (0.005, 0.005, 0.0) for p in PARAMS})
    assert Recommender(Policy.default()).recommend(sure, [g])[0].answer_kind is AnswerKind.NO_CHANGE  # type: ignore[arg-type]


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
