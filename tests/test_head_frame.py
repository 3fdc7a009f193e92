"""One head frame: axes from MediaPipe's canonical face, origin at the face surface's centroid."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from conftest import MODELS
from synth_face import synthetic_sequence
from test_camera import nerf_matrix_to_ngp

from talkprep.geometry.camera import radnerf_pose, transform_matrices
from talkprep.geometry.face_topology import LEFT_EYE_OUTER, NUM_MESH_POINTS, RIGHT_EYE_OUTER
from talkprep.geometry.tracking import HeadTrack, track_head
from talkprep.geometry.tracking.canonical_face import CANONICAL_FACE_CM
from talkprep.geometry.tracking.head_frame import CANONICAL_FACE_M, CANONICAL_ORIGIN_M

# RAD-NeRF / ER-NeRF defaults (main.py: --bound 1, --scale 4, --offset 0 0 0; nerf/renderer.py:
# aabb_train = [-bound, -bound/2, -bound, bound, bound/2, bound]; nerf/provider.py:
# nerf_matrix_to_ngp cycles the world axes to (y, z, x) and scales them)
BOUND, SCALE, OFFSET = 1.0, 4.0, np.zeros(3)
AABB_TRAIN = np.array([-BOUND, -BOUND / 2, -BOUND, BOUND, BOUND / 2, BOUND])
MARGIN_M = 0.01


def canonical_sequence(
    n: int, yaw_deg: float, pitch_deg: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks [n, 478, 3] of the canonical face (9 cm eye corners) turning in front of a camera,
    and the true head -> CV camera rotations [n, 3, 3].

    Frame 0 faces the camera squarely; the irises (468-477) sit at the eye corners' midpoints.
    """
    rng = np.random.default_rng(seed)
    face = (
        CANONICAL_FACE_M
        * 0.09
        / np.linalg.norm(CANONICAL_FACE_M[LEFT_EYE_OUTER] - CANONICAL_FACE_M[RIGHT_EYE_OUTER])
    )
    face = np.concatenate([face, np.repeat(face[[33, 263]].mean(0, keepdims=True), 10, 0)])
    t = np.arange(n) / 25.0
    yaw = np.radians(yaw_deg) * np.sin(2 * np.pi * t / 4.0)
    pitch = np.radians(pitch_deg) * np.sin(2 * np.pi * t / 3.0)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    ry = np.zeros((n, 3, 3))
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = cy, sy, 1, -sy, cy
    rx = np.zeros((n, 3, 3))
    rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = 1, cp, -sp, sp, cp
    rot = np.diag([1.0, -1.0, -1.0]) @ ry @ rx  # head -> CV camera, frontal at 0
    cam = np.einsum("nij,kj->nki", rot, face) + np.array([0.0, 0.0, 0.7])
    uv = 1100.0 * cam[..., :2] / cam[..., 2:] + 256.0
    uv += rng.normal(0, 0.3, uv.shape)
    z = (cam[..., 2:] - cam[..., 2:].mean(1, keepdims=True)) * 1100.0 / 0.7
    return np.concatenate([uv, z], -1).astype(np.float32), rot


def test_canonical_table_is_mediapipes() -> None:
    """The literal table equals the canonical mesh in MediaPipe's Face Landmarker bundle."""
    bundle = MODELS / "face_landmarker.task"
    if not bundle.is_file():
        pytest.skip(f"{bundle} is not available")
    from mediapipe.tasks.cc.vision.face_geometry.proto import geometry_pipeline_metadata_pb2

    meta = geometry_pipeline_metadata_pb2.GeometryPipelineMetadata()
    with zipfile.ZipFile(bundle) as archive:
        meta.ParseFromString(archive.read("geometry_pipeline_metadata_landmarks.binarypb"))
    vertices = np.array(meta.canonical_mesh.vertex_buffer).reshape(-1, 5)[:, :3]
    np.testing.assert_allclose(CANONICAL_FACE_CM, vertices, atol=6e-5)


def test_canonical_axes_and_origin() -> None:
    face = CANONICAL_FACE_M
    assert face[LEFT_EYE_OUTER, 0] > 0 > face[RIGHT_EYE_OUTER, 0]  # x: the subject's left
    assert face[10, 1] > face[4, 1] > face[152, 1]  # y up: forehead, nose tip, chin
    assert face[4, 2] > face[LEFT_EYE_OUTER, 2]  # z out of the face
    assert abs(CANONICAL_ORIGIN_M[0]) < 1e-6  # on the symmetry plane
    assert 0.025 < face[4, 2] - CANONICAL_ORIGIN_M[2] < 0.05  # 2.5-5 cm behind the nose tip


def test_frontal_face_reads_zero_angles() -> None:
    marks, _ = canonical_sequence(100, yaw_deg=15.0, pitch_deg=8.0)
    track = track_head(marks, 512, 512)
    euler, _ = radnerf_pose(track.rotation[:1], track.translation[:1])
    assert np.abs(np.degrees(euler[0])).max() < 1.0, np.degrees(euler[0])


def test_pitch_and_yaw_follow_the_truth_axis_by_axis() -> None:
    """Per-axis agreement with the true angles: correlation and gain (the issue's r and gain)."""
    marks, truth = canonical_sequence(150, yaw_deg=20.0, pitch_deg=10.0, seed=3)
    track = track_head(marks, 512, 512)
    est = np.degrees(radnerf_pose(track.rotation, track.translation)[0])
    true = np.degrees(radnerf_pose(truth, np.zeros((len(truth), 3)))[0])
    for axis in (0, 1):  # pitch, yaw
        r = np.corrcoef(est[:, axis], true[:, axis])[0, 1]
        gain = np.polyfit(true[:, axis], est[:, axis], 1)[0]
        assert r > 0.99 and 0.95 < gain < 1.05, (axis, r, gain)


def _offset_deg(a: HeadTrack, b: HeadTrack) -> float:
    """Rotation between two tracks' head frames (rigid alignment of their shapes)."""
    sa, sb = a.shape - a.shape.mean(0), b.shape - b.shape.mean(0)
    u, _, vt = np.linalg.svd(sb.T @ sa)
    rot = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    return float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1))))


def test_two_clips_of_one_face_share_the_frame() -> None:
    """Different motion, noise and camera: the same face gets the same head frame."""
    first = synthetic_sequence(n=120, yaw_deg=20.0, seed=1)
    second = synthetic_sequence(n=120, yaw_deg=10.0, pitch_deg=-6.0, focal=700.0, seed=2)
    a = track_head(first.landmarks, first.width, first.height)
    b = track_head(second.landmarks, second.width, second.height)
    assert _offset_deg(a, b) < 1.0


def test_whole_face_inside_the_trainers_box() -> None:
    """Every face-mesh point, the nose tip included, lies 1 cm inside the default aabb_train."""
    seq = synthetic_sequence(n=120, yaw_deg=25.0)
    track = track_head(seq.landmarks, seq.width, seq.height)
    # the whole true face in the track's head frame (similarity over the rigid points)
    src, dst = seq.face[track.rigid_index], track.shape
    mu_s, mu_d = src.mean(0), dst.mean(0)
    u, sig, vt = np.linalg.svd((dst - mu_d).T @ (src - mu_s))
    rot = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    scale = sig.sum() / ((src - mu_s) ** 2).sum()
    face = scale * (seq.face - mu_s) @ rot.T + mu_d
    # the loader's world: nerf_matrix_to_ngp's axis cycle and scale, applied to a world point
    pose = transform_matrices(*radnerf_pose(track.rotation[:1], track.translation[:1]))[0]
    ngp = nerf_matrix_to_ngp(pose, SCALE, OFFSET)
    np.testing.assert_allclose(ngp[:3, 3], pose[[1, 2, 0], 3] * SCALE + OFFSET)
    points = face[:, [1, 2, 0]] * SCALE + OFFSET
    low, high = AABB_TRAIN[:3] + MARGIN_M * SCALE, AABB_TRAIN[3:] - MARGIN_M * SCALE
    assert (points >= low).all() and (points <= high).all()
    nose_depth = face[4, 2]
    assert nose_depth + MARGIN_M < BOUND / 2 / SCALE
    assert len(face) == NUM_MESH_POINTS


@pytest.mark.slow
def test_segments_and_crop_of_a_clip_share_the_frame(processed, tmp_path) -> None:
    """Two halves of the anchor clip, and a crop seen by MediaPipe afresh: within 2 degrees."""
    import cv2

    from talkprep.tasks.landmarks import detect_landmarks, fill_short_gaps

    folder = processed("anchor", tasks="3,4")
    marks = np.load(folder / "landmarks.npy")
    h, w = cv2.imread(str(folder / "ori_imgs" / "0.jpg")).shape[:2]
    half = len(marks) // 2
    first, second = track_head(marks[:half], w, h), track_head(marks[half:], w, h)
    crop_dir = tmp_path / "crop"
    crop_dir.mkdir()
    n_crop = 150
    for i in range(n_crop):
        image = cv2.imread(str(folder / "ori_imgs" / f"{i}.jpg"))
        cv2.imwrite(str(crop_dir / f"{i}.jpg"), image[: int(0.8 * h), int(0.2 * w) :])
    crop_marks, _ = detect_landmarks(crop_dir, n_crop)
    crop_marks, _ = fill_short_gaps(crop_marks)
    crop = track_head(crop_marks, int(0.8 * w), int(0.8 * h))
    assert _offset_deg(first, second) < 2.0
    assert _offset_deg(first, crop) < 2.0
    for track in (first, second, crop):
        euler, _ = radnerf_pose(track.rotation, track.translation)
        assert np.abs(np.degrees(np.nanmedian(euler, axis=0))).max() < 5.0
