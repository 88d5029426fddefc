"""The cluster tier: deploy/k8s against a real kube-apiserver and etcd (see apiserver.py).

The control plane starts once for the package and is
stopped at the end, whatever happens; nothing is built here (`make deps` built kube-apiserver
and kustomize, and installed etcd).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared import devstack
from tests.cluster.apiserver import ApiServer, running_apiserver

OVERLAY = devstack.REPO_ROOT / "deploy" / "k8s" / "overlays" / "production"
# Strimzi's CRDs are kept beside the checkout, never in it (no registry serves them).
STRIMZI_CRDS = Path(
    os.environ.get("CHORUS_STRIMZI_CRDS") or devstack.REPO_ROOT.parent / "shared" / "strimzi-crds"
)


@pytest.fixture(scope="package")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("apiserver")) as server:
        yield server


@pytest.fixture(scope="package")
def rendered() -> list[dict[str, Any]]:
    """The production overlay as the real kustomize renders it."""
    kustomize = devstack.go_tool("kustomize")  # raises NotInstalled: run `make deps`
    result = subprocess.run(
        [str(kustomize), "build", str(OVERLAY)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kustomize build {OVERLAY} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="package")
def strimzi(apiserver: ApiServer) -> ApiServer:
    """The API server after a Strimzi install: its namespace `kafka` and its CRDs, established."""
    crds = sorted(STRIMZI_CRDS.glob("*.yaml"))
    assert crds, f"no Strimzi CRDs in {STRIMZI_CRDS} (set CHORUS_STRIMZI_CRDS to their directory)"
    apiserver.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kafka"}}])
    # Server-side: the Kafka CRD is larger than client-side apply's last-applied annotation allows.
    apiserver.kubectl("apply", "--server-side", *(f"--filename={crd}" for crd in crds))
    apiserver.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    return apiserver
