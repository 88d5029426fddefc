"""deploy/k8s/monitoring meets a real API server that serves the Prometheus Operator's CRDs.

The "Optional: monitoring" step of deploy/k8s/README.md, after the production overlay: the
API server checks the PrometheusRule and the PodMonitors against the Operator's own schemas (its
CRDs, from the module that `make deps` put in Go's module cache, see
local_stack.prometheus_operator_crds), and the NetworkPolicy and the dashboard's ConfigMap against
Kubernetes' own. No Operator runs: nothing turns the objects into Prometheus configuration.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.cluster.apiserver import ApiServer, to_yaml

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]


def _the(objects: list[Obj], kind: str) -> Obj:
    [obj] = [o for o in objects if o["kind"] == kind]
    return obj


def test_the_monitoring_installs_after_the_production_overlay(
    production: ApiServer, prometheus_operator: ApiServer, monitoring: list[Obj]
) -> None:
    kinds = {obj["kind"] for obj in monitoring}
    assert {"PrometheusRule", "PodMonitor", "NetworkPolicy", "ConfigMap"} <= kinds
    # As the README says (kubectl apply --server-side -k), with kustomize's own rendering; a
    # server-side dry run first, then for real.
    production.apply(monitoring, dry_run=True)
    production.apply(monitoring)

    stored = production.kubectl("get", "-o", "name", "-f", "-", stdin=to_yaml(monitoring)).stdout.split()
    assert len(stored) == len(monitoring), f"stored {stored}"
    # Stored as written: nothing pruned or changed by the Operator's schemas.
    rule = _the(monitoring, "PrometheusRule")
    read = production.kubectl("get", "-o", "yaml", "-n", "chorus", "prometheusrule", rule["metadata"]["name"])
    assert yaml.safe_load(read.stdout)["spec"] == rule["spec"]


def _first_rule(rule: Obj) -> Obj:
    first: Obj = rule["spec"]["groups"][0]["rules"][0]
    return first


def _for_as_a_number(rule: Obj) -> None:
    _first_rule(rule)["for"] = 5


def _for_not_a_duration(rule: Obj) -> None:
    _first_rule(rule)["for"] = "15 minutes"


def _unknown_field(rule: Obj) -> None:
    # A label written beside `labels` instead of in it.
    _first_rule(rule)["severity"] = "critical"


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        (_for_as_a_number, ".rules[0].for: expected string, got"),
        (_for_not_a_duration, "spec.groups[0].rules[0].for in body should match"),
        (_unknown_field, ".rules[0].severity: field not declared in schema"),
    ],
    ids=["for-a-number", "for-not-a-duration", "unknown-field"],
)
def test_the_operators_crd_refuses_a_prometheus_rule_with_a_bad_field(
    production: ApiServer,
    prometheus_operator: ApiServer,
    monitoring: list[Obj],
    breakage: Callable[[Obj], None],
    reason: str,
) -> None:
    # On the installed overlay (the rule's namespace `chorus` must exist), with the Operator's CRDs.
    rule = copy.deepcopy(_the(monitoring, "PrometheusRule"))
    # The rule as deploy/k8s/monitoring has it passes, so the refusal below is the breakage's doing.
    production.apply([rule], dry_run=True)

    breakage(rule)
    refused = production.apply([rule], dry_run=True, check=False)
    assert refused.returncode != 0, f"the API server accepted the PrometheusRule with {reason}"
    assert reason in refused.stderr, refused.stderr
