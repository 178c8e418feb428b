"""Atomic, durable file writes (one implementation for every writer of the project).

:func:`atomic_writer` opens a temp file beside the target (``.<name>.<pid>.<random>.tmp``), and on success fsyncs it,
gives it the mode ``open(path, "w")`` would (``0o666`` minus the umask), renames it into place and fsyncs the folder;
on any error the temp file is removed and the target is untouched. :func:`clean_stale_temp_files` removes temp files
of the same target left by killed writers. :func:`atomic_write_bytes` / :func:`atomic_write_text` are the one-call
forms.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator

STALE_TEMP_AGE_S = 600.0
"""A temp file of the target whose writer cannot be identified counts as stale after this long [s]."""


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _writer_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Remove temp files of ``path`` (``.<name>.<pid>.<random>.tmp`` beside it) whose writing process no longer
    runs, and unidentifiable ones older than :data:`STALE_TEMP_AGE_S`; returns the removed paths. Temp files of
    live writers (also this process's) are kept."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    pattern = re.compile(re.escape(_temp_prefix(path)) + r"(?:(\d+)\.)?[^/]*\.tmp$")
    now = time.time()
    for candidate in path.parent.iterdir():
        m = pattern.fullmatch(candidate.name)
        if not m or not candidate.is_file():
            continue
        pid = int(m.group(1)) if m.group(1) else None
        if pid == os.getpid():
            continue
        try:
            stale = (not _writer_alive(pid)) if pid is not None else (now - candidate.stat().st_mtime > STALE_TEMP_AGE_S)
            if stale:
                candidate.unlink()
                removed.append(candidate)
        except FileNotFoundError:  # another cleaner was faster
            continue
    return removed


def _default_file_mode() -> int:
    """``0o666`` minus the process umask (what ``open(path, "w")`` creates)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Write ``path`` atomically: yields a file object on a temp file beside it (see the module docstring).
    Parent folders are created; stale temp files of the same target are cleaned first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temp_files(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_writer`)."""
    with atomic_writer(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))
