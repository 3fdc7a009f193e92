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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from long_clip import repeat_clip

from talkprep.manifest import file_fingerprint

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ANCHOR = DATA / "anchor_512_25fps_20s.mp4"


def timed(command: list[str], expect: int = 0) -> float:
    t0 = time.perf_counter()
    code = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t0
    if code != expect:
        raise SystemExit(f"{' '.join(command)} exited {code}")
    return wall


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
            print(f"{label:>22}: {second:.2f} s (first run {first:.2f} s)")
        for path in out.rglob("*"):
            if path.is_file():
                path.touch()
        moved = timed([*process, "-q"])
        after = timed([*process, "-q"])
        print(f"{'rerun, every ctime moved':>22}: {moved:.2f} s (the next one {after:.2f} s)")


if __name__ == "__main__":
    main()
