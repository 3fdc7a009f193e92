"""Camera conventions: AD-NeRF's euler angles and projection, RAD-NeRF's transform_matrix."""

from __future__ import annotations

import numpy as np
import pytest
from synth_face import synthetic_sequence

from talkprep.geometry.camera import (
    euler_to_rotation,
    project_cv,
    radnerf_pose,
    rotation_to_euler,
    transform_matrices,
)
from talkprep.geometry.tracking import RIGID_INDEX, track_head


def adnerf_euler2rot(euler: np.ndarray) -> np.ndarray:
    """AD-NeRF's euler2rot restated: each factor is assembled from three column vectors
    (torch.cat(..., 2) of [B,3,1] blocks), x and y from the standard entries, z from
    (cos, -sin, 0), (sin, cos, 0), (0, 0, 1)."""
    out = []
    for theta, phi, psi in euler:
        c, s = np.cos, np.sin
        rot_x = np.stack([[1, 0, 0], [0, c(theta), s(theta)], [0, -s(theta), c(theta)]], axis=1)
        rot_y = np.stack([[c(phi), 0, -s(phi)], [0, 1, 0], [s(phi), 0, c(phi)]], axis=1)
        rot_z = np.stack([[c(psi), -s(psi), 0], [s(psi), c(psi), 0], [0, 0, 1]], axis=1)
        out.append(rot_x @ rot_y @ rot_z)
    return np.array(out)


def adnerf_project(points_dm: np.ndarray, euler, trans_dm, focal, cx, cy) -> np.ndarray:
    """AD-NeRF's forward_transform: rot_trans_pts, proj_pts (u = -f X/Z + cx, v = f Y/Z + cy)."""
    cam = np.einsum("nij,kj->nki", adnerf_euler2rot(euler), points_dm) + trans_dm[:, None, :]
    return np.stack(
        [-focal * cam[..., 0] / cam[..., 2] + cx, focal * cam[..., 1] / cam[..., 2] + cy], -1
    )


def nerf_matrix_to_ngp(pose: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    """RAD-NeRF's loader conversion restated: camera y, z columns flipped, world axes cycled."""
    new = np.eye(4)
    for row, src in enumerate((1, 2, 0)):
        new[row, :3] = pose[src, :3] * np.array([1.0, -1.0, -1.0])
        new[row, 3] = pose[src, 3] * scale + offset[row]
    return new


def random_euler(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform([-0.6, -1.2, -0.6], [0.6, 1.2, 0.6], (n, 3))


def test_euler_to_rotation_is_adnerf_euler2rot() -> None:
    euler = random_euler(50)
    np.testing.assert_allclose(euler_to_rotation(euler), adnerf_euler2rot(euler), atol=1e-12)


def test_third_angle_has_the_opposite_sign_of_a_standard_z_rotation() -> None:
    rot = euler_to_rotation(np.array([[0.0, 0.0, 0.3]]))[0]
    assert rot[1, 0] == pytest.approx(-np.sin(0.3))  # standard Rz(0.3) has +sin here


def test_rotation_euler_round_trip() -> None:
    euler = random_euler(200, seed=1)
    np.testing.assert_allclose(rotation_to_euler(euler_to_rotation(euler)), euler, atol=1e-10)
    rot = euler_to_rotation(euler)
    np.testing.assert_allclose(euler_to_rotation(rotation_to_euler(rot)), rot, atol=1e-10)


def test_radnerf_pose_projects_like_adnerf() -> None:
    seq = synthetic_sequence(n=40, noise_px=0.0)
    focal, cx, cy = seq.focal, seq.width / 2, seq.height / 2
    euler, trans = radnerf_pose(seq.rotation, seq.translation)
    assert (trans[:, 2] < 0).all(), "AD-NeRF's camera looks down -z"
    np.testing.assert_allclose(
        np.linalg.norm(trans, axis=1), 10 * np.linalg.norm(seq.translation, axis=1)
    )
    ours = project_cv(seq.face, seq.rotation, seq.translation, focal, cx, cy)
    theirs = adnerf_project(seq.face * 10.0, euler, trans, focal, cx, cy)
    np.testing.assert_allclose(theirs, ours, atol=1e-6)


def test_radnerf_pose_passes_nan_through() -> None:
    rot = np.full((2, 3, 3), np.nan)
    rot[0] = np.eye(3)
    euler, trans = radnerf_pose(rot, np.array([[0, 0, 1.0], [np.nan] * 3]))
    assert np.isfinite(euler[0]).all() and np.isnan(euler[1]).all() and np.isnan(trans[1]).all()


def test_transform_matrix_is_save_transforms_layout() -> None:
    euler = random_euler(10, seed=2)
    trans = np.random.default_rng(3).normal([0, 0, -7], 0.5, (10, 3))
    mats = transform_matrices(euler, trans)
    rot = adnerf_euler2rot(euler)
    np.testing.assert_allclose(mats[:, :3, :3], np.transpose(rot, (0, 2, 1)), atol=1e-12)
    expected_t = -np.einsum("nji,nj->ni", rot, trans / 10.0)
    np.testing.assert_allclose(mats[:, :3, 3], expected_t, atol=1e-12)
    np.testing.assert_array_equal(mats[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (10, 1)))


def _loader_pixels(mats: np.ndarray, points: np.ndarray, focal, cx, cy) -> np.ndarray:
    """How a NeRF loader sees head points: invert camera-to-world, OpenGL camera axes."""
    w2c = np.linalg.inv(mats)
    cam = np.einsum("nij,kj->nki", w2c[:, :3, :3], points) + w2c[:, None, :3, 3]
    depth = -cam[..., 2]  # OpenGL cameras look down -z
    assert (depth > 0).all()
    return np.stack([cx + focal * cam[..., 0] / depth, cy - focal * cam[..., 1] / depth], -1)


def test_tracked_shape_through_transform_matrix_lands_on_the_landmarks() -> None:
    seq = synthetic_sequence(n=120, noise_px=0.3)
    track = track_head(seq.landmarks, seq.width, seq.height)
    euler, trans = radnerf_pose(track.rotation, track.translation)
    mats = transform_matrices(euler, trans)
    focal_len, cx, cy = track.focal, seq.width / 2.0, seq.height / 2.0
    pixels = _loader_pixels(mats, track.shape, focal_len, cx, cy)
    observed = seq.landmarks[:, track.rigid_index, :2]
    err = np.linalg.norm(pixels - observed, axis=-1)
    assert np.median(err) < 0.6, np.median(err)  # noise 0.3 px per axis
    assert np.percentile(err, 99) < 1.5


def test_loader_rays_pass_through_the_head_points() -> None:
    """RAD-NeRF's path: nerf_matrix_to_ngp, then get_rays' direction ((i+.5-cx)/f, (j+.5-cy)/f, 1).

    A landmark at continuous pixel position (u, v) is pixel index (u - 0.5, v - 0.5), so its ray
    direction is ((u - cx)/f, (v - cy)/f, 1) in the CV camera of the converted pose.
    """
    seq = synthetic_sequence(n=20, noise_px=0.0)
    euler, trans = radnerf_pose(seq.rotation, seq.translation)
    mats = transform_matrices(euler, trans)
    scale, offset = 4.0, np.array([0.0, 0.0, 0.0])
    uv = project_cv(seq.face, seq.rotation, seq.translation, seq.focal, 256.0, 256.0)
    for pose, pix in zip(mats, uv, strict=True):
        ngp = nerf_matrix_to_ngp(pose, scale, offset)
        dirs = np.stack(
            [(pix[:, 0] - seq.width / 2) / seq.focal, (pix[:, 1] - seq.height / 2) / seq.focal,
             np.ones(len(pix))], -1
        )  # fmt: skip
        dirs = dirs @ ngp[:3, :3].T
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        points = seq.face[:, [1, 2, 0]] * scale + offset  # the same axis cycle as the pose
        to_point = points - ngp[:3, 3]
        along = np.sum(to_point * dirs, axis=1)
        assert (along > 0).all()
        miss = np.linalg.norm(to_point - along[:, None] * dirs, axis=1)
        # expression motion moves the other points off the rest face; the rigid ones stay
        assert np.max(miss[RIGID_INDEX] / scale) < 1e-9
