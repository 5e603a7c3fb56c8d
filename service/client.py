"""Python client for integrators, and `python -m service.client` for people.

    python -m service.client recommend examples/toe_out_transtibial.json
    python -m service.client recommend a.json b.json many.json   # one BatchRecommendAdjustments
    python -m service.client fit examples/fittings/toe_out_transtibial.json
    python -m service.client model
    python -m service.client health

`recommend` files are protobuf JSON of a GaitAssessment, a RecommendAdjustmentsRequest
(`{"assessment": ...}`), a BatchRecommendAdjustmentsRequest (`{"assessments": [...]}`) or a JSON
array of GaitAssessments. One assessment in all is sent as RecommendAdjustments; more are sent as
one BatchRecommendAdjustments, and each answer or error is printed with its file (and index).
`fit` replays a recorded fitting walk by walk (format in docs/clients.md, "Replaying a fitting").

Options: --address, --token (bearer), --ca/--cert/--key (TLS, mTLS), --timeout, --json (one JSON
document on stdout: the raw answer for one assessment, `{"results": [...]}` for several).
Exit status: 0 every assessment answered (health: SERVING); 1 some rejected (health: not
SERVING); 2 usage or connection error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2_grpc as spb_grpc

# Printed lines are wrapped to this width (terminals, issue trackers, e-mail).
WIDTH = 100
EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
# Codes that reject what was sent; any other failure is the connection's or the server's (exit 2).
_REJECTING_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


class AlignmentClient:
    """Thin typed wrapper over the generated stub. Use as a context manager to close the channel."""

    def __init__(self, channel: grpc.Channel, *, token: str | None = None, timeout_s: float = 10.0) -> None:
        self.channel = channel
        self.stub = spb_grpc.AlignmentServiceStub(channel)
        self.health_stub = health_pb2_grpc.HealthStub(channel)
        self.timeout_s = timeout_s
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    @classmethod
    def connect(
        cls,
        address: str = "127.0.0.1:50051",
        *,
        token: str | None = None,
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        timeout_s: float = 10.0,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> AlignmentClient:
        options = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", max_message_bytes)]
        if ca_file is not None:
            creds = grpc.ssl_channel_credentials(
                root_certificates=Path(ca_file).read_bytes(),
                private_key=Path(key_file).read_bytes() if key_file else None,
                certificate_chain=Path(cert_file).read_bytes() if cert_file else None,
            )
            channel = grpc.secure_channel(address, creds, options=options)
        else:
            channel = grpc.insecure_channel(address, options=options)
        return cls(channel, token=token, timeout_s=timeout_s)

    def __enter__(self) -> AlignmentClient:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def recommend(self, assessment: pb.GaitAssessment, *, model_version: str = "") -> pb.Recommendation:
        req = spb.RecommendAdjustmentsRequest(assessment=assessment, model_version=model_version)
        resp = self.stub.RecommendAdjustments(req, timeout=self.timeout_s, metadata=self._metadata)
        return resp.recommendation

    def recommend_batch(self, assessments: Sequence[pb.GaitAssessment], *, model_version: str = "") -> spb.BatchRecommendAdjustmentsResponse:
        req = spb.BatchRecommendAdjustmentsRequest(assessments=assessments, model_version=model_version)
        return self.stub.BatchRecommendAdjustments(req, timeout=self.timeout_s, metadata=self._metadata)

    def stream(self, assessments: Iterable[pb.GaitAssessment], *, model_version: str = "") -> Iterator[spb.StreamRecommendAdjustmentsResponse]:
        reqs = (spb.StreamRecommendAdjustmentsRequest(assessment=a, model_version=model_version) for a in assessments)
        return self.stub.StreamRecommendAdjustments(reqs, metadata=self._metadata)

    def get_model(self, model_version: str = "") -> spb.GetModelResponse:
        return self.stub.GetModel(spb.GetModelRequest(model_version=model_version), timeout=self.timeout_s, metadata=self._metadata)

    def record_fitting(self, record: pb.FittingRecord) -> spb.RecordFittingResponse:
        """Store a finished fitting (needs a token with the records scope; idempotent per fitting_id)."""
        req = spb.RecordFittingRequest(record=record)
        return self.stub.RecordFitting(req, timeout=self.timeout_s, metadata=self._metadata)

    def health(self, service: str = "") -> str:
        resp = self.health_stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout_s, metadata=self._metadata)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))


def field_violations(err: grpc.RpcError) -> list[error_details_pb2.BadRequest.FieldViolation]:
    """The google.rpc.BadRequest field violations of an INVALID_ARGUMENT error (empty if none)."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    out: list[error_details_pb2.BadRequest.FieldViolation] = []
    if status is None:
        return out
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            out.extend(br.field_violations)
    return out


def item_error_from_rpc(err: grpc.RpcError) -> pb.ItemError:
    """A failed unary call as the same ItemError a batch item gets (code, message, violations)."""
    item = pb.ItemError(code=err.code().name, message=err.details() or "")
    for v in field_violations(err):
        item.field_violations.add(field=v.field, description=v.description, reason=v.reason)
        item.reason = item.reason or v.reason
    return item


# -- input files ----------------------------------------------------------------------------------
class InputFileError(ValueError):
    """A request file that cannot be read or parsed; the message starts with the file's name."""


def _read_json(path: Path) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read: {exc}") from exc
    if not text.strip():
        raise InputFileError(f"{path}: empty file (expected protobuf JSON of a GaitAssessment)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}: not JSON: {exc}") from exc


def _parse(raw: object, message: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise InputFileError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    try:
        return json_format.ParseDict(raw, message)
    except json_format.ParseError as exc:
        raise InputFileError(f"{where}: {exc}") from exc


def load_assessments(path: Path) -> list[tuple[str, pb.GaitAssessment]]:
    """Every assessment in a file, each labelled with the file (and its index when there are many).

    Accepts a GaitAssessment, a RecommendAdjustmentsRequest, a BatchRecommendAdjustmentsRequest or
    a JSON array of GaitAssessments. Raises InputFileError naming the file (and item)."""
    raw = _read_json(path)
    if isinstance(raw, dict) and "assessment" in raw:
        raw = raw["assessment"]
    elif isinstance(raw, dict) and "assessments" in raw:
        raw = raw["assessments"]
        if not isinstance(raw, list):
            raise InputFileError(f"{path}: `assessments` must be a JSON array")
    if isinstance(raw, list):
        if not raw:
            raise InputFileError(f"{path}: empty array (expected GaitAssessments)")
        return [(f"{path}[{i}]", _parse(item, pb.GaitAssessment(), f"{path}[{i}]")) for i, item in enumerate(raw)]
    return [(str(path), _parse(raw, pb.GaitAssessment(), str(path)))]


def load_assessment(path: Path) -> pb.GaitAssessment:
    """Read protobuf JSON of one GaitAssessment or of a RecommendAdjustmentsRequest."""
    items = load_assessments(path)
    if len(items) != 1:
        raise InputFileError(f"{path}: holds {len(items)} assessments, expected one")
    return items[0][1]


@dataclass(frozen=True)
class Fitting:
    """A recorded fitting: who, and the walks in order, each with the changes applied after it."""

    patient: pb.PatientContext
    walks: tuple[pb.FittingWalk, ...]
    assessment_id: str = "fitting"


def load_fitting(path: Path) -> Fitting:
    """Read a fitting file: `{"assessmentId"?, "patient": PatientContext, "walks": [FittingWalk]}`.

    Each walk is protobuf JSON of a FittingWalk: `features` ({name, value, unit?, source?}) and
    `appliedAfter` ([{parameter, change}], signed in parameter units as in the sign table)."""
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise InputFileError(f"{path}: expected a JSON object with `patient` and `walks`")
    unknown = sorted(set(raw) - {"assessmentId", "assessment_id", "patient", "walks", "description"})
    if unknown:
        raise InputFileError(f"{path}: unknown keys {unknown} (expected assessmentId, patient, walks)")
    walks = raw.get("walks")
    if not isinstance(walks, list) or not walks:
        raise InputFileError(f"{path}: `walks` must be a non-empty JSON array")
    patient = _parse(raw.get("patient"), pb.PatientContext(), f"{path}: patient")
    parsed = tuple(_parse(w, pb.FittingWalk(), f"{path}: walks[{i}]") for i, w in enumerate(walks))
    ident = raw.get("assessmentId", raw.get("assessment_id", Path(path).stem))
    return Fitting(patient, parsed, str(ident))


def fitting_assessments(fitting: Fitting) -> list[pb.GaitAssessment]:
    """One assessment per walk, as the fitting loop sends them (DESIGN 3.4).

    Walk k carries walk k-1 as its reference (reference_features, and the changes applied after
    it as applied_since_reference) and walks 0..k-2 as fitting_history, oldest first."""
    out: list[pb.GaitAssessment] = []
    for k, walk in enumerate(fitting.walks):
        a = pb.GaitAssessment(assessment_id=f"{fitting.assessment_id}-walk{k + 1}", features=walk.features)
        a.patient.CopyFrom(fitting.patient)
        if k >= 1:
            ref = fitting.walks[k - 1]
            a.reference_features.extend(ref.features)
            a.applied_since_reference.extend(ref.applied_after)
            a.fitting_history.extend(fitting.walks[: k - 1])
        out.append(a)
    return out


# -- human-readable output ------------------------------------------------------------------------
def _name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix)


def _param(value: int) -> str:
    return _name(pb.AdjustmentParameter, value, "ADJUSTMENT_PARAMETER_")


def fit_width(lines: Iterable[str], width: int = WIDTH) -> list[str]:
    """Wrap every line longer than `width`; continuation lines are indented past the first's."""
    out: list[str] = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        body = line.lstrip(" ")
        indent = " " * (len(line) - len(body))
        if body.startswith("- "):
            rest = indent + "  "
        else:
            rest = indent + "    "
        out.extend(
            # Words are never cut: a path or a feature name must stay copyable, even past the width.
            textwrap.wrap(
                body, width, initial_indent=indent, subsequent_indent=rest, break_on_hyphens=False, break_long_words=False
            )
            or [line[:width]]
        )
    return out


def _change(a: pb.Adjustment) -> float:
    return float(a.change_deg if a.WhichOneof("change") == "change_deg" else a.change_mm)


def _adjustment_lines(a: pb.Adjustment) -> list[str]:
    tags = [t for t, on in (("TRIAL", a.trial), ("UNDO", a.reverts_applied_change)) if on]
    tag = f"{' '.join(tags)}: " if tags else ""
    step = f"{_change(a):+.1f} {a.unit}"
    lines = [f"{a.rank:>2}  {_param(a.parameter):<20} {step:>10}  {a.confidence:>5.2f}  {tag}{a.direction}"]
    # The step is what to apply now; the model's estimate and its interval describe the whole
    # correction it believes is needed, which a clamped step deliberately does not reach.
    estimate = (
        f"model estimate {a.suggested_change:+.1f} {a.unit}, "
        f"80% interval [{a.interval_lower:+.1f}, {a.interval_upper:+.1f}] {a.unit}"
    )
    if a.clamped_to_safe_step:
        estimate += "; step clamped to the safe single step"
    lines.append(f"    {estimate}")
    if a.trial:
        lines.append("    trial: the smallest effective step of the most likely cause; walk again and send it")
    if a.reverts_applied_change:
        lines.append("    undoes an earlier applied change (it made things worse, or did not help)")
    if a.supporting_deviations:
        lines.append(f"    because: {', '.join(a.supporting_deviations)}")
    if a.driving_features:
        lines.append(f"    driven by: {', '.join(a.driving_features)}")
    return lines


def _differential_lines(d: pb.Differential) -> list[str]:
    lines = ["", f"differential: {d.feature} (z = {d.z_score:+.1f})"]
    if d.description:
        lines.append(f"  {d.description}")
    if d.candidates:
        lines.append(f"  {'candidate fix':<44} {'P':>5} {'P opp':>6}")
        for i, c in enumerate(d.candidates, start=1):
            sign = "+" if c.direction_sign > 0 else "-" if c.direction_sign < 0 else "?"
            fix = f"{i}. {_param(c.parameter)} {sign} ({c.direction})" if c.direction else f"{i}. {_param(c.parameter)} {sign}"
            veto = "  VETOED: the opposite is more likely, never advised" if c.vetoed else ""
            lines.append(f"  {fix:<44} {c.probability:>5.2f} {c.probability_opposite:>6.2f}{veto}")
            if c.evidence_for:
                lines.append(f"       for: {'; '.join(c.evidence_for)}")
            if c.evidence_against:
                lines.append(f"       against: {'; '.join(c.evidence_against)}")
            if c.table_rows:
                lines.append(f"       rule table: {c.table_rows}")
    if d.non_alignment_causes:
        lines.append(f"  not alignment: {'; '.join(d.non_alignment_causes)}")
    if d.HasField("separating_measurement"):
        s = d.separating_measurement
        kind = _name(pb.SensorKind, s.sensor_kind, "SENSOR_KIND_")
        lines.append(f"  separates the top candidates: {s.feature} ({kind}){': ' + s.reason if s.reason else ''}")
    return lines


def _estimate_lines(estimates: Sequence[pb.ParameterEstimate]) -> list[str]:
    lines = ["", "model estimates per parameter (probability of a decrease, no change, an increase):"]
    lines.append(f"  {'parameter':<20} {'P(-)':>5} {'P(0)':>5} {'P(+)':>5} {'size':>10}  recommended")
    for e in estimates:
        why = "yes" if e.recommended else f"no: {e.reason}" if e.reason else "no"
        size = f"{e.magnitude:.1f} {e.unit}"
        lines.append(
            f"  {_param(e.parameter):<20} {e.probability_decrease:>5.2f} {e.probability_no_change:>5.2f} "
            f"{e.probability_increase:>5.2f} {size:>10}  {why}"
        )
    return lines


def format_recommendation(r: pb.Recommendation) -> str:
    """A Recommendation for people: answer and summary first, then what to do, then why."""
    level = _name(pb.ConfidenceLevel, r.confidence_level, "CONFIDENCE_LEVEL_")
    lines = [f"assessment {r.assessment_id or '(no id)'}  model {r.model.name} {r.model.version} ({r.model.sha256[:12]})"]
    head = f"overall confidence {r.overall_confidence:.2f} ({level})"
    if r.answer_kind:
        head = f"answer {_name(pb.AnswerKind, r.answer_kind, 'ANSWER_KIND_')}  {head}"
    lines.append(head)
    if r.summary:
        lines.append(f"summary: {r.summary}")
    if r.no_change_needed:
        lines.append("NO CHANGE NEEDED: alignment is within the acceptable band for the measured features.")
    if r.adjustments:
        lines.append("")
        lines.append(f"{'#':>2}  {'parameter':<20} {'step':>10}  {'conf':>5}  direction")
        for a in r.adjustments:
            lines.extend(_adjustment_lines(a))
    elif not r.no_change_needed:
        lines.append("no adjustment recommended")
    for d in r.differentials:
        lines.extend(_differential_lines(d))
    if r.deviations:
        lines.append("")
        lines.append("gait deviations (vs prosthesis-user norms):")
        lines.extend(f"  - {d.description}" for d in r.deviations)
    if r.changes_since_reference:
        lines.append("")
        lines.append("changed since the reference walk:")
        lines.extend(
            f"  - {c.feature}: {c.reference_value:g} -> {c.value:g} {c.unit} ({c.change:+.3g}, {c.change_in_sd:+.1f} SD)"
            for c in r.changes_since_reference
        )
    if r.non_alignment_findings:
        lines.append("")
        lines.append("not an alignment issue?")
        lines.extend(f"  - [{f.code}] {f.message}" for f in r.non_alignment_findings)
    if r.parameter_estimates:
        lines.extend(_estimate_lines(r.parameter_estimates))
    if r.suggested_measurements:
        lines.append("")
        lines.append("to be more certain, measure:")
        lines.extend(
            f"  - {s.feature} ({_name(pb.SensorKind, s.sensor_kind, 'SENSOR_KIND_')}): {s.reason}"
            for s in r.suggested_measurements
        )
    if r.warnings:
        lines.append("")
        lines.extend(f"warning: {w}" for w in r.warnings)
    return "\n".join(fit_width(lines))


def format_item_error(label: str, e: pb.ItemError) -> str:
    # An unreadable file's message already names the file.
    lines = [f"error: {e.message}" if e.code == "INVALID_FILE" else f"error: {label}: {e.code}: {e.message}"]
    lines.extend(f"  {v.field}: {v.description} [{v.reason}]" for v in e.field_violations)
    return "\n".join(fit_width(lines))


# The angular parameters (sign table); the others are lengths in mm.
_DEG_PARAMETERS = frozenset(
    {pb.ADJUSTMENT_PARAMETER_FOOT_ROTATION, pb.ADJUSTMENT_PARAMETER_SOCKET_FLEXION, pb.ADJUSTMENT_PARAMETER_SOCKET_ADDUCTION}
)


def _applied(changes: Sequence[pb.AppliedChange]) -> str:
    return ", ".join(
        f"{_param(c.parameter)} {c.change:+g} {'deg' if c.parameter in _DEG_PARAMETERS else 'mm'}" for c in changes
    )


def format_fitting_walk(k: int, walk: pb.FittingWalk, r: pb.Recommendation | None, err: pb.ItemError | None) -> str:
    """One walk of a replayed fitting in a few lines: the answer, its top adjustments, what was done."""
    kind = _name(pb.AnswerKind, r.answer_kind, "ANSWER_KIND_") if r is not None and r.answer_kind else ""
    lines = [f"walk {k + 1}: {len(walk.features)} features"]
    if err is not None:
        lines[0] += f"  REJECTED {err.code}: {err.message}"
        lines.extend(f"  {v.field}: {v.description} [{v.reason}]" for v in err.field_violations)
    elif r is not None:
        level = _name(pb.ConfidenceLevel, r.confidence_level, "CONFIDENCE_LEVEL_")
        lines[0] += f"  {kind + '  ' if kind else ''}confidence {r.overall_confidence:.2f} ({level})"
        if r.summary:
            lines.append(f"  summary: {r.summary}")
        if r.no_change_needed:
            lines.append("  no change needed")
        for a in r.adjustments[:3]:
            tag = " TRIAL" if a.trial else " UNDO" if a.reverts_applied_change else ""
            lines.append(
                f"  {a.rank}. {_param(a.parameter)} {_change(a):+.1f} {a.unit} (p {a.confidence:.2f}){tag}: {a.direction}"
            )
        if not r.adjustments and not r.no_change_needed:
            lines.append("  no adjustment recommended")
    if walk.applied_after:
        lines.append(f"  applied after this walk: {_applied(walk.applied_after)}")
    return "\n".join(fit_width(lines))


def format_model(m: spb.GetModelResponse) -> str:
    i = m.model
    lines = [
        f"model {i.name} {i.version}  sha256 {i.sha256}",
        f"family {i.model_family}; training data {i.training_data_kind} ({i.training_data_fingerprint[:16]})",
        f"catalog {m.catalog_version}; loaded versions: {', '.join(m.available_versions)}",
    ]
    if i.limitations:
        lines.append(f"LIMITATIONS: {i.limitations}")
    lines.append("")
    lines.append(f"{'feature':<45} {'unit':<9} {'valid range':>17}  accepted units")
    for f in m.features:
        lines.append(f"{f.name:<45} {f.unit:<9} {f.min_value:>7g} .. {f.max_value:<7g}  {', '.join(f.accepted_units)}")
    lines.append("")
    lines.append(f"{'parameter':<20} {'unit':<4} {'min':>4} {'step':>4}  + means")
    for p in m.parameters:
        lines.append(f"{_param(p.parameter):<20} {p.unit:<4} {p.min_change:>4g} {p.max_step:>4g}  {p.plus_means}")
    return "\n".join(fit_width(lines))


# -- the command line -----------------------------------------------------------------------------
@dataclass
class Outcome:
    """The answer to one assessment, or why it has none."""

    label: str
    recommendation: pb.Recommendation | None = None
    error: pb.ItemError | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.label}
        if self.recommendation is not None:
            out["recommendation"] = json_format.MessageToDict(self.recommendation)
        if self.error is not None:
            out["error"] = json_format.MessageToDict(self.error)
        return out


class ConnectionFailure(Exception):
    """The call itself failed for a reason that is not the request's (exit 2)."""

    def __init__(self, err: grpc.RpcError) -> None:
        super().__init__(f"{err.code().name}: {err.details()}")


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except grpc.RpcError as err:
        if err.code() in _REJECTING_CODES:
            raise
        raise ConnectionFailure(err) from err


def answer(
    client: AlignmentClient, items: Sequence[tuple[str, pb.GaitAssessment]], *, model_version: str = ""
) -> list[Outcome]:
    """One assessment as RecommendAdjustments, several as one BatchRecommendAdjustments."""
    if len(items) == 1:
        label, a = items[0]
        try:
            return [Outcome(label, recommendation=_call(client.recommend, a, model_version=model_version))]
        except grpc.RpcError as err:
            return [Outcome(label, error=item_error_from_rpc(err))]
    try:
        resp = _call(client.recommend_batch, [a for _, a in items], model_version=model_version)
    except grpc.RpcError as err:
        # The whole batch was refused (e.g. too large): every item shares the error.
        e = item_error_from_rpc(err)
        return [Outcome(label, error=e) for label, _ in items]
    out = []
    for (label, _), res in zip(items, resp.results, strict=True):
        if res.WhichOneof("result") == "recommendation":
            out.append(Outcome(label, recommendation=res.recommendation))
        else:
            out.append(Outcome(label, error=res.error))
    return out


def _emit(text: str) -> None:
    print(text)


def _recommend(client: AlignmentClient, args: argparse.Namespace) -> int:
    items: list[tuple[str, pb.GaitAssessment]] = []
    # Per file, in the order given: its unreadable-file outcome, or how many assessments it holds.
    per_file: list[Outcome | int] = []
    for path in args.files:
        try:
            loaded = load_assessments(path)
        except InputFileError as exc:
            per_file.append(Outcome(str(path), error=pb.ItemError(code="INVALID_FILE", message=str(exc))))
            continue
        items.extend(loaded)
        per_file.append(len(loaded))
    answered = iter(answer(client, items, model_version=args.model_version) if items else [])
    outcomes: list[Outcome] = []
    for entry in per_file:
        outcomes.extend([entry] if isinstance(entry, Outcome) else [next(answered) for _ in range(entry)])
    rejected = sum(o.error is not None for o in outcomes)
    single = outcomes[0].recommendation if len(outcomes) == 1 else None
    if args.json:
        if single is not None:
            _emit(json_format.MessageToJson(single))
        else:
            _emit(json.dumps({"results": [o.to_json() for o in outcomes]}, indent=2))
    printed = 0
    for o in outcomes:
        if o.error is not None:
            print(format_item_error(o.label, o.error), file=sys.stderr)
        elif not args.json and o.recommendation is not None:
            if printed:
                _emit("")
            if len(outcomes) > 1:
                _emit(f"== {o.label}")
            _emit(format_recommendation(o.recommendation))
            printed += 1
    if rejected and len(outcomes) > 1:
        print(f"{rejected} of {len(outcomes)} rejected", file=sys.stderr)
    return EXIT_REJECTED if rejected else EXIT_OK


def _fit(client: AlignmentClient, args: argparse.Namespace) -> int:
    fitting = load_fitting(args.file)
    walks = fitting_assessments(fitting)
    outcomes: list[Outcome] = []
    for k, a in enumerate(walks):
        label = f"{args.file} walk {k + 1}"
        try:
            outcomes.append(Outcome(label, recommendation=_call(client.recommend, a, model_version=args.model_version)))
        except grpc.RpcError as err:
            outcomes.append(Outcome(label, error=item_error_from_rpc(err)))
    if args.json:
        _emit(json.dumps({"walks": [o.to_json() for o in outcomes]}, indent=2))
    else:
        for k, (walk, o) in enumerate(zip(fitting.walks, outcomes, strict=True)):
            if k:
                _emit("")
            _emit(format_fitting_walk(k, walk, o.recommendation, o.error))
    return EXIT_REJECTED if any(o.error is not None for o in outcomes) else EXIT_OK


def _health(client: AlignmentClient, args: argparse.Namespace) -> int:
    status = _call(client.health)
    _emit(json.dumps({"status": status}) if args.json else status)
    return EXIT_OK if status == "SERVING" else EXIT_REJECTED


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m service.client",
        description="Call the alignment service.",
        epilog="exit status: 0 all answered (health: SERVING), 1 some rejected (health: not SERVING), "
        "2 usage or connection error",
    )
    ap.add_argument("--address", default="127.0.0.1:50051")
    ap.add_argument("--token", default=None, help="bearer token")
    ap.add_argument("--ca", type=Path, default=None, help="CA certificate (enables TLS)")
    ap.add_argument("--cert", type=Path, default=None, help="client certificate (mTLS)")
    ap.add_argument("--key", type=Path, default=None, help="client key (mTLS)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    ap.add_argument("--json", action="store_true", help="print the raw answer as one JSON document")
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("recommend", help="recommend adjustments for assessment JSON files")
    rec.add_argument("files", nargs="+", type=Path)
    rec.add_argument("--model-version", default="")
    fit = sub.add_parser("fit", help="replay a recorded fitting, one RecommendAdjustments per walk")
    fit.add_argument("file", type=Path)
    fit.add_argument("--model-version", default="")
    sub.add_parser("model", help="what the served model accepts")
    sub.add_parser("health", help="health status (exit 0 only when SERVING)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        client = AlignmentClient.connect(
            args.address, token=args.token, ca_file=args.ca, cert_file=args.cert, key_file=args.key, timeout_s=args.timeout
        )
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with client:
            if args.command == "recommend":
                return _recommend(client, args)
            if args.command == "fit":
                return _fit(client, args)
            if args.command == "model":
                m = _call(client.get_model)
                _emit(json_format.MessageToJson(m) if args.json else format_model(m))
                return EXIT_OK
            return _health(client, args)
    except BrokenPipeError:
        # The reader (e.g. `head`) closed the pipe: stop quietly. Point stdout at /dev/null so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except ConnectionFailure as err:
        print(f"error: {err} (is the service running at {args.address}?)", file=sys.stderr)
        return EXIT_USAGE
    except InputFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except grpc.RpcError as err:
        print(format_item_error(args.command, item_error_from_rpc(err)), file=sys.stderr)
        return EXIT_REJECTED


if __name__ == "__main__":
    sys.exit(main())
