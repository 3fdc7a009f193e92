"""Scaling of `talkprep batch`: total time for 4 clips with 1 and 2 local workers, the Ray
engine's overhead per video, and (optionally) how long the `ray` extra takes to install.

    python benchmarks/bench_batch.py [--tasks 3-4] [--no-ray] [--install]

Every configuration runs `talkprep batch` as a child process into a fresh ROOT, so the times
include starting the workers (and Ray). The machine's load average is printed with each number:
on a shared machine, compare numbers taken under similar load only.
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

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = (
    "anchor_512_25fps_20s.mp4",
    "hdtf_512_25fps_8s_mpeg4.mp4",
    "obama_256_30fps_30s_noaudio.mp4",
    "headturn_700_vfr_6s.mp4",
)
"""Four clips of different lengths, sizes and codecs (1,554 frames in all at 25 fps)."""


def run_batch(root: Path, tasks: str, extra: list[str]) -> tuple[float, dict]:
    """Wall seconds of one `talkprep batch` run and its batch.json."""
    videos = [str(DATA / clip) for clip in CLIPS]
    command = [sys.executable, "-m", "talkprep", "batch", *videos, "-o", str(root)]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="3-4", help="tasks each video runs (default 3-4)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray measurements")
    parser.add_argument("--install", action="store_true", help="also time installing ray")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"{len(CLIPS)} clips, tasks {args.tasks}, {cores} cores", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        local = {}
        for workers in (1, 2):
            threads = max(1, cores // workers)
            wall, summary = run_batch(
                root / f"local{workers}", args.tasks, ["--workers", str(workers)]
            )
            local[workers] = wall
            report(f"local, {workers} worker(s) x {threads} thread(s)", wall, summary)
        wall, summary = run_batch(root / "local1", args.tasks, ["--workers", "1"])
        report("rerun, everything up to date", wall, summary)
        print(f"speed-up of 2 workers over 1: {local[1] / local[2]:.2f}x", flush=True)
        if not args.no_ray:
            threads = max(1, cores // 2)
            options = ["--engine", "ray", "--workers", "2", "--threads-per-video", str(threads)]
            wall, summary = run_batch(root / "ray", args.tasks, options)
            report(f"ray local, 2 x {threads} CPU(s)", wall, summary)
            start = ray_start_seconds()
            print(
                f"Ray instance start + stop: {start:.1f} s; Ray overhead per video over the "
                f"local engine with the same layout: {(wall - local[2]) / len(CLIPS):+.1f} s",
                flush=True,
            )
        if args.install:
            print(f"pip install ray into a fresh venv: {install_seconds(root):.0f} s", flush=True)


if __name__ == "__main__":
    main()
