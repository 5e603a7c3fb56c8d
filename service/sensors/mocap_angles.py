"""Mocap landmarks + joint angles per side in the gaitkit JSON layout -> features.

Layout (gaitkit example trials): ``fps``, ``angle_frames[]`` each with ``left_/right_knee_angle``
(deg, flexion +), ``left_/right_hip_angle``, ``left_/right_ankle_angle``, ``trunk_angle``,
``pelvis_tilt``, ``is_valid`` and ``landmark_positions`` {``left_/right_`` hip, knee, ankle, heel, toe,
shoulder: [x, y, z] mm}; optional ``ground_truth.hs_frames/to_frames`` {left, right} (used only with
``use_annotated_events=True``: the healthy example has events 14 frames apart). Zero-filled
landmarks (e.g. missing shoulders) are treated as absent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from service.sensors.base import ExtractionResult, FloatArray, Side, coerce_side
from service.sensors.errors import InvalidValueError, MissingChannelError
from service.sensors.mocap import GaitEvents, extract_mocap

LANDMARKS = ("hip", "knee", "ankle", "heel", "toe", "shoulder")


def load_gaitkit(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    try:
        with open(source, encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidValueError("source", f"cannot read gaitkit JSON: {exc}") from exc
    return data


def extract_gaitkit(
    source: str | Path | Mapping[str, Any],
    prosthetic_side: Side | str,
    *,
    use_annotated_events: bool = False,
) -> ExtractionResult:
    side = coerce_side(prosthetic_side)
    data = load_gaitkit(source)
    frames = data.get("angle_frames")
    if not frames:
        raise MissingChannelError("angle_frames", "no frames in the trial")
    fs = float(data.get("fps", 0.0))
    markers: dict[str, FloatArray] = {}
    for s in ("left", "right"):
        for lm in LANDMARKS:
            key = f"{s}_{lm}"
            arr = np.array([f.get("landmark_positions", {}).get(key, [np.nan] * 3) for f in frames], dtype=np.float64)
            arr[~np.array([bool(f.get("is_valid", True)) for f in frames])] = np.nan
            if np.all(~np.isfinite(arr) | (arr == 0.0)):
                continue  # absent or zero-filled landmark
            markers[key] = arr / 1000.0  # mm -> m
    knee = {
        Side.LEFT: np.array([f.get("left_knee_angle", np.nan) for f in frames], dtype=np.float64),
        Side.RIGHT: np.array([f.get("right_knee_angle", np.nan) for f in frames], dtype=np.float64),
    }
    events = None
    gt = data.get("ground_truth") or {}
    if use_annotated_events and gt.get("hs_frames") and gt.get("to_frames"):
        events = GaitEvents(
            {s: tuple(int(i) for i in gt["hs_frames"].get(s.prefix, [])) for s in Side},
            {s: tuple(int(i) for i in gt["to_frames"].get(s.prefix, [])) for s in Side},
        )
    knee_given = {k: v for k, v in knee.items() if np.isfinite(v).any()}
    return extract_mocap(markers, fs, side, events=events, knee_flexion_deg=knee_given or None)


__all__ = ["extract_gaitkit", "load_gaitkit"]
