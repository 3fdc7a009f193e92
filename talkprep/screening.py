"""Frame screening: why a frame is unfit for training, and which frames the splits keep.

Pure functions on arrays; task 9 (talkprep.tasks.transforms) reads the files and calls them.
Each kind of flag is a bool [N] series; a frame with any flag is unfit. Unfit frames leave the
splits as whole runs, widened by MARGIN_FRAMES either side (the trainers' audio windows: ER-NeRF
and RAD-NeRF attend over frames i - 4 .. i + 4, `get_audio_features(att_mode=2)`), and a kept
stretch shorter than such a window between two of them goes too. Eyes closed is never a flag:
the trainers must learn blinks.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkprep.geometry.camera import euler_to_rotation
from talkprep.runs import true_runs

KINDS = (
    "no_face",
    "small_face",
    "turned",
    "blur",
    "hand_over_face",
    "shot_change",
    "second_face",
)
"""Flag kinds, in the order the report and the manifest list them."""
MARGIN_FRAMES = 4
"""Frames dropped either side of an unfit run: half of ER-NeRF's 8-frame audio window."""
MIN_KEPT_RUN = 2 * MARGIN_FRAMES + 1
"""A kept stretch shorter than one audio window between unfit runs is dropped with them."""
SMALL_FACE_SHARE = 0.1
"""A face narrower than this share of the frame's shorter side (51 px at 512) is too small: the
trainers render the mouth from a few dozen pixels."""
YAW_LIMIT_DEG, PITCH_LIMIT_DEG = 45.0, 30.0
"""Head turns beyond these (from facing the camera) are flagged: the trainers model a head seen
from the front half (their training clips stay within about +-30 degrees of yaw), and past 45
degrees the face mesh's far side and the 68-point jaw are guessed."""
BLUR_SHARE = 0.45
"""A face whose sharpness is below this share of the clip's median sharpness is blurred (shared
clips: clean frames 0.6 and above, a Gaussian blur of sigma 1.5 px about 0.3, of 4 px 0.1)."""
MIDFACE_POINTS = (33, 263, 145, 374, 0)
"""Outer eye corners, lower eyelids, upper lip (mesh indices) bounding the mid-face."""
SHARPNESS_SIDE = 96
"""The face box is resized to this width before measuring sharpness (scale-free)."""
THUMB_SIDE = 8
"""Frames are compared with the clip's typical frame as THUMB_SIDE x THUMB_SIDE colour images."""
SHOT_DISTANCE, SHOT_RATIO = 0.15, 3.0
"""A frame whose thumbnail differs from the clip's median thumbnail by more than this (RMS, on
0-1) and SHOT_RATIO times the clip's median difference shows another shot (a cut, another scene,
black). A speaker who moves a lot in the frame raises the median difference (HDTF clip: 0.06,
99th percentile 0.12); a cut to another clip differs by 0.3-0.5."""
PERSON_ERROR_RATIO, PERSON_ERROR_PX = 4.0, 1.5
"""A frame whose rigid-point reprojection error exceeds this many times the clip's median and
this many pixels at 512 shows another face than the tracked person's shape."""
HAND_SHARE = 0.15
"""A hand or held object covering more than this share of the face-mesh polygon flags a frame."""
SECOND_FACE_SHARE = 0.5
"""A second face at least this share of the tracked face's height flags a frame."""


def midface_box(points: np.ndarray) -> np.ndarray | None:
    """x0, y0, x1, y1 of one frame's mid-face (between the outer eye corners, from the lower
    eyelids to the upper lip: nose, nostrils and cheeks) from its mesh float [478, 2+]; None where
    the mesh is NaN or the box is empty. Eyes and mouth stay out, so blinks and a closed mouth do
    not read as blur."""
    if not np.isfinite(points[list(MIDFACE_POINTS)]).all():
        return None
    corners, lids, lip = (
        points[list(MIDFACE_POINTS[:2]), 0],
        points[list(MIDFACE_POINTS[2:4]), 1],
        points[MIDFACE_POINTS[4], 1],
    )
    box = np.array([corners.min(), lids.max(), corners.max(), lip])
    return box if box[2] - box[0] >= 4 and box[3] - box[1] >= 4 else None


def face_widths(mesh: np.ndarray) -> np.ndarray:
    """Width in pixels of each frame's face mesh (x extent): float [N], NaN where no face."""
    x = np.asarray(mesh, dtype=np.float64)[..., 0]
    return np.max(x, axis=1) - np.min(x, axis=1)


def head_turn(euler: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(yaw, pitch) in degrees of the face's normal away from the line to the camera: float [N].

    Args:
        euler, trans: float [N, 3] tracked poses (AD-NeRF's convention: a head point X maps to
            camera point R X + trans with R = euler_to_rotation(euler), the camera looking down
            -z, the face's normal +z of the head frame).
    """
    finite = np.isfinite(euler).all(axis=1) & np.isfinite(trans).all(axis=1)
    normal = np.full((len(euler), 3), np.nan)
    to_camera = np.full((len(euler), 3), np.nan)
    if finite.any():
        normal[finite] = euler_to_rotation(euler[finite])[:, :, 2]
        to_camera[finite] = -trans[finite] / np.linalg.norm(trans[finite], axis=1, keepdims=True)
    yaw = np.arctan2(normal[:, 0], normal[:, 2]) - np.arctan2(to_camera[:, 0], to_camera[:, 2])
    pitch = np.arctan2(normal[:, 1], normal[:, 2]) - np.arctan2(to_camera[:, 1], to_camera[:, 2])
    wrap = np.angle(np.exp(1j * np.stack([yaw, pitch])))
    return np.degrees(wrap[0]), np.degrees(wrap[1])


def frame_measures(image: np.ndarray, box: np.ndarray | None) -> tuple[float, np.ndarray]:
    """(sharpness of the face, thumbnail) of one frame.

    Args:
        image: uint8 BGR frame (any scale; `box` in its pixels).
        box: float [4] x0, y0, x1, y1 of the mid-face (`midface_box`), or None (sharpness NaN).
    Returns:
        The variance of the Laplacian of the box resized to SHARPNESS_SIDE wide (grey,
        bilinear: a fifth of the cost of an area resize, and the same for every frame), and
        float32 [THUMB_SIDE * THUMB_SIDE * 3] of the whole frame on 0-1.
    """
    h, w = image.shape[:2]
    step = max(1, min(h, w) // (8 * THUMB_SIDE))  # a sparse grid of pixels is averaged
    thumb = cv2.resize(
        image[::step, ::step], (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA
    )
    thumb = thumb.reshape(-1).astype(np.float32) / 255.0
    if box is None or not np.isfinite(box).all():
        return float("nan"), thumb
    x0, y0 = int(np.clip(np.floor(box[0]), 0, w - 1)), int(np.clip(np.floor(box[1]), 0, h - 1))
    x1, y1 = int(np.clip(np.ceil(box[2]), x0 + 1, w)), int(np.clip(np.ceil(box[3]), y0 + 1, h))
    height = max(1, round(SHARPNESS_SIDE * (y1 - y0) / (x1 - x0)))
    face = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    face = cv2.resize(face, (SHARPNESS_SIDE, height), interpolation=cv2.INTER_LINEAR)
    return float(cv2.Laplacian(face, cv2.CV_32F).var()), thumb


def shot_distance(thumbs: np.ndarray) -> np.ndarray:
    """RMS difference of each thumbnail from the clip's median one: float [N]."""
    return np.sqrt(np.mean((thumbs - np.median(thumbs, axis=0)) ** 2, axis=1))


def screen(
    *,
    has_face: np.ndarray,
    face_width: np.ndarray,
    frame_side: int,
    yaw: np.ndarray,
    pitch: np.ndarray,
    sharpness: np.ndarray,
    shot: np.ndarray,
    reproj_err: np.ndarray,
    hand: np.ndarray | None = None,
    second_face: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-kind bool [N] flags (KINDS), from per-frame measures (NaN where not measured).

    Args:
        has_face: frames with a tracked face.
        face_width: face mesh width in pixels; frame_side: the frame's shorter side.
        yaw, pitch: head turn in degrees (`head_turn`).
        sharpness: face sharpness (`frame_measures`), NaN where no face.
        shot: thumbnail distance from the clip's median (`shot_distance`).
        reproj_err: rigid-point reprojection error in pixels at 512.
        hand: share of the face covered by a hand or object, NaN where unknown.
        second_face: another face's height over the tracked one's, NaN where none was sought.
    """
    n = len(has_face)
    face = has_face.astype(bool)

    def above(values: np.ndarray | None, limit: float) -> np.ndarray:
        if values is None:
            return np.zeros(n, dtype=bool)
        return face & (np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf) > limit)

    sharp = np.where(face & np.isfinite(sharpness), sharpness, np.nan)
    typical = np.nanmedian(sharp) if np.isfinite(sharp).any() else np.nan
    error = np.where(face, reproj_err, np.nan)
    median_error = np.nanmedian(error) if np.isfinite(error).any() else np.inf

    def above_shot(values: np.ndarray) -> np.ndarray:
        finite = np.isfinite(values)
        if not finite.any():
            return np.zeros(n, dtype=bool)
        limit = max(SHOT_DISTANCE, SHOT_RATIO * float(np.median(values[finite])))
        return np.nan_to_num(values, nan=0.0) > limit

    person = above(error, max(PERSON_ERROR_PX, PERSON_ERROR_RATIO * median_error))
    return {
        "no_face": ~face,
        "small_face": face & (np.nan_to_num(face_width, nan=0.0) < SMALL_FACE_SHARE * frame_side),
        "turned": above(np.abs(yaw), YAW_LIMIT_DEG) | above(np.abs(pitch), PITCH_LIMIT_DEG),
        "blur": face & (np.nan_to_num(sharp, nan=np.inf) < BLUR_SHARE * typical),
        "hand_over_face": above(hand, HAND_SHARE),
        "shot_change": above_shot(shot) | person,
        "second_face": above(second_face, SECOND_FACE_SHARE),
    }


def kept_frames(unfit: np.ndarray, margin: int = MARGIN_FRAMES) -> np.ndarray:
    """bool [N]: frames the splits keep, given bool [N] unfit frames.

    Each unfit run is widened by `margin` frames either side; a kept stretch shorter than
    MIN_KEPT_RUN between two dropped ones (or at an end, next to one) is dropped too.
    """
    n = len(unfit)
    padded = np.concatenate(
        [np.zeros(margin, bool), np.asarray(unfit, bool), np.zeros(margin, bool)]
    )
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * margin + 1)
    keep = ~windows.any(axis=1) if n else np.zeros(0, bool)
    starts, stops = true_runs(keep)
    short = (stops - starts) < MIN_KEPT_RUN
    bounded = short & ((starts > 0) | (stops < n)) & bool((~keep).any())
    for start, stop in zip(starts[bounded], stops[bounded], strict=True):
        keep[start:stop] = False
    return keep


def flag_counts(flags: dict[str, np.ndarray]) -> dict[str, int]:
    """Frames flagged per kind (a frame may count under several kinds)."""
    return {kind: int(np.count_nonzero(flags[kind])) for kind in KINDS}
