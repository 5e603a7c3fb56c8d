"""Assessment -> model input -> model -> ranked, clamped, explained adjustments.

The model says, per parameter, how likely a correction is needed in each direction and how large.
This module turns that into advice a prosthetist can act on:
- a change is recommended only above the smallest change with a published effect and when its
  direction is more likely than "no change" and at least `min_confidence` (DESIGN 3.1);
- it is clamped to a safe single step, and says so;
- sagittal (and length, rotation) changes rank before coronal ones: coronal socket moments respond to
  changes in every plane, so coronal alignment is finalised last (Sci Rep 13:458, 2023);
- deviations (|z| >= deviation_z against prosthesis-user norms) are matched to the adjustments whose
  undoing explains them (the cited effect table), and patterns that alignment does not explain are
  reported as non-alignment findings instead of forced into a change;
- when evidence is thin (few features, no socket kinetics, ambiguous parameters) confidence is low
  and the answer names what to measure next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.catalog import (
    CONTEXT_COLUMNS,
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURES,
    MODEL_INPUT_COLUMNS,
    PARAMETERS_BY_NAME,
    AmputationLevel,
    Effect,
    FeatureGroup,
    Parameter,
    ParameterSpec,
    Plane,
    effects,
)
from service.domain import (
    Adjustment,
    ConfidenceLevel,
    Deviation,
    FloatArray,
    GaitAssessment,
    MeasurementSuggestion,
    ModelRef,
    NonAlignmentFinding,
    ParameterEstimate,
    Recommendation,
)
from service.model import OnnxModel, Prediction

N_FEATURES = len(FEATURE_NAMES)
_CTX = {c: N_FEATURES + i for i, c in enumerate(CONTEXT_COLUMNS)}
_NORM_MEAN = {lvl: np.array([f.normative[lvl].mean for f in FEATURES]) for lvl in AmputationLevel}
_NORM_SD = {lvl: np.array([f.normative[lvl].sd for f in FEATURES]) for lvl in AmputationLevel}
_GROUP_PRIORITY = {FeatureGroup.SOCKET_KINETIC: 0, FeatureGroup.KINETIC: 1, FeatureGroup.KINEMATIC: 2, FeatureGroup.SPATIOTEMPORAL: 3}
_SOCKET_IDX = np.array([i for i, f in enumerate(FEATURES) if f.group is FeatureGroup.SOCKET_KINETIC])
# Coronal alignment is finalised last; everything else ranks by score first.
_PLANE_ORDER = {Plane.SAGITTAL: 0, Plane.LENGTH: 0, Plane.TRANSVERSE: 0, Plane.CORONAL: 1}
# Fewer present features than this is "too little information" for any confident answer.
MIN_INFORMATIVE_FEATURES = 3


@dataclass(frozen=True, slots=True)
class Policy:
    """Recommendation policy, built from Settings by the factory `from_settings`."""

    min_change: dict[Parameter, float]
    max_step: dict[Parameter, float]
    min_confidence: float = 0.55
    deviation_z: float = 2.0
    explain: bool = True

    @classmethod
    def default(cls) -> Policy:
        return cls(
            min_change={Parameter(n): s.min_change for n, s in PARAMETERS_BY_NAME.items()},
            max_step={Parameter(n): s.max_step for n, s in PARAMETERS_BY_NAME.items()},
        )

    @classmethod
    def from_values(
        cls,
        *,
        min_change_deg: float,
        min_change_mm: float,
        min_change_length_mm: float,
        max_step_deg: float,
        max_step_mm: float,
        min_confidence: float,
        deviation_z: float,
        explain: bool,
    ) -> Policy:
        mins: dict[Parameter, float] = {}
        steps: dict[Parameter, float] = {}
        for name, spec in PARAMETERS_BY_NAME.items():
            p = Parameter(name)
            if spec.unit == "deg":
                mins[p], steps[p] = min_change_deg, max_step_deg
            elif p is Parameter.PYLON_LENGTH:
                mins[p], steps[p] = min_change_length_mm, max_step_mm
            else:
                mins[p], steps[p] = min_change_mm, max_step_mm
        return cls(mins, steps, min_confidence, deviation_z, explain)


def model_input(assessments: Sequence[GaitAssessment]) -> FloatArray:
    """[n, len(MODEL_INPUT_COLUMNS)] in catalog order: features, then patient context."""
    x = np.full((len(assessments), len(MODEL_INPUT_COLUMNS)), np.nan)
    for r, a in enumerate(assessments):
        x[r, :N_FEATURES] = a.values
        p = a.patient
        x[r, _CTX["context_transfemoral"]] = 1.0 if p.amputation_level is AmputationLevel.TRANSFEMORAL else 0.0
        x[r, _CTX["context_body_mass_kg"]] = p.body_mass_kg
        if p.k_level is not None:
            x[r, _CTX["context_k_level"]] = float(p.k_level)
    return x


@dataclass(frozen=True, slots=True)
class _EffectRow:
    feature_index: int
    slope: float
    effect: Effect


def _effect_index() -> dict[tuple[AmputationLevel, Parameter], tuple[_EffectRow, ...]]:
    out: dict[tuple[AmputationLevel, Parameter], list[_EffectRow]] = {}
    for lvl in AmputationLevel:
        for e in effects():
            if e.level is not None and e.level is not lvl:
                continue
            if e.slope == 0.0:
                continue
            out.setdefault((lvl, e.parameter), []).append(
                _EffectRow(FEATURE_INDEX[e.feature], e.slope, e)
            )
    return {k: tuple(v) for k, v in out.items()}


_EFFECTS = _effect_index()


# Non-alignment patterns (clinical-evidence.md Tables A/B, "Alignment cause(s)" columns list these
# component, fit and user causes beside the alignment ones). Each: code, features that must deviate
# (feature, sign of z), the alignment parameters whose recommendation would explain it, message.
_FINDINGS: tuple[tuple[str, tuple[tuple[str, int], ...], frozenset[Parameter], AmputationLevel | None, str], ...] = (
    (
        "HEEL_TOO_STIFF_SUSPECTED",
        (("knee_flexion_loading_prosthetic_deg", +1),),
        frozenset({Parameter.SOCKET_FLEXION, Parameter.HEEL_HEIGHT, Parameter.FOOT_ANTERIOR_SHIFT}),
        AmputationLevel.TRANSTIBIAL,
        "Excessive knee flexion at loading without a confident alignment cause: check heel cushion / "
        "plantarflexion bumper stiffness before moving the foot (Table A T1; Ottobock F23, Fillauer K2 IFUs).",
    ),
    (
        "HEEL_TOO_SOFT_SUSPECTED",
        (("knee_flexion_loading_prosthetic_deg", -1),),
        frozenset({Parameter.SOCKET_FLEXION, Parameter.HEEL_HEIGHT, Parameter.FOOT_ANTERIOR_SHIFT}),
        AmputationLevel.TRANSTIBIAL,
        "Knee hyperextension at loading without a confident alignment cause: a heel that is too soft, "
        "quadriceps weakness or habit are common causes (Table A T2; Ottobock F23 IFU).",
    ),
    (
        "FOREFOOT_TOO_SOFT_SUSPECTED",
        (("heel_off_prosthetic_pct_stance", -1),),
        frozenset({Parameter.FOOT_ANTERIOR_SHIFT, Parameter.HEEL_HEIGHT, Parameter.SOCKET_FLEXION}),
        None,
        "Early heel-off (drop-off) without a confident alignment cause: a short or soft keel / dorsiflexion "
        "bumper gives the same pattern (Table A T3; Klodd 2010 JRRD).",
    ),
    (
        "KNEE_SWING_RESISTANCE_SUSPECTED",
        (("knee_flexion_swing_prosthetic_deg", -1),),
        frozenset({Parameter.SOCKET_FLEXION, Parameter.FOOT_ANTERIOR_SHIFT, Parameter.HEEL_HEIGHT}),
        AmputationLevel.TRANSFEMORAL,
        "Insufficient swing knee flexion without a confident alignment cause: check knee flexion "
        "resistance and extension assist (Table B F2; ProGait 1_1_3).",
    ),
    (
        "SUSPENSION_OR_KNEE_FRICTION_SUSPECTED",
        (("circumduction_prosthetic_m", +1),),
        frozenset({Parameter.PYLON_LENGTH, Parameter.HEEL_HEIGHT}),
        None,
        "Circumduction without a confident length cause: poor suspension (pistoning), too much knee "
        "friction or a small socket are common causes (Table B F6; Table A T13).",
    ),
    (
        "SUSPENSION_OR_KNEE_FRICTION_SUSPECTED",
        (("hip_hike_prosthetic_swing_deg", +1),),
        frozenset({Parameter.PYLON_LENGTH, Parameter.HEEL_HEIGHT}),
        None,
        "Hip hiking / vaulting without a confident length cause: check suspension and knee friction "
        "(Table B F7/F8).",
    ),
    (
        "SOCKET_FIT_OR_STRENGTH_SUSPECTED",
        (("trunk_lateral_lean_deg", +1),),
        frozenset({Parameter.PYLON_LENGTH, Parameter.SOCKET_ADDUCTION, Parameter.FOOT_MEDIAL_SHIFT}),
        None,
        "Lateral trunk lean toward the prosthesis without a confident alignment cause: weak hip "
        "abductors, a short residual limb, medial brim pain or a wide socket are common causes (Table B F3).",
    ),
    (
        "GAIT_TRAINING_SUGGESTED",
        (("step_length_asymmetry_pct", -1),),
        frozenset({Parameter.SOCKET_FLEXION}),
        None,
        "Short prosthetic step without a confident alignment cause: insecurity, pain or habit; consider "
        "gait training (Table A T15; Table B F13).",
    ),
)


def _level(z: float) -> ConfidenceLevel:
    if z >= 0.8:
        return ConfidenceLevel.HIGH
    if z >= 0.6:
        return ConfidenceLevel.MEDIUM
    return ConfidenceLevel.LOW


@dataclass(slots=True)
class _Candidate:
    spec: ParameterSpec
    sign: int
    p_dir: float
    p_none: float
    p_dec: float
    p_inc: float
    mag: float
    lo: float
    hi: float
    supporting: tuple[str, ...]
    reason: str = ""
    too_small: bool = False
    score: float = 0.0
    alternatives: tuple[str, ...] = ()


# Pooling alternatives (see _pool_alternatives): a direction takes part from ALTERNATIVE_FLOOR, and
# the pool must reach POOL_MIN. Measured on held-out simulated patients (all sensors), pooling at
# 0.25/0.5 cost 1.6 points of specificity for 2 points of detection and pooled picks were right only
# 42% of the time; 0.3/0.8 keeps the textbook alternatives at a third of the pooled share.
ALTERNATIVE_FLOOR = 0.3
POOL_MIN = 0.8
# Below this probability a change is recommended only when a deviation it explains is present
# (|z| >= deviation_z in a feature the effect table links to it): moderate model evidence plus a
# textbook deviation, never moderate evidence alone. Measured (held-out simulated, all sensors): with
# min_confidence 0.55 specificity 0.922 -> 0.956 for 5 points of detection.
UNSUPPORTED_MIN = 0.8


class Recommender:
    """Stateless apart from its policy: safe to share across threads."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def recommend(self, model: OnnxModel, assessments: Sequence[GaitAssessment], *, explain: bool | None = None) -> list[Recommendation]:
        if not assessments:
            return []
        x = model_input(assessments)
        pred = model.predict(x)
        do_explain = self.policy.explain if explain is None else explain
        ref = ModelRef(model.name, model.version, model.sha256)
        # Python floats once per batch (float32 -> float is exact either way): indexing numpy arrays
        # element by element cost more than the ranking itself.
        rows = tuple(zip(pred.p_decrease.tolist(), pred.p_increase.tolist(), pred.magnitude.tolist(),
                         pred.magnitude_lo.tolist(), pred.magnitude_hi.tolist(), strict=True))
        return [self._one(model, ref, a, x[r], pred, r, do_explain, rows[r]) for r, a in enumerate(assessments)]

    def _pool_alternatives(self, cands: list[_Candidate]) -> None:
        """Recommend one of several alternative fixes for the same deviation when together they are likely.

        Textbooks give two or three alignment fixes per deviation (excessive knee flexion at loading:
        socket flexed, foot dorsiflexed, or foot posterior; clinical-evidence.md 0.10 and 7.6). The
        model then splits its probability between them, each below "no change", although together
        they say a change is needed. For a deviation no recommended change explains, the directions
        (each at least ALTERNATIVE_FLOOR likely, large enough) that would explain it pool their
        probabilities; if the pool reaches min_confidence the most probable one is recommended with
        its own, honest, probability and the others are named as alternatives.
        """
        explained = {f for c in cands if c.reason == "" for f in c.supporting}
        pooled: dict[str, list[_Candidate]] = {}
        for c in cands:
            if c.reason == "" or c.too_small or c.p_dir < ALTERNATIVE_FLOOR:
                continue
            for f in c.supporting:
                if f not in explained:
                    pooled.setdefault(f, []).append(c)
        done: set[int] = set()
        for _feature, group in sorted(pooled.items(), key=lambda kv: -sum(c.p_dir for c in kv[1])):
            group = [c for c in group if id(c) not in done and c.reason != ""]
            if len(group) < 2 or sum(c.p_dir for c in group) < POOL_MIN:
                continue
            best = max(group, key=lambda c: c.p_dir)
            best.reason = ""
            best.alternatives = tuple(
                f"{c.spec.plus_direction if c.sign > 0 else c.spec.minus_direction} ({c.p_dir:.0%})" for c in group if c is not best
            )
            done.update(id(c) for c in group)

    # -- one assessment -------------------------------------------------------------------------
    def _one(
        self,
        model: OnnxModel,
        ref: ModelRef,
        a: GaitAssessment,
        x_row: FloatArray,
        pred: Prediction,
        r: int,
        explain: bool,
        row: tuple[list[float], list[float], list[float], list[float], list[float]],
    ) -> Recommendation:
        pol = self.policy
        p_decs, p_incs, mags, los, his = row
        level = a.patient.amputation_level
        values = a.values
        present = ~np.isnan(values)
        z = (values - _NORM_MEAN[level]) / _NORM_SD[level]
        dev_mask = present & (np.abs(z) >= pol.deviation_z)
        deviations = tuple(_deviation(int(i), float(values[i]), float(z[i]), level) for i in np.flatnonzero(dev_mask))
        n_present = int(present.sum())
        has_socket = bool(present[_SOCKET_IDX].any())

        cands: list[_Candidate] = []
        estimates: list[ParameterEstimate] = []
        for j, param in enumerate(model.parameters):
            spec = PARAMETERS_BY_NAME[param.value]
            p_dec = p_decs[j]
            p_inc = p_incs[j]
            p_none = max(0.0, 1.0 - p_dec - p_inc)
            sign = 1 if p_inc >= p_dec else -1
            p_dir = p_inc if sign > 0 else p_dec
            mag = max(mags[j], 0.0)
            lo = max(los[j], 0.0)
            hi = max(his[j], lo)
            c = _Candidate(spec, sign, p_dir, p_none, p_dec, p_inc, mag, lo, hi, _supporting(level, param, sign, z, dev_mask))
            if p_dir < p_none:
                c.reason = "no change is the most likely outcome"
            elif p_dir < pol.min_confidence:
                c.reason = f"direction probability {p_dir:.2f} is below the confidence needed ({pol.min_confidence:.2f})"
            elif p_dir < UNSUPPORTED_MIN and not c.supporting:
                c.reason = (
                    f"direction probability {p_dir:.2f} without a gait deviation it would explain "
                    f"(needs {UNSUPPORTED_MIN:.2f} without one)"
                )
            if mag < pol.min_change[param]:
                c.reason = (
                    f"estimated change {mag:.1f} {spec.unit} is below the smallest meaningful change "
                    f"({pol.min_change[param]:g} {spec.unit})"
                )
                c.too_small = True
            cands.append(c)
        self._pool_alternatives(cands)

        chosen = [c for c in cands if c.reason == ""]
        for c in chosen:
            max_step = pol.max_step[c.spec.parameter]
            # Rank by probability times size in units of the safe step: a sure, large change first.
            c.score = c.p_dir * min(c.mag / max_step, 1.5)
        chosen.sort(key=lambda c: (_PLANE_ORDER[c.spec.plane], -c.score))
        for c in cands:
            estimates.append(
                ParameterEstimate(c.spec.parameter, c.p_dec, c.p_none, c.p_inc, c.mag, c.spec.unit, c.reason == "", c.reason)
            )
        chosen_probs = [c.p_dir if c.reason == "" else max(c.p_none, 1.0 - c.p_dir) for c in cands]
        adjustments: list[Adjustment] = []
        explained: set[int] = set()
        # One occlusion batch per assessment, shared by all its adjustments.
        occlusion = _occlude(model, x_row, present) if explain and chosen else None
        for rank, c in enumerate(chosen, start=1):
            spec, sign, p_dir, lo, hi = c.spec, c.sign, c.p_dir, c.lo, c.hi
            param = spec.parameter
            max_step = pol.max_step[param]
            step = min(c.mag, max_step)
            clamped = c.mag > max_step
            supporting = c.supporting
            explained.update(FEATURE_INDEX[s] for s in supporting)
            drivers = (
                _drivers(occlusion, model, r, param, sign, pred) if occlusion is not None else _effect_drivers(level, param, z, present)
            )
            interval = sorted((sign * lo, sign * hi))
            direction = spec.plus_direction if sign > 0 else spec.minus_direction
            rationale = _rationale(spec, sign, step, p_dir, supporting, clamped, c.alternatives)
            adjustments.append(
                Adjustment(
                    rank=rank,
                    parameter=param,
                    change=round(sign * step, 2),
                    unit=spec.unit,
                    direction=direction,
                    confidence=round(p_dir, 4),
                    interval_lower=round(interval[0], 2),
                    interval_upper=round(interval[1], 2),
                    suggested_change=round(sign * mags[model.parameters.index(param)], 2),
                    clamped_to_safe_step=clamped,
                    supporting_deviations=supporting,
                    driving_features=drivers,
                    rationale=rationale,
                    plane=spec.plane,
                )
            )

        recommended_params = frozenset(adj.parameter for adj in adjustments)
        findings = _findings(level, z, dev_mask, recommended_params, explained)
        overall = float(min(chosen_probs)) if chosen_probs else 0.0
        warnings = list(a.warnings)
        if n_present < MIN_INFORMATIVE_FEATURES:
            warnings.append(
                f"only {n_present} feature(s) sent: too little information for a confident answer"
            )
            overall = min(overall, 0.5)
        if not has_socket:
            # Spatiotemporal and kinematic features are compensated by the user (Jonkergouw 2016):
            # without socket kinetics the answer is at best of medium confidence.
            overall = min(overall, 0.79)
        conf_level = _level(overall)
        suggestions = _suggest(model, level, present, estimates, has_socket, conf_level)
        return Recommendation(
            assessment_id=a.assessment_id,
            model=ref,
            adjustments=tuple(adjustments),
            no_change_needed=not adjustments,
            deviations=deviations,
            non_alignment_findings=findings,
            missing_features=tuple(FEATURE_NAMES[i] for i in np.flatnonzero(~present) if FEATURE_NAMES[i] in model.feature_columns),
            imputed_features=tuple(FEATURE_NAMES[i] for i in a.derived),
            overall_confidence=round(overall, 4),
            confidence_level=conf_level,
            suggested_measurements=suggestions,
            warnings=tuple(warnings),
            parameter_estimates=tuple(estimates),
        )


def _occlude(model: OnnxModel, x_row: FloatArray, present: np.ndarray) -> tuple[list[int], Prediction | None]:
    """The model on x_row with each present model feature removed in turn (one row per feature)."""
    idx = [int(i) for i in np.flatnonzero(present) if FEATURE_NAMES[i] in model.feature_columns]
    if not idx:
        return idx, None
    rows = np.repeat(x_row[None, :], len(idx), axis=0)
    rows[np.arange(len(idx)), idx] = np.nan
    return idx, model.predict(rows)


def _drivers(
    occlusion: tuple[list[int], Prediction | None], model: OnnxModel, r: int, param: Parameter, sign: int, pred: Prediction
) -> tuple[str, ...]:
    """Occlusion: which present features, if unmeasured, lower this direction's probability most."""
    idx, occluded = occlusion
    if occluded is None:
        return ()
    j = model.parameters.index(param)
    base = float((pred.p_increase if sign > 0 else pred.p_decrease)[r, j])
    drop = base - (occluded.p_increase if sign > 0 else occluded.p_decrease)[:, j]
    order = np.argsort(-drop)
    return tuple(FEATURE_NAMES[idx[k]] for k in order[:5] if drop[k] > 0.01)


def _deviation(i: int, value: float, z: float, level: AmputationLevel) -> Deviation:
    f = FEATURES[i]
    n = f.normative[level]
    word = "high" if z > 0 else "low"
    return Deviation(
        feature=f.name,
        value=value,
        unit=f.unit,
        normative_mean=n.mean,
        normative_sd=n.sd,
        z_score=round(z, 2),
        # The catalog description carries the sign legend after ", +"; the value's sign says it here.
        description=f"{f.description.split(', +')[0]} {word}: {value:.3g} {f.unit} (norm {n.mean:g} ± {n.sd:g}, z = {z:+.1f})",
    )


def _supporting(level: AmputationLevel, param: Parameter, sign: int, z: FloatArray, dev_mask: np.ndarray) -> tuple[str, ...]:
    """Deviations that the misalignment this correction undoes would produce."""
    out: list[str] = []
    misalignment_sign = -sign  # the correction undoes the misalignment
    for e in _EFFECTS.get((level, param), ()):
        if not dev_mask[e.feature_index]:
            continue
        expected = np.sign(e.effect.shift(float(misalignment_sign)))
        if expected != 0 and np.sign(z[e.feature_index]) == expected:
            out.append(FEATURE_NAMES[e.feature_index])
    return tuple(out)


def _effect_drivers(level: AmputationLevel, param: Parameter, z: FloatArray, present: np.ndarray) -> tuple[str, ...]:
    """Cheap stand-in when occlusion is off: present features this parameter moves, by |z|."""
    rows = [e for e in _EFFECTS.get((level, param), ()) if present[e.feature_index]]
    rows.sort(key=lambda e: -abs(float(z[e.feature_index])))
    return tuple(FEATURE_NAMES[e.feature_index] for e in rows[:5])


def _rationale(
    spec: ParameterSpec, sign: int, step: float, p: float, supporting: tuple[str, ...], clamped: bool, alternatives: tuple[str, ...] = ()
) -> str:
    text = f"{spec.plus_direction if sign > 0 else spec.minus_direction} by {step:.1f} {spec.unit} (probability {p:.0%})"
    if supporting:
        text += "; explains " + ", ".join(s.replace("_", " ") for s in supporting)
    if alternatives:
        text += "; alternative fixes for the same deviation: " + ", ".join(alternatives) + "; change one at a time and re-assess"
    if clamped:
        text += f"; clamped to the safe single step of {step:g} {spec.unit}: re-assess after this change"
    return text


def _findings(
    level: AmputationLevel,
    z: FloatArray,
    dev_mask: np.ndarray,
    recommended: frozenset[Parameter],
    explained: set[int],
) -> tuple[NonAlignmentFinding, ...]:
    out: list[NonAlignmentFinding] = []
    for code, pattern, alignment_params, only_level, message in _FINDINGS:
        if only_level is not None and only_level is not level:
            continue
        idx = [FEATURE_INDEX[f] for f, _ in pattern]
        if all(dev_mask[i] and np.sign(z[i]) == s for i, (_, s) in zip(idx, pattern, strict=True)):
            if not (recommended & alignment_params) and not all(i in explained for i in idx):
                out.append(NonAlignmentFinding(code, message, tuple(FEATURE_NAMES[i] for i in idx)))
    return tuple(out)


def _suggest(
    model: OnnxModel,
    level: AmputationLevel,
    present: np.ndarray,
    estimates: Sequence[ParameterEstimate],
    has_socket: bool,
    conf: ConfidenceLevel,
) -> tuple[MeasurementSuggestion, ...]:
    """Missing features that bear on the parameters the model is least sure about."""
    if conf is ConfidenceLevel.HIGH:
        return ()
    # Contenders: parameters with a real chance of needing a change that is not yet settled. Measuring
    # what bears on them is what would change the answer; the rest would only add noise to the list.
    contenders = [e for e in estimates if 0.15 <= max(e.probability_decrease, e.probability_increase) < 0.8]
    params = [e.parameter for e in contenders] or [e.parameter for e in estimates]
    scored: dict[int, tuple[int, float]] = {}
    for param in params:
        for e in _EFFECTS.get((level, param), ()):
            i = e.feature_index
            if present[i] or FEATURE_NAMES[i] not in model.feature_columns:
                continue
            f = FEATURES[i]
            weight = abs(e.slope) / f.normative[level].sd
            prio = _GROUP_PRIORITY[f.group]
            best = scored.get(i)
            if best is None or (prio, -weight) < best:
                scored[i] = (prio, -weight)
    order = sorted(scored, key=lambda i: scored[i])[:3]
    out: list[MeasurementSuggestion] = []
    for i in order:
        f = FEATURES[i]
        reason = "socket reaction moments respond most reliably to alignment (Boone 2013; Jonkergouw 2016)" if (
            f.group is FeatureGroup.SOCKET_KINETIC
        ) else "would help separate the candidate alignment causes"
        out.append(MeasurementSuggestion(f.name, f.sources[0], reason))
    if not has_socket and not any(FEATURES[i].group is FeatureGroup.SOCKET_KINETIC for i in order):
        i = FEATURE_INDEX["socket_coronal_moment_early_stance_nm_per_kg"]
        if FEATURE_NAMES[i] in model.feature_columns:
            out.append(MeasurementSuggestion(FEATURE_NAMES[i], FEATURES[i].sources[0], "no socket kinetics were sent"))
    return tuple(out)
