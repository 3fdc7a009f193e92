"""One video, start to finish: the tasks, then the report and the trainer's view.

`talkprep process` and every `talkprep batch` worker call this, so a batch gives exactly the files
a single run gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from talkprep.config import Config
from talkprep.console import Console
from talkprep.errors import TaskError
from talkprep.pipeline import Pipeline, TaskOutcome


@dataclass(frozen=True)
class ProcessResult:
    """How one video ended: each task's outcome, and what went wrong after them."""

    outcomes: list[TaskOutcome]
    view_error: str | None = None
    """Why the trainer's view was not written (None when it was, or when tasks failed)."""

    @property
    def failed_tasks(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.status in ("failed", "blocked")]

    @property
    def ok(self) -> bool:
        return not self.failed_tasks and self.view_error is None

    @property
    def all_skipped(self) -> bool:
        return all(o.status == "skipped" for o in self.outcomes)


def process_video(config: Config, console: Console) -> ProcessResult:
    """Run the requested tasks; rebuild the report when anything ran; write the view when all
    tasks succeeded. Raises TalkprepError only before any work (bad input, folder in use)."""
    from talkprep.report.html import REPORT_NAME
    from talkprep.targets.view import restore_canonical

    if config.out.is_dir():
        restore_canonical(config.out)
    _one_thread_per_opencv_call()
    outcomes = Pipeline(config, console).run()
    result = ProcessResult(outcomes)
    if not result.all_skipped or not (config.out / REPORT_NAME).is_file():
        build_report_safely(config.out, console)
    if result.failed_tasks:
        return result
    return ProcessResult(outcomes, view_error=write_view_safely(config.out, config.target, console))


def _one_thread_per_opencv_call() -> None:
    """Frame loops already run on thread pools and two tasks run at once, so an OpenCV call keeps
    to one thread: its own pool only adds wake-ups on a busy machine (parsing 7,500 frames took
    7 CPU-s less, the whole 5-minute run about 9)."""
    import cv2

    cv2.setNumThreads(1)


def build_report_safely(folder: Path, console: Console) -> Path | None:
    """Build report.html; a failure is said in one line but never fails the dataset itself."""
    from talkprep.report.html import build_report

    try:
        path = build_report(folder, console.progress)
    except Exception as exc:  # the report is a view: a broken view must not hide the results
        console.line(f"report not written: {type(exc).__name__}: {exc}")
        return None
    console.result(f"Report: {path}")
    return path


def write_view_safely(
    folder: Path, target: str, console: Console, out: Path | None = None
) -> str | None:
    """Write a trainer's view (in place when out is None); returns why not, in one line."""
    from talkprep.targets import get_target
    from talkprep.targets.view import write_view

    try:
        write_view(folder, get_target(target), out, console.progress)
    except TaskError as exc:
        message = f"{target} view not written: {exc}"
        console.line(message)
        return message
    return None
