"""Proto <-> domain conversion. No logic beyond mapping names, enums and units-in-field-names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, overload

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.catalog import (
    CATALOG_VERSION,
    FEATURES,
    PARAMETERS,
    AmputationLevel,
    Parameter,
    Plane,
    SensorKind,
    Side,
)
from service.domain import (
    Adjustment,
    AnswerKind,
    AppliedChangeInput,
    AssessmentInput,
    BatchInput,
    Differential,
    FeatureInput,
    FittingWalkInput,
    MeasurementSuggestion,
    ModelRef,
    PatientContextInput,
    Recommendation,
)
from service.model import OnnxModel, flatten_metrics


def _enum_map(enum_pb: object, prefix: str, domain: type) -> dict[int, object]:
    out: dict[int, object] = {}
    for name, number in enum_pb.items():  # type: ignore[attr-defined]
        short = name.removeprefix(prefix)
        if short != "UNSPECIFIED":
            out[number] = domain(short) if domain is not str else short
    return out


_SENSOR_IN: dict[int, SensorKind] = _enum_map(pb.SensorKind, "SENSOR_KIND_", SensorKind)  # type: ignore[assignment]
# Out-maps give enum numbers typed Any: the generated stubs type enum fields as their enum class.
_SENSOR_OUT: dict[SensorKind, Any] = {v: k for k, v in _SENSOR_IN.items()}
_LEVEL_IN: dict[int, AmputationLevel] = _enum_map(pb.AmputationLevel, "AMPUTATION_LEVEL_", AmputationLevel)  # type: ignore[assignment]
_LEVEL_OUT: dict[AmputationLevel, Any] = {v: k for k, v in _LEVEL_IN.items()}
_SIDE_IN: dict[int, Side] = _enum_map(pb.Side, "SIDE_", Side)  # type: ignore[assignment]
_FOOT_IN: dict[int, str] = _enum_map(pb.FootType, "FOOT_TYPE_", str)  # type: ignore[assignment]
_KNEE_IN: dict[int, str] = _enum_map(pb.KneeType, "KNEE_TYPE_", str)  # type: ignore[assignment]
_PARAM_OUT: dict[Parameter, Any] = {Parameter(name.removeprefix("ADJUSTMENT_PARAMETER_")): n for name, n in pb.AdjustmentParameter.items() if n}
_PLANE_OUT: dict[Plane, Any] = {Plane(name.removeprefix("ANATOMICAL_PLANE_")): n for name, n in pb.AnatomicalPlane.items() if n}
_CONF_OUT: dict[str, Any] = {name.removeprefix("CONFIDENCE_LEVEL_"): n for name, n in pb.ConfidenceLevel.items() if n}
_PARAM_IN: dict[int, Parameter] = {int(n): p for p, n in _PARAM_OUT.items()}


def _patient_from_proto(msg: pb.GaitAssessment) -> PatientContextInput | None:
    if not msg.HasField("patient"):
        return None
    p = msg.patient
    return PatientContextInput(
        amputation_level=_LEVEL_IN.get(p.amputation_level),
        prosthetic_side=_SIDE_IN.get(p.prosthetic_side),
        body_mass_kg=p.body_mass_kg,
        height_m=p.height_m if p.HasField("height_m") else None,
        k_level=p.k_level if p.HasField("k_level") else None,
        foot_type=_FOOT_IN.get(p.foot_type, ""),
        knee_type=_KNEE_IN.get(p.knee_type, ""),
    )


def batch_from_proto(msgs: Sequence[pb.GaitAssessment]) -> BatchInput:
    """Many assessments as columns: one list per feature field, no object per feature.

    Reading the fields of each FeatureValue is the one per-feature Python step left (upb attribute
    reads); validation then works on the columns with numpy.
    """
    flat: list[pb.FeatureValue] = []
    counts: list[int] = []
    for m in msgs:
        fs = m.features
        counts.append(len(fs))
        flat.extend(fs)
    return BatchInput(
        assessment_ids=[m.assessment_id for m in msgs],
        patients=[_patient_from_proto(m) for m in msgs],
        feature_counts=counts,
        names=[f.name for f in flat],
        values=[f.value for f in flat],
        units=[f.unit for f in flat],
        sources=_Sources(flat),
        references={i: _features(m.reference_features) for i, m in enumerate(msgs) if m.reference_features},
        loops={i: _loop(m) for i, m in enumerate(msgs) if m.applied_since_reference or m.fitting_history},
    )


def _changes(cs: Iterable[pb.AppliedChange]) -> tuple[AppliedChangeInput, ...]:
    return tuple([AppliedChangeInput(_PARAM_IN.get(c.parameter), c.change) for c in cs])


def _loop(m: pb.GaitAssessment) -> tuple[tuple[AppliedChangeInput, ...], tuple[FittingWalkInput, ...]]:
    """The fitting loop's fields (DESIGN 3.4) of one assessment."""
    history = tuple([FittingWalkInput(_features(w.features), _changes(w.applied_after)) for w in m.fitting_history])
    return _changes(m.applied_since_reference), history


def _features(fs: Iterable[pb.FeatureValue]) -> tuple[FeatureInput, ...]:
    src = _SENSOR_IN.get
    return tuple([FeatureInput(f.name, f.value, f.unit, src(f.source)) for f in fs])


class _Sources(Sequence[SensorKind | None]):
    """The features' sources, read from the messages only when asked (for items that fail validation)."""

    def __init__(self, features: list[pb.FeatureValue]) -> None:
        self._features = features

    def __len__(self) -> int:
        return len(self._features)

    @overload
    def __getitem__(self, i: int) -> SensorKind | None: ...
    @overload
    def __getitem__(self, i: slice) -> list[SensorKind | None]: ...
    def __getitem__(self, i: int | slice) -> SensorKind | list[SensorKind | None] | None:
        if isinstance(i, slice):
            return [_SENSOR_IN.get(f.source) for f in self._features[i]]
        return _SENSOR_IN.get(self._features[i].source)


def assessment_from_proto(msg: pb.GaitAssessment) -> AssessmentInput:
    patient = _patient_from_proto(msg)
    src = _SENSOR_IN.get
    # A list comprehension, then one tuple: cheaper than tuple(generator) per feature.
    features = tuple([FeatureInput(f.name, f.value, f.unit, src(f.source)) for f in msg.features])
    if not (msg.reference_features or msg.applied_since_reference or msg.fitting_history):
        return AssessmentInput(msg.assessment_id, patient, features)
    applied, history = _loop(msg)
    return AssessmentInput(msg.assessment_id, patient, features, _features(msg.reference_features), applied, history)


def recommendation_to_proto(r: Recommendation, out: pb.Recommendation | None = None) -> pb.Recommendation:
    """The domain answer as its message, field by field through the protobuf library.

    Every field of the domain type has its wire field here; tests/unit/test_convert.py checks that no
    field of the proto message is left unset by a fully populated answer, so a field added to the proto
    cannot silently go unsent.
    """
    m = out if out is not None else pb.Recommendation()
    m.assessment_id = r.assessment_id
    m.model.CopyFrom(_model_ref(r.model))
    m.adjustments.extend([_adjustment(a) for a in r.adjustments])
    m.no_change_needed = r.no_change_needed
    m.deviations.extend(
        [
            pb.GaitDeviation(
                feature=d.feature, value=d.value, unit=d.unit, normative_mean=d.normative_mean,
                normative_sd=d.normative_sd, z_score=d.z_score, description=d.description,
            )
            for d in r.deviations
        ]
    )
    m.non_alignment_findings.extend(
        [pb.NonAlignmentFinding(code=f.code, message=f.message, features=f.features) for f in r.non_alignment_findings]
    )
    m.missing_features.extend(r.missing_features)
    m.imputed_features.extend(r.imputed_features)
    m.overall_confidence = r.overall_confidence
    m.confidence_level = _CONF_OUT[r.confidence_level.value]
    m.suggested_measurements.extend([_suggestion(s) for s in r.suggested_measurements])
    m.warnings.extend(r.warnings)
    m.parameter_estimates.extend(
        [
            pb.ParameterEstimate(
                parameter=_PARAM_OUT[e.parameter], probability_decrease=e.probability_decrease,
                probability_no_change=e.probability_no_change, probability_increase=e.probability_increase,
                magnitude=e.magnitude, unit=e.unit, recommended=e.recommended, reason=e.reason,
            )
            for e in r.parameter_estimates
        ]
    )
    m.changes_since_reference.extend(
        [
            pb.FeatureChange(
                feature=c.feature, reference_value=c.reference_value, value=c.value, change=c.change,
                unit=c.unit, change_in_sd=c.change_in_sd,
            )
            for c in r.changes_since_reference
        ]
    )
    m.answer_kind = _ANSWER_OUT[r.answer_kind]
    m.differentials.extend([_differential(d) for d in r.differentials])
    m.summary = r.summary
    return m


_ANSWER_OUT: dict[AnswerKind, Any] = {AnswerKind(n.removeprefix("ANSWER_KIND_")): v for n, v in pb.AnswerKind.items() if v}


def _model_ref(ref: ModelRef) -> pb.ModelRef:
    return pb.ModelRef(name=ref.name, version=ref.version, sha256=ref.sha256)


def _suggestion(s: MeasurementSuggestion) -> pb.MeasurementSuggestion:
    return pb.MeasurementSuggestion(feature=s.feature, sensor_kind=_SENSOR_OUT[s.sensor_kind], reason=s.reason)


def _adjustment(a: Adjustment) -> pb.Adjustment:
    msg = pb.Adjustment(
        rank=a.rank, parameter=_PARAM_OUT[a.parameter], unit=a.unit, direction=a.direction,
        confidence=a.confidence, interval_lower=a.interval_lower, interval_upper=a.interval_upper,
        suggested_change=a.suggested_change, clamped_to_safe_step=a.clamped_to_safe_step,
        supporting_deviations=a.supporting_deviations, driving_features=a.driving_features,
        rationale=a.rationale, plane=_PLANE_OUT[a.plane], trial=a.trial,
        reverts_applied_change=a.reverts_applied_change,
    )
    if a.unit == "deg":
        msg.change_deg = a.change
    else:
        msg.change_mm = a.change
    return msg


def _differential(d: Differential) -> pb.Differential:
    msg = pb.Differential(
        feature=d.feature, z_score=d.z_score, description=d.description,
        candidates=[
            pb.CandidateCause(
                parameter=_PARAM_OUT[c.parameter], direction_sign=c.direction_sign, direction=c.direction,
                probability=c.probability, probability_opposite=c.probability_opposite,
                evidence_for=c.evidence_for, evidence_against=c.evidence_against,
                table_rows=c.table_rows, vetoed=c.vetoed,
            )
            for c in d.candidates
        ],
        non_alignment_causes=d.non_alignment_causes,
    )
    if d.separating_measurement is not None:
        msg.separating_measurement.CopyFrom(_suggestion(d.separating_measurement))
    return msg


def batch_response(ref: ModelRef, items: Sequence[tuple[str, Recommendation | pb.ItemError | None]]) -> spb.BatchRecommendAdjustmentsResponse:
    """A BatchRecommendAdjustmentsResponse: per item its id and the answer or the error, in order."""
    resp = spb.BatchRecommendAdjustmentsResponse(model=_model_ref(ref))
    for assessment_id, result in items:
        item = resp.results.add(assessment_id=assessment_id)
        if isinstance(result, pb.ItemError):
            item.error.CopyFrom(result)
        elif result is not None:
            recommendation_to_proto(result, item.recommendation)
    return resp


def model_info_to_proto(model: OnnxModel, available: Iterable[str]) -> spb.GetModelResponse:
    man = model.manifest
    resp = spb.GetModelResponse(catalog_version=CATALOG_VERSION, available_versions=list(available))
    info = resp.model
    info.name = man.name
    info.version = man.version
    info.sha256 = man.sha256
    info.training_data_fingerprint = str(man.training_data.get("fingerprint", ""))
    info.training_data_kind = str(man.training_data.get("kind", ""))
    info.model_family = man.model_family
    info.created_time = man.created_utc
    info.catalog_version = man.catalog_version
    info.metrics.update(flatten_metrics(man.metrics))
    # Audit (DESIGN 6.1): how many real (recorded) fittings the model saw in training or evaluation;
    # 0 for a model trained and evaluated on the simulated cohort alone.
    info.metrics["training.real_fittings"] = float(man.training_data.get("real_fittings") or 0)
    info.limitations = (
        "Trained on a simulated cohort built from published effect sizes; not clinically validated."
        if info.training_data_kind == "simulated"
        else str(man.model_extra.get("limitations", "")) if man.model_extra else ""
    )
    used = set(model.columns)
    for f in FEATURES:
        if f.name not in used:
            continue
        resp.features.add(
            name=f.name,
            unit=f.unit,
            accepted_units=[u.symbol for u in f.units],
            min_value=f.min_value,
            max_value=f.max_value,
            normative_values=[
                pb.NormativeValue(amputation_level=_LEVEL_OUT[lvl], mean=n.mean, sd=n.sd) for lvl, n in f.normative.items()
            ],
            sensor_kinds=[_SENSOR_OUT[s] for s in f.sources],
            description=f.description,
            citation=f.citation,
            group=f.group.value,
        )
    return resp


def parameters_to_proto(resp: spb.GetModelResponse, min_change: dict[Parameter, float], max_step: dict[Parameter, float]) -> None:
    for p in PARAMETERS:
        resp.parameters.add(
            parameter=_PARAM_OUT[p.parameter],
            unit=p.unit,
            plane=_PLANE_OUT[p.plane],
            plus_means=p.plus_means,
            minus_means=p.minus_means,
            min_change=min_change[p.parameter],
            max_step=max_step[p.parameter],
        )


def model_ref_fields(recs: Sequence[Recommendation]) -> tuple[str, str, str] | None:
    if not recs:
        return None
    m = recs[0].model
    return m.name, m.version, m.sha256
