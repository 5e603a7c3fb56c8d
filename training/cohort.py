"""The simulated cohort (DESIGN 6): literature-grounded stand-in for clinic data.

There is no public data set of gait features labelled with the alignment correction that fixed them, so
the first models learn from simulated fittings built from three published ingredients:

1. a baseline gait per patient from the catalog normatives for prosthesis users (per amputation level),
   with inter-patient variation and speed dependence of the spatiotemporal features;
2. a sparse true misalignment over the seven parameters, drawn within the perturbation ranges of the
   alignment studies (``ParameterSpec.study_range``; clinical-evidence.md 0.2), its effect on each
   feature taken ONLY from ``service/data/alignment_effects.csv`` via ``catalog.effects()`` (linear or
   symmetric, saturation, per-patient gain ~ N(1, compensation_cv)); no effect size lives in this file;
3. the noise and missing-feature pattern of each sensor kind (noise from the catalog's sensor_error.csv, the one place
   where noise sizes live, each with its citation) and the catalog's feature -> sensor mapping.

The output is a table in the clinic training schema (``training.dataset``), one row per assessment, so
the pipeline trains identically on simulated and real data. The label is the correction that undoes the
misalignment (``correction_<PARAMETER> = -misalignment``). Deterministic given the seed.

Numbers that are modelling choices rather than literature values (the acceptable band, baseline
spread, dropout rates) are constants below, each with the reason; clinicians can audit them here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from service import catalog
from service.catalog import AmputationLevel, SensorKind

# --------------------------------------------------------------------------------------------------
# Sensor subsets: the sensor sets a fitting can realistically have. Every simulated patient gets the
# full set once plus several partial ones, so evaluation can report every subset for the same
# held-out patients (and must group by patient, because their assessments share a true misalignment).
# --------------------------------------------------------------------------------------------------
_P, _I, _IN, _FP, _MC, _V, _O = (
    SensorKind.INSTRUMENTED_PYLON,
    SensorKind.IMU,
    SensorKind.PRESSURE_INSOLE,
    SensorKind.FORCE_PLATE,
    SensorKind.MOTION_CAPTURE,
    SensorKind.VIDEO_POSE,
    SensorKind.OBSERVATION,
)

SENSOR_SUBSETS: dict[str, frozenset[SensorKind]] = {
    "all_sensors": frozenset(SensorKind),
    "pylon_only": frozenset({_P}),
    "imu_only": frozenset({_I}),
    "video_only": frozenset({_V}),
    "observation_only": frozenset({_O}),
    "insole_imu": frozenset({_IN, _I}),
    "mocap_force_plate": frozenset({_MC, _FP}),
    "pylon_imu": frozenset({_P, _I}),
    "video_observation": frozenset({_V, _O}),
}


def subset_name(kinds: frozenset[SensorKind]) -> str:
    """Name of a sensor set: a SENSOR_SUBSETS key, else the sorted kinds joined by '+'."""
    for name, subset in SENSOR_SUBSETS.items():
        if subset == kinds:
            return name
    return "+".join(sorted(k.value for k in kinds)) or "none"


def format_sensor_kinds(kinds: frozenset[SensorKind]) -> str:
    """Canonical ``sensor_kinds`` cell: catalog order, ';'-separated."""
    return ";".join(k.value for k in SensorKind if k in kinds)


# --------------------------------------------------------------------------------------------------
# Sensor noise: sized in the catalog (service/data/sensor_error.csv: a single-walk test-retest ICC per
# sensor kind, with its citation), so the service's noise-aware deviations and the simulator agree on
# one number. When several present sensors measure a feature, the assessment uses the most accurate.
# --------------------------------------------------------------------------------------------------
# Probability that a feature a sensor can measure is still missing (too few good strides, dropped by
# the extractor's quality flag) [I]; also guarantees every column has NaNs in training, so LightGBM
# learns a missing-value branch for every input (otherwise NaN would silently be treated as 0).
FEATURE_DROPOUT = 0.03
# Probability that a context field (k_level, body mass) is not sent with an assessment [I].
CONTEXT_MISSING = 0.05

# --------------------------------------------------------------------------------------------------
# Patients and misalignment (modelling choices, documented).
# --------------------------------------------------------------------------------------------------
P_TRANSFEMORAL = 0.30
K_LEVEL_PROBS: dict[AmputationLevel, tuple[float, float, float, float]] = {
    AmputationLevel.TRANSTIBIAL: (0.05, 0.25, 0.50, 0.20),  # K1..K4 [K]
    AmputationLevel.TRANSFEMORAL: (0.10, 0.40, 0.40, 0.10),
}
FOOT_TYPES: tuple[str, ...] = ("SACH", "SINGLE_AXIS", "MULTIAXIAL", "ENERGY_STORING")
# Catalog normative SDs describe fitted users, which already include residual misalignment inside the
# acceptable band and measurement noise; both are simulated explicitly, so the pure between-patient
# baseline spread is a fraction of the normative SD [I].
BASELINE_SD_SCALE = 0.8
# Share of patients whose alignment is already acceptable (DESIGN 6; Zahedi 1986: a band, not a point).
P_WELL_ALIGNED = 0.25
# Number of misaligned parameters for the other patients: 1, 2 or 3 (sparse). Single-parameter
# misalignments are the commonest presentation in a fitting (one thing changed or set wrong) [I].
N_MISALIGNED_PROBS = (0.55, 0.30, 0.15)
# Share of misaligned parameters drawn beyond the study range, up to ParameterSpec.clinical_range [I].
P_BEYOND_STUDY_RANGE = 0.35
# Compensators (see draw_gains): users compensate spatiotemporal and kinematic responses to
# misalignment unpredictably (Jonkergouw 2016; Fridman 2003: +18 deg foot rotation changed nothing
# significant). A share of patients shows one response per misaligned parameter only [I].
P_COMPENSATOR = 0.25
COMPENSATED_GAIN = 0.3
# Residual offsets inside the acceptable band: every parameter not chosen as misaligned is, with this
# probability, off by up to ACCEPTABLE_BAND * min_change (below the smallest change with a published
# effect, so the label is "no change").
P_RESIDUAL = 0.5
ACCEPTABLE_BAND = 0.75
# Per-assessment speed jitter (m/s): the same patient walks a little differently on each recording [K].
SPEED_JITTER = 0.05
N_ASSESSMENTS_DEFAULT = 4
# Reference walks (GaitAssessment.reference_features): the same patient recorded at the alignment the
# prosthetist last accepted, with the same sensors. A share P_WITH_REFERENCE of the simulated
# assessments is written twice, once alone and once with such a reference ("<assessment_id>R"), so the
# model learns both uses from the same walks and the evaluation can report each (a share rather than
# all of them keeps `python -m training all` well inside its 3-minute budget).
P_WITH_REFERENCE = 0.5
# - the accepted alignment is a fresh residual inside the acceptable band (like a well-aligned patient);
# - the patient's own gait drifts between the two visits: each baseline draw moves by
#   N(0, VISIT_DRIFT_Z) in the same standard-normal units as the between-patient spread. 0.4 of the
#   between-patient SD corresponds to a test-retest ICC of about 0.86, the usual range (0.7-0.95) for
#   instrumented gait features [K]; clinical-evidence.md has no retest figures for prosthesis users.
VISIT_DRIFT_Z = 0.4
WITH_REFERENCE_SUFFIX = "R"

_LEVELS = (AmputationLevel.TRANSTIBIAL, AmputationLevel.TRANSFEMORAL)


@dataclass(frozen=True, slots=True)
class CohortConfig:
    n_patients: int = 6000
    n_assessments: int = N_ASSESSMENTS_DEFAULT
    seed: int = 20261124


def _norm(feature: str, level: AmputationLevel) -> catalog.Normative:
    return catalog.FEATURES_BY_NAME[feature].normative[level]


def _best_noise(kinds: frozenset[SensorKind], feature: catalog.FeatureSpec, level: AmputationLevel) -> float:
    """Noise SD of the most accurate present sensor that measures the feature (catalog sources)."""
    return min(catalog.noise_sd(k, feature, level) for k in feature.sources if k in kinds)


def best_source(kinds: frozenset[SensorKind], feature: catalog.FeatureSpec, level: AmputationLevel) -> SensorKind:
    """The present sensor whose value the assessment reports for a feature (the most accurate)."""
    return min((k for k in feature.sources if k in kinds), key=lambda k: catalog.noise_sd(k, feature, level))


def draw_misalignment(rng: np.random.Generator) -> np.ndarray:
    """A sparse misalignment over catalog.PARAMETERS (parameter units, + = DESIGN 3.1 sign)."""
    n = len(catalog.PARAMETERS)
    mins = np.array([p.min_change for p in catalog.PARAMETERS])
    ranges = np.array([p.study_range for p in catalog.PARAMETERS])
    clinical = np.array([p.clinical_range for p in catalog.PARAMETERS])
    x = np.where(rng.random(n) < P_RESIDUAL, rng.uniform(-ACCEPTABLE_BAND, ACCEPTABLE_BAND, n) * mins, 0.0)
    if rng.random() >= P_WELL_ALIGNED:
        k = int(rng.choice([1, 2, 3], p=N_MISALIGNED_PROBS))
        chosen = rng.choice(n, size=k, replace=False)
        # Most within the study grid (smallest studied change up to the study range), the rest up to the
        # clinical range: bench alignments can be off by more than perturbation studies apply (DESIGN 6).
        beyond = rng.random(k) < P_BEYOND_STUDY_RANGE
        mag = np.where(
            beyond,
            rng.uniform(ranges[chosen], clinical[chosen]),
            rng.uniform(mins[chosen], ranges[chosen]),
        )
        x[chosen] = np.where(rng.random(k) < 0.5, -1.0, 1.0) * mag
    return x


def draw_gains(rng: np.random.Generator) -> dict[int, float]:
    """Per-patient response gain per effect row, N(1, compensation_cv) from the CSV; floored at 0 because
    users compensate an effect away but do not reverse it [I].

    With probability P_COMPENSATOR the patient is a compensator (a single-deviation presentation,
    DESIGN 6): every compensable response of every parameter (not a socket reaction moment, which the
    pylon measures whatever the user does; Jonkergouw 2016) is damped to COMPENSATED_GAIN of its size,
    except one kept per parameter, so one clear deviation shows with the rest near the norm."""
    gains = {i: float(max(0.0, rng.normal(1.0, eff.compensation_cv))) for i, eff in enumerate(catalog.effects())}
    if rng.random() < P_COMPENSATOR:
        by_param: dict[catalog.Parameter, list[int]] = {}
        for i, eff in enumerate(catalog.effects()):
            if catalog.FEATURES_BY_NAME[eff.feature].group is not catalog.FeatureGroup.SOCKET_KINETIC:
                by_param.setdefault(eff.parameter, []).append(i)
        for rows in by_param.values():
            keep = rows[int(rng.integers(len(rows)))]
            for i in rows:
                if i != keep:
                    gains[i] *= float(rng.uniform(0.0, COMPENSATED_GAIN))
    return gains


def _effect_shift(x: np.ndarray, level: AmputationLevel, gains: Mapping[int, float]) -> dict[str, float]:
    """Sum of the cited effects of misalignment x on every feature (feature units)."""
    shift: dict[str, float] = {}
    for i, eff in enumerate(catalog.effects()):
        if eff.level is not None and eff.level is not level:
            continue
        xi = float(x[catalog.PARAMETER_NAMES.index(eff.parameter.value)])
        if xi == 0.0:
            continue
        d = gains[i] * eff.shift(xi)
        if eff.saturation is not None:
            d = max(-eff.saturation, min(eff.saturation, d))
        shift[eff.feature] = shift.get(eff.feature, 0.0) + d
    return shift


@dataclass(slots=True)
class _Patient:
    pid: str
    level: AmputationLevel
    side: str
    mass: float
    height: float
    k_level: int
    foot: str
    skill: float
    speed: float
    z: dict[str, float]  # standard-normal baseline draws per feature (patient-specific)
    x: np.ndarray  # true misalignment
    gains: dict[int, float]  # per-patient response gain per effect row


def _draw_patient(rng: np.random.Generator, idx: int) -> _Patient:
    level = _LEVELS[int(rng.random() < P_TRANSFEMORAL)]
    k_level = int(rng.choice([1, 2, 3, 4], p=K_LEVEL_PROBS[level]))
    # Skill: latent walking ability, tied to the K-level (K-levels are functional classes) [K].
    skill = float(np.clip((k_level - 1) / 3 + rng.normal(0, 0.15), 0.0, 1.0))
    foot_p = (0.5, 0.3, 0.15, 0.05) if k_level <= 2 else (0.05, 0.1, 0.25, 0.6)  # [K] prescribing practice
    foot = FOOT_TYPES[int(rng.choice(len(FOOT_TYPES), p=foot_p))]
    vn = _norm("walking_speed_m_per_s", level)
    speed = float(np.clip(vn.mean + 0.5 * vn.sd * (skill - 0.55) / 0.3 + rng.normal(0, 0.6 * vn.sd), 0.3, 1.8))
    z = {f: float(rng.normal()) for f in catalog.FEATURE_NAMES}
    z["_coronal_shared"] = float(rng.normal())
    x = draw_misalignment(rng)
    gains = draw_gains(rng)
    return _Patient(
        pid=f"SIM{idx:06d}",
        level=level,
        side=("LEFT", "RIGHT")[int(rng.random() < 0.5)],
        mass=float(np.clip(rng.normal(82.0, 15.0), 45.0, 150.0)),
        height=float(np.clip(rng.normal(1.74, 0.09), 1.45, 2.05)),
        k_level=k_level,
        foot=foot,
        skill=skill,
        speed=speed,
        z=z,
        x=x,
        gains=gains,
    )


def _true_features(p: _Patient, speed: float) -> dict[str, float]:
    """Noise-free features of one walk: baseline (speed-dependent) plus the misalignment effects."""
    lv = p.level
    s = BASELINE_SD_SCALE

    def base(name: str) -> float:
        n = _norm(name, lv)
        return n.mean + s * n.sd * p.z[name]

    dv = speed - _norm("walking_speed_m_per_s", lv).mean
    f: dict[str, float] = {name: base(name) for name in catalog.FEATURE_NAMES}
    f["walking_speed_m_per_s"] = speed
    # Spatiotemporal coupling [K]: faster walking = higher cadence and longer steps; step length
    # follows speed / cadence and scales with body height.
    cad = (
        _norm("cadence_steps_per_min", lv).mean
        + 30.0 * dv
        + 0.6 * _norm("cadence_steps_per_min", lv).sd * p.z["cadence_steps_per_min"]
    )
    f["cadence_steps_per_min"] = cad
    step_mean = speed * 60.0 / cad * (p.height / 1.74) ** 0.5
    cycle = 120.0 / cad
    stance_mean = 0.61 * cycle
    # Features moved by the misalignment (the CSV is the only source of these numbers).
    shift = _effect_shift(p.x, lv, p.gains)
    # Asymmetries are derived from the two sides, so their effects are applied by splitting the two
    # sides around their mean (100*(p-s)/mean then changes by exactly the effect).
    a_step = base("step_length_asymmetry_pct") + shift.pop("step_length_asymmetry_pct", 0.0)
    a_stance = base("stance_time_asymmetry_pct") + shift.pop("stance_time_asymmetry_pct", 0.0)
    f["step_length_prosthetic_m"] = step_mean * (1 + a_step / 200.0)
    f["step_length_sound_m"] = step_mean * (1 - a_step / 200.0)
    f["stance_time_prosthetic_s"] = stance_mean * (1 + a_stance / 200.0)
    f["stance_time_sound_s"] = stance_mean * (1 - a_stance / 200.0)
    # Bilateral correlation [K]: a person's toe-out is largely symmetric, so the prosthetic baseline
    # follows the sound side (this is what makes "prosthetic FPA - sound FPA" informative, Table A T9).
    fs = _norm("foot_progression_angle_sound_deg", lv)
    f["foot_progression_angle_sound_deg"] = fs.mean + s * fs.sd * p.z["foot_progression_angle_sound_deg"]
    fpn = _norm("foot_progression_angle_prosthetic_deg", lv)
    f["foot_progression_angle_prosthetic_deg"] = (
        f["foot_progression_angle_sound_deg"]
        + (fpn.mean - fs.mean)
        + 2.5 * p.z["foot_progression_angle_prosthetic_deg"]
    )
    # Coronal socket moments early and late share limb geometry [I]: correlated baselines.
    for name in ("socket_coronal_moment_early_stance_nm_per_kg", "socket_coronal_moment_late_stance_nm_per_kg"):
        n = _norm(name, lv)
        f[name] = n.mean + s * n.sd * (0.6 * p.z["_coronal_shared"] + 0.8 * p.z[name])
    # Speed dependence of loading and swing [K].
    for name in (
        "vgrf_loading_peak_prosthetic_bw",
        "vgrf_loading_peak_sound_bw",
        "vgrf_push_off_peak_prosthetic_bw",
        "pylon_axial_force_peak_bw",
    ):
        f[name] += 0.15 * dv
    f["knee_flexion_swing_prosthetic_deg"] += 10.0 * dv
    # Foot type [K]: energy-storing keels push off harder and roll over later than SACH feet.
    if p.foot == "ENERGY_STORING":
        f["vgrf_push_off_peak_prosthetic_bw"] += 0.03
        f["heel_off_prosthetic_pct_stance"] += 2.0
    elif p.foot == "SACH":
        f["vgrf_push_off_peak_prosthetic_bw"] -= 0.03
        f["heel_off_prosthetic_pct_stance"] -= 2.0
    for name, d in shift.items():
        f[name] += d
    return f


_DERIVED = {
    "step_length_asymmetry_pct": ("step_length_prosthetic_m", "step_length_sound_m"),
    "stance_time_asymmetry_pct": ("stance_time_prosthetic_s", "stance_time_sound_s"),
}


def _asymmetry(p: float, s: float) -> float:
    return 100.0 * (p - s) / ((p + s) / 2.0)


def measure(
    true: Mapping[str, float],
    kinds: frozenset[SensorKind],
    level: AmputationLevel,
    rng: np.random.Generator,
    dropout: float = FEATURE_DROPOUT,
) -> dict[str, float]:
    """What a given sensor set reports: noise, dropouts, NaN where unmeasurable, clipped to range.

    ``dropout`` 0 gives complete walks (training.oracle compares estimators on those)."""
    mask = catalog.feature_sensor_mask(kinds)
    out: dict[str, float] = {}
    sides = {s for pair in _DERIVED.values() for s in pair}
    for spec, measurable in zip(catalog.FEATURES, mask, strict=True):
        if spec.name in _DERIVED or spec.name in sides:
            continue
        if not measurable or rng.random() < dropout:
            out[spec.name] = math.nan
            continue
        out[spec.name] = true[spec.name] + rng.normal(0.0, _best_noise(kinds, spec, level))
    for name, (pn, sn) in _DERIVED.items():
        # One sensor measures both sides in one walk, so their errors are mostly shared (a scale or
        # timing error moves both): the mean of the two sides carries the side feature's error, their
        # asymmetry the asymmetry's own (sensor_error.csv), and the sides follow from the two. Drawing
        # the sides independently would give the asymmetry an error no retest ICC supports.
        spec_a, spec_p, spec_s = (catalog.FEATURES_BY_NAME[n] for n in (name, pn, sn))
        p_can, s_can = mask[catalog.FEATURE_INDEX[pn]], mask[catalog.FEATURE_INDEX[sn]]
        p_ok = p_can and rng.random() >= dropout
        s_ok = s_can and rng.random() >= dropout
        side = spec_p if p_can else spec_s
        err = _best_noise(kinds, side, level) if (p_can or s_can) else 0.0
        mean = 0.5 * (true[pn] + true[sn]) + rng.normal(0.0, err)
        a_true = _asymmetry(true[pn], true[sn])
        measurable = mask[catalog.FEATURE_INDEX[name]]
        a = a_true + rng.normal(0.0, _best_noise(kinds, spec_a, level)) if measurable else a_true
        out[pn] = mean * (1 + a / 200.0) if p_ok else math.nan
        out[sn] = mean * (1 - a / 200.0) if s_ok else math.nan
        pv, sv = out[pn], out[sn]
        # Derived from the two sides where both are present (DESIGN 3.2 formula).
        out[name] = _asymmetry(pv, sv) if measurable and not (math.isnan(pv) or math.isnan(sv)) else math.nan
    for spec in catalog.FEATURES:
        v = out[spec.name]
        if not math.isnan(v):
            out[spec.name] = min(spec.max_value, max(spec.min_value, v))
    return {name: out[name] for name in catalog.FEATURE_NAMES}


def _reference_patient(p: _Patient, rng: np.random.Generator) -> _Patient:
    """The same patient at the visit when the alignment was accepted (see VISIT_DRIFT_Z)."""
    n = len(catalog.PARAMETERS)
    mins = np.array([q.min_change for q in catalog.PARAMETERS])
    accepted = np.where(rng.random(n) < P_RESIDUAL, rng.uniform(-ACCEPTABLE_BAND, ACCEPTABLE_BAND, n) * mins, 0.0)
    z = {k: v + float(rng.normal(0.0, VISIT_DRIFT_Z)) for k, v in p.z.items()}
    return replace(p, x=accepted, z=z)


def simulate(config: CohortConfig = CohortConfig()) -> pd.DataFrame:
    """The cohort as a table in the training schema (training.dataset), deterministic given the seed."""
    from training.dataset import REFERENCE_PREFIX, SCHEMA_COLUMNS, coerce_types  # local: dataset imports this module

    rng = np.random.default_rng(config.seed)
    # A separate stream for the reference walks keeps the assessments themselves identical to a cohort
    # simulated without them.
    rng_ref = np.random.default_rng([config.seed, 1])
    subset_names = list(SENSOR_SUBSETS)
    partial = subset_names[1:]
    rows: list[dict[str, object]] = []
    for i in range(config.n_patients):
        p = _draw_patient(rng, i)
        # Always one full-sensor assessment, then distinct partial sensor sets.
        n_partial = max(0, min(config.n_assessments - 1, len(partial)))
        chosen = ["all_sensors"] + [partial[j] for j in rng.choice(len(partial), size=n_partial, replace=False)]
        ref_patient = _reference_patient(p, rng_ref)
        for a, name in enumerate(chosen):
            kinds = SENSOR_SUBSETS[name]
            speed = float(np.clip(p.speed + rng.normal(0, SPEED_JITTER), 0.2, 2.0))
            feats = measure(_true_features(p, speed), kinds, p.level, rng)
            ref_speed = float(np.clip(p.speed + rng_ref.normal(0, SPEED_JITTER), 0.2, 2.0))
            ref_feats = measure(_true_features(ref_patient, ref_speed), kinds, p.level, rng_ref)
            row: dict[str, object] = {
                "patient_id": p.pid,
                "assessment_id": f"{p.pid}-A{a}",
                "amputation_level": p.level.value,
                "prosthetic_side": p.side,
                "body_mass_kg": math.nan if rng.random() < CONTEXT_MISSING else round(p.mass, 1),
                "height_m": round(p.height, 2),
                "k_level": math.nan if rng.random() < CONTEXT_MISSING else float(p.k_level),
                "foot_type": p.foot,
                "sensor_kinds": format_sensor_kinds(kinds),
            }
            row.update(feats)
            for j, pname in enumerate(catalog.PARAMETER_NAMES):
                # The label: the correction that undoes the misalignment (+0.0 avoids "-0.0" cells).
                row[f"correction_{pname}"] = float(-p.x[j]) + 0.0
            row["outcome_accepted"] = pd.NA  # no outcome for simulated fittings
            row["outcome_comfort_0_10"] = math.nan
            rows.append(row)
            if rng_ref.random() >= P_WITH_REFERENCE:
                continue
            twin = dict(row)
            twin["assessment_id"] = f"{row['assessment_id']}{WITH_REFERENCE_SUFFIX}"
            twin.update({REFERENCE_PREFIX + k: v for k, v in ref_feats.items()})
            rows.append(twin)
    df = pd.DataFrame(rows).reindex(columns=list(SCHEMA_COLUMNS))
    return coerce_types(df[list(SCHEMA_COLUMNS)])


def sensor_subset_of(df: pd.DataFrame) -> pd.Series:
    """Per-row sensor subset name from the ``sensor_kinds`` column."""

    def one(cell: object) -> str:
        if not isinstance(cell, str) or not cell.strip():
            return "unknown"
        return subset_name(frozenset(SensorKind(k.strip()) for k in cell.split(";") if k.strip()))

    return df["sensor_kinds"].map(one)
