"""The local stack for development and tests: Kafka, SecantusDB and Jaeger as plain processes.

There is no Docker engine on our machines, so every part runs from real upstream code, installed
once into the standard caches (jars in ~/.m2, Go modules and build cache, binaries in the user's
data dir) and started as a child process bound to 127.0.0.1:

    python -m devtools.local_stack install   # resolve jars, build the Go binaries (first run only)
    python -m devtools.local_stack up        # start (or reuse) the stack, print its URLs
    python -m devtools.local_stack status
    python -m devtools.local_stack down      # stop every process of the stack
    python -m devtools.local_stack reset     # down, then delete its data
    python -m devtools.local_stack env       # `export` lines for services (eval "$(...)")

Ports and the state directory come from CHORUS_* variables (see StackConfig), so two stacks,
say a developer's and a test run's, can run side by side.

This module uses the standard library only and imports nothing from shared/ or services/, so the stack
still starts while the rest of the code base is broken.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_DIR = REPO_ROOT / "deploy" / "local" / "kafka"
JAEGER_DIR = REPO_ROOT / "deploy" / "local" / "jaeger"
KUBERNETES_DIR = REPO_ROOT / "deploy" / "local" / "kubernetes"
KUSTOMIZE_DIR = REPO_ROOT / "deploy" / "local" / "kustomize"

HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 90.0  # seconds for each part to become healthy
STOP_GRACE = 15.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL_LINES = 20
# Written into a state directory we created; reset() deletes only directories that carry it.
STATE_MARKER = ".chorus-devstack"
# How often the local store deletes what its TTL indexes have expired. MongoDB's TTL monitor
# passes every 60 s; nothing in Chorus depends on when a pass comes, and a short one lets the
# tests of expiry wait seconds instead of a minute.
TTL_PASS_S = 5


class StackError(Exception):
    """The local stack could not be installed, started or stopped; the message says why."""


# --------------------------------------------------------------------------------------------
# Configuration


def _xdg_dir(environ: Mapping[str, str], var: str, fallback: str) -> Path:
    # The XDG spec says a relative value is invalid and must be ignored.
    value = environ.get(var, "")
    if value and Path(value).is_absolute():
        return Path(value)
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / fallback


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where resolved things are cached (the Kafka classpath): $XDG_CACHE_HOME/chorus."""
    return _xdg_dir(os.environ if environ is None else environ, "XDG_CACHE_HOME", ".cache") / "chorus"


def bin_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the Go binaries are built: $XDG_DATA_HOME/chorus/bin."""
    env = os.environ if environ is None else environ
    return _xdg_dir(env, "XDG_DATA_HOME", ".local/share") / "chorus" / "bin"


def _port(environ: Mapping[str, str], var: str, default: int) -> int:
    raw = environ.get(var, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{var}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise StackError(f"{var}={port} is not between 1 and 65535")
    return port


@dataclass(frozen=True)
class StackConfig:
    """Where one stack keeps its state and which ports it listens on (all on 127.0.0.1)."""

    state_dir: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    # SASL_SSL with SCRAM-SHA-512, and SSL with client certificates (mTLS): the listeners
    # production has; the plain one (kafka_port) is for local development only.
    kafka_sasl_port: int = 9094
    kafka_tls_port: int = 9095
    mongo_port: int = 27017
    otlp_grpc_port: int = 4317
    otlp_http_port: int = 4318
    jaeger_ui_port: int = 16686
    # C1 only: the broker boots on about 40% less CPU (measured 9.0 s -> 5.4 s on 2 busy cores),
    # and a local broker never needs peak throughput. Benchmarks that load the broker itself
    # can set CHORUS_KAFKA_JVM_OPTS="-Xms512m -Xmx512m".
    kafka_jvm_opts: str = "-Xms512m -Xmx512m -XX:TieredStopAtLevel=1"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackConfig:
        env = os.environ if environ is None else environ
        state = env.get("CHORUS_STATE_DIR") or _xdg_dir(env, "XDG_STATE_HOME", ".local/state") / "chorus/dev"
        config = cls(
            state_dir=Path(state).expanduser().absolute(),
            kafka_port=_port(env, "CHORUS_KAFKA_PORT", cls.kafka_port),
            kafka_controller_port=_port(env, "CHORUS_KAFKA_CONTROLLER_PORT", cls.kafka_controller_port),
            kafka_sasl_port=_port(env, "CHORUS_KAFKA_SASL_PORT", cls.kafka_sasl_port),
            kafka_tls_port=_port(env, "CHORUS_KAFKA_TLS_PORT", cls.kafka_tls_port),
            mongo_port=_port(env, "CHORUS_MONGO_PORT", cls.mongo_port),
            otlp_grpc_port=_port(env, "CHORUS_OTLP_GRPC_PORT", cls.otlp_grpc_port),
            otlp_http_port=_port(env, "CHORUS_OTLP_HTTP_PORT", cls.otlp_http_port),
            jaeger_ui_port=_port(env, "CHORUS_JAEGER_UI_PORT", cls.jaeger_ui_port),
            kafka_jvm_opts=env.get("CHORUS_KAFKA_JVM_OPTS") or cls.kafka_jvm_opts,
        )
        config.check_ports()
        return config

    def ports(self) -> dict[str, int]:
        """Every port of the stack, by the variable that sets it."""
        return {
            "CHORUS_KAFKA_PORT": self.kafka_port,
            "CHORUS_KAFKA_CONTROLLER_PORT": self.kafka_controller_port,
            "CHORUS_KAFKA_SASL_PORT": self.kafka_sasl_port,
            "CHORUS_KAFKA_TLS_PORT": self.kafka_tls_port,
            "CHORUS_MONGO_PORT": self.mongo_port,
            "CHORUS_OTLP_GRPC_PORT": self.otlp_grpc_port,
            "CHORUS_OTLP_HTTP_PORT": self.otlp_http_port,
            "CHORUS_JAEGER_UI_PORT": self.jaeger_ui_port,
        }

    def check_ports(self) -> None:
        seen: dict[int, str] = {}
        for var, port in self.ports().items():
            if port in seen:
                raise StackError(f"{var} and {seen[port]} are both {port}; every port must differ")
            seen[port] = var

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def kafka_sasl_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_sasl_port}"

    @property
    def kafka_tls_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_tls_port}"

    @property
    def kafka_tls_dir(self) -> Path:
        """The local CA, the broker's certificate and one client certificate per principal."""
        return self.part_dir("kafka") / "tls"

    @property
    def kafka_users_file(self) -> Path:
        """The SCRAM passwords of the principals, as JSON {name: password}."""
        return self.part_dir("kafka") / "users.json"

    def kafka_client_env(self, principal: str, *, mtls: bool = False) -> dict[str, str]:
        """The variables a service needs to reach this stack's broker as `principal` over
        SASL_SSL (SCRAM-SHA-512), or over mTLS with its client certificate."""
        env = {"CHORUS_KAFKA_SSL_CAFILE": str(self.kafka_tls_dir / "ca.crt")}
        if mtls:
            return env | {
                "CHORUS_KAFKA_BOOTSTRAP": self.kafka_tls_bootstrap,
                "CHORUS_KAFKA_SECURITY_PROTOCOL": "SSL",
                "CHORUS_KAFKA_SSL_CERTFILE": str(self.kafka_tls_dir / f"{principal}.crt"),
                "CHORUS_KAFKA_SSL_KEYFILE": str(self.kafka_tls_dir / f"{principal}.key"),
            }
        users = json.loads(self.kafka_users_file.read_text())
        return env | {
            "CHORUS_KAFKA_BOOTSTRAP": self.kafka_sasl_bootstrap,
            "CHORUS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "CHORUS_KAFKA_SASL_USERNAME": principal,
            "CHORUS_KAFKA_SASL_PASSWORD": users[principal],
        }

    @property
    def mongo_url(self) -> str:
        return f"mongodb://{HOST}:{self.mongo_port}/"

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://{HOST}:{self.otlp_http_port}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://{HOST}:{self.otlp_grpc_port}"

    @property
    def jaeger_query_url(self) -> str:
        return f"http://{HOST}:{self.jaeger_ui_port}"

    def env(self) -> dict[str, str]:
        """The variables a service needs to talk to this stack."""
        return {
            "CHORUS_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "CHORUS_MONGO_URL": self.mongo_url,
            "CHORUS_OTLP_ENDPOINT": self.otlp_http_endpoint,
        }

    def part_dir(self, name: str) -> Path:
        return self.state_dir / name

    def log_file(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.state_dir / "pids" / f"{name}.pid"


# --------------------------------------------------------------------------------------------
# Install: resolve once, keyed by the content of what was resolved, so a warm call only hashes
# a few small files. Everything is installed by `chorus stack install` (make deps), before any
# test runs: a build under pytest's timeout fails on a cold machine. Tests and `start()` only
# look the results up (build=False) and say which command to run when something is missing.


@dataclass(frozen=True)
class Installed:
    kafka_classpath: str
    secantusdb_bin: Path
    jaeger_bin: Path


def _progress(message: str) -> None:
    # stderr, so that stdout stays clean for `env` and for callers that parse it.
    print(message, file=sys.stderr, flush=True)


def content_key(base: Path, files: Iterable[Path]) -> str:
    """A short hash of the names and contents of files (relative to base), order-independent."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def maven_cache_key(module_dir: Path) -> str:
    return content_key(module_dir, [module_dir / "pom.xml"])


def go_module_key(module_dir: Path) -> str:
    """go.mod, go.sum and the module's own Go files decide what gets built."""
    files = [module_dir / "go.mod", module_dir / "go.sum", *module_dir.glob("*.go")]
    return content_key(module_dir, files)


def _require(tool: str, why: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise StackError(f"`{tool}` was not found on PATH; {why}")
    return found


def install_log(name: str, environ: Mapping[str, str] | None = None) -> Path:
    """Where the full output of installing one part is kept (the last attempt)."""
    return cache_dir(environ) / "logs" / f"install-{name}.log"


def _run(
    argv: Sequence[str],
    what: str,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> None:
    result = subprocess.run(
        argv, cwd=cwd, env=None if env is None else {**os.environ, **env}, capture_output=True, text=True
    )
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(output[-LOG_TAIL_LINES:])
        where = f"; full log: {log}" if log is not None else ""
        raise StackError(f"{what} failed (exit code {result.returncode}{where}): {' '.join(argv)}\n{tail}")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Serialises installs and starts across processes (parallel test workers, two shells).
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class NotInstalled(StackError):
    """A part that `chorus stack install` makes is missing, and the caller may not build it."""

    def __init__(self, title: str) -> None:
        super().__init__(f"{title} is not installed; run `make deps` (or `chorus stack install`) first")


def _kafka_classpath(cache: Path, build: bool) -> str:
    target = cache / f"kafka-classpath-{maven_cache_key(KAFKA_DIR)}.txt"
    if target.is_file():
        classpath = target.read_text().strip()
        # The jars live in ~/.m2, which someone may have cleaned since.
        if classpath and all(Path(jar).is_file() for jar in classpath.split(os.pathsep)):
            return classpath
    if not build:
        raise NotInstalled("Kafka (its jars)")
    mvn = _require("mvn", "the local Kafka broker is resolved from Maven Central with Maven")
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob("kafka-classpath-*.tmp"):  # left by an interrupted run; we hold the lock
        stale.unlink(missing_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    _run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(KAFKA_DIR / "pom.xml"),
            "dependency:build-classpath",
            f"-Dmdep.outputFile={tmp}",
        ],
        "resolving the Kafka jars with Maven",
        log=install_log("kafka"),
    )
    os.replace(tmp, target)
    return target.read_text().strip()


@dataclass(frozen=True)
class GoTool:
    """A binary built from the Go module proxy, from a small module of ours under deploy/local/.

    The module pins the version (go.mod, go.sum); the binary is named after the module's content
    key, so a changed pin builds anew and an unchanged one is found in microseconds.
    """

    name: str  # the binary is bin_dir()/chorus-<name>-<key>
    title: str
    module_dir: Path
    package: str  # what `go build` builds, from inside module_dir
    ldflags: str = ""

    def target(self, bins: Path) -> Path:
        return bins / f"chorus-{self.name}-{go_module_key(self.module_dir)}"


KUBERNETES_VERSION_FLAGS = " ".join(
    f"-X k8s.io/component-base/version.{name}={value}"
    for name, value in (("gitVersion", "v1.37.2"), ("gitMajor", "1"), ("gitMinor", "37"))
)

GO_TOOLS: dict[str, GoTool] = {
    tool.name: tool
    for tool in (
        GoTool("jaeger", "Jaeger", JAEGER_DIR, "github.com/jaegertracing/jaeger/cmd/jaeger"),
        # The API server of the cluster tier (tests/cluster), and the kubectl that talks to it.
        # -X stamps the version that go.mod pins (a unit test keeps them equal), so /version and
        # `kubectl version` tell the truth instead of v0.0.0-master.
        *(
            GoTool(name, name, KUBERNETES_DIR, f"k8s.io/kubernetes/cmd/{name}", KUBERNETES_VERSION_FLAGS)
            for name in ("kube-apiserver", "kubectl")
        ),
        # Renders deploy/k8s for the manifest tests (tests/deploy). Pinned at v5.8.2 because
        # kustomize@latest needs a newer Go than 1.26.
        GoTool("kustomize", "kustomize", KUSTOMIZE_DIR, "sigs.k8s.io/kustomize/kustomize/v5"),
        # Checks and unit-tests the alert rules of deploy/k8s/monitoring (tests/deploy).
        GoTool(
            "promtool",
            "promtool",
            REPO_ROOT / "deploy" / "local" / "promtool",
            "github.com/prometheus/prometheus/cmd/promtool",
        ),
    )
}


def go_tool(name: str, *, build: bool = False, environ: Mapping[str, str] | None = None) -> Path:
    """The built binary of GO_TOOLS[name]; builds it only when `build` (install time)."""
    return go_binary(GO_TOOLS[name], bin_dir(environ), build=build, log=install_log(name, environ))


def go_binary(tool: GoTool, bins: Path, *, build: bool, log: Path) -> Path:
    target = tool.target(bins)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    if not build:
        raise NotInstalled(tool.title)
    go = _require("go", f"{tool.title} is built from the Go module proxy")
    bins.mkdir(parents=True, exist_ok=True)
    for stale in bins.glob(f".chorus-{tool.name}-*.tmp"):  # left by an interrupted build; we hold the lock
        stale.unlink(missing_ok=True)
    tmp = bins / f".{target.name}.{os.getpid()}.tmp"
    argv = [go, "build", "-trimpath", "-o", str(tmp)]
    if tool.ldflags:
        argv += ["-ldflags", tool.ldflags]
    _run([*argv, tool.package], f"building {tool.title}", cwd=tool.module_dir, log=log)
    # Older builds stay: another checkout (a worktree on another branch) may still want them.
    os.replace(tmp, target)
    return target


# The Prometheus Operator's CRDs (PrometheusRule, PodMonitor...), against which the cluster tier
# checks deploy/k8s/monitoring. The Go module proxy serves them inside the Operator's module; Go's
# module cache keeps them. v0.85.0 is the newest version the proxy serves us (`go list -m
# -versions` lists no other; later tags answer 403 "not available"). The go command
# checks the download against the checksum database; the sum pinned here refuses a module cache
# that holds anything else under this version (a proxy serving changed content, GOSUMDB=off).
PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
PROMETHEUS_OPERATOR_SUM = "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
PROMETHEUS_OPERATOR_TITLE = "Prometheus Operator CRDs (Go module proxy)"


def _module_cache_path(module: str) -> str:
    # Go's module cache spells an upper-case letter as "!" and the lower-case letter.
    return re.sub(r"[A-Z]", lambda match: "!" + match.group().lower(), module)


def go_mod_cache() -> Path:
    """Go's module cache (GOMODCACHE; ~/go/pkg/mod by default), as the go command reports it."""
    go = shutil.which("go")
    if go is None:
        raise NotInstalled("Go (the go command)")
    found = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=False)
    if found.returncode != 0 or not found.stdout.strip():
        raise StackError(f"`go env GOMODCACHE` failed: {found.stderr.strip()}")
    return Path(found.stdout.strip())


def prometheus_operator_crds(*, download: bool = False) -> Path:
    """The directory of the Operator's monitoring.coreos.com_*.yaml CRDs in Go's module cache.

    Downloads the pinned module only when `download` (install time); otherwise it is only looked
    up, without network, and a missing module raises NotInstalled. A module whose sum is not the
    pinned one raises StackError either way.
    """
    module = f"{PROMETHEUS_OPERATOR_MODULE}@{PROMETHEUS_OPERATOR_VERSION}"
    if download:
        go = _require("go", "the Prometheus Operator's CRDs come from the Go module proxy")
        # Outside any go.mod, so this is a plain download into the module cache; a cached module
        # is found there without network.
        with tempfile.TemporaryDirectory() as empty:
            _run(
                [go, "mod", "download", "-json", module],
                f"downloading {module}",
                cwd=Path(empty),
                log=install_log("prometheus-operator-crds"),
            )
    cache = go_mod_cache()
    escaped = _module_cache_path(PROMETHEUS_OPERATOR_MODULE)
    crds = cache / f"{escaped}@{PROMETHEUS_OPERATOR_VERSION}" / "example" / "prometheus-operator-crd"
    # Written by the go command once the zip has passed its checks: the module's h1: sum.
    ziphash = cache / "cache" / "download" / escaped / "@v" / f"{PROMETHEUS_OPERATOR_VERSION}.ziphash"
    if not ziphash.is_file() or not any(crds.glob("monitoring.coreos.com_*.yaml")):
        raise NotInstalled(PROMETHEUS_OPERATOR_TITLE)
    recorded = ziphash.read_text().strip()
    if recorded != PROMETHEUS_OPERATOR_SUM:
        raise StackError(
            f"{module} in {cache} has the sum {recorded}, not the pinned {PROMETHEUS_OPERATOR_SUM}; "
            "refusing it (`go clean -modcache` and `make deps` fetch it anew)"
        )
    return crds


def install(environ: Mapping[str, str] | None = None, *, build: bool = True) -> Installed:
    """The stack's parts: the Kafka jars, SecantusDB and Jaeger; built unless `build` is False."""
    env = os.environ if environ is None else environ
    with _file_lock(cache_dir(env) / "install.lock"):
        return Installed(
            kafka_classpath=_kafka_classpath(cache_dir(env), build),
            secantusdb_bin=secantusdb(build=build, environ=env),
            jaeger_bin=go_tool("jaeger", build=build, environ=env),
        )


# The local store's server: SecantusDB's Rust server, built from crates.io (Cargo.lock pinned by
# --locked). The crate declares rust-version 1.98, newer than any toolchain these machines get;
# it builds with the machine's Rust as it is and passes tests/store_contract, hence
# --ignore-rust-version. The Rust server rather than the Python one (PyPI secantusdb): about
# twice the writes a second, and it plans $and/$or/$ne/sorted queries onto indexes.
SECANTUSDB_CRATE = "secantus-mdb"
SECANTUSDB_VERSION = "0.5.3-beta.196"


def secantusdb(*, build: bool = False, environ: Mapping[str, str] | None = None) -> Path:
    """The SecantusDB server binary (`secantusd-rs`), built once with cargo into the data dir.

    A separate program, never linked or imported: SecantusDB is GPL-2.0-only, Chorus runs it as
    a server and talks to it over the MongoDB wire protocol only.
    """
    home = bin_dir(environ).parent / f"secantusdb-{SECANTUSDB_VERSION}"
    server = home / "bin" / "secantusd-rs"
    if server.is_file() and os.access(server, os.X_OK):
        return server
    if not build:
        raise NotInstalled("SecantusDB")
    cargo = _require("cargo", "SecantusDB's server is built from crates.io with Rust's cargo (rustup)")
    # Built beside its final place and renamed into it: an interrupted build is started again.
    partial = home.with_name(f".{home.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    _run(
        [
            cargo,
            "install",
            SECANTUSDB_CRATE,
            "--version",
            SECANTUSDB_VERSION,
            "--locked",
            "--ignore-rust-version",
            "--root",
            str(partial),
        ],
        "building SecantusDB",
        log=install_log("secantusdb", environ),
    )
    os.replace(partial, home)
    return server


# Debian packages the tests and `make image` need, by the command each provides. Installed with
# apt-get when missing (as root, or through sudo); a machine without apt is told what to install.
DEBIAN_PACKAGES: dict[str, str] = {
    # `make image` (devtools/image.py): a Debian root, packed as OCI, exported for docker/kind.
    "debootstrap": "debootstrap",
    "umoci": "umoci",
    "skopeo": "skopeo",
    # The image smoke test runs the image with runc (crun fails on cgroup v1 hybrid hosts).
    "runc": "runc",
    # The API server's store in the cluster tier (tests/cluster).
    "etcd-server": "etcd",
    # The dashboard's browser test (tests/e2e/test_dashboard.py) drives Debian's build through
    # Playwright: a browser downloaded by `playwright install` cannot be fetched here.
    "chromium": "chromium",
}


def _debian_packages() -> str:
    log = install_log("debian")
    missing = sorted({pkg for pkg, command in DEBIAN_PACKAGES.items() if shutil.which(command) is None})
    if not missing:
        return "present"
    apt = shutil.which("apt-get")
    if apt is None:
        raise StackError(f"install these packages with your package manager: {' '.join(missing)}")
    sudo: list[str] = []
    if os.geteuid() != 0:
        sudo = [_require("sudo", f"installing {' '.join(missing)} needs root")]
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    argv = [*sudo, apt, "install", "-y", "-q", "--no-install-recommends", *missing]
    try:
        _run(argv, "installing Debian packages", env=env, log=log)
    except StackError:
        # An install interrupted half-way leaves dpkg asking to be finished, and a fresh machine
        # may have stale or no package lists: finish, refresh, then try once more.
        _run([*sudo, "dpkg", "--configure", "-a"], "finishing an interrupted dpkg run", env=env, log=log)
        _run([*sudo, apt, "update", "-q"], "refreshing the Debian package lists", env=env, log=log)
        _run(argv, "installing Debian packages", env=env, log=log)
    return f"installed {' '.join(missing)}"


@dataclass(frozen=True)
class InstallStep:
    name: str  # its log is install_log(name)
    title: str
    run: Callable[[], str]  # does the work if needed; returns a word or two on what it did


def install_steps(*, test_tools: bool) -> list[InstallStep]:
    """Everything `make run` needs, and with test_tools everything `make test` needs too."""
    env = os.environ

    def classpath() -> str:
        jars = _kafka_classpath(cache_dir(env), build=True).split(os.pathsep)
        return f"{len(jars)} jars"

    def go_step(name: str) -> InstallStep:
        return InstallStep(name, GO_TOOLS[name].title, lambda: str(go_tool(name, build=True)))

    steps = [InstallStep("kafka", "Kafka jars (Maven Central)", classpath)]
    steps.append(InstallStep("secantusdb", "SecantusDB (crates.io)", lambda: str(secantusdb(build=True))))
    steps.append(go_step("jaeger"))
    steps.append(InstallStep("dashboard", "Dashboard chart library (npm)", _npm_dashboard))
    if test_tools:
        steps += [go_step(name) for name in GO_TOOLS if name != "jaeger"]
        steps.append(
            InstallStep(
                "prometheus-operator-crds",
                PROMETHEUS_OPERATOR_TITLE,
                lambda: str(prometheus_operator_crds(download=True)),
            )
        )
        steps.append(InstallStep("debian", "Debian packages", _debian_packages))
        steps.append(InstallStep("npm", "contract checkers (npm)", _npm_checkers))
    return steps


CONTRACTS_CHECKER_DIR = REPO_ROOT / "tests" / "contracts"
# The program dashboard: static files that import Chart.js from dashboard/node_modules (no build
# step); the local gateway serves the folder at /dashboard, an Ingress serves it in production.
DASHBOARD_DIR = REPO_ROOT / "dashboard"


def npm_installed_marker(folder: Path) -> Path:
    """Written into node_modules after `npm ci` of `folder` succeeded for its current lock file."""
    key = content_key(folder, [folder / "package-lock.json"])
    return folder / "node_modules" / f".chorus-installed-{key}"


def _npm_ci(folder: Path, what: str, why: str, log_name: str) -> str:
    """`npm ci` in `folder`, redone only when its lock file changes (npm caches in ~/.npm)."""
    done = npm_installed_marker(folder)
    if done.exists():
        return "cached"
    npm = _require("npm", why)
    # npm ci removes node_modules first, so an interrupted install never passes for a finished one.
    _run([npm, "ci", "--no-audit", "--no-fund"], f"npm ci of {what}", cwd=folder, log=install_log(log_name))
    done.touch()
    return "installed"


def _npm_checkers() -> str:
    return _npm_ci(
        CONTRACTS_CHECKER_DIR,
        "the contract checkers",
        "the AsyncAPI document is checked with the AsyncAPI project's parser from npm, and each"
        " OpenAPI document by generating a TypeScript SDK from it and compiling that",
        "npm",
    )


def _npm_dashboard() -> str:
    return _npm_ci(
        DASHBOARD_DIR, "the dashboard", "the dashboard's charts are Chart.js, installed from npm", "dashboard"
    )


def install_all(*, test_tools: bool) -> None:
    """Run every install step, one progress line each; the first failure names its part and log."""
    with _file_lock(cache_dir() / "install.lock"):
        for step in install_steps(test_tools=test_tools):
            began = time.monotonic()
            _progress(f"install: {step.title}...")
            try:
                outcome = step.run()
            except StackError as error:
                raise StackError(f"{step.title} could not be installed: {error}") from None
            _progress(f"install: {step.title}: ok ({time.monotonic() - began:.1f} s) {outcome}")


# --------------------------------------------------------------------------------------------
# Health checks. Each answers within about `timeout` seconds and never raises.


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def kafka_ready(port: int, timeout: float = 1.0) -> bool:
    """True when the broker answers an ApiVersions request.

    An open port is not enough: the broker accepts connections before it has caught up with the
    metadata log, and only then processes requests.
    """
    correlation_id = 0x43484F52
    client_id = b"chorus-devstack"
    # Request header v1 (api key 18 = ApiVersions, version 0) with an empty v0 body.
    request = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            if not 6 <= size <= 1 << 20:
                return False
            reply = _recv_exact(sock, size)
    except OSError:
        return False
    got_id, error_code = struct.unpack_from(">ih", reply)
    # 35 = UNSUPPORTED_VERSION still proves the broker is processing requests.
    return bool(got_id == correlation_id and error_code in (0, 35))


def _hello_document() -> bytes:
    # BSON for {"hello": 1, "$db": "admin"}, written out to keep this module stdlib-only.
    elements = b"\x10hello\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    return struct.pack("<i", 4 + len(elements) + 1) + elements + b"\x00"


def mongo_ready(port: int, timeout: float = 1.0) -> bool:
    """True when the server answers a wire-protocol `hello` (OP_MSG) with ok: 1."""
    request_id, op_msg = 0x43484F52, 2013
    body = struct.pack("<IB", 0, 0) + _hello_document()  # flag bits, then one kind-0 section
    message = struct.pack("<iiii", 16 + len(body), request_id, 0, op_msg) + body
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(message)
            length, _, response_to, opcode = struct.unpack("<iiii", _recv_exact(sock, 16))
            if not 16 < length <= 1 << 24:
                return False
            reply = _recv_exact(sock, length - 16)
    except OSError:
        return False
    ok_one = b"\x01ok\x00" + struct.pack("<d", 1.0)
    return response_to == request_id and opcode == op_msg and ok_one in reply


# No proxies: an HTTP(S)_PROXY in the environment must not intercept 127.0.0.1.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):
        return False


def port_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port (or on the wildcard address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like Java and Go servers do, so a closed socket in TIME_WAIT does not count as in use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------------------------
# The three parts


# ${name} in deploy/local templates; anything else with a dollar (like "${...}" in a comment)
# is left as it is.
_PLACEHOLDER = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")


def render_template(path: Path, **values: object) -> str:
    """Fill the ${name} placeholders of a template; one without a value raises KeyError."""
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), path.read_text())


def new_kafka_cluster_id() -> str:
    # What Kafka's Uuid.randomUuid() gives: 16 random bytes as unpadded URL-safe base64
    # (22 characters), never starting with "-", which the tools would read as an option.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


# --------------------------------------------------------------------------------------------
# Kafka security: a local CA, SCRAM users and ACLs for the SASL_SSL and mTLS listeners. Who may
# do what is generated from the topic catalog and the services' subscriptions into
# access.json (devtools/kafka_access.py, `chorus schemas`); this module only reads it.

KAFKA_ACCESS_FILE = KAFKA_DIR / "access.json"
TLS_DAYS = 3650  # a local CA: it lives as long as the state directory


def kafka_access() -> tuple[str, list[dict[str, Any]]]:
    """The administrator's name and every service principal with its ACLs (access.json)."""
    document = json.loads(KAFKA_ACCESS_FILE.read_text())
    return str(document["admin"]), list(document["principals"])


def kafka_principals() -> list[str]:
    admin, principals = kafka_access()
    return [admin, *(str(p["name"]) for p in principals)]


def make_certificates(tls_dir: Path, names: Sequence[str], *, ca_name: str = "Chorus local CA") -> None:
    """A CA, a broker certificate for 127.0.0.1 and localhost, and a client certificate
    (CN=<name>) for each name, with openssl: EC P-256 keys in PKCS#8, which both Kafka's PEM
    key store and Python's ssl module read. Idempotent: only what is missing is made, so a
    warm start costs nothing and a new principal gets its certificate from the same CA."""
    openssl = _require("openssl", "the local Kafka broker's TLS certificates are made with openssl")
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = tls_dir / "ca.key", tls_dir / "ca.crt"
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    if not ca_crt.exists():
        _run(
            [openssl, "req", "-x509", *new_key, "-keyout", str(ca_key), "-out", str(ca_crt),
             "-days", str(TLS_DAYS), "-subj", f"/CN={ca_name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            "making the local Kafka CA",
        )  # fmt: skip
    leaves = {"broker": "subjectAltName=IP:127.0.0.1,DNS:localhost"} | {n: "" for n in names}
    for name, extension in leaves.items():
        key, crt = tls_dir / f"{name}.key", tls_dir / f"{name}.crt"
        if crt.exists():
            continue
        csr = tls_dir / f"{name}.csr"
        _run(
            [openssl, "req", "-new", *new_key, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}"],
            f"making the Kafka key of {name}",
        )
        ext_file = tls_dir / f"{name}.ext"
        ext_file.write_text(f"{extension}\n" if extension else "basicConstraints=CA:FALSE\n")
        _run(
            [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
             "-set_serial", str(secrets.randbits(63)), "-days", str(TLS_DAYS), "-extfile", str(ext_file),
             "-out", str(crt)],
            f"signing the Kafka certificate of {name}",
        )  # fmt: skip
        csr.unlink()
        ext_file.unlink()
    broker_pem = tls_dir / "broker.pem"
    if not broker_pem.exists():
        # Kafka's PEM key store: the private key, then the certificate chain.
        broker_pem.write_text((tls_dir / "broker.key").read_text() + (tls_dir / "broker.crt").read_text())


def _kafka_users(config: StackConfig) -> dict[str, str]:
    """A SCRAM password per principal, made once and kept in the state directory."""
    path = config.kafka_users_file
    users: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in kafka_principals() if name not in users]
    if missing:
        users |= {name: secrets.token_urlsafe(24) for name in missing}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(users, indent=2) + "\n")
        path.chmod(0o600)
    return users


# Kafka's protocol codes (org.apache.kafka.common.acl / resource).
_RESOURCE_TYPES = {"topic": 2, "group": 3}
_OPERATIONS = {"Read": 3, "Write": 4, "Describe": 8}
_PATTERN_LITERAL, _PERMISSION_ALLOW = 3, 3


def _kafka_string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def create_acls_request(principals: Sequence[Mapping[str, Any]], correlation_id: int) -> bytes:
    """A CreateAcls v1 request (with its size prefix) allowing every ACL of access.json."""
    creations = []
    for principal in principals:
        for acl in principal["acls"]:
            for operation in acl["operations"]:
                creations.append(
                    struct.pack(">b", _RESOURCE_TYPES[acl["resource"]])
                    + _kafka_string(acl["name"])
                    + struct.pack(">b", _PATTERN_LITERAL)
                    + _kafka_string(f"User:{principal['name']}")
                    + _kafka_string("*")
                    + struct.pack(">bb", _OPERATIONS[operation], _PERMISSION_ALLOW)
                )
    header = struct.pack(">hhi", 30, 1, correlation_id) + _kafka_string("chorus-devstack")
    body = struct.pack(">i", len(creations)) + b"".join(creations)
    return struct.pack(">i", len(header) + len(body)) + header + body


def apply_kafka_acls(config: StackConfig, timeout: float = 10.0) -> None:
    """Allow each service principal what access.json says, over the plain listener (whose
    ANONYMOUS principal is a super user of the local broker only). Creating an ACL that exists
    changes nothing, so this runs at every start."""
    _, principals = kafka_access()
    correlation_id = 0x41434C53
    request = create_acls_request(principals, correlation_id)
    try:
        with socket.create_connection((HOST, config.kafka_port), timeout=timeout) as sock:
            sock.sendall(request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            reply = _recv_exact(sock, size)
    except OSError as exc:
        raise StackError(f"applying the Kafka ACLs failed: {exc}") from exc
    got_id, _throttle, count = struct.unpack_from(">iii", reply)
    offset, errors = 12, []
    for _ in range(count):
        (code,) = struct.unpack_from(">h", reply, offset)
        (length,) = struct.unpack_from(">h", reply, offset + 2)
        offset += 4
        message = reply[offset : offset + length].decode() if length > 0 else ""
        offset += max(length, 0)
        if code:
            errors.append(f"error {code}: {message}")
    if got_id != correlation_id or errors:
        raise StackError("the broker refused some Kafka ACLs:\n" + "\n".join(sorted(set(errors))))


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def _kafka_command(config: StackConfig, installed: Installed) -> Launch:
    java = _require("java", "the local Kafka broker needs a Java 17+ runtime")
    home = config.part_dir("kafka")
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    admin = kafka_principals()[0]
    make_certificates(config.kafka_tls_dir, kafka_principals())
    properties = home / "server.properties"
    properties.write_text(
        render_template(
            KAFKA_DIR / "server.properties.template",
            kafka_port=config.kafka_port,
            controller_port=config.kafka_controller_port,
            sasl_port=config.kafka_sasl_port,
            tls_port=config.kafka_tls_port,
            tls_dir=config.kafka_tls_dir,
            admin=admin,
            log_dir=data,
        )
    )
    # The classpath is long; passing it through the environment keeps `ps` readable.
    env = {"CLASSPATH": installed.kafka_classpath}
    if not (data / "meta.properties").exists():
        # KRaft refuses to start on unformatted storage. The cluster id is kept so that a
        # re-format (after someone emptied data/) matches what the state dir says.
        id_file = home / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_kafka_cluster_id() + "\n")
        # SCRAM credentials live in the metadata log; formatting is when they are written.
        scram = [
            arg
            for name, password in _kafka_users(config).items()
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
        ]
        _run(
            [
                java,
                *config.kafka_jvm_opts.split(),
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                "-t",
                id_file.read_text().strip(),
                "-c",
                str(properties),
                *scram,
            ],
            "formatting the Kafka storage",
            env=env,
        )
    else:
        path = config.kafka_users_file
        known = json.loads(path.read_text()) if path.exists() else {}
        missing = [name for name in kafka_principals() if name not in known]
        if missing:
            _progress(
                f"note: the Kafka storage was formatted without SCRAM users for {', '.join(missing)},"
                " so they cannot log in on the SASL_SSL listener; `chorus stack reset` (which deletes"
                " the stack's data) adds them"
            )
    argv = [
        java,
        *config.kafka_jvm_opts.split(),
        f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.xml'}",
        "kafka.Kafka",
        str(properties),
    ]
    return Launch(argv, env)


def _secantusdb_command(config: StackConfig, installed: Installed) -> Launch:
    home = config.part_dir("secantusdb")
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    # An explicit config file: otherwise a secantusd.toml in the user's home or /etc would be
    # picked up and could change the local stack. It holds only what has no flag.
    settings = home / "secantusd.toml"
    settings.write_text(
        "# Chorus local stack: the other settings are command-line flags (devtools/local_stack.py).\n"
        f"[storage]\nttl_sweep_seconds = {TTL_PASS_S}\n"
    )
    argv = [
        str(installed.secantusdb_bin),
        "--config",
        str(settings),
        "--host",
        HOST,
        "--port",
        str(config.mongo_port),
        "--storage-path",
        str(data),
        "--log-level",
        "WARNING",
        "--cache-size",
        "256M",
        # Its write-ahead log file is allocated in full: 16 MB, not 128, for a store per test run.
        "--log-file-max",
        "16MB",
        # Acknowledged writes survive kill -9, as on MongoDB (journaled, w: majority). Without
        # it SecantusDB syncs its log only for j: true writes and lost ~2% of them (measured).
        "--sync-on-commit",
    ]
    return Launch(argv)


def _jaeger_command(config: StackConfig, installed: Installed) -> Launch:
    home = config.part_dir("jaeger")
    home.mkdir(parents=True, exist_ok=True)
    config_file = home / "config.yaml"
    config_file.write_text(
        render_template(
            JAEGER_DIR / "config.yaml.template",
            otlp_grpc_port=config.otlp_grpc_port,
            otlp_http_port=config.otlp_http_port,
            ui_port=config.jaeger_ui_port,
        )
    )
    return Launch([str(installed.jaeger_bin), "--config", str(config_file)])


@dataclass(frozen=True)
class Part:
    name: str  # its directory, log and pid file name
    title: str
    port_vars: tuple[str, ...]  # every port it listens on, by the variable that sets it
    command: Callable[[StackConfig, Installed], Launch]  # prepares its files, says how to run it
    healthy: Callable[[StackConfig], bool]
    # Run once it is healthy, at every start (also when it was already running): idempotent.
    after_start: Callable[[StackConfig], None] | None = None

    def ports(self, config: StackConfig) -> dict[str, int]:
        return {var: config.ports()[var] for var in self.port_vars}


# Kafka last: formatting its storage costs a JVM start, and the others boot meanwhile.
PARTS: tuple[Part, ...] = (
    Part(
        name="secantusdb",
        title="SecantusDB",
        port_vars=("CHORUS_MONGO_PORT",),
        command=_secantusdb_command,
        healthy=lambda c: mongo_ready(c.mongo_port),
    ),
    Part(
        name="jaeger",
        title="Jaeger",
        port_vars=("CHORUS_OTLP_GRPC_PORT", "CHORUS_OTLP_HTTP_PORT", "CHORUS_JAEGER_UI_PORT"),
        command=_jaeger_command,
        healthy=lambda c: http_ok(f"{c.jaeger_query_url}/api/services"),
    ),
    Part(
        name="kafka",
        title="Kafka",
        port_vars=(
            "CHORUS_KAFKA_PORT",
            "CHORUS_KAFKA_CONTROLLER_PORT",
            "CHORUS_KAFKA_SASL_PORT",
            "CHORUS_KAFKA_TLS_PORT",
        ),
        command=_kafka_command,
        healthy=lambda c: kafka_ready(c.kafka_port),
        after_start=apply_kafka_acls,
    ),
)


# --------------------------------------------------------------------------------------------
# Processes. Each part runs in its own session (so its own process group): stopping it signals
# the whole group, and a Ctrl-C in the terminal that ran `up` does not reach it.

# Processes started by this Python process: polling them reaps them, so a stopped part does not
# linger as a zombie that still looks alive.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    return stat is None or stat[0] != "Z"


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        pass
    try:  # no /proc (macOS)
        return subprocess.run(
            ["/bin/ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return ""


def _running_pid(config: StackConfig, part: Part) -> int | None:
    """The pid in the part's pid file, if that process is alive and is this stack's part.

    A pid file can outlive its process and the pid be reused; every part's command line names a
    file under its own state directory, which tells our process from a stranger.
    """
    try:
        pid = int(config.pid_file(part.name).read_text().strip())
    except (OSError, ValueError):
        return None
    marker = f"{config.part_dir(part.name)}{os.sep}"
    if _alive(pid) and marker in _command_line(pid):
        return pid
    return None


def _group_alive(pgid: int) -> bool:
    if pgid in _CHILDREN:
        _CHILDREN[pgid].poll()
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    # killpg also succeeds while only zombies are left; look for a live member.
    for entry in proc.iterdir():
        stat = _proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and int(stat[2]) == pgid and stat[0] != "Z":
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_groups_gone(pgids: Iterable[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    left = [p for p in pgids if _group_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if _group_alive(p)]
    return left


def _stop_parts(config: StackConfig, parts: Iterable[Part], grace_s: float = STOP_GRACE) -> list[str]:
    """SIGTERM every running part at once, SIGKILL what is left after grace_s."""
    parts = list(parts)
    running = {part.title: pid for part in parts if (pid := _running_pid(config, part)) is not None}
    for pid in running.values():
        _signal_group(pid, signal.SIGTERM)
    stubborn = _wait_groups_gone(running.values(), grace_s)
    for pid in stubborn:
        _signal_group(pid, signal.SIGKILL)
    survivors = _wait_groups_gone(stubborn, 5.0)
    for part in parts:
        config.pid_file(part.name).unlink(missing_ok=True)
    for pid in running.values():
        child = _CHILDREN.pop(pid, None)
        if child is not None and pid not in survivors:
            child.wait(timeout=5)  # it has exited: reap it, or it lingers as a zombie
    if survivors:
        raise StackError(f"process groups {survivors} survived SIGKILL")
    return list(running)


def _launch(config: StackConfig, part: Part, launch: Launch) -> int:
    log = config.log_file(part.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    if log.exists():
        os.replace(log, log.with_name(log.name + ".1"))  # keep the previous run's log
    config.pid_file(part.name).parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            launch.argv,
            cwd=config.part_dir(part.name),
            env={**os.environ, **launch.env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    config.pid_file(part.name).write_text(f"{process.pid}\n")
    return process.pid


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _failure(config: StackConfig, part: Part, reason: str) -> str:
    log = config.log_file(part.name)
    tail = _log_tail(log)
    return f"{part.title} {reason}; log: {log}\n--- last {LOG_TAIL_LINES} lines of {log.name} ---\n{tail}"


def _wait_healthy(
    config: StackConfig,
    parts: Iterable[Part],
    pids: Mapping[str, int],
    since: Mapping[str, float],
    timeout: float,
) -> None:
    """Poll the parts until healthy; each gets `timeout` seconds from its own launch."""
    pending = list(parts)
    while pending:
        for part in list(pending):
            pid, elapsed = pids[part.name], time.monotonic() - since[part.name]
            if not _alive(pid):
                child = _CHILDREN.get(pid)
                code = "" if child is None else f" with code {child.returncode}"
                raise StackError(_failure(config, part, f"exited{code} while starting"))
            if part.healthy(config):
                pending.remove(part)
                _progress(f"{part.title} is up ({elapsed:.1f} s)")
            elif elapsed > timeout:
                raise StackError(_failure(config, part, f"was not healthy after {timeout:.0f} s"))
        if pending:
            time.sleep(0.2)


def claim_state_dir(config: StackConfig) -> Path:
    """Create the state directory (marked as ours), or check that an existing one is ours."""
    state = config.state_dir
    if state.is_dir() and any(state.iterdir()) and not (state / STATE_MARKER).exists():
        # Never adopt (and later reset, i.e. delete) a directory we did not create.
        raise StackError(
            f"CHORUS_STATE_DIR={state} exists and was not made by the chorus dev stack; "
            "choose a new or empty directory"
        )
    state.mkdir(parents=True, exist_ok=True)
    (state / STATE_MARKER).touch()
    return state


@contextlib.contextmanager
def _state_lock(config: StackConfig) -> Iterator[None]:
    with _file_lock(claim_state_dir(config) / ".lock"):
        yield


# --------------------------------------------------------------------------------------------
# The public operations


def start(
    config: StackConfig | None = None, *, timeout: float = DEFAULT_TIMEOUT, build: bool = True
) -> StackConfig:
    """Install if needed, start the parts not already running, wait until all are healthy.

    With build=False nothing is built: a missing part raises NotInstalled, naming the command.

    Idempotent: a part whose pid file names a live process of this stack is reused. On failure
    the parts this call started are stopped again and StackError names the culprit and its log.
    """
    config = config or StackConfig.from_env()
    _start(config, PARTS, timeout, build)
    return config


def start_part(
    name: str, config: StackConfig | None = None, *, timeout: float = DEFAULT_TIMEOUT, build: bool = False
) -> int:
    """Start one part ("secantusdb", "jaeger" or "kafka") unless it runs; wait until healthy; its pid.

    For tests that take one part down and bring it back (e.g. a Kafka outage) on a stack of their
    own; the other parts are left as they are.
    """
    config = config or StackConfig.from_env()
    part = _part(name)
    return _start(config, [part], timeout, build)[part.name]


def _part(name: str) -> Part:
    [part] = [p for p in PARTS if p.name == name]
    return part


def _start(config: StackConfig, parts: Sequence[Part], timeout: float, build: bool) -> dict[str, int]:
    """start() for some parts; returns their pids."""
    installed = install(build=build)
    with _state_lock(config):
        pids = {part.name: _running_pid(config, part) for part in parts}
        busy = [
            f"  {part.title}: 127.0.0.1:{port} ({var}) is in use by another process"
            " (or by a connection that closed moments ago)"
            for part in parts
            if pids[part.name] is None
            for var, port in part.ports(config).items()
            if not port_free(port)
        ]
        if busy:
            raise StackError(
                "cannot start the local stack:\n"
                + "\n".join(busy)
                + "\nStop that process, or give this stack other ports with the variables named."
            )
        launched: list[Part] = []
        running: dict[str, int] = {}
        since: dict[str, float] = {}
        try:
            for part in parts:
                pid = pids[part.name]
                if pid is None:
                    launch = part.command(config, installed)
                    _progress(f"starting {part.title}")
                    pid = _launch(config, part, launch)
                    launched.append(part)
                running[part.name], since[part.name] = pid, time.monotonic()
            _wait_healthy(config, parts, running, since, timeout)
            for part in parts:
                if part.after_start is not None:
                    part.after_start(config)
        except BaseException:
            _stop_parts(config, launched)
            raise
    return running


def stop(
    config: StackConfig | None = None, *, names: Iterable[str] | None = None, grace_s: float = STOP_GRACE
) -> list[str]:
    """Stop the stack's parts (all, or those named), at once; the titles of those that were running.

    Each gets grace_s seconds after SIGTERM, then SIGKILL.
    """
    config = config or StackConfig.from_env()
    if not config.state_dir.is_dir():
        return []
    parts = PARTS if names is None else [_part(name) for name in names]
    with _state_lock(config):
        return _stop_parts(config, parts, grace_s)


@dataclass(frozen=True)
class PartStatus:
    name: str
    title: str
    pid: int | None
    healthy: bool
    note: str  # e.g. "port 9092 in use by another process"

    @property
    def state(self) -> str:
        if self.pid is None:
            return "stopped"
        return "healthy" if self.healthy else "unhealthy"


def status(config: StackConfig | None = None) -> list[PartStatus]:
    config = config or StackConfig.from_env()
    result = []
    for part in PARTS:
        pid = _running_pid(config, part)
        note = ""
        if pid is None:
            busy = [f"{port}" for port in part.ports(config).values() if not port_free(port)]
            note = f"port {', '.join(busy)} in use by another process" if busy else ""
        result.append(PartStatus(part.name, part.title, pid, pid is not None and part.healthy(config), note))
    return result


def reset(config: StackConfig | None = None) -> None:
    """Stop the stack and delete its state directory (all Kafka and SecantusDB data, logs)."""
    config = config or StackConfig.from_env()
    if not config.state_dir.exists():
        return
    with _state_lock(config):
        _stop_parts(config, PARTS)
        shutil.rmtree(config.state_dir)


def stop_part(name: str, config: StackConfig | None = None) -> bool:
    """Stop one part of the stack; True when it was running."""
    config = config or StackConfig.from_env()
    part = _part(name)
    if not config.state_dir.is_dir():
        return False
    with _state_lock(config):
        return bool(_stop_parts(config, [part]))


# --------------------------------------------------------------------------------------------
# CLI


def _print_urls(config: StackConfig) -> None:
    rows = [
        ("Kafka bootstrap", f"{config.kafka_bootstrap} (plain, local development only)"),
        ("Kafka SASL_SSL", f"{config.kafka_sasl_bootstrap} (SCRAM users in {config.kafka_users_file})"),
        (
            "Kafka mTLS",
            f"{config.kafka_tls_bootstrap} (CA and client certificates in {config.kafka_tls_dir})",
        ),
        ("MongoDB URL", config.mongo_url),
        ("Jaeger UI", config.jaeger_query_url),
        ("OTLP HTTP", config.otlp_http_endpoint),
        ("OTLP gRPC", config.otlp_grpc_endpoint),
        ("state and logs", str(config.state_dir)),
    ]
    for label, value in rows:
        print(f"  {label:<16} {value}")
    print("Environment for services:")
    for key, value in config.env().items():
        print(f"  export {key}={value}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.local_stack",
        description="The Chorus local stack: Kafka, SecantusDB and Jaeger.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the stack (reusing running parts) and print its URLs")
    up.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds for each part to become healthy"
    )
    commands.add_parser("down", help="stop every process of the stack")
    commands.add_parser("status", help="show each part; exit code 1 unless all are healthy")
    commands.add_parser("reset", help="stop the stack and delete its state directory")
    install_cmd = commands.add_parser(
        "install", help="install what `make run` needs (the Kafka jars, SecantusDB, Jaeger); idempotent"
    )
    install_cmd.add_argument(
        "--test-tools", action="store_true", help="also what `make test` needs (kustomize, kube-apiserver...)"
    )
    commands.add_parser("env", help="print `export` lines for services")
    args = parser.parse_args(argv)

    try:
        if args.command == "install":
            install_all(test_tools=args.test_tools)
            return 0
        config = StackConfig.from_env()
        if args.command == "up":
            started = time.monotonic()
            start(config, timeout=args.timeout)
            print(f"Chorus local stack is up ({time.monotonic() - started:.1f} s)")
            _print_urls(config)
        elif args.command == "down":
            stopped = stop(config)
            print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        elif args.command == "status":
            parts = status(config)
            for part in parts:
                pid = f"pid {part.pid}" if part.pid else ""
                print(f"  {part.title:<9} {part.state:<10} {pid:<11} {part.note}".rstrip())
            return 0 if all(part.healthy for part in parts) else 1
        elif args.command == "reset":
            reset(config)
            print(f"stopped and deleted {config.state_dir}")
        elif args.command == "env":
            for key, value in config.env().items():
                print(f"export {key}={value}")
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
