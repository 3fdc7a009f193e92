"""The runner: orders the requested tasks by what they need, skips those that are up to date, runs
the rest (those that do not need each other at the same time), and records status, timings and
quality figures in the manifest. It knows nothing of any task's insides beyond the Task interface.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import queue
import shutil
import stat
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from talkprep.config import Config
from talkprep.console import Console
from talkprep.device import resolve_device
from talkprep.errors import InputError, OutputError, TaskError, UsageError
from talkprep.io.atomic import os_error_reason, os_error_sentence, remove_temp_files, write_bytes
from talkprep.io.audio import probe_audio
from talkprep.io.digests import forget_all, load_table, table_bytes, take_table, verify_table
from talkprep.io.outputs import (
    count_outputs,
    digest_table_path,
    index_of,
    is_numbered,
    numbered_path,
    output_names,
    present_indices,
    remove_outputs,
)
from talkprep.io.video import VideoInfo, count_video_packets, output_frame_count, probe_video
from talkprep.manifest import Manifest, file_fingerprint, same_input
from talkprep.parallel import task_slot
from talkprep.tasks import ALL_TASKS
from talkprep.tasks.base import Task, TaskContext
from talkprep.tasks.frames import require_frames

LOCK_NAME = ".talkprep.lock"
CLAIM_CLOCK_SLACK_S = 1.0
"""File times come from a coarser clock than time.time(): a claim covers files this much older."""
MIN_RATE_WALL_S = 1.0
"""Tasks quicker than this report no frames/s: the figure would only measure overhead."""
ERROR_LOG = "talkprep-errors.log"
RUN_STATE = (
    ".talkprep/manifest.json",
    ".talkprep/view.json",
    ".talkprep/digests/*.npy",
    "report.html",
    "preview.mp4",
)
"""Files of OUT that talkprep writes besides the tasks' outputs (the manifest, a view's record,
the digest tables, the report and the preview)."""
PARALLEL_TASKS = 2
"""Tasks that run at once, each once the tasks it needs have ended: the audio features beside the
frame chain, depth beside parsing. One task alone leaves a core idle much of the time (a model
graph that runs in step, a frame loop waiting on its files); a third at once gained 2% on the
5-minute input and added 150 MB, above the 2.5 GB bound with HuBERT-large loaded."""
PLAN_RATIO_LIMIT = 10
PLAN_SLACK_FRAMES = 1500
"""A video may plan up to 10 times the frames its stream holds, plus a minute at 25 fps (variable
frame rate, a slow start); more means timestamps that jump far past the stream's end."""
BYTES_PER_PIXEL = {
    "frames": 0.21,
    "parsing": 0.045,
    "torso": 0.60,
    "depth": 0.12,
}
"""Disk use per frame pixel of each task's image files, as `benchmarks/bench_verify.py` measures
them on the 5-minute anchor input (ori_imgs 0.212; semantics + parsing 0.045; gt + torso 0.604;
depth 0.115)."""
BYTES_PER_FRAME = {"audio": 1300, "landmarks": 7200, "audio_features": 8200, "transforms": 400}
"""Disk use per frame of each task's other files (aud.wav; landmarks, .lms, track; HuBERT rows;
au.csv, json)."""
STOP_WAIT_S = 30.0
"""After Ctrl-C or SIGTERM, how long the runner waits for the running tasks to stop."""
T = TypeVar("T")


class RunStopped(BaseException):
    """Raised in a running task's item loop when the run stops (Ctrl-C, SIGTERM, a runner error):
    a BaseException, so that the task is not recorded as failed but left to resume."""


@dataclass(frozen=True)
class TaskOutcome:
    """How one requested task ended in this run."""

    number: int
    name: str
    status: str
    """'done', 'skipped' (up to date), 'failed' or 'blocked' (a needed task is missing)."""
    wall_s: float = 0.0
    frames: int | None = None
    message: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def frames_per_s(self) -> float | None:
        return throughput(self.frames, self.wall_s) if self.status == "done" else None


def throughput(frames: int | None, wall_s: float) -> float | None:
    """Frames per second, only where it means something: work that took a while."""
    if not frames or wall_s < MIN_RATE_WALL_S:
        return None
    return frames / wall_s


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT for the whole run; the OS frees it if the process dies.

    The lock file is opened without following a symlink: a `.talkprep.lock` planted as a link to
    another file is refused, never truncated.
    """
    fd = _open_lock_file(out / LOCK_NAME)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise OutputError(
                f"{out} is in use by another talkprep run; wait for it or choose another -o"
            ) from None
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _open_lock_file(path: Path) -> int:
    """The lock file's descriptor: a regular file in OUT, never reached through a symlink."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(
                f"{path} is a symbolic link; talkprep never follows one there: remove it"
            ) from None
        raise OutputError(
            f"cannot write to {path.parent}: {os_error_reason(exc)}; choose another -o"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputError(f"{path} is not a regular file; remove it")
    return fd


def order_tasks(tasks: Sequence[Task]) -> list[Task]:
    """Order tasks so that each comes after the ones it needs (stable by task number)."""
    by_name = {t.name: t for t in tasks}
    ordered: list[Task] = []
    placed: set[str] = set()

    def place(task: Task, trail: tuple[str, ...]) -> None:
        if task.name in placed:
            return
        if task.name in trail:
            raise RuntimeError(f"task dependency cycle: {' -> '.join((*trail, task.name))}")
        for need in (*task.needs, *task.uses):
            if need in by_name:
                place(by_name[need], (*trail, task.name))
        placed.add(task.name)
        ordered.append(task)

    for task in sorted(tasks, key=lambda t: t.number):
        place(task, ())
    return ordered


def path_fingerprint(path: Path) -> str:
    """Fingerprint of a file, or of every file in a folder (for model folders)."""
    if path.is_file():
        return file_fingerprint(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path)}={file_fingerprint(file)};".encode())
        return "dir:" + digest.hexdigest()[:24]
    return f"missing:{path}"


class Pipeline:
    """Runs the tasks a Config asks for on one output folder."""

    def __init__(self, config: Config, console: Console | None = None) -> None:
        self.config = config
        self.console = console or Console()
        self.tasks = {t.name: t for t in ALL_TASKS}
        self._fingerprints: dict[str, str] = {}
        self._video_fingerprint = ""
        self._damage: dict[str, str | None] = {}
        """Per task checked this run: None when its outputs are intact, else the first problem."""
        self._stopping = threading.Event()
        self._manifest = Manifest(config.out)

    def run(self) -> list[TaskOutcome]:
        """Validate the input, lock OUT and run; raises TalkprepError before any work is done."""
        config = self.config
        info = probe_video(config.video)
        require_frames(info, config.fps)
        if config.audio is not None:
            probe_audio(config.audio)
        if config.device == "cuda":
            resolve_device(config.device)
        requested = [t for t in ALL_TASKS if t.number in config.tasks]
        self._validate_task_inputs(requested)
        out = config.out
        if out.exists() and not out.is_dir():
            raise OutputError(f"-o {out} is a file; give a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create output folder {out}: {os_error_reason(exc)}; choose another -o"
            ) from None
        if not os.access(out, os.W_OK):
            read_only = os.statvfs(out).f_flag & os.ST_RDONLY
            reason = "read-only file system" if read_only else "permission denied"
            raise OutputError(f"cannot write to {out}: {reason}; choose another -o")
        with folder_lock(out):
            forget_all()
            manifest = self._manifest = Manifest.load(out)
            remove_temp_files(out, self._written_patterns(manifest))
            before = _identity(config.video)
            self._video_fingerprint = file_fingerprint(config.video)
            self._check_plan(info, requested, manifest)
            self._refuse_to_replace_inputs(manifest, requested)
            self._forget_other_video(manifest)
            input_facts = {**info.to_dict(), "fingerprint": self._video_fingerprint}
            manifest.set_run(input_facts, config.to_dict())
            outcomes = self._run_tasks(order_tasks(requested), manifest, input_facts)
            if _identity(config.video) != before:
                self.console.line(
                    f"warning: {config.video} changed while it was processed (still being "
                    "recorded or copied?); the dataset is of the file as it was at the start: "
                    "rerun once it is complete"
                )
            if all(o.status in ("done", "skipped") for o in outcomes.values()):
                self._remove_error_log(manifest)
        return [outcomes[t.name] for t in sorted(requested, key=lambda t: t.number)]

    def _run_tasks(
        self, ordered: list[Task], manifest: Manifest, input_facts: dict[str, Any]
    ) -> dict[str, TaskOutcome]:
        """Start each task, in order, once the requested tasks it needs have ended, with up to
        PARALLEL_TASKS running at once in threads; announce each outcome as it comes.

        Ctrl-C and SIGTERM reach this (the main) thread: the running tasks are then stopped at
        their next item (RunStopped), their records left 'running' for the next run to resume.
        """
        requested = {task.name for task in ordered}
        waiting = list(ordered)
        outcomes: dict[str, TaskOutcome] = {}
        running: dict[str, threading.Thread] = {}
        ended: queue.Queue[tuple[str, TaskOutcome | BaseException]] = queue.Queue()
        self._stopping.clear()
        try:
            while waiting or running:
                for task in list(waiting):
                    if len(running) >= PARALLEL_TASKS:
                        break
                    inputs = (*task.needs, *task.uses)
                    if any(need in requested and need not in outcomes for need in inputs):
                        continue
                    waiting.remove(task)
                    thread = threading.Thread(
                        target=self._task_thread,
                        args=(task, manifest, dict(outcomes), input_facts, ended),
                        name=f"talkprep-{task.name}",
                        daemon=True,  # a thread that ignores the stop must not hold the exit
                    )
                    running[task.name] = thread
                    thread.start()
                name, result = _next(ended)
                running.pop(name).join()
                if isinstance(result, BaseException):
                    raise result
                outcomes[name] = result
                self._announce(result)
        except BaseException:
            self._stopping.set()
            deadline = time.monotonic() + STOP_WAIT_S
            for thread in running.values():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
            raise
        return outcomes

    def _task_thread(
        self,
        task: Task,
        manifest: Manifest,
        outcomes: dict[str, TaskOutcome],
        input_facts: dict[str, Any],
        ended: queue.Queue[tuple[str, TaskOutcome | BaseException]],
    ) -> None:
        try:
            with task_slot():  # the task's core in the budget its span workers share
                ended.put((task.name, self._run_one(task, manifest, outcomes, input_facts)))
        except BaseException as exc:  # RunStopped, or a runner error the main thread re-raises
            ended.put((task.name, exc))

    def _progress(self, iterable: Iterable[T], *args: Any, **kwargs: Any) -> Iterator[T]:
        """The console's progress bar, which also stops the task at its next item when the run
        is stopping."""
        for item in self.console.progress(iterable, *args, **kwargs):
            if self._stopping.is_set():
                raise RunStopped
            yield item

    def _validate_task_inputs(self, requested: Sequence[Task]) -> None:
        """Model and option files are checked before any heavy work, not when a task needs them."""
        for task in requested:
            for path in task.input_files(self.config):
                if not path.exists():
                    raise UsageError(
                        f"{path} does not exist (needed by task {task.number}, {task.name})"
                    )
            task.validate(self.config)

    def _run_inputs(self) -> list[Path]:
        """Every file this run reads besides OUT's own outputs."""
        inputs = [self.config.video]
        for task in ALL_TASKS:
            inputs.extend(task.input_files(self.config))
        return inputs

    def _check_plan(self, info: VideoInfo, requested: Sequence[Task], manifest: Manifest) -> None:
        """Estimate the frames and disk space the tasks still to do will take, before any work:
        refuse a video whose timestamps plan far more frames than its stream holds (one late
        timestamp), and a dataset that cannot fit in the free space of OUT's disk."""
        config = self.config
        same_video = same_input(
            (manifest.data.get("input") or {}).get("fingerprint"),
            config.video,
            self._video_fingerprint,
        )
        records = {t.name: manifest.record(t.name) or {} for t in ALL_TASKS} if same_video else {}
        frames_info = (records.get("frames") or {}).get("info") or {}
        if records.get("frames", {}).get("status") == "done" and "n_frames" in frames_info:
            planned = int(frames_info["n_frames"])
        else:
            planned = self._planned_frames(info)
        todo = [t for t in requested if (records.get(t.name) or {}).get("status") != "done"]
        side = config.size if config.crop == "auto" else None
        pixels = side * side if side else info.width * info.height
        needed = sum(planned * estimated_frame_bytes(t.name, pixels) for t in todo)
        free = shutil.disk_usage(config.out).free
        if needed > free:
            raise OutputError(
                f"the tasks to run need about {needed / 1e9:.1f} GB for {planned} frames of "
                f"{pixels} px, and {config.out}'s disk has {free / 1e9:.1f} GB free; "
                "free some space or choose another -o"
            )

    def _planned_frames(self, info: VideoInfo) -> int:
        """The frames task 3 would write; InputError when the timestamps plan far more frames
        than the stream holds (the container's count, else its packets, counted)."""
        config = self.config
        fps = Fraction(config.fps).limit_denominator(1001)
        planned = output_frame_count(info.duration, fps)
        source_fps = info.nominal_fps or info.average_fps
        if not source_fps or planned <= PLAN_SLACK_FRAMES:
            return planned
        count = info.frame_count or count_video_packets(config.video)
        if (
            planned
            > PLAN_RATIO_LIMIT * math.ceil(count * float(fps) / source_fps) + PLAN_SLACK_FRAMES
        ):
            raise InputError(
                f"{config.video}'s timestamps span {info.duration:.0f} s, but its stream holds "
                f"{count} frames ({count / source_fps:.1f} s): "
                f"{planned} frames at {float(fps):g} fps would be mostly repeats of one "
                "frame; give the video fresh timestamps (remux or re-encode it)"
            )
        return planned

    def _written_patterns(self, manifest: Manifest) -> set[str]:
        """Every name talkprep may have been writing in OUT: any task's outputs, the ledger's,
        the run's own state, the report, the preview and the files of a view written here."""
        from talkprep.targets.record import view_files

        patterns = {p for task in ALL_TASKS for p in (*task.makes, *task.outputs(self.config))}
        patterns.update(manifest.written, manifest.writing, RUN_STATE, view_files(self.config.out))
        return patterns

    def _refuse_to_replace_inputs(self, manifest: Manifest, requested: Sequence[Task]) -> None:
        """An input that lies where a requested task writes is read, never replaced or deleted."""
        inputs = {os.path.realpath(p): p for p in self._run_inputs() if p.is_file()}
        for task in requested:
            for pattern in task.outputs(self.config):
                if is_numbered(pattern):
                    continue
                target = os.path.realpath(self.config.out / pattern)
                if target in inputs and not manifest.owns(pattern):
                    raise UsageError(
                        f"{inputs[target]} is an input of this run and also where task "
                        f"{task.number} writes {pattern}; talkprep never overwrites a file it did "
                        "not write: move it out of the output folder (or rename it) and pass the "
                        "new path"
                    )

    def _forget_other_video(self, manifest: Manifest) -> None:
        """A folder made from another video: remove that video's outputs before any task runs."""
        previous = (manifest.data.get("input") or {}).get("fingerprint")
        if not previous or same_input(previous, self.config.video, self._video_fingerprint):
            return
        out = self.config.out
        patterns = {*manifest.written, *manifest.writing}
        paths = [p for pattern in patterns for p in self._owned_paths(manifest, pattern)]
        removed = remove_outputs(out, paths, keep=self._run_inputs())
        manifest.forget_video()
        self.console.line(
            f"{out} held a dataset of another video "
            f"({(manifest.data.get('input') or {}).get('path', 'unknown')}); "
            f"removed its {removed} files before processing {self.config.video}"
        )

    def fingerprint(self, task: Task) -> str:
        """Hash of everything that decides a task's outputs, including its needs' fingerprints."""
        if task.name in self._fingerprints:
            return self._fingerprints[task.name]
        used = {u: self._used_fingerprint(u) for u in task.uses}
        payload: dict[str, Any] = {
            "task": task.name,
            "version": task.version,
            "config": {f: _jsonable(getattr(self.config, f)) for f in task.config_fields},
            "video": self._video_fingerprint if task.reads_video else None,
            "files": [path_fingerprint(p) for p in task.input_files(self.config)],
            "needs": {n: self.fingerprint(self.tasks[n]) for n in task.needs},
        }
        if used:
            payload["uses"] = used
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]
        if not used:  # what a task uses may finish later in the run: not cached
            self._fingerprints[task.name] = digest
        return digest

    def _used_fingerprint(self, name: str) -> str | None:
        """A used task's fingerprint when its outputs are there for these options, else None."""
        record = self._manifest.record(name)
        task = self.tasks[name]
        if not record or record.get("status") != "done":
            return None
        return (
            record.get("fingerprint")
            if record.get("fingerprint") == self.fingerprint(task)
            else None
        )

    def _up_to_date(self, task: Task, record: dict[str, Any] | None) -> bool:
        """Done with these inputs, and every output still there and as talkprep wrote it."""
        if not record or record.get("status") != "done":
            return False
        if record.get("fingerprint") != self.fingerprint(task):
            return False
        outputs = record.get("outputs", {})
        if set(outputs) != set(task.outputs(self.config)):
            return False
        if task.name not in self._damage:
            self._damage[task.name] = self._find_damage(task, record)
        return self._damage[task.name] is None

    def _find_damage(self, task: Task, record: dict[str, Any]) -> str | None:
        """The first output that is missing, cut short or changed since it was written.

        Every file's identity (size, inode, ctime) is compared with the digest table written
        with it, and every file whose identity moved is hashed and compared with its digest:
        any change of content, anywhere in any file, is found without reading the others."""
        out = self.config.out
        outputs: dict[str, int] = record.get("outputs", {})
        for pattern, count in outputs.items():
            found = count_outputs(out, pattern)
            if found != count:
                return f"{pattern}: {found} of {count} files present"
        summary = record.get("file_digests")
        if not isinstance(summary, dict):
            return "written by a talkprep that kept no digests of its outputs"
        table_path = digest_table_path(out, task.name)
        table = load_table(table_path, summary.get("sha256"), summary.get("rows"))
        if table is None:
            return f"{table_path.relative_to(out)}: missing or changed, so the outputs are unproven"
        names = output_names(outputs)
        if len(names) != len(table):
            return f"{table_path.relative_to(out)}: does not match the outputs"
        verdict = verify_table([os.path.join(out, n) for n in names], table)
        if verdict.changed is not None:
            return f"{names[verdict.changed]}: changed since talkprep wrote it"
        if verdict.refreshed is not None:
            with contextlib.suppress(OutputError):
                summary = self._save_table(task, verdict.refreshed)
                self._manifest.set_record(task.name, {**record, "file_digests": summary})
        return None

    def _save_table(self, task: Task, table: np.ndarray) -> dict[str, Any]:
        """Write a task's digest table; returns what its record keeps to prove it."""
        data = table_bytes(table)
        try:
            write_bytes(digest_table_path(self.config.out, task.name), data)
        except OSError as exc:
            raise OutputError(os_error_sentence(exc, self.config.out)) from None
        return {"rows": len(table), "sha256": hashlib.sha256(data).hexdigest()}

    def _blocker(
        self, task: Task, manifest: Manifest, outcomes: dict[str, TaskOutcome]
    ) -> str | None:
        for need in task.needs:
            needed = self.tasks[need]
            label = f"task {needed.number} ({needed.name})"
            if need in outcomes:
                if outcomes[need].status not in ("done", "skipped"):
                    return f"needs {label}, which {outcomes[need].status} in this run"
                continue
            record = manifest.record(need)
            if not record or record.get("status") != "done":
                return f"needs {label}, which has not been run here; add {needed.number} to --tasks"
            if not self._up_to_date(needed, record):
                return (
                    f"needs {label}, whose outputs are missing or out of date for these options; "
                    f"add {needed.number} to --tasks"
                )
        return None

    def _run_one(
        self,
        task: Task,
        manifest: Manifest,
        outcomes: dict[str, TaskOutcome],
        input_facts: dict[str, Any],
    ) -> TaskOutcome:
        config = self.config
        blocker = self._blocker(task, manifest, outcomes)
        if blocker:
            record = {"number": task.number, "status": "blocked", "error": blocker}
            with contextlib.suppress(OutputError):
                manifest.set_record(task.name, record)
            return TaskOutcome(task.number, task.name, "blocked", message=blocker)
        record = manifest.record(task.name)
        if not config.force and self._up_to_date(task, record):
            return TaskOutcome(task.number, task.name, "skipped", frames=record.get("frames"))
        damage = self._damage.get(task.name)
        self.console.line(f"[{task.number}] {task.heading(config)} ...")
        if damage and not config.force:
            self.console.line(f"    rebuilding: {damage}")
        foreign = self._foreign_output(task, manifest)
        if foreign:
            return TaskOutcome(task.number, task.name, "failed", message=foreign)
        with manifest.lock:
            self._claim_outputs(task, manifest)
            records = {n: manifest.record(n) or {} for n in _closure(task, self.tasks)}
            records.update(
                {u: manifest.record(u) for u in task.uses if self._used_fingerprint(u) is not None}
            )
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        ctx = TaskContext(
            out=config.out,
            config=config,
            input=input_facts,
            records=records,
            progress=self._progress,
        )
        t0 = time.perf_counter()
        try:
            manifest.set_record(
                task.name, {"number": task.number, "status": "running", "started": started}
            )
            result = task.run(ctx)
        except TaskError as exc:
            message = str(exc)
        except OutputError as exc:
            message = str(exc)
        except OSError as exc:
            message = os_error_sentence(exc, config.out)
        except Exception as exc:  # any other failure of one task must not stop the others
            self._log_traceback(task, manifest)
            message = f"{type(exc).__name__}: {exc} (traceback in {ERROR_LOG})"
        else:
            message = ""
        wall = time.perf_counter() - t0
        if message:
            return self._failed(task, manifest, started, wall, message, ctx)
        outputs = {p: count_outputs(config.out, p) for p in task.outputs(config)}
        missing = [p for p, n in outputs.items() if n == 0]
        if missing:
            message = f"finished without writing {', '.join(missing)}"
            return self._failed(task, manifest, started, wall, message, ctx)
        frames = result.frames
        try:
            table = take_table([os.path.join(config.out, n) for n in output_names(outputs)])
            file_digests = self._save_table(task, table)
            with manifest.lock:
                self._settle_outputs(manifest, outputs)
                manifest.set_record(
                    task.name,
                    {
                        "number": task.number,
                        "status": "done",
                        "fingerprint": self.fingerprint(task),
                        "started": started,
                        "wall_s": round(wall, 3),
                        "frames": frames,
                        "frames_per_s": _rounded(throughput(frames, wall)),
                        "figures": result.figures,
                        "info": result.info,
                        "warnings": ctx.warnings + result.warnings,
                        "outputs": outputs,
                        "file_digests": file_digests,
                    },
                )
        except (OutputError, OSError) as exc:
            text = str(exc) if isinstance(exc, OutputError) else os_error_sentence(exc, config.out)
            return self._failed(task, manifest, started, wall, text, ctx)
        self._damage[task.name] = None
        warnings = (*ctx.warnings, *result.warnings)
        return TaskOutcome(task.number, task.name, "done", wall, frames, warnings=warnings)

    def _foreign_output(self, task: Task, manifest: Manifest) -> str | None:
        """A file where this task writes that talkprep did not write: refuse to overwrite it.

        Every numbered name present in a group's folder counts, not only `{0}` (the task may
        write any of them), and through a symlinked folder too."""
        out = self.config.out
        for pattern in task.outputs(self.config):
            if is_numbered(pattern):
                owned = {p.name for p in self._owned_paths(manifest, pattern)}
                present = (numbered_path(out, pattern, i) for i in present_indices(out, pattern))
                path = next((p for p in present if p.name not in owned), None)
            else:
                path = out / pattern
                if manifest.owns(pattern) or not (path.exists() or path.is_symlink()):
                    path = None
            if path is not None:
                return (
                    f"{path.relative_to(out)} exists and was not written by talkprep; it is never "
                    "overwritten: move it away or choose another -o"
                )
        return None

    def _owned_paths(self, manifest: Manifest, pattern: str) -> list[Path]:
        """Files of a group that talkprep wrote and that are there: the ledger's, plus any that
        a run killed or failed while writing the group left behind (written after that run's
        claim on it). Only present files are listed, whatever count the ledger says."""
        out = self.config.out
        count = manifest.written.get(pattern, 0)
        claimed = manifest.writing.get(pattern)
        since = None if claimed is None else claimed - CLAIM_CLOCK_SLACK_S
        if not is_numbered(pattern):
            path = out / pattern
            if count or (since is not None and _modified_since(path, since)):
                return [path]
            return []
        paths = []
        for index in present_indices(out, pattern):
            path = numbered_path(out, pattern, index)
            if index < count or (since is not None and _modified_since(path, since)):
                paths.append(path)
        return paths

    def _claim_outputs(self, task: Task, manifest: Manifest) -> None:
        """Before a (re)run: remove this task's old numbered files, so that a shorter result leaves
        no stale frames, and claim its groups, so that a killed run's files stay known as ours.
        Single files are replaced atomically instead. Files that stay (in a symlinked folder,
        or an input) stay in the ledger, so that they are never taken for a user's."""
        out, now, inputs = self.config.out, time.time(), self._run_inputs()
        for pattern in task.outputs(self.config):
            if is_numbered(pattern):
                owned = self._owned_paths(manifest, pattern)
                remove_outputs(out, owned, inputs)
                kept = [index_of(pattern, p) + 1 for p in owned if p.exists()]
                manifest.written.pop(pattern, None)
                if kept:
                    manifest.written[pattern] = max(kept)
            manifest.writing[pattern] = now

    def _settle_outputs(self, manifest: Manifest, outputs: dict[str, int]) -> None:
        """Record in the ledger what this task wrote (beside what it could not remove); its
        claims are settled."""
        for pattern, count in outputs.items():
            manifest.written[pattern] = max(count, manifest.written.get(pattern, 0))
            manifest.writing.pop(pattern, None)

    def _failed(
        self,
        task: Task,
        manifest: Manifest,
        started: str,
        wall: float,
        message: str,
        ctx: TaskContext,
    ) -> TaskOutcome:
        record = {
            "number": task.number,
            "status": "failed",
            "started": started,
            "wall_s": round(wall, 3),
            "error": message,
            "warnings": ctx.warnings,
        }
        with contextlib.suppress(OutputError):  # a full disk: the summary still says why
            manifest.set_record(task.name, record)
        return TaskOutcome(task.number, task.name, "failed", wall, message=message)

    def _log_traceback(self, task: Task, manifest: Manifest) -> None:
        """Append the traceback to OUT's error log (talkprep's own: in the ledger)."""
        log_path = self.config.out / ERROR_LOG
        if log_path.exists() and ERROR_LOG not in manifest.written:
            return  # a file of the user's under that name is never appended to
        with contextlib.suppress(OSError, OutputError):
            with log_path.open("a") as log:
                log.write(
                    f"--- task {task.number} ({task.name}) {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                )
                log.write(traceback.format_exc())
            with manifest.lock:
                manifest.written[ERROR_LOG] = 1

    def _remove_error_log(self, manifest: Manifest) -> None:
        """After a run where everything succeeded, old tracebacks only mislead."""
        if manifest.written.pop(ERROR_LOG, None):
            remove_outputs(self.config.out, [self.config.out / ERROR_LOG])
            with contextlib.suppress(OutputError):
                manifest.save()

    def _announce(self, outcome: TaskOutcome) -> None:
        label = f"[{outcome.number}] {outcome.name}"
        if outcome.status == "skipped":
            self.console.line(f"{label}: up to date, skipped")
        elif outcome.status == "done":
            rate = f", {outcome.frames_per_s:.1f} frames/s" if outcome.frames_per_s else ""
            self.console.line(f"{label}: done in {outcome.wall_s:.1f} s{rate}")
        else:
            self.console.line(f"{label}: {outcome.status}: {outcome.message}")
        for warning in outcome.warnings:
            self.console.line(f"    warning: {warning}")


def estimated_frame_bytes(task_name: str, pixels: int) -> float:
    """Bytes one frame of a task's outputs takes on disk (about), for frames of `pixels` px."""
    return BYTES_PER_PIXEL.get(task_name, 0.0) * pixels + BYTES_PER_FRAME.get(task_name, 0)


def _next(ended: queue.Queue[T]) -> T:
    """The next item, waiting in short steps so that Ctrl-C and SIGTERM are taken at once."""
    while True:
        try:
            return ended.get(timeout=0.2)
        except queue.Empty:
            continue


def _closure(task: Task, tasks: dict[str, Task]) -> set[str]:
    """Names of every task that `task` needs, directly or through others."""
    seen: set[str] = set()
    stack = list(task.needs)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(tasks[name].needs)
    return seen


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _identity(path: Path) -> tuple[int, int, int]:
    """(size, mtime, inode) of a file: changes when it is written to or replaced."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def _modified_since(path: Path, since: float) -> bool:
    try:
        return path.is_file() and path.stat().st_mtime >= since
    except OSError:
        return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
