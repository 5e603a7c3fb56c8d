"""Vertical ground reaction force per foot (force plates) -> stance times and GRF peaks.

Channels (N, 1-D, one sampling rate): ``left_vgrf_n`` and/or ``right_vgrf_n``: vertical force under
each foot, positive upward on the body (sum of the plates that foot stood on; 0 elsewhere). Force
plates usually capture one stance per foot per pass, so a side without a complete stance is simply
left out (with a warning), not an error.

Body weight: ``body_mass_kg`` if given. Otherwise estimated from the stance impulse: in steady
walking each foot's vertical impulse per stance equals body weight x step time (the two feet share
one stride's impulse BW x stride time), with the step time taken between the two heel strikes. That
estimate is flagged in the warnings and lowers the precision of the BW-normalised peaks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from service.sensors.base import (
    G_M_PER_S2,
    ExtractionResult,
    FeatureCollector,
    Precision,
    SensorKind,
    Side,
    as_signal,
    check_body_mass,
    check_channels,
    check_rate,
    check_same_length,
    coerce_side,
    contact_intervals,
    median_or_nan,
    two_peaks,
)
from service.sensors.errors import InvalidValueError, NoCompleteStrideError

KNOWN_CHANNELS = ("left_vgrf_n", "right_vgrf_n")
CONTACT_THRESHOLD_N = 20.0  # common force-plate event threshold (10-20 N): above plate noise


def estimate_body_weight_n(
    stance_impulse_n_s: float, step_time_s: float
) -> float:
    """Body weight from one stance impulse and the step time (see module docstring)."""
    if step_time_s <= 0:
        raise InvalidValueError("step_time_s", "must be positive")
    return stance_impulse_n_s / step_time_s


def extract_force_plate(
    channels: Mapping[str, object],
    sampling_rate_hz: float,
    prosthetic_side: Side | str,
    body_mass_kg: float | None = None,
) -> ExtractionResult:
    side = coerce_side(prosthetic_side)
    fs = check_rate(sampling_rate_hz)
    mass = check_body_mass(body_mass_kg, required=False)
    check_channels(channels, KNOWN_CHANNELS)
    sig = {k: as_signal(k, v) for k, v in channels.items()}
    check_same_length(sig)
    out = FeatureCollector(SensorKind.FORCE_PLATE)
    stances: dict[Side, list[tuple[int, int]]] = {}
    dropped = 0
    for s in Side:
        f = sig.get(f"{s.prefix}_vgrf_n")
        if f is None:
            stances[s] = []
            continue
        st, d = contact_intervals(np.nan_to_num(f), CONTACT_THRESHOLD_N, CONTACT_THRESHOLD_N, int(0.15 * fs))
        stances[s], dropped = st, dropped + d
    if not stances[Side.LEFT] and not stances[Side.RIGHT]:
        raise NoCompleteStrideError("channels", f"no complete stance (vertical force > {CONTACT_THRESHOLD_N} N) on any plate")
    for s in Side:
        if not stances[s]:
            out.warn(f"no complete {s.prefix} stance on the plates: {s.prefix}-side features missing")

    if mass is not None:
        weight_n = mass * G_M_PER_S2
        prec = Precision.HIGH
    else:
        if not (stances[Side.LEFT] and stances[Side.RIGHT]):
            raise InvalidValueError("body_mass_kg", "needed: cannot estimate body weight without one stance per foot")
        estimates = []
        for a0, b0 in stances[Side.LEFT]:
            for a1, b1 in stances[Side.RIGHT]:
                first, second = ((a0, b0), (a1, b1)) if a0 < a1 else ((a1, b1), (a0, b0))
                step_s = (second[0] - first[0]) / fs
                # Consecutive steps only: the second foot lands while the first is still down.
                if 0.0 < second[0] < first[1] and step_s < 1.0:
                    for (a, b), key in (((a0, b0), "left_vgrf_n"), ((a1, b1), "right_vgrf_n")):
                        impulse = float(np.sum(sig[key][a:b])) / fs
                        estimates.append(estimate_body_weight_n(impulse, step_s))
        if not estimates:
            raise InvalidValueError("body_mass_kg", "needed: the two plate contacts are not consecutive steps")
        weight_n = float(np.mean(estimates))
        prec = Precision.LOW
        out.warn(
            f"body mass not given: body weight estimated from stance impulse / step time = {weight_n:.0f} N "
            f"({weight_n / G_M_PER_S2:.1f} kg); BW-normalised peaks are approximate"
        )

    role = {side: "prosthetic", side.other: "sound"}
    for s in Side:
        st = stances[s]
        if not st:
            continue
        f = sig[f"{s.prefix}_vgrf_n"]
        out.add(f"stance_time_{role[s]}_s", median_or_nan((b - a) / fs for a, b in st), f"vGRF > {CONTACT_THRESHOLD_N} N", len(st), Precision.HIGH)
        peaks = [two_peaks(f[a:b]) for a, b in st]
        out.add(f"vgrf_loading_peak_{role[s]}_bw", median_or_nan(p[0] / weight_n for p in peaks), "first-half vGRF max / BW", len(st), prec)
        if s is side:
            out.add("vgrf_push_off_peak_prosthetic_bw", median_or_nan(p[2] / weight_n for p in peaks), "second-half vGRF max / BW", len(st), prec)
            pct = []
            for a, b in st:
                if b - a < 4:  # too few samples for two halves (a very low sampling rate): no proxy
                    continue
                # Heel-off proxy from force alone: the trough between the two peaks is mid-stance
                # unloading; heel rise starts where the force climbs back through the trough level.
                i1 = int(np.argmax(f[a : a + (b - a) // 2]))
                i2 = (b - a) // 2 + int(np.argmax(f[a + (b - a) // 2 : b]))
                if i2 - i1 > 2:
                    pct.append(100.0 * (i1 + int(np.argmin(f[a + i1 : a + i2]))) / (b - a))
            out.add("heel_off_prosthetic_pct_stance", median_or_nan(pct), "vGRF mid-stance trough as % stance (proxy)", len(pct), Precision.LOW)
    out.add_asymmetry("stance_time_asymmetry_pct", "stance_time_prosthetic_s", "stance_time_sound_s", Precision.HIGH)
    return out.result(len(stances[Side.LEFT]) + len(stances[Side.RIGHT]), dropped)


__all__ = ["CONTACT_THRESHOLD_N", "KNOWN_CHANNELS", "estimate_body_weight_n", "extract_force_plate"]
