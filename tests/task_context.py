"""A TaskContext for running one task's `run` directly on a folder a test has filled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from talkprep.config import build_config
from talkprep.console import Console
from talkprep.tasks.base import TaskContext


def task_context(out: Path, n_frames: int, tasks: str, **options: Any) -> TaskContext:
    """The context a pipeline would give task(s) `tasks` for a folder of `n_frames` frames (the
    video is never opened: the frames task's record says how many there are)."""
    config = build_config({"video": out / "unused.mp4", "out": out, "tasks": tasks} | options)
    return TaskContext(
        out=out,
        config=config,
        input={},
        records={"frames": {"info": {"n_frames": n_frames}}},
        progress=Console(quiet=True).progress,
    )
