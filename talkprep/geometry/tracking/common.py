"""What every tracking stage shares: the rigid point set, units, errors and batched geometry.

The solver works in a computer-vision camera (x right, y down, z forward; see ``camera.py``) and
in metres; pixel thresholds are given at ``REFERENCE_SIZE_PX`` and scaled to the frame.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

RIGID_INDEX = np.array(
    [1, 3, 4, 5, 6, 10, 19, 20, 33, 35, 44, 45, 47, 48, 49, 51, 59, 60, 67, 68, 69, 71, 75, 79, 100,
     102, 104, 108, 109, 113, 114, 115, 121, 122, 125, 126, 128, 131, 133, 134, 139, 151, 166, 168,
     174, 188, 189, 193, 195, 196, 197, 198, 209, 217, 218, 219, 220, 226, 232, 233, 235, 236, 237,
     238, 239, 241, 244, 245, 248, 250, 261, 263, 265, 274, 275, 277, 278, 279, 281, 289, 290, 297,
     298, 299, 301, 305, 309, 329, 331, 333, 337, 338, 342, 343, 344, 350, 351, 354, 355, 357, 360,
     362, 363, 368, 392, 399, 412, 413, 417, 419, 420, 429, 437, 438, 439, 440, 446, 448, 452, 453,
     455, 456, 457, 458, 459, 461, 464, 465]
)  # fmt: skip
"""Mesh points treated as rigid (128): forehead, temples at eye level, the eye corners and
the nose. Built from the 468-point mesh at or above the subnasale (point 2) without: the eye
contours and their first ring (eyelids); the brows, the fold under them (221-225, 441-445) and
the glabella (8, 9), which move with brows and frowns; the skin beside the outer eye corners
(crow's feet: 34, 124, 143, 156, 264, 353, 372, 383); the lips and three rings around them; the
irises; the face oval (silhouette points slide over the skin as the head turns; the five at
the top of the forehead stay); the cheeks below the eyes beside the nose (they rise when the
person smiles, which otherwise flattens the fitted face). The four eye corners (33, 133, 362,
263) stay. Derived from mediapipe's FACEMESH_* sets and tessellation on a frontal frame, then
pruned by the points' 95th-percentile errors on the shared clips; literal here so that nothing
imports mediapipe."""

EYE_CORNER_DISTANCE_M = 0.090
"""Population-average outer-eye-corner distance (mesh points 33 and 263): fixes the metric scale."""
REFERENCE_SIZE_PX = 512
"""Pixel errors are also reported scaled to a frame of this size (RAD-NeRF's usual 512 px)."""
HUBER_PX = 1.0
"""Robust loss threshold at REFERENCE_SIZE_PX: errors beyond it count linearly, not squared."""
POSE_CHUNK = 512
"""Frames whose per-point Jacobians are held at once in the per-frame stage (memory bound)."""
MIN_DEPTH_M = 0.05
"""Points closer to the camera than this are treated as behind it (a diverged pose)."""


class TrackingError(ValueError):
    """The landmarks cannot be tracked (no face in any frame, or a bad array)."""


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run NumPy's and SciPy's OpenBLAS on one thread for the duration (restored afterwards).

    The solver makes thousands of calls on tiny matrices (6x6 blocks, a ~200x200 system); a
    multi-threaded OpenBLAS spends its time waking threads for them, ten times slower on a busy
    2-core machine than one thread. Looks the libraries up among those loaded (Linux); elsewhere
    it does nothing. Nested and concurrent uses share one setting; the last to leave restores it.
    """
    global _blas_users, _blas_restore
    with _blas_lock:
        if _blas_users == 0:
            _blas_restore = _limit_openblas()
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_restore()


def _keep_blas() -> None:
    """Nothing to restore (no context has changed OpenBLAS)."""


_blas_lock = threading.Lock()
_blas_users = 0
_blas_restore: Callable[[], None] = _keep_blas


def _limit_openblas() -> Callable[[], None]:
    """Set every loaded OpenBLAS to one thread; returns what restores their thread counts."""
    import ctypes

    import scipy.linalg  # noqa: F401 - loads SciPy's OpenBLAS so that it is found below

    handles: list[tuple[Any, Any, int]] = []
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        paths = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("openblas", "scipy_openblas"):
            for suffix in ("", "64_"):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    handles.append((get, put, int(get())))
    for _, put, _ in handles:
        put(1)

    def restore() -> None:
        for _, put, before in handles:
            put(before)

    return restore


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices [...,3,3] of vectors [...,3]."""
    out = np.zeros((*v.shape[:-1], 3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def exp_so3(w: np.ndarray) -> np.ndarray:
    """Rotation matrices [...,3,3] of rotation vectors [...,3] (Rodrigues)."""
    theta = np.linalg.norm(w, axis=-1)[..., None, None]
    k = skew(w)
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0, np.sin(safe) / safe)
    b = np.where(small, 0.5, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)


def log_so3_angle(r: np.ndarray) -> np.ndarray:
    """Rotation angles (radians) of rotation matrices [...,3,3]."""
    cos = (np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, rotation, translation with ``s * R @ src + t ~ dst`` (Umeyama), src/dst [K,3]."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rot = u @ fix @ vt
    scale = float((sig * np.diag(fix)).sum() / (a**2).sum())
    return scale, rot, mu_d - scale * rot @ mu_s


def project(
    shape: np.ndarray, rot: np.ndarray, trans: np.ndarray, focal: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centred pixel positions [M,K,2] and camera points [M,K,3] of shape [K,3] or [M,K,3]."""
    cam = np.matmul(shape, rot.transpose(0, 2, 1)) + trans[:, None, :]
    z = np.maximum(cam[..., 2], MIN_DEPTH_M)
    return focal * cam[..., :2] / z[..., None], cam


def huber_weights(err: np.ndarray, threshold: float) -> np.ndarray:
    """IRLS weights of the Huber loss for residual norms ``err``."""
    return np.where(err <= threshold, 1.0, threshold / np.maximum(err, 1e-12))


def huber_cost(err: np.ndarray, threshold: float) -> float:
    return float(
        np.where(err <= threshold, 0.5 * err**2, threshold * (err - 0.5 * threshold)).sum()
    )


def per_frame_gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over points k and rows r of a[m,k,r,i] * b[m,k,r,j] -> [m,i,j] (batched BLAS)."""
    m = a.shape[0]
    return np.matmul(
        a.reshape(m, -1, a.shape[-1]).transpose(0, 2, 1), b.reshape(m, -1, b.shape[-1])
    )


def per_point_gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over frames m and rows r of a[m,k,r,i] * b[m,k,r,j] -> [k,i,j] (batched BLAS)."""
    k = a.shape[1]
    at = a.transpose(1, 0, 2, 3).reshape(k, -1, a.shape[-1])
    bt = b.transpose(1, 0, 2, 3).reshape(k, -1, b.shape[-1])
    return np.matmul(at.transpose(0, 2, 1), bt)


def jacobians(
    cam: np.ndarray, rot: np.ndarray, shape: np.ndarray, trans: np.ndarray, focal: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-point Jacobians of the projection: pose [M,K,2,6] (left rotation increment, then
    translation) and shape point [M,K,2,3]."""
    x, y = cam[..., 0], cam[..., 1]
    z = np.maximum(cam[..., 2], MIN_DEPTH_M)
    jp = np.zeros((*cam.shape[:-1], 2, 3))
    jp[..., 0, 0] = focal / z
    jp[..., 0, 2] = -focal * x / z**2
    jp[..., 1, 1] = focal / z
    jp[..., 1, 2] = -focal * y / z**2
    q = cam - trans[:, None, :]
    # row a of -jp @ [q]x is q x a
    j_rot = np.cross(q[..., None, :], jp)
    j_pose = np.concatenate([j_rot, jp], axis=-1)
    j_shape = np.matmul(jp, rot[:, None, :, :])
    return j_pose, j_shape
