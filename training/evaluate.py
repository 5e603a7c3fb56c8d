"""Grouped evaluation: metrics per parameter, amputation level and sensor subset, calibration, plots.

Every split here is by patient: a patient's assessments share one true misalignment, so a row-level
split would score memorised patients, not new ones. Definitions (also written into the model card):

- change needed: |true correction| >= min_change of the parameter (DESIGN 3.1).
- decision rule: per parameter the most probable of decrease / no change / increase
  (``pipeline.decide``).
- direction_accuracy: over (assessment, parameter) pairs with a change needed, the share where the
  decision is the true direction; "no change" counts as wrong. This is the figure judged against the
  target. ``direction_accuracy_given_change`` scores only the way (the more probable of decrease and
  increase), whether or not the change clears the no-change class. ``sign_accuracy_when_recommended`` is the same restricted to pairs where a change was
  recommended (is the direction right when the model speaks?); ``detection_rate`` is the share
  where any change was recommended.
- magnitude_mae_deg / _mm: mean |predicted magnitude - |true correction||, pairs with a change needed,
  pooled over the angle (deg) or translation/length (mm) parameters.
- interval_coverage: share of those pairs whose true magnitude lies in [magnitude_lo, magnitude_hi]
  (nominal 80%).
- rank1_agreement: over assessments with at least one change needed, the share where the parameter the
  model ranks first (largest predicted magnitude / max_step among recommended ones) is the parameter
  with the largest true |correction| / max_step (corrections measured in safe steps so deg and mm
  compare). No recommendation counts as disagreement.
- specificity: over well-aligned assessments (no parameter needs a change), the share with no
  parameter recommended.
- ece: top-label expected calibration error of the 3-class direction probabilities, 10 equal-width
  bins, pooled over parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from service import catalog
from training import cohort
from training.pipeline import (
    CLASS_DECREASE,
    CLASS_INCREASE,
    CLASS_NONE,
    MAX_STEP,
    MIN_CHANGE,
    Predictions,
    decide,
    direction_targets,
    ranking_score,
)

TARGETS: dict[str, tuple[str, float]] = {
    "direction_accuracy": (">=", 0.95),
    "magnitude_mae_deg": ("<=", 1.0),
    "magnitude_mae_mm": ("<=", 2.5),
    "specificity": (">=", 0.95),
    "ece": ("<=", 0.05),
}
TARGET_SUBSET = "all_sensors"
N_BINS = 10
_DEG = np.array([p.unit == "deg" for p in catalog.PARAMETERS])


def grouped_split(patient_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of rows whose patient falls in a random ``fraction`` of patients (>= 1 patient,
    and never all of them when there are two or more)."""
    ids = np.unique(patient_ids)
    rng = np.random.default_rng(seed)
    rng.shuffle(ids)
    n = round(fraction * len(ids))
    n = min(max(n, 1), max(len(ids) - 1, 1))
    return np.isin(patient_ids, ids[:n])


def _nan(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _mean(a: np.ndarray) -> float:
    return float(a.mean()) if a.size else math.nan


def _sign_class(pred: Predictions) -> np.ndarray:
    """Direction if a change is made: the more probable of decrease / increase (ignores no-change)."""
    return np.where(pred["p_increase"] >= pred["p_decrease"], CLASS_INCREASE, CLASS_DECREASE)


def reliability(
    pred: Predictions, corr: np.ndarray, min_change: np.ndarray = MIN_CHANGE, n_bins: int = N_BINS
) -> dict[str, Any]:
    """Top-label reliability of the 3-class direction probabilities, pooled over parameters."""
    p_dec, p_inc = pred["p_decrease"], pred["p_increase"]
    probs = np.stack([p_dec, 1.0 - p_dec - p_inc, p_inc], axis=-1).reshape(-1, 3)
    y = direction_targets(corr, min_change).reshape(-1)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, n_bins - 1)
    bins = []
    ece = 0.0
    for b in range(n_bins):
        k = idx == b
        if k.any():
            ece += k.mean() * abs(conf[k].mean() - correct[k].mean())
        bins.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "n": int(k.sum()),
                "confidence": _nan(_mean(conf[k])),
                "accuracy": _nan(_mean(correct[k])),
            }
        )
    return {"ece": float(ece) if len(y) else math.nan, "bins": bins}


def block(pred: Predictions, corr: np.ndarray, patient_ids: np.ndarray | None = None) -> dict[str, Any]:
    """All headline metrics for one group of assessments."""
    y = direction_targets(corr)
    d = decide(pred)
    dc = np.sign(d).astype(int) + 1  # 0 decrease, 1 none, 2 increase
    need = y != CLASS_NONE
    rec = dc != CLASS_NONE
    abs_err = np.abs(pred["magnitude"] - np.abs(corr))
    inside = (np.abs(corr) >= pred["magnitude_lo"]) & (np.abs(corr) <= pred["magnitude_hi"])
    any_need = need.any(axis=1)
    true_top = np.argmax(np.abs(corr) / MAX_STEP, axis=1)
    score = ranking_score(pred)
    pred_top = np.argmax(score, axis=1)
    has_rec = np.isfinite(score).any(axis=1)
    well = ~any_need
    out: dict[str, Any] = {
        "n_assessments": len(corr),
        "n_patients": len(np.unique(patient_ids)) if patient_ids is not None else None,
        "n_changes_needed": int(need.sum()),
        "direction_accuracy": _mean((dc == y)[need]),
        "sign_accuracy_when_recommended": _mean((dc == y)[need & rec]),
        "direction_accuracy_given_change": _mean((_sign_class(pred) == y)[need]),
        "detection_rate": _mean(rec[need]),
        "false_recommendation_rate": _mean(rec[~need]),
        "magnitude_mae_deg": _mean(abs_err[need & _DEG]),
        "magnitude_mae_mm": _mean(abs_err[need & ~_DEG]),
        "interval_coverage": _mean(inside[need]),
        "rank1_agreement": _mean(((pred_top == true_top) & has_rec)[any_need]),
        "n_well_aligned": int(well.sum()),
        "specificity": _mean((~rec.any(axis=1))[well]),
        "ece": reliability(pred, corr)["ece"],
    }
    return {k: (_nan(v) if isinstance(v, float) else v) for k, v in out.items()}


def per_parameter(pred: Predictions, corr: np.ndarray) -> dict[str, dict[str, Any]]:
    y = direction_targets(corr)
    dc = np.sign(decide(pred)).astype(int) + 1
    res: dict[str, dict[str, Any]] = {}
    for j, spec in enumerate(catalog.PARAMETERS):
        need = y[:, j] != CLASS_NONE
        rec = dc[:, j] != CLASS_NONE
        sub = {k: v[:, j : j + 1] for k, v in pred.items()}
        inside = (np.abs(corr[:, j]) >= pred["magnitude_lo"][:, j]) & (np.abs(corr[:, j]) <= pred["magnitude_hi"][:, j])
        res[spec.parameter.value] = {
            k: (_nan(v) if isinstance(v, float) else v)
            for k, v in {
                "unit": spec.unit,
                "n_changes_needed": int(need.sum()),
                "direction_accuracy": _mean((dc[:, j] == y[:, j])[need]),
                "sign_accuracy_when_recommended": _mean((dc[:, j] == y[:, j])[need & rec]),
                "direction_accuracy_given_change": _mean((_sign_class(pred)[:, j] == y[:, j])[need]),
                "false_recommendation_rate": _mean(rec[~need]),
                "magnitude_mae": _mean(np.abs(pred["magnitude"][:, j] - np.abs(corr[:, j]))[need]),
                "interval_coverage": _mean(inside[need]),
                "ece": reliability(sub, corr[:, j : j + 1], MIN_CHANGE[j : j + 1])["ece"],
            }.items()
        }
    return res


def evaluate_predictions(pred: Predictions, df: pd.DataFrame) -> dict[str, Any]:
    """The full evaluation of one model on held-out rows of a training-schema table."""
    from training.dataset import corrections

    corr = corrections(df)
    pids = df["patient_id"].to_numpy()
    subsets = cohort.sensor_subset_of(df).to_numpy()
    levels = df["amputation_level"].to_numpy()

    def take(mask: np.ndarray) -> tuple[Predictions, np.ndarray, np.ndarray]:
        return {k: v[mask] for k, v in pred.items()}, corr[mask], pids[mask]

    res: dict[str, Any] = {"overall": block(*take(np.ones(len(df), bool)))}
    order = [s for s in cohort.SENSOR_SUBSETS if s in set(subsets)] + sorted(set(subsets) - set(cohort.SENSOR_SUBSETS))
    res["by_sensor_subset"] = {s: block(*take(subsets == s)) for s in order}
    res["by_amputation_level"] = {lv: block(*take(levels == lv)) for lv in sorted(set(levels))}
    res["by_amputation_level_all_sensors"] = {
        lv: block(*take((levels == lv) & (subsets == TARGET_SUBSET)))
        for lv in sorted(set(levels))
        if ((levels == lv) & (subsets == TARGET_SUBSET)).any()
    }
    res["by_parameter"] = per_parameter(pred, corr)
    ts = subsets == TARGET_SUBSET
    res["by_parameter_all_sensors"] = per_parameter(*take(ts)[:2]) if ts.any() else {}
    res["reliability_all_sensors"] = reliability(*take(ts)[:2]) if ts.any() else None
    res["reliability_overall"] = reliability(pred, corr)
    res["targets"] = check_targets(res["by_sensor_subset"].get(TARGET_SUBSET, res["overall"]))
    return res


def check_targets(b: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"subset": TARGET_SUBSET}
    for name, (op, bar) in TARGETS.items():
        v = b.get(name)
        met = None if v is None else (v >= bar if op == ">=" else v <= bar)
        out[name] = {"value": v, "target": f"{op} {bar:g}", "met": met}
    out["all_met"] = all(out[n]["met"] for n in TARGETS)
    return out


def selection_score(res: Mapping[str, Any]) -> float:
    """Family choice: mean of direction accuracy, specificity, rank-1 agreement and 1-ECE over all
    held-out assessments (every sensor subset), so a model tuned only for full sensor sets loses."""
    o = res["overall"]
    parts = [o["direction_accuracy"], o["specificity"], o["rank1_agreement"], 1.0 - o["ece"]]
    return float(np.mean([p if p is not None else 0.0 for p in parts]))


def plots(pred: Predictions, df: pd.DataFrame, res: Mapping[str, Any], out_dir: Path) -> list[str]:
    """Predicted vs true magnitude (all sensors) and reliability curves; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.dataset import corrections

    out_dir.mkdir(parents=True, exist_ok=True)
    corr = corrections(df)
    ts = (cohort.sensor_subset_of(df) == TARGET_SUBSET).to_numpy()
    if not ts.any():
        ts = np.ones(len(df), bool)
    need = direction_targets(corr) != CLASS_NONE
    fig, axes = plt.subplots(2, 4, figsize=(14, 7))
    for j, spec in enumerate(catalog.PARAMETERS):
        ax = axes.flat[j]
        k = ts & need[:, j]
        t, m = np.abs(corr[k, j]), pred["magnitude"][k, j]
        lo, hi = pred["magnitude_lo"][k, j], pred["magnitude_hi"][k, j]
        ax.errorbar(t, m, yerr=[m - lo, hi - m], fmt="o", ms=2, alpha=0.3, elinewidth=0.5)
        lim = spec.study_range * 1.1
        ax.plot([0, lim], [0, lim], "k--", lw=0.8)
        ax.set(title=f"{spec.parameter.value} ({spec.unit})", xlabel="true |correction|", ylabel="predicted")
    axes.flat[7].axis("off")
    fig.suptitle("Conditional magnitude, held-out patients, all sensors (bars: 10-90% interval)")
    fig.tight_layout()
    fig.savefig(out_dir / "magnitude_pred_vs_true.png", dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for key, label in (("reliability_all_sensors", "all sensors"), ("reliability_overall", "all subsets")):
        rel = res.get(key)
        if not rel:
            continue
        pts = [(b["confidence"], b["accuracy"]) for b in rel["bins"] if b["n"] > 0]
        ax.plot(*zip(*pts, strict=True), "o-", label=f"{label} (ECE {rel['ece']:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="confidence (top-label probability)", ylabel="observed accuracy", title="Direction reliability")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "reliability.png", dpi=80)
    plt.close(fig)
    return ["magnitude_pred_vs_true.png", "reliability.png"]
