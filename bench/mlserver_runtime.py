# mypy: ignore-errors
# (runs inside bench/.venv-mlserver, where mlserver is installed; the main environment has no mlserver)
"""The MLServer peer's runtime: the same model.onnx through onnxruntime, as a custom MLModel.

Copied next to model-settings.json in a scratch model repository; MLServer imports it from there.
Tuned like ours: one onnxruntime session, 1 intra/inter-op thread, no spinning, CPU provider. It takes
the model's input tensor as sent (V2 "features", FP32 [n, 32], raw_input_contents or fp32 contents) and
answers the five outputs, FP32 [n, 7] each. It does strictly less than our service per call (no
validation, no ranking, no explanations).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

OUTPUT_NAMES = ("p_decrease", "p_increase", "magnitude", "magnitude_lo", "magnitude_hi")


class OnnxAlignmentRuntime(MLModel):
    async def load(self) -> bool:
        uri = await get_model_uri(self._settings)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(uri, sess_options=opts, providers=["CPUExecutionProvider"])
        self._input_name = self._session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        outs = self._session.run(OUTPUT_NAMES, {self._input_name: x})
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(n, np.asarray(o, dtype=np.float32)) for n, o in zip(OUTPUT_NAMES, outs, strict=True)],
        )
