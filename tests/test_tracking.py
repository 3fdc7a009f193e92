"""Head/camera tracking: ground truth from a synthetic talking head, and real clips."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CLIPS
from synth_face import FACE_MM, SyntheticSequence, synthetic_sequence

import talkprep.geometry.tracking.poses as poses
from talkprep.geometry.camera import radnerf_pose
from talkprep.geometry.tracking import (
    EYE_CORNER_DISTANCE_M,
    FOCAL_SEARCH_STEPS,
    FOV_RANGE_DEG,
    PRIOR_FOV_DEG,
    RIGID_INDEX,
    HeadTrack,
    TrackingError,
    track_head,
)

MISSING = tuple(range(100, 105))


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """s, R, t with s * R @ src + t ~ dst (Umeyama)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    u, sig, vt = np.linalg.svd((dst - mu_d).T @ (src - mu_s))
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ fix @ vt
    scale = float((sig * np.diag(fix)).sum() / ((src - mu_s) ** 2).sum())
    return scale, rot, mu_d - scale * rot @ mu_s


def pose_errors(track: HeadTrack, seq: SyntheticSequence) -> tuple[np.ndarray, np.ndarray]:
    """Rotation error (degrees) and translation error (fraction of the camera distance).

    The tracker's head frame is its own choice: the true face is first mapped into it by the
    similarity that best aligns the rigid points, and the true poses expressed accordingly.
    """
    scale, q, d = _similarity(seq.face[track.rigid_index], track.shape)
    ok = np.isfinite(track.translation[:, 0])
    # estimated camera point of a true head point X: R_e (s Q X + d) + t_e = s * (R X + t)
    rot = track.rotation[ok] @ q
    trans = (np.einsum("nij,j->ni", track.rotation[ok], d) + track.translation[ok]) / scale
    rel = np.transpose(rot, (0, 2, 1)) @ seq.rotation[ok]
    angle = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    dist = np.linalg.norm(trans - seq.translation[ok], axis=1)
    return angle, dist / np.linalg.norm(seq.translation[ok], axis=1)


@pytest.fixture(scope="module")
def synthetic() -> tuple[SyntheticSequence, HeadTrack]:
    seq = synthetic_sequence(n=250, focal=1000.0, distance=0.6, missing=MISSING)
    return seq, track_head(seq.landmarks, seq.width, seq.height)


def test_synthetic_face_is_metric() -> None:
    eye = np.linalg.norm(FACE_MM[263] - FACE_MM[33]) / 1000.0
    assert eye == pytest.approx(EYE_CORNER_DISTANCE_M, abs=1e-4)


def test_recovers_focal_rotation_and_translation(synthetic) -> None:
    seq, track = synthetic
    assert track.focal == pytest.approx(seq.focal, rel=0.10)
    assert track.figures["focal_source"] == "data"
    angle, trans_err = pose_errors(track, seq)
    assert angle.max() < 1.0, angle.max()
    assert trans_err.max() < 0.03, trans_err.max()
    assert len(angle) == len(seq.landmarks) - len(MISSING)


def test_metric_scale_from_the_eye_corners(synthetic) -> None:
    _, track = synthetic
    where = {int(i): k for k, i in enumerate(track.rigid_index)}
    eye = np.linalg.norm(track.shape[where[263]] - track.shape[where[33]])
    assert eye == pytest.approx(EYE_CORNER_DISTANCE_M, rel=1e-3)


def test_head_frame_axes(synthetic) -> None:
    """x toward the subject's left, y up, z out of the face; frontal head = diag(1, -1, -1)."""
    _, track = synthetic
    where = {int(i): k for k, i in enumerate(track.rigid_index)}
    shape = track.shape
    assert shape[where[263], 0] - shape[where[33], 0] > 0.085
    assert shape[where[151], 1] > shape[where[4], 1] + 0.03  # forehead above the nose tip
    assert shape[where[4], 2] > shape[where[33], 2] + 0.01  # nose tip in front of the eyes
    # the origin (the face surface's centroid) sits behind the eye corners and the nose tip
    assert shape[where[4], 2] > 0.03 and shape[where[33], 2] > 0.0 and shape[where[263], 2] > 0.0
    assert np.nanmedian(track.translation[:, 2]) > 0.55


def test_outputs_have_nan_where_no_face_and_fixed_shapes(synthetic) -> None:
    seq, track = synthetic
    n = len(seq.landmarks)
    assert track.rotation.shape == (n, 3, 3) and track.translation.shape == (n, 3)
    assert track.reproj_err.shape == (n,)
    assert track.shape.shape == (len(RIGID_INDEX), 3)
    gone = np.zeros(n, bool)
    gone[list(MISSING)] = True
    assert np.isnan(track.rotation[gone]).all() and np.isnan(track.reproj_err[gone]).all()
    assert np.isfinite(track.rotation[~gone]).all() and np.isfinite(track.reproj_err[~gone]).all()
    rot = track.rotation[~gone]
    np.testing.assert_allclose(
        rot @ np.transpose(rot, (0, 2, 1)), np.broadcast_to(np.eye(3), rot.shape), atol=1e-9
    )
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-9)


def test_reprojection_error_is_the_noise(synthetic) -> None:
    _, track = synthetic
    # Gaussian noise of 0.5 px per axis: the median distance is 0.5 * sqrt(2 ln 2) = 0.59 px
    assert 0.45 < track.figures["reproj_median_px"] < 0.75
    assert track.figures["frames_tracked"] == 250 - len(MISSING)


def test_focal_curve_covers_the_plausible_fields_of_view(synthetic) -> None:
    seq, track = synthetic
    focals = np.array([f for f, _ in track.focal_curve])
    errors = np.array([e for _, e in track.focal_curve])
    assert len(focals) == FOCAL_SEARCH_STEPS and (np.diff(focals) > 0).all()
    fov = np.degrees(2 * np.arctan(seq.width / 2 / focals))
    assert fov.max() == pytest.approx(max(FOV_RANGE_DEG)) and fov.min() == pytest.approx(
        min(FOV_RANGE_DEG)
    )
    # the true focal explains the landmarks clearly better than the extremes
    best = focals[np.argmin(errors)]
    assert best == pytest.approx(seq.focal, rel=0.25)
    assert errors[0] > 1.1 * errors.min() and errors[-1] > 1.05 * errors.min()


def test_figures_are_json_ready(synthetic) -> None:
    import json

    _, track = synthetic
    figures = json.loads(json.dumps(track.figures))
    for key in ("focal", "fov_deg", "reproj_median_px", "reproj_p95_px", "reproj_median_px_512",
                "reproj_p95_px_512", "jitter_rot_deg", "jitter_trans_mm", "camera_distance_m",
                "frames_tracked"):  # fmt: skip
        assert key in figures
    assert 0.6 < figures["camera_distance_m"] < 0.8


def test_smoothness_lowers_jitter_without_bias(monkeypatch) -> None:
    seq = synthetic_sequence(n=150, noise_px=1.5, seed=3)
    smooth = track_head(seq.landmarks, seq.width, seq.height)
    monkeypatch.setattr(poses, "SMOOTH_WEIGHT", 0.0)
    raw = track_head(seq.landmarks, seq.width, seq.height)
    assert smooth.figures["jitter_rot_deg"] < 0.8 * raw.figures["jitter_rot_deg"]
    angle_s, _ = pose_errors(smooth, seq)
    angle_r, _ = pose_errors(raw, seq)
    assert np.median(angle_s) < np.median(angle_r)


def test_still_frontal_head_falls_back_to_the_prior_focal() -> None:
    """Without head rotation the landmarks cannot tell focal from distance: the prior decides."""
    seq = synthetic_sequence(n=60, yaw_deg=0.0, pitch_deg=0.0, roll_deg=0.0, noise_px=0.5)
    track = track_head(seq.landmarks, seq.width, seq.height)
    assert track.figures["focal_source"] == "prior"
    assert track.figures["focal_data_weight"] == 0.0
    assert track.focal == seq.width / 2 / np.tan(np.radians(PRIOR_FOV_DEG) / 2)
    assert track.figures["reproj_median_px"] < 0.8


def test_no_face_at_all_is_an_error() -> None:
    with pytest.raises(TrackingError, match="no frame"):
        track_head(np.full((5, 478, 3), np.nan, np.float32), 512, 512)


def test_wrong_array_shape_is_an_error() -> None:
    with pytest.raises(TrackingError, match="478"):
        track_head(np.zeros((5, 468, 3), np.float32), 512, 512)


def test_few_frames_still_track() -> None:
    seq = synthetic_sequence(n=4, noise_px=0.2)
    track = track_head(seq.landmarks, seq.width, seq.height)
    assert np.isfinite(track.rotation).all()
    assert np.nanmax(track.reproj_err) < 1.0


FACING_THE_CAMERA = ("anchor", "hdtf", "obama", "selfie", "headturn")


@pytest.mark.slow
@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_real_clip_reprojection_and_distance(processed, clip: str) -> None:
    import cv2

    out = processed(clip, tasks="3,4")
    landmarks = np.load(out / "landmarks.npy")
    height, width = cv2.imread(str(out / "ori_imgs" / "0.jpg")).shape[:2]
    track = track_head(landmarks, width, height)
    figures = track.figures
    assert figures["reproj_median_px_512"] < 1.5, figures
    assert figures["reproj_p95_px_512"] < 3.0, figures
    # a phone selfie at arm's length (its focal the data's, a wide field of view) is ~0.3 m away
    assert 0.25 < figures["camera_distance_m"] < 2.0, figures
    has_face = np.isfinite(landmarks[:, RIGID_INDEX]).all(axis=(1, 2))
    assert np.isfinite(track.rotation[has_face]).all()
    assert figures["frames_tracked"] == int(has_face.sum())
    # the first five shared clips' speakers face the camera: the median pose is near frontal
    # (the long-hair clips' speakers tilt or turn their heads: 8 and 14 degrees)
    if clip in FACING_THE_CAMERA:
        euler, _ = radnerf_pose(track.rotation[has_face], track.translation[has_face])
        assert np.abs(np.degrees(np.median(euler, axis=0))).max() < 8.0


def test_pose_windows_join_without_seams(monkeypatch, synthetic) -> None:
    """Poses are solved in windows; small windows must give the same poses as one big one."""
    seq, whole = synthetic
    monkeypatch.setattr(poses, "POSE_WINDOW", 37)
    windowed = track_head(seq.landmarks, seq.width, seq.height)
    ok = np.isfinite(whole.translation[:, 0])
    rel = np.transpose(whole.rotation[ok], (0, 2, 1)) @ windowed.rotation[ok]
    angle = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angle.max() < 0.02
    assert np.abs(whole.translation[ok] - windowed.translation[ok]).max() < 1e-4
    assert windowed.figures["jitter_rot_deg"] == pytest.approx(
        whole.figures["jitter_rot_deg"], rel=0.05
    )


# --- focal: deterministic, resolution invariant, the prior unless the data decide --------------


@pytest.mark.parametrize("focal", [600.0, 1000.0])
def test_focal_within_five_percent_where_the_data_decide(focal: float) -> None:
    """Fields of view of 46 and 29 degrees; the head turns +-20 degrees."""
    seq = synthetic_sequence(n=200, focal=focal, distance=0.6 * focal / 1000.0, seed=4)
    track = track_head(seq.landmarks, seq.width, seq.height)
    assert track.figures["focal_source"] == "data"
    assert track.figures["focal_evidence"] > 5.0
    assert track.focal == pytest.approx(focal, rel=0.05)


def test_focal_is_deterministic_and_resolution_invariant(synthetic) -> None:
    seq, track = synthetic
    again = track_head(seq.landmarks, seq.width, seq.height)
    assert again.focal == track.focal
    np.testing.assert_array_equal(again.rotation, track.rotation)
    half = seq.landmarks.copy()
    half[..., :2] = (half[..., :2] - seq.width / 2) / 2 + seq.width / 4
    half[..., 2] /= 2
    small = track_head(half, seq.width // 2, seq.height // 2)
    assert small.figures["fov_deg"] == pytest.approx(track.figures["fov_deg"], abs=0.5)
    assert small.figures["camera_distance_m"] == pytest.approx(
        track.figures["camera_distance_m"], rel=0.02
    )


# --- temporal term: smooth on calm motion, no lag on fast motion ------------------------------


def test_fast_motion_does_not_lag(monkeypatch) -> None:
    """Head shakes at six times the speed: the fit keeps up with the unsmoothed one."""
    seq = synthetic_sequence(n=150, fps=25.0 / 6, yaw_deg=30.0, pitch_deg=12.0, seed=5)
    smooth = track_head(seq.landmarks, seq.width, seq.height)
    monkeypatch.setattr(poses, "SMOOTH_WEIGHT", 0.0)
    raw = track_head(seq.landmarks, seq.width, seq.height)
    assert smooth.figures["reproj_p95_px"] <= 1.1 * raw.figures["reproj_p95_px"]
    angle, _ = pose_errors(smooth, seq)
    assert np.percentile(angle, 95) < 0.5


def test_quadratic_temporal_term_lags_where_the_robust_one_does_not(monkeypatch) -> None:
    """The same fast sequence with the temporal term made quadratic: the fit drags behind."""
    seq = synthetic_sequence(n=150, fps=25.0 / 6, yaw_deg=30.0, pitch_deg=12.0, seed=5)
    robust = track_head(seq.landmarks, seq.width, seq.height)
    monkeypatch.setattr(poses, "SMOOTH_ROBUST_PX", np.inf)
    quadratic = track_head(seq.landmarks, seq.width, seq.height)
    assert quadratic.figures["reproj_p95_px"] > 1.2 * robust.figures["reproj_p95_px"]


BASELINE_JITTER = {
    "anchor": (0.2109, 0.29),
    "hdtf": (0.4231, 0.456),
    "obama": (0.4269, 0.503),
    "headturn": (0.1872, 0.252),
}
"""(jitter_rot_deg, jitter_trans_mm) of the tracker before the robust temporal term (commit
23423b8), measured with benchmarks/bench_tracking_quality.py."""


@pytest.mark.slow
@pytest.mark.parametrize("clip", sorted(BASELINE_JITTER))
def test_real_clip_jitter_at_most_the_old_one(processed, clip: str) -> None:
    import cv2

    out = processed(clip, tasks="3,4")
    landmarks = np.load(out / "landmarks.npy")
    height, width = cv2.imread(str(out / "ori_imgs" / "0.jpg")).shape[:2]
    figures = track_head(landmarks, width, height).figures
    rot, trans = BASELINE_JITTER[clip]
    assert figures["jitter_rot_deg"] <= rot and figures["jitter_trans_mm"] <= trans, figures


@pytest.mark.slow
def test_real_fast_head_turns_do_not_lag(processed, monkeypatch) -> None:
    """The headturn clip's every third frame (three times the angular speed)."""
    import cv2

    out = processed("headturn", tasks="3,4")
    landmarks = np.load(out / "landmarks.npy")[::3]
    height, width = cv2.imread(str(out / "ori_imgs" / "0.jpg")).shape[:2]
    smooth = track_head(landmarks, width, height)
    monkeypatch.setattr(poses, "SMOOTH_WEIGHT", 0.0)
    raw = track_head(landmarks, width, height)
    assert smooth.figures["reproj_p95_px"] <= 1.1 * raw.figures["reproj_p95_px"]


@pytest.mark.slow
def test_real_clip_focal_resolution_invariant(processed, tmp_path) -> None:
    """Obama's clip (the data weigh in on its focal) and a half-size copy seen by MediaPipe."""
    import cv2

    from talkprep.tasks.landmarks import detect_landmarks, fill_short_gaps

    out = processed("obama", tasks="3,4")
    landmarks = np.load(out / "landmarks.npy")
    height, width = cv2.imread(str(out / "ori_imgs" / "0.jpg")).shape[:2]
    folder = tmp_path / "half"
    folder.mkdir()
    for i in range(len(landmarks)):
        image = cv2.imread(str(out / "ori_imgs" / f"{i}.jpg"))
        small = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{i}.jpg"), small)
    half, _ = detect_landmarks(folder, len(landmarks))
    half, _ = fill_short_gaps(half)
    full = track_head(landmarks, width, height).figures
    small = track_head(half, width // 2, height // 2).figures
    assert full["focal_data_weight"] > 0, full
    assert small["fov_deg"] == pytest.approx(full["fov_deg"], abs=0.5)
    assert small["camera_distance_m"] == pytest.approx(full["camera_distance_m"], rel=0.02)


def test_natural_spline_matches_scipy() -> None:
    from scipy.interpolate import CubicSpline

    from talkprep.geometry.tracking.focal import NaturalSpline

    x = np.log(np.geomspace(500.0, 2900.0, 9))
    y = np.sin(3 * x) + (x - 7) ** 2
    ours, ref = NaturalSpline(x, y), CubicSpline(x, y, bc_type="natural")
    u = np.linspace(x[0], x[-1], 201)
    np.testing.assert_allclose(ours(u), ref(u), atol=1e-12)
    np.testing.assert_allclose(ours(u, 2), ref(u, 2), atol=1e-9)
