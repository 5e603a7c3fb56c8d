"""Fit a tiny cohort, export into a tmp dir, check the ONNX contract, parity, manifest and the split."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from service import catalog
from tests.training.conftest import TINY_FITTINGS
from training import __main__ as cli
from training import dataset, evaluate
from training.export import PARITY_ATOL, verify_manifest_against_catalog
from training.onnx_graph import run_onnx
from training.pipeline import OUTPUT_NAMES

REPO = Path(__file__).resolve().parents[2]


def test_onnx_contract(artifact_dir: Path) -> None:
    model = onnx.load(str(artifact_dir / "model.onnx"))
    sess = ort.InferenceSession(str(artifact_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert inp.name == "features" and inp.type == "tensor(float)"
    assert inp.shape[1] == len(catalog.MODEL_INPUT_COLUMNS)
    assert [o.name for o in sess.get_outputs()] == list(OUTPUT_NAMES)
    for o in sess.get_outputs():
        assert o.type == "tensor(float)" and o.shape[1] == len(catalog.PARAMETER_NAMES)
    assert not any(n.op_type == "ZipMap" for n in model.graph.node)
    assert len(model.graph.node) < 150  # one merged graph: tens of nodes, not one per tree
    x = np.full((3, len(catalog.MODEL_INPUT_COLUMNS)), np.nan, dtype=np.float32)
    out = run_onnx(model, x)
    p_none = 1 - out["p_decrease"] - out["p_increase"]
    assert (p_none >= -1e-6).all() and (out["p_decrease"] >= 0).all()
    assert (out["magnitude_lo"] <= out["magnitude"] + 1e-6).all()
    assert (out["magnitude"] <= out["magnitude_hi"] + 1e-6).all()
    assert (out["magnitude_lo"] >= 0).all()


def test_parity_including_missing_heavy_rows(tiny_run: dict) -> None:
    state = tiny_run["state"]
    x = dataset.model_inputs(state.test_frame)
    rng = np.random.default_rng(0)
    heavy = x.copy()
    heavy[rng.random(x.shape) < 0.85] = np.nan
    rows = np.concatenate([x, heavy])
    py = state.model.predict(rows)
    ox = run_onnx(onnx.load(str(tiny_run["artifact"] / "model.onnx")), rows)
    for k in OUTPUT_NAMES:
        assert np.abs(py[k] - ox[k]).max() <= PARITY_ATOL, k


def test_manifest_fields_consistent(artifact_dir: Path) -> None:
    m = json.loads((artifact_dir / "manifest.json").read_text())
    for key in (
        "schema_version",
        "name",
        "version",
        "created_utc",
        "catalog_version",
        "model_file",
        "sha256",
        "model_family",
        "input",
        "outputs",
        "parameters",
        "training_data",
        "metrics",
        "onnx",
        "golden",
    ):
        assert key in m, key
    assert m["schema_version"] == 1 and m["name"] == "alignment" and m["version"] == "0.0.1"
    assert m["sha256"] == hashlib.sha256((artifact_dir / m["model_file"]).read_bytes()).hexdigest()
    assert verify_manifest_against_catalog(m) == []
    assert m["input"] == {
        "name": "features",
        "columns": list(catalog.MODEL_INPUT_COLUMNS),
        "dtype": "float32",
        "missing": "NaN",
    }
    assert [p["min_change"] for p in m["parameters"]] == [p.min_change for p in catalog.PARAMETERS]
    td = m["training_data"]
    assert td["kind"] == "simulated" and td["generator"] == "training.cohort" and len(td["fingerprint"]) == 64
    assert m["onnx"]["parity_max_abs_diff"] <= PARITY_ATOL
    assert m["onnx"]["opset"]["ai.onnx"] <= 15
    for key in ("by_sensor_subset", "by_amputation_level", "by_parameter", "targets", "model_comparison"):
        assert key in m["metrics"], key

    def no_constants(c: str) -> None:
        raise AssertionError(f"manifest contains the non-JSON constant {c}; NaN must be written as null")

    json.loads((artifact_dir / "manifest.json").read_text(), parse_constant=no_constants)
    # Golden rows reproduce through onnxruntime (null = NaN), including the all-missing rows.
    gi = np.array([[np.nan if v is None else v for v in row] for row in m["golden"]["inputs"]], dtype=np.float32)
    assert len(gi) >= 8 and np.isnan(gi).all(axis=1).any()
    out = run_onnx(onnx.load(str(artifact_dir / "model.onnx")), gi)
    for k in OUTPUT_NAMES:
        np.testing.assert_allclose(out[k], np.array(m["golden"]["outputs"][k]), atol=m["golden"]["atol"])
    card = (artifact_dir / "model_card.md").read_text()
    assert "SIMULATED" in card and "NOT clinically validated" in card
    assert (artifact_dir / "reliability.png").exists() and (artifact_dir / "magnitude_pred_vs_true.png").exists()


def test_grouped_split_never_leaks(tiny_run: dict) -> None:
    state = tiny_run["state"]
    test_ids = set(state.test_frame["patient_id"])
    assert test_ids and not test_ids & set(state.train_patient_ids)
    assert not test_ids & set(state.cal_patient_ids)
    assert not set(state.train_patient_ids) & set(state.cal_patient_ids)
    pids = np.repeat(np.array([f"P{i}" for i in range(50)]), 4)
    for seed in range(5):
        mask = evaluate.grouped_split(pids, 0.2, seed)
        assert not set(pids[mask]) & set(pids[~mask])
        assert 0 < mask.sum() < len(pids)


def test_evaluation_reports_every_subset(tiny_run: dict) -> None:
    res = tiny_run["evaluation"]
    assert "all_sensors" in res["by_sensor_subset"]
    assert {"TRANSTIBIAL", "TRANSFEMORAL"} <= set(res["by_amputation_level"])
    assert set(res["model_comparison"]["families"]) == {"lightgbm", "random_forest"}
    block = res["by_sensor_subset"]["all_sensors"]
    for k in ("direction_accuracy", "magnitude_mae_deg", "magnitude_mae_mm", "rank1_agreement", "specificity", "ece"):
        assert k in block


def test_cli_fit_on_clinic_sample(tmp_path: Path) -> None:
    sample = REPO / "examples" / "training" / "clinic_sample.csv"
    assert cli.main(["fit", "--data", str(sample), "--workdir", str(tmp_path), "--no-compare"]) == 0
    assert (tmp_path / "fit.pkl").exists()


def test_cli_rejects_bad_file_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,foo\nA,1\n")
    assert cli.main(["fit", "--data", str(bad), "--workdir", str(tmp_path)]) == 2
    assert "unknown column 'foo'" in capsys.readouterr().err


def test_bundled_artifact_is_valid() -> None:
    art = REPO / "models" / "alignment" / "1.0.0"
    if not (art / "manifest.json").exists():
        pytest.skip("no bundled artifact yet")
    m = json.loads((art / "manifest.json").read_text())
    assert m["sha256"] == hashlib.sha256((art / "model.onnx").read_bytes()).hexdigest()
    assert verify_manifest_against_catalog(m) == []
    gi = np.array([[np.nan if v is None else v for v in row] for row in m["golden"]["inputs"]], dtype=np.float32)
    out = run_onnx((art / "model.onnx").read_bytes(), gi)
    for k in OUTPUT_NAMES:
        np.testing.assert_allclose(out[k], np.array(m["golden"]["outputs"][k]), atol=m["golden"]["atol"])
    assert (art / "model.onnx").stat().st_size < 5_000_000


def test_reference_stage_leaves_single_walk_answers_untouched(tiny_run: dict) -> None:
    """Rows without a reference walk get exactly the model fitted on such rows alone; rows with one
    get the residual stage, in Python and in the exported graph alike."""
    from tests.training.conftest import TINY_CONFIG
    from training import cohort
    from training.pipeline import LightGBMAlignmentModel, has_reference

    df = cohort.simulate(cohort.CohortConfig(n_patients=120, n_assessments=3, seed=5))
    x, corr = dataset.model_inputs(df), dataset.corrections(df)
    h = has_reference(x)
    assert h.sum() >= 100 and (~h).sum() >= 100
    staged = LightGBMAlignmentModel.fit(x, corr, config=TINY_CONFIG)
    alone = LightGBMAlignmentModel.fit(x[~h], corr[~h], config=TINY_CONFIG)
    assert all(pm.reference is not None for pm in staged.parameters)
    assert all(pm.reference is None for pm in alone.parameters)
    a, b = staged.predict(x[~h]), alone.predict(x[~h])
    for k in OUTPUT_NAMES:
        np.testing.assert_array_equal(a[k], b[k])
    # With a reference the stage answers differently from the same walk sent alone.
    blanked = x[h].copy()
    blanked[:, catalog.MODEL_INPUT_COLUMNS.index(catalog.REFERENCE_CHANGE_COLUMNS[0]) :] = np.nan
    with_ref, without = staged.predict(x[h]), staged.predict(blanked)
    assert np.abs(with_ref["p_increase"] - without["p_increase"]).max() > 0.01
    np.testing.assert_array_equal(without["p_increase"], alone.predict(blanked)["p_increase"])
    # The exported bundle of the tiny run is staged too, and its graph gates the stage per row.
    state = tiny_run["state"]
    assert all(pm.reference is not None for pm in state.model.parameters)
    xt = dataset.model_inputs(state.test_frame)
    ht = has_reference(xt)
    assert ht.any() and (~ht).any()
    ox = run_onnx(onnx.load(str(tiny_run["artifact"] / "model.onnx")), xt)
    py = state.model.predict(xt)
    for k in OUTPUT_NAMES:
        assert np.abs(py[k] - ox[k]).max() <= PARITY_ATOL, k


def test_simulated_fittings_are_in_the_manifest_metrics_and_card(artifact_dir: Path) -> None:
    """Every policy on every sensor subset, shares that are shares, the GetModel metrics flat in
    manifest["metrics"], and the card's section with its plot beside it."""
    from training import fitting_loop

    m = json.loads((artifact_dir / "manifest.json").read_text())
    f = m["fitting_loop"]
    assert f["patients"] == TINY_FITTINGS and set(f["by_subset"]) == set(fitting_loop.SUBSETS)
    assert f["oracle_subsets"] == ["all_sensors"]
    for name, res in f["by_subset"].items():
        assert f["policies"] == list(fitting_loop.PIPELINE_POLICIES)
        assert set(res) == set(fitting_loop.PIPELINE_POLICIES) - (set() if name == "all_sensors" else {"oracle"})
        for r in res.values():
            assert r["misaligned_patients"] + r["aligned_patients"] == TINY_FITTINGS
            for k in ("in_band_within_2_walks", "in_band_within_4_walks", "in_band_within_6_walks",
                      "steps_away_from_aligned", "patients_worse_at_end"):
                assert 0.0 <= r[k] <= 1.0, (k, r[k])
            assert len(r["in_band_by_walk"]) == fitting_loop.WALKS
        assert res["ceiling"]["patients_worse_at_end"] == 0.0 and res["ceiling"]["steps_away_from_aligned"] == 0.0
    metrics = m["metrics"]
    for prefix in ("fitting", "fitting_baseline_rule"):
        for k in ("in_band_within_2_walks", "in_band_within_4_walks", "in_band_within_6_walks",
                  "ceiling_in_band_within_4_walks", "patients_worse_at_end", "steps_away_from_aligned"):
            assert 0.0 <= metrics[f"{prefix}.{k}"] <= 1.0, (prefix, k)
    a = f["by_subset"]["all_sensors"]
    assert metrics["fitting.in_band_within_4_walks"] == a["service"]["in_band_within_4_walks"]
    assert metrics["fitting_baseline_rule.in_band_within_6_walks"] == a["textbook_rule"]["in_band_within_6_walks"]
    card = (artifact_dir / "model_card.md").read_text()
    assert "## Simulated fittings" in card and "| observation_only |" in card
    assert f["plot"] in card and (artifact_dir / f["plot"]).stat().st_size > 1000

