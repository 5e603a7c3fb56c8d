"""Closed-loop fittings on the simulator: what a prosthetist gets by following the service round by round.

One walk of a new patient carries little alignment information (the card's strict direction accuracy),
but a fitting is a loop: assess, change one thing, walk again. This replays that loop for fresh
simulated patients (drawn from their own seed, so none was trained on) with the exported model and the
service's own code (validation and `Recommender`, default policy), not a re-implementation:

1. the patient walks with the current alignment (cohort._true_features, the cohort's noise and missing
   features for the sensor set, a little speed jitter per walk);
2. the service answers; the rank-1 adjustment is applied as recommended (clamped step, signed), the
   usual "one change at a time" practice;
3. repeat until the service recommends nothing (the prosthetist accepts) or after ROUNDS walks.
Each setting runs twice on the same walks' seeds: acting on every rank-1 answer, and ("HIGH only")
acting only when the rank-1 adjustment's probability reaches the service's HIGH level.

Reported per sensor set, alone and with the patient's reference walk from the visit where the alignment
was last accepted (the same reference sent in every round):
- fitted: share of the initially misaligned patients who end inside the no-change band (every
  |misalignment| below min_change);
- stopped early: share of them accepted while still outside the band;
- worse steps: share of applied steps that moved their parameter further from aligned, split into a
  parameter that needed no change (and how many of those while another parameter of the same plane
  did: overlapping signatures), overshoot, and the wrong way;
- remaining misalignment: mean over misaligned patients of the sum of |misalignment| / max_step (in
  safe steps), at the start and at the end;
- left alone: share of the well-aligned patients to whom the first walk recommends nothing, and share
  of them pushed out of the band by the end.
Simulated patients, simulated responses: a property of the simulator and the model together, not a
clinical outcome.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service import catalog
from service.catalog import AmputationLevel, SensorKind, Side
from service.domain import AssessmentInput, FeatureInput, PatientContextInput
from service.model import OnnxModel
from service.recommender import Policy, Recommender
from service.validation import validate_assessment
from training import cohort

ROUNDS = 4
SEED = 4242
PATIENTS_DEFAULT = 1000
SUBSETS = ("all_sensors", "imu_only")
HIGH_CONFIDENCE = 0.8  # the service's HIGH level (recommender._level)
_MIN = np.array([p.min_change for p in catalog.PARAMETERS])
_STEP = np.array([p.max_step for p in catalog.PARAMETERS])
_PLANE = [p.plane for p in catalog.PARAMETERS]
_KNEE = {AmputationLevel.TRANSTIBIAL: "ANATOMICAL", AmputationLevel.TRANSFEMORAL: "MICROPROCESSOR"}


def _features(values: dict[str, float], kinds: frozenset[SensorKind]) -> tuple[FeatureInput, ...]:
    out = []
    for spec in catalog.FEATURES:
        v = values[spec.name]
        if math.isnan(v):
            continue
        source = next((k for k in spec.sources if k in kinds), None)
        out.append(FeatureInput(spec.name, v, "", source))
    return tuple(out)


def _walk(p: Any, x: np.ndarray, kinds: frozenset[SensorKind], rng: np.random.Generator) -> dict[str, float]:
    speed = float(np.clip(p.speed + rng.normal(0, cohort.SPEED_JITTER), 0.2, 2.0))
    return cohort.measure(cohort._true_features(dataclasses.replace(p, x=x), speed), kinds, p.level, rng)


def _in_band(x: np.ndarray) -> bool:
    return bool(np.all(np.abs(x) < _MIN))


def run_subset(model: OnnxModel, patients: Sequence[Any], refs: Sequence[Any], kinds: frozenset[SensorKind],
               with_reference: bool, seed: int, min_confidence: float = 0.0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    rec = Recommender(dataclasses.replace(Policy.default(), explain=False))
    x = np.array([p.x for p in patients], dtype=np.float64)
    start = x.copy()
    misaligned = np.array([not _in_band(row) for row in start])
    active = np.ones(len(patients), dtype=bool)
    stopped_outside = np.zeros(len(patients), dtype=bool)
    first_untouched = np.zeros(len(patients), dtype=bool)
    steps = worse = 0
    worse_kind = {"in_band_before": 0, "overshoot": 0, "wrong_way": 0}
    in_band_same_plane = 0  # of the in-band ones: another parameter of the same plane needed the change
    ref_feats = [_features(_walk(r, r.x, kinds, rng), kinds) if with_reference else () for r in refs]
    for rnd in range(ROUNDS):
        idx = np.flatnonzero(active)
        if not idx.size:
            break
        batch = []
        for i in idx.tolist():
            p = patients[i]
            ctx = PatientContextInput(p.level, Side(p.side), p.mass, p.height, p.k_level, p.foot, _KNEE[p.level])
            a = AssessmentInput(f"{p.pid}-R{rnd}", ctx, _features(_walk(p, x[i], kinds, rng), kinds), ref_feats[i])
            batch.append(validate_assessment(a))
        for i, r in zip(idx.tolist(), rec.recommend(model, batch), strict=True):
            if rnd == 0 and not r.adjustments:
                first_untouched[i] = True
            if not r.adjustments or r.adjustments[0].confidence < min_confidence:
                active[i] = False  # nothing recommended, or not confidently enough to act on
                stopped_outside[i] = not _in_band(x[i])
                continue
            adj = r.adjustments[0]
            j = catalog.PARAMETER_NAMES.index(adj.parameter.value)
            old = x[i, j]
            x[i, j] += adj.change  # the correction undoes the misalignment
            steps += 1
            if abs(x[i, j]) > abs(old) + 1e-9:
                worse += 1
                if abs(old) < _MIN[j]:
                    worse_kind["in_band_before"] += 1  # a parameter that needed no change
                    in_band_same_plane += int(any(
                        k != j and _PLANE[k] is _PLANE[j] and abs(x[i, k]) >= _MIN[k] for k in range(len(_MIN))
                    ))
                elif np.sign(x[i, j]) != np.sign(old):
                    worse_kind["overshoot"] += 1  # right way, too far
                else:
                    worse_kind["wrong_way"] += 1
    fitted = np.array([_in_band(row) for row in x])
    m, w = misaligned, ~misaligned

    def load(arr: np.ndarray) -> float:  # mean misalignment of the misaligned patients, in safe steps
        return float(np.mean(np.sum(np.abs(arr[m]) / _STEP, axis=1))) if m.any() else math.nan

    return {
        "misaligned_patients": int(m.sum()),
        "well_aligned_patients": int(w.sum()),
        "fitted": float(fitted[m].mean()) if m.any() else math.nan,
        "stopped_early": float(stopped_outside[m].mean()) if m.any() else math.nan,
        "worse_step_rate": worse / steps if steps else 0.0,
        **{f"worse_steps_{k}": v / steps if steps else 0.0 for k, v in worse_kind.items()},
        "in_band_steps_with_a_needed_same_plane_parameter": (
            in_band_same_plane / worse_kind["in_band_before"] if worse_kind["in_band_before"] else 0.0
        ),
        "steps_per_misaligned_patient": steps / max(int(m.sum()), 1),
        "remaining_safe_steps_start": load(start),
        "remaining_safe_steps_end": load(x),
        "well_aligned_left_alone": float(first_untouched[w].mean()) if w.any() else math.nan,
        "well_aligned_pushed_out": float((~fitted[w]).mean()) if w.any() else math.nan,
    }


def run(model_dir: Path, n_patients: int = PATIENTS_DEFAULT, seed: int = SEED,
        subsets: Sequence[str] = SUBSETS) -> dict[str, Any]:
    model = OnnxModel.load(model_dir)
    rng = np.random.default_rng(seed)
    rng_ref = np.random.default_rng([seed, 1])
    patients = [cohort._draw_patient(rng, i) for i in range(n_patients)]
    refs = [cohort._reference_patient(p, rng_ref) for p in patients]
    out: dict[str, Any] = {"rounds": ROUNDS, "patients": n_patients, "seed": seed, "by_subset": {}}
    for k, name in enumerate(subsets):
        kinds = cohort.SENSOR_SUBSETS[name]
        for with_ref in (False, True):
            key = name + ("+reference" if with_ref else "")
            walk_seed = seed + 10 * k + int(with_ref)
            out["by_subset"][key] = run_subset(model, patients, refs, kinds, with_ref, walk_seed)
            # The same walks, acting only on HIGH-confidence answers (what the confidence is for).
            out["by_subset"][key + ", HIGH only"] = run_subset(
                model, patients, refs, kinds, with_ref, walk_seed, min_confidence=HIGH_CONFIDENCE
            )
    return out


__all__ = ["ROUNDS", "run", "run_subset"]
