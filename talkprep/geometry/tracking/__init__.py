"""Head and camera tracking from face-mesh landmarks: one focal, one rigid face, a pose per frame.

A bundle adjustment over the video, no 3D face model needed. Unknowns: the focal length (principal
point at the image centre), the 3D shape of the rigid part of the person's face (forehead,
temples, eye corners, nose: ``RIGID_INDEX``) and a rotation and translation per frame, in a
computer-vision camera (x right, y down, z forward; see ``camera.py``).

Why the shape is re-estimated: MediaPipe's own 3D points come from a near-orthographic model, so
with them held fixed the reprojection error keeps falling as the focal grows and cannot pick it.
They only start the shape (and weakly hold the depths that the views leave open), which is
fitted to the 2D observations of many frames, where perspective tells focal and distance apart.

One module per stage:

1. ``keyframes``: keyframes spread over the video, the initial shape from MediaPipe's 3D points;
2. ``focal``: the profile of the reprojection cost over a grid of focals and the MAP focal under
   a prior on log focal (a smooth function of the evidence, the same at any resolution);
3. ``bundle``: the keyframe bundle adjustment (focal free under that prior), triangulation;
4. ``head_frame``: the head frame from MediaPipe's canonical face model, origin at the centroid of
   the face surface;
5. ``poses``: every frame's pose with a robust temporal term that smooths jitter but gives way to
   fast motion;
6. ``figures``: quality figures for the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from talkprep.geometry.face_topology import NUM_MESH_POINTS
from talkprep.geometry.tracking import poses as _poses
from talkprep.geometry.tracking.bundle import (
    BA_ITERATIONS,
    SEARCH_ITERATIONS,
    BundleState,
    bundle_adjust,
    triangulate,
)
from talkprep.geometry.tracking.common import (
    EYE_CORNER_DISTANCE_M,
    HUBER_PX,
    POSE_CHUNK,
    REFERENCE_SIZE_PX,
    RIGID_INDEX,
    TrackingError,
    huber_cost,
    project,
    similarity,
    single_threaded_blas,
)
from talkprep.geometry.tracking.figures import (
    HISTOGRAM_BINS,
    HISTOGRAM_MAX_PX,
    histogram_quantiles,
    track_figures,
)
from talkprep.geometry.tracking.focal import (
    FOCAL_SEARCH_STEPS,
    FOV_RANGE_DEG,
    PRIOR_FOV_DEG,
    SEARCH_KEYFRAMES,
    focal_grid,
    map_focal,
    noise_sigma,
)
from talkprep.geometry.tracking.head_frame import to_head_frame
from talkprep.geometry.tracking.keyframes import (
    BA_POINTS,
    ba_subset,
    initial_shape,
    keyframes,
    weak_perspective_poses,
)

__all__ = [
    "EYE_CORNER_DISTANCE_M",
    "FOCAL_SEARCH_STEPS",
    "FOV_RANGE_DEG",
    "PRIOR_FOV_DEG",
    "RIGID_INDEX",
    "HeadTrack",
    "TrackingError",
    "track_head",
]

SHAPE_PRIOR_PX_PER_M = 300.0
"""Weak pull of the shape toward MediaPipe's (aligned) 3D points, at REFERENCE_SIZE_PX: a 1 mm
departure costs like 0.1 px of error in one view, so the views decide wherever they can and the
prior only fills in depths that they leave open (a frontal, still head)."""


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
    """(focal px, median reprojection error px) of each trial of the focal profile."""
    figures: dict[str, Any]
    """JSON-ready quality figures (see ``figures.track_figures``)."""


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
    with single_threaded_blas():
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

    stages = _stages(progress, ["shape", "focal", "bundle adjustment", "poses"])
    next(stages, None)
    keys = keyframes(frames)
    key_points = lm[keys[:, None], RIGID_INDEX[None, :]].astype(np.float64)
    key_obs = key_points[..., :2] - centre
    shape0 = initial_shape(key_points, RIGID_INDEX)
    subset = ba_subset(shape0, BA_POINTS)
    sub_index = RIGID_INDEX[subset]

    next(stages, None)
    grid = focal_grid(size)
    pick = np.unique(np.linspace(0, len(keys) - 1, min(SEARCH_KEYFRAMES, len(keys))).round())
    search_obs = key_obs[pick.astype(np.int64)][:, subset]
    curve: list[tuple[float, float]] = []
    costs = np.empty(len(grid))
    trials: list[BundleState] = []
    for i, f in enumerate(grid):
        rot, trans = weak_perspective_poses(search_obs, shape0[subset], float(f))
        st, err = bundle_adjust(
            search_obs,
            sub_index,
            BundleState(shape0[subset].copy(), rot, trans, float(f)),
            shape0[subset],
            prior_weight,
            huber,
            SEARCH_ITERATIONS,
        )
        curve.append((float(f), float(np.median(err))))
        costs[i] = huber_cost(err, huber)
        trials.append(st)
    sigma = noise_sigma(min(e for _, e in curve), size)
    estimate = map_focal(
        grid, costs, search_obs.shape[0] * search_obs.shape[1], len(keys), sigma, size,
        ba_observations=len(keys) * len(subset),
    )  # fmt: skip
    f0 = estimate.focal
    nearest = int(np.argmin(np.abs(np.log(grid / f0))))

    next(stages, None)
    shape_b = trials[nearest].shape
    rot, trans = weak_perspective_poses(key_obs[:, subset], shape_b, f0)
    state, key_err = bundle_adjust(
        key_obs[:, subset],
        sub_index,
        BundleState(shape_b.copy(), rot, trans, f0),
        shape0[subset],
        prior_weight,
        huber,
        BA_ITERATIONS,
        focal_prior=estimate.prior,
        focal_bounds=(float(grid[0]), float(grid[-1])),
    )
    focal = state.focal
    # the other rigid points: start from MediaPipe's shape aligned to the fitted subset
    sim_s, sim_r, sim_t = similarity(shape0[subset], state.shape)
    start_shape = sim_s * shape0 @ sim_r.T + sim_t
    start_shape[subset] = state.shape
    full = triangulate(key_obs, state.rot, state.trans, focal, start_shape, prior_weight, huber)
    shape, _, key_trans = to_head_frame(full, RIGID_INDEX, state.rot, state.trans)
    depth = float(np.median(key_trans[:, 2]))

    next(stages, None)
    noise = float(np.median(key_err))
    rot, trans = _poses.track_poses(obs_of, frames, shape, focal, huber, depth, size, noise)
    n = len(frames)
    err = np.empty(n)
    edges = np.linspace(0.0, HISTOGRAM_MAX_PX * size / REFERENCE_SIZE_PX, HISTOGRAM_BINS + 1)
    counts = np.zeros(HISTOGRAM_BINS + 1, dtype=np.int64)  # the last bin: beyond the range
    for start in range(0, n, POSE_CHUNK):
        sl = slice(start, min(n, start + POSE_CHUNK))
        proj, _ = project(shape, rot[sl], trans[sl], focal)
        point_err = np.linalg.norm(proj - obs_of(sl), axis=-1)
        err[sl] = np.median(point_err, axis=1)
        counts[:-1] += np.histogram(point_err, bins=edges)[0]
        counts[-1] += int((point_err > edges[-1]).sum())
    quantiles = histogram_quantiles(counts, edges, (0.5, 0.95))
    for _ in stages:
        pass

    rotation = np.full((n_total, 3, 3), np.nan)
    translation = np.full((n_total, 3), np.nan)
    reproj = np.full(n_total, np.nan)
    rotation[frames], translation[frames], reproj[frames] = rot, trans, err
    figures = track_figures(
        float(focal), size, err, quantiles, rot, trans, frames, n_total,
        estimate,
    )  # fmt: skip
    return HeadTrack(
        focal=float(focal),
        rigid_index=RIGID_INDEX.copy(),
        shape=shape,
        rotation=rotation,
        translation=translation,
        reproj_err=reproj,
        focal_curve=curve,
        figures=figures,
    )
