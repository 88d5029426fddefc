"""The OCI image that `make image` built, run with runc against the test stack.

Never builds: `make test` builds the image before pytest starts. Each service runs from the
image as Kubernetes runs it (deploy/k8s): uid 10001 from the image, a read-only root, no
capabilities, tmpfs at /tmp and at the spool.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import image, local_stack
from devtools.cli import serve_argv
from shared.serve import SERVICE_PORTS
from shared.settings import ChorusSettings
from tests.ports import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="runc runs containers as root here"),
]

READY_TIMEOUT_S = 45.0
# Run inside a container: tries to create the file named by its argument, prints what happened.
WRITE_PROBE = """
import sys
try:
    open(sys.argv[1], "w")
except OSError as error:
    print(error.strerror)
else:
    print("written")
"""


@pytest.fixture(scope="module")
def built() -> tuple[Path, str]:
    try:
        return image.current_image()
    except image.NotBuilt as missing:
        pytest.fail(str(missing))


@pytest.fixture(scope="module")
def bundle(built: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The image unpacked once (rootfs and the config.json umoci derives from the image)."""
    layout, tag = built
    target = tmp_path_factory.mktemp("image") / "bundle"
    umoci = shutil.which("umoci")
    if umoci is None:
        pytest.fail("umoci is not installed; run `make deps`")
    subprocess.run(
        [umoci, "unpack", "--image", f"{layout}:{tag}", str(target)], check=True, capture_output=True
    )
    try:
        yield target
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_the_image_runs_the_command_make_run_uses(built: tuple[Path, str], bundle: Path) -> None:
    layout, tag = built
    config = image.image_config(layout, tag)
    local = serve_argv("content", host="0.0.0.0", port=8001)  # noqa: S104 - what deploy/k8s passes

    # `make run` starts `python -m shared.serve ARGS`; the image starts `chorus-serve ARGS`, whose
    # script calls the same main(). So the manifests' args are serve_argv's after `-m shared.serve`.
    assert local[:3] == [sys.executable, "-m", "shared.serve"]
    assert config["Entrypoint"] == [image.SERVE_SCRIPT]
    script = (bundle / "rootfs" / image.SERVE_SCRIPT.lstrip("/")).read_text()
    assert "from shared.serve import main" in script
    assert script == image.serve_script()
    assert config["User"] == f"{image.UID}:{image.GID}"


def test_the_image_holds_no_compilers_package_caches_or_secrets(bundle: Path) -> None:
    root = bundle / "rootfs"
    programs = {
        path.name for directory in ("usr/bin", "usr/local/bin") for path in (root / directory).iterdir()
    }
    compilers = {
        name for name in programs if re.fullmatch(r"(.*-)?(gcc|g\+\+|cc|c\+\+|clang|tcc|cpp)(-[\d.]+)?", name)
    }
    assert compilers == set()
    assert not (root / "usr/lib/gcc").exists()
    assert not list((root / "var/lib/apt/lists").iterdir())
    assert not list((root / "var/cache/apt").iterdir())
    assert not list(root.rglob("*.deb"))
    assert not (root / "debootstrap").exists()
    assert not (root / "root/.cache").exists()
    assert not list(root.glob("**/site-packages/pip")) and not list(root.glob("usr/lib/python3*/**/pip"))
    # Secrets: no private keys (CA bundles are fine), no SSH keys, dotenv files or git metadata;
    # no account has a password.
    private_keys = [
        path.relative_to(root).as_posix()
        for pattern in ("*.pem", "*.key", "*.crt")
        for path in root.rglob(pattern)
        if path.is_file() and not path.is_symlink() and b"PRIVATE KEY-----" in path.read_bytes()
    ]
    assert private_keys == []
    named_like_secrets = [
        path.relative_to(root).as_posix()
        for pattern in ("id_rsa*", "id_ecdsa*", "id_ed25519*", ".env", "*.env", ".git", ".netrc")
        for path in root.rglob(pattern)
    ]
    assert named_like_secrets == []
    for line in (root / "etc/shadow").read_text().splitlines():
        assert line.split(":")[1] in ("*", "!", "!*"), line.split(":")[0]
    # The project's code: its .py files and their compiled .pyc, nothing else.
    site = root / image.SITE_PACKAGES.lstrip("/")
    for package in image.APP_PACKAGES:
        assert {path.suffix for path in (site / package).rglob("*") if path.is_file()} == {".py", ".pyc"}
    # The dev tooling stays out: production serves with shared/serve.py alone.
    assert not (site / "devtools").exists()
    assert sorted(path.name for path in (root / image.VENV.lstrip("/") / "bin").iterdir()) == [
        "chorus-serve",
        "python",
        "python3",
    ]


class Containers:
    """runc containers started by one test; delete_all() stops and removes every one."""

    def __init__(self, runc: str, base: Path) -> None:
        self.runc = runc
        self.base = base
        self.ids: list[str] = []

    def run(self, name: str, config: dict[str, object]) -> str:
        container = f"chorus-image-test-{os.getpid()}-{name}"
        directory = self.base / name
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps(config))
        with open(directory / "output.log", "wb") as log:
            # Detached: runc returns once the process runs; its output goes to the log.
            subprocess.run(
                [self.runc, "run", "--detach", "--bundle", str(directory), container],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                check=True,
                timeout=30,
            )
        self.ids.append(container)
        return container

    def log(self, name: str) -> str:
        return (self.base / name / "output.log").read_text(errors="replace")[-3000:]

    def state(self, container: str) -> dict[str, object]:
        result = subprocess.run([self.runc, "state", container], capture_output=True, text=True, check=True)
        state: dict[str, object] = json.loads(result.stdout)
        return state

    def exec(self, container: str, *argv: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        options = ["--user", user] if user else []
        return subprocess.run(
            [self.runc, "exec", *options, container, *argv], capture_output=True, text=True, timeout=30
        )

    def delete_all(self) -> None:
        for container in self.ids:
            subprocess.run([self.runc, "kill", container, "TERM"], capture_output=True)
        deadline = time.monotonic() + 10
        for container in self.ids:
            while time.monotonic() < deadline:
                result = subprocess.run([self.runc, "state", container], capture_output=True, text=True)
                if result.returncode != 0 or json.loads(result.stdout)["status"] == "stopped":
                    break
                time.sleep(0.2)
            subprocess.run([self.runc, "delete", "--force", container], capture_output=True)


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def test_every_service_runs_from_the_image_read_only_as_uid_10001(
    built: tuple[Path, str],
    bundle: Path,
    stack: local_stack.StackConfig,
    settings: ChorusSettings,
    tmp_path: Path,
) -> None:
    runc = shutil.which("runc")
    if runc is None:
        pytest.fail("runc is not installed; run `make deps`")
    layout, tag = built
    entrypoint = image.image_config(layout, tag)["Entrypoint"]
    unpacked = json.loads((bundle / "config.json").read_text())
    ports = {name: free_port() for name in SERVICE_PORTS}
    env = {
        **stack.env(),
        "CHORUS_MONGO_DB_PREFIX": f"{settings.mongo_db_prefix}img",
        # The session's vault: what the test's own producers seal, these processes reveal.
        "CHORUS_VAULT_DATABASE": settings.vault_database_name(),
        "CHORUS_CONSUMER_GROUP_PREFIX": f"{settings.consumer_group_prefix}img",
        "CHORUS_PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['sharing']}",
    }
    containers = Containers(runc, tmp_path)
    try:
        started = {}
        for name, port in ports.items():
            args = [*entrypoint, *serve_argv(name, host="127.0.0.1", port=port)[3:]]
            config = image.runtime_config(unpacked, rootfs=bundle / "rootfs", args=args, env=env)
            started[name] = containers.run(name, config)

        deadline = time.monotonic() + READY_TIMEOUT_S
        for name, port in ports.items():
            while _status(f"http://127.0.0.1:{port}/readyz") != 200:
                if containers.state(started[name])["status"] != "running" or time.monotonic() > deadline:
                    raise AssertionError(f"{name} did not become ready; its output:\n{containers.log(name)}")
                time.sleep(0.3)
            assert _status(f"http://127.0.0.1:{port}/healthz") == 200

        for name, container in started.items():
            pid = containers.state(container)["pid"]
            status = Path(f"/proc/{pid}/status").read_text()
            assert re.search(r"^Uid:\s+10001\s+10001\s+10001\s+10001$", status, re.MULTILINE), name
            assert re.search(r"^Gid:\s+10001\s+10001\s+10001\s+10001$", status, re.MULTILINE), name
            assert f"chorus-serve\0{name}\0" in Path(f"/proc/{pid}/cmdline").read_text()

        # Nothing can write to the root filesystem, not even root inside the container; /tmp is
        # the only scratch space (a volume in Kubernetes).
        python = f"{image.VENV}/bin/python"
        container = started["content"]
        as_service = containers.exec(container, python, "-c", WRITE_PROBE, "/chorus-write-probe")
        as_root = containers.exec(container, python, "-c", WRITE_PROBE, "/chorus-write-probe", user="0:0")
        in_tmp = containers.exec(container, python, "-c", WRITE_PROBE, "/tmp/probe")  # noqa: S108 - inside
        assert as_service.stdout.strip() == "Read-only file system", as_service
        assert as_root.stdout.strip() == "Read-only file system", as_root
        assert in_tmp.stdout.strip() == "written", in_tmp

        # The runbook's rebuild Job runs `python -m services.metrics.rebuild` from this image; the
        # dev tooling is not in it.
        rebuild = containers.exec(container, python, "-c", "import services.metrics.rebuild")
        assert rebuild.returncode == 0, rebuild
        dev = containers.exec(container, python, "-c", "import devtools")
        assert "No module named 'devtools'" in dev.stderr, dev

        # deploy/k8s's initContainers: each service's indexes and migrations, from the image, with
        # its environment, as uid 10001 on the read-only root.
        for name, running in started.items():
            prepared = containers.exec(running, *entrypoint, name, "--prepare")
            assert prepared.returncode == 0, prepared
            assert "indexes and migrations done" in prepared.stderr, prepared
    finally:
        containers.delete_all()
