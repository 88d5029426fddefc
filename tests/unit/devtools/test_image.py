"""The image build's pure parts: cache keys, layer tars, the OCI layout reader, runc's config."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest

from devtools import image


def _project(root: Path, code: str = "x = 1\n") -> Path:
    (root / "shared").mkdir(parents=True)
    (root / "services/content").mkdir(parents=True)
    (root / "shared/__init__.py").write_text("")
    (root / "services/content/main.py").write_text(code)
    (root / "uv.lock").write_text("version = 1\n")
    return root


def test_a_code_change_changes_only_the_app_tag(tmp_path: Path) -> None:
    before = image.Tags.current(_project(tmp_path / "a"))
    after = image.Tags.current(_project(tmp_path / "b", code="x = 2\n"))

    assert (after.base, after.wheels) == (before.base, before.wheels)
    assert after.app != before.app


def test_a_lock_change_changes_the_wheels_and_app_tags_but_not_the_base(tmp_path: Path) -> None:
    root = _project(tmp_path)
    before = image.Tags.current(root)
    (root / "uv.lock").write_text("version = 1\n# a new pin\n")
    after = image.Tags.current(root)

    assert after.base == before.base
    assert after.wheels != before.wheels
    assert after.app != before.app


def test_the_base_key_follows_its_package_list_and_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    before = image.base_key()
    monkeypatch.setattr(image, "BASE_PACKAGES", (*image.BASE_PACKAGES, "curl"))
    with_curl = image.base_key()
    monkeypatch.setattr(image, "BASE_RECIPE", image.BASE_RECIPE + 1)

    assert len({before, with_curl, image.base_key()}) == 3


def test_only_python_sources_go_into_the_app_layer(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "shared/__pycache__").mkdir()
    (root / "shared/__pycache__/x.cpython-311.pyc").write_bytes(b"stale")
    (root / "shared/.env").write_text("SECRET=1\n")
    (root / "services/notes.txt").write_text("")
    before = image.app_key("w", root)
    (root / "shared/.env").write_text("SECRET=2\n")

    assert [path.relative_to(root).as_posix() for path in image.app_files(root)] == [
        "services/content/main.py",
        "shared/__init__.py",
    ]
    assert image.app_key("w", root) == before


def test_the_image_config_is_part_of_the_app_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    before = image.app_key("w", root)
    monkeypatch.setattr(image, "IMAGE_ENV", {**image.IMAGE_ENV, "EXTRA": "1"})

    assert image.app_key("w", root) != before


def _tree(root: Path) -> Path:
    (root / "opt/chorus/bin").mkdir(parents=True)
    script = root / "opt/chorus/bin/chorus"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    (root / "opt/chorus/bin/python").symlink_to("/usr/bin/python3.11")
    data = root / "opt/chorus/data.txt"
    data.write_text("data")
    data.chmod(0o600)
    return root


def test_a_layer_is_the_same_bytes_for_the_same_tree(tmp_path: Path) -> None:
    first, second = tmp_path / "first.tar", tmp_path / "second.tar"
    image.write_layer(_tree(tmp_path / "a"), first)
    tree = _tree(tmp_path / "b")
    (tree / "opt/chorus/data.txt").touch()  # another mtime
    image.write_layer(tree, second)

    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()


def test_a_layer_is_owned_by_root_readable_by_all_with_parents_first(tmp_path: Path) -> None:
    archive = tmp_path / "layer.tar"
    image.write_layer(_tree(tmp_path / "tree"), archive)

    with tarfile.open(archive) as tar:
        members = {member.name: member for member in tar.getmembers()}
        names = tar.getnames()
    assert names == sorted(names)
    assert names[0] == "opt"
    assert {(member.uid, member.gid, member.mtime) for member in members.values()} == {
        (0, 0, image.LAYER_MTIME)
    }
    assert members["opt/chorus"].mode == 0o755
    assert members["opt/chorus/bin/chorus"].mode == 0o755
    assert members["opt/chorus/data.txt"].mode == 0o644
    assert members["opt/chorus/bin/python"].issym()
    assert members["opt/chorus/bin/python"].linkname == "/usr/bin/python3.11"


def test_the_serve_script_serves_only_as_the_main_program() -> None:
    script = image.serve_script()

    assert script.startswith(f"#!{image.VENV}/bin/python\n")
    assert "from shared.serve import main" in script
    assert 'if __name__ == "__main__":\n    sys.exit(main())' in script


def test_the_entrypoint_is_pyprojects_serve_script_and_the_app_has_no_dev_tooling(tmp_path: Path) -> None:
    scripts = tomllib.loads((image.REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    name = Path(image.SERVE_SCRIPT).name
    module, function = scripts[name].split(":")

    assert image.ENTRYPOINT == (image.SERVE_SCRIPT,)
    assert f"from {module} import {function}\n" in image.serve_script()
    root = _project(tmp_path)
    (root / "devtools").mkdir()
    (root / "devtools/cli.py").write_text("")
    assert [path.relative_to(root).parts[0] for path in image.app_files(root)] == ["services", "shared"]


def _blob(layout: Path, content: dict[str, Any]) -> dict[str, Any]:
    data = json.dumps(content).encode()
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _layout(layout: Path) -> None:
    config = _blob(
        layout, {"config": {"Entrypoint": ["/opt/chorus/bin/chorus-serve"], "User": "10001:10001"}}
    )
    manifest = _blob(layout, {"config": config, "layers": [{"size": 1000}, {"size": 200}]})
    index = {
        "schemaVersion": 2,
        "manifests": [
            {**manifest, "annotations": {"org.opencontainers.image.ref.name": "dev"}},
            {**manifest, "annotations": {}},
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))


def test_the_layout_reader_finds_tags_config_and_size(tmp_path: Path) -> None:
    _layout(tmp_path)

    assert set(image.layout_tags(tmp_path)) == {"dev"}
    assert image.image_config(tmp_path, "dev")["Entrypoint"] == ["/opt/chorus/bin/chorus-serve"]
    config_size = image.image_manifest(tmp_path, "dev")["config"]["size"]
    assert image.compressed_size(tmp_path, "dev") == 1200 + config_size


def test_a_missing_layout_or_tag_is_said_plainly(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text('{"schemaVersion": 2, "manifests": null}')

    assert image.layout_tags(tmp_path / "none") == {}
    assert image.layout_tags(tmp_path) == {}
    with pytest.raises(image.StackError, match="no image tagged 'dev'"):
        image.image_config(tmp_path, "dev")


def _unpacked() -> dict[str, Any]:
    return {
        "process": {
            "terminal": True,
            "user": {"uid": 10001, "gid": 10001},
            "args": ["/opt/chorus/bin/chorus-serve"],
            "env": ["PATH=/opt/chorus/bin:/usr/bin", "PYTHONUNBUFFERED=1"],
            "capabilities": {"bounding": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
        },
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}]},
    }


def test_runc_runs_the_image_read_only_without_capabilities_on_the_host_network(tmp_path: Path) -> None:
    unpacked = _unpacked()
    config = image.runtime_config(
        unpacked,
        rootfs=tmp_path / "rootfs",
        args=["/opt/chorus/bin/chorus-serve", "content"],
        env={"CHORUS_KAFKA_BOOTSTRAP": "127.0.0.1:19092", "PYTHONUNBUFFERED": "0"},
    )

    assert config["root"] == {"path": str(tmp_path / "rootfs"), "readonly": True}
    assert config["process"]["args"] == ["/opt/chorus/bin/chorus-serve", "content"]
    assert config["process"]["user"] == {"uid": 10001, "gid": 10001}  # the image's, untouched
    assert config["process"]["terminal"] is False
    assert config["process"]["env"] == [
        "PATH=/opt/chorus/bin:/usr/bin",
        "PYTHONUNBUFFERED=0",
        "CHORUS_KAFKA_BOOTSTRAP=127.0.0.1:19092",
    ]
    assert all(caps == [] for caps in config["process"]["capabilities"].values())
    assert [space["type"] for space in config["linux"]["namespaces"]] == ["pid", "mount"]
    tmpfs = {mount["destination"]: mount["options"] for mount in config["mounts"] if mount["type"] == "tmpfs"}
    assert set(tmpfs) == {"/tmp", image.SPOOL_DIR}  # noqa: S108 - paths inside the container
    assert "uid=10001" in tmpfs[image.SPOOL_DIR]
    assert unpacked == _unpacked()  # the input is left as it was


def test_clean_rootfs_removes_caches_logs_docs_and_setuid_bits(tmp_path: Path) -> None:
    root = tmp_path
    files = [
        "var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease",
        "var/cache/apt/archives/python3_3.11.deb",
        "var/cache/apt/pkgcache.bin",
        "var/log/dpkg.log",
        "var/cache/debconf/config.dat-old",
        "etc/passwd-",
        "etc/ca-certificates.conf.dpkg-old",
        "usr/share/doc/python3/changelog.gz",
        "usr/share/doc/python3/copyright",
        "usr/share/man/man1/python3.1.gz",
        "usr/share/locale/fr/LC_MESSAGES/apt.mo",
        "usr/share/locale/locale.alias",
        "usr/bin/passwd",
        "var/tmp/leftover",
        "tmp/leftover",
        "etc/resolv.conf",
        "etc/hostname",
    ]
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    (root / "usr/share/info").mkdir()
    (root / "usr/bin/passwd").chmod(0o4755)

    image.clean_rootfs(root)

    left = sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())
    assert left == [
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
        "usr/bin/passwd",
        "usr/share/doc/python3/copyright",
        "usr/share/locale/locale.alias",
    ]
    assert (root / "etc/resolv.conf").read_text() == ""  # not the build host's
    assert (root / "usr/bin/passwd").stat().st_mode & 0o7777 == 0o755


def test_an_interrupted_build_leaves_the_previous_layout_in_place(tmp_path: Path) -> None:
    # Killed between the two renames of a swap: the old layout is all there is.
    (tmp_path / "old-123").mkdir()
    (tmp_path / "old-123/index.json").write_text("{}")
    (tmp_path / "work-abc/oci").mkdir(parents=True)

    image._recover(tmp_path)

    assert (tmp_path / "oci/index.json").read_text() == "{}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["oci"]


def test_the_wheels_layer_tar_reads_back_as_a_virtual_environment(tmp_path: Path) -> None:
    (tmp_path / "tree/opt/chorus").mkdir(parents=True)
    (tmp_path / "tree/opt/chorus/pyvenv.cfg").write_text(image.pyvenv_cfg())
    image.write_layer(tmp_path / "tree", tmp_path / "layer.tar")

    with tarfile.open(tmp_path / "layer.tar") as tar:
        extracted = tar.extractfile("opt/chorus/pyvenv.cfg")
        assert extracted is not None
        cfg = io.TextIOWrapper(extracted).read()
    assert "home = /usr/bin\n" in cfg
    assert "include-system-site-packages = false\n" in cfg


def test_mounts_left_inside_a_work_directory_are_found_deepest_first(tmp_path: Path) -> None:
    work = tmp_path / "work-1"
    table = (
        "proc /proc proc rw 0 0\n"
        f"proc {work}/base-bundle/rootfs/proc proc rw 0 0\n"
        f"sysfs {work}/base-bundle/rootfs/sys sysfs rw 0 0\n"
        f"devpts {work}/base-bundle/rootfs/dev/pts devpts rw 0 0\n"
        f"tmpfs {tmp_path}/work-10/x tmpfs rw 0 0\n"
    )

    found = image.mounts_below(work, table)

    assert sorted(found) == sorted(f"{work}/base-bundle/rootfs/{name}" for name in ("proc", "sys", "dev/pts"))
    assert found[0] == f"{work}/base-bundle/rootfs/dev/pts"
