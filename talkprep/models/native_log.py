"""Keep MediaPipe's C++ log lines (absl INFO/WARNING written straight to file descriptor 2, which
no environment variable silences) out of the console while its graphs are built and run."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

SHOW_NATIVE_LOGS = "TALKPREP_NATIVE_LOGS"
"""Set this environment variable to 1 to see MediaPipe's own log lines when debugging."""

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
