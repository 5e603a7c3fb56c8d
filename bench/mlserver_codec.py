# mypy: ignore-errors
# (runs inside bench/.venv-mlserver with its own grpcio/protobuf; the main environment has no mlserver)
"""V2 inference protocol helper for the MLServer peer, run with the venv's Python.

MLServer 1.7.1 ships the V2 dataplane as generated modules (mlserver.grpc.dataplane_pb2, no .proto
file), so the bench uses those from the venv at run time instead of committing generated code:

    python bench/mlserver_codec.py encode --model alignment --input x.npy --out req.framed
    python bench/mlserver_codec.py call --port 8081 --model alignment --input x.npy   # prints JSON
"""

from __future__ import annotations

import argparse
import json
import struct
import sys

import grpc
import numpy as np
from mlserver.grpc import dataplane_pb2 as pb
from mlserver.grpc import dataplane_pb2_grpc as pb_grpc

OUTPUT_NAMES = ("p_decrease", "p_increase", "magnitude", "magnitude_lo", "magnitude_hi")


def infer_request(model: str, x: np.ndarray) -> pb.ModelInferRequest:
    x = np.ascontiguousarray(x, dtype=np.float32)
    req = pb.ModelInferRequest(model_name=model)
    t = req.inputs.add(name="features", datatype="FP32", shape=list(x.shape))
    t.contents.fp32_contents.extend(x.ravel().tolist())
    return req


def decode(resp: pb.ModelInferResponse) -> dict[str, list[list[float]]]:
    out = {}
    for i, o in enumerate(resp.outputs):
        if resp.raw_output_contents:
            flat = np.frombuffer(resp.raw_output_contents[i], dtype=np.float32)
        else:
            flat = np.asarray(o.contents.fp32_contents, dtype=np.float32)
        out[o.name] = flat.reshape(list(o.shape)).tolist()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=("encode", "call"))
    ap.add_argument("--model", default="alignment")
    ap.add_argument("--input", required=True)
    ap.add_argument("--out")
    ap.add_argument("--port", type=int)
    a = ap.parse_args(argv)
    req = infer_request(a.model, np.load(a.input))
    if a.command == "encode":
        msg = req.SerializeToString()
        with open(a.out, "wb") as fh:
            fh.write(struct.pack(">BI", 0, len(msg)) + msg)
        return 0
    with grpc.insecure_channel(f"127.0.0.1:{a.port}") as ch:
        resp = pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=10)
    print(json.dumps({"response_bytes": len(resp.SerializeToString()), "outputs": decode(resp)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
