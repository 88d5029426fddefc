"""The commands of docs/runbook.md against the manifests and the code they run with.

The runbook's Jobs and Kafka commands are run by hand in production, where a mistake shows only
at the worst time: a Job refused by its settings, a tool refused by the broker's ACLs, a consumer
group left out of a restore.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from devtools import local_stack
from devtools.consumers import consumer_groups
from devtools.kafka_access import OPERATORS
from tests.deploy.manifests import BASE, Doc, load_docs

RUNBOOK = local_stack.REPO_ROOT / "docs" / "runbook.md"


def runbook() -> str:
    return RUNBOOK.read_text()


def heredoc_objects(text: str) -> list[Doc]:
    """The objects the runbook applies with `kubectl ... apply -f - <<EOF ... EOF`."""
    docs: list[Doc] = []
    for body in re.findall(r"apply -f - <<EOF\n(.*?)\nEOF\n", text, flags=re.DOTALL):
        docs += [doc for doc in yaml.safe_load_all(body.replace("$IMAGE", "image")) if doc]
    return docs


def kafka_commands(text: str) -> list[list[str]]:
    """Every `kafka TOOL ARGS...` line of the runbook (continuations joined), as TOOL ARGS..."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        shlex.split(line.strip().split("#", 1)[0].replace('"$group"', "chorus.group"))[1:]
        for line in joined.splitlines()
        if re.match(r"\s*kafka kafka-", line)
    ]


def secret_env(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_the_metrics_rebuild_job_runs_with_the_metrics_deployments_config_and_secrets() -> None:
    (job,) = [
        d
        for d in heredoc_objects(runbook())
        if d["kind"] == "Job" and d["metadata"]["name"] == "metrics-rebuild"
    ]
    (deployment,) = [d for d in load_docs(BASE / "metrics.yaml") if d["kind"] == "Deployment"]
    (service,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "metrics"]
    (rebuild,) = job["spec"]["template"]["spec"]["containers"]
    assert rebuild["envFrom"] == service["envFrom"]
    assert secret_env(rebuild) == secret_env(service)
    mounts = {m["name"]: m["mountPath"] for m in service["volumeMounts"]}
    assert {m["name"]: m["mountPath"] for m in rebuild["volumeMounts"]}["kafka-ca"] == mounts["kafka-ca"]


def test_kafka_commands_use_consumer_groups_the_operators_user_may_use() -> None:
    prefixes = [acl.name for acl in OPERATORS.acls if acl.resource == "group"]
    commands = kafka_commands(runbook())
    assert commands
    for argv in commands:
        groups = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--group"]
        if argv[0] == "kafka-console-consumer.sh":
            # Without --group the tool makes up `console-consumer-<n>`, which the ACLs refuse;
            # with one, it must not commit (a committed ops group would show lag and alert).
            assert groups, f"no --group: {shlex.join(argv)}"
            assert "enable.auto.commit=false" in argv, shlex.join(argv)
        for group in groups:
            assert any(group.startswith(p) for p in prefixes), f"{group} is not allowed to chorus-ops"


def test_the_restore_rewinds_every_consumer_group_the_code_declares() -> None:
    loops = re.findall(r"for group in ([^;]+); do\n\s*kafka kafka-consumer-groups\.sh", runbook())
    assert len(loops) == 1, "one loop over the groups in Backups"
    assert set(loops[0].replace("\\", " ").split()) == {g.group for g in consumer_groups()}
