"""Errors and warnings raised where DeepAccident data enters SafeAlign."""

from __future__ import annotations

import os


class DeepAccidentFormatError(ValueError):
    """A DeepAccident file breaks the expected layout.

    The message always names the file path, the 1-based line number (``line -`` for binary files, folders and
    whole-file problems) and the field, e.g.
    ``.../label/S/S_3.txt, line 2, field 'camera_visible': expected True or False, got 'yes'``.

    Attributes:
        path: the offending file or folder.
        line: 1-based line number, or None when no line applies.
        field: the field (token, key or file part) that is wrong.
        detail: what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike, line: int | None, field: str, detail: str) -> None:
        self.path = os.fspath(path)
        self.line = line
        self.field = field
        self.detail = detail
        where = f"line {line}" if line is not None else "line -"
        super().__init__(f"{self.path}, {where}, field {field!r}: {detail}")


class DeepAccidentWarning(UserWarning):
    """Something was skipped (``strict=False``) or dropped on export; the count is also recorded in the result."""
