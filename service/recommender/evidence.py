"""Stage 3: the evidence. The learned model's per-parameter probabilities and magnitudes (one
onnxruntime call for the whole batch, through service.model), and the fitting loop's response to the
changes the prosthetist made since the reference walk (DESIGN 3.4).

The loop's evidence is read from the walks themselves, with the effect table only saying which
features each parameter moves: a change that brought the deviations of its signature toward the norm
helped; one that pushed them away made things worse. The noise of that comparison comes from the
sending sensors (the deviations stage), so one walk's jitter is not read as a response.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.catalog import CONTEXT_COLUMNS, MODEL_INPUT_COLUMNS, REFERENCE_CHANGE_COLUMNS, AmputationLevel, Parameter
from service.domain import AppliedChange, AssessmentBatch, FloatArray, GaitAssessment
from service.model import OnnxModel
from service.recommender.candidates import N_PARAMS, PARAM_INDEX, signature
from service.recommender.deviations import N_FEATURES, Deviations, walk_z

_REF0 = MODEL_INPUT_COLUMNS.index(REFERENCE_CHANGE_COLUMNS[0])
# A response counts as "helped" / "made worse" beyond this many SDs of its own noise; in between it did
# not move measurably. 2 SD: a one-sided false "worse" about 2% of the time per applied change.
RESPONSE_Z = 2.0
# "Did not move" counts only when the response the effect table expects from the change (at the mean
# gain) stands this many noise SDs out of the walks' noise. A change that moved its features as expected
# without measurably helping (it crossed the norm, or the deviation was the patient's own) is
# "inconclusive": measured on 300 simulated fittings, undoing those undid as many right-direction
# steps as wrong ones (50 / 52), while "worse" was right 14 times in 15.
TESTABLE_Z = 3.0


def model_input(assessments: Sequence[GaitAssessment] | AssessmentBatch) -> FloatArray:
    """[n, len(MODEL_INPUT_COLUMNS)] in catalog order: features, patient context, change since reference.

    A reference walk taken before a KNOWN change (applied_since_reference) is not the accepted
    alignment the model's reference stage was trained on; its change columns stay NaN and the loop
    stage reads that walk instead."""
    b = assessments if isinstance(assessments, AssessmentBatch) else AssessmentBatch.of(assessments)
    x = np.empty((len(b), len(MODEL_INPUT_COLUMNS)))
    x[:, :N_FEATURES] = b.values
    tf = AmputationLevel.TRANSFEMORAL
    x[:, N_FEATURES:_REF0] = [
        (1.0 if lvl is tf else 0.0, mass, np.nan if k is None else float(k))
        for lvl, mass, k in zip(b.levels, b.body_mass_kg, b.k_level, strict=True)
    ]
    if b.reference_values is None:
        x[:, _REF0:] = np.nan
    else:
        # NaN - x and x - NaN stay NaN: a change is known only where both walks measured the feature.
        x[:, _REF0:] = b.values - b.reference_values
        if b.applied is not None:
            known = np.array([bool(a) for a in b.applied])
            x[known, _REF0:] = np.nan
    return x


assert CONTEXT_COLUMNS == ("context_transfemoral", "context_body_mass_kg", "context_k_level")
assert _REF0 == N_FEATURES + len(CONTEXT_COLUMNS) and len(MODEL_INPUT_COLUMNS) == _REF0 + N_FEATURES


@dataclass(frozen=True, slots=True)
class ModelEvidence:
    """Per assessment and parameter in CATALOG order ([n, P]); parameters the model lacks read 0."""

    p_decrease: FloatArray
    p_increase: FloatArray
    p_none: FloatArray
    magnitude: FloatArray  # >= 0
    magnitude_lo: FloatArray
    magnitude_hi: FloatArray
    known: npt.NDArray[np.bool_]  # [P] the model has an output for the parameter
    outside_training: npt.NDArray[np.bool_]  # [n] some input is outside what the model was trained on

    def p(self, sign: int) -> FloatArray:
        return self.p_increase if sign > 0 else self.p_decrease


def model_evidence(model: OnnxModel, x: FloatArray, input_ranges: tuple[FloatArray, FloatArray] | None) -> ModelEvidence:
    pred = model.predict(x)
    n = x.shape[0]
    cols = np.array([PARAM_INDEX[p] for p in model.parameters], dtype=np.intp)

    def place(a: npt.NDArray[np.float32], fill: float = 0.0) -> FloatArray:
        out = np.full((n, N_PARAMS), fill)
        out[:, cols] = a
        return out

    p_dec, p_inc = place(pred.p_decrease), place(pred.p_increase)
    known = np.zeros(N_PARAMS, dtype=bool)
    known[cols] = True
    lo = np.maximum(place(pred.magnitude_lo), 0.0)
    if input_ranges is None:
        outside = np.zeros(n, dtype=bool)
    else:
        low, high = input_ranges
        v = x[:, :N_FEATURES]
        with np.errstate(invalid="ignore"):
            outside = np.any((v < low) | (v > high), axis=1)
    return ModelEvidence(
        p_decrease=p_dec,
        p_increase=p_inc,
        p_none=np.maximum(1.0 - p_dec - p_inc, 0.0),
        magnitude=np.maximum(place(pred.magnitude), 0.0),
        magnitude_lo=lo,
        magnitude_hi=np.maximum(place(pred.magnitude_hi), lo),
        known=known,
        outside_training=outside,
    )


@dataclass(frozen=True, slots=True)
class Response:
    """How the walk answered one applied change (since the reference walk)."""

    parameter: Parameter
    change: float
    # Signed improvement of the change's signature deviations, in z units (+ toward the norm), and the
    # SD of that figure from measurement noise alone.
    improvement: float
    noise: float
    verdict: str  # "helped", "worse", "no_measurable_effect" or "inconclusive"
    features: tuple[int, ...]  # the signature features both walks measured


@dataclass(frozen=True, slots=True)
class LoopEvidence:
    responses: tuple[Response, ...]
    # Fixes (parameter, sign) tried in this fitting and later undone: not to be offered as trials again.
    undone: frozenset[tuple[Parameter, int]]


def _response(change: AppliedChange, li: int, z_now: FloatArray, z_ref: FloatArray, sd_noise_ratio: FloatArray) -> Response:
    j = PARAM_INDEX[change.parameter]
    sign = 1 if change.change > 0 else -1
    rows = [r for r in signature(li, j, sign) if not (math.isnan(z_now[r.feature]) or math.isnan(z_ref[r.feature]))]
    if not rows:  # nothing both walks measured can show it
        return Response(change.parameter, change.change, 0.0, math.inf, "inconclusive", ())
    # Weighted by how strongly the parameter moves each feature (its z per unit): the features a change
    # moves most carry its response; the rest are mostly noise.
    per_unit = np.array([r.z_per_unit for r in rows])
    w = per_unit / per_unit.sum()
    idx = np.array([r.feature for r in rows])
    gain = np.abs(z_ref[idx]) - np.abs(z_now[idx])
    improvement = float(w @ gain)
    # |z| difference of two walks of one patient: noise only, each walk's error SD in z units.
    noise = float(np.sqrt(np.sum((w * sd_noise_ratio[idx]) ** 2) * 2.0))
    noise = max(noise, 1e-6)
    # How far the features moved the way the effect table says this change moves them (+), whether or
    # not that was toward the norm, against how far it expects them to move at the mean gain.
    moved = float(w @ ((z_ref[idx] - z_now[idx]) * np.array([r.expected_sign for r in rows])))
    expected = abs(change.change) * float(w @ per_unit)
    if improvement > RESPONSE_Z * noise:
        verdict = "helped"
    elif improvement < -RESPONSE_Z * noise:
        verdict = "worse"
    elif expected >= TESTABLE_Z * noise and moved < min(RESPONSE_Z * noise, 0.5 * expected):
        verdict = "no_measurable_effect"  # it should have shown and did not: this patient does not respond
    else:
        verdict = "inconclusive"
    return Response(change.parameter, change.change, improvement, noise, verdict, tuple(int(i) for i in idx))


def _undone(b: AssessmentBatch, r: int) -> frozenset[tuple[Parameter, int]]:
    """Fixes tried in this fitting whose change was later reversed (a revert or an opposite step)."""
    assert b.history is not None and b.applied is not None
    seq = [c for walk in b.history[r] for c in walk.applied_after] + list(b.applied[r])
    out: set[tuple[Parameter, int]] = set()
    for k, c in enumerate(seq):
        if c.change == 0.0:
            continue
        sign = 1 if c.change > 0 else -1
        if any(later.parameter is c.parameter and later.change * sign < 0 for later in seq[k + 1 :]):
            out.add((c.parameter, sign))
    return frozenset(out)


def loop_evidence(b: AssessmentBatch, dev: Deviations, noise_ratio: FloatArray) -> list[LoopEvidence | None]:
    """Per row: the responses to the changes since the reference walk, and the fixes already undone.

    `noise_ratio` [n, F]: each value's measurement-error SD over its effective SD (z units)."""
    out: list[LoopEvidence | None] = [None] * len(b)
    if b.applied is None or b.reference_values is None:
        return out
    for r, applied in enumerate(b.applied):
        if not applied and not (b.history and b.history[r]):
            continue
        li = int(dev.level_index[r])
        z_now = np.where(dev.present[r], dev.z[r], np.nan)
        z_ref = walk_z(b.reference_values[r][None, :], dev.level_index[r : r + 1], dev.sd[r : r + 1])[0]
        responses = tuple(_response(c, li, z_now, z_ref, noise_ratio[r]) for c in applied if c.change != 0.0)
        out[r] = LoopEvidence(responses, _undone(b, r))
    return out
