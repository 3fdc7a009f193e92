"""Reading ROOT/batch.json as it stands now: a video the file calls "running" whose runner is gone
(killed by `kill -9`, a power cut: nothing rewrote the file) was interrupted, and is said so.

The runner holds ROOT's lock for the whole batch and the OS frees it when the runner dies, so a
lock nobody holds means no runner: this is what every reader of the file asks, never the pid
alone (pids are reused, and a runner on another host shares no pid space).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from talkprep.errors import OutputError

BATCH_JSON = "batch.json"
RUNNING = "running"
PENDING = "pending"
INTERRUPTED = "interrupted"


def runner_alive(root: Path) -> bool:
    """Whether a `talkprep batch` runner holds ROOT's lock now (a shared lock taken and given
    back at once: it fails only while the runner's exclusive lock is held)."""
    from talkprep.pipeline import LOCK_NAME

    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(root / LOCK_NAME, flags)
    except OSError:
        return False  # no lock file (or a planted link): no runner ever held it there
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return True
        raise
    else:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def live_summary(data: dict[str, Any], alive: bool) -> dict[str, Any]:
    """batch.json's content as it stands: with no runner alive, every video still marked running
    is interrupted and the batch is not complete."""
    videos = data.get("videos")
    if alive or not isinstance(videos, list):
        return data
    entries = [
        {**entry, "status": INTERRUPTED}
        if isinstance(entry, dict) and entry.get("status") == RUNNING
        else entry
        for entry in videos
    ]
    return {**data, "videos": entries, "complete": bool(data.get("complete")) and entries == videos}


def read_summary(root: Path) -> dict[str, Any] | None:
    """ROOT/batch.json as it stands now (see live_summary); None when there is none.

    Raises OutputError, in one line, for a file that is not talkprep's batch summary.
    """
    path = root / BATCH_JSON
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not (isinstance(data, dict) and "talkprep_version" in data and "videos" in data):
        raise OutputError(f"{path} was not written by talkprep batch")
    return live_summary(data, runner_alive(root))


def format_status(root: Path, data: dict[str, Any]) -> str:
    """One row per video of a batch summary (folder, status, N, time, first failure), then
    whether the batch is still running, ended or was interrupted."""
    rows = [("folder", "status", "N", "time", "note")]
    for entry in data.get("videos") or []:
        if not isinstance(entry, dict):
            continue
        failures = entry.get("failures") or []
        wall = entry.get("wall_s")
        rows.append(
            (
                str(entry.get("folder", "?")),
                str(entry.get("status", "?")),
                str(entry.get("frames") or ""),
                f"{wall:.1f} s" if isinstance(wall, int | float) and wall else "",
                str(failures[0]) if failures else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        (
            "  ".join(f"{c:<{w}}" for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        ).rstrip()
        for row in rows
    ]
    statuses = [row[1] for row in rows[1:]]
    if RUNNING in statuses:
        lines.append(f"\n{root}: a batch is running here now")
    elif INTERRUPTED in statuses:
        count = sum(status in (INTERRUPTED, PENDING) for status in statuses)
        lines.append(
            f"\n{root}: the batch was stopped with {count} video(s) unfinished; rerun the same "
            "`talkprep batch` command to resume them"
        )
    else:
        lines.append(f"\n{root}: the batch ended ({len(statuses)} video(s))")
    return "\n".join(lines)
