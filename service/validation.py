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
    PARAMETERS_BY_NAME,
    SENSOR_CODE,
    AmputationLevel,
    SensorKind,
)
from service.domain import (
    AppliedChange,
    AppliedChangeInput,
    AssessmentBatch,
    AssessmentInput,
    BatchInput,
    FeatureInput,
    FittingWalk,
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
# The fitting loop (DESIGN 3.4): at most this many earlier walks before the reference walk. A fitting
# that needs more is better restarted from its latest accepted alignment; the bound keeps the work of
# one request small (each walk is validated like an assessment).
MAX_HISTORY_WALKS = 8
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

    The optional reference assessment (the same patient at the alignment last accepted, or the
    previous walk of this fitting) and the fitting loop's earlier walks are checked by the same
    feature rules, and their problems are reported together with those of the assessment.
    """
    if not (a.reference_features or a.applied_since_reference or a.fitting_history):
        return _validate_one(a, limits)
    reference: GaitAssessment | None = None
    extra: list[Violation] = []
    if a.reference_features:
        try:
            reference = _validate_one(AssessmentInput(a.assessment_id, a.patient, a.reference_features), limits)
        except InvalidInputError as exc:
            # Patient and id problems belong to the assessment and are reported once, by its own check.
            extra += [_moved(v, "assessment.reference_features", "reference assessment") for v in exc.violations if v.field.startswith(_FEATURES_FIELD)]
    applied, history = _validate_loop(a, limits, extra)
    try:
        current = _validate_one(a, limits)
    except InvalidInputError as exc:
        raise InvalidInputError([*exc.violations, *extra]) from None
    if extra:
        raise InvalidInputError(extra)
    if reference is None:  # nothing of the loop without a reference walk (_validate_loop said so)
        return current
    return replace(
        current,
        reference_values=reference.values,
        reference_sources=reference.sources,
        applied_since_reference=applied,
        history=history,
        warnings=current.warnings + tuple(f"reference: {w}" for w in reference.warnings),
    )


def _validate_changes(changes: Sequence[AppliedChangeInput], field: str, out: list[Violation]) -> tuple[AppliedChange, ...]:
    """Applied changes: a known parameter each, at most once, a finite change within its plausible range."""
    good: list[AppliedChange] = []
    seen: set[str] = set()
    for k, c in enumerate(changes):
        where = f"{field}[{k}]"
        if c.parameter is None:
            out.append(Violation(f"{where}.parameter", "unknown or unspecified adjustment parameter; GetModel lists them", "UNKNOWN_PARAMETER"))
            continue
        spec = PARAMETERS_BY_NAME[c.parameter.value]
        lim = spec.max_applied_change
        if c.parameter.value in seen:
            out.append(Violation(f"{where}.parameter", f"{c.parameter.value} is listed twice; send the net change once", "DUPLICATE_PARAMETER"))
            continue
        seen.add(c.parameter.value)
        if not math.isfinite(c.change):
            out.append(
                Violation(
                    f"{where}.change", f"{c.parameter.value} change is {c.change!r}; a finite number in {spec.unit} is required "
                    f"({_fmt(-lim)} to {_fmt(lim)})", "CHANGE_NOT_FINITE", unit=spec.unit, allowed_min=-lim, allowed_max=lim,
                )
            )
            continue
        if abs(c.change) > lim:
            out.append(
                Violation(
                    f"{where}.change", f"{c.parameter.value} change {c.change:g} {spec.unit} is outside the plausible range "
                    f"{_fmt(-lim)} to {_fmt(lim)} {spec.unit} (a unit or sign mistake?)", "CHANGE_OUT_OF_RANGE",
                    value=c.change, unit=spec.unit, allowed_min=-lim, allowed_max=lim,
                )
            )
            continue
        good.append(AppliedChange(c.parameter, float(c.change)))
    return tuple(good)


def _validate_loop(a: AssessmentInput, limits: Limits, out: list[Violation]) -> tuple[tuple[AppliedChange, ...], tuple[FittingWalk, ...]]:
    """The fitting loop's fields (DESIGN 3.4): changes since the reference walk and the earlier walks."""
    if (a.applied_since_reference or a.fitting_history) and not a.reference_features:
        out.append(
            Violation(
                "assessment.reference_features",
                "applied_since_reference and fitting_history need the reference walk they lead to (reference_features)",
                "REFERENCE_WALK_REQUIRED",
            )
        )
    applied = _validate_changes(a.applied_since_reference, "assessment.applied_since_reference", out)
    if len(a.fitting_history) > MAX_HISTORY_WALKS:
        out.append(
            Violation(
                "assessment.fitting_history",
                f"{len(a.fitting_history)} earlier walks sent; at most {MAX_HISTORY_WALKS} are accepted",
                "HISTORY_TOO_LONG",
            )
        )
        return applied, ()
    history: list[FittingWalk] = []
    for w, walk in enumerate(a.fitting_history):
        field = f"assessment.fitting_history[{w}]"
        changes = _validate_changes(walk.applied_after, f"{field}.applied_after", out)
        try:
            g = _validate_one(AssessmentInput(a.assessment_id, a.patient, walk.features), limits)
        except InvalidInputError as exc:
            out += [_moved(v, f"{field}.features", f"fitting_history[{w}]") for v in exc.violations if v.field.startswith(_FEATURES_FIELD)]
            continue
        history.append(FittingWalk(g.values, changes))
    return applied, tuple(history)


_FEATURES_FIELD = "assessment.features"


def _moved(v: Violation, field: str, what: str) -> Violation:
    """A feature violation of another walk, under that walk's field path."""
    return replace(v, field=field + v.field.removeprefix(_FEATURES_FIELD), description=f"{what}: {v.description}")


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


_N_FEATURES = len(FEATURES)
_SRC_CODE: dict[SensorKind | None, int] = {k: v for k, v in SENSOR_CODE.items()}
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
    # Items with a reference walk or a fitting loop take the single-item path, which validates those too.
    for i in batch.references:
        bad[i] = True
    for i in batch.loops:
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
    for i in np.flatnonzero(bad).tolist():
        try:
            # Only bad items are flagged, but should a check above be stricter than the scalar rules
            # an item they accept is still answered (from their result).
            recovered[i] = validate_assessment(batch.item(i, int(starts[i])), limits)
        except InvalidInputError as exc:
            errors[i] = exc
    good = [i for i in range(n) if i not in errors]
    if not good:
        return None, [], errors

    values = np.full((n, _N_FEATURES), np.nan)
    ok = ~bad[row]
    values[row[ok], idx[ok]] = canon[ok]
    values = values[good] if errors else values
    # The sending sensors (the deviations count each one's measurement error).
    src = np.fromiter((_SRC_CODE.get(s, -1) for s in batch.sources), dtype=np.int8, count=len(batch.names))
    codes: np.ndarray | None = None
    if (src[ok] >= 0).any() or recovered:
        codes = np.full((n, _N_FEATURES), -1, dtype=np.int8)
        codes[row[ok], idx[ok]] = src[ok]
        codes = codes[good] if errors else codes
    derived: list[tuple[int, ...]] = [()] * len(good)
    warnings: list[tuple[str, ...]] = [()] * len(good)
    fresh = np.ones(len(good), dtype=bool)
    applied: list[tuple[AppliedChange, ...]] | None = None
    history: list[tuple[FittingWalk, ...]] | None = None
    if recovered:
        pos = {i: r for r, i in enumerate(good)}
        if any(g.applied_since_reference or g.history for g in recovered.values()):
            applied, history = [()] * len(good), [()] * len(good)
        for i, g in recovered.items():
            r = pos[i]
            values[r] = g.values
            derived[r], warnings[r], fresh[r] = g.derived, g.warnings, False
            assert codes is not None
            codes[r] = -1
            for f, kind in g.sources.items():
                codes[r, f] = SENSOR_CODE[kind]
            if applied is not None and history is not None:
                applied[r], history[r] = g.applied_since_reference, g.history
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
            source_codes=codes,
            applied=applied,
            history=history,
        ),
        good,
        errors,
    )
