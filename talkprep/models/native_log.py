"""Keep MediaPipe's C++ log lines (absl/glog and TFLite lines written straight to file descriptor 2
from the graph's own threads, which no environment variable silences) off the console.

Two layers: `quiet_native_logs` points fd 2 at /dev/null around model construction and inference
(enough for library use), and `filter_native_logs`, which the command line wraps around a whole
run, sends fd 2 through a pipe that drops native log lines and passes everything else on. The
second catches lines that a graph thread writes after the first has restored fd 2.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from collections.abc import Iterator

SHOW_NATIVE_LOGS = "TALKPREP_NATIVE_LOGS"
"""Set this environment variable to 1 to see MediaPipe's own log lines when debugging."""

NATIVE_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} [\d:.]+ +\d+ [\w.\-/]+:\d+\]"  # glog / absl prefix
    rb"|INFO: Created TensorFlow Lite"
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|INFO: Initialized TensorFlow Lite"
    rb"|gl_context[\w.]*:\d+\])"
)
"""Lines that MediaPipe's C++ side writes; nothing talkprep prints starts like this."""
_NATIVE_WORDS = (b"INFO: ", b"WARNING: ", b"gl_context")
_TERMINATORS = re.compile(rb"[\r\n]")
_READ_SIZE = 65536
PUMP_JOIN_S = 5.0
"""How long the end of a run waits for the filter to pass on what is left in the pipe."""

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Point fd 2 at /dev/null for the block; nested and concurrent uses share one redirect."""
    global _depth, _saved_fd
    if os.environ.get(SHOW_NATIVE_LOGS) == "1":
        yield
        return
    with _lock:
        if _depth == 0:
            sys.stderr.flush()
            _saved_fd = os.dup(2)
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None


def drop_native_lines(buffer: bytes) -> tuple[bytes, bytes]:
    """Split `buffer` into (text to pass on, unfinished rest to keep for the next read).

    Segments end at a newline or carriage return (progress bars redraw with '\\r'). Native log
    lines are dropped whole. An unfinished segment is passed on at once unless it may still grow
    into a native line, so that progress bars are not held back.
    """
    out = bytearray()
    start = 0
    for match in _TERMINATORS.finditer(buffer):
        segment = buffer[start : match.end()]
        if not NATIVE_LINE.match(segment):
            out += segment
        start = match.end()
    rest = buffer[start:]
    if rest and not _may_be_native(rest):
        out += rest
        rest = b""
    return bytes(out), rest


def _may_be_native(partial: bytes) -> bool:
    """Whether an unfinished segment could be (the start of) a native log line."""
    if re.match(rb"^[IWEF](?:\d|$)", partial):
        return True
    return any(p.startswith(partial) or partial.startswith(p) for p in _NATIVE_WORDS)


@contextlib.contextmanager
def filter_native_logs() -> Iterator[None]:
    """For the block, route fd 2 through a thread that drops native log lines.

    What the C++ side writes to fd 2 (and child processes that inherit it) reaches the original
    stderr without native log lines. Python's own `sys.stderr`, when it is fd 2, is pointed
    straight at the original stderr for the block, so progress bars still see a terminal.
    """
    if os.environ.get(SHOW_NATIVE_LOGS) == "1":
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, terminal), daemon=True)
    pump.start()
    python_stderr = sys.stderr
    direct: io.TextIOWrapper | None = None
    if _is_fd_2(python_stderr):
        direct = io.TextIOWrapper(
            open(terminal, "wb", closefd=False),  # noqa: SIM115 (closed in the finally below)
            encoding=python_stderr.encoding,
            errors="backslashreplace",
            line_buffering=True,
        )
        sys.stderr = direct
    try:
        yield
    finally:
        if direct is not None:
            if sys.stderr is direct:
                sys.stderr = python_stderr
            direct.close()
        os.dup2(terminal, 2)  # closes the pipe's last write end: the pump sees end of file
        pump.join(timeout=PUMP_JOIN_S)
        if not pump.is_alive():  # else a surviving child still holds the pipe: keep the fd open
            os.close(terminal)


def _is_fd_2(stream: object) -> bool:
    try:
        return stream.fileno() == 2  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _pump(read_end: int, terminal: int) -> None:
    """Copy the pipe to the terminal without native log lines, until end of file."""
    rest = b""
    try:
        while chunk := os.read(read_end, _READ_SIZE):
            text, rest = drop_native_lines(rest + chunk)
            if text:
                _write_all(terminal, text)
        if rest and not NATIVE_LINE.match(rest):
            _write_all(terminal, rest)
    except OSError:
        pass
    finally:
        os.close(read_end)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
