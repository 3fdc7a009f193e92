"""68-point landmarks with a jaw that follows the visible face outline, not the anatomical jaw.

iBUG-68's jaw points mark the face's silhouette: on a three-quarter view the far side's points sit
on the outline of the cheek, while MediaPipe's face-oval vertices stay on the anatomical jaw,
which is then hidden behind the cheek. So each jaw point has a contour line: the mesh vertices
of MediaPipe's canonical face at its height, from the face oval inward to ``INNER_FRACTION`` of
the way to the midline. In every frame the point is the vertex of its line that lies outermost in
the image along the line's outward direction, seen in the face's own image axes (x through the
outer eye corners, y across it, so roll and in-plane motion do not matter): the silhouette
where the head turns away, the oval itself where it turns toward the camera or faces it.
"""

from __future__ import annotations

import numpy as np

from talkprep.geometry.face_topology import (
    FACE_OVAL,
    LEFT_EYE_OUTER,
    LMS68,
    NUM_LMS68,
    RIGHT_EYE_OUTER,
)
from talkprep.geometry.tracking.canonical_face import CANONICAL_FACE_CM

JAW_POINTS = 17
"""iBUG-68 points 0-16 are the jaw."""
CHUNK_FRAMES = 1024
"""Frames whose candidate scores are held at once."""
LINE_HALF_WIDTH_CM = 0.8
"""A contour line holds the canonical vertices within this distance of its oval vertex's inward
normal..."""
LINE_REACH_CM = 2.5
"""...up to this far inside the oval (the silhouette of a cheek turned 40 degrees away)."""


def _contour_lines() -> tuple[np.ndarray, np.ndarray]:
    """Candidate vertices [17, M] (padded with the oval vertex) and outward directions [17, 2].

    Directions are in the canonical face's x (subject's left), y (up) axes: the outward normal of
    the face oval at each jaw vertex. A line holds the vertices of the canonical face within
    ``LINE_HALF_WIDTH_CM`` of the inward normal, up to ``LINE_REACH_CM`` inside the oval.
    """
    face = CANONICAL_FACE_CM[:, :2]
    lines: list[list[int]] = []
    normals = np.zeros((JAW_POINTS, 2))
    centre = face[FACE_OVAL].mean(0)
    for j in range(JAW_POINTS):
        vertex = int(LMS68[j])
        k = int(np.flatnonzero(np.equal(FACE_OVAL, vertex))[0])
        tangent = face[FACE_OVAL[(k + 1) % len(FACE_OVAL)]] - face[FACE_OVAL[k - 1]]
        tangent /= np.linalg.norm(tangent)
        normal = np.array([tangent[1], -tangent[0]])
        if normal @ (face[vertex] - centre) < 0:
            normal = -normal
        normals[j] = normal
        offset = face - face[vertex]
        depth, side = offset @ normal, offset @ tangent
        inside = (depth <= 0) & (depth >= -LINE_REACH_CM) & (np.abs(side) <= LINE_HALF_WIDTH_CM)
        lines.append([vertex, *[int(v) for v in np.flatnonzero(inside) if v != vertex]])
    width = max(len(line) for line in lines)
    table = np.array([line + [line[0]] * (width - len(line)) for line in lines])
    return table, normals


JAW_LINES, JAW_OUTWARD = _contour_lines()
"""int [17, M] each jaw point's contour-line vertices (the oval vertex first); float [17, 2]
their outward directions in the canonical face's x, y axes."""


def jaw_vertices(points: np.ndarray) -> np.ndarray:
    """Mesh index [N, 17] of the outermost vertex of each jaw point's contour line per frame.

    Args:
        points: float [N, 478, >=2] landmarks in pixels (image x right, y down); NaN rows where
            no face (they get the oval vertices).
    """
    uv = np.asarray(points)[..., :2]
    axis_x = (uv[:, LEFT_EYE_OUTER] - uv[:, RIGHT_EYE_OUTER]).astype(np.float64)
    axis_x /= np.maximum(np.linalg.norm(axis_x, axis=1, keepdims=True), 1e-9)
    axis_down = np.stack([-axis_x[:, 1], axis_x[:, 0]], axis=1)  # image y grows downward
    # the outward direction of each line in the image: canonical x along axis_x, y up
    outward = (
        JAW_OUTWARD[None, :, 0, None] * axis_x[:, None, :]
        - JAW_OUTWARD[None, :, 1, None] * axis_down[:, None, :]
    )  # [N, 17, 2]
    score = np.einsum("njmc,njc->njm", uv[:, JAW_LINES], outward)
    best = np.argmax(np.nan_to_num(score, nan=-np.inf), axis=2)
    return np.take_along_axis(np.broadcast_to(JAW_LINES, best.shape + JAW_LINES.shape[1:]),
                              best[..., None], axis=2)[..., 0]  # fmt: skip


def landmarks68(points: np.ndarray) -> np.ndarray:
    """iBUG-68 points [N, 68, 2] (pixels) of face-mesh landmarks [N, 478, >=2].

    The jaw follows the visible outline (`jaw_vertices`); the other 51 points are fixed mesh
    vertices (``LMS68``). NaN rows stay NaN.
    """
    uv = np.asarray(points)[..., :2]
    out = np.empty((len(uv), NUM_LMS68, 2), dtype=uv.dtype)
    out[:, JAW_POINTS:] = uv[:, LMS68[JAW_POINTS:]]
    for start in range(0, len(uv), CHUNK_FRAMES):  # memory flat in video length
        part = uv[start : start + CHUNK_FRAMES]
        jaw = jaw_vertices(part)
        out[start : start + len(part), :JAW_POINTS] = np.take_along_axis(
            part, jaw[..., None], axis=1
        )
    return out
