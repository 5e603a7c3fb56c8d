"""Build the ONE ONNX graph of the contract from the per-parameter LightGBM boosters.

Contract (service/model.py depends on it exactly):
- input ``features``: float32 [None, len(catalog.MODEL_INPUT_COLUMNS)], NaN = missing;
- outputs ``p_decrease``, ``p_increase``, ``magnitude``, ``magnitude_lo``, ``magnitude_hi``: float32
  [None, 7] in catalog.PARAMETER_NAMES order.

Each booster is converted with onnxmltools (LightGBM converter, no ZipMap: probabilities stay a tensor),
its names are prefixed so 28 sub-graphs can share one input, and standard ops glue them together and
reproduce ``LightGBMAlignmentModel.predict`` exactly: floor + Log + Mul(1/T) + Softmax is the
temperature calibration, Min/Max the interval ordering. Nodes nobody reads (the converters' label
outputs) are pruned, so the graph has tens of nodes, not one per tree.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

from service import catalog
from training.pipeline import ENGINEERED_PAIRS, PROB_FLOOR, LightGBMAlignmentModel

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


def _prefixed(model: onnx.ModelProto, prefix: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], list[str]]:
    """Nodes and initializers of a converted model with every name except the shared input prefixed."""

    def ren(name: str) -> str:
        return name if name in ("", INPUT_NAME, AUGMENTED_NAME) else f"{prefix}{name}"

    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        n = onnx.NodeProto()
        n.CopyFrom(node)
        n.name = f"{prefix}{node.name or node.op_type}"
        n.input[:] = [ren(i) for i in node.input]
        n.output[:] = [ren(o) for o in node.output]
        nodes.append(n)
    inits: list[onnx.TensorProto] = []
    for init in model.graph.initializer:
        t = onnx.TensorProto()
        t.CopyFrom(init)
        t.name = ren(init.name)
        inits.append(t)
    return nodes, inits, [ren(o.name) for o in model.graph.output]


def _prune(nodes: list[onnx.NodeProto], outputs: list[str]) -> list[onnx.NodeProto]:
    """Keep only nodes that contribute to the graph outputs (drops the converters' label branches)."""
    needed = set(outputs)
    kept: list[onnx.NodeProto] = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    return list(reversed(kept))


def build_onnx(model: LightGBMAlignmentModel) -> onnx.ModelProto:
    n_in = len(catalog.MODEL_INPUT_COLUMNS)
    n_par = len(model.parameters)
    assert [p.name for p in model.parameters] == list(catalog.PARAMETER_NAMES)
    mk = helper.make_node
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    tree_input, n_tree = INPUT_NAME, n_in
    if model.config.engineered:
        # Engineered differences before the ensembles (pipeline.augment): Sub propagates NaN.
        diffs: list[str] = []
        for k, (a, b) in enumerate(ENGINEERED_PAIRS):
            for side, col in (("a", a), ("b", b)):
                inits.append(numpy_helper.from_array(np.array([col], dtype=np.int64), f"eng_{k}_{side}_index"))
                nodes.append(
                    mk(
                        "Gather",
                        [INPUT_NAME, f"eng_{k}_{side}_index"],
                        [f"eng_{k}_{side}"],
                        axis=1,
                        name=f"eng_{k}_{side}",
                    )
                )
            nodes.append(mk("Sub", [f"eng_{k}_a", f"eng_{k}_b"], [f"eng_{k}_diff"], name=f"eng_{k}_sub"))
            diffs.append(f"eng_{k}_diff")
        nodes.append(mk("Concat", [INPUT_NAME, *diffs], [AUGMENTED_NAME], axis=1, name="eng_concat"))
        tree_input, n_tree = AUGMENTED_NAME, n_in + len(ENGINEERED_PAIRS)
    sequential = model.parameters[0].classifier_dec is not None
    assert all((pm.classifier_dec is not None) == sequential for pm in model.parameters)
    probs: list[str] = []
    probs_dec: list[str] = []
    regs: dict[str, list[str]] = {"magnitude": [], "magnitude_lo": [], "magnitude_hi": []}

    def add(booster: object, prefix: str) -> list[str]:
        n, i, outs = _prefixed(_convert(booster, n_tree, tree_input), prefix)
        nodes.extend(n)
        inits.extend(i)
        return outs

    for pm in model.parameters:
        outs = add(pm.classifier, f"{pm.name}_direction_")
        probs.append(next(o for o in outs if o.endswith("probabilities")))
        if pm.classifier_dec is not None:
            outs = add(pm.classifier_dec, f"{pm.name}_direction_dec_")
            probs_dec.append(next(o for o in outs if o.endswith("probabilities")))
        for role in regs:
            regs[role].append(add(getattr(pm, role), f"{pm.name}_{role}_")[0])

    inv_t = np.array([1.0 / pm.temperature for pm in model.parameters], dtype=np.float32).reshape(1, n_par, 1)
    inits += [
        numpy_helper.from_array(np.array([-1, n_par, 3], dtype=np.int64), "glue_shape_n_par_3"),
        numpy_helper.from_array(np.array(PROB_FLOOR, dtype=np.float32), "glue_prob_floor"),
        numpy_helper.from_array(inv_t, "glue_inverse_temperature"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "glue_class_decrease"),
        numpy_helper.from_array(np.array(2, dtype=np.int64), "glue_class_increase"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "glue_zero"),
        numpy_helper.from_array(
            np.array([[pm.interval_adjust for pm in model.parameters]], dtype=np.float32), "glue_interval_adjust"
        ),
    ]
    if sequential:
        # p_increase = P_inc; p_decrease = (1 - P_inc) * P(dec | not inc); p_none = the rest
        # (pipeline.ParameterModel.raw_direction). Binary converters give [N, 2]: column 1 is P(class 1).
        inits += [
            numpy_helper.from_array(np.array([-1, n_par, 2], dtype=np.int64), "glue_shape_n_par_2"),
            numpy_helper.from_array(np.array(1, dtype=np.int64), "glue_positive_class"),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), "glue_one"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "glue_axis_2"),
        ]
        for tag, names in (("inc", probs), ("dec", probs_dec)):
            nodes += [
                mk("Concat", names, [f"glue_{tag}_flat"], axis=1, name=f"glue_concat_{tag}"),
                mk(
                    "Reshape", [f"glue_{tag}_flat", "glue_shape_n_par_2"], [f"glue_{tag}_2"], name=f"glue_reshape_{tag}"
                ),
                mk("Gather", [f"glue_{tag}_2", "glue_positive_class"], [f"glue_{tag}_p"], axis=2, name=f"glue_{tag}_p"),
            ]
        nodes += [
            mk("Sub", ["glue_one", "glue_inc_p"], ["glue_not_inc"], name="glue_not_inc"),
            mk("Mul", ["glue_not_inc", "glue_dec_p"], ["glue_p_dec"], name="glue_p_dec"),
            mk("Sub", ["glue_not_inc", "glue_p_dec"], ["glue_p_none"], name="glue_p_none"),
            mk("Unsqueeze", ["glue_p_dec", "glue_axis_2"], ["glue_p_dec_3"], name="glue_unsq_dec"),
            mk("Unsqueeze", ["glue_p_none", "glue_axis_2"], ["glue_p_none_3"], name="glue_unsq_none"),
            mk("Unsqueeze", ["glue_inc_p", "glue_axis_2"], ["glue_p_inc_3"], name="glue_unsq_inc"),
            mk("Concat", ["glue_p_dec_3", "glue_p_none_3", "glue_p_inc_3"], ["glue_probs"], axis=2, name="glue_probs"),
        ]
    else:
        nodes += [
            mk("Concat", probs, ["glue_probs_flat"], axis=1, name="glue_concat_probs"),
            mk("Reshape", ["glue_probs_flat", "glue_shape_n_par_3"], ["glue_probs"], name="glue_reshape_probs"),
        ]
    nodes += [
        mk("Max", ["glue_probs", "glue_prob_floor"], ["glue_probs_floored"], name="glue_floor"),
        mk("Log", ["glue_probs_floored"], ["glue_logp"], name="glue_log"),
        mk("Mul", ["glue_logp", "glue_inverse_temperature"], ["glue_logits"], name="glue_temperature"),
        mk("Softmax", ["glue_logits"], ["glue_calibrated"], axis=2, name="glue_softmax"),
        mk("Gather", ["glue_calibrated", "glue_class_decrease"], ["p_decrease"], axis=2, name="out_p_decrease"),
        mk("Gather", ["glue_calibrated", "glue_class_increase"], ["p_increase"], axis=2, name="out_p_increase"),
        mk("Concat", regs["magnitude"], ["glue_mag_raw"], axis=1, name="glue_concat_mag"),
        mk("Max", ["glue_mag_raw", "glue_zero"], ["magnitude"], name="out_magnitude"),
        mk("Concat", regs["magnitude_lo"], ["glue_lo_raw"], axis=1, name="glue_concat_lo"),
        mk("Sub", ["glue_lo_raw", "glue_interval_adjust"], ["glue_lo_conformal"], name="glue_lo_conformal"),
        mk("Min", ["glue_lo_conformal", "magnitude"], ["glue_lo_capped"], name="glue_lo_le_mag"),
        mk("Max", ["glue_lo_capped", "glue_zero"], ["magnitude_lo"], name="out_magnitude_lo"),
        mk("Concat", regs["magnitude_hi"], ["glue_hi_raw"], axis=1, name="glue_concat_hi"),
        mk("Add", ["glue_hi_raw", "glue_interval_adjust"], ["glue_hi_conformal"], name="glue_hi_conformal"),
        mk("Max", ["glue_hi_conformal", "magnitude"], ["magnitude_hi"], name="out_magnitude_hi"),
    ]
    out_names = ["p_decrease", "p_increase", "magnitude", "magnitude_lo", "magnitude_hi"]
    nodes = _prune(nodes, out_names)
    used = {i for n in nodes for i in n.input}
    inits = [t for t in inits if t.name in used]
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
