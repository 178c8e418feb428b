"""One atomic writer: the target is replaced whole or not at all, with the umask's mode, and killed writers' temp
files are cleaned."""

from __future__ import annotations

import os
import stat

import pytest

from envs.atomic import atomic_write_text, atomic_writer


def test_a_failed_write_leaves_the_target_and_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "results.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_writer(target, "w") as f:
            f.write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_mode_follows_the_umask_and_stale_temp_files_go(tmp_path):
    target = tmp_path / "x.txt"
    stale = tmp_path / ".x.txt.999999.abc.tmp"  # a temp file of a writer that no longer runs
    stale.write_text("junk")
    old = os.umask(0o027)
    try:
        atomic_write_text(target, "ok")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and not stale.exists()
