"""Throughput and peak memory of tasks 1 (audio) and 3 (frames, with and without --crop auto),
and the cost of a resumed rerun.

    python benchmarks/bench_frames.py [--seconds 300]

Runs `talkprep process` in a child process per measurement (peak RSS from getrusage) on the
20 s anchor clip (512 px), on a long input built from it by repeating its packets, and with the
crop on the 700 px head-turn clip (a 600 px box resized to 512).
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

from long_clip import repeat_clip

from talkprep.manifest import manifest_path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ANCHOR = DATA / "anchor_512_25fps_20s.mp4"
HEADTURN = DATA / "headturn_700_vfr_6s.mp4"


def run(video: Path, out: Path, tasks: str, *options: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `talkprep process` run in a child process."""
    command = [sys.executable, "-m", "talkprep", "process", str(video), "-o", str(out)]
    t0 = time.perf_counter()
    child = subprocess.Popen([*command, "--tasks", tasks, "-q", *options])
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"talkprep failed on {video}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the long input")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        long_video = repeat_clip(ANCHOR, root / "long.mp4", args.seconds)
        for name, video in (("anchor 20 s", ANCHOR), (f"anchor x{args.seconds:.0f} s", long_video)):
            out = root / name.replace(" ", "_")
            for task in ("1", "3"):
                wall, peak = run(video, out, task)
                record = json.loads(manifest_path(out).read_text())["tasks"]
                task_record = record["audio" if task == "1" else "frames"]
                frames = task_record.get("frames") or record.get("frames", {}).get("frames")
                rate = f"{frames / task_record['wall_s']:.0f} frames/s" if frames else ""
                print(
                    f"{name:>16}  task {task}: task {task_record['wall_s']:.2f} s {rate}, "
                    f"process {wall:.2f} s, peak RSS {peak:.0f} MiB"
                )
            wall, _ = run(video, out, "1,3")
            print(f"{name:>16}  rerun of tasks 1,3 (both skipped): {wall:.2f} s")
        crops = (("anchor 20 s", ANCHOR), (f"anchor x{args.seconds:.0f} s", long_video))
        for name, video in (*crops, ("headturn 6 s", HEADTURN)):
            out = root / ("crop_" + name.replace(" ", "_"))
            wall, peak = run(video, out, "3", "--crop", "auto", "--size", "512")
            record = json.loads(manifest_path(out).read_text())["tasks"]["frames"]
            rate = record["frames"] / record["wall_s"]
            print(
                f"{name:>16}  task 3 --crop auto: task {record['wall_s']:.2f} s {rate:.0f} "
                f"frames/s, box {record['info']['crop_box']}, process {wall:.2f} s, "
                f"peak RSS {peak:.0f} MiB"
            )


if __name__ == "__main__":
    main()
