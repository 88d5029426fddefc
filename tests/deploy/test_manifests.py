"""The Kubernetes manifests (deploy/k8s) checked against the code they deploy. No cluster.

Every check runs on what `kubectl apply -k` would send: the output of `kustomize build` (the
real kustomize, see manifests.py) for the base and the production overlay. The checks that
matter most keep code and manifests from drifting: the KafkaTopic resources equal the topic
catalog, the Ingress equals the gateway's route table, every workload runs `chorus-serve` for a
service shared/serve.py knows on that service's port, every CHORUS_* variable set is one a settings
class reads, and each consumer's autoscaler watches its real group.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from types import SimpleNamespace

import pytest

from devtools.cli import serve_argv
from devtools.gateway import ROUTES
from devtools.kafka_access import OPERATORS, service_access
from services.sharing.main import REDIRECT_READY_PATH
from shared.events.topics import topic_configs
from shared.serve import SERVICE_PORTS, add_arguments
from shared.settings import ChorusSettings
from tests.deploy.manifests import BASE, K8S, PRODUCTION, RENDERINGS, Doc, kustomize_build, load_docs

IMAGE = "ghcr.io/chorus-oss/chorus"
NAMESPACE = "chorus"
INGRESS_CONTROLLER_NAMESPACE = "ingress-nginx"

# Workload name -> the code service it runs (`chorus-serve <service>`, services/<service>/main.py).
WORKLOADS = {
    "content": "content",
    "sharing-api": "sharing",
    "sharing-redirect": "sharing",
    "metrics": "metrics",
    "recognition": "recognition",
}
# Services whose consumers scale on consumer lag, with the module that names their group.
LAG_SCALED = {"metrics": "services.metrics.handlers", "recognition": "services.recognition.handlers"}


# --- reading the rendered objects ----------------------------------------------------------------


def image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec


def all_containers(docs: list[Doc]) -> list[Doc]:
    return [
        c
        for doc in docs
        if doc["kind"] in ("Deployment", "StatefulSet")
        for c in [*pod_spec(doc).get("initContainers", []), *pod_spec(doc)["containers"]]
    ]


@pytest.fixture(scope="module", params=sorted(RENDERINGS))
def docs(request: pytest.FixtureRequest) -> list[Doc]:
    return kustomize_build(RENDERINGS[request.param])


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(docs: list[Doc]) -> list[Doc]:
    return of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")


def chorus_workloads(docs: list[Doc]) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in workloads(docs) if doc["metadata"]["name"] in WORKLOADS}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def config_map(docs: list[Doc]) -> dict[str, str]:
    data: dict[str, str] = named(docs, "ConfigMap", "chorus-config")["data"]
    return data


def settings_class(service: str) -> type[ChorusSettings]:
    module = importlib.import_module(f"services.{service}.settings")
    found = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, ChorusSettings) and cls is not ChorusSettings and cls.__module__ == module.__name__
    ]
    assert len(found) == 1, f"services/{service}/settings.py should declare one settings class"
    return found[0]


def env_names(cls: type[ChorusSettings]) -> set[str]:
    return {f"CHORUS_{name.upper()}" for name in cls.model_fields}


# --- files -----------------------------------------------------------------------------------


def test_every_yaml_file_parses_and_every_base_file_is_a_listed_resource() -> None:
    files = sorted(K8S.rglob("*.yaml")) + sorted(K8S.rglob("*.yml"))
    assert files
    for path in files:
        for doc in load_docs(path):
            assert isinstance(doc, dict | list), path
    listed = set(load_docs(BASE / "kustomization.yaml")[0]["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, "every file in base/ is a resource, and every resource is a file"
    for doc in kustomize_build(BASE):
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace"), (
                f"{doc['kind']} {doc['metadata']['name']} names no namespace"
            )


def test_the_production_overlay_pins_the_image_through_kustomize() -> None:
    containers = all_containers(kustomize_build(PRODUCTION))
    images = {c["image"] for c in containers if image_name(c["image"]) == IMAGE}
    assert images, "the overlay's image entry must match the base image name"
    assert all(image.startswith(IMAGE + ":") or image.startswith(IMAGE + "@") for image in images)


def test_the_namespace_applied_first_is_the_overlays_and_kafka_is_only_assumed() -> None:
    # deploy/k8s/README.md "Install on a cluster" applies base/namespace.yaml before the overlay:
    # a server-side dry run of the overlay cannot see a Namespace the same dry run "created".
    docs = kustomize_build(PRODUCTION)
    assert [d for d in docs if d["kind"] == "Namespace"] == load_docs(BASE / "namespace.yaml")
    # `kafka` is Strimzi's namespace: it must exist beforehand and holds only Strimzi resources.
    assert {d["metadata"].get("namespace") for d in docs} - {None} == {NAMESPACE, "kafka"}
    in_kafka = {d["apiVersion"].split("/")[0] for d in docs if d["metadata"].get("namespace") == "kafka"}
    assert in_kafka == {"kafka.strimzi.io"}


# --- Kafka -----------------------------------------------------------------------------------


def test_kafka_topics_equal_the_topic_catalog(docs: list[Doc]) -> None:
    kafka = of_kind(docs, "Kafka")
    assert len(kafka) == 1
    cluster, namespace = kafka[0]["metadata"]["name"], kafka[0]["metadata"]["namespace"]
    declared: dict[str, tuple[int, dict[str, str]]] = {}
    for topic in of_kind(docs, "KafkaTopic"):
        spec, meta = topic["spec"], topic["metadata"]
        name = spec.get("topicName", meta["name"])
        assert name not in declared, f"topic {name} declared twice"
        assert meta["labels"]["strimzi.io/cluster"] == cluster and meta["namespace"] == namespace
        assert spec["replicas"] == 3, name
        assert str(spec["config"]["min.insync.replicas"]) == "2", name
        declared[name] = (spec["partitions"], {"retention.ms": str(spec["config"]["retention.ms"])})
    catalog = {name: (partitions, configs) for name, partitions, configs in topic_configs()}
    assert declared == catalog


def test_kafka_is_kraft_with_three_nodes_and_the_services_use_its_bootstrap(docs: list[Doc]) -> None:
    kafka = of_kind(docs, "Kafka")[0]
    pools = of_kind(docs, "KafkaNodePool")
    assert pools and all(
        p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for p in pools
    )
    assert sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]) == 3
    assert sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"]) >= 3
    assert "zookeeper" not in kafka["spec"]
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    assert str(config["min.insync.replicas"]) == "2"
    # One listener, TLS with SCRAM-SHA-512: PLAINTEXT is for the local stack only.
    [listener] = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True and listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    bootstrap = (
        f"{kafka['metadata']['name']}-kafka-bootstrap.{kafka['metadata']['namespace']}.svc:{listener['port']}"
    )
    assert config_map(docs)["CHORUS_KAFKA_BOOTSTRAP"] == bootstrap
    assert config_map(docs)["CHORUS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config_map(docs)["CHORUS_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert "kafkaExporter" in kafka["spec"], "the consumer-lag autoscalers read the Kafka Exporter's metric"


def test_kafka_users_carry_the_acls_of_the_catalog_and_the_consumer_map(docs: list[Doc]) -> None:
    kafka = of_kind(docs, "Kafka")[0]
    operator = kafka["spec"]["entityOperator"]["userOperator"]
    users = {u["metadata"]["name"]: u for u in of_kind(docs, "KafkaUser")}
    assert {u["metadata"]["namespace"] for u in users.values()} == {operator["watchedNamespace"]}
    assert all(
        u["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for u in users.values()
    )
    expected = {
        access.service: [
            {
                "resource": {"type": acl.resource, "name": acl.name, "patternType": acl.pattern}
                if acl.resource != "cluster"
                else {"type": "cluster"},
                "operations": list(acl.operations),
                "type": "allow",
            }
            for acl in access.acls
        ]
        for access in [*service_access(), OPERATORS]
    }
    assert {name: u["spec"]["authorization"]["acls"] for name, u in users.items()} == expected
    assert all(u["spec"]["authentication"] == {"type": "scram-sha-512"} for u in users.values())


def test_each_service_connects_as_its_own_kafka_user_and_checks_the_broker(docs: list[Doc]) -> None:
    prefix = of_kind(docs, "Kafka")[0]["spec"]["entityOperator"]["userOperator"]["secretPrefix"]
    users = {u["metadata"]["name"] for u in of_kind(docs, "KafkaUser")}
    cafile = config_map(docs)["CHORUS_KAFKA_SSL_CAFILE"]
    for name, doc in chorus_workloads(docs).items():
        service = WORKLOADS[name]
        [container] = [c for c in pod_spec(doc)["containers"] if c["name"] == name]
        env = {e["name"]: e for e in container["env"]}
        assert env["CHORUS_KAFKA_SASL_USERNAME"]["value"] == service and service in users, name
        secret = env["CHORUS_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert secret == {"name": f"{prefix}{service}", "key": "password"}, name
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert cafile == f"{mounts['kafka-ca']}/ca.crt", name


# --- configuration -----------------------------------------------------------------------------


def test_config_map_sets_the_production_settings(docs: list[Doc]) -> None:
    data = config_map(docs)
    assert data["CHORUS_ENVIRONMENT"] == "prod"
    assert data["CHORUS_CREATE_TOPICS"] == "false"
    assert data["CHORUS_JWKS_URL"].startswith("https://")
    collector = named(docs, "Service", "otel-collector")
    http_port = next(p["port"] for p in collector["spec"]["ports"] if p["name"] == "otlp-http")
    assert data["CHORUS_OTLP_ENDPOINT"] == f"http://otel-collector.{NAMESPACE}.svc:{http_port}"
    assert "CHORUS_MONGO_URL" not in data, "the MongoDB URL carries credentials: a Secret, by reference"
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"


def test_every_chorus_variable_set_is_one_the_service_reads(docs: list[Doc]) -> None:
    shared = env_names(ChorusSettings)
    unknown = {k for k in config_map(docs) if k.startswith("CHORUS_")} - shared
    assert not unknown, f"ConfigMap sets variables no settings class reads: {unknown}"
    for name, doc in chorus_workloads(docs).items():
        known = env_names(settings_class(WORKLOADS[name]))
        for container in pod_spec(doc)["containers"]:
            unknown = {e["name"] for e in container.get("env", []) if e["name"].startswith("CHORUS_")} - known
            assert not unknown, f"{name} sets variables services/{WORKLOADS[name]} does not read: {unknown}"


# --- workloads ---------------------------------------------------------------------------------


def test_one_workload_per_service_running_its_app_on_its_port(docs: list[Doc]) -> None:
    found = chorus_workloads(docs)
    assert set(found) == set(WORKLOADS)
    assert found["sharing-api"]["kind"] == "Deployment"
    for name, doc in found.items():
        service = WORKLOADS[name]
        port = SERVICE_PORTS[service]
        (container,) = pod_spec(doc)["containers"]
        assert image_name(container["image"]) == IMAGE
        assert container["args"][:1] == [service], name
        assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", port)]
        assert {"configMapRef": {"name": "chorus-config"}} in container["envFrom"]
        mongo = next(e for e in container["env"] if e["name"] == "CHORUS_MONGO_URL")
        assert "secretKeyRef" in mongo["valueFrom"], "CHORUS_MONGO_URL comes from a Secret by reference"
        for env in container["env"]:
            if env["name"].endswith("SECRET"):
                assert "secretKeyRef" in env["valueFrom"], f"{name}: {env['name']} must come from a Secret"


def test_every_chorus_container_serves_a_known_service_on_its_container_port(
    docs: list[Doc],
) -> None:
    containers = [
        (doc["metadata"]["name"], container)
        for doc in workloads(docs)
        for container in pod_spec(doc)["containers"]
        if image_name(container["image"]) == IMAGE
    ]
    assert sorted(name for name, _ in containers) == sorted(WORKLOADS)
    for name, container in containers:
        # The image's entrypoint is `chorus-serve`; a `command` would replace it.
        assert "command" not in container, f"{name}: set only args, the image's entrypoint runs them"
        args = container["args"]
        assert args, name
        service = args[0]
        assert service in SERVICE_PORTS, f"{name} serves {service!r}, which shared/serve.py does not know"
        (http,) = container["ports"]
        assert http["containerPort"] == SERVICE_PORTS[service], f"{name}: {service} listens on another port"
        # The arguments `chorus up` starts the service with (after `python -m shared.serve`), on the
        # pod's address and port.
        local = serve_argv(service, host="0.0.0.0", port=http["containerPort"])  # noqa: S104
        assert local[:3] == [sys.executable, "-m", "shared.serve"]
        assert args == local[3:], f"{name}: {args}"


def test_every_chorus_workload_prepares_its_database_first_as_its_service(docs: list[Doc]) -> None:
    for name, doc in chorus_workloads(docs).items():
        spec = pod_spec(doc)
        (service,) = spec["containers"]
        (prepare,) = spec["initContainers"]
        assert prepare["image"] == service["image"], name
        assert "command" not in prepare, f"{name}: set only args, the image's entrypoint runs them"
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args(prepare["args"])
        assert (args.service, args.prepare) == (WORKLOADS[name], True), f"{name}: {prepare['args']}"
        # The app is built as the service builds it: the same settings and secrets.
        assert (prepare["envFrom"], prepare["env"]) == (service["envFrom"], service["env"]), name
        mounts = [(m["name"], m["mountPath"]) for m in prepare["volumeMounts"]]
        assert set(mounts) <= {(m["name"], m["mountPath"]) for m in service["volumeMounts"]}, name
        assert prepare["securityContext"] == service["securityContext"], name
        limits = prepare["resources"]["limits"]
        assert limits.get("cpu") and limits.get("memory"), f"{name}: its prepare has no cpu/memory limits"
        # No probe on an init container: an index build takes the time it takes.
        assert not {"startupProbe", "livenessProbe", "readinessProbe"} & set(prepare), name


def test_every_workload_has_probes_limits_and_runs_as_non_root(docs: list[Doc]) -> None:
    assert workloads(docs)
    for doc in workloads(docs):
        name, spec = doc["metadata"]["name"], pod_spec(doc)
        assert spec["automountServiceAccountToken"] is False, name
        account = named(docs, "ServiceAccount", spec["serviceAccountName"])
        assert account["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["terminationGracePeriodSeconds"] == 30, name
        assert "replicas" not in doc["spec"], f"{name}: the HPA owns the replica count"
        for container in spec["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{name} has no {probe}"
            limits = container["resources"]["limits"]
            assert limits.get("cpu") and limits.get("memory"), f"{name} has no cpu/memory limits"
            assert container["resources"]["requests"].get("cpu"), name
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True and context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert "preStop" in container["lifecycle"], f"{name} has no preStop pause"


def test_chorus_services_probe_healthz_and_readyz_and_write_only_to_volumes(docs: list[Doc]) -> None:
    for name, doc in chorus_workloads(docs).items():
        (container,) = pod_spec(doc)["containers"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        # The redirect rides out a MongoDB outage on its link cache: its probe leaves MongoDB out.
        ready = REDIRECT_READY_PATH if name == "sharing-redirect" else "/readyz"
        assert container["readinessProbe"]["httpGet"] == {"path": ready, "port": "http"}, name
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
        # Readiness runs the MongoDB and Kafka checks one after the other, 2 s each at most.
        assert container["readinessProbe"]["timeoutSeconds"] >= 5, name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name


def test_the_click_spool_is_on_a_volume_and_durable_for_the_redirect(docs: list[Doc]) -> None:
    for name in ("sharing-api", "sharing-redirect"):
        doc = chorus_workloads(docs)[name]
        (container,) = pod_spec(doc)["containers"]
        path = next(e["value"] for e in container["env"] if e["name"] == "CHORUS_CLICK_SPOOL_PATH")
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert path.startswith(mounts["spool"].rstrip("/") + "/"), f"{name}: the spool is not on its volume"
    redirect = chorus_workloads(docs)["sharing-redirect"]
    assert redirect["kind"] == "StatefulSet"
    claims = [t["metadata"]["name"] for t in redirect["spec"]["volumeClaimTemplates"]]
    assert "spool" in claims, "the redirect's spool is a PVC per replica"
    assert redirect["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"


def test_every_workload_has_a_pdb_and_an_hpa(docs: list[Doc]) -> None:
    pdbs = of_kind(docs, "PodDisruptionBudget")
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    for doc in workloads(docs):
        name, labels = doc["metadata"]["name"], doc["spec"]["template"]["metadata"]["labels"]
        assert selects(doc["spec"]["selector"]["matchLabels"], labels), name
        budgets = [p for p in pdbs if selects(p["spec"]["selector"]["matchLabels"], labels)]
        assert len(budgets) == 1 and budgets[0]["spec"]["minAvailable"] == 1, (
            f"{name}: one PDB, minAvailable 1"
        )
        scalers = [
            h
            for h in hpas
            if h["spec"]["scaleTargetRef"]["kind"] == doc["kind"]
            and h["spec"]["scaleTargetRef"]["name"] == name
        ]
        assert len(scalers) == 1, f"{name}: one HPA"
        spec = scalers[0]["spec"]
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"], name
        assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in spec["metrics"]), name


@pytest.mark.parametrize("service", sorted(LAG_SCALED))
def test_consumers_scale_on_their_own_group_lag_within_their_partitions(
    docs: list[Doc], service: str
) -> None:
    handlers = importlib.import_module(LAG_SCALED[service])
    # The subscriptions only read the service's settings while they are declared. Every
    # subscription of the handlers module (metrics has two groups on chorus.clicks) falling
    # behind must scale the service.
    app_settings = importlib.import_module(f"services.{service}.main").create_app().state.settings
    builders = [n for n in dir(handlers) if n.startswith("build_") and n.endswith("subscription")]
    subscriptions = [getattr(handlers, n)(SimpleNamespace(settings=app_settings)) for n in builders]
    prefix = config_map(docs)["CHORUS_CONSUMER_GROUP_PREFIX"]
    spec = named(docs, "HorizontalPodAutoscaler", service)["spec"]
    external = [m["external"] for m in spec["metrics"] if m["type"] == "External"]
    assert {m["metric"]["name"] for m in external} == {"kafka_consumergroup_lag"}
    assert sorted(m["metric"]["selector"]["matchLabels"]["consumergroup"] for m in external) == sorted(
        f"{prefix}.{s.group}" for s in subscriptions
    )
    assert all(m["target"]["type"] == "AverageValue" for m in external)
    partitions = {name: count for name, count, _ in topic_configs()}
    widest = max(partitions[topic] for s in subscriptions for topic in s.topics)
    assert spec["maxReplicas"] <= widest, f"{service}: replicas beyond {widest} partitions would sit idle"


# --- services and ingress ------------------------------------------------------------------------


def test_every_service_selects_a_workload_and_targets_a_named_port(docs: list[Doc]) -> None:
    for svc in of_kind(docs, "Service"):
        selected = [
            w
            for w in workloads(docs)
            if selects(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(selected) == 1, f"Service {svc['metadata']['name']} selects {len(selected)} workloads"
        port_names = {p["name"] for c in pod_spec(selected[0])["containers"] for p in c["ports"]}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names, svc["metadata"]["name"]


def test_ingress_routes_every_gateway_prefix_to_the_owning_service(docs: list[Doc]) -> None:
    ingresses = of_kind(docs, "Ingress")
    routed: dict[str, str] = {}
    sticky: set[str] = set()  # prefixes whose Ingress sends a client to the same replica
    for ingress in ingresses:
        hashed = "nginx.ingress.kubernetes.io/upstream-hash-by" in ingress["metadata"].get("annotations", {})
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["pathType"] == "Prefix"
                assert path["path"] not in routed, f"{path['path']} routed twice"
                routed[path["path"]] = path["backend"]["service"]["name"]
                if hashed:
                    sticky.add(path["path"])
    # One public host and certificate for all of them (the overlay patches every Ingress).
    assert len({(i["spec"]["rules"][0]["host"], i["spec"]["tls"][0]["secretName"]) for i in ingresses}) == 1
    # Unique visitors are decided against what every replica has seen (sharing's click relay): no
    # prefix needs a visitor to keep reaching one replica, and load spreads freely.
    assert sticky == set()
    assert set(routed) == set(ROUTES), "the Ingress and devtools/gateway.py ROUTES list the same prefixes"
    for prefix, backend in routed.items():
        svc = named(docs, "Service", backend)
        (workload,) = [
            w
            for w in workloads(docs)
            if selects(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        args = pod_spec(workload)["containers"][0]["args"]
        assert args[:1] == [ROUTES[prefix]], f"{prefix} reaches {backend}"
    assert routed["/r/"] == "sharing-redirect"
    assert {b for p, b in routed.items() if ROUTES[p] == "sharing" and p != "/r/"} == {"sharing-api"}


# --- network policy -------------------------------------------------------------------------------


def policies_for(docs: list[Doc], labels: dict[str, str], policy_type: str) -> list[Doc]:
    return [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if p["metadata"]["namespace"] == NAMESPACE
        and policy_type in p["spec"]["policyTypes"]
        and all(labels.get(k) == v for k, v in p["spec"]["podSelector"].get("matchLabels", {}).items())
    ]


def egress_ports(policies: list[Doc]) -> set[int | str]:
    return {
        port["port"]
        for p in policies
        for rule in p["spec"].get("egress", [])
        for port in rule.get("ports", [])
    }


def test_network_policy_denies_by_default_and_opens_only_what_services_need(docs: list[Doc]) -> None:
    deny = [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "a default-deny policy for the namespace"
    for name, doc in chorus_workloads(docs).items():
        labels = doc["spec"]["template"]["metadata"]["labels"]
        ingress_rules = [
            rule for p in policies_for(docs, labels, "Ingress") for rule in p["spec"].get("ingress", [])
        ]
        assert ingress_rules, f"{name} takes no traffic"
        for rule in ingress_rules:
            sources = [peer["namespaceSelector"]["matchLabels"] for peer in rule["from"]]
            assert sources == [{"kubernetes.io/metadata.name": INGRESS_CONTROLLER_NAMESPACE}], name
        ports = egress_ports(policies_for(docs, labels, "Egress"))
        assert {53, 9093, 27017, 4318} <= ports, f"{name}: DNS, Kafka, MongoDB and the collector"
    # Outbound webhooks (recognition's fulfilment, metrics' integrations): each by a policy of its
    # own, so that narrowing the identity provider's policy to the IdP never cuts them off.
    for name in ("recognition", "metrics"):
        labels = chorus_workloads(docs)[name]["spec"]["template"]["metadata"]["labels"]
        own = [
            p
            for p in policies_for(docs, labels, "Egress")
            if p["spec"]["podSelector"].get("matchLabels") == {"app.kubernetes.io/name": name}
        ]
        assert 443 in egress_ports(own), f"{name} delivers webhooks over HTTPS"
