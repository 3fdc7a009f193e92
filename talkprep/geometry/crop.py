"""One square crop box per video, framed as the trainers' reference datasets are.

The NeRF / Gaussian talking-head datasets (Obama, May, Macron, ...) show head and shoulders with
the face about 35-45% of the frame side, the face a little above the centre, and the whole head
inside the frame in every frame. The box is chosen once from face boxes sampled over the video and
never leaves the frame: padding a frame with smeared edge pixels invents image content that the
parser then labels (as torso) and the trainers learn. When the frame is too small for the framing
the box is the largest square that fits and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FACE_FRACTION = 0.44
"""Target face size as a fraction of the crop side. The face size is MediaPipe's detection box,
a square about as tall as MediaPipe's face mesh (upper forehead to chin) and 1.12-1.22 times the
mesh's width (measured on the first frame of each of the five shared clips), so 0.44 puts the
face at about 44% of the side in height and 37% in width: inside the reference range by either
measure."""
FACE_FRACTION_RANGE = (0.35, 0.45)
"""The reference datasets' range; outside it the crop result carries a note."""
FACE_CENTRE_HEIGHT = 0.42
"""Where the median face centre sits, as a fraction of the crop side from the top."""
HAIR_MARGIN = 0.35
"""Room above the face box for hair, in face sizes (detector boxes stop at the brow line)."""
SIDE_MARGIN = 0.20
"""Room beside the face box for ears and hair, in face sizes."""
CHIN_MARGIN = 0.15
"""Room below the face box for the chin, in face sizes."""
LOW_PERCENTILE, HIGH_PERCENTILE = 2.0, 98.0
"""The motion span ignores the most extreme 2% of sampled boxes on each side (detector outliers)."""


@dataclass(frozen=True)
class CropBox:
    """A square in source pixels, always inside the frame."""

    x: int
    y: int
    side: int

    def to_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "side": self.side}


@dataclass(frozen=True)
class CropChoice:
    """The chosen box and how well it meets the framing."""

    box: CropBox
    face_fraction: float
    """Median face size over the crop side."""
    wanted_side: int
    """The side the framing asks for; larger than `box.side` when the frame is too small."""
    note: str | None
    """One line for the user when the framing could not be met, else None."""


def choose_crop_box(face_boxes: np.ndarray, width: int, height: int) -> CropChoice:
    """One fixed square around head and shoulders from the face boxes of sampled frames.

    The side is the larger of: the face at FACE_FRACTION of it, and what holds the face's motion
    span with room for hair, ears and chin. It is then limited to the frame, and the box shifted
    (never padded) to lie inside it.

    Args:
        face_boxes: float [M, 4] boxes x0, y0, x1, y1 of the main face, one per sampled frame.
        width, height: the frame size in pixels.
    """
    boxes = np.asarray(face_boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        raise ValueError("choose_crop_box needs at least one face box")
    x0, y0, x1, y1 = boxes.T
    face = float(np.median(np.maximum(x1 - x0, y1 - y0)))
    centre_y = float(np.median(0.5 * (y0 + y1)))
    left = np.percentile(x0, LOW_PERCENTILE) - SIDE_MARGIN * face
    right = np.percentile(x1, HIGH_PERCENTILE) + SIDE_MARGIN * face
    top = np.percentile(y0, LOW_PERCENTILE) - HAIR_MARGIN * face
    bottom = np.percentile(y1, HIGH_PERCENTILE) + CHIN_MARGIN * face
    wanted = max(
        face / FACE_FRACTION,
        right - left,
        (centre_y - top) / FACE_CENTRE_HEIGHT,
        (bottom - centre_y) / (1.0 - FACE_CENTRE_HEIGHT),
    )
    wanted_side = int(np.ceil(wanted))
    side = min(wanted_side, width, height)
    x = _place(0.5 * (left + right) - 0.5 * side, side, width)
    # When the frame limits the side, give up room below the chin (shoulders) before the hair,
    # and the hair before the chin.
    y_start = max(min(centre_y - FACE_CENTRE_HEIGHT * side, top), bottom - side)
    y = _place(y_start, side, height)
    fraction = face / side
    note = None
    if wanted_side > side:
        note = (
            f"the {width}x{height} frame allows at most a {side} px square, so the face fills "
            f"{fraction:.0%} of the crop (the trainers' datasets: 35-45%); a wider shot gives "
            "more margin"
        )
    elif fraction < FACE_FRACTION_RANGE[0]:
        note = (
            f"the head moves over a wide area: the crop is {side} px and the face fills only "
            f"{fraction:.0%} of it (the trainers' datasets: 35-45%)"
        )
    return CropChoice(CropBox(x, y, side), round(fraction, 4), wanted_side, note)


def _place(start: float, side: int, limit: int) -> int:
    """The box's start on one axis, shifted so that [start, start + side) lies in [0, limit)."""
    return int(np.clip(round(start), 0, limit - side))


def crop_square(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Cut `box` out of `image` and resize it to size x size (a view when no resize is needed)."""
    h, w = image.shape[:2]
    if box.x < 0 or box.y < 0 or box.x + box.side > w or box.y + box.side > h:
        raise ValueError(f"crop box {box.to_dict()} leaves the {w}x{h} frame")
    region = image[box.y : box.y + box.side, box.x : box.x + box.side]
    if box.side == size:
        return region
    interpolation = cv2.INTER_AREA if box.side > size else cv2.INTER_CUBIC
    return cv2.resize(region, (size, size), interpolation=interpolation)


def largest_box(detections: np.ndarray) -> np.ndarray | None:
    """The largest detected face (x0, y0, x1, y1) of [K, 4+] detections, or None when K is 0."""
    if len(detections) == 0:
        return None
    areas = (detections[:, 2] - detections[:, 0]) * (detections[:, 3] - detections[:, 1])
    return detections[int(np.argmax(areas)), :4]
