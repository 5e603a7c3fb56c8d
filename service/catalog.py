"""Feature and adjustment catalogs: the names, units, ranges and signs of contract v1.

Everything an integrator can rely on lives here: feature names (DESIGN 3.2), their canonical units and
accepted input units, physiological valid ranges (reject outside), normative values for prosthesis
users (deviations and z-scores), and the seven adjustment parameters with their sign conventions
(DESIGN 3.1), minimum meaningful change and safe single step.

Evidence tags follow ../shared/clinical-evidence.md: [S] stated in the cited source, [I] our
inference, [K] background knowledge not verified against a source. Socket-reaction-moment norms were
"not retrieved" there (Table D, last row), so those norms are [I] project estimates from the published
*shape* (flexion moment early in stance, extension late; Kobayashi et al. POI 2015) and are flagged as
such in GetModel. Every number here is a starting point for clinicians to audit, not a clinical truth.

This module is pure data plus lookups: no grpc, protobuf or onnxruntime.
"""

from __future__ import annotations

import csv
import enum
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# 1.1.0: the model input gained the change-since-reference columns (appended; 1.0 models still load).
CATALOG_VERSION = "1.1.0"

_DATA_DIR = Path(__file__).parent / "data"


class SensorKind(enum.StrEnum):
    INSTRUMENTED_PYLON = "INSTRUMENTED_PYLON"
    IMU = "IMU"
    PRESSURE_INSOLE = "PRESSURE_INSOLE"
    FORCE_PLATE = "FORCE_PLATE"
    MOTION_CAPTURE = "MOTION_CAPTURE"
    VIDEO_POSE = "VIDEO_POSE"
    OBSERVATION = "OBSERVATION"


# Sensor kinds in a fixed order: the code of a feature's sending sensor in numpy tables.
SENSOR_ORDER: tuple[SensorKind, ...] = tuple(SensorKind)
SENSOR_CODE: dict[SensorKind, int] = {k: i for i, k in enumerate(SENSOR_ORDER)}


class AmputationLevel(enum.StrEnum):
    TRANSTIBIAL = "TRANSTIBIAL"
    TRANSFEMORAL = "TRANSFEMORAL"


class Side(enum.StrEnum):
    LEFT = "LEFT"
    RIGHT = "RIGHT"

    @property
    def prefix(self) -> str:
        """Channel-name prefix for this side in recordings ("left" / "right")."""
        return self.value.lower()

    @property
    def other(self) -> Side:
        return Side.RIGHT if self is Side.LEFT else Side.LEFT


class FeatureGroup(enum.StrEnum):
    """How trustworthy a feature is as an alignment signal (clinical-evidence.md section 0.1).

    Kinetic socket features respond cleanly and monotonically to alignment; spatiotemporal and
    kinematic ones are partly compensated by the user.
    """

    SPATIOTEMPORAL = "spatiotemporal"
    KINEMATIC = "kinematic"
    KINETIC = "kinetic"
    SOCKET_KINETIC = "socket_kinetic"


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit accepted on input: value_in_canonical = value * factor (times body mass if per_kg)."""

    symbol: str
    factor: float
    # Set when converting needs the body mass: "divide" for N*m -> N*m/kg, "divide_weight" for N -> bw.
    body_mass: str | None = None


_G_M_PER_S2 = 9.80665

# Canonical unit -> accepted input units (the canonical one first, factor 1). Aliases are listed
# because clinic tools spell units many ways; anything else is rejected with this list.
_UNITS: dict[str, tuple[Unit, ...]] = {
    "m/s": (Unit("m/s", 1.0), Unit("km/h", 1 / 3.6), Unit("cm/s", 0.01)),
    "steps/min": (Unit("steps/min", 1.0), Unit("steps/s", 60.0)),
    "m": (Unit("m", 1.0), Unit("cm", 0.01), Unit("mm", 0.001)),
    "mm": (Unit("mm", 1.0), Unit("cm", 10.0), Unit("m", 1000.0)),
    "s": (Unit("s", 1.0), Unit("ms", 0.001)),
    "%": (Unit("%", 1.0), Unit("pct", 1.0)),
    "deg": (Unit("deg", 1.0), Unit("rad", 180.0 / math.pi)),
    "bw": (Unit("bw", 1.0), Unit("%bw", 0.01), Unit("N", 1.0 / _G_M_PER_S2, body_mass="divide")),
    "N*m/kg": (
        Unit("N*m/kg", 1.0),
        Unit("N·m/kg", 1.0),
        Unit("Nm/kg", 1.0),
        Unit("N*m", 1.0, body_mass="divide"),
        Unit("N·m", 1.0, body_mass="divide"),
        Unit("Nm", 1.0, body_mass="divide"),
    ),
}


def accepted_units(canonical: str) -> tuple[Unit, ...]:
    return _UNITS[canonical]


@dataclass(frozen=True, slots=True)
class Normative:
    mean: float
    sd: float


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    unit: str
    description: str
    group: FeatureGroup
    min_value: float
    max_value: float
    # Normative values for prosthesis users, per amputation level. Deviations and z-scores use them.
    normative: dict[AmputationLevel, Normative]
    sources: tuple[SensorKind, ...]
    citation: str

    @property
    def units(self) -> tuple[Unit, ...]:
        return _UNITS[self.unit]


def _both(mean: float, sd: float) -> dict[AmputationLevel, Normative]:
    n = Normative(mean, sd)
    return {AmputationLevel.TRANSTIBIAL: n, AmputationLevel.TRANSFEMORAL: n}


def _levels(tt: tuple[float, float], tf: tuple[float, float]) -> dict[AmputationLevel, Normative]:
    return {
        AmputationLevel.TRANSTIBIAL: Normative(*tt),
        AmputationLevel.TRANSFEMORAL: Normative(*tf),
    }


_P, _I, _IN, _FP, _MC, _V, _O = (
    SensorKind.INSTRUMENTED_PYLON,
    SensorKind.IMU,
    SensorKind.PRESSURE_INSOLE,
    SensorKind.FORCE_PLATE,
    SensorKind.MOTION_CAPTURE,
    SensorKind.VIDEO_POSE,
    SensorKind.OBSERVATION,
)
_ALL = (_P, _I, _IN, _FP, _MC, _V, _O)
_ST, _KM, _KN, _SK = (
    FeatureGroup.SPATIOTEMPORAL,
    FeatureGroup.KINEMATIC,
    FeatureGroup.KINETIC,
    FeatureGroup.SOCKET_KINETIC,
)

# Order matters: it is the default model input order for catalog v1. Append only.
FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        "walking_speed_m_per_s", "m/s", "mean gait speed", _ST, 0.05, 3.0, _levels((0.95, 0.22), (0.80, 0.22)),
        (_P, _I, _IN, _FP, _MC, _V, _O),
        "[S] Hermodsson 1994 POI 18:68: TT vascular 0.85+-0.2, traumatic 0.99+-0.2 m/s; TF slower [K]",
    ),
    FeatureSpec(
        "cadence_steps_per_min", "steps/min", "steps per minute", _ST, 20.0, 200.0, _both(100.0, 12.0),
        (_P, _I, _IN, _FP, _MC, _V),
        "[K] typical prosthesis-user cadence; range physiological",
    ),
    FeatureSpec(
        "step_length_prosthetic_m", "m", "step ending on the prosthetic heel strike", _ST, 0.05, 1.5,
        _both(0.62, 0.09), (_I, _MC, _V, _O), "[K] walkway values; checked against GAITRite amputee summaries",
    ),
    FeatureSpec(
        "step_length_sound_m", "m", "step ending on the sound heel strike", _ST, 0.05, 1.5,
        _both(0.60, 0.09), (_I, _MC, _V, _O), "[K] walkway values; checked against GAITRite amputee summaries",
    ),
    FeatureSpec(
        "step_length_asymmetry_pct", "%", "100*(prosthetic-sound)/mean step length", _ST, -150.0, 150.0,
        _both(3.0, 7.0), (_I, _MC, _V, _O),
        "[S] asymmetry formula J Prosthet Orthot 35(1):e1 (2023); spread [K]",
    ),
    FeatureSpec(
        "stance_time_prosthetic_s", "s", "prosthetic stance duration", _ST, 0.2, 3.0, _both(0.70, 0.09),
        (_P, _I, _IN, _FP, _MC, _V), "[S] Petersen 2010 JPO 22:106: prosthetic stance about normal; values [K]",
    ),
    FeatureSpec(
        "stance_time_sound_s", "s", "sound-side stance duration", _ST, 0.2, 3.0, _both(0.76, 0.09),
        (_I, _IN, _FP, _MC, _V), "[S] Petersen 2010: sound-side stance prolonged; values [K]",
    ),
    FeatureSpec(
        "stance_time_asymmetry_pct", "%", "100*(prosthetic-sound)/mean stance time", _ST, -150.0, 150.0,
        _levels((-6.0, 5.0), (-10.0, 6.0)), (_I, _IN, _FP, _MC, _V),
        "[S] Petersen 2010 (sound stance longer, TF more); Schmid-Zalaudek 2022 (stance most discriminative)",
    ),
    FeatureSpec(
        "step_width_m", "m", "walking base", _ST, 0.0, 0.6, _levels((0.12, 0.035), (0.15, 0.04)), (_MC, _I, _O),
        "[S weak] brainscape TF deck: normal base 5-10 cm; amputee bases wider [K]",
    ),
    FeatureSpec(
        "trunk_lateral_lean_deg", "deg", "peak trunk lean in prosthetic stance, + toward prosthesis", _KM,
        -40.0, 40.0, _levels((2.0, 2.5), (4.0, 3.0)), (_I, _MC, _V, _O),
        "[S weak] S3D trunk stability: <6 deg none, 6-10 mild, >10 significant; TF more lean [K]",
    ),
    FeatureSpec(
        "pelvic_obliquity_range_deg", "deg", "frontal pelvic range over a stride", _KM, 0.0, 40.0,
        _both(8.0, 2.5), (_I, _MC, _V), "[K] typical pelvic obliquity range",
    ),
    FeatureSpec(
        "hip_hike_prosthetic_swing_deg", "deg", "pelvic elevation on the prosthetic side in swing", _KM,
        -20.0, 30.0, _both(1.0, 1.5), (_I, _MC, _V, _O), "[S] Kirtley: long effective length -> hip hiking; values [K]",
    ),
    FeatureSpec(
        "circumduction_prosthetic_m", "m", "lateral swing excursion of the prosthetic foot", _KM, 0.0, 0.5,
        _both(0.035, 0.015), (_MC, _I, _V, _O), "[S] brainscape/Kirtley: long prosthesis -> circumduction; values [K]",
    ),
    FeatureSpec(
        "foot_progression_angle_prosthetic_deg", "deg", "prosthetic toe-out angle, + out", _KM, -45.0, 60.0,
        _both(8.0, 4.5), (_I, _MC, _IN, _V, _O),
        "[S] Morton JBJS 1932: ~7.5 deg out, arc 5-10; Fridman 2003 POI: optimum 10.9+-5.2 deg rotation",
    ),
    FeatureSpec(
        "foot_progression_angle_sound_deg", "deg", "sound toe-out angle, + out", _KM, -45.0, 60.0,
        _both(7.5, 4.5), (_I, _MC, _IN, _V, _O), "[S] Morton JBJS 1932: ~7.5 deg out-toe",
    ),
    FeatureSpec(
        "knee_flexion_loading_prosthetic_deg", "deg", "peak knee flexion in loading response (- hyperextension)",
        _KM, -25.0, 60.0, _levels((12.0, 4.0), (2.0, 3.0)), (_I, _MC, _V, _O),
        "[S] BK gait text: 15-20 deg normal; prosthesis users less [K]; TF knees near-locked in stance [K]",
    ),
    FeatureSpec(
        "knee_flexion_swing_prosthetic_deg", "deg", "peak swing knee flexion, prosthetic side", _KM, -10.0, 110.0,
        _levels((58.0, 6.0), (55.0, 8.0)), (_I, _MC, _V, _O), "[K] typical swing knee flexion",
    ),
    FeatureSpec(
        "heel_off_prosthetic_pct_stance", "%", "heel rise as % of prosthetic stance (early = drop-off)", _KN,
        10.0, 100.0, _both(68.0, 6.0), (_IN, _I, _FP, _P, _O), "[S] Kirtley toe-lever rule; timing [K]",
    ),
    FeatureSpec(
        "vgrf_loading_peak_prosthetic_bw", "bw", "first vertical GRF peak, prosthetic", _KN, 0.3, 3.5,
        _both(1.05, 0.07), (_FP, _IN, _P), "[S] Cutti 2018 JNER 15:61 (patterns); values [K]",
    ),
    FeatureSpec(
        "vgrf_loading_peak_sound_bw", "bw", "first vertical GRF peak, sound", _KN, 0.3, 3.5,
        _both(1.15, 0.08), (_FP, _IN), "[S] Klodd 2010 JRRD: drop-off overloads the sound limb; values [K]",
    ),
    FeatureSpec(
        "vgrf_push_off_peak_prosthetic_bw", "bw", "second vertical GRF peak, prosthetic", _KN, 0.3, 3.5,
        _both(1.00, 0.07), (_FP, _IN, _P), "[S] THC-181338: propulsion peak most sensitive to 6 deg PF; values [K]",
    ),
    FeatureSpec(
        "knee_adduction_moment_sound_nm_per_kg", "N*m/kg", "sound-knee external adduction moment peak", _KN,
        -1.0, 2.5, _both(0.45, 0.12), (_FP,), "[K] sound-knee joint-load marker; values [K]",
    ),
    FeatureSpec(
        "socket_sagittal_moment_early_stance_nm_per_kg", "N*m/kg", "socket reaction moment early stance, + flexion",
        _SK, -3.0, 3.0, _both(0.25, 0.10), (_P,),
        "[S] shape Kobayashi POI 2015 (flexion early, extension late); magnitudes [I] (not retrieved)",
    ),
    FeatureSpec(
        "socket_sagittal_moment_late_stance_nm_per_kg", "N*m/kg", "socket reaction moment late stance, + flexion",
        _SK, -3.0, 3.0, _both(-0.60, 0.15), (_P,),
        "[S] shape Kobayashi POI 2015; magnitudes [I] (not retrieved)",
    ),
    FeatureSpec(
        "socket_coronal_moment_early_stance_nm_per_kg", "N*m/kg", "coronal socket moment ~30% stance, + varus",
        _SK, -2.0, 2.0, _both(0.30, 0.08), (_P,),
        "[S] Boone 2013: coronal SRM at 30% stance responds to every perturbation; magnitudes [I]",
    ),
    FeatureSpec(
        "socket_coronal_moment_late_stance_nm_per_kg", "N*m/kg", "coronal socket moment ~75% stance, + varus",
        _SK, -2.0, 2.0, _both(0.25, 0.08), (_P,),
        "[S] Boone 2013: coronal SRM at 75% stance responds to every perturbation; magnitudes [I]",
    ),
    FeatureSpec(
        "knee_frontal_shift_early_stance_mm", "mm", "knee frontal movement, first half of stance, + lateral", _KM,
        -80.0, 80.0, _both(0.0, 4.0), (_MC, _I, _V, _O), "[S] Ottobock 1C50/1C68/F23 IFU rule; values [K]",
    ),
    FeatureSpec(
        "knee_frontal_shift_late_stance_mm", "mm", "knee frontal movement, second half of stance, + lateral", _KM,
        -80.0, 80.0, _both(0.0, 4.0), (_MC, _I, _V, _O), "[S] Ottobock 1C50/1C68/F23 IFU rule; values [K]",
    ),
    FeatureSpec(
        "pylon_axial_force_peak_bw", "bw", "peak axial pylon force", _SK, 0.3, 4.0, _both(1.12, 0.08), (_P,),
        "[K] axial force about the vGRF peak",
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}
FEATURES_BY_NAME: dict[str, FeatureSpec] = {f.name: f for f in FEATURES}

# Patient-context columns appended to the model input after the features (same order in every
# manifest). Unknown values are NaN; the model handles missing values natively.
CONTEXT_COLUMNS: tuple[str, ...] = ("context_transfemoral", "context_body_mass_kg", "context_k_level")
# Within-subject comparison, appended after the context: the change of every feature since the same
# patient's REFERENCE assessment (recorded at the alignment the prosthetist last accepted, same units),
# NaN when no reference was sent or either value is missing. A patient's own baseline cancels the
# between-patient spread that hides small misalignments: 6 deg plantarflexion was detected from GRF in
# 96.7% within-subject vs 88.9% inter-subject (THC-181338, clinical-evidence.md Table C). Models whose
# manifest lacks these columns simply do not read them (model.py maps columns by name).
REFERENCE_CHANGE_PREFIX = "change_since_reference_"
REFERENCE_CHANGE_COLUMNS: tuple[str, ...] = tuple(REFERENCE_CHANGE_PREFIX + name for name in FEATURE_NAMES)
MODEL_INPUT_COLUMNS: tuple[str, ...] = FEATURE_NAMES + CONTEXT_COLUMNS + REFERENCE_CHANGE_COLUMNS

# Patient-context valid ranges, checked by validation.
BODY_MASS_KG_RANGE = (20.0, 250.0)
HEIGHT_M_RANGE = (1.0, 2.3)
K_LEVEL_RANGE = (0, 4)


class Plane(enum.StrEnum):
    SAGITTAL = "SAGITTAL"
    CORONAL = "CORONAL"
    TRANSVERSE = "TRANSVERSE"
    LENGTH = "LENGTH"


class Parameter(enum.StrEnum):
    FOOT_ROTATION = "FOOT_ROTATION"
    SOCKET_FLEXION = "SOCKET_FLEXION"
    SOCKET_ADDUCTION = "SOCKET_ADDUCTION"
    HEEL_HEIGHT = "HEEL_HEIGHT"
    FOOT_ANTERIOR_SHIFT = "FOOT_ANTERIOR_SHIFT"
    FOOT_MEDIAL_SHIFT = "FOOT_MEDIAL_SHIFT"
    PYLON_LENGTH = "PYLON_LENGTH"


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    parameter: Parameter
    unit: str  # "deg" or "mm"
    plane: Plane
    plus_means: str
    minus_means: str
    # Plain-language directions shown to prosthetists.
    plus_direction: str
    minus_direction: str
    # Perturbation range used in alignment studies (clinical-evidence.md section 0.2): the simulator
    # draws misalignments within it. Angles 2-6 deg (up to 8 with margin), translations 5-15 mm,
    # length +-20 mm; foot rotation +18 deg is the smaller of Fridman 2003's two perturbations.
    study_range: float
    # Smallest change with a published effect and the safe single step (DESIGN 3.1); defaults that
    # Settings may override.
    min_change: float
    max_step: float
    # Misalignments as clinics meet them at bench alignment (DESIGN 6): larger than the perturbation
    # studies apply. The simulator draws up to this size [I]: bench targets differ from each other by
    # this much (Ottobock vs Fillauer TT bench: inset 0-12 mm, flexion 5-7 deg, foot 10-30 mm anterior;
    # clinical-evidence.md Table C) and users accept a wide range (Zahedi 1986).
    clinical_range: float = 0.0
    # Largest applied change a request may report (validation of applied_since_reference) [I]:
    # beyond it the value is a unit or sign mistake, not an alignment change.
    max_applied_change: float = 0.0


# Order is the model output order for catalog v1. Append only.
PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        Parameter.FOOT_ROTATION, "deg", Plane.TRANSVERSE,
        "external rotation of the foot (more toe-out)", "internal rotation of the foot (less toe-out)",
        "rotate the foot externally (more toe-out)", "rotate the foot internally (less toe-out)", 18.0, 2.0, 6.0, 30.0, 45.0,
    ),
    ParameterSpec(
        Parameter.SOCKET_FLEXION, "deg", Plane.SAGITTAL,
        "more socket flexion (sagittal tilt forward)", "socket extension",
        "flex the socket (tilt forward)", "extend the socket (tilt back)", 8.0, 2.0, 6.0, 12.0, 20.0,
    ),
    ParameterSpec(
        Parameter.SOCKET_ADDUCTION, "deg", Plane.CORONAL,
        "more socket adduction", "socket abduction",
        "adduct the socket", "abduct the socket", 8.0, 2.0, 6.0, 10.0, 20.0,
    ),
    ParameterSpec(
        Parameter.HEEL_HEIGHT, "mm", Plane.SAGITTAL,
        "foot set for a higher heel (plantarflexed)", "foot set for a lower heel (dorsiflexed)",
        "set the foot for a higher heel (plantarflex)", "set the foot for a lower heel (dorsiflex)", 15.0, 5.0, 10.0, 25.0, 40.0,
    ),
    ParameterSpec(
        Parameter.FOOT_ANTERIOR_SHIFT, "mm", Plane.SAGITTAL,
        "foot moved anterior relative to the socket", "foot moved posterior relative to the socket",
        "move the foot anteriorly (socket back)", "move the foot posteriorly (socket forward)", 15.0, 5.0, 10.0, 30.0, 40.0,
    ),
    ParameterSpec(
        Parameter.FOOT_MEDIAL_SHIFT, "mm", Plane.CORONAL,
        "foot moved medially (inset)", "foot moved laterally (outset)",
        "inset the foot (move medially)", "outset the foot (move laterally)", 15.0, 5.0, 10.0, 25.0, 40.0,
    ),
    ParameterSpec(
        Parameter.PYLON_LENGTH, "mm", Plane.LENGTH,
        "longer prosthesis", "shorter prosthesis",
        "lengthen the prosthesis", "shorten the prosthesis", 20.0, 5.0, 10.0, 30.0, 50.0,
    ),
)

PARAMETER_NAMES: tuple[str, ...] = tuple(p.parameter.value for p in PARAMETERS)
PARAMETERS_BY_NAME: dict[str, ParameterSpec] = {p.parameter.value: p for p in PARAMETERS}


@dataclass(frozen=True, slots=True)
class Effect:
    """How one misalignment moves one feature, read from data/alignment_effects.csv.

    A misalignment of +x (parameter units) moves the feature by slope*x (linear), slope*|x|
    (symmetric), or slope*x only for x > 0 (positive) / x < 0 (negative), capped at +-saturation
    when one is given. compensation_cv is the between-patient
    coefficient of variation of that response (users compensate spatiotemporal features).
    """

    feature: str
    parameter: Parameter
    level: AmputationLevel | None  # None: both levels
    slope: float
    shape: str  # "linear", "symmetric", "positive" or "negative"

    def shift(self, x: float) -> float:
        """Feature change for misalignment x before per-patient gain (saturation applied by caller)."""
        if self.shape == "symmetric":
            return self.slope * abs(x)
        if (self.shape == "positive" and x <= 0) or (self.shape == "negative" and x >= 0):
            return 0.0
        return self.slope * x
    saturation: float | None
    compensation_cv: float
    evidence: str
    citation: str


@cache
def effects() -> tuple[Effect, ...]:
    """The literature-derived effect table (one data file, each row with its citation)."""
    rows: list[Effect] = []
    with open(_DATA_DIR / "alignment_effects.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(line for line in fh if not line.startswith("#"))
        for row in reader:
            level = row["level"].strip()
            sat = row["saturation"].strip()
            rows.append(
                Effect(
                    feature=row["feature"].strip(),
                    parameter=Parameter(row["parameter"].strip()),
                    level=None if level in ("", "ALL") else AmputationLevel(level),
                    slope=float(row["slope"]),
                    shape=row["shape"].strip(),
                    saturation=float(sat) if sat else None,
                    compensation_cv=float(row["compensation_cv"]),
                    evidence=row["evidence"].strip(),
                    citation=row["citation"].strip(),
                )
            )
    return tuple(rows)


def feature_sensor_mask(kinds: frozenset[SensorKind]) -> tuple[bool, ...]:
    """Which catalog features the given sensor kinds can measure (model input order)."""
    return tuple(any(k in kinds for k in f.sources) for f in FEATURES)


# -- measurement error per sensor (data/sensor_error.csv) ------------------------------------------


@dataclass(frozen=True, slots=True)
class SensorError:
    """Single-walk test-retest ICC of the features a sensor kind reports (see the CSV's header)."""

    sensor: SensorKind
    icc: float
    tf_factor: float
    evidence: str
    source: str


@cache
def sensor_errors() -> dict[SensorKind, SensorError]:
    out: dict[SensorKind, SensorError] = {}
    with open(_DATA_DIR / "sensor_error.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(line for line in fh if not line.startswith("#")):
            kind = SensorKind(row["sensor"].strip())
            out[kind] = SensorError(kind, float(row["icc"]), float(row["tf_factor"]), row["evidence"].strip(), row["source"].strip())
    missing = set(SensorKind) - set(out)
    if missing:
        raise ValueError(f"sensor_error.csv lacks {sorted(missing)}")
    return out


def noise_sd(kind: SensorKind, feature: FeatureSpec, level: AmputationLevel) -> float:
    """SD of one walk's measurement error of `feature` from `kind`, in the feature's unit."""
    e = sensor_errors()[kind]
    factor = e.tf_factor if level is AmputationLevel.TRANSFEMORAL else 1.0
    return feature.normative[level].sd * math.sqrt((1.0 - e.icc) / e.icc) * factor


def typical_source(feature: FeatureSpec) -> SensorKind:
    """The sensor assumed when a value arrives without one: the feature's first catalog source."""
    return feature.sources[0]


def implied_icc(kind: SensorKind, feature: FeatureSpec, level: AmputationLevel) -> float:
    """The single-walk ICC a feature has from this sensor (the CSV's, after the transfemoral factor)."""
    sd = feature.normative[level].sd
    n = noise_sd(kind, feature, level)
    return sd * sd / (sd * sd + n * n)


# -- the cited rule table (data/deviation_causes.csv) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class CauseRule:
    """One row of the rule table: a deviation (feature above/below its norm) and one candidate cause.

    `parameter` is None for a non-alignment cause (component, fit, user); otherwise `fix_sign` is the
    direction of the correction that undoes the cause.
    """

    feature: str
    z_sign: int
    level: AmputationLevel | None
    parameter: Parameter | None
    fix_sign: int
    cause: str
    table_row: str
    evidence: str
    source: str

    def applies(self, level: AmputationLevel) -> bool:
        return self.level is None or self.level is level


@cache
def cause_rules() -> tuple[CauseRule, ...]:
    rows: list[CauseRule] = []
    with open(_DATA_DIR / "deviation_causes.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(line for line in fh if not line.startswith("#")):
            level = row["level"].strip()
            param = row["parameter"].strip()
            feature = row["feature"].strip()
            if feature not in FEATURES_BY_NAME:
                raise ValueError(f"deviation_causes.csv: unknown feature {feature!r}")
            rows.append(
                CauseRule(
                    feature=feature,
                    z_sign=1 if row["z_sign"].strip() == "+" else -1,
                    level=None if level in ("", "ALL") else AmputationLevel(level),
                    parameter=Parameter(param) if param else None,
                    fix_sign=(1 if row["fix_sign"].strip() == "+" else -1) if param else 0,
                    cause=row["cause"].strip(),
                    table_row=row["table_row"].strip(),
                    evidence=row["evidence"].strip(),
                    source=row["source"].strip(),
                )
            )
    return tuple(rows)
