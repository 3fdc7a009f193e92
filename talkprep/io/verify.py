"""Cheap completeness checks of output files, by format, without decoding pixels.

A rerun skips a task only when its files pass these checks, and `talkprep check` runs them on
every file: a JPEG must end with its end-of-image marker, a PNG with its IEND chunk, an .npy file
must be exactly as long as its header says, JSON must parse, a WAV's data chunk must fit the file,
a torch zip archive must have its central directory. A file cut short by a crash, a full disk or a
bad copy fails at least one of them.
"""

from __future__ import annotations

import ast
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG_START = b"\xff\xd8"
JPEG_END = b"\xff\xd9"
JPEG_TAIL = 64
"""Bytes at the end of a JPEG searched for the end marker (encoders may pad after it)."""
NPY_MAGIC = b"\x93NUMPY"
ZIP_END = b"PK\x05\x06"
ZIP_TAIL = 65536 + 22


def _read_ends(path: Path, head: int, tail: int) -> tuple[bytes, bytes, int]:
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        first = handle.read(head)
        if size > head:
            handle.seek(max(head, size - tail))
            last = handle.read(tail)
        else:
            last = first
    return first, last[-tail:] if tail else b"", size


def _jpeg(path: Path) -> str | None:
    first, last, size = _read_ends(path, 2, JPEG_TAIL)
    if size == 0:
        return "empty file"
    if not first.startswith(JPEG_START):
        return "not a JPEG"
    if JPEG_END not in last:
        return "JPEG cut short (no end-of-image marker)"
    return None


def _png(path: Path) -> str | None:
    first, last, size = _read_ends(path, 8, len(PNG_IEND))
    if size == 0:
        return "empty file"
    if first != PNG_SIGNATURE:
        return "not a PNG"
    if last != PNG_IEND:
        return "PNG cut short (no IEND chunk)"
    return None


def npy_header(path: Path) -> tuple[tuple[int, ...], str, bool, int]:
    """(shape, dtype string, Fortran order, data offset) of an .npy file; ValueError when it is
    not one."""
    with path.open("rb") as handle:
        head = handle.read(10)
        if len(head) < 10 or not head.startswith(NPY_MAGIC):
            raise ValueError("not an .npy file")
        major = head[6]
        if major == 1:
            length = struct.unpack("<H", head[8:10])[0]
            offset = 10
        else:
            head += handle.read(2)
            length = struct.unpack("<I", head[8:12])[0]
            offset = 12
        text = handle.read(length)
    if len(text) < length:
        raise ValueError(".npy header cut short")
    try:
        header = ast.literal_eval(text.decode("latin1"))
        shape = tuple(int(n) for n in header["shape"])
        descr = str(header["descr"])
        fortran = bool(header["fortran_order"])
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise ValueError(".npy header is damaged") from None
    return shape, descr, fortran, offset + length


def _npy(path: Path) -> str | None:
    import numpy as np

    try:
        shape, descr, _, offset = npy_header(path)
        itemsize = np.dtype(descr).itemsize
    except (ValueError, TypeError) as exc:
        return str(exc)
    expected = offset + itemsize * int(np.prod(shape, dtype=np.int64))
    size = path.stat().st_size
    if size != expected:
        needs = expected - offset
        return f".npy data is {size - offset} bytes; its header {list(shape)} needs {needs}"
    return None


def _json(path: Path) -> str | None:
    try:
        json.loads(path.read_bytes())
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    return None


def _wav(path: Path) -> str | None:
    with path.open("rb") as handle:
        head = handle.read(12)
        size = os.fstat(handle.fileno()).st_size
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return "not a RIFF/WAVE file"
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return "WAV has no data chunk"
            name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"data":
                if handle.tell() + length > size:
                    return "WAV data chunk cut short"
                return None
            handle.seek(length + (length & 1), os.SEEK_CUR)


def _torch_zip(path: Path) -> str | None:
    first, last, size = _read_ends(path, 4, ZIP_TAIL)
    if size == 0:
        return "empty file"
    if first[:2] != b"PK":
        return None if first[:1] == b"\x80" else "not a torch file"
    if ZIP_END not in last:
        return "torch file cut short (no zip directory)"
    return None


def _nonempty(path: Path) -> str | None:
    return "empty file" if path.stat().st_size == 0 else None


def _text(path: Path) -> str | None:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    if not text.strip():
        return "empty file"
    return None


_CHECKERS: dict[str, Callable[[Path], str | None]] = {
    ".jpg": _jpeg,
    ".jpeg": _jpeg,
    ".png": _png,
    ".npy": _npy,
    ".json": _json,
    ".wav": _wav,
    ".pt": _torch_zip,
    ".lms": _text,
    ".csv": _text,
}


def verify_file(path: str | os.PathLike[str]) -> str | None:
    """None when `path` is a complete file of its format (by suffix), else what is wrong."""
    path = Path(path)
    checker = _CHECKERS.get(path.suffix.lower(), _nonempty)
    try:
        return checker(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
