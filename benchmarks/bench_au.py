"""How au.csv's geometric action units compare with MediaPipe's blendshape model on a clip.

Processes the clip (tasks 3, 4 with `--blendshape-model`), then prints, per AU that both give,
the correlation over frames of the geometric intensity with the blendshape one, and each
geometric AU's median and 95th percentile (0-5).

    python benchmarks/bench_au.py [--clip PATH] [--model face_landmarker.task] [--work DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from talkprep.config import build_config
from talkprep.console import Console
from talkprep.pipeline import Pipeline
from talkprep.tasks.transforms import action_units, blendshape_action_units, head_frame_mesh

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_CLIP = SHARED / "data/hdtf_512_25fps_8s_mpeg4.mp4"
DEFAULT_MODEL = SHARED / "models/face_landmarker.task"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_au"))
    args = parser.parse_args()
    out = args.work / args.clip.stem
    config = build_config(
        {"video": args.clip, "out": out, "tasks": "3,4", "blendshape_model": args.model}
    )
    Pipeline(config, Console(quiet=True)).run()
    params = torch.load(out / "track_params.pt", weights_only=True)
    mesh = head_frame_mesh(
        np.load(out / "landmarks.npy"), params["shape"].numpy(), params["rigid_index"].numpy()
    )
    valid = np.isfinite(mesh).all(axis=(1, 2))
    geometric = action_units(mesh, valid)
    scored = blendshape_action_units(np.load(out / "blendshapes.npy")[valid])
    print(f"{args.clip.name}: {int(valid.sum())} frames with a face")
    for au, values in sorted(geometric.items()):
        mine = values[valid]
        line = f"AU{au:02d}  median {np.median(mine):.2f}  p95 {np.percentile(mine, 95):.2f}"
        if au in scored and mine.std() > 0 and scored[au].std() > 0:
            line += f"  corr with blendshapes {np.corrcoef(mine, scored[au])[0, 1]:+.2f}"
        print(line)


if __name__ == "__main__":
    main()
