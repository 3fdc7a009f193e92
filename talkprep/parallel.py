"""Span workers: a task's per-frame work over spans of frames in worker processes.

One video uses the cores it has: a task splits its frames into spans (`frame_spans`, a function
of N alone), and `run_spans` runs a span function over them, on up to `workers` spawned
processes at once (each creates its own MediaPipe graphs and models), or in the calling process
when one worker is granted. Because the spans never depend on the worker count and a span
function starts from nothing but its span and its arguments, one worker gives the same files,
byte for byte, as many.

How a task uses it (tasks 4, 5, 7 and 8 do; any per-frame task can do the same):

    def depth_span(span: range, job: DepthJob, tick: Tick) -> DepthPart:
        # a module-level function (pickled by name); build models here, once per span
        for i in span:
            write_png_fast(out / f"{i}.png", ...)   # atomic writers, as everywhere
            tick(1)                                 # one per frame finished
        return DepthPart(...)                       # small: the span's rows and figures

    spans = frame_spans(n, SPAN_FRAMES)
    with claim_cores(len(spans)) as workers:
        parts = run_spans(depth_span, spans, job, workers, ctx.progress, "depth")

- `parts` come back in span order, whatever order the spans finished in.
- Work too short to pay for starting processes (under MIN_WORKER_FRAMES frames a worker) runs
  its spans on threads of the calling process instead, as many as the workers granted: a span
  function keeps its state to itself (its own models, files and arrays), so that it is safe
  on a thread as in a process.
- `job` is pickled once per span: keep it to paths, options and arrays of modest size.
- A span function raises as in-process code does: TaskError (or any exception) reaches the task
  with the worker's traceback as its cause; a worker that dies (killed, out of memory) fails the
  task with TaskError. Ctrl-C, SIGTERM and any failure terminate every worker before
  `run_spans` returns: no orphan keeps writing. Workers write only whole files (atomic
  writers), and the task's record is marked done only after every span has ended, so a run
  stopped half way is redone on resume; the digests workers note for their files are handed
  to the runner's table, so no file is read back.
- `claim_cores` takes cores from one budget per process: the pipeline holds one core for every
  task it runs (`task_slot`), and a span task asks for more, which it gets only while they are
  free (and, on worker processes, more as another task ends and gives its cores back), so two
  tasks at once never run more workers than there are cores. The budget is the
  affinity mask's cores (`taskset`, containers), or `--threads-per-video` under `talkprep batch`
  (`set_cores`), and `run_spans` lowers the worker count when memory is short.

Only the standard library and talkprep.errors are imported at the top: a worker sets its thread
limits before numpy, OpenCV or torch load.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing
import os
import queue
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Protocol, TypeVar

from talkprep.errors import TaskError

R = TypeVar("R")
A = TypeVar("A")

Tick = Callable[[int], None]
"""What a span function calls with the number of frames it has just finished."""

WORKER_MEMORY = 700 << 20
"""Memory one more span worker may add (bytes): a spawned interpreter with numpy, OpenCV and a
MediaPipe graph, and its frames in flight. Under the issue's bound of 1 GB per extra worker."""
MEMORY_RESERVE = 1 << 30
"""Memory left for the rest of the run (the other task, the parent's arrays) before any extra
worker is started."""
MIN_WORKER_FRAMES = 500
"""Frames each span worker must have to be worth starting: a worker's start (an interpreter,
numpy, OpenCV, MediaPipe) costs about 1.3 CPU-s, the face mesh about 8 ms CPU a frame (500
frames of task 4: 3.8 CPU-s in this process, 6.5 on two workers); shorter work runs here."""
TAPER_FRAMES = 32
"""The shortest span tapered_spans cuts its last span into: a span's own start (its graphs,
its first frames) stays small beside its frames."""
TICK_EVERY = 8
"""A worker reports progress every this many frames (fewer messages, same bar)."""
WAIT_S = 0.2
"""How often the runner looks up from waiting on the workers (to stop on Ctrl-C promptly)."""
STOP_GRACE_S = 5.0
PR_SET_PDEATHSIG = 1
"""prctl option: the signal a process gets when its parent dies (linux/prctl.h)."""
WORKER_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
"""A span worker is one core of the budget: its BLAS and OpenMP pools keep to one thread."""


class SpanFunction(Protocol[A, R]):
    def __call__(self, span: range, job: A, tick: Tick) -> R: ...


def available_cores() -> int:
    """Cores this process may use (the affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes the kernel says can be given to new work (MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_workers(workers: int, free: int | None) -> int:
    """`workers` lowered so that the extra ones fit in `free` bytes beside MEMORY_RESERVE."""
    if free is None or workers <= 1:
        return max(1, workers)
    return max(1, min(workers, 1 + (free - MEMORY_RESERVE) // WORKER_MEMORY))


def frame_spans(n: int, span_frames: int) -> list[range]:
    """Frames 0..n-1 in ceil(n / span_frames) consecutive spans of near-equal length (the first
    ones one frame longer); a function of n alone, so that outputs never depend on workers."""
    count = max(1, math.ceil(n / max(1, span_frames)))
    bounds = [k * n // count for k in range(count + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a] or [range(0)]


def tapered_spans(n: int, span_frames: int) -> list[range]:
    """frame_spans(n, span_frames) with the last span cut into halves, quarters, ... down to
    at least TAPER_FRAMES (250: 125, 62, 63): spans go out in order, so the workers end close
    together instead of all but one waiting on a whole last span. A function of n alone, for
    tasks whose frames are made each on its own (or whose span edges cost little)."""
    spans = frame_spans(n, span_frames)
    if len(spans) < 2:
        return spans
    last = spans.pop()
    start = last.start
    while last.stop - start >= 2 * TAPER_FRAMES:
        size = (last.stop - start) // 2
        spans.append(range(start, start + size))
        start += size
    spans.append(range(start, last.stop))
    return spans


class CoreBudget:
    """The cores one process's tasks share. A thread's claims are counted once: the pipeline's
    slot for a task and the task's own claim within it are the same core."""

    def __init__(self, total: int | None = None) -> None:
        self._total = total
        self._held = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    @property
    def total(self) -> int:
        return self._total if self._total is not None else available_cores()

    def set_total(self, cores: int | None) -> None:
        with self._lock:
            self._total = None if cores is None else max(1, cores)

    @contextlib.contextmanager
    def claim(self, wanted: int) -> Iterator[int]:
        """Up to `wanted` cores for this thread, at least one: the ones it already holds plus
        what is free; the extra ones (and those `more` adds) go back when the block ends."""
        mine = getattr(self._local, "held", 0)
        with self._lock:
            extra = max(0, min(wanted - mine, self.total - self._held))
            if mine == 0:
                extra = max(1, extra)
            self._held += extra
        self._local.held = mine + extra
        grown = self._grown()
        grown.append(0)
        try:
            yield max(1, mine + extra)
        finally:
            with self._lock:
                self._held -= extra + grown.pop()
            self._local.held = mine

    def more(self, wanted: int) -> int:
        """Up to `wanted` more cores, of those free now, for this thread's innermost claim (none
        outside one); they go back when that claim's block ends."""
        grown = self._grown()
        if not grown or wanted <= 0:
            return 0
        with self._lock:
            extra = max(0, min(wanted, self.total - self._held))
            self._held += extra
        grown[-1] += extra
        self._local.held += extra
        return extra

    def free(self) -> int:
        """Cores no claim holds now."""
        with self._lock:
            return max(0, self.total - self._held)

    def may_grow(self) -> bool:
        """Whether this thread holds a claim that `more` could add to (cores may free later)."""
        return bool(self._grown()) and self.total > 1

    def _grown(self) -> list[int]:
        """This thread's open claims, innermost last: the cores `more` added to each."""
        grown = getattr(self._local, "grown", None)
        if grown is None:
            grown = self._local.grown = []
        return grown


BUDGET = CoreBudget()


def set_cores(cores: int | None) -> None:
    """Size this process's budget (`--threads-per-video`); None: the affinity mask's cores."""
    BUDGET.set_total(cores)


def claim_cores(wanted: int) -> contextlib.AbstractContextManager[int]:
    """Up to `wanted` cores from the shared budget while the block runs (at least one)."""
    return BUDGET.claim(wanted)


def task_slot() -> contextlib.AbstractContextManager[int]:
    """The one core a running task holds (the pipeline takes it for each task it starts)."""
    return BUDGET.claim(1)


def start_tracker() -> None:
    """Start multiprocessing's resource tracker (every spawned worker registers with it) now,
    before the command line routes fd 2 through its log filter: started later, the tracker
    would inherit the filter's pipe and hold it open until the run exits, so that the filter
    waited its whole timeout at the end of every run."""
    if BUDGET.total > 1:
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()


def run_spans(
    function: SpanFunction[A, R],
    spans: Sequence[range],
    job: A,
    workers: int,
    progress: Callable[..., Iterator[Any]] | None = None,
    desc: str = "",
) -> list[R]:
    """`function(span, job, tick)` for every span, on up to `workers` processes (fewer when
    memory is short; one: in this process, in order; under MIN_WORKER_FRAMES frames a worker:
    on as many threads of this process); results in span order. On processes, a run that holds
    a claim (claim_cores) starts more workers as cores of the budget free up (another task
    ends), while spans wait and memory allows; one worker is then a process too, when the
    spans hold enough frames for two. See the module docstring for the contract."""
    total = sum(len(span) for span in spans)
    workers = min(memory_workers(workers, available_memory()), len(spans))
    growing = BUDGET.may_grow() and len(spans) > workers
    if workers <= 1 and not (growing and total >= 2 * MIN_WORKER_FRAMES):
        return _run_here(function, spans, job, total, progress, desc)
    if total < workers * MIN_WORKER_FRAMES:
        return _run_threads(function, spans, job, workers, total, progress, desc)
    pool = _Pool(growing)
    try:
        pool.start(workers)
        ticks = pool.run(function, spans, job)
        for _ in ticks if progress is None else progress(ticks, total=total, desc=desc):
            pass
        return pool.results(len(spans))
    finally:
        pool.close()


def _run_here(
    function: SpanFunction[A, R],
    spans: Sequence[range],
    job: A,
    total: int,
    progress: Callable[..., Iterator[Any]] | None,
    desc: str,
) -> list[R]:
    """Every span in this process, in order; the progress bar moves as frames finish (and, as in
    the workers, stops the run at its next frame when the run stops)."""
    bar = None if progress is None else progress(iter(range(total)), total=total, desc=desc)

    def tick(count: int) -> None:
        if bar is not None:
            for _ in range(count):
                next(bar, None)

    results = [function(span, job, tick) for span in spans]
    if bar is not None:
        for _ in bar:
            pass
    return results


class _SpanStopped(Exception):
    """Ends a span on a thread at its next tick once the run has stopped or another failed."""


def _run_threads(
    function: SpanFunction[A, R],
    spans: Sequence[range],
    job: A,
    threads: int,
    total: int,
    progress: Callable[..., Iterator[Any]] | None,
    desc: str,
) -> list[R]:
    """The spans on `threads` threads of this process (MediaPipe, OpenCV and the codecs let go
    of the GIL), for work too short to pay for starting workers; this thread moves the progress
    bar, and a stop or a failure ends every span at its next tick."""
    results: dict[int, R] = {}
    ticks: queue.SimpleQueue[int | BaseException | None] = queue.SimpleQueue()
    stop = threading.Event()

    def tick(count: int) -> None:
        if stop.is_set():
            raise _SpanStopped
        ticks.put(count)

    def one(number: int) -> None:
        try:
            results[number] = function(spans[number], job, tick)
            ticks.put(None)  # after the span's own ticks: one more span has ended
        except _SpanStopped:
            pass
        except BaseException as exc:  # re-raised by the thread that moves the bar
            ticks.put(exc)

    def frames_done() -> Iterator[None]:
        ended = 0
        while ended < len(spans):
            item = ticks.get()
            if item is None:
                ended += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield from (None for _ in range(item))

    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="talkprep-span")
    try:
        for number in range(len(spans)):
            pool.submit(one, number)
        done = frames_done()
        for _ in done if progress is None else progress(done, total=total, desc=desc):
            pass
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    return [results[k] for k in range(len(spans))]


class _Pool:
    """Spawned worker processes, each with its own pipe; spans are handed out one at a time.
    A growing pool asks the budget for more cores while spans wait, and starts a worker on
    each it gets."""

    def __init__(self, growing: bool = False) -> None:
        self._growing = growing
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[tuple[BaseProcess, Connection]] = []
        self._busy: dict[int, int] = {}
        """Worker number -> span number it holds."""
        self._results: dict[int, Any] = {}

    def start(self, workers: int) -> None:
        """Start the workers (those started before a failure here are ended by `close`)."""
        for _ in range(workers):
            here, there = self._context.Pipe()
            process = self._context.Process(
                target=_serve, args=(there, os.getpid()), name="talkprep-span", daemon=False
            )
            # Ctrl-C goes to the whole process group: a worker keeps it blocked from its start
            # (the mask is inherited) until it ignores it; the runner alone stops the run
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                process.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            there.close()
            self._workers.append((process, here))

    def run(self, function: Callable[..., Any], spans: Sequence[range], job: Any) -> Iterator[None]:
        """Hand out the spans; yields once per frame finished, until every span has ended."""
        pending = list(range(len(spans)))
        pending.reverse()
        for number in range(len(self._workers)):
            self._hand_out(number, pending, function, spans, job)
        while self._busy:
            if self._growing and pending:
                self._grow(pending, function, spans, job)
            by_handle = {}
            for number in self._busy:
                process, conn = self._workers[number]
                by_handle[conn] = number
                by_handle[process.sentinel] = number
            for handle in wait(list(by_handle), timeout=WAIT_S):
                number = by_handle[handle]
                if number not in self._busy:
                    continue
                process, conn = self._workers[number]
                message = _receive(conn)
                if message is None:
                    span = spans[self._busy[number]]
                    process.join(STOP_GRACE_S)
                    raise TaskError(
                        f"a worker process died ({exit_text(process.exitcode)}) in frames "
                        f"{span.start}-{span.stop - 1}; rerun to resume"
                    )
                kind, value = message
                if kind == "tick":
                    yield from (None for _ in range(value))
                elif kind == "error":
                    _raise_remote(*value)
                else:
                    result, noted = value
                    from talkprep.io.digests import remember

                    for path, (size, digest) in noted.items():
                        remember(path, size, digest)
                    self._results[self._busy.pop(number)] = result
                    self._hand_out(number, pending, function, spans, job)

    def _grow(
        self, pending: list[int], function: Callable[..., Any], spans: Sequence[range], job: Any
    ) -> None:
        """A worker more for each core the budget frees, up to the spans waiting and what
        memory allows; each starts on a waiting span."""
        if not BUDGET.free():
            return
        added = BUDGET.more(memory_workers(1 + len(pending), available_memory()) - 1)
        if added:
            first = len(self._workers)
            self.start(added)
            for number in range(first, len(self._workers)):
                self._hand_out(number, pending, function, spans, job)

    def _hand_out(
        self,
        number: int,
        pending: list[int],
        function: Callable[..., Any],
        spans: Sequence[range],
        job: Any,
    ) -> None:
        if pending:
            span_number = pending.pop()
            self._busy[number] = span_number
            self._workers[number][1].send((function, spans[span_number], job))

    def results(self, count: int) -> list[Any]:
        return [self._results[k] for k in range(count)]

    def close(self) -> None:
        """Idle workers are told to exit; any still working (a failure, a stop) are ended."""
        for number, (process, conn) in enumerate(self._workers):
            if number not in self._busy:
                with contextlib.suppress(OSError):
                    conn.send(None)
                process.join(STOP_GRACE_S)
            if process.is_alive():
                process.terminate()
                process.join(STOP_GRACE_S)
            if process.is_alive():
                process.kill()
                process.join()
            conn.close()
        self._workers.clear()
        self._busy.clear()


def _receive(conn: Connection) -> tuple[str, Any] | None:
    """The worker's next message, or None when it died instead of answering."""
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


def _raise_remote(exc: BaseException | None, text: str) -> None:
    """Re-raise a worker's exception here, its traceback as the cause (as concurrent.futures)."""
    remote = _RemoteTraceback(text)
    if exc is None:
        raise RuntimeError(f"a span worker failed:\n{text}") from remote
    raise exc from remote


class _RemoteTraceback(Exception):
    def __str__(self) -> str:
        return "\n" + self.args[0]


def _serve(conn: Connection, parent: int) -> None:
    """A worker's life: one core's thread limits, then spans until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    die_with_parent(parent)
    for name in WORKER_THREAD_VARIABLES:
        os.environ[name] = "1"
    set_cores(1)
    import cv2

    cv2.setNumThreads(1)
    from talkprep.io.digests import take_noted

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        function, span, job = message
        tick = _Ticks(conn)
        try:
            result = function(span, job, tick)
            tick.flush()
            conn.send(("done", (result, take_noted())))
        except Exception as exc:
            text = traceback.format_exc()
            try:
                conn.send(("error", (exc, text)))
            except Exception:  # an exception that does not pickle: its text still goes
                conn.send(("error", (None, text)))


class _Ticks:
    """A worker's tick: frames finished, sent to the runner TICK_EVERY at a time."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._pending = 0

    def __call__(self, count: int) -> None:
        self._pending += count
        if self._pending >= TICK_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._conn.send(("tick", self._pending))
            self._pending = 0


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies, even by `kill -9`, so that no
    orphan keeps writing (Linux; elsewhere a worker ends when it next reads from the parent's
    closed pipe)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def exit_text(code: int | None) -> str:
    """A dead process's exit code in words: its exit status, or the signal that killed it."""
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
