"""The runner: orders the requested tasks by what they need, skips those that are up to date, runs
the rest, and records status, timings and quality figures in the manifest. It knows nothing of any
task's insides beyond the Task interface.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talkprep.config import Config
from talkprep.console import Console
from talkprep.device import resolve_device
from talkprep.errors import OutputError, TaskError
from talkprep.io.atomic import remove_temp_files
from talkprep.io.audio import probe_audio
from talkprep.io.video import probe_video
from talkprep.manifest import Manifest, file_fingerprint
from talkprep.tasks import ALL_TASKS
from talkprep.tasks.base import Task, TaskContext

LOCK_NAME = ".talkprep.lock"
ERROR_LOG = "talkprep-errors.log"


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


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT for the whole run; the OS frees it if the process dies."""
    try:
        handle = (out / LOCK_NAME).open("a+")
    except OSError as exc:
        raise OutputError(f"cannot write to {out}: {exc.strerror}; choose another -o") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise OutputError(
                f"{out} is in use by another talkprep run; wait for it or choose another -o"
            ) from None
        raise
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


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
        for need in task.needs:
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

    def run(self) -> list[TaskOutcome]:
        """Validate the input, lock OUT and run; raises TalkprepError before any work is done."""
        config = self.config
        info = probe_video(config.video)
        if config.audio is not None:
            probe_audio(config.audio)
        if config.device == "cuda":
            resolve_device(config.device)
        out = config.out
        if out.exists() and not out.is_dir():
            raise OutputError(f"-o {out} is a file; give a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create output folder {out}: {exc.strerror}; choose another -o"
            ) from None
        if not os.access(out, os.W_OK):
            raise OutputError(f"cannot write to {out}: permission denied; choose another -o")
        with folder_lock(out):
            remove_temp_files(out)
            manifest = Manifest.load(out)
            self._video_fingerprint = file_fingerprint(config.video)
            input_facts = {**info.to_dict(), "fingerprint": self._video_fingerprint}
            manifest.set_run(input_facts, config.to_dict())
            requested = [t for t in ALL_TASKS if t.number in config.tasks]
            outcomes: dict[str, TaskOutcome] = {}
            for task in order_tasks(requested):
                outcome = self._run_one(task, manifest, outcomes, input_facts)
                outcomes[task.name] = outcome
                self._announce(outcome)
        return [outcomes[t.name] for t in sorted(requested, key=lambda t: t.number)]

    def fingerprint(self, task: Task) -> str:
        """Hash of everything that decides a task's outputs, including its needs' fingerprints."""
        if task.name in self._fingerprints:
            return self._fingerprints[task.name]
        payload: dict[str, Any] = {
            "task": task.name,
            "version": task.version,
            "config": {f: _jsonable(getattr(self.config, f)) for f in task.config_fields},
            "video": self._video_fingerprint if task.reads_video else None,
            "files": [path_fingerprint(p) for p in task.input_files(self.config)],
            "needs": {n: self.fingerprint(self.tasks[n]) for n in task.needs},
        }
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]
        self._fingerprints[task.name] = digest
        return digest

    def _up_to_date(self, task: Task, record: dict[str, Any] | None) -> bool:
        if not record or record.get("status") != "done":
            return False
        if record.get("fingerprint") != self.fingerprint(task):
            return False
        outputs = record.get("outputs", {})
        if set(outputs) != set(task.outputs(self.config)):
            return False
        return all(_count_matches(self.config.out, pattern) == n for pattern, n in outputs.items())

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
            return TaskOutcome(task.number, task.name, "blocked", message=blocker)
        record = manifest.record(task.name)
        if not config.force and self._up_to_date(task, record):
            return TaskOutcome(task.number, task.name, "skipped", frames=record.get("frames"))
        self.console.line(f"[{task.number}] {task.title} ...")
        for pattern in task.outputs(config):
            for stale in config.out.glob(pattern):
                if stale.is_file():
                    stale.unlink()
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        manifest.set_record(
            task.name, {"number": task.number, "status": "running", "started": started}
        )
        ctx = TaskContext(
            out=config.out,
            config=config,
            input=input_facts,
            records={n: manifest.record(n) or {} for n in _closure(task, self.tasks)},
            progress=self.console.progress,
        )
        t0 = time.perf_counter()
        try:
            result = task.run(ctx)
        except TaskError as exc:
            return self._failed(task, manifest, started, time.perf_counter() - t0, str(exc), ctx)
        except Exception as exc:  # any other failure of one task must not stop the others
            self._log_traceback(task)
            message = f"{type(exc).__name__}: {exc} (traceback in {ERROR_LOG})"
            return self._failed(task, manifest, started, time.perf_counter() - t0, message, ctx)
        wall = time.perf_counter() - t0
        outputs = {p: _count_matches(config.out, p) for p in task.outputs(config)}
        missing = [p for p, n in outputs.items() if n == 0]
        if missing:
            message = f"finished without writing {', '.join(missing)}"
            return self._failed(task, manifest, started, wall, message, ctx)
        frames = result.frames
        manifest.set_record(
            task.name,
            {
                "number": task.number,
                "status": "done",
                "fingerprint": self.fingerprint(task),
                "started": started,
                "wall_s": round(wall, 3),
                "frames": frames,
                "frames_per_s": round(frames / wall, 2) if frames and wall > 0 else None,
                "figures": result.figures,
                "info": result.info,
                "warnings": ctx.warnings + result.warnings,
                "outputs": outputs,
            },
        )
        warnings = (*ctx.warnings, *result.warnings)
        return TaskOutcome(task.number, task.name, "done", wall, frames, warnings=warnings)

    def _failed(
        self,
        task: Task,
        manifest: Manifest,
        started: str,
        wall: float,
        message: str,
        ctx: TaskContext,
    ) -> TaskOutcome:
        manifest.set_record(
            task.name,
            {
                "number": task.number,
                "status": "failed",
                "started": started,
                "wall_s": round(wall, 3),
                "error": message,
                "warnings": ctx.warnings,
            },
        )
        return TaskOutcome(task.number, task.name, "failed", wall, message=message)

    def _log_traceback(self, task: Task) -> None:
        with contextlib.suppress(OSError), (self.config.out / ERROR_LOG).open("a") as log:
            log.write(
                f"--- task {task.number} ({task.name}) {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            )
            log.write(traceback.format_exc())

    def _announce(self, outcome: TaskOutcome) -> None:
        label = f"[{outcome.number}] {outcome.name}"
        if outcome.status == "skipped":
            self.console.line(f"{label}: up to date, skipped")
        elif outcome.status == "done":
            rate = (
                f", {outcome.frames / outcome.wall_s:.1f}/s"
                if outcome.frames and outcome.wall_s
                else ""
            )
            self.console.line(f"{label}: done in {outcome.wall_s:.1f} s{rate}")
        else:
            self.console.line(f"{label}: {outcome.status}: {outcome.message}")
        for warning in outcome.warnings:
            self.console.line(f"    warning: {warning}")


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


def _count_matches(root: Path, pattern: str) -> int:
    if any(ch in pattern for ch in "*?["):
        return sum(1 for p in root.glob(pattern) if p.is_file())
    return int((root / pattern).is_file())


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
