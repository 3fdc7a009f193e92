"""Speed and peak memory of task 4 (landmarks + tracking): anchor clip and a 5-minute input.

    python benchmarks/bench_landmarks.py [--minutes 5] [--keep DIR]

The long input is the anchor clip's frames played forward and backward (hard links, no copies)
until it lasts `--minutes`, so the face moves smoothly across the joins. Each case runs in a fresh
process so that its peak resident memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = ROOT.parent / "shared" / "data" / "anchor_512_25fps_20s.mp4"
FPS = 25
TARGET_FPS = 25.0
"""The issue's target: all of task 4 faster than real time (25 frames/s) on 2 CPU cores."""


def build_anchor(folder: Path) -> dict[str, Any]:
    """Decode the anchor clip into folder/ori_imgs with task 3; returns the frames record."""
    from talkprep.config import build_config
    from talkprep.console import Console
    from talkprep.manifest import Manifest
    from talkprep.pipeline import Pipeline

    config = build_config({"video": ANCHOR, "out": folder, "tasks": "3"})
    Pipeline(config, Console(quiet=True)).run()
    return Manifest.load(folder).record("frames")


def build_long(source: Path, folder: Path, frames_record: dict[str, Any], minutes: float) -> dict:
    """A long ori_imgs/ of hard links to the source frames, ping-ponged; returns its record."""
    n_source = int(frames_record["info"]["n_frames"])
    n = int(round(minutes * 60 * FPS))
    cycle = list(range(n_source)) + list(range(n_source - 2, 0, -1))
    target = folder / "ori_imgs"
    target.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        os.link(source / "ori_imgs" / f"{cycle[i % len(cycle)]}.jpg", target / f"{i}.jpg")
    return {"info": {**frames_record["info"], "n_frames": n}}


def run_case(folder: str, frames_record: dict[str, Any]) -> dict[str, Any]:
    """Task 4 on one folder in this (fresh) process; times of its phases and the peak memory."""
    from talkprep.config import build_config
    from talkprep.console import Console
    from talkprep.tasks.base import TaskContext
    from talkprep.tasks.landmarks import LandmarksTask

    out = Path(folder)
    task = LandmarksTask()
    phases: dict[str, float] = {}

    def timed(name: str, method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                phases[name] = time.perf_counter() - start

        return wrapper

    task._detect = timed("landmarks", task._detect)  # type: ignore[method-assign]
    task._write_lms = timed("lms_files", task._write_lms)  # type: ignore[method-assign]
    task._track = timed("tracking", task._track)  # type: ignore[method-assign]
    config = build_config({"video": ANCHOR, "out": out, "tasks": "4"})
    ctx = TaskContext(
        out=out,
        config=config,
        input={},
        records={"frames": frames_record},
        progress=Console(quiet=True).progress,
    )
    start = time.perf_counter()
    result = task.run(ctx)
    total = time.perf_counter() - start
    n = int(frames_record["info"]["n_frames"])
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "frames": n,
        "total_s": round(total, 2),
        "task4_fps": round(n / total, 1),
        **{f"{k}_fps": round(n / v, 1) for k, v in phases.items() if v > 0},
        **{f"{k}_s": round(v, 2) for k, v in phases.items()},
        "peak_rss_mib": round(peak_mib, 1),
        "reproj_median_px": result.figures.get("reproj_median_px"),
        "dropped_frames": result.figures["dropped_frames"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the long input")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="talkprep-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"cpu cores visible: {os.cpu_count()}, affinity: {len(os.sched_getaffinity(0))}")
    anchor = work / "anchor"
    frames_record = build_anchor(anchor)
    long = work / f"long_{args.minutes:g}min"
    long_record = build_long(anchor, long, frames_record, args.minutes)
    rows = {}
    for name, folder, record in (
        ("anchor (20 s)", anchor, frames_record),
        (f"anchor x ping-pong ({args.minutes:g} min)", long, long_record),
    ):
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            rows[name] = pool.submit(run_case, str(folder), record).result()
        print(name, json.dumps(rows[name]), flush=True)
    slowest = min(row["task4_fps"] for row in rows.values())
    verdict = "meets" if slowest > TARGET_FPS else "MISSES"
    print(
        f"task 4 end to end: slowest {slowest} frames/s; "
        f"{verdict} the {TARGET_FPS:g} frames/s target"
    )
    if args.keep is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
