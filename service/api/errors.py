"""Domain errors -> gRPC status, in one place (AIP-193).

INVALID_ARGUMENT carries google.rpc.BadRequest (one FieldViolation per problem: field path,
description with feature, value, unit and allowed range, and a reason) plus google.rpc.ErrorInfo.
Anything unexpected becomes INTERNAL with a generic message; the trace goes to the log only.
"""

from __future__ import annotations

import datetime
import logging
import uuid
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
    if isinstance(exc, InvalidInputError):
        br = error_details_pb2.BadRequest()
        for v in exc.violations:
            br.field_violations.add(field=v.field, description=v.description, reason=v.reason)
        details.append(_pack(br))
        first = exc.violations[0]
        metadata = {"violations": str(len(exc.violations))}
        if first.feature:
            metadata["feature"] = first.feature
        if first.unit:
            metadata["unit"] = first.unit
        if first.allowed_min is not None and first.allowed_max is not None:
            metadata["allowed_range"] = f"{first.allowed_min:g}..{first.allowed_max:g}"
    if isinstance(exc, StoreUnavailableError):
        # AIP-194: tell the client when a retry makes sense (recording is idempotent per fitting_id).
        delay = duration_pb2.Duration()
        delay.FromTimedelta(datetime.timedelta(seconds=exc.retry_after_s))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    details.insert(0, _pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=ERROR_DOMAIN, metadata=metadata)))
    return status_pb2.Status(code=code.value[0], message=exc.message, details=details)


def abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    context.abort_with_status(rpc_status.to_status(to_status(exc)))
    raise AssertionError("unreachable")  # abort_with_status raises


def item_error(exc: BaseException) -> pb.ItemError:
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
        for v in exc.violations:
            err.field_violations.add(field=v.field, description=v.description, reason=v.reason)
    return err
