"""Stage 4: one anatomical head frame for every clip of a person, from MediaPipe's canonical face.

The fitted rigid shape lives in keyframe 0's camera axes. Its head frame takes its axes from the
similarity that best aligns MediaPipe's canonical face model to it (x toward the subject's left,
y up, z out of the face), so a face that looks into the camera reads yaw, pitch and roll near 0,
and two clips of one person, whose fitted shapes agree, get the same frame. The origin is the
area-weighted centroid of the canonical face surface carried onto the person, as the BFM-based
trackers put theirs at the mean of the face model's vertices: it sits about 3.5 cm behind the
nose tip, so the whole face lies well inside ER-NeRF's and RAD-NeRF's default ``aabb_train``
(+-12.5 cm deep at their default ``scale`` 4).
"""

from __future__ import annotations

import numpy as np

from talkprep.geometry.mesh_triangles import SURFACE_TRIANGLES
from talkprep.geometry.tracking.canonical_face import CANONICAL_FACE_CM
from talkprep.geometry.tracking.common import TrackingError, similarity

CANONICAL_FACE_M = CANONICAL_FACE_CM / 100.0
"""The canonical face in metres (its own scale: outer eye corners 8.89 cm apart)."""
MAX_ALIGNMENT_RMS_M = 0.015
"""A fitted face farther than this (root mean square, after alignment) from the canonical face
is not a face seen the right way round (a depth-mirrored fit); tracking stops with an error."""


def surface_centroid(vertices: np.ndarray, triangles: np.ndarray = SURFACE_TRIANGLES) -> np.ndarray:
    """Area-weighted centroid [3] of a triangulated surface (mesh density does not bias it)."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    return (area[:, None] * (a + b + c) / 3.0).sum(0) / area.sum()


CANONICAL_ORIGIN_M = surface_centroid(CANONICAL_FACE_M)
"""The head frame's origin in the canonical face's coordinates."""


def head_frame(shape: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axes and origin of the head frame in the fitted shape's coordinates.

    Args:
        shape: float [K,3] fitted rigid points (metres).
        index: int [K] their mesh indices (all below 468).

    Returns:
        ``(axes, origin)``: axes [3,3] whose rows are the head's x, y, z in the shape's
        coordinates; origin [3] the face-surface centroid carried onto the person.

    Raises:
        TrackingError: the fitted shape does not match a face the right way round.
    """
    canonical = CANONICAL_FACE_M[index]
    scale, rot, shift = similarity(canonical, shape)
    aligned = scale * canonical @ rot.T + shift
    rms = float(np.sqrt(((aligned - shape) ** 2).sum(1).mean()))
    if rms > MAX_ALIGNMENT_RMS_M:
        raise TrackingError(
            f"the fitted face lies {100 * rms:.1f} cm (rms) from a face model; "
            "the landmarks look inconsistent"
        )
    return rot.T, scale * rot @ CANONICAL_ORIGIN_M + shift


def to_head_frame(
    shape: np.ndarray, index: np.ndarray, rot: np.ndarray, trans: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-express the shape [K,3] and poses [M,3,3], [M,3] in the head frame (see `head_frame`)."""
    axes, origin = head_frame(shape, index)
    new_shape = (shape - origin) @ axes.T
    new_rot = rot @ axes.T
    new_trans = trans + np.einsum("mij,j->mi", rot, origin)
    return new_shape, new_rot, new_trans
