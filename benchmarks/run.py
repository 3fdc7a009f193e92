"""The whole default pipeline, end to end: per task wall time, frames/s, share of the total, peak
memory and the real-time factor, written to BENCHMARKS.md.

    python benchmarks/run.py [--long] [--device auto|cpu|cuda] [--out BENCHMARKS.md]
                             [--scaling-seconds 300 | --no-scaling]

Inputs: the 20 s anchor clip and the anchor clip repeated to 5 minutes (with --long also to 20
minutes). Every run is `talkprep process VIDEO -o OUT` with the default options in a child
process. HuBERT-large is the default feature; without its weights in the Hugging Face cache it is
run with randomly initialised weights of the real architecture, saved to a local folder and passed
as --hubert-model (the same code path and the same cost: compute does not depend on the weights),
and the table says so.

Then the scaling table (`bench_scaling.py`): the anchor clip repeated to --scaling-seconds (the
5-minute input by default) without HuBERT on 1, 2, ... up to all the cores, each pinned with
`taskset`, with wall time, CPU time, speed-up and the multiple of the bare cost (decode, face
mesh, selfie segmentation, JPEG encoding, one core each) measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_audio_features import HUBERT_LARGE
from bench_scaling import HERE, bare_cost, bare_parts, commit_of, scaling_table
from long_clip import repeat_clip

from talkprep.manifest import read_manifest
from talkprep.pipeline import throughput

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ANCHOR = DATA / "anchor_512_25fps_20s.mp4"
HUBERT_ID = "facebook/hubert-large-ls960-ft"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hubert_source(scratch: Path) -> tuple[str, str]:
    """(--hubert-model value, how it was made): the cached real model, else random weights."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(HUBERT_ID, local_files_only=True), "real weights (HF cache)"
    except Exception:  # not cached (or no hub library): time the same architecture
        import torch
        from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

        folder = scratch / "hubert-large-random"
        if not (folder / "config.json").is_file():
            torch.manual_seed(0)
            HubertModel(HubertConfig(**HUBERT_LARGE)).save_pretrained(folder)
            Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(
                folder
            )
        return str(folder), "random weights of hubert-large's architecture (no weights here)"


def process(video: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `talkprep process` in a child process."""
    command = [sys.executable, "-m", "talkprep", "process", str(video), "-o", str(out), "-q"]
    t0 = time.perf_counter()
    child = subprocess.Popen([*command, *extra])
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"talkprep exited {code} on {video}")
    return wall, usage.ru_maxrss / 1024


def task_rows(out: Path, total: float) -> list[tuple[str, float, str, str]]:
    rows = []
    for name, record in sorted(
        read_manifest(out)["tasks"].items(), key=lambda item: item[1].get("number", 0)
    ):
        wall = float(record.get("wall_s") or 0.0)
        frames = record.get("frames")
        rate = throughput(frames, wall)
        rate = f"{rate:.0f}" if rate else ""
        rows.append((f"{record.get('number')} {name}", wall, rate, f"{100 * wall / total:.0f}%"))
    return rows


def section_mark(device: str) -> str:
    return f"<!-- benchmarks/run.py device={device} -->"


OTHER_BENCHMARKS = "<!-- other benchmarks, kept by run.py -->"
"""Everything after this line of BENCHMARKS.md comes from other scripts and is kept as it is."""


def write_section(path: Path, device: str, text: str) -> None:
    """Replace this device's section of `path`, keeping the other device's (CPU-only and CUDA
    machines are measured in separate runs, usually on separate machines)."""
    sections = {}
    text_before, kept = path.read_text() if path.is_file() else "", ""
    if OTHER_BENCHMARKS in text_before:
        text_before, kept = text_before.split(OTHER_BENCHMARKS, 1)
        kept = "\n\n" + OTHER_BENCHMARKS + kept.rstrip("\n")
    for part in text_before.split("<!-- benchmarks/run.py device=")[1:]:
        name, _, body = part.partition(" -->")
        sections[name] = section_mark(name) + body.rstrip("\n")
    sections[device] = text.rstrip("\n")
    ordered = [sections[d] for d in ("cpu", "cuda") if d in sections]
    path.write_text("# Benchmarks\n\n" + "\n\n".join(ordered) + kept + "\n")


def scaling_section(scratch: Path, seconds: float) -> list[str]:
    """The scaling table on the anchor clip repeated to `seconds`, with the bare cost."""
    video = repeat_clip(ANCHOR, scratch / "anchor_scaling.mp4", seconds)
    stages, _ = bare_cost(video, HERE)
    bare = (sum(stages["wall"].values()), sum(stages["cpu"].values()))
    cores = list(range(1, len(os.sched_getaffinity(0)) + 1))
    return [
        f"### scaling: anchor repeated to {seconds:.0f} s, without HuBERT (`--tasks 1,3-9`)",
        "",
        f"Each run pinned with `taskset` to the first k cores. Bare cost (one core each): "
        f"{bare[0]:.1f} s, {bare[1]:.1f} CPU-s ({bare_parts(stages)}).",
        "",
        *scaling_table(video, scratch, cores, 1, [HERE], bare),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="also the 20-minute input")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--scaling-seconds", type=float, default=300.0)
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling table")
    args = parser.parse_args()
    import torch

    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none"
    lines = [
        section_mark(device),
        f"## {'CUDA' if device == 'cuda' else 'CPU only'}: {cpu_model()}, {os.cpu_count()} cores",
        "",
        f"Made by `python benchmarks/run.py{' --long' if args.long else ''}` on "
        f"{time.strftime('%Y-%m-%d')}: {cpu_model()}, {os.cpu_count()} cores, GPU: {gpu}, "
        f"torch device {device}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"commit {commit_of(HERE)}, load average {os.getloadavg()[0]:.2f} at the start.",
        "",
    ]
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        hubert, hubert_note = hubert_source(scratch)
        lines += [f"HuBERT: {hubert_note}.", ""]
        inputs = [("anchor 20 s", ANCHOR, 20.0)]
        for minutes in (5, 20) if args.long else (5,):
            video = repeat_clip(ANCHOR, scratch / f"anchor_{minutes}min.mp4", minutes * 60.0)
            inputs.append((f"anchor repeated to {minutes} min", video, minutes * 60.0))
        for label, video, seconds in inputs:
            out = scratch / label.replace(" ", "_")
            extra = ["--hubert-model", hubert, "--device", args.device]
            wall, peak = process(video, out, extra)
            rerun, _ = process(video, out, extra)
            # tasks overlap, so the run without HuBERT is timed on its own, not subtracted
            no_hubert, no_hubert_peak = process(
                video,
                out.with_name(out.name + "_no_hubert"),
                ["--tasks", "1,3-9", "--device", args.device],
            )
            n = read_manifest(out)["tasks"]["frames"]["info"]["n_frames"]
            task_total = sum(row[1] for row in task_rows(out, 1.0))
            rows = task_rows(out, task_total)
            for folder in (out, out.with_name(out.name + "_no_hubert")):
                shutil.rmtree(folder)  # a 20-minute dataset is 8 GB: two at most on disk
            lines += [
                f"### {label} ({n} frames, {seconds:.0f} s)",
                "",
                f"Whole run {wall:.1f} s: real-time factor {wall / seconds:.2f}; peak memory "
                f"{peak:.0f} MiB (resident set of the talkprep process); rerun with every task up "
                f"to date {rerun:.2f} s. Without HuBERT (`--tasks 1,3-9`) {no_hubert:.1f} s: "
                f"real-time factor {no_hubert / seconds:.2f}, peak {no_hubert_peak:.0f} MiB.",
                "",
                "Tasks run in parallel where their needs allow, so a task's wall time overlaps "
                "others' and its share is of the summed task times.",
                "",
                "| task | wall s | frames/s | share |",
                "|---|---|---|---|",
                *(
                    f"| {name} | {task_wall:.1f} | {rate} | {share} |"
                    for name, task_wall, rate, share in rows
                ),
                "",
            ]
            print("\n".join(lines[-12:]), flush=True)
        if not args.no_scaling:
            lines += scaling_section(scratch, args.scaling_seconds)
            print("\n".join(lines[-8:]), flush=True)
    write_section(args.out, device, "\n".join(lines))
    print(f"wrote the {device} section of {args.out}")
    print(json.dumps({"device": device, "cpu": cpu_model(), "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
