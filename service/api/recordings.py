"""Recordings over gRPC: proto recordings -> service.extraction -> proto features and reports.

Only mapping lives here (enum names, proto containers to numpy, domain results back to proto); every
check and every clinical decision is in ``service.extraction`` and ``service.validation``. Errors are
the domain errors of ``service.errors``; the servicer maps them to gRPC status codes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.catalog import SensorKind, Side
from service.extraction import ChannelInput, ExtractionOutcome, RecordingInput, extract_features

# Proto enum numbers <-> domain enums by name ("SENSOR_KIND_IMU" <-> SensorKind.IMU), so a value
# added to both stays mapped without touching this file.
_SENSOR_IN: dict[int, SensorKind] = {
    number: SensorKind(name.removeprefix("SENSOR_KIND_"))
    for name, number in pb.SensorKind.items()
    if name.removeprefix("SENSOR_KIND_") in SensorKind.__members__
}
_SENSOR_OUT: dict[SensorKind, int] = {kind: number for number, kind in _SENSOR_IN.items()}
_SIDE_IN: dict[int, Side] = {
    number: Side(name.removeprefix("SIDE_"))
    for name, number in pb.Side.items()
    if name.removeprefix("SIDE_") in Side.__members__
}


def extract_features_rpc(request: spb.ExtractFeaturesRequest) -> spb.ExtractFeaturesResponse:
    outcome = _extract(request.patient if request.HasField("patient") else None, request.recordings)
    return _response(outcome)


def assessment_from_recordings(
    request: spb.RecommendFromRecordingsRequest,
) -> tuple[spb.ExtractFeaturesResponse, pb.GaitAssessment]:
    """Extract, then build the assessment the servicer validates and recommends on.

    Features sent in the request come first and in request order, so validation errors about them
    (``assessment.features[i]``) point at the same index in ``request.features``; extracted features
    follow, minus any name the request already sent (a measured value beats an extracted one)."""
    patient = request.patient if request.HasField("patient") else None
    outcome = _extract(patient, request.recordings)
    sent = {f.name for f in request.features}
    overridden: dict[int, list[str]] = {}
    assessment = pb.GaitAssessment(assessment_id=request.assessment_id)
    if patient is not None:
        assessment.patient.CopyFrom(patient)
    assessment.features.extend(request.features)
    for f in outcome.features:
        if f.name in sent:
            overridden.setdefault(f.recording_index, []).append(f.name)
            continue
        assessment.features.add(name=f.name, value=f.value, unit=f.unit, source=_SENSOR_OUT[f.source])
    extraction = _response(outcome)
    for report, dom in zip(extraction.reports, outcome.reports, strict=True):
        names = overridden.get(dom.index)
        if names:
            report.warnings.append(f"the value sent in features replaces the extracted {', '.join(names)}")
    return extraction, assessment


# ------------------------------------------------------------------------------------- mapping
def _extract(patient: pb.PatientContext | None, recordings: Iterable[pb.Recording]) -> ExtractionOutcome:
    side = _SIDE_IN.get(patient.prosthetic_side) if patient is not None else None
    mass = patient.body_mass_kg if patient is not None else None
    return extract_features([_recording(r) for r in recordings], side, mass)


def _recording(r: pb.Recording) -> RecordingInput:
    channels = tuple(
        ChannelInput(
            name=ch.name,
            # asarray reads the repeated field without an intermediate list (about 10 ms per 1e6 values).
            values=np.asarray(ch.values, dtype=np.float64),
            components=ch.components,
            unit=ch.unit,
        )
        for ch in r.channels
    )
    return RecordingInput(
        sensor_kind=_SENSOR_IN.get(r.sensor_kind),
        sampling_rate_hz=r.sampling_rate_hz,
        channels=channels,
        c3d_bytes=bytes(r.c3d_file) or None,
        options=dict(r.options),
        observations=dict(r.observations),
    )


def _response(outcome: ExtractionOutcome) -> spb.ExtractFeaturesResponse:
    # Any bad recording fails the whole call, so there is one report per recording, in request order.
    resp = spb.ExtractFeaturesResponse()
    for f in outcome.features:
        resp.features.add(name=f.name, value=f.value, unit=f.unit, source=_SENSOR_OUT[f.source])
    for rep in outcome.reports:
        out = resp.reports.add(
            sensor_kind=_SENSOR_OUT[rep.sensor_kind],
            strides_used=rep.strides_used,
            strides_dropped=rep.strides_dropped,
            warnings=list(rep.warnings),
        )
        for name, prov in rep.provenance:
            source = SensorKind(prov.source) if prov.source in SensorKind.__members__ else rep.sensor_kind
            out.provenance.add(
                feature=name,
                sensor_kind=_SENSOR_OUT[source],
                method=prov.method,
                precision=str(prov.precision),
                n_values=prov.n_values,
            )
    return resp
