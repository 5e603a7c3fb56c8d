from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.catalog import FEATURE_INDEX, FEATURES, AmputationLevel, SensorKind, Side
from service.domain import AssessmentInput, BatchInput, FeatureInput, PatientContextInput
from service.errors import InvalidInputError
from service.validation import Limits, asymmetry_pct, validate_assessment, validate_batch

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


# -- validate_batch: the whole batch at once must agree with validate_assessment item by item ----


def _batch(items: list[AssessmentInput]) -> BatchInput:
    feats = [f for a in items for f in a.features]
    return BatchInput(
        assessment_ids=[a.assessment_id for a in items],
        patients=[a.patient for a in items],
        feature_counts=[len(a.features) for a in items],
        names=[f.name for f in feats],
        values=[f.value for f in feats],
        units=[f.unit for f in feats],
        sources=[f.source for f in feats],
        references={i: a.reference_features for i, a in enumerate(items) if a.reference_features},
    )


def _assert_batch_matches_single(items: list[AssessmentInput], limits: Limits | None = None) -> None:
    limits = limits or Limits()
    batch, good, errors = validate_batch(_batch(items), limits)
    singles: list[object] = []
    for a in items:
        try:
            singles.append(validate_assessment(a, limits))
        except InvalidInputError as exc:
            singles.append(exc)
    assert sorted([*good, *errors]) == list(range(len(items)))
    for i, want in enumerate(singles):
        if isinstance(want, InvalidInputError):
            assert i in errors
            assert errors[i].violations == want.violations
            assert errors[i].message == want.message
        else:
            assert batch is not None and i in good
            r = good.index(i)
            assert batch.values[r].tobytes() == want.values.tobytes()  # bit for bit, NaN included
            assert batch.derived[r] == want.derived
            assert batch.warnings[r] == want.warnings
            assert batch.assessment_ids[r] == want.assessment_id
            assert batch.levels[r] is want.patient.amputation_level
            assert batch.body_mass_kg[r] == want.patient.body_mass_kg
            assert batch.k_level[r] == want.patient.k_level
            ref = batch.reference_values[r] if batch.reference_values is not None else None
            if want.reference_values is None:
                assert ref is None or np.isnan(ref).all()
            else:
                assert ref is not None and ref.tobytes() == want.reference_values.tobytes()
    if not good:
        assert batch is None


_FEATURE_ITEMS = st.lists(
    st.tuples(
        st.sampled_from([f.name for f in FEATURES] + ["bogus"]),
        st.floats(allow_nan=True, allow_infinity=True, width=64),
        st.sampled_from(["", "deg", "rad", "m", "cm", "mm", "N", "N*m", "furlong"]),
    ),
    max_size=12,
)
_PATIENTS = st.sampled_from(
    [
        PATIENT,
        None,
        PatientContextInput(AmputationLevel.TRANSFEMORAL, Side.RIGHT, 95.0),
        PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.LEFT, 0.0),
        PatientContextInput(None, Side.LEFT, 70.0, height_m=3.0, k_level=7),
        PatientContextInput(AmputationLevel.TRANSTIBIAL, Side.RIGHT, 70.0, knee_type="HYDRAULIC"),
    ]
)


_AIDS = st.sampled_from(["ok-1", "", "bad\n", "x" * 200])
_REFERENCES = st.one_of(st.just([]), _FEATURE_ITEMS)


@given(st.lists(st.tuples(_FEATURE_ITEMS, _PATIENTS, _AIDS, _REFERENCES), max_size=8))
@settings(max_examples=200, deadline=None)  # no timing in tests: CI machines are noisy
def test_batch_validation_agrees_with_single_validation(
    items: list[tuple[list[tuple[str, float, str]], object, str, list[tuple[str, float, str]]]],
) -> None:
    _assert_batch_matches_single(
        [
            AssessmentInput(
                aid,
                p,  # type: ignore[arg-type]
                tuple(FeatureInput(n, v, u) for n, v, u in feats),
                tuple(FeatureInput(n, v, u) for n, v, u in ref),
            )
            for feats, p, aid, ref in items
        ]
    )


def test_batch_validation_of_plausible_items_in_every_unit() -> None:
    """In-range values in canonical and alternative units, sent asymmetries that agree and disagree."""
    items: list[AssessmentInput] = []
    for k in range(60):
        level = (AmputationLevel.TRANSTIBIAL, AmputationLevel.TRANSFEMORAL)[k % 2]
        feats: list[FeatureInput] = []
        for j, f in enumerate(FEATURES):
            if (j + k) % 3 == 0:
                continue
            v = f.normative[level].mean + f.normative[level].sd * ((k % 5) - 2) * 0.7
            v = min(max(v, f.min_value), f.max_value)
            if (j + k) % 4 == 0 and f.units:
                u = f.units[(j + k) % len(f.units)]
                scale = 80.0 if u.body_mass is not None else 1.0
                feats.append(FeatureInput(f.name, v / u.factor * scale, u.symbol, SensorKind.IMU))
            else:
                feats.append(FeatureInput(f.name, v, "", None))
        if k % 7 == 0:  # a sent asymmetry that disagrees with the per-side values
            feats = [f for f in feats if f.name != "step_length_asymmetry_pct"]
            feats.append(FeatureInput("step_length_asymmetry_pct", 40.0))
        items.append(AssessmentInput(f"p-{k}", PatientContextInput(level, Side.LEFT, 80.0, k_level=k % 5), tuple(feats)))
    _assert_batch_matches_single(items)
    batch, good, errors = validate_batch(_batch(items))
    assert not errors and batch is not None and len(good) == len(items)
    assert any(batch.derived) and any(batch.warnings)


def test_batch_reports_every_violation_of_every_bad_item() -> None:
    bad = _a(
        FeatureInput("walking_speed_m_per_s", 99.0),
        FeatureInput("cadence_steps_per_min", 500.0),
        FeatureInput("step_width_m", 1.0, "furlong"),
        FeatureInput("toe_out", 10.0),
    )
    good = _a(FeatureInput("walking_speed_m_per_s", 1.1))
    items = [good if i % 3 else bad for i in range(300)]
    batch, good_idx, errors = validate_batch(_batch(items))
    assert sorted(errors) == [i for i in range(300) if i % 3 == 0]
    assert good_idx == [i for i in range(300) if i % 3]
    assert batch is not None and len(batch) == 200
    for exc in errors.values():
        by_reason = {v.reason: v for v in exc.violations}
        assert set(by_reason) == {"FEATURE_OUT_OF_RANGE", "UNKNOWN_UNIT", "UNKNOWN_FEATURE"}
        assert len(exc.violations) == 4
        speed = next(v for v in exc.violations if v.feature == "walking_speed_m_per_s")
        assert (speed.feature, speed.unit, speed.allowed_min, speed.allowed_max) == ("walking_speed_m_per_s", "m/s", 0.05, 3.0)
    _assert_batch_matches_single(items)


def test_batch_too_many_features_is_per_item() -> None:
    many = _a(*(FeatureInput(FEATURES[i % len(FEATURES)].name, 1.0) for i in range(5)))
    one = _a(FeatureInput("walking_speed_m_per_s", 1.1))
    _assert_batch_matches_single([many, one, many], Limits(max_features=4))


def test_empty_batch() -> None:
    assert validate_batch(_batch([])) == (None, [], {})


def test_batch_items_with_a_reference_walk_agree_with_single_validation() -> None:
    feats = (FeatureInput("step_width_m", 0.14), FeatureInput("walking_speed_m_per_s", 1.1))
    ref = (FeatureInput("step_width_m", 110.0, "mm"), FeatureInput("walking_speed_m_per_s", 1.0))
    bad_ref = (FeatureInput("step_width_m", 9.0),)
    items = [
        AssessmentInput("plain", PATIENT, feats),
        AssessmentInput("with-ref", PATIENT, feats, ref),
        AssessmentInput("bad-ref", PATIENT, feats, bad_ref),
        AssessmentInput("plain-2", PATIENT, feats),
    ]
    _assert_batch_matches_single(items)
    batch, good, errors = validate_batch(_batch(items))
    assert good == [0, 1, 3] and list(errors) == [2]
    assert errors[2].violations[0].field == "assessment.reference_features[0].value"
    assert batch is not None and batch.reference_values is not None
    assert batch.reference_values[1, FEATURE_INDEX["step_width_m"]] == pytest.approx(0.11)
    assert np.isnan(batch.reference_values[[0, 2]]).all()
