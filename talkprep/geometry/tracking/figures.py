"""Quality figures of a track, JSON-ready for the manifest (pixel errors also at 512 px)."""

from __future__ import annotations

from typing import Any

import numpy as np

from talkprep.geometry.tracking.common import (
    POSE_CHUNK,
    REFERENCE_SIZE_PX,
    exp_so3,
    log_so3_angle,
)
from talkprep.geometry.tracking.focal import FocalEstimate
from talkprep.geometry.tracking.poses import smooth_triples

FLAG_ERROR_PX = 3.0
"""A frame whose median rigid-point error exceeds this (at REFERENCE_SIZE_PX) is flagged..."""
FLAG_ERROR_FACTOR = 4.0
"""...as is one whose error exceeds this many times the video's median."""
HISTOGRAM_MAX_PX, HISTOGRAM_BINS = 20.0, 20000
"""Point errors are summarised by a histogram (0.001 px bins at 512 px), memory flat."""


def jitter(rot: np.ndarray, trans: np.ndarray, frames: np.ndarray) -> tuple[float, float]:
    """Median deviation of each pose from the midpoint of its two neighbours (degrees, mm).

    Smooth motion (constant velocity) gives zero; noise from frame to frame does not.
    """
    all_centres = smooth_triples(frames)
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
        angle = log_so3_angle(rel)
        axis_v = np.stack(
            [rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]],
            axis=1,
        )
        norm = np.linalg.norm(axis_v, axis=1, keepdims=True)
        unit = np.where(norm > 1e-12, axis_v / np.maximum(norm, 1e-12), 0.0)
        mid = prev @ exp_so3(unit * (angle[:, None] / 2))
        rot_dev[sl] = np.degrees(log_so3_angle(np.transpose(mid, (0, 2, 1)) @ cur))
        mid_t = 0.5 * (trans[centres - 1] + trans[centres + 1])
        trans_dev[sl] = np.linalg.norm(trans[centres] - mid_t, axis=1)
    return float(np.median(rot_dev)), float(np.median(trans_dev) * 1000.0)


def histogram_quantiles(
    counts: np.ndarray, edges: np.ndarray, qs: tuple[float, float]
) -> tuple[float, float]:
    """Quantiles from a histogram (the last count: values beyond the last edge, taken as it)."""
    cum = np.cumsum(counts)
    out = []
    for q in qs:
        i = int(np.searchsorted(cum, q * cum[-1]))
        out.append(float(edges[min(i + 1, len(edges) - 1)]))
    return out[0], out[1]


def track_figures(
    focal: float,
    size: int,
    err: np.ndarray,
    point_quantiles: tuple[float, float],
    rot: np.ndarray,
    trans: np.ndarray,
    frames: np.ndarray,
    n_total: int,
    focal_estimate: FocalEstimate,
) -> dict[str, Any]:
    """JSON-ready quality figures of a track (pixel errors also scaled to a 512 px frame).

    ``reproj_median_px`` / ``reproj_p95_px`` are over every rigid point of every tracked frame;
    ``high_error_frames`` counts frames whose median error exceeds ``FLAG_ERROR_PX`` (at 512 px)
    or ``FLAG_ERROR_FACTOR`` times the video's median: a wrong face, a bad mesh, a fast blur.
    ``focal_evidence`` is the data's curvature of the focal posterior over the prior's,
    ``focal_data_weight`` the weight of the data term (0: the focal is exactly the prior),
    ``focal_source`` says which decided (`FocalEstimate.source`), ``focal_log_sigma`` is the
    posterior spread of log focal.
    """
    to_ref = REFERENCE_SIZE_PX / size
    median, p95 = point_quantiles
    jit_rot, jit_trans = jitter(rot, trans, frames)
    limit = max(FLAG_ERROR_PX / to_ref, FLAG_ERROR_FACTOR * float(np.median(err)))
    return {
        "focal": round(focal, 2),
        "focal_source": focal_estimate.source,
        "focal_evidence": round(focal_estimate.evidence, 4),
        "focal_data_weight": round(focal_estimate.data_weight, 4),
        "focal_log_sigma": round(focal_estimate.log_sigma, 4),
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
