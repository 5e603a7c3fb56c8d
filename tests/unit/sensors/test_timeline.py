"""service.sensors.timeline and the IMU's gap handling on made-up signals (pure numpy, no real data)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from service.sensors import Side, extract_imu
from service.sensors.timeline import GroupData, TimelineError, align_groups
from tests.synthetic_gait import foot_gyr_ml

FS = 100.0
FloatArray = npt.NDArray[np.float64]


def _drop(counter: npt.NDArray[np.int64], values: FloatArray, lost: list[range]) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Remove the samples whose counter lies in one of ``lost`` (a receiver that lost packets)."""
    keep = np.ones(len(counter), dtype=bool)
    for r in lost:
        keep &= ~np.isin(counter, np.asarray(r))
    return counter[keep], values[keep]


def test_short_gaps_are_filled_by_interpolation_and_reported() -> None:
    full = np.arange(100, dtype=np.int64)
    ramp = 3.0 * full.astype(np.float64)  # linear, so interpolation must restore it exactly
    c, v = _drop(full, ramp, [range(20, 23), range(50, 60)])  # 30 ms and 100 ms (the limit)
    out = align_groups([GroupData("a", {"x": v}, counter=c)], FS, max_fill_s=0.1)
    np.testing.assert_allclose(out.signals["x"], ramp)
    assert out.unreliable == {}
    (g,) = out.groups
    assert [(gap.start_s, gap.samples_missing, gap.filled) for gap in g.gaps] == [(0.20, 3, True), (0.50, 10, True)]
    assert g.samples_filled == 13 and g.samples_unfilled == 0 and out.samples_filled == 13
    assert g.longest_gap_s == pytest.approx(0.1)
    assert g.samples_received == 87


def test_a_gap_longer_than_the_limit_is_marked_unreliable_exactly() -> None:
    full = np.arange(200, dtype=np.int64)
    sig = np.sin(full / 7.0)
    c, v = _drop(full, sig, [range(80, 91)])  # 11 samples: 110 ms > 100 ms
    out = align_groups([GroupData("a", {"x": v}, counter=c)], FS, max_fill_s=0.1)
    bad = out.unreliable["x"]
    assert np.flatnonzero(bad).tolist() == list(range(80, 91))
    (gap,) = out.groups[0].gaps
    assert not gap.filled and gap.samples_missing == 11 and gap.duration_s == pytest.approx(0.11)
    assert out.groups[0].samples_unfilled == 11 and out.samples_filled == 0
    # Measured samples are placed at their counter, untouched.
    np.testing.assert_array_equal(out.signals["x"][~bad], v)


def test_groups_of_different_lengths_and_starts_share_their_common_span() -> None:
    a = np.arange(5, 300, dtype=np.int64)  # starts 50 ms late
    b = np.arange(0, 280, dtype=np.int64)  # stops 200 ms early
    b_c, b_v = _drop(b, b * 1.0, [range(100, 104)])
    out = align_groups(
        [GroupData("a", {"a1": a * 2.0, "a2": -a * 1.0}, counter=a), GroupData("b", {"b1": b_v}, counter=b_c)], FS
    )
    assert out.start_s == pytest.approx(0.05) and out.end_s == pytest.approx(2.79)
    assert {len(x) for x in out.signals.values()} == {275}
    # Grid sample k is counter 5 + k in both groups: the two sensors line up on time, not on rows.
    np.testing.assert_allclose(out.signals["a1"] / 2.0, out.signals["b1"])
    assert out.time_s(10) == pytest.approx(0.15)
    assert out.group_of == {"a1": "a", "a2": "a", "b1": "b"}


def test_ungrouped_channels_use_the_uniform_timeline() -> None:
    out = align_groups([GroupData("", {"x": np.arange(50.0)})], FS)
    assert out.start_s == 0.0 and out.n_samples == 50 and out.groups[0].gaps == ()


def test_a_wrapping_counter_is_unwrapped_with_its_modulus() -> None:
    full = np.arange(65530, 65560, dtype=np.int64)
    c, v = _drop(full, full * 1.0, [range(65534, 65538)])
    wrapped = c % 65536
    out = align_groups([GroupData("a", {"x": v}, counter=wrapped, counter_modulus=65536)], FS)
    np.testing.assert_allclose(out.signals["x"], full * 1.0)
    assert [g.samples_missing for g in out.groups[0].gaps] == [4]
    with pytest.raises(TimelineError, match="counter_modulus"):
        align_groups([GroupData("a", {"x": v}, counter=wrapped)], FS)


def test_jittered_sample_times_are_resampled_without_inventing_gaps() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(300) / FS + rng.uniform(-0.002, 0.002, 300)
    out = align_groups([GroupData("a", {"x": 5.0 * t}, times_s=t)], FS)
    assert out.groups[0].gaps == ()
    np.testing.assert_allclose(out.signals["x"], 5.0 * (out.start_s + np.arange(out.n_samples) / FS))
    t_gap = np.delete(t, np.arange(100, 125))  # 250 ms lost
    out = align_groups([GroupData("a", {"x": t_gap}, times_s=t_gap)], FS)
    (gap,) = out.groups[0].gaps
    assert gap.samples_missing == 25 and not gap.filled


@pytest.mark.parametrize(
    ("group", "match"),
    [
        (GroupData("a", {"x": np.zeros(5)}, counter=np.array([0, 1, 3, 2, 4])), "must increase"),
        (GroupData("a", {"x": np.zeros(5)}, counter=np.arange(4)), "4 entries but its channels have 5"),
        (GroupData("a", {"x": np.zeros(4)}, counter=np.arange(4), times_s=np.arange(4) / FS), "not both"),
        (GroupData("a", {"x": np.zeros(4)}, times_s=np.array([0.0, 0.01, np.nan, 0.03])), "finite"),
        (GroupData("a", {"x": np.zeros(4)}, times_s=np.arange(4) / 50.0), "sampling_rate_hz 100"),
        (GroupData("a", {"x": np.zeros(4), "y": np.zeros(5)}, counter=np.arange(4)), "equal lengths"),
    ],
)
def test_bad_timelines_are_refused_with_the_group_named(group: GroupData, match: str) -> None:
    with pytest.raises(TimelineError, match=match) as exc:
        align_groups([group], FS)
    assert exc.value.field == "a"


def test_groups_that_never_overlap_and_huge_counter_jumps_are_refused() -> None:
    a = GroupData("a", {"x": np.zeros(10)}, counter=np.arange(10))
    b = GroupData("b", {"y": np.zeros(10)}, counter=np.arange(20, 30))
    with pytest.raises(TimelineError, match="do not overlap"):
        align_groups([a, b], FS)
    jump = GroupData("a", {"x": np.zeros(3)}, counter=np.array([0, 1, 10**12]))
    with pytest.raises(TimelineError, match="more than 1000 values"):
        align_groups([jump], FS, max_values=1000)


# ------------------------------------------------------------------------------ the IMU with gaps
def _walk(seed: int = 2, dur: float = 20.0, stride: float = 1.1) -> tuple[dict[str, FloatArray], list[float]]:
    rng = np.random.default_rng(seed)
    n = int(dur * FS)
    ics_l = [0.5 + k * stride for k in range(int((dur - 2.0) / stride))]
    return {
        "left_foot_gyr_ml": foot_gyr_ml(n, ics_l, 0.66, stride, rng),
        "right_foot_gyr_ml": foot_gyr_ml(n, [x + stride / 2 for x in ics_l], 0.66, stride, rng),
    }, ics_l


def test_imu_with_lost_packets_on_both_feet_matches_the_lossless_walk() -> None:
    ch, _ = _walk()
    n = len(ch["left_foot_gyr_ml"])
    rng = np.random.default_rng(7)
    groups = []
    for side, runs in (("left", 60), ("right", 45)):
        full = np.arange(n, dtype=np.int64)
        # Up to ~10 % of packets lost in runs of 1-6 (as in the IPOL trials), different per foot; runs
        # start on a 20-sample grid so that two never merge into one gap above the limit.
        starts = 20 * rng.choice(n // 20 - 1, runs, replace=False) + 1
        lost = [range(s, s + int(rng.integers(1, 7))) for s in starts]
        c, v = _drop(full, ch[f"{side}_foot_gyr_ml"], lost)
        groups.append(GroupData(f"{side}_foot", {f"{side}_foot_gyr_ml": v}, counter=c))
    assert len(groups[0].signals["left_foot_gyr_ml"]) != len(groups[1].signals["right_foot_gyr_ml"])
    aligned = align_groups(groups, FS)
    assert aligned.unreliable == {} and aligned.samples_filled > 100
    lossy = extract_imu(aligned.signals, FS, Side.LEFT, unreliable=aligned.unreliable)
    clean = extract_imu(ch, FS, Side.LEFT)
    for name in ("stance_time_prosthetic_s", "stance_time_sound_s", "cadence_steps_per_min"):
        assert lossy.features[name] == pytest.approx(clean.features[name], abs=0.011 if "stance" in name else 1.0)
    assert lossy.gap_drops == ()


def test_imu_drops_exactly_the_strides_a_long_gap_touches_and_names_them() -> None:
    ch, ics_l = _walk()
    n = len(ch["left_foot_gyr_ml"])
    full = np.arange(n, dtype=np.int64)
    # 300 ms lost on the left foot in the swing of the stride starting at ics_l[6].
    start = int((ics_l[6] + 0.75) * FS)
    c, v = _drop(full, ch["left_foot_gyr_ml"], [range(start, start + 30)])
    aligned = align_groups(
        [
            GroupData("left_foot", {"left_foot_gyr_ml": v}, counter=c),
            GroupData("right_foot", {"right_foot_gyr_ml": ch["right_foot_gyr_ml"]}, counter=full),
        ],
        FS,
    )
    assert np.flatnonzero(aligned.unreliable["left_foot_gyr_ml"]).tolist() == list(range(start, start + 30))
    res = extract_imu(aligned.signals, FS, Side.LEFT, unreliable=aligned.unreliable)
    clean = extract_imu(ch, FS, Side.LEFT)
    assert res.gap_drops, "the stride across the gap must be dropped"
    for d in res.gap_drops:
        assert d.side is Side.LEFT and d.channel == "left_foot_gyr_ml"
        assert d.start_sample - 5 <= start + 30 and start <= d.end_sample + 5  # overlaps (with margin)
    assert len(res.gap_drops) <= 2
    assert res.strides_used == clean.strides_used - len(res.gap_drops)
    assert res.strides_dropped == clean.strides_dropped + len(res.gap_drops)
    assert res.features["stance_time_prosthetic_s"] == pytest.approx(clean.features["stance_time_prosthetic_s"], abs=0.011)


def test_imu_without_an_unreliable_mask_is_unchanged() -> None:
    ch, _ = _walk()
    a = extract_imu(ch, FS, Side.RIGHT)
    b = extract_imu(ch, FS, Side.RIGHT, unreliable={})
    assert a.features == b.features and a.strides_used == b.strides_used and b.gap_drops == ()


def test_a_million_lost_samples_are_counted_fast_and_listed_only_up_to_the_cap() -> None:
    from service.sensors.timeline import MAX_GAPS_LISTED

    n = 400_000
    c = np.arange(0, 2 * n, 2, dtype=np.int64)  # every other packet lost: n - 1 one-sample gaps
    out = align_groups([GroupData("a", {"x": np.ones(n)}, counter=c)], FS)
    (g,) = out.groups
    assert g.gap_count == n - 1 and g.samples_filled == n - 1 and len(g.gaps) == MAX_GAPS_LISTED
    assert g.longest_gap_s == pytest.approx(0.01) and g.first_unfilled is None


def test_the_first_unfilled_gap_is_found_beyond_the_listed_ones() -> None:
    from service.sensors.timeline import MAX_GAPS_LISTED

    c = np.arange(0, 2 * (MAX_GAPS_LISTED + 10), 2, dtype=np.int64)
    c = np.concatenate([c, c[-1] + 50 + np.arange(10)])  # then 490 ms lost
    out = align_groups([GroupData("a", {"x": np.zeros(len(c))}, counter=c)], FS)
    (g,) = out.groups
    assert all(gap.filled for gap in g.gaps) and g.unfilled_gap_count == 1
    assert g.first_unfilled is not None and g.first_unfilled.samples_missing == 49
    assert g.samples_unfilled == 49 and int(out.unreliable["x"].sum()) == 49


def test_a_repeated_counter_value_is_a_glitch_whose_repeat_is_not_used() -> None:
    # As in IPOL trial 11-1: packet 308 arrives twice with different values.
    c = np.r_[np.arange(0, 309), np.arange(308, 400)].astype(np.int64)
    v = np.arange(len(c), dtype=np.float64)
    v[309] = 1e3  # the repeat; it must not appear in the result
    out = align_groups([GroupData("a", {"x": v}, counter=c, counter_modulus=65536)], FS)
    (g,) = out.groups
    assert out.n_samples == 400 and float(out.signals["x"].max()) < 1e3
    assert g.samples_repeated == 1 and g.first_repeated_counter == 308 and g.samples_received == 401
    assert g.gap_count == 0
    many = np.repeat(np.arange(100, dtype=np.int64), 2)
    with pytest.raises(TimelineError, match="repeats the previous value 100 times"):
        align_groups([GroupData("a", {"x": np.zeros(200)}, counter=many)], FS)
