"""Write the bundled model artifact ``models/alignment/<version>/``: model.onnx, manifest.json,
model_card.md and the evaluation plots.

The export refuses to write an artifact whose ONNX outputs differ from the Python model by more than
PARITY_ATOL on held-out rows, including rows with most inputs missing (the service answers from any
sensor subset). The artifact is assembled in a temporary sibling directory and moved into place, so
a reader never sees a half-written version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from service import catalog
from training import acceptance, cohort, dataset, evaluate, fitting_loop, oracle, service_eval
from training.onnx_graph import INPUT_NAME, build_onnx, opset_of, run_onnx
from training.pipeline import ENGINEERED_FEATURES, OUTPUT_NAMES, monotone_signs
from training.workflow import FitState, dump_json, load_state

log = logging.getLogger("training")

PARITY_ATOL = 1e-4
MODEL_NAME = "alignment"
_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")
GOLDEN_SUBSETS = ("all_sensors", "pylon_only", "imu_only", "video_only", "observation_only", "mocap_force_plate")


# Levers measured while developing this pipeline (2026-11-25; held-out patients, all sensors, service
# decision rule; strict direction accuracy / MAE deg / MAE mm / specificity). Each row changes one thing
# against the row before it unless stated; differences of about 0.01-0.02 are within split noise (about
# 1,700 needed corrections per test split at 6000 patients). Recorded so the card can say what was
# tried; re-measure with training/evaluate.py before relying on them. The monotone rows used LightGBM's
# "advanced" constraint method, which was then found to break the constraints slightly (up to 0.003 in
# probability); the shipped model uses "intermediate", which holds them (tests/training). The last rows
# compare the final candidates on the same 18000-patient split, with the clinical consistency suite.
DEVELOPMENT_LOG: list[dict[str, Any]] = [
    {
        "change": "previous 1.0.0 (6000 patients, 3-class, L2 magnitude)",
        "patients": 6000,
        "direction_accuracy": 0.398,
        "magnitude_mae_deg": 1.85,
        "magnitude_mae_mm": 2.61,
        "specificity": 0.916,
    },
    {
        "change": "two binary direction boosters, no constraints",
        "patients": 6000,
        "direction_accuracy": 0.388,
        "magnitude_mae_deg": 1.85,
        "magnitude_mae_mm": 2.61,
        "specificity": 0.913,
    },
    {
        "change": "+ monotone constraints, rule 'alone'",
        "patients": 6000,
        "direction_accuracy": 0.387,
        "magnitude_mae_deg": 1.85,
        "magnitude_mae_mm": 2.61,
        "specificity": 0.910,
    },
    {
        "change": "monotone rule 'agree' instead",
        "patients": 6000,
        "direction_accuracy": 0.380,
        "magnitude_mae_deg": 1.85,
        "magnitude_mae_mm": 2.61,
        "specificity": 0.904,
    },
    {
        "change": "3-class + engineered differences + L1 magnitude",
        "patients": 6000,
        "direction_accuracy": 0.404,
        "magnitude_mae_deg": 1.70,
        "magnitude_mae_mm": 2.57,
        "specificity": 0.920,
    },
    {
        "change": "binary + 'alone' + engineered + L1",
        "patients": 6000,
        "direction_accuracy": 0.392,
        "magnitude_mae_deg": 1.70,
        "magnitude_mae_mm": 2.57,
        "specificity": 0.913,
    },
    {
        "change": "previous model recipe on 18000 patients",
        "patients": 18000,
        "direction_accuracy": 0.413,
        "magnitude_mae_deg": 1.73,
        "magnitude_mae_mm": 2.44,
        "specificity": 0.918,
    },
    {
        "change": "3-class + engineered + L1",
        "patients": 18000,
        "direction_accuracy": 0.415,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.911,
    },
    {
        "change": "binary + 'alone' + engineered + L1",
        "patients": 18000,
        "direction_accuracy": 0.412,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.904,
    },
    {
        "change": "3-class + engineered + L1, learning rate 0.04, min_data_in_leaf 40",
        "patients": 18000,
        "direction_accuracy": 0.418,
        "magnitude_mae_deg": 1.65,
        "magnitude_mae_mm": 2.41,
        "specificity": 0.907,
    },
    {
        "change": "final split: 3-class + engineered + L1 (fails suite: early heel rise)",
        "patients": 18000,
        "direction_accuracy": 0.415,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.911,
    },
    {
        "change": "final split: binary + 'alone' (basic method) + eng + L1 (fails suite: lateral trunk lean TF)",
        "patients": 18000,
        "direction_accuracy": 0.411,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.911,
    },
    {
        "change": "final split: binary + 'agree' (basic method) + eng + L1 (fails suite: lateral trunk lean TF)",
        "patients": 18000,
        "direction_accuracy": 0.411,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.919,
    },
    {
        "change": "previous shipped: binary + 'alone' (intermediate method) + eng + L1 (passes suite)",
        "patients": 18000,
        "direction_accuracy": 0.408,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.906,
    },
    # From here on: the current decision rule (0.55, supporting deviation below 0.8, pooling); figures
    # are for one walk without a reference; the text gives the same walks with their reference walk.
    {
        "change": "the previous shipped model under the current decision rule",
        "patients": 18000,
        "direction_accuracy": 0.352,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.956,
    },
    {
        "change": "one shared model, every assessment also with a reference walk (with reference: 0.472 / "
        "0.962 sign / 1.56 deg / 2.27 mm; fails suite: lateral trunk lean TF, swing knee TF)",
        "patients": 18000,
        "direction_accuracy": 0.340,
        "magnitude_mae_deg": 1.67,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.964,
    },
    {
        "change": "one shared model, a quarter with a reference walk, 3 LightGBM seeds (with reference: "
        "0.475-0.479; every seed fails 1-2 TF textbook cases: p 0.45-0.55 where the single-walk model gave 0.55-0.58)",
        "patients": 18000,
        "direction_accuracy": 0.350,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.44,
        "specificity": 0.962,
    },
    {
        "change": "single-walk model + residual reference stage at learning rate 0.08, half with a reference walk "
        "(with reference: 0.487 strict / 0.962 sign / 1.55 deg / 2.27 mm / specificity 0.952; 1,929 stage trees, "
        "4.1 MB, +20 MB per worker; passes suite)",
        "patients": 18000,
        "direction_accuracy": 0.352,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.956,
    },
    {
        "change": "tried for speed, not shipped: single-walk boosters at learning rate 0.16 instead of 0.08 "
        "(1,269 instead of 2,326 trees, 1.75 MB; model call 36 instead of 56 us in process, about 36 us less per "
        "request in the server; passes both suites; with reference: 0.486 strict / 0.960 sign / 1.56 deg / 2.27 mm / "
        "specificity 0.945): specificity 0.956 -> 0.951 sits on its target, for about 6% of a call's CPU",
        "patients": 18000,
        "direction_accuracy": 0.360,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.42,
        "specificity": 0.951,
    },
    {
        "change": "tried, not shipped: 6 more engineered inputs that null one parameter of an overlapping pair using the "
        "effect slopes (e.g. step width - 0.089 x early coronal socket moment cancels SOCKET_ADDUCTION, leaving "
        "FOOT_MEDIAL_SHIFT; early - 0.8 x late sagittal moment cancels HEEL_HEIGHT): strict accuracy within noise, "
        "specificity below its target (with reference: 0.481 strict / 0.964 sign / specificity 0.958)",
        "patients": 18000,
        "direction_accuracy": 0.359,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.41,
        "specificity": 0.945,
    },
    {
        "change": "previous shipped: the same with the stage at learning rate 0.2 (with reference: 0.485 strict / 0.962 "
        "sign / 1.55 deg / 2.28 mm / specificity 0.956; 2.8 MB, +7 MB per worker; passes both suites)",
        "patients": 18000,
        "direction_accuracy": 0.352,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.956,
    },
    {
        "change": "SHIPPED: the same with the 10%/90% interval boosters at learning rate 0.2 instead of 0.08 (they set "
        "only the interval, never a decision): 1,896 instead of 2,326 single-walk trees, 2.42 instead of 2.82 MB; "
        "model call 50 instead of 58 us for one row and 13.4 instead of 16.4 us per row in a batch of 1000 (in "
        "process, same run); every decision and every other figure identical; held-out 10-90% coverage 0.795 vs "
        "0.799, mean width 7.56 vs 7.57, 80% interval (Winkler) score 8.87 vs 8.86 (interval learning rate 0.3 gave "
        "1,793 trees, coverage 0.796, score 8.90)",
        "patients": 18000,
        "direction_accuracy": 0.352,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.956,
    },
    # Reproducibility of the shipped recipe: `python -m training all --model-seed N --no-compare`.
    {
        "change": "check, not shipped: the shipped recipe with LightGBM seed 1 (the bundled model uses 0; ECE 0.003; "
        "passes both clinical suites)",
        "patients": 18000,
        "direction_accuracy": 0.360,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.42,
        "specificity": 0.957,
    },
    {
        "change": "check, not shipped: seed 2 (ECE 0.006; passes both clinical suites)",
        "patients": 18000,
        "direction_accuracy": 0.357,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.42,
        "specificity": 0.960,
    },
    {
        "change": "check, not shipped: seed 3 (ECE 0.004; FAILS the single-walk clinical suite: nothing recommended "
        "for 'early heel rise / drop-off' and 'lateral trunk lean (TF)', which the bundled model recommends at p 0.57 "
        "and 0.58 against the 0.55 threshold; the reference-walk suite passes). The textbook cases sit near the "
        "decision threshold, so a retrained model must pass tests/contract before it ships",
        "patients": 18000,
        "direction_accuracy": 0.355,
        "magnitude_mae_deg": 1.66,
        "magnitude_mae_mm": 2.43,
        "specificity": 0.956,
    },
]


class ParityError(RuntimeError):
    """The ONNX graph does not reproduce the Python model within PARITY_ATOL."""


def _nan_heavy(x: np.ndarray, seed: int) -> np.ndarray:
    """Copies of rows with ~70% of inputs blanked, plus an all-missing-features and an all-missing row."""
    rng = np.random.default_rng(seed)
    heavy = x.copy()
    heavy[rng.random(heavy.shape) < 0.7] = np.nan
    n_feat = len(catalog.FEATURE_NAMES)
    only_context = x[:1].copy()
    only_context[:, :n_feat] = np.nan
    nothing = np.full((1, x.shape[1]), np.nan, dtype=np.float32)
    return np.concatenate([heavy, only_context, nothing]).astype(np.float32)


def answer_metrics(answers: dict[str, Any], suite: dict[str, Any]) -> dict[str, Any]:
    """The figures of issue 13 as flat metrics (GetModel): specificity per subset, opposite advice, kinds."""
    out: dict[str, Any] = {
        "specificity": answers["specificity"],
        "no_change_rate_aligned": answers["no_change_rate_aligned"],
        "opposite_advice_rate": answers["opposite_advice_rate"],
        "textbook_rank1_accepted_rate": suite["rank1_accepted_rate"],
        "textbook_cases_with_an_opposite_fix": suite["cases_with_an_opposite_fix"],
        "textbook_no_change_answers": suite["no_change_needed_answers"],
    }
    for name, s in answers["by_subset"].items():
        out[f"specificity_{name}"] = s["specificity"]
    for kind, k in answers["answer_kinds"].items():
        out[f"{kind.lower()}_share"] = k["share"]
        if k["right"] is not None:
            out[f"{kind.lower()}_right"] = k["right"]
    return out


def golden_inputs(test: pd.DataFrame) -> np.ndarray:
    """About 8 rows: one per main sensor subset (missing-heavy ones included) + two synthetic ones."""
    x = dataset.model_inputs(test)
    subsets = evaluate.with_reference_label(cohort.sensor_subset_of(test).to_numpy(), test)
    rows: list[np.ndarray] = []
    for s in (*GOLDEN_SUBSETS, evaluate.TARGET_SUBSET + evaluate.REFERENCE_SUFFIX):
        idx = np.flatnonzero(subsets == s)
        rows.append(x[idx[0]] if idx.size else x[len(rows) % len(x)])
    extra = _nan_heavy(x[:1], seed=7)[-2:]  # only context; nothing at all
    return np.concatenate([np.stack(rows), extra]).astype(np.float32)


def _rows_json(a: np.ndarray) -> list[list[float | None]]:
    return [[None if np.isnan(v) else float(v) for v in row] for row in a]


def write_artifact(
    state: FitState,
    evaluation: dict[str, Any],
    out_root: Path,
    version: str,
    plots_dir: Path | None = None,
    pipeline_started: float | None = None,
    fitting_patients: int = fitting_loop.PATIENTS_DEFAULT,
    oracle_config: oracle.OracleConfig | None = oracle.DEFAULT_CONFIG,
) -> Path:
    if not _VERSION_RE.match(version):
        raise ValueError(f"version must be numeric dotted (e.g. 1.0.0), got {version!r}")
    t = time.perf_counter()
    onx = build_onnx(state.model)
    data = onx.SerializeToString()
    build_s = time.perf_counter() - t

    # Parity on held-out rows, their missing-heavy copies and the golden rows.
    x_test = dataset.model_inputs(state.test_frame)
    golden = golden_inputs(state.test_frame)
    x_par = np.concatenate([x_test, _nan_heavy(x_test, seed=1), golden]).astype(np.float32)
    py = state.model.predict(x_par)
    ox = run_onnx(data, x_par)
    diffs = {k: float(np.max(np.abs(py[k] - ox[k]))) for k in OUTPUT_NAMES}
    parity = max(diffs.values())
    if not parity <= PARITY_ATOL:  # also catches NaN
        raise ParityError(f"ONNX vs Python max abs diff {parity:.3g} > {PARITY_ATOL:g}: {diffs}")
    gold_out = run_onnx(data, golden)

    sha = hashlib.sha256(data).hexdigest()
    cfg = state.model.config
    sequential = any(pm.classifier_dec is not None for pm in state.model.parameters)
    names = list(catalog.MODEL_INPUT_COLUMNS) + ([n for n, _, _ in ENGINEERED_FEATURES] if cfg.engineered else [])
    mono = (
        {
            p: {names[i]: s for i, s in enumerate(monotone_signs(p, cfg.monotone, cfg.engineered)) if s}
            for p in catalog.PARAMETER_NAMES
        }
        if sequential
        else {}
    )
    manifest: dict[str, Any] = {
        "schema_version": 1,
        "name": MODEL_NAME,
        "version": version,
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "catalog_version": catalog.CATALOG_VERSION,
        "model_file": "model.onnx",
        "sha256": sha,
        "model_family": "lightgbm",
        "input": {
            "name": INPUT_NAME,
            "columns": list(catalog.MODEL_INPUT_COLUMNS),
            "dtype": "float32",
            "missing": "NaN",
        },
        "outputs": list(OUTPUT_NAMES),
        "parameters": [
            {"name": p.parameter.value, "unit": p.unit, "min_change": p.min_change, "max_step": p.max_step}
            for p in catalog.PARAMETERS
        ],
        "training_data": {
            "kind": state.data_kind,
            "fingerprint": state.fingerprint,
            "n_patients": state.n_patients,
            "n_assessments": state.n_assessments,
            "seed": state.cohort_seed,
            "generator": "training.cohort" if state.data_kind == "simulated" else None,
            "source": Path(state.data_source).name,
        },
        "metrics": evaluation,
        # The range of every feature in the training data (0.1% and 99.9% quantiles): the service
        # never reads an answer on inputs outside it as HIGH (DESIGN 3.3).
        "input_ranges": state.input_ranges,
        "onnx": {
            "opset": opset_of(onx),
            "node_count": len(onx.graph.node),
            "parity_max_abs_diff": parity,
            "parity_rows": len(x_par),
            "size_bytes": len(data),
        },
        "golden": {
            "inputs": _rows_json(golden),
            "outputs": {k: gold_out[k].astype(float).tolist() for k in OUTPUT_NAMES},
            "atol": PARITY_ATOL,
        },
        "calibration": {
            "method": "temperature scaling per parameter (softmax(log p / T))",
            "temperature": {pm.name: pm.temperature for pm in state.model.parameters},
            "temperature_with_reference": {
                pm.name: pm.reference.temperature for pm in state.model.parameters if pm.reference is not None
            },
        },
        "decision_rule": (
            "the service's RECOMMENDED kind (service/recommender/decide.py, default policy, re-implemented in "
            "training.evaluate.service_decisions): recommend the more probable way iff p_dir >= p_none, "
            f"p_dir >= {evaluate.MIN_CONFIDENCE:g} and magnitude >= min_change and, below p_dir "
            f"{evaluate.UNSUPPORTED_MIN:g}, a gait deviation it explains is present; step = magnitude clamped "
            "to max_step. Trials and the other answer kinds: 'What the service answers'"
        ),
        "direction_model": (
            "two binary boosters per parameter: P(increase) and P(decrease | not increase); "
            "p_decrease = (1 - P(increase)) * P(decrease | not increase)"
            if sequential
            else "one 3-class booster per parameter"
        ),
        "engineered_features": [f"{n} = {a} - {b}" for n, a, b in ENGINEERED_FEATURES] if cfg.engineered else [],
        "monotone_constraints": mono,
        "monotone_constraints_summary": (
            f"rule '{cfg.monotone}': "
            + "; ".join(f"{p}: {', '.join(f'{c} {s:+d}' for c, s in v.items())}" for p, v in mono.items() if v)
            + " (sign of the effect of the MISALIGNMENT on the feature; P(increase) of the correction gets the"
            " opposite sign)"
            if any(mono.values())
            else "none"
        ),
        "magnitude_model": {
            "regression_l1": "conditional median (L1), the MAE-optimal point estimate",
            "regression": "conditional mean (L2)",
        }.get(cfg.magnitude_objective, cfg.magnitude_objective),
        "n_boosters": sum(5 if pm.classifier_dec is not None else 4 for pm in state.model.parameters),
        "lightgbm_config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "development_log": DEVELOPMENT_LOG,
    }
    out_root.mkdir(parents=True, exist_ok=True)
    final = out_root / version
    tmp = out_root / f".{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    (tmp / "model.onnx").write_bytes(data)
    dump_json(manifest, tmp / "manifest.json")
    if fitting_patients > 0:
        # The closed loop runs the exported artifact through the service's own code, so it needs the
        # written model; its result then joins the manifest and the card.
        t_loop = time.perf_counter()
        manifest["fitting_loop"] = fitting_loop.run(tmp, n_patients=fitting_patients)
        manifest["metrics"].update(fitting_loop.headline_metrics(manifest["fitting_loop"]))  # GetModel serves these
        if fitting_loop.plot(manifest["fitting_loop"], tmp / fitting_loop.PLOT_NAME) is not None:
            manifest["fitting_loop"]["plot"] = fitting_loop.PLOT_NAME  # beside the card, shown in its section
        log.info("simulated fittings: %d patients in %.1f s", fitting_patients, time.perf_counter() - t_loop)
        dump_json(manifest, tmp / "manifest.json")
    # What the service answers with this artifact (its own code): the textbook acceptance suite and
    # the answer kinds on held-out patients. Their headline figures join the metrics GetModel serves.
    t_ans = time.perf_counter()
    served = acceptance.load(tmp)
    manifest["acceptance"] = acceptance.run(served)
    manifest["service_answers"] = service_eval.run(served, state.test_frame)
    manifest["metrics"]["answers"] = answer_metrics(manifest["service_answers"], manifest["acceptance"])
    log.info("acceptance suite and service answers in %.1f s", time.perf_counter() - t_ans)
    dump_json(manifest, tmp / "manifest.json")
    if oracle_config is not None and state.data_kind == "simulated":
        # How far is the model from what the simulated walks allow? Only meaningful for a model of the
        # simulator; it needs the written model like the closed loop.
        manifest["oracle"] = oracle.run(tmp, oracle_config)
        log.info("likelihood oracle: %d walks in %.1f s", oracle_config.walks, manifest["oracle"]["seconds"])
        dump_json(manifest, tmp / "manifest.json")
    if pipeline_started is not None:
        # The whole `python -m training all`, closed loop and oracle included (the 3-minute budget);
        # only copying the plots and the card's rendering come after.
        manifest["pipeline_seconds"] = time.perf_counter() - pipeline_started
        dump_json(manifest, tmp / "manifest.json")
    plot_names: list[str] = []
    if plots_dir is not None and plots_dir.exists():
        for png in sorted(plots_dir.glob("*.png")):
            shutil.copy2(png, tmp / png.name)
            plot_names.append(png.name)
    from training.model_card import render

    (tmp / "model_card.md").write_text(render(manifest, plot_names))
    old = out_root / f".{version}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    log.info(
        "wrote %s (%d nodes, %.2f MB, parity %.2g, onnx build %.1f s)",
        final,
        len(onx.graph.node),
        len(data) / 1e6,
        parity,
        build_s,
    )
    return final


def export(workdir: Path, out_root: Path, version: str, pipeline_started: float | None = None) -> Path:
    import json

    state = load_state(workdir)
    evaluation = json.loads((workdir / "evaluation.json").read_text())
    return write_artifact(state, evaluation, out_root, version, workdir / "plots", pipeline_started)


def verify_manifest_against_catalog(manifest: dict[str, Any]) -> list[str]:
    """Problems (empty when consistent) between a manifest and the running catalog; used by tests."""
    problems: list[str] = []
    if manifest.get("catalog_version") != catalog.CATALOG_VERSION:
        problems.append("catalog_version differs")
    if manifest.get("input", {}).get("columns") != list(catalog.MODEL_INPUT_COLUMNS):
        problems.append("input columns differ from catalog.MODEL_INPUT_COLUMNS")
    names = [p["name"] for p in manifest.get("parameters", [])]
    if names != list(catalog.PARAMETER_NAMES):
        problems.append("parameters differ from catalog.PARAMETER_NAMES")
    for p in manifest.get("parameters", []):
        spec = catalog.PARAMETERS_BY_NAME.get(p["name"])
        if spec and (p["unit"] != spec.unit or p["min_change"] != spec.min_change):
            problems.append(f"{p['name']}: unit/min_change differ from the catalog")
    if manifest.get("outputs") != list(OUTPUT_NAMES):
        problems.append("outputs differ")
    return problems


__all__ = ["ParityError", "evaluate", "export", "verify_manifest_against_catalog", "write_artifact"]
