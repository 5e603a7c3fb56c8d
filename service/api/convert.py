"""Proto <-> domain conversion. No logic beyond mapping names, enums and units-in-field-names."""

from __future__ import annotations

import math
import struct
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
    ConfidenceLevel,
    FeatureInput,
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
_SENSOR_OUT = {v: k for k, v in _SENSOR_IN.items()}
_LEVEL_IN: dict[int, AmputationLevel] = _enum_map(pb.AmputationLevel, "AMPUTATION_LEVEL_", AmputationLevel)  # type: ignore[assignment]
_LEVEL_OUT: dict[AmputationLevel, Any] = {v: k for k, v in _LEVEL_IN.items()}
_SIDE_IN: dict[int, Side] = _enum_map(pb.Side, "SIDE_", Side)  # type: ignore[assignment]
_FOOT_IN: dict[int, str] = _enum_map(pb.FootType, "FOOT_TYPE_", str)  # type: ignore[assignment]
_KNEE_IN: dict[int, str] = _enum_map(pb.KneeType, "KNEE_TYPE_", str)  # type: ignore[assignment]
_PARAM_OUT = {Parameter(name.removeprefix("ADJUSTMENT_PARAMETER_")): n for name, n in pb.AdjustmentParameter.items() if n}
_PLANE_OUT = {Plane(name.removeprefix("ANATOMICAL_PLANE_")): n for name, n in pb.AnatomicalPlane.items() if n}
_CONF_OUT: dict[str, int] = {name.removeprefix("CONFIDENCE_LEVEL_"): n for name, n in pb.ConfidenceLevel.items() if n}
_LEVEL_BYTES: dict[ConfidenceLevel, bytes] = {lvl: bytes((0x50, _CONF_OUT[lvl.value])) for lvl in ConfidenceLevel}  # field 10


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
    )


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
    if not msg.reference_features:
        return AssessmentInput(msg.assessment_id, patient, features)
    return AssessmentInput(msg.assessment_id, patient, features, _features(msg.reference_features))


def recommendation_to_proto(r: Recommendation, out: pb.Recommendation | None = None) -> pb.Recommendation:
    m = out if out is not None else pb.Recommendation()
    m.MergeFromString(recommendation_bytes(r))
    return m


# -- a Recommendation as wire bytes -------------------------------------------------------------------
# Setting fields one by one costs ~0.1 us each from Python (7 estimates x 8 fields per answer). The
# numbers of each nested message are packed with one struct call and the strings that repeat (feature
# names, units, reasons) come from a bounded cache of their encodings. The bytes are valid wire format
# but not canonical: nested numbers that are zero (a probability of 0, clamped = false) are written
# explicitly where proto3 would leave them out, which every parser reads as the same message.
# A single answer is parsed into its message (upb normalises them on serializing, so those bytes are
# exactly canonical); a batch sends them as they are (batch_response_bytes): parsing 1000 answers
# only to serialize them again cost ~11% of a batch's server CPU (bench.compare: 73 -> 65 us per
# assessment). bench/equivalence.py compares both ways.
# Only encodings are cached, never answers.
_EST_NUMBERS = struct.Struct("<BdBdBdBd")  # 2-5 doubles
_DEV_NUMBERS = struct.Struct("<BdBdBdBd")  # 2 value, 4 normative_mean, 5 normative_sd, 6 z_score
# Adjustment: 1 rank, 2 parameter, 3 change_deg | 4 change_mm, 7 confidence, 8-9 interval, 10 suggested,
# 11 clamped, 15 plane (numbered fields may come in any order on the wire).
_ADJ_NUMBERS = struct.Struct("<BBBBBdBdBdBdBdBBBB")
_FEATURE_CHANGE_NUMBERS = struct.Struct("<BdBdBd")  # 2 reference_value, 3 value, 4 change
_WIRE_CACHE_MAX = 4096
# One varint byte each, as the structs pack them; ranks too (at most 7 adjustments).
assert max([*_PARAM_OUT.values(), *_PLANE_OUT.values(), *_SENSOR_OUT.values()]) < 0x80
# (parameter, unit, recommended, reason) -> (tag, length and parameter field; unit, recommended, reason fields)
_est_parts: dict[tuple[Parameter, str, bool, str], tuple[bytes, bytes]] = {}
_dev_heads: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_strings: dict[tuple[int, str], bytes] = {}
_repeated: dict[tuple[int, tuple[str, ...]], bytes] = {}
_messages: dict[object, bytes] = {}


def _cached_string(tag: int, s: str) -> bytes:
    """_string for strings that repeat (names, units, directions)."""
    key = (tag, s)
    b = _strings.get(key)
    if b is None:
        if len(_strings) >= _WIRE_CACHE_MAX:
            _strings.clear()
        b = _strings[key] = _string(tag, s)
    return b


def _cached_strings(tag: int, strings: tuple[str, ...]) -> bytes:
    """A repeated field of catalog names: the same tuples recur (the recommender caches the
    missing-feature tuple per feature set), ~20 names each. Never for text that can quote values."""
    if not strings:
        return b""
    key = (tag, strings)
    b = _repeated.get(key)
    if b is None:
        if len(_repeated) >= _WIRE_CACHE_MAX:
            _repeated.clear()
        b = _repeated[key] = b"".join([_string(tag, x) for x in strings])
    return b


def _model_ref_bytes(ref: ModelRef) -> bytes:
    b = _messages.get(ref)
    if b is None:
        body = _string(0x0A, ref.name) + _string(0x12, ref.version) + _string(0x1A, ref.sha256)
        if len(_messages) >= _WIRE_CACHE_MAX:
            _messages.clear()
        b = _messages[ref] = b"\x12" + _varint(len(body)) + body  # field 2, model
    return b


def _suggestion_bytes(sg: MeasurementSuggestion) -> bytes:
    b = _messages.get(sg)
    if b is None:
        body = _string(0x0A, sg.feature) + bytes((0x10, _SENSOR_OUT[sg.sensor_kind])) + _string(0x1A, sg.reason)
        if len(_messages) >= _WIRE_CACHE_MAX:
            _messages.clear()
        b = _messages[sg] = b"\x5a" + _varint(len(body)) + body  # field 11, suggested_measurements
    return b


def _varint(n: int) -> bytes:
    if n < _VARINT_TABLE_SIZE:
        return _VARINT_TABLE[n]
    return _encode_varint(n)


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINT_TABLE_SIZE = 1 << 12  # every length up to 4 KiB (messages here are smaller; larger ones are computed)
_VARINT_TABLE = [_encode_varint(n) for n in range(_VARINT_TABLE_SIZE)]


def _string(tag: int, s: str) -> bytes:
    raw = s.encode()
    return bytes((tag,)) + _varint(len(raw)) + raw


_DOUBLE = struct.Struct("<Bd")


def recommendation_bytes(r: Recommendation) -> bytes:
    """The whole Recommendation message (fields in number order) as wire bytes; see above."""
    parts: list[bytes] = []
    add = parts.append
    if r.assessment_id:
        add(_string(0x0A, r.assessment_id))  # 1
    add(_model_ref_bytes(r.model))  # 2
    for a in r.adjustments:  # 3
        pieces = [
            _ADJ_NUMBERS.pack(
                0x08, a.rank, 0x10, _PARAM_OUT[a.parameter], 0x19 if a.unit == "deg" else 0x21, a.change,
                0x39, a.confidence, 0x41, a.interval_lower, 0x49, a.interval_upper, 0x51, a.suggested_change,
                0x58, a.clamped_to_safe_step, 0x78, _PLANE_OUT[a.plane],
            ),
            _cached_string(0x2A, a.unit),
            _cached_string(0x32, a.direction),
        ]
        pieces.extend([_cached_string(0x62, f) for f in a.supporting_deviations])
        pieces.extend([_cached_string(0x6A, f) for f in a.driving_features])
        pieces.append(_string(0x72, a.rationale))
        body = b"".join(pieces)
        add(b"\x1a" + _varint(len(body)) + body)
    if r.no_change_needed:
        add(b"\x20\x01")  # 4
    for d in r.deviations:  # 5
        key = (d.feature, d.unit)
        heads = _dev_heads.get(key)
        if heads is None:
            if len(_dev_heads) >= _WIRE_CACHE_MAX:
                _dev_heads.clear()
            heads = _dev_heads[key] = (_string(0x0A, d.feature), _string(0x1A, d.unit))
        body = b"".join(
            (
                heads[0],
                _DEV_NUMBERS.pack(0x11, d.value, 0x21, d.normative_mean, 0x29, d.normative_sd, 0x31, d.z_score),
                heads[1],
                _string(0x3A, d.description),
            )
        )
        add(b"\x2a" + _varint(len(body)) + body)
    for f in r.non_alignment_findings:  # 6
        body = b"".join([_cached_string(0x0A, f.code), _string(0x12, f.message), *[_cached_string(0x1A, x) for x in f.features]])
        add(b"\x32" + _varint(len(body)) + body)
    add(_cached_strings(0x3A, r.missing_features))  # 7
    add(_cached_strings(0x42, r.imputed_features))  # 8
    if r.overall_confidence or math.copysign(1.0, r.overall_confidence) < 0:  # proto3 leaves out +0.0 only
        add(_DOUBLE.pack(0x49, r.overall_confidence))  # 9
    add(_LEVEL_BYTES[r.confidence_level])  # 10
    for sg in r.suggested_measurements:  # 11
        add(_suggestion_bytes(sg))
    # Warnings can quote the sent values (patient data): encoded per answer, never cached.
    parts += [_string(0x62, w) for w in r.warnings]  # 12
    for e in r.parameter_estimates:  # 13
        ekey = (e.parameter, e.unit, e.recommended, e.reason)
        cached = _est_parts.get(ekey)
        if cached is None:
            tail = _string(0x32, e.unit) + (b"\x38\x01" if e.recommended else b"") + _string(0x42, e.reason)
            body_len = 2 + _EST_NUMBERS.size + len(tail)
            if len(_est_parts) >= _WIRE_CACHE_MAX:
                _est_parts.clear()
            # field 13 (parameter_estimates), length, then field 1 (parameter) of the estimate
            cached = _est_parts[ekey] = (b"\x6a" + _varint(body_len) + bytes((0x08, _PARAM_OUT[e.parameter])), tail)
        parts += (
            cached[0],
            _EST_NUMBERS.pack(0x11, e.probability_decrease, 0x19, e.probability_no_change, 0x21, e.probability_increase, 0x29, e.magnitude),
            cached[1],
        )
    for c in r.changes_since_reference:  # 14, only answers sent with a reference walk
        body = b"".join(
            (
                _cached_string(0x0A, c.feature),
                _FEATURE_CHANGE_NUMBERS.pack(0x11, c.reference_value, 0x19, c.value, 0x21, c.change),
                _cached_string(0x2A, c.unit),
                _DOUBLE.pack(0x31, c.change_in_sd),
            )
        )
        add(b"\x72" + _varint(len(body)) + body)
    return b"".join(parts)


class EncodedMessage:
    """Wire bytes standing in for a response message: grpc's serializer for the RPC calls
    SerializeToString() on whatever the handler returns (server.ENCODED_RESPONSE_METHODS)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:  # the protobuf method name, for grpc and tools alike
        return self.data


def batch_response_bytes(ref: ModelRef, items: Sequence[tuple[str, Recommendation | pb.ItemError | None]]) -> bytes:
    """A BatchRecommendAdjustmentsResponse as wire bytes: per item its id and the answer or the error.

    Pieces are collected and joined once: concatenating per item would copy every answer twice more
    (measured: ~20 MB more peak RSS per worker under batch load)."""
    parts: list[bytes] = []
    add = parts.append
    for assessment_id, result in items:
        head = _string(0x0A, assessment_id) if assessment_id else b""
        if isinstance(result, pb.ItemError):
            body, tag = result.SerializeToString(), b"\x1a"
        elif result is not None:
            body, tag = recommendation_bytes(result), b"\x12"
        else:
            add(b"\x0a" + _varint(len(head)) + head)
            continue
        body_len = _varint(len(body))
        add(b"\x0a" + _varint(len(head) + 1 + len(body_len) + len(body)) + head + tag + body_len)
        add(body)
    add(_model_ref_bytes(ref))  # field 2 of the response, as of a Recommendation
    return b"".join(parts)


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
