"""One dataset folder's per-frame pictures for the report and the preview: frame i with its class
map, 68 points and pose axes drawn on, and its gt or torso image. Reads files, one frame at a
time; the drawing itself is in `talkprep.report.overlays`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkprep.geometry.jaw_contour import landmarks68
from talkprep.io.images import read_image
from talkprep.report.overlays import (
    ClassSource,
    class_source,
    draw_axes,
    draw_classes,
    draw_index,
    draw_lms68,
    fit_side,
    on_checker,
    pose_axes,
)

FRAMES_DIR = "ori_imgs"
GT_DIR = "gt_imgs"
TORSO_DIR = "torso_imgs"


def load_track(root: Path) -> dict[str, np.ndarray] | None:
    """track_params.pt as float64 arrays (euler, trans, focal, reproj_err), or None if absent."""
    path = root / "track_params.pt"
    if not path.is_file():
        return None
    import torch

    params: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return {
        k: np.asarray(params[k].numpy(), dtype=np.float64)
        for k in ("euler", "trans", "focal", "reproj_err")
        if k in params
    }


class FolderView:
    """Annotated pictures of one dataset folder's frames; holds only small per-video arrays."""

    def __init__(self, root: Path, fps: float) -> None:
        self.root = root
        self.fps = fps
        self.classes: ClassSource | None = class_source(root)
        self.track = load_track(root)
        self._landmarks: np.ndarray | None = None
        path = root / "landmarks.npy"
        if path.is_file():
            self._landmarks = np.load(path, mmap_mode="r")
        self._axes: np.ndarray | None = None

    def _pose_axes(self, width: int, height: int) -> np.ndarray | None:
        track = self.track
        if track is None or "focal" not in track:
            return None
        if self._axes is None:
            focal = float(track["focal"].reshape(-1)[0])
            self._axes = pose_axes(track["euler"], track["trans"], focal, width, height)
        return self._axes

    def lms68(self, index: int) -> np.ndarray | None:
        """The 68 points of frame `index` in pixels, or None without landmarks."""
        if self._landmarks is None or index >= len(self._landmarks):
            return None
        mesh = np.asarray(self._landmarks[index : index + 1], dtype=np.float64)
        return landmarks68(mesh)[0]

    def has_frame(self, index: int) -> bool:
        return index >= 0 and (self.root / FRAMES_DIR / f"{index}.jpg").is_file()

    def label(self, index: int) -> str:
        return f"#{index}  {index / self.fps:.2f} s"

    def frame(self, index: int, side: int, overlays: bool = True) -> np.ndarray:
        """ori_imgs/{index}.jpg scaled to `side`, with classes, 68 points, pose axes and index."""
        image = read_image(self.root / FRAMES_DIR / f"{index}.jpg")
        height, width = image.shape[:2]
        thumb, scale = fit_side(image, side)
        if overlays:
            if self.classes is not None:
                labels = self.classes.read(self.root, index)
                if labels is not None:
                    thumb = draw_classes(
                        thumb, labels, self.classes.palette, self.classes.background
                    )
            points = self.lms68(index)
            if points is not None:
                thumb = draw_lms68(thumb, points, scale)
            axes = self._pose_axes(width, height)
            if axes is not None and index < len(axes):
                thumb = draw_axes(thumb, axes[index], scale)
        return draw_index(thumb, self.label(index))

    def gt(self, index: int, side: int) -> np.ndarray | None:
        """gt_imgs/{index}.jpg scaled and labelled, or None when absent."""
        path = self.root / GT_DIR / f"{index}.jpg"
        if not path.is_file():
            return None
        return draw_index(fit_side(read_image(path), side)[0], f"gt {self.label(index)}")

    def torso(self, index: int, side: int) -> np.ndarray | None:
        """torso_imgs/{index}.png over a checkerboard, scaled and labelled, or None when absent."""
        path = self.root / TORSO_DIR / f"{index}.png"
        if not path.is_file():
            return None
        rgba = read_image(path, cv2.IMREAD_UNCHANGED)
        if rgba.ndim != 3 or rgba.shape[2] != 4:
            return None
        return draw_index(on_checker(fit_side(rgba, side)[0]), f"torso {self.label(index)}")
