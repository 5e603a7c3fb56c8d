"""Build the ONE ONNX graph of the contract from the per-parameter LightGBM boosters.

Contract (service/model.py depends on it exactly):
- input ``features``: float32 [None, len(catalog.MODEL_INPUT_COLUMNS)], NaN = missing;
- outputs ``p_decrease``, ``p_increase``, ``magnitude``, ``magnitude_lo``, ``magnitude_hi``: float32
  [None, 7] in catalog.PARAMETER_NAMES order.

Each booster is converted with onnxmltools (LightGBM converter) and the trees of its one tree-ensemble
node are copied into ONE ``ai.onnx.ml.TreeEnsembleRegressor`` with one output column per booster
(``_Ensemble``): onnxruntime then walks all trees in one kernel call instead of dispatching 35 nodes.
Standard ops after it reproduce ``LightGBMAlignmentModel.predict`` exactly: Sigmoid is the binary
converters' LOGISTIC post-transform (Softmax the 3-class one), floor + Log + Mul(1/T) + Softmax is the
temperature calibration, Sub/Add the conformal interval adjustment, Min/Max the interval ordering.
The graph has about 25 nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

from service import catalog
from training.pipeline import ENGINEERED_PAIRS, PROB_FLOOR, REFERENCE_INDEX, LightGBMAlignmentModel

INPUT_NAME = "features"
# The tree ensembles read this tensor: the input plus the engineered differences (pipeline.augment).
AUGMENTED_NAME = "features_augmented"
TARGET_OPSET = 15  # DESIGN 8: onnxmltools 1.16 supports target opset <= 15
ML_OPSET = 1


def _convert(booster: object, n_inputs: int, input_name: str = INPUT_NAME) -> onnx.ModelProto:
    onx: onnx.ModelProto = convert_lightgbm(
        booster,
        initial_types=[(input_name, FloatTensorType([None, n_inputs]))],
        target_opset=TARGET_OPSET,
        zipmap=False,
    )
    return onx


# Attributes of the converters' tree nodes that describe the trees themselves (copied per tree).
_NODE_ATTRS = (
    "nodes_nodeids",
    "nodes_featureids",
    "nodes_modes",
    "nodes_values",
    "nodes_truenodeids",
    "nodes_falsenodeids",
    "nodes_missing_value_tracks_true",
)
_TREE_OPS = ("TreeEnsembleRegressor", "TreeEnsembleClassifier")


def _tree_node(onx: onnx.ModelProto) -> tuple[str, dict[str, Any]]:
    """The single tree-ensemble node of a converted booster: op type and attributes."""
    trees = [n for n in onx.graph.node if n.domain == "ai.onnx.ml" and n.op_type in _TREE_OPS]
    if len(trees) != 1:
        raise ValueError(f"expected one tree-ensemble node per booster, got {[n.op_type for n in trees]}")
    attrs = {a.name: helper.get_attribute_value(a) for a in trees[0].attribute}
    return trees[0].op_type, attrs


class _Ensemble:
    """All trees of all boosters as ONE TreeEnsembleRegressor whose column k is one booster's raw score.

    Each converted booster's tree node is read back and its trees appended with renumbered tree ids;
    their leaves target the booster's own output column (a classifier's ``class_*`` arrays become
    ``target_*`` of its margin column). Splits, thresholds (already float32-snapped by the pipeline),
    leaf weights and NaN routing (``nodes_missing_value_tracks_true``) are copied unchanged, so every
    column equals the sum the booster's own node computed; the converter's post_transform (LOGISTIC,
    SOFTMAX) is applied by standard ops after the ensemble.
    """

    def __init__(self) -> None:
        self.attrs: dict[str, list[Any]] = {k: [] for k in ("nodes_treeids", *_NODE_ATTRS)}
        for k in ("target_ids", "target_nodeids", "target_treeids", "target_weights"):
            self.attrs[k] = []
        self.base_values: dict[int, float] = {}
        self.n_trees = 0

    def add(self, onx: onnx.ModelProto, columns: dict[int, int], post_transform: str) -> None:
        """Append the trees of a converted booster; ``columns`` maps its class/target id to our column."""
        op, a = _tree_node(onx)
        got = a.get("post_transform", b"NONE")
        got = got.decode() if isinstance(got, bytes) else str(got)
        if got != post_transform:
            raise ValueError(f"{op}: post_transform {got}, expected {post_transform}")
        if a.get("aggregate_function", b"SUM") not in (b"SUM", "SUM"):
            raise ValueError(f"{op}: aggregate_function {a['aggregate_function']!r} is not SUM")
        if op == "TreeEnsembleClassifier":
            if "classlabels_strings" in a or list(a["classlabels_int64s"]) != list(range(len(a["classlabels_int64s"]))):
                raise ValueError(f"{op}: unexpected class labels")
            ids, nodeids, treeids, weights = (a[f"class_{k}"] for k in ("ids", "nodeids", "treeids", "weights"))
        else:
            if int(a.get("n_targets", 1)) != 1:
                raise ValueError(f"{op}: {a['n_targets']} targets, expected 1")
            ids, nodeids, treeids, weights = (a[f"target_{k}"] for k in ("ids", "nodeids", "treeids", "weights"))
        if set(ids) - set(columns):
            raise ValueError(f"{op}: leaves target ids {sorted(set(ids) - set(columns))} that have no column")
        for cls, v in enumerate(a.get("base_values") or []):
            if v != 0.0:
                self.base_values[columns[cls]] = float(v)
        renum = {t: self.n_trees + i for i, t in enumerate(sorted(set(a["nodes_treeids"])))}
        self.n_trees += len(renum)
        self.attrs["nodes_treeids"] += [renum[t] for t in a["nodes_treeids"]]
        for k in _NODE_ATTRS:
            if len(a[k]) != len(a["nodes_treeids"]):
                raise ValueError(f"{op}: {k} has {len(a[k])} entries for {len(a['nodes_treeids'])} nodes")
            self.attrs[k] += list(a[k])
        self.attrs["target_ids"] += [columns[i] for i in ids]
        self.attrs["target_nodeids"] += list(nodeids)
        self.attrs["target_treeids"] += [renum[t] for t in treeids]
        self.attrs["target_weights"] += list(weights)

    def node(self, tree_input: str, output: str, n_targets: int) -> onnx.NodeProto:
        kw: dict[str, Any] = dict(self.attrs)
        if self.base_values:
            kw["base_values"] = [self.base_values.get(k, 0.0) for k in range(n_targets)]
        return helper.make_node(
            "TreeEnsembleRegressor",
            [tree_input],
            [output],
            domain="ai.onnx.ml",
            name="trees",
            n_targets=n_targets,
            post_transform="NONE",
            aggregate_function="SUM",
            **kw,
        )


def _reference_stage(
    model: LightGBMAlignmentModel, n_dir: int, n_tree: int, tree_input: str, const: Any
) -> list[onnx.NodeProto]:
    """Nodes adding the reference stage (pipeline.ReferenceStage) to ``trees_raw`` -> ``trees_combined``.

    The residual boosters form a second TreeEnsembleRegressor with the base block's column layout,
    inside an ``If``: it runs only when some row of the batch carries a reference walk (otherwise the
    branch yields zeros and costs nothing), and its scores are added only on those rows (``has_ref``).
    """
    mk = helper.make_node
    n_par = len(model.parameters)
    n_base = (n_dir + 3) * n_par
    ens = _Ensemble()
    for j, pm in enumerate(model.parameters):
        st = pm.reference
        assert st is not None
        for k, b in enumerate((st.classifier, st.classifier_dec)):
            ens.add(_convert(b, n_tree, tree_input), {0: k * n_par + j}, "LOGISTIC")
        for r, b in enumerate((st.magnitude, st.magnitude_lo, st.magnitude_hi)):
            ens.add(_convert(b, n_tree, tree_input), {0: (n_dir + r) * n_par + j}, "NONE")
    out_info = [helper.make_tensor_value_info("trees_residual_branch", TensorProto.FLOAT, [None, n_base])]
    then_branch = helper.make_graph(
        [ens.node(tree_input, "trees_residual_branch", n_base)],
        "reference_stage",
        [],
        out_info,
    )
    zero_row = helper.make_tensor("ref_zero", TensorProto.FLOAT, [1], [0.0])
    else_branch = helper.make_graph(
        [
            mk("Shape", [tree_input], ["ref_else_shape"], name="ref_else_shape"),
            mk("Gather", ["ref_else_shape", "ref_dim0"], ["ref_else_n"], axis=0, name="ref_else_n"),
            mk("Concat", ["ref_else_n", "ref_width"], ["ref_else_dims"], axis=0, name="ref_else_dims"),
            mk("ConstantOfShape", ["ref_else_dims"], ["trees_residual_branch"], value=zero_row, name="ref_else"),
        ],
        "no_reference",
        [],
        out_info,
    )
    ref_idx = const("ref_index", np.array(REFERENCE_INDEX, dtype=np.int64))
    const("ref_dim0", np.array([0], dtype=np.int64))
    const("ref_width", np.array([n_base], dtype=np.int64))
    return [
        # has_ref [N,1]: 1.0 where any change-since-reference column is present.
        mk("Gather", [INPUT_NAME, ref_idx], ["ref_changes"], axis=1, name="ref_gather"),
        mk("IsNaN", ["ref_changes"], ["ref_missing"], name="ref_isnan"),
        mk("Not", ["ref_missing"], ["ref_present"], name="ref_not"),
        mk("Cast", ["ref_present"], ["ref_present_f"], to=TensorProto.FLOAT, name="ref_cast"),
        mk("ReduceMax", ["ref_present_f"], ["has_ref"], axes=[1], keepdims=1, name="ref_rows"),
        mk("ReduceMax", ["has_ref"], ["ref_any_f"], keepdims=0, name="ref_any"),
        mk("Cast", ["ref_any_f"], ["ref_any"], to=TensorProto.BOOL, name="ref_any_bool"),
        mk("If", ["ref_any"], ["trees_residual"], then_branch=then_branch, else_branch=else_branch, name="ref_if"),
        mk("Mul", ["trees_residual", "has_ref"], ["trees_residual_gated"], name="ref_gate"),
        mk("Add", ["trees_raw", "trees_residual_gated"], ["trees_combined"], name="ref_add"),
    ]


def build_onnx(model: LightGBMAlignmentModel) -> onnx.ModelProto:
    """One TreeEnsembleRegressor for all boosters, then a few standard ops (see the module docstring).

    Columns of the ensemble's [N, 5 * n_par] (sequential) or [N, 6 * n_par] (multiclass) output, each
    block n_par wide in parameter order: the direction margins (sequential: P(increase) margins, then
    P(decrease | not increase) margins; multiclass: class 0, 1, 2 margins), then magnitude, magnitude_lo,
    magnitude_hi.
    """
    n_in = len(catalog.MODEL_INPUT_COLUMNS)
    n_par = len(model.parameters)
    assert [p.name for p in model.parameters] == list(catalog.PARAMETER_NAMES)
    mk = helper.make_node
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    tree_input, n_tree = INPUT_NAME, n_in
    if model.config.engineered:
        # Engineered differences before the ensemble (pipeline.augment): a - b for every pair at once,
        # appended after the inputs. Sub propagates NaN.
        a_idx = const("eng_a_index", np.array([a for a, _ in ENGINEERED_PAIRS], dtype=np.int64))
        b_idx = const("eng_b_index", np.array([b for _, b in ENGINEERED_PAIRS], dtype=np.int64))
        nodes += [
            mk("Gather", [INPUT_NAME, a_idx], ["eng_a"], axis=1, name="eng_a"),
            mk("Gather", [INPUT_NAME, b_idx], ["eng_b"], axis=1, name="eng_b"),
            mk("Sub", ["eng_a", "eng_b"], ["eng_diff"], name="eng_sub"),
            mk("Concat", [INPUT_NAME, "eng_diff"], [AUGMENTED_NAME], axis=1, name="eng_concat"),
        ]
        tree_input, n_tree = AUGMENTED_NAME, n_in + len(ENGINEERED_PAIRS)
    sequential = model.parameters[0].classifier_dec is not None
    assert all((pm.classifier_dec is not None) == sequential for pm in model.parameters)
    n_dir = 2 if sequential else 3  # direction margin blocks
    ens = _Ensemble()
    for j, pm in enumerate(model.parameters):
        if sequential:
            # onnxmltools' binary LightGBM node: one score (class id 0) per leaf, LOGISTIC, and the
            # probability of class 1 is sigmoid(score) (checked against LightGBM in tests/training).
            ens.add(_convert(pm.classifier, n_tree, tree_input), {0: j}, "LOGISTIC")
            assert pm.classifier_dec is not None
            ens.add(_convert(pm.classifier_dec, n_tree, tree_input), {0: n_par + j}, "LOGISTIC")
        else:
            ens.add(_convert(pm.classifier, n_tree, tree_input), {c: c * n_par + j for c in range(3)}, "SOFTMAX")
    for r, role in enumerate(("magnitude", "magnitude_lo", "magnitude_hi")):
        for j, pm in enumerate(model.parameters):
            ens.add(_convert(getattr(pm, role), n_tree, tree_input), {0: (n_dir + r) * n_par + j}, "NONE")
    n_base = (n_dir + 3) * n_par
    nodes.append(ens.node(tree_input, "trees_raw", n_base))
    staged = model.parameters[0].reference is not None
    assert all((pm.reference is not None) == staged for pm in model.parameters)
    combined = "trees_raw"
    if staged:
        assert sequential
        nodes += _reference_stage(model, n_dir, n_tree, tree_input, const)
        combined = "trees_combined"
    blocks = [f"trees_direction_{k}" for k in range(n_dir)] + ["trees_magnitude", "trees_lo", "trees_hi"]
    split = const("glue_split", np.full(n_dir + 3, n_par, dtype=np.int64))
    nodes.append(mk("Split", [combined, split], blocks, axis=1, name="glue_split"))

    shape_3 = const("glue_shape_3_n_par", np.array([-1, 3, n_par], dtype=np.int64))
    if sequential:
        # p_increase = P_inc; p_decrease = (1 - P_inc) * P(dec | not inc); p_none = the rest
        # (pipeline.ParameterModel.raw_direction).
        one = const("glue_one", np.array(1.0, dtype=np.float32))
        nodes += [
            mk("Sigmoid", [blocks[0]], ["glue_inc_p"], name="glue_sigmoid_inc"),
            mk("Sigmoid", [blocks[1]], ["glue_dec_p"], name="glue_sigmoid_dec"),
            mk("Sub", [one, "glue_inc_p"], ["glue_not_inc"], name="glue_not_inc"),
            mk("Mul", ["glue_not_inc", "glue_dec_p"], ["glue_p_dec"], name="glue_p_dec"),
            mk("Sub", ["glue_not_inc", "glue_p_dec"], ["glue_p_none"], name="glue_p_none"),
            mk("Concat", ["glue_p_dec", "glue_p_none", "glue_inc_p"], ["glue_probs_flat"], axis=1, name="glue_probs"),
            mk("Reshape", ["glue_probs_flat", shape_3], ["glue_probs"], name="glue_reshape_probs"),
        ]
    else:
        nodes += [
            mk("Concat", blocks[:3], ["glue_margins_flat"], axis=1, name="glue_margins"),
            mk("Reshape", ["glue_margins_flat", shape_3], ["glue_margins"], name="glue_reshape_margins"),
            mk("Softmax", ["glue_margins"], ["glue_probs"], axis=1, name="glue_softmax_classes"),
        ]
    # glue_probs: [N, 3, n_par], classes decrease / none / increase on axis 1.
    inv_t = np.array([1.0 / pm.temperature for pm in model.parameters], dtype=np.float32).reshape(1, 1, n_par)
    floor = const("glue_prob_floor", np.array(PROB_FLOOR, dtype=np.float32))
    zero = const("glue_zero", np.array(0.0, dtype=np.float32))
    adjust_base = np.array([[pm.interval_adjust for pm in model.parameters]], dtype=np.float32)
    inverse_t = const("glue_inverse_temperature", inv_t)
    adjust = const("glue_interval_adjust", adjust_base)
    if staged:
        # Rows with a reference walk use the reference stage's temperature and interval adjustment:
        # value = base + has_ref * (reference - base), exact for has_ref in {0, 1}.
        refs = [pm.reference for pm in model.parameters]
        inv_t_ref = np.array([1.0 / r.temperature for r in refs if r], dtype=np.float32).reshape(1, 1, n_par)
        adjust_ref = np.array([[r.interval_adjust for r in refs if r]], dtype=np.float32)
        nodes += [
            mk("Reshape", ["has_ref", const("ref_shape_3", np.array([-1, 1, 1], dtype=np.int64))], ["has_ref_3"]),
            mk("Mul", ["has_ref_3", const("ref_inverse_t_delta", inv_t_ref - inv_t)], ["ref_inv_t_step"]),
            mk("Add", [inverse_t, "ref_inv_t_step"], ["glue_inverse_temperature_rows"]),
            mk("Mul", ["has_ref", const("ref_adjust_delta", adjust_ref - adjust_base)], ["ref_adjust_step"]),
            mk("Add", [adjust, "ref_adjust_step"], ["glue_interval_adjust_rows"]),
        ]
        inverse_t, adjust = "glue_inverse_temperature_rows", "glue_interval_adjust_rows"
    nodes += [
        mk("Max", ["glue_probs", floor], ["glue_probs_floored"], name="glue_floor"),
        mk("Log", ["glue_probs_floored"], ["glue_logp"], name="glue_log"),
        mk("Mul", ["glue_logp", inverse_t], ["glue_logits"], name="glue_temperature"),
        mk("Softmax", ["glue_logits"], ["glue_calibrated"], axis=1, name="glue_softmax"),
        mk(
            "Gather",
            ["glue_calibrated", const("glue_class_decrease", np.array(0, dtype=np.int64))],
            ["p_decrease"],
            axis=1,
            name="out_p_decrease",
        ),
        mk(
            "Gather",
            ["glue_calibrated", const("glue_class_increase", np.array(2, dtype=np.int64))],
            ["p_increase"],
            axis=1,
            name="out_p_increase",
        ),
        mk("Max", ["trees_magnitude", zero], ["magnitude"], name="out_magnitude"),
        mk("Sub", ["trees_lo", adjust], ["glue_lo_conformal"], name="glue_lo_conformal"),
        mk("Min", ["glue_lo_conformal", "magnitude"], ["glue_lo_capped"], name="glue_lo_le_mag"),
        mk("Max", ["glue_lo_capped", zero], ["magnitude_lo"], name="out_magnitude_lo"),
        mk("Add", ["trees_hi", adjust], ["glue_hi_conformal"], name="glue_hi_conformal"),
        mk("Max", ["glue_hi_conformal", "magnitude"], ["magnitude_hi"], name="out_magnitude_hi"),
    ]
    out_names = ["p_decrease", "p_increase", "magnitude", "magnitude_lo", "magnitude_hi"]
    graph = helper.make_graph(
        nodes,
        "alignment",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_in])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None, n_par]) for o in out_names],
        initializer=inits,
    )
    onx = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", TARGET_OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="training.onnx_graph",
    )
    onx.ir_version = 8  # onnxruntime >= 1.14 reads IR 8; keeps the artifact loadable by older runtimes
    onnx.checker.check_model(onx)
    return onx


def run_onnx(onx: onnx.ModelProto | bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    data = onx if isinstance(onx, bytes) else onx.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {INPUT_NAME: np.asarray(x, dtype=np.float32)})
    return {o.name: v for o, v in zip(sess.get_outputs(), outs, strict=True)}


def opset_of(onx: onnx.ModelProto) -> dict[str, int]:
    return {(o.domain or "ai.onnx"): int(o.version) for o in onx.opset_import}
