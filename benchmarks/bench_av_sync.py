"""Audio-video offset on every shared speech clip with its audio shifted by whole frames.

Each clip is processed once (tasks 1, 3, 4, 9), then again with its own aud.wav moved by each
shift (`--audio`, so only tasks 1 and 9 rerun); the change of `av_offset_s` must match the shift
within one frame in every case, and a clip in sync must not be shifted. The raw offsets of the
in-sync clips (offset + BIAS_S) are the calibration of talkprep.sync.BIAS_S: their median.

    python benchmarks/bench_av_sync.py [--work /tmp/bench_av_sync] [--shifts -10,-5,-2,2,5,10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from talkprep.config import build_config
from talkprep.console import Console
from talkprep.pipeline import Pipeline
from talkprep.sync import BIAS_S

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from faults import shifted_wav  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared/data"
CLIPS: dict[str, tuple[str, str | None]] = {
    "anchor": ("anchor_512_25fps_20s.mp4", None),
    "hdtf": ("hdtf_512_25fps_8s_mpeg4.mp4", None),
    "obama": ("obama_256_30fps_30s_noaudio.mp4", "obama_256_30fps_30s.wav"),
    "headturn": ("headturn_700_vfr_6s.mp4", None),
}
"""The shared clips with speech (the longhair clips are silent or not speech)."""
FPS = 25.0


def run(video: Path, out: Path, audio: Path | None) -> dict[str, Any]:
    """Process tasks 1, 3, 4, 9; return task 9's figures and info."""
    values: dict[str, Any] = {"video": video, "out": out, "tasks": "1,3,4,9"}
    if audio is not None:
        values["audio"] = audio
    outcomes = Pipeline(build_config(values), Console(quiet=True)).run()
    failed = [(o.name, o.message) for o in outcomes if o.status not in ("done", "skipped")]
    if failed:
        raise SystemExit(f"{video.name}: {failed}")
    record = json.loads((out / ".talkprep/manifest.json").read_text())["tasks"]["transforms"]
    return {**record["figures"], **record["info"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_av_sync"))
    parser.add_argument("--shifts", default="-10,-5,-2,2,5,10")
    args = parser.parse_args()
    shifts = [int(s) for s in args.shifts.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    print("| clip | offset as given (frames) | confidence | applied | "
          + " | ".join(f"{s:+d}" for s in shifts) + " |")  # fmt: skip
    print("|---" * (4 + len(shifts)) + "|")
    worst, raw_in_sync, failures = 0.0, {}, []
    for name, (clip, wav) in CLIPS.items():
        out = args.work / name
        base = run(DATA / clip, out, DATA / wav if wav else None)
        offset = base["av_offset_s"]
        own = args.work / f"{name}.wav"
        own.write_bytes((out / "aud.wav").read_bytes())
        cells = []
        for shift in shifts:
            moved = shifted_wav(own, args.work / f"{name}{shift:+d}.wav", shift, FPS)
            got = run(DATA / clip, out, moved)
            change = (got["av_offset_s"] - offset) * FPS
            error = change - shift
            worst = max(worst, abs(error))
            if abs(error) > 1.0:
                failures.append(f"{name} {shift:+d}: {change:+.2f}")
            mark = "" if got["av_sync"]["applied_frames"] else ", not applied"
            cells.append(f"{change:+.2f} (c {got['av_confidence']:.2f}{mark})")
        applied = base["av_sync"]["applied_frames"]
        if abs(offset * FPS) < 2:
            raw_in_sync[name] = (offset + BIAS_S) * FPS
            if applied:
                failures.append(f"{name}: in sync but shifted by {applied} frames")
        print(
            f"| {name} | {offset * FPS:+.2f} | {base['av_confidence']:.2f} | {applied:+d} | "
            + " | ".join(cells)
            + " |"
        )
    print(f"\nlargest error of the measured change against the shift: {worst:.2f} frames")
    print(
        "raw offsets of the clips in sync (frames): "
        + ", ".join(f"{k} {v:+.2f}" for k, v in raw_in_sync.items())
        + f"; median {statistics.median(raw_in_sync.values()):+.2f} "
        f"(BIAS_S = {BIAS_S} s = {BIAS_S * FPS:.2f} frames)"
    )
    print("FAIL: " + "; ".join(failures) if failures else "PASS: every shift within one frame")


if __name__ == "__main__":
    main()
