"""The fitting-loop oracle: a likelihood posterior over the misalignment, updated with each walk.

It knows what the simulator knows except the patient (the cited effect table, the between-patient
baseline spread and its correlations, the walk-to-walk variation, each sensor's noise) and exactly what
the service is told: the walks of this fitting and the changes applied between them. Walk t of a
patient with misalignment x, after the known changes c_t, is modelled as

    y_t = mu_level + b + S(x + c_t) + e_t,   b ~ N(0, Sigma_b) (the patient, shared by the walks),
                                             e_t ~ N(0, Sigma_w + diag(noise^2)) (per walk)

with S the effect table at the mean response gain (saturation and one-sided shapes included). The
patient term b is integrated out, so the walks' shared baseline cancels the way a reference walk does,
and each known change shows the response to it. Candidates x are drawn from the cohort's own prior
(``cohort.draw_misalignment``); their posterior weights are the joint likelihood of the walks so far.

Decision: the fitting stops once the posterior puts the patient inside the band with probability
>= STOP_AT; else the step is the (parameter, direction) most probably needing a change, by the
posterior median correction in that direction, clamped to the safe step. (Acting on the posterior mean
instead stops far too early: the mean shrinks toward aligned; measured 2026-12-04, 0.15 vs 0.25 in the
band within 6 walks on 60 patients.)

What the walks can tell (measured with this oracle): the cohort's effects are additive and mostly
linear, so the response to a known change c is S(c) whatever the misalignment x is; it reveals the
patient's response gains and the one-sided or saturating effects, not the patient's own baseline b,
which stays confounded with S(x) except through the population prior. Repeated walks average the
sensor noise away, not the between-patient spread. So on these simulated patients the loop's extra
walks sharpen the answer much less than a reference walk at a known-good alignment does. Approximations (reported as such): the candidate set is
finite, gains are at their mean (the between-patient gain spread is not integrated), and walks use the
features present in all of them.
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

CANDIDATES = 6000
STOP_AT = 0.5  # stop once the patient is more likely inside the band than not
BASELINE_PATIENTS = 2000
SEED = 9393
NOISE_DRAWS = 1500
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


@cache
def _candidates() -> np.ndarray:
    rng = np.random.default_rng([SEED, 1])
    return np.array([cohort.draw_misalignment(rng) for _ in range(CANDIDATES)])


def shifts(lm: _LevelModel, x: np.ndarray) -> np.ndarray:
    """Feature shifts [m, used] of misalignments x [m, 7] at the mean response gain."""
    xi = x[:, lm.rows_param]
    d = np.where(lm.rows_shape == 1, np.abs(xi), xi) * lm.rows_slope
    d = np.where((lm.rows_shape == 2) & (xi <= 0), 0.0, d)
    d = np.where((lm.rows_shape == 3) & (xi >= 0), 0.0, d)
    d = np.clip(d, -lm.rows_sat, lm.rows_sat)
    return np.asarray(d @ lm.rows_to_feature)


def posterior(
    level: AmputationLevel,
    kinds: frozenset[SensorKind],
    walks: Sequence[np.ndarray],
    applied: Sequence[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Weights over the candidates and their current misalignments [m, 7] given the walks (catalog
    values, NaN where missing) and the cumulative known change at each walk."""
    lm = _level_model(level)
    cand = _candidates()
    obs = np.array([w[_USED] for w in walks])
    keep = ~np.isnan(obs).any(axis=0)
    if not keep.any():
        cur = cand + applied[-1]
        return np.full(len(cand), 1.0 / len(cand)), cur
    sigma_e = lm.within + _noise_cov(level, kinds)
    ke = np.ix_(keep, keep)
    sigma_e = sigma_e[ke]
    sigma_b = lm.between[ke]
    ridge = 1e-9 * np.eye(int(keep.sum())) * max(float(np.max(np.diag(sigma_e))), 1e-12)
    prec_e = np.linalg.inv(sigma_e + ridge)
    t_walks = len(walks)
    c = np.linalg.inv(np.linalg.inv(sigma_b + np.diag(np.diag(sigma_b)) * 1e-6 + ridge) + t_walks * prec_e)
    term1 = np.zeros(len(cand))
    u = np.zeros((len(cand), int(keep.sum())))
    for t in range(t_walks):
        r = (obs[t] - lm.mean)[keep][None, :] - shifts(lm, cand + applied[t])[:, keep]
        ar = r @ prec_e
        term1 += np.einsum("mf,mf->m", r, ar)
        u += ar
    q = term1 - np.einsum("mf,mf->m", u @ c, u)
    ll = -0.5 * q
    w = np.exp(ll - ll.max())
    return w / w.sum(), cand + applied[-1]


class OraclePolicy:
    name = "oracle"

    def decide(self, states: Sequence[Any], kinds: frozenset[SensorKind]) -> list[tuple[int, float] | None]:
        return [self.one(s, kinds) for s in states]

    def one(self, s: Any, kinds: frozenset[SensorKind]) -> tuple[int, float] | None:
        cum = [np.zeros(len(_MIN))]
        for j, change in s.applied:
            nxt = cum[-1].copy()
            nxt[j] += change
            cum.append(nxt)
        w, cur = posterior(s.patient.level, kinds, [wk.values for wk in s.walks], cum)
        p_band = float(w @ np.all(np.abs(cur) < _MIN, axis=1))
        if s.first_kind is None:
            s.first_kind = AnswerKind.NO_CHANGE if p_band >= STOP_AT else AnswerKind.RECOMMENDED
        if p_band >= STOP_AT:
            return None
        p_up = w @ (cur <= -_MIN)  # a + correction needed
        p_down = w @ (cur >= _MIN)
        best_up, best_down = int(np.argmax(p_up)), int(np.argmax(p_down))
        j, sign = (best_up, 1.0) if p_up[best_up] >= p_down[best_down] else (best_down, -1.0)
        need = (-cur[:, j] * sign) >= _MIN[j]
        size = -cur[need, j] * sign
        order = np.argsort(size)
        cw = np.cumsum(w[need][order])
        median = float(size[order][min(int(np.searchsorted(cw, 0.5 * cw[-1])), len(order) - 1)])
        return (j, sign * float(np.clip(median, _MIN[j], _STEP[j])))


__all__ = ["OraclePolicy", "posterior", "shifts"]
