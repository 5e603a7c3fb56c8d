"""Textbook gait deviations with the features that reveal them and the accepted corrections.

Each case starts from prosthesis-user norms for every catalog feature (all sensors present) and sets
the features the textbook names to clearly abnormal values. `accepted` is the set of (parameter,
sign) fixes the cited source gives; the opposite of each is forbidden. Multiple fixes per deviation
are normal (clinical-evidence.md 0.10 and 7.6): score against the set, penalise only the opposite.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.catalog import FEATURES, AmputationLevel, Parameter

P = Parameter


@dataclass(frozen=True)
class Case:
    name: str
    level: AmputationLevel
    deviations: dict[str, float]
    accepted: frozenset[tuple[Parameter, int]]
    source: str

    def features(self) -> dict[str, float]:
        base = {f.name: f.normative[self.level].mean for f in FEATURES}
        base.update(self.deviations)
        return base


TT, TF = AmputationLevel.TRANSTIBIAL, AmputationLevel.TRANSFEMORAL

CASES: tuple[Case, ...] = (
    Case("excessive toe-out", TT, {"foot_progression_angle_prosthetic_deg": 22.0, "knee_frontal_shift_late_stance_mm": -8.0},
         frozenset({(P.FOOT_ROTATION, -1)}), "Table A T9 (Fridman 2003; Berger, Atlas ch.14)"),
    Case("toe-in", TT, {"foot_progression_angle_prosthetic_deg": -6.0, "knee_frontal_shift_late_stance_mm": 6.0},
         frozenset({(P.FOOT_ROTATION, +1)}), "Table A T10 (ProGait: mirror the sound leg)"),
    Case("prosthesis too short (TF)", TF, {"trunk_lateral_lean_deg": 11.0, "pelvic_obliquity_range_deg": 13.0, "hip_hike_prosthetic_swing_deg": -3.0},
         frozenset({(P.PYLON_LENGTH, +1), (P.SOCKET_ADDUCTION, +1), (P.FOOT_MEDIAL_SHIFT, +1)}), "Table B F3/F9 (ProGait 1_4_2)"),
    Case("prosthesis too short (TT)", TT, {"trunk_lateral_lean_deg": 8.0, "pelvic_obliquity_range_deg": 12.5, "hip_hike_prosthetic_swing_deg": -3.0},
         frozenset({(P.PYLON_LENGTH, +1), (P.SOCKET_ADDUCTION, +1), (P.FOOT_MEDIAL_SHIFT, +1)}), "Table B F3/F9"),
    Case("prosthesis too long", TT, {"hip_hike_prosthetic_swing_deg": 5.0, "circumduction_prosthetic_m": 0.08, "step_width_m": 0.16, "pelvic_obliquity_range_deg": 12.0},
         frozenset({(P.PYLON_LENGTH, -1), (P.HEEL_HEIGHT, -1)}), "Table B F6/F7/F8 (Kirtley)"),
    Case("excessive knee flexion at loading", TT, {"knee_flexion_loading_prosthetic_deg": 22.0, "socket_sagittal_moment_early_stance_nm_per_kg": 0.55},
         frozenset({(P.SOCKET_FLEXION, -1), (P.HEEL_HEIGHT, +1), (P.FOOT_ANTERIOR_SHIFT, +1)}), "Table A T1 (Kirtley; Ottobock F23; Fillauer K2)"),
    Case("knee hyperextension at loading", TT, {"knee_flexion_loading_prosthetic_deg": -2.0, "socket_sagittal_moment_early_stance_nm_per_kg": -0.05, "heel_off_prosthetic_pct_stance": 80.0},
         frozenset({(P.HEEL_HEIGHT, -1), (P.FOOT_ANTERIOR_SHIFT, -1), (P.SOCKET_FLEXION, +1)}), "Table A T2 (Ossur Pro-Flex IFU; Ottobock F23)"),
    Case("early heel rise / drop-off", TT, {"heel_off_prosthetic_pct_stance": 52.0, "vgrf_loading_peak_sound_bw": 1.32, "socket_sagittal_moment_late_stance_nm_per_kg": -0.3},
         frozenset({(P.FOOT_ANTERIOR_SHIFT, +1), (P.HEEL_HEIGHT, +1)}), "Table A T3 (Kirtley; Fillauer K2; Klodd 2010)"),
    Case("lateral thrust", TT, {"socket_coronal_moment_early_stance_nm_per_kg": 0.58, "socket_coronal_moment_late_stance_nm_per_kg": 0.50, "knee_frontal_shift_early_stance_mm": 9.0, "step_width_m": 0.08},
         frozenset({(P.FOOT_MEDIAL_SHIFT, -1), (P.SOCKET_ADDUCTION, +1)}), "Table A T5 (BK gait text; Kirtley)"),
    Case("medial thrust, first half of stance", TT, {"socket_coronal_moment_early_stance_nm_per_kg": 0.05, "socket_coronal_moment_late_stance_nm_per_kg": 0.02, "knee_frontal_shift_early_stance_mm": -9.0},
         frozenset({(P.FOOT_MEDIAL_SHIFT, +1), (P.SOCKET_ADDUCTION, -1)}), "Table A T6 (Ottobock 1C50/1C68/F23 IFUs)"),
    Case("medial knee, second half of stance", TT, {"knee_frontal_shift_late_stance_mm": -10.0, "foot_progression_angle_prosthetic_deg": 17.0, "socket_coronal_moment_late_stance_nm_per_kg": 0.16},
         frozenset({(P.FOOT_ROTATION, -1)}), "Table A T6 (Ottobock IFUs: reduce foot external rotation)"),
    Case("lateral trunk lean (TF)", TF, {"trunk_lateral_lean_deg": 12.0, "pelvic_obliquity_range_deg": 12.0},
         frozenset({(P.PYLON_LENGTH, +1), (P.SOCKET_ADDUCTION, +1), (P.FOOT_MEDIAL_SHIFT, +1)}), "Table B F3"),
    Case("abducted gait (TF)", TF, {"step_width_m": 0.25, "socket_coronal_moment_early_stance_nm_per_kg": 0.5, "socket_coronal_moment_late_stance_nm_per_kg": 0.45},
         frozenset({(P.PYLON_LENGTH, -1), (P.SOCKET_ADDUCTION, +1), (P.FOOT_MEDIAL_SHIFT, +1)}), "Table B F4; Table A T7"),
    Case("circumduction (TF)", TF, {"circumduction_prosthetic_m": 0.10, "hip_hike_prosthetic_swing_deg": 4.0},
         frozenset({(P.PYLON_LENGTH, -1), (P.HEEL_HEIGHT, -1)}), "Table B F6"),
    Case("vaulting / hip hiking (TF)", TF, {"hip_hike_prosthetic_swing_deg": 6.0, "circumduction_prosthetic_m": 0.07, "pelvic_obliquity_range_deg": 12.0},
         frozenset({(P.PYLON_LENGTH, -1), (P.HEEL_HEIGHT, -1)}), "Table B F7/F8"),
    Case("insufficient swing knee flexion (TF)", TF, {"knee_flexion_swing_prosthetic_deg": 36.0, "socket_sagittal_moment_early_stance_nm_per_kg": 0.05},
         frozenset({(P.SOCKET_FLEXION, +1), (P.FOOT_ANTERIOR_SHIFT, -1)}), "Table B F2 (ProGait 1_4_1)"),
)
