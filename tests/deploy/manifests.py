"""deploy/k8s as a cluster would receive it, and the schemas it is checked against.

Rendering is `kustomize build`, the real binary (`make deps` builds it from the Go module proxy;
tests never build it). Kubernetes objects are validated by kubernetes-validate, which ships the
API server's JSON Schemas; Strimzi's custom resources by the openAPIV3Schema of Strimzi's own
CRDs, which no registry serves, so they are read from beside the checkout (../shared/strimzi-crds,
or CHORUS_STRIMZI_CRDS) and never copied into the repository.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

from devtools import local_stack

Doc = dict[str, Any]

K8S = local_stack.REPO_ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
RENDERINGS = {"base": BASE, "production": PRODUCTION}

# The oldest Kubernetes the deploy README supports (the preStop `sleep` action needs 1.30) and
# the newest kubernetes-validate ships: a field too new for the first or an API gone from the
# second fails.
KUBERNETES_VERSIONS = ("1.30", "1.37")
STRIMZI_GROUP = "kafka.strimzi.io"
STRIMZI_VERSION = "v1"  # Strimzi 1.x serves no other


def load_docs(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@functools.cache
def _build(directory: Path) -> str:
    kustomize = local_stack.go_tool("kustomize")  # NotInstalled, naming `make deps`, when missing
    result = subprocess.run(
        [str(kustomize), "build", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"kustomize build {directory} failed:\n{result.stderr}"
    return result.stdout


def kustomize_build(directory: Path) -> list[Doc]:
    """The objects `kubectl apply -k directory` would send, rendered by kustomize itself."""
    return [doc for doc in yaml.safe_load_all(_build(directory)) if doc is not None]


# --- Kubernetes objects ------------------------------------------------------------------------


def is_strimzi(doc: Doc) -> bool:
    return str(doc.get("apiVersion", "")).split("/")[0] == STRIMZI_GROUP


def validate_kubernetes_object(doc: Doc, version: str) -> None:
    """Strict validation (unknown fields are errors) against Kubernetes `version`'s schemas.

    Raises kubernetes_validate's ValidationError, or SchemaNotFoundError for a kind or API version
    that Kubernetes release does not serve.
    """
    kubernetes_validate.validate(doc, version, strict=True)


# --- Strimzi custom resources ------------------------------------------------------------------


def strimzi_crds_dir() -> Path:
    configured = os.environ.get("CHORUS_STRIMZI_CRDS")
    return Path(configured) if configured else local_stack.REPO_ROOT.parent / "shared" / "strimzi-crds"


@functools.cache
def strimzi_crds() -> dict[str, Doc]:
    """Strimzi's CustomResourceDefinitions by the kind they define."""
    directory = strimzi_crds_dir()
    files = sorted(directory.glob("*.yaml"))
    assert files, (
        f"no Strimzi CRDs in {directory}: they are kept beside the checkout (../shared/strimzi-crds), "
        "or set CHORUS_STRIMZI_CRDS to the directory holding them"
    )
    crds = [doc for path in files for doc in load_docs(path) if doc.get("kind") == "CustomResourceDefinition"]
    return {crd["spec"]["names"]["kind"]: crd for crd in crds if crd["spec"]["group"] == STRIMZI_GROUP}


# Where kubernetes-validate keeps the definitions its object schemas refer to (ObjectMeta and
# the rest); a custom resource's metadata is checked against the same ObjectMeta.
_OBJECT_META = (
    "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
)


def strict_schema(node: Any) -> Any:
    """A CRD's structural schema as a JSON Schema in which unknown fields are errors.

    The API server prunes (or, with strict field validation, refuses) every field an object
    schema does not declare, unless the schema says x-kubernetes-preserve-unknown-fields: so an
    object schema gets additionalProperties false, except where it preserves unknown fields or
    already says what its map values are. oneOf/anyOf branches only constrain what the typed
    schema around them declares, so they are left alone.
    """
    if not isinstance(node, dict):
        return node
    schema = dict(node)
    if "properties" in schema:
        schema["properties"] = {name: strict_schema(sub) for name, sub in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        schema["items"] = strict_schema(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = strict_schema(schema["additionalProperties"])
    preserves = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if schema.get("type") == "object" and not preserves and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    return schema


def served_schema(crd: Doc, version: str) -> Doc:
    """The strict JSON Schema of `version` of a CRD; fails if the CRD does not serve it."""
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    kind = crd["spec"]["names"]["kind"]
    assert version in served, f"Strimzi serves {kind} as {sorted(served)}, not {version}"
    schema: Doc = strict_schema(copy.deepcopy(served[version]["schema"]["openAPIV3Schema"]))
    # The API server checks metadata itself, as ObjectMeta, whatever the CRD says about it.
    schema["properties"]["metadata"] = {"$ref": _OBJECT_META}
    return schema


@functools.cache
def _kubernetes_definitions(version: str) -> Registry:
    # kubernetes-validate's own layout: kubernetes-json-schema/v<version>.0-local-strict/.
    path = (
        importlib.resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{version}.0-local-strict"
        / "_definitions.json"
    )
    definitions = Resource.from_contents(json.loads(path.read_text()))
    return definitions @ Registry()


@functools.cache
def _strimzi_validator(kind: str, version: str) -> jsonschema.protocols.Validator:
    crds = strimzi_crds()
    assert kind in crds, f"Strimzi defines no kind {kind} (it defines {sorted(crds)})"
    schema = served_schema(crds[kind], version)
    return jsonschema.Draft202012Validator(schema, registry=_kubernetes_definitions(KUBERNETES_VERSIONS[-1]))


def strimzi_errors(doc: Doc) -> list[str]:
    """What is wrong with a Strimzi custom resource, by its CRD's schema; empty when valid."""
    group, _, version = str(doc["apiVersion"]).partition("/")
    assert group == STRIMZI_GROUP, doc["apiVersion"]
    validator = _strimzi_validator(doc["kind"], version)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
