"""Recorded fittings (RecordFitting, DESIGN 6.1) as training data: export, retraining, real-record
metrics and the model card's real-record section.

    python -m training export-records sqlite:///records.db fittings.parquet
    python -m training fit --records sqlite:///records.db      # then evaluate / export as usual

Export: one row per recorded walk in the training data schema (docs/data-schema.md, "Fitting
records"): patient_id = `<clinic_key>/<patient_key>` (a key is unique per clinic only), assessment_id =
`<fitting_id>/w<walk index>`, the walk's features in catalog units, the change applied after the walk
as `correction_*` (0 where nothing was changed), the fitting's outcome on each of its rows, and the
record columns (fitting_id, walk_index, the answer the service gave, the prosthetist's rating).

The rule for using them (`fit --records`), by distinct real patients with an accepted fitting:
- fewer than MIN_TRAINING_PATIENTS: the real fittings are an **evaluation set only**: the model is
  trained on the simulated cohort (or --data) exactly as without records and scored on every
  accepted real walk;
- from MIN_TRAINING_PATIENTS on: they are **mixed into training**: the real rows join the table and
  go through the same split grouped by patient, so about 20% of the real patients stay held out and
  are the real evaluation set (no real patient is in both).
Below MIN_MEANINGFUL_PATIENTS evaluated patients the card says plainly that the figures mean
nothing yet.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from service import catalog
from training import dataset

if TYPE_CHECKING:
    from service.records.domain import FittingRecord
    from training.pipeline import LgbmConfig
    from training.workflow import FitState

log = logging.getLogger("training")

MIN_TRAINING_PATIENTS = 100
MIN_MEANINGFUL_PATIENTS = 30
SUMMARY_FILE = "real_records.json"
EVAL_FILE = "real_records_eval.parquet"
_MIN_CHANGE = np.array([p.min_change for p in catalog.PARAMETERS])
_DEG = np.array([p.unit == "deg" for p in catalog.PARAMETERS])


# -- export ---------------------------------------------------------------------------------------
def _store(url: str) -> Any:
    try:
        from service.records.store import RecordStore
    except ImportError as exc:
        raise SystemExit(f"error: reading fitting records needs the records extra: pip install '.[records]' ({exc.name})") from None
    return RecordStore.open(url, pool_size=1)


def record_rows(rec: FittingRecord) -> list[dict[str, Any]]:
    """One schema row per walk of a recorded fitting."""
    p, o = rec.patient, rec.outcome
    rows = []
    for w, walk in enumerate(rec.walks):
        row: dict[str, Any] = {
            "patient_id": f"{rec.clinic_key}/{rec.patient_key}",
            "assessment_id": f"{rec.fitting_id}/w{w}",
            "amputation_level": p.amputation_level,
            "prosthetic_side": p.prosthetic_side,
            "body_mass_kg": p.body_mass_kg,
            "height_m": p.height_m,
            "k_level": p.k_level,
            "foot_type": p.foot_type or None,
            "sensor_kinds": ";".join(sorted({f.source for f in walk.features if f.source})) or None,
            "outcome_accepted": o.accepted,
            "outcome_comfort_0_10": o.socket_comfort_score,
            "fitting_id": rec.fitting_id,
            "walk_index": w,
            "clinic_key": rec.clinic_key,
            "prosthetist_rating": o.prosthetist_rating,
        }
        for f in walk.features:
            row[f.name] = f.value
        for name in catalog.PARAMETER_NAMES:
            row[f"correction_{name}"] = 0.0
        for c in walk.applied_after:
            row[f"correction_{c.parameter}"] = c.change
        a = walk.answer
        if a is not None:
            row |= {
                "answer_model_name": a.model_name,
                "answer_model_version": a.model_version,
                "answer_model_sha256": a.model_sha256,
                "answer_kind": a.answer_kind,
            }
            for name in catalog.PARAMETER_NAMES:
                row[f"recommended_{name}"] = 0.0
            for c in a.recommended:
                row[f"recommended_{c.parameter}"] = c.change
        rows.append(row)
    return rows


def records_frame(url: str) -> pd.DataFrame:
    """Every recorded fitting as a validated schema table (empty table when there are none)."""
    store = _store(url)
    try:
        rows = [r for rec in store.iter_records() for r in record_rows(rec)]
    finally:
        store.close()
    columns = [*dataset.SCHEMA_COLUMNS, *dataset.RECORD_COLUMNS]
    if not rows:
        return dataset.coerce_types(pd.DataFrame(columns=columns))
    return dataset.validate(pd.DataFrame(rows).reindex(columns=columns), f"records at {_safe(url)}")


def export_records(url: str, out: Path) -> pd.DataFrame:
    frame = records_frame(url)
    dataset.write_table(frame, out)
    log.info(
        "exported %d walks of %d fittings (%d patients) -> %s",
        len(frame),
        frame["fitting_id"].nunique(),
        frame["patient_id"].nunique(),
        out,
    )
    return frame


def _safe(url: str) -> str:
    head, sep, tail = url.partition("@")
    return ("***@" + tail) if sep else head


# -- retraining -----------------------------------------------------------------------------------
def forget(workdir: Path) -> None:
    """A fit without records: drop what an earlier `fit --records` left in the workdir."""
    for name in (SUMMARY_FILE, EVAL_FILE):
        (workdir / name).unlink(missing_ok=True)


def fit_with_records(
    workdir: Path,
    data: Path | None,
    records_url: str,
    split_seed: int = 0,
    compare: bool = True,
    config: LgbmConfig | None = None,
) -> FitState:
    """`python -m training fit --records URL`: the rule in the module docstring."""
    from training import workflow

    real = records_frame(records_url)
    usable = dataset.training_rows(real) if len(real) else real
    n_patients = int(usable["patient_id"].nunique()) if len(usable) else 0
    mixed = n_patients >= MIN_TRAINING_PATIENTS
    if mixed:
        base = dataset.load(data or workdir / "cohort.parquet").frame
        combined = pd.concat([base, real], ignore_index=True)
        path = workdir / "cohort_with_records.parquet"
        dataset.write_table(combined, path)
        state = workflow.fit(workdir, path, split_seed, compare=compare, config=config)
        test = state.test_frame
        evaluated = test[test["fitting_id"].notna()].reset_index(drop=True) if "fitting_id" in test else test.iloc[:0]
        trained_ids = set(usable["patient_id"]) - set(evaluated["patient_id"])
        trained = usable[usable["patient_id"].isin(trained_ids)]
    else:
        state = workflow.fit(workdir, data, split_seed, compare=compare, config=config)
        evaluated, trained = usable.reset_index(drop=True), usable.iloc[:0]
    summary = {
        "mode": "mixed into training (held-out real patients evaluated)" if mixed else "evaluation only",
        "rule": (
            f"real fittings are an evaluation set until at least {MIN_TRAINING_PATIENTS} distinct patients have an "
            "accepted fitting; then they join the training table under the same split grouped by patient"
        ),
        "min_training_patients": MIN_TRAINING_PATIENTS,
        "min_meaningful_patients": MIN_MEANINGFUL_PATIENTS,
        "recorded": _counts(real),
        "accepted": _counts(usable),
        "trained_on": _counts(trained),
        "evaluated": _counts(evaluated),
        "metrics": real_record_metrics(state.model.predict(dataset.model_inputs(evaluated)), evaluated)
        if len(evaluated)
        else None,
    }
    from training.workflow import dump_json

    dump_json(summary, workdir / SUMMARY_FILE)
    dataset.write_table(evaluated if len(evaluated) else real.iloc[:0], workdir / EVAL_FILE)
    log.info("real fittings: %s; %d evaluated walks", summary["mode"], len(evaluated))
    return state


def _counts(df: pd.DataFrame) -> dict[str, int]:
    if not len(df):
        return {"fittings": 0, "patients": 0, "walks": 0, "walks_with_change": 0}
    corr = dataset.corrections(df)
    return {
        "fittings": int(df["fitting_id"].nunique()),
        "patients": int(df["patient_id"].nunique()),
        "walks": len(df),
        "walks_with_change": int((np.abs(corr) >= _MIN_CHANGE).any(axis=1).sum()),
    }


# -- metrics --------------------------------------------------------------------------------------
def _nan(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def real_record_metrics(pred: dict[str, np.ndarray], frame: pd.DataFrame) -> dict[str, Any]:
    """A model's predictions on recorded walks against what the prosthetist actually applied.

    `pred`: p_decrease, p_increase, magnitude [N, 7] (a model's predict output) for `frame`'s rows.
    Decision per parameter: the most probable of decrease / no change / increase (the plain argmax
    rule; the service's own rule is stricter, so these figures flatter it slightly). A parameter counts
    as changed when |applied| >= min_change. Also scores the answers the service gave at the time
    (the record's recommended_* columns) against the same applied changes.
    """
    corr = dataset.corrections(frame)
    p_dec, p_inc = pred["p_decrease"], pred["p_increase"]
    cls = np.argmax(np.stack([p_dec, 1.0 - p_dec - p_inc, p_inc], axis=-1), axis=-1) - 1  # -1, 0, +1
    truth = np.where(np.abs(corr) >= _MIN_CHANGE, np.sign(corr), 0.0)
    changed = truth != 0
    rows_changed = changed.any(axis=1)
    rows_none = ~rows_changed
    # Top-1: the parameter the model is surest needs a change vs the largest applied change (in
    # multiples of min_change), on walks after which something was changed.
    model_top = np.argmax(np.maximum(p_dec, p_inc), axis=1)
    true_top = np.argmax(np.abs(corr) / _MIN_CHANGE, axis=1)
    mag_err = np.abs(pred["magnitude"] - np.abs(corr))
    out: dict[str, Any] = {
        "decision_rule": "argmax of decrease / no change / increase per parameter",
        "n_walks": len(frame),
        "n_patients": int(frame["patient_id"].nunique()),
        "n_fittings": int(frame["fitting_id"].nunique()) if "fitting_id" in frame else 0,
        "n_changes_applied": int(changed.sum()),
        "direction_agreement": _nan(float(np.mean(cls[changed] == truth[changed]))) if changed.any() else None,
        "opposite_direction_rate": _nan(float(np.mean(cls[changed] == -truth[changed]))) if changed.any() else None,
        "top1_agreement": _nan(float(np.mean(model_top[rows_changed] == true_top[rows_changed]))) if rows_changed.any() else None,
        "n_walks_without_change": int(rows_none.sum()),
        "specificity": _nan(float(np.mean((cls[rows_none] == 0).all(axis=1)))) if rows_none.any() else None,
        "magnitude_mae_deg": _nan(float(np.mean(mag_err[:, _DEG][changed[:, _DEG]]))) if changed[:, _DEG].any() else None,
        "magnitude_mae_mm": _nan(float(np.mean(mag_err[:, ~_DEG][changed[:, ~_DEG]]))) if changed[:, ~_DEG].any() else None,
    }
    rec_cols = list(dataset.RECOMMENDED_COLUMNS)
    if all(c in frame.columns for c in rec_cols):
        answered = frame["answer_kind"].notna().to_numpy() if "answer_kind" in frame else np.zeros(len(frame), bool)
        advised = frame[rec_cols].to_numpy(dtype=np.float64, na_value=0.0)
        adv = np.where(np.abs(advised) >= _MIN_CHANGE, np.sign(advised), 0.0)
        m = changed & answered[:, None]
        out["n_walks_with_answer"] = int(answered.sum())
        out["recorded_answer_direction_agreement"] = _nan(float(np.mean(adv[m] == truth[m]))) if m.any() else None
    return out


# -- the artifact and its card --------------------------------------------------------------------
def annotate_artifact(workdir: Path, artifact: Path) -> None:
    """After an export: put the real-record summary into the manifest (GetModel's
    `training.real_fittings`) and re-render the model card with its real-record section."""
    from training.model_card import render
    from training.workflow import dump_json

    path = workdir / SUMMARY_FILE
    if not path.exists():
        return
    summary = json.loads(path.read_text())
    man_path = artifact / "manifest.json"
    manifest = json.loads(man_path.read_text())
    manifest["real_records"] = summary
    manifest["training_data"]["real_fittings"] = summary["trained_on"]["fittings"] + summary["evaluated"]["fittings"]
    dump_json(manifest, man_path)
    plots = sorted(p.name for p in artifact.glob("*.png"))
    (artifact / "model_card.md").write_text(render(manifest, plots))


def _fmt(v: Any, spec: str = "{:.3f}") -> str:
    return "-" if v is None else spec.format(v)


def render_section(manifest: dict[str, Any]) -> str:
    """The model card's real-record section (markdown), apart from the simulated metrics."""
    s = manifest.get("real_records")
    if not s or not s["recorded"]["fittings"]:
        return (
            "## Real fittings (RecordFitting)\n"
            "None: this model was trained and evaluated without recorded fittings (GetModel "
            "`training.real_fittings` = 0). Every figure on this card comes from simulated patients."
        )
    ev, tr = s["evaluated"], s["trained_on"]
    lines = [
        "## Real fittings (RecordFitting)",
        f"Use: **{s['mode']}**. Rule: {s['rule']}.",
        "",
        "| | fittings | patients | walks | walks followed by a change |",
        "|---|---|---|---|---|",
    ]
    for label, c in (("recorded", s["recorded"]), ("accepted (usable as labels)", s["accepted"]), ("trained on", tr), ("evaluated", ev)):
        lines.append(f"| {label} | {c['fittings']} | {c['patients']} | {c['walks']} | {c['walks_with_change']} |")
    lines.append("")
    if ev["patients"] < s["min_meaningful_patients"]:
        lines.append(
            f"**Too few to mean anything:** {ev['patients']} evaluated real patient(s), fewer than "
            f"{s['min_meaningful_patients']}. The figures below are shown for audit only; they are not evidence "
            "of accuracy on real patients."
        )
        lines.append("")
    m = s.get("metrics")
    if m:
        lines += [
            f"Against the change actually applied after each evaluated walk (decision: {m['decision_rule']}); "
            "reported apart from the simulated metrics and never used to call a target met.",
            "",
            "| metric | value | n |",
            "|---|---|---|",
            f"| direction agreement (applied changes) | {_fmt(m['direction_agreement'])} | {m['n_changes_applied']} |",
            f"| opposite direction | {_fmt(m['opposite_direction_rate'])} | {m['n_changes_applied']} |",
            f"| top-1 agreement (largest applied change) | {_fmt(m['top1_agreement'])} | {m['n_walks'] - m['n_walks_without_change']} |",
            f"| specificity (walks followed by no change) | {_fmt(m['specificity'])} | {m['n_walks_without_change']} |",
            f"| magnitude MAE deg | {_fmt(m['magnitude_mae_deg'], '{:.2f}')} | |",
            f"| magnitude MAE mm | {_fmt(m['magnitude_mae_mm'], '{:.2f}')} | |",
        ]
        if "recorded_answer_direction_agreement" in m:
            lines.append(
                f"| answers given at the time: direction agreement | {_fmt(m['recorded_answer_direction_agreement'])} | "
                f"{m['n_walks_with_answer']} walks |"
            )
    return "\n".join(lines)
