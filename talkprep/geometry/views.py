"""Camera motion between frames, so that a panning or zooming camera's frames can add to one
background plate in the reference frame's view.

Frames far apart in such a clip share too little, and show too much parallax, for one direct fit
to hold (an affine ECC fit from the middle frame to the ends diverged on the shared clips that pan
and zoom); the motion between neighbouring sampled frames is small and well posed, so each frame
is fitted to the one before it and the steps are chained back to the reference. The plate's
caller still checks every registered frame against the reference and drops the ones that drifted.
"""

from __future__ import annotations

import cv2
import numpy as np

WORKING_SIDE = 384
"""Frames are registered at this long side (smaller ones as they are): the background's coarse
structure decides the fit, and ECC's cost grows with the pixels."""
MAX_STEP_DEFORMATION = 0.08
"""A step whose linear part differs from the identity by more than this (any entry) is no motion
between neighbouring frames a camera makes, but a fit to something else (a person passing, a
flat sky); the chain keeps the previous frame's warp instead."""
ECC_ITERATIONS = 15
ECC_EPSILON = 1e-3
"""Fit precision and cost: on the shared clips that pan and zoom, 30 iterations to 1e-4 register
as many frames (to within one) at twice the time (benchmarks/bench_plate.py)."""
ECC_BLUR = 3
"""ECC's Gaussian prefilter (pixels at the working size)."""
MIN_CLEAR_FRACTION = 0.02
"""Below this share of clear background at the working size a step is not fitted."""


def working_scale(height: int, width: int) -> float:
    """The factor that brings a frame of this size to the working size (at most 1)."""
    return min(1.0, WORKING_SIDE / max(height, width))


def working_view(image_bgr: np.ndarray, clear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grey float32 image and uint8 mask of clear background that `step_motion` fits, at the
    working size."""
    scale = working_scale(*image_bgr.shape[:2])
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    mask = clear.astype(np.uint8) * 255
    if scale < 1.0:
        size = (round(image_bgr.shape[1] * scale), round(image_bgr.shape[0] * scale))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32), np.where(mask == 255, 255, 0).astype(np.uint8)


def step_motion(
    previous: tuple[np.ndarray, np.ndarray],
    current: tuple[np.ndarray, np.ndarray],
    scale: float,
    guess: np.ndarray | None = None,
) -> np.ndarray | None:
    """3x3 matrix taking the previous frame's pixel coordinates to the current frame's (full
    size), from two `working_view`s; None when the fit fails or is no camera's step. Only pixels
    clear of the person in both count. `guess`: the step before (a camera keeps moving alike),
    where the fit starts."""
    previous_grey, previous_clear = previous
    grey, clear = current
    mask = cv2.bitwise_and(previous_clear, clear)
    if cv2.countNonZero(mask) < MIN_CLEAR_FRACTION * mask.size:
        return None
    to_working = np.diag([scale, scale, 1.0])
    warp = np.eye(2, 3, dtype=np.float32)
    if guess is not None:
        warp = (to_working @ guess @ np.linalg.inv(to_working))[:2].astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPSILON)
    try:
        _, warp = cv2.findTransformECC(
            previous_grey, grey, warp, cv2.MOTION_AFFINE, criteria, mask, ECC_BLUR
        )
    except cv2.error:
        return None
    if np.abs(warp[:, :2] - np.eye(2)).max() > MAX_STEP_DEFORMATION:
        return None
    step = np.eye(3)
    step[:2] = warp
    return np.linalg.inv(to_working) @ step @ to_working


def warp_into_view(
    image: np.ndarray, view_to_frame: np.ndarray, border: float | None = None
) -> np.ndarray:
    """`image` (a frame's pixels) resampled onto the view's grid, where `view_to_frame` takes the
    view's coordinates to the frame's; outside the frame the edge is repeated, or `border` is
    written when given."""
    height, width = image.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    if border is None:
        return cv2.warpPerspective(
            image, view_to_frame, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE
        )
    return cv2.warpPerspective(
        image,
        view_to_frame,
        (width, height),
        flags=flags,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )


def resample_into_view(
    image: np.ndarray, distance: np.ndarray, view_to_frame: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A frame and its pixels' distances from the person, resampled onto the view's grid; the
    frame's own edges count like the person's outline (nothing beyond them), so that where one
    view ends in the plate no seam shows."""
    height, width = distance.shape
    from_edge = np.minimum.outer(
        np.minimum(np.arange(height), np.arange(height)[::-1]),
        np.minimum(np.arange(width), np.arange(width)[::-1]),
    ).astype(np.float32)
    return (
        warp_into_view(image, view_to_frame),
        warp_into_view(np.minimum(distance, from_edge), view_to_frame, border=0.0),
    )


class _Link:
    """A frame placed on the path: its matrix from the reference view, and its working_view made
    the first time a step is fitted to or from it (a fixed camera never needs one)."""

    def __init__(self, frame: np.ndarray, clear: np.ndarray, view_to_frame: np.ndarray) -> None:
        self.frame, self.clear, self.view_to_frame = frame, clear, view_to_frame
        self._view: tuple[np.ndarray, np.ndarray] | None = None

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        if self._view is None:
            self._view = working_view(self.frame, self.clear)
        return self._view


class CameraPath:
    """Follows a moving camera from a reference frame, one neighbouring frame at a time: each
    frame's matrix from the reference view is the previous frame's followed by the step between
    them. Frames go in order outward from the reference, one way and then (back_to_start) the
    other."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.start: _Link | None = None
        self.previous: _Link | None = None
        self.current: _Link | None = None
        """The frame being followed, until record places it."""
        self.step: np.ndarray | None = None
        """The last step fitted: the next fit's first guess."""

    def follow(self, frame: np.ndarray, clear: np.ndarray) -> np.ndarray:
        """The 3x3 matrix from the reference view's coordinates to the frame's (`clear`: its
        pixels clear of the person); the previous frame's when the step cannot be fitted."""
        if self.previous is None:
            return np.eye(3)
        self.current = _Link(frame, clear, self.previous.view_to_frame)
        step = step_motion(self.previous.view(), self.current.view(), self.scale, self.step)
        if step is None:
            return self.previous.view_to_frame
        self.step = step
        return step @ self.previous.view_to_frame

    def record(self, frame: np.ndarray, clear: np.ndarray, view_to_frame: np.ndarray) -> None:
        """The frame just placed (with the matrix it was placed by: the identity when it agrees
        with the reference as it is) is where the next frame's step starts."""
        followed = self.current is not None and self.current.frame is frame
        link = self.current if followed else _Link(frame, clear, view_to_frame)
        link.view_to_frame = view_to_frame
        self.previous, self.current = link, None
        if self.start is None:
            self.start = link

    def back_to_start(self) -> None:
        """Follow the other way from the reference frame."""
        self.previous, self.step = self.start, None
