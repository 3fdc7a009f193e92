"""`talkprep batch`: options, the run over an engine, progress, ROOT/batch.json and the summary."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from talkprep import __version__
from talkprep.batch.inputs import assign_folders, collect_videos
from talkprep.batch.jobs import VideoJob, VideoResult
from talkprep.batch.ray_engine import DEFAULT_RAY_THREADS, RayPlan
from talkprep.batch.status import BATCH_JSON, INTERRUPTED, PENDING, RUNNING
from talkprep.config import build_config
from talkprep.console import Console
from talkprep.errors import OutputError, UsageError
from talkprep.io.atomic import os_error_sentence, write_json
from talkprep.manifest import STATE_DIR
from talkprep.parallel import available_cores

LOG_DIR = Path(STATE_DIR) / "batch-logs"
"""Per-video worker logs, under ROOT (kept out of the dataset folders themselves)."""
SAVE_EVERY_S = 2.0
"""batch.json is rewritten at most this often while videos finish, and always at the end."""
REFRESH_S = 1.0
SHOWN_WORKERS = 4
"""Running videos named on the progress line."""
DOING_CHARS = 48
MTIME_SLACK_S = 1.0
"""File times come from a coarser clock than time.time(): a log just written may look older."""
_STATUS_LINE = re.compile(r"^\[\d+\] |\d+/\d+ \w+$")
"""Lines of a worker's LogConsole: a task starting or ending, or a per-frame count."""

EngineName = Literal["local", "ray"]
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs (the per-video options are the Config's, as for `process`)."""

    engine: EngineName = "local"
    """'local': worker processes on this machine; 'ray': one Ray task per video."""
    workers: int | None = None
    """Videos at a time (local); with Ray and no address, sizes the local instance."""
    threads_per_video: int | None = None
    """Threads (local) or declared Ray CPUs of each video."""
    gpus_per_video: float | None = None
    """GPUs each Ray task reserves; default from --device and the cluster."""
    ray_address: str | None = None
    """Address of a running Ray cluster; without it a local Ray instance is started."""


@dataclass(frozen=True)
class BatchSummary:
    """The results of one batch run, in input order."""

    root: Path
    results: tuple[VideoResult, ...]
    wall_s: float
    videos: int
    """How many videos the batch had; a run that ended early has fewer results."""

    @property
    def ok(self) -> bool:
        return len(self.results) == self.videos and all(r.ok for r in self.results)


def split_batch_options(values: dict[str, Any]) -> tuple[BatchOptions, dict[str, Any]]:
    """Take the batch-only options out of merged option values; the rest are per-video options."""
    rest = dict(values)
    raw = {f.name: rest.pop(f.name) for f in fields(BatchOptions) if rest.get(f.name) is not None}
    engine = str(raw.get("engine", "local"))
    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    options = BatchOptions(
        engine=engine,  # type: ignore[arg-type]
        workers=_count("--workers", raw.get("workers")),
        threads_per_video=_count("--threads-per-video", raw.get("threads_per_video")),
        gpus_per_video=_gpus(raw.get("gpus_per_video")),
        ray_address=str(raw["ray_address"]) if raw.get("ray_address") else None,
    )
    if options.ray_address and options.engine != "ray":
        raise UsageError("--ray-address needs --engine ray")
    if options.ray_address and options.workers:
        raise UsageError(
            "--workers sizes a local Ray instance; with --ray-address the cluster's CPUs decide "
            "(set --threads-per-video instead)"
        )
    if options.gpus_per_video is not None and options.engine != "ray":
        raise UsageError("--gpus-per-video is for --engine ray; local workers share the GPUs")
    return options, rest


def default_workers(cores: int) -> int:
    """Half the cores, two threads each: see benchmarks/bench_batch.py for the trade-off."""
    return max(1, cores // 2)


def run_batch(
    inputs: Sequence[Path],
    root: Path,
    values: dict[str, Any],
    options: BatchOptions,
    console: Console | None = None,
) -> BatchSummary:
    """Process every video into ROOT/<name>/; one failed video never stops the others.

    Raises TalkprepError before any work on bad options, no videos, an unusable ROOT or a missing
    engine; everything that goes wrong with one video is in its result instead.
    """
    console = console or Console()
    values = {k: v for k, v in values.items() if k not in ("video", "out")}
    ray = None
    if options.engine == "ray":
        from talkprep.batch.ray_engine import import_ray

        ray = import_ray()
    videos = collect_videos(inputs, root)
    if values.get("audio") and len(videos) > 1:
        raise UsageError(
            "--audio gives one audio file to every video; process such videos one at a time"
        )
    build_config({**values, "video": videos[0], "out": root / "_"})  # bad options fail here
    if ray is None:
        return _run(videos, root, values, options, console, None)
    from talkprep.batch.ray_engine import connect, plan

    local_cpus = None
    if options.workers:
        local_cpus = options.workers * (options.threads_per_video or DEFAULT_RAY_THREADS)
    connect(ray, options.ray_address, local_cpus)
    try:
        sizing = plan(
            ray, options.threads_per_video, options.gpus_per_video, values.get("device", "auto")
        )
        return _run(videos, root, values, options, console, (ray, sizing))
    finally:
        ray.shutdown()


def _run(
    videos: list[Path],
    root: Path,
    values: dict[str, Any],
    options: BatchOptions,
    console: Console,
    ray_and_plan: tuple[Any, RayPlan] | None,
) -> BatchSummary:
    """Lock ROOT, give each video its folder and run them on the engine."""
    from talkprep.pipeline import folder_lock

    _make_root(root)
    t0 = time.perf_counter()
    with folder_lock(root):
        _refuse_foreign_summary(root / BATCH_JSON)
        run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        jobs = [
            VideoJob(video, name, root / name, root / LOG_DIR / f"{name}.log", values, run_id)
            for video, name in zip(videos, assign_folders(videos, root), strict=True)
        ]
        tracker = _Tracker(root, jobs, options, console)
        try:
            if ray_and_plan is None:
                from talkprep.batch.local import run_local

                workers = options.workers or default_workers(available_cores())
                threads = options.threads_per_video or max(1, available_cores() // workers)
                tracker.describe(f"{workers} worker(s) x {threads} thread(s)")
                run_local(jobs, workers, threads, tracker)
            else:
                from talkprep.batch.ray_engine import run_ray

                ray, sizing = ray_and_plan
                tracker.describe(
                    f"Ray: {sizing.slots} video(s) at a time, {sizing.cpus} CPU(s)"
                    + (f" and {sizing.gpus:g} GPU" if sizing.gpus else "")
                    + " each"
                )
                run_ray(jobs, ray, sizing, tracker)
        finally:
            tracker.close()
    return BatchSummary(root, tracker.results(), round(time.perf_counter() - t0, 3), len(jobs))


def format_summary(summary: BatchSummary) -> str:
    """The end-of-batch table: one row per video, then the totals."""
    rows = [("video", "status", "N", "time", "note")]
    for r in summary.results:
        note = r.failures[0] if r.failures else ""
        if len(r.failures) > 1:
            note += f" (+{len(r.failures) - 1} more)"
        if r.attempts > 1:
            note = f"{r.attempts} tries; {note}".rstrip("; ")
        time_text = f"{r.wall_s:.1f} s" if r.wall_s else ""
        rows.append((r.folder, r.status, str(r.frames or ""), time_text, note))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        (
            "  ".join(f"{c:<{w}}" for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        ).rstrip()
        for row in rows
    ]
    counts = _counts(summary.results)
    totals = ", ".join(f"{n} {status}" for status, n in counts.items())
    lines.append(
        f"\n{len(summary.results)} video(s) in {summary.wall_s:.1f} s: {totals}; "
        f"details in {summary.root / BATCH_JSON}"
    )
    return "\n".join(lines)


class _Tracker:
    """Follows the engine's events: the progress bar, retries, and ROOT/batch.json."""

    def __init__(
        self, root: Path, jobs: list[VideoJob], options: BatchOptions, console: Console
    ) -> None:
        self.root = root
        self.jobs = jobs
        self.options = options
        self.console = console
        self.engine = ""
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.started_wall = time.time() - MTIME_SLACK_S
        self.running: dict[str, VideoJob] = {}
        self.done: dict[str, VideoResult] = {}
        self.saved = 0.0
        self.shown = 0.0
        self.bar = tqdm(
            total=len(jobs),
            unit="video",
            file=console.stream,
            disable=True if console.quiet else None,
            dynamic_ncols=True,
        )
        self._save()

    def describe(self, engine: str) -> None:
        self.engine = engine
        self._say(f"{len(self.jobs)} video(s) into {self.root}; {engine}")
        self._save()

    def started(self, job: VideoJob) -> None:
        """A video is on a worker: batch.json says so at once (a reader that finds its runner
        gone then knows the video was interrupted, not that it never began)."""
        self.running[job.name] = job
        self._save()

    def retrying(self, job: VideoJob, reason: str) -> None:
        self._say(f"{job.name}: {reason}; retrying")

    def finished(self, result: VideoResult) -> None:
        self.running.pop(result.folder, None)
        self.done[result.folder] = result
        self.bar.update(1)
        line = f"[{len(self.done)}/{len(self.jobs)}] {result.folder}: {result.status}"
        if result.wall_s:
            line += f" in {result.wall_s:.1f} s"
        if result.failures:
            line += f": {result.failures[0]}"
        self._say(line)
        if time.monotonic() - self.saved >= SAVE_EVERY_S:
            self._save()

    def tick(self) -> None:
        if self.bar.disable or time.monotonic() - self.shown < REFRESH_S:
            return
        self.shown = time.monotonic()
        doing = [f"{name}: {self._doing(job)}" for name, job in list(self.running.items())]
        active = [d for d in doing if not d.endswith(": ")][:SHOWN_WORKERS]
        self.bar.set_postfix_str(" | ".join(active), refresh=True)

    def results(self) -> tuple[VideoResult, ...]:
        return tuple(self.done[j.name] for j in self.jobs if j.name in self.done)

    def close(self) -> None:
        """Save the summary a last time: videos still running were stopped with the runner."""
        self.bar.close()
        self._save(complete=len(self.done) == len(self.jobs), closing=True)

    def _say(self, line: str) -> None:
        if self.console.quiet:
            return
        if self.bar.disable:
            self.console.line(line)
        else:
            self.bar.write(line, file=self.console.stream)

    def _doing(self, job: VideoJob) -> str:
        """What a running video's log last said, when it was written during this run: the task
        it is on or a per-frame count (native libraries' lines in the log are passed over)."""
        try:
            if job.log.stat().st_mtime < self.started_wall:
                return ""
            with job.log.open("rb") as log:
                log.seek(max(0, job.log.stat().st_size - 2048))
                lines = log.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        for line in reversed(lines):
            if line.startswith("=== "):
                return "starting"
            if _STATUS_LINE.search(line):
                return line.split(" -> ")[0].rstrip(" .")[:DOING_CHARS]
        return ""

    def _save(self, complete: bool = False, closing: bool = False) -> None:
        entries = []
        for job in self.jobs:
            result = self.done.get(job.name)
            if result is None:
                state = RUNNING if job.name in self.running else PENDING
                if closing and state == RUNNING:
                    state = INTERRUPTED
                entries.append({"video": str(job.video), "folder": job.name, "status": state})
            else:
                entries.append(asdict(result))
        data = {
            "talkprep_version": __version__,
            "root": str(self.root),
            "engine": self.options.engine,
            "parallelism": self.engine,
            "options": self.jobs[0].values,
            "runner": {"pid": os.getpid(), "host": socket.gethostname()},
            "started": self.started_at,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "complete": complete,
            "counts": _counts(self.results()),
            "videos": entries,
        }
        try:
            write_json(self.root / BATCH_JSON, data)
        except OSError as exc:
            raise OutputError(f"cannot write the batch summary: {os_error_sentence(exc)}") from None
        self.saved = time.monotonic()


def _counts(results: Sequence[VideoResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def _refuse_foreign_summary(path: Path) -> None:
    """Never replace a batch.json that talkprep did not write."""
    if not path.exists():
        return
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    if not (isinstance(data, dict) and "talkprep_version" in data and "videos" in data):
        raise OutputError(f"{path} exists and was not written by talkprep; move it away first")


def _make_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise OutputError(f"-o {root} is a file; give a folder for the batch")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {root}: {exc.strerror}; choose another -o") from None


def _count(option: str, value: Any) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{option} must be a whole number, got {value!r}") from None
    if number < 1 or float(value) != number:
        raise UsageError(f"{option} must be a whole number of at least 1, got {value!r}")
    return number


def _gpus(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--gpus-per-video must be a number, got {value!r}") from None
    if number < 0:
        raise UsageError(f"--gpus-per-video must be 0 or more, got {value!r}")
    return number
