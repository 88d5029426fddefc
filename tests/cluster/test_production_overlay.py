"""The production overlay meets a real API server: stored, admitted, and guarded.

What a cluster would do with deploy/k8s short of running it: the API server checks every object
against the built-in schemas and Strimzi's CRDs, and PodSecurity admits or refuses pods. No
controller runs here, so no pod is created from a workload; each pod template is submitted as a
Pod (dry run) instead, which PodSecurity checks exactly as it would the controller's pod.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.apiserver import ApiServer, to_yaml

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]

# Where each workload kind keeps its pod template.
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def _ref(obj: Obj) -> str:
    namespace = obj["metadata"].get("namespace")
    return f"{obj['kind']}/{obj['metadata']['name']}" + (f" in {namespace}" if namespace else "")


def _pod_from_template(workload: Obj) -> Obj:
    """The Pod a controller would create from the workload's template (the parts admission reads)."""
    template: Obj = workload
    for key in POD_TEMPLATE_PATHS[workload["kind"]]:
        template = template[key]
    spec = copy.deepcopy(template["spec"])
    if workload["kind"] == "StatefulSet":
        # The StatefulSet controller turns each volumeClaimTemplate into a PVC volume of the pod.
        for claim in workload["spec"].get("volumeClaimTemplates", []):
            name = claim["metadata"]["name"]
            spec.setdefault("volumes", []).append(
                {
                    "name": name,
                    "persistentVolumeClaim": {"claimName": f"{name}-{workload['metadata']['name']}-0"},
                }
            )
    metadata = template.get("metadata", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{workload['metadata']['name']}-template",
            "namespace": workload["metadata"]["namespace"],
            "labels": metadata.get("labels", {}),
            "annotations": metadata.get("annotations", {}),
        },
        "spec": spec,
    }


def _workloads(rendered: list[Obj]) -> list[Obj]:
    return [obj for obj in rendered if obj["kind"] in POD_TEMPLATE_PATHS]


def _of_kind(rendered: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in rendered if obj["kind"] == kind]


@pytest.fixture(scope="module")
def namespaces_and_accounts(apiserver: ApiServer, rendered: list[Obj]) -> ApiServer:
    """The overlay's namespaces and service accounts, applied for real: what its pods need.

    Applied on their own so that the Pod Security checks stand even while another part of the
    overlay fails to apply (the test below reports that).
    """
    apiserver.apply(_of_kind(rendered, "Namespace"))
    apiserver.apply(_of_kind(rendered, "ServiceAccount"))
    return apiserver


def test_the_production_overlay_installs_in_the_documented_order(
    production: ApiServer, rendered: list[Obj]
) -> None:
    # The `production` fixture followed the steps of deploy/k8s/README.md: a server-side dry run
    # of the overlay, then the apply for real. Every object is now stored: read each back by
    # what the overlay says it is.
    stored = production.kubectl("get", "-o", "name", "-f", "-", stdin=to_yaml(rendered)).stdout.split()
    assert len(stored) == len(rendered), f"stored {stored}, rendered {[_ref(obj) for obj in rendered]}"


def test_every_workload_pod_template_is_admitted_under_pod_security_restricted(
    namespaces_and_accounts: ApiServer, rendered: list[Obj]
) -> None:
    workloads = _workloads(rendered)
    assert {"Deployment", "StatefulSet"} <= {w["kind"] for w in workloads}, "the overlay lost its workloads"
    enforced = {
        ns["metadata"]["name"]: ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce")
        for ns in _of_kind(rendered, "Namespace")
    }
    refused = []
    for workload in workloads:
        namespace = workload["metadata"]["namespace"]
        # Otherwise the admission below would prove nothing: an unlabelled namespace admits all.
        assert enforced.get(namespace) == "restricted", (
            f"{_ref(workload)}: its namespace does not enforce restricted"
        )
        result = namespaces_and_accounts.create_dry_run(_pod_from_template(workload))
        if result.returncode != 0 or "Warning" in result.stderr:
            refused.append(f"{_ref(workload)}:\n{result.stdout}{result.stderr}")
    assert not refused, "pod templates not admitted as they are:\n" + "\n".join(refused)


def _first_container(change: Callable[[Obj], None]) -> Callable[[Obj], None]:
    return lambda pod: change(pod["spec"]["containers"][0].setdefault("securityContext", {}))


def _escalate(context: Obj) -> None:
    context["allowPrivilegeEscalation"] = True


def _privileged(context: Obj) -> None:
    # A privileged container must not also say allowPrivilegeEscalation: false (schema error).
    context.update(privileged=True, allowPrivilegeEscalation=True)


def _add_capability(context: Obj) -> None:
    context.setdefault("capabilities", {})["add"] = ["NET_ADMIN"]


def _run_as_root(pod: Obj) -> None:
    pod["spec"]["securityContext"].update(runAsNonRoot=False, runAsUser=0)


def _host_path(pod: Obj) -> None:
    pod["spec"].setdefault("volumes", []).append({"name": "host", "hostPath": {"path": "/"}})


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        (_first_container(_escalate), "allowPrivilegeEscalation != false"),
        (_first_container(_privileged), "privileged"),
        (_first_container(_add_capability), "unrestricted capabilities"),
        (_run_as_root, "runAsUser=0"),
        (_host_path, 'restricted volume type "hostPath"'),
    ],
    ids=["privilege-escalation", "privileged", "added-capability", "root-user", "host-path"],
)
def test_pod_security_refuses_a_workload_pod_with_a_broken_security_setting(
    namespaces_and_accounts: ApiServer, rendered: list[Obj], breakage: Callable[[Obj], None], reason: str
) -> None:
    workload = _of_kind(rendered, "Deployment")[0]
    pod = _pod_from_template(workload)
    # The same pod unbroken is admitted, so the refusal below is the breakage's doing.
    admitted = namespaces_and_accounts.create_dry_run(pod)
    assert admitted.returncode == 0, admitted.stderr

    breakage(pod)
    refused = namespaces_and_accounts.create_dry_run(pod)
    assert refused.returncode != 0, f"the API server admitted {_ref(pod)} with {reason}"
    assert 'violates PodSecurity "restricted' in refused.stderr, refused.stderr
    assert reason in refused.stderr, refused.stderr


def _partitions_as_words(topic: Obj) -> None:
    topic["spec"]["partitions"] = "many"


def _no_partitions(topic: Obj) -> None:
    topic["spec"]["partitions"] = 0


def _unknown_field(topic: Obj) -> None:
    topic["spec"]["partitionCount"] = 12


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        (_partitions_as_words, ".spec.partitions: expected numeric (int or float), got string"),
        (_no_partitions, "spec.partitions in body should be greater than or equal to 1"),
        (_unknown_field, ".spec.partitionCount: field not declared in schema"),
    ],
    ids=["partitions-not-a-number", "zero-partitions", "unknown-field"],
)
def test_the_strimzi_crd_refuses_a_kafka_topic_with_a_bad_field(
    strimzi: ApiServer, rendered: list[Obj], breakage: Callable[[Obj], None], reason: str
) -> None:
    topic = copy.deepcopy(_of_kind(rendered, "KafkaTopic")[0])
    # The topic as the overlay has it passes, so the refusal below is the breakage's doing.
    strimzi.apply([topic], dry_run=True)

    breakage(topic)
    refused = strimzi.apply([topic], dry_run=True, check=False)
    assert refused.returncode != 0, f"the API server accepted {_ref(topic)} with {reason}"
    assert reason in refused.stderr, refused.stderr
