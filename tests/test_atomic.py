"""Output files: written whole or not at all, never through a planted link, with the asked mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from etl.atomic import atomic_file, write_text_atomic


def test_replaces_the_old_file_whole_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    write_text_atomic(target, "new\nlines\n")
    assert target.read_bytes() == b"new\nlines\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"), atomic_file(target) as f:
        f.write(b"half")
        raise OSError(28, "disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_mode_is_set_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_text_atomic(tmp_path / "a.prom", "x\n", mode=0o644)
        write_text_atomic(tmp_path / "b.txt", "x\n")
    finally:
        os.umask(old)
    assert (tmp_path / "a.prom").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600  # a new file under that umask


def test_the_file_is_synced_before_the_rename(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"
    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_text_atomic(target, "{}\n")
    (temp, existed), (folder, renamed) = synced
    assert Path(temp).parent == tmp_path and Path(temp).name.startswith(".report.json.")
    assert not existed  # the file was flushed before it took the final name
    assert (Path(folder), renamed) == (tmp_path, True)  # then the folder entry
