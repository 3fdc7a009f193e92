"""Task 8 (mesh depth): the triangle table, the mesh placement, and depth maps of real clips."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from talkprep.config import build_config
from talkprep.console import Console
from talkprep.geometry.camera import CV_TO_GL, DECIMETRES_PER_METRE, euler_to_rotation
from talkprep.geometry.face_topology import FACE_OVAL, LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_OUTER
from talkprep.geometry.mesh_triangles import (
    FACE_TRIANGLES,
    HOLE_TRIANGLES,
    SURFACE_TRIANGLES,
    derive_face_triangles,
)
from talkprep.manifest import manifest_path
from talkprep.tasks.base import FolderFacts, TaskContext
from talkprep.tasks.depth import (
    MESH_METRES_PER_COUNT,
    DepthTask,
    encode_depth,
    place_face_meshes,
)

MESH_POINTS = 468
"""Points of the tessellation (the 10 iris points of the 478 are not in it)."""
FRONTAL_DEG = 15.0
"""Frames whose eye-and-mouth plane faces the camera within this angle count as frontal."""
MOUTH_CORNERS = (61, 291)
NOSE_RADIUS = 0.15
"""The nearest face pixel must lie this close to the nose tip, in outer-eye-corner distances."""


def _edges(triangles: np.ndarray) -> Counter:
    return Counter(
        tuple(sorted(e))
        for t in triangles.tolist()
        for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2]))
    )


def test_triangle_table_is_derived_from_mediapipe_edges() -> None:
    connections = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")
    edges = connections.FACEMESH_TESSELATION
    assert len(edges) == 2556 and len({tuple(sorted(e)) for e in edges}) == 1322
    surface, holes, loops = derive_face_triangles(edges)
    assert {tuple(sorted(t)) for t in surface.tolist()} == {
        tuple(sorted(t)) for t in SURFACE_TRIANGLES.tolist()
    }
    assert holes.tolist() == HOLE_TRIANGLES.tolist()
    # every edge of the wheel's tessellation borders a triangle of the table
    assert set(_edges(SURFACE_TRIANGLES)) == {tuple(sorted(e)) for e in edges}
    assert sorted(len(loop) for loop in loops) == [16, 16, 20, 36]


def test_triangle_table_is_a_disk_bounded_by_the_face_oval() -> None:
    assert len(SURFACE_TRIANGLES) == 852 and len(FACE_TRIANGLES) == 898
    assert set(np.unique(FACE_TRIANGLES)) == set(range(MESH_POINTS))
    use = _edges(FACE_TRIANGLES)
    assert max(use.values()) == 2
    boundary = {e for e, n in use.items() if n == 1}
    oval = {tuple(sorted((a, b))) for a, b in zip(FACE_OVAL, np.roll(FACE_OVAL, -1), strict=True)}
    assert boundary == oval
    # Euler characteristic of a disk: V - E + F = 1
    assert MESH_POINTS - len(use) + len(FACE_TRIANGLES) == 1


def test_encode_depth_units() -> None:
    depth = np.array([0.0, 0.61234, 6.5535, 7.0, np.nan], dtype=np.float32)
    counts = encode_depth(depth, MESH_METRES_PER_COUNT)
    assert counts.dtype == np.uint16
    assert counts.tolist() == [0, 6123, 65535, 0, 0]


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    a, b = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return ry @ rx


@pytest.mark.parametrize(("yaw", "pitch", "distance"), [(0, 0, 0.7), (20, -8, 0.5), (-10, 5, 1.2)])
def test_placement_recovers_a_known_face(yaw: float, pitch: float, distance: float) -> None:
    """A synthetic face seen by a known camera, observed as MediaPipe would report it."""
    rng = np.random.default_rng(0)
    # a face-like surface: an ellipsoid cap 15 x 20 cm, 6 cm deep, plus bumps
    angles = rng.uniform(0, 2 * np.pi, MESH_POINTS + 10)
    radii = np.sqrt(rng.uniform(0, 1, MESH_POINTS + 10))
    x, y = 0.075 * radii * np.cos(angles), 0.1 * radii * np.sin(angles)
    z = -0.06 * (1 - radii**2) - 0.005 * np.sin(40 * x) * np.cos(30 * y)
    head = np.stack([x, y, z], axis=-1)  # camera-like axes, z toward the camera is negative
    rotation = _rotation(yaw, pitch)
    translation = np.array([0.03, -0.02, distance])
    camera = head @ rotation.T + translation
    focal, cx, cy = 900.0, 256.0, 256.0
    u = focal * camera[:, 0] / camera[:, 2] + cx
    v = focal * camera[:, 1] / camera[:, 2] + cy
    mean_z = camera[:, 2].mean()
    mediapipe_z = focal * (camera[:, 2] - mean_z) / mean_z  # relative, in pixels at the face
    observed = np.stack([u, v, mediapipe_z], axis=-1)[None]
    rigid = np.arange(0, MESH_POINTS, 3)
    placed = place_face_meshes(
        observed, rotation[None], translation[None], head[rigid], rigid, focal, cx, cy
    )[0]
    # projection is the landmarks exactly; depth within a millimetre of the truth
    np.testing.assert_allclose(focal * placed[:, 0] / placed[:, 2] + cx, u, atol=1e-6)
    np.testing.assert_allclose(focal * placed[:, 1] / placed[:, 2] + cy, v, atol=1e-6)
    error = np.abs(placed[:, 2] - camera[:, 2])
    assert error.max() < 1e-3 and np.median(error) < 2e-4


def _tracked_camera(folder: Path) -> dict[str, np.ndarray]:
    """CV-camera poses (metres) from track_params.pt, converted here from AD-NeRF's convention."""
    import torch

    params = torch.load(folder / "track_params.pt", weights_only=True)
    euler = params["euler"].double().numpy()
    trans = params["trans"].double().numpy()
    return {
        "rotation": CV_TO_GL @ euler_to_rotation(euler),
        "translation": (trans / DECIMETRES_PER_METRE) @ CV_TO_GL,
        "shape": params["shape"].double().numpy(),
        "rigid_index": params["rigid_index"].numpy(),
        "focal": float(params["focal"][0]),
    }


def _oval_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    polygon = np.round((points[FACE_OVAL, :2] - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(mask, [polygon], 1, shift=4)
    return mask.astype(bool)


@pytest.mark.parametrize("clip", ["hdtf", "anchor"])
def test_real_clip_mesh_depth(processed, clip: str) -> None:
    folder = processed(clip, tasks="3,4,8")
    manifest = json.loads(manifest_path(folder).read_text())
    record = manifest["tasks"]["depth"]
    frames = manifest["tasks"]["frames"]["info"]
    n, size = frames["n_frames"], (frames["height"], frames["width"])
    assert record["info"]["backend"] == "mesh"
    assert record["info"]["metres_per_count"] == MESH_METRES_PER_COUNT
    assert "0.1 mm" in record["info"]["unit"]
    assert record["figures"]["face_coverage_min"] > 0.98
    landmarks = np.load(folder / "landmarks.npy").astype(np.float64)
    track = _tracked_camera(folder)
    camera_distance = np.linalg.norm(track["translation"], axis=1)

    frontal = 0
    for i in range(n):
        depth_png = cv2.imread(str(folder / "depth" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        assert depth_png.dtype == np.uint16 and depth_png.shape == size
        depth = depth_png * MESH_METRES_PER_COUNT
        points = landmarks[i]
        face = depth > 0
        oval = _oval_mask(points, size)
        assert (face & oval).sum() > 0.98 * oval.sum(), f"frame {i}: face polygon not covered"
        # the depth of the face agrees with the tracked face (rigid shape placed by the pose)
        tracked = np.median(track["shape"] @ track["rotation"][i, 2] + track["translation"][i, 2])
        assert abs(np.median(depth[face]) / tracked - 1) < 0.05, f"frame {i}"
        # the nose tip lies in front of the head centre, by less than a head's depth
        nose = depth[int(points[NOSE_TIP, 1]), int(points[NOSE_TIP, 0])]
        assert camera_distance[i] - 0.2 < nose < camera_distance[i]
        # frontal frames: the nearest face point is the nose tip
        eye = np.linalg.norm(points[LEFT_EYE_OUTER, :2] - points[RIGHT_EYE_OUTER, :2])
        if _facing_angle(points, track["focal"], size) < FRONTAL_DEG:
            frontal += 1
            row, col = np.unravel_index(np.argmin(np.where(face, depth, np.inf)), size)
            offset = np.hypot(col + 0.5 - points[NOSE_TIP, 0], row + 0.5 - points[NOSE_TIP, 1])
            assert offset < NOSE_RADIUS * eye, f"frame {i}: nearest point {offset:.1f} px off"
    assert frontal > 0.2 * n
    facts = FolderFacts(folder, n, size, float(frames["fps"]))
    assert all(r.ok for r in DepthTask().check(facts))


def _facing_angle(points: np.ndarray, focal: float, size: tuple[int, int]) -> float:
    """Angle (degrees) between the view ray and the normal of the eye-corner and mouth-corner
    plane of MediaPipe's own 3D points (independent of task 8)."""
    right, left = points[RIGHT_EYE_OUTER], points[LEFT_EYE_OUTER]
    mouth = 0.5 * (points[MOUTH_CORNERS[0]] + points[MOUTH_CORNERS[1]])
    normal = np.cross(left - right, mouth - 0.5 * (left + right))
    centre = 0.25 * (left + right) + 0.5 * mouth
    ray = np.array([(centre[0] - size[1] / 2) / focal, (centre[1] - size[0] / 2) / focal, 1.0])
    cosine = abs(normal @ ray) / (np.linalg.norm(normal) * np.linalg.norm(ray))
    return float(np.degrees(np.arccos(min(cosine, 1.0))))


def test_frames_without_a_face_get_empty_maps(processed, tmp_path: Path) -> None:
    folder = tmp_path / "hdtf"
    shutil.copytree(processed("hdtf", tasks="3,4"), folder)
    landmarks = np.load(folder / "landmarks.npy")
    landmarks[5:8] = np.nan
    np.save(folder / "landmarks.npy", landmarks)
    # the pipeline would rebuild task 4 over the edited landmarks.npy: run task 8 on it directly
    manifest = json.loads(manifest_path(folder).read_text())
    config = build_config({"video": manifest["config"]["video"], "out": folder, "tasks": "8"})
    ctx = TaskContext(
        out=folder,
        config=config,
        input=manifest["input"],
        records=manifest["tasks"],
        progress=Console(quiet=True).progress,
    )
    figures = DepthTask().run(ctx).figures
    for i in (4, 5, 7, 8):
        depth = cv2.imread(str(folder / "depth" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        assert depth.any() == (i not in (5, 6, 7))
    assert figures["frames_with_depth"] == len(landmarks) - 3
