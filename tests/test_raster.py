"""The z-buffer rasteriser against analytic depth: a posed plane and a sphere at 512 px."""

from __future__ import annotations

import numpy as np
import pytest

from talkprep.geometry import raster
from talkprep.geometry.raster import project, rasterize_depth, rasterize_depth_window

SIZE = 512
FOCAL = 700.0
CENTRE = SIZE / 2.0
TOLERANCE_M = 0.5e-3
"""The issue's bound: depths within 0.5 mm of the analytic surface."""


def _rays() -> np.ndarray:
    """[H, W, 3] ray directions with unit z through every pixel centre."""
    cols, rows = np.meshgrid(np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5)
    return np.stack([(cols - CENTRE) / FOCAL, (rows - CENTRE) / FOCAL, np.ones_like(cols)], -1)


def _grid_triangles(rows: int, cols: int, wrap: bool = False) -> np.ndarray:
    """Two triangles per cell of a rows x cols vertex grid (columns wrap around when asked)."""
    index = np.arange(rows * cols).reshape(rows, cols)
    right = np.roll(index, -1, axis=1) if wrap else index[:, 1:]
    left = index if wrap else index[:, :-1]
    a, b, c, d = left[:-1], right[:-1], left[1:], right[1:]
    return np.concatenate(
        [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)]
    )


def _plane(half: float = 0.2, cells: int = 10) -> tuple[np.ndarray, np.ndarray, dict]:
    """A square plane patch, tilted about two axes, 0.8 m in front of the camera."""
    normal = np.array([0.25, -0.35, 1.0])
    normal /= np.linalg.norm(normal)
    point = np.array([0.02, -0.03, 0.8])
    u = np.cross(normal, [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    a, b = np.meshgrid(np.linspace(-half, half, cells + 1), np.linspace(-half, half, cells + 1))
    vertices = point + a.reshape(-1, 1) * u + b.reshape(-1, 1) * v
    return vertices, _grid_triangles(cells + 1, cells + 1), {"n": normal, "p": point, "u": u,
                                                             "v": v, "half": half}  # fmt: skip


def test_plane_depth_is_exact() -> None:
    vertices, triangles, plane = _plane()
    uv, z = project(vertices, FOCAL, CENTRE, CENTRE)
    depth = rasterize_depth(uv, z, triangles, SIZE, SIZE)
    rays = _rays()
    analytic = (plane["n"] @ plane["p"]) / (rays @ plane["n"])
    hit_point = rays * analytic[..., None] - plane["p"]
    inside = (np.abs(hit_point @ plane["u"]) < plane["half"]) & (
        np.abs(hit_point @ plane["v"]) < plane["half"]
    )
    covered = depth > 0
    assert covered.sum() > 0.2 * SIZE * SIZE
    assert np.abs(depth[covered] - analytic[covered]).max() < TOLERANCE_M
    # exact to float32 rounding: the plane is represented exactly by its triangles
    assert np.abs(depth[covered] - analytic[covered]).max() < 1e-6
    # coverage is the projected square, up to pixel centres on its very edge
    assert (covered != inside).sum() <= 4


def test_sphere_depth_within_half_a_millimetre() -> None:
    centre, radius = np.array([0.03, -0.02, 0.6]), 0.1
    rings, segments = 97, 192
    theta = np.linspace(0.0, np.pi, rings)
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    vertices = centre + radius * unit
    triangles = _grid_triangles(rings, segments, wrap=True)
    uv, z = project(vertices, FOCAL, CENTRE, CENTRE)
    depth = rasterize_depth(uv, z, triangles, SIZE, SIZE)

    rays = _rays()
    a = (rays * rays).sum(-1)
    b = -2.0 * rays @ centre
    c = centre @ centre - radius**2
    disc = b * b - 4 * a * c
    hit = disc > 0
    near = (-b - np.sqrt(np.where(hit, disc, 0.0))) / (2 * a)  # nearer root: the front surface
    normal = (rays * near[..., None] - centre) / radius
    facing = -(normal * rays).sum(-1) / np.linalg.norm(rays, axis=-1)
    covered = depth > 0
    # the mesh is inscribed in the sphere: it never covers a pixel the sphere does not
    assert not (covered & ~hit).any()
    # ... and misses only a thin ring at the silhouette (about 2 pi r pixels at most)
    silhouette_px = 2 * np.pi * np.sqrt(hit.sum() / np.pi)
    assert (hit & ~covered).sum() < 0.1 * silhouette_px
    # within 80 degrees of head-on (98 % of the disc) the front surface is within 0.5 mm;
    # nearer the silhouette a polygonal sphere departs from the true one along grazing rays
    checked = covered & (facing > np.cos(np.radians(80)))
    assert checked.sum() > 0.95 * hit.sum()
    assert np.abs(depth[checked] - near[checked]).max() < TOLERANCE_M
    # the z-buffer kept the front surface everywhere (the back one is 2-20 cm farther)
    assert np.abs(depth[covered] - near[covered]).max() < 0.01


def test_nearest_surface_wins_in_any_order() -> None:
    square = np.array([[-0.1, -0.1, 0], [0.1, -0.1, 0], [0.1, 0.1, 0], [-0.1, 0.1, 0]])
    near, far = square + [0.0, 0.0, 0.5], square + [0.05, 0.0, 0.7]
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    for order in ((near, far), (far, near)):
        vertices = np.concatenate(order)
        triangles = np.concatenate([faces, faces + 4])
        uv, z = project(vertices, FOCAL, CENTRE, CENTRE)
        depth = rasterize_depth(uv, z, triangles, SIZE, SIZE)
        assert np.isclose(depth[SIZE // 2, SIZE // 2], 0.5, atol=1e-6)
        assert np.isclose(depth.max(), 0.7, atol=1e-6)  # the far square shows where uncovered


def test_chunking_and_window_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    vertices, triangles, _ = _plane(cells=20)
    uv, z = project(vertices, FOCAL, CENTRE, CENTRE)
    whole = rasterize_depth(uv, z, triangles, SIZE, SIZE)
    monkeypatch.setattr(raster, "CHUNK_CANDIDATES", 1000)
    chunked = rasterize_depth_window(uv, z, triangles, SIZE, SIZE)
    assert chunked.depth.shape[0] < SIZE and chunked.depth.shape[1] < SIZE
    np.testing.assert_array_equal(chunked.full(SIZE, SIZE), whole)


def test_off_screen_and_behind_camera_geometry() -> None:
    vertices, triangles, _ = _plane(half=1.5, cells=6)  # much larger than the view
    uv, z = project(vertices, FOCAL, CENTRE, CENTRE)
    depth = rasterize_depth(uv, z, triangles, SIZE, SIZE)
    assert (depth > 0).all()
    behind = vertices * [1.0, 1.0, -1.0]
    uv, z = project(behind, FOCAL, CENTRE, CENTRE)
    assert not rasterize_depth(uv, z, triangles, SIZE, SIZE).any()
    # a vertex without a position (NaN) drops its triangles, not the others
    vertices, triangles, _ = _plane()
    uv, z = project(vertices, FOCAL, CENTRE, CENTRE)
    full = np.count_nonzero(rasterize_depth(uv, z, triangles, SIZE, SIZE))
    uv[60] = np.nan  # an inner vertex: its six triangles disappear
    holed = np.count_nonzero(rasterize_depth(uv, z, triangles, SIZE, SIZE))
    assert 0.9 * full < holed < full
    uv[:] = np.nan
    assert rasterize_depth_window(uv, z, triangles, SIZE, SIZE).depth.size == 0
