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
    AssessmentInput,
    BatchInput,
    FeatureInput,
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
_SENSOR_OUT = {v: k for k, v in _SENSOR_IN.items()}
_LEVEL_IN: dict[int, AmputationLevel] = _enum_map(pb.AmputationLevel, "AMPUTATION_LEVEL_", AmputationLevel)  # type: ignore[assignment]
_LEVEL_OUT: dict[AmputationLevel, Any] = {v: k for k, v in _LEVEL_IN.items()}
_SIDE_IN: dict[int, Side] = _enum_map(pb.Side, "SIDE_", Side)  # type: ignore[assignment]
_FOOT_IN: dict[int, str] = _enum_map(pb.FootType, "FOOT_TYPE_", str)  # type: ignore[assignment]
_KNEE_IN: dict[int, str] = _enum_map(pb.KneeType, "KNEE_TYPE_", str)  # type: ignore[assignment]
_PARAM_OUT = {Parameter(name.removeprefix("ADJUSTMENT_PARAMETER_")): n for name, n in pb.AdjustmentParameter.items() if n}
_PLANE_OUT = {Plane(name.removeprefix("ANATOMICAL_PLANE_")): n for name, n in pb.AnatomicalPlane.items() if n}
_CONF_OUT: dict[str, int] = {name.removeprefix("CONFIDENCE_LEVEL_"): n for name, n in pb.ConfidenceLevel.items() if n}


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
    )


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
    return AssessmentInput(msg.assessment_id, patient, features)


def recommendation_to_proto(r: Recommendation, out: pb.Recommendation | None = None) -> pb.Recommendation:
    m = out if out is not None else pb.Recommendation()
    m.assessment_id = r.assessment_id
    ref = m.model
    ref.name = r.model.name
    ref.version = r.model.version
    ref.sha256 = r.model.sha256
    m.no_change_needed = r.no_change_needed
    m.overall_confidence = r.overall_confidence
    m.confidence_level = _CONF_OUT[r.confidence_level.value]  # type: ignore[assignment]
    for a in r.adjustments:
        adj = m.adjustments.add(
            rank=a.rank,
            parameter=_PARAM_OUT[a.parameter],
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
            plane=_PLANE_OUT[a.plane],
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
        m.suggested_measurements.add(feature=s.feature, sensor_kind=_SENSOR_OUT[s.sensor_kind], reason=s.reason)
    m.warnings.extend(r.warnings)
    for e in r.parameter_estimates:
        m.parameter_estimates.add(
            parameter=_PARAM_OUT[e.parameter],
            probability_decrease=e.probability_decrease,
            probability_no_change=e.probability_no_change,
            probability_increase=e.probability_increase,
            magnitude=e.magnitude,
            unit=e.unit,
            recommended=e.recommended,
            reason=e.reason,
        )
    return m


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
