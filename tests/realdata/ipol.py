"""IPOL healthy-adult Xsens trials (../shared/data/ipol-imu-gait, AGPL data read in place, never copied)
as the service receives them: one sensor per channel group, on its PacketCounter timeline.

Xsens MTw on the IPOL feet (dorsum): X points back toward the ankle, Y to the person's right, Z up
out of the foot, so our body frame is pa = -X, ml = -Y, si = +Z (right-handed; checked: gyr_ml gives
the gyro events against the reference, the stride integration gives 1.0-1.5 m/s forward). The
lower-back (L5) sensor is not mapped here: its axes differ (X is up).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service.catalog import SensorKind
from service.extraction import ChannelGroupInput, RecordingInput

FS_HZ = 100.0
FEET = (("left", "lf"), ("right", "rf"))
# Xsens column (0 = PacketCounter; 1-3 Acc_X/Y/Z; 4-6 Gyr_X/Y/Z) and sign for each body axis.
AXIS_COLUMN = {"pa": (1, -1.0), "ml": (2, -1.0), "si": (3, 1.0)}
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class IpolTrial:
    name: str
    # Per foot ("left"/"right"): PacketCounter and the Xsens columns (acc m/s^2, gyr rad/s).
    counter: dict[str, npt.NDArray[np.int64]]
    table: dict[str, FloatArray]
    # Reference [foot-off, foot-strike] pairs per foot, as PacketCounter values.
    events: dict[str, list[list[int]]]


def trials(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.json"))


def load(folder: Path, name: str) -> IpolTrial:
    meta = json.loads((folder / f"{name}.json").read_text())
    counter, table = {}, {}
    for side, suffix in FEET:
        # Line 1 is "Acquisition frequency: 100 Hz", line 2 the column header.
        a = np.loadtxt(folder / f"{name}_{suffix}.txt", skiprows=2)
        counter[side] = a[:, 0].astype(np.int64)
        table[side] = a
    return IpolTrial(name, counter, table, {"left": meta["LeftFootEvents"], "right": meta["RightFootEvents"]})


def foot_channels(trial: IpolTrial, side: str, axes: str = "gyr_ml") -> dict[str, FloatArray]:
    """``axes`` "gyr_ml" (sagittal gyro only) or "all" (acc and gyr, three axes), in m/s^2 and deg/s."""
    a = trial.table[side]
    out: dict[str, FloatArray] = {}
    for q, offset in (("acc", 0), ("gyr", 3)):
        for ax, (col, sign) in AXIS_COLUMN.items():
            if axes == "gyr_ml" and (q, ax) != ("gyr", "ml"):
                continue
            v = sign * a[:, col + offset]
            out[f"{side}_foot_{q}_{ax}"] = np.degrees(v) if q == "gyr" else v
    return out


def recording_input(trial: IpolTrial, axes: str = "gyr_ml", options: dict[str, str] | None = None) -> RecordingInput:
    """Both feet in one IMU recording, each foot a channel group on its own counter."""
    channels: dict[str, FloatArray] = {}
    groups: dict[str, str] = {}
    for side, _ in FEET:
        for name, v in foot_channels(trial, side, axes).items():
            channels[name] = v
            groups[name] = f"{side}_foot"
    cg = [ChannelGroupInput(f"{side}_foot", sample_counter=trial.counter[side]) for side, _ in FEET]
    return RecordingInput.from_arrays(SensorKind.IMU, FS_HZ, channels, groups=groups, channel_groups=cg, options=options)


def recording_proto(trial: IpolTrial, axes: str = "gyr_ml") -> pb.Recording:
    rec = pb.Recording(sensor_kind=pb.SENSOR_KIND_IMU, sampling_rate_hz=FS_HZ)
    for side, _ in FEET:
        rec.channel_groups.add(name=f"{side}_foot", sample_counter=trial.counter[side].tolist())
        for name, v in foot_channels(trial, side, axes).items():
            rec.channels.add(name=name, values=v.tolist(), unit="m/s^2" if "_acc_" in name else "deg/s", group=f"{side}_foot")
    return rec


@dataclass(frozen=True)
class EventErrors:
    """Detected minus reference event times (ms) for the reference events matched to a detection."""

    ic_ms: FloatArray
    tc_ms: FloatArray
    matched: int
    reference: int


def event_errors(trial: IpolTrial, timeline: str = "counter") -> dict[str, EventErrors]:
    """Per foot: the service's gyro events against the reference [foot-off, foot-strike] pairs.

    ``timeline`` "counter": both feet aligned as the service aligns channel groups (align_groups:
    rows at their PacketCounter, lost packets filled); "rows": row k taken as sample k (what a
    client that ignores the counter would send). A reference pair counts as matched when a detected
    initial contact lies within 150 ms of its foot-strike (turns and the stop are not always found)."""
    from service.sensors.imu import detect_foot_events
    from service.sensors.timeline import GroupData, align_groups

    out: dict[str, EventErrors] = {}
    if timeline == "counter":
        groups = [
            GroupData(f"{s}_foot", foot_channels(trial, s), counter=trial.counter[s]) for s, _ in FEET
        ]
        aligned = align_groups(groups, FS_HZ)
        signals, origin = aligned.signals, aligned.start_s * FS_HZ
    else:
        signals = {k: v for s, _ in FEET for k, v in foot_channels(trial, s).items()}
        origin = 0.0
    for side, _ in FEET:
        det = detect_foot_events(signals[f"{side}_foot_gyr_ml"], FS_HZ)
        # Back to counter units (the reference's), then to ms.
        ic = np.asarray(det.ic, dtype=np.float64) + origin
        tc = np.asarray(det.tc, dtype=np.float64) + origin
        pairs = [p for p in trial.events[side] if ic.size and np.min(np.abs(ic - p[1])) <= 15]
        ic_err = np.array([ic[np.argmin(np.abs(ic - p[1]))] - p[1] for p in pairs]) * 1000.0 / FS_HZ
        tc_err = np.array([tc[np.argmin(np.abs(tc - p[0]))] - p[0] for p in pairs]) * 1000.0 / FS_HZ
        out[side] = EventErrors(ic_err, tc_err, len(pairs), len(trial.events[side]))
    return out
