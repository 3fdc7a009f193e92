"""Stage 2: the focal length as a MAP estimate: reprojection evidence plus a prior on log focal.

Talking-head clips rarely decide the focal by reprojection alone: a mostly frontal head gives
little perspective, and a tie-break between near-equal trials jumps with resolution and noise.
So the focal is the maximum of a smooth posterior. The evidence is the profile of the robust
reprojection cost over a grid of focals (shape and poses refitted at each), in pixels of a
``REFERENCE_SIZE_PX`` frame, divided by the measured noise variance and counted as
``OBS_PER_FRAME`` independent observations per keyframe (MediaPipe's errors are correlated across
the points of one frame); the prior is Gaussian on log focal around ``PRIOR_FOV_DEG``. Where the
profile is flat the estimate is the prior; where it curves well beyond the prior the data decide.
Everything is in reference pixels and per keyframe, so a clip and its half-size copy get the same
field of view; nothing is random, so reruns are identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkprep.geometry.tracking.bundle import FocalPrior
from talkprep.geometry.tracking.common import REFERENCE_SIZE_PX

FOV_RANGE_DEG = (10.0, 50.0)
"""Plausible fields of view (over the larger image side) searched for the focal length."""
FOCAL_SEARCH_STEPS = 9
SEARCH_KEYFRAMES = 100
"""Frames used by each trial of the focal profile."""
PRIOR_FOV_DEG = 24.0
"""Prior field of view: 1200 px at 512 px, inside AD-NeRF's own focal search (600-1400 px in
``face_tracker.py``) and a common telephoto-ish framing of talking heads; it puts the camera
about 0.7-1.2 m away."""
PRIOR_LOG_SIGMA = 0.25
"""Standard deviation of the prior on log focal: the focal is a priori within about 25%."""
OBS_PER_FRAME = 1.0
"""Independent observations a keyframe's landmarks count as (their errors move together)."""
NOISE_FLOOR_PX = 0.5
"""Smallest landmark noise (per axis, at REFERENCE_SIZE_PX) the evidence is weighed with: a
rigid fit's residuals understate MediaPipe's error, whose systematic part the fit absorbs."""
DECIDE_NATS = (1.0, 4.0)
"""Range of the data term (negative log-likelihood) over the searched focals below which the
prior alone decides, and above which the data term counts fully (see `map_focal`)."""
MAP_SAMPLES = 4001
"""Points at which the smooth posterior is evaluated over the searched range of log focal."""
MEDIAN_PER_SIGMA = float(np.sqrt(2 * np.log(2)))
"""Median length of a 2D Gaussian error per unit standard deviation per axis."""


@dataclass(frozen=True)
class FocalEstimate:
    """The MAP focal, the prior for the bundle adjustment, and the evidence behind them."""

    focal: float
    prior: FocalPrior | None
    """The prior in the keyframe bundle adjustment's cost units; None: the focal stays fixed
    at the prior (the data do not decide)."""
    evidence: float
    """Curvature of the (weighted) data term at the estimate over the prior's: above 1 the data
    decide."""
    data_weight: float
    """Weight of the data term, 0 (the estimate is exactly the prior) to 1 (see `map_focal`)."""
    log_sigma: float
    """Posterior standard deviation of log focal (from both curvatures)."""

    @property
    def source(self) -> str:
        """ "prior" (exactly the prior), "data" (the data outweigh it), or "prior+data"."""
        if self.data_weight == 0.0:
            return "prior"
        return "data" if self.evidence >= 1.0 else "prior+data"


class NaturalSpline:
    """Natural cubic spline through (x, y): smooth, deterministic, with a second derivative.

    NumPy only (SciPy's interpolate module would add 20 MiB to the task's memory for this).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        h = np.diff(self.x)
        n = len(self.x)
        system = np.eye(n)
        rhs = np.zeros(n)
        for i in range(1, n - 1):  # n is the focal grid's handful of knots
            system[i, i - 1 : i + 2] = h[i - 1], 2 * (h[i - 1] + h[i]), h[i]
            slopes = np.diff(self.y[i - 1 : i + 2]) / h[i - 1 : i + 1]
            rhs[i] = 6 * (slopes[1] - slopes[0])
        self.m = np.linalg.solve(system, rhs)  # second derivatives at the knots (0 at the ends)

    def __call__(self, u: np.ndarray | float, derivative: int = 0) -> np.ndarray:
        """Value (``derivative`` 0) or second derivative (2) at ``u`` (inside the knots)."""
        u = np.asarray(u, np.float64)
        i = np.clip(np.searchsorted(self.x, u) - 1, 0, len(self.x) - 2)
        x0, x1, h = self.x[i], self.x[i + 1], self.x[i + 1] - self.x[i]
        m0, m1 = self.m[i], self.m[i + 1]
        a, b = x1 - u, u - x0
        if derivative == 2:
            return (m0 * a + m1 * b) / h
        return (
            (m0 * a**3 + m1 * b**3) / (6 * h)
            + (self.y[i] / h - m0 * h / 6) * a
            + (self.y[i + 1] / h - m1 * h / 6) * b
        )


def prior_focal(size: int) -> float:
    """Focal (pixels) of the prior field of view over the larger image side ``size``."""
    return size / 2 / np.tan(np.radians(PRIOR_FOV_DEG) / 2)


def focal_grid(size: int) -> np.ndarray:
    """``FOCAL_SEARCH_STEPS`` focals spaced evenly in log over ``FOV_RANGE_DEG``."""
    fov = np.radians(np.asarray(FOV_RANGE_DEG))
    f_lo, f_hi = sorted(size / 2 / np.tan(fov / 2))
    return np.geomspace(f_lo, f_hi, FOCAL_SEARCH_STEPS)


def noise_sigma(median_err_px: float, size: int) -> float:
    """Landmark noise per axis at REFERENCE_SIZE_PX from a fit's median point error (pixels)."""
    return max(median_err_px * REFERENCE_SIZE_PX / size / MEDIAN_PER_SIGMA, NOISE_FLOOR_PX)


def map_focal(
    grid: np.ndarray,
    costs: np.ndarray,
    observations: int,
    keyframes: int,
    sigma: float,
    size: int,
    ba_observations: int,
) -> FocalEstimate:
    """MAP focal from the profile ``costs`` (robust cost, frame pixels squared) over ``grid``.

    The data term (negative log-likelihood, a cubic spline through the profile) enters with a
    weight that ramps from 0 to 1 as its range over the searched focals grows from
    ``DECIDE_NATS[0]`` to ``DECIDE_NATS[1]``: a profile flatter than that (a frontal or still
    head, where what is left is MediaPipe's systematic error) leaves exactly the prior, and the
    estimate never jumps, since the weight and the posterior are continuous in the evidence.

    Args:
        grid: focals [S] of the profile (increasing).
        costs: [S] the fitted robust cost at each, over ``observations`` point observations.
        keyframes: keyframes the estimate speaks for (the evidence grows with them).
        sigma: landmark noise per axis at REFERENCE_SIZE_PX (`noise_sigma`).
        size: larger image side in pixels.
        ba_observations: point observations of the bundle adjustment that refines the focal
            (its prior is expressed in that problem's cost units).
    """
    to_ref = (REFERENCE_SIZE_PX / size) ** 2
    n_eff = keyframes * OBS_PER_FRAME
    log_grid = np.log(grid)
    data = NaturalSpline(log_grid, costs * to_ref / observations * n_eff / sigma**2)
    u0 = float(np.log(prior_focal(size)))
    u = np.linspace(log_grid[0], log_grid[-1], MAP_SAMPLES)
    data_u = data(u)
    span = float(data_u.max() - data_u.min())
    weight = float(np.clip((span - DECIDE_NATS[0]) / (DECIDE_NATS[1] - DECIDE_NATS[0]), 0, 1))
    prior_curvature = 1.0 / PRIOR_LOG_SIGMA**2
    if weight == 0.0:
        return FocalEstimate(float(prior_focal(size)), None, 0.0, 0.0, PRIOR_LOG_SIGMA)
    posterior = weight * (data_u - data_u.min()) + 0.5 * ((u - u0) / PRIOR_LOG_SIGMA) ** 2
    best = float(u[int(np.argmin(posterior))])
    curvature = weight * max(float(data(best, 2)), 0.0)
    # the bundle adjustment's cost is the weighted data term times this factor
    per_unit = sigma**2 / n_eff * ba_observations / to_ref / weight
    return FocalEstimate(
        focal=float(np.exp(best)),
        prior=FocalPrior(u0, prior_curvature * per_unit),
        evidence=curvature / prior_curvature,
        data_weight=weight,
        log_sigma=float(1.0 / np.sqrt(curvature + prior_curvature)),
    )
