"""Assessment -> answer, as named stages over the whole batch (one code path for 1 or 1,000 assessments):

1. deviations   noise-aware z per feature (catalog norms, the sending sensor's error)
2. candidates   the cited rule table (deviation -> candidate fixes, non-alignment causes) and the
                effect table's signatures (which deviations a fix explains)
3. evidence     the model's per-parameter probabilities and magnitudes; the fitting loop's responses
4. decide       answer kind, trials, reverts, safety clamps, ranking, the veto against the table
5. explain      deviations, differentials, wording, findings, what to measure next, warnings, summary

Each stage is a module of small functions, tested alone (tests/unit/test_recommender*.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.catalog import FEATURE_NAMES, PARAMETERS, AmputationLevel
from service.domain import (
    AnswerKind,
    AssessmentBatch,
    ConfidenceLevel,
    FloatArray,
    GaitAssessment,
    MeasurementSuggestion,
    Recommendation,
)
from service.model import OnnxModel, Prediction
from service.recommender import explain as ex
from service.recommender.decide import RowDecision, batch_arrays, decide_row, quiet_decision, quiet_rows
from service.recommender.deviations import Deviations, deviations, noise_ratio
from service.recommender.evidence import _REF0, ModelEvidence, loop_evidence, model_evidence, model_input
from service.recommender.explain import NO_REFERENCE_HINT, NOT_READ_REFERENCE_WARNING
from service.recommender.policy import Policy

__all__ = ["NOT_READ_REFERENCE_WARNING", "NO_REFERENCE_HINT", "Policy", "Recommender", "model_input"]

_MISSING_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class _RowFacts:
    listed: list[list[int]]
    estimates: tuple[list[list[float]], ...]
    known: list[bool]
    n_present: list[int]
    has_socket: list[bool]
    outside: list[bool]


class Recommender:
    """Stateless apart from its policy and caches of pure functions: safe to share across threads."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._missing: dict[tuple[object, bytes], tuple[str, ...]] = {}
        self._sugg: dict[tuple[object, ...], tuple[MeasurementSuggestion, ...]] = {}

    def recommend(
        self, model: OnnxModel, assessments: Sequence[GaitAssessment] | AssessmentBatch, *, explain: bool | None = None
    ) -> list[Recommendation]:
        if not len(assessments):
            return []
        b = assessments if isinstance(assessments, AssessmentBatch) else AssessmentBatch.of(assessments)
        pol = self.policy
        occlude = pol.explain if explain is None else explain
        level_index = np.array([1 if lvl is AmputationLevel.TRANSFEMORAL else 0 for lvl in b.levels], dtype=np.intp)
        # 1. deviations
        dev = deviations(b.values, level_index, b.source_codes, pol)
        # 3. evidence (2. candidates are the compiled tables the later stages look up)
        x = model_input(b)
        ev = model_evidence(model, x, model.input_ranges)
        loop = loop_evidence(b, dev, noise_ratio(level_index, b.source_codes))
        # 4. decide: the elementwise part for the whole batch, then per row
        arr = batch_arrays(dev, ev, pol)
        reads_reference = any(c.startswith("change_since_reference_") for c in model.columns)
        quiet = quiet_rows(dev, arr, loop).tolist()
        # Per-row facts the explanation needs, computed for the batch at once.
        rows, cols = np.nonzero(dev.listed)
        listed: list[list[int]] = [[] for _ in range(len(b))]
        for r_, f_ in zip(rows.tolist(), cols.tolist(), strict=True):
            listed[r_].append(f_)
        facts = _RowFacts(
            listed,
            ex.rounded_estimates(ev),
            ev.known.tolist(),
            dev.present.sum(axis=1).tolist(),
            np.asarray(dev.present[:, ex.SOCKET_INDEX].any(axis=1), dtype=bool).tolist(),
            ev.outside_training.tolist(),
        )
        out: list[Recommendation] = []
        for r in range(len(b)):
            d = quiet_decision(r, dev, ev, arr, pol) if quiet[r] else decide_row(r, dev, ev, arr, loop[r], pol)
            out.append(self._answer(model, b, x, dev, ev, d, r, occlude, reads_reference, facts, loop[r] is not None))
        return out

    def _answer(
        self,
        model: OnnxModel,
        b: AssessmentBatch,
        x: FloatArray,
        dev: Deviations,
        ev: ModelEvidence,
        d: RowDecision,
        r: int,
        occlude: bool,
        reads_reference: bool,
        facts: _RowFacts,
        in_loop: bool,
    ) -> Recommendation:
        """5. explain: the answer of row r in words."""
        values = b.values[r]
        drivers = _occlusion_drivers(model, x[r], dev.present[r], d) if occlude and d.chosen else None
        adjustments = ex.adjustments(d, ev, dev, r, drivers)
        listed = ex.deviations_list(dev, values, r, facts.listed[r])
        diffs = ex.differentials(dev, values, ev, r, d, listed)
        found = ex.findings(dev, r, d)
        overall, notes = ex.capped_confidence(d.overall, facts.n_present[r], facts.has_socket[r], facts.outside[r])
        level = ex.level_of(overall)
        warnings = b.warnings[r] + notes
        has_reference = b.reference_values is not None and not np.all(np.isnan(b.reference_values[r]))
        if has_reference and not reads_reference:
            warnings = (*warnings, NOT_READ_REFERENCE_WARNING)
        elif not has_reference and reads_reference and level is not ConfidenceLevel.HIGH:
            warnings = (*warnings, NO_REFERENCE_HINT)
        sugg = self._suggestions(model, dev, ev, r) if level is not ConfidenceLevel.HIGH else ()
        li = int(dev.level_index[r])
        changes = (
            ex.changes_since_reference(values, b.reference_values[r], li) if has_reference and b.reference_values is not None else ()
        )
        return Recommendation(
            assessment_id=b.assessment_ids[r],
            model=model.ref,
            adjustments=adjustments,
            no_change_needed=d.kind is AnswerKind.NO_CHANGE,
            deviations=listed,
            non_alignment_findings=found,
            missing_features=self._missing_features(model, dev.present[r]),
            imputed_features=tuple(FEATURE_NAMES[i] for i in b.derived[r]),
            overall_confidence=round(overall, 4),
            confidence_level=level,
            suggested_measurements=sugg,
            warnings=warnings,
            parameter_estimates=ex.estimates(facts.estimates, facts.known, r, d),
            changes_since_reference=changes,
            answer_kind=d.kind,
            differentials=diffs,
            summary=ex.summary(d.kind, adjustments, diffs, found, sugg, d.overall if in_loop else None),
        )

    def _suggestions(self, model: OnnxModel, dev: Deviations, ev: ModelEvidence, r: int) -> tuple[MeasurementSuggestion, ...]:
        """What to measure next: a pure function of the model, level, present features and contenders."""
        key = (model.ref, int(dev.level_index[r]), np.packbits(dev.present[r]).tobytes(), ex.contender_key(ev, r))
        got = self._sugg.get(key)
        if got is None:
            got = ex.suggestions(dev, ev, r, model.feature_columns)
            if len(self._sugg) >= _MISSING_CACHE_MAX:
                self._sugg.clear()
            self._sugg[key] = got
        return got

    def _missing_features(self, model: OnnxModel, present: np.ndarray) -> tuple[str, ...]:
        key = (model.ref, np.packbits(present).tobytes())
        got = self._missing.get(key)
        if got is None:
            got = tuple(FEATURE_NAMES[i] for i in np.flatnonzero(~present) if FEATURE_NAMES[i] in model.feature_columns)
            if len(self._missing) >= _MISSING_CACHE_MAX:
                self._missing.clear()
            self._missing[key] = got
        return got


def _occlusion_drivers(model: OnnxModel, x_row: FloatArray, present: np.ndarray, d: RowDecision) -> dict[int, tuple[str, ...]]:
    """Per chosen parameter: the present features whose removal lowers its direction's probability most."""
    idx = [int(i) for i in np.flatnonzero(present) if FEATURE_NAMES[i] in model.feature_columns]
    if not idx:
        return {}
    rows = np.repeat(x_row[None, :], len(idx), axis=0)
    rows[np.arange(len(idx)), idx] = np.nan
    rows[np.arange(len(idx)), _REF0 + np.asarray(idx)] = np.nan  # an unmeasured feature has no change either
    occluded: Prediction = model.predict(rows)
    base: Prediction = model.predict(x_row[None, :])
    out: dict[int, tuple[str, ...]] = {}
    params = list(model.parameters)
    for c in d.chosen:
        p = PARAMETERS[c.param_index].parameter
        if p not in params:
            continue
        j = params.index(p)
        b0, occ = (base.p_increase, occluded.p_increase) if c.sign > 0 else (base.p_decrease, occluded.p_decrease)
        drop = float(b0[0, j]) - occ[:, j]
        order = np.argsort(-drop)
        out[c.param_index] = tuple(FEATURE_NAMES[idx[k]] for k in order[:5] if drop[k] > 0.01)
    return out

