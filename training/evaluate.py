"""Grouped evaluation: metrics per parameter, amputation level and sensor subset, calibration, plots.

Every split here is by patient: a patient's assessments share one true misalignment, so a row-level
split would score memorised patients, not new ones. The metrics score what the SERVICE recommends:
``service_decisions`` re-implements the decision rule of ``service/recommender.py`` (training may not
import the service's recommender; keep the two in step). Definitions (also written into the model card):

- change needed: |true correction| >= min_change of the parameter (DESIGN 3.1); a "pair" is one
  (assessment, parameter).
- decision rule (the service's RECOMMENDED kind, service/recommender/decide.py): per parameter the way
  is the more probable of decrease / increase (p_dir); the change is recommended iff p_dir >= p_none,
  p_dir >= 0.55 (min_confidence), the predicted magnitude >= min_change, and, below p_dir 0.8
  (UNSUPPORTED_MIN), a deviation (|z| >= 2 against the catalog norms) it would explain is present.
  Trials and the other answer kinds are not in these figures: training.service_eval scores the
  service's whole answer through its own code. The recommended step is the magnitude
  clamped to max_step; sagittal, length and rotation changes rank before coronal ones, then by
  p_dir * min(magnitude / max_step, 1.5).
- detection_rate: share of pairs with a change needed where the service recommends a change (either way).
- direction_accuracy (the figure judged against the 0.95 target; strict): share of pairs with a change
  needed where the service recommends the true direction; no recommendation counts as wrong.
- direction_accuracy_when_recommended: among pairs with a change needed AND recommended, share in the
  true direction (is the way right when the service speaks?).
- sign_accuracy_given_change: among pairs with a change needed, share where the more probable way
  (p_increase vs p_decrease) is the true one, whether or not the service recommends it.
- opposite_direction_rate: share of pairs with a change needed where the service recommends the
  opposite way (the clinically dangerous error).
- direction_accuracy_full_step: the strict figure over pairs whose true correction is at least one
  safe step (max_step, 6 deg / 10 mm): how the service does on clearly misaligned prostheses.
- direction_accuracy_argmax: the strict figure under the previous rule of this evaluation (most
  probable of the three classes, no 0.5 floor, no magnitude floor, no pooling), for comparison only.
- false_recommendation_rate: share of pairs with no change needed where a change is recommended.
- magnitude_mae_deg / _mm (judged against the targets): mean |predicted magnitude - |true correction||
  over ALL pairs with a change needed, raw (unclamped) model magnitude, pooled over the angle (deg) or
  translation/length (mm) parameters. magnitude_mae_detected_*: the same over pairs the service
  recommends. step_mae_*: over pairs the service recommends, |recommended step - min(|true correction|,
  max_step)| (the clamped single step against the ideal single step).
- interval_coverage: share of pairs with a change needed whose true magnitude lies in
  [magnitude_lo, magnitude_hi] (nominal 80%).
- rank1_agreement: over assessments with at least one change needed, the share where the service's
  rank-1 adjustment is the parameter with the largest true |correction| / max_step (corrections in safe
  steps so deg and mm compare); no recommendation counts as disagreement. Note that the service ranks
  coronal changes last on purpose, which caps this figure. rank1_needed: the share where the rank-1
  adjustment is ANY needed correction in its true direction (the set-based score of the clinical
  consistency suite).
- specificity: over well-aligned assessments (no parameter needs a change), the share where the
  service recommends nothing.
- ece: top-label expected calibration error of the 3-class direction probabilities, 10 equal-width
  bins, pooled over parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from service import catalog
from training import cohort
from training.pipeline import (
    CLASS_NONE,
    MAX_STEP,
    MIN_CHANGE,
    Predictions,
    decide,
    direction_targets,
)

TARGETS: dict[str, tuple[str, float]] = {
    "direction_accuracy": (">=", 0.95),
    "magnitude_mae_deg": ("<=", 1.0),
    "magnitude_mae_mm": ("<=", 2.5),
    "specificity": (">=", 0.95),
    "ece": ("<=", 0.05),
}
# The definition each target is judged under, and the other figures reported beside it (never judged).
TARGET_DEFINITIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "direction_accuracy": (
        "strict: service recommends the true direction, over all pairs with a change needed",
        (
            "direction_accuracy_when_recommended",
            "sign_accuracy_given_change",
            "detection_rate",
            "direction_accuracy_full_step",
        ),
    ),
    "magnitude_mae_deg": (
        "raw model magnitude vs abs(true correction), all pairs with a change needed",
        ("magnitude_mae_detected_deg", "step_mae_deg"),
    ),
    "magnitude_mae_mm": (
        "raw model magnitude vs abs(true correction), all pairs with a change needed",
        ("magnitude_mae_detected_mm", "step_mae_mm"),
    ),
    "specificity": ("well-aligned assessments where the service recommends nothing", ("false_recommendation_rate",)),
    "ece": ("top-label ECE of the 3-class direction probabilities, 10 bins", ()),
}
# Judged: one assessment with every sensor and no reference walk (the service's basic use). The same
# walks with the patient's reference walk are reported as "<subset>+reference", never judged.
TARGET_SUBSET = "all_sensors"
REFERENCE_SUFFIX = "+reference"
N_BINS = 10
_DEG = np.array([p.unit == "deg" for p in catalog.PARAMETERS])

# --- The service's decision rule (service/recommender.py, Policy.default()) -------------------------
# Re-implemented here because training may import only service.catalog and service.sensors; the
# constants mirror Policy.min_confidence, Policy.deviation_z and recommender.policy.UNSUPPORTED_MIN.
MIN_CONFIDENCE = 0.7  # the service default (service.settings.min_confidence)
DEVIATION_Z = 2.0
UNSUPPORTED_MIN = 0.8
_N_FEAT = len(catalog.FEATURE_NAMES)
_TF_COL = catalog.MODEL_INPUT_COLUMNS.index("context_transfemoral")
_LEVELS = (catalog.AmputationLevel.TRANSTIBIAL, catalog.AmputationLevel.TRANSFEMORAL)
_NORM_MEAN = {lv: np.array([f.normative[lv].mean for f in catalog.FEATURES]) for lv in _LEVELS}
_NORM_SD = {lv: np.array([f.normative[lv].sd for f in catalog.FEATURES]) for lv in _LEVELS}
_PLANE_ORDER = np.array([1 if p.plane is catalog.Plane.CORONAL else 0 for p in catalog.PARAMETERS])


def _support_rows() -> dict[tuple[catalog.AmputationLevel, int, int], tuple[tuple[int, float], ...]]:
    """(level, parameter index, correction sign) -> (feature index, sign of the deviation it explains),
    as the recommender's supporting-deviation rule: the misalignment a correction undoes has the opposite sign."""
    out: dict[tuple[catalog.AmputationLevel, int, int], list[tuple[int, float]]] = {}
    for lv in _LEVELS:
        for e in catalog.effects():
            if (e.level is not None and e.level is not lv) or e.slope == 0.0:
                continue
            j = catalog.PARAMETER_NAMES.index(e.parameter.value)
            for sign in (-1, 1):
                expected = float(np.sign(e.shift(float(-sign))))
                rows = out.setdefault((lv, j, sign), [])
                if expected != 0.0:
                    rows.append((catalog.FEATURE_INDEX[e.feature], expected))
    return {k: tuple(v) for k, v in out.items()}


_SUPPORT = _support_rows()


@dataclass(frozen=True, slots=True)
class Decisions:
    """What the service recommends per (assessment, parameter)."""

    sign: np.ndarray  # [N,k] +1 / -1: the more probable way (p_increase >= p_decrease -> +1)
    recommended: np.ndarray  # [N,k] bool
    pooled: np.ndarray  # [N,k] bool: recommended only through pooled alternatives
    step: np.ndarray  # [N,k] signed recommended change, clamped to max_step; 0 where not recommended
    rank1: np.ndarray  # [N] parameter index ranked first, -1 when nothing is recommended


def service_decisions(
    pred: Predictions,
    x: np.ndarray,
    min_change: np.ndarray = MIN_CHANGE,
    max_step: np.ndarray = MAX_STEP,
    min_confidence: float = MIN_CONFIDENCE,
) -> Decisions:
    """The recommendations service/recommender.py makes from these model outputs (default policy).

    ``x`` is the model input (catalog.MODEL_INPUT_COLUMNS): its features give the deviations the
    alternative pooling needs and ``context_transfemoral`` the amputation level.
    """
    p_dec, p_inc = pred["p_decrease"], pred["p_increase"]
    p_none = np.maximum(0.0, 1.0 - p_dec - p_inc)
    sign = np.where(p_inc >= p_dec, 1, -1)
    p_dir = np.where(sign > 0, p_inc, p_dec)
    mag = np.maximum(pred["magnitude"], 0.0)
    too_small = mag < min_change
    rec = (p_dir >= p_none) & (p_dir >= min_confidence) & ~too_small
    weak = rec & (p_dir < UNSUPPORTED_MIN)
    for r in np.flatnonzero(weak.any(axis=1)):
        lv = _LEVELS[int(x[r, _TF_COL] == 1.0)]
        values = x[r, :_N_FEAT].astype(np.float64)
        z = (values - _NORM_MEAN[lv]) / _NORM_SD[lv]
        dev = ~np.isnan(values) & (np.abs(z) >= DEVIATION_Z)
        for j in np.flatnonzero(weak[r]):
            if not any(dev[f] and np.sign(z[f]) == sg for f, sg in _SUPPORT.get((lv, int(j), int(sign[r, j])), ())):
                rec[r, j] = False
    # The service no longer pools alternatives: an unexplained clear deviation gets a TRIAL instead
    # (service/recommender/decide.py), scored by training.service_eval through the service's code.
    pooled = np.zeros_like(rec)
    step = np.where(rec, sign * np.minimum(mag, max_step), 0.0)
    score = p_dir * np.minimum(mag / max_step, 1.5)
    key = np.where(rec, _PLANE_ORDER * 10.0 - score, np.inf)
    rank1 = np.where(rec.any(axis=1), np.argmin(key, axis=1), -1)
    return Decisions(sign=sign, recommended=rec, pooled=pooled, step=step, rank1=rank1)


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


def _true_sign(corr: np.ndarray) -> np.ndarray:
    return np.asarray(np.sign(direction_targets(corr) - CLASS_NONE))  # -1, 0 (no change needed), +1


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


def _pair_metrics(
    pred: Predictions, corr: np.ndarray, dec: Decisions, cols: np.ndarray, suffix: str = ""
) -> dict[str, float]:
    """Pair-level metrics over the parameter columns ``cols`` (bool mask over parameters)."""
    ts = _true_sign(corr)[:, cols]
    need = ts != 0
    rec = dec.recommended[:, cols]
    right = dec.sign[:, cols] == ts
    am = np.sign(decide(pred))[:, cols]
    true_mag = np.abs(corr[:, cols])
    mag = pred["magnitude"][:, cols]
    err = np.abs(mag - true_mag)
    step_err = np.abs(np.abs(dec.step[:, cols]) - np.minimum(true_mag, MAX_STEP[cols]))
    inside = (true_mag >= pred["magnitude_lo"][:, cols]) & (true_mag <= pred["magnitude_hi"][:, cols])
    return {
        "detection_rate": _mean(rec[need]),
        "direction_accuracy": _mean((rec & right)[need]),
        "direction_accuracy_when_recommended": _mean(right[need & rec]),
        "sign_accuracy_given_change": _mean(right[need]),
        "opposite_direction_rate": _mean((rec & ~right)[need]),
        "direction_accuracy_argmax": _mean((am == ts)[need]),
        # The same strict figure for corrections of at least one safe step (max_step: 6 deg / 10 mm),
        # the size the perturbation studies found clearly (Boone 2013; THC-181338).
        "direction_accuracy_full_step": _mean((rec & right)[need & (true_mag >= MAX_STEP[cols])]),
        "false_recommendation_rate": _mean(rec[~need]),
        f"magnitude_mae{suffix}": _mean(err[need]),
        f"magnitude_mae_detected{suffix}": _mean(err[need & rec]),
        f"step_mae{suffix}": _mean(step_err[need & rec]),
        "interval_coverage": _mean(inside[need]),
    }


def block(pred: Predictions, corr: np.ndarray, x: np.ndarray, patient_ids: np.ndarray | None = None) -> dict[str, Any]:
    """All headline metrics for one group of assessments (service decision rule)."""
    dec = service_decisions(pred, x)
    ts = _true_sign(corr)
    need = ts != 0
    allp = np.ones(len(catalog.PARAMETERS), bool)
    out: dict[str, Any] = {
        "n_assessments": len(corr),
        "n_patients": len(np.unique(patient_ids)) if patient_ids is not None else None,
        "n_changes_needed": int(need.sum()),
    }
    pm = _pair_metrics(pred, corr, dec, allp)
    out.update({k: v for k, v in pm.items() if not k.startswith(("magnitude_mae", "step_mae"))})
    for unit, cols in (("deg", _DEG), ("mm", ~_DEG)):
        m = _pair_metrics(pred, corr, dec, cols, f"_{unit}")
        for k in ("magnitude_mae", "magnitude_mae_detected", "step_mae"):
            out[f"{k}_{unit}"] = m[f"{k}_{unit}"]
    any_need = need.any(axis=1)
    true_top = np.argmax(np.abs(corr) / MAX_STEP, axis=1)
    has = dec.rank1 >= 0
    r1 = np.clip(dec.rank1, 0, None)
    rows = np.arange(len(ts))
    rank1_right: np.ndarray = np.asarray(has & (ts[rows, r1] == dec.sign[rows, r1]))
    well = ~any_need
    out.update(
        {
            "rank1_agreement": _mean(np.asarray((dec.rank1 == true_top) & has)[any_need]),
            "rank1_needed": _mean(rank1_right[any_need]),
            "pooled_share": _mean(dec.pooled[dec.recommended]),
            "n_well_aligned": int(well.sum()),
            "specificity": _mean(np.asarray(~dec.recommended.any(axis=1))[well]),
            "ece": reliability(pred, corr)["ece"],
        }
    )
    return {k: (_nan(v) if isinstance(v, float) else v) for k, v in out.items()}


def per_parameter(pred: Predictions, corr: np.ndarray, x: np.ndarray) -> dict[str, dict[str, Any]]:
    dec = service_decisions(pred, x)
    ts = _true_sign(corr)
    res: dict[str, dict[str, Any]] = {}
    for j, spec in enumerate(catalog.PARAMETERS):
        cols = np.arange(len(catalog.PARAMETERS)) == j
        sub = {k: v[:, j : j + 1] for k, v in pred.items()}
        row: dict[str, Any] = {"unit": spec.unit, "n_changes_needed": int((ts[:, j] != 0).sum())}
        row.update(_pair_metrics(pred, corr, dec, cols))
        row["ece"] = reliability(sub, corr[:, j : j + 1], MIN_CHANGE[j : j + 1])["ece"]
        res[spec.parameter.value] = {k: (_nan(v) if isinstance(v, float) else v) for k, v in row.items()}
    return res


def evaluate_predictions(pred: Predictions, df: pd.DataFrame) -> dict[str, Any]:
    """The full evaluation of one model on held-out rows of a training-schema table."""
    from training.dataset import corrections, model_inputs

    corr = corrections(df)
    x = model_inputs(df)
    pids = df["patient_id"].to_numpy()
    subsets = with_reference_label(cohort.sensor_subset_of(df).to_numpy(), df)
    levels = df["amputation_level"].to_numpy()

    def take(mask: np.ndarray) -> tuple[Predictions, np.ndarray, np.ndarray, np.ndarray]:
        return {k: v[mask] for k, v in pred.items()}, corr[mask], x[mask], pids[mask]

    res: dict[str, Any] = {"overall": block(*take(np.ones(len(df), bool)))}
    known = [*cohort.SENSOR_SUBSETS, *(s + REFERENCE_SUFFIX for s in cohort.SENSOR_SUBSETS)]
    order = [s for s in known if s in set(subsets)] + sorted(set(subsets) - set(known))
    res["by_sensor_subset"] = {s: block(*take(subsets == s)) for s in order}
    res["by_amputation_level"] = {lv: block(*take(levels == lv)) for lv in sorted(set(levels))}
    res["by_amputation_level_all_sensors"] = {
        lv: block(*take((levels == lv) & (subsets == TARGET_SUBSET)))
        for lv in sorted(set(levels))
        if ((levels == lv) & (subsets == TARGET_SUBSET)).any()
    }
    res["by_parameter"] = per_parameter(pred, corr, x)
    ts = subsets == TARGET_SUBSET
    res["by_parameter_all_sensors"] = per_parameter(*take(ts)[:3]) if ts.any() else {}
    res["reliability_all_sensors"] = reliability(*take(ts)[:2]) if ts.any() else None
    res["reliability_overall"] = reliability(pred, corr)
    res["targets"] = check_targets(res["by_sensor_subset"].get(TARGET_SUBSET, res["overall"]))
    res["operating_points_all_sensors"] = operating_points(*take(ts)[:3]) if ts.any() else []
    res["by_correction_size_all_sensors"] = by_correction_size(*take(ts)[:3]) if ts.any() else []
    return res


# ALIGN_MIN_CONFIDENCE values shown in the model card's operating-point table (the default marked).
OPERATING_POINTS = (0.45, 0.5, MIN_CONFIDENCE, 0.6, 0.7, 0.8)


def operating_points(pred: Predictions, corr: np.ndarray, x: np.ndarray) -> list[dict[str, float | None]]:
    """Strict direction accuracy and specificity of the service rule at other min_confidence values:
    what a clinic that sets ALIGN_MIN_CONFIDENCE trades (the other rules unchanged)."""
    need = np.abs(corr) >= MIN_CHANGE
    well = ~need.any(axis=1)
    out: list[dict[str, float | None]] = []
    for t in OPERATING_POINTS:
        d = service_decisions(pred, x, min_confidence=t)
        right = d.recommended & (d.sign == np.sign(corr))
        wrong_way = d.recommended & need & (d.sign != np.sign(corr))
        silent: np.ndarray = ~np.any(d.recommended, axis=1)
        out.append(
            {
                "min_confidence": t,
                "direction_accuracy": _mean(right[need]),
                "specificity": _mean(silent[well]) if well.any() else None,
                "opposite_direction_rate": _mean(wrong_way[need]),
            }
        )
    return out


# Size of a needed correction in multiples of the parameter's min_change (the clinical threshold).
CORRECTION_SIZE_BINS = ((1.0, 1.5), (1.5, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, math.inf))


def by_correction_size(pred: Predictions, corr: np.ndarray, x: np.ndarray) -> list[dict[str, float | None]]:
    """Strict direction accuracy and sign accuracy of the needed corrections, by their size: how the
    service does on clearly misaligned prostheses against corrections just above the threshold."""
    d = service_decisions(pred, x)
    size = np.abs(corr) / MIN_CHANGE
    right = d.sign == np.sign(corr)
    out: list[dict[str, float | None]] = []
    for lo, hi in CORRECTION_SIZE_BINS:
        m = (size >= lo) & (size < hi)
        out.append(
            {
                "min_multiple": lo,
                "max_multiple": None if math.isinf(hi) else hi,
                "pairs": int(m.sum()),
                "direction_accuracy": _mean((d.recommended & right)[m]),
                "sign_accuracy_given_change": _mean(right[m]),
            }
        )
    return out


def with_reference_label(subsets: np.ndarray, df: pd.DataFrame) -> np.ndarray:
    """Sensor subset names, with REFERENCE_SUFFIX on rows that carry a reference walk."""
    from training.dataset import REFERENCE_COLUMNS

    has_ref = df[list(REFERENCE_COLUMNS)].notna().any(axis=1).to_numpy()
    return np.where(has_ref, np.char.add(subsets.astype(str), REFERENCE_SUFFIX), subsets.astype(str)).astype(object)


def check_targets(b: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"subset": TARGET_SUBSET, "decision_rule": "service (service/recommender.py)"}
    for name, (op, bar) in TARGETS.items():
        v = b.get(name)
        met = None if v is None else (v >= bar if op == ">=" else v <= bar)
        definition, others = TARGET_DEFINITIONS[name]
        out[name] = {
            "value": v,
            "target": f"{op} {bar:g}",
            "met": met,
            "definition": definition,
            "other_definitions_not_judged": {k: b.get(k) for k in others},
        }
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
    ts = with_reference_label(cohort.sensor_subset_of(df).to_numpy(), df) == TARGET_SUBSET
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
