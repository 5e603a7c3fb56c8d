"""IMU event accuracy on the real recordings in ../shared/data, printed as Markdown tables.

    python -m bench.imu_events                       # IPOL per trial + gaitmap
    python -m bench.imu_events --baseline-rev main   # also gaitmap with another commit's imu.py

IPOL (healthy adults, Xsens MTw Awinda with lost packets): per trial and foot, initial contact (IC)
and toe-off (TC) errors of the service's gyro events against the data set's reference events, on
the PacketCounter timeline the service builds from channel groups, and on the row timeline (rows
taken as samples) for comparison. gaitmap (mocap-referenced events): IC/TC errors and the extracted
features, with this checkout's ``service/sensors/imu.py`` and, side by side in the same run, with
the file as it was at ``--baseline-rev`` (loaded as a separate module), so a change to the
extractor that costs accuracy shows as a difference in one table.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from service.sensors import Side
from service.sensors import imu as current_imu
from tests.realdata import ipol
from tests.realdata.conftest import shared_data_dir
from tests.realdata.test_realdata_imu import GAITMAP_FS, _channels, _gaitmap, _nearest_errors_ms

ROOT = Path(__file__).resolve().parent.parent


def _stats(err_ms: np.ndarray) -> str:
    if err_ms.size == 0:
        return "- | - | -"
    a = np.abs(err_ms)
    return f"{np.median(err_ms):+.0f} | {np.median(a):.0f} | {np.percentile(a, 95):.0f}"


def ipol_table(folder: Path) -> str:
    lines = [
        "| trial | foot | timeline | matched | IC median | IC median abs | IC p95 abs | TC median | TC median abs | TC p95 abs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    all_ic: list[float] = []
    all_tc: list[float] = []
    for name in ipol.trials(folder):
        trial = ipol.load(folder, name)
        for timeline in ("counter", "rows"):
            for side, e in ipol.event_errors(trial, timeline).items():
                if timeline == "counter":
                    all_ic += e.ic_ms.tolist()
                    all_tc += e.tc_ms.tolist()
                lines.append(
                    f"| {name} | {side} | {timeline} | {e.matched}/{e.reference} | {_stats(e.ic_ms)} | {_stats(e.tc_ms)} |"
                )
    lines.append(
        f"| all | both | counter | {len(all_ic)} | {_stats(np.asarray(all_ic))} | {_stats(np.asarray(all_tc))} |"
    )
    return "\n".join(lines)


def _load_imu_at(rev: str) -> ModuleType:
    """``service/sensors/imu.py`` as it was at ``rev``, imported under another name."""
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:service/sensors/imu.py"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="imu-baseline-")) / "imu_baseline.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("imu_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["imu_baseline"] = module
    spec.loader.exec_module(module)
    return module


def gaitmap_rows(label: str, module: ModuleType, data: Path) -> list[str]:
    cols, ev = _gaitmap(data)
    ch = _channels(cols)
    detect: Callable[[np.ndarray, float], Any] = module.detect_foot_events
    rows = []
    for side in ("left", "right"):
        det = detect(ch[f"{side}_foot_gyr_ml"], GAITMAP_FS)
        ref = [e for e in ev if e[0] == side]
        ic = _nearest_errors_ms(np.array(det.ic), np.array([e[3] for e in ref]), GAITMAP_FS)
        tc = _nearest_errors_ms(np.array(det.tc), np.array([e[4] for e in ref]), GAITMAP_FS)
        rows.append(f"| {label} | {side} | {len(ref)} | {_stats(ic)} | {_stats(tc)} |")
    feats = module.extract_imu(ch, GAITMAP_FS, Side.LEFT)
    keys = ("stance_time_prosthetic_s", "stance_time_sound_s", "cadence_steps_per_min", "walking_speed_m_per_s")
    rows.append(
        f"| {label} | features | {feats.strides_used} strides | "
        + ", ".join(f"{k} {feats.features[k]:.4g}" for k in keys)
        + " | | | | | |"
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline-rev", help="also measure gaitmap with service/sensors/imu.py at this git revision")
    args = ap.parse_args(argv)
    data = shared_data_dir()
    if not (data / "ipol-imu-gait").is_dir() or not (data / "gaitmap-example").is_dir():
        print(f"shared data not found under {data} (set ALIGN_SHARED_DATA)", file=sys.stderr)
        return 2
    print("## IPOL: service events vs reference events (ms; detected minus reference)\n")
    print(ipol_table(data / "ipol-imu-gait"))
    print("\n## gaitmap: gyro events vs mocap events (ms)\n")
    print("| imu.py | foot | reference strides | IC median | IC median abs | IC p95 abs | TC median | TC median abs | TC p95 abs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in gaitmap_rows("this checkout", current_imu, data):
        print(row)
    if args.baseline_rev:
        for row in gaitmap_rows(f"at {args.baseline_rev}", _load_imu_at(args.baseline_rev), data):
            print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
