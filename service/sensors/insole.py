"""Pressure insoles -> stance timing, heel-off and loading peaks.

Channels (N, 1-D, one sampling rate): ``left_total_n`` and ``right_total_n`` (required: total normal
force under each foot), optionally ``left_heel_n`` / ``right_heel_n`` and ``left_forefoot_n`` /
``right_forefoot_n`` (regional sums). Insoles under-read true GRF (they miss shear and part of the
sole), so force peaks carry MEDIUM precision.

Without ``body_mass_kg`` the body weight is estimated as the mean of left + right force over whole
strides: over a full stride the vertical impulse of both feet equals body weight x time.
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
    check_sides_distinct,
    coerce_side,
    contact_intervals,
    median_or_nan,
    two_peaks,
)
from service.sensors.errors import NoCompleteStrideError, RecordingTooShortError, SideMissingError

KNOWN_CHANNELS = tuple(f"{s}_{r}_n" for s in ("left", "right") for r in ("total", "heel", "forefoot"))


def extract_insole(
    channels: Mapping[str, object],
    sampling_rate_hz: float,
    prosthetic_side: Side | str,
    body_mass_kg: float | None = None,
) -> ExtractionResult:
    side = coerce_side(prosthetic_side)
    fs = check_rate(sampling_rate_hz)
    mass = check_body_mass(body_mass_kg, required=False)
    check_channels(channels, KNOWN_CHANNELS)
    for s in Side:
        if f"{s.prefix}_total_n" not in channels:
            raise SideMissingError(f"{s.prefix}_total_n", "total force of both insoles is required")
    sig = {k: as_signal(k, v) for k, v in channels.items()}
    n = check_same_length(sig)
    if n < int(2.0 * fs):
        raise RecordingTooShortError("channels", f"need at least 2 s, got {n / fs:.2f} s")
    out = FeatureCollector(SensorKind.PRESSURE_INSOLE)
    total = {s: sig[f"{s.prefix}_total_n"] for s in Side}
    peak_total = max(float(np.percentile(total[s], 99)) for s in Side)
    # Threshold relative to the recording's own peak (insole offsets and scales vary by vendor).
    stances: dict[Side, list[tuple[int, int]]] = {}
    dropped = 0
    for s in Side:
        st, d = contact_intervals(total[s], 0.05 * peak_total, 0.03 * peak_total, int(0.2 * fs))
        stances[s], dropped = st, dropped + d
        if not st:
            raise NoCompleteStrideError(f"{s.prefix}_total_n", "no complete stance found")
    if mass is not None:
        weight_n = mass * G_M_PER_S2
    else:
        ons = stances[side]
        if len(ons) < 2:
            raise NoCompleteStrideError("channels", "need two prosthetic stances to estimate body weight; give body_mass_kg")
        a, b = ons[0][0], ons[-1][0]
        weight_n = float(np.mean(total[Side.LEFT][a:b] + total[Side.RIGHT][a:b]))
        out.warn(f"body mass not given: body weight estimated as mean insole force over whole strides ({weight_n:.0f} N)")

    role = {side: "prosthetic", side.other: "sound"}
    prec_force = Precision.MEDIUM if mass is not None else Precision.LOW
    for s in Side:
        st = stances[s]
        out.add(f"stance_time_{role[s]}_s", median_or_nan((b - a) / fs for a, b in st), "insole force > 5 % of peak", len(st), Precision.HIGH)
        peaks = [two_peaks(total[s][a:b]) for a, b in st]
        out.add(f"vgrf_loading_peak_{role[s]}_bw", median_or_nan(p[0] / weight_n for p in peaks), "first-half max / BW", len(st), prec_force)
        if s is side:
            out.add("vgrf_push_off_peak_prosthetic_bw", median_or_nan(p[2] / weight_n for p in peaks), "second-half max / BW", len(st), prec_force)
    out.add_asymmetry("stance_time_asymmetry_pct", "stance_time_prosthetic_s", "stance_time_sound_s", Precision.HIGH)
    check_sides_distinct((a for a, _ in stances[Side.LEFT]), (a for a, _ in stances[Side.RIGHT]), "left_total_n/right_total_n", "foot contacts")
    ics = sorted(a for s in Side for a, _ in stances[s])
    steps = np.diff(ics) / fs
    steps = steps[steps > 0]  # an isolated coinciding left/right contact is no step
    if len(ics) >= 3 and steps.size:
        out.add("cadence_steps_per_min", 60.0 / float(np.median(steps)), "60 / median step time (all contacts)", len(steps), Precision.HIGH)
    heel = sig.get(f"{side.prefix}_heel_n")
    if heel is not None:
        pct = []
        for a, b in stances[side]:
            h = heel[a:b]
            i_peak = int(np.argmax(h))
            # Heel-off: heel force falls below 10 % of its own stance peak after that peak.
            below = np.flatnonzero(h[i_peak:] < 0.1 * h[i_peak])
            if h[i_peak] > 0 and below.size:
                pct.append(100.0 * (i_peak + int(below[0])) / (b - a))
        out.add("heel_off_prosthetic_pct_stance", median_or_nan(pct), "heel force < 10 % of its peak", len(pct), Precision.MEDIUM)
    used = sum(len(v) for v in stances.values())
    return out.result(used, dropped)


__all__ = ["KNOWN_CHANNELS", "extract_insole"]
