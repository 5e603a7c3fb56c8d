"""Request content -> a validated GaitAssessment in canonical units, or every violation at once.

Clinic tools send any subset of the catalog, in any accepted unit. Everything a clinician could get
wrong is reported together (feature, value, unit, allowed range) so one round trip fixes the request.
Range checks run on numpy arrays built once from the catalog; the per-feature Python work is a dict
lookup and a multiply.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from service.catalog import (
    BODY_MASS_KG_RANGE,
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURES,
    HEIGHT_M_RANGE,
    K_LEVEL_RANGE,
    AmputationLevel,
    SensorKind,
)
from service.domain import AssessmentInput, FeatureInput, GaitAssessment, PatientContext
from service.errors import InvalidInputError, Violation

_MIN = np.array([f.min_value for f in FEATURES])
_MAX = np.array([f.max_value for f in FEATURES])
_CANONICAL = tuple(f.unit for f in FEATURES)
# name -> {unit symbol (lower-case) -> (factor, needs_body_mass)}; "" is the canonical unit.
_UNIT_TABLE: tuple[dict[str, tuple[float, bool]], ...] = tuple(
    {"": (1.0, False), **{u.symbol.lower(): (u.factor, u.body_mass is not None) for u in f.units}} for f in FEATURES
)
_ACCEPTED = tuple(", ".join(u.symbol for u in f.units) for f in FEATURES)

MAX_ASSESSMENT_ID_CHARS = 128
# Knee types that only exist in transfemoral prostheses, and the one that means "own knee".
_PROSTHETIC_KNEES = frozenset({"LOCKING", "SINGLE_AXIS_MECHANICAL", "POLYCENTRIC", "HYDRAULIC", "MICROPROCESSOR"})
_ANATOMICAL_KNEE = "ANATOMICAL"

# Asymmetries the service can derive from per-side values: (asymmetry, prosthetic, sound).
_DERIVABLE = (
    ("step_length_asymmetry_pct", "step_length_prosthetic_m", "step_length_sound_m"),
    ("stance_time_asymmetry_pct", "stance_time_prosthetic_s", "stance_time_sound_s"),
)
# A sent asymmetry that differs from the per-side values by more than this many percentage points is
# reported as a warning: both are kept, the sent one is used.
ASYMMETRY_TOLERANCE_PCT = 5.0


@dataclass(frozen=True, slots=True)
class Limits:
    max_features: int = 256


def _fmt(x: float) -> str:
    return f"{x:g}"


def asymmetry_pct(prosthetic: float, sound: float) -> float:
    """100 * (prosthetic - sound) / mean(prosthetic, sound) (DESIGN 3.2)."""
    return 100.0 * (prosthetic - sound) / (0.5 * (prosthetic + sound))


def _validate_patient(a: AssessmentInput, out: list[Violation]) -> PatientContext | None:
    p = a.patient
    if p is None:
        out.append(Violation("assessment.patient", "patient context is required", "PATIENT_CONTEXT_MISSING"))
        return None
    n0 = len(out)
    if p.amputation_level is None:
        out.append(
            Violation(
                "assessment.patient.amputation_level",
                "amputation_level is required (TRANSTIBIAL or TRANSFEMORAL)",
                "PATIENT_CONTEXT_MISSING",
            )
        )
    if p.prosthetic_side is None:
        out.append(
            Violation(
                "assessment.patient.prosthetic_side",
                "prosthetic_side is required (LEFT or RIGHT)",
                "PATIENT_CONTEXT_MISSING",
            )
        )
    lo, hi = BODY_MASS_KG_RANGE
    mass = p.body_mass_kg
    if mass is None or mass == 0.0:
        out.append(
            Violation(
                "assessment.patient.body_mass_kg",
                f"body_mass_kg is required (kg, {_fmt(lo)} to {_fmt(hi)})",
                "PATIENT_CONTEXT_MISSING",
                unit="kg",
                allowed_min=lo,
                allowed_max=hi,
            )
        )
    elif not (math.isfinite(mass) and lo <= mass <= hi):
        out.append(
            Violation(
                "assessment.patient.body_mass_kg",
                f"body_mass_kg {mass:g} kg is outside {_fmt(lo)} to {_fmt(hi)} kg",
                "PATIENT_CONTEXT_OUT_OF_RANGE",
                value=mass,
                unit="kg",
                allowed_min=lo,
                allowed_max=hi,
            )
        )
    h = p.height_m
    if h is not None and not (math.isfinite(h) and HEIGHT_M_RANGE[0] <= h <= HEIGHT_M_RANGE[1]):
        out.append(
            Violation(
                "assessment.patient.height_m",
                f"height_m {h:g} m is outside {_fmt(HEIGHT_M_RANGE[0])} to {_fmt(HEIGHT_M_RANGE[1])} m",
                "PATIENT_CONTEXT_OUT_OF_RANGE",
                value=h,
                unit="m",
                allowed_min=HEIGHT_M_RANGE[0],
                allowed_max=HEIGHT_M_RANGE[1],
            )
        )
    k = p.k_level
    if k is not None and not (K_LEVEL_RANGE[0] <= k <= K_LEVEL_RANGE[1]):
        out.append(
            Violation(
                "assessment.patient.k_level",
                f"k_level {k} is outside K{K_LEVEL_RANGE[0]} to K{K_LEVEL_RANGE[1]}",
                "PATIENT_CONTEXT_OUT_OF_RANGE",
                value=float(k),
                allowed_min=float(K_LEVEL_RANGE[0]),
                allowed_max=float(K_LEVEL_RANGE[1]),
            )
        )
    if p.amputation_level is AmputationLevel.TRANSTIBIAL and p.knee_type in _PROSTHETIC_KNEES:
        out.append(
            Violation(
                "assessment.patient.knee_type",
                f"knee_type {p.knee_type} contradicts amputation_level TRANSTIBIAL (a transtibial user has "
                "an anatomical knee)",
                "PATIENT_CONTEXT_CONTRADICTORY",
            )
        )
    if p.amputation_level is AmputationLevel.TRANSFEMORAL and p.knee_type == _ANATOMICAL_KNEE:
        out.append(
            Violation(
                "assessment.patient.knee_type",
                "knee_type ANATOMICAL contradicts amputation_level TRANSFEMORAL",
                "PATIENT_CONTEXT_CONTRADICTORY",
            )
        )
    if len(out) > n0 or p.amputation_level is None or p.prosthetic_side is None or mass is None:
        return None
    return PatientContext(
        amputation_level=p.amputation_level,
        prosthetic_side=p.prosthetic_side,
        body_mass_kg=mass,
        height_m=h,
        k_level=k,
        foot_type=p.foot_type,
        knee_type=p.knee_type,
    )


def _unknown_feature(i: int, f: FeatureInput) -> Violation:
    close = difflib.get_close_matches(f.name, FEATURE_NAMES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; GetModel lists the catalog"
    return Violation(
        f"assessment.features[{i}].name",
        f"unknown feature {f.name!r}{hint}",
        "UNKNOWN_FEATURE",
        feature=f.name,
    )


def validate_assessment(a: AssessmentInput, limits: Limits = Limits()) -> GaitAssessment:
    """Validate and convert; raise InvalidInputError listing every problem.

    The optional reference assessment (the same patient at the alignment last accepted) is checked by
    the same feature rules, and its problems are reported together with those of the assessment.
    """
    if not a.reference_features:
        return _validate_one(a, limits)
    reference: GaitAssessment | None = None
    ref_violations: list[Violation] = []
    try:
        reference = _validate_one(AssessmentInput(a.assessment_id, a.patient, a.reference_features), limits)
    except InvalidInputError as exc:
        # Patient and id problems belong to the assessment and are reported once, by its own check.
        ref_violations = [_as_reference(v) for v in exc.violations if v.field.startswith(_FEATURES_FIELD)]
    try:
        current = _validate_one(a, limits)
    except InvalidInputError as exc:
        raise InvalidInputError([*exc.violations, *ref_violations]) from None
    if ref_violations:
        raise InvalidInputError(ref_violations)
    assert reference is not None
    return replace(
        current,
        reference_values=reference.values,
        warnings=current.warnings + tuple(f"reference: {w}" for w in reference.warnings),
    )


_FEATURES_FIELD = "assessment.features"


def _as_reference(v: Violation) -> Violation:
    return replace(
        v,
        field="assessment.reference_features" + v.field.removeprefix(_FEATURES_FIELD),
        description=f"reference assessment: {v.description}",
    )


def _validate_one(a: AssessmentInput, limits: Limits) -> GaitAssessment:
    violations: list[Violation] = []
    if len(a.assessment_id) > MAX_ASSESSMENT_ID_CHARS or not a.assessment_id.isprintable():
        violations.append(
            Violation(
                "assessment.assessment_id",
                f"assessment_id must be printable and at most {MAX_ASSESSMENT_ID_CHARS} characters",
                "INVALID_ASSESSMENT_ID",
            )
        )
    patient = _validate_patient(a, violations)
    feats: Sequence[FeatureInput] = a.features
    if len(feats) > limits.max_features:
        violations.append(
            Violation(
                "assessment.features",
                f"{len(feats)} features sent; at most {limits.max_features} are accepted",
                "TOO_MANY_FEATURES",
            )
        )
        raise InvalidInputError(violations)

    values = np.full(len(FEATURES), np.nan)
    sources: dict[int, SensorKind] = {}
    seen: dict[int, int] = {}
    # Request positions of the features that passed name/unit checks, for range errors.
    positions: list[tuple[int, int, float, str]] = []
    mass = a.patient.body_mass_kg if a.patient is not None else None
    for i, f in enumerate(feats):
        idx = FEATURE_INDEX.get(f.name)
        if idx is None:
            violations.append(_unknown_feature(i, f))
            continue
        if idx in seen:
            violations.append(
                Violation(
                    f"assessment.features[{i}].name",
                    f"feature {f.name!r} is sent twice (also at features[{seen[idx]}])",
                    "DUPLICATE_FEATURE",
                    feature=f.name,
                )
            )
            continue
        seen[idx] = i
        v = f.value
        if not math.isfinite(v):
            violations.append(
                Violation(
                    f"assessment.features[{i}].value",
                    f"{f.name} is {v!r}; a finite number in {_CANONICAL[idx]} is required "
                    f"({_fmt(_MIN[idx])} to {_fmt(_MAX[idx])})",
                    "FEATURE_NOT_FINITE",
                    feature=f.name,
                    unit=f.unit or _CANONICAL[idx],
                    allowed_min=float(_MIN[idx]),
                    allowed_max=float(_MAX[idx]),
                )
            )
            continue
        conv = _UNIT_TABLE[idx].get(f.unit.lower()) if f.unit else (1.0, False)
        if conv is None:
            violations.append(
                Violation(
                    f"assessment.features[{i}].unit",
                    f"unit {f.unit!r} is not accepted for {f.name}; accepted: {_ACCEPTED[idx]}",
                    "UNKNOWN_UNIT",
                    feature=f.name,
                    value=v,
                    unit=f.unit,
                )
            )
            continue
        factor, per_mass = conv
        if per_mass:
            if mass is None or not math.isfinite(mass) or mass <= 0:
                violations.append(
                    Violation(
                        f"assessment.features[{i}].unit",
                        f"{f.name} in {f.unit} needs patient.body_mass_kg to convert to {_CANONICAL[idx]}",
                        "BODY_MASS_NEEDED_FOR_UNIT",
                        feature=f.name,
                        value=v,
                        unit=f.unit,
                    )
                )
                continue
            factor = factor / mass
        values[idx] = v * factor
        positions.append((i, idx, v, f.unit or _CANONICAL[idx]))
        if f.source is not None:
            sources[idx] = f.source

    present = ~np.isnan(values)
    bad = present & ((values < _MIN) | (values > _MAX))
    if bad.any():
        for i, idx, raw, unit in positions:
            if bad[idx]:
                name = FEATURE_NAMES[idx]
                canon = _CANONICAL[idx]
                shown = f"{raw:g} {unit}" + (f" (= {values[idx]:.4g} {canon})" if unit != canon else "")
                violations.append(
                    Violation(
                        f"assessment.features[{i}].value",
                        f"{name} {shown} is outside the valid range {_fmt(_MIN[idx])} to {_fmt(_MAX[idx])} {canon}",
                        "FEATURE_OUT_OF_RANGE",
                        feature=name,
                        value=raw,
                        unit=unit,
                        allowed_min=float(_MIN[idx]),
                        allowed_max=float(_MAX[idx]),
                    )
                )
    if violations:
        raise InvalidInputError(violations)
    assert patient is not None  # no violations means the patient context validated

    derived: list[int] = []
    warnings: list[str] = []
    for asym, pros, sound in _DERIVABLE:
        ia, ip, isd = FEATURE_INDEX[asym], FEATURE_INDEX[pros], FEATURE_INDEX[sound]
        if present[ip] and present[isd]:
            computed = asymmetry_pct(float(values[ip]), float(values[isd]))
            if not present[ia]:
                if _MIN[ia] <= computed <= _MAX[ia]:
                    values[ia] = computed
                    derived.append(ia)
            elif abs(computed - values[ia]) > ASYMMETRY_TOLERANCE_PCT:
                warnings.append(
                    f"{asym} {values[ia]:.1f}% disagrees with {pros}/{sound} ({computed:.1f}%); "
                    f"the sent {asym} is used"
                )
    return GaitAssessment(
        assessment_id=a.assessment_id,
        patient=patient,
        values=values,
        sources=sources,
        derived=tuple(derived),
        warnings=tuple(warnings),
    )
