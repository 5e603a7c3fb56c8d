"""Errors raised for recordings that cannot be turned into features.

Plain ``Exception`` subclasses on purpose: the service layer maps them into its own error tree
(INVALID_ARGUMENT with a field violation). Every error carries ``field`` (which input was bad, e.g. a
channel name or ``"sampling_rate_hz"``) and ``reason`` (a plain sentence for a clinician or integrator).
"""

from __future__ import annotations


class RecordingError(Exception):
    """Base class: the recording given to an extractor cannot be used."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class RecordingTooShortError(RecordingError):
    """Fewer samples than the extractor needs (e.g. shorter than two strides)."""


class NoCompleteStrideError(RecordingError):
    """No stride (or stance) with both its start and end events inside the recording."""


class InconsistentSamplingRateError(RecordingError):
    """Sampling rate missing, non-positive, or channel lengths that cannot share one rate."""


class UnknownChannelError(RecordingError):
    """A channel name the extractor does not understand (typo guard: we never silently ignore data)."""


class MissingChannelError(RecordingError):
    """A channel the extractor needs is absent."""


class SideMissingError(RecordingError):
    """The prosthetic side is missing or not LEFT/RIGHT, or one side's data is absent."""


class InvalidValueError(RecordingError):
    """Values that are not finite, wrong shape, or physically impossible (e.g. body mass <= 0)."""


class MissingDependencyError(RecordingError):
    """An optional dependency (ezc3d, scipy) is not installed."""

    def __init__(self, package: str, feature: str) -> None:
        super().__init__(package, f"{feature} needs the optional package {package!r}: install .[sensors]")
        self.package = package


__all__ = [
    "InconsistentSamplingRateError",
    "InvalidValueError",
    "MissingChannelError",
    "MissingDependencyError",
    "NoCompleteStrideError",
    "RecordingError",
    "RecordingTooShortError",
    "SideMissingError",
    "UnknownChannelError",
]
