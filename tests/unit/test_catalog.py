from __future__ import annotations

import re

from service import catalog as c

DESIGN_FEATURES = """walking_speed_m_per_s cadence_steps_per_min step_length_prosthetic_m step_length_sound_m
step_length_asymmetry_pct stance_time_prosthetic_s stance_time_sound_s stance_time_asymmetry_pct step_width_m
trunk_lateral_lean_deg pelvic_obliquity_range_deg hip_hike_prosthetic_swing_deg circumduction_prosthetic_m
foot_progression_angle_prosthetic_deg foot_progression_angle_sound_deg knee_flexion_loading_prosthetic_deg
knee_flexion_swing_prosthetic_deg heel_off_prosthetic_pct_stance vgrf_loading_peak_prosthetic_bw
vgrf_loading_peak_sound_bw vgrf_push_off_peak_prosthetic_bw knee_adduction_moment_sound_nm_per_kg
socket_sagittal_moment_early_stance_nm_per_kg socket_sagittal_moment_late_stance_nm_per_kg
socket_coronal_moment_early_stance_nm_per_kg socket_coronal_moment_late_stance_nm_per_kg
knee_frontal_shift_early_stance_mm knee_frontal_shift_late_stance_mm pylon_axial_force_peak_bw""".split()

UNIT_SUFFIX = {"m/s": "_m_per_s", "steps/min": "_steps_per_min", "m": "_m", "mm": "_mm", "s": "_s", "deg": "_deg", "bw": "_bw", "N*m/kg": "_nm_per_kg"}


def test_every_design_feature_is_in_the_catalog() -> None:
    assert set(DESIGN_FEATURES) <= set(c.FEATURE_NAMES)
    assert len(set(c.FEATURE_NAMES)) == len(c.FEATURE_NAMES)


def test_units_are_in_feature_names() -> None:
    for f in c.FEATURES:
        if f.unit == "%":
            assert re.search(r"_pct(_stance)?$", f.name), f.name
        else:
            assert f.name.endswith(UNIT_SUFFIX[f.unit]), f.name


def test_ranges_and_norms_are_consistent() -> None:
    for f in c.FEATURES:
        assert f.min_value < f.max_value, f.name
        assert f.citation, f.name
        assert f.sources, f.name
        for lvl, n in f.normative.items():
            assert n.sd > 0, (f.name, lvl)
            # The normative band must lie well inside the valid range.
            assert f.min_value <= n.mean - 2 * n.sd or f.min_value == 0.0, (f.name, lvl)
            assert n.mean + 2 * n.sd <= f.max_value, (f.name, lvl)


def test_parameters_match_design_signs_and_limits() -> None:
    names = [p.parameter.value for p in c.PARAMETERS]
    assert names == ["FOOT_ROTATION", "SOCKET_FLEXION", "SOCKET_ADDUCTION", "HEEL_HEIGHT", "FOOT_ANTERIOR_SHIFT", "FOOT_MEDIAL_SHIFT", "PYLON_LENGTH"]
    units = {p.parameter.value: p.unit for p in c.PARAMETERS}
    assert units["FOOT_ROTATION"] == units["SOCKET_FLEXION"] == units["SOCKET_ADDUCTION"] == "deg"
    assert {units[n] for n in names[3:]} == {"mm"}
    assert "toe-out" in c.PARAMETERS_BY_NAME["FOOT_ROTATION"].plus_means
    assert "inset" in c.PARAMETERS_BY_NAME["FOOT_MEDIAL_SHIFT"].plus_means
    for p in c.PARAMETERS:
        assert 0 < p.min_change < p.max_step
        assert (p.min_change, p.max_step) == ((2.0, 6.0) if p.unit == "deg" else (5.0, 10.0))


def test_effect_table_rows_are_cited_and_known() -> None:
    rows = c.effects()
    assert len(rows) >= 30
    for e in rows:
        assert e.feature in c.FEATURES_BY_NAME
        assert e.citation and e.evidence in {"S", "I"}
        assert e.shape in {"linear", "symmetric", "positive", "negative"}
        assert 0 <= e.compensation_cv <= 1.5
    # every parameter moves at least two features, one of them measurable without a pylon
    for p in c.Parameter:
        mine = [e for e in rows if e.parameter is p]
        assert len(mine) >= 2, p
        assert any(c.SensorKind.INSTRUMENTED_PYLON not in c.FEATURES_BY_NAME[e.feature].sources or len(c.FEATURES_BY_NAME[e.feature].sources) > 1 for e in mine), p


def test_sagittal_leaks_into_coronal_but_not_the_reverse() -> None:
    """Sci Rep 13:458 (2023): coronal SRM respond to all planes, sagittal SRM only to sagittal changes."""
    coronal_params = {c.Parameter.SOCKET_ADDUCTION, c.Parameter.FOOT_MEDIAL_SHIFT}
    for e in c.effects():
        if e.parameter in coronal_params:
            assert not e.feature.startswith("socket_sagittal"), e


def test_toe_out_gain_is_below_one() -> None:
    """Fridman 2003: foot progression follows foot rotation with a gain well below 1."""
    (row,) = [e for e in c.effects() if e.parameter is c.Parameter.FOOT_ROTATION and e.feature == "foot_progression_angle_prosthetic_deg"]
    assert 0 < row.slope < 1


def test_unit_conversion_table() -> None:
    deg = {u.symbol: u for u in c.accepted_units("deg")}
    assert abs(deg["rad"].factor * 3.141592653589793 - 180.0) < 1e-9
    nm = {u.symbol: u for u in c.accepted_units("N*m/kg")}
    assert nm["N*m"].body_mass == "divide"
