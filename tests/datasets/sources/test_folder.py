"""Server-folder imports: the allow-list, symbolic links and `..` on a real tree."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from datasets.errors import FileRejected, InvalidImport
from datasets.sources.folder import folder_fetch, folder_plan, folder_read, folder_sha256
from datasets.sources.types import ImportLimits, Rejection, SourceEntry


@pytest.fixture
def tree(tmp_path: Path, settings: Any) -> Path:
    """root/ (allowed) with set/ to import, other/ beside it; outside/ not allowed."""
    root = tmp_path / "root"
    (root / "set" / "sub" / "deeper").mkdir(parents=True)
    (root / "other").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    (root / "set" / "b.txt").write_text("bee")
    (root / "set" / "a.txt").write_text("ay")
    (root / "set" / "sub" / "c.txt").write_text("sea")
    (root / "set" / "sub" / "deeper" / "d.txt").write_text("dee")
    (root / "set" / ".DS_Store").write_text("finder")
    (root / "set" / "big.bin").write_bytes(b"x" * 2000)
    (root / "set" / "שלום.txt").write_text("rtl name")
    (root / "other" / "e.txt").write_text("eee")
    os.symlink(tmp_path / "outside" / "secret.txt", root / "set" / "link-out.txt")
    os.symlink(root / "other" / "e.txt", root / "set" / "link-in.txt")
    os.symlink(root / "set" / "sub", root / "set" / "link-dir")
    os.symlink("../../outside", root / "set" / "link-dir-out")
    os.mkfifo(root / "set" / "pipe")
    settings.IMPORT_FOLDER_ROOTS = [str(root)]
    return root


def test_disabled_without_roots(settings: Any, tmp_path: Path) -> None:
    settings.IMPORT_FOLDER_ROOTS = []
    with pytest.raises(InvalidImport, match="server folder imports are disabled"):
        list(folder_plan(str(tmp_path)))


def test_plan_walks_sorted_and_refuses_escapes(tree: Path) -> None:
    planned = list(folder_plan(str(tree / "set"), limits=ImportLimits(max_file_bytes=1000)))
    assert [p.name for p in planned] == [
        "a.txt",
        "b.txt",
        "big.bin",
        "link-dir",
        "link-dir-out",
        "link-in.txt",
        "link-out.txt",
        "pipe",
        "sub/c.txt",
        "sub/deeper/d.txt",
        "שלום.txt",
    ]
    by_name = {p.name: p for p in planned}
    assert by_name["a.txt"] == SourceEntry(name="a.txt", ref="set/a.txt")
    assert by_name["sub/deeper/d.txt"] == SourceEntry(
        name="sub/deeper/d.txt", ref="set/sub/deeper/d.txt"
    )
    # A link inside the root is followed to its file; its ref is the real path.
    assert by_name["link-in.txt"] == SourceEntry(name="link-in.txt", ref="other/e.txt")
    assert by_name["link-out.txt"] == Rejection(
        "link-out.txt", "symbolic link leads outside the allowed folder"
    )
    assert by_name["link-dir-out"].reason == "symbolic link leads outside the allowed folder"
    assert by_name["link-dir"].reason == "symbolic link to a folder not followed"
    assert by_name["pipe"].reason == "not a regular file (device, FIFO or socket)"
    assert by_name["big.bin"].reason == "file is 0.0 MB, over the per-file limit of 0.0 MB"


@pytest.mark.parametrize(
    "requested",
    ["{tmp}/outside", "{tmp}/root/set/../../outside", "{tmp}/root/set/link-dir-out", "/"],
)
def test_folders_outside_the_roots_are_refused(tree: Path, requested: str) -> None:
    folder = requested.format(tmp=tree.parent)
    with pytest.raises(InvalidImport, match="is not under an allowed directory"):
        list(folder_plan(folder))


def test_relative_and_missing_folders(tree: Path) -> None:
    with pytest.raises(InvalidImport, match="must be an absolute path"):
        list(folder_plan("root/set"))
    with pytest.raises(InvalidImport, match="does not exist"):
        list(folder_plan(str(tree / "nope")))


def test_dotdot_that_stays_inside_is_fine(tree: Path) -> None:
    planned = list(folder_plan(str(tree / "set" / "sub" / "..")))
    assert "a.txt" in {p.name for p in planned}


def test_fetch_copies_and_rechecks(tree: Path, tmp_path: Path) -> None:
    folder = str(tree / "set")
    dest = tmp_path / "out"
    assert folder_fetch(folder, "set/sub/c.txt", dest) == 3
    assert dest.read_text() == "sea"
    assert folder_fetch(folder, "other/e.txt", dest) == 3
    for ref, reason in [
        ("../outside/secret.txt", "path leads outside the allowed folder"),
        ("set/link-out.txt", "path leads outside the allowed folder"),
        (str(tmp_path / "outside" / "secret.txt"), "not a path relative"),
        ("set/pipe", "not a regular file"),  # opened without blocking, then refused
        ("set/missing.txt", "cannot open the file"),
        ("set/sub", "not a regular file"),
    ]:
        with pytest.raises(FileRejected, match=reason):
            folder_fetch(folder, ref, dest)
        assert not dest.exists()


def test_link_swapped_after_planning_cannot_escape(tree: Path, tmp_path: Path) -> None:
    target = tree / "set" / "a.txt"
    planned = list(folder_plan(str(tree / "set")))
    assert SourceEntry(name="a.txt", ref="set/a.txt") in planned
    target.unlink()
    os.symlink(tmp_path / "outside" / "secret.txt", target)
    with pytest.raises(FileRejected, match="outside the allowed folder"):
        folder_fetch(str(tree / "set"), "set/a.txt", tmp_path / "out")


def test_fetch_checks_the_current_settings(tree: Path, settings: Any, tmp_path: Path) -> None:
    settings.IMPORT_FOLDER_ROOTS = [str(tree / "other")]
    with pytest.raises(InvalidImport, match="not under an allowed directory"):
        folder_fetch(str(tree / "set"), "set/a.txt", tmp_path / "out")


def test_fetch_limit(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(FileRejected, match="over the per-file limit"):
        folder_fetch(
            str(tree / "set"),
            "set/big.bin",
            tmp_path / "o",
            limits=ImportLimits(max_file_bytes=1000),
        )
    assert not (tmp_path / "o").exists()


def test_sha256_in_place_applies_the_same_checks_as_fetch(tree: Path, tmp_path: Path) -> None:
    folder = str(tree / "set")
    assert folder_sha256(folder, "set/sub/c.txt") == (hashlib.sha256(b"sea").hexdigest(), 3)
    for ref, reason in [
        ("../outside/secret.txt", "path leads outside the allowed folder"),
        ("set/link-out.txt", "path leads outside the allowed folder"),
        (str(tmp_path / "outside" / "secret.txt"), "not a path relative"),
        ("set/pipe", "not a regular file"),
        ("set/missing.txt", "cannot open the file"),
    ]:
        with pytest.raises(FileRejected, match=reason):
            folder_sha256(folder, ref)
    with pytest.raises(FileRejected, match="over the per-file limit"):
        folder_sha256(folder, "set/big.bin", limits=ImportLimits(max_file_bytes=1000))


def test_read_returns_small_files_and_refuses_bigger_ones_and_escapes(
    tree: Path, tmp_path: Path
) -> None:
    folder = str(tree / "set")
    assert folder_read(folder, "set/sub/c.txt", max_bytes=3) == b"sea"
    with pytest.raises(FileRejected, match="file is over"):
        folder_read(folder, "set/big.bin", max_bytes=1000)
    with pytest.raises(FileRejected, match="outside the allowed folder"):
        folder_read(folder, "set/link-out.txt", max_bytes=1000)
