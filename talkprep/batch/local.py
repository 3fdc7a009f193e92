"""The local engine: K long-lived worker processes on this machine, one video each at a time.

Each worker is a spawned process (no fork of a parent that may hold threads) with its own pipe,
so the runner always knows which video a worker holds: when one dies (killed, out of memory)
exactly that video is retried on a fresh worker, up to MAX_ATTEMPTS tries.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from talkprep.batch.jobs import MAX_ATTEMPTS, Events, VideoJob, VideoResult, Work, crashed
from talkprep.batch.worker import limit_threads, process_video
from talkprep.parallel import die_with_parent, exit_text

TICK_S = 0.5
"""How often the runner refreshes progress while every worker is busy."""
STOP_GRACE_S = 5.0


@dataclass
class _Slot:
    """One worker: its process, its end of the pipe and the job it holds."""

    process: BaseProcess | None = None
    conn: Connection | None = None
    job: VideoJob | None = None


def run_local(
    jobs: Sequence[VideoJob],
    workers: int,
    threads: int,
    events: Events,
    work: Work = process_video,
) -> None:
    """Run every job on a pool of `workers` processes of `threads` threads each."""
    context = multiprocessing.get_context("spawn")
    pending = deque(jobs)
    attempts: dict[str, int] = {}
    slots = [_Slot() for _ in range(min(workers, len(jobs)))]
    try:
        while pending or any(s.job for s in slots):
            for slot in slots:
                if slot.job is None and pending:
                    if slot.process is None:
                        _start(slot, context, threads)
                    job = pending.popleft()
                    attempts[job.name] = attempts.get(job.name, 0) + 1
                    assert slot.conn is not None
                    slot.job = job
                    events.started(job)
                    # a worker that died while idle is caught by its sentinel below, as a try
                    with contextlib.suppress(OSError):
                        slot.conn.send((work, job))
            busy = [s for s in slots if s.job is not None]
            handles = [s.conn for s in busy] + [s.process.sentinel for s in busy]  # type: ignore[union-attr]
            ready = set(wait(handles, timeout=TICK_S))
            for slot in busy:
                if slot.conn not in ready and slot.process.sentinel not in ready:  # type: ignore[union-attr]
                    continue
                job, slot.job = slot.job, None
                assert job is not None
                result = _receive(slot)
                tries = attempts[job.name]
                if result is not None:
                    events.finished(replace(result, attempts=tries))
                    continue
                reason = f"its worker process died ({exit_text(_reap(slot))})"
                if tries < MAX_ATTEMPTS:
                    events.retrying(job, reason)
                    pending.appendleft(job)
                else:
                    events.finished(crashed(job, f"{reason} on all {tries} tries", tries))
            events.tick()
    finally:
        for slot in slots:
            _stop(slot)


def _serve(conn: Connection, threads: int, runner: int) -> None:
    """A worker's life: limit threads, then run jobs until told to stop or the runner is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    die_with_parent(runner)
    limit_threads(threads)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        work, job = message
        try:
            conn.send(work(job))
        except (BrokenPipeError, OSError):
            return


def _start(slot: _Slot, context: multiprocessing.context.SpawnContext, threads: int) -> None:
    runner_end, worker_end = context.Pipe()
    process = context.Process(
        target=_serve,
        args=(worker_end, threads, os.getpid()),
        name="talkprep-batch",
        daemon=False,  # a video's own span workers are its children; _stop ends it
    )
    process.start()
    worker_end.close()
    slot.process, slot.conn = process, runner_end


def _receive(slot: _Slot) -> VideoResult | None:
    """The worker's result, or None when it died instead of answering."""
    assert slot.conn is not None
    try:
        if slot.conn.poll():
            return slot.conn.recv()
    except (EOFError, OSError):
        pass
    return None


def _reap(slot: _Slot) -> int | None:
    """Collect a dead worker and free its slot for a fresh one; returns its exit code."""
    assert slot.process is not None and slot.conn is not None
    slot.process.join(STOP_GRACE_S)
    code = slot.process.exitcode
    if code is None:  # alive but its pipe is broken: it cannot be used again
        slot.process.kill()
        slot.process.join()
    slot.conn.close()
    slot.process = slot.conn = None
    return code


def _stop(slot: _Slot) -> None:
    """Let an idle worker exit; terminate one still holding a video (a killed run resumes)."""
    if slot.process is None or slot.conn is None:
        return
    if slot.job is None:
        with contextlib.suppress(OSError):
            slot.conn.send(None)
        slot.process.join(STOP_GRACE_S)
    if slot.process.is_alive():
        slot.process.terminate()
        slot.process.join(STOP_GRACE_S)
    if slot.process.is_alive():
        slot.process.kill()
        slot.process.join()
    slot.conn.close()
    slot.process = slot.conn = None
