"""The optional monitoring of deploy/k8s/monitoring: alert rules, the Grafana dashboard, the runbook.

The alert rules are checked and unit-tested by promtool itself (`make deps` builds it from the Go
module proxy; tests never build it), on the PrometheusRule as kustomize renders it, with the
cases of deploy/k8s/monitoring/tests/alerts.test.yaml. The dashboard's PromQL is parsed by
promtool too. Every metric either of them reads must be one that something exports: the services
(their real /metrics output, produced by tests/deploy/exposition.py through their own code), or
the exporters a Prometheus Operator cluster runs beside them (declared below, with the labels the
queries may use).

The PrometheusRule and PodMonitors are checked against the Prometheus Operator's own schemas in
the cluster tier (tests/cluster/test_monitoring.py: its CRDs on a real API server); here only
the plain Kubernetes objects are validated, with kubernetes-validate.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from devtools import local_stack
from tests.deploy.manifests import (
    BASE,
    K8S,
    KUBERNETES_VERSIONS,
    PRODUCTION,
    Doc,
    kustomize_build,
    validate_kubernetes_object,
)

MONITORING = K8S / "monitoring"
ALERT_TESTS = MONITORING / "tests" / "alerts.test.yaml"
DASHBOARD = MONITORING / "dashboard.json"
RUNBOOK = local_stack.REPO_ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/chorus-oss/chorus/blob/main/docs/runbook.md"
NAMESPACE = "chorus"

# Labels Prometheus puts on every series it scrapes from a PodMonitor target, plus the `service`
# label podmonitors.yaml adds from the pod's app.kubernetes.io/name.
TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance", "service"}

# What the exporters beside the services export, by metric, with the labels the queries may read.
# Strimzi's Kafka Exporter (danielqsj/kafka_exporter, README "Metrics"):
KAFKA_EXPORTER = {
    "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"},
    "kafka_consumergroup_lag_sum": {"consumergroup", "topic"},
    "kafka_consumergroup_current_offset": {"consumergroup", "topic", "partition"},
    "kafka_consumergroup_members": {"consumergroup"},
    "kafka_topic_partition_current_offset": {"topic", "partition"},
    "kafka_topic_partition_oldest_offset": {"topic", "partition"},
    "kafka_topic_partitions": {"topic"},
}
# kube-state-metrics (docs/metrics/workload/*.md) and the kubelet's volume stats:
KUBE = {
    "kube_pod_status_ready": {"namespace", "pod", "uid", "condition"},
    "kube_pod_status_phase": {"namespace", "pod", "uid", "phase"},
    "kube_pod_container_status_restarts_total": {"namespace", "pod", "uid", "container"},
    "kube_deployment_status_replicas_available": {"namespace", "deployment"},
    "kube_statefulset_status_replicas_ready": {"namespace", "statefulset"},
    "kubelet_volume_stats_available_bytes": {"namespace", "persistentvolumeclaim"},
    "kubelet_volume_stats_capacity_bytes": {"namespace", "persistentvolumeclaim"},
}
# Made by Prometheus itself for every target.
PROMETHEUS = {"up": TARGET_LABELS}

# Scrape-time labels of the exporters' targets, which every one of their series carries.
EXPORTER_TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance"}


def promtool() -> Path:
    return local_stack.go_tool("promtool")  # NotInstalled, naming `make deps`, when missing


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool()), *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


# --- what is exported --------------------------------------------------------------------------


@functools.cache
def exposition() -> list[Sample]:
    """The samples the services' code puts on /metrics (tests/deploy/exposition.py)."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.deploy.exposition"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=local_stack.REPO_ROOT,
        check=False,
    )
    assert result.returncode == 0, f"tests/deploy/exposition.py failed:\n{result.stderr}"
    return [sample for family in text_string_to_metric_families(result.stdout) for sample in family.samples]


def service_metrics() -> dict[str, set[str]]:
    """Sample name -> the label names Prometheus stores with it (its own and the target's)."""
    exported: dict[str, set[str]] = {}
    for sample in exposition():
        exported.setdefault(sample.name, set()).update(sample.labels)
    return {name: labels | TARGET_LABELS for name, labels in exported.items()}


def known_metrics() -> dict[str, set[str]]:
    exporters = {name: labels | EXPORTER_TARGET_LABELS for name, labels in {**KAFKA_EXPORTER, **KUBE}.items()}
    return {**exporters, **PROMETHEUS, **service_metrics()}


# --- reading PromQL ----------------------------------------------------------------------------
# Enough of PromQL to list what an expression reads, for the expressions of this folder (no
# `}` inside label values, no nested parentheses in a grouping clause). A word followed by `(` is
# a function or aggregation, and one not listed here fails the check rather than being taken for
# something it is not; any other word outside braces and grouping clauses is a metric name.

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*""')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_WORD = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
PROMQL_FUNCTIONS = {
    *("sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "group"),
    *("rate", "irate", "increase", "delta", "histogram_quantile", "absent"),
    *("max_over_time", "min_over_time", "avg_over_time", "clamp_min", "vector"),
}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset"}


def _parts(expr: str) -> tuple[list[tuple[str, set[str]]], set[str], list[str]]:
    """(selectors as (metric, label names matched), grouping labels, unknown functions)."""
    text = _STRING.sub('""', expr)  # label values are not read, and may hold any character
    grouping = {label.strip() for group in _GROUPING.findall(text) for label in group.split(",")}
    text = _RANGE.sub(" ", _GROUPING.sub(" ", text))
    read = [(name, set(_MATCHER.findall(matchers))) for name, matchers in _SELECTOR.findall(text)]
    unknown: list[str] = []
    for word, call in _WORD.findall(_SELECTOR.sub(" ", text)):
        if word in PROMQL_KEYWORDS:
            continue
        if call and word not in PROMQL_FUNCTIONS:
            unknown.append(word)
        elif not call:
            read.append((word, set()))
    return read, grouping - {""}, unknown


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    return _parts(expr)[0]


def unknown_references(expr: str) -> list[str]:
    """What `expr` reads that no exporter exports: metrics, and labels they do not carry."""
    known = known_metrics()
    read, grouping, functions = _parts(expr)
    problems = [f"{name}: not a PromQL function this check knows" for name in functions]
    assert read, f"no selector in {expr!r}"
    for name, labels in read:
        if name not in known:
            problems.append(f"{name}: no service or exporter exports it")
        elif labels - known[name]:
            problems.append(f"{name}: has no label {', '.join(sorted(labels - known[name]))}")
    carried = set().union(*(known.get(name, set()) for name, _ in read))
    for label in sorted(grouping - carried):
        problems.append(f"grouping by {label}, which none of {sorted({n for n, _ in read})} carries")
    return problems


def test_the_reference_check_catches_unknown_metrics_labels_and_functions() -> None:
    assert (
        unknown_references('sum by (service) (rate(chorus_redirect_requests_total{outcome="}"}[5m]))') == []
    )
    assert unknown_references("up == 0 and on (pod) (chorus_click_spool_backlog > 0)") == []
    assert unknown_references("rate(chorus_redirects_total[5m])") == [
        "chorus_redirects_total: no service or exporter exports it"
    ]
    assert unknown_references('kafka_consumergroup_lag{group="x"}') == [
        "kafka_consumergroup_lag: has no label group"
    ]
    assert unknown_references("frobnicate(up)") == ["frobnicate: not a PromQL function this check knows"]
    assert unknown_references("sum by (route) (up)") == ["grouping by route, which none of ['up'] carries"]


# --- the rendered kustomization ----------------------------------------------------------------


@functools.cache
def rendered() -> list[Doc]:
    return kustomize_build(MONITORING)


def rendered_one(kind: str, name: str) -> Doc:
    [doc] = [d for d in rendered() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def rules() -> Doc:
    return rendered_one("PrometheusRule", "chorus")


def alerts() -> list[Doc]:
    return [rule for group in rules()["spec"]["groups"] for rule in group["rules"] if "alert" in rule]


def test_the_kustomization_renders_rules_monitors_and_the_dashboard_in_namespace_chorus() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered())
    assert kinds == [
        ("ConfigMap", "chorus-grafana-dashboard"),
        ("NetworkPolicy", "services-ingress-from-prometheus"),
        ("PodMonitor", "chorus-kafka-exporter"),
        ("PodMonitor", "chorus-services"),
        ("PrometheusRule", "chorus"),
    ]
    assert {d["metadata"]["namespace"] for d in rendered()} == {NAMESPACE}
    dashboard = rendered_one("ConfigMap", "chorus-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"  # the Grafana sidecar's label
    assert json.loads(dashboard["data"]["chorus.json"]) == json.loads(DASHBOARD.read_text())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_its_kubernetes_objects_are_valid(version: str) -> None:
    for doc in rendered():
        # The Operator's kinds are checked by its CRDs in tests/cluster/test_monitoring.py.
        if doc["apiVersion"] != "monitoring.coreos.com/v1":
            validate_kubernetes_object(doc, version)


def test_the_base_and_the_overlay_need_no_prometheus_operator() -> None:
    # They are applied to clusters (and a test API server) without the Operator's CRDs.
    for directory in (BASE, PRODUCTION):
        groups = {str(d["apiVersion"]).split("/")[0] for d in kustomize_build(directory)}
        assert "monitoring.coreos.com" not in groups, directory


def test_the_pod_monitor_scrapes_every_service_workload_on_its_app_port() -> None:
    monitor = rendered_one("PodMonitor", "chorus-services")
    selector = monitor["spec"]["selector"]["matchLabels"]
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    workloads = [d for d in kustomize_build(BASE) if d["kind"] in ("Deployment", "StatefulSet")]
    scraped = set()
    for workload in workloads:
        template = workload["spec"]["template"]
        if selector.items() <= template["metadata"]["labels"].items():
            ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
            assert endpoint["port"] in ports, workload["metadata"]["name"]
            scraped.add(workload["metadata"]["name"])
    assert scraped == {"content", "sharing-api", "sharing-redirect", "metrics", "recognition"}
    assert endpoint["path"] == "/metrics"


# --- alert rules -------------------------------------------------------------------------------


def rules_of(spec: Doc) -> list[Doc]:
    return [rule for group in spec["groups"] for rule in group["rules"]]


# For parametrising: the alerts of the source file (the rendered rules are the same, see above).
ALERT_NAMES = [
    rule["alert"]
    for rule in rules_of(yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"])
    if "alert" in rule
]


def write_rules(directory: Path, spec: Doc) -> Path:
    path = directory / "chorus-rules.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_the_rules_pass_promtool_check(tmp_path: Path) -> None:
    result = run_promtool("check", "rules", str(write_rules(tmp_path, rules()["spec"])))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules_of(rules()['spec']))} rules found" in result.stdout


def run_alert_tests(directory: Path, spec: Doc) -> subprocess.CompletedProcess[str]:
    write_rules(directory, spec)
    shutil.copy(ALERT_TESTS, directory / ALERT_TESTS.name)
    return run_promtool("test", "rules", ALERT_TESTS.name, cwd=directory)


def test_every_alert_fires_and_stays_quiet_as_its_promtool_cases_expect(tmp_path: Path) -> None:
    result = run_alert_tests(tmp_path, rules()["spec"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    for alert in alerts():
        name = alert["alert"]
        assert any(c["alertname"] == name and c.get("exp_alerts") for c in checks), f"{name} never fires"
        assert any(c["alertname"] == name and not c.get("exp_alerts") for c in checks), f"{name} never quiet"


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_the_cases_fail_when_the_alert_cannot_fire(tmp_path: Path, name: str) -> None:
    # The same rules with this one alert's expression made empty: a case that expects it to fire
    # must now fail, so the passing run above is the alert's doing and not the test's.
    spec = copy.deepcopy(rules()["spec"])
    for rule in rules_of(spec):
        if rule.get("alert") == name:
            rule["expr"] = "vector(1) == 0"
    result = run_alert_tests(tmp_path, spec)
    assert result.returncode != 0, f"the cases still pass with {name} unable to fire"
    assert f"alertname: {name}," in result.stdout + result.stderr


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    anchors = runbook_anchors()
    for alert in alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical"), name
        assert alert["annotations"]["summary"], name
        base, _, anchor = alert["annotations"]["runbook_url"].partition("#")
        assert base == RUNBOOK_URL, name
        assert anchor in anchors, f"{name}: docs/runbook.md has no section #{anchor}"


def test_the_alerts_read_only_what_is_exported() -> None:
    problems = {alert["alert"]: unknown_references(alert["expr"]) for alert in alerts()}
    assert {name: found for name, found in problems.items() if found} == {}


# --- the runbook -------------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return {github_anchor(h) for h in headings}


def test_the_runbooks_own_links_lead_to_its_sections() -> None:
    links = re.findall(r"\]\(#([^)]+)\)", RUNBOOK.read_text())
    assert links, "the runbook links none of its sections"
    assert sorted(set(links) - runbook_anchors()) == []


def test_the_runbook_names_every_alert() -> None:
    text = RUNBOOK.read_text()
    assert [alert["alert"] for alert in alerts() if alert["alert"] not in text] == []


# --- the dashboard -----------------------------------------------------------------------------


@functools.cache
def dashboard() -> Doc:
    document: Doc = json.loads(DASHBOARD.read_text())
    return document


def panels() -> list[Doc]:
    found: list[Doc] = []
    for panel in dashboard()["panels"]:
        found += [panel, *panel.get("panels", [])]
    return [p for p in found if p["type"] != "row"]


def variables() -> dict[str, str]:
    """Each dashboard variable's value as Grafana would substitute it, and Grafana's own."""
    values = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "datasource":
            values[variable["name"]] = variable["current"]["value"]
    return values


def substituted(expr: str) -> str:
    values = variables()

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"{expr!r} uses ${name}, which the dashboard does not define"
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def expressions() -> list[tuple[str, str]]:
    return [(f"{p['title']} / {t['refId']}", substituted(t["expr"])) for p in panels() for t in p["targets"]]


def test_the_dashboard_is_a_grafana_dashboard_with_a_prometheus_datasource_variable() -> None:
    assert isinstance(dashboard()["schemaVersion"], int) and dashboard()["schemaVersion"] > 0
    assert dashboard()["uid"] and dashboard()["title"]
    [datasource] = [v for v in dashboard()["templating"]["list"] if v["type"] == "datasource"]
    assert datasource["query"] == "prometheus"
    ids = [p["id"] for p in dashboard()["panels"]] + [
        p["id"] for row in dashboard()["panels"] for p in row.get("panels", [])
    ]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_every_panel_has_the_datasource_and_queries() -> None:
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels():
        assert panel["datasource"] == datasource, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"].strip(), panel["title"]
            assert target.get("datasource", datasource) == datasource, panel["title"]


def test_the_dashboard_covers_red_metrics_lag_and_the_spool() -> None:
    read = {name for _, expr in expressions() for name, _ in selectors(expr)}
    assert {
        "http_server_request_duration_seconds_count",  # rate and errors, by service and route
        "http_server_request_duration_seconds_bucket",  # duration
        "chorus_redirect_requests_total",
        "kafka_consumergroup_lag",
        "chorus_consumer_events_total",
        "chorus_click_spool_backlog",
        "chorus_click_spool_buffered",
    } <= read


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    # promtool parses PromQL in rule files: each query becomes a throwaway recording rule.
    spec = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"chorus_dashboard:query_{i}", "expr": expr}
                    for i, (_, expr) in enumerate(expressions())
                ],
            }
        ]
    }
    result = run_promtool("check", "rules", str(write_rules(tmp_path, spec)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_query_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    spec = {"groups": [{"name": "dashboard", "rules": [{"record": "x:y", "expr": "sum by (service (up{})"}]}]}
    assert run_promtool("check", "rules", str(write_rules(tmp_path, spec))).returncode != 0


def test_the_dashboard_reads_only_what_is_exported() -> None:
    problems = {where: unknown_references(expr) for where, expr in expressions()}
    assert {where: found for where, found in problems.items() if found} == {}


def test_the_services_export_the_metrics_the_monitoring_is_built_on() -> None:
    # The ones added for it, and the ones named in the alert rules, by their exported names.
    exported = service_metrics()
    for name in (
        "chorus_click_spool_backlog",
        "chorus_click_spool_buffered",  # named in docs/runbook.md
        "chorus_redirect_requests_total",
        "http_server_request_duration_seconds_count",
        "chorus_consumer_events_total",
        "messaging_process_duration_seconds_bucket",
    ):
        assert name in exported, name
    assert {"http_route", "http_response_status_code"} <= exported[
        "http_server_request_duration_seconds_count"
    ]
    redirects = {
        s.labels["outcome"]: s.value for s in exposition() if s.name == "chorus_redirect_requests_total"
    }
    # One visit of each kind, the last while the store fails: what ChorusRedirectUnavailable counts.
    assert redirects == {"redirected": 1, "not_found": 1, "unavailable": 1}
    [backlog] = [s.value for s in exposition() if s.name == "chorus_click_spool_backlog"]
    assert backlog == 1  # the click that was redirected: committed to the spool, not yet sent
