"""Head and camera tracking from face-mesh landmarks: one focal, one rigid face, a pose per frame.

A bundle adjustment over the video, no 3D face model needed. Unknowns: the focal length (principal
point at the image centre), the 3D shape of the rigid part of the person's face (forehead,
temples, eye corners, nose; not lips, jaw, cheeks, eyelids, brows or irises: ``RIGID_INDEX``) and
a rotation and translation per frame, in a computer-vision camera (x right, y down, z forward;
see ``camera.py``).

Why the shape is re-estimated: MediaPipe's own 3D points come from a near-orthographic model, so
with them held fixed the reprojection error keeps falling as the focal grows and cannot pick it.
They only start the shape (and weakly hold the depths that the views leave open), which is
fitted to the 2D observations of many frames, where perspective tells focal and distance apart.

Steps:

1. keyframes: at most ``MAX_KEYFRAMES`` frames spread over the video (memory and time flat);
2. initial shape: MediaPipe's 3D landmarks of the keyframes, aligned by similarity Procrustes and
   averaged, scaled so the outer eye corners are ``EYE_CORNER_DISTANCE_M`` apart;
3. focal search: for each focal of a grid over plausible fields of view (``FOV_RANGE_DEG``),
   shape and poses of ``SEARCH_KEYFRAMES`` frames are fitted with that focal fixed; the median
   reprojection error of each is the recorded ``focal_curve``. If the curve rises clearly on
   both sides of its best trial the data decide, else the prior field of view does
   (``_choose_focal``; ``figures["focal_source"]`` says which);
4. the keyframe bundle adjustment (focal free between the best trial's neighbours when the data
   decide): Levenberg-Marquardt on a Huber-robust reprojection error over ``BA_POINTS`` rigid
   points, the per-frame 6x6 pose blocks eliminated by the Schur complement; the gauge (where
   the shape sits and how it is turned) is held by a penalty, the scale by the eye-corner rule;
   the other rigid points are then triangulated with the poses fixed;
5. the shape is put in a canonical head frame: x along the outer eye corners toward the subject's
   left, z out of the face (the normal of the plane through the rigid points, made orthogonal to
   x), y = z x x (up); origin ``HEAD_CENTRE_DEPTH_M`` behind the eye corners' midpoint;
6. every frame: pose from a batched weak-perspective PnP, refined by robust Gauss-Newton with the
   shape and focal fixed and a small penalty on the acceleration of face points (temporal
   smoothness); windows of ``POSE_WINDOW`` frames, each one block-banded system solved by a
   banded Cholesky factorisation, so time and memory grow linearly and stay small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from talkprep.geometry.face_topology import (
    LEFT_EYE_OUTER,
    NOSE_TIP,
    NUM_MESH_POINTS,
    RIGHT_EYE_OUTER,
)

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
HEAD_CENTRE_DEPTH_M = 0.08
"""The head frame's origin lies this far behind the outer eye corners (about the head's centre),
so that the NeRF's bounding box around the origin holds the whole head."""
FOREHEAD_POINT = 151
HEAD_FRAME_TILT_DEG = 26.5
"""The rigid points' best-fit plane leans back with the forehead: its normal points this far
above the direction the face looks. Tilting the head frame by it makes a face that looks into
the camera come out with pitch near 0, as AD-NeRF's 3DMM frame does (measured: the median pitch
over the five shared clips, whose speakers face the camera, was -24.8 to -31.0 degrees)."""
"""Mid-forehead mesh point (checks that the head frame's y axis points up)."""
SMOOTH_ANCHORS = (RIGHT_EYE_OUTER, LEFT_EYE_OUTER, NOSE_TIP, FOREHEAD_POINT)
"""Face points (eye corners, nose tip, forehead) whose acceleration the smoothness term damps."""

FOV_RANGE_DEG = (10.0, 50.0)
"""Plausible fields of view (over the larger image side) searched for the focal length."""
FOCAL_SEARCH_STEPS = 9
MAX_KEYFRAMES = 150
"""Frames used for the shape and focal bundle adjustment (spread evenly over the video)."""
SEARCH_KEYFRAMES = 100
"""Frames used by each trial of the coarse focal search."""
BA_POINTS = 64
"""Rigid points in the bundle adjustment (spread over the face); the rest are triangulated."""
FOCAL_RISE = 0.03
"""The data decide the focal when the search's median error rises by this fraction on both
sides of the best trial (synthetic heads turning +-10-20 degrees: 3-26%; the shared real clips:
at most 2.6%)."""
FOCAL_TOLERANCE = 0.01
"""Otherwise, trials within this fraction of the best error are equally good; the prior picks."""
PRIOR_FOV_DEG = 24.0
"""Field of view used when the landmarks cannot decide: 1200 px at 512 px, inside AD-NeRF's own
focal search (600-1400 px in ``face_tracker.py``) and a common telephoto-ish framing of talking
heads; it puts the camera about 0.7-1.2 m away."""
REFERENCE_SIZE_PX = 512
"""Pixel errors are also reported scaled to a frame of this size (RAD-NeRF's usual 512 px)."""
HUBER_PX = 1.0
"""Robust loss threshold at REFERENCE_SIZE_PX: errors beyond it count linearly, not squared."""
SHAPE_PRIOR_PX_PER_M = 300.0
"""Weak pull of the shape toward MediaPipe's (aligned) 3D points, at REFERENCE_SIZE_PX: a 1 mm
departure costs like 0.1 px of error in one view, so the views decide wherever they can and the
prior only fills in depths that they leave open (a frontal, still head)."""
SMOOTH_WEIGHT = 1.0
"""Weight of the acceleration of the anchor points (expressed in pixels) against reprojection."""
FLAG_ERROR_PX = 3.0
"""A frame whose median rigid-point error exceeds this (at REFERENCE_SIZE_PX) is flagged..."""
FLAG_ERROR_FACTOR = 4.0
"""...as is one whose error exceeds this many times the video's median."""
HISTOGRAM_MAX_PX, HISTOGRAM_BINS = 20.0, 20000
"""Point errors are summarised by a histogram (0.001 px bins at 512 px), memory flat."""
SEARCH_ITERATIONS = 25
BA_ITERATIONS = 40
POSE_ITERATIONS = 8
POSE_CHUNK = 512
"""Frames whose per-point Jacobians are held at once in the per-frame stage (memory bound)."""
POSE_WINDOW = 1024
"""Frames solved together in the per-frame stage (memory flat in video length)."""
SMOOTH_CONTEXT = 2
"""Poses of the previous window held fixed at the start of the next (the smoothness term's
reach: it couples each frame with two neighbours on each side)."""
WINDOW_OVERLAP = 24
"""Frames of the previous window solved again by the next (a window's last poses lack the
frames after them; their influence fades within a dozen frames)."""
GAUGE_WEIGHT = 1e4
"""Penalty weight (relative to the shape blocks) holding the shape's position and orientation."""
MIN_DEPTH_M = 0.05
"""Points closer to the camera than this are treated as behind it (a diverged pose)."""


@dataclass(frozen=True)
class HeadTrack:
    """The tracker's result for N frames (NaN poses where there was no face)."""

    focal: float
    """Focal length in pixels; the principal point is the image centre."""
    rigid_index: np.ndarray
    """int [K] mesh indices of the rigid subset."""
    shape: np.ndarray
    """float [K,3] metres, head frame (x toward the subject's left, y up, z out of the face)."""
    rotation: np.ndarray
    """float [N,3,3] head -> CV camera (x right, y down, z forward); NaN where no face."""
    translation: np.ndarray
    """float [N,3] metres in the same camera; NaN where no face."""
    reproj_err: np.ndarray
    """float [N] median reprojection error of the rigid points in pixels; NaN where no face."""
    focal_curve: list[tuple[float, float]]
    """(focal px, median reprojection error px) of each trial of the coarse focal search."""
    figures: dict[str, Any]
    """JSON-ready quality figures (see `_figures`)."""


class TrackingError(ValueError):
    """The landmarks cannot be tracked (no face in any frame, or a bad array)."""


# --------------------------------------------------------------------------------------------
# BLAS threads


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run NumPy's and SciPy's OpenBLAS on one thread for the duration (restored afterwards).

    The solver makes thousands of calls on tiny matrices (6x6 blocks, a ~200x200 system); a
    multi-threaded OpenBLAS spends its time waking threads for them, ten times slower on a busy
    2-core machine than one thread. Looks the libraries up among those loaded (Linux); elsewhere
    it does nothing.
    """
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
    try:
        yield
    finally:
        for _, put, before in handles:
            put(before)


# --------------------------------------------------------------------------------------------
# small batched geometry


def _skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices [...,3,3] of vectors [...,3]."""
    out = np.zeros((*v.shape[:-1], 3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def _exp_so3(w: np.ndarray) -> np.ndarray:
    """Rotation matrices [...,3,3] of rotation vectors [...,3] (Rodrigues)."""
    theta = np.linalg.norm(w, axis=-1)[..., None, None]
    k = _skew(w)
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0, np.sin(safe) / safe)
    b = np.where(small, 0.5, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)


def _log_so3_angle(r: np.ndarray) -> np.ndarray:
    """Rotation angles (radians) of rotation matrices [...,3,3]."""
    cos = (np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, rotation, translation with ``s * R @ src + t ~ dst`` (Umeyama), src/dst [K,3]."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rot = u @ fix @ vt
    scale = float((sig * np.diag(fix)).sum() / (a**2).sum())
    return scale, rot, mu_d - scale * rot @ mu_s


def _project(
    shape: np.ndarray, rot: np.ndarray, trans: np.ndarray, focal: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centred pixel positions [M,K,2] and camera points [M,K,3] of shape [K,3] or [M,K,3]."""
    cam = np.matmul(shape, rot.transpose(0, 2, 1)) + trans[:, None, :]
    z = np.maximum(cam[..., 2], MIN_DEPTH_M)
    return focal * cam[..., :2] / z[..., None], cam


def _huber_weights(err: np.ndarray, threshold: float) -> np.ndarray:
    """IRLS weights of the Huber loss for residual norms ``err``."""
    return np.where(err <= threshold, 1.0, threshold / np.maximum(err, 1e-12))


def _huber_cost(err: np.ndarray, threshold: float) -> float:
    return float(
        np.where(err <= threshold, 0.5 * err**2, threshold * (err - 0.5 * threshold)).sum()
    )


def _per_frame_gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over points k and rows r of a[m,k,r,i] * b[m,k,r,j] -> [m,i,j] (batched BLAS)."""
    m = a.shape[0]
    return np.matmul(
        a.reshape(m, -1, a.shape[-1]).transpose(0, 2, 1), b.reshape(m, -1, b.shape[-1])
    )


def _per_point_gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over frames m and rows r of a[m,k,r,i] * b[m,k,r,j] -> [k,i,j] (batched BLAS)."""
    k = a.shape[1]
    at = a.transpose(1, 0, 2, 3).reshape(k, -1, a.shape[-1])
    bt = b.transpose(1, 0, 2, 3).reshape(k, -1, b.shape[-1])
    return np.matmul(at.transpose(0, 2, 1), bt)


def _jacobians(
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


# --------------------------------------------------------------------------------------------
# initialisation


def _initial_shape(points3d: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Mean rigid shape [K,3] (metres, keyframe 0's camera axes) from MediaPipe's 3D landmarks.

    MediaPipe's x, y (pixels) and z (same scale, larger = farther) are roughly a scaled copy of
    the face in camera axes; each keyframe is aligned to the running mean by a similarity.
    """
    mean = points3d[0].copy()
    for _ in range(3):
        aligned = []
        for pts in points3d:
            s, r, t = _similarity(pts, mean)
            aligned.append(s * pts @ r.T + t)
        mean = np.mean(aligned, axis=0)
    mean = mean - mean.mean(0)
    return mean * _metric_factor(mean, index)


def _position(index: np.ndarray, point: int) -> int:
    """Column of mesh point ``point`` in a shape whose rows are mesh points ``index``."""
    return int(np.nonzero(index == point)[0][0])


def _metric_factor(shape: np.ndarray, index: np.ndarray) -> float:
    """Factor that brings the outer eye corners of ``shape`` to the metric distance."""
    a, b = _position(index, RIGHT_EYE_OUTER), _position(index, LEFT_EYE_OUTER)
    return EYE_CORNER_DISTANCE_M / float(np.linalg.norm(shape[b] - shape[a]))


def _weak_perspective_poses(
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


# --------------------------------------------------------------------------------------------
# keyframe bundle adjustment


@dataclass
class _BundleState:
    shape: np.ndarray  # [K,3]
    rot: np.ndarray  # [M,3,3]
    trans: np.ndarray  # [M,3]
    focal: float


def _gauge_matrix(shape: np.ndarray) -> np.ndarray:
    """Rows [6, 3K] of the linearised gauge (shift and turn of the whole shape) to hold fixed."""
    k = len(shape)
    g = np.zeros((6, k, 3))
    for axis in range(3):
        g[axis, :, axis] = 1.0 / k
    g[3:6] = np.transpose(_skew(shape - shape.mean(0)), (1, 0, 2))
    g = g.reshape(6, 3 * k)
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def _scale_row(shape: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Row [3K] of the linearised outer-eye-corner distance (held at its metric value)."""
    a, b = _position(index, RIGHT_EYE_OUTER), _position(index, LEFT_EYE_OUTER)
    n = (shape[b] - shape[a]) / np.linalg.norm(shape[b] - shape[a])
    row = np.zeros((len(shape), 3))
    row[a], row[b] = -n, n
    return row.reshape(-1)


def _bundle_adjust(
    obs: np.ndarray,
    index: np.ndarray,
    state: _BundleState,
    prior_shape: np.ndarray,
    prior_weight: float,
    huber: float,
    iterations: int,
    free_focal: bool,
    focal_bounds: tuple[float, float],
) -> tuple[_BundleState, np.ndarray]:
    """Levenberg-Marquardt on focal, shape and poses of keyframes; returns the state and errors.

    Normal equations ``[[A, B], [B^T, C]]`` with A block-diagonal (one 6x6 per frame) are
    reduced to the shape (+ focal) system by the Schur complement, which is small and dense.
    """
    from scipy.linalg import cho_factor, cho_solve

    m, k = obs.shape[:2]
    p = 3 * k + (1 if free_focal else 0)
    lam = 1e-3

    def residuals(st: _BundleState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        proj, cam = _project(st.shape, st.rot, st.trans, st.focal)
        res = proj - obs
        return res, np.linalg.norm(res, axis=-1), cam

    def total(st: _BundleState, err: np.ndarray) -> float:
        prior = 0.5 * prior_weight**2 * float(((st.shape - prior_shape) ** 2).sum())
        return _huber_cost(err, huber) + prior

    res, err, cam = residuals(state)
    cost = total(state, err)
    for _ in range(iterations):
        w = _huber_weights(err, huber)[..., None, None]
        j_pose, j_shape = _jacobians(cam, state.rot, state.shape, state.trans, state.focal)
        wjp = w * j_pose
        wjs = w * j_shape
        a = _per_frame_gram(wjp, j_pose)
        g_pose = _per_frame_gram(wjp, res[..., None])[..., 0]
        b_shape = np.matmul(wjp.transpose(0, 1, 3, 2), j_shape)  # [M,K,6,3]
        c_blocks = _per_point_gram(wjs, j_shape)
        g_shape = _per_point_gram(wjs, res[..., None])[..., 0]
        b = np.zeros((m, 6, p))
        b[:, :, : 3 * k] = np.transpose(b_shape, (0, 2, 1, 3)).reshape(m, 6, 3 * k)
        c = np.zeros((p, p))
        idx = np.arange(k)[:, None] * 3 + np.arange(3)
        c[idx[:, :, None], idx[:, None, :]] = c_blocks
        g_y = np.zeros(p)
        g_y[: 3 * k] = g_shape.reshape(-1) + prior_weight**2 * (state.shape - prior_shape).ravel()
        c[np.arange(3 * k), np.arange(3 * k)] += prior_weight**2
        if free_focal:
            proj = res + obs
            j_f = proj  # d(proj)/d(log f) = proj
            wjf = w[..., 0] * j_f
            b[:, :, -1] = _per_frame_gram(wjp, j_f[..., None])[..., 0]
            c[: 3 * k, -1] = _per_point_gram(wjs, j_f[..., None])[..., 0].reshape(-1)
            c[-1, : 3 * k] = c[: 3 * k, -1]
            c[-1, -1] = float((wjf * j_f).sum())
            g_y[-1] = float((wjf * res).sum())
        gauge = np.vstack([_gauge_matrix(state.shape), _scale_row(state.shape, index)])
        scale = GAUGE_WEIGHT * np.trace(c_blocks.sum(0)) / (3 * k)
        c[: 3 * k, : 3 * k] += scale * gauge.T @ gauge
        eye6 = np.eye(6)
        while True:
            a_d = a + lam * (a * eye6) + 1e-9 * eye6
            c_d = c + lam * np.diag(np.diag(c)) + 1e-12 * np.eye(p)
            a_inv = np.linalg.inv(a_d)
            ainv_b = a_inv @ b
            ainv_g = np.einsum("mij,mj->mi", a_inv, g_pose)
            schur = c_d - b.reshape(-1, p).T @ ainv_b.reshape(-1, p)
            rhs = -g_y + b.reshape(-1, p).T @ ainv_g.reshape(-1)
            try:
                dy = cho_solve(cho_factor(schur), rhs)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            dx = -ainv_g - (ainv_b @ dy)
            new = _BundleState(
                shape=state.shape + dy[: 3 * k].reshape(k, 3),
                rot=_exp_so3(dx[:, :3]) @ state.rot,
                trans=state.trans + dx[:, 3:],
                focal=state.focal,
            )
            if free_focal:
                new.focal = float(np.clip(state.focal * np.exp(dy[-1]), *focal_bounds))
            factor = _metric_factor(new.shape, index)
            new.shape, new.trans = new.shape * factor, new.trans * factor
            new_res, new_err, new_cam = residuals(new)
            new_cost = total(new, new_err)
            if new_cost < cost:
                lam = max(lam / 3, 1e-7)
                break
            lam *= 4
            if lam > 1e6:
                return state, err
        improvement = (cost - new_cost) / max(cost, 1e-12)
        state, res, err, cam, cost = new, new_res, new_err, new_cam, new_cost
        if improvement < 1e-6:
            break
    return state, err


def _ba_subset(shape: np.ndarray, count: int) -> np.ndarray:
    """Positions (into RIGID_INDEX) of ``count`` rigid points spread over the face.

    Farthest-point sampling from the eye corners and the smoothness anchors, so the subset covers
    the face evenly; the bundle adjustment's dense part grows with the square of its size.
    """
    where = {int(i): k for k, i in enumerate(RIGID_INDEX)}
    chosen = [where[i] for i in SMOOTH_ANCHORS]
    dist = np.min(np.linalg.norm(shape[:, None] - shape[chosen][None], axis=-1), axis=1)
    while len(chosen) < min(count, len(shape)):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(shape - shape[nxt], axis=1))
    return np.sort(np.asarray(chosen))


def _triangulate(
    obs: np.ndarray,
    rot: np.ndarray,
    trans: np.ndarray,
    focal: float,
    shape: np.ndarray,
    prior_weight: float,
    huber: float,
    iterations: int = 6,
) -> np.ndarray:
    """Each point's 3D position [K,3] from its observations [M,K,2], poses and focal fixed.

    Independent 3x3 robust Gauss-Newton problems, solved all at once; the weak prior toward the
    starting ``shape`` holds depths that the views do not determine (a frontal, still head).
    """
    prior = shape.copy()
    for _ in range(iterations):
        proj, cam = _project(shape, rot, trans, focal)
        res = proj - obs
        w = _huber_weights(np.linalg.norm(res, axis=-1), huber)[..., None, None]
        _, j_shape = _jacobians(cam, rot, shape, trans, focal)
        h = _per_point_gram(w * j_shape, j_shape) + prior_weight**2 * np.eye(3)
        g = _per_point_gram(w * j_shape, res[..., None])[..., 0] + prior_weight**2 * (shape - prior)
        step = -np.linalg.solve(h, g[..., None])[..., 0]
        shape = shape + step
        if np.abs(step).max() < 1e-7:
            break
    return shape


# --------------------------------------------------------------------------------------------
# canonical head frame


def _canonical(
    shape: np.ndarray, rot: np.ndarray, trans: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-express shape and poses in the head frame (x subject's left, y up, z out of the face).

    x runs through the outer eye corners; z is the rigid points' plane normal tilted down by
    HEAD_FRAME_TILT_DEG so that it points where the face looks. The fitted shape lives in
    keyframe 0's camera axes (x right, y down, z forward).
    """
    where = {int(i): k for k, i in enumerate(RIGID_INDEX)}
    a, b = where[RIGHT_EYE_OUTER], where[LEFT_EYE_OUTER]
    x = shape[b] - shape[a]
    x /= np.linalg.norm(x)
    centred = shape - shape.mean(0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][2]
    z = normal - (normal @ x) * x
    z /= np.linalg.norm(z)
    y = np.cross(z, x)
    if y @ (shape[where[FOREHEAD_POINT]] - shape[where[NOSE_TIP]]) < 0:
        y, z = -y, -z  # y must point from the nose tip toward the forehead
    if z @ centred[where[NOSE_TIP]] <= 0:
        # with x toward the subject's left and y up, z = x cross y must point out of the face
        raise TrackingError("the fitted face came out mirrored; the landmarks look inconsistent")
    tilt = np.radians(HEAD_FRAME_TILT_DEG)
    y, z = np.cos(tilt) * y + np.sin(tilt) * z, np.cos(tilt) * z - np.sin(tilt) * y
    axes = np.stack([x, y, z])  # rows: head axes in the old frame (right-handed)
    origin = 0.5 * (shape[a] + shape[b]) - HEAD_CENTRE_DEPTH_M * z
    new_shape = (shape - origin) @ axes.T
    new_rot = rot @ axes.T
    new_trans = trans + np.einsum("mij,j->mi", rot, origin)
    return new_shape, new_rot, new_trans


# --------------------------------------------------------------------------------------------
# per-frame poses


def _smooth_triples(frames: np.ndarray) -> np.ndarray:
    """Positions i (into ``frames``) whose neighbours i-1, i+1 are the adjacent video frames."""
    if len(frames) < 3:
        return np.zeros(0, dtype=np.int64)
    ok = (frames[1:-1] - frames[:-2] == 1) & (frames[2:] - frames[1:-1] == 1)
    return np.nonzero(ok)[0] + 1


def _solve_block_banded(bands: list[np.ndarray], rhs: np.ndarray) -> np.ndarray:
    """Solve the symmetric positive definite system given by its lower block bands.

    ``bands[d][q]`` is the 6x6 block at block row q + d, block column q; ``rhs`` is [n, 6].
    """
    from scipy.linalg import solveh_banded

    n = len(rhs)
    width = 6 * (len(bands) - 1) + 5
    ab = np.zeros((width + 1, 6 * n))
    for d, blocks in enumerate(bands):
        if len(blocks) == 0:
            continue
        cols = 6 * np.arange(len(blocks))
        for r in range(6):
            for c in range(6):
                offset = 6 * d + r - c
                if offset < 0:
                    continue  # upper triangle of a diagonal block
                ab[offset, cols + c] = blocks[:, r, c]
    return solveh_banded(ab, rhs.reshape(-1), lower=True).reshape(n, 6)


def _refine_poses(
    obs_of: Callable[[slice], np.ndarray],
    frames: np.ndarray,
    shape: np.ndarray,
    focal: float,
    rot: np.ndarray,
    trans: np.ndarray,
    huber: float,
    smooth_weight: float,
    depth: float,
    fixed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Robust Gauss-Newton for all poses at once, shape and focal fixed, with smoothness.

    The smoothness residual is the second difference (acceleration) of a few face points in the
    camera over consecutive frames, in pixels (scaled by focal / distance). It couples each frame
    with its two neighbours on each side, so the normal matrix is block-banded (bandwidth 17);
    it is solved by a banded Cholesky factorisation. The first ``fixed`` poses are held (the
    end of the previous window); ``obs_of(slice)`` gives the observations [m,K,2] of the
    window's frames.
    """
    n = len(frames)
    where = {int(i): k for k, i in enumerate(RIGID_INDEX)}
    anchors = shape[[where[i] for i in SMOOTH_ANCHORS]]
    centres = _smooth_triples(frames)
    w_s = smooth_weight * focal / depth
    coeffs = np.array([1.0, -2.0, 1.0])
    lam = 1e-4

    def data_terms(r: np.ndarray, t: np.ndarray, want_jac: bool):
        cost = 0.0
        blocks = np.zeros((n, 6, 6)) if want_jac else None
        grads = np.zeros((n, 6)) if want_jac else None
        for start in range(0, n, POSE_CHUNK):
            sl = slice(start, min(n, start + POSE_CHUNK))
            o = obs_of(sl)
            proj, cam = _project(shape, r[sl], t[sl], focal)
            res = proj - o
            err = np.linalg.norm(res, axis=-1)
            cost += _huber_cost(err, huber)
            if want_jac:
                w = _huber_weights(err, huber)[..., None, None]
                j_pose, _ = _jacobians(cam, r[sl], shape, t[sl], focal)
                wj = w * j_pose
                blocks[sl] = _per_frame_gram(wj, j_pose)
                grads[sl] = _per_frame_gram(wj, res[..., None])[..., 0]
        return cost, blocks, grads

    def smooth_terms(r: np.ndarray, t: np.ndarray):
        pts = np.einsum("mij,aj->mai", r, anchors) + t[:, None, :]  # [n, A, 3]
        idx = centres[:, None] + np.arange(-1, 2)  # [T, 3]
        acc = np.einsum("c,tcai->tai", coeffs, pts[idx]) * w_s  # [T, A, 3]
        return 0.5 * float((acc**2).sum()), pts, idx, acc

    cost_d, blocks, grads = data_terms(rot, trans, True)
    cost_s, pts, idx, acc = smooth_terms(rot, trans)
    cost = cost_d + cost_s
    for _ in range(POSE_ITERATIONS):
        g = grads.copy()
        # lower block bands of the normal matrix: band[d][q] couples frame q + d with frame q
        band = [blocks.copy(), np.zeros((max(n - 1, 0), 6, 6)), np.zeros((max(n - 2, 0), 6, 6))]
        if len(centres):
            q = pts - trans[:, None, :]  # rotated anchors [n, A, 3]
            jac = np.concatenate(
                [-_skew(q), np.broadcast_to(np.eye(3), (*q.shape[:2], 3, 3))], axis=-1
            )  # d(point)/d(pose) [n, A, 3, 6]
            jt = jac[idx] * (w_s * coeffs)[None, :, None, None, None]  # [T, 3, A, 3, 6]
            np.add.at(g, idx, np.einsum("tcari,tar->tci", jt, acc))
            flat = jt.reshape(len(idx), 3, -1, 6)
            for ca in range(3):
                for cb in range(ca + 1):
                    blk = np.matmul(flat[:, ca].transpose(0, 2, 1), flat[:, cb])
                    np.add.at(band[ca - cb], idx[:, cb], blk)
        if fixed:
            g[:fixed] = 0.0
            band[0][:fixed] = np.eye(6)
            band[1][:fixed] = 0.0
            band[2][:fixed] = 0.0
        while True:
            diag = band[0] + lam * (band[0] * np.eye(6)) + 1e-9 * np.eye(6)
            step = _solve_block_banded([diag, band[1], band[2]], -g)
            new_rot = _exp_so3(step[:, :3]) @ rot
            new_trans = trans + step[:, 3:]
            new_d, new_blocks, new_grads = data_terms(new_rot, new_trans, True)
            new_s, new_pts, _, new_acc = smooth_terms(new_rot, new_trans)
            if new_d + new_s <= cost:
                lam = max(lam / 3, 1e-7)
                break
            lam *= 5
            if lam > 1e4:
                return rot, trans
        improvement = (cost - new_d - new_s) / max(cost, 1e-12)
        rot, trans, blocks, grads, pts, acc = (
            new_rot,
            new_trans,
            new_blocks,
            new_grads,
            new_pts,
            new_acc,
        )
        cost = new_d + new_s
        if improvement < 1e-7:
            break
    return rot, trans


# --------------------------------------------------------------------------------------------
# figures


def _jitter(rot: np.ndarray, trans: np.ndarray, frames: np.ndarray) -> tuple[float, float]:
    """Median deviation of each pose from the midpoint of its two neighbours (degrees, mm).

    Smooth motion (constant velocity) gives zero; noise from frame to frame does not.
    """
    all_centres = _smooth_triples(frames)
    if len(all_centres) == 0:
        return float("nan"), float("nan")
    rot_dev = np.empty(len(all_centres))
    trans_dev = np.empty(len(all_centres))
    for start in range(0, len(all_centres), POSE_CHUNK):
        sl = slice(start, start + POSE_CHUNK)
        centres = all_centres[sl]
        prev, cur, nxt = rot[centres - 1], rot[centres], rot[centres + 1]
        # half of the rotation from prev to next, applied to prev: the rotational midpoint
        rel = np.transpose(prev, (0, 2, 1)) @ nxt
        angle = _log_so3_angle(rel)
        axis_v = np.stack(
            [rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]],
            axis=1,
        )
        norm = np.linalg.norm(axis_v, axis=1, keepdims=True)
        unit = np.where(norm > 1e-12, axis_v / np.maximum(norm, 1e-12), 0.0)
        mid = prev @ _exp_so3(unit * (angle[:, None] / 2))
        rot_dev[sl] = np.degrees(_log_so3_angle(np.transpose(mid, (0, 2, 1)) @ cur))
        mid_t = 0.5 * (trans[centres - 1] + trans[centres + 1])
        trans_dev[sl] = np.linalg.norm(trans[centres] - mid_t, axis=1)
    return float(np.median(rot_dev)), float(np.median(trans_dev) * 1000.0)


def _histogram_quantiles(
    counts: np.ndarray, edges: np.ndarray, qs: tuple[float, float]
) -> tuple[float, float]:
    """Quantiles from a histogram (the last count: values beyond the last edge, taken as it)."""
    cum = np.cumsum(counts)
    out = []
    for q in qs:
        i = int(np.searchsorted(cum, q * cum[-1]))
        out.append(float(edges[min(i + 1, len(edges) - 1)]))
    return out[0], out[1]


def _figures(
    focal: float,
    size: int,
    err: np.ndarray,
    point_quantiles: tuple[float, float],
    rot: np.ndarray,
    trans: np.ndarray,
    frames: np.ndarray,
    n_total: int,
    focal_source: str,
) -> dict[str, Any]:
    """JSON-ready quality figures of a track (pixel errors also scaled to a 512 px frame).

    ``reproj_median_px`` / ``reproj_p95_px`` are over every rigid point of every tracked frame;
    ``high_error_frames`` counts frames whose median error exceeds ``FLAG_ERROR_PX`` (at 512 px)
    or ``FLAG_ERROR_FACTOR`` times the video's median: a wrong face, a bad mesh, a fast blur.
    """
    to_ref = REFERENCE_SIZE_PX / size
    median, p95 = point_quantiles
    jit_rot, jit_trans = _jitter(rot, trans, frames)
    limit = max(FLAG_ERROR_PX / to_ref, FLAG_ERROR_FACTOR * float(np.median(err)))
    return {
        "focal": round(focal, 2),
        "focal_source": focal_source,
        "fov_deg": round(float(np.degrees(2 * np.arctan(size / 2 / focal))), 2),
        "reproj_median_px": round(median, 3),
        "reproj_p95_px": round(p95, 3),
        "reproj_median_px_512": round(median * to_ref, 3),
        "reproj_p95_px_512": round(p95 * to_ref, 3),
        "jitter_rot_deg": round(jit_rot, 4),
        "jitter_trans_mm": round(jit_trans, 3),
        "camera_distance_m": round(float(np.median(np.linalg.norm(trans, axis=1))), 4),
        "frames_tracked": int(len(frames)),
        "high_error_frames": int((err > limit).sum()),
        "frames_total": int(n_total),
    }


def _choose_focal(
    curve: list[tuple[float, float]], size: int
) -> tuple[float, tuple[float, float], str]:
    """Start focal, bounds and source ("data" or "prior") from the coarse search's error curve.

    The data decide when the median error rises by at least ``FOCAL_RISE`` on both sides of the
    best trial: the bundle adjustment then refines the focal between the best trial's
    neighbours. Otherwise (a mostly frontal or still head gives little perspective information,
    and MediaPipe's landmarks carry little of it) the focal nearest ``PRIOR_FOV_DEG`` among the
    trials within ``FOCAL_TOLERANCE`` of the best is kept fixed.
    """
    focals = np.array([f for f, _ in curve])
    errors = np.array([e for _, e in curve])
    best = int(np.argmin(errors))
    rise_left = errors[:best].max() / errors[best] - 1.0 if best > 0 else 0.0
    rise_right = errors[best + 1 :].max() / errors[best] - 1.0 if best < len(errors) - 1 else 0.0
    if min(rise_left, rise_right) >= FOCAL_RISE:
        bounds = (float(focals[best - 1]), float(focals[best + 1]))
        return float(focals[best]), bounds, "data"
    good = np.nonzero(errors <= errors[best] * (1.0 + FOCAL_TOLERANCE))[0]
    prior = size / 2 / np.tan(np.radians(PRIOR_FOV_DEG) / 2)
    chosen = float(np.clip(prior, focals[good.min()], focals[good.max()]))
    return chosen, (chosen, chosen), "prior"


# --------------------------------------------------------------------------------------------
# entry point


def _stages(progress: Callable[..., Iterator[Any]] | None, names: list[str]) -> Iterator[str]:
    if progress is None:
        return iter(names)
    return iter(progress(names, total=len(names), desc="tracking", unit="step"))


def track_head(
    landmarks: np.ndarray,
    width: int,
    height: int,
    progress: Callable[..., Iterator[Any]] | None = None,
) -> HeadTrack:
    """Fit focal, rigid face shape and per-frame head poses to face-mesh landmarks.

    Args:
        landmarks: float [N,478,3]: x, y in pixels, z relative (MediaPipe's scale, about pixels);
            rows all NaN where there is no face.
        width, height: frame size in pixels (the principal point is its centre).
        progress: optional ``progress(iterable, total=, desc=, unit=)`` wrapper for a progress bar.

    Raises:
        TrackingError: bad array shape, or no frame with a face.
    """
    with _single_threaded_blas():
        return _track_head(landmarks, width, height, progress)


def _track_head(
    landmarks: np.ndarray,
    width: int,
    height: int,
    progress: Callable[..., Iterator[Any]] | None,
) -> HeadTrack:
    lm = np.asarray(landmarks)
    if lm.ndim != 3 or lm.shape[1:] != (NUM_MESH_POINTS, 3):
        raise TrackingError(f"landmarks must be [N, {NUM_MESH_POINTS}, 3], got {lm.shape}")
    n_total = len(lm)
    valid = np.concatenate(
        [
            np.isfinite(lm[start : start + POSE_CHUNK, RIGID_INDEX]).all(axis=(1, 2))
            for start in range(0, n_total, POSE_CHUNK)
        ]
        or [np.zeros(0, bool)]
    )
    frames = np.nonzero(valid)[0]
    if len(frames) == 0:
        raise TrackingError("no frame has a face to track")
    size = max(width, height)
    centre = np.array([width / 2.0, height / 2.0])
    huber = HUBER_PX * size / REFERENCE_SIZE_PX
    prior_weight = SHAPE_PRIOR_PX_PER_M * size / REFERENCE_SIZE_PX

    def obs_of(sl: slice) -> np.ndarray:
        return lm[frames[sl][:, None], RIGID_INDEX[None, :], :2].astype(np.float64) - centre

    stages = _stages(progress, ["shape", "focal search", "bundle adjustment", "poses"])
    next(stages, None)
    keys = np.unique(np.linspace(0, len(frames) - 1, min(MAX_KEYFRAMES, len(frames))).round())
    keys = frames[keys.astype(np.int64)]
    key_points = lm[keys[:, None], RIGID_INDEX[None, :]].astype(np.float64)
    key_obs = key_points[..., :2] - centre
    shape0 = _initial_shape(key_points, RIGID_INDEX)
    subset = _ba_subset(shape0, BA_POINTS)
    sub_index = RIGID_INDEX[subset]

    next(stages, None)
    fov = np.radians(np.asarray(FOV_RANGE_DEG))
    f_lo, f_hi = sorted(size / 2 / np.tan(fov / 2))
    grid = np.geomspace(f_lo, f_hi, FOCAL_SEARCH_STEPS)
    pick = np.unique(np.linspace(0, len(keys) - 1, min(SEARCH_KEYFRAMES, len(keys))).round())
    search_obs = key_obs[pick.astype(np.int64)][:, subset]
    curve: list[tuple[float, float]] = []
    trials: list[_BundleState] = []
    for f in grid:
        rot, trans = _weak_perspective_poses(search_obs, shape0[subset], float(f))
        st, err = _bundle_adjust(
            search_obs,
            sub_index,
            _BundleState(shape0[subset].copy(), rot, trans, float(f)),
            shape0[subset],
            prior_weight,
            huber,
            SEARCH_ITERATIONS,
            free_focal=False,
            focal_bounds=(f_lo, f_hi),
        )
        curve.append((float(f), float(np.median(err))))
        trials.append(st)
    f0, bounds, source = _choose_focal(curve, size)
    best = int(np.argmin(np.abs(np.log(grid / f0))))

    next(stages, None)
    shape_b = trials[best].shape
    rot, trans = _weak_perspective_poses(key_obs[:, subset], shape_b, f0)
    state, _ = _bundle_adjust(
        key_obs[:, subset],
        sub_index,
        _BundleState(shape_b.copy(), rot, trans, f0),
        shape0[subset],
        prior_weight,
        huber,
        BA_ITERATIONS,
        free_focal=source == "data",
        focal_bounds=bounds,
    )
    focal = state.focal
    # the other rigid points: start from MediaPipe's shape aligned to the fitted subset
    sim_s, sim_r, sim_t = _similarity(shape0[subset], state.shape)
    start_shape = sim_s * shape0 @ sim_r.T + sim_t
    start_shape[subset] = state.shape
    full = _triangulate(key_obs, state.rot, state.trans, focal, start_shape, prior_weight, huber)
    shape, _, key_trans = _canonical(full, state.rot, state.trans)
    depth = float(np.median(key_trans[:, 2]))

    next(stages, None)
    n = len(frames)
    rot = np.empty((n, 3, 3))
    trans = np.empty((n, 3))
    for start in range(0, n, POSE_CHUNK):
        sl = slice(start, min(n, start + POSE_CHUNK))
        rot[sl], trans[sl] = _weak_perspective_poses(obs_of(sl), shape, focal)
    # windows of POSE_WINDOW frames; each starts WINDOW_OVERLAP frames back into the previous
    # one, whose first SMOOTH_CONTEXT poses it holds fixed and whose others it solves again
    # with the context that follows them, so the smoothness term runs on across the joins
    for start in range(0, n, POSE_WINDOW):
        lo, hi = max(0, start - WINDOW_OVERLAP), min(n, start + POSE_WINDOW)

        def window_obs(sl: slice, lo: int = lo) -> np.ndarray:
            return obs_of(slice(lo + sl.start, lo + sl.stop))

        rot[lo:hi], trans[lo:hi] = _refine_poses(
            window_obs, frames[lo:hi], shape, focal, rot[lo:hi], trans[lo:hi],
            huber, SMOOTH_WEIGHT, depth, fixed=min(SMOOTH_CONTEXT, start - lo),
        )  # fmt: skip
    err = np.empty(n)
    edges = np.linspace(0.0, HISTOGRAM_MAX_PX * size / REFERENCE_SIZE_PX, HISTOGRAM_BINS + 1)
    counts = np.zeros(HISTOGRAM_BINS + 1, dtype=np.int64)  # the last bin: beyond the range
    for start in range(0, n, POSE_CHUNK):
        sl = slice(start, min(n, start + POSE_CHUNK))
        proj, _ = _project(shape, rot[sl], trans[sl], focal)
        point_err = np.linalg.norm(proj - obs_of(sl), axis=-1)
        err[sl] = np.median(point_err, axis=1)
        counts[:-1] += np.histogram(point_err, bins=edges)[0]
        counts[-1] += int((point_err > edges[-1]).sum())
    quantiles = _histogram_quantiles(counts, edges, (0.5, 0.95))
    for _ in stages:
        pass

    rotation = np.full((n_total, 3, 3), np.nan)
    translation = np.full((n_total, 3), np.nan)
    reproj = np.full(n_total, np.nan)
    rotation[frames], translation[frames], reproj[frames] = rot, trans, err
    return HeadTrack(
        focal=float(focal),
        rigid_index=RIGID_INDEX.copy(),
        shape=shape,
        rotation=rotation,
        translation=translation,
        reproj_err=reproj,
        focal_curve=curve,
        figures=_figures(float(focal), size, err, quantiles, rot, trans, frames, n_total, source),
    )
