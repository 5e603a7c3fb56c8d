"""Simulated fittings: every walk after a known change sharpens the answer (issue 14; DESIGN 3.4, 7).

A fitting is a loop: walk, change one thing, walk again, keep or revert, until the patient sits inside
the acceptable band (every |misalignment| below the parameter's min_change; Zahedi 1986). This module
runs that loop for fresh simulated patients (their own seed, none trained on) under several policies
side by side, on the SAME patients and the SAME walk seeds (walk k of patient i draws its noise from
one seed whatever the policy did before, so differences are the policies', not the dice's):

- ``service``: this service in-process (the service's own validation and ``Recommender``, default
  policy, the exported model). From the second walk on, each request carries the previous walk as
  ``reference_values``, the change applied after it as ``applied_since_reference`` and the earlier walks
  as ``history`` (each with the change after it). The rank-1 adjustment is applied as recommended,
  trials and reverts included; the fitting stops when the answer lists no adjustment (NO_CHANGE, or
  NOT_ALIGNMENT / INSUFFICIENT_EVIDENCE with nothing to try).
- ``textbook_rule``: one change at a time by the rule table (clinical-evidence Tables A/B, as data in
  ``TEXTBOOK_RULES`` below): the first listed fix of the largest clear deviation (|z| >= 2, z counting
  the sensor's noise), at the smallest effective step (min_change); after the next walk, if the
  deviation score (sum of z^2 of the clear deviations) went up, the step is reverted and that fix is
  not tried again for that deviation (the next listed one is).
- ``single_walk``: today's use, the service with no reference and no history: every walk is a new
  patient to it.
- ``oracle``: a likelihood posterior over the misalignment that knows the simulator (effect table,
  baseline spread, sensor noise) and the same information as the service (the walks and the known
  changes), updated with each walk; applies the most probable single-parameter correction (posterior
  median, clamped), stops when no parameter's change is more likely than not. See ``_Oracle``.
- ``oracle_known_baseline``: the same oracle also knowing the patient's own aligned gait (a perfect,
  drift-free reference walk): what the patient's baseline is worth to the loop (the walks cannot show it,
  see training/fitting_oracle.py).
- ``ceiling``: perfect knowledge: it knows the true misalignment and applies the right clamped step,
  one parameter per walk (the largest in safe steps first).

Walks follow ``training.cohort`` (``_draw_patient``, ``_true_features``, ``measure``): per-patient
baseline, per-patient response gains (compensation), sensor noise and dropouts, speed jitter per walk.
No visit drift: the walks of one fitting are one visit. A budget of WALKS walks: a change is applied
after walks 1..WALKS-1 and the last walk shows where the patient ends.

Reported per policy, per sensor subset, and per amputation level:
- in_band_within_{2,4,6}_walks: share of the misaligned patients whose alignment at walk k (or where
  the fitting stopped, if earlier) is inside the band;
- walks_to_band: mean walk at which a misaligned patient is first inside the band (WALKS + 1 when not
  within the budget);
- steps_away_from_aligned: share of applied steps that moved their parameter further from aligned,
  and undone_by_next_walk: share of those whose next step undid them (same parameter, opposite sign);
- patients_worse_at_end: share of patients (aligned ones included) whose out-of-band misalignment
  (sum of |x| / max_step over parameters outside the band) is larger at the end than at the start;
- aligned patients: share given NO_CHANGE on the first walk, and mean walks spent on them.
Simulated patients, simulated responses: a property of the simulator and the policies together, not a
clinical outcome.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from service import catalog
from service.catalog import AmputationLevel, Parameter, SensorKind, Side
from service.domain import (
    AnswerKind,
    AppliedChangeInput,
    AssessmentInput,
    FeatureInput,
    FittingWalkInput,
    GaitAssessment,
    PatientContextInput,
)
from service.model import OnnxModel
from service.recommender import Policy, Recommender
from service.validation import validate_assessment
from training import cohort

WALKS = 6
BUDGETS = (2, 4, 6)
SEED = 6161
# `python -m training all` runs this many per sensor subset: 300 cost 12 CPU-s (2026-12-04, the oracle
# on all sensors only; 59 s wall while the 2 cores ran at load 12), inside the ~30 s this evaluation may take of the 3-minute
# budget; `python -m training fittings --patients N` runs a bigger one (the oracle on every subset).
PATIENTS_DEFAULT = 300
SUBSETS = ("all_sensors", "pylon_only", "imu_only", "video_only", "observation_only")
POLICIES = ("service", "textbook_rule", "single_walk", "oracle", "oracle_known_baseline", "ceiling")
_ORACLES = ("oracle", "oracle_known_baseline")
# `python -m training all` leaves out the known-baseline oracle (an extra reference; ~25% of this
# evaluation's time); `python -m training fittings` runs every policy.
PIPELINE_POLICIES = tuple(p for p in POLICIES if p != "oracle_known_baseline")
ORACLE_SUBSETS_DEFAULT = ("all_sensors",)
# Patients fitted together (one batch per walk for the service): bounds the memory of the policies'
# per-patient state (the oracle keeps ~2 MB per patient) whatever the run's size.
CHUNK = 50
PLOT_NAME = "fitting_in_band.png"
CLEAR_Z = 2.0  # a clear deviation (the service's default deviation_z)
_MIN = np.array([p.min_change for p in catalog.PARAMETERS])
_STEP = np.array([p.max_step for p in catalog.PARAMETERS])
_PARAMS = [p.parameter for p in catalog.PARAMETERS]
_PIDX = {p: j for j, p in enumerate(_PARAMS)}
_KNEE = {AmputationLevel.TRANSTIBIAL: "ANATOMICAL", AmputationLevel.TRANSFEMORAL: "MICROPROCESSOR"}
_TT, _TF = AmputationLevel.TRANSTIBIAL, AmputationLevel.TRANSFEMORAL
_P = Parameter

# --------------------------------------------------------------------------------------------------
# The textbook rule table: (feature, sign of the deviation) -> fixes in the order the tables list them,
# each (parameter, sign of the correction), per level (None: both). clinical-evidence.md Tables A/B; the
# catalog features standing for each row's "observable features" column.
# --------------------------------------------------------------------------------------------------
TEXTBOOK_RULES: dict[tuple[str, int], tuple[tuple[Parameter, int, AmputationLevel | None], ...]] = {
    # T1 (TT) / F1 (TF): excessive knee flexion at loading.
    ("knee_flexion_loading_prosthetic_deg", +1): (
        (_P.SOCKET_FLEXION, -1, _TT), (_P.SOCKET_FLEXION, +1, _TF), (_P.HEEL_HEIGHT, +1, None),
        (_P.FOOT_ANTERIOR_SHIFT, +1, _TT),
    ),
    # T2: hyperextension / too little knee flexion at loading.
    ("knee_flexion_loading_prosthetic_deg", -1): (
        (_P.HEEL_HEIGHT, -1, _TT), (_P.FOOT_ANTERIOR_SHIFT, -1, _TT), (_P.SOCKET_FLEXION, +1, _TT),
    ),
    # T14 / T1: early-stance flexion socket moment up.
    ("socket_sagittal_moment_early_stance_nm_per_kg", +1): (
        (_P.FOOT_ANTERIOR_SHIFT, +1, None), (_P.SOCKET_FLEXION, -1, None), (_P.HEEL_HEIGHT, +1, None),
    ),
    # T2: early-stance extension.
    ("socket_sagittal_moment_early_stance_nm_per_kg", -1): (
        (_P.HEEL_HEIGHT, -1, None), (_P.FOOT_ANTERIOR_SHIFT, -1, None), (_P.SOCKET_FLEXION, +1, None),
    ),
    # T3: drop-off (late-stance extension moment down).
    ("socket_sagittal_moment_late_stance_nm_per_kg", +1): (
        (_P.FOOT_ANTERIOR_SHIFT, +1, None), (_P.HEEL_HEIGHT, +1, None),
    ),
    # T4: toe lever too long (late-stance extension moment up).
    ("socket_sagittal_moment_late_stance_nm_per_kg", -1): (
        (_P.FOOT_ANTERIOR_SHIFT, -1, None), (_P.HEEL_HEIGHT, -1, None), (_P.SOCKET_FLEXION, +1, None),
    ),
    # T3 / F12: early heel-off (drop-off); T4: late heel-off.
    ("heel_off_prosthetic_pct_stance", -1): ((_P.FOOT_ANTERIOR_SHIFT, +1, None), (_P.HEEL_HEIGHT, +1, None)),
    ("heel_off_prosthetic_pct_stance", +1): (
        (_P.FOOT_ANTERIOR_SHIFT, -1, None), (_P.HEEL_HEIGHT, -1, None), (_P.SOCKET_FLEXION, +1, None),
    ),
    # T5: lateral thrust / varus socket moment; T6: valgus.
    ("socket_coronal_moment_early_stance_nm_per_kg", +1): (
        (_P.FOOT_MEDIAL_SHIFT, -1, None), (_P.SOCKET_ADDUCTION, +1, None),
    ),
    ("socket_coronal_moment_late_stance_nm_per_kg", +1): (
        (_P.FOOT_MEDIAL_SHIFT, -1, None), (_P.SOCKET_ADDUCTION, +1, None),
    ),
    ("socket_coronal_moment_early_stance_nm_per_kg", -1): ((_P.FOOT_MEDIAL_SHIFT, +1, None),),
    ("socket_coronal_moment_late_stance_nm_per_kg", -1): ((_P.FOOT_ROTATION, -1, None),),
    ("knee_frontal_shift_early_stance_mm", +1): ((_P.FOOT_MEDIAL_SHIFT, -1, None), (_P.SOCKET_ADDUCTION, +1, None)),
    ("knee_frontal_shift_early_stance_mm", -1): ((_P.FOOT_MEDIAL_SHIFT, +1, None),),
    ("knee_frontal_shift_late_stance_mm", -1): ((_P.FOOT_ROTATION, -1, None),),
    # T7 / F4: wide base; T8 / F5: narrow base.
    ("step_width_m", +1): ((_P.FOOT_MEDIAL_SHIFT, +1, None), (_P.PYLON_LENGTH, -1, None), (_P.SOCKET_ADDUCTION, +1, None)),
    ("step_width_m", -1): ((_P.FOOT_MEDIAL_SHIFT, -1, None), (_P.SOCKET_ADDUCTION, -1, None)),
    # T9 / T10: toe-out / toe-in.
    ("foot_progression_angle_prosthetic_deg", +1): ((_P.FOOT_ROTATION, -1, None),),
    ("foot_progression_angle_prosthetic_deg", -1): ((_P.FOOT_ROTATION, +1, None),),
    # F3: lateral trunk lean toward the prosthesis.
    ("trunk_lateral_lean_deg", +1): ((_P.PYLON_LENGTH, +1, None), (_P.SOCKET_ADDUCTION, +1, None), (_P.FOOT_MEDIAL_SHIFT, +1, None)),
    # F2: insufficient swing knee flexion (TF).
    ("knee_flexion_swing_prosthetic_deg", -1): ((_P.SOCKET_FLEXION, +1, _TF), (_P.FOOT_ANTERIOR_SHIFT, -1, _TF)),
    # F6: circumduction; F7/F8: vaulting, hip hiking; F9: pelvic drop (too short).
    ("circumduction_prosthetic_m", +1): ((_P.PYLON_LENGTH, -1, None), (_P.HEEL_HEIGHT, -1, None)),
    ("hip_hike_prosthetic_swing_deg", +1): ((_P.PYLON_LENGTH, -1, None),),
    ("pelvic_obliquity_range_deg", +1): ((_P.PYLON_LENGTH, +1, None),),
    # T15 / F13: short prosthetic step.
    ("step_length_asymmetry_pct", -1): ((_P.SOCKET_FLEXION, -1, _TT),),
}


def in_band(x: np.ndarray) -> bool:
    return bool(np.all(np.abs(x) < _MIN))


def out_of_band_load(x: np.ndarray) -> float:
    """Sum of |x| / max_step over the parameters outside the band (0 inside it)."""
    return float(np.sum(np.where(np.abs(x) >= _MIN, np.abs(x) / _STEP, 0.0)))


# --------------------------------------------------------------------------------------------------
# Walks
# --------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Walk:
    """One measured walk: the features as a clinic tool would send them, and catalog-ordered values."""

    features: tuple[FeatureInput, ...]
    values: np.ndarray


def _features(values: dict[str, float], kinds: frozenset[SensorKind]) -> tuple[FeatureInput, ...]:
    out = []
    for spec in catalog.FEATURES:
        v = values[spec.name]
        if math.isnan(v):
            continue
        source = next((k for k in spec.sources if k in kinds), None)
        out.append(FeatureInput(spec.name, v, "", source))
    return tuple(out)


def simulate_walk(p: Any, x: np.ndarray, kinds: frozenset[SensorKind], rng: np.random.Generator) -> Walk:
    speed = float(np.clip(p.speed + rng.normal(0, cohort.SPEED_JITTER), 0.2, 2.0))
    d = cohort.measure(cohort._true_features(dataclasses.replace(p, x=x), speed), kinds, p.level, rng)
    return Walk(_features(d, kinds), np.array([d[n] for n in catalog.FEATURE_NAMES]))


def context_of(p: Any) -> PatientContextInput:
    return PatientContextInput(p.level, Side(p.side), p.mass, p.height, p.k_level, p.foot, _KNEE[p.level])


# --------------------------------------------------------------------------------------------------
# Policies: given each active fitting so far, the next change (parameter index, signed change) or None
# to stop. A fitting's state holds its walks and the change applied after each.
# --------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class FittingState:
    patient: Any
    x: np.ndarray  # the true alignment now (only the ceiling reads it)
    walks: list[Walk] = field(default_factory=list)
    applied: list[tuple[int, float]] = field(default_factory=list)  # after walk k
    memo: dict[str, Any] = field(default_factory=dict)  # per-policy notes
    first_kind: AnswerKind | None = None


class FittingPolicy(Protocol):
    name: str

    def decide(self, states: Sequence[FittingState], kinds: frozenset[SensorKind]) -> list[tuple[int, float] | None]: ...


def _applied(j: int, change: float) -> tuple[AppliedChangeInput, ...]:
    return (AppliedChangeInput(_PARAMS[j], change),)


class ServicePolicy:
    """This service in-process; with_loop=False is today's single-walk use."""

    def __init__(self, model: OnnxModel, with_loop: bool = True) -> None:
        self.model = model
        self.with_loop = with_loop
        self.name = "service" if with_loop else "single_walk"
        self.recommender = Recommender(dataclasses.replace(Policy.default(), explain=False))

    def assessment(self, s: FittingState) -> GaitAssessment:
        """The request of this walk, validated like the edge validates one."""
        k = len(s.walks) - 1
        p = s.patient
        walk = s.walks[-1]
        if not self.with_loop or k == 0:
            return validate_assessment(AssessmentInput(f"{p.pid}-W{k + 1}", context_of(p), walk.features))
        prev = s.walks[-2]
        applied = _applied(*s.applied[k - 1])
        history = tuple(
            FittingWalkInput(w.features, _applied(*c)) for w, c in zip(s.walks[:-2], s.applied[: k - 1], strict=True)
        )
        return validate_assessment(
            AssessmentInput(f"{p.pid}-W{k + 1}", context_of(p), walk.features, prev.features, applied, history)
        )

    def decide(self, states: Sequence[FittingState], kinds: frozenset[SensorKind]) -> list[tuple[int, float] | None]:
        recs = self.recommender.recommend(self.model, [self.assessment(s) for s in states])
        out: list[tuple[int, float] | None] = []
        for s, r in zip(states, recs, strict=True):
            if s.first_kind is None:
                s.first_kind = r.answer_kind if not r.adjustments else AnswerKind.RECOMMENDED
            if not r.adjustments or (r.answer_kind is AnswerKind.NO_CHANGE and r.no_change_needed):
                out.append(None)
                continue
            adj = r.adjustments[0]
            out.append((_PIDX[adj.parameter], float(adj.change)))
        return out


def noise_aware_z(values: np.ndarray, level: AmputationLevel, kinds: frozenset[SensorKind]) -> np.ndarray:
    """z of each feature against the prosthesis-user norm, counting the sending sensor's noise."""
    mean = np.array([f.normative[level].mean for f in catalog.FEATURES])
    sd = np.array(
        [
            math.hypot(f.normative[level].sd, cohort._best_noise(kinds, f, level))
            if any(k in kinds for k in f.sources)
            else math.nan  # no sensor of the set measures it
            for f in catalog.FEATURES
        ]
    )
    z: np.ndarray = (values - mean) / sd
    return z


def deviation_score(z: np.ndarray) -> float:
    """Sum of z^2 over the clear deviations (|z| >= CLEAR_Z); missing features count 0."""
    zz = np.where(np.isnan(z), 0.0, z)
    return float(np.sum(np.where(np.abs(zz) >= CLEAR_Z, zz * zz, 0.0)))


class TextbookRule:
    """One change at a time: first listed fix of the largest clear deviation, smallest step, revert if
    worse (see the module docstring)."""

    name = "textbook_rule"

    def decide(self, states: Sequence[FittingState], kinds: frozenset[SensorKind]) -> list[tuple[int, float] | None]:
        return [self.one(s, kinds) for s in states]

    def one(self, s: FittingState, kinds: frozenset[SensorKind]) -> tuple[int, float] | None:
        level = s.patient.level
        z = noise_aware_z(s.walks[-1].values, level, kinds)
        score = deviation_score(z)
        m = s.memo
        tried: set[tuple[str, int, int]] = m.setdefault("tried", set())
        pending = m.pop("pending", None)
        if pending is not None:
            j, change, score_before, key = pending
            if score > score_before:
                tried.add(key)  # this fix made things worse for this deviation: undo it, try the next one
                return (j, -change)
        # The largest clear deviation that still has an untried fix in the table.
        for i in np.argsort(-np.abs(np.nan_to_num(z))).tolist():
            if not abs(z[i]) >= CLEAR_Z:
                break
            dev = (catalog.FEATURE_NAMES[i], int(np.sign(z[i])))
            for param, sign, lvl in TEXTBOOK_RULES.get(dev, ()):
                if lvl is not None and lvl is not level:
                    continue
                j = _PIDX[param]
                key = (dev[0], dev[1], j * sign)
                if key in tried:
                    continue
                change = sign * float(_MIN[j])
                m["pending"] = (j, change, score, key)
                if s.first_kind is None:
                    s.first_kind = AnswerKind.RECOMMENDED
                return (j, change)
        if s.first_kind is None:
            s.first_kind = AnswerKind.NO_CHANGE if score == 0.0 else AnswerKind.NOT_ALIGNMENT
        return None


class Ceiling:
    """Perfect knowledge: the true misalignment, the right clamped step, one parameter per walk."""

    name = "ceiling"

    def decide(self, states: Sequence[FittingState], kinds: frozenset[SensorKind]) -> list[tuple[int, float] | None]:
        out: list[tuple[int, float] | None] = []
        for s in states:
            need = np.abs(s.x) >= _MIN
            if s.first_kind is None:
                s.first_kind = AnswerKind.RECOMMENDED if need.any() else AnswerKind.NO_CHANGE
            if not need.any():
                out.append(None)
                continue
            j = int(np.argmax(np.where(need, np.abs(s.x) / _STEP, -1.0)))
            out.append((j, float(np.clip(-s.x[j], -_STEP[j], _STEP[j]))))
        return out


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Trace:
    """One patient's fitting under one policy."""

    start: np.ndarray
    alignments: list[np.ndarray]  # at walk 1..n (n <= WALKS)
    steps: list[tuple[int, float, bool]]  # (parameter, change, moved away from aligned)
    first_no_change: bool
    level: AmputationLevel

    def alignment_at(self, walk: int) -> np.ndarray:
        """Where the fitting stands at walk `walk` (its last walk if it stopped earlier)."""
        return self.alignments[min(walk, len(self.alignments)) - 1]


def walk_seed(seed: int, subset: int, patient: int, walk: int) -> np.random.Generator:
    return np.random.default_rng([seed, subset, patient, walk])


def run_policy(
    policy: FittingPolicy,
    patients: Sequence[Any],
    kinds: frozenset[SensorKind],
    seed: int,
    subset_index: int = 0,
    walks: int = WALKS,
    progress: Callable[[int], None] | None = None,
    first_index: int = 0,
) -> list[Trace]:
    """Fit every patient under `policy`; patient i's walks use the seeds of index first_index + i, so a
    run in chunks equals one run over all."""
    states = [FittingState(p, np.array(p.x, dtype=np.float64)) for p in patients]
    traces = [Trace(s.x.copy(), [], [], False, p.level) for s, p in zip(states, patients, strict=True)]
    active = list(range(len(patients)))
    for w in range(walks):
        for i in active:
            s = states[i]
            s.walks.append(simulate_walk(s.patient, s.x, kinds, walk_seed(seed, subset_index, first_index + i, w)))
            traces[i].alignments.append(s.x.copy())
        if w == walks - 1 or not active:
            break  # the last walk shows where the patient ends; no unverified change after it
        decisions = policy.decide([states[i] for i in active], kinds)
        still: list[int] = []
        for i, d in zip(active, decisions, strict=True):
            s = states[i]
            if w == 0:
                traces[i].first_no_change = d is None and s.first_kind is AnswerKind.NO_CHANGE
            if d is None:
                s.memo.clear()  # the policy's notes on a finished fitting (the oracle's posterior is MBs)
                continue
            j, change = d
            before = abs(s.x[j])
            s.x[j] += change
            traces[i].steps.append((j, change, abs(s.x[j]) > before + 1e-9))
            s.applied.append((j, change))
            still.append(i)
        active = still
        if progress is not None:
            progress(1)
    return traces


def summarize(traces: Sequence[Trace], walks: int = WALKS) -> dict[str, Any]:
    mis = [t for t in traces if not in_band(t.start)]
    ali = [t for t in traces if in_band(t.start)]
    out: dict[str, Any] = {"misaligned_patients": len(mis), "aligned_patients": len(ali)}
    for b in BUDGETS:
        out[f"in_band_within_{b}_walks"] = (
            float(np.mean([in_band(t.alignment_at(b)) for t in mis])) if mis else math.nan
        )

    def first_in_band(t: Trace) -> int:
        return next((k + 1 for k in range(walks) if in_band(t.alignment_at(k + 1))), walks + 1)

    out["in_band_by_walk"] = [
        float(np.mean([in_band(t.alignment_at(k)) for t in mis])) if mis else math.nan for k in range(1, walks + 1)
    ]
    out["walks_to_band"] = float(np.mean([first_in_band(t) for t in mis])) if mis else math.nan
    steps = [s for t in traces for s in t.steps]
    away = 0
    undone = 0
    for t in traces:
        for k, (j, change, moved_away) in enumerate(t.steps):
            if not moved_away:
                continue
            away += 1
            nxt = t.steps[k + 1] if k + 1 < len(t.steps) else None
            undone += int(nxt is not None and nxt[0] == j and np.sign(nxt[1]) == -np.sign(change))
    out["steps"] = len(steps)
    out["steps_per_misaligned_patient"] = sum(len(t.steps) for t in mis) / len(mis) if mis else math.nan
    out["steps_away_from_aligned"] = away / len(steps) if steps else 0.0
    out["steps_away_undone_by_next_walk"] = undone / away if away else math.nan
    worse = [out_of_band_load(t.alignments[-1]) > out_of_band_load(t.start) + 1e-9 for t in traces]
    out["patients_worse_at_end"] = float(np.mean(worse)) if traces else math.nan
    out["patients_worse_at_end_count"] = int(sum(worse))
    out["stopped_outside_band"] = (
        float(np.mean([len(t.alignments) < walks and not in_band(t.alignments[-1]) for t in mis])) if mis else math.nan
    )
    out["aligned_no_change_first_walk"] = float(np.mean([t.first_no_change for t in ali])) if ali else math.nan
    out["aligned_walks_spent"] = float(np.mean([len(t.alignments) for t in ali])) if ali else math.nan
    return out


def _progress_line(total: int) -> Callable[[int], None]:
    done = [0]
    t0 = time.perf_counter()

    def step(n: int) -> None:
        done[0] += n
        el = time.perf_counter() - t0
        eta = el / done[0] * (total - done[0]) if done[0] else 0.0
        print(f"\rfittings: {done[0]}/{total} rounds, {el:.0f} s elapsed, ~{eta:.0f} s left ", end="", file=sys.stderr)
        if done[0] >= total:
            print(file=sys.stderr)

    return step


def make_policies(model: OnnxModel, names: Sequence[str] = POLICIES) -> list[FittingPolicy]:
    from training.fitting_oracle import OraclePolicy

    make: dict[str, Callable[[], FittingPolicy]] = {
        "service": lambda: ServicePolicy(model, True),
        "textbook_rule": TextbookRule,
        "single_walk": lambda: ServicePolicy(model, False),
        "oracle": OraclePolicy,
        "oracle_known_baseline": lambda: OraclePolicy(known_baseline=True),
        "ceiling": Ceiling,
    }
    return [make[n]() for n in names]


def run(
    model_dir: Path,
    n_patients: int = PATIENTS_DEFAULT,
    seed: int = SEED,
    subsets: Sequence[str] = SUBSETS,
    policies: Sequence[str] = PIPELINE_POLICIES,
    progress: bool = False,
    oracle_subsets: Sequence[str] | None = ORACLE_SUBSETS_DEFAULT,
) -> dict[str, Any]:
    """Every policy on the same fresh patients and walk seeds, per sensor subset (manifest 'fitting_loop').

    The oracle is the slow one (a posterior over thousands of candidates per walk): by default it runs on
    `oracle_subsets` only (None: every subset), which keeps `python -m training all` in its budget."""
    t0 = time.perf_counter()
    model = OnnxModel.load(model_dir)
    with threadpool_limits(1):
        # Thousands of small matrix products: BLAS threads only contend (measured 5x slower on 2 busy cores).
        return _run(model, n_patients, seed, subsets, policies, progress, oracle_subsets, t0)


def _run(
    model: OnnxModel,
    n_patients: int,
    seed: int,
    subsets: Sequence[str],
    policies: Sequence[str],
    progress: bool,
    oracle_subsets: Sequence[str] | None,
    t0: float,
) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 0])
    patients = [cohort._draw_patient(rng, i) for i in range(n_patients)]
    out: dict[str, Any] = {
        "walks": WALKS,
        "patients": n_patients,
        "seed": seed,
        "policies": list(policies),
        "oracle_subsets": list(subsets) if oracle_subsets is None else [n for n in subsets if n in oracle_subsets],
        "by_subset": {},
    }
    seconds: dict[str, float] = {}
    n_runs = sum(
        len([n for n in policies if n not in _ORACLES or oracle_subsets is None or name in oracle_subsets]) for name in subsets
    )
    tick = _progress_line(n_runs * (WALKS - 1)) if progress else None
    for k, name in enumerate(subsets):
        kinds = cohort.SENSOR_SUBSETS[name]
        res: dict[str, Any] = {}
        names = [n for n in policies if n not in _ORACLES or oracle_subsets is None or name in oracle_subsets]
        for pol in make_policies(model, names):
            t_pol = time.perf_counter()
            traces = [
                t
                for c in range(0, len(patients), CHUNK)
                for t in run_policy(pol, patients[c : c + CHUNK], kinds, seed, k, first_index=c)
            ]
            seconds[pol.name] = seconds.get(pol.name, 0.0) + time.perf_counter() - t_pol
            if tick is not None:
                tick(WALKS - 1)
            r = summarize(traces)
            r["by_level"] = {
                lvl.value: summarize([t for t in traces if t.level is lvl])
                for lvl in (_TT, _TF)
                if any(t.level is lvl for t in traces)
            }
            res[pol.name] = r
        out["by_subset"][name] = res
    if "all_sensors" in subsets:
        from training.fitting_oracle import identifiability

        out["identifiability_all_sensors"] = identifiability(cohort.SENSOR_SUBSETS["all_sensors"])
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["seconds_by_policy"] = {k: round(v, 1) for k, v in seconds.items()}
    return out


def _f(v: Any, fmt: str = ".2f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def markdown(result: dict[str, Any]) -> str:
    """The evaluation as markdown tables (model card section and `python -m training fittings`)."""
    subsets = result["by_subset"]
    pols = result["policies"]
    lines: list[str] = []
    a = subsets.get("all_sensors")
    if a:
        lines += [
            "All sensors, per policy (misaligned patients inside the band within 2 / 4 / 6 walks; walks to band: "
            f"the first walk inside it, {result['walks'] + 1} when not within {result['walks']}):",
            "",
            "| policy | in band <=2 | <=4 | <=6 | walks to band | steps per misaligned patient | steps away from "
            "aligned (undone by the next walk) | patients worse at the end | stopped outside the band | aligned: "
            "NO_CHANGE at walk 1 | aligned: walks spent |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for pol in pols:
            if pol not in a:
                continue
            r = a[pol]
            lines.append(
                f"| {pol} | {_f(r['in_band_within_2_walks'])} | {_f(r['in_band_within_4_walks'])} | "
                f"{_f(r['in_band_within_6_walks'])} | {_f(r['walks_to_band'])} | {_f(r['steps_per_misaligned_patient'])} | "
                f"{_f(r['steps_away_from_aligned'])} ({_f(r['steps_away_undone_by_next_walk'])}) | "
                f"{_f(r['patients_worse_at_end'])} ({r['patients_worse_at_end_count']}) | {_f(r['stopped_outside_band'])} | "
                f"{_f(r['aligned_no_change_first_walk'])} | {_f(r['aligned_walks_spent'])} |"
            )
        lines.append("")
    lines += [
        "Per sensor subset: in band within 2 / 4 / 6 walks, and walks to band, per policy:",
        "",
        "| sensor subset | " + " | ".join(pols) + " |",
        "|---|" + "---|" * len(pols),
    ]
    for name, res in subsets.items():
        cells = [
            f"{_f(res[p]['in_band_within_2_walks'])} / {_f(res[p]['in_band_within_4_walks'])} / "
            f"{_f(res[p]['in_band_within_6_walks'])} ({_f(res[p]['walks_to_band'], '.1f')})"
            if p in res
            else "not run"
            for p in pols
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    if a:
        lines += [
            "Per amputation level (all sensors): in band within 2 / 4 / 6 walks:",
            "",
            "| level | misaligned patients | " + " | ".join(p for p in pols if p in a) + " |",
            "|---|---|" + "---|" * len([p for p in pols if p in a]),
        ]
        run_pols = [p for p in pols if p in a]
        levels = sorted({lvl for p in run_pols for lvl in a[p].get("by_level", {})})
        for lvl in levels:
            first = a[run_pols[0]]["by_level"][lvl]
            cells = [
                f"{_f(a[p]['by_level'][lvl]['in_band_within_2_walks'])} / {_f(a[p]['by_level'][lvl]['in_band_within_4_walks'])}"
                f" / {_f(a[p]['by_level'][lvl]['in_band_within_6_walks'])}"
                for p in run_pols
            ]
            lines.append(f"| {lvl} | {first['misaligned_patients']} | " + " | ".join(cells) + " |")
        lines.append("")
    if "service" in pols and "textbook_rule" in pols:
        ahead = [n for n, r in subsets.items() if r["service"]["walks_to_band"] < r["textbook_rule"]["walks_to_band"]]
        behind = [n for n in subsets if n not in ahead]
        lines.append(
            "Walks to band, service against the textbook rule: ahead on "
            + (", ".join(ahead) or "no subset")
            + "; not ahead on "
            + (", ".join(behind) or "no subset")
            + "."
        )
        for n in behind:
            sv, tb = subsets[n]["service"], subsets[n]["textbook_rule"]
            lines.append(
                f"- {n}: the service stops outside the band for {_f(sv['stopped_outside_band'], '.0%')} of the "
                f"misaligned patients ({_f(sv['steps_per_misaligned_patient'])} steps each, "
                f"{_f(sv['steps_away_from_aligned'], '.0%')} of them away from aligned); the rule takes "
                f"{_f(tb['steps_per_misaligned_patient'])} steps each ({_f(tb['steps_away_from_aligned'], '.0%')} away, "
                f"{_f(tb['patients_worse_at_end'], '.0%')} of patients worse at the end)."
            )
    ident = result.get("identifiability_all_sensors")
    if ident:
        lines += [
            "",
            "What the walks can tell (all sensors; `training/fitting_oracle.identifiability`): the posterior SD of "
            "each parameter from the walks of one fitting, a Gaussian bound at the mean response gain with a flat "
            "prior, against the band's half-width (min_change). Joint: every parameter may be off; alone: only this "
            "one. Known changes add no information about the misalignment under additive linear effects, so more "
            "walks only average the sensor noise; the between-patient spread stays.",
            "",
            "| level | parameter | band (min_change) | joint SD, 1 walk | 6 walks | any number of walks | alone, any number |",
            "|---|---|---|---|---|---|---|",
        ]
        for lvl, rows in ident.items():
            for par, v in rows.items():
                lines.append(
                    f"| {lvl} | {par} | {v['min_change']:g} | {v['joint_sd_walks_1']:.1f} | {v['joint_sd_walks_6']:.1f} | "
                    f"{v['joint_sd_walks_inf']:.1f} | {v['alone_sd_walks_inf']:.1f} |"
                )
    return "\n".join(lines) + "\n"


def text_report(result: dict[str, Any]) -> str:
    return (
        f"{result['patients']} patients per subset, seed {result['seed']}, {result['walks']} walks, "
        f"{result['seconds']} s\n\n" + markdown(result)
    )


def plot(result: dict[str, Any], path: Path) -> Path | None:
    """In-band share of the misaligned patients against walks, per policy (all sensors)."""
    a = result["by_subset"].get("all_sensors")
    if not a:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    walks = list(range(1, result["walks"] + 1))
    for pol in (p for p in result["policies"] if p in a):
        ax.plot(walks, a[pol]["in_band_by_walk"], marker="o", label=pol)
    ax.set_xlabel("walk")
    ax.set_ylabel("misaligned patients inside the band")
    ax.set_ylim(0, 1)
    ax.set_title(f"Simulated fittings, all sensors ({a[result['policies'][0]]['misaligned_patients']} misaligned)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


EXAMPLE_PATH = Path("examples") / "fittings" / "simulated_foot_outset_transtibial.json"
EXAMPLE_SEED = 1417


def example_patient(seed: int = EXAMPLE_SEED) -> Any:
    """A simulated transtibial patient whose one clear misalignment is the foot 15 mm too lateral
    (FOOT_MEDIAL_SHIFT -15 mm): the example fitting's, the integration tests' and the bench's. The seed
    was picked among 1400-1439 for the clearest first walk with the cohort of main at 759b984: both
    coronal socket moments at z <= -3.4, every other feature within |z| 2.1 (noise-aware z). A change to
    the cohort changes the walks: re-pick then (and regenerate the example)."""
    p = cohort._draw_patient(np.random.default_rng([seed, 0]), 0)
    x = np.zeros(len(catalog.PARAMETERS))
    x[_PIDX[Parameter.FOOT_MEDIAL_SHIFT]] = -15.0
    return dataclasses.replace(p, x=x, level=_TT)


def example_fitting(seed: int = EXAMPLE_SEED) -> dict[str, Any]:
    """A recorded fitting from the simulator in the `python -m service.client fit FILE` format: the
    patient context and the walks in order, each with its features (and sensor) and the changes
    applied after it. The changes are the ceiling's (the right clamped steps), so a replay shows how
    the answers evolve as the patient reaches the band."""
    p = example_patient(seed)
    kinds = cohort.SENSOR_SUBSETS["all_sensors"]
    (trace,) = run_policy(Ceiling(), [p], kinds, seed)
    walks: list[dict[str, Any]] = []
    x = p.x.copy()
    for k in range(len(trace.alignments)):
        w = simulate_walk(p, x, kinds, walk_seed(seed, 0, 0, k))
        walk: dict[str, Any] = {
            "features": [
                {"name": f.name, "value": round(f.value, 4), "source": f"SENSOR_KIND_{f.source.value}"}
                for f in w.features
                if f.source is not None
            ]
        }
        if k < len(trace.steps):
            j, change, _ = trace.steps[k]
            walk["appliedAfter"] = [{"parameter": f"ADJUSTMENT_PARAMETER_{_PARAMS[j].value}", "change": round(change, 3)}]
            x[j] += change
        walks.append(walk)
    return {
        "description": (
            "A simulated transtibial fitting (training.fitting_loop.example_fitting, seed "
            f"{seed}): the foot starts 15 mm too lateral (FOOT_MEDIAL_SHIFT -15 mm); after each walk the "
            "right clamped step was applied (+10 mm, then +5 mm), so the last walk is inside the band. "
            "Simulated patient and sensors, not a recording. Replay: python -m service.client fit "
            f"{EXAMPLE_PATH.as_posix()}; regenerate: python -m training fittings --write-example"
        ),
        "assessmentId": f"sim-fitting-{seed}",
        "patient": {
            "amputationLevel": f"AMPUTATION_LEVEL_{p.level.value}",
            "prostheticSide": f"SIDE_{p.side}",
            "bodyMassKg": round(p.mass, 1),
            "heightM": round(p.height, 2),
            "kLevel": p.k_level,
            "footType": f"FOOT_TYPE_{p.foot}",
        },
        "walks": walks,
    }


_METRIC_KEYS = (
    "in_band_within_2_walks",
    "in_band_within_4_walks",
    "in_band_within_6_walks",
    "patients_worse_at_end",
    "steps_away_from_aligned",
)


def headline_metrics(result: dict[str, Any]) -> dict[str, float]:
    """Flat GetModel metrics (all sensors): fitting.* for the service, fitting_baseline_rule.* for the
    textbook rule, and the ceiling's in-band rate at 4 walks."""
    a = result["by_subset"].get("all_sensors", {})
    out: dict[str, float] = {}
    for prefix, pol in (("fitting", "service"), ("fitting_baseline_rule", "textbook_rule")):
        if pol in a:
            out.update({f"{prefix}.{k}": float(a[pol][k]) for k in _METRIC_KEYS})
    if "ceiling" in a:
        for prefix in ("fitting", "fitting_baseline_rule"):
            if f"{prefix}.in_band_within_4_walks" in out:
                out[f"{prefix}.ceiling_in_band_within_4_walks"] = float(a["ceiling"]["in_band_within_4_walks"])
    return out


__all__ = [
    "POLICIES",
    "SUBSETS",
    "TEXTBOOK_RULES",
    "WALKS",
    "Ceiling",
    "ServicePolicy",
    "TextbookRule",
    "example_fitting",
    "example_patient",
    "headline_metrics",
    "in_band",
    "markdown",
    "plot",
    "run",
    "run_policy",
    "summarize",
    "text_report",
]
