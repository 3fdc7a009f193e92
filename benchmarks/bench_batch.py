"""Scaling of `talkprep batch`: total time for 4 clips with 1 and 2 local workers, the Ray
engine's overhead per video, and (optionally) how long the `ray` extra takes to install.

    python benchmarks/bench_batch.py [--tasks 3-4] [--no-ray] [--dispatch-only] [--install]

Every clip configuration runs `talkprep batch` as a child process into a fresh ROOT, so the
times include starting the workers (and Ray). The engines' own cost per video is measured apart,
with 200 videos that take no time, from the first result to the last. The machine's
load average is printed with each number: on a shared machine, compare numbers taken under
similar load only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from talkprep.batch.jobs import VideoJob, VideoResult
from talkprep.batch.local import run_local
from talkprep.batch.ray_engine import RayPlan, connect, import_ray, run_ray

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = (
    "anchor_512_25fps_20s.mp4",
    "hdtf_512_25fps_8s_mpeg4.mp4",
    "obama_256_30fps_30s_noaudio.mp4",
    "headturn_700_vfr_6s.mp4",
)
"""Four clips of different lengths, sizes and codecs (1,554 frames in all at 25 fps)."""


DISPATCH_JOBS = 200
"""No-op videos of the dispatch measurement: the time from the first result to the last, per
video, is the engine's own steady cost, free of its start-up."""


def run_batch(root: Path, tasks: str, extra: list[str]) -> tuple[float, dict]:
    """Wall seconds of one `talkprep batch` run and its batch.json."""
    inputs = [str(DATA / clip) for clip in CLIPS]
    command = [sys.executable, "-m", "talkprep", "batch", *inputs, "-o", str(root)]
    t0 = time.perf_counter()
    done = subprocess.run([*command, "--tasks", tasks, "--audio-features", "mel", "-q", *extra])
    wall = time.perf_counter() - t0
    summary = json.loads((root / "batch.json").read_text())
    if done.returncode != 0:
        bad = [v for v in summary["videos"] if v["status"] not in ("done", "up-to-date")]
        raise SystemExit(f"batch failed (exit {done.returncode}): {bad}")
    return wall, summary


def report(label: str, wall: float, summary: dict) -> None:
    videos = summary["videos"]
    frames = sum(v["frames"] or 0 for v in videos)
    busy = sum(v["wall_s"] for v in videos)
    load = os.getloadavg()[0]
    print(
        f"{label:<34} {wall:7.1f} s total, {frames / wall:6.1f} frames/s, "
        f"sum of per-video times {busy:6.1f} s, load average {load:.1f}",
        flush=True,
    )


def noop(job: VideoJob) -> VideoResult:
    """A video that takes no time: what is left is the engine's own cost."""
    return VideoResult(str(job.video), job.name, "done")


class _Clock:
    """Records when each result arrives."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def started(self, job: VideoJob) -> None:
        pass

    def retrying(self, job: VideoJob, reason: str) -> None:
        pass

    def finished(self, result: VideoResult) -> None:
        self.times.append(time.perf_counter())

    def tick(self) -> None:
        pass


def dispatch_seconds(engine: str, scratch: Path) -> tuple[float, float]:
    """Start-up (to the first result) and steady seconds per no-op video, 2 workers x 1 thread."""
    jobs = [
        VideoJob(Path(f"v{i}.mp4"), f"v{i}", scratch / f"v{i}", scratch / f"v{i}.log", {}, "b")
        for i in range(DISPATCH_JOBS)
    ]
    clock = _Clock()
    t0 = time.perf_counter()
    if engine == "local":
        run_local(jobs, 2, 1, clock, work=noop)
    else:
        ray = import_ray()
        connect(ray, None, 2)
        try:
            run_ray(jobs, ray, RayPlan(cpus=1, gpus=0, slots=2), clock, work=noop)
        finally:
            ray.shutdown()
    return clock.times[0] - t0, (clock.times[-1] - clock.times[0]) / (len(clock.times) - 1)


def ray_start_seconds() -> float:
    """Seconds to start and stop a private local Ray instance of 2 CPUs."""
    code = (
        "import logging, time; t = time.perf_counter(); import ray\n"
        "ray.init(address='local', num_cpus=2, include_dashboard=False,"
        " logging_level=logging.ERROR, log_to_driver=False)\n"
        "ray.shutdown(); print(time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def install_seconds(scratch: Path) -> float:
    """Seconds for `pip install --no-cache-dir ray` from PyPI into a fresh venv."""
    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    t0 = time.perf_counter()
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-cache-dir", "-q", "ray"], check=True
    )
    return time.perf_counter() - t0


def clip_runs(root: Path, tasks: str, cores: int, no_ray: bool) -> None:
    """The 4 clips with 1 and 2 local workers, a rerun, and the Ray engine."""
    local = {}
    for workers in (1, 2):
        threads = max(1, cores // workers)
        wall, summary = run_batch(root / f"local{workers}", tasks, ["--workers", str(workers)])
        local[workers] = wall
        report(f"local, {workers} worker(s) x {threads} thread(s)", wall, summary)
    wall, summary = run_batch(root / "local1", tasks, ["--workers", "1"])
    report("rerun, everything up to date", wall, summary)
    print(f"speed-up of 2 workers over 1: {local[1] / local[2]:.2f}x", flush=True)
    if not no_ray:
        threads = max(1, cores // 2)
        options = ["--engine", "ray", "--workers", "2", "--threads-per-video", str(threads)]
        wall, summary = run_batch(root / "ray", tasks, options)
        report(f"ray local, 2 x {threads} CPU(s)", wall, summary)
        start = ray_start_seconds()
        print(
            f"Ray instance start + stop: {start:.1f} s; Ray overhead per video over the "
            f"local engine with the same layout: {(wall - local[2]) / len(CLIPS):+.1f} s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="3-4", help="tasks each video runs (default 3-4)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray measurements")
    parser.add_argument("--install", action="store_true", help="also time installing ray")
    parser.add_argument(
        "--dispatch-only", action="store_true", help="only the engines' cost per no-op video"
    )
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"{len(CLIPS)} clips, tasks {args.tasks}, {cores} cores", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        if not args.dispatch_only:
            clip_runs(root, args.tasks, cores, args.no_ray)
        engines = ("local", "ray") if not args.no_ray else ("local",)
        for engine in engines:
            start, per_video = dispatch_seconds(engine, root)
            print(
                f"{engine} engine, {DISPATCH_JOBS} no-op videos: first result after {start:.1f} s,"
                f" then {per_video * 1000:.1f} ms per video",
                flush=True,
            )
        if args.install:
            print(f"pip install ray into a fresh venv: {install_seconds(root):.0f} s", flush=True)


if __name__ == "__main__":
    main()
