"""Python client for integrators, and `python -m service.client` for people.

    python -m service.client recommend examples/toe_out_transtibial.json
    python -m service.client model
    python -m service.client health

Files are protobuf JSON of a GaitAssessment (or a RecommendAdjustmentsRequest). Options:
--address, --token (bearer), --ca/--cert/--key (TLS, mTLS), --timeout, --json (raw output).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
from service._generated.prosthetic_alignment.v1 import alignment_service_pb2_grpc as spb_grpc


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
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # Without this grpcio shares one connection among all channels to the same address, so
            # several clients (or channels) would still land on one server worker: SO_REUSEPORT
            # spreads connections, not calls.
            ("grpc.use_local_subchannel_pool", 1),
        ]
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


def load_assessment(path: Path) -> pb.GaitAssessment:
    """Read protobuf JSON of a GaitAssessment or of a RecommendAdjustmentsRequest."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if "assessment" in raw:
        raw = raw["assessment"]
    return json_format.ParseDict(raw, pb.GaitAssessment())


# -- human-readable output ------------------------------------------------------------------------
def _name(enum: object, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix)  # type: ignore[attr-defined]


def format_recommendation(r: pb.Recommendation) -> str:
    lines = [
        f"assessment {r.assessment_id or '(no id)'}  model {r.model.name} {r.model.version} ({r.model.sha256[:12]})",
        f"overall confidence {r.overall_confidence:.2f} ({_name(pb.ConfidenceLevel, r.confidence_level, 'CONFIDENCE_LEVEL_')})",
    ]
    if r.no_change_needed:
        lines.append("NO CHANGE NEEDED: alignment is within the acceptable band for the measured features.")
    else:
        lines.append("")
        lines.append(f"{'#':>2}  {'parameter':<20} {'change':>9}  {'conf':>5}  {'80% interval':>15}  direction")
        for a in r.adjustments:
            change = a.change_deg if a.WhichOneof("change") == "change_deg" else a.change_mm
            interval = f"[{a.interval_lower:+.1f}, {a.interval_upper:+.1f}]"
            clamp = " (clamped to safe step)" if a.clamped_to_safe_step else ""
            lines.append(
                f"{a.rank:>2}  {_name(pb.AdjustmentParameter, a.parameter, 'ADJUSTMENT_PARAMETER_'):<20} "
                f"{change:>+6.1f} {a.unit:<3} {a.confidence:>5.2f}  {interval:>15}  {a.direction}{clamp}"
            )
            if a.supporting_deviations:
                lines.append(f"    because: {', '.join(a.supporting_deviations)}")
            if a.driving_features:
                lines.append(f"    driven by: {', '.join(a.driving_features)}")
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
    if r.suggested_measurements:
        lines.append("")
        lines.append("to be more certain, measure:")
        lines.extend(
            f"  - {s.feature} ({_name(pb.SensorKind, s.sensor_kind, 'SENSOR_KIND_')}): {s.reason}" for s in r.suggested_measurements
        )
    if r.warnings:
        lines.append("")
        lines.extend(f"warning: {w}" for w in r.warnings)
    return "\n".join(lines)


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
    lines.append(f"{'feature':<48} {'unit':<9} {'valid range':>18}  accepted units")
    for f in m.features:
        lines.append(f"{f.name:<48} {f.unit:<9} {f.min_value:>8g} .. {f.max_value:<7g}  {', '.join(f.accepted_units)}")
    lines.append("")
    lines.append(f"{'parameter':<22} {'unit':<5} {'min':>5} {'step':>5}  + means")
    for p in m.parameters:
        lines.append(
            f"{_name(pb.AdjustmentParameter, p.parameter, 'ADJUSTMENT_PARAMETER_'):<22} {p.unit:<5} {p.min_change:>5g} {p.max_step:>5g}  {p.plus_means}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m service.client", description="Call the alignment service.")
    ap.add_argument("--address", default="127.0.0.1:50051")
    ap.add_argument("--token", default=None, help="bearer token")
    ap.add_argument("--ca", type=Path, default=None, help="CA certificate (enables TLS)")
    ap.add_argument("--cert", type=Path, default=None, help="client certificate (mTLS)")
    ap.add_argument("--key", type=Path, default=None, help="client key (mTLS)")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--json", action="store_true", help="print the raw response as JSON")
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("recommend", help="recommend adjustments for assessment JSON files")
    rec.add_argument("files", nargs="+", type=Path)
    rec.add_argument("--model-version", default="")
    sub.add_parser("model", help="what the served model accepts")
    sub.add_parser("health", help="health status")
    args = ap.parse_args(argv)
    client = AlignmentClient.connect(
        args.address, token=args.token, ca_file=args.ca, cert_file=args.cert, key_file=args.key, timeout_s=args.timeout
    )
    with client:
        try:
            if args.command == "recommend":
                for i, path in enumerate(args.files):
                    r = client.recommend(load_assessment(path), model_version=args.model_version)
                    if i:
                        print()
                    print(json_format.MessageToJson(r) if args.json else format_recommendation(r))
            elif args.command == "model":
                m = client.get_model()
                print(json_format.MessageToJson(m) if args.json else format_model(m))
            else:
                print(client.health())
        except grpc.RpcError as err:
            print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
            for v in field_violations(err):
                print(f"  {v.field}: {v.description} [{v.reason}]", file=sys.stderr)
            return 1
        except (OSError, ValueError, json_format.ParseError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
