"""Stage 1: keyframes, the initial rigid shape and starting poses.

The bundle adjustment runs on at most ``MAX_KEYFRAMES`` frames spread over the video, so its time
and memory stay flat in video length. It starts from MediaPipe's own 3D landmarks: a roughly
scaled copy of the face in camera axes, aligned over the keyframes by similarity Procrustes and
scaled so the outer eye corners are ``EYE_CORNER_DISTANCE_M`` apart; poses start from a batched
weak-perspective PnP.
"""

from __future__ import annotations

import numpy as np

from talkprep.geometry.face_topology import LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER
from talkprep.geometry.tracking.common import EYE_CORNER_DISTANCE_M, RIGID_INDEX, similarity

MAX_KEYFRAMES = 150
"""Frames used for the shape and focal bundle adjustment (spread evenly over the video)."""
BA_POINTS = 64
"""Rigid points in the bundle adjustment (spread over the face); the rest are triangulated."""
FOREHEAD_POINT = 151
"""Mid-forehead mesh point."""
SPREAD_SEEDS = (RIGHT_EYE_OUTER, LEFT_EYE_OUTER, NOSE_TIP, FOREHEAD_POINT)
"""Points the bundle adjustment's subset always holds (eye corners, nose tip, forehead)."""


def keyframes(frames: np.ndarray, count: int = MAX_KEYFRAMES) -> np.ndarray:
    """At most ``count`` of ``frames`` (video indices), spread evenly from first to last."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round())
    return frames[picks.astype(np.int64)]


def initial_shape(points3d: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Mean rigid shape [K,3] (metres, keyframe 0's camera axes) from MediaPipe's 3D landmarks.

    MediaPipe's x, y (pixels) and z (same scale, larger = farther) are roughly a scaled copy of
    the face in camera axes; each keyframe is aligned to the running mean by a similarity.
    """
    mean = points3d[0].copy()
    for _ in range(3):
        aligned = []
        for pts in points3d:
            s, r, t = similarity(pts, mean)
            aligned.append(s * pts @ r.T + t)
        mean = np.mean(aligned, axis=0)
    mean = mean - mean.mean(0)
    return mean * metric_factor(mean, index)


def position(index: np.ndarray, point: int) -> int:
    """Column of mesh point ``point`` in a shape whose rows are mesh points ``index``."""
    return int(np.nonzero(index == point)[0][0])


def metric_factor(shape: np.ndarray, index: np.ndarray) -> float:
    """Factor that brings the outer eye corners of ``shape`` to the metric distance."""
    a, b = position(index, RIGHT_EYE_OUTER), position(index, LEFT_EYE_OUTER)
    return EYE_CORNER_DISTANCE_M / float(np.linalg.norm(shape[b] - shape[a]))


def weak_perspective_poses(
    obs: np.ndarray, shape: np.ndarray, focal: float
) -> tuple[np.ndarray, np.ndarray]:
    """Batched PnP under a scaled-orthographic camera: poses [M,3,3], [M,3] for obs [M,K,2].

    The affine camera ``obs ~ A @ X + b`` is fitted by least squares, its rows turned into the
    nearest scaled rotation; the scale gives the depth. Good enough to start Gauss-Newton.
    """
    mu = shape.mean(0)
    xc = shape - mu
    oc = obs - obs.mean(1, keepdims=True)
    affine = np.einsum("mki,kj->mij", oc, xc) @ np.linalg.inv(xc.T @ xc)  # [M,2,3]
    u, sig, vt = np.linalg.svd(affine, full_matrices=False)  # u [M,2,2], vt [M,2,3]
    rows = u @ vt
    r3 = np.cross(rows[:, 0], rows[:, 1])
    rot = np.concatenate([rows, r3[:, None, :]], axis=1)
    scale = sig.mean(1)
    tz = focal / scale
    centre = obs.mean(1) * (tz / focal)[:, None]
    t_mu = np.concatenate([centre, tz[:, None]], axis=1)
    trans = t_mu - np.einsum("mij,j->mi", rot, mu)
    return rot, trans


def ba_subset(shape: np.ndarray, count: int) -> np.ndarray:
    """Positions (into RIGID_INDEX) of ``count`` rigid points spread over the face.

    Farthest-point sampling from the eye corners and the smoothness anchors, so the subset covers
    the face evenly; the bundle adjustment's dense part grows with the square of its size.
    """
    where = {int(i): k for k, i in enumerate(RIGID_INDEX)}
    chosen = [where[i] for i in SPREAD_SEEDS]
    dist = np.min(np.linalg.norm(shape[:, None] - shape[chosen][None], axis=-1), axis=1)
    while len(chosen) < min(count, len(shape)):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(shape - shape[nxt], axis=1))
    return np.sort(np.asarray(chosen))
