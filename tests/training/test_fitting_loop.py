"""The simulated-fitting harness on small numbers: the policies, the loop and the figures it reports."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from service import catalog
from service.catalog import AmputationLevel, Parameter, SensorKind
from service.domain import AppliedChange, AssessmentInput
from service.validation import validate_assessment
from training import cohort
from training import fitting_loop as fl
from training.fitting_oracle import OraclePolicy

ALL = cohort.SENSOR_SUBSETS["all_sensors"]
_MIN = np.array([p.min_change for p in catalog.PARAMETERS])
_J = {p: j for j, p in enumerate(catalog.PARAMETER_NAMES)}


def _patient(i: int, x: np.ndarray, level: AmputationLevel | None = None) -> cohort._Patient:
    p = cohort._draw_patient(np.random.default_rng([77, i]), i)
    return dataclasses.replace(p, x=x, level=level or p.level)


def _single(param: str, size: float) -> np.ndarray:
    x = np.zeros(len(catalog.PARAMETERS))
    x[_J[param]] = size
    return x


def test_the_ceiling_reaches_the_band_for_every_single_parameter_misalignment() -> None:
    """Each parameter at +-its study range: ceil(range / max_step) clamped steps, then inside the band."""
    patients, expect = [], []
    for spec in catalog.PARAMETERS:
        for sign in (-1.0, 1.0):
            patients.append(_patient(len(patients), _single(spec.parameter.value, sign * spec.study_range)))
            expect.append(int(np.ceil(spec.study_range / spec.max_step)) + 1)
    traces = fl.run_policy(fl.Ceiling(), patients, ALL, seed=1)
    for t, walk in zip(traces, expect, strict=True):
        assert fl.in_band(t.alignment_at(walk)) and not fl.in_band(t.alignment_at(walk - 1))
        assert len(t.alignments) == walk  # it stops once inside the band
        assert all(not away for _, _, away in t.steps)
    r = fl.summarize(traces)
    assert r["in_band_within_6_walks"] == 1.0 and r["patients_worse_at_end"] == 0.0
    assert r["steps_away_from_aligned"] == 0.0


def test_the_ceiling_leaves_an_aligned_patient_alone() -> None:
    x = 0.5 * _MIN * np.array([1, -1, 1, -1, 1, -1, 1])
    (t,) = fl.run_policy(fl.Ceiling(), [_patient(0, x)], ALL, seed=1)
    assert t.first_no_change and len(t.alignments) == 1 and not t.steps


def _z_walk(feature: str, z: float, level: AmputationLevel, kinds: frozenset[SensorKind]) -> fl.Walk:
    """A walk at the prosthesis-user norm except one feature at noise-aware z."""
    values = np.array([f.normative[level].mean for f in catalog.FEATURES])
    i = catalog.FEATURE_INDEX[feature]
    spec = catalog.FEATURES[i]
    values[i] += z * float(np.hypot(spec.normative[level].sd, cohort._best_noise(kinds, spec, level)))
    return fl.Walk((), values)


def test_the_textbook_rule_reverts_a_worsening_step_and_tries_the_next_fix() -> None:
    lvl = AmputationLevel.TRANSTIBIAL
    feat = "socket_coronal_moment_early_stance_nm_per_kg"  # Table A T5: varus -> outset, then adduct
    s = fl.FittingState(_patient(0, np.zeros(7), lvl), np.zeros(7))
    rule = fl.TextbookRule()
    s.walks.append(_z_walk(feat, 4.0, lvl, ALL))
    first = rule.one(s, ALL)
    assert first == (_J["FOOT_MEDIAL_SHIFT"], -5.0)  # the first listed fix, smallest effective step
    s.applied.append(first)
    s.walks.append(_z_walk(feat, 5.0, lvl, ALL))  # worse
    assert rule.one(s, ALL) == (_J["FOOT_MEDIAL_SHIFT"], 5.0)  # undone first
    s.applied.append((_J["FOOT_MEDIAL_SHIFT"], 5.0))
    s.walks.append(_z_walk(feat, 4.0, lvl, ALL))
    assert rule.one(s, ALL) == (_J["SOCKET_ADDUCTION"], 2.0)  # the next listed fix
    s.applied.append((_J["SOCKET_ADDUCTION"], 2.0))
    s.walks.append(_z_walk(feat, 3.0, lvl, ALL))  # better: the same fix again
    assert rule.one(s, ALL) == (_J["SOCKET_ADDUCTION"], 2.0)
    s.walks.append(_z_walk(feat, 0.5, lvl, ALL))  # no clear deviation left: accepted
    assert rule.one(s, ALL) is None


def test_the_textbook_rule_stops_when_nothing_deviates() -> None:
    lvl = AmputationLevel.TRANSFEMORAL
    s = fl.FittingState(_patient(0, np.zeros(7), lvl), np.zeros(7))
    s.walks.append(_z_walk("walking_speed_m_per_s", 0.0, lvl, ALL))
    assert fl.TextbookRule().one(s, ALL) is None and s.first_kind is not None and s.first_kind.value == "NO_CHANGE"


def test_every_table_fix_names_a_catalog_feature_and_a_unit_sign() -> None:
    for (feature, sign), fixes in fl.TEXTBOOK_RULES.items():
        assert feature in catalog.FEATURE_INDEX and sign in (-1, 1) and fixes
        assert all(isinstance(p, Parameter) and s in (-1, 1) for p, s, _ in fixes)


def test_the_walks_are_the_same_dice_for_every_policy() -> None:
    """Walk k of patient i draws the same noise whatever the policy did: identical first walks."""
    p = _patient(3, _single("FOOT_MEDIAL_SHIFT", -12.0))
    a = fl.simulate_walk(p, p.x, ALL, fl.walk_seed(5, 0, 3, 0))
    b = fl.simulate_walk(p, p.x, ALL, fl.walk_seed(5, 0, 3, 0))
    assert np.array_equal(a.values, b.values, equal_nan=True)


def test_summary_counts_steps_away_and_whether_the_next_walk_undid_them() -> None:
    start = _single("FOOT_ROTATION", 6.0)
    j = _J["HEEL_HEIGHT"]
    away = start.copy()
    away[j] = 5.0
    t = fl.Trace(start, [start, away, start], [(j, 5.0, True), (j, -5.0, False)], False, AmputationLevel.TRANSTIBIAL)
    r = fl.summarize([t])
    assert r["steps_away_from_aligned"] == 0.5 and r["steps_away_undone_by_next_walk"] == 1.0
    assert r["patients_worse_at_end"] == 0.0 and r["in_band_within_6_walks"] == 0.0
    assert r["walks_to_band"] == fl.WALKS + 1
    worse = fl.Trace(start, [start, away], [(j, 5.0, True)], False, AmputationLevel.TRANSTIBIAL)
    assert fl.summarize([worse])["patients_worse_at_end"] == 1.0


def test_the_oracle_steps_are_effective_and_clamped() -> None:
    patients = [_patient(i, cohort.draw_misalignment(np.random.default_rng([9, i]))) for i in range(6)]
    traces = fl.run_policy(OraclePolicy(), patients, ALL, seed=2, walks=3)
    for t in traces:
        for j, change, _ in t.steps:
            assert _MIN[j] <= abs(change) <= catalog.PARAMETERS[j].max_step + 1e-9


def test_the_service_policy_sends_the_loop_fields(artifact_dir: Path) -> None:
    """From the second walk: the previous walk as reference, the change since it, the earlier walks."""
    from service.model import OnnxModel

    pol = fl.ServicePolicy(OnnxModel.load(artifact_dir))
    p = _patient(1, _single("FOOT_MEDIAL_SHIFT", -12.0), AmputationLevel.TRANSTIBIAL)
    s = fl.FittingState(p, p.x.copy())
    for k in range(3):
        s.walks.append(fl.simulate_walk(p, s.x, ALL, fl.walk_seed(1, 0, 1, k)))
        if k < 2:
            s.applied.append((_J["FOOT_MEDIAL_SHIFT"], 5.0 + k))
    a = pol.assessment(s)
    previous = validate_assessment(AssessmentInput("w2", fl.context_of(p), s.walks[1].features))
    assert a.reference_values is not None
    np.testing.assert_array_equal(a.reference_values, previous.values)
    assert a.applied_since_reference == (AppliedChange(Parameter.FOOT_MEDIAL_SHIFT, 6.0),)
    assert len(a.history) == 1 and a.history[0].applied_after == (AppliedChange(Parameter.FOOT_MEDIAL_SHIFT, 5.0),)
    single = fl.ServicePolicy(OnnxModel.load(artifact_dir), with_loop=False).assessment(s)
    assert single.reference_values is None and not single.applied_since_reference and not single.history


@pytest.mark.parametrize("policy", ["service", "single_walk"])
def test_a_small_run_reports_every_figure(artifact_dir: Path, policy: str) -> None:
    res = fl.run(artifact_dir, n_patients=8, subsets=("pylon_only",), policies=(policy, "textbook_rule", "ceiling"))
    r = res["by_subset"]["pylon_only"][policy]
    for k in ("in_band_within_2_walks", "in_band_within_4_walks", "in_band_within_6_walks"):
        assert r[k] is None or 0.0 <= r[k] <= 1.0
    assert r["misaligned_patients"] + r["aligned_patients"] == 8
    ceiling = res["by_subset"]["pylon_only"]["ceiling"]
    assert ceiling["patients_worse_at_end"] == 0.0 and ceiling["in_band_within_6_walks"] >= r["in_band_within_6_walks"]
    m = fl.headline_metrics(res)
    assert m == {}  # headline metrics are all-sensor figures only


def test_the_example_fitting_file_is_what_the_simulator_generates() -> None:
    """examples/fittings/...: regenerate with `python -m training fittings --write-example`."""
    import json

    root = Path(__file__).resolve().parents[2]
    on_disk = json.loads((root / fl.EXAMPLE_PATH).read_text())
    assert on_disk == json.loads(json.dumps(fl.example_fitting()))
    walks = on_disk["walks"]
    assert [w.get("appliedAfter") for w in walks] == [
        [{"parameter": "ADJUSTMENT_PARAMETER_FOOT_MEDIAL_SHIFT", "change": 10.0}],
        [{"parameter": "ADJUSTMENT_PARAMETER_FOOT_MEDIAL_SHIFT", "change": 5.0}],
        None,
    ]


def test_the_oracle_posterior_moves_only_the_changed_rows_and_matches_a_full_recompute() -> None:
    from training import fitting_oracle as fo

    for lvl in AmputationLevel:
        post = fo.Posterior(lvl, ALL)
        applied = np.zeros(7)
        for j, change in ((5, 10.0), (1, -3.0), (5, 5.0)):
            applied[j] += change
            post._move(applied.copy())
            direct = fo.shifts(post.lm, post.cand.x + applied, post.gains)[:, post.cols]
            np.testing.assert_allclose(post.shift, direct, atol=1e-9)


def test_a_run_in_chunks_equals_one_run() -> None:
    """Walk seeds follow the patient's index, so chunking (bounded memory) changes nothing."""
    patients = [_patient(i, cohort.draw_misalignment(np.random.default_rng([8, i]))) for i in range(8)]
    whole = fl.run_policy(fl.TextbookRule(), patients, ALL, seed=3)
    parts = fl.run_policy(fl.TextbookRule(), patients[:5], ALL, seed=3) + fl.run_policy(
        fl.TextbookRule(), patients[5:], ALL, seed=3, first_index=5
    )
    for a, b in zip(whole, parts, strict=True):
        assert len(a.alignments) == len(b.alignments)
        assert all(np.array_equal(x, y) for x, y in zip(a.alignments, b.alignments, strict=True))
