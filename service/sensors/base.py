"""Shared types and helpers for every sensor extractor.

Every extractor is a pure function of arrays + sampling rate + side labels and returns an
``ExtractionResult``. Channels are named left/right as recorded; the extractor maps them onto
prosthetic/sound with ``prosthetic_side`` so a recording never needs relabelling (and swapping the side
flips the sign of every asymmetry, which the tests check).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service.catalog import FEATURE_NAMES, SensorKind, Side
from service.sensors.errors import (
    InconsistentSamplingRateError,
    InvalidValueError,
    MissingChannelError,
    SideMissingError,
    UnknownChannelError,
)

FloatArray = npt.NDArray[np.float64]

G_M_PER_S2 = 9.80665


# One definition of sides, sensor kinds and feature names: the catalog's (the contract).
_FEATURE_SET = frozenset(FEATURE_NAMES)


class Precision(enum.StrEnum):
    """Coarse quality flag per feature, so the model can trust some sources less (DESIGN 6)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class FeatureProvenance:
    """Where one feature value came from."""

    method: str
    n_values: int
    precision: Precision
    # Sensor kind that produced the value (differs from the result's kind only in merged results,
    # e.g. C3D files where GRF peaks come from force plates and step length from markers).
    source: str = ""


@dataclass(frozen=True, slots=True)
class GapDrop:
    """A stride left out because samples of ``channel`` inside it (or next to it) were not measured:
    a gap too long to fill on that channel's timeline (``service.sensors.timeline``)."""

    side: Side
    start_sample: int
    end_sample: int
    channel: str


@dataclass(frozen=True)
class ExtractionResult:
    """Features from one recording plus how much of the recording could be used."""

    features: dict[str, float]
    sensor_kind: str
    strides_used: int
    strides_dropped: int
    warnings: tuple[str, ...] = ()
    provenance: dict[str, FeatureProvenance] = field(default_factory=dict)
    # Strides dropped because of a gap (also counted in strides_dropped), in time order per side.
    gap_drops: tuple[GapDrop, ...] = ()


class FeatureCollector:
    """Accumulates features, provenance and warnings; drops non-finite values with a warning."""

    def __init__(self, sensor_kind: SensorKind) -> None:
        self.sensor_kind = sensor_kind
        self.features: dict[str, float] = {}
        self.provenance: dict[str, FeatureProvenance] = {}
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def add(
        self,
        name: str,
        value: float | np.floating | None,
        method: str,
        n_values: int = 1,
        precision: Precision = Precision.MEDIUM,
    ) -> None:
        if name not in _FEATURE_SET:
            # Programming error, not a bad recording: the catalog names are fixed.
            raise KeyError(f"{name!r} is not a catalog v1 feature")
        if value is None or not math.isfinite(float(value)) or n_values <= 0:
            self.warn(f"{name}: could not be computed ({method})")
            return
        self.features[name] = float(value)
        self.provenance[name] = FeatureProvenance(method, int(n_values), precision, self.sensor_kind.value)

    def add_asymmetry(self, name: str, prosthetic: str, sound: str, precision: Precision) -> None:
        """Derived asymmetry, only when both sides were measured."""
        if prosthetic in self.features and sound in self.features:
            n = min(self.provenance[prosthetic].n_values, self.provenance[sound].n_values)
            self.add(
                name,
                asymmetry_pct(self.features[prosthetic], self.features[sound]),
                f"100*(p-s)/mean of {prosthetic}, {sound}",
                n,
                precision,
            )

    def result(self, strides_used: int, strides_dropped: int, gap_drops: Iterable[GapDrop] = ()) -> ExtractionResult:
        return ExtractionResult(
            features=dict(self.features),
            sensor_kind=self.sensor_kind.value,
            strides_used=int(strides_used),
            strides_dropped=int(strides_dropped),
            warnings=tuple(self.warnings),
            provenance=dict(self.provenance),
            gap_drops=tuple(gap_drops),
        )


def merge_results(primary: ExtractionResult, secondary: ExtractionResult, prefer_secondary: Iterable[str] = ()) -> ExtractionResult:
    """One result from two sensor kinds recorded together. ``primary`` wins unless a feature is in
    ``prefer_secondary``; per-feature provenance keeps each value's true source."""
    pref = set(prefer_secondary)
    feats = dict(primary.features)
    prov = dict(primary.provenance)
    for name, value in secondary.features.items():
        if name not in feats or name in pref:
            feats[name] = value
            if name in secondary.provenance:
                prov[name] = secondary.provenance[name]
    return ExtractionResult(
        features=feats,
        sensor_kind=primary.sensor_kind,
        strides_used=primary.strides_used,
        strides_dropped=primary.strides_dropped,
        warnings=primary.warnings + tuple(w for w in secondary.warnings if w not in primary.warnings),
        provenance=prov,
        gap_drops=primary.gap_drops + secondary.gap_drops,
    )


def asymmetry_pct(prosthetic: float, sound: float) -> float:
    """DESIGN 3.2: 100 * (prosthetic - sound) / mean(prosthetic, sound); NaN if the mean is ~0."""
    mean = 0.5 * (prosthetic + sound)
    if abs(mean) < 1e-12:
        return math.nan
    return 100.0 * (prosthetic - sound) / mean


def coerce_side(side: object, field_name: str = "prosthetic_side") -> Side:
    """Accept Side, service.catalog.Side or a string ("left", "RIGHT") — nothing else."""
    if side is None:
        raise SideMissingError(field_name, "the prosthetic side is required (LEFT or RIGHT)")
    text = str(getattr(side, "value", side)).strip().upper()
    if text in ("LEFT", "L"):
        return Side.LEFT
    if text in ("RIGHT", "R"):
        return Side.RIGHT
    raise SideMissingError(field_name, f"must be LEFT or RIGHT, got {side!r}")


def check_rate(sampling_rate_hz: float, field_name: str = "sampling_rate_hz") -> float:
    rate = float(sampling_rate_hz)
    if not math.isfinite(rate) or rate <= 0.0:
        raise InconsistentSamplingRateError(field_name, f"must be a positive number of Hz, got {sampling_rate_hz!r}")
    return rate


def check_body_mass(body_mass_kg: float | None, required: bool = True) -> float | None:
    if body_mass_kg is None:
        if required:
            raise InvalidValueError("body_mass_kg", "body mass is required to normalise forces and moments")
        return None
    mass = float(body_mass_kg)
    if not math.isfinite(mass) or not 20.0 <= mass <= 250.0:
        raise InvalidValueError("body_mass_kg", f"must be within 20-250 kg, got {body_mass_kg!r}")
    return mass


def as_signal(name: str, values: object, ncols: int | None = None) -> FloatArray:
    """Convert a channel to float64: 1-D (ncols None) or N x ncols. Non-finite samples are rejected
    unless they are NaN gaps, which marker data legitimately has (callers decide)."""
    arr = np.asarray(values, dtype=np.float64)
    if ncols is None:
        if arr.ndim != 1:
            raise InvalidValueError(name, f"expected a 1-D array, got shape {arr.shape}")
    elif arr.ndim != 2 or arr.shape[1] != ncols:
        raise InvalidValueError(name, f"expected an N x {ncols} array, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise InvalidValueError(name, "contains infinite values")
    return arr


def check_channels(
    channels: Mapping[str, object],
    known: Iterable[str],
    required: Iterable[str] = (),
) -> None:
    """Reject unknown channel names (typos must not silently drop data) and missing required ones."""
    known_set = set(known)
    for name in channels:
        if name not in known_set:
            raise UnknownChannelError(name, f"unknown channel; expected some of {sorted(known_set)}")
    for name in required:
        if name not in channels:
            raise MissingChannelError(name, "required channel is missing")


def check_same_length(signals: Mapping[str, FloatArray]) -> int:
    """All channels of one recording share one sampling rate, hence one length."""
    lengths = {name: len(arr) for name, arr in signals.items()}
    if len(set(lengths.values())) > 1:
        raise InconsistentSamplingRateError(
            "channels", f"channels sampled at one rate must have equal lengths, got {lengths}"
        )
    return next(iter(lengths.values()), 0)


def smooth(signal: FloatArray, window_samples: int) -> FloatArray:
    """Zero-phase moving average (applied forward twice = triangular kernel); pure numpy so the
    sensors package needs no scipy at import time. Edges use shrinking windows, not zero padding."""
    w = int(window_samples)
    if w <= 1 or len(signal) < 3:
        return signal.astype(np.float64, copy=True)
    w = min(w, len(signal))
    kernel = np.ones(w) / w
    out = signal.astype(np.float64)
    norm = np.convolve(np.ones(len(out)), kernel, mode="same")
    for _ in range(2):
        out = np.convolve(out, kernel, mode="same") / norm
    return out


def contact_intervals(
    force: FloatArray,
    on_threshold: float,
    off_threshold: float | None = None,
    min_samples: int = 1,
) -> tuple[list[tuple[int, int]], int]:
    """Stance intervals [on, off) where ``force`` is above threshold (with hysteresis).

    Returns (complete intervals, number dropped). Intervals touching the first or last sample are
    incomplete (the contact started before or ended after the recording) and are dropped; so are
    intervals shorter than ``min_samples`` (spikes).
    """
    off = on_threshold if off_threshold is None else off_threshold
    finite = np.where(np.isfinite(force), force, 0.0)
    loaded = np.zeros(len(finite), dtype=bool)
    state = False
    for i, v in enumerate(finite):
        # Hysteresis so noise around the threshold does not split one stance into many.
        state = v > off if state else v > on_threshold
        loaded[i] = state
    edges = np.diff(loaded.astype(np.int8))
    starts = [int(i) for i in np.flatnonzero(edges == 1) + 1]
    ends = [int(i) for i in np.flatnonzero(edges == -1) + 1]
    dropped = 0
    if loaded[0]:
        starts.insert(0, 0)
    if loaded[-1]:
        ends.append(len(finite))
    out: list[tuple[int, int]] = []
    for s, e in zip(starts, ends, strict=False):
        if s == 0 or e >= len(finite) or e - s < min_samples:
            dropped += 1
            continue
        out.append((int(s), int(e)))
    return out, dropped


def local_maxima(signal: FloatArray) -> npt.NDArray[np.intp]:
    """Indices of strict-ish local maxima (plateaus give their first sample)."""
    if len(signal) < 3:
        return np.zeros(0, dtype=np.intp)
    d = np.diff(signal)
    return np.flatnonzero((np.hstack(([0.0], d)) > 0) & (np.hstack((d, [0.0])) <= 0))


def two_peaks(curve: FloatArray) -> tuple[float, float, float]:
    """First (loading) peak, valley, second (push-off) peak of a stance force curve.

    The loading peak is the maximum in the first half of stance, push-off the maximum in the second
    half, the valley the minimum between them: robust to a flat-topped or single-humped curve, where
    it degrades to max/max instead of failing.
    """
    n = len(curve)
    if n < 4:
        m = float(np.max(curve))
        return m, m, m
    half = n // 2
    i1 = int(np.argmax(curve[:half]))
    i2 = half + int(np.argmax(curve[half:]))
    valley = float(np.min(curve[i1 : i2 + 1]))
    return float(curve[i1]), valley, float(curve[i2])


def median_or_nan(values: Iterable[float]) -> float:
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    return float(np.median(arr)) if arr.size else math.nan


__all__ = [
    "FEATURE_NAMES",
    "G_M_PER_S2",
    "ExtractionResult",
    "FeatureCollector",
    "FeatureProvenance",
    "FloatArray",
    "GapDrop",
    "Precision",
    "SensorKind",
    "Side",
    "as_signal",
    "asymmetry_pct",
    "check_body_mass",
    "check_channels",
    "check_rate",
    "check_same_length",
    "coerce_side",
    "contact_intervals",
    "local_maxima",
    "median_or_nan",
    "merge_results",
    "smooth",
    "two_peaks",
]
