"""68-point jaw on the visible face outline: synthetic renders at known yaw, and a real clip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from synth_face import FACE_MM, rotations

from talkprep.geometry.face_topology import LMS68, NUM_LMS68
from talkprep.geometry.jaw_contour import JAW_LINES, JAW_POINTS, jaw_vertices, landmarks68
from talkprep.geometry.mesh_triangles import SURFACE_TRIANGLES

FOCAL, SIZE, DISTANCE = 1000.0, 512, 0.6
SIDE_POINTS = np.r_[0:6, 11:17]
"""Jaw points on the cheeks (the chin, 6-10, has no silhouette to slide to)."""


def render(yaw_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Landmarks [1, 478, 3] (pixels) of the synthetic face turned by ``yaw_deg``."""
    rot = rotations(np.zeros(1), np.radians([yaw_deg]), np.radians([roll_deg]))
    cam = FACE_MM / 1000.0 @ rot[0].T + np.array([0.0, 0.0, DISTANCE])
    uv = FOCAL * cam[:, :2] / cam[:, 2:] + SIZE / 2
    return np.concatenate([uv, cam[:, 2:] * FOCAL / DISTANCE], axis=1)[None].astype(np.float32)


def outline_distance(points: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Distance (px) of ``points`` [P, 2] to the outline of the rendered face (all triangles)."""
    scale = 4  # render at 4x for sub-pixel outlines
    mask = np.zeros((SIZE * scale, SIZE * scale), np.uint8)
    tris = np.round(landmarks[0, SURFACE_TRIANGLES, :2] * scale).astype(np.int32)
    cv2.fillPoly(mask, list(tris), 255)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = np.concatenate([c[:, 0] for c in contours]).astype(np.float64) / scale
    return np.min(np.linalg.norm(points[:, None] - outline[None], axis=-1), axis=1)


def test_every_line_starts_at_its_oval_vertex() -> None:
    assert JAW_LINES.shape[0] == JAW_POINTS
    np.testing.assert_array_equal(JAW_LINES[:, 0], LMS68[:JAW_POINTS])
    assert (JAW_LINES < 468).all()


def test_frontal_face_jaw_stays_near_the_anatomical_jaw() -> None:
    marks = render(0.0)
    new = landmarks68(marks)[0]
    np.testing.assert_array_equal(new[JAW_POINTS:], marks[0, LMS68[JAW_POINTS:], :2])
    assert outline_distance(new[:JAW_POINTS], marks).max() < 0.5
    # the face is about 170 px wide: a frontal jaw moves by a few pixels at most
    assert np.linalg.norm(new[:JAW_POINTS] - marks[0, LMS68[:JAW_POINTS], :2], axis=1).max() < 8
    assert (jaw_vertices(marks)[0, 6:11] == LMS68[6:11]).all()  # the chin keeps its vertices


@pytest.mark.parametrize("yaw", [-30.0, -20.0, 20.0, 30.0])
def test_turned_face_jaw_sits_on_the_rendered_outline(yaw: float) -> None:
    marks = render(yaw, roll_deg=8.0)
    new = landmarks68(marks)[0, SIDE_POINTS]
    fixed = marks[0, LMS68[SIDE_POINTS], :2]
    d_new, d_fixed = outline_distance(new, marks), outline_distance(fixed, marks)
    # the fixed vertices of the side turned away lie inside the outline, the chosen ones on it
    assert d_fixed.max() > 3.0, d_fixed
    assert d_new.max() < 1.0, d_new


def test_nan_rows_stay_nan_and_shape_is_68() -> None:
    marks = np.concatenate([render(10.0), np.full((1, 478, 3), np.nan, np.float32)])
    out = landmarks68(marks)
    assert out.shape == (2, NUM_LMS68, 2)
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()


@pytest.mark.slow
def test_real_turns_jaw_on_the_mesh_outline(processed) -> None:
    """Obama turns about +-18 degrees: the far side's jaw points sit on the mesh's outline."""
    import torch

    folder = processed("obama", tasks="3,4")
    marks = np.load(folder / "landmarks.npy")
    euler = torch.load(folder / "track_params.pt", weights_only=True)["euler"].double().numpy()
    yaw = np.degrees(euler[:, 1])
    assert np.isfinite(euler).all() and yaw.min() < -12 and yaw.max() > 12
    turned = np.nonzero(np.abs(yaw) > 12)[0][::10]
    d_new, d_fixed = [], []
    for i in turned:
        lms = np.loadtxt(folder / "ori_imgs" / f"{i}.lms")
        d_new.append(outline_distance(lms[SIDE_POINTS], marks[i : i + 1]))
        d_fixed.append(outline_distance(marks[i, LMS68[SIDE_POINTS], :2], marks[i : i + 1]))
    d_new, d_fixed = np.concatenate(d_new), np.concatenate(d_fixed)
    assert np.percentile(d_new, 95) < 1.0, np.percentile(d_new, 95)
    assert np.percentile(d_fixed, 95) > 2.0 * np.percentile(d_new, 95) + 0.5
