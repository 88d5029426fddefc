"""A real Kubernetes control plane for tests: etcd and kube-apiserver as child processes.

No controllers, no scheduler, no kubelet: objects are stored and admitted (schemas, CRDs,
admission plugins such as PodSecurity) but nothing acts on them. That is what checking manifests
needs, and it starts in seconds. kube-apiserver is built by `make deps` (local_stack.GO_TOOLS) and
etcd comes from Debian (`etcd-server`); both listen on free ports of 127.0.0.1 and keep their
state in a temporary directory, so runs never meet each other or a real cluster.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devtools import local_stack
from tests.ports import free_port

HOST = "127.0.0.1"
START_TIMEOUT = 90.0  # seconds for etcd, then kube-apiserver, to answer
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
KUBECTL_TIMEOUT = 60.0


class KubectlError(AssertionError):
    """kubectl exited non-zero; the message carries its command line and output."""

    def __init__(self, argv: Sequence[str], output: str) -> None:
        super().__init__(f"kubectl {' '.join(argv)} failed:\n{output}")
        self.output = output


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: if pytest is killed outright (no finally runs), the kernel sends SIGKILL
    # to the child, so no etcd or kube-apiserver outlives the test run.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def serving_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """A self-signed TLS certificate and its key for host (an IP address or a DNS name)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{host}.crt", directory / f"{host}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_private_pem(key))
    return cert_file, key_file


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    log_handle: IO[bytes]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.process.returncode}; the end of {self.log}:\n"
                f"{_tail(self.log)}"
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_handle.close()


def _spawn(name: str, argv: Sequence[str], workdir: Path) -> _Child:
    log = workdir / f"{name}.log"
    handle = log.open("wb")
    try:
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for pytest does not race our own stop
            preexec_fn=_die_with_parent,
        )
    except BaseException:
        handle.close()
        raise
    return _Child(name, process, log, handle)


@dataclass(frozen=True)
class ApiServer:
    """A running kube-apiserver, reachable as cluster admin through `kubeconfig`."""

    url: str
    kubeconfig: Path
    workdir: Path

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run our kubectl (the server's version) against this server only (never ~/.kube/config)."""
        kubectl = local_stack.go_tool("kubectl")  # raises NotInstalled: run `make deps`
        argv = [f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.workdir / 'kubectl-cache'}", *args]
        result = subprocess.run(
            [kubectl, *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=KUBECTL_TIMEOUT,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )
        if check and result.returncode != 0:
            raise KubectlError(argv, result.stdout + result.stderr)
        return result

    def apply(
        self, objects: Sequence[dict[str, Any]], *, dry_run: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Server-side apply of objects, or only its server-side dry run (every check, nothing stored)."""
        args = ["apply", "--server-side", "-f", "-"]
        if dry_run:
            args.append("--dry-run=server")
        return self.kubectl(*args, stdin=to_yaml(objects), check=check)

    def wait_established(self, *crds: str, timeout: float = KUBECTL_TIMEOUT) -> None:
        """Wait until each CRD (`crd/<name>`, or `crd` for all) serves its kind.

        Not `kubectl wait --for=condition=Established`: it fails at once, rather than waiting, on a
        CRD the server has not yet given any condition ("status.conditions accessor error").
        """
        deadline = time.monotonic() + timeout
        while True:
            listed = json.loads(self.kubectl("get", *crds, "-o", "json").stdout)
            items = listed.get("items", [listed])
            waiting = [crd["metadata"]["name"] for crd in items if not _established(crd)]
            if items and not waiting:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"CRDs not established after {timeout:.0f} s: {waiting or crds}")
            time.sleep(0.2)

    def create_dry_run(self, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """Ask the server to create obj without storing it: every admission check runs."""
        return self.kubectl(
            "create", "--dry-run=server", "-o", "name", "-f", "-", stdin=to_yaml([obj]), check=False
        )


def _established(crd: dict[str, Any]) -> bool:
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def to_yaml(objects: Sequence[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def _wait_until(what: str, ready: Any, child: _Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        child.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what} was not ready after {timeout:.0f} s; the end of {child.log}:\n{_tail(child.log)}"
            )
        time.sleep(0.2)


def _etcd_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310 - loopback
            return bool(json.load(response).get("health") == "true")
    except (OSError, ValueError):
        return False


def _apiserver_ready(url: str, context: ssl.SSLContext, token: str) -> bool:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{url}/readyz", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except (OSError, urllib.error.HTTPError):
        return False


def _kubeconfig(url: str, cert_file: Path, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": url,
                    "certificate-authority-data": base64.b64encode(cert_file.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        "current-context": "test",
    }


@contextlib.contextmanager
def running_apiserver(workdir: Path) -> Iterator[ApiServer]:
    """etcd and kube-apiserver on free loopback ports, state in workdir; both stopped at the end."""
    # Looked up first, so a machine without them fails before anything starts.
    apiserver_bin = local_stack.go_tool("kube-apiserver")  # raises NotInstalled: run `make deps`
    etcd_bin = shutil.which("etcd")
    if etcd_bin is None:
        raise local_stack.NotInstalled("etcd (Debian package etcd-server)")

    workdir.mkdir(parents=True, exist_ok=True)
    pki = workdir / "pki"
    pki.mkdir()
    # The API server's own certificate; the kubeconfig trusts exactly this one.
    cert_file, key_file = serving_certificate(pki, HOST)
    # One RSA key signs service-account tokens and, read as a public key, verifies them.
    sa_key = pki / "service-account.key"
    sa_key.write_bytes(_private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    # A static token of a member of system:masters: cluster admin under RBAC.
    token = secrets.token_urlsafe(32)
    (pki / "tokens.csv").write_text(f"{token},chorus-test-admin,chorus-test-admin,system:masters\n")

    children: list[_Child] = []
    try:
        client_port, peer_port = free_port(), free_port()
        etcd_url = f"http://{HOST}:{client_port}"
        etcd = _spawn(
            "etcd",
            [
                etcd_bin,
                "--name=test",
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://{HOST}:{peer_port}",
                f"--initial-advertise-peer-urls=http://{HOST}:{peer_port}",
                f"--initial-cluster=test=http://{HOST}:{peer_port}",
                "--log-level=warn",
            ],
            workdir,
        )
        children.append(etcd)
        _wait_until("etcd", lambda: _etcd_healthy(etcd_url), etcd, START_TIMEOUT)

        port = free_port()
        url = f"https://{HOST}:{port}"
        apiserver = _spawn(
            "kube-apiserver",
            [
                str(apiserver_bin),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={port}",
                f"--tls-cert-file={cert_file}",
                f"--tls-private-key-file={key_file}",
                f"--cert-dir={pki}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                # PodSecurity is on by default; named so that this tier's purpose does not hang on
                # a default. NamespaceLifecycle refuses objects in a namespace that does not exist.
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity",
                # As real clusters run (kubeadm sets it): a privileged pod is then refused by
                # PodSecurity, the namespace's policy, and not by this server-wide switch.
                "--allow-privileged=true",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-cluster-ip-range=10.96.0.0/16",
                # No node will ever run here: the `kubernetes` Service needs no endpoints, and a
                # loopback endpoint would be refused anyway.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=0",
            ],
            workdir,
        )
        children.append(apiserver)
        context = ssl.create_default_context(cafile=str(cert_file))
        _wait_until("kube-apiserver", lambda: _apiserver_ready(url, context, token), apiserver, START_TIMEOUT)

        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(_kubeconfig(url, cert_file, token)))
        kubeconfig.chmod(0o600)
        yield ApiServer(url=url, kubeconfig=kubeconfig, workdir=workdir)
    finally:
        # The API server first: it would only log errors while etcd is gone.
        for child in reversed(children):
            child.stop()
