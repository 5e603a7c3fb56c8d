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
from service.domain import (
    AssessmentBatch,
    AssessmentInput,
    BatchInput,
    FeatureInput,
    GaitAssessment,
    PatientContext,
    PatientContextInput,
)
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


# "Did you mean" hints cost ~1 ms each (difflib against the whole catalog): 1000 batch items of 256
# unknown names took 23 s of server CPU for hints nobody could read (the error details show only
# the first violations). So an assessment hints its first few unknown names, and a batch only its
# first few bad items; the others still name the problem and point to GetModel.
TYPO_HINTS_PER_ASSESSMENT = 3
HINTED_BATCH_ITEMS = 16


@dataclass(frozen=True, slots=True)
class Limits:
    max_features: int = 256
    typo_hints: int = TYPO_HINTS_PER_ASSESSMENT


def _fmt(x: float) -> str:
    return f"{x:g}"


def asymmetry_pct(prosthetic: float, sound: float) -> float:
    """100 * (prosthetic - sound) / mean(prosthetic, sound) (DESIGN 3.2)."""
    return 100.0 * (prosthetic - sound) / (0.5 * (prosthetic + sound))


def _validate_patient(a: AssessmentInput, out: list[Violation]) -> PatientContext | None:
    return _validate_patient_input(a.patient, out)


def _validate_patient_input(p: PatientContextInput | None, out: list[Violation]) -> PatientContext | None:
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


def _unknown_feature(i: int, f: FeatureInput, hint_allowed: bool) -> Violation:
    close = difflib.get_close_matches(f.name, FEATURE_NAMES, n=1) if hint_allowed else []
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
    hints = limits.typo_hints
    for i, f in enumerate(feats):
        idx = FEATURE_INDEX.get(f.name)
        if idx is None:
            violations.append(_unknown_feature(i, f, hints > 0))
            hints -= 1
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


_N_FEATURES = len(FEATURES)
_DERIVABLE_INDEX = tuple((FEATURE_INDEX[a], FEATURE_INDEX[p], FEATURE_INDEX[s]) for a, p, s in _DERIVABLE)


def validate_batch(batch: BatchInput, limits: Limits = Limits()) -> tuple[AssessmentBatch | None, list[int], dict[int, InvalidInputError]]:
    """Validate many assessments at once: (the valid ones in columns, their item indices, errors by item).

    Every check of validate_assessment runs on whole-batch numpy arrays (names -> catalog indices,
    duplicates, finiteness, units, ranges) or once per item (id, patient context). An item that
    fails any of them is handed to validate_assessment itself, so its InvalidInputError lists
    exactly the violations, in the order, a single call reports. The valid items' values go through
    the same IEEE operations as there (value * factor, factor = unit factor / body mass), so the
    matrix equals the stacked GaitAssessment.values bit for bit.
    """
    n = len(batch.assessment_ids)
    counts = np.array(batch.feature_counts, dtype=np.intp)
    starts = np.zeros(n + 1, dtype=np.intp)
    np.cumsum(counts, out=starts[1:])
    row = np.repeat(np.arange(n, dtype=np.intp), counts)
    bad = counts > limits.max_features
    # Items with a reference walk take the single-item path, which validates the reference too.
    for i in batch.references:
        bad[i] = True

    patients: list[PatientContext | None] = []
    for i, (aid, p) in enumerate(zip(batch.assessment_ids, batch.patients, strict=True)):
        if len(aid) > MAX_ASSESSMENT_ID_CHARS or not aid.isprintable():
            bad[i] = True
        problems: list[Violation] = []
        ctx = _validate_patient_input(p, problems)
        patients.append(ctx)
        if ctx is None:
            bad[i] = True

    get = FEATURE_INDEX.get
    idx = np.fromiter((get(name, -1) for name in batch.names), dtype=np.intp, count=len(batch.names))
    raw = np.array(batch.values, dtype=np.float64)
    unknown = idx < 0
    # Duplicates: the same catalog index twice within an item.
    key = row * (_N_FEATURES + 1) + np.where(unknown, _N_FEATURES, idx)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    dup = np.zeros(len(key), dtype=bool)
    dup[order[1:]] = (ks[1:] == ks[:-1]) & ~unknown[order[1:]]
    flawed = unknown | dup | ~np.isfinite(raw)

    # Units: the canonical one ("") is factor 1; anything else is looked up per feature.
    factor = np.ones(len(raw))
    for k, unit in enumerate(batch.units):
        if not unit or flawed[k]:
            continue
        conv = _UNIT_TABLE[idx[k]].get(unit.lower())
        if conv is None:
            flawed[k] = True
            continue
        f, per_mass = conv
        if per_mass:
            ctx = patients[row[k]]
            if ctx is None:  # the item is bad anyway; validate_assessment words the unit problem
                flawed[k] = True
                continue
            f = f / ctx.body_mass_kg
        factor[k] = f
    safe_idx = np.where(flawed, 0, idx)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is out of range, as in validate_assessment
        canon = raw * factor
    flawed |= (canon < _MIN[safe_idx]) | (canon > _MAX[safe_idx])
    bad[row[flawed]] = True

    errors: dict[int, InvalidInputError] = {}
    recovered: dict[int, GaitAssessment] = {}
    unhinted = replace(limits, typo_hints=0)
    for k, i in enumerate(np.flatnonzero(bad).tolist()):
        try:
            # Only bad items are flagged, but should a check above be stricter than the scalar rules
            # an item they accept is still answered (from their result).
            recovered[i] = validate_assessment(batch.item(i, int(starts[i])), limits if k < HINTED_BATCH_ITEMS else unhinted)
        except InvalidInputError as exc:
            errors[i] = exc
    good = [i for i in range(n) if i not in errors]
    if not good:
        return None, [], errors

    values = np.full((n, _N_FEATURES), np.nan)
    ok = ~bad[row]
    values[row[ok], idx[ok]] = canon[ok]
    values = values[good] if errors else values
    derived: list[tuple[int, ...]] = [()] * len(good)
    warnings: list[tuple[str, ...]] = [()] * len(good)
    fresh = np.ones(len(good), dtype=bool)
    if recovered:
        pos = {i: r for r, i in enumerate(good)}
        for i, g in recovered.items():
            r = pos[i]
            values[r] = g.values
            derived[r], warnings[r], fresh[r] = g.derived, g.warnings, False
    for ia, ip, isd in _DERIVABLE_INDEX:
        pv, sv, av = values[:, ip], values[:, isd], values[:, ia]
        both = fresh & ~np.isnan(pv) & ~np.isnan(sv)
        if not both.any():
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            computed = 100.0 * (pv - sv) / (0.5 * (pv + sv))  # asymmetry_pct, elementwise
        fill = both & np.isnan(av) & (_MIN[ia] <= computed) & (computed <= _MAX[ia])
        disagree = both & ~np.isnan(av) & (np.abs(computed - av) > ASYMMETRY_TOLERANCE_PCT)
        asym, pros, sound = FEATURE_NAMES[ia], FEATURE_NAMES[ip], FEATURE_NAMES[isd]
        for r in np.flatnonzero(disagree).tolist():
            warnings[r] = (
                *warnings[r],
                f"{asym} {values[r, ia]:.1f}% disagrees with {pros}/{sound} ({computed[r]:.1f}%); the sent {asym} is used",
            )
        for r in np.flatnonzero(fill).tolist():
            derived[r] = (*derived[r], ia)
        values[fill, ia] = computed[fill]
    ctxs = [patients[i] or recovered[i].patient for i in good]
    reference: np.ndarray | None = None
    if any(g.reference_values is not None for g in recovered.values()):
        reference = np.full_like(values, np.nan)
        for r, i in enumerate(good):
            ref = recovered[i].reference_values if i in recovered else None
            if ref is not None:
                reference[r] = ref
    return (
        AssessmentBatch(
            assessment_ids=[batch.assessment_ids[i] for i in good],
            values=values,
            levels=[c.amputation_level for c in ctxs],
            body_mass_kg=[c.body_mass_kg for c in ctxs],
            k_level=[c.k_level for c in ctxs],
            derived=derived,
            warnings=warnings,
            reference_values=reference,
        ),
        good,
        errors,
    )
