"""Speed of task 8: mesh depth (placement + z-buffer, and the whole task with PNG writes) and the
DaGAN network on the CPU (ResNet-50 and -18 at DaGAN's 256 x 256 input, random weights).

    python benchmarks/bench_depth.py [--folder DIR] [--clip anchor|hdtf] [--dagan-frames 16]

Without --folder the clip is processed with tasks 3 and 4 into a temporary folder first (about a
minute); with --folder an already processed folder (tasks 3 and 4 done) is reused. Wall time and
this process's CPU time are both reported: on a shared machine the wall clock also counts other
processes, CPU time does not. Target (issue 6): mesh depth over 100 frames/s at 512 px on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLIPS = {
    "anchor": ROOT.parent / "shared" / "data" / "anchor_512_25fps_20s.mp4",
    "hdtf": ROOT.parent / "shared" / "data" / "hdtf_512_25fps_8s_mpeg4.mp4",
}
TARGET_MESH_FPS = 100.0
DAGAN_SIZE = 256
"""DaGAN's face depth model runs at 256 x 256 (its demo resizes frames to this size)."""


def prepare(video: Path, folder: Path) -> None:
    from talkprep.config import build_config
    from talkprep.console import Console
    from talkprep.pipeline import Pipeline

    config = build_config({"video": video, "out": folder, "tasks": "3,4"})
    outcomes = Pipeline(config, Console(quiet=True)).run()
    failed = [o for o in outcomes if o.status not in ("done", "skipped")]
    if failed:
        raise SystemExit(f"processing failed: {failed}")


def timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def bench_mesh_core(folder: Path) -> dict[str, Any]:
    """Placement and rasterisation only (no figures, no PNG), every frame of the folder."""
    import numpy as np

    from talkprep.geometry.mesh_triangles import FACE_TRIANGLES
    from talkprep.geometry.raster import rasterize_depth_window
    from talkprep.manifest import Manifest
    from talkprep.tasks.depth import _load_track, place_face_meshes

    info = Manifest.load(folder).record("frames")["info"]
    height, width = int(info["height"]), int(info["width"])
    landmarks = np.load(folder / "landmarks.npy")
    track = _load_track(folder / "track_params.pt", len(landmarks))
    good = np.isfinite(landmarks).all(axis=(1, 2)) & np.isfinite(track["translation"]).all(axis=1)
    frames = np.nonzero(good)[0]

    def work() -> None:
        points = place_face_meshes(
            landmarks[frames],
            track["rotation"][frames],
            track["translation"][frames],
            track["shape"],
            track["rigid_index"],
            track["focal"],
            width / 2,
            height / 2,
        )
        for k, i in enumerate(frames):
            rasterize_depth_window(landmarks[i, :, :2], points[k, :, 2], FACE_TRIANGLES,
                                   height, width)  # fmt: skip

    _, wall, cpu = timed(work)
    return {"frames": len(frames), "size": f"{width}x{height}", "wall_fps": len(frames) / wall,
            "cpu_fps": len(frames) / cpu}  # fmt: skip


def bench_task(folder: Path, video: Path) -> dict[str, Any]:
    """The whole of task 8 (mesh) through the pipeline, PNG writes and figures included."""
    from talkprep.config import build_config
    from talkprep.console import Console
    from talkprep.manifest import Manifest
    from talkprep.pipeline import Pipeline

    config = build_config({"video": video, "out": folder, "tasks": "8", "force": True})
    _, wall, cpu = timed(lambda: Pipeline(config, Console(quiet=True)).run())
    record = Manifest.load(folder).record("depth")
    frames = int(record["frames"])
    return {"frames": frames, "wall_fps": frames / wall, "cpu_fps": frames / cpu,
            "figures": record["figures"]}  # fmt: skip


def bench_dagan(n_frames: int) -> dict[str, Any]:
    """DaGAN forward passes on the CPU with random weights saved in the real file layout."""
    import numpy as np
    import torch

    from talkprep.models.dagan import DaganDepth, DepthDecoder, ResnetEncoder

    results = {}
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (512, 512, 3), dtype=np.uint8) for _ in range(n_frames)]
    for name, bottleneck, blocks in (("resnet50", True, (3, 4, 6, 3)),
                                     ("resnet18", False, (2, 2, 2, 2))):  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            encoder = ResnetEncoder(bottleneck, blocks)
            state = {**encoder.state_dict(), "height": DAGAN_SIZE, "width": DAGAN_SIZE,
                     "use_stereo": False}  # fmt: skip
            torch.save(state, Path(tmp) / "encoder.pth")
            torch.save(DepthDecoder(encoder.num_ch_enc).state_dict(), Path(tmp) / "depth.pth")
            with DaganDepth(Path(tmp), "cpu") as model:
                model.predict(images[:2])  # warm-up

                def work(model: DaganDepth = model) -> None:
                    for start in range(0, n_frames, 8):
                        model.predict(images[start : start + 8])

                _, wall, cpu = timed(work)
        results[name] = {"frames": n_frames, "wall_fps": n_frames / wall,
                         "cpu_fps": n_frames / cpu, "threads": torch.get_num_threads()}  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="a folder already processed with tasks 3,4")
    parser.add_argument("--clip", choices=sorted(CLIPS), default="anchor")
    parser.add_argument("--dagan-frames", type=int, default=16)
    args = parser.parse_args()
    video = CLIPS[args.clip]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp) / args.clip
        if args.folder is None:
            print(f"processing {video.name} (tasks 3,4) ...", flush=True)
            prepare(video, folder)
        report = {
            "mesh_core": bench_mesh_core(folder),
            "mesh_task": bench_task(folder, video),
            "dagan_cpu": bench_dagan(args.dagan_frames) if args.dagan_frames > 0 else None,
            "target_mesh_fps": TARGET_MESH_FPS,
        }
    print(json.dumps(report, indent=2, default=lambda v: round(v, 2)))


if __name__ == "__main__":
    main()
