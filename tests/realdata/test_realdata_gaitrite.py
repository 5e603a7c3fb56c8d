"""GAITRite walkway summaries from 13 lower-limb amputees: check our range assumptions.

Values are one number per try (not signals). Ranges come from service.catalog when it exists (its
physiological valid ranges); otherwise the fallback ranges below. Velocity is skipped: the authors
say cm/s but the values are 1.3-6.8, so its unit is unknown (README).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.realdata.conftest import need

# Fallback plausible ranges for adult prosthesis users (stated here so they are auditable).
FALLBACK_M = {"step_length_sound_m": (0.2, 1.2), "stance_time_prosthetic_s": (0.4, 1.6)}
STEP_LENGTH_DIFF_CM = (-10.0, 40.0)  # README: differences 0-35 cm; authors' SEM 5.1 cm
STANCE_DIFF_S = (-0.3, 0.3)  # affected - unaffected; GAITRite at 80 Hz -> noisy


def _values(path: Path) -> np.ndarray:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    vals = [float(r[k]) for r in rows for k in ("M0", "M1", "M2", "M3") if r.get(k, "").strip() not in ("", "nan", "NA")]
    return np.array([v for v in vals if np.isfinite(v)])


def _range(name: str) -> tuple[float, float]:
    try:
        from service import catalog
    except ImportError:
        return FALLBACK_M[name]
    spec = next((f for f in getattr(catalog, "FEATURES", ()) if f.name == name), None)
    return (spec.min_value, spec.max_value) if spec is not None else FALLBACK_M[name]


def test_gaitrite_values_inside_catalog_ranges(data_dir: Path) -> None:
    d = need(data_dir / "amputee-gaitrite-summary")
    step_m = _values(d / "StepLengthUL_M0_M1_M2_M3_wide.csv") / 100.0
    stance = _values(d / "StanceTimeAL_M0_M1_M2_M3_wide.csv")
    lo, hi = _range("step_length_sound_m")
    assert step_m.size > 100 and np.all((step_m >= lo) & (step_m <= hi)), (lo, hi, step_m.min(), step_m.max())
    assert np.all((step_m >= FALLBACK_M["step_length_sound_m"][0]) & (step_m <= FALLBACK_M["step_length_sound_m"][1]))
    lo, hi = _range("stance_time_prosthetic_s")
    assert stance.size > 100 and np.all((stance >= lo) & (stance <= hi)), (lo, hi, stance.min(), stance.max())
    print(f"GAITRite: sound step {step_m.min():.2f}-{step_m.max():.2f} m, prosthetic stance {stance.min():.2f}-{stance.max():.2f} s")


def test_gaitrite_asymmetries_plausible(data_dir: Path) -> None:
    d = need(data_dir / "amputee-gaitrite-summary")
    diff_cm = _values(d / "StepLengthDiff_M0_M1_M2_M3_wide.csv")
    st_diff = _values(d / "StanceT_diff_M0_M1_M2_M3_wide.csv")
    assert np.all((diff_cm >= STEP_LENGTH_DIFF_CM[0]) & (diff_cm <= STEP_LENGTH_DIFF_CM[1]))
    assert np.all((st_diff >= STANCE_DIFF_S[0]) & (st_diff <= STANCE_DIFF_S[1]))
    # As asymmetry % (catalog valid range -150..150): diff / mean step length, well inside.
    sound = _values(d / "StepLengthUL_M0_M1_M2_M3_wide.csv")
    asym = 100 * np.median(diff_cm) / np.median(sound)
    print(f"GAITRite: step-length diff {diff_cm.min():.1f}..{diff_cm.max():.1f} cm (median asymmetry ~{asym:.0f} %), stance diff {st_diff.min():.2f}..{st_diff.max():.2f} s")
    assert -150 < asym < 150
    _ = pytest
