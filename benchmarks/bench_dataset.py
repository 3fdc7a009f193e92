"""Items/s and memory of TalkingFaceDataset, lazy and preloaded, every present field at 512 px.

    python benchmarks/bench_dataset.py                  # process the 20 s anchor clip first
    python benchmarks/bench_dataset.py --folder DIR     # an already processed folder
    python benchmarks/bench_dataset.py --synthetic 500  # a synthetic 500-frame 512 px folder

Each mode runs in a fresh child process so that its resident memory is its own. Timings on a
shared machine are noisy: run it twice and compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ANCHOR = REPO.parent / "shared" / "data" / "anchor_512_25fps_20s.mp4"
MIB = 1 << 20


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB, from /proc/self/status."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def children_cpu() -> float:
    """CPU seconds of this process's finished children (DataLoader workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child(folder: Path, mode: str, size: int, items: int, workers: int) -> dict:
    """Build one dataset and time reading from it; returns the figures as a dict."""
    import torch
    from torch.utils.data import DataLoader

    from talkprep.dataset import TalkingFaceDataset

    torch.set_num_threads(1)
    audio = next(
        (name for name in ("hu", "mel", "eo", "ds") if (folder / f"aud_{name}.npy").is_file()),
        "hu",
    )
    rss_before, _ = rss_mib()
    start = time.perf_counter()
    data = TalkingFaceDataset(
        folder,
        split="train",
        audio=audio,
        image_size=size,
        preload=mode.startswith("preload"),
        uint8_images=mode.endswith("uint8"),
    )
    build_s = time.perf_counter() - start
    rss_built, _ = rss_mib()
    count = min(items, len(data))
    start, cpu = time.perf_counter(), time.process_time()
    for k in range(count):
        data[k]
    direct_s = time.perf_counter() - start
    direct_cpu = time.process_time() - cpu
    loader_s = loader_cpu = None
    if workers:
        loader = DataLoader(
            torch.utils.data.Subset(data, range(count)), batch_size=1, num_workers=workers
        )
        start, cpu, cpu_children = time.perf_counter(), time.process_time(), children_cpu()
        for _ in loader:
            pass
        loader_s = time.perf_counter() - start
        del loader  # workers exit and are reaped, so their CPU time is counted
        loader_cpu = time.process_time() - cpu + children_cpu() - cpu_children
    rss_after, rss_peak = rss_mib()
    store = sum(a.nbytes for a in getattr(data, "_store", {}).values())
    return {
        "mode": mode,
        "frames": len(data),
        "size": list(data.size),
        "fields": list(data.fields),
        "audio": audio,
        "build_s": build_s,
        "items": count,
        "items_per_s": count / direct_s,
        "cpu_ms_per_item": 1e3 * direct_cpu / count,
        "loader_items_per_s": None if loader_s is None else count / loader_s,
        "loader_cpu_ms_per_item": None if loader_cpu is None else 1e3 * loader_cpu / count,
        "workers": workers,
        "store_mib": store / MIB,
        "rss_delta_built_mib": rss_built - rss_before,
        "rss_after_mib": rss_after,
        "rss_peak_mib": rss_peak,
    }


def make_folder(args: argparse.Namespace, scratch: Path) -> tuple[Path, str]:
    """The folder to read and a line saying where it came from."""
    if args.folder:
        return Path(args.folder), f"folder {args.folder}"
    if args.synthetic:
        sys.path.insert(0, str(REPO / "tests"))
        from test_dataset import write_synthetic_dataset

        root = scratch / "synthetic"
        start = time.perf_counter()
        write_synthetic_dataset(root, n=args.synthetic, size=args.size)
        took = time.perf_counter() - start
        return (
            root,
            f"synthetic {args.synthetic} frames at {args.size} px (written in {took:.0f} s)",
        )
    video = Path(args.video)
    out = scratch / video.stem
    command = [sys.executable, "-m", "talkprep", "process", str(video), "-o", str(out), "-q"]
    command += ["--tasks", args.tasks, "--audio-features", args.audio_features]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    took = time.perf_counter() - start
    if not (out / "transforms_train.json").is_file():
        sys.exit(f"processing {video} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    note = "" if result.returncode == 0 else f", exit {result.returncode}: some tasks failed"
    return out, f"{video.name} processed in {took:.0f} s (tasks {args.tasks}{note})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--folder", help="an already processed dataset folder")
    source.add_argument("--synthetic", type=int, help="write a synthetic folder of N frames")
    source.add_argument("--video", default=str(ANCHOR), help="video to process first")
    parser.add_argument("--tasks", default="all", help="tasks for --video (default all)")
    parser.add_argument(
        "--audio-features", default="mel", help="for --video (mel: needs no model weights)"
    )
    parser.add_argument("--size", type=int, default=512, help="image_size (default 512)")
    parser.add_argument("--items", type=int, default=300, help="items read per mode")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (0: skip)")
    parser.add_argument(
        "--modes",
        default="lazy,preload,lazy-uint8,preload-uint8",
        help="comma-separated: lazy, preload, and either with -uint8 (uint8_images=True)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = child(Path(args.folder), args.child, args.size, args.items, args.workers)
        print(json.dumps(figures))
        return
    with tempfile.TemporaryDirectory(prefix="bench_dataset_") as scratch:
        folder, origin = make_folder(args, Path(scratch))
        print(f"dataset: {origin}; {os.cpu_count()} CPU cores visible")
        for mode in args.modes.split(","):
            command = [sys.executable, __file__, "--child", mode, "--folder", str(folder)]
            command += ["--size", str(args.size), "--items", str(args.items)]
            command += ["--workers", str(args.workers)]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                sys.exit(f"{mode} run failed:\n{result.stderr[-3000:]}")
            f = json.loads(result.stdout.strip().splitlines()[-1])
            loader = (
                f"\n{'':15}DataLoader({f['workers']} workers, batch 1) "
                f"{f['loader_items_per_s']:.1f} items/s, {f['loader_cpu_ms_per_item']:.1f} "
                "CPU ms/item (all processes)"
                if f["loader_items_per_s"]
                else ""
            )
            print(
                f"{mode:>13}: {f['frames']} train frames at {f['size'][0]}x{f['size'][1]}, "
                f"fields {','.join(f['fields'])} (audio {f['audio']})\n"
                f"{'':15}build {f['build_s']:.2f} s, direct {f['items_per_s']:.1f} items/s, "
                f"{f['cpu_ms_per_item']:.1f} CPU ms/item"
                f"{loader}\n"
                f"{'':15}store {f['store_mib']:.0f} MiB, RSS +{f['rss_delta_built_mib']:.0f} MiB "
                f"after build, {f['rss_after_mib']:.0f} MiB after reading "
                f"(peak {f['rss_peak_mib']:.0f} MiB)"
            )


if __name__ == "__main__":
    main()
