"""Domain <-> proto conversion: a fully populated answer leaves no proto field unset (so a field added
to the proto cannot silently go unsent), values survive the trip, and the fitting loop's fields of a
request reach the domain."""

from __future__ import annotations

import math

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.api import convert
from service.catalog import Parameter, Plane, SensorKind
from service.domain import (
    Adjustment,
    AnswerKind,
    CandidateCause,
    ConfidenceLevel,
    Deviation,
    Differential,
    FeatureChange,
    MeasurementSuggestion,
    ModelRef,
    NonAlignmentFinding,
    ParameterEstimate,
    Recommendation,
)


def _adjustment(unit: str, x: float, text: str) -> Adjustment:
    return Adjustment(
        1, Parameter.FOOT_ROTATION if unit == "deg" else Parameter.FOOT_MEDIAL_SHIFT, x, unit, text, 0.7, -1.0, 2.0, x,
        True, ("step_width_m",), ("socket_coronal_moment_early_stance_nm_per_kg",), text, Plane.CORONAL, True, True,
    )


def _rec(text: str = "t", x: float = 1.5) -> Recommendation:
    sugg = MeasurementSuggestion("step_width_m", SensorKind.MOTION_CAPTURE, text)
    cand = CandidateCause(Parameter.FOOT_MEDIAL_SHIFT, 1, text, 0.4, 0.1, (text,), (text,), "Table A T7", True)
    return Recommendation(
        assessment_id=text,
        model=ModelRef("m", "1.0.0", "0" * 64),
        adjustments=(_adjustment("deg", x, text), _adjustment("mm", x, text)),
        no_change_needed=True,
        deviations=(Deviation("step_width_m", x, "m", 0.12, 0.035, 4.6, text),),
        non_alignment_findings=(NonAlignmentFinding("CODE", text, ("step_width_m",)),),
        missing_features=("cadence_steps_per_min",),
        imputed_features=("step_length_asymmetry_pct",),
        overall_confidence=0.5,
        confidence_level=ConfidenceLevel.MEDIUM,
        suggested_measurements=(sugg,),
        warnings=(text,),
        parameter_estimates=(ParameterEstimate(Parameter.PYLON_LENGTH, 0.1, 0.8, 0.1, 3.0, "mm", True, text),),
        changes_since_reference=(FeatureChange("step_width_m", 0.1, 0.2, 0.1, "m", 2.9),),
        answer_kind=AnswerKind.TRIAL,
        differentials=(Differential("step_width_m", 4.6, text, (cand,), (text,), sugg),),
        summary=text,
    )


def _unset(msg: Message, desc: Descriptor, path: str) -> list[str]:
    """Fields of `desc` no instance in `msg` sets (oneof members: one of the group suffices)."""
    out: list[str] = []
    set_names = {f.name for f, _ in msg.ListFields()}
    for f in desc.fields:
        if f.containing_oneof is not None and any(o.name in set_names for o in f.containing_oneof.fields):
            continue
        if f.name not in set_names:
            out.append(f"{path}.{f.name}")
            continue
        if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.GetOptions().map_entry is False:
            value = getattr(msg, f.name)
            items = list(value) if f.is_repeated else [value]
            for item in items[:1]:
                out += _unset(item, f.message_type, f"{path}.{f.name}")
    return out


def test_a_fully_populated_answer_sets_every_proto_field() -> None:
    m = convert.recommendation_to_proto(_rec())
    assert _unset(m, pb.Recommendation.DESCRIPTOR, "Recommendation") == []
    # Both arms of Adjustment.change: deg and mm.
    assert m.adjustments[0].WhichOneof("change") == "change_deg" and m.adjustments[1].WhichOneof("change") == "change_mm"
    assert m.answer_kind == pb.ANSWER_KIND_TRIAL
    assert m.differentials[0].candidates[0].vetoed and m.adjustments[0].trial and m.adjustments[0].reverts_applied_change


@pytest.mark.parametrize("text", ["", "é±", "long ± text " * 40])
@pytest.mark.parametrize("x", [0.0, -0.0, 1.5, -2.25, 1e300, math.inf, -math.inf])
def test_values_survive_and_a_batch_keeps_order_errors_and_gaps(text: str, x: float) -> None:
    r = _rec(text, x)
    m = convert.recommendation_to_proto(r)
    assert m.assessment_id == text and m.summary == text and m.adjustments[0].change_deg == x
    assert spb.RecommendAdjustmentsResponse.FromString(
        spb.RecommendAdjustmentsResponse(recommendation=m).SerializeToString()
    ).recommendation == m
    err = pb.ItemError(code="INVALID_ARGUMENT", message=text)
    items: list[tuple[str, Recommendation | pb.ItemError | None]] = [("a", r), ("e", err), ("none", None)]
    got = spb.BatchRecommendAdjustmentsResponse.FromString(convert.batch_response(r.model, items).SerializeToString())
    assert [i.assessment_id for i in got.results] == ["a", "e", "none"]
    assert got.results[0].recommendation == m
    assert got.results[1].error == err
    assert got.results[2].WhichOneof("result") is None
    assert got.model.name == "m"


def test_every_answer_kind_maps_to_its_enum_value() -> None:
    for kind in AnswerKind:
        m = convert.recommendation_to_proto(_rec()._replace(answer_kind=kind))
        assert pb.AnswerKind.Name(m.answer_kind) == "ANSWER_KIND_" + kind.value


def test_the_fitting_loop_fields_reach_the_domain() -> None:
    msg = pb.GaitAssessment(
        assessment_id="w2",
        features=[pb.FeatureValue(name="step_width_m", value=0.2)],
        reference_features=[pb.FeatureValue(name="step_width_m", value=0.25)],
        applied_since_reference=[pb.AppliedChange(parameter=pb.ADJUSTMENT_PARAMETER_FOOT_MEDIAL_SHIFT, change=5.0)],
        fitting_history=[
            pb.FittingWalk(
                features=[pb.FeatureValue(name="step_width_m", value=0.3)],
                applied_after=[pb.AppliedChange(parameter=0, change=2.0)],
            )
        ],
    )
    a = convert.assessment_from_proto(msg)
    assert [(c.parameter, c.change) for c in a.applied_since_reference] == [(Parameter.FOOT_MEDIAL_SHIFT, 5.0)]
    (walk,) = a.fitting_history
    assert walk.features[0].value == 0.3
    assert walk.applied_after[0].parameter is None  # UNSPECIFIED: validation says which field
    batch = convert.batch_from_proto([msg, pb.GaitAssessment(assessment_id="plain")])
    assert set(batch.loops) == {0}
    assert batch.item(0, 0).applied_since_reference == a.applied_since_reference
