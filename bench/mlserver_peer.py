"""The peer: Seldon MLServer 1.7.1, tuned, serving the same model.onnx over the V2 gRPC protocol.

MLServer pins other grpcio/protobuf versions than the service, so it lives in its own virtualenv,
bench/.venv-mlserver (gitignored), created on first use with `uvloop<0.22` (newer uvloop stops
MLServer 1.7.1's inference workers, DESIGN 8). Tuned: parallel_workers 0 (inference in the server
process: no IPC hop to a worker pool), debug off (no access log), metrics off (no Prometheus
interceptor), one onnxruntime thread (bench/mlserver_runtime.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from bench import procs

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-mlserver"
PY = VENV / "bin" / "python"
REQUIREMENTS = ("mlserver==1.7.1", "uvloop<0.22", "onnxruntime", "numpy")
INFER_PATH = "/inference.GRPCInferenceService/ModelInfer"
READY_PATH = "/inference.GRPCInferenceService/ModelReady"
MODEL_NAME = "alignment"


def ensure_venv(install: bool, log: Path) -> str | None:
    """Return None when the venv is usable, else why not (the bench then skips the peer)."""
    if _importable():
        return None
    if not install:
        return f"{VENV} has no mlserver and --no-install was given"
    try:
        if not PY.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
        with open(log, "ab") as fh:
            subprocess.run([str(PY), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True,
                           stdout=fh, stderr=fh, timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"cannot install MLServer into {VENV}: {exc} (see {log})"
    return None if _importable() else f"mlserver still not importable in {VENV} (see {log})"


def _importable() -> bool:
    if not PY.exists():
        return False
    cp = subprocess.run([str(PY), "-c", "import mlserver, onnxruntime, uvloop; print(mlserver.__version__, uvloop.__version__)"],
                        capture_output=True, text=True, timeout=120, check=False)
    return cp.returncode == 0


@dataclass
class Peer:
    proc: procs.Proc
    startup_s: float
    request_file: Path
    response_bytes: int  # framed
    max_abs_diff: float  # vs the in-process model on the same input


def _ready_request() -> bytes:
    # inference.ModelReadyRequest{name = 1}: hand-encoded, so the main environment needs no V2 stubs.
    name = MODEL_NAME.encode()
    return b"\x0a" + bytes([len(name)]) + name


def wait_ready(port: int, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(READY_PATH, request_serializer=None, response_deserializer=None)
        while time.monotonic() < deadline:
            try:
                resp = call(_ready_request(), timeout=0.5)
                if resp == b"\x08\x01":  # ModelReadyResponse{ready = true}
                    return time.monotonic()
            except grpc.RpcError:
                pass
            time.sleep(0.02)
    raise TimeoutError(f"MLServer on {port} not ready after {timeout_s:.0f} s")


def start(model_onnx: Path, x_model_order: np.ndarray, want: dict[str, np.ndarray], out: Path) -> Peer:
    """Write a model repository, start MLServer, check one real call against the in-process model."""
    root = out / "mlserver"
    shutil.rmtree(root, ignore_errors=True)
    model_dir = root / MODEL_NAME
    model_dir.mkdir(parents=True)
    shutil.copy(HERE / "mlserver_runtime.py", model_dir / "onnx_runtime.py")
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": MODEL_NAME,
        "implementation": "onnx_runtime.OnnxAlignmentRuntime",
        "parameters": {"uri": str(model_onnx.resolve())},
    }))
    grpc_port, http_port, metrics_port = procs.free_port(), procs.free_port(), procs.free_port()
    (root / "settings.json").write_text(json.dumps({
        "debug": False,
        "parallel_workers": 0,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "metrics_endpoint": None,
        "load_models_at_startup": True,
    }))
    x_path = out / "mlserver-x.npy"
    np.save(x_path, x_model_order.astype(np.float32))
    req_file = out / "mlserver-req.framed"
    subprocess.run([str(PY), str(HERE / "mlserver_codec.py"), "encode", "--input", str(x_path), "--out", str(req_file)],
                   check=True, capture_output=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(model_dir)
    t0 = time.monotonic()
    p = procs.spawn("mlserver", [str(VENV / "bin" / "mlserver"), "start", str(root)], out, env=env, cwd=root, port=grpc_port)
    try:
        ready = wait_ready(grpc_port, 120)
        cp = subprocess.run([str(PY), str(HERE / "mlserver_codec.py"), "call", "--port", str(grpc_port), "--input", str(x_path)],
                            check=True, capture_output=True, text=True, timeout=60)
    except BaseException:
        p.stop()
        raise
    got = json.loads(cp.stdout)
    diff = max(float(np.max(np.abs(np.asarray(got["outputs"][k], dtype=np.float32) - v))) for k, v in want.items())
    return Peer(p, ready - t0, req_file, int(got["response_bytes"]) + 5, diff)
