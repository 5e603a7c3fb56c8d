"""deploy/kubernetes validates against the Kubernetes API schemas (kubernetes-validate, offline,
strict: unknown fields fail) and agrees with the README's lifecycle and the image's ports."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate not installed (dev extra)")
yaml = pytest.importorskip("yaml", reason="PyYAML not installed (comes with kubernetes-validate)")

K8S = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes release the manifests promise (native gRPC probes are GA since 1.27).
VERSIONS = ("1.27.0", kv.latest_version())


def _docs() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[doc["kind"]] = doc
    return out


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: Path(p).name)
def test_manifest_validates_strictly(path: Path, version: str) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kv.validate(doc, version, strict=True)


def test_the_validator_rejects_a_misspelt_field() -> None:
    broken = copy.deepcopy(_docs()["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, kv.latest_version(), strict=True)


def _container(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    [container] = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_deployment_follows_the_readme_lifecycle() -> None:
    docs = _docs()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    c = _container(docs)
    env = {e["name"]: e["value"] for e in c["env"]}
    grace = float(env["ALIGN_SHUTDOWN_DELAY_S"]) + float(env["ALIGN_GRACE_PERIOD_S"])
    assert pod["terminationGracePeriodSeconds"] > grace
    grpc_port = int(env["ALIGN_ADDRESS"].rsplit(":", 1)[1])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == grpc_port
    # Every worker's metrics port is declared, and the workers match the CPU limit.
    workers, first = int(env["ALIGN_WORKERS"]), int(env["ALIGN_METRICS_PORT"])
    ports = {p["containerPort"] for p in c["ports"]}
    assert {grpc_port, *range(first, first + workers)} <= ports
    assert float(c["resources"]["limits"]["cpu"]) == workers
    # The model directory is a read-only volume; the process runs as the image's non-root user.
    [models] = [m for m in c["volumeMounts"] if m["mountPath"] == env["ALIGN_MODELS_DIR"]]
    assert models["readOnly"] is True
    [volume] = [v for v in pod["volumes"] if v["name"] == models["name"]]
    assert volume["persistentVolumeClaim"]["readOnly"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001


def test_service_pdb_and_autoscaler_select_the_deployment() -> None:
    docs = _docs()
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    service = docs["Service"]["spec"]
    assert service["clusterIP"] == "None"  # headless: clients balance over the pods
    assert service["selector"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert hpa["minReplicas"] >= 2  # with the PDB, a drain never takes the last pod


def test_the_image_exposes_every_workers_metrics_port() -> None:
    text = (ROOT / "Dockerfile").read_text()
    env = dict(line.strip().rstrip("\\").strip().split("=", 1) for line in text.splitlines() if line.strip().startswith("ALIGN_"))
    [expose] = [line.split()[1:] for line in text.splitlines() if line.startswith("EXPOSE")]
    exposed: set[int] = set()
    for item in expose:
        lo, _, hi = item.partition("-")
        exposed.update(range(int(lo), int(hi or lo) + 1))
    first, workers = int(env["ALIGN_METRICS_PORT"]), int(env["ALIGN_WORKERS"])
    assert set(range(first, first + workers)) <= exposed
    assert "USER 10001" in text and "HEALTHCHECK" in text
