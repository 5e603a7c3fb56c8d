"""A Recommendation is encoded to wire bytes by hand (convert.recommendation_bytes): a single answer
must serialize exactly as if set field by field, and a batch response must parse to that message."""

from __future__ import annotations

import math

import pytest

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service.api import convert
from service.catalog import Parameter, Plane, SensorKind
from service.domain import (
    Adjustment,
    ConfidenceLevel,
    Deviation,
    FeatureChange,
    MeasurementSuggestion,
    ModelRef,
    NonAlignmentFinding,
    ParameterEstimate,
    Recommendation,
)


def _reference(r: Recommendation) -> pb.Recommendation:
    """Every field set one by one (what recommendation_to_proto did before packing)."""
    m = pb.Recommendation(
        assessment_id=r.assessment_id, no_change_needed=r.no_change_needed, overall_confidence=r.overall_confidence
    )
    m.model.name, m.model.version, m.model.sha256 = r.model.name, r.model.version, r.model.sha256
    m.confidence_level = pb.ConfidenceLevel.Value("CONFIDENCE_LEVEL_" + r.confidence_level.value)  # type: ignore[assignment]
    for a in r.adjustments:
        adj = m.adjustments.add(
            rank=a.rank,
            parameter=pb.AdjustmentParameter.Value("ADJUSTMENT_PARAMETER_" + a.parameter.value),
            unit=a.unit,
            direction=a.direction,
            confidence=a.confidence,
            interval_lower=a.interval_lower,
            interval_upper=a.interval_upper,
            suggested_change=a.suggested_change,
            clamped_to_safe_step=a.clamped_to_safe_step,
            supporting_deviations=a.supporting_deviations,
            driving_features=a.driving_features,
            rationale=a.rationale,
            plane=pb.AnatomicalPlane.Value("ANATOMICAL_PLANE_" + a.plane.value),
        )
        if a.unit == "deg":
            adj.change_deg = a.change
        else:
            adj.change_mm = a.change
    for d in r.deviations:
        m.deviations.add(
            feature=d.feature,
            value=d.value,
            unit=d.unit,
            normative_mean=d.normative_mean,
            normative_sd=d.normative_sd,
            z_score=d.z_score,
            description=d.description,
        )
    for f in r.non_alignment_findings:
        m.non_alignment_findings.add(code=f.code, message=f.message, features=f.features)
    m.missing_features.extend(r.missing_features)
    m.imputed_features.extend(r.imputed_features)
    for s in r.suggested_measurements:
        m.suggested_measurements.add(
            feature=s.feature, sensor_kind=pb.SensorKind.Value("SENSOR_KIND_" + s.sensor_kind.value), reason=s.reason
        )  # type: ignore[arg-type]
    m.warnings.extend(r.warnings)
    for e in r.parameter_estimates:
        m.parameter_estimates.add(
            parameter=pb.AdjustmentParameter.Value("ADJUSTMENT_PARAMETER_" + e.parameter.value),
            probability_decrease=e.probability_decrease,
            probability_no_change=e.probability_no_change,
            probability_increase=e.probability_increase,
            magnitude=e.magnitude,
            unit=e.unit,
            recommended=e.recommended,
            reason=e.reason,
        )
    for c in r.changes_since_reference:
        m.changes_since_reference.add(
            feature=c.feature,
            reference_value=c.reference_value,
            value=c.value,
            change=c.change,
            unit=c.unit,
            change_in_sd=c.change_in_sd,
        )
    return m


def _rec(text: str, x: float) -> Recommendation:
    adj = Adjustment(
        rank=1,
        parameter=Parameter.HEEL_HEIGHT,
        change=x,
        unit="mm",
        direction="set the foot for a higher heel " + text,
        confidence=x,
        interval_lower=-x,
        interval_upper=0.0,
        suggested_change=x,
        clamped_to_safe_step=True,
        supporting_deviations=("knee_flexion_loading_prosthetic_deg", text),
        driving_features=(text,),
        rationale=text * 3,
        plane=Plane.SAGITTAL,
    )
    return Recommendation(
        assessment_id="id-" + text,
        model=ModelRef("alignment", "9.9.9-" + text, "ab" * 32),
        adjustments=(adj, adj),
        no_change_needed=False,
        deviations=(
            Deviation("walking_speed_m_per_s", x, "m/s", 0.0, -0.0, x, text),
            Deviation(text, 0.0, text, x, x, -x, ""),
        ),
        non_alignment_findings=(NonAlignmentFinding("HEEL", text, ("a", text)),),
        missing_features=("a", text),
        imputed_features=(text,),
        overall_confidence=x,
        confidence_level=ConfidenceLevel.MEDIUM,
        suggested_measurements=(
            MeasurementSuggestion(text, SensorKind.IMU, text),
            MeasurementSuggestion("b", SensorKind.OBSERVATION, ""),
        ),
        warnings=(text, ""),
        parameter_estimates=tuple(
            ParameterEstimate(p, x, 0.0, -0.0, x * k, "deg" if k % 2 else text, k % 3 == 0, text * k)
            for k, p in enumerate(Parameter)
        ),
        changes_since_reference=(
            FeatureChange("step_width_m", x, 0.0, -x, "m", x),
            FeatureChange(text, -0.0, x, 0.0, text, 0.0),
        ),
    )


@pytest.mark.parametrize("text", ["", "é±", "x" * 127, "y" * 128, "z" * 300, "w" * 5000, "long ± text " * 40])
@pytest.mark.parametrize("x", [0.0, -0.0, 1.5, -2.25, 1e300, math.inf, -math.inf, math.nan])
def test_packed_fields_serialize_like_field_by_field(text: str, x: float) -> None:
    r = _rec(text, x)
    assert convert.recommendation_to_proto(r).SerializeToString() == _reference(r).SerializeToString()
    # A batch response sent as built (not canonical: explicit zeros) parses to the same message,
    # with item errors and an unanswered item in place.
    from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb

    err = pb.ItemError(code="INVALID_ARGUMENT", message=text, field_violations=[pb.FieldViolation(field="f", description=text)])
    items: list[tuple[str, Recommendation | pb.ItemError | None]] = [("a", r), ("", r), ("e-" + text, err), ("none", None), (text, r)]
    got = spb.BatchRecommendAdjustmentsResponse.FromString(convert.batch_response_bytes(r.model, items))
    want = spb.BatchRecommendAdjustmentsResponse()
    want.model.name, want.model.version, want.model.sha256 = r.model.name, r.model.version, r.model.sha256
    for aid, res in items:
        item = want.results.add(assessment_id=aid)
        if isinstance(res, pb.ItemError):
            item.error.CopyFrom(res)
        elif res is not None:
            item.recommendation.CopyFrom(_reference(res))
    assert got == want
    assert got.SerializeToString() == want.SerializeToString()
