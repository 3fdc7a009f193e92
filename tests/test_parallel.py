"""Span workers (talkprep.parallel): spans of N alone, a shared core budget, results in span order,
failures and stops that leave no worker behind, and the same files from one worker as from two."""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import TEST_DEFAULTS, clip_path

from talkprep import parallel
from talkprep.config import build_config
from talkprep.console import Console
from talkprep.errors import TaskError
from talkprep.io.atomic import write_bytes
from talkprep.io.digests import take_table
from talkprep.parallel import (
    MEMORY_RESERVE,
    WORKER_MEMORY,
    CoreBudget,
    frame_spans,
    memory_workers,
    run_spans,
    tapered_spans,
)
from talkprep.pipeline import Pipeline
from talkprep.tasks import depth
from talkprep.tasks.landmarks import LandmarkFile

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True, params=["processes", "threads"])
def where(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """These tests hand a few frames to each worker: on worker processes all the same, and on
    threads, as work too short for processes runs."""
    minimum = 1 if request.param == "processes" else 10**9
    monkeypatch.setattr(parallel, "MIN_WORKER_FRAMES", minimum)
    return request.param


def squares(span: range, job: int, tick: parallel.Tick) -> list[int]:
    """A span function: each frame's value, one tick per frame."""
    out = []
    for i in span:
        out.append(i * i + job)
        tick(1)
    return out


def fails_at(span: range, job: int, tick: parallel.Tick) -> None:
    for i in span:
        if i == job:
            raise TaskError(f"frame {i} is unreadable")
        tick(1)


def dies_at(span: range, job: int, tick: parallel.Tick) -> None:
    if job in span:
        os._exit(3)
    for _ in span:
        tick(1)


def writes_files(span: range, job: Path, tick: parallel.Tick) -> None:
    for i in span:
        write_bytes(job / f"{i}.bin", f"frame {i}".encode())
        tick(1)


def test_frame_spans_cover_every_frame_once_whatever_the_length() -> None:
    for n in (1, 2, 249, 250, 251, 500, 7501):
        spans = frame_spans(n, 250)
        assert [i for span in spans for i in span] == list(range(n))
        assert len(spans) == -(-n // 250)
        assert max(map(len, spans)) - min(map(len, spans)) <= 1


def test_tapered_spans_cut_the_last_span_and_cover_every_frame_once() -> None:
    assert tapered_spans(250, 250) == [range(0, 250)]
    assert [len(s) for s in tapered_spans(7500, 250)] == [250] * 29 + [125, 62, 63]
    for n in (1, 2, 249, 251, 500, 7501):
        spans = tapered_spans(n, 250)
        assert [i for span in spans for i in span] == list(range(n))
        assert min(map(len, spans)) >= min(n, parallel.TAPER_FRAMES)


def test_budget_shares_its_cores_and_counts_a_threads_claims_once() -> None:
    budget = CoreBudget(4)
    with budget.claim(1) as slot:
        assert slot == 1
        with budget.claim(10) as inner:  # the task's own claim includes its slot
            assert inner == 4
            granted: list[int] = []

            def other() -> None:
                with budget.claim(1) as one, budget.claim(3) as more:
                    granted.extend([one, more])

            thread = threading.Thread(target=other)
            thread.start()
            thread.join()
            assert granted == [1, 1], "a task always runs, on one core when none is free"
        with budget.claim(3) as again:
            assert again == 3
    with budget.claim(2) as alone:
        assert alone == 2


def test_a_claim_grows_by_the_cores_another_task_gives_back() -> None:
    budget = CoreBudget(3)
    other_holds, other_may_end, other_ended = (
        threading.Event(),
        threading.Event(),
        threading.Event(),
    )

    def other() -> None:
        with budget.claim(1):
            other_holds.set()
            other_may_end.wait()
        other_ended.set()

    thread = threading.Thread(target=other)
    thread.start()
    other_holds.wait()
    assert budget.more(1) == 0, "no claim open in this thread: nothing to add to"
    with budget.claim(1), budget.claim(5) as granted:
        assert granted == 2
        assert budget.more(5) == 0
        other_may_end.set()
        other_ended.wait()
        assert budget.more(5) == 1
        assert budget.free() == 0
    assert budget.free() == 3, "the added core went back with the claim"
    thread.join()


def pid_after(span: range, job: float, tick: parallel.Tick) -> int:
    """A span function: its frames take `job` seconds each; the process that ran it."""
    for _ in span:
        time.sleep(job)
        tick(1)
    return os.getpid()


def test_span_workers_grow_when_another_task_ends(where: str) -> None:
    """Task 5 starts beside task 8 on two cores and gets one; when task 8 ends, a second worker
    takes the spans still waiting (on worker processes; work on threads keeps its count)."""
    release = threading.Event()

    def other_task() -> None:
        with parallel.task_slot():
            release.wait()

    parallel.set_cores(2)
    thread = threading.Thread(target=other_task)
    try:
        thread.start()
        while parallel.BUDGET.free() == 2:
            time.sleep(0.01)
        ticks = 0

        def progress(items, total: int, desc: str):
            nonlocal ticks
            for item in items:
                ticks += 1
                if ticks == 2:
                    release.set()
                yield item

        with parallel.task_slot(), parallel.claim_cores(8) as workers:
            assert workers == 1
            pids = run_spans(pid_after, frame_spans(40, 5), 0.05, workers, progress, "grow")
        assert parallel.BUDGET.free() == 2
    finally:
        release.set()
        thread.join()
        parallel.set_cores(None)
    assert ticks == 40
    if where == "processes":
        assert len(set(pids)) == 2 and os.getpid() not in pids
    else:
        assert set(pids) == {os.getpid()}


def test_memory_lowers_the_worker_count() -> None:
    assert memory_workers(8, None) == 8
    assert memory_workers(8, MEMORY_RESERVE + 3 * WORKER_MEMORY) == 4
    assert memory_workers(8, MEMORY_RESERVE // 2) == 1
    assert memory_workers(1, 0) == 1


@pytest.mark.parametrize("workers", [1, 3])
def test_results_come_back_in_span_order_with_every_tick(workers: int) -> None:
    spans = frame_spans(100, 7)
    seen = []

    def progress(items, total: int, desc: str):
        assert total == 100 and desc == "squares"
        for item in items:
            seen.append(item)
            yield item

    parts = run_spans(squares, spans, 5, workers, progress, "squares")
    assert [v for part in parts for v in part] == [i * i + 5 for i in range(100)]
    assert len(seen) == 100
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_span_reaches_the_caller_and_ends_every_worker(workers: int, where: str) -> None:
    threads = threading.active_count()
    with pytest.raises(TaskError, match="frame 37 is unreadable") as caught:
        run_spans(fails_at, frame_spans(100, 10), 37, workers)
    assert threading.active_count() == threads
    if workers > 1 and where == "processes":
        assert "fails_at" in str(caught.value.__cause__), "the worker's traceback is the cause"
    assert not multiprocessing.active_children()


def test_a_worker_that_dies_fails_the_task_with_its_frames(where: str) -> None:
    if where == "threads":
        pytest.skip("a thread cannot die alone")
    with pytest.raises(TaskError, match=r"worker process died \(exit status 3\) in frames 40-49"):
        run_spans(dies_at, frame_spans(100, 10), 42, 2)
    assert not multiprocessing.active_children()


def test_a_stopped_run_ends_its_workers() -> None:
    class Stopped(BaseException):
        pass

    def progress(items, total: int, desc: str):
        for count, item in enumerate(items):
            if count == 30:
                raise Stopped
            yield item

    threads = threading.active_count()
    with pytest.raises(Stopped):
        run_spans(squares, frame_spans(10_000, 10), 0, 2, progress)
    assert not multiprocessing.active_children()
    assert threading.active_count() == threads


def test_workers_hand_their_files_digests_to_the_runner(tmp_path: Path) -> None:
    """Files written in a worker are noted in the runner's process, as if written there."""
    run_spans(writes_files, frame_spans(20, 5), tmp_path, 2)
    paths = [tmp_path / f"{i}.bin" for i in range(20)]
    expected = take_table(paths)["digest"].copy()  # noted digests, taken and forgotten
    assert (take_table(paths)["digest"] == expected).all()  # the same, hashed from the files


def dataset(root: Path, cores: int) -> Path:
    """The anchor clip (500 frames: two landmark spans) through tasks 3, 4 and 8 on `cores`."""
    out = root / f"cores{cores}"
    parallel.set_cores(cores)
    try:
        values = {**TEST_DEFAULTS, "video": clip_path("anchor"), "out": out, "tasks": "3,4,8"}
        outcomes = Pipeline(build_config(values), Console(quiet=True)).run()
    finally:
        parallel.set_cores(None)
    assert [o.status for o in outcomes] == ["done"] * 3
    return out


def test_one_worker_writes_the_same_files_as_two(
    tmp_path: Path, pool_starts: list[int], where: str
) -> None:
    """Byte for byte: frames, landmarks, .lms, the track and every depth map, with one core and
    with two (task 4 and task 8 on two span workers each, or on two threads each)."""
    one = dataset(tmp_path, 1)
    assert pool_starts == []
    if where == "threads":
        two = dataset(tmp_path, 2)
        assert pool_starts == [], "two threads each for tasks 4 and 8"
    else:
        two = dataset(tmp_path, 2)
        assert pool_starts == [2, 2], "tasks 4 and 8 each on two workers"
    names = sorted(
        str(p.relative_to(one))
        for p in one.rglob("*")
        if p.is_file() and ".talkprep" not in p.parts and not p.name.startswith(".talkprep")
    )
    assert {"landmarks.npy", "track_params.pt", "ori_imgs/499.jpg", "depth/499.png"} <= set(names)
    assert names == sorted(
        str(p.relative_to(two))
        for p in two.rglob("*")
        if p.is_file() and ".talkprep" not in p.parts and not p.name.startswith(".talkprep")
    )
    different = [name for name in names if (one / name).read_bytes() != (two / name).read_bytes()]
    assert different == [], explain_depth_difference(one, tmp_path, different)
    landmarks = np.load(two / "landmarks.npy")
    assert np.isfinite(landmarks).all()


def numeric_environment() -> dict[str, Any]:
    """What can make float results differ between processes: flush-to-zero and denormals-are-zero
    (MXCSR), the rounding of 1/3, numpy's SIMD features and OpenBLAS's kernels."""
    from numpy.core._multiarray_umath import __cpu_features__

    blas = sorted(Path(np.__file__).parent.parent.glob("numpy.libs/libopenblas*.so"))
    corename = ""
    if blas:
        function = getattr(ctypes.CDLL(str(blas[0])), "openblas_get_corename64_", None)
        if function is not None:
            function.restype = ctypes.c_char_p
            corename = function().decode()
    with np.errstate(all="ignore"):
        return {
            "ftz": bool((np.array([1e-300]) * 1e-10)[0] == 0),
            "daz": bool((np.array([5e-324]) * 1.0)[0] == 0),
            "third": (np.array([1.0]) / 3.0)[0].hex(),
            "features": sorted(k for k, v in __cpu_features__.items() if v),
            "openblas": corename,
        }


def depth_probe(folder: Path, out: Path, start: int, stop: int) -> dict[str, Any]:
    """Task 8's depth maps of frames start .. stop - 1 drawn again in this process from `folder`'s
    landmarks and track into `out`: each file's digest and its pixels' digest, and this process's
    numeric environment."""
    out.mkdir(parents=True)
    for name in ("landmarks.npy", "track_params.pt"):
        shutil.copy(folder / name, out / name)
    n = len(list((folder / "ori_imgs").glob("*.jpg")))
    height, width = cv2.imread(str(folder / "ori_imgs" / "0.jpg")).shape[:2]
    with LandmarkFile(out / "landmarks.npy", n) as landmarks:
        job = depth.mesh_job(out, landmarks, height, width)
    (out / depth.DEPTH_DIR).mkdir()
    depth._depth_span(range(start, stop), job, lambda count: None)
    files = {}
    for i in range(start, stop):
        path = out / depth.DEPTH_DIR / f"{i}.png"
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        files[i] = (
            hashlib.md5(path.read_bytes()).hexdigest(),
            hashlib.md5(pixels.tobytes()).hexdigest(),
        )
    return {"files": files, "environment": numeric_environment()}


def explain_depth_difference(one: Path, scratch: Path, different: list[str]) -> str:
    """For a failure: the span of the first differing depth map drawn again here and in a fresh
    process, which frames then differ in bytes and which in pixels, and both environments."""
    frames = sorted(int(Path(name).stem) for name in different if name.startswith("depth/"))
    if not frames:
        return f"differing files: {different}"
    start = frames[0] // depth.SPAN_FRAMES * depth.SPAN_FRAMES
    stop = min(start + depth.SPAN_FRAMES, len(list((one / depth.DEPTH_DIR).glob("*.png"))))
    here = depth_probe(one, scratch / "probe_here", start, stop)
    code = (
        "import json, sys; from pathlib import Path; sys.path[:0] = sys.argv[1:2];"
        "from test_parallel import depth_probe;"
        "print(json.dumps(depth_probe(Path(sys.argv[2]), Path(sys.argv[3]), "
        "int(sys.argv[4]), int(sys.argv[5]))))"
    )
    arguments = [str(Path(__file__).parent), str(one), str(scratch / "probe_fresh"), str(start)]
    printed = subprocess.run(
        [sys.executable, "-c", code, *arguments, str(stop)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[-1]
    fresh = json.loads(printed)
    there = {int(i): tuple(pair) for i, pair in fresh["files"].items()}
    mine = here["files"]
    written = {
        i: hashlib.md5((one / depth.DEPTH_DIR / f"{i}.png").read_bytes()).hexdigest() for i in mine
    }
    return (
        f"differing files: {different}; frames {start}-{stop - 1} drawn again: bytes differ "
        f"here/fresh at {[i for i in mine if mine[i][0] != there[i][0]]}, pixels at "
        f"{[i for i in mine if mine[i][1] != there[i][1]]}; here differs from the first run at "
        f"{[i for i in mine if mine[i][0] != written[i]]}; environment here "
        f"{here['environment']}, fresh {fresh['environment']}"
    )


def span_workers_of(pid: int) -> list[int]:
    """Process ids of the span workers of `pid` (from /proc; not multiprocessing's tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


def test_ctrl_c_during_span_workers_ends_them_and_the_rerun_resumes(
    tmp_path: Path, where: str
) -> None:
    """Ctrl-C reaches the whole process group (as from a terminal): the run stops with 130, its
    span workers are gone, and the rerun keeps the frames and redoes the landmarks. The clip is
    the anchor repeated to 1250 frames, enough for two workers in the child's own run."""
    if where == "threads":
        pytest.skip("the child runs with its own settings")
    spec = importlib.util.spec_from_file_location("long_clip", BENCHMARKS / "long_clip.py")
    assert spec is not None and spec.loader is not None
    long_clip = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(long_clip)
    video = long_clip.repeat_clip(clip_path("anchor"), tmp_path / "anchor_50s.mp4", 50.0)
    out = tmp_path / "o"
    command = [sys.executable, "-m", "talkprep", "process", str(video)]
    command += ["-o", str(out), "--tasks", "3,4", "-q"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while not workers and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
        workers = span_workers_of(process.pid)
    if not workers:
        process.kill()
        pytest.skip("no span workers started (one core, or too little memory)")
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "an orphan worker"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    tasks = json.loads((out / ".talkprep" / "manifest.json").read_text())["tasks"]
    assert tasks["landmarks"]["status"] == "done"
    assert np.isfinite(np.load(out / "landmarks.npy")).all()
