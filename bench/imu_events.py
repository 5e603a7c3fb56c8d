"""IMU event accuracy on the real recordings in ../shared/data, printed as Markdown tables.

    python -m bench.imu_events                       # IPOL per trial + gaitmap
    python -m bench.imu_events --baseline-rev main   # also gaitmap with another commit's imu.py
    python -m bench.imu_events --ipol-dir <GaitData> --answers   # another copy of IPOL, e.g. all 110
                                                                 # trials; also ask a real server

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


def ipol_table(folder: Path, rows: bool = True) -> str:
    lines = [
        "| trial | foot | timeline | matched | IC median | IC median abs | IC p95 abs | TC median | TC median abs | TC p95 abs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    all_ic: list[float] = []
    all_tc: list[float] = []
    for name in ipol.trials(folder):
        trial = ipol.load(folder, name)
        for timeline in ("counter", "rows") if rows else ("counter",):
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


def answers(folder: Path) -> str:
    """Every trial through ``RecommendFromRecordings`` on an in-process server on 127.0.0.1, both
    feet in one recording as channel groups, each foot once as the prosthetic side, with the sagittal
    gyros only and with all six axes (4 requests per trial). Counts answers, errors, adjustments."""
    import grpc

    from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
    from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
    from service._generated.prosthetic_alignment.v1 import alignment_service_pb2_grpc as spb_grpc
    from service.api.server import build_server
    from service.settings import Settings

    counts: dict[str, int] = {"requests": 0, "answered": 0, "with adjustments": 0}
    errors: dict[str, list[str]] = {}
    adjusted: list[str] = []
    filled = 0
    dropped_for_gaps = 0
    running = build_server(
        Settings(address="127.0.0.1:0", models_dir=ROOT / "models", workers=1, metrics_port=0), serve_metrics=False
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = spb_grpc.AlignmentServiceStub(channel)  # type: ignore[no-untyped-call]
            for name in ipol.trials(folder):
                trial = ipol.load(folder, name)
                for axes in ("gyr_ml", "all"):
                    rec = ipol.recording_proto(trial, axes)
                    for side in (pb.SIDE_LEFT, pb.SIDE_RIGHT):
                        counts["requests"] += 1
                        req = spb.RecommendFromRecordingsRequest(
                            assessment_id=f"ipol-{name}",
                            patient=pb.PatientContext(
                                amputation_level=pb.AMPUTATION_LEVEL_TRANSTIBIAL, prosthetic_side=side, body_mass_kg=75.0
                            ),
                            recordings=[rec],
                        )
                        try:
                            resp = stub.RecommendFromRecordings(req, timeout=60)
                        except grpc.RpcError as exc:
                            errors.setdefault(exc.code().name, []).append(f"{name} {axes} {pb.Side.Name(side)}: {exc.details()}")
                            continue
                        counts["answered"] += 1
                        if axes == "gyr_ml" and side == pb.SIDE_LEFT:
                            filled += resp.extraction.reports[0].samples_filled
                            dropped_for_gaps += len(resp.extraction.reports[0].strides_dropped_for_gaps)
                        if resp.recommendation.adjustments:
                            counts["with adjustments"] += 1
                            adjusted.append(
                                f"{name} {axes} {pb.Side.Name(side)}: "
                                + ", ".join(pb.AdjustmentParameter.Name(a.parameter) for a in resp.recommendation.adjustments)
                            )
    finally:
        running.stop(0.5)
    lines = [
        f"- trials: {len(ipol.trials(folder))}; requests: {counts['requests']}; answered: {counts['answered']}; "
        f"answers with an adjustment: {counts['with adjustments']} "
        f"(specificity {100.0 * (counts['answered'] - counts['with adjustments']) / max(1, counts['answered']):.1f} %)",
        f"- samples filled by interpolation (one request per trial): {filled}; strides dropped for gaps: {dropped_for_gaps}",
    ]
    for code, items in sorted(errors.items()):
        lines.append(f"- {code}: {len(items)}")
        lines += [f"  - {item}" for item in items[:20]]
    lines += [f"- adjusted: {item}" for item in adjusted[:20]]
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
    ap.add_argument("--ipol-dir", type=Path, help="IPOL GaitData folder (default: ../shared/data/ipol-imu-gait)")
    ap.add_argument("--answers", action="store_true", help="also send every IPOL trial to a real server (4 requests each)")
    ap.add_argument("--no-rows", action="store_true", help="leave out the row-timeline lines of the IPOL table")
    args = ap.parse_args(argv)
    data = shared_data_dir()
    folder: Path = args.ipol_dir or data / "ipol-imu-gait"
    if not folder.is_dir() or not (data / "gaitmap-example").is_dir():
        print(f"data not found: {folder} and {data / 'gaitmap-example'} (set ALIGN_SHARED_DATA)", file=sys.stderr)
        return 2
    print(f"## IPOL ({folder.name}, {len(ipol.trials(folder))} trials): service events vs reference events (ms; detected minus reference)\n")
    print(ipol_table(folder, rows=not args.no_rows))
    if args.answers:
        print("\n## IPOL answers through RecommendFromRecordings\n")
        print(answers(folder))
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
