"""The exported graph: all trees in ONE TreeEnsembleRegressor, standard ops after it, same numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from service import catalog
from training import dataset
from training.export import PARITY_ATOL
from training.onnx_graph import _convert, _tree_node, build_onnx, run_onnx
from training.pipeline import OUTPUT_NAMES, LgbmConfig, LightGBMAlignmentModel, augment

TREE_OPS = {"TreeEnsembleRegressor", "TreeEnsembleClassifier", "TreeEnsemble"}


def _n_trees(booster: object) -> int:
    return int(booster.num_trees())  # type: ignore[attr-defined]


def test_one_tree_ensemble_node_and_no_identity(tiny_run: dict) -> None:
    model = onnx.load(str(tiny_run["artifact"] / "model.onnx"))
    ops = [n.op_type for n in model.graph.node]
    trees = [n for n in model.graph.node if n.op_type in TREE_OPS]
    assert len(trees) == 1 and trees[0].op_type == "TreeEnsembleRegressor" and trees[0].domain == "ai.onnx.ml"
    assert "Identity" not in ops and "ZipMap" not in ops
    assert len(ops) <= 45, ops
    # The reference stage: a second ensemble inside the one If node, run only for batches with a
    # reference walk.
    (branch_node,) = [n for n in model.graph.node if n.op_type == "If"]
    branches = {a.name: a.g for a in branch_node.attribute}
    (residual,) = [n for n in branches["then_branch"].node if n.op_type in TREE_OPS]
    assert not any(n.op_type in TREE_OPS for n in branches["else_branch"].node)
    n_par = len(catalog.PARAMETER_NAMES)
    state = tiny_run["state"]
    assert all(pm.reference is not None for pm in state.model.parameters)
    for node, stage in ((trees[0], "base"), (residual, "reference")):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["n_targets"] == 5 * n_par  # inc margins, dec margins, magnitude, lo, hi
        assert attrs["post_transform"] == b"NONE" and attrs["aggregate_function"] == b"SUM"
        assert set(attrs["target_ids"]) == set(range(5 * n_par))
        # Every tree of every booster is in its node, each once, with NaN routing kept.
        boosters = [
            b
            for pm in state.model.parameters
            for owner in ((pm,) if stage == "base" else (pm.reference,))
            for b in (owner.classifier, owner.classifier_dec, owner.magnitude, owner.magnitude_lo, owner.magnitude_hi)  # type: ignore[union-attr]
        ]
        assert len(set(attrs["nodes_treeids"])) == sum(_n_trees(b) for b in boosters)
        assert "nodes_missing_value_tracks_true" in attrs and any(attrs["nodes_missing_value_tracks_true"])


def test_binary_converter_convention_is_sigmoid_of_margin(tiny_run: dict) -> None:
    """The merged graph applies Sigmoid to the summed class-0 leaf weights: that is what onnxmltools'
    binary LightGBM node outputs as P(class 1), and what LightGBM computes from its raw score."""
    state = tiny_run["state"]
    pm = state.model.parameters[0]
    x = augment(dataset.model_inputs(state.test_frame), state.model.config.engineered)
    onx = _convert(pm.classifier, x.shape[1])
    op, attrs = _tree_node(onx)
    assert op == "TreeEnsembleClassifier" and attrs["post_transform"] == b"LOGISTIC"
    assert set(attrs["class_ids"]) == {0} and list(attrs["classlabels_int64s"]) == [0, 1]
    assert not attrs.get("base_values")
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    prob = sess.run(["probabilities"], {"features": x})[0]
    margin = np.asarray(pm.classifier.predict(x, raw_score=True), dtype=np.float64)
    np.testing.assert_allclose(prob[:, 1], 1.0 / (1.0 + np.exp(-margin)), atol=1e-6)


def test_multiclass_direction_graph_parity(tiny_run: dict) -> None:
    """The 3-class direction family (SOFTMAX converter nodes) merges into the same single ensemble."""
    state = tiny_run["state"]
    frame = state.test_frame
    x, corr = dataset.model_inputs(frame), dataset.corrections(frame)
    cfg = LgbmConfig(direction="multiclass", max_rounds=8, fixed_rounds=8, num_leaves=5)
    model = LightGBMAlignmentModel.fit(x, corr, config=cfg)
    onx = build_onnx(model)
    assert sum(n.op_type in TREE_OPS for n in onx.graph.node) == 1
    heavy = x.copy()
    heavy[np.random.default_rng(3).random(x.shape) < 0.8] = np.nan
    rows = np.concatenate([x, heavy]).astype(np.float32)
    py = model.predict(rows)
    ox = run_onnx(onx, rows)
    for k in OUTPUT_NAMES:
        assert np.abs(py[k] - ox[k]).max() <= PARITY_ATOL, k


def test_bundled_graph_is_merged() -> None:
    path = Path(__file__).resolve().parents[2] / "models" / "alignment" / "1.0.0" / "model.onnx"
    graph = onnx.load(str(path)).graph
    assert sum(n.op_type in TREE_OPS for n in graph.node) == 1
    assert not any(n.op_type == "Identity" for n in graph.node)
