"""Recorded fittings -> export-records -> fit --records -> export: the model card's real-record
section and GetModel's audit figure change, end to end on a tiny model.

The "real" fittings are simulated patients recorded through the service's own record validation and
store (SQLite), so the test needs no real patient and exercises every step a clinic's data takes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service import catalog
from service.catalog import AmputationLevel, Side
from service.domain import FeatureInput, PatientContextInput
from service.records.domain import AnswerInput, ChangeInput, OutcomeInput, RecordInput, WalkInput
from service.records.store import RecordStore
from service.records.validation import validate_record
from tests.training.conftest import TINY_CONFIG
from training import dataset, records, workflow
from training.__main__ import main as training_main
from training.export import write_artifact

N_FITTINGS = 12


def _num(v: object) -> float | None:
    return None if v is None or pd.isna(v) else float(v)  # type: ignore[arg-type]


def _record(fid: str, rows: pd.DataFrame) -> RecordInput:
    first = rows.iloc[0]
    patient = PatientContextInput(
        AmputationLevel(first["amputation_level"]),
        Side(first["prosthetic_side"]) if not pd.isna(first["prosthetic_side"]) else Side.LEFT,
        float(rows["body_mass_kg"].dropna().iloc[0]) if rows["body_mass_kg"].notna().any() else 75.0,
        k_level=int(first["k_level"]) if not pd.isna(first["k_level"]) else None,
        foot_type=str(first["foot_type"]) if not pd.isna(first["foot_type"]) else "",
    )
    walks = []
    last = len(rows) - 1
    for w, (_, r) in enumerate(rows.iterrows()):
        feats = tuple(FeatureInput(n, float(r[n])) for n in catalog.FEATURE_NAMES if _num(r[n]) is not None)
        applied = tuple(
            ChangeInput(p, float(r[f"correction_{p}"]))
            for p in catalog.PARAMETER_NAMES
            if float(r[f"correction_{p}"]) != 0.0 and w < last  # the fitting ends after its last walk
        )
        answer = AnswerInput("alignment", "0.0.1", "", "RECOMMENDED" if applied else "NO_CHANGE", applied[:1])
        walks.append(WalkInput(feats, answer, applied))
    return RecordInput(fid, f"SIMREC-{first['patient_id']}", "CLINIC-T", patient, tuple(walks), OutcomeInput("ACCEPTED", 4, 7.5))


@pytest.fixture(scope="module")
def store_url(tiny_run: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> str:
    work: Path = tiny_run["work"]  # type: ignore[assignment]
    cohort = dataset.load(work / "cohort.parquet").frame
    url = f"sqlite:///{tmp_path_factory.mktemp('records') / 'records.db'}"
    store = RecordStore.open(url)
    try:
        for i, (_pid, rows) in enumerate(cohort.groupby("patient_id", sort=True)):
            if i == N_FITTINGS:
                break
            store.record(validate_record(_record(f"F-{i:03d}", rows)))
    finally:
        store.close()
    return url


def test_export_records_writes_the_documented_schema(store_url: str, tmp_path: Path) -> None:
    out = tmp_path / "fittings.parquet"
    assert training_main(["export-records", store_url, str(out)]) == 0
    ds = dataset.load(out)
    assert ds.kind == "clinic"
    f = ds.frame
    assert list(f.columns) == [*dataset.SCHEMA_COLUMNS, *dataset.RECORD_COLUMNS]
    assert f["fitting_id"].nunique() == N_FITTINGS and f["patient_id"].str.startswith("CLINIC-T/").all()
    assert (f["walk_index"] >= 0).all() and f["outcome_accepted"].all() and (f["prosthetist_rating"] == 4).all()
    # The applied change after each walk is its label.
    changed = f[[*dataset.CORRECTION_COLUMNS]].abs().sum(axis=1) > 0
    assert changed.any() and (~changed).any()
    assert (f.loc[changed, "answer_kind"] == "RECOMMENDED").all()


def test_a_recorded_fitting_changes_the_model_cards_real_record_section(
    tiny_run: dict[str, object], store_url: str, tmp_path: Path
) -> None:
    work: Path = tiny_run["work"]  # type: ignore[assignment]
    before = (tiny_run["artifact"] / "model_card.md").read_text()  # type: ignore[operator]
    assert "## Real fittings (RecordFitting)\nNone:" in before

    w2 = tmp_path / "work"
    w2.mkdir()
    state = records.fit_with_records(w2, work / "cohort.parquet", store_url, compare=False, config=TINY_CONFIG)
    summary = json.loads((w2 / records.SUMMARY_FILE).read_text())
    assert summary["mode"] == "evaluation only"  # 12 patients < MIN_TRAINING_PATIENTS
    assert summary["evaluated"]["fittings"] == N_FITTINGS and summary["trained_on"]["fittings"] == 0
    m = summary["metrics"]
    assert m["n_fittings"] == N_FITTINGS and m["n_changes_applied"] > 0
    assert 0.0 <= m["direction_agreement"] <= 1.0

    res = workflow.run_evaluation(w2, state)
    art = write_artifact(state, res, tmp_path / "models" / "alignment", "0.0.2", w2 / "plots", fitting_patients=0, oracle_config=None)
    records.annotate_artifact(w2, art)
    card = (art / "model_card.md").read_text()
    section = card.split("## Real fittings (RecordFitting)", 1)[1].split("\n## ", 1)[0]
    assert "evaluation only" in section and f"| evaluated | {N_FITTINGS} | {N_FITTINGS} |" in section
    assert "Too few to mean anything" in section
    assert section != before.split("## Real fittings (RecordFitting)", 1)[1].split("\n## ", 1)[0]
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["training_data"]["real_fittings"] == N_FITTINGS

    # The served model reports it (GetModel metrics `training.real_fittings`).
    from service.client import AlignmentClient
    from tests.integration.conftest import start

    srv = start(models_dir=tmp_path / "models")
    try:
        with AlignmentClient.connect(f"127.0.0.1:{srv.port}", timeout_s=10) as c:
            assert c.get_model().model.metrics["training.real_fittings"] == N_FITTINGS
    finally:
        srv.stop(0.5)


def test_real_record_metrics_score_a_perfect_and_an_opposite_model() -> None:
    frame = pd.DataFrame(
        {
            "patient_id": ["a", "a", "b"],
            "fitting_id": ["f1", "f1", "f2"],
            **{c: [0.0, 0.0, 0.0] for c in dataset.CORRECTION_COLUMNS},
        }
    )
    frame.loc[0, "correction_FOOT_ROTATION"] = -6.0
    frame.loc[2, "correction_PYLON_LENGTH"] = 10.0
    n, k = 3, len(catalog.PARAMETER_NAMES)

    corr = dataset.corrections(frame)
    p_dec = np.where(corr < 0, 0.9, 0.05)
    p_inc = np.where(corr > 0, 0.9, 0.05)
    perfect = records.real_record_metrics({"p_decrease": p_dec, "p_increase": p_inc, "magnitude": np.abs(corr)}, frame)
    assert perfect["direction_agreement"] == 1.0 and perfect["specificity"] == 1.0 and perfect["top1_agreement"] == 1.0
    assert perfect["magnitude_mae_deg"] == 0.0 and perfect["n_changes_applied"] == 2
    flipped = records.real_record_metrics({"p_decrease": p_inc, "p_increase": p_dec, "magnitude": np.zeros((n, k))}, frame)
    assert flipped["direction_agreement"] == 0.0 and flipped["opposite_direction_rate"] == 1.0
    assert math.isclose(flipped["magnitude_mae_mm"], 10.0)
