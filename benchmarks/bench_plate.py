"""Task 6 (the background plate) alone on processed folders: wall and CPU seconds, and how the
sampled frames entered the plate (as they are, followed back to the middle frame's view, or
only filling gaps).

    talkprep process CLIP -o DIR --tasks 3-5        # once per clip
    python benchmarks/bench_plate.py DIR [DIR ...] [--runs 2]

A DIR is never written: each run works on a copy of its ori_imgs/ and semantics/ made of hard
links (or copies across file systems). To compare with an older version, run this with that
version first on the path, e.g.

    git archive <commit> talkprep | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python benchmarks/bench_plate.py DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

FIGURES = (
    "frames_sampled",
    "frames_registered",
    "frames_only_filling_gaps",
    "background_mismatch_levels",
    "filled_pixels_shown_in_gt",
)


def linked_copy(source: Path, target: Path) -> int:
    """Hard links to source's frames and class maps under target (copies where the two lie on
    different file systems); the frame count."""
    for name in ("ori_imgs", "semantics"):
        (target / name).mkdir(parents=True)
        for path in (source / name).iterdir():
            try:
                os.link(path, target / name / path.name)
            except OSError:
                shutil.copyfile(path, target / name / path.name)
    return len(list((source / "ori_imgs").glob("*.jpg")))


def run_plate(folder: Path, n_frames: int) -> tuple[float, float, dict]:
    """Wall and CPU seconds of task 6 on folder, and its figures."""
    from task_context import task_context

    from talkprep.tasks.background import BackgroundTask

    ctx = task_context(folder, n_frames, "6")
    wall, cpu = time.perf_counter(), time.process_time()
    figures = BackgroundTask().run(ctx).figures
    return time.perf_counter() - wall, time.process_time() - cpu, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    for folder in args.folders:
        timings = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as work:
                n_frames = linked_copy(folder, Path(work))
                wall, cpu, figures = run_plate(Path(work), n_frames)
                timings.append((wall, cpu))
        shown = {key: figures.get(key) for key in FIGURES}
        walls = ", ".join(f"{wall:.1f}" for wall, _ in timings)
        cpus = ", ".join(f"{cpu:.1f}" for _, cpu in timings)
        print(f"{folder.name}: {n_frames} frames, wall s {walls}, cpu s {cpus}")
        print(f"  {json.dumps(shown)}")


if __name__ == "__main__":
    main()
