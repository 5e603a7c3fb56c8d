"""The likelihood oracle (training/oracle.py): its posterior on cases with a known answer, the
threshold interpolation, and its rows in the tiny artifact's manifest and card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.oracle import _MIN, _posterior, at_specificity, matched_accuracy


def _candidates() -> tuple[np.ndarray, np.ndarray]:
    """Four candidate corrections over the 7 parameters and their shifts on 3 features."""
    corr = np.zeros((4, 7))
    corr[1, 0] = +2 * _MIN[0]  # increase parameter 0
    corr[2, 0] = -3 * _MIN[0]  # decrease parameter 0
    corr[3, 3] = +0.5 * _MIN[3]  # inside the band: no change needed
    shifts = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-1.5, 0.0, 0.0], [0.0, 0.2, 0.0]])
    return corr, shifts


def test_a_decisive_walk_puts_the_posterior_on_its_candidate() -> None:
    corr, shifts = _candidates()
    precision = np.eye(3) * 1e4
    post, ess = _posterior(np.array([[-1.5, 0.0, 0.0], [1.0, 0.0, 0.0]]), precision, shifts, corr)
    assert post["p_decrease"][0, 0] == pytest.approx(1.0) and post["p_increase"][0, 0] == pytest.approx(0.0)
    assert post["p_increase"][1, 0] == pytest.approx(1.0)
    assert post["magnitude"][0, 0] == pytest.approx(3 * _MIN[0]) and post["magnitude"][1, 0] == pytest.approx(
        2 * _MIN[0]
    )
    # No candidate moves parameter 3 beyond its band: never a needed change there.
    assert post["p_increase"][:, 3].max() == pytest.approx(0.0) and post["p_decrease"][:, 3].max() == pytest.approx(0.0)
    assert ess == pytest.approx([1.0, 1.0])


def test_an_uninformative_walk_returns_the_prior() -> None:
    corr, shifts = _candidates()
    post, ess = _posterior(np.zeros((1, 3)), np.eye(3) * 1e-12, shifts, corr)
    assert post["p_increase"][0, 0] == pytest.approx(0.25) and post["p_decrease"][0, 0] == pytest.approx(0.25)
    assert ess[0] == pytest.approx(4.0)
    # The magnitude is the median among candidates that need a change (2x and 3x min_change).
    assert post["magnitude"][0, 0] in (pytest.approx(2 * _MIN[0]), pytest.approx(3 * _MIN[0]))


def test_accuracy_at_a_specificity_interpolates_and_never_extrapolates() -> None:
    pts = [
        {"specificity": 0.90, "direction_accuracy": 0.50},
        {"specificity": 0.95, "direction_accuracy": 0.40},
        {"specificity": None, "direction_accuracy": 0.10},
    ]
    assert at_specificity(pts, 0.925) == pytest.approx(0.45)
    # Two thresholds with one specificity: the better accuracy is the curve's point.
    assert at_specificity([*pts, {"specificity": 0.90, "direction_accuracy": 0.30}], 0.90) == pytest.approx(0.50)
    assert at_specificity(pts, 0.95) == pytest.approx(0.40)
    assert at_specificity(pts, 0.97) is None and at_specificity(pts, None) is None


def test_the_oracle_rows_are_in_the_manifest_and_card(artifact_dir: Path) -> None:
    m = json.loads((artifact_dir / "manifest.json").read_text())
    o = m["oracle"]
    assert o["walks"] == 120 and o["changes_needed"] > 0 and o["well_aligned_walks"] > 0
    for key in ("model", "oracle", "oracle_known_baseline", "model_reference", "oracle_reference"):
        r = o[key]
        for k in ("direction_accuracy", "sign_accuracy_given_change", "specificity", "ece"):
            assert 0.0 <= r[k] <= 1.0, (key, k, r[k])
        assert r["magnitude_mae_deg"] > 0 and r["magnitude_mae_mm"] > 0
        assert len(r["operating_points"]) >= 2
    # More information cannot make the oracle worse at telling the way of a needed change.
    assert o["oracle_known_baseline"]["sign_accuracy_given_change"] >= o["oracle"]["sign_accuracy_given_change"]
    assert (
        1.0 <= o["oracle"]["effective_candidates_p10"] <= o["oracle"]["effective_candidates_median"] <= o["candidates"]
    )
    card = (artifact_dir / "model_card.md").read_text()
    assert "## How close is the model to the best possible?" in card
    assert (
        "| likelihood oracle + the patient's own aligned gait |" in card
        and "| likelihood oracle + reference walk |" in card
    )
    assert set(o["matched"]) == {"oracle", "oracle_known_baseline", "oracle_reference"}


def test_matched_accuracy_compares_at_one_specificity_or_not_at_all() -> None:
    def curve(spec_default: float, *pts: tuple[float, float]) -> dict[str, object]:
        return {
            "specificity": spec_default,
            "operating_points": [{"specificity": s, "direction_accuracy": a} for s, a in pts],
        }

    model = curve(0.96, (0.95, 0.40), (0.96, 0.38), (0.98, 0.30))
    assert matched_accuracy(model, curve(0.94, (0.93, 0.50), (0.97, 0.40))) == pytest.approx(
        {"specificity": 0.96, "model": 0.38, "oracle": 0.425}
    )
    # The model's specificity is off the oracle's curve: compare at the oracle's own.
    assert matched_accuracy(model, curve(0.97, (0.965, 0.45), (0.975, 0.41))) == pytest.approx(
        {"specificity": 0.97, "model": 0.34, "oracle": 0.43}
    )
    assert matched_accuracy(model, curve(0.99, (0.99, 0.2), (0.995, 0.1))) is None


def test_the_recorded_pipeline_time_includes_the_closed_loop_and_the_oracle(artifact_dir: Path) -> None:
    """The 3-minute budget is for all of `python -m training all`: the time is taken at the end."""
    m = json.loads((artifact_dir / "manifest.json").read_text())
    assert m["pipeline_seconds"] >= m["oracle"]["seconds"] > 0
    assert (
        f"`python -m training all` took {m['pipeline_seconds']:.0f} s." in (artifact_dir / "model_card.md").read_text()
    )
