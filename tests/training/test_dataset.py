"""The training-data schema: the sample file loads, bad files are rejected with clear messages."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training import dataset

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "training" / "clinic_sample.csv"


def _raw() -> pd.DataFrame:
    return pd.read_csv(SAMPLE, dtype=str, keep_default_na=False, na_values=[""])


def _write(df: pd.DataFrame, tmp_path: Path, name: str = "bad.csv") -> Path:
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def test_sample_loads_as_clinic_data() -> None:
    ds = dataset.load(SAMPLE)
    assert ds.kind == "clinic"
    assert list(ds.frame.columns) == list(dataset.SCHEMA_COLUMNS)
    assert ds.frame["patient_id"].nunique() >= 20
    x = dataset.model_inputs(ds.frame)
    assert x.shape == (len(ds.frame), len(dataset.catalog.MODEL_INPUT_COLUMNS))
    # Rows whose correction was not accepted are not labels.
    assert len(dataset.training_rows(ds.frame)) == int((ds.frame["outcome_accepted"] != False).sum())  # noqa: E712


def test_parquet_round_trip(tmp_path: Path) -> None:
    ds = dataset.load(SAMPLE)
    p = tmp_path / "t.parquet"
    dataset.write_table(ds.frame, p)
    assert dataset.fingerprint(dataset.load(p).frame) == dataset.fingerprint(ds.frame)


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (lambda d: d.assign(shoe_size="42"), "unknown column 'shoe_size'"),
        (
            lambda d: d.rename(columns={"cadence_steps_per_min": "cadence_step_per_min"}),
            "did you mean 'cadence_steps_per_min'",
        ),
        (lambda d: d.drop(columns=["correction_PYLON_LENGTH"]), "missing required column(s): correction_PYLON_LENGTH"),
        (lambda d: d.assign(patient_id=["", *list(d.patient_id[1:])]), "'patient_id' is empty in row(s) 1"),
        (
            lambda d: d.assign(assessment_id=[d.assessment_id[1], *list(d.assessment_id[1:])]),
            "'assessment_id' is not unique",
        ),
        (lambda d: d.assign(amputation_level="KNEE"), "'amputation_level' has invalid value 'KNEE'"),
        (lambda d: d.assign(walking_speed_m_per_s="7.5"), "outside the valid range [0.05, 3] m/s"),
        (lambda d: d.assign(socket_coronal_moment_early_stance_nm_per_kg="fast"), "is not a number"),
        (lambda d: d.assign(body_mass_kg="400"), "'body_mass_kg' = 400 kg outside the valid range"),
        (lambda d: d.assign(k_level="2.5"), "'k_level' must be an integer"),
        (lambda d: d.assign(correction_FOOT_ROTATION=""), "write 0 when no change was applied"),
        (lambda d: d.assign(correction_PYLON_LENGTH="90"), "'correction_PYLON_LENGTH' = 90 mm outside the valid range"),
        (lambda d: d.assign(sensor_kinds="IMU;LIDAR"), "unknown kind 'LIDAR'"),
        (lambda d: d.assign(reference_step_width_m="2"), "'reference_step_width_m' = 2 m outside the valid range"),
        (lambda d: d.assign(outcome_accepted="maybe"), "'outcome_accepted' has invalid value 'maybe'"),
    ],
)
def test_validator_rejects_with_clear_message(tmp_path: Path, mutate, expect: str) -> None:  # type: ignore[no-untyped-def]
    path = _write(mutate(_raw()), tmp_path)
    with pytest.raises(dataset.SchemaError) as err:
        dataset.load(path)
    assert expect in str(err.value), str(err.value)
    assert "docs/data-schema.md" in str(err.value)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    bad = _raw().assign(walking_speed_m_per_s="9", amputation_level="X")
    with pytest.raises(dataset.SchemaError) as err:
        dataset.load(_write(bad, tmp_path))
    assert len(err.value.problems) >= 2


def test_unsupported_file_type(tmp_path: Path) -> None:
    p = tmp_path / "data.xlsx"
    p.write_text("x")
    with pytest.raises(dataset.SchemaError, match="unsupported file type"):
        dataset.load(p)


def test_level_must_be_constant_per_patient(tmp_path: Path) -> None:
    d = _raw()
    pid = d.patient_id[0]
    rows = d.index[d.patient_id == pid]
    d.loc[rows[0], "amputation_level"] = "TRANSTIBIAL"
    d.loc[rows[1], "amputation_level"] = "TRANSFEMORAL"
    with pytest.raises(dataset.SchemaError, match="more than one amputation_level"):
        dataset.load(_write(d, tmp_path))


def test_reference_columns_become_the_change_since_reference(tmp_path: Path) -> None:
    raw = _raw()
    raw["reference_cadence_steps_per_min"] = ""
    raw.loc[0, "reference_cadence_steps_per_min"] = "100"
    ds = dataset.load(_write(raw, tmp_path, "ref.csv"))
    x = dataset.model_inputs(ds.frame)
    cols = dataset.catalog.MODEL_INPUT_COLUMNS
    j = cols.index(dataset.catalog.REFERENCE_CHANGE_PREFIX + "cadence_steps_per_min")
    cad = float(ds.frame.loc[0, "cadence_steps_per_min"])
    assert x[0, j] == pytest.approx(cad - 100.0)
    assert pd.isna(x[1:, j]).all()
