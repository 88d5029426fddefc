"""Every object of deploy/k8s, as kustomize renders it, is valid by the schemas a cluster uses.

Kubernetes objects: kubernetes-validate in strict mode (an unknown field is an error, as with
`kubectl apply --validate=strict`), for the oldest and the newest Kubernetes we name. Strimzi's
custom resources: the v1 openAPIV3Schema of Strimzi 1.2's CRDs, strict in the same way except
where the CRD preserves unknown fields (Kafka and topic `config`). CEL rules of the CRDs
(x-kubernetes-validations) are not evaluated here; the API-server tests apply the objects to a
real API server, which does. Each check is shown refusing a broken object, so it can fail.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import kubernetes_validate
import pytest

from tests.deploy.manifests import (
    KUBERNETES_VERSIONS,
    RENDERINGS,
    STRIMZI_VERSION,
    Doc,
    is_strimzi,
    kustomize_build,
    strimzi_errors,
    validate_kubernetes_object,
)


def name_of(doc: Doc) -> str:
    return f"{doc['kind']} {doc['metadata'].get('namespace', '')}/{doc['metadata']['name']}"


def rendered(rendering: str, kind: str) -> Doc:
    """A copy of the first object of `kind` in a rendering, to break at will."""
    return copy.deepcopy(next(d for d in kustomize_build(RENDERINGS[rendering]) if d["kind"] == kind))


def kubernetes_error(doc: Doc, version: str) -> str | None:
    try:
        validate_kubernetes_object(doc, version)
    except kubernetes_validate.ValidationError as error:
        return f"{'.'.join(map(str, error.path))}: {error.message}"
    except kubernetes_validate.SchemaNotFoundError as error:
        return error.message
    return None


# --- Kubernetes objects -------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_every_kubernetes_object_is_valid_strictly(rendering: str, version: str) -> None:
    docs = [doc for doc in kustomize_build(RENDERINGS[rendering]) if not is_strimzi(doc)]
    assert len(docs) > 20
    errors = {name_of(doc): kubernetes_error(doc, version) for doc in docs}
    assert not {name: error for name, error in errors.items() if error}, f"Kubernetes {version}"


@pytest.mark.parametrize(
    ("kind", "breakage"),
    [
        # A misspelt field: kubectl's default (warn) would drop it and deploy without it.
        ("Deployment", lambda d: d["spec"]["template"]["spec"]["containers"][0].update(comand=["x"])),
        (
            "Deployment",
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(containerPort="http"),
        ),
        ("HorizontalPodAutoscaler", lambda d: d["spec"].update(targetCPUUtilizationPercentage=70)),
        (
            "StatefulSet",
            lambda d: d["spec"].update(persistentVolumeClaimRetentionPolicy={"whenScaled": True}),
        ),
        ("Ingress", lambda d: d.update(apiVersion="networking.k8s.io/v1beta1")),
    ],
    ids=["unknown-field", "wrong-type", "autoscaling-v1-field", "wrong-value-type", "removed-api"],
)
def test_kubernetes_validation_refuses_a_broken_object(kind: str, breakage: Callable[[Doc], object]) -> None:
    doc = rendered("production", kind)
    assert kubernetes_error(doc, KUBERNETES_VERSIONS[-1]) is None
    breakage(doc)
    assert kubernetes_error(doc, KUBERNETES_VERSIONS[-1]) is not None


# --- Strimzi custom resources -------------------------------------------------------------------


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_every_strimzi_resource_is_valid_by_the_strimzi_crds(rendering: str) -> None:
    docs = [doc for doc in kustomize_build(RENDERINGS[rendering]) if is_strimzi(doc)]
    assert {doc["kind"] for doc in docs} == {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
    for doc in docs:
        assert doc["apiVersion"] == f"kafka.strimzi.io/{STRIMZI_VERSION}", name_of(doc)
    errors = {name_of(doc): strimzi_errors(doc) for doc in docs}
    assert not {name: found for name, found in errors.items() if found}


def test_a_bad_kafka_user_acl_is_refused() -> None:
    user = rendered("production", "KafkaUser")
    assert strimzi_errors(user) == []
    for breakage in [
        lambda acls: acls[0]["resource"].update(type="topics"),  # topic, group, cluster, transactionalId
        lambda acls: acls[0].update(operations=["Produce"]),  # Kafka's operation names: Write
        lambda acls: acls[0]["resource"].update(patternType="prefixed"),  # literal or prefix
    ]:
        broken = copy.deepcopy(user)
        breakage(broken["spec"]["authorization"]["acls"])
        assert strimzi_errors(broken), broken["spec"]["authorization"]["acls"][0]


def test_a_bad_kafka_topic_field_is_refused() -> None:
    topic = rendered("production", "KafkaTopic")
    assert strimzi_errors(topic) == []
    for field, value in [
        ("replicationFactor", 3),  # not a KafkaTopic field: `replicas` is
        ("partitions", "twelve"),
        ("partitions", 0),  # at least 1
    ]:
        broken = copy.deepcopy(topic)
        broken["spec"][field] = value
        assert strimzi_errors(broken), f"spec.{field}: {value!r} was accepted"
    misspelt = copy.deepcopy(topic)
    misspelt["metadata"]["lables"] = misspelt["metadata"].pop("labels")
    assert strimzi_errors(misspelt), "metadata is checked as ObjectMeta"


def test_topic_config_keeps_unknown_keys_as_the_crd_preserves_them() -> None:
    # x-kubernetes-preserve-unknown-fields: any Kafka topic setting is allowed in spec.config.
    topic = rendered("production", "KafkaTopic")
    topic["spec"]["config"]["message.timestamp.type"] = "LogAppendTime"
    assert strimzi_errors(topic) == []


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        # Gone in kafka.strimzi.io/v1: ZooKeeper, and what moved to the KafkaNodePool.
        ("Kafka", "zookeeper", {"replicas": 3, "storage": {"type": "ephemeral"}}),
        ("Kafka", "kafka.replicas", 3),
        ("Kafka", "kafka.storage", {"type": "ephemeral"}),
        ("Kafka", "kafka.resources", {"requests": {"cpu": "1"}}),
        ("KafkaNodePool", "replicas", "three"),
    ],
)
def test_strimzi_v1_refuses_what_it_no_longer_has(kind: str, field: str, value: object) -> None:
    doc = rendered("production", kind)
    assert strimzi_errors(doc) == []
    *parents, last = field.split(".")
    node = doc["spec"]
    for part in parents:
        node = node[part]
    node[last] = value
    assert strimzi_errors(doc), f"{kind} spec.{field} was accepted"


def test_an_api_version_strimzi_no_longer_serves_is_refused() -> None:
    topic = rendered("production", "KafkaTopic")
    topic["apiVersion"] = "kafka.strimzi.io/v1beta2"
    with pytest.raises(AssertionError, match="not v1beta2"):
        strimzi_errors(topic)
