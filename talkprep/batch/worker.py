"""One video in a worker process: thread limits first, then the same Pipeline as `process`.

Only the standard library is imported at the top: `limit_threads` must run before numpy, torch or
OpenCV start their thread pools.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any, TextIO, TypeVar

from talkprep.batch.jobs import VideoJob, VideoResult
from talkprep.console import Console
from talkprep.errors import TalkprepError
from talkprep.parallel import set_cores

T = TypeVar("T")

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
"""Environment variables that size the BLAS / OpenMP pools when those libraries load."""

PROGRESS_STEPS = 10
"""A worker logs a per-frame loop's progress this many times (its log feeds the progress line)."""


def limit_threads(threads: int) -> None:
    """Keep this process to `threads` compute threads so that K workers do not oversubscribe.

    BLAS and OpenMP read their variables when they load, so this runs before they are imported;
    torch is set directly, and OpenCV keeps to one thread per call in every run
    (talkprep.process). MediaPipe 0.10 has no thread option; its graph runs two threads of its
    own per process. Workers are not pinned to cores: on a machine shared with other jobs that
    would hold a worker to a busy core while another one idles.
    """
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    set_cores(threads)  # the video's span workers share these cores
    import torch

    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        # fails once the pool has been used in this process (a reused Ray worker): keep it then
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(threads)


class LogConsole(Console):
    """A worker's console: status lines go to its log; a per-frame loop logs every 10 %."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream=stream, results=stream)

    def progress(
        self, iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "frame"
    ) -> Iterator[T]:
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        step = max(1, total // PROGRESS_STEPS) if total else 0
        for done, item in enumerate(iterable, 1):
            yield item
            if step and (done % step == 0 or done == total):
                self.line(f"{desc} {done}/{total} {unit}s".strip())


def process_video(job: VideoJob) -> VideoResult:
    """Run the Pipeline on one video, then its report and trainer view, as `process` does.

    Never raises: an unusable input becomes an 'error' result and anything unexpected a 'failed'
    one with its traceback in the video's log, so one video never stops the others.
    """
    t0 = time.perf_counter()
    try:
        job.log.parent.mkdir(parents=True, exist_ok=True)
        log = job.log.open("a", buffering=1)
    except OSError as exc:
        from talkprep.io.atomic import os_error_sentence

        reason = f"cannot write its log: {os_error_sentence(exc)}"
        return VideoResult(str(job.video), job.name, "error", failures=(reason,))
    with log:
        log.write(
            f"=== {job.run_id} {time.strftime('%Y-%m-%d %H:%M:%S')} {socket.gethostname()} "
            f"pid {os.getpid()}: {job.video}\n"
        )
        console = LogConsole(log)
        try:
            with _stderr_to(log):
                result = _run_pipeline(job, console)
        except TalkprepError as exc:
            console.line(f"error: {exc}")
            result = VideoResult(str(job.video), job.name, "error", failures=(str(exc),))
        except Exception as exc:  # a bug on one video must not stop the batch
            log.write(traceback.format_exc())
            reason = f"{type(exc).__name__}: {exc} (traceback in {job.log})"
            result = VideoResult(str(job.video), job.name, "failed", failures=(reason,))
        wall = time.perf_counter() - t0
        console.line(f"{result.status} in {wall:.1f} s")
    return replace(result, wall_s=round(wall, 3))


@contextlib.contextmanager
def _stderr_to(log: TextIO) -> Iterator[None]:
    """Send file descriptor 2 to the video's log while it runs: native libraries (MediaPipe,
    TFLite) print there, and several workers would otherwise interleave on the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _run_pipeline(job: VideoJob, console: Console) -> VideoResult:
    from talkprep.config import build_config
    from talkprep.manifest import read_manifest
    from talkprep.process import process_video

    config = build_config({**job.values, "video": job.video, "out": job.out})
    result = process_video(config, console)
    statuses = {o.name: o.status for o in result.outcomes}
    failures = tuple(
        f"[{o.number}] {o.name} {o.status}: {o.message}" for o in result.failed_tasks
    ) + ((result.view_error,) if result.view_error else ())
    if failures:
        status = "failed"
    elif result.all_skipped:
        status = "up-to-date"
    else:
        status = "done"
    frames_record: Any = read_manifest(job.out).get("tasks", {}).get("frames") or {}
    n_frames = (frames_record.get("info") or {}).get("n_frames")
    return VideoResult(
        str(job.video),
        job.name,
        status,
        frames=int(n_frames) if isinstance(n_frames, int) else None,
        tasks=statuses,
        failures=failures,
    )
