"""The one domain error tree. The gRPC edge maps it to status codes in one place (api/errors.py).

    AlignmentError                      base; never raised itself
    ├── InvalidInputError               INVALID_ARGUMENT: bad request content, with field violations
    │   └── InvalidRecordError          ... in a fitting record (RecordFitting)
    ├── ModelNotFoundError              NOT_FOUND: a pinned model version that is not loaded
    ├── ModelNotReadyError              UNAVAILABLE: no model loaded yet, or draining
    ├── ModelArtifactError              refused artifact (bad hash, manifest, golden outputs); internal
    ├── LimitExceededError              RESOURCE_EXHAUSTED: too many features, batch too large, overload
    ├── DependencyMissingError          FAILED_PRECONDITION: an optional extra is not installed
    ├── UnauthenticatedError            UNAUTHENTICATED: no or unknown credentials
    ├── PermissionDeniedError           PERMISSION_DENIED: credentials without the needed right
    ├── RecordConflictError             ALREADY_EXISTS: a fitting_id already stored with other content
    ├── RecordingDisabledError          FAILED_PRECONDITION: RecordFitting while recording is off
    └── StoreUnavailableError           UNAVAILABLE (with a retry delay): the record store did not commit

No grpc import here: the core raises domain errors, the edge translates them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """One invalid field. `field` is a request path, e.g. `assessment.features[3].value`."""

    field: str
    description: str
    reason: str
    feature: str = ""
    value: float | None = None
    unit: str = ""
    allowed_min: float | None = None
    allowed_max: float | None = None


class AlignmentError(Exception):
    """Base of every error the service raises on purpose."""

    reason: str = "ALIGNMENT_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidInputError(AlignmentError):
    reason = "INVALID_ASSESSMENT"

    def __init__(self, violations: list[Violation], message: str | None = None) -> None:
        if not violations:
            raise ValueError("InvalidInputError needs at least one violation")
        text = message or "; ".join(v.description for v in violations[:5])
        if len(violations) > 5 and message is None:
            text += f"; and {len(violations) - 5} more"
        super().__init__(text)
        self.violations = tuple(violations)


class ModelNotFoundError(AlignmentError):
    reason = "MODEL_VERSION_NOT_FOUND"


class ModelNotReadyError(AlignmentError):
    reason = "MODEL_NOT_READY"


class ModelArtifactError(AlignmentError):
    reason = "MODEL_ARTIFACT_INVALID"


class LimitExceededError(AlignmentError):
    reason = "LIMIT_EXCEEDED"


class DependencyMissingError(AlignmentError):
    reason = "DEPENDENCY_MISSING"


class UnauthenticatedError(AlignmentError):
    reason = "UNAUTHENTICATED"


class PermissionDeniedError(AlignmentError):
    reason = "PERMISSION_DENIED"


class InvalidRecordError(InvalidInputError):
    reason = "INVALID_FITTING_RECORD"


class RecordConflictError(AlignmentError):
    reason = "FITTING_ID_CONFLICT"


class RecordingDisabledError(AlignmentError):
    reason = "RECORDING_DISABLED"


class StoreUnavailableError(AlignmentError):
    """The write was not committed (store down, locked, timed out). Safe to retry with the same
    fitting_id: recording is idempotent."""

    reason = "RECORD_STORE_UNAVAILABLE"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
