"""Instrumented pylon (6-axis load cell between socket and foot) -> socket reaction features.

Channels (1-D, one sampling rate), either anatomical (what vendor software such as iPecs/Europa
exports) or raw load-cell axes:

- ``axial_force_n`` (+ compression) or ``fz_n`` (z superior; compression reads negative on most
  cells, so we take ``-fz_n`` unless ``compression_positive=True``)
- ``moment_sagittal_nm`` (+ socket flexion) / ``moment_coronal_nm`` (+ varus, lateral thrust)
- or raw ``fx_n``, ``fy_n``, ``mx_nm``, ``my_nm``, ``mz_nm`` in a frame with x anterior, y to the
  person's LEFT, z superior, moments acting on the socket. Then flexion = +my (rotation about +y
  takes the socket top forward) and varus = top of the socket toward lateral: -mx on a left leg,
  +mx on a right leg.

Early/late stance = 30 % / 75 % of each stance, the points where Boone et al. 2013 (Gait Posture
37:620) found coronal socket moments respond to every malalignment (clinical-evidence.md Table C).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from service.sensors.base import (
    G_M_PER_S2,
    ExtractionResult,
    FeatureCollector,
    FloatArray,
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
)
from service.sensors.errors import MissingChannelError, NoCompleteStrideError, RecordingTooShortError

KNOWN_CHANNELS = (
    "axial_force_n",
    "moment_sagittal_nm",
    "moment_coronal_nm",
    "fx_n",
    "fy_n",
    "fz_n",
    "mx_nm",
    "my_nm",
    "mz_nm",
)
EARLY_STANCE_FRACTION = 0.30
LATE_STANCE_FRACTION = 0.75


def _at_fraction(x: FloatArray, on: int, off: int, frac: float) -> float:
    """Mean over +-2 % of stance around ``frac`` (one sample would carry all the noise)."""
    n = off - on
    c = on + frac * n
    half = max(1, round(0.02 * n))
    i = round(c)
    return float(np.mean(x[max(on, i - half) : min(off, i + half + 1)]))


def extract_pylon(
    channels: Mapping[str, object],
    sampling_rate_hz: float,
    prosthetic_side: Side | str,
    body_mass_kg: float,
    *,
    compression_positive: bool = False,
) -> ExtractionResult:
    side = coerce_side(prosthetic_side)
    fs = check_rate(sampling_rate_hz)
    mass = check_body_mass(body_mass_kg)
    assert mass is not None
    check_channels(channels, KNOWN_CHANNELS)
    sig = {k: as_signal(k, v) for k, v in channels.items()}
    n = check_same_length(sig)
    if n < int(1.0 * fs):
        raise RecordingTooShortError("channels", f"need at least 1 s, got {n / fs:.2f} s")
    if "axial_force_n" in sig:
        axial = sig["axial_force_n"]
    elif "fz_n" in sig:
        axial = sig["fz_n"] if compression_positive else -sig["fz_n"]
    else:
        raise MissingChannelError("axial_force_n", "the axial force (axial_force_n or fz_n) is required")
    sagittal = sig.get("moment_sagittal_nm")
    if sagittal is None and "my_nm" in sig:
        sagittal = sig["my_nm"]
    coronal = sig.get("moment_coronal_nm")
    if coronal is None and "mx_nm" in sig:
        coronal = -sig["mx_nm"] if side is Side.LEFT else sig["mx_nm"]

    weight_n = mass * G_M_PER_S2
    # 5 % BW on / 3 % off: above load-cell offset drift, far below any stance load.
    stances, dropped = contact_intervals(axial, 0.05 * weight_n, 0.03 * weight_n, int(0.2 * fs))
    if not stances:
        raise NoCompleteStrideError("axial_force_n", "no complete stance (load above 5 % body weight) found")
    out = FeatureCollector(SensorKind.INSTRUMENTED_PYLON)
    if dropped:
        out.warn(f"{dropped} incomplete or too-short stance(s) at the recording edges dropped")
    ns = len(stances)
    out.add(
        "pylon_axial_force_peak_bw",
        median_or_nan(float(np.max(axial[a:b])) / weight_n for a, b in stances),
        "median over stances of peak axial force / body weight",
        ns,
        Precision.HIGH,
    )
    out.add("stance_time_prosthetic_s", median_or_nan((b - a) / fs for a, b in stances), "axial force > 5 % BW", ns, Precision.HIGH)
    if ns >= 2:
        strides = [(stances[k + 1][0] - stances[k][0]) / fs for k in range(ns - 1)]
        out.add("cadence_steps_per_min", 120.0 / median_or_nan(strides), "120 / median stride (onset to onset)", len(strides), Precision.HIGH)
    for name, moment, frac in (
        ("socket_sagittal_moment_early_stance_nm_per_kg", sagittal, EARLY_STANCE_FRACTION),
        ("socket_sagittal_moment_late_stance_nm_per_kg", sagittal, LATE_STANCE_FRACTION),
        ("socket_coronal_moment_early_stance_nm_per_kg", coronal, EARLY_STANCE_FRACTION),
        ("socket_coronal_moment_late_stance_nm_per_kg", coronal, LATE_STANCE_FRACTION),
    ):
        if moment is None:
            out.warn(f"{name}: no moment channel for this plane")
            continue
        vals = [_at_fraction(moment, a, b, frac) / mass for a, b in stances]
        out.add(name, median_or_nan(vals), f"moment at {int(frac * 100)} % stance / body mass, median", ns, Precision.HIGH)
    return out.result(ns, dropped)


__all__ = ["EARLY_STANCE_FRACTION", "KNOWN_CHANNELS", "LATE_STANCE_FRACTION", "extract_pylon"]
