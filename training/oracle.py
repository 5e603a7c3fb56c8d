"""A likelihood oracle: how well could any learner do on one simulated walk?

The model card's strict direction accuracy (0.35) is far from its 0.95 target, and the card blames the
evidence (small published effects against the between-patient spread), not the learner. This module
tests that claim. The simulator is ours, so an estimator can be built that knows everything it does
except the patient's misalignment: the cited effect table, the per-patient gain distribution, the
baseline spread and correlations, the sensor noise and the patient's amputation level and K-level. It
computes the posterior over the correction by importance sampling from the simulator's own prior:

1. candidates: CANDIDATES misalignments from ``cohort.draw_misalignment`` with per-patient gains drawn
   as the cohort draws them, each turned into its feature shift on a typical patient (``cohort.
   _true_features`` with and without it: saturation included);
2. the rest of a walk (baseline, speed, foot type, sensor noise) is treated as Gaussian, with mean and
   covariance measured on aligned simulated walks (per level and K-level; covariance pooled per level);
3. each candidate is weighted by the likelihood of the observed walk; the posterior gives, per
   parameter, P(correction >= +min_change), P(<= -min_change) and the median (and 10%/90%
   quantiles) of |correction| among candidates that need a change, i.e. the outputs of the model.

A second oracle also knows the patient's own aligned gait at this walk's speed (a perfect, drift-free
reference walk): only the sensor noise and the response gains are left.

Both oracles' outputs go through the service's decision rule (``evaluate.block`` and
``evaluate.operating_points``) on the same walks as the exported model. The walks are complete (no
feature dropout) all-sensor walks of fresh simulated patients. Step lengths and stance times of each
side are left out of the likelihood: a misalignment moves only their split, which the asymmetry features
carry, and that split's size in metres depends on the patient.

The oracle is an approximation (Gaussian rest-of-walk, finite candidates: the effective sample size is
reported), so it is a reference, not a proof of the Bayes limit: if the model matches it, a better
learner cannot gain much on these walks; if the oracle were far ahead, the learner would be the gap.
Convergence, measured once (2026-11-25, the bundled model, these walks): with 160,000 instead of 40,000
candidates the oracle's strict accuracy at the model's specificity stayed at 0.38 and its MAE moved by
0.02 deg / 0.01 mm; the known-baseline oracle, whose posterior rests on a handful of candidates, rose
from 0.69 to 0.71 (so its figure is a rough lower estimate). Default sizes take ~24 s of the pipeline.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service import catalog
from service.catalog import AmputationLevel
from service.model import OnnxModel
from training import cohort, evaluate

SEED = 5151
WALKS_DEFAULT = 1500
CANDIDATES_DEFAULT = 40000
BASELINE_PATIENTS_DEFAULT = 40000
_BLOCK_ELEMENTS = 8_000_000  # walks x candidates per posterior block (64 MB of float64 weights)
_KINDS = cohort.SENSOR_SUBSETS["all_sensors"]
_LEVELS = (AmputationLevel.TRANSTIBIAL, AmputationLevel.TRANSFEMORAL)
_SIDES = ("step_length_prosthetic_m", "step_length_sound_m", "stance_time_prosthetic_s", "stance_time_sound_s")
_USED = np.array([i for i, n in enumerate(catalog.FEATURE_NAMES) if n not in _SIDES])
_MIN = np.array([p.min_change for p in catalog.PARAMETERS])
_KEYS = (
    "direction_accuracy",
    "sign_accuracy_given_change",
    "direction_accuracy_when_recommended",
    "detection_rate",
    "specificity",
    "magnitude_mae_deg",
    "magnitude_mae_mm",
    "interval_coverage",
    "ece",
)


@dataclass(frozen=True, slots=True)
class OracleConfig:
    walks: int = WALKS_DEFAULT
    candidates: int = CANDIDATES_DEFAULT
    baseline_patients: int = BASELINE_PATIENTS_DEFAULT
    seed: int = SEED


DEFAULT_CONFIG = OracleConfig()


@dataclass(frozen=True, slots=True)
class _Walk:
    level: AmputationLevel
    k_level: int
    mass: float
    values: np.ndarray  # [n_features] measured, complete
    own_baseline: np.ndarray  # [n_features] the same patient aligned, noise-free, at this walk's speed
    correction: np.ndarray  # [7]


def _features(d: Mapping[str, float]) -> np.ndarray:
    return np.array([d[n] for n in catalog.FEATURE_NAMES])


def _walk(p: Any, rng: np.random.Generator) -> _Walk:
    speed = float(np.clip(p.speed + rng.normal(0, cohort.SPEED_JITTER), 0.2, 2.0))
    true = cohort._true_features(p, speed)
    values = _features(cohort.measure(true, _KINDS, p.level, rng, dropout=0.0))
    own = _features(cohort._true_features(dataclasses.replace(p, x=np.zeros_like(p.x)), speed))
    return _Walk(p.level, p.k_level, p.mass, values, own, -p.x)


def _gaussian_rest(
    cfg: OracleConfig, rng: np.random.Generator
) -> tuple[dict[tuple[AmputationLevel, int], np.ndarray], dict[AmputationLevel, tuple[np.ndarray, np.ndarray]]]:
    """From aligned walks: the mean per (level, K-level) (K-level 0: the whole level), and per level the precision of the whole
    rest of a walk (population oracle) and of the sensor noise alone (known-baseline oracle)."""
    walks: dict[tuple[AmputationLevel, int], list[_Walk]] = {}
    for i in range(cfg.baseline_patients):
        p = cohort._draw_patient(rng, i)
        w = _walk(dataclasses.replace(p, x=np.zeros_like(p.x)), rng)
        walks.setdefault((w.level, w.k_level), []).append(w)
    means: dict[tuple[AmputationLevel, int], np.ndarray] = {}
    precisions: dict[AmputationLevel, tuple[np.ndarray, np.ndarray]] = {}
    for lvl in _LEVELS:
        rest, noise = [], []
        for key, ws in walks.items():
            if key[0] is not lvl:
                continue
            v = np.array([w.values[_USED] for w in ws])
            means[key] = v.mean(axis=0)
            rest.append(v - means[key])
            noise.append(v - np.array([w.own_baseline[_USED] for w in ws]))
        means[lvl, 0] = np.concatenate(
            [v + means[k] for k, v in zip([k for k in walks if k[0] is lvl], rest, strict=True)]
        ).mean(axis=0)
        precisions[lvl] = (
            np.linalg.inv(np.cov(np.concatenate(rest).T)),
            np.linalg.inv(np.cov(np.concatenate(noise).T)),
        )
    return means, precisions


def _candidates(n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[AmputationLevel, np.ndarray]]:
    """n corrections [n, 7] from the cohort's prior and their feature shifts per level [n, used]."""
    effects = catalog.effects()
    x = np.array([cohort.draw_misalignment(rng) for _ in range(n)])
    gains = [{i: float(max(0.0, rng.normal(1.0, e.compensation_cv))) for i, e in enumerate(effects)} for _ in range(n)]
    shifts: dict[AmputationLevel, np.ndarray] = {}
    for lvl in _LEVELS:
        typical = dataclasses.replace(
            cohort._draw_patient(np.random.default_rng(0), 0), level=lvl, foot="MULTIAXIAL", height=1.74
        )
        typical = dataclasses.replace(typical, z=dict.fromkeys(typical.z, 0.0))
        speed = catalog.FEATURES_BY_NAME["walking_speed_m_per_s"].normative[lvl].mean
        aligned = _features(cohort._true_features(dataclasses.replace(typical, x=np.zeros(len(_MIN))), speed))
        s = np.array(
            [
                _features(cohort._true_features(dataclasses.replace(typical, x=x[m], gains=gains[m]), speed))
                for m in range(n)
            ]
        )
        shifts[lvl] = (s - aligned)[:, _USED]
    return -x, shifts


def _posterior(
    resid: np.ndarray, precision: np.ndarray, shifts: np.ndarray, corr: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Posterior outputs for walks with residuals resid [n, used] (observed minus the known mean)."""
    n, m = len(resid), len(corr)
    sp = shifts @ precision
    half_sps = 0.5 * np.einsum("mk,mk->m", sp, shifts)
    up = (corr >= _MIN).astype(np.float64)
    down = (corr <= -_MIN).astype(np.float64)
    size = np.abs(corr)
    order = np.argsort(size, axis=0, kind="stable")
    out = {
        k: np.zeros((n, len(_MIN))) for k in ("p_decrease", "p_increase", "magnitude", "magnitude_lo", "magnitude_hi")
    }
    ess = np.zeros(n)
    chunk = max(1, _BLOCK_ELEMENTS // m)
    for c0 in range(0, n, chunk):
        r = resid[c0 : c0 + chunk]
        ll = r @ sp.T - half_sps  # log-likelihood up to a per-walk constant
        ll -= ll.max(axis=1, keepdims=True)
        w = np.exp(ll)
        w /= w.sum(axis=1, keepdims=True)
        rows = slice(c0, c0 + len(r))
        ess[rows] = 1.0 / np.square(w).sum(axis=1)
        out["p_increase"][rows] = w @ up
        out["p_decrease"][rows] = w @ down
        for j in range(len(_MIN)):
            sorted_size = size[order[:, j], j]
            cw = np.cumsum(w[:, order[:, j]] * (sorted_size >= _MIN[j]), axis=1)
            total = cw[:, -1:] + 1e-300
            for key, q in (("magnitude", 0.5), ("magnitude_lo", 0.1), ("magnitude_hi", 0.9)):
                out[key][rows, j] = sorted_size[np.minimum((cw < q * total).sum(axis=1), m - 1)]
    return out, ess


def _model_input(walks: list[_Walk]) -> np.ndarray:
    n_f = len(catalog.FEATURE_NAMES)
    x = np.full((len(walks), len(catalog.MODEL_INPUT_COLUMNS)), np.nan)
    x[:, :n_f] = [w.values for w in walks]
    x[:, n_f] = [float(w.level is AmputationLevel.TRANSFEMORAL) for w in walks]
    x[:, n_f + 1] = [w.mass for w in walks]
    x[:, n_f + 2] = [float(w.k_level) for w in walks]
    return x


def _summary(pred: Mapping[str, np.ndarray], corr: np.ndarray, x: np.ndarray, ess: np.ndarray | None) -> dict[str, Any]:
    b = evaluate.block(dict(pred), corr, x)
    out: dict[str, Any] = {k: b[k] for k in _KEYS}
    out["operating_points"] = evaluate.operating_points(dict(pred), corr, x)
    if ess is not None:
        out["effective_candidates_median"] = float(np.median(ess))
        out["effective_candidates_p10"] = float(np.percentile(ess, 10))
    return out


def at_specificity(points: list[dict[str, Any]], specificity: float | None) -> float | None:
    """Strict direction accuracy interpolated along operating points at a given specificity; None
    outside the range they span (no extrapolation)."""
    pts = sorted((p["specificity"], p["direction_accuracy"]) for p in points if p["specificity"] is not None)
    if specificity is None or not pts or not pts[0][0] <= specificity <= pts[-1][0]:
        return None
    spec, acc = zip(*pts, strict=True)
    return float(np.interp(specificity, spec, acc))


def run(model_dir: Path, cfg: OracleConfig = DEFAULT_CONFIG) -> dict[str, Any]:
    """The exported model and both oracles on the same complete all-sensor walks (manifest 'oracle')."""
    t0 = time.perf_counter()
    means, precisions = _gaussian_rest(cfg, np.random.default_rng([cfg.seed, 0]))
    corr_c, shifts = _candidates(cfg.candidates, np.random.default_rng([cfg.seed, 1]))
    rng = np.random.default_rng([cfg.seed, 2])
    walks = [_walk(cohort._draw_patient(rng, i), rng) for i in range(cfg.walks)]
    corr = np.array([w.correction for w in walks])
    x = _model_input(walks)
    pop = {
        k: np.zeros((len(walks), len(_MIN)))
        for k in ("p_decrease", "p_increase", "magnitude", "magnitude_lo", "magnitude_hi")
    }
    own = {k: v.copy() for k, v in pop.items()}
    ess_pop, ess_own = np.zeros(len(walks)), np.zeros(len(walks))
    for lvl in _LEVELS:
        idx = np.array([i for i, w in enumerate(walks) if w.level is lvl], dtype=np.intp)
        if not idx.size:
            continue
        observed = np.array([walks[i].values[_USED] for i in idx])
        # A K-level no aligned walk had (tiny runs only): the level's mean.
        known = np.array([means.get((lvl, walks[i].k_level), means[lvl, 0]) for i in idx])
        p_pop, p_noise = precisions[lvl]
        post, ess = _posterior(observed - known, p_pop, shifts[lvl], corr_c)
        post_own, ess_o = _posterior(
            observed - np.array([walks[i].own_baseline[_USED] for i in idx]), p_noise, shifts[lvl], corr_c
        )
        for k in pop:
            pop[k][idx] = post[k]
            own[k][idx] = post_own[k]
        ess_pop[idx], ess_own[idx] = ess, ess_o
    pred = OnnxModel.load(model_dir).predict(x)
    model_out = {k: np.asarray(getattr(pred, k), dtype=np.float64) for k in pop}
    summaries = {
        "model": _summary(model_out, corr, x, None),
        "oracle": _summary(pop, corr, x, ess_pop),
        "oracle_known_baseline": _summary(own, corr, x, ess_own),
    }
    spec = summaries["model"]["specificity"]
    return {
        "seed": cfg.seed,
        "walks": cfg.walks,
        "candidates": cfg.candidates,
        "baseline_patients": cfg.baseline_patients,
        "well_aligned_walks": int((~(np.abs(corr) >= _MIN).any(axis=1)).sum()),
        "changes_needed": int((np.abs(corr) >= _MIN).sum()),
        **summaries,
        # Along each oracle's operating curve (min_confidence moved), at the model's specificity.
        "at_model_specificity": {
            k: at_specificity(summaries[k]["operating_points"], spec) for k in ("oracle", "oracle_known_baseline")
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }


__all__ = ["DEFAULT_CONFIG", "OracleConfig", "at_specificity", "run"]
