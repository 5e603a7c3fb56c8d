"""OnnxModel: load an artifact, check it against the catalog, run it. The sole onnxruntime import.

An artifact is `models/<name>/<version>/` with `model.onnx`, `manifest.json` and `model_card.md`.
`OnnxModel.load` (a factory: the constructor only stores) verifies the sha256, that every input
column and parameter is in the catalog with the catalog's unit, that the graph's inputs/outputs match
the manifest, and that the manifest's golden inputs reproduce its golden outputs. Any failure is a
ModelArtifactError and nothing is served from that artifact.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.catalog import (
    CATALOG_VERSION,
    CONTEXT_COLUMNS,
    FEATURE_INDEX,
    FEATURE_NAMES,
    MODEL_INPUT_COLUMNS,
    PARAMETERS_BY_NAME,
    Parameter,
)
from service.domain import ModelRef
from service.errors import ModelArtifactError

OUTPUT_NAMES: tuple[str, ...] = ("p_decrease", "p_increase", "magnitude", "magnitude_lo", "magnitude_hi")
F32 = npt.NDArray[np.float32]


class _Input(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    columns: list[str]
    dtype: str = "float32"


class _Param(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    unit: str


class _Golden(BaseModel):
    inputs: list[list[float | None]]
    outputs: dict[str, list[list[float]]]
    atol: float = 1e-4


class Manifest(BaseModel):
    """manifest.json as written by training/export.py (extra fields are kept, not required)."""

    model_config = ConfigDict(extra="allow")
    schema_version: int = 1
    name: str
    version: str
    catalog_version: str
    model_file: str = "model.onnx"
    sha256: str
    model_family: str = ""
    created_utc: str = ""
    input: _Input
    outputs: list[str]
    parameters: list[_Param]
    training_data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    golden: _Golden


@dataclass(frozen=True, slots=True)
class Prediction:
    """Model outputs, each [n, len(parameters)] in manifest parameter order."""

    p_decrease: F32
    p_increase: F32
    magnitude: F32
    magnitude_lo: F32
    magnitude_hi: F32


def _input_ranges(m: Manifest) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    ranges = (m.model_extra or {}).get("input_ranges")
    if not isinstance(ranges, dict):
        return None
    lo = np.full(len(FEATURE_NAMES), -np.inf)
    hi = np.full(len(FEATURE_NAMES), np.inf)
    for i, name in enumerate(FEATURE_NAMES):
        pair = ranges.get(name)
        if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int | float) for v in pair):
            lo[i], hi[i] = float(pair[0]), float(pair[1])
    return lo, hi


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metrics -> {"a.b.c": float} for GetModel (non-numeric leaves are skipped)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_metrics(v, key + "."))
        elif isinstance(v, bool):
            continue
        elif isinstance(v, int | float) and math.isfinite(float(v)):
            out[key] = float(v)
    return out


class OnnxModel:
    def __init__(self, manifest: Manifest, session: ort.InferenceSession, directory: Path) -> None:
        self.manifest = manifest
        self.directory = directory
        self._session = session
        self._input_name = manifest.input.name
        self.parameters: tuple[Parameter, ...] = tuple(Parameter(p.name) for p in manifest.parameters)
        self.columns: tuple[str, ...] = tuple(manifest.input.columns)
        # Where each model column comes from in the service's catalog-ordered vector
        # (features then context columns): lets a model use a subset or another order.
        self.column_index = np.array([MODEL_INPUT_COLUMNS.index(c) for c in self.columns], dtype=np.intp)
        self.feature_columns = frozenset(c for c in self.columns if c in FEATURE_INDEX)
        # What every answer names as its model (one object, reused by the wire-encoding caches).
        self.ref = ModelRef(manifest.name, manifest.version, manifest.sha256)
        # Set by the registry: (mtime, size) of the files it was loaded from, to notice rewrites.
        self.fingerprint: tuple[float, ...] | None = None
        # The per-feature range of the training inputs (manifest "input_ranges", catalog order), for
        # answers on inputs outside it: those never read HIGH (DESIGN 3.3). None when not recorded.
        self.input_ranges = _input_ranges(manifest)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def sha256(self) -> str:
        return self.manifest.sha256

    @classmethod
    def load(cls, directory: Path) -> OnnxModel:
        """Verify and load one artifact directory; raise ModelArtifactError on any mismatch."""
        directory = Path(directory)
        manifest = _read_manifest(directory)
        _check_manifest_against_catalog(manifest)
        model_path = directory / manifest.model_file
        if not model_path.is_file():
            raise ModelArtifactError(f"{directory}: {manifest.model_file} is missing")
        digest = sha256_file(model_path)
        if digest != manifest.sha256:
            raise ModelArtifactError(
                f"{directory}: sha256 of {manifest.model_file} is {digest}, manifest says {manifest.sha256}"
            )
        opts = ort.SessionOptions()
        # One request is ~20 us of model work: threads and spinning only add wake-up latency and
        # steal the cores the gRPC workers need (DESIGN 4, issue 5).
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
            raise ModelArtifactError(f"{directory}: onnxruntime cannot load {manifest.model_file}: {exc}") from exc
        _check_graph(directory, manifest, session)
        model = cls(manifest, session, directory)
        model.check_golden()
        return model

    def predict(self, x_catalog: npt.NDArray[np.float64]) -> Prediction:
        """x_catalog: [n, len(MODEL_INPUT_COLUMNS)] in catalog order, NaN for missing."""
        x = np.ascontiguousarray(x_catalog[:, self.column_index], dtype=np.float32)
        return self.predict_model_order(x)

    def predict_model_order(self, x: F32) -> Prediction:
        outs = self._session.run(OUTPUT_NAMES, {self._input_name: x})
        return Prediction(*(np.asarray(o, dtype=np.float32) for o in outs))

    def check_golden(self) -> None:
        """Warm-up on the manifest's golden inputs and compare with its golden outputs."""
        g = self.manifest.golden
        if not g.inputs:
            raise ModelArtifactError(f"{self.directory}: manifest has no golden inputs")
        x = np.array([[np.nan if v is None else v for v in row] for row in g.inputs], dtype=np.float32)
        if x.shape[1] != len(self.columns):
            raise ModelArtifactError(f"{self.directory}: golden inputs have {x.shape[1]} columns, expected {len(self.columns)}")
        pred = self.predict_model_order(x)
        for name in OUTPUT_NAMES:
            want = np.asarray(g.outputs.get(name, []), dtype=np.float32)
            got = getattr(pred, name)
            if want.shape != got.shape:
                raise ModelArtifactError(f"{self.directory}: golden output {name} has shape {want.shape}, model gives {got.shape}")
            err = float(np.max(np.abs(want - got))) if want.size else 0.0
            if not err <= g.atol:
                raise ModelArtifactError(
                    f"{self.directory}: golden output {name} differs by {err:.3g} (> {g.atol:g}): wrong or corrupt model"
                )


def _read_manifest(directory: Path) -> Manifest:
    path = directory / "manifest.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"{directory}: manifest.json is missing") from exc
    except (OSError, ValueError) as exc:
        raise ModelArtifactError(f"{directory}: manifest.json is unreadable: {exc}") from exc
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ModelArtifactError(f"{directory}: manifest.json is invalid: {exc}") from exc


def _check_manifest_against_catalog(m: Manifest) -> None:
    if m.catalog_version.split(".")[0] != CATALOG_VERSION.split(".")[0]:
        raise ModelArtifactError(f"model {m.name} {m.version}: catalog {m.catalog_version} is not compatible with {CATALOG_VERSION}")
    unknown = [c for c in m.input.columns if c not in MODEL_INPUT_COLUMNS]
    if unknown:
        raise ModelArtifactError(f"model {m.name} {m.version}: input columns not in the catalog: {unknown}")
    if len(set(m.input.columns)) != len(m.input.columns):
        raise ModelArtifactError(f"model {m.name} {m.version}: duplicated input columns")
    missing_ctx = [c for c in CONTEXT_COLUMNS if c not in m.input.columns]
    if missing_ctx:
        raise ModelArtifactError(f"model {m.name} {m.version}: context columns missing: {missing_ctx}")
    if tuple(m.outputs) != OUTPUT_NAMES:
        raise ModelArtifactError(f"model {m.name} {m.version}: outputs {m.outputs}, expected {list(OUTPUT_NAMES)}")
    for p in m.parameters:
        spec = PARAMETERS_BY_NAME.get(p.name)
        if spec is None:
            raise ModelArtifactError(f"model {m.name} {m.version}: unknown parameter {p.name}")
        if spec.unit != p.unit:
            raise ModelArtifactError(f"model {m.name} {m.version}: {p.name} in {p.unit}, catalog says {spec.unit}")


def _check_graph(directory: Path, m: Manifest, session: ort.InferenceSession) -> None:
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != m.input.name:
        raise ModelArtifactError(f"{directory}: graph inputs {[i.name for i in inputs]} != [{m.input.name!r}]")
    width = inputs[0].shape[1] if len(inputs[0].shape) == 2 else None
    if isinstance(width, int) and width != len(m.input.columns):
        raise ModelArtifactError(f"{directory}: graph takes {width} columns, manifest lists {len(m.input.columns)}")
    names = {o.name for o in session.get_outputs()}
    if not set(OUTPUT_NAMES) <= names:
        raise ModelArtifactError(f"{directory}: graph outputs {sorted(names)} lack {sorted(set(OUTPUT_NAMES) - names)}")
