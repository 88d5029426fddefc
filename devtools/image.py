"""`make image`: one OCI image of Chorus, built without a Docker engine.

    python -m devtools.image build [--uv "python3 -m uv"]   # the OCI layout, then build/chorus-image.tar
    python -m devtools.image status                         # what is built, its tag and size

The image is three layers, each cached under its own key so a change rebuilds only what it
touches:

1. base: Debian (debootstrap --variant=minbase) with Python and CA certificates from Debian,
   security updates applied, a `chorus` user (uid/gid 10001), package caches and docs removed.
   Keyed by the release, the package list and BASE_RECIPE. Slow (minutes), built once.
2. wheels: the locked dependencies (uv.lock, exported with hashes) installed by uv with
   --require-hashes and binary wheels only, into a virtual environment at /opt/chorus, .pyc
   compiled at build time (the root filesystem is read-only at run time). Keyed by uv.lock.
3. app: shared/ and services/ (their .py files only, so no stray file can carry a secret in)
   and the `chorus-serve` console script. Keyed by their content: a code change repacks only this.
   The dev tooling (devtools/: this module, the local stack, the `chorus` CLI) stays out.

Layers 2 and 3 are tar files written here (owner root, fixed mtime, sorted), so the same input
gives the same layer digest. umoci packs the OCI layout (in cache_dir()/image/oci, tags `dev`
and `chorus-<key>`); skopeo exports it as a docker-archive tar for `docker load` and
`kind load image-archive`.

An interrupted build leaves no half-built image: each build works on a copy of the layout (its
blobs hard-linked) in a work directory and renames it into place at the end; the next build
deletes leftover work directories. Needs root for the base layer (debootstrap, chroot).

Standard library only, like local_stack, whose install helpers it reuses.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import py_compile
import shlex
import shutil
import stat
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools import local_stack
from devtools.local_stack import REPO_ROOT, StackError

DEBIAN_RELEASE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# Python from Debian (bookworm's python3 is 3.11, the version of the project's cp311 wheels) and
# the CA certificates the services' HTTPS calls (the IdP's JWKS, webhooks) verify against.
BASE_PACKAGES = ("python3", "ca-certificates")
# Bump when the base recipe below changes (clean-up, user, sources): it is part of the base key.
BASE_RECIPE = 1
# Bump when the wheels or app layer's recipe changes.
APP_RECIPE = 1
PYTHON_VERSION = "3.11"

UID = GID = 10001
VENV = "/opt/chorus"
SITE_PACKAGES = f"{VENV}/lib/python{PYTHON_VERSION}/site-packages"
SERVE_SCRIPT = f"{VENV}/bin/chorus-serve"
# The image runs `chorus-serve ARGS` (shared/serve.py); Kubernetes gives `<service> --host ...
# --port ...` as args, the arguments `make run` starts each service with (devtools.cli.serve_argv).
ENTRYPOINT = (SERVE_SCRIPT,)
# The sharing service's click spool; Kubernetes mounts a volume here (the root is read-only).
SPOOL_DIR = "/var/lib/chorus/spool"
IMAGE_ENV = {
    "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    # .pyc files are compiled at build time; nothing may write beside the sources at run time.
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "CHORUS_CLICK_SPOOL_PATH": f"{SPOOL_DIR}/click-spool.sqlite3",
}
# What production processes import; devtools/ is not among them.
APP_PACKAGES = ("shared", "services")
IMAGE_NAME = "ghcr.io/chorus-oss/chorus"
DEV_TAG = "dev"
# Every file of layers 2 and 3 carries this mtime (2024-01-01), so their digests depend on content only.
LAYER_MTIME = 1_704_067_200

UV_LOCK = REPO_ROOT / "uv.lock"
ARCHIVE = REPO_ROOT / "build" / "chorus-image.tar"


def image_dir(environ: Mapping[str, str] | None = None) -> Path:
    return local_stack.cache_dir(environ) / "image"


def layout_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The OCI layout holding the cached layers and the image (tags `dev` and `chorus-<key>`)."""
    return image_dir(environ) / "oci"


# --------------------------------------------------------------------------------------------
# Keys: each layer's key covers what defines it and the key of the layer below.


def _key(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def base_key() -> str:
    return _key("base", DEBIAN_RELEASE, sorted(BASE_PACKAGES), BASE_RECIPE, UID)


def wheels_key(base: str, lock: bytes) -> str:
    return _key("wheels", base, APP_RECIPE, VENV, lock)


def app_files(root: Path = REPO_ROOT) -> list[Path]:
    """The project's code that goes into the image: the .py files of shared/ and services/."""
    return sorted(path for package in APP_PACKAGES for path in (root / package).rglob("*.py"))


def app_key(wheels: str, root: Path = REPO_ROOT) -> str:
    files = [(path.relative_to(root).as_posix(), path.read_bytes()) for path in app_files(root)]
    digest = hashlib.sha256()
    for name, content in files:
        digest.update(name.encode() + b"\0" + content + b"\0")
    # The image config is part of the last layer's tag: changing the entrypoint or env is a new image.
    return _key("app", wheels, APP_RECIPE, list(ENTRYPOINT), IMAGE_ENV, UID, digest.hexdigest())


@dataclass(frozen=True)
class Tags:
    """The tags of one build's chain of layers in the layout."""

    base: str
    wheels: str
    app: str

    @classmethod
    def current(cls, root: Path = REPO_ROOT) -> Tags:
        base = base_key()
        wheels = wheels_key(base, (root / "uv.lock").read_bytes())
        return cls(base=f"base-{base}", wheels=f"wheels-{wheels}", app=f"chorus-{app_key(wheels, root)}")


# --------------------------------------------------------------------------------------------
# Reading an OCI layout (index -> manifest -> config), for checks, sizes and the tests.


def layout_tags(layout: Path) -> dict[str, dict[str, Any]]:
    """Tag -> manifest descriptor, from the layout's index.json (empty if there is no layout)."""
    index = layout / "index.json"
    if not index.is_file():
        return {}
    manifests = json.loads(index.read_text()).get("manifests") or []  # umoci init writes null
    return {
        entry["annotations"]["org.opencontainers.image.ref.name"]: entry
        for entry in manifests
        if "org.opencontainers.image.ref.name" in entry.get("annotations", {})
    }


def _blob(layout: Path, digest: str) -> Path:
    algorithm, value = digest.split(":", 1)
    return layout / "blobs" / algorithm / value


def image_manifest(layout: Path, tag: str) -> dict[str, Any]:
    descriptor = layout_tags(layout).get(tag)
    if descriptor is None:
        raise StackError(f"no image tagged {tag!r} in {layout}")
    manifest: dict[str, Any] = json.loads(_blob(layout, descriptor["digest"]).read_text())
    return manifest


def image_config(layout: Path, tag: str) -> dict[str, Any]:
    """The image's config: {"Entrypoint": [...], "User": ..., "Env": [...], ...}."""
    manifest = image_manifest(layout, tag)
    document = json.loads(_blob(layout, manifest["config"]["digest"]).read_text())
    config: dict[str, Any] = document.get("config", {})
    return config


def runtime_config(
    unpacked: Mapping[str, Any], *, rootfs: Path, args: Sequence[str], env: Mapping[str, str]
) -> dict[str, Any]:
    """A runc config.json that runs the image as Kubernetes would (restricted Pod Security).

    `unpacked` is the config.json `umoci unpack` wrote from the image (its user, env, mounts).
    The result: read-only root, no capabilities, tmpfs at /tmp and at the spool (the volumes of
    deploy/k8s), `env` added to the image's environment, and the host's network namespace so
    the process reaches a stack listening on 127.0.0.1.
    """
    config: dict[str, Any] = json.loads(json.dumps(unpacked))  # a deep copy
    process = config["process"]
    process["terminal"] = False
    process["args"] = list(args)
    merged = dict(entry.split("=", 1) for entry in process.get("env", []))
    merged.update(env)
    process["env"] = [f"{name}={value}" for name, value in merged.items()]
    process["capabilities"] = {
        kind: [] for kind in ("bounding", "effective", "inheritable", "permitted", "ambient")
    }
    process["noNewPrivileges"] = True
    config["root"] = {"path": str(rootfs), "readonly": True}
    linux = config["linux"]
    linux["namespaces"] = [space for space in linux["namespaces"] if space["type"] != "network"]
    config["mounts"] = [
        *config["mounts"],
        {
            "destination": "/tmp",  # noqa: S108 - a mount point inside the container
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777"],
        },
        {
            "destination": SPOOL_DIR,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=0700", f"uid={UID}", f"gid={GID}"],
        },
    ]
    return config


def compressed_size(layout: Path, tag: str) -> int:
    """Bytes a registry stores and a node pulls: the gzip'd layers plus config and manifest."""
    manifest = image_manifest(layout, tag)
    return int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in manifest["layers"])


# --------------------------------------------------------------------------------------------
# Writing layers


def write_layer(source: Path, archive: Path) -> None:
    """A layer tar of everything under `source` (paths relative to it are image paths).

    Owned by root, mode kept (plus read for all), mtime fixed, entries sorted: the same tree
    gives the same bytes. Parent directories are included, as 0755 root-owned directories.
    """

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = LAYER_MTIME
        if info.isdir() or info.mode & stat.S_IXUSR:
            info.mode = 0o755
        elif not info.issym():
            info.mode = 0o644
        return info

    paths = sorted(source.rglob("*"), key=lambda path: path.relative_to(source).as_posix())
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False, filter=normalise)


def serve_script() -> str:
    """The console script of pyproject's [project.scripts]: chorus-serve = shared.serve:main.

    The __main__ guard matters: a worker process started with `spawn` (metrics' tally workers)
    imports the parent's main script again, and must not run the command a second time.
    """
    return (
        f"#!{VENV}/bin/python\n"
        "import sys\n\n"
        "from shared.serve import main\n\n"
        'if __name__ == "__main__":\n'
        "    sys.exit(main())\n"
    )


def pyvenv_cfg() -> str:
    # /opt/chorus is a virtual environment of Debian's /usr/bin/python3 with no pip in it.
    return f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {PYTHON_VERSION}\n"


def _compile(tree: Path, image_path: str) -> None:
    # Unchecked-hash .pyc: valid whatever the files' mtimes, and never rewritten at run time.
    # The magic number is per minor version, so the build's Python must be 3.11 like the image's.
    ok = compileall.compile_dir(
        str(tree),
        ddir=image_path,
        quiet=1,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise StackError(f"compiling the .py files under {tree} failed")


# --------------------------------------------------------------------------------------------
# The build


def _umoci(*args: str, what: str, log: str) -> None:
    local_stack._run(
        [local_stack._require("umoci", "the image is packed with umoci (make deps installs it)"), *args],
        what,
        log=log_path(log),
    )


def log_path(step: str) -> Path:
    return local_stack.install_log(f"image-{step}")


def _chroot(rootfs: Path, *argv: str, what: str) -> None:
    env = {
        "DEBIAN_FRONTEND": "noninteractive",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL": "C",
    }
    local_stack._run(["chroot", str(rootfs), *argv], what, env=env, log=log_path("base-chroot"))


def clean_rootfs(rootfs: Path) -> None:
    """Remove package manager caches, logs, docs and host leftovers; drop setuid bits."""

    def empty(directory: str) -> None:
        for child in (rootfs / directory).glob("*"):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    for directory in (
        "var/lib/apt/lists",
        "var/cache/apt",
        "var/log",
        "var/tmp",
        "tmp",
        "usr/share/man",
        "usr/share/info",
        "usr/share/lintian",
    ):
        empty(directory)
    for leftover in [
        *rootfs.glob("var/cache/debconf/*-old"),
        *rootfs.glob("var/lib/dpkg/*-old"),
        *rootfs.glob("etc/**/*.dpkg-old"),
        *rootfs.glob("etc/*-"),  # passwd-, group-, shadow-: backups
    ]:
        leftover.unlink()
    # Docs: keep only the licences (copyright files).
    for path in (rootfs / "usr/share/doc").rglob("*"):
        if path.is_file() and path.name != "copyright":
            path.unlink()
    # Translations of the tools; Chorus speaks English in its logs.
    for path in (rootfs / "usr/share/locale").glob("*"):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.name != "locale.alias":
            path.unlink()
    # debootstrap copies the host's; the runtime provides its own.
    (rootfs / "etc/resolv.conf").write_text("")
    (rootfs / "etc/hostname").write_text("")
    (rootfs / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    # The service never needs to gain privileges: no setuid or setgid programs.
    for path in rootfs.rglob("*"):
        if path.is_file() and not path.is_symlink():
            mode = path.lstat().st_mode
            if mode & (stat.S_ISUID | stat.S_ISGID):
                path.chmod(stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID))


def add_user(rootfs: Path) -> None:
    """The `chorus` user and group (10001), with no home and no login shell."""
    with (rootfs / "etc/passwd").open("a") as passwd:
        passwd.write(f"chorus:x:{UID}:{GID}:Chorus:/nonexistent:/usr/sbin/nologin\n")
    with (rootfs / "etc/group").open("a") as group:
        group.write(f"chorus:x:{GID}:\n")
    spool = rootfs / SPOOL_DIR.lstrip("/")
    spool.mkdir(parents=True)
    for directory in (spool, spool.parent):
        os.chown(directory, UID, GID)
        directory.chmod(0o750)


def _build_base(work: Path, layout: Path, tag: str) -> None:
    if os.geteuid() != 0:
        raise StackError("building the image's base layer needs root (debootstrap, chroot); run as root")
    debootstrap = local_stack._require("debootstrap", "the image's base is a Debian root made by debootstrap")
    bundle = work / "base-bundle"
    _umoci("new", "--image", f"{layout}:{tag}", what="creating the base image", log="base")
    _umoci("unpack", "--image", f"{layout}:{tag}", str(bundle), what="unpacking the empty base", log="base")
    rootfs = bundle / "rootfs"
    local_stack._run(
        [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            DEBIAN_RELEASE,
            str(rootfs),
            DEBIAN_MIRROR,
        ],
        f"debootstrap of Debian {DEBIAN_RELEASE}",
        log=log_path("base-debootstrap"),
    )
    # debootstrap takes the release as it was at its last point release: add the security and
    # updates suites and upgrade, so the image carries today's fixes (OpenSSL, Python, ...).
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {DEBIAN_MIRROR} {DEBIAN_RELEASE} main\n"
        f"deb {DEBIAN_MIRROR} {DEBIAN_RELEASE}-updates main\n"
        f"deb {DEBIAN_SECURITY_MIRROR} {DEBIAN_RELEASE}-security main\n"
    )
    _chroot(rootfs, "apt-get", "update", "-q", what="apt-get update in the image's root")
    _chroot(rootfs, "apt-get", "-y", "-q", "upgrade", what="applying Debian updates in the image's root")
    _chroot(rootfs, "apt-get", "clean", what="apt-get clean in the image's root")
    add_user(rootfs)
    clean_rootfs(rootfs)
    _umoci(
        "repack",
        "--image",
        f"{layout}:{tag}",
        "--history.created_by",
        f"debootstrap --variant=minbase {DEBIAN_RELEASE} + {' '.join(BASE_PACKAGES)}",
        str(bundle),
        what="packing the base layer",
        log="base",
    )
    shutil.rmtree(bundle)


def _build_wheels(work: Path, layout: Path, base_tag: str, tag: str, uv: Sequence[str]) -> None:
    requirements = work / "requirements.txt"
    local_stack._run(
        [
            *uv,
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--format",
            "requirements-txt",
            "--no-header",
            "--output-file",
            str(requirements),
        ],
        "exporting the locked requirements from uv.lock",
        cwd=REPO_ROOT,
        log=log_path("wheels"),
    )
    tree = work / "wheels"
    venv = tree / VENV.lstrip("/")
    site = tree / SITE_PACKAGES.lstrip("/")
    local_stack._run(
        [
            *uv,
            "pip",
            "install",
            "--target",
            str(site),
            # The wheels for the image's Python and glibc (bookworm: 2.36), whatever the host.
            "--python",
            sys.executable,
            "--python-platform",
            "x86_64-manylinux_2_36",
            "--require-hashes",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--link-mode",
            "copy",
            "--requirement",
            str(requirements),
        ],
        "installing the locked wheels",
        log=log_path("wheels"),
    )
    # Console scripts of the dependencies carry the build host's interpreter; the image runs
    # only `chorus-serve` (from the app layer).
    shutil.rmtree(site / "bin", ignore_errors=True)
    _compile(site, SITE_PACKAGES)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").symlink_to(f"/usr/bin/python{PYTHON_VERSION}")
    (venv / "bin/python3").symlink_to("python")
    (venv / "pyvenv.cfg").write_text(pyvenv_cfg())
    archive = work / "wheels.tar"
    write_layer(tree, archive)
    _umoci(
        "raw",
        "add-layer",
        "--image",
        f"{layout}:{base_tag}",
        "--tag",
        tag,
        "--history.created_by",
        "chorus image: locked wheels (uv.lock) in /opt/chorus",
        str(archive),
        what="adding the wheels layer",
        log="wheels",
    )
    shutil.rmtree(tree)
    archive.unlink()


def _build_app(work: Path, layout: Path, wheels_tag: str, tag: str) -> None:
    tree = work / "app"
    site = tree / SITE_PACKAGES.lstrip("/")
    for path in app_files():
        target = site / path.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    _compile(site, SITE_PACKAGES)
    script = tree / SERVE_SCRIPT.lstrip("/")
    script.parent.mkdir(parents=True)
    script.write_text(serve_script())
    script.chmod(0o755)
    archive = work / "app.tar"
    write_layer(tree, archive)
    _umoci(
        "raw",
        "add-layer",
        "--image",
        f"{layout}:{wheels_tag}",
        "--tag",
        tag,
        "--history.created_by",
        "chorus image: shared/ and services/, the chorus-serve command",
        str(archive),
        what="adding the app layer",
        log="app",
    )
    config_args = [
        "config",
        "--image",
        f"{layout}:{tag}",
        "--config.user",
        f"{UID}:{GID}",
        "--config.workingdir",
        "/",
        "--config.label",
        "org.opencontainers.image.title=chorus",
        "--clear",
        "config.entrypoint",
        "--clear",
        "config.cmd",
        "--clear",
        "config.env",
    ]
    for argument in ENTRYPOINT:
        config_args += ["--config.entrypoint", argument]
    for name, value in IMAGE_ENV.items():
        config_args += ["--config.env", f"{name}={value}"]
    _umoci(*config_args, what="setting the image's entrypoint, user and environment", log="app")
    _umoci("tag", "--image", f"{layout}:{tag}", DEV_TAG, what="tagging the image dev", log="app")
    shutil.rmtree(tree)
    archive.unlink()


def _copy_layout(source: Path, target: Path) -> None:
    """A copy of an OCI layout whose blobs are hard links (blobs are never changed in place)."""
    shutil.copytree(source / "blobs", target / "blobs", copy_function=os.link)
    for name in ("index.json", "oci-layout"):
        shutil.copyfile(source / name, target / name)


def _recover(directory: Path) -> None:
    """Clear what an interrupted build left; we hold the build lock."""
    layout = directory / "oci"
    if not layout.exists():
        # Interrupted between the two renames of _swap: the previous layout is still whole.
        previous = sorted(directory.glob("old-*"))
        if previous:
            os.rename(previous[-1], layout)
    for leftover in [*directory.glob("work-*"), *directory.glob("old-*")]:
        _unmount_below(leftover)
        shutil.rmtree(leftover)


def mounts_below(directory: Path, mounts_table: str) -> list[str]:
    """Mount points under `directory` in a /proc/mounts table, deepest first."""
    prefix = f"{directory.resolve()}/"
    points = [line.split()[1].replace("\\040", " ") for line in mounts_table.splitlines() if line.strip()]
    return sorted((point for point in points if point.startswith(prefix)), key=len, reverse=True)


def _unmount_below(directory: Path) -> None:
    # debootstrap mounts /proc and /sys into the root it builds; killed half-way it may leave them
    # there, and deleting the tree through them would reach the host's.
    for point in mounts_below(directory, Path("/proc/mounts").read_text()):
        local_stack._run(["umount", "--lazy", point], f"unmounting {point} left by an interrupted build")


def _swap(new: Path, layout: Path) -> None:
    old = layout.with_name(f"old-{os.getpid()}")
    if layout.exists():
        os.rename(layout, old)
    os.rename(new, layout)
    shutil.rmtree(old, ignore_errors=True)


def _export(layout: Path, tag: str) -> None:
    """build/chorus-image.tar (docker-archive), for `docker load` and `kind load image-archive`."""
    skopeo = local_stack._require("skopeo", "the image is exported as a docker-archive with skopeo")
    ARCHIVE.parent.mkdir(parents=True, exist_ok=True)
    tmp = ARCHIVE.with_name(f".{ARCHIVE.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    local_stack._run(
        [
            skopeo,
            "copy",
            "--quiet",
            f"oci:{layout}:{tag}",
            f"docker-archive:{tmp}:{IMAGE_NAME}:{DEV_TAG}",
        ],
        "exporting the image as a docker-archive",
        log=log_path("export"),
    )
    os.replace(tmp, ARCHIVE)
    stamp(ARCHIVE).write_text(layout_tags(layout)[tag]["digest"] + "\n")


def stamp(archive: Path) -> Path:
    """Beside the archive: the manifest digest it was exported from, so a build with no change
    skips the export (a digest, not a tag: two caches may build one tag with other bytes)."""
    return archive.with_name(f".{archive.name}.digest")


@dataclass(frozen=True)
class Built:
    layout: Path
    tag: str
    archive: Path
    compressed_bytes: int


def build(uv: Sequence[str]) -> Built:
    """Build what changed; one progress line per step."""
    if sys.version_info[:2] != tuple(int(part) for part in PYTHON_VERSION.split(".")):
        raise StackError(
            f"build the image with Python {PYTHON_VERSION} (its .pyc files are for that version)"
        )
    directory = image_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with local_stack._file_lock(directory / "build.lock"):
        _recover(directory)
        tags = Tags.current()
        layout = directory / "oci"
        if tags.app not in layout_tags(layout):
            work = Path(tempfile.mkdtemp(prefix="work-", dir=directory))
            new = work / "oci"
            if layout.exists():
                _copy_layout(layout, new)
            else:
                _umoci("init", "--layout", str(new), what="creating the OCI layout", log="base")
            titles = {
                tags.base: "base layer (Debian + Python)",
                tags.wheels: "wheels layer (uv.lock)",
                tags.app: "app layer (shared/, services/)",
            }
            for tag, title in titles.items():
                if tag in layout_tags(new):
                    local_stack._progress(f"image: {title}: cached ({tag})")
                    continue
                began = time.monotonic()
                local_stack._progress(f"image: {title}...")
                if tag == tags.base:
                    _build_base(work, new, tags.base)
                elif tag == tags.wheels:
                    _build_wheels(work, new, tags.base, tags.wheels, uv)
                else:
                    _build_app(work, new, tags.wheels, tags.app)
                local_stack._progress(f"image: {title}: ok ({time.monotonic() - began:.1f} s) {tag}")
            # Only this chain stays; umoci gc then deletes the blobs nothing refers to any more.
            for tag in layout_tags(new):
                if tag not in (tags.base, tags.wheels, tags.app, DEV_TAG):
                    _umoci("rm", "--image", f"{new}:{tag}", what=f"dropping the old tag {tag}", log="app")
            _umoci("gc", "--layout", str(new), what="deleting unused blobs", log="app")
            _swap(new, layout)
            shutil.rmtree(work)
        exported = stamp(ARCHIVE).read_text().strip() if stamp(ARCHIVE).is_file() else ""
        if not ARCHIVE.is_file() or exported != layout_tags(layout)[tags.app]["digest"]:
            began = time.monotonic()
            local_stack._progress(f"image: {ARCHIVE.name} (docker-archive)...")
            _export(layout, tags.app)
            local_stack._progress(
                f"image: {ARCHIVE.name} (docker-archive): ok ({time.monotonic() - began:.1f} s)"
            )
        return Built(layout, tags.app, ARCHIVE, compressed_size(layout, tags.app))


def current_image() -> tuple[Path, str]:
    """The layout and tag of the image of the code as it is now; NotBuilt if `make image` is due."""
    layout = layout_dir()
    tag = Tags.current().app
    if tag not in layout_tags(layout):
        raise NotBuilt(layout, tag)
    return layout, tag


class NotBuilt(StackError):
    def __init__(self, layout: Path, tag: str) -> None:
        super().__init__(
            f"the image of the current code ({tag}) is not in {layout}; run `make image` "
            "(or `python -m devtools.image build`) first"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.image", description="The Chorus OCI image.")
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build the image (only the layers that changed)")
    build_command.add_argument("--uv", default="python3 -m uv", help="how to run uv (the Makefile's $(UV))")
    commands.add_parser("status", help="the current image's tag, size and archive")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            began = time.monotonic()
            built = build(shlex.split(args.uv))
            local_stack._progress(
                f"image: {IMAGE_NAME}:{DEV_TAG} ({built.tag}) in {time.monotonic() - began:.1f} s, "
                f"{built.compressed_bytes / 1e6:.1f} MB compressed; OCI layout {built.layout}, "
                f"docker-archive {built.archive}"
            )
        else:
            layout, tag = current_image()
            print(f"{tag}: {compressed_size(layout, tag) / 1e6:.1f} MB compressed, layout {layout}")
    except StackError as error:
        print(f"image: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
