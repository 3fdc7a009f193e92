"""A vectorised z-buffer rasteriser for triangle meshes: perspective-correct depth, NumPy only.

Pixel (row i, column j) is sampled at its centre (j + 0.5, i + 0.5), the convention of landmark
coordinates (normalised x times width) and of the RAD-NeRF ray generator. For a planar triangle
under a pinhole camera 1/Z is an affine function of the image position, so each triangle carries
three affine forms: two barycentric coordinates and 1/Z. All triangles are scan-converted at once
(no per-pixel Python loop): each row of each triangle's bounding box gets its exact span of
covered pixel centres from the barycentric half-planes, the covered pixels are generated with
their 1/Z, and the nearest surface wins by a scatter-maximum of 1/Z into the z-buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK_CANDIDATES = 1 << 20
"""Bounding-box pixels handled in one vectorised step; bounds memory for huge triangles."""
INSIDE_TOLERANCE = 1e-9
"""Barycentric slack so that pixel centres exactly on a shared edge are never dropped."""
MIN_DOUBLE_AREA = 1e-9
"""Triangles with a smaller projected area (square pixels, doubled) cover no pixel centre."""
NEAR_PLANE = 1e-6
"""Triangles with a vertex at or behind this depth are skipped (no clipping is needed for faces)."""


def project(
    points: np.ndarray, focal: float, cx: float, cy: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of camera-space points (x right, y down, z forward) to pixels.

    Returns:
        (uv [..., 2] float64 pixel positions, z [...] float64 depth along the camera axis).
    """
    points = np.asarray(points, dtype=np.float64)
    z = points[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([focal * points[..., 0] / z + cx, focal * points[..., 1] / z + cy], axis=-1)
    return uv, z


@dataclass(frozen=True)
class DepthWindow:
    """Depth over the smallest image window holding every covered pixel (faces fill a fraction
    of the frame, so per-frame work on the window is cheaper than on the whole image)."""

    depth: np.ndarray
    """float32 [h, w] depth in the unit of the vertex depths; 0 where no surface."""
    top: int
    left: int

    def full(self, height: int, width: int) -> np.ndarray:
        """The depth pasted into a zero image of the whole frame."""
        out = np.zeros((height, width), dtype=self.depth.dtype)
        h, w = self.depth.shape
        out[self.top : self.top + h, self.left : self.left + w] = self.depth
        return out


def rasterize_depth(
    uv: np.ndarray,
    z: np.ndarray,
    triangles: np.ndarray,
    height: int,
    width: int,
) -> np.ndarray:
    """Depth image of a triangle mesh: the nearest surface's depth per pixel, 0 where none.

    Args:
        uv: [V, 2] projected vertex positions in pixels (x, y).
        z: [V] vertex depths along the camera axis (> 0 in front of the camera).
        triangles: [T, 3] vertex indices.
        height, width: image size.

    Returns:
        float32 [height, width] depth, in the unit of `z`, interpolated perspective-correctly.
    """
    return rasterize_depth_window(uv, z, triangles, height, width).full(height, width)


def rasterize_depth_window(
    uv: np.ndarray,
    z: np.ndarray,
    triangles: np.ndarray,
    height: int,
    width: int,
) -> DepthWindow:
    """As `rasterize_depth`, but only the window of the image that the mesh covers."""
    uv = np.asarray(uv, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64)
    forms, x0, y0, box_w, box_h = _triangle_setup(uv[triangles], z[triangles], height, width)
    filled = (box_w > 0) & (box_h > 0)
    if not filled.any():
        return DepthWindow(np.zeros((0, 0), dtype=np.float32), 0, 0)
    forms, x0, y0, box_w, box_h = (
        forms[filled],
        x0[filled],
        y0[filled],
        box_w[filled],
        box_h[filled],
    )
    top, left = int(y0.min()), int(x0.min())
    win_h, win_w = int((y0 + box_h).max()) - top, int((x0 + box_w).max()) - left
    inverse = np.zeros(win_h * win_w, dtype=np.float64)
    for chunk in _chunks(box_w * box_h, CHUNK_CANDIDATES):
        _scatter_chunk(
            inverse,
            forms[chunk],
            x0[chunk],
            y0[chunk],
            box_w[chunk],
            box_h[chunk],
            (top, left, win_w),
        )
    depth = np.zeros(win_h * win_w, dtype=np.float32)
    hit = inverse > 0
    depth[hit] = 1.0 / inverse[hit]
    return DepthWindow(depth.reshape(win_h, win_w), top, left)


def _triangle_setup(
    tri_uv: np.ndarray, tri_z: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per usable triangle: its row-span and 1/Z forms [T, 21] and its pixel box.

    Columns 0-8: a, b, c of the three lower bounds of x on a row y, x >= -(b y + c) / a;
    9-17: the same for the upper bounds; 18-20: 1/Z = A x + B y + C.
    """
    p0, p1, p2 = tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]
    with np.errstate(invalid="ignore", over="ignore"):
        e1, e2 = p1 - p0, p2 - p0
        double_area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    usable = (
        np.isfinite(tri_uv).all(axis=(1, 2))
        & np.isfinite(tri_z).all(axis=1)
        & (tri_z > NEAR_PLANE).all(axis=1)
        & (np.abs(double_area) > MIN_DOUBLE_AREA)
    )
    keep = np.nonzero(usable)[0]
    tri_uv, p0, e1, e2, double_area = tri_uv[keep], p0[keep], e1[keep], e2[keep], double_area[keep]
    inv_z = 1.0 / tri_z[keep]
    # first and last pixel centres (j + 0.5) inside the bounding box, clipped to the image
    lo = np.ceil(_min3(tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]) - 0.5)
    hi = np.floor(_max3(tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]) - 0.5)
    # barycentric l1 (weight of p1), l2 (weight of p2), l0 = 1 - l1 - l2 as a x + b y + c
    inv_area = 1.0 / double_area
    a1, b1 = e2[:, 1] * inv_area, -e2[:, 0] * inv_area
    a2, b2 = -e1[:, 1] * inv_area, e1[:, 0] * inv_area
    c1 = -(a1 * p0[:, 0] + b1 * p0[:, 1])
    c2 = -(a2 * p0[:, 0] + b2 * p0[:, 1])
    a = np.stack([a1, a2, -a1 - a2], axis=1)
    b = np.stack([b1, b2, -b1 - b2], axis=1)
    c = np.stack([c1, c2, 1.0 - c1 - c2], axis=1) + INSIDE_TOLERANCE
    # l >= 0 on row y bounds x from below where a > 0 and from above where a < 0, at
    # x = -(b y + c) / a. An edge parallel to the rows (a == 0) acts as a tiny positive a: a bound
    # at -inf when the row is inside it, +inf when outside. Unused slots get a bound at -inf
    # (lower) or +inf (upper) from b = 0, c = 1 and a = +-tiny, so no row ever sees inf - inf.
    tiny = np.finfo(np.float64).tiny
    a = np.where(a == 0, tiny, a)
    lower = a > 0
    d1, d2 = inv_z[:, 1] - inv_z[:, 0], inv_z[:, 2] - inv_z[:, 0]
    forms = np.concatenate(
        [
            np.where(lower, a, tiny),
            np.where(lower, b, 0.0),
            np.where(lower, c, 1.0),
            np.where(lower, -tiny, a),
            np.where(lower, 0.0, b),
            np.where(lower, 1.0, c),
            np.stack([d1 * a1 + d2 * a2, d1 * b1 + d2 * b2, inv_z[:, 0] + d1 * c1 + d2 * c2], 1),
        ],
        axis=1,
    )
    x0 = np.clip(lo[:, 0], 0, width).astype(np.int64)
    y0 = np.clip(lo[:, 1], 0, height).astype(np.int64)
    x1 = np.clip(hi[:, 0], -1, width - 1).astype(np.int64)
    y1 = np.clip(hi[:, 1], -1, height - 1).astype(np.int64)
    box_w = np.maximum(x1 - x0 + 1, 0)
    box_h = np.maximum(y1 - y0 + 1, 0)
    return forms, x0, y0, box_w, box_h


def _chunks(counts: np.ndarray, budget: int) -> list[slice]:
    """Consecutive triangle ranges whose bounding boxes hold about `budget` pixels each."""
    ends = np.cumsum(counts)
    slices, start = [], 0
    while start < len(counts):
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + budget, side="right")), start + 1)
        slices.append(slice(start, stop))
        start = stop
    return slices


def _scatter_chunk(
    inverse: np.ndarray,
    forms: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    box_w: np.ndarray,
    box_h: np.ndarray,
    window: tuple[int, int, int],
) -> None:
    """Scan-convert these triangles row by row and keep the largest 1/Z per pixel.

    Each row of a triangle's box gets its exact span of inside pixel centres from the three
    barycentric half-planes, so only covered pixels are generated.
    """
    rows = int(box_h.sum())
    if rows == 0:
        return
    tri = np.repeat(np.arange(len(box_h)), box_h)
    row_start = np.cumsum(box_h) - box_h
    py = y0[tri] + (np.arange(rows, dtype=np.int64) - row_start[tri])
    y = py + 0.5
    f = forms[tri]
    column = y[:, None]
    with np.errstate(over="ignore", divide="ignore"):
        lower = -(f[:, 3:6] * column + f[:, 6:9]) / f[:, 0:3]
        upper = -(f[:, 12:15] * column + f[:, 15:18]) / f[:, 9:12]
    first_x = np.ceil(_max3(lower[:, 0], lower[:, 1], lower[:, 2]) - 0.5)
    last_x = np.floor(_min3(upper[:, 0], upper[:, 1], upper[:, 2]) - 0.5)
    box_x0 = x0[tri]
    left = np.clip(first_x, box_x0, box_x0 + box_w[tri])
    right = np.minimum(last_x, box_x0 + box_w[tri] - 1)
    count = np.maximum(right - left + 1, 0).astype(np.int64)
    total = int(count.sum())
    if total == 0:
        return
    left = left.astype(np.int64)
    # 1/Z along each row: its value at the first pixel plus a per-pixel step
    step = f[:, 18]
    first = step * (left + 0.5) + f[:, 19] * y + f[:, 20]
    row = np.repeat(np.arange(rows), count)
    k = np.arange(total, dtype=np.int64) - (np.cumsum(count) - count)[row]
    inv_z = first[row] + step[row] * k
    top, win_left, win_w = window
    np.maximum.at(inverse, ((py - top) * win_w + left - win_left)[row] + k, inv_z)


def _min3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Elementwise minimum of three arrays (much faster than a reduce over a length-3 axis)."""
    return np.minimum(np.minimum(a, b), c)


def _max3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(a, b), c)
