"""Synthetic gait signals shared by the extraction tests (unit and integration tiers)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def foot_gyr_ml(
    n: int, ics: list[float], stance_s: float, stride_s: float, rng: np.random.Generator, fs: float = 100.0
) -> FloatArray:
    """Foot sagittal gyro in deg/s, ml axis to the LEFT (so toe-up rotation reads negative).

    Textbook shape per stride: a toe-down push-off burst just before toe-off, a broad toe-up swing,
    a short toe-down slap after heel strike, near zero in mid-stance; plus sensor noise."""
    t = np.arange(n) / fs
    sag = rng.normal(0.0, 4.0, n)  # toe-up positive; ~4 deg/s gyro noise
    for ic in ics:
        tc = ic + stance_s
        swing = stride_s - stance_s
        m = (t >= tc - 0.12) & (t < tc)
        sag[m] -= 280 * np.sin(np.pi * (t[m] - (tc - 0.12)) / 0.12)
        m = (t >= tc) & (t < tc + swing)
        sag[m] += 350 * np.sin(np.pi * (t[m] - tc) / swing)
        m = (t >= ic) & (t < ic + 0.08)
        sag[m] -= 140 * np.sin(np.pi * (t[m] - ic) / 0.08)
    return -sag
