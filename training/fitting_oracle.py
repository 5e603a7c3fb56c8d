"""The fitting-loop oracle: a likelihood posterior over the misalignment, updated with each walk.

It knows what the simulator knows except the patient (the cited effect table, the between-patient
baseline spread and its correlations, the walk-to-walk variation, each sensor's noise) and exactly what
the service is told: the walks of this fitting and the changes applied between them. Walk t of a
patient with misalignment x, after the known changes c_t, is modelled as

    y_t = mu_level + b + S(x + c_t) + e_t,   b ~ N(0, Sigma_b) (the patient, shared by the walks),
                                             e_t ~ N(0, Sigma_w + diag(noise^2)) (per walk)

with S the effect table at the patient's response gains (saturation and one-sided shapes included).
The patient term b is integrated out, so the walks' shared baseline cancels the way a reference walk
does, and each known change shows the response to it. Candidates (x and the gains) are drawn from the
cohort's own priors (``cohort.draw_misalignment``, ``cohort.draw_gains``); their posterior weights are
the joint likelihood of the walks so far (see ``Posterior``).

Decision (Bayes, one parameter per walk like the ceiling): among "no change" and every single-parameter
step from the smallest effective change to the safe step, the one with the least expected out-of-band
misalignment after it (``fitting_loop.out_of_band_load``) over the posterior; the fitting stops when no
step lowers it by MIN_GAIN. (Acting on the most probable direction instead made 10-35% of patients
worse; measured 2026-12-04 on 60 patients.)

What the walks can tell (measured with this oracle): the cohort's effects are additive and mostly
linear, so the response to a known change c is S(c) whatever the misalignment x is; it reveals the
patient's response gains and the one-sided or saturating effects, not the patient's own baseline b,
which stays confounded with S(x) except through the population prior. Repeated walks average the
sensor noise away, not the between-patient spread. So on these simulated patients the loop's extra
walks sharpen the answer much less than a reference walk at a known-good alignment does. Approximations (reported as such): the candidate set is finite
(importance sampling from the prior, as ``training.oracle``; the sharper the likelihood, the fewer
candidates carry it, so ``oracle_known_baseline``, whose likelihood is sharpest, is a rough lower
estimate: measured 0.47 in the band within 6 walks on all sensors against the ceiling's 0.99), Sigma_b and Sigma_w are Gaussian fits to
simulated aligned walks, and measured values are not clipped to the catalog ranges as ``measure`` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from service import catalog
from service.catalog import AmputationLevel, SensorKind
from service.domain import AnswerKind
from training import cohort

CANDIDATES = 4000
# Candidate steps per parameter: +-5 sizes from the smallest effective change to the safe step.
_SIZES = [np.concatenate([-np.linspace(p.min_change, p.max_step, 5), np.linspace(p.min_change, p.max_step, 5)])
          for p in catalog.PARAMETERS]
# A step must lower the expected out-of-band load by this much (safe steps) to be worth a walk.
MIN_GAIN = 0.02
BASELINE_PATIENTS = 1000
SEED = 9393
NOISE_DRAWS = 600
_LEVELS = (AmputationLevel.TRANSTIBIAL, AmputationLevel.TRANSFEMORAL)
# Per-side step lengths and stance times: a misalignment moves only their split (the asymmetry features
# carry it) and their size depends on the patient's height and cadence (as training.oracle).
_SIDES = ("step_length_prosthetic_m", "step_length_sound_m", "stance_time_prosthetic_s", "stance_time_sound_s")
_USED = np.array([i for i, n in enumerate(catalog.FEATURE_NAMES) if n not in _SIDES])
_MIN = np.array([p.min_change for p in catalog.PARAMETERS])
_STEP = np.array([p.max_step for p in catalog.PARAMETERS])


@dataclasses.dataclass(frozen=True, slots=True)
class _LevelModel:
    mean: np.ndarray  # [used] aligned population mean
    between: np.ndarray  # [used, used] Sigma_b
    within: np.ndarray  # [used, used] walk-to-walk variation (speed jitter), noise-free
    rows_param: np.ndarray  # [rows] parameter index of each effect row
    rows_slope: np.ndarray
    rows_shape: np.ndarray  # 0 linear, 1 symmetric, 2 positive, 3 negative
    rows_sat: np.ndarray  # inf where none
    rows_to_feature: np.ndarray  # [rows, used] 0/1 scatter
    rows_index: np.ndarray  # [rows] index of each row in catalog.effects() (the gains' columns)


def _vec(d: dict[str, float]) -> np.ndarray:
    out: np.ndarray = np.array([d[n] for n in catalog.FEATURE_NAMES])[_USED]
    return out


@cache
def _level_model(level: AmputationLevel) -> _LevelModel:
    rng = np.random.default_rng([SEED, 0, int(level is AmputationLevel.TRANSFEMORAL)])
    f1: list[np.ndarray] = []
    f2: list[np.ndarray] = []
    for i in range(BASELINE_PATIENTS):
        p = dataclasses.replace(cohort._draw_patient(rng, i), level=level)
        p = dataclasses.replace(p, x=np.zeros(len(_MIN)))
        for out in (f1, f2):
            speed = float(np.clip(p.speed + rng.normal(0, cohort.SPEED_JITTER), 0.2, 2.0))
            out.append(_vec(cohort._true_features(p, speed)))
    a, b = np.array(f1), np.array(f2)
    within = np.cov((a - b).T) / 2.0
    between = np.cov(((a + b) / 2.0).T) - within / 2.0
    used_index = {int(k): n for n, k in enumerate(_USED)}
    rows = [
        (i, e) for i, e in enumerate(catalog.effects())
        if (e.level is None or e.level is level) and catalog.FEATURE_INDEX[e.feature] in used_index
    ]
    scatter = np.zeros((len(rows), len(_USED)))
    for r, (_, e) in enumerate(rows):
        scatter[r, used_index[catalog.FEATURE_INDEX[e.feature]]] = 1.0
    shapes = {"linear": 0, "symmetric": 1, "positive": 2, "negative": 3}
    return _LevelModel(
        mean=(a.mean(axis=0) + b.mean(axis=0)) / 2.0,
        between=between,
        within=within,
        rows_param=np.array([catalog.PARAMETER_NAMES.index(e.parameter.value) for _, e in rows]),
        rows_slope=np.array([e.slope for _, e in rows]),
        rows_shape=np.array([shapes[e.shape] for _, e in rows]),
        rows_sat=np.array([np.inf if e.saturation is None else e.saturation for _, e in rows]),
        rows_to_feature=scatter,
        rows_index=np.array([i for i, _ in rows]),
    )


@cache
def _noise_cov(level: AmputationLevel, kinds: frozenset[SensorKind]) -> np.ndarray:
    """Measurement error covariance [used, used] of a sensor set, measured on the cohort's own ``measure``
    (derived asymmetries included); 1 on the diagonal where the set cannot measure a feature."""
    rng = np.random.default_rng([SEED, 2])
    p = dataclasses.replace(cohort._draw_patient(rng, 0), level=level, x=np.zeros(len(_MIN)))
    true = cohort._true_features(p, p.speed)
    t = _vec(true)
    err = np.array([_vec(cohort.measure(true, kinds, level, rng, dropout=0.0)) - t for _ in range(NOISE_DRAWS)])
    ok = ~np.isnan(err).any(axis=0)
    cov = np.eye(len(_USED))
    if ok.any():
        cov[np.ix_(ok, ok)] = np.atleast_2d(np.cov(err[:, ok].T))
    return cov


@dataclasses.dataclass(frozen=True, slots=True)
class _Candidates:
    x: np.ndarray  # [m, 7] misalignments from the cohort's prior
    gains: np.ndarray  # [m, effect rows of the catalog] response gains drawn as the cohort draws them


@cache
def _candidates() -> _Candidates:
    rng = np.random.default_rng([SEED, 1])
    x = np.array([cohort.draw_misalignment(rng) for _ in range(CANDIDATES)])
    gains = [cohort.draw_gains(rng) for _ in range(CANDIDATES)]
    n_rows = len(catalog.effects())
    return _Candidates(x, np.array([[g[i] for i in range(n_rows)] for g in gains]))


@cache
def _level_gains(level: AmputationLevel) -> np.ndarray:
    """The candidates' gains [m, rows] of this level's effect rows."""
    return np.ascontiguousarray(_candidates().gains[:, _level_model(level).rows_index])


def _row_shifts(lm: _LevelModel, x: np.ndarray, gains: np.ndarray | None, cols: np.ndarray | None = None) -> np.ndarray:
    """Per effect row feature change [m, rows] (or the rows `cols`) of misalignments x [m, 7]."""
    c = slice(None) if cols is None else cols
    xi = x[:, lm.rows_param[c]]
    shape = lm.rows_shape[c]
    d = np.where(shape == 1, np.abs(xi), xi) * lm.rows_slope[c]
    d = np.where(((shape == 2) & (xi <= 0)) | ((shape == 3) & (xi >= 0)), 0.0, d)
    if gains is not None:
        d *= gains[:, c]
    sat = lm.rows_sat[c]
    return np.clip(d, -sat, sat)


def shifts(lm: _LevelModel, x: np.ndarray, gains: np.ndarray | None = None) -> np.ndarray:
    """Feature shifts [m, used] of misalignments x [m, 7] at per-row gains [m, rows of the level]
    (the mean response when None); the cohort's shapes and saturation."""
    return np.asarray(_row_shifts(lm, x, gains) @ lm.rows_to_feature)


class Posterior:
    """One patient's posterior over the candidates, updated walk by walk.

    The patient term b is integrated out in closed form: with A_t the precision of walk t's error
    (zero rows and columns for its missing features) and r_t its residual for a candidate,
    -2 log L = sum_t r_t' A_t r_t - u' (Sigma_b^-1 + sum_t A_t)^-1 u + const, u = sum_t A_t r_t. The
    sums are kept, so a new walk costs one pass over the candidates."""

    def __init__(
        self, level: AmputationLevel, kinds: frozenset[SensorKind], own_baseline: np.ndarray | None = None
    ) -> None:
        """own_baseline: the patient's own aligned features at the usual speed (catalog order, noise-free)
        for the oracle that also knows it; then only the walk-to-walk variation and the noise remain."""
        self.level = level
        self.kinds = kinds
        self.lm = _level_model(level)
        self.cand = _candidates()
        self.gains = _level_gains(level)
        # Only the features this sensor set can measure take part (the rest are missing in every walk).
        mask = np.array(catalog.feature_sensor_mask(kinds))[_USED]
        self.cols = np.flatnonzero(mask)
        k = len(self.cols)
        sub = np.ix_(self.cols, self.cols)
        between = self.lm.between[sub]
        self.between_precision = np.linalg.inv(between + 1e-6 * np.diag(np.diag(between)) + 1e-12 * np.eye(k))
        if own_baseline is not None:
            self.between_precision = 1e6 * np.diag(1.0 / np.maximum(np.diag(between), 1e-12))
        self.sigma_e = (self.lm.within + _noise_cov(level, kinds))[sub]
        self.mean = (self.lm.mean if own_baseline is None else own_baseline[_USED])[self.cols]
        self.scatter = self.lm.rows_to_feature[:, self.cols]
        n = len(self.cand.x)
        self.term1 = np.zeros(n)
        self.u = np.zeros((n, k))
        self.sum_a = np.zeros((k, k))
        self.walks = 0
        self.applied = np.zeros(len(_MIN))
        self.shift = _row_shifts(self.lm, self.cand.x, self.gains) @ self.scatter  # [m, measurable features]

    def _move(self, applied: np.ndarray) -> None:
        """Candidate shifts at the new cumulative change: only the changed parameters' rows move."""
        for j in np.flatnonzero(applied != self.applied).tolist():
            cols = np.flatnonzero(self.lm.rows_param == j)
            if not cols.size:
                continue
            new = _row_shifts(self.lm, self.cand.x + applied, self.gains, cols)
            old = _row_shifts(self.lm, self.cand.x + self.applied, self.gains, cols)
            self.shift += (new - old) @ self.scatter[cols]
        self.applied = applied.copy()

    def add(self, values: np.ndarray, applied: np.ndarray) -> None:
        """A walk (catalog values, NaN where missing) at the cumulative known change `applied`."""
        y = values[_USED][self.cols]
        ok = ~np.isnan(y)
        self.walks += 1
        if not ok.any():
            return
        self._move(applied)
        a = np.zeros_like(self.sigma_e)
        sub = self.sigma_e[np.ix_(ok, ok)]
        a[np.ix_(ok, ok)] = np.linalg.inv(sub + 1e-9 * np.diag(np.diag(sub)))
        r = np.where(ok, y - self.mean, 0.0)[None, :] - self.shift * ok
        ar = r @ a
        self.term1 += np.einsum("mf,mf->m", r, ar)
        self.u += ar
        self.sum_a += a

    def weights(self) -> np.ndarray:
        c = np.linalg.inv(self.between_precision + self.sum_a)
        q = self.term1 - np.einsum("mf,mf->m", self.u @ c, self.u)
        ll = -0.5 * q
        w = np.exp(ll - ll.max())
        out: np.ndarray = w / w.sum()
        return out


class OraclePolicy:
    """known_baseline: the oracle also knows the patient's own aligned gait (a perfect reference walk):
    what the patient's baseline is worth to the loop."""

    def __init__(self, known_baseline: bool = False) -> None:
        self.known_baseline = known_baseline
        self.name = "oracle_known_baseline" if known_baseline else "oracle"

    def decide(self, states: Sequence[Any], kinds: frozenset[SensorKind]) -> list[tuple[int, float] | None]:
        return [self.one(s, kinds) for s in states]

    def one(self, s: Any, kinds: frozenset[SensorKind]) -> tuple[int, float] | None:
        post: Posterior | None = s.memo.get("oracle")
        if post is None:
            own = None
            if self.known_baseline:
                p = s.patient
                aligned = dataclasses.replace(p, x=np.zeros(len(_MIN)))
                own = np.array([cohort._true_features(aligned, p.speed)[n] for n in catalog.FEATURE_NAMES])
            post = s.memo["oracle"] = Posterior(s.patient.level, kinds, own)
        applied = np.zeros(len(_MIN))
        for j, change in s.applied:
            applied[j] += change
        post.add(s.walks[-1].values, applied)  # the known changes so far lead to this walk
        assert post.walks == len(s.walks)
        w = post.weights()
        keep = w > 1e-12  # candidates that carry any weight (the rest cannot move an expectation)
        w, cur = w[keep], post.cand.x[keep] + applied
        # The Bayes step: the single-parameter change (or none) with the least expected out-of-band
        # misalignment after it, over the posterior.
        term = _load_terms(cur)  # [m, 7]
        now = float(w @ term.sum(axis=1))
        best, best_loss = None, now - MIN_GAIN
        for j in range(len(_MIN)):
            after = _load_terms(cur[:, j : j + 1] + _SIZES[j][None, :], j)  # [m, sizes]
            loss = now + w @ (after - term[:, j : j + 1])
            k = int(np.argmin(loss))
            if loss[k] < best_loss:
                best, best_loss = (j, float(_SIZES[j][k])), float(loss[k])
        if s.first_kind is None:
            s.first_kind = AnswerKind.NO_CHANGE if best is None else AnswerKind.RECOMMENDED
        return best


def _load_terms(x: np.ndarray, j: int | None = None) -> np.ndarray:
    """Per-parameter out-of-band load |x| / max_step where |x| >= min_change (fitting_loop's measure)."""
    mins = _MIN if j is None else _MIN[j]
    steps = _STEP if j is None else _STEP[j]
    out: np.ndarray = np.where(np.abs(x) >= mins, np.abs(x) / steps, 0.0)
    return out


def identifiability(kinds: frozenset[SensorKind]) -> dict[str, dict[str, dict[str, float]]]:
    """What any policy could know of each parameter from the walks of one fitting (reported, not judged).

    A Gaussian (Cramer-Rao) bound at the mean response gain: with the effect table's slopes J (per unit
    of each parameter, on the + side of aligned), the between-patient baseline spread Sigma_b and the
    walk-to-walk variation plus sensor noise Sigma_e of this sensor set, the posterior SD of each
    parameter from n walks under a flat prior is sqrt(diag((J' (Sigma_b + Sigma_e / n)^-1 J)^-1)).
    Known changes move every walk by J c, so under these additive, mostly linear effects they add no
    information about x, and even infinitely many walks keep Sigma_b: `joint_sd_walks_inf`. `alone_sd`
    is the same bound when only this parameter can be off (no confusion with the others). Inside the
    band means |x| < min_change, so a bound near or above min_change means no policy can reliably
    land inside it from the walks alone, whatever it learns (the ceiling knows x)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for level in _LEVELS:
        lm = _level_model(level)
        mask = np.array(catalog.feature_sensor_mask(kinds))[_USED]
        cols = np.flatnonzero(mask)
        jac = np.zeros((len(cols), len(_MIN)))
        for j in range(len(_MIN)):
            x = np.zeros((1, len(_MIN)))
            x[0, j] = _MIN[j]
            jac[:, j] = shifts(lm, x)[0][cols] / _MIN[j]
        sub = np.ix_(cols, cols)
        noise = (lm.within + _noise_cov(level, kinds))[sub]
        rows: dict[str, dict[str, float]] = {}
        sds = {}
        for label, n in (("walks_1", 1.0), ("walks_6", 6.0), ("walks_inf", np.inf)):
            cov = lm.between[sub] + (noise / n if np.isfinite(n) else 0.0)
            fisher = jac.T @ np.linalg.inv(cov + 1e-12 * np.eye(len(cols))) @ jac
            sds[label] = (np.sqrt(np.diag(np.linalg.pinv(fisher))), 1.0 / np.sqrt(np.maximum(np.diag(fisher), 1e-300)))
        for j, p in enumerate(catalog.PARAMETERS):
            rows[p.parameter.value] = {
                "min_change": float(_MIN[j]),
                "joint_sd_walks_1": float(sds["walks_1"][0][j]),
                "joint_sd_walks_6": float(sds["walks_6"][0][j]),
                "joint_sd_walks_inf": float(sds["walks_inf"][0][j]),
                "alone_sd_walks_inf": float(sds["walks_inf"][1][j]),
            }
        out[level.value] = rows
    return out


__all__ = ["OraclePolicy", "Posterior", "identifiability", "shifts"]
