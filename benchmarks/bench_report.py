"""Wall time and peak memory of `talkprep report` and `talkprep preview` on a processed clip.

The clip is processed first (all tasks, mel features) in a child process, so this process's peak
memory is that of the report and the preview alone; `--seconds` repeats the clip to that length
first (benchmarks/long_clip.py) to show that memory does not grow with the video.

    python benchmarks/bench_report.py [--clip PATH] [--seconds 60] [--work /tmp/bench_report]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from talkprep.io.images import frame_indices
from talkprep.report.html import build_report
from talkprep.report.preview import write_preview

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared/data/hdtf_512_25fps_8s_mpeg4.mp4"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--seconds", type=float, help="repeat the clip to this length first")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_report"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    video = args.clip
    if args.seconds:
        sys.path.insert(0, str(Path(__file__).parent))
        from long_clip import repeat_clip

        video = repeat_clip(args.clip, args.work / f"long_{args.seconds:g}s.mp4", args.seconds)
    out = args.work / video.stem
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "talkprep", "process", str(video), "-o", str(out),
         "--audio-features", "mel", "-q"],
        check=False,
    )  # fmt: skip
    process_s = time.perf_counter() - started
    n = len(frame_indices(out / "ori_imgs", ".jpg"))
    before = _peak_rss_mib()
    started = time.perf_counter()
    build_report(out)
    report_s = time.perf_counter() - started
    report_rss = _peak_rss_mib()
    preview = write_preview(out)
    result = {
        "clip": str(video),
        "frames": n,
        "process_exit": done.returncode,
        "process_s": round(process_s, 1),
        "report_s": round(report_s, 2),
        "report_mib": round((out / "report.html").stat().st_size / 2**20, 2),
        "preview_s": round(preview.wall_s, 2),
        "preview_frames_per_s": round(n / preview.wall_s, 1),
        "preview_mib": round(preview.path.stat().st_size / 2**20, 2),
        "peak_rss_mib_before": round(before, 1),
        "peak_rss_mib_after_report": round(report_rss, 1),
        "peak_rss_mib_after_preview": round(_peak_rss_mib(), 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
