"""Speed and peak memory of the head/camera tracker alone (talkprep.geometry.tracking).

    python benchmarks/bench_tracking.py [--minutes 5] [--landmarks PATH] [--repeats 3]

Landmarks: the anchor clip's landmarks.npy (made here with tasks 3-4 unless --landmarks is
given). The long case plays them forward and backward (continuous motion across the joins)
until they last `--minutes` at 25 fps. Each case runs in a fresh process, so its peak resident
memory (ru_maxrss, which Linux carries over from the parent: the parent stays small) is its
own; the peak of NumPy allocations inside track_head is measured with
tracemalloc (it includes the landmark array passed in). Times are the best of `--repeats` runs
(the machine is shared; the spread is printed too).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = ROOT.parent / "shared" / "data" / "anchor_512_25fps_20s.mp4"
FPS = 25
SIZE = (512, 512)
"""The anchor clip's frame size (width, height)."""


def anchor_landmarks(folder: Path) -> Path:
    """landmarks.npy of the anchor clip, made by talkprep's tasks 3 and 4 in `folder`."""
    from talkprep.config import build_config
    from talkprep.console import Console
    from talkprep.pipeline import Pipeline

    config = build_config({"video": ANCHOR, "out": folder, "tasks": "3,4"})
    Pipeline(config, Console(quiet=True)).run()
    return folder / "landmarks.npy"


def ping_pong(landmarks: np.ndarray, n: int) -> np.ndarray:
    """`landmarks` played forward then backward until n frames."""
    cycle = np.concatenate([np.arange(len(landmarks)), np.arange(len(landmarks) - 2, 0, -1)])
    return landmarks[cycle[np.arange(n) % len(cycle)]]


def run_case(path: str, frames: int, repeats: int) -> dict[str, Any]:
    """track_head on `frames` frames built from the landmarks at `path`, in this process."""
    import tracemalloc

    from talkprep.geometry.tracking import track_head

    source = np.load(path)
    landmarks = ping_pong(source, frames) if frames != len(source) else source
    times = []
    peak = 0
    figures: dict[str, Any] = {}
    for _ in range(repeats):
        tracemalloc.start()
        start = time.perf_counter()
        track = track_head(landmarks, *SIZE)
        times.append(time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        figures = track.figures
    best = min(times)
    return {
        "frames": int(len(landmarks)),
        "seconds_best": round(best, 3),
        "seconds_all": [round(t, 3) for t in times],
        "frames_per_s": round(len(landmarks) / best, 1),
        "landmarks_mib": round(landmarks.nbytes / 2**20, 1),
        "numpy_peak_mib": round(peak / 2**20, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "figures": figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--landmarks", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.landmarks
        if path is None:  # in its own process, so that its memory does not count below
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                path = pool.submit(anchor_landmarks, Path(tmp) / "anchor").result()
        n_anchor = len(np.load(path))
        cases = {"anchor": n_anchor, f"{args.minutes:g} min": int(round(args.minutes * 60 * FPS))}
        results = {}
        for name, frames in cases.items():
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                results[name] = pool.submit(run_case, str(path), frames, args.repeats).result()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
