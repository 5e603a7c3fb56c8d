"""What the SERVICE answers on held-out simulated patients: answer kinds, specificity per sensor subset,
opposite-direction advice, and how often each kind is right (issue 13, DESIGN 7).

The held-out walks go through the service's own validation and Recommender (default policy) on the
exported artifact, each feature sent with the sensor the cohort measured it with (so the deviations
count that sensor's error, as in clinic use). Definitions (also in the model card):
- a correction is needed for a parameter when |true correction| >= its min_change; a walk is aligned
  when none is needed;
- specificity: aligned walks that get no adjustment (answer kind neither RECOMMENDED nor TRIAL);
- no_change_rate_aligned: aligned walks answered NO_CHANGE (the accepted-alignment answer);
- opposite_advice_rate: misaligned walks with ANY adjustment (confident, trial or revert) whose
  parameter needs a correction the other way;
- a RECOMMENDED or TRIAL answer is right when its rank-1 adjustment's parameter needs a correction in
  that direction; NO_CHANGE and NOT_ALIGNMENT are right on aligned walks (the simulator has no
  non-alignment causes, so NOT_ALIGNMENT on a misaligned walk is a miss);
- trial calibration: per bin of the stated probability, its mean against the share of trials right.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from service import catalog
from service.catalog import AmputationLevel, SensorKind, Side
from service.domain import AnswerKind, AssessmentInput, FeatureInput, PatientContextInput, Recommendation
from service.model import OnnxModel
from service.recommender import Policy, Recommender
from service.validation import validate_assessment
from training import cohort, dataset

_MIN = np.array([p.min_change for p in catalog.PARAMETERS])
_KNEE = {AmputationLevel.TRANSTIBIAL: "ANATOMICAL", AmputationLevel.TRANSFEMORAL: "MICROPROCESSOR"}
TRIAL_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.55, 1.0)
# Held-out walks scored per run (the whole test split is larger; a sample keeps the pipeline in budget).
MAX_WALKS = 12000


def _kinds(cell: object) -> frozenset[SensorKind]:
    return frozenset(SensorKind(k) for k in str(cell).split(";") if k.strip())


def _assessment(row: Any, kinds: frozenset[SensorKind]) -> AssessmentInput:
    lvl = AmputationLevel(row["amputation_level"])
    feats: list[FeatureInput] = []
    for spec in catalog.FEATURES:
        v = row[spec.name]
        if v is None or (isinstance(v, float) and math.isnan(v)) or spec.name in ("step_length_asymmetry_pct", "stance_time_asymmetry_pct"):
            continue
        feats.append(FeatureInput(spec.name, float(v), "", cohort.best_source(kinds, spec, lvl)))
    for name in ("step_length_asymmetry_pct", "stance_time_asymmetry_pct"):
        v = row[name]
        if not (isinstance(v, float) and math.isnan(v)) and v is not None:
            feats.append(FeatureInput(name, float(v)))
    mass = row["body_mass_kg"]
    k = row["k_level"]
    return AssessmentInput(
        str(row["assessment_id"]),
        PatientContextInput(
            lvl, Side(row["prosthetic_side"]), float(mass) if not math.isnan(mass) else 80.0, None,
            None if math.isnan(k) else int(k), "", _KNEE[lvl],
        ),
        tuple(feats),
    )


def _right(rec: Recommendation, corr: np.ndarray) -> bool:
    need = np.abs(corr) >= _MIN
    if rec.answer_kind in (AnswerKind.NO_CHANGE, AnswerKind.NOT_ALIGNMENT, AnswerKind.INSUFFICIENT_EVIDENCE):
        return not need.any()
    a = rec.adjustments[0]
    j = catalog.PARAMETER_NAMES.index(a.parameter.value)
    return bool(need[j] and np.sign(corr[j]) == np.sign(a.change))


def run(model: OnnxModel, test: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    single = test[~test["assessment_id"].astype(str).str.endswith(cohort.WITH_REFERENCE_SUFFIX)]
    if len(single) > MAX_WALKS:
        single = single.sample(MAX_WALKS, random_state=seed)
    rows = list(single.to_dict("records"))
    kinds = [_kinds(r["sensor_kinds"]) for r in rows]
    batch = [validate_assessment(_assessment(r, k)) for r, k in zip(rows, kinds, strict=True)]
    recs = Recommender(dataclasses.replace(Policy.default(), explain=False)).recommend(model, batch)
    corr = single[list(dataset.CORRECTION_COLUMNS)].to_numpy(dtype=np.float64)
    need = np.abs(corr) >= _MIN[None, :]
    aligned = ~need.any(axis=1)
    subsets = [cohort.subset_name(k) for k in kinds]
    levels = [str(r["amputation_level"]) for r in rows]

    acts = np.array([r.answer_kind in (AnswerKind.RECOMMENDED, AnswerKind.TRIAL) for r in recs])
    no_change = np.array([r.answer_kind is AnswerKind.NO_CHANGE for r in recs])
    opposite = np.zeros(len(recs), dtype=bool)
    for i, r in enumerate(recs):
        for a in r.adjustments:
            j = catalog.PARAMETER_NAMES.index(a.parameter.value)
            if need[i, j] and np.sign(corr[i, j]) == -np.sign(a.change):
                opposite[i] = True
    right = np.array([_right(r, corr[i]) for i, r in enumerate(recs)])

    def share(mask: np.ndarray, of: np.ndarray) -> float | None:
        return float(mask[of].mean()) if of.any() else None

    by_subset: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(subsets):
        s = np.array([x == name for x in subsets])
        by_subset[name] = {
            "walks": int(s.sum()),
            "specificity": share(~acts, s & aligned),
            "no_change_rate_aligned": share(no_change, s & aligned),
            "opposite_advice_rate": share(opposite, s & ~aligned),
            "acted_on_misaligned": share(acts, s & ~aligned),
            "rank1_right_when_acting": share(right, s & acts),
        }
    kinds_out: dict[str, dict[str, Any]] = {}
    for kind in AnswerKind:
        k = np.array([r.answer_kind is kind for r in recs])
        kinds_out[kind.value] = {"share": float(k.mean()), "right": share(right, k), "n": int(k.sum())}
    trial = np.array([r.answer_kind is AnswerKind.TRIAL for r in recs])
    stated = np.array([r.adjustments[0].confidence if r.adjustments else 0.0 for r in recs])
    calibration = []
    for lo, hi in itertools.pairwise(TRIAL_BINS):
        b = trial & (stated >= lo) & (stated < hi)
        if b.any():
            calibration.append({"bin": [lo, hi], "n": int(b.sum()), "stated": float(stated[b].mean()), "right": float(right[b].mean())})
    by_level = {
        lvl: {"specificity": share(~acts, np.array([x == lvl for x in levels]) & aligned),
              "opposite_advice_rate": share(opposite, np.array([x == lvl for x in levels]) & ~aligned)}
        for lvl in dict.fromkeys(levels)
    }
    return {
        "walks": len(recs),
        "aligned_walks": int(aligned.sum()),
        "specificity": share(~acts, aligned),
        "no_change_rate_aligned": share(no_change, aligned),
        "opposite_advice_rate": share(opposite, ~aligned),
        "acted_on_misaligned": share(acts, ~aligned),
        "answer_kinds": kinds_out,
        "trial_calibration": calibration,
        "trials_right_at_least_as_often_as_stated": bool(
            trial.any() and float(right[trial].mean()) >= float(stated[trial].mean()) - 1e-9
        ),
        "by_subset": by_subset,
        "by_level": by_level,
        "kind_counts": dict(Counter(r.answer_kind.value for r in recs)),
    }
