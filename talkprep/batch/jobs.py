"""What travels between the batch runner and its workers: one job per video, one result back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MAX_ATTEMPTS = 3
"""Tries per video when its worker process dies (a failed task is a result, not a retry)."""

OK_STATUSES = ("done", "up-to-date")
"""Video statuses that count as success; the others are 'failed', 'error' and 'crashed'."""


@dataclass(frozen=True)
class VideoJob:
    """One video of a batch: where it goes and with which options."""

    video: Path
    name: str
    """Folder name under ROOT, unique within the batch."""
    out: Path
    log: Path
    """Where the worker writes what it is doing (read by the runner for the progress line)."""
    values: dict[str, Any]
    """Option values for build_config, without video and out."""
    run_id: str
    """Marks this batch run's lines in the log, so that retries can be counted."""


@dataclass(frozen=True)
class VideoResult:
    """How one video ended."""

    video: str
    folder: str
    status: str
    """'done', 'up-to-date' (every task skipped), 'failed' (some task failed or was blocked),
    'error' (unusable input or folder: nothing was run) or 'crashed' (its worker kept dying)."""
    frames: int | None = None
    wall_s: float = 0.0
    attempts: int = 1
    tasks: dict[str, str] = field(default_factory=dict)
    """Task name -> status in this run."""
    failures: tuple[str, ...] = ()
    """One line per failed or blocked task, or the error that stopped the video."""

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES


def crashed(job: VideoJob, reason: str, attempts: int) -> VideoResult:
    """The result of a video whose worker died on every try."""
    return VideoResult(str(job.video), job.name, "crashed", attempts=attempts, failures=(reason,))


class Events(Protocol):
    """What an engine tells the runner while it works."""

    def started(self, job: VideoJob) -> None: ...

    def retrying(self, job: VideoJob, reason: str) -> None: ...

    def finished(self, result: VideoResult) -> None: ...

    def tick(self) -> None: ...


Work = Callable[[VideoJob], VideoResult]
"""What a worker does with a job: `worker.process_video`, or a stand-in in tests."""
