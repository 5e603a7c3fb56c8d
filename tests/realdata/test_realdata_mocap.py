"""C3D (BTS, markers + force plates) and gaitkit JSON (healthy vs stroke) on the shared data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from service.sensors import Side, extract_c3d, extract_gaitkit
from service.sensors.mocap import detect_events, lab_frame
from service.sensors.mocap_angles import load_gaitkit
from tests.realdata.conftest import need


def _bts(data_dir: Path) -> Path:
    path = need(data_dir / "ezc3d-bts-gait-c3d") / "BTS.c3d"
    if importlib.util.find_spec("ezc3d") is None:
        pytest.skip("ezc3d not installed (install .[sensors])")
    return path


def test_bts_c3d_grf_peaks_plausible(data_dir: Path) -> None:
    path = _bts(data_dir)
    res = extract_c3d(path, Side.LEFT)  # no body mass in the file: estimated, with a warning
    f = res.features
    print({k: round(v, 3) for k, v in f.items()}, res.warnings)
    assert any("estimated" in w for w in res.warnings)
    for name in ("vgrf_loading_peak_prosthetic_bw", "vgrf_loading_peak_sound_bw", "vgrf_push_off_peak_prosthetic_bw"):
        assert 1.0 <= f[name] <= 1.4, (name, f[name])
        assert res.provenance[name].source == "FORCE_PLATE"
    assert 0.5 <= f["stance_time_prosthetic_s"] <= 0.8
    assert 0.4 <= f["step_length_prosthetic_m"] <= 0.9 and 0.4 <= f["step_length_sound_m"] <= 0.9
    assert 0.03 <= f["step_width_m"] <= 0.2
    assert 0.8 <= f["walking_speed_m_per_s"] <= 1.8
    # Bytes in, same answer; side swap flips asymmetries.
    same = extract_c3d(path.read_bytes(), Side.LEFT).features
    assert same["vgrf_loading_peak_prosthetic_bw"] == pytest.approx(f["vgrf_loading_peak_prosthetic_bw"])
    right = extract_c3d(path, Side.RIGHT).features
    assert right["step_length_asymmetry_pct"] == pytest.approx(-f["step_length_asymmetry_pct"])
    # With a stated body mass the estimate warning disappears.
    assert not extract_c3d(path, Side.LEFT, body_mass_kg=60.0).warnings


def test_gaitkit_marker_events_vs_annotations(data_dir: Path) -> None:
    d = need(data_dir / "gaitkit-examples")
    data = load_gaitkit(d / "example_healthy.json")
    from service.sensors.mocap_angles import LANDMARKS

    fr = data["angle_frames"]
    m = {f"{s}_{lm}": np.array([x["landmark_positions"][f"{s}_{lm}"] for x in fr], float) / 1000 for s in ("left", "right") for lm in LANDMARKS if lm != "shoulder"}
    ev, _ = detect_events(m, float(data["fps"]), lab_frame(m))
    gt = data["ground_truth"]["hs_frames"]
    errs = []
    for side in Side:
        det = np.array(ev.heel_strike[side])
        for h in gt[side.prefix]:
            if det.size and np.min(np.abs(det - h)) < 20:
                errs.append(float(np.min(np.abs(det - h))) / float(data["fps"]) * 1000)
    print(f"gaitkit healthy: {len(errs)} annotated heel strikes matched, median |err| {np.median(errs):.1f} ms")
    assert len(errs) >= 3 and np.median(errs) <= 40


def test_gaitkit_stroke_more_asymmetric_than_healthy(data_dir: Path) -> None:
    d = need(data_dir / "gaitkit-examples")
    healthy = extract_gaitkit(d / "example_healthy.json", Side.LEFT).features
    stroke = extract_gaitkit(d / "example_stroke.json", Side.LEFT).features
    print("healthy", {k: round(v, 2) for k, v in healthy.items()})
    print("stroke", {k: round(v, 2) for k, v in stroke.items()})
    assert abs(stroke["step_length_asymmetry_pct"]) > abs(healthy["step_length_asymmetry_pct"]) + 5
    assert abs(stroke["stance_time_asymmetry_pct"]) > abs(healthy["stance_time_asymmetry_pct"])
    assert stroke["walking_speed_m_per_s"] < healthy["walking_speed_m_per_s"]
    swapped = extract_gaitkit(d / "example_stroke.json", Side.RIGHT).features
    for name in ("step_length_asymmetry_pct", "stance_time_asymmetry_pct"):
        assert swapped[name] == pytest.approx(-stroke[name])
