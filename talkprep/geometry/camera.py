"""Camera and head-pose conventions of AD-NeRF / RAD-NeRF / ER-NeRF, and conversions into them.

talkprep's tracker (``talkprep.geometry.tracking``) works in a computer-vision (CV) camera:
x right, y down, z forward (into the scene); a head point X (metres, head frame) lands at
``R @ X + t`` and projects to ``u = f*x/z + cx``, ``v = f*y/z + cy`` with ``(cx, cy) = (w/2, h/2)``
in continuous pixel coordinates (0 at the left/top image edge, pixel i's centre at i + 0.5, the
convention of MediaPipe's normalised landmarks times the image size).

The head frame (set by the tracker) is x toward the subject's left (image right on a frontal
face), y up, z out of the face toward the camera; so a frontal head has ``R_cv = diag(1, -1, -1)``.

AD-NeRF's ``track_params.pt`` convention as RAD-NeRF and ER-NeRF use it, verified against their
code (RAD-NeRF ``data_utils/face_tracking/face_tracker.py`` and ``data_utils/process.py``; ER-NeRF
``data_utils/face_tracking/util.py``; the same functions in both):

* ``euler2rot(euler) = Rx(e0) @ Ry(e1) @ Rz(-e2)``: ``rot_x``/``rot_y`` are the standard
  right-handed rotations, but ``rot_z`` is built column by column from
  ``(cos, -sin, 0), (sin, cos, 0), (0, 0, 1)`` (``torch.cat(..., 2)`` stacks columns), i.e. the
  transpose of the standard ``Rz``: the third angle has the opposite sign. ``save_transforms``
  uses an identical copy. (An older AD-NeRF ``face_tracking/util.py``, YudongGuo/AD-NeRF at
  2a36d83, builds the standard ``Rz(+e2)`` while its ``process_data.py`` uses ``Rz(-e2)``; we
  follow RAD-NeRF/ER-NeRF, whose tracker and writer agree.)
* ``rot_trans_pts``: camera point ``P = R @ X + trans``.
* ``proj_pts``: ``u = -f*P.x/P.z + cx``, ``v = f*P.y/P.z + cy`` with ``cxy = (w/2, h/2)``;
  ``trans`` starts at ``(0, 0, -7)``, so points have ``P.z < 0``: this is an OpenGL camera
  (x right, y up, looking down -z), ``u = cx + f*x/(-z)``, ``v = cy - f*y/(-z)``.
* units: the 3DMM is in decimetres (``save_transforms`` divides ``trans`` by 10 to get metres);
  the camera sits about 7 dm = 0.7 m from the head.

So ``R_gl = diag(1, -1, -1) @ R_cv`` and ``trans = 10 * diag(1, -1, -1) @ t_cv``.

``transform_matrix`` (RAD-NeRF ``data_utils/process.py`` ``save_transforms``): the 4x4
camera-to-world matrix ``[[R_gl^T, -R_gl^T @ trans / 10], [0, 0, 0, 1]]``, world = head frame in
metres, camera axes OpenGL. Loaders (RAD-NeRF/ER-NeRF ``nerf/provider.py``) read it with
``nerf_matrix_to_ngp(pose, scale, offset)``, which flips the camera's y and z columns (OpenGL ->
CV camera), cycles the world axes (new x, y, z = old y, z, x) and scales/offsets the translation;
``get_rays`` then shoots the ray of pixel (i, j) through ``((i + 0.5 - cx)/f, (j + 0.5 - cy)/f, 1)``
in that CV camera, ``focal_len``, ``cx``, ``cy`` taken straight from the JSON. Both views give
the same pixel as the tracker's projection (tests/test_camera.py checks it).
"""

from __future__ import annotations

import numpy as np

DECIMETRES_PER_METRE = 10.0
"""AD-NeRF's ``trans`` is in the 3DMM's decimetres; ``save_transforms`` divides it by 10."""

CV_TO_GL = np.diag([1.0, -1.0, -1.0])
"""Maps computer-vision camera axes (x right, y down, z forward) to OpenGL's (y up, z back)."""


def _axis_rotations(angles: np.ndarray, axis: int) -> np.ndarray:
    """Standard right-handed rotations [N,3,3] about one coordinate axis."""
    c, s = np.cos(angles), np.sin(angles)
    out = np.zeros((len(angles), 3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[:, axis, axis] = 1.0
    out[:, i, i] = c
    out[:, j, j] = c
    out[:, i, j] = -s
    out[:, j, i] = s
    return out


def euler_to_rotation(euler: np.ndarray) -> np.ndarray:
    """AD-NeRF's ``euler2rot``: ``Rx(e0) @ Ry(e1) @ Rz(-e2)``, euler [N,3] radians -> [N,3,3]."""
    euler = np.asarray(euler, dtype=np.float64).reshape(-1, 3)
    rx = _axis_rotations(euler[:, 0], 0)
    ry = _axis_rotations(euler[:, 1], 1)
    rz = _axis_rotations(-euler[:, 2], 2)
    return rx @ ry @ rz


def rotation_to_euler(rotation: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_to_rotation` for [N,3,3] (middle angle in [-pi/2, pi/2])."""
    m = np.asarray(rotation, dtype=np.float64).reshape(-1, 3, 3)
    # Rx(a) Ry(b) Rz(g): m02 = sin b, m12 = -sin a cos b, m22 = cos a cos b, m01 = -cos b sin g,
    # m00 = cos b cos g; AD-NeRF's third angle is -g.
    a = np.arctan2(-m[:, 1, 2], m[:, 2, 2])
    b = np.arcsin(np.clip(m[:, 0, 2], -1.0, 1.0))
    g = np.arctan2(-m[:, 0, 1], m[:, 0, 0])
    return np.stack([a, b, -g], axis=1)


def radnerf_pose(rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tracker poses (head -> CV camera, metres) as AD-NeRF/RAD-NeRF ``track_params.pt`` values.

    Args:
        rotation: [N,3,3] head -> CV camera rotations (NaN rows pass through as NaN).
        translation: [N,3] metres in the CV camera.

    Returns:
        ``(euler, trans)``: euler [N,3] radians for ``euler2rot``; trans [N,3] decimetres in
        AD-NeRF's OpenGL camera (``trans[:, 2] < 0`` in front of the camera).
    """
    rotation = np.asarray(rotation, dtype=np.float64).reshape(-1, 3, 3)
    translation = np.asarray(translation, dtype=np.float64).reshape(-1, 3)
    rot_gl = CV_TO_GL @ rotation
    euler = rotation_to_euler(rot_gl)
    trans = DECIMETRES_PER_METRE * translation @ CV_TO_GL.T
    return euler, trans


def transform_matrices(euler: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """``transform_matrix`` [N,4,4] exactly as RAD-NeRF's ``save_transforms`` writes it.

    Camera-to-world with OpenGL camera axes, world = head frame in metres:
    ``[[R^T, -R^T @ trans / 10], [0, 0, 0, 1]]`` with ``R = euler_to_rotation(euler)``.
    """
    rot = euler_to_rotation(euler)
    trans_m = np.asarray(trans, dtype=np.float64).reshape(-1, 3) / DECIMETRES_PER_METRE
    rot_inv = np.transpose(rot, (0, 2, 1))
    out = np.zeros((len(rot), 4, 4))
    out[:, :3, :3] = rot_inv
    out[:, :3, 3] = -np.einsum("nij,nj->ni", rot_inv, trans_m)
    out[:, 3, 3] = 1.0
    return out


def project_cv(
    points: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    focal: float,
    cx: float,
    cy: float,
) -> np.ndarray:
    """Pixel positions [N,K,2] of head points [K,3] (or per frame [N,K,3]) under CV poses."""
    points = np.asarray(points, dtype=np.float64)
    spec = "nij,kj->nki" if points.ndim == 2 else "nij,nkj->nki"
    cam = np.einsum(spec, np.asarray(rotation, dtype=np.float64), points)
    cam = cam + np.asarray(translation)[:, None, :]
    return np.stack(
        [focal * cam[..., 0] / cam[..., 2] + cx, focal * cam[..., 1] / cam[..., 2] + cy], axis=-1
    )
