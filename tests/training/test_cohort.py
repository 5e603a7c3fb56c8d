"""Simulator sanity: determinism, labels, sensor masks, effects from the CSV."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from service import catalog
from service.catalog import AmputationLevel, SensorKind
from training import cohort, dataset


def test_deterministic_given_seed() -> None:
    a = cohort.simulate(cohort.CohortConfig(n_patients=25, seed=3))
    b = cohort.simulate(cohort.CohortConfig(n_patients=25, seed=3))
    c = cohort.simulate(cohort.CohortConfig(n_patients=25, seed=4))
    assert dataset.fingerprint(a) == dataset.fingerprint(b)
    assert dataset.fingerprint(a) != dataset.fingerprint(c)


def test_output_follows_schema_and_ranges() -> None:
    df = cohort.simulate(cohort.CohortConfig(n_patients=40, seed=5))
    validated = dataset.validate(df.copy())  # raises on any schema problem
    assert list(validated.columns) == list(dataset.SCHEMA_COLUMNS)
    for spec in catalog.FEATURES:
        v = df[spec.name].dropna()
        assert ((v >= spec.min_value) & (v <= spec.max_value)).all(), spec.name
    # Several assessments per patient (some also with a reference walk), sharing the label (so
    # evaluation must group by patient).
    alone = ~df["assessment_id"].str.endswith(cohort.WITH_REFERENCE_SUFFIX)
    assert df[alone].groupby("patient_id").size().min() == cohort.N_ASSESSMENTS_DEFAULT
    corr = df[list(dataset.CORRECTION_COLUMNS)]
    assert (corr.groupby(df["patient_id"]).nunique() == 1).all().all()


def test_misalignment_sparse_and_within_the_clinical_range() -> None:
    rng = np.random.default_rng(0)
    xs = np.array([cohort.draw_misalignment(rng) for _ in range(4000)])
    mins = np.array([p.min_change for p in catalog.PARAMETERS])
    ranges = np.array([p.study_range for p in catalog.PARAMETERS])
    clinical = np.array([p.clinical_range for p in catalog.PARAMETERS])
    big = np.abs(xs) >= mins
    assert (np.abs(xs) <= clinical).all()
    # Most within the study grid, about P_BEYOND_STUDY_RANGE of the misaligned ones beyond it.
    beyond = (np.abs(xs) > ranges).sum() / big.sum()
    assert abs(beyond - cohort.P_BEYOND_STUDY_RANGE) < 0.05
    assert big.sum(axis=1).max() <= 3
    well = ~big.any(axis=1)
    assert 0.2 < well.mean() < 0.3  # about 25% well aligned
    # Inside the acceptable band, residual offsets stay below min_change (label: no change).
    assert (np.abs(xs[~big]) < mins.max()).all()


def test_label_is_minus_misalignment() -> None:
    df = cohort.simulate(cohort.CohortConfig(n_patients=1, n_assessments=1, seed=9))
    p = cohort._draw_patient(np.random.default_rng(9), 0)  # the simulator's first draw for that seed
    got = df[list(dataset.CORRECTION_COLUMNS)].to_numpy()[0]
    np.testing.assert_allclose(got, -p.x)


def _mean_feature(feature: str, param: str, value: float, level: AmputationLevel, n: int = 400) -> float:
    rng = np.random.default_rng(42)
    vals = []
    for i in range(n):
        p = cohort._draw_patient(rng, i)
        p.level = level
        p.x = np.zeros(len(catalog.PARAMETERS))
        p.x[catalog.PARAMETER_NAMES.index(param)] = value
        vals.append(cohort._true_features(p, p.speed)[feature])
    return float(np.mean(vals))


def test_external_foot_rotation_raises_toe_out() -> None:
    f = "foot_progression_angle_prosthetic_deg"
    plus = _mean_feature(f, "FOOT_ROTATION", 8.0, AmputationLevel.TRANSTIBIAL)
    zero = _mean_feature(f, "FOOT_ROTATION", 0.0, AmputationLevel.TRANSTIBIAL)
    assert plus - zero > 2.0  # gain about 0.6 (Fridman 2003): well below 1 but clearly positive
    assert plus - zero < 8.0


@pytest.mark.parametrize(
    ("feature", "param", "value", "sign"),
    [
        ("socket_coronal_moment_early_stance_nm_per_kg", "SOCKET_ADDUCTION", 6.0, -1),
        ("hip_hike_prosthetic_swing_deg", "PYLON_LENGTH", 15.0, +1),
        ("heel_off_prosthetic_pct_stance", "FOOT_ANTERIOR_SHIFT", 10.0, +1),
    ],
)
def test_effect_directions_follow_csv(feature: str, param: str, value: float, sign: int) -> None:
    d = _mean_feature(feature, param, value, AmputationLevel.TRANSTIBIAL) - _mean_feature(
        feature, param, 0.0, AmputationLevel.TRANSTIBIAL
    )
    assert np.sign(d) == sign


def test_sensor_masks_give_nan_for_unmeasurable_features() -> None:
    df = cohort.simulate(cohort.CohortConfig(n_patients=60, seed=2))
    subsets = cohort.sensor_subset_of(df)
    for name, kinds in cohort.SENSOR_SUBSETS.items():
        rows = df[subsets == name]
        if rows.empty:
            continue
        mask = catalog.feature_sensor_mask(kinds)
        for spec, ok in zip(catalog.FEATURES, mask, strict=True):
            if not ok:
                assert rows[spec.name].isna().all(), (name, spec.name)
    video = df[subsets == "video_only"]
    assert video["socket_coronal_moment_early_stance_nm_per_kg"].isna().all()  # video gives no forces
    imu = df[subsets == "imu_only"]
    assert imu["socket_sagittal_moment_early_stance_nm_per_kg"].isna().all()  # IMU: no socket moments
    full = df[subsets == "all_sensors"]
    assert full["socket_coronal_moment_early_stance_nm_per_kg"].notna().mean() > 0.9


def test_asymmetry_derived_from_sides() -> None:
    df = cohort.simulate(cohort.CohortConfig(n_patients=30, seed=8))
    p, s = df["step_length_prosthetic_m"], df["step_length_sound_m"]
    both = p.notna() & s.notna() & df["step_length_asymmetry_pct"].notna()
    expect = 100 * (p - s) / ((p + s) / 2)
    np.testing.assert_allclose(df.loc[both, "step_length_asymmetry_pct"], expect[both], rtol=1e-9)
    assert df.loc[p.isna() | s.isna(), "step_length_asymmetry_pct"].isna().all()


def test_noise_table_covers_every_catalog_source() -> None:
    assert set(catalog.sensor_errors()) == set(SensorKind)
    for spec in catalog.FEATURES:
        for kind in spec.sources:
            for level in AmputationLevel:
                sd = catalog.noise_sd(kind, spec, level)
                assert sd > 0 and not math.isnan(sd), (kind, spec.name)
                # Single-walk ICCs in the range the literature reports for gait features (0.4-0.95).
                assert 0.4 <= catalog.implied_icc(kind, spec, level) <= 0.96, (kind, spec.name, level)


def test_compensators_show_one_deviation_per_misaligned_parameter() -> None:
    rng = np.random.default_rng(3)
    damped = 0
    for _ in range(400):
        g = cohort.draw_gains(rng)
        rows = [i for i, e in enumerate(catalog.effects()) if catalog.FEATURES_BY_NAME[e.feature].group is not catalog.FeatureGroup.SOCKET_KINETIC]
        small = sum(g[i] <= cohort.COMPENSATED_GAIN * 1.5 for i in rows)
        damped += small > len(rows) / 2
    assert abs(damped / 400 - cohort.P_COMPENSATOR) < 0.08


def test_every_assessment_also_comes_with_a_reference_walk() -> None:
    df = cohort.simulate(cohort.CohortConfig(n_patients=30, seed=11))
    twin = df["assessment_id"].str.endswith(cohort.WITH_REFERENCE_SUFFIX)
    assert 0.3 < twin.sum() / (~twin).sum() < 0.7  # P_WITH_REFERENCE of them
    withref = df[twin].reset_index(drop=True)
    alone = df.set_index("assessment_id").loc[withref["assessment_id"].str.removesuffix(cohort.WITH_REFERENCE_SUFFIX)]
    alone = alone.reset_index()
    assert (withref["assessment_id"] == alone["assessment_id"] + cohort.WITH_REFERENCE_SUFFIX).all()
    # The same walk: features and label identical; only the reference columns differ.
    cols = [*catalog.FEATURE_NAMES, *dataset.CORRECTION_COLUMNS]
    pd.testing.assert_frame_equal(alone[cols], withref[cols])
    assert df[~twin][list(dataset.REFERENCE_COLUMNS)].isna().all().all()
    ref = withref[list(dataset.REFERENCE_COLUMNS)].to_numpy(dtype=float)
    cur = withref[list(catalog.FEATURE_NAMES)].to_numpy(dtype=float)
    # The reference is measured with the same sensors (same missing pattern up to dropouts) ...
    assert np.mean(np.isnan(ref) == np.isnan(cur)) > 0.9
    # ... and is a different walk of the same patient: close to, but not equal to, the current one.
    both = ~np.isnan(ref) & ~np.isnan(cur)
    assert not np.allclose(ref[both], cur[both])
    speed = catalog.FEATURE_INDEX["walking_speed_m_per_s"]
    assert np.nanmean(np.abs(ref[:, speed] - cur[:, speed])) < 0.2


def test_reference_walks_do_not_change_the_assessments() -> None:
    """Reference walks use their own random stream: adding them changed no assessment of a seed."""
    df = cohort.simulate(cohort.CohortConfig(n_patients=3, n_assessments=1, seed=9))
    p = cohort._draw_patient(np.random.default_rng(9), 0)
    np.testing.assert_allclose(df[list(dataset.CORRECTION_COLUMNS)].to_numpy()[0], -p.x)


def test_change_since_reference_reveals_the_misalignment_better_than_the_walk_alone() -> None:
    """The point of the reference walk: the patient's own baseline cancels between-patient spread."""
    df = cohort.simulate(cohort.CohortConfig(n_patients=400, n_assessments=1, seed=12))
    df = df[df["assessment_id"].str.endswith(cohort.WITH_REFERENCE_SUFFIX)]
    x = dataset.model_inputs(df)
    # Features whose between-patient spread is large next to the effect (push-off peak vs heel height,
    # stance asymmetry vs length; alignment_effects.csv). Measured on this seed with the ICC-sized sensor
    # errors (an asymmetry carries its own, smaller error): stance asymmetry 0.16 -> 0.24.
    for f, param in (
        ("vgrf_push_off_peak_prosthetic_bw", "HEEL_HEIGHT"),
        ("stance_time_asymmetry_pct", "PYLON_LENGTH"),
    ):
        y = df[f"correction_{param}"].to_numpy()
        raw = x[:, catalog.MODEL_INPUT_COLUMNS.index(f)]
        change = x[:, catalog.MODEL_INPUT_COLUMNS.index(catalog.REFERENCE_CHANGE_PREFIX + f)]
        ok = ~np.isnan(raw) & ~np.isnan(change)
        r_raw = abs(np.corrcoef(raw[ok], y[ok])[0, 1])
        r_change = abs(np.corrcoef(change[ok], y[ok])[0, 1])
        assert r_change > r_raw + 0.05, (f, r_raw, r_change)
