"""Stage 3: the keyframe bundle adjustment of focal, rigid shape and poses, then triangulation.

Levenberg-Marquardt on a Huber-robust reprojection error over ``BA_POINTS`` rigid points, with
the per-frame 6x6 pose blocks eliminated by the Schur complement; the gauge (where the shape sits
and how it is turned) is held by a penalty, the scale by the eye-corner rule. The focal, when
free, carries a Gaussian prior on its logarithm (``FocalPrior``): the MAP estimate is a smooth
function of the evidence. The other rigid points are then triangulated with the poses fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkprep.geometry.face_topology import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from talkprep.geometry.tracking.common import (
    exp_so3,
    huber_cost,
    huber_weights,
    jacobians,
    per_frame_gram,
    per_point_gram,
    project,
    skew,
)
from talkprep.geometry.tracking.keyframes import metric_factor, position


@dataclass(frozen=True)
class FocalPrior:
    """Gaussian prior on log focal, in the bundle adjustment's cost units (pixels squared)."""

    log_focal: float
    weight: float
    """Curvature of the prior's cost in log focal."""

    def cost(self, focal: float) -> float:
        return 0.5 * self.weight * (np.log(focal) - self.log_focal) ** 2

    def gradient(self, focal: float) -> float:
        return self.weight * (np.log(focal) - self.log_focal)


GAUGE_WEIGHT = 1e4
"""Penalty weight (relative to the shape blocks) holding the shape's position and orientation."""
SEARCH_ITERATIONS = 25
BA_ITERATIONS = 40


@dataclass
class BundleState:
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
    g[3:6] = np.transpose(skew(shape - shape.mean(0)), (1, 0, 2))
    g = g.reshape(6, 3 * k)
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def _scale_row(shape: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Row [3K] of the linearised outer-eye-corner distance (held at its metric value)."""
    a, b = position(index, RIGHT_EYE_OUTER), position(index, LEFT_EYE_OUTER)
    n = (shape[b] - shape[a]) / np.linalg.norm(shape[b] - shape[a])
    row = np.zeros((len(shape), 3))
    row[a], row[b] = -n, n
    return row.reshape(-1)


def bundle_adjust(
    obs: np.ndarray,
    index: np.ndarray,
    state: BundleState,
    prior_shape: np.ndarray,
    prior_weight: float,
    huber: float,
    iterations: int,
    focal_prior: FocalPrior | None = None,
    focal_bounds: tuple[float, float] = (0.0, np.inf),
) -> tuple[BundleState, np.ndarray]:
    """Levenberg-Marquardt on focal, shape and poses of keyframes; returns the state and errors.

    Normal equations ``[[A, B], [B^T, C]]`` with A block-diagonal (one 6x6 per frame) are
    reduced to the shape (+ focal) system by the Schur complement, which is small and dense.
    The focal is free (in log units, with ``focal_prior``'s Gaussian prior) when a prior is
    given, else held.
    """
    from scipy.linalg import cho_factor, cho_solve

    m, k = obs.shape[:2]
    p = 3 * k + (1 if focal_prior is not None else 0)
    lam = 1e-3

    def residuals(st: BundleState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        proj, cam = project(st.shape, st.rot, st.trans, st.focal)
        res = proj - obs
        return res, np.linalg.norm(res, axis=-1), cam

    def total(st: BundleState, err: np.ndarray) -> float:
        prior = 0.5 * prior_weight**2 * float(((st.shape - prior_shape) ** 2).sum())
        if focal_prior is not None:
            prior += focal_prior.cost(st.focal)
        return huber_cost(err, huber) + prior

    res, err, cam = residuals(state)
    cost = total(state, err)
    for _ in range(iterations):
        w = huber_weights(err, huber)[..., None, None]
        j_pose, j_shape = jacobians(cam, state.rot, state.shape, state.trans, state.focal)
        wjp = w * j_pose
        wjs = w * j_shape
        a = per_frame_gram(wjp, j_pose)
        g_pose = per_frame_gram(wjp, res[..., None])[..., 0]
        b_shape = np.matmul(wjp.transpose(0, 1, 3, 2), j_shape)  # [M,K,6,3]
        c_blocks = per_point_gram(wjs, j_shape)
        g_shape = per_point_gram(wjs, res[..., None])[..., 0]
        b = np.zeros((m, 6, p))
        b[:, :, : 3 * k] = np.transpose(b_shape, (0, 2, 1, 3)).reshape(m, 6, 3 * k)
        c = np.zeros((p, p))
        idx = np.arange(k)[:, None] * 3 + np.arange(3)
        c[idx[:, :, None], idx[:, None, :]] = c_blocks
        g_y = np.zeros(p)
        g_y[: 3 * k] = g_shape.reshape(-1) + prior_weight**2 * (state.shape - prior_shape).ravel()
        c[np.arange(3 * k), np.arange(3 * k)] += prior_weight**2
        if focal_prior is not None:
            proj = res + obs
            j_f = proj  # d(proj)/d(log f) = proj
            wjf = w[..., 0] * j_f
            b[:, :, -1] = per_frame_gram(wjp, j_f[..., None])[..., 0]
            c[: 3 * k, -1] = per_point_gram(wjs, j_f[..., None])[..., 0].reshape(-1)
            c[-1, : 3 * k] = c[: 3 * k, -1]
            c[-1, -1] = float((wjf * j_f).sum())
            g_y[-1] = float((wjf * res).sum()) + focal_prior.gradient(state.focal)
            c[-1, -1] += focal_prior.weight
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
            new = BundleState(
                shape=state.shape + dy[: 3 * k].reshape(k, 3),
                rot=exp_so3(dx[:, :3]) @ state.rot,
                trans=state.trans + dx[:, 3:],
                focal=state.focal,
            )
            if focal_prior is not None:
                new.focal = float(np.clip(state.focal * np.exp(dy[-1]), *focal_bounds))
            factor = metric_factor(new.shape, index)
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


def triangulate(
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
        proj, cam = project(shape, rot, trans, focal)
        res = proj - obs
        w = huber_weights(np.linalg.norm(res, axis=-1), huber)[..., None, None]
        _, j_shape = jacobians(cam, rot, shape, trans, focal)
        h = per_point_gram(w * j_shape, j_shape) + prior_weight**2 * np.eye(3)
        g = per_point_gram(w * j_shape, res[..., None])[..., 0] + prior_weight**2 * (shape - prior)
        step = -np.linalg.solve(h, g[..., None])[..., 0]
        shape = shape + step
        if np.abs(step).max() < 1e-7:
            break
    return shape
