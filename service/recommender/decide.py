"""Stage 4: the decision. Answer kind, the adjustments (confident changes, trials, reverts), safety
clamps, ranking, and the veto against the rule table (DESIGN 3.1, 3.3, 3.4).

Per parameter j and direction s (the more probable of decrease / increase, probability p):
- RECOMMENDED when p >= min_confidence, p > P(no change), the model's magnitude reaches the smallest
  change with a published effect, below UNSUPPORTED_MIN a listed deviation it explains is present
  (effect table), and it is not against the rule table: the service never advises the opposite of a
  fix the table names for a clear deviation of this walk (unless the table also names this direction
  for another of its clear deviations).
- Otherwise, a clear deviation (|z| >= clear_deviation_z) must be explained. Its table candidates are
  ranked by the model's probability; a candidate whose opposite the model finds more likely is vetoed.
  The best one left is a TRIAL at the smallest effective step, with its honest probability. When none
  is left the answer is NOT_ALIGNMENT (the non-alignment causes say what to check).
- The fitting loop (applied_since_reference): a change that made its signature deviations worse is
  undone first. A change that should have shown and did not move its features is not continued or
  offered again; the next candidate is (it is not undone: no effect is no reason to move back). A
  change the walks cannot judge (it moved its features as expected without measurably helping, or too
  little to show) is neither undone nor continued; the model reads the walk as it is. A change that
  helped is continued while its deviation persists and the model still gives its direction
  CONTINUE_MIN, with a step sized by the measured response. A fix once tried and undone in this
  fitting is not offered as a trial again. When nothing is left to try, the loop accepts (NO_CHANGE)
  only at LOOP_ACCEPT_MIN probability of the band, else INSUFFICIENT_EVIDENCE.
- Changes are clamped to the safe single step. Sagittal (and length, rotation) changes rank before
  coronal ones: coronal socket moments respond to changes in every plane, so coronal alignment is
  finalised last (Sci Rep 13:458, 2023); reverts rank before everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.catalog import PARAMETERS, Plane
from service.domain import AnswerKind
from service.recommender.candidates import (
    N_PARAMS,
    PARAM_INDEX,
    SUPPORT,
    TABLE,
    causes_of,
    per_level_product,
    signature,
    signed_deviations,
)
from service.recommender.deviations import Deviations
from service.recommender.evidence import LoopEvidence, ModelEvidence, Response
from service.recommender.policy import MIN_INFORMATIVE_FEATURES, UNSUPPORTED_MIN, Policy

_PLANE_ORDER = np.array([1 if p.plane is Plane.CORONAL else 0 for p in PARAMETERS])
# |z| up to which a feature counts as back inside the normal band when a helped change is continued.
NORMAL_BAND_Z = 1.0
# A helped change is continued only while the model, reading the walk after it, still gives its
# direction at least this probability. Measured on 300 simulated fittings (all sensors): continuing at a
# model probability below 0.25 moved the parameter past aligned 54 times in 99; floors of 0.1 / 0.2 /
# 0.3 gave 19% / 18% / 17% of steps away from aligned (26% without) at 16% / 16% / 14% of the
# misaligned patients inside the band within 6 walks.
CONTINUE_MIN = 0.2
# In the loop, "accepted" (NO_CHANGE) needs the probability that every parameter is inside the band
# (BatchArrays.no_change) to be at least this; below it the answer is INSUFFICIENT_EVIDENCE: the
# candidates are exhausted, not the misalignment.
LOOP_ACCEPT_MIN = 0.5
# A pattern TRIAL without a clear deviation: several listed deviations (|z| >= deviation_z) that one
# fix explains (effect table) and a moderate probability for it. Two moderate deviations of one
# signature are stronger evidence than either alone (a textbook presentation is a pattern).
PATTERN_TRIAL_MIN = 0.5
PATTERN_MIN_DEVIATIONS = 2
# When the table names both directions of one parameter for a deviation (pelvic obliquity: too short
# or too long), the trial takes one only if the model prefers it by this much; otherwise the model
# cannot tell the two apart and the differential's separating measurement says what would. Measured
# (12,000 held-out walks): 14 of the 26 opposite-direction answers were such coin-flip pylon trials.
AMBIGUOUS_MARGIN = 0.15
AMBIGUOUS_RATIO = 3.0  # and by this factor


@dataclass(frozen=True, slots=True)
class Chosen:
    """One adjustment of an answer, before it is worded (explain)."""

    param_index: int
    sign: int
    step: float  # signed change to make now, clamped
    confidence: float
    suggested: float  # the model's (or the response's) signed magnitude before the clamp
    clamped: bool
    trial: bool
    reverts: bool
    supporting: tuple[int, ...]  # deviations (feature indices) it addresses
    note: str


@dataclass(frozen=True, slots=True)
class RowDecision:
    kind: AnswerKind
    chosen: tuple[Chosen, ...]
    overall: float
    reasons: tuple[str, ...]  # per parameter (catalog order): why it was or was not recommended
    vetoed: frozenset[tuple[int, int]]  # (parameter, sign) candidates the model vetoed
    excluded: frozenset[tuple[int, int]]  # candidates not offered because the loop ruled them out


@dataclass(frozen=True, slots=True)
class BatchArrays:
    """The elementwise part of the rules on [n, P] arrays (catalog parameter order)."""

    sign: npt.NDArray[np.int64]
    p_dir: npt.NDArray[np.float64]
    p_opp: npt.NDArray[np.float64]
    recommended: npt.NDArray[np.bool_]
    supported: npt.NDArray[np.bool_]
    against_table: npt.NDArray[np.bool_]
    min_change: npt.NDArray[np.float64]  # [P]
    max_step: npt.NDArray[np.float64]  # [P]
    reason_code: npt.NDArray[np.int64]  # [n, P] index into REASONS: why recommended or not
    # [n] probability that no parameter needs a change: the product of the per-parameter "no change"
    # probabilities. Measured on 2,000 simulated first walks: calibrated (0.50 -> 48% inside the band,
    # 0.68 -> 73%), where the smallest per-parameter figure it replaced claimed 0.86 for 56%.
    no_change: npt.NDArray[np.float64]
    # [n, P] a pattern trial is possible: moderate probability and several listed deviations it explains
    pattern: npt.NDArray[np.bool_]


# Why a parameter was or was not recommended, in the order the rules test them.
R_UNKNOWN, R_NO_CHANGE, R_LOW, R_SMALL, R_TABLE, R_UNSUPPORTED, R_RECOMMENDED = range(7)


def batch_arrays(dev: Deviations, ev: ModelEvidence, policy: Policy) -> BatchArrays:
    params = [p.parameter for p in PARAMETERS]
    min_change = np.array([policy.min_change[p] for p in params])
    max_step = np.array([policy.max_step[p] for p in params])
    plus = ev.p_increase >= ev.p_decrease
    sign = np.where(plus, 1, -1)
    p_dir = np.where(plus, ev.p_increase, ev.p_decrease)
    p_opp = np.where(plus, ev.p_decrease, ev.p_increase)
    sup = per_level_product(signed_deviations(dev.listed, dev.z), dev.level_index, SUPPORT)
    tab = per_level_product(signed_deviations(dev.clear, dev.z), dev.level_index, TABLE)
    cols = 2 * np.arange(N_PARAMS)[None, :]
    this = cols + plus.astype(np.intp)
    other = cols + (~plus).astype(np.intp)
    rows = np.arange(sign.shape[0])[:, None]
    supported = sup[rows, this] > 0
    against = (tab[rows, other] > 0) & ~(tab[rows, this] > 0)
    pattern = (
        ev.known[None, :]
        & (p_dir >= PATTERN_TRIAL_MIN)
        & (p_dir > p_opp)
        & (sup[rows, this] >= PATTERN_MIN_DEVIATIONS)
        & (ev.magnitude >= min_change[None, :])
        & ~against
    )
    tests = (
        ~ev.known[None, :] | np.zeros_like(against),
        p_dir <= ev.p_none,
        p_dir < policy.min_confidence,
        ev.magnitude < min_change[None, :],
        against,
        ~supported & (p_dir < UNSUPPORTED_MIN),
    )
    code = np.full(sign.shape, R_RECOMMENDED, dtype=np.int64)
    for k in range(len(tests) - 1, -1, -1):  # the first failing rule names the reason
        code = np.where(tests[k], k, code)
    rec = code == R_RECOMMENDED
    no_change = np.prod(np.where(ev.known[None, :], ev.p_none, 1.0), axis=1)
    return BatchArrays(sign, p_dir, p_opp, rec, supported, against, min_change, max_step, code, no_change, pattern & ~rec)


_REASON_CACHE: dict[tuple[int, int, int, float], str] = {}


def reason_text(code: int, j: int, p: float, magnitude: float, policy: Policy, min_change: float) -> str:
    """The words of a reason code (numbers rounded as printed, so the texts cache well)."""
    pct = round(p * 100)
    mag = round(magnitude, 1)
    key = (code, j, pct if code in (R_LOW, R_UNSUPPORTED) else 0, mag if code == R_SMALL else 0.0)
    got = _REASON_CACHE.get(key)
    if got is not None:
        return got
    unit = PARAMETERS[j].unit
    text = {
        R_UNKNOWN: "the served model has no output for this parameter",
        R_NO_CHANGE: "no change is the most likely outcome",
        R_LOW: f"probability {pct}% is below the {policy.min_confidence:.0%} needed to recommend",
        R_SMALL: f"estimated {mag:.1f} {unit} is below the smallest meaningful change ({min_change:g} {unit})",
        R_TABLE: "the rule table names the opposite fix for a clear deviation of this walk",
        R_UNSUPPORTED: f"probability {pct}% without a gait deviation it would explain (needs {UNSUPPORTED_MIN:.0%})",
        R_RECOMMENDED: "recommended",
    }[code]
    if len(_REASON_CACHE) < 65536:
        _REASON_CACHE[key] = text
    return text


_PLAIN = frozenset({R_UNKNOWN, R_NO_CHANGE, R_TABLE, R_RECOMMENDED})
_PLAIN_ROWS: dict[tuple[int, ...], list[str]] = {}


def reasons_of(a: BatchArrays, ev: ModelEvidence, r: int, policy: Policy) -> list[str]:
    codes = a.reason_code[r].tolist()
    if _PLAIN.issuperset(codes):  # no number in any reason: the commonest rows, cached whole
        key = tuple(codes)
        got = _PLAIN_ROWS.get(key)
        if got is None:
            got = _PLAIN_ROWS[key] = [reason_text(c, j, 0.0, 0.0, policy, 0.0) for j, c in enumerate(codes)]
        return list(got)
    p = a.p_dir[r].tolist()
    mag = ev.magnitude[r].tolist()
    mins = a.min_change.tolist()
    return [reason_text(c, j, p[j], mag[j], policy, mins[j]) for j, c in enumerate(codes)]


def _supporting(dev: Deviations, r: int, j: int, sign: int) -> tuple[int, ...]:
    """Listed deviations of row r that the misalignment this fix undoes would produce."""
    li = int(dev.level_index[r])
    return tuple(
        s.feature for s in signature(li, j, sign) if dev.listed[r, s.feature] and np.sign(dev.z[r, s.feature]) == s.expected_sign
    )


def _clamp(step: float, j: int, a: BatchArrays) -> tuple[float, bool]:
    cap = float(a.max_step[j])
    return (min(step, cap), step > cap)


def _continued_step(resp: Response, dev: Deviations, r: int, a: BatchArrays) -> float:
    """The further change a helped response calls for: the signature's remaining excess |z| over the
    normal band, divided by the improvement per unit of the change just made (the patient's own gain)."""
    j = PARAM_INDEX[resp.parameter]
    per_unit = resp.improvement / abs(resp.change)
    if per_unit <= 0 or not resp.features:
        return float(a.min_change[j])
    idx = list(resp.features)
    rows = signature(int(dev.level_index[r]), j, 1 if resp.change > 0 else -1)
    w = np.array([s.z_per_unit for s in rows if s.feature in resp.features])
    w = w / w.sum()
    excess = float(w @ np.maximum(np.abs(dev.z[r, idx]) - NORMAL_BAND_Z, 0.0))
    return max(float(a.min_change[j]), excess / per_unit)


def _confident(a: BatchArrays, ev: ModelEvidence, dev: Deviations, r: int, skip: set[tuple[int, int]]) -> list[Chosen]:
    out: list[Chosen] = []
    for j in np.flatnonzero(a.recommended[r]).tolist():
        sg = int(a.sign[r, j])
        if (j, sg) in skip:
            continue
        mag = float(ev.magnitude[r, j])
        step, clamped = _clamp(mag, j, a)
        out.append(Chosen(j, sg, sg * step, float(a.p_dir[r, j]), sg * mag, clamped, False, False, _supporting(dev, r, j, sg), ""))
    # Probability times size in safe steps: a sure, large change first; coronal alignment last.
    out.sort(key=lambda c: (_PLANE_ORDER[c.param_index], -c.confidence * min(abs(c.suggested) / float(a.max_step[c.param_index]), 1.5)))
    return out


def decide_row(
    r: int, dev: Deviations, ev: ModelEvidence, a: BatchArrays, loop: LoopEvidence | None, policy: Policy
) -> RowDecision:
    li = int(dev.level_index[r])
    chosen: list[Chosen] = []
    skip: set[tuple[int, int]] = set()  # fixes the loop rules out now
    helped: dict[tuple[int, int], Response] = {}
    if loop is not None:
        excluded = {(PARAM_INDEX[p], s) for p, s in loop.undone}
        for resp in loop.responses:
            j = PARAM_INDEX[resp.parameter]
            sg = 1 if resp.change > 0 else -1
            if resp.verdict == "helped":
                helped[j, sg] = resp
                continue
            if resp.verdict == "inconclusive":
                continue  # the walks cannot tell: the model reads the walk as it is
            if resp.verdict == "no_measurable_effect":
                # This patient does not respond to it: not continued or offered again now, the next
                # candidate is. Not undone: a change the walks show no effect of is no reason to move the
                # prosthesis back (measured: undoing those undid 13 right-direction steps for 8 wrong ones).
                skip.add((j, sg))
                continue
            # Made worse: undo it first (DESIGN 3.4), and do not offer it again now.
            p_worse = 0.5 * math.erfc(resp.improvement / (resp.noise * math.sqrt(2.0)))
            chosen.append(
                Chosen(
                    j, -sg, -resp.change, round(p_worse, 4), -resp.change,
                    False, False, True, resp.features,
                    f"the change of {resp.change:+g} {PARAMETERS[j].unit} since the reference walk made its deviations worse: undo it first",
                )
            )
            skip.add((j, sg))
        excluded |= skip
    else:
        excluded = set()
    confident = _confident(a, ev, dev, r, skip)
    chosen += confident
    explained = {f for c in chosen for f in c.supporting}
    vetoed: set[tuple[int, int]] = set()
    trial: Chosen | None = None
    clear = np.flatnonzero(dev.clear[r]).tolist()
    if not confident:
        # Every clear deviation gets an answer: the table's candidates, ranked by the model.
        options: list[tuple[tuple[float, ...], Chosen]] = []
        for f in clear:
            if f in explained:
                continue
            zs = 1 if dev.z[r, f] > 0 else -1
            cands = causes_of(li, f, zs).candidates
            both_ways = {c.param_index for c in cands if any(o.param_index == c.param_index and o.sign != c.sign for o in cands)}
            for cand in cands:
                key = (cand.param_index, cand.sign)
                if not ev.known[cand.param_index] or key in excluded:
                    continue
                p = float(ev.p(cand.sign)[r, cand.param_index])
                p_opp = float(ev.p(-cand.sign)[r, cand.param_index])
                if p_opp > p or (cand.param_index in both_ways and (p - p_opp < AMBIGUOUS_MARGIN or p < AMBIGUOUS_RATIO * p_opp)):
                    vetoed.add(key)
                    continue
                prior = helped.get(key)
                if prior is not None:
                    step, clamped = _clamp(_continued_step(prior, dev, r, a), cand.param_index, a)
                    note = f"the change of {prior.change:+g} {PARAMETERS[cand.param_index].unit} helped: continue"
                else:
                    step, clamped = float(a.min_change[cand.param_index]), False
                    note = "trial at the smallest effective step: walk again and send this change"
                sup = _supporting(dev, r, cand.param_index, cand.sign) or (f,)
                rank = (0.0 if prior is not None else 1.0, -p, float(_PLANE_ORDER[cand.param_index]), float(cand.order))
                options.append((rank, Chosen(cand.param_index, cand.sign, cand.sign * step, p, cand.sign * step, clamped, True, False, sup, note)))
        if not options:
            # A change that helped while its deviations are still outside the normal band: continue,
            # with a step sized by this patient's response (the loop must not stop one step short).
            for (j, sg), prior in helped.items():
                if (j, sg) in excluded or not ev.known[j] or float(ev.p(-sg)[r, j]) > float(ev.p(sg)[r, j]) + AMBIGUOUS_MARGIN:
                    continue
                if float(ev.p(sg)[r, j]) < CONTINUE_MIN:
                    continue
                idx = list(prior.features)
                if not idx or not np.any(np.abs(dev.z[r, idx]) > NORMAL_BAND_Z):
                    continue
                step, clamped = _clamp(_continued_step(prior, dev, r, a), j, a)
                note = f"the change of {prior.change:+g} {PARAMETERS[j].unit} helped and its deviations persist: continue"
                sup = _supporting(dev, r, j, sg) or tuple(prior.features)
                rank = (0.0, -float(ev.p(sg)[r, j]), float(_PLANE_ORDER[j]), 0.0)
                options.append((rank, Chosen(j, sg, sg * step, float(ev.p(sg)[r, j]), sg * step, clamped, True, False, sup, note)))
        if not options:
            # No clear deviation to explain, but a pattern: moderate evidence and several listed
            # deviations one fix explains.
            for j in np.flatnonzero(a.pattern[r]).tolist():
                sg = int(a.sign[r, j])
                if (j, sg) in excluded:
                    continue
                p = float(a.p_dir[r, j])
                sup = _supporting(dev, r, j, sg)
                note = f"trial: {len(sup)} deviations this fix explains, each moderate; walk again and send this change"
                step = float(a.min_change[j])
                rank = (1.0, -p, float(_PLANE_ORDER[j]), 0.0)
                options.append((rank, Chosen(j, sg, sg * step, p, sg * step, False, True, False, sup, note)))
        if options:
            options.sort(key=lambda o: o[0])
            trial = options[0][1]
            chosen.append(trial)
    # Reverts first, then the ranked changes; ranks are positions in this list.
    if any(not c.trial for c in chosen):
        kind = AnswerKind.RECOMMENDED
    elif trial is not None:
        kind = AnswerKind.TRIAL
    elif clear:
        kind = AnswerKind.NOT_ALIGNMENT
    elif int(dev.present[r].sum()) < MIN_INFORMATIVE_FEATURES:
        kind = AnswerKind.INSUFFICIENT_EVIDENCE
    elif loop is not None and float(a.no_change[r]) < LOOP_ACCEPT_MIN:
        kind = AnswerKind.INSUFFICIENT_EVIDENCE  # nothing left to try, but no evidence of the band either
    else:
        kind = AnswerKind.NO_CHANGE
    no_change = float(a.no_change[r])
    if kind is AnswerKind.RECOMMENDED:
        overall = max(c.confidence for c in chosen if not c.trial)
    elif kind is AnswerKind.TRIAL:
        assert trial is not None
        overall = trial.confidence
    elif kind is AnswerKind.NOT_ALIGNMENT:
        # How sure the service is that no alignment change explains what it sees.
        best = max((float(ev.p(s)[r, j]) for j, s in vetoed), default=0.0)
        overall = 1.0 - best
    else:
        overall = no_change
    reasons = reasons_of(a, ev, r, policy)
    made = {c.param_index for c in confident}
    for j in range(N_PARAMS):
        if reasons[j] == "recommended" and j not in made:
            reasons[j] = "ruled out by the fitting loop (tried in this direction without success)"
    for ch in chosen:
        if ch.reverts:
            reasons[ch.param_index] = "undo: " + ch.note
        elif ch.trial:
            reasons[ch.param_index] = "trial: " + ch.note
    return RowDecision(kind, tuple(chosen), float(overall), tuple(reasons), frozenset(vetoed), frozenset(excluded))


def quiet_rows(dev: Deviations, a: BatchArrays, loops: list[LoopEvidence | None]) -> npt.NDArray[np.bool_]:
    """[n] rows whose answer needs no per-row rules: nothing recommended, no clear deviation, no loop."""
    quiet = ~a.recommended.any(axis=1) & ~dev.clear.any(axis=1) & ~a.pattern.any(axis=1)
    quiet &= np.array([lp is None for lp in loops], dtype=bool)
    return quiet


def quiet_decision(r: int, dev: Deviations, ev: ModelEvidence, a: BatchArrays, policy: Policy) -> RowDecision:
    """NO_CHANGE (or INSUFFICIENT_EVIDENCE with too few features) for a quiet row: decide_row's answer."""
    few = int(dev.present[r].sum()) < MIN_INFORMATIVE_FEATURES
    kind = AnswerKind.INSUFFICIENT_EVIDENCE if few else AnswerKind.NO_CHANGE
    return RowDecision(kind, (), float(a.no_change[r]), tuple(reasons_of(a, ev, r, policy)), frozenset(), frozenset())
