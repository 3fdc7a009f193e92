"""Paths read from a file in OUT (the manifest's ledger, a view's record) are confined to OUT.

A folder may come from someone else, so a name read from it is never trusted as it is: it must
be relative, free of `..`, and may not reach out of OUT through a symlinked folder before
talkprep deletes or replaces anything by it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

MAX_NAME_BYTES = 4096


def relative_name_problem(name: object) -> str | None:
    """Why `name` cannot be a path relative to OUT (None when it can): not a string, empty,
    absolute, with a `..` part, a NUL or a backslash, or longer than any real path."""
    if not isinstance(name, str) or not name:
        return f"{name!r} is not a file name"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return f"{name[:40]!r}... is longer than any path"
    if "\0" in name or "\\" in name:
        return f"{name!r} holds a NUL or a backslash"
    path = PurePosixPath(name)
    if path.is_absolute():
        return f"{name!r} is an absolute path"
    if any(part == ".." for part in path.parts):
        return f"{name!r} leaves the folder through '..'"
    return None


def under_symlink(root: Path, path: Path) -> bool:
    """Whether any folder between `root` and `path` is a symlink (never delete through one)."""
    current = root
    for part in path.relative_to(root).parts[:-1]:
        current = current / part
        if current.is_symlink():
            return True
    return False


def inside(root: Path, path: Path) -> bool:
    """Whether `path`, its symlinks resolved, lies inside `root` (resolved too)."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
