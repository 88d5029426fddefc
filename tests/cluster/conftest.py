"""The cluster tier: deploy/k8s against a real kube-apiserver and etcd (see apiserver.py).

The control plane starts once for the package and is
stopped at the end, whatever happens; nothing is built here (`make deps` built kube-apiserver
and kustomize, installed etcd and put the Prometheus Operator's CRDs in Go's module cache).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from devtools import local_stack
from tests.cluster.apiserver import ApiServer, running_apiserver, serving_certificate

K8S = local_stack.REPO_ROOT / "deploy" / "k8s"
OVERLAY = K8S / "overlays" / "production"
NAMESPACE_FILE = K8S / "base" / "namespace.yaml"
MONITORING = K8S / "monitoring"
# Strimzi's CRDs are kept beside the checkout, never in it (no registry serves them).
STRIMZI_CRDS = Path(
    os.environ.get("CHORUS_STRIMZI_CRDS") or local_stack.REPO_ROOT.parent / "shared" / "strimzi-crds"
)


@pytest.fixture(scope="package")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("apiserver")) as server:
        yield server


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """A kustomization as the real kustomize renders it."""
    kustomize = local_stack.go_tool("kustomize")  # raises NotInstalled: run `make deps`
    result = subprocess.run(
        [str(kustomize), "build", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kustomize build {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="package")
def rendered() -> list[dict[str, Any]]:
    """The production overlay as the real kustomize renders it."""
    return kustomize_build(OVERLAY)


@pytest.fixture(scope="package")
def strimzi(apiserver: ApiServer) -> ApiServer:
    """The API server after a Strimzi install: its namespace `kafka` and its CRDs, established."""
    crds = sorted(STRIMZI_CRDS.glob("*.yaml"))
    assert crds, f"no Strimzi CRDs in {STRIMZI_CRDS} (set CHORUS_STRIMZI_CRDS to their directory)"
    apiserver.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kafka"}}])
    # Server-side: the Kafka CRD is larger than client-side apply's last-applied annotation allows.
    apiserver.kubectl("apply", "--server-side", *(f"--filename={crd}" for crd in crds))
    apiserver.wait_established("crd")
    return apiserver


@pytest.fixture(scope="package")
def production(
    strimzi: ApiServer, rendered: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> ApiServer:
    """The API server after the steps of "Install on a cluster" in deploy/k8s/README.md.

    The overlay is rendered by kustomize itself. Step 1, Strimzi, is the `strimzi` fixture
    (namespace `kafka`, the CRDs).
    """
    # 2. The namespace `chorus`, on its own and first.
    strimzi.kubectl("apply", "--server-side", "-f", str(NAMESPACE_FILE))
    # 3. The Secrets the workloads reference.
    cert, key = serving_certificate(tmp_path_factory.mktemp("tls"), "chorus.example.com")
    for secret in (
        ["generic", "chorus-mongodb", "--from-literal=url=mongodb://mongo.mongodb.svc:27017/"],
        ["generic", "chorus-sharing", f"--from-literal=visitor-hash-secret={secrets.token_hex(32)}"],
        ["generic", "chorus-metrics", f"--from-literal=survey-respondent-secret={secrets.token_hex(32)}"],
        ["generic", "chorus-webhooks", f'--from-literal=secret-keys=["{Fernet.generate_key().decode()}"]'],
        ["tls", "chorus-tls", f"--cert={cert}", f"--key={key}"],
        # The Kafka cluster CA, copied from Strimzi's chorus-cluster-ca-cert (no operator runs
        # here, so any certificate stands in).
        ["generic", "kafka-cluster-ca", f"--from-file=ca.crt={cert}"],
    ):
        strimzi.kubectl("-n", "chorus", "create", "secret", *secret)
    # 4. The overlay: a server-side dry run, then for real.
    strimzi.apply(rendered, dry_run=True)
    strimzi.apply(rendered)
    return strimzi


@pytest.fixture(scope="package")
def monitoring() -> list[dict[str, Any]]:
    """deploy/k8s/monitoring as the real kustomize renders it."""
    return kustomize_build(MONITORING)


@pytest.fixture(scope="package")
def prometheus_operator(apiserver: ApiServer, monitoring: list[dict[str, Any]]) -> ApiServer:
    """The API server with the Prometheus Operator's CRDs of the kinds deploy/k8s/monitoring uses.

    Only those: the others (Prometheus, Alertmanager...) are megabytes of schema this tier never
    reads. No Operator runs; the CRDs alone make the API server check the objects as a cluster
    with the Operator would.
    """
    crds = local_stack.prometheus_operator_crds()  # raises NotInstalled: run `make deps`
    kinds = sorted(
        {obj["kind"] for obj in monitoring if obj["apiVersion"].startswith("monitoring.coreos.com/")}
    )
    assert kinds, "deploy/k8s/monitoring has no Prometheus Operator objects"
    # The Operator names each CRD file after the kind's plural, the lower-case kind plus "s".
    files = [crds / f"monitoring.coreos.com_{kind.lower()}s.yaml" for kind in kinds]
    assert all(f.is_file() for f in files), f"not all of {files} are in {crds}"
    apiserver.kubectl("apply", "--server-side", *(f"--filename={f}" for f in files))
    names = [f"crd/{kind.lower()}s.monitoring.coreos.com" for kind in kinds]
    apiserver.wait_established(*names)
    return apiserver
