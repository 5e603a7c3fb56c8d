"""service.extraction with channel groups: per-sensor timelines, gap filling, and their violations."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from service.catalog import SensorKind, Side
from service.errors import InvalidInputError, Violation
from service.extraction import (
    GAP_TOO_LONG,
    INCONSISTENT_SAMPLING_RATE,
    INVALID_TIMELINE,
    INVALID_VALUE,
    UNKNOWN_CHANNEL_GROUP,
    ChannelGroupInput,
    ExtractionLimits,
    RecordingInput,
    _prepare,  # the aligned signals as the extractor receives them
    extract_features,
)
from tests.unit.test_extraction import FS, MASS, imu_channels, pylon_channels

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _lose(values: FloatArray, lost: list[range]) -> tuple[IntArray, FloatArray]:
    counter = np.arange(len(values), dtype=np.int64)
    keep = np.ones(len(values), dtype=bool)
    for r in lost:
        keep[r.start : r.stop] = False
    return counter[keep], values[keep]


def _grouped_imu(lost: dict[str, list[range]], **ch_kw: float) -> RecordingInput:
    """Both feet as channel groups on their counters, with the given packets lost per foot."""
    ch = imu_channels(0.64, 0.70, **ch_kw)
    channels, groups, cg = {}, {}, []
    for side in ("left", "right"):
        name = f"{side}_foot_gyr_ml"
        c, v = _lose(ch[name], lost.get(side, []))
        channels[name], groups[name] = v, f"{side}_foot"
        cg.append(ChannelGroupInput(f"{side}_foot", sample_counter=c))
    return RecordingInput.from_arrays(SensorKind.IMU, FS, channels, groups=groups, channel_groups=cg)


def _rejects(rec: RecordingInput, side: Side = Side.LEFT, **kw: object) -> dict[str, Violation]:
    with pytest.raises(InvalidInputError) as exc:
        extract_features([rec], side, MASS, **kw)  # type: ignore[arg-type]
    return {v.field: v for v in exc.value.violations}


def test_feet_of_different_lengths_are_answered_and_the_report_names_the_filled_gaps() -> None:
    lost = {"left": [range(200, 203), range(700, 708)], "right": [range(400, 401), range(1000, 1005)]}
    rec = _grouped_imu(lost)
    assert len(rec.channels[0].values) != len(rec.channels[1].values) + 1
    out = extract_features([rec], Side.LEFT, MASS)
    baseline = extract_features([RecordingInput.from_arrays(SensorKind.IMU, FS, imu_channels(0.64, 0.70))], Side.LEFT, MASS)
    for name in ("stance_time_prosthetic_s", "stance_time_sound_s"):
        assert out.values[name] == pytest.approx(baseline.values[name], abs=0.011)
    (rep,) = out.reports
    t = rep.timeline
    assert t is not None and t.samples_filled == 3 + 8 + 1 + 5
    left, right = t.groups
    assert (left.name, left.channels, left.samples_filled) == ("left_foot", ("left_foot_gyr_ml",), 11)
    assert [(round(g.start_s, 2), g.samples_missing, g.filled) for g in left.gaps] == [(2.0, 3, True), (7.0, 8, True)]
    assert [g.samples_missing for g in right.gaps] == [1, 5]
    assert t.strides_dropped_for_gaps == ()
    text = " | ".join(rep.warnings)
    assert "channel group 'left_foot': 2 gaps (lost samples); 11 samples filled by interpolation" in text
    assert "longest gap 80 ms" in text


def test_a_long_gap_drops_the_strides_it_touches_and_lists_them_in_seconds() -> None:
    rec = _grouped_imu({"left": [range(600, 630)]})  # 300 ms lost on the prosthetic foot
    out = extract_features([rec], Side.LEFT, MASS)
    (rep,) = out.reports
    assert rep.timeline is not None
    drops = rep.timeline.strides_dropped_for_gaps
    assert drops and all(d.side is Side.LEFT and d.group == "left_foot" for d in drops)
    assert all(d.start_s <= 6.3 + 0.05 and d.end_s >= 6.0 - 0.05 for d in drops)
    assert rep.strides_dropped >= len(drops)
    (gap,) = rep.timeline.groups[0].gaps
    assert not gap.filled and gap.samples_missing == 30 and gap.start_s == pytest.approx(6.0)
    assert rep.timeline.groups[0].samples_unfilled == 30
    # The gap swallowed a swing, so the stride around it spans two real ones; it is named in seconds.
    d = drops[0]
    listed = f"dropped because of a gap too long to fill: left {d.start_s:.2f}-{d.end_s:.2f} s (left_foot)"
    assert any(listed in w for w in rep.warnings), rep.warnings
    assert "stance_time_prosthetic_s" in out.values


def test_the_fill_limit_is_a_setting_of_the_extraction() -> None:
    rec = _grouped_imu({"left": [range(600, 606)]})  # 60 ms
    assert extract_features([rec], Side.LEFT, MASS).reports[0].timeline.strides_dropped_for_gaps == ()  # type: ignore[union-attr]
    strict = extract_features([rec], Side.LEFT, MASS, limits=ExtractionLimits(max_gap_fill_s=0.05))
    assert strict.reports[0].timeline is not None and strict.reports[0].timeline.strides_dropped_for_gaps


def test_without_groups_a_length_mismatch_is_still_rejected_and_says_how_to_fix_it() -> None:
    ch = imu_channels(0.66, 0.66)
    ch["right_foot_gyr_ml"] = ch["right_foot_gyr_ml"][:-7]
    v = _rejects(RecordingInput.from_arrays(SensorKind.IMU, FS, ch))
    (viol,) = v.values()
    assert viol.reason == INCONSISTENT_SAMPLING_RATE and "channel group with its own timeline" in viol.description


def test_unknown_group_unused_group_and_bad_counters_are_field_violations() -> None:
    ch = imu_channels(0.66, 0.66)
    n = len(ch["left_foot_gyr_ml"])
    rec = RecordingInput.from_arrays(
        SensorKind.IMU,
        FS,
        ch,
        groups={"left_foot_gyr_ml": "left_foot", "right_foot_gyr_ml": "rihgt_foot"},
        channel_groups=[
            ChannelGroupInput("left_foot", sample_counter=np.arange(n)),
            ChannelGroupInput("right_foot", sample_counter=np.arange(n)),
            ChannelGroupInput("", sample_times_s=np.arange(n) / FS, sample_counter=np.arange(n)),
        ],
    )
    v = _rejects(rec)
    assert v["recordings[0].channels[1].group"].reason == UNKNOWN_CHANNEL_GROUP
    assert "'rihgt_foot'" in v["recordings[0].channels[1].group"].description
    assert v["recordings[0].channel_groups[1].name"].reason == INVALID_TIMELINE  # no channels
    assert v["recordings[0].channel_groups[2].name"].reason == INVALID_TIMELINE  # no name
    assert "both sent" in v["recordings[0].channel_groups[2]"].description


def test_a_counter_that_goes_backwards_names_its_group() -> None:
    ch = imu_channels(0.66, 0.66)
    n = len(ch["left_foot_gyr_ml"])
    counter = np.arange(n)
    counter[500] = 10
    rec = RecordingInput.from_arrays(
        SensorKind.IMU,
        FS,
        ch,
        groups={"left_foot_gyr_ml": "left_foot", "right_foot_gyr_ml": "right_foot"},
        channel_groups=[
            ChannelGroupInput("left_foot", sample_counter=np.arange(n)),
            ChannelGroupInput("right_foot", sample_counter=counter),
        ],
    )
    (viol,) = _rejects(rec).values()
    assert viol.field == "recordings[0].channel_groups[1]" and viol.reason == INVALID_TIMELINE
    assert "'right_foot'" in viol.description and "must increase" in viol.description


def test_force_sensors_reject_a_long_gap_naming_the_channels_but_fill_short_ones() -> None:
    ch = pylon_channels()
    n = len(ch["axial_force_n"])

    def pylon(lost: list[range]) -> RecordingInput:
        keep = np.ones(n, dtype=bool)
        for r in lost:
            keep[r.start : r.stop] = False
        return RecordingInput.from_arrays(
            SensorKind.INSTRUMENTED_PYLON,
            FS,
            {k: v[keep] for k, v in ch.items()},
            groups=dict.fromkeys(ch, "pylon"),
            channel_groups=[ChannelGroupInput("pylon", sample_counter=np.arange(n)[keep])],
        )

    ok = extract_features([pylon([range(300, 305)])], Side.LEFT, MASS)
    full = extract_features([RecordingInput.from_arrays(SensorKind.INSTRUMENTED_PYLON, FS, ch)], Side.LEFT, MASS)
    assert ok.values["socket_sagittal_moment_early_stance_nm_per_kg"] == pytest.approx(
        full.values["socket_sagittal_moment_early_stance_nm_per_kg"], abs=0.02
    )
    assert ok.reports[0].timeline is not None and ok.reports[0].timeline.samples_filled == 5
    (viol,) = _rejects(pylon([range(300, 325)])).values()
    assert viol.field == "recordings[0].channel_groups[0].sample_counter" and viol.reason == GAP_TOO_LONG
    assert "'axial_force_n'" in viol.description and "250 ms at 3.00 s" in viol.description


def test_motion_capture_long_gaps_become_marker_gaps() -> None:
    n = 300
    t = np.arange(n) / FS
    heel = {
        "left_heel": np.column_stack([t * 1.2, np.full(n, 0.1), 0.05 + 0.03 * np.sin(2 * np.pi * t)]),
        "right_heel": np.column_stack([t * 1.2, np.full(n, -0.1), 0.05 + 0.03 * np.cos(2 * np.pi * t)]),
    }
    keep = np.ones(n, dtype=bool)
    keep[100:140] = False
    rec = RecordingInput.from_arrays(
        SensorKind.MOTION_CAPTURE,
        FS,
        {"left_heel": heel["left_heel"][keep], "right_heel": heel["right_heel"]},
        groups={"left_heel": "a", "right_heel": "b"},
        channel_groups=[
            ChannelGroupInput("a", sample_counter=np.arange(n)[keep]),
            ChannelGroupInput("b", sample_counter=np.arange(n)),
        ],
    )
    out: list[Violation] = []
    prep = _prepare(0, rec, ExtractionLimits(), out)
    assert not out and prep is not None
    assert np.isnan(prep.signals["left_heel"][100:140]).all() and np.isfinite(prep.signals["left_heel"][:100]).all()


def test_groups_are_refused_where_there_are_no_channels() -> None:
    rec = RecordingInput(
        SensorKind.OBSERVATION,
        observations={"vaulting": "true"},
        channel_groups=(ChannelGroupInput("x", sample_counter=np.arange(3)),),
    )
    v = _rejects(rec)
    assert v["recordings[0].channel_groups"].reason == INVALID_VALUE



def test_foot_yaw_option_values_are_checked() -> None:
    # What "unknown" does is tested on real six-axis walks (tests/realdata/test_realdata_ipol_timelines.py).
    ok = extract_features([RecordingInput.from_arrays(SensorKind.IMU, FS, imu_channels(0.66, 0.66), options={"foot_yaw": "unknown"})], Side.LEFT, MASS)
    assert "stance_time_prosthetic_s" in ok.values
    v = _rejects(RecordingInput.from_arrays(SensorKind.IMU, FS, imu_channels(0.66, 0.66), options={"foot_yaw": "sideways"}))
    assert v["recordings[0].options.foot_yaw"].reason == INVALID_VALUE


def test_timelines_count_toward_the_request_size_limit() -> None:
    rec = _grouped_imu({})
    n = sum(len(c.values) for c in rec.channels)
    with pytest.raises(InvalidInputError) as exc:
        extract_features([rec], Side.LEFT, MASS, limits=ExtractionLimits(max_total_values=n + 10))
    (viol,) = exc.value.violations
    assert viol.field == "recordings" and "channel values sent in total" in viol.description
