"""Stage 5: every frame's pose, shape and focal fixed, with a temporal term that does not lag.

Each frame's pose starts from a batched weak-perspective PnP and is refined by robust
Gauss-Newton on the reprojection error of all rigid points, plus a penalty on the acceleration of
a few face points (temporal smoothness). A quadratic penalty drags fast head shakes (a 3x faster
clip: reprojection 95th percentile 1.29 times the unsmoothed fit's), and made weak it lets calm
clips jitter; so the penalty is Cauchy-robust, with a scale set by the clip's landmark noise:
noise-sized accelerations are damped as by a quadratic term (twice the old weight, so calm clips
jitter less than before), accelerations well beyond the noise cost little and the fit follows
them (1.03 times). Windows of ``POSE_WINDOW`` frames are solved as one block-banded system by a
banded Cholesky factorisation, so time and memory grow linearly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from talkprep.geometry.face_topology import LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER
from talkprep.geometry.tracking.common import (
    POSE_CHUNK,
    REFERENCE_SIZE_PX,
    RIGID_INDEX,
    exp_so3,
    huber_cost,
    huber_weights,
    jacobians,
    per_frame_gram,
    project,
    skew,
)
from talkprep.geometry.tracking.keyframes import FOREHEAD_POINT, weak_perspective_poses

SMOOTH_ANCHORS = (RIGHT_EYE_OUTER, LEFT_EYE_OUTER, NOSE_TIP, FOREHEAD_POINT)
"""Face points (eye corners, nose tip, forehead) whose acceleration the smoothness term damps."""
SMOOTH_WEIGHT = 2.0
"""Weight of the acceleration of the anchor points (expressed in pixels) against reprojection."""
SMOOTH_ROBUST_PX = 0.5
"""Smallest scale of the temporal term's Cauchy loss (root mean square anchor acceleration,
pixels at REFERENCE_SIZE_PX)."""
SMOOTH_NOISE_FACTOR = 4.0
"""The scale is this many times the clip's median rigid-point error (its landmark noise):
accelerations well beyond it are real motion, not noise."""
POSE_ITERATIONS = 8
POSE_WINDOW = 1024
"""Frames solved together in the per-frame stage (memory flat in video length)."""
SMOOTH_CONTEXT = 2
"""Poses of the previous window held fixed at the start of the next (the smoothness term's
reach: it couples each frame with two neighbours on each side)."""
WINDOW_OVERLAP = 24
"""Frames of the previous window solved again by the next (a window's last poses lack the
frames after them; their influence fades within a dozen frames)."""


def smooth_triples(frames: np.ndarray) -> np.ndarray:
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


def refine_poses(
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
    smooth_scale: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Robust Gauss-Newton for all poses at once, shape and focal fixed, with smoothness.

    The smoothness residual is the second difference (acceleration) of a few face points in the
    camera over consecutive frames, in pixels (scaled by focal / distance). Its cost is Cauchy's
    in the root mean square acceleration ``a`` of a frame's anchors:
    ``0.5 * A * c**2 * log(1 + a**2 / c**2)`` with ``c = smooth_scale``: quadratic for the small
    accelerations of landmark noise, so calm clips are smoothed as by a quadratic term, but
    bounded for the large ones of a real head shake, which the fit then follows instead of
    dragging (iteratively reweighted: each frame's term weighs ``1 / (1 + a**2 / c**2)``).
    It couples each frame with its two neighbours on each side, so the normal matrix is
    block-banded (bandwidth 17); it is solved by a banded Cholesky factorisation. The first
    ``fixed`` poses are held (the end of the previous window); ``obs_of(slice)`` gives the
    observations [m,K,2] of the window's frames.
    """
    n = len(frames)
    where = {int(i): k for k, i in enumerate(RIGID_INDEX)}
    anchors = shape[[where[i] for i in SMOOTH_ANCHORS]]
    centres = smooth_triples(frames)
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
            proj, cam = project(shape, r[sl], t[sl], focal)
            res = proj - o
            err = np.linalg.norm(res, axis=-1)
            cost += huber_cost(err, huber)
            if want_jac:
                w = huber_weights(err, huber)[..., None, None]
                j_pose, _ = jacobians(cam, r[sl], shape, t[sl], focal)
                wj = w * j_pose
                blocks[sl] = per_frame_gram(wj, j_pose)
                grads[sl] = per_frame_gram(wj, res[..., None])[..., 0]
        return cost, blocks, grads

    def smooth_terms(r: np.ndarray, t: np.ndarray):
        pts = np.einsum("mij,aj->mai", r, anchors) + t[:, None, :]  # [n, A, 3]
        idx = centres[:, None] + np.arange(-1, 2)  # [T, 3]
        acc = np.einsum("c,tcai->tai", coeffs, pts[idx]) * w_s  # [T, A, 3]
        sq = (acc**2).sum(axis=(1, 2))
        if not np.isfinite(smooth_scale):
            return 0.5 * float(sq.sum()), pts, idx, acc, np.ones(len(sq))
        ratio = sq / (len(anchors) * smooth_scale**2)
        cost = 0.5 * len(anchors) * smooth_scale**2 * float(np.log1p(ratio).sum())
        return cost, pts, idx, acc, 1.0 / (1.0 + ratio)

    cost_d, blocks, grads = data_terms(rot, trans, True)
    cost_s, pts, idx, acc, weight = smooth_terms(rot, trans)
    cost = cost_d + cost_s
    for _ in range(POSE_ITERATIONS):
        g = grads.copy()
        # lower block bands of the normal matrix: band[d][q] couples frame q + d with frame q
        band = [blocks.copy(), np.zeros((max(n - 1, 0), 6, 6)), np.zeros((max(n - 2, 0), 6, 6))]
        if len(centres):
            q = pts - trans[:, None, :]  # rotated anchors [n, A, 3]
            jac = np.concatenate(
                [-skew(q), np.broadcast_to(np.eye(3), (*q.shape[:2], 3, 3))], axis=-1
            )  # d(point)/d(pose) [n, A, 3, 6]
            jt = jac[idx] * (w_s * coeffs)[None, :, None, None, None]  # [T, 3, A, 3, 6]
            np.add.at(g, idx, np.einsum("tcari,tar->tci", jt, acc) * weight[:, None, None])
            flat = jt.reshape(len(idx), 3, -1, 6)
            for ca in range(3):
                for cb in range(ca + 1):
                    blk = np.matmul(flat[:, ca].transpose(0, 2, 1), flat[:, cb])
                    blk *= weight[:, None, None]
                    np.add.at(band[ca - cb], idx[:, cb], blk)
        if fixed:
            g[:fixed] = 0.0
            band[0][:fixed] = np.eye(6)
            band[1][:fixed] = 0.0
            band[2][:fixed] = 0.0
        while True:
            diag = band[0] + lam * (band[0] * np.eye(6)) + 1e-9 * np.eye(6)
            step = _solve_block_banded([diag, band[1], band[2]], -g)
            new_rot = exp_so3(step[:, :3]) @ rot
            new_trans = trans + step[:, 3:]
            new_d, new_blocks, new_grads = data_terms(new_rot, new_trans, True)
            new_s, new_pts, _, new_acc, new_weight = smooth_terms(new_rot, new_trans)
            if new_d + new_s <= cost:
                lam = max(lam / 3, 1e-7)
                break
            lam *= 5
            if lam > 1e4:
                return rot, trans
        improvement = (cost - new_d - new_s) / max(cost, 1e-12)
        rot, trans, blocks, grads, pts, acc, weight = (
            new_rot,
            new_trans,
            new_blocks,
            new_grads,
            new_pts,
            new_acc,
            new_weight,
        )
        cost = new_d + new_s
        if improvement < 1e-7:
            break
    return rot, trans


def track_poses(
    obs_of: Callable[[slice], np.ndarray],
    frames: np.ndarray,
    shape: np.ndarray,
    focal: float,
    huber: float,
    depth: float,
    size: int,
    noise_px: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Poses [n,3,3], [n,3] of all ``frames`` (video indices of the faces), shape and focal fixed.

    Starts from a batched weak-perspective PnP; then windows of ``POSE_WINDOW`` frames, each
    starting ``WINDOW_OVERLAP`` frames back into the previous one, whose first
    ``SMOOTH_CONTEXT`` poses it holds fixed and whose others it solves again with the context
    that follows them, so the temporal term runs on across the joins.
    """
    n = len(frames)
    rot = np.empty((n, 3, 3))
    trans = np.empty((n, 3))
    for start in range(0, n, POSE_CHUNK):
        sl = slice(start, min(n, start + POSE_CHUNK))
        rot[sl], trans[sl] = weak_perspective_poses(obs_of(sl), shape, focal)
    scale = max(SMOOTH_ROBUST_PX * size / REFERENCE_SIZE_PX, SMOOTH_NOISE_FACTOR * noise_px)
    for start in range(0, n, POSE_WINDOW):
        lo, hi = max(0, start - WINDOW_OVERLAP), min(n, start + POSE_WINDOW)

        def window_obs(sl: slice, lo: int = lo) -> np.ndarray:
            return obs_of(slice(lo + sl.start, lo + sl.stop))

        rot[lo:hi], trans[lo:hi] = refine_poses(
            window_obs, frames[lo:hi], shape, focal, rot[lo:hi], trans[lo:hi], huber,
            SMOOTH_WEIGHT, depth, fixed=min(SMOOTH_CONTEXT, start - lo), smooth_scale=scale,
        )  # fmt: skip
    return rot, trans
