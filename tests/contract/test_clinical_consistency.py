"""Clinical consistency: the bundled model ranks a textbook fix first and never the opposite one."""

from __future__ import annotations

import pytest

from service.catalog import AmputationLevel, SensorKind, Side
from service.domain import AssessmentInput, FeatureInput, PatientContextInput
from service.model import OnnxModel
from service.recommender import Policy, Recommender
from service.validation import validate_assessment
from tests.clinical_cases import CASES, Case


def _recommend(model: OnnxModel, case: Case):  # type: ignore[no-untyped-def]
    knee = "ANATOMICAL" if case.level is AmputationLevel.TRANSTIBIAL else "MICROPROCESSOR"
    patient = PatientContextInput(case.level, Side.LEFT, 80.0, k_level=3, knee_type=knee)
    feats = tuple(FeatureInput(n, v, "", SensorKind.MOTION_CAPTURE) for n, v in case.features().items())
    g = validate_assessment(AssessmentInput(case.name, patient, feats))
    return Recommender(Policy.default()).recommend(model, [g])[0]


def _assert_textbook(rec, case: Case) -> None:  # type: ignore[no-untyped-def]
    got = [(a.parameter, 1 if a.change > 0 else -1) for a in rec.adjustments]
    assert got, f"{case.name}: no adjustment recommended; estimates {rec.parameter_estimates}"
    assert got[0] in case.accepted, f"{case.name} ({case.source}): rank 1 is {got[0]}, accepted {sorted(case.accepted)}; all {got}"
    opposite = {(p, -s) for p, s in case.accepted}
    assert not (set(got) & opposite), f"{case.name}: recommends the opposite of a textbook fix: {set(got) & opposite}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_textbook_fix_ranks_first_and_no_opposite_fix(bundled_model: OnnxModel, case: Case) -> None:
    _assert_textbook(_recommend(bundled_model, case), case)


def test_normative_gait_needs_no_change(bundled_model: OnnxModel) -> None:
    for level in AmputationLevel:
        rec = _recommend(bundled_model, Case("norm", level, {}, frozenset(), ""))
        assert rec.no_change_needed, [(a.parameter, a.change, a.confidence) for a in rec.adjustments]


def _recommend_since_normal_reference(model: OnnxModel, case: Case):  # type: ignore[no-untyped-def]
    """The same case as a deviation that appeared since a normal walk at the accepted alignment."""
    knee = "ANATOMICAL" if case.level is AmputationLevel.TRANSTIBIAL else "MICROPROCESSOR"
    patient = PatientContextInput(case.level, Side.LEFT, 80.0, k_level=3, knee_type=knee)
    feats = tuple(FeatureInput(n, v, "", SensorKind.MOTION_CAPTURE) for n, v in case.features().items())
    normal = Case("norm", case.level, {}, frozenset(), "").features()
    ref = tuple(FeatureInput(n, v, "", SensorKind.MOTION_CAPTURE) for n, v in normal.items())
    g = validate_assessment(AssessmentInput(case.name, patient, feats, ref))
    return Recommender(Policy.default()).recommend(model, [g])[0]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_textbook_fix_ranks_first_when_the_deviation_is_new_since_the_reference(bundled_model: OnnxModel, case: Case) -> None:
    _assert_textbook(_recommend_since_normal_reference(bundled_model, case), case)


def test_normal_walk_unchanged_since_a_normal_reference_needs_no_change(bundled_model: OnnxModel) -> None:
    for level in AmputationLevel:
        rec = _recommend_since_normal_reference(bundled_model, Case("norm", level, {}, frozenset(), ""))
        assert rec.no_change_needed, [(a.parameter, a.change, a.confidence) for a in rec.adjustments]
