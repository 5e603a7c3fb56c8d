"""The CLI's printer and file loaders on hand-built messages: what a prosthetist reads must say the
answer first, never put a clamped step beside an interval as if they were one number, and fit in
100 columns; files that cannot be used must be named; a replayed fitting must chain its walks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service.client import (
    WIDTH,
    Fitting,
    InputFileError,
    fit_width,
    fitting_assessments,
    format_fitting_walk,
    format_recommendation,
    load_assessments,
    load_fitting,
)
from tests.conftest import EXAMPLES


def _full_answer() -> pb.Recommendation:
    r = pb.Recommendation(
        assessment_id="fit-7",
        answer_kind=pb.ANSWER_KIND_TRIAL,
        summary="try moving the foot laterally by 5 mm, then walk again",
        overall_confidence=0.58,
        confidence_level=pb.CONFIDENCE_LEVEL_MEDIUM,
    )
    r.model.name, r.model.version, r.model.sha256 = "alignment", "9.9.9", "ab" * 32
    r.adjustments.add(
        rank=1,
        parameter=pb.ADJUSTMENT_PARAMETER_FOOT_MEDIAL_SHIFT,
        change_mm=-5.0,
        unit="mm",
        direction="outset the foot (move laterally)",
        confidence=0.58,
        interval_lower=-17.0,
        interval_upper=-7.0,
        suggested_change=-12.0,
        clamped_to_safe_step=True,
        trial=True,
        supporting_deviations=["socket_coronal_moment_early_stance_nm_per_kg"],
    )
    r.adjustments.add(
        rank=2,
        parameter=pb.ADJUSTMENT_PARAMETER_SOCKET_FLEXION,
        change_deg=2.0,
        unit="deg",
        direction="flex the socket",
        confidence=0.6,
        interval_lower=1.0,
        interval_upper=4.0,
        suggested_change=2.5,
        reverts_applied_change=True,
    )
    d = r.differentials.add(
        feature="socket_coronal_moment_early_stance_nm_per_kg",
        z_score=3.4,
        description="coronal socket moment ~30% stance high: 0.57 N*m/kg (norm 0.3 +- 0.08, z = +3.4)",
        non_alignment_causes=["socket fit (too loose mediolaterally)", "weak hip abductors"],
    )
    d.candidates.add(
        parameter=pb.ADJUSTMENT_PARAMETER_FOOT_MEDIAL_SHIFT,
        direction_sign=-1,
        direction="outset the foot",
        probability=0.58,
        probability_opposite=0.04,
        evidence_for=["socket coronal moment late stance high (z = +2.9)"],
        table_rows="clinical-evidence Table A T7",
    )
    d.candidates.add(
        parameter=pb.ADJUSTMENT_PARAMETER_SOCKET_ADDUCTION,
        direction_sign=1,
        direction="adduct the socket",
        probability=0.12,
        probability_opposite=0.31,
        evidence_against=["trunk lean toward the prosthetic side absent"],
        vetoed=True,
    )
    d.separating_measurement.feature = "knee_frontal_shift_early_stance_mm"
    d.separating_measurement.sensor_kind = pb.SENSOR_KIND_MOTION_CAPTURE
    d.separating_measurement.reason = "lateral thrust points at the foot's position, not the socket's tilt"
    r.parameter_estimates.add(
        parameter=pb.ADJUSTMENT_PARAMETER_FOOT_MEDIAL_SHIFT,
        probability_decrease=0.58,
        probability_no_change=0.38,
        probability_increase=0.04,
        magnitude=12.0,
        unit="mm",
        recommended=True,
    )
    r.parameter_estimates.add(
        parameter=pb.ADJUSTMENT_PARAMETER_PYLON_LENGTH,
        probability_decrease=0.05,
        probability_no_change=0.9,
        probability_increase=0.05,
        magnitude=6.0,
        unit="mm",
        reason="no change is the most likely outcome",
    )
    r.warnings.append("x" * 150)
    return r


def test_answer_kind_and_summary_come_first() -> None:
    lines = format_recommendation(_full_answer()).splitlines()
    assert lines[1].startswith("answer TRIAL")
    assert lines[2] == "summary: try moving the foot laterally by 5 mm, then walk again"


def test_a_clamped_step_is_labelled_apart_from_the_models_estimate_and_interval() -> None:
    text = format_recommendation(_full_answer())
    row = next(line for line in text.splitlines() if line.lstrip().startswith("1  FOOT_MEDIAL_SHIFT"))
    assert "-5.0 mm" in row and "[" not in row  # the step alone on its row, no interval beside it
    assert "model estimate -12.0 mm, 80% interval [-17.0, -7.0] mm; step clamped to the safe single step" in text
    assert "TRIAL: outset the foot" in row
    assert "UNDO: flex the socket" in text and "undoes an earlier applied change" in text


def test_differential_shows_ranked_candidates_vetoes_other_causes_and_the_separating_measurement() -> None:
    text = format_recommendation(_full_answer())
    assert "differential: socket_coronal_moment_early_stance_nm_per_kg (z = +3.4)" in text
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if "1. FOOT_MEDIAL_SHIFT -" in line)
    second = next(i for i, line in enumerate(lines) if "2. SOCKET_ADDUCTION +" in line)
    assert first < second
    assert "0.58" in lines[first] and "0.04" in lines[first] and "VETOED" not in lines[first]
    assert "0.12" in lines[second] and "0.31" in lines[second] and "VETOED" in lines[second]
    assert "not alignment: socket fit (too loose mediolaterally); weak hip abductors" in text
    assert "separates the top candidates: knee_frontal_shift_early_stance_mm (MOTION_CAPTURE)" in text
    assert "rule table: clinical-evidence Table A T7" in text


def test_parameter_estimates_table() -> None:
    lines = format_recommendation(_full_answer()).splitlines()
    row = next(line for line in lines if line.startswith("  FOOT_MEDIAL_SHIFT "))
    assert row.split()[1:5] == ["0.58", "0.38", "0.04", "12.0"] and row.endswith("yes")
    assert next(line for line in lines if line.startswith("  PYLON_LENGTH ")).endswith(
        "no: no change is the most likely outcome"
    )


def test_every_line_fits_100_columns() -> None:
    text = format_recommendation(_full_answer())
    lines = [line for line in text.splitlines() if "x" * 150 not in line]
    assert max(len(line) for line in lines) <= WIDTH
    assert "x" * 150 in text  # a word longer than the width is kept whole rather than cut


def test_fields_the_server_leaves_empty_are_not_printed() -> None:
    r = pb.Recommendation(assessment_id="a", no_change_needed=True, confidence_level=pb.CONFIDENCE_LEVEL_HIGH)
    text = format_recommendation(r)
    assert "answer" not in text and "summary" not in text and "differential" not in text
    assert "NO CHANGE NEEDED" in text


def test_fit_width_indents_continuations() -> None:
    out = fit_width(["  - " + "word " * 40])
    assert all(len(line) <= WIDTH for line in out) and out[1].startswith("    word")


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "empty file"), ("{", "not JSON"), ("[]", "empty array"), ('{"features": 3}', "features"), ("[1]", "[0]")],
)
def test_unusable_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "walk.json"
    f.write_text(content)
    with pytest.raises(InputFileError) as exc:
        load_assessments(f)
    assert str(exc.value).startswith(str(f)) and message in str(exc.value)


def test_arrays_and_batch_requests_are_labelled_by_index(tmp_path: Path) -> None:
    one = json.loads((EXAMPLES / "toe_out_transtibial.json").read_text())
    (tmp_path / "a.json").write_text(json.dumps([one, one]))
    (tmp_path / "b.json").write_text(json.dumps({"assessments": [one]}))
    (tmp_path / "c.json").write_text(json.dumps({"assessment": one}))
    labels = [label for name in "abc" for label, _ in load_assessments(tmp_path / f"{name}.json")]
    assert labels == [f"{tmp_path}/a.json[0]", f"{tmp_path}/a.json[1]", f"{tmp_path}/b.json[0]", f"{tmp_path}/c.json"]


def _walk(speed: float, *applied: tuple[int, float]) -> pb.FittingWalk:
    w = pb.FittingWalk()
    w.features.add(name="walking_speed_m_per_s", value=speed)
    for p, c in applied:
        w.applied_after.add(parameter=p, change=c)  # type: ignore[arg-type]
    return w


def test_a_fitting_replay_chains_reference_applied_changes_and_history() -> None:
    rot, flex = pb.ADJUSTMENT_PARAMETER_FOOT_ROTATION, pb.ADJUSTMENT_PARAMETER_SOCKET_FLEXION
    walks = (_walk(1.0, (rot, -6.0)), _walk(1.1, (flex, 3.0)), _walk(1.2, (rot, -2.0)), _walk(1.3))
    patient = pb.PatientContext(amputation_level=pb.AMPUTATION_LEVEL_TRANSTIBIAL, body_mass_kg=80)
    sent = fitting_assessments(Fitting(patient, walks, "f1"))
    assert [a.assessment_id for a in sent] == ["f1-walk1", "f1-walk2", "f1-walk3", "f1-walk4"]
    assert all(a.patient == patient for a in sent)
    assert [a.features[0].value for a in sent] == [1.0, 1.1, 1.2, 1.3]
    first, second, fourth = sent[0], sent[1], sent[3]
    assert not first.reference_features and not first.applied_since_reference and not first.fitting_history
    assert second.reference_features[0].value == 1.0 and not second.fitting_history
    assert [(c.parameter, c.change) for c in second.applied_since_reference] == [(rot, -6.0)]
    assert fourth.reference_features[0].value == 1.2
    assert [(c.parameter, c.change) for c in fourth.applied_since_reference] == [(rot, -2.0)]
    assert [w.features[0].value for w in fourth.fitting_history] == [1.0, 1.1]
    assert [w.applied_after[0].change for w in fourth.fitting_history] == [-6.0, 3.0]


def test_the_example_fitting_loads_and_prints_compactly() -> None:
    fitting = load_fitting(EXAMPLES / "fittings" / "toe_out_transtibial.json")
    assert len(fitting.walks) >= 3 and fitting.walks[0].applied_after
    r = pb.Recommendation(answer_kind=pb.ANSWER_KIND_RECOMMENDED, summary="rotate the foot internally by 6 deg")
    r.adjustments.add(rank=1, parameter=pb.ADJUSTMENT_PARAMETER_FOOT_ROTATION, change_deg=-6, unit="deg", confidence=0.7)
    text = format_fitting_walk(0, fitting.walks[0], r, None)
    assert text.splitlines()[0].startswith("walk 1: 13 features  RECOMMENDED")
    assert "1. FOOT_ROTATION -6.0 deg (p 0.70)" in text and "applied after this walk: FOOT_ROTATION -6 deg" in text


def test_a_fitting_file_with_unknown_keys_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "fit.json"
    f.write_text(json.dumps({"patient": {}, "walk": []}))
    with pytest.raises(InputFileError, match="unknown keys"):
        load_fitting(f)
