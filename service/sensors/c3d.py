"""C3D files (markers + force plates) -> features, via ezc3d (optional dependency, imported lazily).

``read_c3d(path_or_bytes)`` returns a ``C3DData`` (markers in metres, analog channels, plate
geometry). ``extract_c3d(...)`` maps marker labels to canonical landmarks (``r heel``, ``RHEE``,
``R_HEEL`` ... -> ``right_heel``; see ``MARKER_PATTERNS``), assigns each loaded force plate to the
foot whose heel is over it, and merges ``extract_mocap`` (spatiotemporal, kinematics) with
``extract_force_plate`` (stance times from force, GRF peaks). Vertical GRF is taken from each plate's
Fz with the sign that makes the loaded force positive (plates report the force on the plate).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from service.sensors.base import ExtractionResult, FloatArray, Side, coerce_side, merge_results
from service.sensors.errors import InvalidValueError, MissingChannelError, MissingDependencyError
from service.sensors.force_plate import extract_force_plate
from service.sensors.mocap import extract_mocap

# Landmark -> label regex (case-insensitive) after a side prefix "r"/"l"/"right"/"left" and an
# optional separator. First matching label wins.
MARKER_PATTERNS: dict[str, str] = {
    "heel": r"(heel|hee|fcc|cal)",
    "toe": r"(toe|met|mt[1-5]?|fm[1-5])",
    "knee": r"(knee|kne|lfe|lfc)",
    "ankle": r"(ankle|ank|mal|lma)",
    "hip": r"(asis|asi|hip)",
    "shoulder": r"(shoulder|should|sho)",
}


@dataclass(frozen=True)
class ForcePlate:
    """One plate: its analog channel names (Fx..Mz order as in the file) and corners (4 x 3, m)."""

    channels: tuple[str, ...]
    corners_m: FloatArray


@dataclass(frozen=True)
class C3DData:
    markers_m: dict[str, FloatArray]
    marker_rate_hz: float
    analogs: dict[str, FloatArray]
    analog_rate_hz: float
    force_plates: tuple[ForcePlate, ...] = field(default_factory=tuple)


def _ezc3d() -> Any:
    try:
        import ezc3d
    except ImportError as exc:
        raise MissingDependencyError("ezc3d", "reading C3D files") from exc
    return ezc3d


def read_c3d(source: str | Path | bytes) -> C3DData:
    ezc3d = _ezc3d()
    tmp: str | None = None
    try:
        if isinstance(source, bytes):
            # ezc3d reads only from a path; the temp file lives for this call only.
            fd, tmp = tempfile.mkstemp(suffix=".c3d")
            with os.fdopen(fd, "wb") as fh:
                fh.write(source)
            path = tmp
        else:
            path = str(source)
            if not Path(path).is_file():
                raise InvalidValueError("source", f"no such C3D file: {path}")
        try:
            c = ezc3d.c3d(path)
        except Exception as exc:  # ezc3d raises plain RuntimeError/IOError on corrupt files
            raise InvalidValueError("source", f"not a readable C3D file: {exc}") from exc
    finally:
        if tmp is not None:
            os.unlink(tmp)
    p = c["parameters"]
    labels = [str(x) for x in p["POINT"]["LABELS"]["value"]]
    units = str((p["POINT"].get("UNITS", {}).get("value") or ["mm"])[0]).strip().lower()
    scale = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}.get(units, 1e-3)
    pts = np.asarray(c["data"]["points"], dtype=np.float64)
    markers = {lab: pts[:3, i, :].T * scale for i, lab in enumerate(labels)}
    a_labels = [str(x) for x in p["ANALOG"]["LABELS"]["value"]] if "ANALOG" in p else []
    analog_arr = np.asarray(c["data"]["analogs"], dtype=np.float64)
    analogs = {lab: analog_arr[0, i, :] for i, lab in enumerate(a_labels)}
    plates: list[ForcePlate] = []
    fp = p.get("FORCE_PLATFORM")
    if fp and "CHANNEL" in fp:
        chan = np.asarray(fp["CHANNEL"]["value"], dtype=int)
        corners = np.asarray(fp["CORNERS"]["value"], dtype=np.float64)
        for k in range(chan.shape[1]):
            names = tuple(a_labels[i - 1] for i in chan[:, k] if 0 < i <= len(a_labels))
            plates.append(ForcePlate(names, corners[:, :, k].T * scale))
    rate_m = float(np.asarray(p["POINT"]["RATE"]["value"]).ravel()[0])
    rate_a = float(np.asarray(p["ANALOG"]["RATE"]["value"]).ravel()[0]) if "ANALOG" in p else 0.0
    return C3DData(markers, rate_m, analogs, rate_a, tuple(plates))


def map_markers(labels: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Canonical landmark name -> C3D label, by side prefix + keyword (first match wins)."""
    out: dict[str, str] = {}
    for lab in labels:
        low = lab.strip().lower()
        for name in ("c7", "sacrum"):
            if re.fullmatch(rf"{name}|{name[:3]}", low) and name not in out:
                out[name] = lab
        m = re.match(r"^(right|left|r|l)[\s_\-.]*(.*)$", low)
        if not m:
            continue
        side = "right" if m.group(1).startswith("r") else "left"
        rest = m.group(2)
        for lm, pat in MARKER_PATTERNS.items():
            key = f"{side}_{lm}"
            if key not in out and re.match(pat, rest):
                out[key] = lab
    return out


def plate_vertical_force_n(data: C3DData, plate: ForcePlate) -> FloatArray:
    fz = next((ch for ch in plate.channels if ch.lower().startswith("fz")), None)
    if fz is None:
        fz = plate.channels[2] if len(plate.channels) >= 3 else None
    if fz is None or fz not in data.analogs:
        raise MissingChannelError("FORCE_PLATFORM", "plate has no Fz channel")
    f = np.nan_to_num(data.analogs[fz])
    return -f if abs(float(np.min(f))) > abs(float(np.max(f))) else f


def extract_c3d(
    source: str | Path | bytes | C3DData,
    prosthetic_side: Side | str,
    body_mass_kg: float | None = None,
    *,
    marker_map: Mapping[str, str] | None = None,
) -> ExtractionResult:
    side = coerce_side(prosthetic_side)
    data = source if isinstance(source, C3DData) else read_c3d(source)
    mapping = dict(marker_map) if marker_map is not None else map_markers(list(data.markers_m))
    markers = {canon: data.markers_m[lab] for canon, lab in mapping.items() if lab in data.markers_m}
    mocap = extract_mocap(markers, data.marker_rate_hz, side)
    if not data.force_plates or data.analog_rate_hz <= 0:
        return mocap
    n_a = len(next(iter(data.analogs.values())))
    vgrf = {s: np.zeros(n_a) for s in Side}
    used_plate = False
    for plate in data.force_plates:
        f = plate_vertical_force_n(data, plate)
        if float(np.max(f)) < 100.0:
            continue  # unloaded plate
        loaded = np.flatnonzero(f > 20.0)
        mid_s = 0.5 * (loaded[0] + loaded[-1]) / data.analog_rate_hz
        frame = min(round(mid_s * data.marker_rate_hz), len(markers["left_heel"]) - 1)
        centre = plate.corners_m.mean(axis=0)
        dist = {s: float(np.linalg.norm(markers[f"{s.prefix}_heel"][frame] - centre)) for s in Side}
        # The foot standing on the plate at mid-contact is the nearer heel (NaN gap: use the other).
        foot = min(Side, key=lambda s: dist[s] if np.isfinite(dist[s]) else np.inf)
        vgrf[foot] += f
        used_plate = True
    if not used_plate:
        return mocap
    channels = {f"{s.prefix}_vgrf_n": vgrf[s] for s in Side if np.max(vgrf[s]) > 0}
    force = extract_force_plate(channels, data.analog_rate_hz, side, body_mass_kg)
    # Force gives the exact contact times but usually one stance per side; markers cover every
    # stride, so keep marker stance times and take kinetics from the plates.
    return merge_results(mocap, force)


__all__ = ["MARKER_PATTERNS", "C3DData", "ForcePlate", "extract_c3d", "map_markers", "plate_vertical_force_n", "read_c3d"]
