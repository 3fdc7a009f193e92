"""Speed and peak memory of tasks 5 (parsing), 6 (background) and 7 (torso / gt images), and
BiSeNet's CPU speed at 512x512.

    python benchmarks/bench_parsing.py [--minutes 5] [--keep DIR] [--skip-long] [--bisenet-runs 3]

To compare with an older version on the same (shared, noisy) machine, run it right before or
after this one with that version first on the path, e.g.

    git archive <commit> talkprep | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python benchmarks/bench_parsing.py --keep /tmp/bench_old

Cases: the anchor clip (20 s) and a long input of `--minutes` built from the anchor's frames
played forward and backward (hard links to the frames, landmarks rows repeated the same way), so
the person moves smoothly across the joins. Each task runs in a fresh process so that its peak
resident memory (ru_maxrss) is its own. The machine's core count and load are printed: on a
shared 2-core machine the timings are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
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
TARGET_FPS = 25.0
"""The issue's target: tasks 5-7 together faster than real time on 2 CPU cores (mediapipe)."""
TASKS = ("parsing", "background", "torso")
CORES = 2
"""CPU seconds / CORES bounds the wall time on this many free cores (the issue's target machine):
on a shared, loaded machine the CPU time is the steadier figure. The bound is capped at 4x the
measured wall rate."""


def build_anchor(folder: Path) -> dict[str, Any]:
    """Frames and landmarks of the anchor clip (tasks 3 and 4); returns the frames record."""
    from talkprep.config import build_config
    from talkprep.console import Console
    from talkprep.manifest import Manifest
    from talkprep.pipeline import Pipeline

    config = build_config({"video": ANCHOR, "out": folder, "tasks": "3,4"})
    outcomes = Pipeline(config, Console(quiet=True)).run()
    failed = [(o.name, o.message) for o in outcomes if o.status not in ("done", "skipped")]
    if failed:
        raise SystemExit(f"building the anchor dataset failed: {failed}")
    return Manifest.load(folder).record("frames")


def build_long(source: Path, folder: Path, frames_record: dict[str, Any], minutes: float) -> dict:
    """A long ori_imgs/ of hard links to the source frames, ping-ponged, with its landmarks."""
    n_source = int(frames_record["info"]["n_frames"])
    n = int(round(minutes * 60 * FPS))
    cycle = np.array(list(range(n_source)) + list(range(n_source - 2, 0, -1)))
    order = cycle[np.arange(n) % len(cycle)]
    target = folder / "ori_imgs"
    target.mkdir(parents=True, exist_ok=True)
    for i, k in enumerate(order):
        os.link(source / "ori_imgs" / f"{k}.jpg", target / f"{i}.jpg")
    landmarks = np.load(source / "landmarks.npy")
    np.save(folder / "landmarks.npy", landmarks[order])
    return {"info": {**frames_record["info"], "n_frames": n}}


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM): a spawned child inherits its parent's ru_maxrss
    across exec, so ru_maxrss alone would report the parent's peak."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    """VmHWM of this process since the last reset, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_task(folder: str, frames_record: dict[str, Any], task_name: str) -> dict[str, Any]:
    """One task on one folder in this (fresh) process: wall time, frames/s and peak memory."""
    from talkprep.config import build_config
    from talkprep.console import Console
    from talkprep.tasks import ALL_TASKS
    from talkprep.tasks.base import TaskContext

    out = Path(folder)
    task = next(t for t in ALL_TASKS if t.name == task_name)
    config = build_config({"video": ANCHOR, "out": out, "tasks": str(task.number)})
    ctx = TaskContext(
        out=out,
        config=config,
        input={},
        records={"frames": frames_record},
        progress=Console(quiet=True).progress,
    )
    reset_peak_rss()
    baseline_mib = peak_rss_mib()  # after imports, before the task
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = task.run(ctx)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    n = int(frames_record["info"]["n_frames"])
    return {
        "task": task_name,
        "frames": n,
        "wall_s": round(wall, 2),
        "frames_per_s": round(n / wall, 1),
        "cpu_s": round(cpu, 2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_before_task_mib": round(baseline_mib, 1),
        "figures": result.figures,
    }


def bench_bisenet(runs: int) -> dict[str, Any]:
    """BiSeNet forward at 1x3x512x512 on the CPU (random weights: same cost as trained ones)."""
    import torch

    from talkprep.models.bisenet import BiSeNet

    reset_peak_rss()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = BiSeNet().eval()
    batch = torch.randn(1, 3, 512, 512)
    with torch.no_grad():
        model(batch)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(batch)
            times.append(time.perf_counter() - start)
    best, median = min(times), float(np.median(times))
    return {
        "threads": torch.get_num_threads(),
        "best_s_per_frame": round(best, 3),
        "median_s_per_frame": round(median, 3),
        "frames_per_s": round(1.0 / median, 2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def in_fresh_process(function: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    parser.add_argument("--skip-long", action="store_true", help="only the anchor clip")
    parser.add_argument("--bisenet-runs", type=int, default=3, help="0 skips BiSeNet")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_parsing_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()}, work folder: {work}")

    anchor = work / "anchor"
    frames_record = build_anchor(anchor)
    cases = {"anchor_20s": (anchor, frames_record)}
    if not args.skip_long:
        long_folder = work / f"long_{args.minutes:g}min"
        if long_folder.exists():
            import shutil

            shutil.rmtree(long_folder)
        cases[f"anchor_{args.minutes:g}min"] = (
            long_folder,
            build_long(anchor, long_folder, frames_record, args.minutes),
        )
    report: dict[str, Any] = {"cores": os.cpu_count(), "cases": {}}
    for case, (folder, record) in cases.items():
        rows = [in_fresh_process(run_task, str(folder), record, name) for name in TASKS]
        total = sum(r["wall_s"] for r in rows)
        cpu = sum(r["cpu_s"] for r in rows)
        n = rows[0]["frames"]
        report["cases"][case] = {
            "tasks": rows,
            "tasks_5_7_frames_per_s": round(n / total, 1),
            "tasks_5_7_cpu_s_per_frame": round(cpu / n, 4),
            "tasks_5_7_frames_per_s_bound_on_2_free_cores": round(
                n / max(cpu / CORES, total / 4), 1
            ),
            "faster_than_real_time": n / total > TARGET_FPS,
        }
        for r in rows:
            print(
                f"{case:>16}  {r['task']:<10} {r['frames']:>6} frames  {r['wall_s']:>7.1f} s  "
                f"{r['frames_per_s']:>7.1f} frames/s  cpu {r['cpu_s']:>7.1f} s  "
                f"peak {r['peak_rss_mib']:>7.1f} MiB"
            )
        print(
            f"{case:>16}  tasks 5-7: {n / total:.1f} frames/s wall (real time is {TARGET_FPS:g}); "
            f"{1000 * cpu / n:.1f} ms CPU per frame"
        )
    if args.bisenet_runs > 0:
        bisenet = in_fresh_process(bench_bisenet, args.bisenet_runs)
        report["bisenet_cpu_512"] = bisenet
        print(
            f"BiSeNet 512x512 on CPU ({bisenet['threads']} threads): "
            f"{bisenet['median_s_per_frame']:.3f} s/frame median, "
            f"{bisenet['frames_per_s']} frames/s"
        )
    print(f"load average after: {os.getloadavg()}")
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
