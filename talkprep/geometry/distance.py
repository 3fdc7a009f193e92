"""A Euclidean distance transform whose result is the same bits on every run.

cv2.distanceTransform(..., DIST_L2, DIST_MASK_PRECISE) takes Intel IPP's routine when OpenCV runs
one thread (talkprep sets one: talkprep.process) and its own otherwise, and IPP's result also
depends on how the output array (allocated by numpy, so wherever malloc puts it) is aligned to the
CPU's vector width: the same mask gave 608 of 262,144 distances differing in the last bits between
two alignments. The background plate weighs each frame's colour by the pixel's distance from the
person, so such bits moved bc.jpg, every gt image and the torso images (blurred over the plate)
between two identical runs (when the plate kept the farthest frame's colour, a bit decided
between two frames tied at the same distance). Both routines are exact up to float rounding
(squared distances within 0.01 of the integer dx^2 + dy^2), so rounding the square restores the
exact value whichever routine ran.
"""

from __future__ import annotations

import cv2
import numpy as np

FLOAT32_SQUARES = 1 << 20
"""Below this squared distance float32 resolves sixteenths, so the square's rounding (with the
routines' error, under 0.01) cannot reach the next integer; larger frames square in float64."""


def exact_distance(free: np.ndarray) -> np.ndarray:
    """float32 [H, W]: each pixel's Euclidean distance to the nearest zero pixel of the uint8
    mask `free`, identical whatever OpenCV's thread count, CPU or memory alignment (each step
    after the transform is one correctly rounded IEEE operation per pixel)."""
    rough = cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    height, width = free.shape[:2]
    if (height - 1) ** 2 + (width - 1) ** 2 < FLOAT32_SQUARES:
        square = cv2.multiply(rough, rough)
        np.rint(square, out=square)
        return cv2.sqrt(square)
    wide = rough.astype(np.float64)
    return np.sqrt(np.rint(wide * wide)).astype(np.float32)
