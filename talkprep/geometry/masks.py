"""Pure mask algorithms for tasks 5-7: head / neck / torso labels from a person mask and the face
mesh, the AD-NeRF colour coding, the background plate and the torso image.

Label maps are uint8 [H, W] with the values below; images are BGR uint8 as cv2 gives them.
Nothing here reads or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BACKGROUND, HEAD, NECK, TORSO = 0, 1, 2, 3
N_LABELS = 4
PALETTE_BGR = np.array([[255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
"""Colour of each label in parsing/*.png as cv2 reads it (AD-NeRF's face_parsing/test.py)."""

BISENET_TO_LABEL = np.array(
    [BACKGROUND] + [HEAD] * 13 + [NECK] * 2 + [TORSO] + [HEAD] * 2, dtype=np.uint8
)
"""CelebAMask-HQ class -> label as AD-NeRF maps them: 0 background; 1-13 skin, brows, eyes,
glasses, ears, earrings, nose, mouth, lips -> head; 14 neck, 15 necklace -> neck; 16 cloth ->
torso; 17 hair, 18 hat -> head."""

JAW_CORNERS = (172, 397)
"""Mesh points at the jaw angles (subject's right, left): the neck lies between them."""
HEAD_WIDEN = 0.25
"""The head's horizontal extent is the face widened by this fraction of the face width on
each side, to take in ears and hair."""
EAR_DROP = 0.3
"""Beside the face the jaw line is lowered by this fraction of the face height, so that ear
lobes and hair at the sides of the jaw stay head."""
SHOULDER_WIDTH = 1.7
"""A row below the chin belongs to the shoulders once the person is this many jaw widths wide."""
NECK_MIN, NECK_MAX, NECK_DEFAULT = 0.12, 0.75, 0.45
"""Bounds and fallback of the neck's length below the chin, as fractions of the face height."""

TORSO_EXTEND = 9
"""Rows the torso colour is carried up under the head (RAD-NeRF: L = 8 + 1)."""
NECK_PUSH_DOWN = 4
NECK_EXTEND = 48 + NECK_PUSH_DOWN + 1
"""Rows the neck colour is carried up under the head, sampled NECK_PUSH_DOWN rows below the
neck's top (RAD-NeRF's values)."""
NECK_DILATE = 3
"""The neck is first dilated vertically by this many rows (RAD-NeRF: 3 iterations of [1,1,1])."""
DARKEN = 0.98
"""Per-row darkening of the carried colours (RAD-NeRF)."""
BLUR_KERNEL = 5
BLUR_SIGMA = 4.0
"""RAD-NeRF calls GaussianBlur(img, (5, 5), cv2.BORDER_DEFAULT), i.e. sigma 4 (BORDER_DEFAULT's
value); kept so the torso images look the same."""


_CHANNEL_LUTS = [np.zeros(256, np.uint8) for _ in range(3)]
for _channel, _lut in enumerate(_CHANNEL_LUTS):
    _lut[:N_LABELS] = PALETTE_BGR[:, _channel]


def labels_to_bgr(labels: np.ndarray) -> np.ndarray:
    """The parsing image for a uint8 label map: only the four palette colours, no blending."""
    return cv2.merge([cv2.LUT(labels, lut) for lut in _CHANNEL_LUTS])


def _mask8(mask: np.ndarray) -> np.ndarray:
    """A bool mask as the uint8 0/1 mask cv2's masked operations take (no copy)."""
    return np.ascontiguousarray(mask).view(np.uint8)


def bgr_to_labels(image: np.ndarray) -> tuple[np.ndarray, int]:
    """Label map of a parsing image and how many pixels have none of the four exact colours.

    Each channel is read as on (>127) or off; the three bits pick the label, so that files with
    slightly blended edges (other producers) still read as the nearest colour. Off-palette bit
    patterns read as BACKGROUND; every pixel that is not exactly a palette colour is counted.
    """
    labels = decode_labels(image)
    stray = np.count_nonzero((labels_to_bgr(labels) != image).any(axis=-1))
    return labels, stray


_BITS_TO_LABEL = np.full(8, BACKGROUND, np.uint8)
_BITS_TO_LABEL[[1, 2, 4, 7]] = [HEAD, NECK, TORSO, BACKGROUND]
"""Bit pattern b + 2g + 4r of a parsing colour (channel on when > 127) -> label."""


def decode_labels(image: np.ndarray) -> np.ndarray:
    """Label map of a parsing image, fast: one bit per channel (see bgr_to_labels)."""
    bits = (image[..., 0] >> 7) | ((image[..., 1] >> 7) << 1) | ((image[..., 2] >> 7) << 2)
    return _BITS_TO_LABEL[bits]


def face_mask(face_xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool [H, W]: the face-mesh polygon of one frame, i.e. the convex hull of its points
    (x, y pixels, [478, 2]). The hull rather than the face-oval loop, so that points that stick
    out of the oval in a turned head (nose, lips) are inside it too."""
    mask = np.zeros((height, width), np.uint8)
    hull = cv2.convexHull(np.round(face_xy[:, :2]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


@dataclass(frozen=True)
class FaceFrame:
    """The face geometry that decides head and neck in one frame."""

    face: np.ndarray
    """bool [H, W] face-mesh polygon (see face_mask)."""
    jaw_line: np.ndarray
    """int [W]: per column, the lowest row that is still head (the jaw, extended sideways)."""
    head_cols: tuple[int, int]
    """First and last column of the head's horizontal extent (face widened)."""
    neck_cols: tuple[int, int]
    """First and last column between the jaw corners."""
    chin_row: int
    face_height: float


def face_frame(face_xy: np.ndarray, height: int, width: int) -> FaceFrame | None:
    """Face geometry from one frame's mesh points, or None when the face is off the image."""
    face = face_mask(face_xy, height, width)
    cols = np.flatnonzero(face.any(axis=0))
    if cols.size == 0:
        return None
    rows_any = np.flatnonzero(face.any(axis=1))
    top, chin = int(rows_any[0]), int(rows_any[-1])
    face_h = float(chin - top + 1)
    x0, x1 = int(cols[0]), int(cols[-1])
    lowest = height - 1 - np.argmax(face[::-1], axis=0)
    column = np.arange(width)
    jaw_line = lowest[np.clip(column, x0, x1)].astype(np.int64)
    beside = (column < x0) | (column > x1)
    jaw_line[beside] += int(round(EAR_DROP * face_h))
    widen = HEAD_WIDEN * (x1 - x0 + 1)
    head_cols = (max(0, int(np.floor(x0 - widen))), min(width - 1, int(np.ceil(x1 + widen))))
    jx = np.sort(face_xy[list(JAW_CORNERS), 0])
    neck_cols = (max(0, int(np.floor(jx[0]))), min(width - 1, int(np.ceil(jx[1]))))
    return FaceFrame(face, jaw_line, head_cols, neck_cols, chin, face_h)


def shoulder_row(person: np.ndarray, face: FaceFrame) -> int:
    """Row where the neck ends: the first row below the chin where the person's width exceeds
    SHOULDER_WIDTH jaw widths, kept within NECK_MIN..NECK_MAX face heights below the chin."""
    height = person.shape[0]
    lo = face.chin_row + int(round(NECK_MIN * face.face_height))
    hi = face.chin_row + int(round(NECK_MAX * face.face_height))
    jaw_width = max(1, face.neck_cols[1] - face.neck_cols[0] + 1)
    widths = person[lo : min(hi, height)].sum(axis=1)
    wide = np.flatnonzero(widths > SHOULDER_WIDTH * jaw_width)
    if wide.size:
        return lo + int(wide[0])
    if widths.size and widths.max() > 0:
        return min(hi, height)
    return face.chin_row + int(round(NECK_DEFAULT * face.face_height))


def head_neck_torso(person: np.ndarray, face: FaceFrame | None) -> np.ndarray:
    """Label map from a person mask (bool [H, W]) and the frame's face geometry.

    Head: person pixels above the jaw line within the head's extent, plus the whole face.
    Neck: person pixels below the jaw line, between the jaw corners, above the shoulders.
    Torso: every other person pixel. Without a face the whole person is torso.
    """
    labels = np.where(person, TORSO, BACKGROUND).astype(np.uint8)
    if face is None:
        return labels
    height, width = person.shape
    rows = np.arange(height)[:, None]
    column = np.arange(width)[None, :]
    above_jaw = rows <= face.jaw_line[None, :]
    in_head = (column >= face.head_cols[0]) & (column <= face.head_cols[1])
    head = (person & above_jaw & in_head) | face.face
    in_neck = (column >= face.neck_cols[0]) & (column <= face.neck_cols[1])
    neck = person & ~above_jaw & in_neck & (rows < shoulder_row(person, face)) & ~head
    labels[head] = HEAD
    labels[neck] = NECK
    return labels


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks (1.0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


class BackgroundPlate:
    """Streaming background plate: per pixel, the colour from the frame where that pixel lies
    farthest from the person. Holds three arrays of the frame size, whatever the frame count."""

    def __init__(self, height: int, width: int) -> None:
        self.distance = np.zeros((height, width), np.float32)
        self.colour = np.zeros((height, width, 3), np.uint8)
        self.frames = 0

    def add(self, image_bgr: np.ndarray, person: np.ndarray) -> None:
        """Take pixels of this frame that are farther from the person than in any earlier one."""
        free = np.where(person, 0, 255).astype(np.uint8)
        if not person.any():
            # no person: every pixel is free; a finite stand-in for "infinitely far"
            dist = np.full(person.shape, float(sum(person.shape)), np.float32)
        else:
            dist = cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        better = dist > self.distance
        cv2.copyTo(image_bgr, _mask8(better), self.colour)
        np.maximum(self.distance, dist, out=self.distance)
        self.frames += 1

    def seen(self, margin: float) -> np.ndarray:
        """bool [H, W]: pixels seen farther than `margin` pixels from the person in some frame."""
        return self.distance > margin

    def plate(self, margin: float, inpaint_radius: float = 5.0) -> np.ndarray:
        """The plate: seen pixels as recorded, the rest inpainted from around them."""
        unseen = ~self.seen(margin)
        if not unseen.any():
            return self.colour.copy()
        if unseen.all():
            return np.zeros_like(self.colour)
        return cv2.inpaint(self.colour, unseen.astype(np.uint8), inpaint_radius, cv2.INPAINT_TELEA)


def _top_per_column(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns where `mask` has a pixel, the first row of each and the column's pixel count."""
    has = mask.any(axis=0)
    cols = np.flatnonzero(has)
    return cols, np.argmax(mask[:, cols], axis=0), mask[:, cols].sum(axis=0)


def _carry_up(
    image: np.ndarray, source: np.ndarray, rows: np.ndarray, cols: np.ndarray, length: int
) -> np.ndarray:
    """Paint `source[rows, cols]` upward over `length` rows, darkening; returns the painted mask."""
    painted = np.zeros(image.shape[:2], bool)
    if cols.size == 0:
        return painted
    colours = source[rows, cols].astype(np.float64)  # [m, 3]
    steps = np.arange(length)
    target_rows = rows[None, :] - steps[:, None]  # [L, m]
    target_cols = np.broadcast_to(cols[None, :], target_rows.shape)
    shaded = (colours[None] * (DARKEN**steps)[:, None, None]).astype(np.uint8)  # [L, m, 3]
    keep = target_rows >= 0
    image[target_rows[keep], target_cols[keep]] = shaded[keep]
    painted[target_rows[keep], target_cols[keep]] = True
    return painted


def _blur_where(image: np.ndarray, mask: np.ndarray) -> None:
    """Replace `image` under `mask` by its Gaussian blur, computed only around the mask.

    The blurred window is the mask's bounding box plus the kernel radius (clamped to the image),
    so every kept pixel sees the same neighbours as a whole-image blur would.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(mask.any(axis=0))
    pad = BLUR_KERNEL // 2
    r0, r1 = max(0, rows[0] - pad), min(mask.shape[0], rows[-1] + 1 + pad)
    c0, c1 = max(0, cols[0] - pad), min(mask.shape[1], cols[-1] + 1 + pad)
    window = image[r0:r1, c0:c1]
    blurred = cv2.GaussianBlur(window, (BLUR_KERNEL, BLUR_KERNEL), BLUR_SIGMA)
    cv2.copyTo(blurred, _mask8(mask[r0:r1, c0:c1]), window)


def gt_and_torso(
    image_bgr: np.ndarray, labels: np.ndarray, plate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The gt image (background replaced by the plate) and the BGRA torso image, as RAD-NeRF's
    extract_torso_and_gt, vectorised over columns.

    Torso: head pixels take the plate; torso colour is carried TORSO_EXTEND rows up where the
    head sits right above the torso; the neck (dilated vertically) is carried NECK_EXTEND rows up
    from a little below its top where the head sits above it, and that carried area is blurred.
    Alpha is 255 on neck, torso and the carried areas, 0 elsewhere (colour 0 there too).
    """
    head = labels == HEAD
    torso = labels == TORSO
    gt = image_bgr.copy()
    cv2.copyTo(plate, _mask8(labels == BACKGROUND), gt)
    out = gt.copy()
    cv2.copyTo(plate, _mask8(head), out)

    cols, top, _ = _top_per_column(torso)
    under_head = (top > 0) & head[np.maximum(top - 1, 0), cols]
    torso_carried = _carry_up(out, gt, top[under_head], cols[under_head], TORSO_EXTEND)

    kernel = np.ones((2 * NECK_DILATE + 1, 1), np.uint8)
    neck = cv2.dilate(_mask8(labels == NECK), kernel).astype(bool)
    cols, top, count = _top_per_column(neck)
    under_head = (top > 0) & head[np.maximum(top - 1, 0), cols]
    start = top[under_head] + np.minimum(count[under_head] - 1, NECK_PUSH_DOWN)
    neck_carried = _carry_up(out, gt, start, cols[under_head], NECK_EXTEND)
    _blur_where(out, neck_carried)

    keep = _mask8(neck | torso | neck_carried | torso_carried)
    rgba = cv2.merge([*cv2.split(cv2.bitwise_and(out, out, mask=keep)), keep * np.uint8(255)])
    return gt, rgba
