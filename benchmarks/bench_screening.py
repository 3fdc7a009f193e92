"""Frame screening on real clips with spans of blur, black and a cut to another clip's shot, and
what screening costs.

Each shared speech clip gets a blurred span (Gaussian, sigma 4 px), a black one and a cut to
another shared clip (tests/faults.py), each 1.2-2 s, and is processed (tasks 1, 3, 4, 9, its own
audio); then: the share of each span's frames left out of both splits (want >= 90%) and the share
of the clean frames left out (want <= 12%; on clips of 6-8 s the 4-frame margins of three
spans alone are 16-21% of the clean frames, so the share beyond the margins is shown too), and
the same share on the clip as it is.
`--speed` times task 4's frame loop with and without the screening measures (alternating, three
times each) on the anchor clip repeated to `--seconds`, and task 9's sync and screening, against
the default run's CPU time per frame.

    python benchmarks/bench_screening.py [--work /tmp/bench_screening] [--speed --seconds 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from talkprep.config import build_config
from talkprep.console import Console
from talkprep.pipeline import Pipeline
from talkprep.screening import MARGIN_FRAMES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from faults import dataset_frames, fault_clip  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared/data"
ANCHOR, OBAMA = "anchor_512_25fps_20s.mp4", "obama_256_30fps_30s"
CLIPS: dict[str, tuple[str, str, str | None]] = {
    "anchor": ("anchor_512_25fps_20s.mp4", "hdtf_512_25fps_8s_mpeg4.mp4", None),
    "hdtf": ("hdtf_512_25fps_8s_mpeg4.mp4", "anchor_512_25fps_20s.mp4", None),
    "obama": (f"{OBAMA}_noaudio.mp4", ANCHOR, f"{OBAMA}.wav"),
    "headturn": ("headturn_700_vfr_6s.mp4", "anchor_512_25fps_20s.mp4", None),
}  # fmt: skip
"""(clip, the clip its cut shows, separate audio)."""
LONG_FRAMES = 500
"""Clips this long (20 s) or longer are held to the 12% bound on clean frames: on shorter ones the
margins of three spans alone exceed it."""
SPANS = {"blur": (0.15, 0.23), "black": (0.42, 0.5), "cut": (0.7, 0.8)}
"""Where each fault lies, as shares of the clip's frames."""


def process(video: Path, out: Path, audio: Path, **options: Any) -> dict[str, Any]:
    values = {"video": video, "out": out, "tasks": "1,3,4,9", "audio": audio, **options}
    outcomes = Pipeline(build_config(values), Console(quiet=True)).run()
    failed = [(o.name, o.message) for o in outcomes if o.status not in ("done", "skipped")]
    if failed:
        raise SystemExit(f"{video.name}: {failed}")
    return json.loads((out / ".talkprep/manifest.json").read_text())["tasks"]


def split_ids(out: Path) -> set[int]:
    return {
        f["img_id"]
        for split in ("train", "val")
        for f in json.loads((out / f"transforms_{split}.json").read_text())["frames"]
    }


def quality(work: Path) -> None:
    print(
        "| clip | frames | blur out | black out | cut out | clean out | clean out beyond the "
        "margins | as it is: out |"
    )
    print("|---|---|---|---|---|---|---|---|")
    worst_fault, worst_long, worst_far = 1.0, 0.0, 0.0
    for name, (clip, other, wav) in CLIPS.items():
        audio = DATA / (wav or clip)
        as_is = process(DATA / clip, work / f"{name}-clean", audio)
        n_clean = as_is["frames"]["info"]["n_frames"]
        clean_out = 1 - len(split_ids(work / f"{name}-clean")) / n_clean
        with av.open(str(DATA / clip)) as probe:
            count = probe.streams.video[0].frames or sum(1 for _ in probe.decode(video=0))
        spans = {k: (int(a * count), int(b * count)) for k, (a, b) in SPANS.items()}
        video, _, rate = fault_clip(DATA / clip, DATA / other, work / f"{name}-faults.mp4", spans)
        tasks = process(video, work / f"{name}-faults", audio)
        n = tasks["frames"]["info"]["n_frames"]
        kept = split_ids(work / f"{name}-faults")
        truth = dataset_frames(spans, rate, n)
        faulty = set().union(*map(set, truth.values()))
        shares = {k: 1 - len(kept & set(v)) / len(v) for k, v in truth.items()}
        clean = set(range(n)) - faulty
        clean_share = len(clean - kept) / len(clean)
        near = np.zeros(n, bool)
        near[sorted(faulty)] = True
        near = np.convolve(near, np.ones(2 * MARGIN_FRAMES + 1), mode="same") > 0
        far = clean - set(np.flatnonzero(near).tolist())
        far_share = len(far - kept) / len(far)
        worst_fault = min(worst_fault, *shares.values())
        if n >= LONG_FRAMES:
            worst_long = max(worst_long, clean_share)
        worst_far = max(worst_far, far_share)
        print(
            f"| {name} | {n} | "
            + " | ".join(f"{shares[k]:.0%} of {len(truth[k])}" for k in SPANS)
            + f" | {clean_share:.1%} of {len(clean)} | {far_share:.1%} of {len(far)} | "
            f"{clean_out:.1%} of {n_clean} |"
        )
    verdict = "PASS" if worst_fault >= 0.9 and worst_long <= 0.12 else "FAIL"
    print(
        f"\n{verdict}: fault frames out >= {worst_fault:.0%}; clean frames out <= {worst_long:.1%} "
        f"on clips of {LONG_FRAMES} frames or more; clean frames beyond the margins out <= "
        f"{worst_far:.1%} on every clip"
    )


DEFAULT_RUN_CPU_MS = 358.0 / 7500 * 1000
"""CPU time per frame of the default run (all tasks, HuBERT) on the 5-minute input: 358 CPU-s
for 7,500 frames (commit b129de9, benchmarks/run.py --long on this 2-core machine)."""


def speed(work: Path, seconds: float) -> None:
    from long_clip import repeat_clip

    from talkprep import screening, sync
    from talkprep.io.audio import read_wav
    from talkprep.tasks.landmarks import FrameMeasures, detect_one_face

    video = repeat_clip(DATA / CLIPS["anchor"][0], work / "long.mp4", seconds)
    out = work / "long"
    tasks = process(video, out, video)
    n = tasks["frames"]["info"]["n_frames"]
    times: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(3):
        for label in ("without", "with"):
            measures = FrameMeasures(n) if label == "with" else None
            start = time.process_time()
            detect_one_face(out / "ori_imgs", n, measures=measures)
            times[label].append(time.process_time() - start)
    loop_ms = (statistics.median(times["with"]) - statistics.median(times["without"])) / n * 1e3
    mesh = np.load(out / "landmarks.npy")
    samples, rate = read_wav(out / "aud.wav")
    info = tasks["landmarks"]["info"]
    start = time.process_time()
    offset = sync.measure_offset(sync.mouth_opening(mesh), samples, rate, 25.0)
    sync.silent_closed(sync.frame_levels(samples, rate, 25.0, n), sync.mouth_opening(mesh))
    flags = screening.screen(
        has_face=np.ones(n, bool),
        face_width=screening.face_widths(mesh),
        frame_side=512,
        yaw=np.zeros(n),
        pitch=np.zeros(n),
        sharpness=np.array(info["sharpness"], dtype=float),
        shot=np.array(info["shot_distance"], dtype=float),
        reproj_err=np.zeros(n),
    )
    screening.kept_frames(np.any(list(flags.values()), axis=0))
    task9_ms = (time.process_time() - start) / n * 1e3
    print(
        f"{n} frames. Task 4's frame loop, CPU-s without / with the screening measures: "
        + ", ".join(
            f"{a:.1f} / {b:.1f}" for a, b in zip(times["without"], times["with"], strict=True)
        )
        + f"; added {loop_ms:.3f} ms per frame. Task 9's offset, silence and screening: "
        f"{task9_ms:.3f} ms per frame (offset {offset.offset_s}). Together "
        f"{(loop_ms + task9_ms) / DEFAULT_RUN_CPU_MS:.1%} of the default run's "
        f"{DEFAULT_RUN_CPU_MS:.1f} ms CPU per frame."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_screening"))
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.speed:
        speed(args.work, args.seconds)
    else:
        quality(args.work)


if __name__ == "__main__":
    main()
