"""Content digests of the files talkprep writes, taken when they are written.

Every atomic write hashes the bytes it writes (SHA-256, cut to 16 bytes) and remembers the digest
under the file's absolute path; when a task ends, the runner takes the digests of its outputs,
adds each file's identity (size, inode, ctime) and keeps them in a table beside the manifest
(`.talkprep/digests/<task>.npy`). A rerun compares every file's identity with the table and hashes
again only the files whose identity moved (any write, copy, rename, `touch -r` or hard-link edit
moves the ctime, which no user can set back); `talkprep check` hashes every file.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIGEST_BYTES = 16
HASH_BLOCK = 4 << 20
HASH_THREADS = 4
"""hashlib lets other threads run while it hashes, so files are hashed four at a time."""
TABLE_DTYPE = np.dtype(
    [("size", "<i8"), ("ino", "<u8"), ("ctime", "<i8"), ("digest", "u1", (DIGEST_BYTES,))]
)

_written: dict[str, tuple[int, bytes]] = {}
_written_guard = threading.Lock()


def digest_bytes(data: bytes | memoryview) -> bytes:
    """The content digest of `data`."""
    return hashlib.sha256(data).digest()[:DIGEST_BYTES]


def digest_file(path: str | os.PathLike[str]) -> bytes:
    """The content digest of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.digest()[:DIGEST_BYTES]


def remember(path: str | os.PathLike[str], size: int, digest: bytes) -> None:
    """Note the digest of what was just written to `path` (called by the atomic writers)."""
    with _written_guard:
        _written[os.path.abspath(path)] = (size, digest)


def take_noted() -> dict[str, tuple[int, bytes]]:
    """Every digest noted and not yet taken: a span worker hands its files' digests to the
    process whose runner keeps the table (talkprep.parallel)."""
    with _written_guard:
        noted = dict(_written)
        _written.clear()
    return noted


def forget_all() -> None:
    """Drop every digest not taken (files a run wrote that no task claimed: report, view)."""
    with _written_guard:
        _written.clear()


def take_table(paths: Sequence[str | Path]) -> np.ndarray:
    """The table of `paths` (which exist): each file's identity and the digest its writer noted,
    or, for a file written another way or changed since, the digest of what is there now."""
    table = identities(paths)
    with _written_guard:
        noted = [_written.pop(os.path.abspath(p), None) for p in paths]
    digests = np.zeros((len(paths), DIGEST_BYTES), np.uint8)
    unknown = []
    for row, note in enumerate(noted):
        if note is not None and note[0] == table["size"][row]:
            digests[row] = np.frombuffer(note[1], np.uint8)
        else:
            unknown.append(row)
    for row, digest in zip(unknown, hash_files([paths[r] for r in unknown]), strict=True):
        digests[row] = np.frombuffer(digest, np.uint8)
    table["digest"] = digests
    return table


def hash_files(paths: Sequence[str | Path]) -> list[bytes]:
    """Digests of many files, several at a time."""
    if len(paths) < 8:
        return [digest_file(p) for p in paths]
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        return list(pool.map(digest_file, paths, chunksize=64))


def identities(paths: Sequence[str | Path]) -> np.ndarray:
    """(size, inode, ctime) of each file as a table (digests zero); size -1 where it is missing."""
    rows = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            rows.append((-1, 0, 0))
        else:
            rows.append((stat.st_size, stat.st_ino, stat.st_ctime_ns))
    table = np.zeros(len(paths), TABLE_DTYPE)
    if rows:
        columns = np.array(rows, dtype=np.int64).T
        table["size"], table["ino"], table["ctime"] = columns[0], columns[1], columns[2]
    return table


def table_bytes(table: np.ndarray) -> bytes:
    """A digest table as .npy bytes."""
    buffer = io.BytesIO()
    np.save(buffer, table, allow_pickle=False)
    return buffer.getvalue()


def load_table(path: Path, sha256: object, rows: object) -> np.ndarray | None:
    """The digest table at `path` when it is the one a record names (its SHA-256 and row
    count), else None: a table edited, swapped or cut short proves nothing."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    try:
        table = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError):
        return None
    if table.dtype != TABLE_DTYPE or table.ndim != 1 or len(table) != rows:
        return None
    return table


@dataclass(frozen=True)
class Verdict:
    """How a group of files compares with its digest table."""

    changed: int | None
    """Row of the first file whose content differs from its digest (None: all the same)."""
    refreshed: np.ndarray | None
    """The table with new identities where files moved but kept their content (a copy, a hard
    link, a restored view), to save so that the next check stays cheap; None when none moved."""


def verify_table(paths: Sequence[str | Path], table: np.ndarray, every: bool = False) -> Verdict:
    """Compare files with their table: hash those whose identity moved (`every`: all of them)."""
    now = identities(paths)
    moved = (
        (now["size"] != table["size"])
        | (now["ino"] != table["ino"])
        | (now["ctime"] != table["ctime"])
    )
    rows = np.arange(len(paths)) if every else np.flatnonzero(moved)
    if not rows.size:
        return Verdict(None, None)
    resized = rows[now["size"][rows] != table["size"][rows]]
    if resized.size:
        return Verdict(int(resized[0]), None)
    present = [paths[r] for r in rows]
    digests = np.frombuffer(b"".join(hash_files(present)), np.uint8).reshape(-1, DIGEST_BYTES)
    differs = np.flatnonzero((digests != table["digest"][rows]).any(axis=1))
    if differs.size:
        return Verdict(int(rows[differs[0]]), None)
    if not moved.any():
        return Verdict(None, None)
    refreshed = table.copy()
    for field in ("size", "ino", "ctime"):
        refreshed[field] = now[field]
    return Verdict(None, refreshed)
