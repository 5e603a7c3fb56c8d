"""A prosthetist's observational checklist -> approximate catalog feature values (LOW precision).

Input: ``Mapping[str, str | bool]``. Items (absent = not assessed, nothing emitted; False/"none" =
assessed and normal, emits the normal value so the model knows it was looked at):

- ``lateral_trunk_lean``: "none" | "mild" | "marked" toward the prosthesis (or "toward_sound_mild"/
  "toward_sound_marked")
- booleans: ``excessive_toe_out``, ``toe_in``, ``vaulting``, ``hip_hiking``, ``circumduction``,
  ``knee_hyperextension``, ``excessive_knee_flexion_loading``, ``early_heel_rise``,
  ``delayed_heel_rise``, ``lateral_thrust``, ``medial_thrust``, ``wide_base``, ``narrow_base``,
  ``prosthesis_short``, ``prosthesis_long``, ``short_prosthetic_step``

Values follow clinical-evidence.md: [S] = stated there, [K] = background knowledge, unverified.
"""

from __future__ import annotations

from collections.abc import Mapping

from service.sensors.base import ExtractionResult, FeatureCollector, Precision, SensorKind, Side, coerce_side
from service.sensors.errors import InvalidValueError, UnknownChannelError

# Trunk lean grades: Table D "<6 deg none; 6-10 mild; >10 significant" (S3D trunk_stability, weak [S]):
# representative values inside each band.
TRUNK_LEAN_DEG = {"none": 2.0, "mild": 8.0, "marked": 13.0, "toward_sound_mild": -8.0, "toward_sound_marked": -13.0}
# Healthy FPA ~7.5 deg toe-out, usual 5-10 (Table D, Morton/JBJS 1932 [S]); "excessive" is well above
# the 5-13 band, toe-in below zero [I].
FPA_NORMAL_DEG, FPA_TOE_OUT_DEG, FPA_TOE_IN_DEG = 7.5, 20.0, -3.0
# Loading-response knee flexion normal 15-20 deg (Table A T1 / Table D, [S]); hyperextension < 0 (T2).
KNEE_LOADING_NORMAL_DEG, KNEE_LOADING_EXCESSIVE_DEG, KNEE_HYPEREXTENSION_DEG = 17.0, 27.0, -3.0
# Walking base 5-10 cm normal; wide > 10 cm, narrow < 5 cm (Tables A T7/T8, D; brainscape [S weak]).
STEP_WIDTH_NORMAL_M, STEP_WIDTH_WIDE_M, STEP_WIDTH_NARROW_M = 0.075, 0.14, 0.03
# Heel-off ~ 60-65 % of stance in typical gait; drop-off earlier, "walking up a hill" later [K].
HEEL_OFF_NORMAL_PCT, HEEL_OFF_EARLY_PCT, HEEL_OFF_LATE_PCT = 62.0, 45.0, 78.0
# Swing compensations for a long prosthesis (Table B F6-F8): sizes are [K] estimates.
HIP_HIKE_NORMAL_DEG, HIP_HIKE_DEG = 1.0, 6.0
CIRCUMDUCTION_NORMAL_M, CIRCUMDUCTION_M = 0.01, 0.07
# Knee thrust in early stance (Table A T5/T6): +- ~10 mm [K].
KNEE_SHIFT_NORMAL_MM, KNEE_THRUST_MM = 0.0, 10.0
# Short prosthetic step (T15/F13): asymmetry of ~ -15 % [K].
STEP_ASYM_NORMAL_PCT, STEP_ASYM_SHORT_PCT = 0.0, -15.0

BOOLEAN_ITEMS = (
    "excessive_toe_out", "toe_in", "vaulting", "hip_hiking", "circumduction", "knee_hyperextension",
    "excessive_knee_flexion_loading", "early_heel_rise", "delayed_heel_rise", "lateral_thrust",
    "medial_thrust", "wide_base", "narrow_base", "prosthesis_short", "prosthesis_long", "short_prosthetic_step",
)
ITEMS = ("lateral_trunk_lean", *BOOLEAN_ITEMS)


def _flag(obs: Mapping[str, str | bool], key: str) -> bool | None:
    if key not in obs:
        return None
    v = obs[key]
    if isinstance(v, bool):
        return v
    text = str(v).strip().lower()
    if text in ("true", "yes", "1", "present"):
        return True
    if text in ("false", "no", "0", "none", "absent"):
        return False
    raise InvalidValueError(key, f"expected true/false, got {v!r}")


def extract_observation(observations: Mapping[str, str | bool], prosthetic_side: Side | str) -> ExtractionResult:
    coerce_side(prosthetic_side)  # validated for a uniform API; values are already side-relative
    for key in observations:
        if key not in ITEMS:
            raise UnknownChannelError(key, f"unknown checklist item; expected some of {list(ITEMS)}")
    out = FeatureCollector(SensorKind.OBSERVATION)
    low = Precision.LOW

    def put(name: str, value: float, why: str) -> None:
        out.add(name, value, f"observation: {why}", 1, low)

    if "lateral_trunk_lean" in observations:
        grade = str(observations["lateral_trunk_lean"]).strip().lower()
        if grade not in TRUNK_LEAN_DEG:
            raise InvalidValueError("lateral_trunk_lean", f"expected one of {sorted(TRUNK_LEAN_DEG)}")
        put("trunk_lateral_lean_deg", TRUNK_LEAN_DEG[grade], f"lateral trunk lean {grade}")
    f = {k: _flag(observations, k) for k in BOOLEAN_ITEMS}

    def pick(name: str, normal: float, *options: tuple[str, float]) -> None:
        hits = [(k, v) for k, v in options if f[k]]
        if len(hits) > 1:
            raise InvalidValueError(hits[0][0], f"contradicts {hits[1][0]}")
        if hits:
            put(name, hits[0][1], hits[0][0])
        elif any(f[k] is False for k, _ in options):
            put(name, normal, "assessed normal")

    pick("foot_progression_angle_prosthetic_deg", FPA_NORMAL_DEG, ("excessive_toe_out", FPA_TOE_OUT_DEG), ("toe_in", FPA_TOE_IN_DEG))
    if "foot_progression_angle_prosthetic_deg" in out.features:
        put("foot_progression_angle_sound_deg", FPA_NORMAL_DEG, "sound side assumed normal")
    pick("knee_flexion_loading_prosthetic_deg", KNEE_LOADING_NORMAL_DEG,
         ("excessive_knee_flexion_loading", KNEE_LOADING_EXCESSIVE_DEG), ("knee_hyperextension", KNEE_HYPEREXTENSION_DEG))
    pick("heel_off_prosthetic_pct_stance", HEEL_OFF_NORMAL_PCT, ("early_heel_rise", HEEL_OFF_EARLY_PCT), ("delayed_heel_rise", HEEL_OFF_LATE_PCT))
    pick("step_width_m", STEP_WIDTH_NORMAL_M, ("wide_base", STEP_WIDTH_WIDE_M), ("narrow_base", STEP_WIDTH_NARROW_M))
    pick("knee_frontal_shift_early_stance_mm", KNEE_SHIFT_NORMAL_MM, ("lateral_thrust", KNEE_THRUST_MM), ("medial_thrust", -KNEE_THRUST_MM))
    pick("step_length_asymmetry_pct", STEP_ASYM_NORMAL_PCT, ("short_prosthetic_step", STEP_ASYM_SHORT_PCT))
    if f["prosthesis_short"] and f["prosthesis_long"]:
        raise InvalidValueError("prosthesis_short", "contradicts prosthesis_long")
    # Hip hike / vaulting / circumduction, and their usual cause "prosthesis too long" (F6-F8).
    hike = f["vaulting"] or f["hip_hiking"] or f["prosthesis_long"]
    if hike:
        put("hip_hike_prosthetic_swing_deg", HIP_HIKE_DEG, "vaulting / hip hiking / prosthesis long")
    elif f["vaulting"] is False or f["hip_hiking"] is False:
        put("hip_hike_prosthetic_swing_deg", HIP_HIKE_NORMAL_DEG, "assessed normal")
    if f["circumduction"] or f["prosthesis_long"]:
        put("circumduction_prosthetic_m", CIRCUMDUCTION_M, "circumduction / prosthesis long")
    elif f["circumduction"] is False:
        put("circumduction_prosthetic_m", CIRCUMDUCTION_NORMAL_M, "assessed normal")
    # Too short: lean toward the prosthesis in stance (F3, F9), unless the lean was graded directly.
    if f["prosthesis_short"] and "trunk_lateral_lean_deg" not in out.features:
        put("trunk_lateral_lean_deg", TRUNK_LEAN_DEG["mild"], "prosthesis short -> lean toward prosthesis")
    out.warn("observational estimates: LOW precision (POGS inter-observer agreement is poor, Hillman 2010)")
    return out.result(0, 0)


__all__ = ["ITEMS", "extract_observation"]
