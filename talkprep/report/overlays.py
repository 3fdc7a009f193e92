"""Drawings shared by the report and the preview video: class maps, 68 points, pose axes, index.

Everything is drawn on an already resized image with coordinates scaled to it, so lines and
labels stay legible on small thumbnails. Pure functions on arrays; the callers read the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from talkprep.geometry.camera import euler_to_rotation
from talkprep.geometry.masks import BACKGROUND, HEAD, NECK, PALETTE_BGR, TORSO, decode_labels
from talkprep.io.images import frame_indices, read_image
from talkprep.semantics import (
    BACKGROUND_CLASSES,
    HEAD_CLASSES,
    SEMANTIC_NAMES,
    SEMANTICS_DIR,
    SemanticClass,
    colour_lut_rgb,
)

POINT_COLOUR = (0, 255, 255)
LINE_COLOUR = (0, 200, 255)
AXIS_COLOURS = ((0, 0, 255), (0, 200, 0), (255, 64, 0))
"""BGR colours of the head's x (red), y (green) and z (blue) axes."""
AXIS_LENGTH_DM = 0.8
"""Drawn axis length in the head frame: 8 cm, about half a face width."""
TINT_ALPHA = 0.25
CHECKER_SIDE = 8
LMS68_CHAINS: tuple[tuple[int, int, bool], ...] = (
    (0, 17, False),
    (17, 22, False),
    (22, 27, False),
    (27, 31, False),
    (31, 36, False),
    (36, 42, True),
    (42, 48, True),
    (48, 60, True),
    (60, 68, True),
)
"""iBUG-68 contours as (first, end, closed): jaw, brows, nose bridge, nose base, eyes, lips."""

PARSING_LEGEND: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("background", tuple(int(c) for c in PALETTE_BGR[0])),
    ("head", tuple(int(c) for c in PALETTE_BGR[1])),
    ("neck", tuple(int(c) for c in PALETTE_BGR[2])),
    ("torso", tuple(int(c) for c in PALETTE_BGR[3])),
)
"""parsing/{i}.png's four labels and their colours (BGR, as in the files)."""


@dataclass(frozen=True)
class ClassSource:
    """Where a folder's per-frame classes come from and how to show them.

    `palette` is BGR uint8 [K, 3] indexed by class value; `legend` names each shown class;
    `regions` maps a class value to ER-NeRF's coarse regions (0 background, 1 head, 2 neck,
    3 torso), which is what mask stability is judged on: a mouth opening is not a flicker.
    """

    folder: str
    palette: np.ndarray
    legend: tuple[tuple[str, tuple[int, int, int]], ...]
    background: tuple[int, ...]
    regions: np.ndarray

    def read(self, root: Path, index: int) -> np.ndarray | None:
        """The class map of frame `index` (uint8 [H, W]), or None when the file is absent."""
        path = root / self.folder / f"{index}.png"
        if not path.is_file():
            return None
        if self.folder == SEMANTICS_DIR:
            return read_image(path, cv2.IMREAD_GRAYSCALE)
        return decode_labels(read_image(path))

    def read_regions(self, root: Path, index: int) -> np.ndarray | None:
        """The coarse-region map of frame `index` (uint8 [H, W]), or None when the file is absent.

        cv2.LUT rather than `regions[labels]`: three times faster, and it releases the GIL, so
        it runs in the reading threads.
        """
        labels = self.read(root, index)
        return None if labels is None else cv2.LUT(labels, self.regions)


def class_source(root: Path) -> ClassSource | None:
    """semantics/ when the folder has class maps, else parsing/ colours, else None."""
    if frame_indices(root / SEMANTICS_DIR, ".png"):
        palette = np.ascontiguousarray(colour_lut_rgb()[:, ::-1])
        legend = tuple(
            (SEMANTIC_NAMES[c], tuple(int(v) for v in palette[c.value])) for c in SemanticClass
        )
        regions = np.zeros(256, np.uint8)
        regions[[int(c) for c in HEAD_CLASSES]] = HEAD
        regions[int(SemanticClass.NECK)], regions[int(SemanticClass.TORSO)] = NECK, TORSO
        background = tuple(map(int, BACKGROUND_CLASSES))
        return ClassSource(SEMANTICS_DIR, palette, legend, background, regions)
    if frame_indices(root / "parsing", ".png"):
        regions = np.zeros(256, np.uint8)
        regions[: len(PALETTE_BGR)] = np.arange(len(PALETTE_BGR))
        return ClassSource("parsing", PALETTE_BGR, PARSING_LEGEND, (BACKGROUND,), regions)
    return None


def fit_side(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """The image scaled so its longer side is `side`, and the scale factor."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def class_outline(labels: np.ndarray) -> np.ndarray:
    """bool [H, W]: pixels whose class differs from the pixel right of or below them."""
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def draw_classes(
    image: np.ndarray,
    labels: np.ndarray,
    palette: np.ndarray,
    background: tuple[int, ...] = (0,),
    alpha: float = TINT_ALPHA,
) -> np.ndarray:
    """Tint the image with its class colours (background left alone) and outline every class.

    `labels` may be at any resolution; it is resized (nearest) to the image first.
    """
    h, w = image.shape[:2]
    if labels.shape != (h, w):
        labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    labels = np.minimum(labels, len(palette) - 1)
    colours = palette[labels]
    shown = ~np.isin(labels, background)
    out = image.copy()
    tinted = (1 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32)
    out[shown] = tinted[shown].astype(np.uint8)
    edge = class_outline(labels)
    edge_colour = np.where(shown[..., None], colours, np.uint8(40))
    out[edge] = edge_colour[edge]
    return out


def draw_lms68(image: np.ndarray, points: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The 68 points (pixels of the full frame, times `scale`) as dots joined by their contours."""
    out = image.copy()
    if points.shape != (68, 2) or not np.isfinite(points).all():
        return out
    pts = np.round(points * scale).astype(np.int32)
    for first, end, closed in LMS68_CHAINS:
        cv2.polylines(out, [pts[first:end]], closed, LINE_COLOUR, 1, cv2.LINE_AA)
    radius = 2 if max(image.shape[:2]) >= 300 else 1
    for x, y in pts:
        cv2.circle(out, (int(x), int(y)), radius, POINT_COLOUR, -1, cv2.LINE_AA)
    return out


def pose_axes(
    euler: np.ndarray, trans: np.ndarray, focal: float, width: int, height: int
) -> np.ndarray:
    """Pixels [N, 4, 2] of the head origin and its x, y, z axis tips under AD-NeRF poses.

    euler [N, 3] radians and trans [N, 3] decimetres as in track_params.pt: camera point
    P = R X + trans, u = -f P.x / P.z + w / 2, v = f P.y / P.z + h / 2 (DESIGN.md section 4).
    """
    rotation = euler_to_rotation(euler)
    head = np.vstack([np.zeros(3), AXIS_LENGTH_DM * np.eye(3)])
    cam = np.einsum("nij,kj->nki", rotation, head) + np.asarray(trans, np.float64)[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = -focal * cam[..., 0] / cam[..., 2] + width / 2
        v = focal * cam[..., 1] / cam[..., 2] + height / 2
    return np.stack([u, v], axis=-1)


def draw_axes(image: np.ndarray, axes: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Draw one frame's pose axes (pose_axes row [4, 2], full-frame pixels times `scale`)."""
    out = image.copy()
    if not np.isfinite(axes).all():
        return out
    pts = np.round(axes * scale).astype(np.int32)
    thickness = 2 if max(image.shape[:2]) >= 300 else 1
    for k in range(3):
        cv2.arrowedLine(
            out, tuple(map(int, pts[0])), tuple(map(int, pts[k + 1])), AXIS_COLOURS[k],
            thickness, cv2.LINE_AA, tipLength=0.15,
        )  # fmt: skip
    return out


def draw_index(image: np.ndarray, text: str) -> np.ndarray:
    """The frame's label in the top-left corner, white on a dark box, readable on any frame."""
    out = image.copy()
    font_scale = max(0.4, image.shape[0] / 500)
    thickness = 1 if font_scale < 0.8 else 2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    cv2.rectangle(out, (0, 0), (tw + 6, th + base + 6), (0, 0, 0), -1)
    cv2.putText(
        out, text, (3, th + 3), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255),
        thickness, cv2.LINE_AA,
    )  # fmt: skip
    return out


def on_checker(rgba: np.ndarray) -> np.ndarray:
    """A BGRA image composited over a grey checkerboard, so transparent areas are visible."""
    h, w = rgba.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // CHECKER_SIDE + xx // CHECKER_SIDE) % 2 == 0), 200, 150)
    board = np.repeat(board[..., None], 3, axis=2).astype(np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return (alpha * rgba[..., :3] + (1 - alpha) * board).astype(np.uint8)
