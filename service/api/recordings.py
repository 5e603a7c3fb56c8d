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
from service.extraction import (
    ChannelGroupInput,
    ChannelInput,
    ExtractionOutcome,
    RecordingInput,
    TimelineReport,
    extract_features,
)

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
_SIDE_OUT: dict[Side, int] = {side: number for number, side in _SIDE_IN.items()}


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
            group=ch.group,
        )
        for ch in r.channels
    )
    groups = tuple(
        ChannelGroupInput(
            name=g.name,
            # Empty repeated fields mean "not sent"; the extraction checks that exactly one is.
            sample_counter=np.asarray(g.sample_counter, dtype=np.int64) if len(g.sample_counter) else None,
            sample_times_s=np.asarray(g.sample_times_s, dtype=np.float64) if len(g.sample_times_s) else None,
            counter_modulus=g.counter_modulus,
        )
        for g in r.channel_groups
    )
    return RecordingInput(
        sensor_kind=_SENSOR_IN.get(r.sensor_kind),
        sampling_rate_hz=r.sampling_rate_hz,
        channels=channels,
        c3d_bytes=bytes(r.c3d_file) or None,
        options=dict(r.options),
        observations=dict(r.observations),
        channel_groups=groups,
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
        if rep.timeline is not None:
            _timeline(out, rep.timeline)
    return resp


def _timeline(out: pb.ExtractionReport, t: TimelineReport) -> None:
    out.aligned_start_s = t.start_s
    out.aligned_end_s = t.end_s
    out.samples_filled = t.samples_filled
    for g in t.groups:
        group = out.channel_groups.add(
            name=g.name,
            channels=list(g.channels),
            start_s=g.start_s,
            end_s=g.end_s,
            samples_received=g.samples_received,
            samples_filled=g.samples_filled,
            samples_unfilled=g.samples_unfilled,
            gap_count=g.gap_count,
            samples_repeated=g.samples_repeated,
        )
        for gap in g.gaps:
            group.gaps.add(
                start_s=gap.start_s, duration_s=gap.duration_s, samples_missing=gap.samples_missing, filled=gap.filled
            )
    for d in t.strides_dropped_for_gaps:
        out.strides_dropped_for_gaps.add(side=_SIDE_OUT[d.side], start_s=d.start_s, end_s=d.end_s, group=d.group)
