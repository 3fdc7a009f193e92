"""Atomic writers: every file goes to a temporary name in the same folder and is renamed into place,
so a killed run never leaves a half file that a rerun would trust."""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import io
import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from talkprep.io.digests import digest_bytes, digest_file, remember

TEMP_MARK = ".tmp-talkprep-"
LONGEST_TEMP_STEM = 200
"""A file name longer than this is replaced by its hash in its temporary's name (which adds up
to 40 bytes), so that a 255-byte name can still be written atomically."""
_TEMP_NAME = re.compile(rf"^\.(.+){re.escape(TEMP_MARK)}(\d+)-\d+$")
"""`.{final name}{TEMP_MARK}{process id}-{count}`, as _open_temp names a temporary."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], note: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path` (an empty file there); rename it to `path` when the
    block succeeds, noting the digest of what it holds (`note=False`: a link to a file whose
    digest is known already)."""
    target = os.fspath(path)
    tmp, fd = _open_temp(target)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        noted = (os.path.getsize(tmp), digest_file(tmp)) if note else None
        os.replace(tmp, target)
        if noted is not None:
            remember(target, *noted)
    except OSError as exc:
        _raise_naming(exc, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """`data` to `path` under a temporary name, then renamed, as atomic_path does, in four system
    calls (tens of thousands of frame files are written this way); notes the digest of `data`."""
    target = os.fspath(path)
    tmp, fd = _open_temp(target)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, target)
        remember(target, len(data), digest_bytes(data))
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            _raise_naming(exc, target)
        raise


_temp_numbers = itertools.count()
"""Temporary names of this process (next() on a count is atomic under the GIL)."""
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _open_temp(target: str) -> tuple[str, int]:
    """A new empty temporary file beside `target`, its folder made when missing: (path, fd).

    Named by process id and a count; a name left by a killed run (process ids recur, in a
    container every run may be the same one) is skipped, not reused.
    """
    folder, name = os.path.split(target)
    if len(os.fsencode(name)) > LONGEST_TEMP_STEM:  # the temporary's name must fit NAME_MAX too
        name = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
    folder_made = False
    while True:
        tmp = os.path.join(folder, f".{name}{TEMP_MARK}{os.getpid()}-{next(_temp_numbers)}")
        try:
            return tmp, os.open(tmp, _TEMP_FLAGS, 0o644)
        except FileExistsError:
            continue
        except FileNotFoundError as exc:
            if folder_made:
                _raise_naming(exc, target)
            os.makedirs(folder or ".", exist_ok=True)
            folder_made = True
        except OSError as exc:
            _raise_naming(exc, target)


def _raise_naming(exc: OSError, target: str) -> NoReturn:
    """Re-raise `exc` naming the file being written where it names none (a failed write()) or
    only the temporary."""
    if exc.filename is None or TEMP_MARK in os.fspath(exc.filename):
        raise OSError(exc.errno, exc.strerror, target) from exc
    raise exc


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """`array` as .npy, streamed to the temporary file: no in-memory copy (a 20-minute HuBERT
    table is 245 MB)."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)


class NpyRows:
    """Row blocks of an .npy file's data, written in place with pwrite (see `npy_rows`)."""

    def __init__(self, fd: int, offset: int, rows: int, row_shape: tuple[int, ...]) -> None:
        self._fd = fd
        self._offset = offset
        self._rows = rows
        self._row_shape = row_shape
        self._row_bytes = 4 * int(np.prod(row_shape))

    def __len__(self) -> int:
        return self._rows

    def __setitem__(self, rows: slice, values: np.ndarray) -> None:
        start, stop, step = rows.indices(self._rows)
        block = np.ascontiguousarray(values, dtype="<f4")
        if step != 1 or block.shape != (stop - start, *self._row_shape):
            raise ValueError(f"rows {start}:{stop}:{step} cannot take a {block.shape} block")
        data = memoryview(block).cast("B")
        position = self._offset + start * self._row_bytes
        while data:
            written = os.pwrite(self._fd, data, position)
            data, position = data[written:], position + written


@contextlib.contextmanager
def npy_rows(
    path: str | os.PathLike[str], shape: tuple[int, ...], row_shape: tuple[int, ...]
) -> Iterator[NpyRows]:
    """A float32 .npy file of `shape`, filled through the yielded NpyRows (its data read as rows
    of `row_shape`) straight on disk, then renamed into place: a table of any length never sits
    in memory (20 minutes of HuBERT is 245 MB). Rows never written read as zeros."""
    size = int(np.prod(shape))
    row_size = int(np.prod(row_shape))
    if size % row_size:
        raise ValueError(f"{shape} does not split into rows of {row_shape}")
    header = {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)}
    with atomic_path(path) as tmp, tmp.open("r+b") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        offset = handle.tell()
        handle.flush()
        os.truncate(handle.fileno(), offset + 4 * size)  # sparse zeros until written
        yield NpyRows(handle.fileno(), offset, size // row_size, row_shape)


def write_torch(path: str | os.PathLike[str], obj: Any) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def stale_temp_files(root: Path, patterns: Iterable[str]) -> list[Path]:
    """Temporaries that talkprep left, killed, while writing a file of `patterns` (relative to
    `root`, globs allowed in the last part): only in those patterns' folders (one listing each,
    no walk of the tree, never inside a symlinked folder), only under talkprep's own temporary
    name for a file of the pattern, and only from processes that are gone (a running `talkprep
    preview` keeps its file)."""
    by_folder: dict[str, set[str]] = {}
    for pattern in patterns:
        folder, _, name = pattern.rpartition("/")
        by_folder.setdefault(folder, set()).add(name)
    found = []
    for folder, names in sorted(by_folder.items()):
        where = root / folder
        if folder and any((root / p).is_symlink() for p in _prefixes(folder)):
            continue
        try:
            with os.scandir(where) as entries:
                candidates = [(e.name, e.path) for e in entries if TEMP_MARK in e.name]
        except OSError:
            continue
        for name, path in candidates:
            match = _TEMP_NAME.match(name)
            if not match or not os.path.isfile(path) or os.path.islink(path):
                continue
            final, pid = match.group(1), int(match.group(2))
            if any(fnmatch.fnmatchcase(final, n) for n in names) and _process_gone(pid):
                found.append(Path(path))
    return found


def remove_temp_files(root: Path, patterns: Iterable[str]) -> int:
    """Delete the stale temporaries of `patterns` (`stale_temp_files`); returns how many."""
    removed = 0
    for path in stale_temp_files(root, patterns):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def _prefixes(folder: str) -> list[str]:
    parts = folder.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _process_gone(pid: int) -> bool:
    """Whether no process `pid` runs (this process's own id: an earlier run that had it). A
    zombie counts as gone: a killed run's worker, orphaned, stays one until something reaps it,
    and it writes nothing more."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OverflowError:  # no process has such an id
        return True
    except PermissionError:  # another user's process
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Whether process `pid` has ended but not been reaped (Linux /proc; False where there is
    none)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return False
    return bool(fields) and fields[0] in (b"Z", b"X")


_OS_ERROR_SENTENCES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error (a failing disk or a lost network mount)",
    errno.ENAMETOOLONG: "file name too long",
}


def final_name(path: str | os.PathLike[str], root: Path | None = None) -> str:
    """The name a temporary file was going to get (`parsing/.212.png.tmp-talkprep-x` -> 212.png),
    relative to `root` when it lies under it."""
    target = Path(path)
    name = target.name
    if TEMP_MARK in name:
        name = name.split(TEMP_MARK, 1)[0].removeprefix(".")
    target = target.with_name(name)
    if root is not None:
        with contextlib.suppress(ValueError):
            return str(target.relative_to(root))
    return str(target)


def os_error_reason(exc: OSError) -> str:
    """What went wrong, in words: 'no space left on device', 'read-only file system'."""
    return _OS_ERROR_SENTENCES.get(exc.errno or -1) or (exc.strerror or str(exc)).lower()


def os_error_sentence(exc: OSError, root: Path | None = None, action: str = "writing") -> str:
    """One readable line for an OSError: 'no space left on device while writing parsing/212.png'."""
    reason = os_error_reason(exc)
    if exc.filename:
        return f"{reason} while {action} {final_name(exc.filename, root)}"
    return reason


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
