"""The local stack manager's pure parts: configuration, cache keys, templates, certificates. No servers."""

from __future__ import annotations

import base64
import re
import struct
import subprocess
from pathlib import Path

import pytest

from devtools import local_stack
from devtools.local_stack import StackConfig, StackError


def test_config_defaults_to_the_dev_profile_under_the_xdg_state_home() -> None:
    config = StackConfig.from_env({"HOME": "/home/ada"})

    assert config.state_dir == Path("/home/ada/.local/state/chorus/dev")
    assert config.kafka_bootstrap == "127.0.0.1:9092"
    assert config.mongo_url == "mongodb://127.0.0.1:27017/"
    assert config.otlp_http_endpoint == "http://127.0.0.1:4318"
    assert config.otlp_grpc_endpoint == "http://127.0.0.1:4317"
    assert config.jaeger_query_url == "http://127.0.0.1:16686"
    assert config.kafka_controller_port == 9093


def test_config_reads_ports_and_state_dir_from_the_environment() -> None:
    config = StackConfig.from_env(
        {
            "HOME": "/home/ada",
            "CHORUS_STATE_DIR": "/srv/chorus-second",
            "CHORUS_KAFKA_PORT": "19092",
            "CHORUS_KAFKA_CONTROLLER_PORT": "19093",
            "CHORUS_KAFKA_SASL_PORT": "19094",
            "CHORUS_KAFKA_TLS_PORT": "19095",
            "CHORUS_MONGO_PORT": "37017",
            "CHORUS_OTLP_GRPC_PORT": "14317",
            "CHORUS_OTLP_HTTP_PORT": "14318",
            "CHORUS_JAEGER_UI_PORT": "26686",
        }
    )

    assert config.state_dir == Path("/srv/chorus-second")
    assert config.env() == {
        "CHORUS_KAFKA_BOOTSTRAP": "127.0.0.1:19092",
        "CHORUS_MONGO_URL": "mongodb://127.0.0.1:37017/",
        "CHORUS_OTLP_ENDPOINT": "http://127.0.0.1:14318",
    }
    assert config.jaeger_query_url == "http://127.0.0.1:26686"
    assert (config.kafka_sasl_bootstrap, config.kafka_tls_bootstrap) == ("127.0.0.1:19094", "127.0.0.1:19095")


def test_xdg_state_home_is_used_only_when_absolute() -> None:
    absolute = StackConfig.from_env({"HOME": "/home/ada", "XDG_STATE_HOME": "/var/state"})
    relative = StackConfig.from_env({"HOME": "/home/ada", "XDG_STATE_HOME": "state"})

    assert absolute.state_dir == Path("/var/state/chorus/dev")
    assert relative.state_dir == Path("/home/ada/.local/state/chorus/dev")


def test_kafka_jvm_options_start_fast_by_default_and_can_be_overridden() -> None:
    default = StackConfig.from_env({"HOME": "/home/ada"})
    tuned = StackConfig.from_env({"HOME": "/home/ada", "CHORUS_KAFKA_JVM_OPTS": "-Xms1g -Xmx1g"})

    assert "-XX:TieredStopAtLevel=1" in default.kafka_jvm_opts.split()
    assert tuned.kafka_jvm_opts == "-Xms1g -Xmx1g"


@pytest.mark.parametrize("value", ["kafka", "0", "70000"])
def test_a_bad_port_is_refused_with_the_variable_named(value: str) -> None:
    with pytest.raises(StackError, match="CHORUS_KAFKA_PORT"):
        StackConfig.from_env({"HOME": "/home/ada", "CHORUS_KAFKA_PORT": value})


def test_two_parts_on_the_same_port_are_refused() -> None:
    with pytest.raises(StackError, match="CHORUS_MONGO_PORT and CHORUS_KAFKA_PORT"):
        StackConfig.from_env({"HOME": "/home/ada", "CHORUS_MONGO_PORT": "9092"})


def test_every_port_of_the_stack_belongs_to_exactly_one_part() -> None:
    # The port-in-use check before a start looks at each part's ports; none may be forgotten.
    owned = [var for part in local_stack.PARTS for var in part.port_vars]

    assert sorted(owned) == sorted(StackConfig(state_dir=Path("/x")).ports())


def test_install_dirs_follow_xdg_cache_and_data_homes() -> None:
    assert local_stack.cache_dir({"HOME": "/home/ada"}) == Path("/home/ada/.cache/chorus")
    assert local_stack.bin_dir({"HOME": "/home/ada"}) == Path("/home/ada/.local/share/chorus/bin")
    assert local_stack.cache_dir({"HOME": "/h", "XDG_CACHE_HOME": "/c"}) == Path("/c/chorus")
    assert local_stack.bin_dir({"HOME": "/h", "XDG_DATA_HOME": "/d"}) == Path("/d/chorus/bin")


def _go_module(root: Path) -> Path:
    (root / "go.mod").write_text("module example.com/m\n")
    (root / "go.sum").write_text("example.com/x v1.0.0 h1:abc=\n")
    (root / "main.go").write_text("package main\n")
    return root


def test_go_module_key_changes_with_go_mod_go_sum_and_go_files(tmp_path: Path) -> None:
    module = _go_module(tmp_path)
    before = local_stack.go_module_key(module)

    for name, text in [("main.go", "package main // edited\n"), ("go.sum", "x\n"), ("go.mod", "module m2\n")]:
        (module / name).write_text(text)
        after = local_stack.go_module_key(module)
        assert after != before, name
        before = after

    (module / "extra.go").write_text("package main\n")
    assert local_stack.go_module_key(module) != before


def test_go_module_key_ignores_other_files_and_is_stable(tmp_path: Path) -> None:
    module = _go_module(tmp_path)
    before = local_stack.go_module_key(module)

    (module / "README.md").write_text("notes\n")

    assert local_stack.go_module_key(module) == before == local_stack.go_module_key(module)


def test_maven_cache_key_follows_the_pom(tmp_path: Path) -> None:
    (tmp_path / "pom.xml").write_text("<project/>")
    before = local_stack.maven_cache_key(tmp_path)

    (tmp_path / "pom.xml").write_text("<project><version>2</version></project>")

    assert local_stack.maven_cache_key(tmp_path) != before


def test_the_real_modules_have_keys() -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", local_stack.go_module_key(local_stack.JAEGER_DIR))
    assert re.fullmatch(r"[0-9a-f]{16}", local_stack.maven_cache_key(local_stack.KAFKA_DIR))


def test_kube_apiserver_is_stamped_with_the_version_its_module_pins() -> None:
    go_mod = (local_stack.KUBERNETES_DIR / "go.mod").read_text()
    pinned = re.search(r"^\s*k8s\.io/kubernetes (v1\.(\d+)\.\d+)", go_mod, re.MULTILINE)
    assert pinned is not None
    version, minor = pinned.group(1), pinned.group(2)
    assert local_stack.GO_TOOLS["kube-apiserver"].ldflags == local_stack.GO_TOOLS["kubectl"].ldflags
    ldflags = local_stack.GO_TOOLS["kubectl"].ldflags + " "
    assert f"version.gitVersion={version} " in ldflags
    assert f"version.gitMinor={minor}" in ldflags
    # Each staging module is published as v0.X.Y beside kubernetes v1.X.Y; any other pairing
    # does not build (or worse, builds a mix).
    staging = re.findall(r"^\s*(k8s\.io/\S+) => \1 (\S+)$", go_mod, re.MULTILINE)
    assert staging
    assert {replaced: v for replaced, v in staging if v != "v0" + version[2:]} == {}


def test_kafka_template_renders_with_every_listener_on_loopback() -> None:
    text = local_stack.render_template(
        local_stack.KAFKA_DIR / "server.properties.template",
        kafka_port=19092,
        controller_port=19093,
        sasl_port=19094,
        tls_port=19095,
        tls_dir="/srv/k/tls",
        admin="admin",
        log_dir="/srv/k/data",
    )

    assert not re.search(r"\$\{[a-z_]+\}", text)
    assert (
        "listeners=PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094,SSL://127.0.0.1:19095,"
        "CONTROLLER://127.0.0.1:19093"
    ) in text
    assert "controller.quorum.voters=1@127.0.0.1:19093" in text
    assert "log.dirs=/srv/k/data" in text
    # ANONYMOUS (the plain listener) is a super user of the local broker; nobody else is but the admin.
    assert "super.users=User:ANONYMOUS;User:admin" in text
    assert "listener.name.ssl.ssl.client.auth=required" in text


def test_the_create_acls_request_grants_each_operation_of_each_acl() -> None:
    principals = [
        {
            "name": "content",
            "acls": [{"resource": "topic", "name": "chorus.content", "operations": ["Describe", "Write"]}],
        },
        {
            "name": "metrics",
            "acls": [{"resource": "group", "name": "chorus.metrics", "operations": ["Read"]}],
        },
    ]

    request = local_stack.create_acls_request(principals, correlation_id=7)

    size, api_key, version, correlation = struct.unpack_from(">ihhi", request)
    assert (size, api_key, version, correlation) == (len(request) - 4, 30, 1, 7)
    assert struct.unpack_from(">i", request, 4 + 8 + 2 + len("chorus-devstack"))[0] == 3
    assert request.count(b"User:content") == 2 and request.count(b"User:metrics") == 1


def test_certificates_are_made_once_and_signed_by_the_stack_ca(tmp_path: Path) -> None:
    local_stack.make_certificates(tmp_path, ["content"])
    first = (tmp_path / "content.crt").read_bytes()
    local_stack.make_certificates(tmp_path, ["content", "metrics"])

    assert (tmp_path / "content.crt").read_bytes() == first
    for name in ("broker", "content", "metrics"):
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / f"{name}.crt")],
            capture_output=True,
            text=True,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
    broker = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "broker.crt"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
    ).stdout
    assert "IP Address:127.0.0.1" in broker


def test_jaeger_template_renders_with_every_endpoint_on_loopback() -> None:
    text = local_stack.render_template(
        local_stack.JAEGER_DIR / "config.yaml.template",
        otlp_grpc_port=14317,
        otlp_http_port=14318,
        ui_port=26686,
    )

    assert not re.search(r"\$\{[a-z_]+\}", text)
    endpoints = re.findall(r"^\s*endpoint:\s*(\S+)", text, flags=re.MULTILINE)
    assert sorted(endpoints) == ["127.0.0.1:0", "127.0.0.1:14317", "127.0.0.1:14318", "127.0.0.1:26686"]


def test_a_template_value_left_out_is_an_error() -> None:
    with pytest.raises(KeyError, match="ui_port"):
        local_stack.render_template(
            local_stack.JAEGER_DIR / "config.yaml.template", otlp_grpc_port=1, otlp_http_port=2
        )


def test_kafka_cluster_ids_look_like_kafkas_own() -> None:
    for _ in range(200):
        cluster_id = local_stack.new_kafka_cluster_id()
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_the_hello_document_is_well_formed_bson() -> None:
    document = local_stack._hello_document()

    assert struct.unpack_from("<i", document)[0] == len(document)
    assert document.endswith(b"\x00")
    assert b"hello\x00" in document and b"admin\x00" in document


def test_reset_refuses_a_directory_the_stack_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")

    with pytest.raises(StackError, match="not made by the chorus dev stack"):
        local_stack.reset(StackConfig(state_dir=tmp_path))

    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_the_env_command_prints_export_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHORUS_MONGO_PORT", "37017")

    assert local_stack.main(["env"]) == 0

    assert "export CHORUS_MONGO_URL=mongodb://127.0.0.1:37017/\n" in capsys.readouterr().out


def _fake_module_cache(root: Path, sum_: str) -> Path:
    """What `go mod download` leaves for the Prometheus Operator module, with the sum given."""
    module, version = local_stack.PROMETHEUS_OPERATOR_MODULE, local_stack.PROMETHEUS_OPERATOR_VERSION
    crds = root / f"{module}@{version}" / "example" / "prometheus-operator-crd"
    crds.mkdir(parents=True)
    (crds / "monitoring.coreos.com_prometheusrules.yaml").write_text("kind: CustomResourceDefinition\n")
    ziphash = root / "cache" / "download" / module / "@v" / f"{version}.ziphash"
    ziphash.parent.mkdir(parents=True)
    ziphash.write_text(sum_)
    return crds


def test_the_operator_crds_are_found_in_the_module_cache_under_the_pinned_sum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_stack, "go_mod_cache", lambda: tmp_path)
    with pytest.raises(local_stack.NotInstalled, match="make deps"):
        local_stack.prometheus_operator_crds()

    crds = _fake_module_cache(tmp_path, local_stack.PROMETHEUS_OPERATOR_SUM + "\n")

    assert local_stack.prometheus_operator_crds() == crds


def test_operator_crds_under_another_sum_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_stack, "go_mod_cache", lambda: tmp_path)
    _fake_module_cache(tmp_path, "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")

    with pytest.raises(StackError, match="not the pinned h1:M5xL"):
        local_stack.prometheus_operator_crds()


def test_the_module_cache_escapes_upper_case_letters_as_go_does() -> None:
    assert local_stack._module_cache_path("github.com/BurntSushi/toml") == "github.com/!burnt!sushi/toml"


def test_the_operator_crds_are_installed_with_the_test_tools_only() -> None:
    def names(test_tools: bool) -> list[str]:
        return [step.name for step in local_stack.install_steps(test_tools=test_tools)]

    assert "prometheus-operator-crds" in names(True)
    assert "prometheus-operator-crds" not in names(False)


def test_the_dashboard_is_installed_for_make_run_and_its_browser_for_the_tests_only() -> None:
    def names(test_tools: bool) -> list[str]:
        return [step.name for step in local_stack.install_steps(test_tools=test_tools)]

    assert "dashboard" in names(False)
    assert "debian" in names(True) and "debian" not in names(False)
    assert local_stack.DEBIAN_PACKAGES["chromium"] == "chromium"
