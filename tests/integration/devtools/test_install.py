"""The install step (`make deps`): builds resume after an interruption, failures name their part.

These build a tiny real Go module with the machine's Go (seconds), as the install step builds
Jaeger and the Kubernetes tools.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devtools import local_stack


def _module(root: Path, body: str) -> local_stack.GoTool:
    root.mkdir()
    (root / "go.mod").write_text("module example.com/hello\n\ngo 1.22\n")
    (root / "go.sum").write_text("")
    (root / "main.go").write_text(body)
    return local_stack.GoTool("hello", "Hello", root, ".")


HELLO = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from go") }\n'


def test_a_build_interrupted_half_way_is_redone_cleanly(tmp_path: Path) -> None:
    tool = _module(tmp_path / "module", HELLO)
    bins, log = tmp_path / "bin", tmp_path / "hello.log"
    bins.mkdir()
    # What a build killed half-way leaves: a partial output under a temporary name.
    leftover = bins / f".{tool.target(bins).name}.4242.tmp"
    leftover.write_bytes(b"\x7fELF half a binary")

    built = local_stack.go_binary(tool, bins, build=True, log=log)

    assert not leftover.exists()
    assert built == tool.target(bins)
    assert subprocess.run([built], capture_output=True, text=True, check=True).stdout == "hello from go\n"
    assert sorted(p.name for p in bins.iterdir()) == [built.name]


def test_a_missing_part_is_never_built_when_only_looked_up(tmp_path: Path) -> None:
    tool = _module(tmp_path / "module", HELLO)
    with pytest.raises(local_stack.NotInstalled, match="make deps"):
        local_stack.go_binary(tool, tmp_path / "bin", build=False, log=tmp_path / "hello.log")
    assert not (tmp_path / "bin").exists()


def test_a_part_that_fails_to_build_is_named_with_its_log(tmp_path: Path) -> None:
    tool = _module(tmp_path / "module", "package main\n\nfunc main() { undefinedThing() }\n")
    log = tmp_path / "logs" / "install-hello.log"

    with pytest.raises(local_stack.StackError, match="building Hello failed") as failure:
        local_stack.go_binary(tool, tmp_path / "bin", build=True, log=log)

    assert str(log) in str(failure.value)
    assert "undefinedThing" in log.read_text()
    assert not tool.target(tmp_path / "bin").exists()


def test_a_changed_module_builds_a_new_binary_and_keeps_the_old(tmp_path: Path) -> None:
    tool = _module(tmp_path / "module", HELLO)
    bins, log = tmp_path / "bin", tmp_path / "hello.log"
    first = local_stack.go_binary(tool, bins, build=True, log=log)
    (tool.module_dir / "main.go").write_text(HELLO.replace("hello from go", "hello again"))

    second = local_stack.go_binary(tool, bins, build=True, log=log)

    assert second != first and first.exists()
    assert subprocess.run([second], capture_output=True, text=True, check=True).stdout == "hello again\n"
