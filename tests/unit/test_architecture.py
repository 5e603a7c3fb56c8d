"""The dependency direction is law (DESIGN 2): walk every import and enforce it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ["catalog", "domain", "validation", "recommender", "registry", "errors", "settings", "logs", "extraction"]
FORBIDDEN_IN_CORE = ("grpc", "grpc_health", "grpc_reflection", "grpc_status", "google.protobuf", "google.rpc", "onnxruntime", "service.api", "service._generated")
TRAINING_ONLY = ("sklearn", "pandas", "lightgbm", "onnxmltools", "skl2onnx", "onnx", "training", "matplotlib")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _bad(imports: set[str], forbidden: tuple[str, ...]) -> set[str]:
    return {i for i in imports if any(i == f or i.startswith(f + ".") for f in forbidden)}


def _core_files(name: str) -> list[Path]:
    """A core module, or every module of a core package (service/recommender/ is one)."""
    package = ROOT / "service" / name
    if package.is_dir():
        return sorted(package.glob("*.py"))
    return [ROOT / "service" / f"{name}.py"]


def test_core_imports_no_grpc_protobuf_or_onnxruntime() -> None:
    for name in CORE:
        files = _core_files(name)
        assert files and all(p.exists() for p in files), name
        for path in files:
            assert not _bad(_imports(path), FORBIDDEN_IN_CORE), f"{path} imports {_bad(_imports(path), FORBIDDEN_IN_CORE)}"


def test_record_store_core_imports_no_grpc_or_protobuf() -> None:
    for path in (ROOT / "service" / "records").rglob("*.py"):
        bad = _bad(_imports(path), FORBIDDEN_IN_CORE)
        assert not bad, f"{path} imports {bad}"


def test_only_model_py_imports_onnxruntime() -> None:
    for path in (ROOT / "service").rglob("*.py"):
        if "_generated" in path.parts or path.name == "model.py":
            continue
        assert "onnxruntime" not in _imports(path), f"{path} imports onnxruntime"


def test_sensors_are_pure_numpy() -> None:
    for path in (ROOT / "service" / "sensors").rglob("*.py"):
        bad = _bad(_imports(path), FORBIDDEN_IN_CORE)
        assert not bad, f"{path} imports {bad}"


def test_service_never_imports_training_libraries() -> None:
    for path in (ROOT / "service").rglob("*.py"):
        if "_generated" in path.parts:
            continue
        bad = _bad(_imports(path), TRAINING_ONLY)
        assert not bad, f"{path} imports {bad}"


# The deliberate exceptions: the closed-loop fitting evaluation runs the exported artifact through
# the service's own core (validation, model, recommender; no gRPC), because a re-implementation
# would only test itself; the likelihood oracle runs the exported artifact on its walks to compare
# with it. Nothing in the pipeline that builds a model may use them. The fitting-record export reads
# the record store through the service's own store (one schema, one reader), nothing else of the core.
SERVICE_CORE_USERS = {
    "records.py": ("service.records",),
    "fitting_loop.py": ("service.domain", "service.model", "service.recommender", "service.validation"),
    "oracle.py": ("service.model",),
    "fitting_oracle.py": ("service.domain",),
    "acceptance.py": ("service.domain", "service.model", "service.recommender", "service.validation"),
    "service_eval.py": ("service.domain", "service.model", "service.recommender", "service.validation"),
}


def test_training_uses_only_the_catalog_and_sensors_of_the_service() -> None:
    for path in (ROOT / "training").rglob("*.py"):
        allowed = ("service.catalog", "service.sensors", *SERVICE_CORE_USERS.get(path.name, ()))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] if node.module != "service" else [f"service.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name == "service" or name.startswith("service."):
                    assert name.startswith(allowed), f"{path} imports {name}"
