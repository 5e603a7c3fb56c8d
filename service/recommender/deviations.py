"""Stage 1: noise-aware deviations, per feature of every assessment of the batch.

A feature's z counts the measurement error of the sensor that sent it (DESIGN 3.3): the same value is a
smaller deviation from a video estimate than from motion capture. With the catalog's normative SD
(between prosthesis users) and the sensor's error SD (catalog.noise_sd, from its single-walk ICC):

    z = (value - normative mean) / sqrt(normative sd**2 + error sd**2)

A value sent without a sensor is read as coming from the feature's typical sensor (its first catalog
source).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.catalog import FEATURES, SENSOR_ORDER, AmputationLevel, noise_sd, typical_source
from service.domain import FloatArray
from service.recommender.policy import Policy

LEVELS = (AmputationLevel.TRANSTIBIAL, AmputationLevel.TRANSFEMORAL)
N_FEATURES = len(FEATURES)
MEAN = np.stack([np.array([f.normative[lvl].mean for f in FEATURES]) for lvl in LEVELS])  # [L, F]
SD = np.stack([np.array([f.normative[lvl].sd for f in FEATURES]) for lvl in LEVELS])  # [L, F]


def _effective_sd() -> FloatArray:
    """[L, 1 + sensors, F]: sqrt(sd**2 + error**2); index 0 is "no sensor named" (the typical one)."""
    out = np.empty((len(LEVELS), 1 + len(SENSOR_ORDER), N_FEATURES))
    for li, lvl in enumerate(LEVELS):
        for fi, f in enumerate(FEATURES):
            sd = f.normative[lvl].sd
            out[li, 0, fi] = float(np.hypot(sd, noise_sd(typical_source(f), f, lvl)))
            for k, kind in enumerate(SENSOR_ORDER, start=1):
                out[li, k, fi] = float(np.hypot(sd, noise_sd(kind, f, lvl)))
    return out


EFFECTIVE_SD = _effective_sd()


@dataclass(frozen=True, slots=True)
class Deviations:
    """Per assessment r and catalog feature i (arrays [n, F])."""

    level_index: npt.NDArray[np.intp]  # [n] index into LEVELS
    present: npt.NDArray[np.bool_]
    z: FloatArray  # noise-aware; 0 where absent
    sd: FloatArray  # the effective SD the z divides by
    listed: npt.NDArray[np.bool_]  # |z| >= deviation_z
    clear: npt.NDArray[np.bool_]  # |z| >= clear_deviation_z: must be explained


def effective_sd(level_index: npt.NDArray[np.intp], source_codes: npt.NDArray[np.int8] | None) -> FloatArray:
    """[n, F] effective SD of each value, by its level and sending sensor."""
    if source_codes is None:
        return EFFECTIVE_SD[level_index, 0, :]
    cols = np.arange(N_FEATURES)[None, :]
    return EFFECTIVE_SD[level_index[:, None], source_codes.astype(np.intp) + 1, cols]


def walk_z(values: FloatArray, level_index: npt.NDArray[np.intp], sd: FloatArray) -> FloatArray:
    """Noise-aware z of a walk's values (NaN where absent)."""
    z: FloatArray = (values - MEAN[level_index]) / sd
    return z


def deviations(
    values: FloatArray, level_index: npt.NDArray[np.intp], source_codes: npt.NDArray[np.int8] | None, policy: Policy
) -> Deviations:
    sd = effective_sd(level_index, source_codes)
    present = ~np.isnan(values)
    z = np.where(present, walk_z(values, level_index, sd), 0.0)
    az = np.abs(z)
    return Deviations(level_index, present, z, sd, az >= policy.deviation_z, az >= policy.clear_deviation_z)


def _noise_ratio_table() -> FloatArray:
    """[L, 1 + sensors, F]: a value's measurement-error SD over its effective SD (its error in z units)."""
    out = np.empty_like(EFFECTIVE_SD)
    for li, lvl in enumerate(LEVELS):
        for fi, f in enumerate(FEATURES):
            out[li, 0, fi] = noise_sd(typical_source(f), f, lvl) / EFFECTIVE_SD[li, 0, fi]
            for k, kind in enumerate(SENSOR_ORDER, start=1):
                out[li, k, fi] = noise_sd(kind, f, lvl) / EFFECTIVE_SD[li, k, fi]
    return out


NOISE_RATIO = _noise_ratio_table()


def noise_ratio(level_index: npt.NDArray[np.intp], source_codes: npt.NDArray[np.int8] | None) -> FloatArray:
    """[n, F] each value's measurement error in z units, by its level and sending sensor."""
    if source_codes is None:
        return NOISE_RATIO[level_index, 0, :]
    cols = np.arange(N_FEATURES)[None, :]
    return NOISE_RATIO[level_index[:, None], source_codes.astype(np.intp) + 1, cols]
