"""CPU time of the tracker against an older talkprep, interleaved (a busy machine's fair A/B).

    git archive 23423b8 talkprep | tar -x -C /tmp/old    # the older version to compare with
    python benchmarks/bench_tracking_ab.py --old /tmp/old --landmarks LANDMARKS.npy [--rounds 2]

Wall time on a shared machine swings with the other jobs; the process's CPU time
(``time.process_time``, single-threaded BLAS inside the tracker) barely does. Each measurement
runs in a fresh interpreter, alternating old and new, on the landmarks as given (e.g. the anchor
clip's landmarks.npy) and played forward and backward to ``--frames`` frames.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys, time, numpy as np
sys.path.insert(0, {src!r})
sys.path.insert(1, {bench!r})
from bench_tracking import ping_pong
from talkprep.geometry.tracking import track_head
import talkprep
source = np.load({landmarks!r})
marks = ping_pong(source, {frames}) if {frames} != len(source) else source
start = time.process_time()
track_head(marks, {width}, {height})
print(time.process_time() - start, talkprep.__file__)
"""


def cpu_seconds(src: Path, landmarks: Path, frames: int, size: tuple[int, int]) -> float:
    """CPU seconds of one track_head call with talkprep imported from ``src``."""
    code = CHILD.format(
        src=str(src), bench=str(ROOT / "benchmarks"), landmarks=str(landmarks), frames=frames,
        width=size[0], height=size[1],
    )  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, path = out.stdout.split()
    if not Path(path).resolve().is_relative_to(src.resolve()):
        raise RuntimeError(f"talkprep came from {path}, not {src}")
    return float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="folder holding an older talkprep/")
    parser.add_argument("--landmarks", type=Path, required=True)
    parser.add_argument("--frames", type=int, nargs="*", default=[500, 7500])
    parser.add_argument("--size", type=int, nargs=2, default=[512, 512])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    for frames in args.frames:
        row: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(args.rounds):
            for name, src in (("old", args.old), ("new", ROOT)):
                row[name].append(round(cpu_seconds(src, args.landmarks, frames, args.size), 3))
        results[f"{frames} frames"] = row
        print(frames, json.dumps(row), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
