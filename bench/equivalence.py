"""Output equivalence check for recommender/validation/convert optimisations, and a small timing.

    python -m bench.equivalence record [--out /tmp/equiv_baseline.pkl]   # from the current code
    python -m bench.equivalence check  [--out /tmp/equiv_baseline.pkl]   # compare, exit 1 on any diff
    python -m bench.equivalence time                                      # per-assessment cost

~2,000 varied assessments (examples/, the textbook cases, random catalog subsets within +-3 SD, both
levels, with/without k_level, sensor subsets, alternative units, a few invalid ones) go through
proto -> assessment_from_proto -> validate_assessment -> Recommender.recommend -> recommendation_to_proto,
single-assessment calls, batch calls (explain=False) and explain=True, under the default policy and
a looser one. Everything is compared exactly (floats bit for bit) and at the proto byte level.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import math
import pickle
import random
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format

from service._generated.prosthetic_alignment.v1 import alignment_pb2 as pb
from service.api import convert
from service.catalog import FEATURES, AmputationLevel, SensorKind
from service.errors import InvalidInputError
from service.model import OnnxModel
from service.recommender import Policy, Recommender
from service.registry import version_key
from service.validation import validate_assessment

ROOT = Path(__file__).resolve().parent.parent
N_RANDOM = 1900


def _model() -> OnnxModel:
    root = ROOT / "models" / "alignment"
    versions = sorted((p.name for p in root.iterdir() if p.is_dir()), key=version_key)
    return OnnxModel.load(root / versions[-1])


def _policies() -> dict[str, Policy]:
    base = dict(min_change_deg=2.0, min_change_mm=5.0, min_change_length_mm=5.0, max_step_deg=6.0, max_step_mm=10.0)
    return {
        "default": Policy.from_values(**base, min_confidence=0.55, deviation_z=2.0, explain=False),
        "loose": Policy.from_values(**base, min_confidence=0.35, deviation_z=1.5, explain=False),
    }


_LEVEL_PB = {AmputationLevel.TRANSTIBIAL: "AMPUTATION_LEVEL_TRANSTIBIAL", AmputationLevel.TRANSFEMORAL: "AMPUTATION_LEVEL_TRANSFEMORAL"}


def _msg(aid: str, level: AmputationLevel, mass: float, k: int | None, feats: list[tuple[str, float, str, SensorKind | None]],
         side: str = "SIDE_LEFT") -> pb.GaitAssessment:
    m = pb.GaitAssessment(assessment_id=aid)
    # The generated stubs type enum fields as the enum class; Value() returns the wire int.
    m.patient.amputation_level = pb.AmputationLevel.Value(_LEVEL_PB[level])  # type: ignore[assignment]
    m.patient.prosthetic_side = pb.Side.Value(side)  # type: ignore[assignment]
    m.patient.body_mass_kg = mass
    if k is not None:
        m.patient.k_level = k
    for name, value, unit, src in feats:
        f = m.features.add(name=name, value=value, unit=unit)
        if src is not None:
            f.source = pb.SensorKind.Value("SENSOR_KIND_" + src.value)  # type: ignore[assignment]
    return m


def build_messages() -> list[pb.GaitAssessment]:
    from tests.clinical_cases import CASES

    msgs: list[pb.GaitAssessment] = []
    for p in sorted((ROOT / "examples").glob("*.json")):
        msgs.append(json_format.Parse(p.read_text(), pb.GaitAssessment()))
    for i, case in enumerate(CASES):
        for k in (None, 3):
            case_feats: list[tuple[str, float, str, SensorKind | None]] = [(n, v, "", None) for n, v in case.features().items()]
            msgs.append(_msg(f"case-{i}-{k}", case.level, 75.0, k, case_feats))
    rng = random.Random(20261125)
    kinds = list(SensorKind)
    for n in range(N_RANDOM):
        level = rng.choice(list(AmputationLevel))
        mass = round(rng.uniform(45.0, 130.0), 1)
        k = rng.choice([None, 1, 2, 3, 4])
        mode = rng.random()
        if mode < 0.15:
            chosen = FEATURES  # everything
        elif mode < 0.6:
            sensors = set(rng.sample(kinds, rng.randint(1, 3)))
            chosen = tuple(f for f in FEATURES if sensors & set(f.sources))
        else:
            chosen = tuple(f for f in FEATURES if rng.random() < rng.choice([0.1, 0.3, 0.6]))
        spread = rng.choice([1.0, 2.0, 3.0, 3.0])
        feats: list[tuple[str, float, str, SensorKind | None]] = []
        for f in chosen:
            norm = f.normative[level]
            v = norm.mean + norm.sd * rng.uniform(-spread, spread)
            v = min(max(v, f.min_value), f.max_value)
            unit = ""
            if rng.random() < 0.15:
                u = rng.choice(f.units)
                unit = u.symbol
                v = v / u.factor * (mass if u.body_mass is not None else 1.0)
            elif rng.random() < 0.3:
                unit = f.unit
            feats.append((f.name, v, unit, rng.choice(f.sources) if rng.random() < 0.7 else None))
        rng.shuffle(feats)
        if n % 97 == 0 and feats:  # a few invalid ones (validation errors must match too)
            name, v, unit, src = feats[0]
            feats[0] = (name, 1e9, unit, src)
        if n % 89 == 0:
            feats.append(("walking_sped_m_per_s", 1.0, "", None))
        msgs.append(_msg(f"rnd-{n}", level, mass, k, feats, side=rng.choice(["SIDE_LEFT", "SIDE_RIGHT"])))
    return msgs


def _validate(msgs: list[pb.GaitAssessment]) -> tuple[list[Any], list[Any]]:
    """(per message: GaitAssessment or violations tuple), valid assessments."""
    out: list[Any] = []
    valid = []
    for m in msgs:
        try:
            a = validate_assessment(convert.assessment_from_proto(m))
            out.append(a)
            valid.append(a)
        except InvalidInputError as exc:
            out.append(("ERROR", exc.message, tuple(exc.violations)))
    return out, valid


def run_all() -> dict[str, Any]:
    model = _model()
    msgs = build_messages()
    validated, valid = _validate(msgs)
    result: dict[str, Any] = {"n_messages": len(msgs), "n_valid": len(valid), "validated": validated}
    for pname, pol in _policies().items():
        rec = Recommender(pol)
        single = [rec.recommend(model, [a])[0] for a in valid]
        batch: list[Any] = []
        for s in range(0, len(valid), 1000):
            batch.extend(rec.recommend(model, valid[s : s + 1000], explain=False))
        # Batches of one amputation level only (the recommender has a path for uniform batches).
        for li, lvl in enumerate(AmputationLevel):
            same = [a for a in valid if a.patient.amputation_level is lvl]
            result[f"{pname}/batch_level{li}"] = recs_l = rec.recommend(model, same, explain=False)
            result[f"{pname}/batch_level{li}/proto"] = [convert.recommendation_to_proto(r).SerializeToString() for r in recs_l]
        explain = rec.recommend(model, valid[:600], explain=True)
        explain_single = [rec.recommend(model, [a], explain=True)[0] for a in valid[600:800]]
        for key, recs in (("single", single), ("batch", batch), ("explain", explain), ("explain_single", explain_single)):
            result[f"{pname}/{key}"] = recs
            result[f"{pname}/{key}/proto"] = [convert.recommendation_to_proto(r).SerializeToString() for r in recs]
    # The RPC handlers end to end (batch items interleaved with bad ones).
    rpc_msgs = list(msgs)
    for k, m in enumerate(bad_messages()):
        rpc_msgs.insert((k * 37) % len(rpc_msgs), m)
    result.update(servicer_outputs(model, rpc_msgs))
    return result


class _Registry:
    """The one model, as ModelRegistry.get gives it (the servicer needs nothing else here)."""

    def __init__(self, model: OnnxModel) -> None:
        self.model = model

    def get(self, version: str = "") -> OnnxModel:
        return self.model


class LiveCallContext:
    """A live call with no deadline: enough of grpc.ServicerContext for the handlers."""

    def time_remaining(self) -> float | None:
        return None

    def is_active(self) -> bool:
        return True

    def code(self) -> None:
        return None

    def abort(self, code: object, details: str) -> None:
        raise RuntimeError(f"abort {code}: {details}")


def servicer_outputs(model: OnnxModel, msgs: list[pb.GaitAssessment]) -> dict[str, Any]:
    """What the RPC handlers answer (serialized responses), batch and single, bad items included.

    Batches of 500 mix valid and invalid items (and a batch of only invalid ones), so the per-item
    errors, their field paths and the good items' answers are all compared byte for byte.
    """
    from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
    from service.api.metrics import Metrics
    from service.api.servicer import AlignmentServicer
    from service.validation import Limits

    ctx: Any = LiveCallContext()
    out: dict[str, Any] = {}
    for pname, pol in _policies().items():
        svc = AlignmentServicer(
            _Registry(model),  # type: ignore[arg-type]
            Recommender(pol),
            Metrics(),
            limits=Limits(),
            max_batch_size=10_000,
            max_stream_messages=100,
        )
        batches = [msgs[s : s + 500] for s in range(0, len(msgs), 500)]
        bad = [m for m in msgs if m.assessment_id.startswith("bad-")]
        batches.append(bad)
        # The batch handler sends wire bytes that are valid but not canonical (explicit zeros, see
        # service/api/convert.py): compared as the message they parse to, in canonical form.
        out[f"{pname}/rpc_batch"] = [
            spb.BatchRecommendAdjustmentsResponse.FromString(
                svc.BatchRecommendAdjustments(spb.BatchRecommendAdjustmentsRequest(assessments=b), ctx).SerializeToString()
            ).SerializeToString()
            for b in batches
        ]
        single: list[bytes] = []
        for m in msgs[:300]:
            try:
                single.append(svc.RecommendAdjustments(spb.RecommendAdjustmentsRequest(assessment=m), ctx).SerializeToString())
            except Exception as exc:  # the handler aborts with INVALID_ARGUMENT: compare the message
                single.append(repr(exc).encode())
        out[f"{pname}/rpc_single"] = single
    return out


def bad_messages() -> list[pb.GaitAssessment]:
    """Items with one or many problems each (every violation kind validation reports)."""
    bad: list[pb.GaitAssessment] = []
    rng = random.Random(7)
    names = [f.name for f in FEATURES]
    for n in range(60):
        level = rng.choice(list(AmputationLevel))
        feats: list[tuple[str, float, str, SensorKind | None]] = [
            (f.name, f.normative[level].mean, "", None) for f in FEATURES if rng.random() < 0.5
        ]
        kind = n % 12
        if kind == 0:
            feats.append(("cadense_steps_per_min", 100.0, "", None))
        elif kind == 1 and feats:
            feats.append(feats[0])
        elif kind == 2 and feats:
            feats[0] = (feats[0][0], float("nan"), "", None)
        elif kind == 3 and feats:
            feats[-1] = (feats[-1][0], float("inf"), "", None)
        elif kind == 4 and feats:
            feats[0] = (feats[0][0], feats[0][1], "furlong", None)
        elif kind == 5:
            feats.append(("walking_speed_m_per_s", 99.0, "", None))
            feats.append(("cadence_steps_per_min", -5.0, "", None))
            feats.append(("step_width_m", 900.0, "mm", None))
        m = _msg(f"bad-{n}", level, 75.0, 3, feats)
        if kind == 6:
            m.patient.body_mass_kg = 0.0
            m.features.add(name="socket_coronal_moment_early_stance_nm_per_kg", value=10.0, unit="N*m")
        elif kind == 7:
            m.ClearField("patient")
        elif kind == 8:
            m.patient.k_level = 9
            m.patient.height_m = 3.5
        elif kind == 9:
            m.patient.knee_type = pb.KneeType.Value("KNEE_TYPE_HYDRAULIC")  # type: ignore[assignment]
            m.patient.amputation_level = pb.AmputationLevel.Value("AMPUTATION_LEVEL_TRANSTIBIAL")  # type: ignore[assignment]
        elif kind == 10:
            m.assessment_id = "bad-\n-" + "x" * 200
        elif kind == 11:
            for k in range(300):
                m.features.add(name=names[k % len(names)], value=1.0)
        bad.append(m)
    return bad


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if len(out) > 20:
        return
    if type(a) is not type(b):
        out.append(f"{path}: type {type(a).__name__} != {type(b).__name__}")
    elif isinstance(a, float):
        if struct.pack("<d", a) != struct.pack("<d", b) and not (math.isnan(a) and math.isnan(b)):
            out.append(f"{path}: {a!r} != {b!r}")
    elif isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            out.append(f"{path}: array differs")
    elif isinstance(a, (list, tuple)):
        if len(a) != len(b):
            out.append(f"{path}: len {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(x, y, f"{path}[{i}]", out)
    elif isinstance(a, dict):
        if list(a) != list(b):
            out.append(f"{path}: keys differ")
        for k in a:
            if k in b:
                _diff(a[k], b[k], f"{path}.{k}", out)
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        for fld in dataclasses.fields(a):
            _diff(getattr(a, fld.name), getattr(b, fld.name), f"{path}.{fld.name}", out)
    elif isinstance(a, enum.Enum) or isinstance(a, (str, bytes, int, bool, type(None))):
        if a != b:
            out.append(f"{path}: {a!r} != {b!r}")
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")


def _time() -> None:
    model = _model()
    msgs = [m for m in build_messages()]
    _, valid = _validate(msgs)
    good = [m for m in msgs if m.assessment_id in {a.assessment_id for a in valid}][:1000]
    rec = Recommender(_policies()["default"])

    def batch() -> None:
        va = [validate_assessment(convert.assessment_from_proto(m)) for m in good]
        for r in rec.recommend(model, va, explain=False):
            convert.recommendation_to_proto(r).SerializeToString()

    def single() -> None:
        for m in good[:300]:
            a = validate_assessment(convert.assessment_from_proto(m))
            convert.recommendation_to_proto(rec.recommend(model, [a])[0]).SerializeToString()

    va = [validate_assessment(convert.assessment_from_proto(m)) for m in good]
    recs = rec.recommend(model, va, explain=False)
    x = __import__("service.recommender", fromlist=["model_input"]).model_input(va)
    parts: dict[str, tuple[Callable[[], object], int]] = {
        "validate+convert": (lambda: [validate_assessment(convert.assessment_from_proto(m)) for m in good], len(good)),
        "model only (batch)": (lambda: model.predict(x), len(good)),
        "recommend (batch, incl model)": (lambda: rec.recommend(model, va, explain=False), len(good)),
        "to_proto+serialize": (lambda: [convert.recommendation_to_proto(r).SerializeToString() for r in recs], len(good)),
        "TOTAL batch 1000": (batch, len(good)),
        "TOTAL single calls": (single, 300),
    }
    # The batch handler as the server runs it on the bench's request: parse, handler, serialize.
    from bench.payloads import batch_request
    from service._generated.prosthetic_alignment.v1 import alignment_service_pb2 as spb
    from service.api.metrics import Metrics
    from service.api.servicer import AlignmentServicer
    from service.validation import Limits

    svc = AlignmentServicer(
        _Registry(model),  # type: ignore[arg-type]
        Recommender(_policies()["default"]),
        Metrics(),
        limits=Limits(),
        max_batch_size=10_000,
        max_stream_messages=100,
    )
    wire = batch_request(1000).SerializeToString()
    ctx: Any = LiveCallContext()

    def rpc_batch() -> None:
        req = spb.BatchRecommendAdjustmentsRequest.FromString(wire)
        svc.BatchRecommendAdjustments(req, ctx).SerializeToString()

    parts["RPC handler, bench batch 1000"] = (rpc_batch, 1000)
    for name, (fn, n) in parts.items():
        best = math.inf
        for _ in range(7):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        print(f"{name:32s} {best / n * 1e6:8.1f} us/assessment")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["record", "check", "time"])
    ap.add_argument("--out", default="/tmp/equiv_baseline.pkl")
    args = ap.parse_args()
    if args.mode == "time":
        _time()
        return 0
    result = run_all()
    if args.mode == "record":
        Path(args.out).write_bytes(pickle.dumps(result))
        counts = {k: len(v) for k, v in result.items() if isinstance(v, list)}
        print(json.dumps({"messages": result["n_messages"], "valid": result["n_valid"], **counts}))
        return 0
    base = pickle.loads(Path(args.out).read_bytes())
    diffs: list[str] = []
    _diff(base, result, "", diffs)
    n = sum(len(v) for k, v in result.items() if isinstance(v, list) and not k.endswith("/proto") and k != "validated")
    shown = f"{len(diffs)}" if len(diffs) <= 20 else "more than 20"
    print(f"compared {result['n_messages']} messages ({result['n_valid']} valid), {n} recommendations: {shown} differences")
    for d in diffs[:20]:
        print("  ", d)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
