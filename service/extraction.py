"""Raw recordings -> merged catalog features with one report per recording (DESIGN section 5).

The core of ``ExtractFeatures`` / ``RecommendFromRecordings``, free of grpc and protobuf so it can be
used from Python directly and tested without a server:

1. ``RecordingInput`` is the domain form of a proto ``Recording``: flat channel values plus their
   number of components and unit, exactly as they arrive on the wire.
2. ``extract_features`` validates every recording structurally (rate, shapes, units, options, size
   limits, which inputs a sensor kind takes), converts channel units to what the extractor expects,
   calls the extractor of ``service.sensors`` for that sensor kind with the prosthetic side and body
   mass, and maps its ``RecordingError`` into ``InvalidInputError`` field violations. It collects the
   violations of every recording before raising, so a clinic tool sees all its mistakes at once.
3. Per-recording results are merged: for each feature the most precise source wins (high > medium >
   low); on a tie kinetic sensors win for kinetic features, then more strides, then the earlier
   recording. A prosthetic/sound pair and its asymmetry are taken from one recording so that the
   asymmetry is consistent with the two sides it is computed from.

Channels may name a channel group (one sensor) with its own timeline, a packet counter or sample
times; such recordings are aligned first (``service.sensors.timeline``): short gaps are filled,
samples in longer ones are left out (IMU: the strides they touch are dropped and reported;
motion capture and video: they become NaN gaps; force sensors: INVALID_ARGUMENT ``GAP_TOO_LONG``).

Extracted values are already in catalog (canonical) units. Values outside the catalog's valid range
are extraction artefacts (wrong mounting, a turn, a bad threshold) and are dropped with a warning in
their report rather than failing the whole request later in validation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from service.catalog import BODY_MASS_KG_RANGE, FEATURES_BY_NAME, FeatureGroup, SensorKind, Side
from service.errors import DependencyMissingError, InvalidInputError, Violation
from service.sensors import errors as serr
from service.sensors import extract_c3d
from service.sensors.base import G_M_PER_S2, ExtractionResult, FeatureProvenance, Precision
from service.sensors.force_plate import KNOWN_CHANNELS as FORCE_PLATE_CHANNELS
from service.sensors.force_plate import extract_force_plate
from service.sensors.imu import KNOWN_CHANNELS as IMU_CHANNELS
from service.sensors.imu import extract_imu
from service.sensors.insole import KNOWN_CHANNELS as INSOLE_CHANNELS
from service.sensors.insole import extract_insole
from service.sensors.mocap import KNOWN_MARKERS as MOCAP_MARKERS
from service.sensors.mocap import extract_mocap
from service.sensors.observation import ITEMS as OBSERVATION_ITEMS
from service.sensors.observation import extract_observation
from service.sensors.pylon import KNOWN_CHANNELS as PYLON_CHANNELS
from service.sensors.pylon import extract_pylon
from service.sensors.timeline import (
    DEFAULT_MAX_FILL_S,
    AlignedChannels,
    GroupData,
    GroupSummary,
    TimelineError,
    align_groups,
)
from service.sensors.video_pose import LAYOUTS as VIDEO_LAYOUTS
from service.sensors.video_pose import extract_video_pose

FloatArray = npt.NDArray[np.float64]

# ------------------------------------------------------------------------------------- constants
# Violation reasons (AIP-193 style, documented in docs/recordings.md).
RECORDING_TOO_SHORT = "RECORDING_TOO_SHORT"
NO_COMPLETE_STRIDE = "NO_COMPLETE_STRIDE"
INCONSISTENT_SAMPLING_RATE = "INCONSISTENT_SAMPLING_RATE"
INVALID_SAMPLING_RATE = "INVALID_SAMPLING_RATE"
UNKNOWN_CHANNEL = "UNKNOWN_CHANNEL"
MISSING_CHANNEL = "MISSING_CHANNEL"
DUPLICATE_CHANNEL = "DUPLICATE_CHANNEL"
SIDE_MISSING = "SIDE_MISSING"
INVALID_VALUE = "INVALID_VALUE"
UNKNOWN_UNIT = "UNKNOWN_UNIT"
UNKNOWN_OPTION = "UNKNOWN_OPTION"
SENSOR_KIND_MISSING = "SENSOR_KIND_MISSING"
C3D_NOT_ACCEPTED = "C3D_NOT_ACCEPTED"
OBSERVATIONS_MISSING = "OBSERVATIONS_MISSING"
RECORDINGS_MISSING = "RECORDINGS_MISSING"
RECORDINGS_TOO_LARGE = "RECORDINGS_TOO_LARGE"
PATIENT_CONTEXT_MISSING = "PATIENT_CONTEXT_MISSING"
PATIENT_CONTEXT_OUT_OF_RANGE = "PATIENT_CONTEXT_OUT_OF_RANGE"
UNKNOWN_CHANNEL_GROUP = "UNKNOWN_CHANNEL_GROUP"
INVALID_TIMELINE = "INVALID_TIMELINE"
GAP_TOO_LONG = "GAP_TOO_LONG"

_REASON_BY_ERROR: tuple[tuple[type[serr.RecordingError], str], ...] = (
    (serr.RecordingTooShortError, RECORDING_TOO_SHORT),
    (serr.NoCompleteStrideError, NO_COMPLETE_STRIDE),
    (serr.InconsistentSamplingRateError, INCONSISTENT_SAMPLING_RATE),
    (serr.UnknownChannelError, UNKNOWN_CHANNEL),
    (serr.MissingChannelError, MISSING_CHANNEL),
    (serr.SideMissingError, SIDE_MISSING),
    (serr.InvalidValueError, INVALID_VALUE),
)

_PRECISION_RANK = {Precision.HIGH: 3, Precision.MEDIUM: 2, Precision.LOW: 1}
# Sensors that measure force directly; preferred for force/moment features on a precision tie.
KINETIC_SENSORS = frozenset({SensorKind.FORCE_PLATE, SensorKind.INSTRUMENTED_PYLON, SensorKind.PRESSURE_INSOLE})
_KINETIC_GROUPS = frozenset({FeatureGroup.KINETIC, FeatureGroup.SOCKET_KINETIC})
# (prosthetic, sound, asymmetry): taken together from one recording (see module docstring).
PAIRED_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("stance_time_prosthetic_s", "stance_time_sound_s", "stance_time_asymmetry_pct"),
    ("step_length_prosthetic_m", "step_length_sound_m", "step_length_asymmetry_pct"),
)

# Channel units accepted per kind of quantity: symbol (lower-case) -> factor to the extractor's unit.
_ACC_UNITS = {"m/s^2": 1.0, "m/s2": 1.0, "m/s²": 1.0, "g": G_M_PER_S2}
_GYRO_UNITS = {"deg/s": 1.0, "dps": 1.0, "°/s": 1.0, "rad/s": 180.0 / math.pi}
_FORCE_UNITS = {"n": 1.0, "kn": 1000.0}
_MOMENT_UNITS = {"n*m": 1.0, "nm": 1.0, "n·m": 1.0, "n.m": 1.0, "kn*m": 1000.0}
_LENGTH_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
_PIXEL_UNITS = {"px": 1.0, "pixel": 1.0, "pixels": 1.0}

# Options each sensor kind understands: name -> allowed values (compared case-insensitively).
_BOOL_TEXT = ("true", "false")
OPTIONS: dict[SensorKind, dict[str, tuple[str, ...]]] = {
    # foot_yaw: is each foot sensor's forward axis along the foot (docs/recordings.md, "unknown yaw")?
    SensorKind.IMU: {"acc_unit": ("m/s^2", "g"), "gyro_unit": ("deg/s", "rad/s"), "foot_yaw": ("aligned", "unknown")},
    SensorKind.INSTRUMENTED_PYLON: {"compression_positive": _BOOL_TEXT},
    SensorKind.VIDEO_POSE: {
        "layout": tuple(VIDEO_LAYOUTS),
        "view": ("sagittal", "frontal"),
        "facing": ("toward_camera", "away_from_camera"),
    },
    SensorKind.PRESSURE_INSOLE: {},
    SensorKind.FORCE_PLATE: {},
    SensorKind.MOTION_CAPTURE: {},
    SensorKind.OBSERVATION: {},
}
# Channel names per kind (for documentation and early unknown-channel checks the extractors repeat).
CHANNELS: dict[SensorKind, tuple[str, ...]] = {
    SensorKind.IMU: IMU_CHANNELS,
    SensorKind.INSTRUMENTED_PYLON: PYLON_CHANNELS,
    SensorKind.PRESSURE_INSOLE: INSOLE_CHANNELS,
    SensorKind.FORCE_PLATE: FORCE_PLATE_CHANNELS,
    SensorKind.MOTION_CAPTURE: MOCAP_MARKERS,
    SensorKind.VIDEO_POSE: ("keypoints",),
    SensorKind.OBSERVATION: (),
}
C3D_KINDS = frozenset({SensorKind.MOTION_CAPTURE, SensorKind.FORCE_PLATE})
# Largest magnitude accepted for one raw sample in any accepted unit: forces in N (~1e4), moments
# in N*m (~1e3), mocap in mm (~1e4), pixels (~1e4), gyro in deg/s (~1e4) all stay far below it.
MAX_ABS_SAMPLE = 1e7
# Marker gaps and undetected keypoints are legitimately NaN; force and inertial signals never are.
_NAN_ALLOWED = frozenset({SensorKind.MOTION_CAPTURE, SensorKind.VIDEO_POSE})
# Kinds whose extractor can leave out samples of a gap too long to fill: the IMU drops the strides
# it touches; marker and keypoint extractors take NaN as a gap. Force sensors cannot (a stance with
# a hole has no trustworthy peak or duration), so their long gaps are rejected.
_LONG_GAPS_ALLOWED = frozenset({SensorKind.IMU, *_NAN_ALLOWED})
MAX_SAMPLING_RATE_HZ = 100_000.0


@dataclass(frozen=True, slots=True)
class ExtractionLimits:
    """Bounds on one request: extraction is CPU-heavy, so its size is capped before any work."""

    max_recordings: int = 32
    # Values (samples x components) over all channels of all recordings: 16 MB of float64.
    max_total_values: int = 2_000_000
    max_c3d_bytes: int = 64 * 1024 * 1024
    # Longest run of missing samples (lost packets) filled by linear interpolation (docs/recordings.md).
    max_gap_fill_s: float = DEFAULT_MAX_FILL_S


# ------------------------------------------------------------------------------------- domain types
@dataclass(frozen=True, slots=True)
class ChannelInput:
    """One named signal as sent: ``values`` flat, row-major samples x ``components``."""

    name: str
    values: FloatArray
    components: int = 1
    # Empty: the extractor's default unit (or the recording's acc_unit/gyro_unit option for IMUs).
    unit: str = ""
    # Name of the ChannelGroupInput whose timeline the samples are on; empty: the uniform timeline.
    group: str = ""


@dataclass(frozen=True, slots=True)
class ChannelGroupInput:
    """One sensor's timeline: a packet/sample counter (time = counter / rate) or sample times in s."""

    name: str
    sample_counter: npt.NDArray[np.int64] | None = None
    sample_times_s: FloatArray | None = None
    # The counter wraps to 0 after modulus - 1 (Xsens: 65536); 0: it never wraps.
    counter_modulus: int = 0


@dataclass(frozen=True, slots=True)
class RecordingInput:
    """A raw recording from one sensor kind (the domain form of the proto ``Recording``).

    ``sensor_kind`` None means "not specified" (a violation). ``c3d_bytes`` replaces ``channels`` for
    MOTION_CAPTURE / FORCE_PLATE C3D files; ``observations`` is the checklist of OBSERVATION.
    """

    sensor_kind: SensorKind | None
    sampling_rate_hz: float = 0.0
    channels: tuple[ChannelInput, ...] = ()
    c3d_bytes: bytes | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    observations: Mapping[str, str] = field(default_factory=dict)
    channel_groups: tuple[ChannelGroupInput, ...] = ()

    @classmethod
    def from_arrays(
        cls,
        sensor_kind: SensorKind,
        sampling_rate_hz: float,
        channels: Mapping[str, npt.ArrayLike],
        *,
        units: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        groups: Mapping[str, str] | None = None,
        channel_groups: Sequence[ChannelGroupInput] = (),
    ) -> RecordingInput:
        """Convenience for Python callers: 1-D arrays are one component, N x k arrays k components.
        ``groups`` maps a channel name to the name of its entry in ``channel_groups``."""
        out: list[ChannelInput] = []
        for name, values in channels.items():
            arr = np.asarray(values, dtype=np.float64)
            comps = 1 if arr.ndim <= 1 else int(np.prod(arr.shape[1:]))
            out.append(ChannelInput(name, arr.reshape(-1), comps, (units or {}).get(name, ""), (groups or {}).get(name, "")))
        return cls(
            sensor_kind, float(sampling_rate_hz), tuple(out), options=dict(options or {}), channel_groups=tuple(channel_groups)
        )


@dataclass(frozen=True, slots=True)
class ExtractedFeature:
    """One merged feature in its catalog unit, with the recording and provenance it came from."""

    name: str
    value: float
    unit: str
    # Sensor kind that produced this value (for a C3D file, FORCE_PLATE for GRF peaks and
    # MOTION_CAPTURE for marker features).
    source: SensorKind
    recording_index: int
    provenance: FeatureProvenance


@dataclass(frozen=True, slots=True)
class GapDroppedStride:
    """A stride not used because a gap too long to fill overlaps it (times on the recording's clock)."""

    side: Side
    start_s: float
    end_s: float
    group: str


@dataclass(frozen=True, slots=True)
class TimelineReport:
    """How the channel groups of a recording were aligned (only for recordings with groups)."""

    start_s: float
    end_s: float
    groups: tuple[GroupSummary, ...]
    strides_dropped_for_gaps: tuple[GapDroppedStride, ...]

    @property
    def samples_filled(self) -> int:
        return sum(g.samples_filled for g in self.groups)


@dataclass(frozen=True, slots=True)
class RecordingReport:
    """What one recording yielded: every feature it produced (used or superseded) and its quality."""

    index: int
    sensor_kind: SensorKind
    strides_used: int
    strides_dropped: int
    warnings: tuple[str, ...]
    # Feature name -> provenance, in catalog order.
    provenance: tuple[tuple[str, FeatureProvenance], ...]
    timeline: TimelineReport | None = None


@dataclass(frozen=True, slots=True)
class ExtractionOutcome:
    features: tuple[ExtractedFeature, ...]
    reports: tuple[RecordingReport, ...]

    @property
    def values(self) -> dict[str, float]:
        return {f.name: f.value for f in self.features}


# ------------------------------------------------------------------------------------- entry point
def extract_features(
    recordings: Sequence[RecordingInput],
    prosthetic_side: Side | None,
    body_mass_kg: float | None,
    *,
    limits: ExtractionLimits = ExtractionLimits(),
) -> ExtractionOutcome:
    """Validate, extract and merge. Raises ``InvalidInputError`` listing every problem found, or
    ``DependencyMissingError`` when a recording needs an optional extra (C3D -> ezc3d)."""
    violations: list[Violation] = []
    mass = _check_patient(recordings, prosthetic_side, body_mass_kg, violations)
    if not recordings:
        violations.append(Violation("recordings", "at least one recording is required", RECORDINGS_MISSING))
    if len(recordings) > limits.max_recordings:
        violations.append(
            Violation(
                "recordings",
                f"{len(recordings)} recordings sent; at most {limits.max_recordings} per request",
                RECORDINGS_TOO_LARGE,
            )
        )
        raise InvalidInputError(violations)
    total = sum(int(ch.values.size) for r in recordings for ch in r.channels) + sum(
        len(g.sample_counter if g.sample_counter is not None else ()) + len(g.sample_times_s if g.sample_times_s is not None else ())
        for r in recordings
        for g in r.channel_groups
    )
    if total > limits.max_total_values:
        violations.append(
            Violation(
                "recordings",
                f"{total} channel values sent in total; at most {limits.max_total_values} per request "
                "(split the walk into several requests or downsample)",
                RECORDINGS_TOO_LARGE,
            )
        )
        raise InvalidInputError(violations)  # no extraction work on an oversized request

    prepared: list[_Prepared | None] = [_prepare(i, r, limits, violations) for i, r in enumerate(recordings)]
    results: list[tuple[_Prepared, ExtractionResult]] = []
    # Without a side nothing can be mapped to prosthetic/sound; the patient violation says so once.
    if prosthetic_side is not None:
        for i, prep in enumerate(prepared):
            if prep is None or (prep.kind is SensorKind.INSTRUMENTED_PYLON and mass is None):
                continue  # a pylon without a valid body mass was already reported on patient.body_mass_kg
            try:
                results.append((prep, _run(prep, prosthetic_side, mass)))
            except serr.MissingDependencyError as exc:
                raise DependencyMissingError(f"recordings[{i}]: {exc.reason}") from None
            except serr.RecordingError as exc:
                violations.append(_violation_from(i, prep, exc))
            except ImportError as exc:
                # An extractor importing an optional package directly (scipy) without wrapping it.
                raise DependencyMissingError(
                    f"recordings[{i}] needs an optional package ({exc.name or exc}): install .[sensors]"
                ) from None
    if violations:
        raise InvalidInputError(violations)
    return _merge(results)


# ------------------------------------------------------------------------------------- validation
def _check_patient(
    recordings: Sequence[RecordingInput],
    side: Side | None,
    body_mass_kg: float | None,
    out: list[Violation],
) -> float | None:
    if side is None:
        out.append(
            Violation(
                "patient.prosthetic_side",
                "patient.prosthetic_side is required (SIDE_LEFT or SIDE_RIGHT) to map left/right channels "
                "to prosthetic/sound",
                SIDE_MISSING,
            )
        )
    lo, hi = BODY_MASS_KG_RANGE
    mass = body_mass_kg if body_mass_kg else None  # proto default 0 means "not sent"
    if mass is not None and not (math.isfinite(mass) and lo <= mass <= hi):
        out.append(
            Violation(
                "patient.body_mass_kg",
                f"body_mass_kg {mass:g} kg is outside {lo:g} to {hi:g} kg",
                PATIENT_CONTEXT_OUT_OF_RANGE,
                value=mass,
                unit="kg",
                allowed_min=lo,
                allowed_max=hi,
            )
        )
        return None
    if mass is None and any(r.sensor_kind is SensorKind.INSTRUMENTED_PYLON for r in recordings):
        out.append(
            Violation(
                "patient.body_mass_kg",
                f"body_mass_kg is required ({lo:g} to {hi:g} kg) to normalise instrumented-pylon moments "
                "to N*m/kg and forces to body weights",
                PATIENT_CONTEXT_MISSING,
                unit="kg",
                allowed_min=lo,
                allowed_max=hi,
            )
        )
    return mass


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A structurally valid recording, channels converted to the extractor's units and shapes."""

    index: int
    kind: SensorKind
    rate: float
    # Channel name -> array (1-D, or N x components); names map back to request indices.
    signals: dict[str, FloatArray]
    channel_index: dict[str, int]
    c3d: bytes | None
    options: dict[str, str]
    observations: dict[str, str]
    warnings: tuple[str, ...]
    # Set when channels came in groups with their own timelines (signals are then the aligned ones).
    aligned: AlignedChannels | None = None


def _prepare(i: int, r: RecordingInput, limits: ExtractionLimits, out: list[Violation]) -> _Prepared | None:
    """Structural checks that need no signal processing; appends violations, returns None if any."""
    n0 = len(out)
    base = f"recordings[{i}]"
    kind = r.sensor_kind
    if kind is None:
        out.append(
            Violation(
                f"{base}.sensor_kind",
                f"{base}: sensor_kind is required (one of {', '.join(k.value for k in SensorKind)})",
                SENSOR_KIND_MISSING,
            )
        )
        return None
    warnings: list[str] = []

    # Options.
    allowed = OPTIONS[kind]
    options: dict[str, str] = {}
    for key, value in r.options.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            out.append(
                Violation(
                    f"{base}.options.{key}",
                    f"{base}: option {key!r} is not understood for {kind.value} (accepted options: {known})",
                    UNKNOWN_OPTION,
                )
            )
            continue
        text = value.strip()
        if text.lower() not in {v.lower() for v in allowed[key]}:
            out.append(
                Violation(
                    f"{base}.options.{key}",
                    f"{base}: option {key}={value!r} must be one of {list(allowed[key])}",
                    INVALID_VALUE,
                )
            )
            continue
        options[key] = text.lower()

    # Inputs a kind takes: channels, a C3D file, or observations.
    c3d = r.c3d_bytes or None
    if r.channel_groups and (c3d is not None or kind is SensorKind.OBSERVATION):
        out.append(
            Violation(
                f"{base}.channel_groups",
                f"{base}: channel_groups give channels their timelines; a {'C3D file' if c3d else 'checklist'} has none",
                INVALID_VALUE,
            )
        )
    if c3d is not None:
        if kind not in C3D_KINDS:
            out.append(
                Violation(
                    f"{base}.c3d_file",
                    f"{base}: a C3D file is only accepted for MOTION_CAPTURE or FORCE_PLATE, not {kind.value}",
                    C3D_NOT_ACCEPTED,
                )
            )
        elif r.channels:
            out.append(
                Violation(
                    f"{base}.channels",
                    f"{base}: send either a C3D file or channels, not both",
                    INVALID_VALUE,
                )
            )
        elif len(c3d) > limits.max_c3d_bytes:
            out.append(
                Violation(
                    f"{base}.c3d_file",
                    f"{base}: C3D file of {len(c3d)} bytes exceeds {limits.max_c3d_bytes}",
                    RECORDINGS_TOO_LARGE,
                )
            )
        elif r.sampling_rate_hz:
            warnings.append("sampling_rate_hz ignored: a C3D file carries its own marker and analog rates")
    if r.observations and kind is not SensorKind.OBSERVATION:
        out.append(
            Violation(
                f"{base}.observations",
                f"{base}: observations are only read for sensor_kind OBSERVATION, not {kind.value}",
                INVALID_VALUE,
            )
        )
    if kind is SensorKind.OBSERVATION:
        if r.channels:
            out.append(
                Violation(
                    f"{base}.channels",
                    f"{base}: an OBSERVATION recording carries a checklist in observations, not channels",
                    UNKNOWN_CHANNEL,
                )
            )
        if not r.observations:
            out.append(
                Violation(
                    f"{base}.observations",
                    f"{base}: an OBSERVATION recording needs at least one checklist item "
                    f"(items: {', '.join(OBSERVATION_ITEMS)})",
                    OBSERVATIONS_MISSING,
                )
            )
        if len(out) > n0:
            return None
        return _Prepared(i, kind, 0.0, {}, {}, None, options, dict(r.observations), tuple(warnings))
    if c3d is not None:
        if len(out) > n0:
            return None
        return _Prepared(i, kind, 0.0, {}, {}, c3d, options, {}, tuple(warnings))

    # Signal recordings: a rate and consistent channels.
    rate = r.sampling_rate_hz
    if not (math.isfinite(rate) and 0.0 < rate <= MAX_SAMPLING_RATE_HZ):
        out.append(
            Violation(
                f"{base}.sampling_rate_hz",
                f"{base}: sampling_rate_hz must be a finite number of Hz above 0 (at most {MAX_SAMPLING_RATE_HZ:g}),"
                f" got {rate!r}",
                INVALID_SAMPLING_RATE,
            )
        )
    if not r.channels:
        need = "a C3D file in c3d_file or channels" if kind in C3D_KINDS else "channels"
        out.append(
            Violation(
                f"{base}.channels",
                f"{base}: {kind.value} recording has no data; send {need} (see docs/recordings.md)",
                MISSING_CHANNEL,
            )
        )
    group_index = _check_groups(base, r, out)
    signals: dict[str, FloatArray] = {}
    channel_index: dict[str, int] = {}
    samples: dict[str, int] = {}
    for j, ch in enumerate(r.channels):
        if ch.group and ch.group not in group_index:
            known = ", ".join(repr(g) for g in group_index) or "none"
            out.append(
                Violation(
                    f"{base}.channels[{j}].group",
                    f"{base}: channel {ch.name!r} names channel group {ch.group!r}, which channel_groups does not "
                    f"define (defined: {known})",
                    UNKNOWN_CHANNEL_GROUP,
                )
            )
        arr = _prepare_channel(base, j, kind, ch, options, out)
        if ch.name in channel_index:
            out.append(
                Violation(
                    f"{base}.channels[{j}].name",
                    f"{base}: channel {ch.name!r} is sent twice (also at channels[{channel_index[ch.name]}])",
                    DUPLICATE_CHANNEL,
                )
            )
            continue
        channel_index[ch.name] = j
        if arr is not None:
            signals[ch.name] = arr
            samples[ch.name] = len(arr)
    group_of = {ch.name: ch.group for ch in r.channels}
    for group in dict.fromkeys(group_of.values()):
        members = {name: n for name, n in samples.items() if group_of[name] == group}
        if len(set(members.values())) <= 1:
            continue
        # Sampled at one rate means one length; name the odd ones out against the most common length.
        common = max(set(members.values()), key=list(members.values()).count)
        for name, n in members.items():
            if n != common:
                what = (
                    f"the other channels of group {group!r} have {common}; channels of one group share its timeline"
                    if group
                    else f"the other channels have {common}; all channels of one recording share one sampling rate "
                    "and length, unless each sensor's channels form a channel group with its own timeline"
                )
                out.append(
                    Violation(
                        f"{base}.channels[{channel_index[name]}].values",
                        f"{base}: channel {name!r} has {n} samples but {what}",
                        INCONSISTENT_SAMPLING_RATE,
                    )
                )
    for group, g in group_index.items():
        if group not in group_of.values():
            out.append(
                Violation(
                    f"{base}.channel_groups[{g}].name",
                    f"{base}: channel group {group!r} has no channels (set RecordingChannel.group)",
                    INVALID_TIMELINE,
                )
            )
    if len(out) > n0:
        return None
    aligned = None
    if group_index:
        aligned = _align(base, kind, rate, r, signals, group_of, group_index, limits, warnings, out)
        if aligned is None:
            return None
        signals = aligned.signals
    return _Prepared(i, kind, float(rate), signals, channel_index, None, options, {}, tuple(warnings), aligned)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _check_groups(base: str, r: RecordingInput, out: list[Violation]) -> dict[str, int]:
    """Group name -> index in channel_groups; names must be non-empty and unique."""
    index: dict[str, int] = {}
    for g, grp in enumerate(r.channel_groups):
        where = f"{base}.channel_groups[{g}]"
        if not grp.name:
            out.append(Violation(f"{where}.name", f"{base}: channel_groups[{g}] needs a name", INVALID_TIMELINE))
        elif grp.name in index:
            out.append(
                Violation(
                    f"{where}.name",
                    f"{base}: channel group {grp.name!r} is defined twice (also channel_groups[{index[grp.name]}])",
                    INVALID_TIMELINE,
                )
            )
        else:
            index[grp.name] = g
        counter = grp.sample_counter is not None and len(grp.sample_counter) > 0
        times = grp.sample_times_s is not None and len(grp.sample_times_s) > 0
        if counter == times:
            out.append(
                Violation(
                    where,
                    f"{base}: channel group {grp.name!r} needs exactly one of sample_counter and sample_times_s"
                    f" ({'both' if counter else 'neither'} sent)",
                    INVALID_TIMELINE,
                )
            )
    return index


def _align(
    base: str,
    kind: SensorKind,
    rate: float,
    r: RecordingInput,
    signals: dict[str, FloatArray],
    group_of: Mapping[str, str],
    group_index: Mapping[str, int],
    limits: ExtractionLimits,
    warnings: list[str],
    out: list[Violation],
) -> AlignedChannels | None:
    """Channel groups onto one timeline; gap summaries into warnings; long gaps per kind policy."""
    data: list[GroupData] = []
    for group in dict.fromkeys(group_of.values()):
        members = {name: signals[name] for name in signals if group_of[name] == group}
        if not group:
            data.append(GroupData("", members))
            continue
        spec = r.channel_groups[group_index[group]]
        counter = spec.sample_counter if spec.sample_counter is not None and len(spec.sample_counter) else None
        times = spec.sample_times_s if counter is None else None
        data.append(GroupData(group, members, counter, times, spec.counter_modulus))
    try:
        aligned = align_groups(data, rate, max_fill_s=limits.max_gap_fill_s, max_values=limits.max_total_values)
    except TimelineError as exc:
        g = group_index.get(exc.field)
        path = f"{base}.channel_groups[{g}]" if g is not None else f"{base}.channels"
        subject = f"channel group {exc.field!r}" if g is not None else "channels without a group"
        out.append(Violation(path, f"{base} ({kind.value}): {subject}: {exc.reason}", INVALID_TIMELINE))
        return None
    limit_ms = limits.max_gap_fill_s * 1000
    rejected = False
    for summary in aligned.groups:
        label = f"channel group {summary.name!r}" if summary.name else "channels without a group"
        cut = [
            f"{dt:.2f} s at the {where}"
            for dt, where in ((aligned.start_s - summary.start_s, "start"), (summary.end_s - aligned.end_s, "end"))
            if dt > 0.5 / rate
        ]
        if cut:
            warnings.append(
                f"{label}: {' and '.join(cut)} not used (outside the span all groups share, "
                f"{aligned.start_s:.2f} to {aligned.end_s:.2f} s)"
            )
        if summary.samples_repeated:
            warnings.append(
                f"{label}: sample_counter repeats the previous value {_n(summary.samples_repeated, 'time')} (first "
                f"{summary.first_repeated_counter}); the repeated samples are not used"
            )
        if not summary.gap_count:
            continue
        first = summary.first_unfilled
        text = (
            f"{label}: {_n(summary.gap_count, 'gap')} (lost samples); {_n(summary.samples_filled, 'sample')} filled by "
            f"interpolation (gaps up to {limit_ms:g} ms), longest gap {summary.longest_gap_s * 1000:.0f} ms"
        )
        if first is not None:
            text += (
                f"; {_n(summary.samples_unfilled, 'sample')} in {_n(summary.unfilled_gap_count, 'longer gap')} not used "
                f"(first at {first.start_s:.2f} s)"
            )
        warnings.append(text)
        if first is not None and kind not in _LONG_GAPS_ALLOWED:
            rejected = True
            spec = r.channel_groups[group_index[summary.name]]
            which = "sample_counter" if spec.sample_counter is not None and len(spec.sample_counter) else "sample_times_s"
            out.append(
                Violation(
                    f"{base}.channel_groups[{group_index[summary.name]}].{which}",
                    f"{base} ({kind.value}): channel group {summary.name!r} (channels "
                    f"{', '.join(repr(c) for c in summary.channels)}) has a gap of {first.duration_s * 1000:.0f} ms "
                    f"at {first.start_s:.2f} s; gaps up to {limit_ms:g} ms are filled, longer ones only in IMU, "
                    "motion capture and video recordings (cut the recording at the gap)",
                    GAP_TOO_LONG,
                )
            )
    if rejected:
        return None
    if kind in _NAN_ALLOWED:
        # Markers and keypoints mark a gap with NaN; their extractors already skip it.
        for name, mask in aligned.unreliable.items():
            aligned.signals[name][mask] = np.nan
    return aligned


def _prepare_channel(
    base: str, j: int, kind: SensorKind, ch: ChannelInput, options: Mapping[str, str], out: list[Violation]
) -> FloatArray | None:
    """Shape and unit checks for one channel; returns it converted to the extractor's unit."""
    where = f"{base}.channels[{j}]"
    label = f"{base}: channel {ch.name!r}"
    known = CHANNELS[kind]
    if ch.name not in known:
        out.append(
            Violation(
                f"{where}.name",
                f"{label} is not a {kind.value} channel; expected some of {list(known)}",
                UNKNOWN_CHANNEL,
            )
        )
        return None
    values = np.asarray(ch.values, dtype=np.float64).reshape(-1)
    comps = ch.components or 1  # proto default 0 means one component
    expected = _expected_components(kind, options)
    if comps < 0 or (expected is not None and comps not in expected):
        want = " or ".join(str(c) for c in sorted(expected or ()))
        out.append(
            Violation(
                f"{where}.components",
                f"{label} has components={ch.components}; {kind.value} channels need {want}",
                INVALID_VALUE,
            )
        )
        return None
    if values.size == 0:
        out.append(Violation(f"{where}.values", f"{label} has no values", INVALID_VALUE))
        return None
    if values.size % comps:
        out.append(
            Violation(
                f"{where}.values",
                f"{label} has {values.size} values, not a multiple of components={comps} "
                "(values are row-major samples x components)",
                INVALID_VALUE,
            )
        )
        return None
    bad = ~np.isfinite(values) if kind not in _NAN_ALLOWED else np.isinf(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0]) // comps
        what = "non-finite (NaN or infinite)" if kind not in _NAN_ALLOWED else "infinite"
        out.append(
            Violation(
                f"{where}.values",
                f"{label} has {int(bad.sum())} {what} values (first at sample {first})",
                INVALID_VALUE,
            )
        )
        return None
    huge = np.abs(values) > MAX_ABS_SAMPLE
    if huge.any():
        # No sensor here reports a sample this large in any accepted unit; arithmetic on such values
        # overflows and would silently turn features into NaN instead of failing clearly.
        out.append(
            Violation(
                f"{where}.values",
                f"{label} has {int(huge.sum())} values beyond +-{MAX_ABS_SAMPLE:g} "
                f"(first at sample {int(np.flatnonzero(huge)[0]) // comps}): not a measurement",
                INVALID_VALUE,
            )
        )
        return None
    if kind in _NAN_ALLOWED and not np.isfinite(values).any():
        # Gaps are fine, a channel that is all gap is a marker or joint that was never seen.
        out.append(Violation(f"{where}.values", f"{label} has no finite values (all NaN)", INVALID_VALUE))
        return None
    table, default = _unit_table(kind, ch.name, options)
    unit = ch.unit.strip() or default
    factor = table.get(unit.lower())
    if factor is None:
        out.append(
            Violation(
                f"{where}.unit",
                f"{label}: unit {ch.unit!r} is not accepted; accepted: {sorted(table)}",
                UNKNOWN_UNIT,
            )
        )
        return None
    if factor != 1.0:
        values = values * factor
    return values if comps == 1 else values.reshape(-1, comps)


def _expected_components(kind: SensorKind, options: Mapping[str, str]) -> set[int] | None:
    if kind is SensorKind.MOTION_CAPTURE:
        return {3}
    if kind is SensorKind.VIDEO_POSE:
        k = _video_keypoints(options.get("layout", "coco17"))
        return {2 * k, 3 * k}
    return {1}


def _video_keypoints(layout: str) -> int:
    # The extractor's layouts: COCO has 17 keypoints, MediaPipe Pose 33.
    return 33 if layout == "mediapipe33" else 17


def _unit_table(kind: SensorKind, name: str, options: Mapping[str, str]) -> tuple[dict[str, float], str]:
    """Accepted units of a channel and the unit assumed when none is given."""
    if kind is SensorKind.IMU:
        if "_gyr_" in name:
            return _GYRO_UNITS, options.get("gyro_unit", "deg/s")
        return _ACC_UNITS, options.get("acc_unit", "m/s^2")
    if kind is SensorKind.MOTION_CAPTURE:
        return _LENGTH_UNITS, "m"
    if kind is SensorKind.VIDEO_POSE:
        return _PIXEL_UNITS, "px"
    if name.endswith("_nm"):
        return _MOMENT_UNITS, "N*m"
    return _FORCE_UNITS, "N"


# ------------------------------------------------------------------------------------- extraction
def _run(p: _Prepared, side: Side, mass: float | None) -> ExtractionResult:
    kind, ch = p.kind, p.signals
    if p.c3d is not None:
        # The sensors package's wrapper imports ezc3d only now, so C3D support stays optional.
        return extract_c3d(p.c3d, side, mass)
    if kind is SensorKind.IMU:
        # Channels are already converted to m/s^2 and deg/s, the extractor's defaults.
        return extract_imu(
            ch,
            p.rate,
            side,
            unreliable=p.aligned.unreliable if p.aligned is not None else None,
            foot_yaw_known=p.options.get("foot_yaw", "aligned") == "aligned",
        )
    if kind is SensorKind.INSTRUMENTED_PYLON:
        assert mass is not None  # _check_patient reported a missing mass; no extraction then
        return extract_pylon(ch, p.rate, side, mass, compression_positive=p.options.get("compression_positive") == "true")
    if kind is SensorKind.PRESSURE_INSOLE:
        return extract_insole(ch, p.rate, side, mass)
    if kind is SensorKind.FORCE_PLATE:
        return extract_force_plate(ch, p.rate, side, mass)
    if kind is SensorKind.MOTION_CAPTURE:
        return extract_mocap(ch, p.rate, side)
    if kind is SensorKind.VIDEO_POSE:
        return _run_video(p, side)
    return extract_observation(p.observations, side)


def _run_video(p: _Prepared, side: Side) -> ExtractionResult:
    if "keypoints" not in p.signals:
        raise serr.MissingChannelError("keypoints", "the keypoints channel is required")
    flat = p.signals["keypoints"]
    k = _video_keypoints(p.options.get("layout", "coco17"))
    kp = flat.reshape(len(flat), k, flat.shape[1] // k)
    kwargs: dict[str, Any] = {key: p.options[key] for key in ("layout", "view", "facing") if key in p.options}
    return extract_video_pose(kp, p.rate, side, **kwargs)


def _violation_from(i: int, p: _Prepared, exc: serr.RecordingError) -> Violation:
    """Map an extractor's error onto the request path it is about, with a self-contained message."""
    base = f"recordings[{i}]"
    reason = next((r for cls, r in _REASON_BY_ERROR if isinstance(exc, cls)), INVALID_VALUE)
    name = exc.field
    if name in p.channel_index:
        path = f"{base}.channels[{p.channel_index[name]}]"
        subject = f"channel {name!r}"
    elif name in p.observations or name in OBSERVATION_ITEMS:
        path = f"{base}.observations.{name}"
        subject = f"observation {name!r}"
    elif name in ("sampling_rate_hz", "fps"):
        path, subject = f"{base}.sampling_rate_hz", "sampling_rate_hz"
    elif name == "body_mass_kg":
        path, subject = "patient.body_mass_kg", "patient.body_mass_kg"
    elif name == "prosthetic_side":
        path, subject = "patient.prosthetic_side", "patient.prosthetic_side"
    elif name in ("layout", "view", "facing"):
        path, subject = f"{base}.options.{name}", f"option {name!r}"
    elif p.c3d is not None:
        path, subject = f"{base}.c3d_file", "C3D file" if name == "source" else f"C3D file ({name})"
    elif name in CHANNELS[p.kind]:
        # A known channel that was not sent: the extractor needs it.
        path, subject = f"{base}.channels", f"channel {name!r}"
    else:
        path, subject = f"{base}.channels", "channels" if name in ("channels", "markers", "keypoints") else name
    return Violation(path, f"{base} ({p.kind.value}): {subject}: {exc.reason}", reason)


# ------------------------------------------------------------------------------------- merging
@dataclass(frozen=True, slots=True)
class _Candidate:
    name: str
    value: float
    prov: FeatureProvenance
    source: SensorKind
    index: int

    def key(self) -> tuple[int, int, int, int]:
        """Larger is better: precision, kinetic sensor for a kinetic feature, strides, earlier."""
        spec = FEATURES_BY_NAME[self.name]
        kinetic = int(spec.group in _KINETIC_GROUPS and self.source in KINETIC_SENSORS)
        return (_PRECISION_RANK.get(Precision(self.prov.precision), 0), kinetic, self.prov.n_values, -self.index)


def _merge(results: Sequence[tuple[_Prepared, ExtractionResult]]) -> ExtractionOutcome:
    by_name: dict[str, list[_Candidate]] = {}
    warnings: dict[int, list[str]] = {}
    prov_out: dict[int, dict[str, FeatureProvenance]] = {}
    for prep, res in results:
        i, kind = prep.index, prep.kind
        warnings[i] = [*prep.warnings, *res.warnings]
        prov_out[i] = {}
        for name, value in res.features.items():
            spec = FEATURES_BY_NAME.get(name)
            prov = res.provenance.get(name) or FeatureProvenance("unspecified", 1, Precision.LOW, kind.value)
            if spec is None or not math.isfinite(value):
                continue  # the sensors package only emits catalog names; be safe anyway
            prov_out[i][name] = prov
            if not spec.min_value <= value <= spec.max_value:
                warnings[i].append(
                    f"{name} = {value:.4g} {spec.unit} is outside the valid range {spec.min_value:g} to "
                    f"{spec.max_value:g} {spec.unit}: dropped as an extraction artefact (check the recording)"
                )
                continue
            source = SensorKind(prov.source) if prov.source in SensorKind.__members__ else kind
            by_name.setdefault(name, []).append(_Candidate(name, float(value), prov, source, i))

    chosen: dict[str, _Candidate] = {}
    # Asymmetries left for validation to derive from the chosen pair (none consistent was extracted).
    omitted: dict[str, str] = {}
    for pros, sound, asym in PAIRED_FEATURES:
        # Recordings with both sides: take the pair (and its asymmetry) from the best of them.
        pairs = [
            (a, b)
            for a in by_name.get(pros, [])
            for b in by_name.get(sound, [])
            if a.index == b.index
        ]
        if not pairs:
            continue
        a, b = max(pairs, key=lambda ab: min(ab[0].key(), ab[1].key()))
        chosen[pros], chosen[sound] = a, b
        same = [c for c in by_name.get(asym, []) if c.index == a.index]
        if same:
            chosen[asym] = same[0]
        else:
            omitted[asym] = f"{pros}/{sound} of recordings[{a.index}]"
    for name, cands in by_name.items():
        if name not in chosen and name not in omitted:
            chosen[name] = max(cands, key=_Candidate.key)

    superseded: dict[int, list[str]] = {}
    for name, cands in by_name.items():
        win = chosen.get(name)
        for c in cands:
            if win is None:
                superseded.setdefault(c.index, []).append(f"{name} (derived from {omitted[name]} instead)")
            elif c.index != win.index:
                superseded.setdefault(c.index, []).append(
                    f"{name} (recordings[{win.index}] {win.source.value}, {win.prov.precision} precision)"
                )
    for i, items in superseded.items():
        warnings[i].append("not used, another recording was preferred: " + "; ".join(items))

    order = {name: k for k, name in enumerate(FEATURES_BY_NAME)}
    features = tuple(
        ExtractedFeature(c.name, c.value, FEATURES_BY_NAME[c.name].unit, c.source, c.index, c.prov)
        for c in sorted(chosen.values(), key=lambda c: order[c.name])
    )
    reports = []
    for prep, res in results:
        i, kind = prep.index, prep.kind
        produced = tuple(sorted(prov_out[i].items(), key=lambda kv: order[kv[0]]))
        timeline = _timeline_report(prep.aligned, res, warnings[i])
        reports.append(
            RecordingReport(i, kind, res.strides_used, res.strides_dropped, tuple(warnings[i]), produced, timeline)
        )
    return ExtractionOutcome(features, tuple(reports))


def _timeline_report(aligned: AlignedChannels | None, res: ExtractionResult, warnings: list[str]) -> TimelineReport | None:
    if aligned is None:
        return None
    drops = tuple(
        GapDroppedStride(d.side, aligned.time_s(d.start_sample), aligned.time_s(d.end_sample), aligned.group_of.get(d.channel, ""))
        for d in res.gap_drops
    )
    if drops:
        listed = ", ".join(f"{d.side.value.lower()} {d.start_s:.2f}-{d.end_s:.2f} s ({d.group})" for d in drops[:6])
        more = f" and {len(drops) - 6} more" if len(drops) > 6 else ""
        warnings.append(f"{_n(len(drops), 'stride')} dropped because of a gap too long to fill: {listed}{more}")
    return TimelineReport(aligned.start_s, aligned.end_s, aligned.groups, drops)


__all__ = [
    "C3D_KINDS",
    "CHANNELS",
    "KINETIC_SENSORS",
    "OPTIONS",
    "PAIRED_FEATURES",
    "ChannelGroupInput",
    "ChannelInput",
    "ExtractedFeature",
    "ExtractionLimits",
    "ExtractionOutcome",
    "GapDroppedStride",
    "RecordingInput",
    "RecordingReport",
    "TimelineReport",
    "extract_features",
]
