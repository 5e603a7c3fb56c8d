"""Stage 5: the explanation. Deviations, the differential of each one, adjustments in words, the
non-alignment findings, what to measure next, warnings, the per-parameter estimates and a one-line
summary. Everything a prosthetist reads is built here from the earlier stages' numbers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.catalog import (
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURES,
    PARAMETERS,
    FeatureGroup,
    typical_source,
)
from service.domain import (
    Adjustment,
    AnswerKind,
    CandidateCause,
    ConfidenceLevel,
    Deviation,
    Differential,
    FeatureChange,
    FloatArray,
    MeasurementSuggestion,
    NonAlignmentFinding,
    ParameterEstimate,
)
from service.recommender.candidates import causes_of, signature
from service.recommender.decide import Chosen, RowDecision
from service.recommender.deviations import MEAN, SD, Deviations
from service.recommender.evidence import ModelEvidence
from service.recommender.policy import CAPPED_CONFIDENCE, HIGH_CONFIDENCE, MEDIUM_CONFIDENCE, MIN_INFORMATIVE_FEATURES

NO_REFERENCE_HINT = (
    "no reference walk was sent: the same patient's features at the alignment last accepted "
    "(reference_features) separate a misalignment from the way this patient walks anyway"
)
NOT_READ_REFERENCE_WARNING = "the served model does not read reference walks: reference_features were checked but not used"
OUTSIDE_TRAINING_WARNING = (
    "some features are outside the range the model was trained on: its probabilities are extrapolated, "
    "so the answer is at most of medium confidence"
)
# A change since the reference walk is listed from one between-patient SD of prosthesis users.
REFERENCE_CHANGE_SD = 1.0
MAX_REFERENCE_CHANGES = 8
# Evidence for / against a candidate: another signature feature at |z| >= this agrees (same sign), one
# below AGAINST_Z (or of the other sign) argues against.
FOR_Z = 1.5
AGAINST_Z = 1.0
MAX_EVIDENCE = 3
_GROUP_PRIORITY = {FeatureGroup.SOCKET_KINETIC: 0, FeatureGroup.KINETIC: 1, FeatureGroup.KINEMATIC: 2, FeatureGroup.SPATIOTEMPORAL: 3}
_SOCKET = frozenset(i for i, f in enumerate(FEATURES) if f.group is FeatureGroup.SOCKET_KINETIC)
SOCKET_INDEX = np.array(sorted(_SOCKET), dtype=np.intp)
_HEAD = tuple(f.description.split(", +")[0] for f in FEATURES)
_SPECS = PARAMETERS


def level_of(confidence: float) -> ConfidenceLevel:
    if confidence >= HIGH_CONFIDENCE:
        return ConfidenceLevel.HIGH
    if confidence >= MEDIUM_CONFIDENCE:
        return ConfidenceLevel.MEDIUM
    return ConfidenceLevel.LOW


def _words(f: int) -> str:
    return FEATURE_NAMES[f].replace("_", " ")


def deviation_text(f: int, value: float, z: float, li: int) -> str:
    word = "high" if z > 0 else "low"
    unit = FEATURES[f].unit
    return f"{_HEAD[f]} {word}: {value:.3g} {unit} (norm {MEAN[li, f]:g} ± {SD[li, f]:g}, z = {z:+.1f})"


def direction_text(j: int, sign: int) -> str:
    s = _SPECS[j]
    return s.plus_direction if sign > 0 else s.minus_direction


def deviations_list(dev: Deviations, values: FloatArray, r: int, listed: list[int]) -> tuple[Deviation, ...]:
    """`listed`: the row's listed feature indices (batch-wide nonzero); largest |z| first, stable."""
    if not listed:
        return ()
    li = int(dev.level_index[r])
    zr = dev.z[r]
    zs = {f: float(zr[f]) for f in listed}
    order = sorted(listed, key=lambda f: -abs(zs[f]))
    return tuple(
        Deviation(
            FEATURE_NAMES[f], float(values[f]), FEATURES[f].unit, float(MEAN[li, f]), float(SD[li, f]),
            round(zs[f], 2), deviation_text(f, float(values[f]), zs[f], li),
        )
        for f in order
    )


def _evidence(dev: Deviations, r: int, j: int, sign: int, about: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Other sent features in the candidate's signature that agree with it, and those that argue against."""
    pro: list[str] = []
    con: list[str] = []
    rows = sorted(signature(int(dev.level_index[r]), j, sign), key=lambda s: -s.z_per_unit)
    for s in rows:
        f = s.feature
        if f == about or not dev.present[r, f]:
            continue
        z = float(dev.z[r, f])
        want = "high" if s.expected_sign > 0 else "low"
        if np.sign(z) == s.expected_sign and abs(z) >= FOR_Z:
            pro.append(f"{_words(f)} {want} as expected (z = {z:+.1f})")
        elif abs(z) < AGAINST_Z or np.sign(z) != s.expected_sign:
            con.append(f"{_words(f)} expected {want}, is z = {z:+.1f}")
    return tuple(pro[:MAX_EVIDENCE]), tuple(con[:MAX_EVIDENCE])


def _separating(dev: Deviations, r: int, cands: Sequence[CandidateCause], about: int) -> MeasurementSuggestion | None:
    """The feature whose expected response differs most between the top two candidates."""
    live = [c for c in cands if not c.vetoed][:2]
    if len(live) < 2:
        return None
    li = int(dev.level_index[r])
    ja, jb = (_PARAM_POS[c.parameter] for c in live)
    sa = {s.feature: s.expected_sign * s.z_per_unit * _SPECS[ja].min_change for s in signature(li, ja, live[0].direction_sign)}
    sb = {s.feature: s.expected_sign * s.z_per_unit * _SPECS[jb].min_change for s in signature(li, jb, live[1].direction_sign)}
    best, gap = -1, 0.0
    for f in set(sa) | set(sb):
        if f == about:
            continue
        g = abs(sa.get(f, 0.0) - sb.get(f, 0.0))
        if g > gap:
            best, gap = f, g
    if best < 0:
        return None
    a_way = "rises" if sa.get(best, 0.0) > 0 else "falls" if sa.get(best, 0.0) < 0 else "does not move"
    b_way = "rises" if sb.get(best, 0.0) > 0 else "falls" if sb.get(best, 0.0) < 0 else "does not move"
    spec = FEATURES[best]
    if dev.present[r, best]:
        reason = (
            f"already sent (z = {dev.z[r, best]:+.1f}): with '{live[0].direction}' it {a_way}, with "
            f"'{live[1].direction}' it {b_way}; watch it after the trial"
        )
    else:
        reason = f"separates the top candidates: with '{live[0].direction}' it {a_way}, with '{live[1].direction}' it {b_way}"
    return MeasurementSuggestion(spec.name, typical_source(spec), reason)


_PARAM_POS = {p.parameter: j for j, p in enumerate(PARAMETERS)}


def differentials(
    dev: Deviations, values: FloatArray, ev: ModelEvidence, r: int, decision: RowDecision, listed: Sequence[Deviation]
) -> tuple[Differential, ...]:
    """One per listed deviation (`listed`: deviations_list of the row, largest |z| first)."""
    li = int(dev.level_index[r])
    out: list[Differential] = []
    for d in listed:
        f = FEATURE_INDEX[d.feature]
        z = float(dev.z[r, f])
        dc = causes_of(li, f, 1 if z > 0 else -1)
        cands: list[CandidateCause] = []
        clear = bool(dev.clear[r, f])
        for c in dc.candidates:
            p = float(ev.p(c.sign)[r, c.param_index])
            p_opp = float(ev.p(-c.sign)[r, c.param_index])
            # The evidence for and against is worked out for clear deviations (those the answer must
            # explain); a listed one inside the band gets its candidates and probabilities.
            pro, con = _evidence(dev, r, c.param_index, c.sign, f) if clear else ((), ())
            cands.append(
                CandidateCause(
                    c.parameter, c.sign, direction_text(c.param_index, c.sign), round(p, 4), round(p_opp, 4),
                    pro, con, c.table_rows, p_opp > p,
                )
            )
        cands.sort(key=lambda c: (c.vetoed, -c.probability))
        others = tuple(f"{rule.cause} (Table {rule.table_row}; {rule.source})" for rule in dc.other_causes)
        if not dc.candidates and not dc.other_causes:
            others = ("the rule table names no cause for this deviation: not an alignment sign on its own",)
        out.append(
            Differential(
                d.feature, d.z_score, d.description, tuple(cands), others,
                _separating(dev, r, cands, f) if clear else None,
            )
        )
    return tuple(out)


def _rationale(c: Chosen) -> str:
    j = c.param_index
    spec = _SPECS[j]
    text = f"{direction_text(j, c.sign)} by {abs(c.step):.1f} {spec.unit} (probability {c.confidence:.0%})"
    if c.supporting:
        text += "; explains " + ", ".join(_words(f) for f in c.supporting)
    if c.note:
        text += "; " + c.note
    if c.clamped:
        text += f"; clamped to the safe single step of {abs(c.step):g} {spec.unit}: re-assess after this change"
    return text


def _effect_drivers(dev: Deviations, r: int, j: int, sign: int) -> tuple[str, ...]:
    """Present features this fix's signature moves, by |z| (stable): the cheap stand-in for occlusion."""
    rows = [s.feature for s in signature(int(dev.level_index[r]), j, sign) if dev.present[r, s.feature]]
    rows.sort(key=lambda f: -abs(float(dev.z[r, f])))
    return tuple(FEATURE_NAMES[f] for f in rows[:5])


def adjustments(
    decision: RowDecision, ev: ModelEvidence, dev: Deviations, r: int, drivers: dict[int, tuple[str, ...]] | None
) -> tuple[Adjustment, ...]:
    out: list[Adjustment] = []
    for rank, c in enumerate(decision.chosen, start=1):
        j, sg = c.param_index, c.sign
        spec = _SPECS[j]
        lo, hi = float(ev.magnitude_lo[r, j]), float(ev.magnitude_hi[r, j])
        interval = sorted((sg * lo, sg * hi))
        drv = drivers.get(j) if drivers is not None else None
        out.append(
            Adjustment(
                rank=rank,
                parameter=spec.parameter,
                change=round(c.step, 2),
                unit=spec.unit,
                direction=direction_text(j, sg),
                confidence=round(c.confidence, 4),
                interval_lower=round(interval[0], 2),
                interval_upper=round(interval[1], 2),
                suggested_change=round(c.suggested, 2),
                clamped_to_safe_step=c.clamped,
                supporting_deviations=tuple(FEATURE_NAMES[f] for f in c.supporting),
                driving_features=drv if drv is not None else _effect_drivers(dev, r, j, sg),
                rationale=_rationale(c),
                plane=spec.plane,
                trial=c.trial,
                reverts_applied_change=c.reverts,
            )
        )
    return tuple(out)


def findings(dev: Deviations, r: int, decision: RowDecision) -> tuple[NonAlignmentFinding, ...]:
    """Clear deviations no adjustment of the answer addresses, with the table's non-alignment causes."""
    li = int(dev.level_index[r])
    explained = {f for c in decision.chosen for f in c.supporting}
    out: list[NonAlignmentFinding] = []
    for f in np.flatnonzero(dev.clear[r]).tolist():
        if f in explained:
            continue
        z = float(dev.z[r, f])
        dc = causes_of(li, f, 1 if z > 0 else -1)
        word = "HIGH" if z > 0 else "LOW"
        code = f"{FEATURE_NAMES[f].upper()}_{word}_NOT_ALIGNMENT"
        if dc.other_causes:
            checks = "; ".join(f"{rule.cause} (Table {rule.table_row})" for rule in dc.other_causes)
        else:
            checks = "no cause is listed in the rule table; re-measure it"
        lead = "no alignment change explains it confidently" if dc.candidates else "no alignment cause is listed for it"
        out.append(NonAlignmentFinding(code, f"{_HEAD[f]} {word.lower()} (z = {z:+.1f}): {lead}; check: {checks}", (FEATURE_NAMES[f],)))
    return tuple(out)


def contender_key(ev: ModelEvidence, r: int) -> tuple[int, ...]:
    """The parameters with a real, unsettled chance of needing a change, each with its likelier way."""
    p_max = np.maximum(ev.p_decrease[r], ev.p_increase[r])
    plus = ev.p_increase[r] >= ev.p_decrease[r]
    return tuple(int(j) * 2 + int(plus[j]) for j in np.flatnonzero((p_max >= 0.15) & (p_max < HIGH_CONFIDENCE)))


def suggestions(
    dev: Deviations, ev: ModelEvidence, r: int, feature_columns: frozenset[str]
) -> tuple[MeasurementSuggestion, ...]:
    """Missing features that bear on the parameters the model is least sure about (below HIGH only).

    A pure function of the level, the present features and contender_key (the recommender caches it)."""
    li = int(dev.level_index[r])
    p_max = np.maximum(ev.p_decrease[r], ev.p_increase[r])
    contenders = [j for j in range(len(PARAMETERS)) if 0.15 <= p_max[j] < HIGH_CONFIDENCE] or list(range(len(PARAMETERS)))
    scored: dict[int, tuple[int, float]] = {}
    for j in contenders:
        sign = 1 if ev.p_increase[r, j] >= ev.p_decrease[r, j] else -1
        for s in signature(li, j, sign):
            f = s.feature
            if dev.present[r, f] or FEATURE_NAMES[f] not in feature_columns:
                continue
            key = (_GROUP_PRIORITY[FEATURES[f].group], -s.z_per_unit)
            if f not in scored or key < scored[f]:
                scored[f] = key
    order = sorted(scored, key=lambda f: scored[f])[:3]
    out: list[MeasurementSuggestion] = []
    for f in order:
        spec = FEATURES[f]
        reason = (
            "socket reaction moments respond most reliably to alignment (Boone 2013; Jonkergouw 2016)"
            if f in _SOCKET
            else "would help separate the candidate alignment causes"
        )
        out.append(MeasurementSuggestion(spec.name, spec.sources[0], reason))
    has_socket = bool(dev.present[r, SOCKET_INDEX].any())
    if not has_socket and not any(f in _SOCKET for f in order):
        f = FEATURE_INDEX["socket_coronal_moment_early_stance_nm_per_kg"]
        if FEATURE_NAMES[f] in feature_columns:
            out.append(MeasurementSuggestion(FEATURE_NAMES[f], FEATURES[f].sources[0], "no socket kinetics were sent"))
    return tuple(out)


def estimates(rounded: tuple[list[list[float]], ...], known: list[bool], r: int, decision: RowDecision) -> tuple[ParameterEstimate, ...]:
    """`rounded`: the batch's p_decrease, p_none, p_increase (4 decimals) and magnitude (2) as lists."""
    made = {c.param_index for c in decision.chosen}
    dec, none, inc, mag = (x[r] for x in rounded)
    return tuple(
        ParameterEstimate(spec.parameter, dec[j], none[j], inc[j], mag[j], spec.unit, j in made, decision.reasons[j])
        for j, spec in enumerate(PARAMETERS)
        if known[j]
    )


def rounded_estimates(ev: ModelEvidence) -> tuple[list[list[float]], ...]:
    return (
        np.round(ev.p_decrease, 4).tolist(),
        np.round(ev.p_none, 4).tolist(),
        np.round(ev.p_increase, 4).tolist(),
        np.round(ev.magnitude, 2).tolist(),
    )


def capped_confidence(overall: float, n_present: int, has_socket: bool, outside: bool) -> tuple[float, tuple[str, ...]]:
    """The overall confidence after the honesty caps, and the warnings that explain them."""
    notes: list[str] = []
    if n_present < MIN_INFORMATIVE_FEATURES:
        notes.append(f"only {n_present} feature(s) sent: too little information for a confident answer")
        overall = min(overall, 0.5)
    if not has_socket:
        # Spatiotemporal and kinematic features are compensated by the user (Jonkergouw 2016).
        overall = min(overall, CAPPED_CONFIDENCE)
    if outside:
        notes.append(OUTSIDE_TRAINING_WARNING)
        overall = min(overall, CAPPED_CONFIDENCE)
    return overall, tuple(notes)


def summary(kind: AnswerKind, adj: Sequence[Adjustment], diffs: Sequence[Differential], found: Sequence[NonAlignmentFinding],
            sugg: Sequence[MeasurementSuggestion], loop_band_probability: float | None = None) -> str:
    """loop_band_probability: in a fitting loop, the probability that every parameter is inside the band."""
    if kind is AnswerKind.NO_CHANGE:
        return "No change: alignment is within the acceptable band for the measured features."
    if kind is AnswerKind.INSUFFICIENT_EVIDENCE and loop_band_probability is not None:
        more = f" Measure {sugg[0].feature.replace('_', ' ')} next." if sugg else ""
        return (
            "Nothing left to try, but the walks do not show the patient inside the band "
            f"(probability {loop_band_probability:.0%}): not accepted." + more
        )
    if kind is AnswerKind.INSUFFICIENT_EVIDENCE:
        more = f" Measure {sugg[0].feature.replace('_', ' ')} next." if sugg else ""
        return "Too little was measured for an alignment answer." + more
    if kind is AnswerKind.NOT_ALIGNMENT:
        what = found[0].message if found else (diffs[0].description if diffs else "the deviations")
        return f"Not alignment: {what}"
    a = adj[0]
    step = f"{a.direction} by {abs(a.change):g} {a.unit}"
    if a.reverts_applied_change:
        head = f"Undo the last change: {step}"
        if len(adj) > 1:
            head += f"; then {'try ' if adj[1].trial else ''}{adj[1].direction} by {abs(adj[1].change):g} {adj[1].unit}"
        return head + "; walk again."
    if kind is AnswerKind.TRIAL:
        target = f" for {a.supporting_deviations[0].replace('_', ' ')}" if a.supporting_deviations else ""
        return f"Trial: {step}{target} (probability {a.confidence:.0%}); walk again and send this change."
    return f"Change: {step} (probability {a.confidence:.0%}); walk again after this change."


def changes_since_reference(values: FloatArray, reference: FloatArray, li: int) -> tuple[FeatureChange, ...]:
    """Features that changed since the reference walk by >= REFERENCE_CHANGE_SD normative SDs, largest first."""
    sd = SD[li]
    with np.errstate(invalid="ignore"):
        in_sd = (values - reference) / sd
    idx = np.flatnonzero(np.abs(np.nan_to_num(in_sd)) >= REFERENCE_CHANGE_SD)
    order = idx[np.argsort(-np.abs(in_sd[idx]), kind="stable")][:MAX_REFERENCE_CHANGES]
    return tuple(
        FeatureChange(
            FEATURE_NAMES[i], float(reference[i]), float(values[i]), float(values[i] - reference[i]), FEATURES[i].unit,
            round(float(in_sd[i]), 2),
        )
        for i in order.tolist()
    )

