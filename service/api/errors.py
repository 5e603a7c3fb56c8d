"""Domain errors -> gRPC status, in one place (AIP-193).

INVALID_ARGUMENT carries google.rpc.BadRequest (one FieldViolation per problem: field path,
description with feature, value, unit and allowed range, and a reason) plus google.rpc.ErrorInfo.
Anything unexpected becomes INTERNAL with a generic message; the trace goes to the log only.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Sequence
from typing import NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service.errors import (
    AlignmentError,
    DependencyMissingError,
    InvalidInputError,
    LimitExceededError,
    ModelArtifactError,
    ModelNotFoundError,
    ModelNotReadyError,
    PermissionDeniedError,
    RecordConflictError,
    RecordingDisabledError,
    StoreUnavailableError,
    UnauthenticatedError,
    Violation,
)

log = logging.getLogger("service.api")
ERROR_DOMAIN = "prosthetic-alignment.v1"

_CODES: tuple[tuple[type[AlignmentError], grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    (ModelNotReadyError, grpc.StatusCode.UNAVAILABLE),
    (LimitExceededError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DependencyMissingError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (ModelArtifactError, grpc.StatusCode.FAILED_PRECONDITION),
    (RecordConflictError, grpc.StatusCode.ALREADY_EXISTS),
    (RecordingDisabledError, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreUnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def code_for(exc: BaseException) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def _pack(msg: object) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(msg)  # type: ignore[arg-type]
    return a


# What one error may put on the wire. grpcio, grpc-js and grpcurl refuse response metadata over
# 8-16 KiB by default (the client then sees RESOURCE_EXHAUSTED and no details at all), and the
# status details travel base64-encoded (x4/3) in the trailers next to grpc-message. So the details
# echo the first violations that fit DETAILS_BUDGET_BYTES, each string clipped, and say how many
# were left out; a batch or stream item's own error gets the smaller ITEM_BUDGET_BYTES, so 1000 bad
# items still fit one answer.
MAX_MESSAGE_CHARS = 300
MAX_FIELD_CHARS = 160
MAX_DESCRIPTION_CHARS = 320
MAX_METADATA_CHARS = 160
DETAILS_BUDGET_BYTES = 3072
ITEM_BUDGET_BYTES = 1024


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis when cut (echoed client strings)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _bounded_violations(
    violations: Sequence[Violation],
    target: error_details_pb2.BadRequest | pb.ItemError,
    budget_bytes: int,
    field_prefix: str = "",
) -> int:
    """Add the first violations that fit `budget_bytes` to `target` (clipped); return how many.

    `field_prefix` places a batch item's paths ("assessments[3].features[0].name"); applied here, to
    the few violations shown, rather than by copying every violation of a bad item."""
    size = 0
    shown = 0
    for v in violations:
        path = field_prefix + v.field.removeprefix("assessment.") if field_prefix else v.field
        fv = target.field_violations.add(
            field=clip(path, MAX_FIELD_CHARS), description=clip(v.description, MAX_DESCRIPTION_CHARS), reason=v.reason
        )
        size += fv.ByteSize() + 3  # + tag and length
        if size > budget_bytes and shown > 0:
            del target.field_violations[-1]
            break
        shown += 1
    return shown


def _not_shown(total: int, shown: int) -> str:
    return "" if shown >= total else f" ({total - shown} more violations not shown; the first {shown} are)"


def to_status(exc: BaseException) -> status_pb2.Status:
    code = code_for(exc)
    if code is grpc.StatusCode.INTERNAL or not isinstance(exc, AlignmentError):
        incident = uuid.uuid4().hex[:12]
        log.error("internal error", exc_info=exc, extra={"incident": incident})
        info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN, metadata={"incident": incident})
        return status_pb2.Status(
            code=code_pb2.INTERNAL, message=f"internal error (incident {incident})", details=[_pack(info)]
        )
    details: list[any_pb2.Any] = []
    metadata: dict[str, str] = {}
    message = clip(exc.message, MAX_MESSAGE_CHARS)
    if isinstance(exc, InvalidInputError):
        br = error_details_pb2.BadRequest()
        total = len(exc.violations)
        shown = _bounded_violations(exc.violations, br, DETAILS_BUDGET_BYTES)
        details.append(_pack(br))
        first = exc.violations[0]
        metadata = {"violations": str(total), "violations_shown": str(shown)}
        if first.feature:
            metadata["feature"] = clip(first.feature, MAX_METADATA_CHARS)
        if first.unit:
            metadata["unit"] = clip(first.unit, MAX_METADATA_CHARS)
        if first.allowed_min is not None and first.allowed_max is not None:
            metadata["allowed_range"] = f"{first.allowed_min:g}..{first.allowed_max:g}"
        message = clip(exc.message, MAX_MESSAGE_CHARS - 80) + _not_shown(total, shown)
    if isinstance(exc, StoreUnavailableError):
        # AIP-194: tell the client when a retry makes sense (recording is idempotent per fitting_id).
        delay = duration_pb2.Duration()
        delay.FromTimedelta(datetime.timedelta(seconds=exc.retry_after_s))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    details.insert(0, _pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=ERROR_DOMAIN, metadata=metadata)))
    return status_pb2.Status(code=code.value[0], message=message, details=details)


def abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    context.abort_with_status(rpc_status.to_status(to_status(exc)))
    raise AssertionError("unreachable")  # abort_with_status raises


def item_error(exc: BaseException, field_prefix: str = "") -> pb.ItemError:
    """A batch or stream item's error; `field_prefix` (e.g. "assessments[3].") replaces the
    leading "assessment." of each violation's path."""
    st = to_status(exc)
    code = grpc.StatusCode.INTERNAL
    for c in grpc.StatusCode:
        if c.value[0] == st.code:
            code = c
            break
    err = pb.ItemError(code=code.name, message=st.message)
    if isinstance(exc, AlignmentError):
        err.reason = exc.reason
    else:
        err.reason = "INTERNAL"
    if isinstance(exc, InvalidInputError):
        total = len(exc.violations)
        shown = _bounded_violations(exc.violations, err, ITEM_BUDGET_BYTES, field_prefix)
        err.message = clip(exc.message, MAX_MESSAGE_CHARS - 80) + _not_shown(total, shown)
    return err
