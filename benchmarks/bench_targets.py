"""Wall time of writing and checking each trainer's view of a processed clip.

The clip is processed first (all tasks, mel features; zero DeepSpeech-shaped features are added
so that every view is complete), then each target's view is exported to its own folder and
checked against its contract.

    python benchmarks/bench_targets.py [--clip PATH] [--work /tmp/bench_targets]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from talkprep.config import build_config
from talkprep.console import Console
from talkprep.io.images import frame_indices
from talkprep.pipeline import Pipeline
from talkprep.targets import TARGETS
from talkprep.targets.check import check_target
from talkprep.targets.view import write_view

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared/data/anchor_512_25fps_20s.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_targets"))
    args = parser.parse_args()
    out = args.work / args.clip.stem
    config = build_config({"video": args.clip, "out": out, "audio_features": "mel"})
    Pipeline(config, Console(quiet=True)).run()
    n = len(frame_indices(out / "ori_imgs", ".jpg"))
    if not (out / "aud_ds.npy").is_file():
        np.save(out / "aud_ds.npy", np.zeros((n, 16, 29), np.float32))
    print(f"{args.clip.name}: {n} frames")
    for name, target in TARGETS.items():
        view = args.work / f"view-{name}"
        shutil.rmtree(view, ignore_errors=True)
        start = time.perf_counter()
        write_view(out, target, view)
        written = time.perf_counter() - start
        start = time.perf_counter()
        report = check_target(view, target)
        checked = time.perf_counter() - start
        verdict = "ready" if not report.problems else f"{len(report.problems)} problem(s)"
        print(
            f"{name:16s} export {written:6.2f} s ({n / written:6.1f} frames/s)  "
            f"check {checked:5.2f} s  {verdict}"
        )


if __name__ == "__main__":
    main()
