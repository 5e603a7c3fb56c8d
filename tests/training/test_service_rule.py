"""The evaluation's confident-change rule (evaluate.service_decisions) against the service's
RECOMMENDED adjustments on the exported model: the service's set is within the rule's, with the same
direction and clamped step. The service may hold back a change the rule makes: it counts each
sensor's error in the supporting deviations and refuses the opposite of the rule table's fix; its
trials and other answer kinds are scored through its own code (training.service_eval)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from service import catalog
from service.catalog import AmputationLevel, SensorKind, Side
from service.domain import AssessmentInput, FeatureInput, PatientContextInput
from service.model import OnnxModel
from service.recommender import Policy, Recommender, model_input
from service.validation import validate_assessment
from training import evaluate
from training.pipeline import OUTPUT_NAMES


def _assessments(tiny_run: dict) -> list:  # type: ignore[type-arg]
    df = tiny_run["state"].test_frame
    out = []
    for _, row in df.iterrows():
        mass = row["body_mass_kg"]
        if mass is None or (isinstance(mass, float) and math.isnan(mass)):
            continue
        k = row["k_level"]
        patient = PatientContextInput(
            AmputationLevel(row["amputation_level"]),
            Side(row["prosthetic_side"]),
            float(mass),
            k_level=None if (isinstance(k, float) and math.isnan(k)) else int(k),
        )
        feats = tuple(
            FeatureInput(n, float(row[n]), "", SensorKind.MOTION_CAPTURE)
            for n in catalog.FEATURE_NAMES
            if not math.isnan(float(row[n]))
        )
        if len(feats) < 3:
            continue
        out.append(validate_assessment(AssessmentInput(str(row["assessment_id"]), patient, feats)))
    return out


def test_service_decisions_match_the_recommender(tiny_run: dict, artifact_dir: Path) -> None:
    model = OnnxModel.load(artifact_dir)
    gs = _assessments(tiny_run)
    assert len(gs) >= 50
    recs = Recommender(Policy.default()).recommend(model, gs, explain=False)
    x = model_input(gs).astype(np.float32)
    p = model.predict(x)
    pred = {k: np.asarray(getattr(p, k), dtype=np.float64) for k in OUTPUT_NAMES}
    dec = evaluate.service_decisions(pred, x)
    names = list(catalog.PARAMETER_NAMES)
    n_rec = 0
    same = 0
    for r, rec in enumerate(recs):
        got = {a.parameter.value: a.change for a in rec.adjustments if not a.trial and not a.reverts_applied_change}
        want = {names[j]: float(dec.step[r, j]) for j in np.flatnonzero(dec.recommended[r])}
        assert set(got) <= set(want), (r, got, want)
        for k, v in got.items():
            assert abs(v - want[k]) < 0.011, (r, k, v, want[k])  # the service rounds to 0.01
        if got and set(got) == set(want):
            assert rec.adjustments[0].parameter.value == names[int(dec.rank1[r])]
            same += 1
        n_rec += len(got)
    assert n_rec > 0 and same > 0  # the comparison exercised recommendations, not only "no change"


def test_monotone_constraints_hold_end_to_end(tiny_run: dict, artifact_dir: Path) -> None:
    """Raising a constrained feature never makes the textbook-opposite correction more likely: the
    odds p_increase / p_decrease move against the sign of the misalignment's effect (effect table)."""
    from training.onnx_graph import run_onnx
    from training.pipeline import monotone_signs

    state = tiny_run["state"]
    cfg = state.model.config
    from training.pipeline import has_reference

    x_all = dataset_rows(state.test_frame)
    h = has_reference(x_all)
    x0 = np.concatenate([x_all[~h][:10], x_all[h][:10]])  # the reference stage is constrained too
    assert h.sum() >= 10 and (~h).sum() >= 10
    onx = (artifact_dir / "model.onnx").read_bytes()
    r0 = catalog.MODEL_INPUT_COLUMNS.index(catalog.REFERENCE_CHANGE_COLUMNS[0])
    checked = 0
    for j, name in enumerate(catalog.PARAMETER_NAMES):
        signs = monotone_signs(name, cfg.monotone, cfg.engineered)[: len(catalog.MODEL_INPUT_COLUMNS)]
        for c, s in enumerate(signs):
            if not s:
                continue
            if c >= r0:  # a change since the reference: up to half the valid range either way
                spec = catalog.FEATURES[c - r0]
                half = (spec.max_value - spec.min_value) / 2
                grid = np.linspace(-half, half, 41, dtype=np.float32)
            else:
                spec = catalog.FEATURES[c]
                grid = np.linspace(spec.min_value, spec.max_value, 41, dtype=np.float32)
            rows = np.repeat(x0, len(grid), axis=0)
            rows[:, c] = np.tile(grid, len(x0))
            out = run_onnx(onx, rows)
            odds = np.log(np.maximum(out["p_increase"][:, j], 1e-12) / np.maximum(out["p_decrease"][:, j], 1e-12))
            steps = np.diff(odds.reshape(len(x0), len(grid)), axis=1)
            assert (-s * steps >= -1e-4).all(), (name, spec.name, s, steps.min(), steps.max())
            checked += 1
    assert checked >= 3


def dataset_rows(df: object) -> np.ndarray:
    from training import dataset

    return dataset.model_inputs(df)  # type: ignore[arg-type]
