from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.catalog import FEATURE_INDEX, FEATURES, AmputationLevel, SensorKind, Side
from service.domain import AssessmentInput, FeatureInput, PatientContextInput
from service.errors import InvalidInputError
from service.validation import Limits, asymmetry_pct, validate_assessment

PATIENT = PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, 80.0, k_level=3)


def _a(*features: FeatureInput, patient: PatientContextInput | None = PATIENT) -> AssessmentInput:
    return AssessmentInput("t-1", patient, tuple(features))


def _violations(a: AssessmentInput, **kw: object) -> list[tuple[str, str]]:
    with pytest.raises(InvalidInputError) as exc:
        validate_assessment(a, **kw)  # type: ignore[arg-type]
    return [(v.field, v.reason) for v in exc.value.violations]


def test_valid_assessment_in_canonical_units() -> None:
    g = validate_assessment(_a(FeatureInput("walking_speed_m_per_s", 1.1, "", SensorKind.IMU)))
    assert g.values[FEATURE_INDEX["walking_speed_m_per_s"]] == pytest.approx(1.1)
    assert np.isnan(g.values).sum() == len(FEATURES) - 1
    assert g.sources[FEATURE_INDEX["walking_speed_m_per_s"]] is SensorKind.IMU


@pytest.mark.parametrize(
    ("name", "value", "unit", "expected"),
    [
        ("foot_progression_angle_prosthetic_deg", math.radians(12.0), "rad", 12.0),
        ("step_length_prosthetic_m", 63.0, "cm", 0.63),
        ("step_width_m", 110.0, "mm", 0.11),
        ("stance_time_prosthetic_s", 700.0, "ms", 0.7),
        ("knee_frontal_shift_early_stance_mm", 1.2, "cm", 12.0),
        ("socket_coronal_moment_early_stance_nm_per_kg", 40.0, "N*m", 0.5),
        ("socket_coronal_moment_early_stance_nm_per_kg", 40.0, "N·m", 0.5),
        ("vgrf_loading_peak_prosthetic_bw", 80 * 9.80665, "N", 1.0),
        ("walking_speed_m_per_s", 3.6, "km/h", 1.0),
    ],
)
def test_units_are_converted(name: str, value: float, unit: str, expected: float) -> None:
    g = validate_assessment(_a(FeatureInput(name, value, unit)))
    assert g.values[FEATURE_INDEX[name]] == pytest.approx(expected)


def test_every_problem_is_reported_at_once() -> None:
    v = _violations(
        _a(
            FeatureInput("toe_out", 10.0),
            FeatureInput("walking_speed_m_per_s", float("nan")),
            FeatureInput("cadence_steps_per_min", 500.0),
            FeatureInput("step_width_m", 1.0, "furlong"),
            FeatureInput("trunk_lateral_lean_deg", 3.0),
            FeatureInput("trunk_lateral_lean_deg", 4.0),
        )
    )
    assert ("assessment.features[0].name", "UNKNOWN_FEATURE") in v
    assert ("assessment.features[1].value", "FEATURE_NOT_FINITE") in v
    assert ("assessment.features[2].value", "FEATURE_OUT_OF_RANGE") in v
    assert ("assessment.features[3].unit", "UNKNOWN_UNIT") in v
    assert ("assessment.features[5].name", "DUPLICATE_FEATURE") in v


def test_out_of_range_message_names_feature_unit_and_range() -> None:
    with pytest.raises(InvalidInputError) as exc:
        validate_assessment(_a(FeatureInput("step_length_prosthetic_m", 250.0, "cm")))
    (v,) = exc.value.violations
    assert v.feature == "step_length_prosthetic_m" and v.unit == "cm"
    assert (v.allowed_min, v.allowed_max) == (0.05, 1.5)
    assert "step_length_prosthetic_m" in v.description and "0.05 to 1.5 m" in v.description and "250 cm" in v.description


def test_unknown_unit_lists_accepted_units() -> None:
    with pytest.raises(InvalidInputError) as exc:
        validate_assessment(_a(FeatureInput("foot_progression_angle_prosthetic_deg", 5, "grad")))
    assert "deg, rad" in exc.value.violations[0].description


def test_unknown_feature_suggests_the_closest_name() -> None:
    with pytest.raises(InvalidInputError) as exc:
        validate_assessment(_a(FeatureInput("walking_speed_mps", 1.0)))
    assert "walking_speed_m_per_s" in exc.value.violations[0].description


@pytest.mark.parametrize(
    ("patient", "field", "reason"),
    [
        (None, "assessment.patient", "PATIENT_CONTEXT_MISSING"),
        (PatientContextInput(None, Side.LEFT, 80.0), "assessment.patient.amputation_level", "PATIENT_CONTEXT_MISSING"),
        (PatientContextInput(AmputationLevel.TRANSTIBIAL, None, 80.0), "assessment.patient.prosthetic_side", "PATIENT_CONTEXT_MISSING"),
        (PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, 0.0), "assessment.patient.body_mass_kg", "PATIENT_CONTEXT_MISSING"),
        (PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, 900.0), "assessment.patient.body_mass_kg", "PATIENT_CONTEXT_OUT_OF_RANGE"),
        (PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, 80.0, k_level=7), "assessment.patient.k_level", "PATIENT_CONTEXT_OUT_OF_RANGE"),
        (PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, 80.0, knee_type="MICROPROCESSOR"), "assessment.patient.knee_type", "PATIENT_CONTEXT_CONTRADICTORY"),
        (PatientContextInput(AmputationLevel.TRANSFEMORAL, Side.LEFT, 80.0, knee_type="ANATOMICAL"), "assessment.patient.knee_type", "PATIENT_CONTEXT_CONTRADICTORY"),
    ],
)
def test_patient_context_errors(patient: PatientContextInput | None, field: str, reason: str) -> None:
    assert (field, reason) in _violations(_a(FeatureInput("walking_speed_m_per_s", 1.0), patient=patient))


def test_moment_in_newton_metres_needs_body_mass() -> None:
    p = PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, None)
    v = _violations(_a(FeatureInput("socket_coronal_moment_early_stance_nm_per_kg", 30, "N*m"), patient=p))
    assert ("assessment.features[0].unit", "BODY_MASS_NEEDED_FOR_UNIT") in v


def test_too_many_features() -> None:
    feats = [FeatureInput("walking_speed_m_per_s", 1.0)] * 5
    assert ("assessment.features", "TOO_MANY_FEATURES") in _violations(_a(*feats), limits=Limits(max_features=4))


def test_asymmetry_is_derived_from_per_side_values() -> None:
    g = validate_assessment(_a(FeatureInput("stance_time_prosthetic_s", 0.7), FeatureInput("stance_time_sound_s", 0.8)))
    i = FEATURE_INDEX["stance_time_asymmetry_pct"]
    assert g.values[i] == pytest.approx(asymmetry_pct(0.7, 0.8))
    assert i in g.derived


def test_contradictory_asymmetry_is_warned() -> None:
    g = validate_assessment(
        _a(FeatureInput("stance_time_prosthetic_s", 0.7), FeatureInput("stance_time_sound_s", 0.8), FeatureInput("stance_time_asymmetry_pct", 20.0))
    )
    assert g.warnings and "disagrees" in g.warnings[0]


def test_asymmetry_sign_flips_with_sides() -> None:
    assert asymmetry_pct(0.7, 0.8) == pytest.approx(-asymmetry_pct(0.8, 0.7))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([f.name for f in FEATURES] + ["bogus"]),
            st.floats(allow_nan=True, allow_infinity=True, width=64),
            st.sampled_from(["", "deg", "rad", "m", "cm", "mm", "N", "N*m", "furlong"]),
        ),
        max_size=12,
    )
)
def test_validation_never_crashes_and_accepts_only_in_range_values(items: list[tuple[str, float, str]]) -> None:
    a = _a(*(FeatureInput(n, v, u) for n, v, u in items))
    try:
        g = validate_assessment(a)
    except InvalidInputError as exc:
        assert exc.violations
        return
    present = ~np.isnan(g.values)
    lo = np.array([f.min_value for f in FEATURES])
    hi = np.array([f.max_value for f in FEATURES])
    assert np.all((g.values[present] >= lo[present]) & (g.values[present] <= hi[present]))


def test_reference_walk_is_validated_and_kept_in_canonical_units() -> None:
    a = AssessmentInput(
        "t-ref",
        PATIENT,
        (FeatureInput("step_width_m", 0.14),),
        (FeatureInput("step_width_m", 110.0, "mm"), FeatureInput("walking_speed_m_per_s", 1.0)),
    )
    g = validate_assessment(a)
    assert g.reference_values is not None
    assert g.reference_values[FEATURE_INDEX["step_width_m"]] == pytest.approx(0.11)
    assert g.reference_values[FEATURE_INDEX["walking_speed_m_per_s"]] == pytest.approx(1.0)
    assert math.isnan(g.values[FEATURE_INDEX["walking_speed_m_per_s"]])
    assert validate_assessment(_a(FeatureInput("step_width_m", 0.14))).reference_values is None


def test_reference_problems_are_reported_with_the_assessments_naming_the_reference_field() -> None:
    a = AssessmentInput(
        "t-ref",
        PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, 500.0),  # body mass out of range
        (FeatureInput("cadence_steps_per_min", 500.0),),
        (FeatureInput("cadence_steps_per_min", 100.0), FeatureInput("step_width_m", 9.0), FeatureInput("toe_out", 1.0)),
    )
    with pytest.raises(InvalidInputError) as exc:
        validate_assessment(a)
    got = [(v.field, v.reason) for v in exc.value.violations]
    assert ("assessment.features[0].value", "FEATURE_OUT_OF_RANGE") in got
    assert ("assessment.reference_features[1].value", "FEATURE_OUT_OF_RANGE") in got
    assert ("assessment.reference_features[2].name", "UNKNOWN_FEATURE") in got
    # The patient context belongs to the assessment: reported once, not again for the reference.
    assert sum(f == "assessment.patient.body_mass_kg" for f, _ in got) == 1
    ref = next(v for v in exc.value.violations if v.field == "assessment.reference_features[1].value")
    assert ref.feature == "step_width_m" and ref.unit == "m" and ref.allowed_max is not None
    assert ref.description.startswith("reference assessment: ")


def test_only_reference_problems_still_reject_the_request() -> None:
    a = AssessmentInput("t-ref", PATIENT, (FeatureInput("step_width_m", 0.1),), (FeatureInput("step_width_m", -1.0),))
    assert _violations(a) == [("assessment.reference_features[0].value", "FEATURE_OUT_OF_RANGE")]
