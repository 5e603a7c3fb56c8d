"""The model: per parameter, a direction classifier and conditional magnitude regressors.

For each of the seven parameters (catalog.PARAMETER_NAMES order):
- direction: 3 classes, decrease / no change / increase, where "change needed" means
  |correction| >= min_change (the smallest change with a published effect, DESIGN 3.1);
- magnitude: |correction| given that a change is needed, with a 10%-90% interval (quantile models).

Inputs are catalog.MODEL_INPUT_COLUMNS with NaN for missing; LightGBM routes missing values natively, so
the same model serves every sensor subset. The LightGBM family is the one exported to ONNX
(``training.onnx_graph`` replicates ``LightGBMAlignmentModel.predict`` op for op, including the
temperature calibration). The random-forest family exists for the model-family comparison the
evaluation reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
from sklearn.ensemble import RandomForestRegressor

from service import catalog

CLASS_DECREASE, CLASS_NONE, CLASS_INCREASE = 0, 1, 2
OUTPUT_NAMES: tuple[str, ...] = ("p_decrease", "p_increase", "magnitude", "magnitude_lo", "magnitude_hi")
QUANTILES = (0.1, 0.9)
# Probabilities are floored before the log of the temperature map; the ONNX graph uses the same floor.
PROB_FLOOR = 1e-7
MIN_CHANGE = np.array([p.min_change for p in catalog.PARAMETERS])
MAX_STEP = np.array([p.max_step for p in catalog.PARAMETERS])
# Fewer labelled changes than this for a parameter: the magnitude models fall back to a constant
# (small clinic tables can lack a parameter entirely).
MIN_CHANGE_ROWS = 8

Predictions = dict[str, np.ndarray]
# The change-since-reference columns of the model input (catalog.REFERENCE_CHANGE_COLUMNS): a row has a
# reference walk when any of them is present.
REFERENCE_INDEX = np.array([catalog.MODEL_INPUT_COLUMNS.index(c) for c in catalog.REFERENCE_CHANGE_COLUMNS])
# Fewer training rows with a reference walk than this: no reference stage is fitted (small clinic tables).
MIN_REFERENCE_ROWS = 100


def has_reference(x: np.ndarray) -> np.ndarray:
    """[N] bool: the row carries a reference walk (works on the input and the augmented input)."""
    return np.asarray(~np.all(np.isnan(x[:, REFERENCE_INDEX]), axis=1))

# Engineered inputs, computed from the raw catalog columns INSIDE the model (the ONNX graph computes
# them with Sub nodes before the tree ensembles, so the service keeps sending raw catalog features).
# (name, a, b) means a - b; NaN when either side is missing. Only differences whose two sides share a
# baseline are worth it (a tree ensemble cannot subtract): the prosthetic toe-out follows the sound
# side (cohort: bilateral correlation, Table A T9), and the early and late coronal socket moments
# share limb geometry, while foot rotation moves only the late one (alignment_effects.csv).
ENGINEERED_FEATURES: tuple[tuple[str, str, str], ...] = (
    (
        "foot_progression_angle_prosthetic_minus_sound_deg",
        "foot_progression_angle_prosthetic_deg",
        "foot_progression_angle_sound_deg",
    ),
    (
        "socket_coronal_moment_early_minus_late_nm_per_kg",
        "socket_coronal_moment_early_stance_nm_per_kg",
        "socket_coronal_moment_late_stance_nm_per_kg",
    ),
)
ENGINEERED_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (catalog.MODEL_INPUT_COLUMNS.index(a), catalog.MODEL_INPUT_COLUMNS.index(b)) for _, a, b in ENGINEERED_FEATURES
)


def augment(x: np.ndarray, engineered: bool) -> np.ndarray:
    """Model input plus the engineered columns (float32, NaN propagates), as the ONNX graph does."""
    x = np.asarray(x, dtype=np.float32)
    if not engineered:
        return x
    extra = [x[:, a] - x[:, b] for a, b in ENGINEERED_PAIRS]
    return np.concatenate([x, np.stack(extra, axis=1)], axis=1).astype(np.float32)


def _effect_slopes(feature: str) -> dict[str, list[tuple[float, str]]]:
    """parameter -> [(slope, shape)] of every effect row on ``feature`` (an engineered a - b gets the
    rows of a and the negated rows of b)."""
    if feature.startswith(catalog.REFERENCE_CHANGE_PREFIX):
        # The change since the reference moves with the feature itself.
        parts: tuple[tuple[str, float], ...] = ((feature.removeprefix(catalog.REFERENCE_CHANGE_PREFIX), 1.0),)
    elif feature not in catalog.MODEL_INPUT_COLUMNS:
        parts = next(((a, 1.0), (b, -1.0)) for n, a, b in ENGINEERED_FEATURES if n == feature)
    else:
        parts = ((feature, 1.0),)
    out: dict[str, list[tuple[float, str]]] = {}
    for e in catalog.effects():
        for name, sign in parts:
            if e.feature == name and e.slope != 0.0:
                out.setdefault(e.parameter.value, []).append((sign * e.slope, e.shape))
    return out


def monotone_signs(parameter: str, rule: str, engineered: bool) -> list[int]:
    """Per input column, the sign of d(misalignment of ``parameter``)/d(feature) that the cited effect
    table implies (+1, -1) or 0 for no constraint.

    A column is constrained only when every effect row of this parameter on it is monotone (linear;
    or "positive"/"negative", which are monotone non-decreasing for a positive slope; never
    "symmetric") with one sign across both amputation levels, and, to avoid explaining-away between
    parameters with overlapping signatures, when ``rule`` is "alone" no other parameter moves the
    column, or when ``rule`` is "agree" every other parameter's rows on it have the same sign.
    An engineered difference a - b is treated as one feature with the rows of a and minus those of b;
    if a parameter moves both a and b, its rows are mixed and the column is not constrained for it.
    """
    names = list(catalog.MODEL_INPUT_COLUMNS) + ([n for n, _, _ in ENGINEERED_FEATURES] if engineered else [])
    signs: list[int] = []
    for name in names:
        rows = _effect_slopes(name)
        own = rows.get(parameter, [])
        s = {int(np.sign(sl)) for sl, _ in own}
        ok = bool(own) and len(s) == 1 and all(shape != "symmetric" for _, shape in own)
        if ok and name not in catalog.MODEL_INPUT_COLUMNS:
            # a difference: the parameter must move only one side for a clean sign
            a, b = next((a, b) for n, a, b in ENGINEERED_FEATURES if n == name)
            both = {e.feature for e in catalog.effects() if e.parameter.value == parameter} >= {a, b}
            ok = not both
        others = [r for q, rr in rows.items() if q != parameter for r in rr]
        if ok and rule == "alone":
            ok = not others
        elif ok and rule == "agree":
            ok = all(int(np.sign(sl)) in s and shape != "symmetric" for sl, shape in others)
        elif rule == "none":
            ok = False
        signs.append(next(iter(s)) if ok else 0)
    return signs


def _predict(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    """Booster output as float64 ndarray (LightGBM's own return type is loosely typed)."""
    return np.asarray(booster.predict(x), dtype=np.float64)


def _raw(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    """The booster's raw score (a binary booster's margin: its probability is sigmoid(margin))."""
    return np.asarray(booster.predict(x, raw_score=True), dtype=np.float64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def direction_targets(corr: np.ndarray, min_change: np.ndarray = MIN_CHANGE) -> np.ndarray:
    """[N,k] classes from corrections: |c| >= min_change decides that a change is needed."""
    cls = np.full(corr.shape, CLASS_NONE, dtype=np.int64)
    cls[corr <= -min_change] = CLASS_DECREASE
    cls[corr >= min_change] = CLASS_INCREASE
    return cls


@dataclass(frozen=True, slots=True)
class LgbmConfig:
    # Rounds are chosen by early stopping on the calibration patients (grouped, never trained on):
    # weakly identifiable parameters stop early, which keeps the committed ONNX file small.
    max_rounds: int = 400
    fixed_rounds: int = 100  # when there are too few calibration rows to early-stop on
    early_stopping: int = 30
    min_valid_rows: int = 30
    learning_rate: float = 0.08
    num_leaves: int = 15
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.8
    lambda_l2: float = 1.0
    threads: int = 2
    seed: int = 0
    # Direction model: "sequential" = two binary boosters per parameter, P(increase) and
    # P(decrease | not increase), which admit monotone constraints (a 3-class booster applies one
    # constraint sign to all three class scores, which cannot express "more of this feature = more
    # likely increase, less likely decrease"); "multiclass" = one 3-class booster.
    direction: str = "sequential"
    monotone: str = "alone"  # "alone", "agree" or "none" (see monotone_signs)
    # LightGBM monotone_constraints_method. Measured on the 18000-patient cohort: "advanced" broke the
    # constraints by up to 0.003 in probability (tests/training checks them end to end); "basic" held
    # them but over-constrained PYLON_LENGTH enough to fail the "lateral trunk lean (TF)" textbook case;
    # "intermediate" holds them and passes the clinical consistency suite.
    monotone_method: str = "intermediate"
    engineered: bool = True
    # Conditional magnitude: "regression_l1" fits the conditional median (the MAE-optimal point
    # estimate); "regression" the conditional mean.
    magnitude_objective: str = "regression_l1"
    # The reference stage corrects an already fitted model: a faster rate keeps it to a few hundred
    # trees (its ensemble is held in every worker's memory and runs for every batch with a reference).
    reference_learning_rate: float = 0.2
    # The 10%/90% quantile boosters only set the interval (the conformal step on the calibration
    # patients fixes its coverage), never a decision. At 0.2 instead of 0.08 they stop after 430 fewer
    # trees (2,326 -> 1,896 in the bundled model, every row evaluates all of them) with the same
    # held-out coverage (0.794 vs 0.792) and width (7.56 vs 7.57). None = learning_rate.
    interval_learning_rate: float | None = 0.2

    def params(self, n_rows: int, **extra: object) -> dict[str, object]:
        return {
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            # Tiny clinic tables: keep leaves populated but allow any split at all.
            "min_data_in_leaf": max(2, min(self.min_data_in_leaf, n_rows // 10)),
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "num_threads": self.threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
            **extra,
        }


@dataclass(slots=True)
class ReferenceStage:
    """Boosters fitted only on rows WITH a reference walk, on top of the single-walk model.

    Each starts from the single-walk booster's raw score on those rows (LightGBM init_score) and adds
    what the change since the reference explains beyond it; at prediction the residual is added only to
    rows that carry a reference. Rows without one therefore get exactly the single-walk model, whose
    trees never see a reference column (a shared model let the reference splits blur the single-walk
    answers: measured, two textbook cases fell from p 0.55-0.58 to 0.45-0.55).
    """

    classifier: lgb.Booster  # residual margin of P(increase)
    classifier_dec: lgb.Booster  # residual margin of P(decrease | not increase)
    magnitude: lgb.Booster
    magnitude_lo: lgb.Booster
    magnitude_hi: lgb.Booster
    temperature: float = 1.0
    interval_adjust: float = 0.0


@dataclass(slots=True)
class ParameterModel:
    name: str
    # "multiclass": the 3-class booster. "sequential": the binary booster for P(increase).
    classifier: lgb.Booster
    magnitude: lgb.Booster
    magnitude_lo: lgb.Booster
    magnitude_hi: lgb.Booster
    temperature: float = 1.0
    # Conformal widening of the 10-90% interval (CQR, Romano et al. 2019) fitted on the calibration
    # patients: subtracted from the lower and added to the upper quantile (may be negative).
    interval_adjust: float = 0.0
    # "sequential" only: the binary booster for P(decrease | not increase).
    classifier_dec: lgb.Booster | None = None
    # "sequential" only: the residual boosters for rows with a reference walk (None: not fitted).
    reference: ReferenceStage | None = None

    def _with_reference(self, x: np.ndarray, base: np.ndarray, residual: lgb.Booster) -> np.ndarray:
        h = has_reference(x)
        if self.reference is None or not h.any():
            return base
        out = base.copy()
        out[h] += _raw(residual, x[h])
        return out

    def raw_direction(self, x: np.ndarray) -> np.ndarray:
        """[N,3] decrease / none / increase probabilities before temperature scaling."""
        if self.classifier_dec is None:
            return _predict(self.classifier, x)
        ref = self.reference
        m_inc, m_dec = _raw(self.classifier, x), _raw(self.classifier_dec, x)
        if ref is not None:
            m_inc = self._with_reference(x, m_inc, ref.classifier)
            m_dec = self._with_reference(x, m_dec, ref.classifier_dec)
        p_inc = _sigmoid(m_inc)
        p_dec = (1.0 - p_inc) * _sigmoid(m_dec)
        return np.stack([p_dec, 1.0 - p_inc - p_dec, p_inc], axis=1)

    def raw_magnitudes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Magnitude and the two quantiles before clipping and the conformal adjustment."""
        out = [_raw(b, x) for b in (self.magnitude, self.magnitude_lo, self.magnitude_hi)]
        ref = self.reference
        if ref is not None:
            out = [
                self._with_reference(x, o, b)
                for o, b in zip(out, (ref.magnitude, ref.magnitude_lo, ref.magnitude_hi), strict=True)
            ]
        return out[0], out[1], out[2]

    def row_temperature(self, x: np.ndarray) -> np.ndarray:
        """[N,1] temperature: the reference stage's on rows with a reference walk."""
        t = np.full((len(x), 1), self.temperature)
        if self.reference is not None:
            t[has_reference(x)] = self.reference.temperature
        return t

    def row_interval_adjust(self, x: np.ndarray) -> np.ndarray:
        a = np.full(len(x), self.interval_adjust)
        if self.reference is not None:
            a[has_reference(x)] = self.reference.interval_adjust
        return a


def _calibrate(raw: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
    """Temperature scaling of LightGBM softmax outputs: softmax(log(p) / T) (= scaling the margins)."""
    z = np.log(np.maximum(raw, PROB_FLOOR)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def _fit_temperature(raw: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the log loss on held-out calibration rows (1-D grid search)."""
    if len(y) < 20:
        return 1.0
    grid = np.exp(np.linspace(np.log(0.4), np.log(4.0), 121))
    losses = [-np.mean(np.log(np.maximum(_calibrate(raw, t)[np.arange(len(y)), y], 1e-12))) for t in grid]
    return float(grid[int(np.argmin(losses))])


def snap_thresholds(booster: lgb.Booster) -> lgb.Booster:
    """Replace every split threshold by the largest float32 not above it.

    LightGBM stores double thresholds; ONNX TreeEnsemble stores float32, rounded to nearest. A double
    threshold just below a float32 input value (e.g. 52.19999 for body mass 52.2) rounds up onto that
    value and flips the split (measured: 0.24 probability difference on one row). For float32 inputs,
    ``x <= t`` and ``x <= floor32(t)`` are the same test, so snapping changes no prediction of the
    booster and makes the float32 graph exact.
    """
    lines = booster.model_to_string().split("\n")
    for i, line in enumerate(lines):
        if line.startswith("threshold="):
            t = np.array([float(v) for v in line.split("=", 1)[1].split()], dtype=np.float64)
            t32 = t.astype(np.float32)
            t32 = np.where(t32.astype(np.float64) > t, np.nextafter(t32, np.float32(-np.inf)), t32)
            lines[i] = "threshold=" + " ".join(repr(float(v)) for v in t32)
    # tree_sizes holds byte offsets of the original text; without it LightGBM parses trees sequentially.
    lines = [ln for ln in lines if not ln.startswith("tree_sizes=")]
    return lgb.Booster(model_str="\n".join(lines))


def _train(
    params: dict[str, object],
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    cfg: LgbmConfig,
    init: np.ndarray | None = None,
    init_val: np.ndarray | None = None,
) -> lgb.Booster:
    """A booster; with ``init``/``init_val`` (raw scores of another model) it learns the residual."""
    if x_val is not None and y_val is not None and len(x_val) >= cfg.min_valid_rows:
        b = lgb.train(
            params,
            lgb.Dataset(x, y, init_score=init),
            cfg.max_rounds,
            valid_sets=[lgb.Dataset(x_val, y_val, init_score=init_val)],
            callbacks=[lgb.early_stopping(cfg.early_stopping, verbose=False)],
        )
        # Keep only the best iteration so predict, the model text and the ONNX graph all agree.
        return lgb.Booster(model_str=b.model_to_string(num_iteration=b.best_iteration))
    return lgb.train(params, lgb.Dataset(x, y, init_score=init), cfg.fixed_rounds)


def _constant_booster(x: np.ndarray, value: float, cfg: LgbmConfig) -> lgb.Booster:
    """A booster that predicts ``value`` everywhere (keeps the ONNX graph uniform for sparse labels)."""
    return lgb.train(
        cfg.params(len(x), objective="regression", min_data_in_leaf=1, boost_from_average=True),
        lgb.Dataset(x, np.full(len(x), value)),
        num_boost_round=1,
    )


@dataclass(slots=True)
class LightGBMAlignmentModel:
    family: str = "lightgbm"
    parameters: list[ParameterModel] = field(default_factory=list)
    config: LgbmConfig = field(default_factory=LgbmConfig)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        corr: np.ndarray,
        x_cal: np.ndarray | None = None,
        corr_cal: np.ndarray | None = None,
        config: LgbmConfig = LgbmConfig(),
    ) -> LightGBMAlignmentModel:
        """The single-walk model on rows without a reference walk, then (sequential direction, enough
        rows of both kinds) the reference stage on rows with one (see ReferenceStage)."""
        h = has_reference(x)
        hc = has_reference(x_cal) if x_cal is not None else np.zeros(0, bool)
        staged = config.direction == "sequential" and min(int(h.sum()), int((~h).sum())) >= MIN_REFERENCE_ROWS
        if not staged:
            return cls._fit_single(x, corr, x_cal, corr_cal, config)
        model = cls._fit_single(
            x[~h],
            corr[~h],
            x_cal[~hc] if x_cal is not None else None,
            corr_cal[~hc] if corr_cal is not None else None,
            config,
        )
        xr = augment(x[h], config.engineered)
        xrc = augment(x_cal[hc], config.engineered) if x_cal is not None else None
        crc = corr_cal[hc] if corr_cal is not None else None
        for j, pm in enumerate(model.parameters):
            pm.reference = _fit_reference_stage(j, pm, xr, corr[h], xrc, crc, config)
        return model

    @classmethod
    def _fit_single(
        cls,
        x: np.ndarray,
        corr: np.ndarray,
        x_cal: np.ndarray | None,
        corr_cal: np.ndarray | None,
        config: LgbmConfig,
    ) -> LightGBMAlignmentModel:
        x = augment(x, config.engineered)
        x_cal = augment(x_cal, config.engineered) if x_cal is not None else None
        y = direction_targets(corr)
        y_cal = direction_targets(corr_cal) if corr_cal is not None else None
        models: list[ParameterModel] = []
        for j, name in enumerate(catalog.PARAMETER_NAMES):
            yv = y_cal[:, j] if y_cal is not None else None
            clf_dec: lgb.Booster | None = None
            if config.direction == "multiclass":
                clf = _train(config.params(len(x), objective="multiclass", num_class=3), x, y[:, j], x_cal, yv, config)
            else:
                # The misalignment moves feature f by slope * misalignment and the label is the
                # correction (= -misalignment): P(increase) falls where the misalignment's effect rises.
                mono = monotone_signs(name, config.monotone, config.engineered)
                inc_extra: dict[str, object] = {"objective": "binary"}
                dec_extra: dict[str, object] = {"objective": "binary"}
                if any(mono):
                    inc_extra["monotone_constraints"] = [-m for m in mono]
                    dec_extra["monotone_constraints"] = list(mono)
                    inc_extra["monotone_constraints_method"] = config.monotone_method
                    dec_extra["monotone_constraints_method"] = config.monotone_method
                yi = (y[:, j] == CLASS_INCREASE).astype(np.float64)
                yvi = (yv == CLASS_INCREASE).astype(np.float64) if yv is not None else None
                clf = _train(config.params(len(x), **inc_extra), x, yi, x_cal, yvi, config)
                rest = y[:, j] != CLASS_INCREASE
                rest_v = yv != CLASS_INCREASE if yv is not None else None
                yd = (y[rest, j] == CLASS_DECREASE).astype(np.float64)
                xvd = x_cal[rest_v] if x_cal is not None and rest_v is not None else None
                yvd = (
                    (yv[rest_v] == CLASS_DECREASE).astype(np.float64) if yv is not None and rest_v is not None else None
                )
                clf_dec = _train(config.params(int(rest.sum()), **dec_extra), x[rest], yd, xvd, yvd, config)
            need = y[:, j] != CLASS_NONE
            mag = np.abs(corr[need, j])
            need_v = (y_cal[:, j] != CLASS_NONE) if y_cal is not None else None
            xv = x_cal[need_v] if x_cal is not None and need_v is not None else None
            mv = np.abs(corr_cal[need_v, j]) if corr_cal is not None and need_v is not None else None
            regs: list[lgb.Booster] = []
            objectives: list[dict[str, object]] = [{"objective": config.magnitude_objective}]
            q_rate = {} if config.interval_learning_rate is None else {"learning_rate": config.interval_learning_rate}
            objectives += [{"objective": "quantile", "alpha": a, **q_rate} for a in QUANTILES]
            for extra in objectives:
                if need.sum() >= MIN_CHANGE_ROWS:
                    regs.append(_train(config.params(int(need.sum()), **extra), x[need], mag, xv, mv, config))
                else:
                    fallback = float(np.median(mag)) if need.any() else float(MIN_CHANGE[j])
                    regs.append(_constant_booster(x, fallback, config))
            clf = snap_thresholds(clf)
            clf_dec = snap_thresholds(clf_dec) if clf_dec is not None else None
            pm = ParameterModel(name, clf, clf, clf, clf, classifier_dec=clf_dec)
            temperature = 1.0
            if x_cal is not None and y_cal is not None and len(x_cal):
                temperature = _fit_temperature(pm.raw_direction(x_cal), y_cal[:, j])
            regs = [snap_thresholds(r) for r in regs]
            adjust = 0.0
            if xv is not None and mv is not None and len(mv) >= 10:
                adjust = _conformal_adjust(_predict(regs[0], xv), _predict(regs[1], xv), _predict(regs[2], xv), mv)
            models.append(ParameterModel(name, clf, regs[0], regs[1], regs[2], temperature, adjust, clf_dec))
        return cls(parameters=models, config=config)

    def predict(self, x: np.ndarray) -> Predictions:
        """float64 predictions [N,7] per output name; the ONNX graph computes the same in float32."""
        x = augment(x, self.config.engineered)
        out = {k: np.zeros((len(x), len(self.parameters))) for k in OUTPUT_NAMES}
        for j, pm in enumerate(self.parameters):
            p = _calibrate(pm.raw_direction(x), pm.row_temperature(x))
            out["p_decrease"][:, j] = p[:, CLASS_DECREASE]
            out["p_increase"][:, j] = p[:, CLASS_INCREASE]
            raw_m, raw_lo, raw_hi = pm.raw_magnitudes(x)
            adjust = pm.row_interval_adjust(x)
            m = np.maximum(raw_m, 0.0)
            out["magnitude"][:, j] = m
            out["magnitude_lo"][:, j] = np.maximum(np.minimum(raw_lo - adjust, m), 0.0)
            out["magnitude_hi"][:, j] = np.maximum(raw_hi + adjust, m)
        return out


def _conformal_adjust(m: np.ndarray, lo: np.ndarray, hi: np.ndarray, truth: np.ndarray) -> float:
    """CQR widening of the 10-90% interval on calibration rows (Romano et al. 2019)."""
    m = np.maximum(m, 0.0)
    score = np.maximum(np.minimum(lo, m) - truth, truth - np.maximum(hi, m))
    level = min(1.0, (QUANTILES[1] - QUANTILES[0]) * (1 + 1 / len(truth)))
    return float(np.quantile(score, level))


def _fit_reference_stage(
    j: int,
    pm: ParameterModel,
    x: np.ndarray,
    corr: np.ndarray,
    x_cal: np.ndarray | None,
    corr_cal: np.ndarray | None,
    config: LgbmConfig,
) -> ReferenceStage:
    """Residual boosters for parameter j on (augmented) rows with a reference walk."""
    assert pm.classifier_dec is not None
    y = direction_targets(corr)[:, j]
    yv = direction_targets(corr_cal)[:, j] if corr_cal is not None else None
    mono = monotone_signs(pm.name, config.monotone, config.engineered)
    extra: dict[str, object] = {"objective": "binary"}
    if any(mono):
        extra["monotone_constraints_method"] = config.monotone_method
    inc_extra = {**extra, "monotone_constraints": [-m for m in mono]} if any(mono) else extra
    dec_extra = {**extra, "monotone_constraints": list(mono)} if any(mono) else extra

    def init(b: lgb.Booster, rows: np.ndarray | None) -> np.ndarray | None:
        return None if rows is None else _raw(b, rows)

    clf = _train(
        config.params(len(x), **inc_extra, learning_rate=config.reference_learning_rate),
        x,
        (y == CLASS_INCREASE).astype(np.float64),
        x_cal,
        (yv == CLASS_INCREASE).astype(np.float64) if yv is not None else None,
        config,
        init(pm.classifier, x),
        init(pm.classifier, x_cal),
    )
    rest = y != CLASS_INCREASE
    rest_v = yv != CLASS_INCREASE if yv is not None else None
    xvd = x_cal[rest_v] if x_cal is not None and rest_v is not None else None
    clf_dec = _train(
        config.params(int(rest.sum()), **dec_extra, learning_rate=config.reference_learning_rate),
        x[rest],
        (y[rest] == CLASS_DECREASE).astype(np.float64),
        xvd,
        (yv[rest_v] == CLASS_DECREASE).astype(np.float64) if yv is not None and rest_v is not None else None,
        config,
        init(pm.classifier_dec, x[rest]),
        init(pm.classifier_dec, xvd),
    )
    need = y != CLASS_NONE
    need_v = yv != CLASS_NONE if yv is not None else None
    xv = x_cal[need_v] if x_cal is not None and need_v is not None else None
    mv = np.abs(corr_cal[need_v, j]) if corr_cal is not None and need_v is not None else None
    objectives: list[dict[str, object]] = [{"objective": config.magnitude_objective}]
    objectives += [{"objective": "quantile", "alpha": a} for a in QUANTILES]
    regs: list[lgb.Booster] = []
    for base, obj in zip((pm.magnitude, pm.magnitude_lo, pm.magnitude_hi), objectives, strict=True):
        if need.sum() >= MIN_CHANGE_ROWS:
            regs.append(
                _train(
                    config.params(int(need.sum()), **obj, learning_rate=config.reference_learning_rate),
                    x[need],
                    np.abs(corr[need, j]),
                    xv,
                    mv,
                    config,
                    init(base, x[need]),
                    init(base, xv),
                )
            )
        else:
            regs.append(_constant_booster(x, 0.0, config))  # no residual
    stage = ReferenceStage(
        classifier=snap_thresholds(clf),
        classifier_dec=snap_thresholds(clf_dec),
        magnitude=snap_thresholds(regs[0]),
        magnitude_lo=snap_thresholds(regs[1]),
        magnitude_hi=snap_thresholds(regs[2]),
    )
    pm.reference = stage
    if x_cal is not None and yv is not None and len(x_cal):
        stage.temperature = _fit_temperature(pm.raw_direction(x_cal), yv)
    if xv is not None and mv is not None and len(mv) >= 10:
        stage.interval_adjust = _conformal_adjust(*pm.raw_magnitudes(xv), mv)
    return stage


@dataclass(slots=True)
class ForestAlignmentModel:
    """Comparison family: one multi-output forest on 0/1 decrease/increase targets (DESIGN 6: a
    multi-output regressor, not a multilabel classifier), plus a forest per parameter for the
    conditional magnitude; the interval is the 10-90% spread of the per-tree predictions."""

    family: str = "random_forest"
    direction: RandomForestRegressor | None = None
    magnitudes: list[RandomForestRegressor | float] = field(default_factory=list)

    @classmethod
    def fit(cls, x: np.ndarray, corr: np.ndarray, n_estimators: int = 100, seed: int = 0) -> ForestAlignmentModel:
        y = direction_targets(corr)
        targets = np.concatenate([(y == CLASS_DECREASE), (y == CLASS_INCREASE)], axis=1).astype(np.float64)
        kw = dict(n_estimators=n_estimators, min_samples_leaf=3, max_features=0.5, n_jobs=2, random_state=seed)
        direction = RandomForestRegressor(**kw).fit(x, targets)
        mags: list[RandomForestRegressor | float] = []
        for j in range(corr.shape[1]):
            need = y[:, j] != CLASS_NONE
            if need.sum() >= MIN_CHANGE_ROWS:
                mags.append(RandomForestRegressor(**kw).fit(x[need], np.abs(corr[need, j])))
            else:
                mags.append(float(np.median(np.abs(corr[need, j]))) if need.any() else float(MIN_CHANGE[j]))
        return cls(direction=direction, magnitudes=mags)

    def predict(self, x: np.ndarray) -> Predictions:
        assert self.direction is not None
        k = len(self.magnitudes)
        d = self.direction.predict(x)
        out: Predictions = {"p_decrease": d[:, :k], "p_increase": d[:, k:]}
        mag, lo, hi = (np.zeros((len(x), k)) for _ in range(3))
        for j, m in enumerate(self.magnitudes):
            if isinstance(m, float):
                mag[:, j] = lo[:, j] = hi[:, j] = m
                continue
            per_tree = np.stack([t.predict(x) for t in m.estimators_], axis=1)
            mag[:, j] = per_tree.mean(axis=1)
            lo[:, j], hi[:, j] = np.quantile(per_tree, QUANTILES, axis=1)
        out.update(magnitude=mag, magnitude_lo=np.minimum(lo, mag), magnitude_hi=np.maximum(hi, mag))
        return out


AlignmentModel = LightGBMAlignmentModel | ForestAlignmentModel


def decide(pred: Predictions) -> np.ndarray:
    """The plain argmax rule: per parameter the most probable of the three classes.

    The headline metrics use the service's own rule instead (``evaluate.service_decisions``: a 0.5
    floor, a magnitude floor and pooled alternatives); this one is reported for comparison only.

    Returns the signed recommended change [N,7] (0 = no change); magnitudes below min_change are
    raised to it, since a recommended change smaller than that has no published effect.
    """
    p_dec, p_inc = pred["p_decrease"], pred["p_increase"]
    p_none = 1.0 - p_dec - p_inc
    cls = np.argmax(np.stack([p_dec, p_none, p_inc], axis=-1), axis=-1)
    mag = np.maximum(pred["magnitude"], MIN_CHANGE)
    return np.where(cls == CLASS_INCREASE, mag, np.where(cls == CLASS_DECREASE, -mag, 0.0))
