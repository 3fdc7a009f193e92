"""Cost of trusting nothing: a rerun of a finished folder (every output verified before its task
is skipped) and a full `talkprep check`, on the anchor clip repeated to 5 minutes (7,500 frames);
also the whole-file input fingerprint (SHA-256 of the 5-minute video) and a rerun after every
output's ctime moved (`touch` of every file: each one hashed again against its digest).

    python benchmarks/bench_verify.py [--seconds 300] [--keep DIR]

Builds the dataset once with every task (mel features: no model weights needed), then times each
command in a child process, twice, and reports the second (warm file cache) and the first.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from long_clip import repeat_clip

from talkprep.manifest import file_fingerprint

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ANCHOR = DATA / "anchor_512_25fps_20s.mp4"


CPU: list[float] = []
"""CPU seconds (user + system) of each command timed, in order: what a loaded machine's wall
time hides."""


def timed(command: list[str], expect: int = 0) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    code = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if code != expect:
        raise SystemExit(f"{' '.join(command)} exited {code}")
    return wall


def bytes_per_pixel(out: Path, n: int) -> None:
    """Disk use of each image folder per frame pixel (what pipeline.BYTES_PER_PIXEL holds)."""
    import cv2

    height, width = cv2.imread(str(out / "ori_imgs" / "0.jpg")).shape[:2]
    for folder in ("ori_imgs", "semantics", "parsing", "gt_imgs", "torso_imgs", "depth"):
        files = [p for p in (out / folder).glob("*") if p.suffix in (".jpg", ".png")]
        total = sum(p.stat().st_size for p in files)
        print(f"{folder:>22}: {total / n / (height * width):.3f} bytes per frame pixel")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the long input")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the dataset here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        video = root / "long.mp4"
        if not video.is_file():
            repeat_clip(ANCHOR, video, args.seconds)
        out = root / "dataset"
        talkprep = [sys.executable, "-m", "talkprep"]
        process = [*talkprep, "process", str(video), "-o", str(out), "--audio-features", "mel"]
        build = timed([*process, "-q"])
        n = len(list((out / "ori_imgs").glob("*.jpg")))
        files = sum(1 for p in out.rglob("*") if p.is_file())
        print(f"built {n} frames, {files} files in {build:.0f} s")
        bytes_per_pixel(out, n)
        walls = []
        for _ in range(3):
            t0 = time.perf_counter()
            file_fingerprint(video)
            walls.append(time.perf_counter() - t0)
        size = video.stat().st_size / 2**20
        best, worst = min(walls), max(walls)
        print(f"{'input fingerprint':>22}: {best:.3f} s for {size:.0f} MiB (max {worst:.3f})")
        for label, command in (
            ("rerun, all up to date", [*process, "-q"]),
            ("talkprep check", [*talkprep, "check", str(out)]),
        ):
            first = timed(command)
            second = timed(command)
            cpu = f"{CPU[-1]:.2f} CPU-s; first {CPU[-2]:.2f} CPU-s"
            print(f"{label:>22}: {second:.2f} s (first run {first:.2f} s; {cpu})")
        for path in out.rglob("*"):
            if path.is_file():
                path.touch()
        moved = timed([*process, "-q"])
        after = timed([*process, "-q"])
        cpu = f"{CPU[-2]:.2f} and {CPU[-1]:.2f} CPU-s"
        print(
            f"{'rerun, every ctime moved':>22}: {moved:.2f} s (the next one {after:.2f} s; {cpu})"
        )


if __name__ == "__main__":
    main()
