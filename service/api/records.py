"""RecordFittingRequest -> records.RecordInput, RecordResult -> RecordFittingResponse. Mapping only."""

from __future__ import annotations

from collections.abc import Iterable

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service.api.convert import _features, _patient_from_proto
from service.records.domain import AnswerInput, ChangeInput, OutcomeInput, RecordInput, RecordResult, WalkInput

_PARAM_IN: dict[int, str] = {
    n: name.removeprefix("ADJUSTMENT_PARAMETER_") for name, n in pb.AdjustmentParameter.items() if n
}
_KIND_IN: dict[int, str] = {n: name.removeprefix("ANSWER_KIND_") for name, n in pb.AnswerKind.items() if n}
_ACCEPT_IN: dict[int, str] = {
    n: name.removeprefix("FITTING_ACCEPTANCE_") for name, n in pb.FittingAcceptance.items() if n
}


def _changes(cs: Iterable[pb.AppliedChange]) -> tuple[ChangeInput, ...]:
    return tuple(ChangeInput(_PARAM_IN.get(c.parameter), c.change) for c in cs)


def record_from_proto(req: spb.RecordFittingRequest) -> RecordInput:
    r = req.record
    walks = []
    for w in r.walks:
        answer = None
        if w.HasField("answer"):
            a = w.answer
            answer = AnswerInput(
                model_name=a.model.name,
                model_version=a.model.version,
                model_sha256=a.model.sha256,
                answer_kind=_KIND_IN.get(a.answer_kind),
                recommended=_changes(a.recommended),
            )
        walks.append(WalkInput(_features(w.features), answer, _changes(w.applied_after)))
    outcome = None
    if r.HasField("outcome"):
        o = r.outcome
        outcome = OutcomeInput(
            acceptance=_ACCEPT_IN.get(o.acceptance),
            prosthetist_rating=o.prosthetist_rating,
            socket_comfort_score=o.socket_comfort_score if o.HasField("socket_comfort_score") else None,
        )
    # _patient_from_proto reads `.patient` of any message that has one (GaitAssessment or FittingRecord).
    return RecordInput(
        fitting_id=r.fitting_id,
        patient_key=r.patient_key,
        clinic_key=r.clinic_key,
        patient=_patient_from_proto(r),  # type: ignore[arg-type]
        walks=tuple(walks),
        outcome=outcome,
    )


def response_to_proto(res: RecordResult) -> spb.RecordFittingResponse:
    return spb.RecordFittingResponse(
        fitting_id=res.fitting_id, already_recorded=res.already_recorded, content_sha256=res.content_sha256
    )
