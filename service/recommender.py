"""Assessment -> model input -> model -> ranked, clamped, explained adjustments.

The model says, per parameter, how likely a correction is needed in each direction and how large.
This module turns that into advice a prosthetist can act on:
- a change is recommended only above the smallest change with a published effect and when its
  direction is more likely than "no change" and at least `min_confidence` (DESIGN 3.1); below
  UNSUPPORTED_MIN it also needs a gait deviation it would explain, and alternative textbook fixes
  for one unexplained deviation may pool their probability (see _pool_alternatives);
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
    REFERENCE_CHANGE_COLUMNS,
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
    AssessmentBatch,
    ConfidenceLevel,
    Deviation,
    FeatureChange,
    FloatArray,
    GaitAssessment,
    MeasurementSuggestion,
    NonAlignmentFinding,
    ParameterEstimate,
    Recommendation,
)
from service.model import OnnxModel, Prediction

N_FEATURES = len(FEATURE_NAMES)
_REF0 = MODEL_INPUT_COLUMNS.index(REFERENCE_CHANGE_COLUMNS[0])
# Below HIGH confidence without a reference walk: the one measurement that settles the most (the
# patient's own baseline; THC-181338: 96.7% within- vs 88.9% between-subject detection).
NO_REFERENCE_HINT = (
    "no reference walk was sent: the same patient's features at the alignment last accepted "
    "(reference_features) separate a misalignment from the way this patient walks anyway"
)
# A change since the reference walk is listed from one between-patient SD of prosthesis users (the
# catalog norm): the model's own sensitivity is finer, but smaller changes are within what a patient's
# gait drifts between visits (training.cohort.VISIT_DRIFT_Z) and would only lengthen the list.
REFERENCE_CHANGE_SD = 1.0
MAX_REFERENCE_CHANGES = 8
NOT_READ_REFERENCE_WARNING = "the served model does not read reference walks: reference_features were checked but not used"
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


def model_input(assessments: Sequence[GaitAssessment] | AssessmentBatch) -> FloatArray:
    """[n, len(MODEL_INPUT_COLUMNS)] in catalog order: features, patient context, change since reference."""
    b = assessments if isinstance(assessments, AssessmentBatch) else AssessmentBatch.of(assessments)
    x = np.empty((len(b), len(MODEL_INPUT_COLUMNS)))
    x[:, :N_FEATURES] = b.values
    tf = AmputationLevel.TRANSFEMORAL
    # One assignment for the three context columns (in CONTEXT_COLUMNS order, checked below).
    x[:, N_FEATURES:_REF0] = [
        (1.0 if lvl is tf else 0.0, mass, np.nan if k is None else float(k))
        for lvl, mass, k in zip(b.levels, b.body_mass_kg, b.k_level, strict=True)
    ]
    if b.reference_values is None:
        x[:, _REF0:] = np.nan
    else:
        # NaN - x and x - NaN stay NaN: a change is known only where both walks measured the feature
        # (rows without a reference walk are all NaN there).
        x[:, _REF0:] = b.values - b.reference_values
    return x


assert CONTEXT_COLUMNS == ("context_transfemoral", "context_body_mass_kg", "context_k_level")
assert _REF0 == N_FEATURES + len(CONTEXT_COLUMNS) and len(MODEL_INPUT_COLUMNS) == _REF0 + N_FEATURES


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
# The features each parameter moves, once each in effect-table order: a feature can have two effect
# rows (e.g. hip hike: one shape for too long, one for too short).
_EFFECT_FEATURES: dict[tuple[AmputationLevel, Parameter], tuple[int, ...]] = {
    k: tuple(dict.fromkeys(e.feature_index for e in rows)) for k, rows in _EFFECTS.items()
}


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

# -- batch tables -------------------------------------------------------------------------------
# The rules above are applied to a whole batch at once on [n, parameters] arrays where they are
# elementwise (z-scores, deviations, direction, "no change is likelier", supporting deviations,
# patterns); only rows where something other than "no change" happens (a recommendation, a reason
# with a number in it, a pool of alternatives, a finding) run per-parameter Python. Every number
# goes through the same IEEE operations as the scalar rules, so answers are bit for bit the same.
_LEVELS = (AmputationLevel.TRANSTIBIAL, AmputationLevel.TRANSFEMORAL)
_MEAN_BY_LEVEL = np.stack([_NORM_MEAN[lvl] for lvl in _LEVELS])
_SD_BY_LEVEL = np.stack([_NORM_SD[lvl] for lvl in _LEVELS])
# present @ _PRESENCE_SUMS: [bit code of the present features (exact: 29 bits < 2**53), how many are
# present, how many socket kinetic ones are present].
_PRESENCE_SUMS = np.stack(
    [
        np.array([float(1 << i) for i in range(N_FEATURES)]),
        np.ones(N_FEATURES),
        np.isin(np.arange(N_FEATURES), _SOCKET_IDX).astype(np.float64),
    ],
    axis=1,
)
_NO_CHANGE = "no change is the most likely outcome"


@dataclass(frozen=True, slots=True)
class _LevelTables:
    """For one amputation level and model parameter order.

    Supporting deviations: every (parameter, correction sign, effect row) whose undoing predicts a
    sign of deviation, as columns in effect-table order. Column k belongs to segment col = j (sign -1)
    or P + j (sign +1); `weight[k, col]` is 2**(position of k in its segment), so
    signed_deviation[:, feature_index] == expected, times weight, gives per (row, col) a bit code of
    its supporting deviations. Patterns: the non-alignment patterns that apply at this level.
    """

    feature_index: np.ndarray  # [K]
    expected: np.ndarray  # [K] expected sign of z (+-1.0)
    weight: np.ndarray  # [K, 2P] float, exact small integers
    segment_features: tuple[tuple[int, ...], ...]  # [2P] catalog indices of each segment, in order
    pattern_ids: np.ndarray  # [Q] indices into _FINDINGS
    pattern_feature: np.ndarray  # [Q]
    pattern_sign: np.ndarray  # [Q]


def _level_tables(level: AmputationLevel, params: tuple[Parameter, ...]) -> _LevelTables:
    n_params = len(params)
    segs: list[tuple[int, ...]] = [()] * (2 * n_params)
    fi: list[int] = []
    ex: list[float] = []
    where: list[tuple[int, int]] = []  # (col, bit)
    for half, sign in ((0, -1), (1, +1)):
        for j, param in enumerate(params):
            feats: list[int] = []
            misalignment_sign = -sign  # the correction undoes the misalignment
            for e in _EFFECTS.get((level, param), ()):
                expected = float(np.sign(e.effect.shift(float(misalignment_sign))))
                if expected == 0:
                    continue
                where.append((half * n_params + j, len(feats)))
                feats.append(e.feature_index)
                fi.append(e.feature_index)
                ex.append(expected)
            segs[half * n_params + j] = tuple(feats)
    # Bit codes are summed as float64: exact while a segment has at most 53 rows.
    assert all(len(f) <= 53 for f in segs)
    weight = np.zeros((len(fi), 2 * n_params))
    for k, (col, bit) in enumerate(where):
        weight[k, col] = float(1 << bit)
    pats = [k for k, p in enumerate(_FINDINGS) if p[3] is None or p[3] is level]
    return _LevelTables(
        np.array(fi, dtype=np.intp),
        np.array(ex, dtype=np.float64),
        weight,
        tuple(segs),
        np.array(pats, dtype=np.intp),
        np.array([FEATURE_INDEX[_FINDINGS[k][1][0][0]] for k in pats], dtype=np.intp),
        np.array([float(_FINDINGS[k][1][0][1]) for k in pats]),
    )


@dataclass(frozen=True, slots=True)
class _ModelTables:
    """Per model parameter order and policy: the constants of the batch decisions."""

    specs: tuple[ParameterSpec, ...]
    units: tuple[str, ...]
    min_change: np.ndarray  # [P]
    min_change_l: tuple[float, ...]
    max_step: tuple[float, ...]
    levels: tuple[_LevelTables, ...]  # per _LEVELS
    small_suffix: tuple[str, ...]  # per parameter, the too-small reason after the magnitude
    # [3P, 3]: per-row sums of three stacked [n, P] masks: count of the first, count of the second,
    # bit code of the third.
    mask_sums: np.ndarray
    no_change_reasons: tuple[str, ...]
    all_false: tuple[bool, ...]
    # Caches of pure functions of this parameter order (and policy): (level, column, bits) -> supporting
    # feature names; (model feature columns, level, present bits, contender bits) -> suggestions.
    support_names: dict[tuple[int, int, int], tuple[str, ...]]
    suggestions: dict[tuple[object, ...], tuple[MeasurementSuggestion, ...]]


def _mask_sums(n_params: int) -> np.ndarray:
    out = np.zeros((3 * n_params, 3))
    out[:n_params, 0] = 1.0
    out[n_params : 2 * n_params, 1] = 1.0
    out[2 * n_params :, 2] = [float(1 << j) for j in range(n_params)]
    return out


def _model_tables(pol: Policy, params: tuple[Parameter, ...]) -> _ModelTables:
    specs = tuple(PARAMETERS_BY_NAME[p.value] for p in params)
    return _ModelTables(
        specs=specs,
        units=tuple(s.unit for s in specs),
        min_change=np.array([pol.min_change[p] for p in params], dtype=np.float64),
        min_change_l=tuple(pol.min_change[p] for p in params),
        max_step=tuple(pol.max_step[p] for p in params),
        levels=tuple(_level_tables(lvl, params) for lvl in _LEVELS),
        small_suffix=tuple(
            f" {s.unit} is below the smallest meaningful change ({pol.min_change[p]:g} {s.unit})" for p, s in zip(params, specs, strict=True)
        ),
        mask_sums=_mask_sums(len(params)),
        no_change_reasons=(_NO_CHANGE,) * len(params),
        all_false=(False,) * len(params),
        support_names={},
        suggestions={},
    )


# Per feature and level: the deviation description text before and after the numbers. The catalog
# description carries the sign legend after ", +"; the value's sign says it here.
_DEV_TEXT = {
    (i, lvl): (
        f"{f.description.split(', +')[0]} ",
        f" {f.unit} (norm {f.normative[lvl].mean:g} ± {f.normative[lvl].sd:g}, z = ",
    )
    for i, f in enumerate(FEATURES)
    for lvl in AmputationLevel
}
# Per feature and level: name, unit, normative mean and sd, and the description text around the numbers.
_DEV_CONST = {
    (i, lvl): (f.name, f.unit, f.normative[lvl].mean, f.normative[lvl].sd, *_DEV_TEXT[i, lvl])
    for i, f in enumerate(FEATURES)
    for lvl in AmputationLevel
}
# Every non-alignment pattern has one feature (the vectorised match relies on it).
assert all(len(p[1]) == 1 for p in _FINDINGS)
_PAT_FEATURE = tuple(FEATURE_INDEX[p[1][0][0]] for p in _FINDINGS)
_PAT_NAMES = tuple((p[1][0][0],) for p in _FINDINGS)

_CACHE_MAX = 65536


class Recommender:
    """Stateless apart from its policy and caches of pure functions of it: safe to share across threads."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._tables: dict[tuple[Parameter, ...], _ModelTables] = {}
        self._last: tuple[tuple[Parameter, ...], _ModelTables] | None = None
        # (model feature columns, present-feature bits) -> missing features.
        self._missing_cache: dict[tuple[object, ...], tuple[str, ...]] = {}

    def _model_tables(self, params: tuple[Parameter, ...]) -> _ModelTables:
        t = self._tables.get(params)
        if t is None:
            t = self._tables[params] = _model_tables(self.policy, params)
        # One attribute holding the pair, so a concurrent reader never sees params of one model with
        # tables of another.
        self._last = (params, t)
        return t

    def recommend(
        self, model: OnnxModel, assessments: Sequence[GaitAssessment] | AssessmentBatch, *, explain: bool | None = None
    ) -> list[Recommendation]:
        if not len(assessments):
            return []
        batch = assessments if isinstance(assessments, AssessmentBatch) else AssessmentBatch.of(assessments)
        pol = self.policy
        x = model_input(batch)
        pred = model.predict(x)
        do_explain = self.policy.explain if explain is None else explain
        ref = model.ref
        params = model.parameters
        last = self._last
        tab = last[1] if last is not None and last[0] is params else self._model_tables(params)
        n_params = len(params)
        tf = AmputationLevel.TRANSFEMORAL
        level_l = [1 if lvl is tf else 0 for lvl in batch.levels]
        n_tf = sum(level_l)
        uniform = n_tf == 0 or n_tf == len(level_l)

        # -- features: z-scores, signed deviations (sign of z where |z| >= deviation_z, else 0) --
        values = x[:, :N_FEATURES]
        present = ~np.isnan(values)
        if uniform:
            z = (values - _MEAN_BY_LEVEL[level_l[0]]) / _SD_BY_LEVEL[level_l[0]]
        else:
            level_idx = np.array(level_l, dtype=np.intp)
            z = (values - _MEAN_BY_LEVEL[level_idx]) / _SD_BY_LEVEL[level_idx]
        dev_mask = present & (np.abs(z) >= pol.deviation_z)
        signed_dev = np.where(dev_mask, np.sign(z), 0.0)
        presence = (present @ _PRESENCE_SUMS).tolist()

        # -- per parameter --
        n = len(level_l)
        if n == 1:
            # One assessment: the per-parameter rules on 7 Python floats cost less than numpy calls.
            p_dec_l = pred.p_decrease.tolist()
            p_inc_l = pred.p_increase.tolist()
            mag_l = [[max(m, 0.0) for m in pred.magnitude[0].tolist()]]
            p_none_l = [[max(0.0, 1.0 - d - i) for d, i in zip(p_dec_l[0], p_inc_l[0], strict=True)]]
            plus_l = [[i >= d for d, i in zip(p_dec_l[0], p_inc_l[0], strict=True)]]
            p_dir_l = [[i if s else d for d, i, s in zip(p_dec_l[0], p_inc_l[0], plus_l[0], strict=True)]]
            contender_l = [
                float(sum(1 << j for j, (d, i) in enumerate(zip(p_dec_l[0], p_inc_l[0], strict=True)) if 0.15 <= max(d, i) < 0.8))
            ]
            lt = tab.levels[level_l[0]]
            codes_row = ((signed_dev[:, lt.feature_index] == lt.expected) @ lt.weight)[0].tolist()
            pat_ids = lt.pattern_ids
            pat_hit = signed_dev[:, lt.pattern_feature] == lt.pattern_sign
            sup_code_l = [[codes_row[j + n_params] if s else codes_row[j] for j, s in enumerate(plus_l[0])]]
            plain_l = [False]  # the general rules below give the same answer for a plain row
            p_dir1, p_none1, mag1 = p_dir_l[0], p_none_l[0], mag_l[0]
            no_change_prob_l = [[max(pn, 1.0 - p) for p, pn in zip(p_dir1, p_none1, strict=True)]]
            active_l = [[j for j in range(n_params) if not p_dir1[j] < p_none1[j] or mag1[j] < tab.min_change_l[j]]]
            poolable_l = [float(n_params)]  # not counted: the pooling rule itself decides
        else:
            # The elementwise parts of the rules on [n, P] arrays (Python max/min semantics).
            stacked = np.concatenate((pred.p_decrease, pred.p_increase, pred.magnitude)).astype(np.float64)  # float32 -> float64 is exact
            p_dec, p_inc, raw_mag = stacked[:n], stacked[n : 2 * n], stacked[2 * n :]
            p_none = 1.0 - p_dec - p_inc
            p_none = np.where(p_none > 0.0, p_none, 0.0)  # max(0.0, v)
            plus = p_inc >= p_dec
            p_dir = np.where(plus, p_inc, p_dec)
            mag = np.where(0.0 > raw_mag, 0.0, raw_mag)  # max(m, 0.0)
            one_minus = 1.0 - p_dir
            no_change_prob = np.where(one_minus > p_none, one_minus, p_none)  # max(p_none, 1 - p_dir)
            mx = np.where(p_inc > p_dec, p_inc, p_dec)  # max(p_decrease, p_increase)

            # Supporting deviations (bit codes for the chosen sign) and non-alignment patterns.
            if uniform:
                lt = tab.levels[level_l[0]]
                codes = (signed_dev[:, lt.feature_index] == lt.expected) @ lt.weight
                pat_hit = signed_dev[:, lt.pattern_feature] == lt.pattern_sign
                pat_ids = lt.pattern_ids
            else:
                codes = np.empty((n, 2 * n_params))
                pat_hit = np.zeros((n, len(_FINDINGS)), dtype=bool)
                for li, lt in enumerate(tab.levels):
                    rows = np.flatnonzero(level_idx == li)
                    sd = signed_dev[rows]
                    codes[rows] = (sd[:, lt.feature_index] == lt.expected) @ lt.weight
                    pat_hit[rows[:, None], lt.pattern_ids] = sd[:, lt.pattern_feature] == lt.pattern_sign
                pat_ids = np.arange(len(_FINDINGS))
            sup_code = np.where(plus, codes[:, n_params:], codes[:, :n_params])

            # A row is "plain" when no change is the likelier outcome for every parameter (none too
            # small to matter) and fewer than two directions could pool: every reason is the same
            # text. Contenders (for suggestions): 0.15 <= max direction probability < 0.8.
            masks = np.concatenate(
                ((p_dir < p_none) & ~(mag < tab.min_change), (p_dir >= ALTERNATIVE_FLOOR) & (sup_code != 0), (mx >= 0.15) & (mx < 0.8)),
                axis=1,
            )
            row_sums = masks @ tab.mask_sums
            plain_l = ((row_sums[:, 0] == n_params) & (row_sums[:, 1] < 2)).tolist()
            contender_l = row_sums[:, 2].tolist()
            # Python lists once per batch: element access on numpy arrays costs more than the rules.
            p_dec_l, p_inc_l, p_none_l, mag_l = p_dec.tolist(), p_inc.tolist(), p_none.tolist(), mag.tolist()
            p_dir_l, plus_l, sup_code_l = p_dir.tolist(), plus.tolist(), sup_code.tolist()
            no_change_prob_l = no_change_prob.tolist()
            # Per row, the parameters whose reason is not "no change is likelier" or that are too small
            # to matter: only those need the per-parameter rules below. Pooling needs two candidates
            # (direction at least ALTERNATIVE_FLOOR likely with a supporting deviation).
            active_l = [[] for _ in range(n)]
            act_rows, act_cols = np.nonzero(~(p_dir < p_none) | (mag < tab.min_change))
            for ar, ac in zip(act_rows.tolist(), act_cols.tolist(), strict=True):
                active_l[ar].append(ac)
            poolable_l = row_sums[:, 1].tolist()
        pattern_rows = pat_hit.any(axis=1).tolist()

        dev_rows, dev_cols = np.nonzero(dev_mask)
        if len(dev_rows):
            dev_vals, dev_z = values[dev_rows, dev_cols].tolist(), z[dev_rows, dev_cols].tolist()
            dev_start = [0, len(dev_rows)] if n == 1 else np.searchsorted(dev_rows, np.arange(n + 1)).tolist()
            dev_cols_l = dev_cols.tolist()
        else:
            dev_start = [0] * (n + 1)

        feature_columns = model.feature_columns
        out: list[Recommendation] = []
        ids, all_warnings, all_derived = batch.assessment_ids, batch.warnings, batch.derived
        reads_reference = REFERENCE_CHANGE_COLUMNS[0] in model.columns
        ref_rows: list[bool] | None = None
        if batch.reference_values is not None:
            sent: np.ndarray = ~np.all(np.isnan(batch.reference_values), axis=1)
            ref_rows = [bool(v) for v in sent.tolist()]
        for r in range(n):
            li = level_l[r]
            level = _LEVELS[li]
            ds, de = dev_start[r], dev_start[r + 1]
            deviations = tuple(_deviation(dev_cols_l[k], dev_vals[k], dev_z[k], level) for k in range(ds, de)) if de > ds else ()
            adjustments: tuple[Adjustment, ...] = ()
            findings: tuple[NonAlignmentFinding, ...] = ()
            explained: set[int] = set()
            present_code, n_present, n_socket = presence[r]
            contenders = contender_l[r]
            if plain_l[r]:
                estimates = tuple(
                    map(ParameterEstimate, params, p_dec_l[r], p_none_l[r], p_inc_l[r], mag_l[r], tab.units, tab.all_false, tab.no_change_reasons)
                )
                overall = min(no_change_prob_l[r])
            else:
                p_dir_row: list[float] = p_dir_l[r]
                sign_row = [1 if s else -1 for s in plus_l[r]]
                p_none_row, mag_row = p_none_l[r], mag_l[r]
                supporting = [
                    self._supporting_names(li, j if sign_row[j] < 0 else n_params + j, int(c), tab) if c else ()
                    for j, c in enumerate(sup_code_l[r])
                ]
                # Every parameter not in active_l[r] is "no change is likelier" and not too small.
                reasons = list(tab.no_change_reasons)
                too_small = list(tab.all_false)
                for j in active_l[r]:
                    p = p_dir_row[j]
                    if p < p_none_row[j]:
                        reason = _NO_CHANGE
                    elif p < pol.min_confidence:
                        reason = f"direction probability {p:.2f} is below the confidence needed ({pol.min_confidence:.2f})"
                    elif p < UNSUPPORTED_MIN and not supporting[j]:
                        reason = (
                            f"direction probability {p:.2f} without a gait deviation it would explain "
                            f"(needs {UNSUPPORTED_MIN:.2f} without one)"
                        )
                    else:
                        reason = ""
                    small = mag_row[j] < tab.min_change_l[j]
                    if small:
                        reason = f"estimated change {mag_row[j]:.1f}{tab.small_suffix[j]}"
                    reasons[j] = reason
                    too_small[j] = small
                rec = [s == "" for s in reasons]
                alternatives = (
                    _pool_alternatives(rec, too_small, p_dir_row, supporting, sign_row, tab.specs) if poolable_l[r] >= 2 else {}
                )
                for j in alternatives:
                    reasons[j] = ""
                estimates = tuple(map(ParameterEstimate, params, p_dec_l[r], p_none_row, p_inc_l[r], mag_row, tab.units, rec, reasons))
                # max(p_none, 1 - p) where nothing is recommended, as no_change_prob holds it.
                overall = min([p if ok else c for p, ok, c in zip(p_dir_row, rec, no_change_prob_l[r], strict=True)])
                if any(rec):
                    adjustments = self._adjustments(
                        model, x, r, pred, present[r], z[r], level, do_explain, tab, rec, p_dir_row, sign_row, mag_row, supporting,
                        alternatives, explained,
                    )
            if pattern_rows[r]:
                findings = _findings(pat_ids[pat_hit[r]].tolist(), frozenset(adj.parameter for adj in adjustments), explained)
            overall = float(overall)
            warnings = all_warnings[r]
            n_p = int(n_present)
            if n_p < MIN_INFORMATIVE_FEATURES:
                warnings = (*warnings, f"only {n_p} feature(s) sent: too little information for a confident answer")
                overall = min(overall, 0.5)
            if not n_socket:
                # Spatiotemporal and kinematic features are compensated by the user (Jonkergouw 2016):
                # without socket kinetics the answer is at best of medium confidence.
                overall = min(overall, 0.79)
            conf_level = _level(overall)
            if ref_rows is not None and ref_rows[r]:
                if not reads_reference:
                    warnings = (*warnings, NOT_READ_REFERENCE_WARNING)
            elif reads_reference and conf_level is not ConfidenceLevel.HIGH:
                warnings = (*warnings, NO_REFERENCE_HINT)
            suggestions: tuple[MeasurementSuggestion, ...] = ()
            if conf_level is not ConfidenceLevel.HIGH:
                key = (feature_columns, li, present_code, contenders)
                cached = tab.suggestions.get(key)
                if cached is None:
                    cont = int(contenders)
                    sugg_params = [p for j, p in enumerate(params) if cont >> j & 1] or list(params)
                    cached = _suggest(model, level, present[r], sugg_params, n_socket > 0)
                    if len(tab.suggestions) >= _CACHE_MAX:
                        tab.suggestions.clear()
                    tab.suggestions[key] = cached
                suggestions = cached
            mkey = (feature_columns, present_code)
            missing = self._missing_cache.get(mkey)
            if missing is None:
                missing = tuple(FEATURE_NAMES[i] for i in np.flatnonzero(~present[r]) if FEATURE_NAMES[i] in feature_columns)
                if len(self._missing_cache) >= _CACHE_MAX:
                    self._missing_cache.clear()
                self._missing_cache[mkey] = missing
            out.append(
                Recommendation(
                    assessment_id=ids[r],
                    model=ref,
                    adjustments=adjustments,
                    no_change_needed=not adjustments,
                    deviations=deviations,
                    non_alignment_findings=findings,
                    missing_features=missing,
                    imputed_features=tuple(FEATURE_NAMES[i] for i in all_derived[r]) if all_derived[r] else (),
                    overall_confidence=round(overall, 4),
                    confidence_level=conf_level,
                    suggested_measurements=suggestions,
                    warnings=warnings,
                    parameter_estimates=estimates,
                    changes_since_reference=(
                        _changes_since_reference(batch.values[r], batch.reference_values[r], li)
                        if ref_rows is not None and ref_rows[r] and batch.reference_values is not None
                        else ()
                    ),
                )
            )
        return out

    def _supporting_names(self, li: int, col: int, code: int, tab: _ModelTables) -> tuple[str, ...]:
        """Deviations that the misalignment this correction undoes would produce (decoded bit code)."""
        key = (li, col, code)
        names = tab.support_names.get(key)
        if names is None:
            feats = tab.levels[li].segment_features[col]
            names = tuple(FEATURE_NAMES[f] for k, f in enumerate(feats) if code >> k & 1)
            if len(tab.support_names) >= _CACHE_MAX:
                tab.support_names.clear()
            tab.support_names[key] = names
        return names

    def _adjustments(
        self,
        model: OnnxModel,
        x: FloatArray,
        r: int,
        pred: Prediction,
        present: np.ndarray,
        z: FloatArray,
        level: AmputationLevel,
        explain: bool,
        tab: _ModelTables,
        rec: list[bool],
        p_dir: list[float],
        sign: list[int],
        mags: list[float],
        supporting: list[tuple[str, ...]],
        alternatives: dict[int, tuple[str, ...]],
        explained: set[int],
    ) -> tuple[Adjustment, ...]:
        """The recommended changes of row r, ranked; adds the deviations they explain to `explained`."""
        chosen = [j for j in range(len(rec)) if rec[j]]
        # Rank by probability times size in units of the safe step: a sure, large change first.
        # Coronal alignment is finalised last; everything else ranks by score first.
        score = {j: p_dir[j] * min(mags[j] / tab.max_step[j], 1.5) for j in chosen}
        chosen.sort(key=lambda j: (_PLANE_ORDER[tab.specs[j].plane], -score[j]))
        # One occlusion batch per assessment, shared by all its adjustments.
        occlusion = _occlude(model, x[r], present) if explain else None
        # Python lists for the per-adjustment effect drivers: indexing numpy scalars costs more.
        z_l: list[float] = [] if explain else z.tolist()
        present_l: list[bool] = [] if explain else present.tolist()
        raw_mags = pred.magnitude[r].tolist()
        los, his = pred.magnitude_lo[r].tolist(), pred.magnitude_hi[r].tolist()
        adjustments: list[Adjustment] = []
        for rank, j in enumerate(chosen, start=1):
            spec, sg, p = tab.specs[j], sign[j], p_dir[j]
            lo = max(los[j], 0.0)
            hi = max(his[j], lo)
            param = spec.parameter
            max_step = tab.max_step[j]
            step = min(mags[j], max_step)
            clamped = mags[j] > max_step
            sup = supporting[j]
            explained.update(FEATURE_INDEX[s] for s in sup)
            drivers = _drivers(occlusion, model, r, param, sg, pred) if occlusion is not None else _effect_drivers(level, param, z_l, present_l)
            interval = sorted((sg * lo, sg * hi))
            direction = spec.plus_direction if sg > 0 else spec.minus_direction
            rationale = _rationale(spec, sg, step, p, sup, clamped, alternatives.get(j, ()))
            adjustments.append(
                Adjustment(
                    rank=rank,
                    parameter=param,
                    change=round(sg * step, 2),
                    unit=spec.unit,
                    direction=direction,
                    confidence=round(p, 4),
                    interval_lower=round(interval[0], 2),
                    interval_upper=round(interval[1], 2),
                    suggested_change=round(sg * raw_mags[j], 2),
                    clamped_to_safe_step=clamped,
                    supporting_deviations=sup,
                    driving_features=drivers,
                    rationale=rationale,
                    plane=spec.plane,
                )
            )
        return tuple(adjustments)


def _pool_alternatives(
    rec: list[bool],
    too_small: list[bool],
    p_dir: list[float],
    supporting: list[tuple[str, ...]],
    sign: list[int],
    specs: tuple[ParameterSpec, ...],
) -> dict[int, tuple[str, ...]]:
    """Recommend one of several alternative fixes for the same deviation when together they are likely.

    Textbooks give two or three alignment fixes per deviation (excessive knee flexion at loading:
    socket flexed, foot dorsiflexed, or foot posterior; clinical-evidence.md 0.10 and 7.6). The
    model then splits its probability between them, each below "no change", although together
    they say a change is needed. For a deviation no recommended change explains, the directions
    (each at least ALTERNATIVE_FLOOR likely, large enough) that would explain it pool their
    probabilities; if the pool reaches min_confidence the most probable one is recommended with
    its own, honest, probability and the others are named as alternatives.

    Candidates are parameter positions j; `rec` is updated in place; returns j -> alternatives.
    """
    js = range(len(rec))
    explained = {f for j in js if rec[j] for f in supporting[j]}
    pooled: dict[str, list[int]] = {}
    for j in js:
        if rec[j] or too_small[j] or p_dir[j] < ALTERNATIVE_FLOOR:
            continue
        for f in supporting[j]:
            if f not in explained:
                pooled.setdefault(f, []).append(j)
    done: set[int] = set()
    alternatives: dict[int, tuple[str, ...]] = {}
    for _feature, group in sorted(pooled.items(), key=lambda kv: -sum(p_dir[j] for j in kv[1])):
        group = [j for j in group if j not in done and not rec[j]]
        if len(group) < 2 or sum(p_dir[j] for j in group) < POOL_MIN:
            continue
        best = max(group, key=lambda j: p_dir[j])
        rec[best] = True
        alternatives[best] = tuple(
            f"{specs[j].plus_direction if sign[j] > 0 else specs[j].minus_direction} ({p_dir[j]:.0%})" for j in group if j != best
        )
        done.update(group)
    return alternatives


def _occlude(model: OnnxModel, x_row: FloatArray, present: np.ndarray) -> tuple[list[int], Prediction | None]:
    """The model on x_row with each present model feature removed in turn (one row per feature)."""
    idx = [int(i) for i in np.flatnonzero(present) if FEATURE_NAMES[i] in model.feature_columns]
    if not idx:
        return idx, None
    rows = np.repeat(x_row[None, :], len(idx), axis=0)
    rows[np.arange(len(idx)), idx] = np.nan
    # An unmeasured feature has no change since the reference either.
    rows[np.arange(len(idx)), _REF0 + np.asarray(idx)] = np.nan
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
    name, unit, mean, sd, head, tail = _DEV_CONST[i, level]
    word = "high" if z > 0 else "low"
    return Deviation(name, value, unit, mean, sd, round(z, 2), f"{head}{word}: {value:.3g}{tail}{z:+.1f})")


def _effect_drivers(level: AmputationLevel, param: Parameter, z: list[float], present: list[bool]) -> tuple[str, ...]:
    """Cheap stand-in when occlusion is off: present features this parameter moves, by |z| (stable)."""
    cand = [i for i in _EFFECT_FEATURES.get((level, param), ()) if present[i]]
    cand.sort(key=lambda i: -abs(z[i]))
    return tuple([FEATURE_NAMES[i] for i in cand[:5]])


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


def _findings(matched: list[int], recommended: frozenset[Parameter], explained: set[int]) -> tuple[NonAlignmentFinding, ...]:
    """The non-alignment patterns present (indices into _FINDINGS, in order) that no recommended
    change accounts for."""
    out: list[NonAlignmentFinding] = []
    for k in matched:
        code, _pattern, alignment_params, _only_level, message = _FINDINGS[k]
        if not (recommended & alignment_params) and _PAT_FEATURE[k] not in explained:
            out.append(NonAlignmentFinding(code, message, _PAT_NAMES[k]))
    return tuple(out)


def _changes_since_reference(values: FloatArray, reference: FloatArray, level_index: int) -> tuple[FeatureChange, ...]:
    """Features that changed since the reference walk by >= REFERENCE_CHANGE_SD normative SDs,
    largest first: what the model's reference stage reads, in words a prosthetist can check."""
    sd = _SD_BY_LEVEL[level_index]
    with np.errstate(invalid="ignore"):
        in_sd = (values - reference) / sd
    idx = np.flatnonzero(np.abs(np.nan_to_num(in_sd)) >= REFERENCE_CHANGE_SD)
    order = idx[np.argsort(-np.abs(in_sd[idx]), kind="stable")][:MAX_REFERENCE_CHANGES]
    return tuple(
        FeatureChange(
            FEATURE_NAMES[i],
            float(reference[i]),
            float(values[i]),
            float(values[i] - reference[i]),
            FEATURES[i].unit,
            round(float(in_sd[i]), 2),
        )
        for i in order.tolist()
    )


def _suggest(
    model: OnnxModel,
    level: AmputationLevel,
    present: np.ndarray,
    params: Sequence[Parameter],
    has_socket: bool,
) -> tuple[MeasurementSuggestion, ...]:
    """Missing features that bear on the parameters the model is least sure about.

    Called only below HIGH confidence. `params`: the contenders, parameters with a real chance of
    needing a change that is not yet settled (0.15 <= max direction probability < 0.8), or all of
    them when there are none. Measuring what bears on them is what would change the answer; the rest
    would only add noise to the list.
    """
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
