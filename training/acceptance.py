"""The textbook acceptance suite (issue 13, DESIGN 7): one clear deviation, everything else at the norm.

Cases are generated from the cited rule table (service/data/deviation_causes.csv, clinical-evidence
Tables A and B): for every deviation (feature above / below its norm, per amputation level) that the
table gives alignment fixes for, one walk per z in Z_VALUES, per prosthetic side and per sensor subset
that measures the feature, with the feature at `norm + z * effective SD` (the noise-aware SD of the
sensor that sends it, as the service computes z) and every other feature the subset measures exactly
at its norm. The accepted answers are the table's fixes for that deviation; the opposite of each is
forbidden anywhere in the answer. Well-aligned copies (everything at the norm) must get NO_CHANGE.

The service's own code answers (validation and the Recommender, default policy, on the exported
artifact): this scores what a prosthetist would get, not a re-implementation. Used by the contract
test (tests/contract/test_textbook_acceptance.py) and by the export (manifest "acceptance", model card).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service import catalog
from service.catalog import AmputationLevel, Parameter, SensorKind, Side
from service.domain import AnswerKind, AssessmentInput, FeatureInput, PatientContextInput, Recommendation
from service.model import OnnxModel
from service.recommender import Policy, Recommender
from service.validation import validate_assessment
from training import cohort

Z_VALUES = (3.0, 4.0, 5.0)
SUBSETS = ("all_sensors", "imu_only", "pylon_only", "video_only", "observation_only")
# A decision within this of its threshold is fragile (issue 13: "none within 0.05 of a threshold").
MARGIN = 0.05
_KNEE = {AmputationLevel.TRANSTIBIAL: "ANATOMICAL", AmputationLevel.TRANSFEMORAL: "MICROPROCESSOR"}


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    level: AmputationLevel
    side: Side
    subset: str
    feature: str
    z: float
    accepted: frozenset[tuple[Parameter, int]]
    table_rows: str
    features: tuple[FeatureInput, ...]


def _walk(level: AmputationLevel, kinds: frozenset[SensorKind], deviated: str | None, z: float) -> tuple[FeatureInput, ...] | None:
    mask = catalog.feature_sensor_mask(kinds)
    out: list[FeatureInput] = []
    for spec, measurable in zip(catalog.FEATURES, mask, strict=True):
        if not measurable:
            continue
        src = cohort.best_source(kinds, spec, level)
        norm = spec.normative[level]
        v = norm.mean
        if spec.name == deviated:
            v = norm.mean + z * float(np.hypot(norm.sd, catalog.noise_sd(src, spec, level)))
            if not spec.min_value <= v <= spec.max_value:
                return None
        out.append(FeatureInput(spec.name, v, "", src))
    return tuple(out)


def cases() -> list[Case]:
    out: list[Case] = []
    keys: dict[tuple[AmputationLevel, str, int], list[catalog.CauseRule]] = {}
    for r in catalog.cause_rules():
        if r.parameter is None:
            continue
        for lvl in AmputationLevel:
            if r.applies(lvl):
                keys.setdefault((lvl, r.feature, r.z_sign), []).append(r)
    for (lvl, feature, sign), rules in keys.items():
        accepted = frozenset((r.parameter, r.fix_sign) for r in rules if r.parameter is not None)
        rows = "; ".join(dict.fromkeys(r.table_row for r in rules))
        spec = catalog.FEATURES_BY_NAME[feature]
        for subset in SUBSETS:
            kinds = cohort.SENSOR_SUBSETS[subset]
            if not any(k in kinds for k in spec.sources):
                continue
            for z in Z_VALUES:
                feats = _walk(lvl, kinds, feature, sign * z)
                if feats is None:
                    continue
                for side in Side:
                    name = f"{lvl.value[:2]} {feature} {'high' if sign > 0 else 'low'} z={z:g} {subset} {side.value}"
                    out.append(Case(name, lvl, side, subset, feature, sign * z, accepted, rows, feats))
    return out


def aligned_cases() -> list[Case]:
    out: list[Case] = []
    for lvl in AmputationLevel:
        for subset in SUBSETS:
            feats = _walk(lvl, cohort.SENSOR_SUBSETS[subset], None, 0.0)
            assert feats is not None
            out.append(Case(f"{lvl.value[:2]} aligned {subset}", lvl, Side.LEFT, subset, "", 0.0, frozenset(), "", feats))
    return out


def answer(model: OnnxModel, suite: list[Case], policy: Policy | None = None) -> list[Recommendation]:
    batch = [
        validate_assessment(
            AssessmentInput(c.name, PatientContextInput(c.level, c.side, 80.0, 1.74, 3, "", _KNEE[c.level]), c.features)
        )
        for c in suite
    ]
    return Recommender(policy or dataclasses.replace(Policy.default(), explain=False)).recommend(model, batch)


def margin_of(rec: Recommendation, policy: Policy, accepted: frozenset[tuple[Parameter, int]] = frozenset()) -> float:
    """How far the decisive probability of an accepted rank-1 answer sits from the threshold that decides it.

    For a fix the table names, min_confidence only decides RECOMMENDED against TRIAL, and both are
    accepted answers; what decides whether it may be advised at all is the veto (the opposite more
    likely). So the margin is p - p_opposite."""
    if not rec.adjustments:
        return 0.0
    a = rec.adjustments[0]
    est = next((e for e in rec.parameter_estimates if e.parameter is a.parameter), None)
    if est is None:
        return 0.0
    sign = 1 if a.change > 0 else -1
    if (a.parameter, -sign) in accepted:
        return float("inf")
    p, p_opp = (est.probability_increase, est.probability_decrease) if sign > 0 else (est.probability_decrease, est.probability_increase)
    assert policy.min_confidence > 0
    return p - p_opp


def load(directory: Path) -> OnnxModel:
    """The exported artifact as the service loads it (export runs the suite on it)."""
    return OnnxModel.load(directory)


EXTRAPOLATION_Z = tuple(float(z) for z in np.arange(3.0, 10.01, 0.5))
# A drop smaller than this between neighbouring z is noise of the tree thresholds, not a reversal.
DROP_TOLERANCE = 0.01


def extrapolation(model: OnnxModel) -> dict[str, Any]:
    """Does a larger deviation ever lower the probability of a textbook fix that explains it?

    For every table deviation (all sensors, left side), the feature is swept from z = 3 to 10, beyond
    what the cohort produces for most features, with everything else at the norm; each candidate fix's
    probability must be non-decreasing (within DROP_TOLERANCE)."""
    curves = beyond_curves = 0
    bad: list[str] = []
    bad_beyond: list[str] = []
    worst = worst_beyond = 0.0
    ranges = model.input_ranges
    kinds = cohort.SENSOR_SUBSETS["all_sensors"]
    seen: set[tuple[AmputationLevel, str, int]] = set()
    for c in cases():
        key = (c.level, c.feature, 1 if c.z > 0 else -1)
        if c.subset != "all_sensors" or c.side is not Side.LEFT or key in seen:
            continue
        seen.add(key)
        walks = [w for z in EXTRAPOLATION_Z if (w := _walk(c.level, kinds, c.feature, key[2] * z)) is not None]
        if len(walks) < 2:
            continue
        fi = catalog.FEATURE_INDEX[c.feature]
        value = [next(f.value for f in w if f.name == c.feature) for w in walks]
        outside = [ranges is not None and not (ranges[0][fi] <= v <= ranges[1][fi]) for v in value]
        sweep = [dataclasses.replace(c, features=w) for w in walks]
        recs = answer(model, sweep)
        for param, sign in sorted(c.accepted):
            ps = []
            for r in recs:
                e = next(e for e in r.parameter_estimates if e.parameter is param)
                ps.append(e.probability_increase if sign > 0 else e.probability_decrease)
            name = f"{c.level.value[:2]} {c.feature} {'high' if key[2] > 0 else 'low'}: {param.value} {sign:+d}"
            drop = max((a - b for a, b in itertools.pairwise(ps)), default=0.0)
            curves += 1
            worst = max(worst, drop)
            if drop > DROP_TOLERANCE:
                bad.append(f"{name} drops {drop:.3f}")
            # Beyond the training range: from the last value inside it on.
            first = next((k for k, o in enumerate(outside) if o), None)
            if first is not None:
                tail = ps[max(first - 1, 0) :]
                d = max((a - b for a, b in itertools.pairwise(tail)), default=0.0)
                beyond_curves += 1
                worst_beyond = max(worst_beyond, d)
                if d > DROP_TOLERANCE:
                    bad_beyond.append(f"{name} drops {d:.3f} beyond the training range")
    return {
        "curves": curves,
        "non_decreasing": curves - len(bad),
        "worst_drop": worst,
        "decreasing": bad[:40],
        "curves_beyond_training_range": beyond_curves,
        "non_decreasing_beyond_training_range": beyond_curves - len(bad_beyond),
        "worst_drop_beyond_training_range": worst_beyond,
        "decreasing_beyond_training_range": bad_beyond[:40],
        "z": list(EXTRAPOLATION_Z),
    }


def run(model: OnnxModel) -> dict[str, Any]:
    """The suite's figures (what the contract test asserts and the model card reports)."""
    policy = Policy.default()
    suite = cases()
    recs = answer(model, suite)
    first_ok = opposite = no_change = fragile = 0
    kinds: Counter[str] = Counter()
    by_subset: dict[str, list[int]] = {}
    misses: list[str] = []
    fragile_cases: list[str] = []
    opposite_cases: list[str] = []
    for c, r in zip(suite, recs, strict=True):
        got = [(a.parameter, 1 if a.change > 0 else -1) for a in r.adjustments]
        ok = bool(got) and got[0] in c.accepted and r.answer_kind in (AnswerKind.RECOMMENDED, AnswerKind.TRIAL)
        bad = ({(p, -s) for p, s in c.accepted} - c.accepted) & set(got)
        first_ok += ok
        opposite += bool(bad)
        no_change += r.no_change_needed
        kinds[r.answer_kind.value] += 1
        if ok and margin_of(r, policy, c.accepted) < MARGIN:
            fragile += 1
            if len(fragile_cases) < 40:
                fragile_cases.append(f"{c.name}: {r.answer_kind.value} {got[:1]} margin {margin_of(r, policy, c.accepted):.3f}")
        if bad and len(opposite_cases) < 40:
            opposite_cases.append(f"{c.name}: {r.answer_kind.value} {got}")
        tally = by_subset.setdefault(c.subset, [0, 0])
        tally[0] += ok
        tally[1] += 1
        if not ok and len(misses) < 40:
            misses.append(f"{c.name}: {r.answer_kind.value} {got[:2]}")
    aligned = aligned_cases()
    aligned_recs = answer(model, aligned)
    return {
        "cases": len(suite),
        "rank1_accepted_rate": first_ok / len(suite),
        "cases_with_an_opposite_fix": opposite,
        "no_change_needed_answers": no_change,
        "fragile_within_margin": fragile,
        "answer_kinds": dict(kinds),
        "rank1_accepted_rate_by_subset": {k: v[0] / v[1] for k, v in by_subset.items()},
        "aligned_copies": len(aligned),
        "aligned_copies_no_change": sum(r.answer_kind is AnswerKind.NO_CHANGE for r in aligned_recs),
        "extrapolation": extrapolation(model),
        "misses": misses,
        "fragile": fragile_cases,
        "opposite": opposite_cases,
    }
