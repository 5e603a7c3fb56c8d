"""Per-sensor timelines: place each sensor's samples at their own times, align, fill short gaps.

Wireless IMUs (e.g. Xsens MTw Awinda) lose packets: a file's rows are then not samples, and two
sensors of one walk have different row counts and may start and stop at different moments. Each
sensor therefore comes as a *channel group* with its own timeline, either a packet/sample counter
(time = counter / rate; the receiver synchronises the counters of its sensors) or explicit sample
times on a shared clock.

``align_groups`` puts every group on one uniform grid at the recording's rate over the span all groups
share, so the extractors keep working on equal-length arrays:

- a gap (a run of missing samples) of at most ``max_fill_s`` is filled by linear interpolation; at
  100 Hz the default 0.1 s is 10 lost packets, less than a quarter of a swing phase, so an event's
  zero crossing is still bracketed by measured samples most of the time;
- a longer gap is interpolated too, only so that filters and smoothing see a continuous signal, but
  its samples are marked *unreliable*; the extractor must not use them (the IMU drops every stride
  they touch; kinds that cannot do that reject the recording, see ``service.extraction``).

Pure numpy. Errors are ``TimelineError`` (a ``RecordingError``) naming the group.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service.sensors.base import FloatArray
from service.sensors.errors import RecordingError

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Longest gap filled by interpolation (docs/recordings.md): 100 ms.
DEFAULT_MAX_FILL_S = 0.1
# Explicit sample times may jitter; the median step must match the declared rate within this.
_RATE_TOLERANCE = 0.1
# Gaps listed one by one per group (the counts cover all): a report stays small whatever is sent.
MAX_GAPS_LISTED = 1000
# A counter value sent twice in a row is a receiver glitch (IPOL trial 11-1 repeats packet 308 on
# all three sensors): the repeat is not used. More than this fraction of repeats is not a glitch.
MAX_REPEATED_FRACTION = 0.01


class TimelineError(RecordingError):
    """A group's counter or sample times are unusable (``field`` is the group name)."""


@dataclass(frozen=True, slots=True)
class GroupData:
    """One sensor's channels (1-D, or N x k) and its timeline: ``counter`` or ``times_s`` or neither
    (neither: the uniform timeline, sample k at k / rate)."""

    name: str
    signals: Mapping[str, FloatArray]
    counter: IntArray | None = None
    times_s: FloatArray | None = None
    counter_modulus: int = 0


@dataclass(frozen=True, slots=True)
class Gap:
    """A run of missing samples inside the aligned span."""

    start_s: float  # time of the first missing sample
    samples_missing: int
    filled: bool
    rate_hz: float

    @property
    def duration_s(self) -> float:
        return self.samples_missing / self.rate_hz


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """One group's timeline inside the aligned span. ``gaps`` lists the first ``MAX_GAPS_LISTED``;
    the counts and the longest gap cover all of them."""

    name: str
    channels: tuple[str, ...]
    start_s: float
    end_s: float
    samples_received: int
    samples_filled: int
    samples_unfilled: int
    gaps: tuple[Gap, ...]
    gap_count: int = 0
    unfilled_gap_count: int = 0
    longest_gap_s: float = 0.0
    first_unfilled: Gap | None = None
    # Samples whose counter repeated the previous sample's (not used), and the first such counter.
    samples_repeated: int = 0
    first_repeated_counter: int | None = None


@dataclass(frozen=True)
class AlignedChannels:
    """Every channel on one grid: sample k is at ``start_s + k / rate_hz`` on the recording's clock."""

    signals: dict[str, FloatArray]
    # Channel -> True where the sample lies in a gap longer than the fill limit (absent: all good).
    unreliable: dict[str, BoolArray]
    start_s: float
    rate_hz: float
    groups: tuple[GroupSummary, ...]
    max_fill_s: float
    group_of: dict[str, str] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return len(next(iter(self.signals.values()))) if self.signals else 0

    @property
    def end_s(self) -> float:
        return self.start_s + (self.n_samples - 1) / self.rate_hz

    @property
    def samples_filled(self) -> int:
        return sum(g.samples_filled for g in self.groups)

    def time_s(self, sample: int) -> float:
        return self.start_s + sample / self.rate_hz


@dataclass(frozen=True, slots=True)
class _Times:
    times_s: FloatArray
    # Samples to use (None: all); False for a repeated counter value.
    keep: BoolArray | None = None
    first_repeated_counter: int | None = None


def group_times_s(group: GroupData, rate_hz: float, n: int) -> FloatArray:
    """Validated sample times of a group with ``n`` samples per channel (raises ``TimelineError``);
    one per sample used (a repeated counter value's sample is left out)."""
    return _group_times(group, rate_hz, n).times_s


def _group_times(group: GroupData, rate_hz: float, n: int) -> _Times:
    name = group.name or "(ungrouped channels)"
    if group.counter is not None and group.times_s is not None:
        raise TimelineError(name, "set either sample_counter or sample_times_s, not both")
    if group.counter is None and group.times_s is None:
        return _Times(np.arange(n, dtype=np.float64) / rate_hz)
    given = group.counter if group.counter is not None else group.times_s
    assert given is not None
    what = "sample_counter" if group.counter is not None else "sample_times_s"
    if len(given) != n:
        raise TimelineError(name, f"{what} has {len(given)} entries but its channels have {n} samples")
    if n < 2:
        raise TimelineError(name, f"{what} needs at least 2 samples")
    if group.counter is not None:
        c = np.asarray(group.counter, dtype=np.int64)
        steps = np.diff(c)
        repeated = np.flatnonzero(steps == 0)
        keep = None
        first_repeat = None
        if repeated.size:
            if repeated.size > max(1.0, MAX_REPEATED_FRACTION * n):
                raise TimelineError(
                    name,
                    f"sample_counter repeats the previous value {repeated.size} times (first {int(c[repeated[0]])} at "
                    f"sample {int(repeated[0]) + 1}); a packet counter counts every sample",
                )
            # The first of the two is kept: the receiver delivered it in counter order.
            keep = np.ones(n, dtype=bool)
            keep[repeated + 1] = False
            first_repeat = int(c[repeated[0]])
            c = c[keep]
            steps = np.diff(c)
        if group.counter_modulus < 0:
            raise TimelineError(name, f"counter_modulus must be 0 or positive, got {group.counter_modulus}")
        if group.counter_modulus:
            if (c < 0).any() or (c >= group.counter_modulus).any():
                raise TimelineError(name, f"sample_counter values must lie in 0..{group.counter_modulus - 1}")
            # One wrap per step at most: a counter that went backwards wrapped past modulus - 1.
            steps = np.where(steps <= 0, steps + group.counter_modulus, steps)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            k = int(bad[0])
            raise TimelineError(
                name,
                f"sample_counter must increase: sample {k + 1} has {int(c[k + 1])} after {int(c[k])}"
                + ("" if group.counter_modulus else " (set counter_modulus if the counter wraps)"),
            )
        unwrapped = int(c[0]) + np.concatenate(([0], np.cumsum(steps)))
        return _Times(unwrapped.astype(np.float64) / rate_hz, keep, first_repeat)
    t = np.asarray(group.times_s, dtype=np.float64)
    if not np.isfinite(t).all():
        raise TimelineError(name, "sample_times_s must be finite")
    steps_s = np.diff(t)
    bad = np.flatnonzero(steps_s <= 0)
    if bad.size:
        k = int(bad[0])
        raise TimelineError(name, f"sample_times_s must increase: sample {k + 1} at {t[k + 1]:.6g} s after {t[k]:.6g} s")
    median = float(np.median(steps_s))
    if abs(median * rate_hz - 1.0) > _RATE_TOLERANCE:
        raise TimelineError(
            name,
            f"sample_times_s are {median * 1000:.3g} ms apart (median) but sampling_rate_hz {rate_hz:g} means "
            f"{1000 / rate_hz:.3g} ms; send the sensor's own rate",
        )
    return _Times(t)


def align_groups(
    groups: Sequence[GroupData],
    rate_hz: float,
    *,
    max_fill_s: float = DEFAULT_MAX_FILL_S,
    max_values: int | None = None,
) -> AlignedChannels:
    """Resample every group onto one uniform grid over the span the groups share (see module doc).

    ``max_values`` bounds samples x channels of the result (a counter jump of 1e9 must not allocate
    gigabytes). Grid points coincide with counter values of the group that starts last, so counter
    timelines at the recording's rate are placed exactly, not interpolated."""
    if not groups:
        raise TimelineError("channel_groups", "no channels")
    times: list[FloatArray] = []
    used: list[GroupData] = []
    repeats: list[tuple[int, int | None]] = []
    for g in groups:
        lengths = {name: len(v) for name, v in g.signals.items()}
        if len(set(lengths.values())) != 1:
            raise TimelineError(
                g.name or "(ungrouped channels)",
                f"channels of one group share one timeline and need equal lengths, got {lengths}",
            )
        tm = _group_times(g, rate_hz, next(iter(lengths.values())))
        times.append(tm.times_s)
        keep = tm.keep
        if keep is None:
            used.append(g)
            repeats.append((0, None))
        else:
            signals_kept = {name: v[keep] for name, v in g.signals.items()}
            used.append(GroupData(g.name, signals_kept, None, None, g.counter_modulus))
            repeats.append((int((~keep).sum()), tm.first_repeated_counter))
    groups = used
    start = max(float(t[0]) for t in times)
    end = min(float(t[-1]) for t in times)
    if end <= start:
        spans = ", ".join(f"{g.name or '(ungrouped)'} {t[0]:.2f}-{t[-1]:.2f} s" for g, t in zip(groups, times, strict=True))
        raise TimelineError(groups[-1].name, f"the channel groups do not overlap in time ({spans})")
    # A little slack so float rounding of counter / rate does not lose the last shared sample; never
    # more, so the grid does not run past a group's last sample (np.interp would hold its value).
    n = math.floor((end - start) * rate_hz + 1e-6) + 1
    n_channels = sum(int(np.prod(v.shape[1:])) if v.ndim > 1 else 1 for g in groups for v in g.signals.values())
    if max_values is not None and n * n_channels > max_values:
        raise TimelineError(
            groups[0].name,
            f"the aligned timeline would hold {n} samples x {n_channels} channels (more than {max_values} values);"
            " check the counters or times",
        )
    grid = start + np.arange(n, dtype=np.float64) / rate_hz
    signals: dict[str, FloatArray] = {}
    unreliable: dict[str, BoolArray] = {}
    summaries: list[GroupSummary] = []
    group_of: dict[str, str] = {}
    for g, t, (n_repeated, first_repeated) in zip(groups, times, repeats, strict=True):
        bad, summary = _gaps(g, t, grid, rate_hz, max_fill_s)
        if n_repeated:
            summary = dataclasses.replace(
                summary,
                samples_received=summary.samples_received + n_repeated,
                samples_repeated=n_repeated,
                first_repeated_counter=first_repeated,
            )
        for name, v in g.signals.items():
            group_of[name] = g.name
            signals[name] = _interp(grid, t, v)
            if bad.any():
                unreliable[name] = bad
        summaries.append(summary)
    return AlignedChannels(signals, unreliable, start, rate_hz, tuple(summaries), max_fill_s, group_of)


def _interp(grid: FloatArray, t: FloatArray, v: FloatArray) -> FloatArray:
    if v.ndim == 1:
        return np.interp(grid, t, v)
    flat = v.reshape(len(v), -1)
    # Columns one at a time: np.interp is 1-D. NaN marker gaps stay NaN next to their neighbours.
    out = np.column_stack([np.interp(grid, t, flat[:, j]) for j in range(flat.shape[1])])
    return out.reshape((len(grid), *v.shape[1:]))


def _gaps(
    g: GroupData, t: FloatArray, grid: FloatArray, rate_hz: float, max_fill_s: float
) -> tuple[BoolArray, GroupSummary]:
    """Gaps of one group inside the grid's span (vectorised: a request may hold a million samples)."""
    # A step of about two sample periods is one lost sample; jitter below half a period is not a gap.
    missing = np.rint(np.diff(t) * rate_hz).astype(np.int64) - 1
    k = np.flatnonzero(missing >= 1)
    # Grid points strictly between the two received samples around each gap (a quarter period of
    # slack for float rounding); zero of them when the gap lies outside the shared span.
    quarter = 0.25 / rate_hz
    i0 = np.searchsorted(grid, t[k] + quarter, side="left")
    i1 = np.searchsorted(grid, t[k + 1] - quarter, side="right")
    inside = i1 - i0
    keep = inside > 0
    k, i0, i1, inside = k[keep], i0[keep], i1[keep], inside[keep]
    # Whether a gap is filled depends on its whole length, also where the span cuts it.
    ok = missing[k] / rate_hz <= max_fill_s + 1e-9
    # Unfilled samples: +1 at each gap's start, -1 at its end, summed.
    edges = np.zeros(len(grid) + 1, dtype=np.int64)
    np.add.at(edges, i0[~ok], 1)
    np.add.at(edges, i1[~ok], -1)
    bad: BoolArray = np.cumsum(edges[:-1]) > 0
    gaps = tuple(
        Gap(float(grid[a]), int(n), bool(f), rate_hz)
        for a, n, f in zip(i0[:MAX_GAPS_LISTED], inside[:MAX_GAPS_LISTED], ok[:MAX_GAPS_LISTED], strict=True)
    )
    first_bad = np.flatnonzero(~ok)
    first_unfilled = (
        Gap(float(grid[i0[first_bad[0]]]), int(inside[first_bad[0]]), False, rate_hz) if first_bad.size else None
    )
    summary = GroupSummary(
        name=g.name,
        channels=tuple(g.signals),
        start_s=float(t[0]),
        end_s=float(t[-1]),
        samples_received=len(t),  # align_groups adds back repeated samples
        samples_filled=int(inside[ok].sum()),
        samples_unfilled=int(inside[~ok].sum()),
        gaps=gaps,
        gap_count=len(inside),
        unfilled_gap_count=int((~ok).sum()),
        longest_gap_s=float(inside.max()) / rate_hz if inside.size else 0.0,
        first_unfilled=first_unfilled,
    )
    return bad, summary


__all__ = [
    "DEFAULT_MAX_FILL_S",
    "MAX_GAPS_LISTED",
    "AlignedChannels",
    "BoolArray",
    "Gap",
    "GroupData",
    "GroupSummary",
    "TimelineError",
    "align_groups",
    "group_times_s",
]
