"""Run a trainer's own data loader, unmodified, on a talkprep view, on the CPU.

The trainer's source is a checkout you give (e.g. `git clone https://github.com/Fictionarry/
TalkingGaussian`); nothing is downloaded here. Modules the loader imports only for training (CUDA
kernels, open3d, torchvision, ...) are replaced by empty stand-ins; the reading code runs as
written. Prints what the loader built: frames per split, audio feature shape, and the masks it
derives (face, hair, mouth for TalkingGaussian and InsTaG; the head for GaussianTalker).

    python benchmarks/bench_trainer_loaders.py talkinggaussian --repo TG_CHECKOUT --view DIR \\
        [--audio hubert]
    python benchmarks/bench_trainer_loaders.py ernerf|synctalk --repo CHECKOUT --view DIR \\
        [--audio hubert] [--set portrait=True ...]
    python benchmarks/bench_trainer_loaders.py gaussiantalker --repo CHECKOUT --view DIR

Needs pandas and plyfile (the loaders import them); install them next to, not into, talkprep's
environment if you like: `pip install --target /tmp/loaderlibs --no-deps pandas plyfile
python-dateutil pytz` and `PYTHONPATH=/tmp/loaderlibs`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import types
from typing import Any

import numpy as np

TRAINERS = ("ernerf", "synctalk", "talkinggaussian", "instag", "gaussiantalker")
NERF_OPTIONS: dict[str, Any] = {
    "asr": False, "att": 2, "au45": False, "aud": "", "bg_img": "", "bound": 1.0,
    "bs_area": "upper", "data_range": [0, -1], "emb": False, "exp_eye": True,
    "finetune_lips": False, "fp16": True, "num_rays": 65536, "offset": [0, 0, 0], "part": False,
    "part2": False, "patch_size": 1, "portrait": False, "pose": "", "preload": 1, "scale": 4.0,
    "smooth_eye": False, "smooth_path": False, "smooth_path_window": 7, "torso": False,
}  # fmt: skip
"""ER-NeRF's / SyncTalk's main.py defaults for what their provider reads (with -O: exp_eye)."""


CUDA_PACKAGES = (
    "raymarching", "gridencoder", "freqencoder", "shencoder", "simple_knn", "simple_knn._C",
    "diff_gaussian_rasterization",
)  # fmt: skip
"""The trainers' CUDA extensions (their packages compile kernels on import): stood in for."""


class _Stub(types.ModuleType):
    """A module that hands out an empty class for any name imported from it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


def _import_with_stubs(module: str, package: str) -> Any:
    for _ in range(50):
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            if not exc.name or exc.name.startswith(package):
                raise
            for key in [k for k in sys.modules if k.startswith(package)]:
                del sys.modules[key]
            parts = exc.name.split(".")
            for i in range(1, len(parts) + 1):
                stub = _Stub(".".join(parts[:i]))
                stub.__path__ = []
                sys.modules.setdefault(".".join(parts[:i]), stub)
    raise RuntimeError(f"too many missing modules importing {module}")


def _bare_package(repo: str, name: str) -> None:
    """Import a package's modules without its __init__ (which builds the training networks)."""
    package = types.ModuleType(name)
    package.__path__ = [os.path.join(repo, name)]
    sys.modules[name] = package


def run_nerf(repo: str, view: str, audio: str, overrides: list[str]) -> None:
    provider = _import_with_stubs("nerf_triplane.provider", "nerf_triplane")
    opt = argparse.Namespace(path=view, asr_model=audio, **NERF_OPTIONS)
    for item in overrides:
        key, value = item.split("=", 1)
        setattr(opt, key, {"True": True, "False": False}.get(value, value))
    for split in ("train", "val"):
        data = provider.NeRFDataset(opt, device="cpu", type=split)
        eye = np.asarray(data.eye_area)
        print(
            f"{split}: {len(data.poses)} frames, audio {tuple(data.auds.shape)}, "
            f"eye {eye.shape} in {eye.min():.3f}..{eye.max():.3f}, "
            f"face masks {len(getattr(data, 'face_mask_imgs', []))}"
        )


def run_gaussians(repo: str, view: str, audio: str, instag: bool) -> None:
    _bare_package(repo, "scene")
    readers = _import_with_stubs("scene.dataset_readers", "scene")
    for split in ("transforms_train.json", "transforms_val.json"):
        extra = (-1,) if instag else ()
        cams = readers.readCamerasFromTransforms(
            view, split, False, ".jpg", "", audio, *extra, preload=True
        )
        talk = [c.talking_dict for c in cams]
        face = np.array([np.asarray(t["face_mask"]).sum() for t in talk])
        hair = np.array([np.asarray(t["hair_mask"]).sum() for t in talk])
        mouth = np.array([np.asarray(t["mouth_mask"]).sum() for t in talk])
        print(
            f"{split}: {len(cams)} frames, face px min/median {face.min()}/{int(np.median(face))}, "
            f"hair px min/median {hair.min()}/{int(np.median(hair))}, "
            f"frames with >= 20 mouth px {int((mouth >= 20).sum())}, "
            f"au_exp {tuple(talk[0]['au_exp'].shape)}, audio {tuple(talk[0]['auds'].shape)}"
        )


def run_gaussiantalker(repo: str, view: str) -> None:
    _bare_package(repo, "scene")
    readers = _import_with_stubs("scene.talking_dataset_readers", "scene")
    info = readers.readTalkingPortraitDatasetInfo(view, False, True)
    points = np.asarray(info.point_cloud.points)
    print(
        f"train {len(info.train_cameras)}, test {len(info.test_cameras)} frames; initial points "
        f"{points.shape}, extent {points.min(0).round(2)} .. {points.max(0).round(2)} dm"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trainer", choices=TRAINERS)
    parser.add_argument("--repo", required=True, help="the trainer's source checkout")
    parser.add_argument("--view", required=True, help="a folder talkprep wrote for it")
    parser.add_argument("--audio", default="hubert", help="--asr_model / --audio_extractor")
    parser.add_argument("--set", nargs="*", default=[], help="provider options key=value")
    args = parser.parse_args()
    repo, view = os.path.abspath(args.repo), os.path.abspath(args.view)
    sys.path.insert(0, repo)
    os.chdir(repo)
    for name in CUDA_PACKAGES:
        sys.modules[name] = _Stub(name)
    if args.trainer in ("ernerf", "synctalk"):
        run_nerf(repo, view, args.audio, args.set)
    elif args.trainer == "gaussiantalker":
        run_gaussiantalker(repo, view)
    else:
        run_gaussians(repo, view, args.audio, args.trainer == "instag")


if __name__ == "__main__":
    main()
