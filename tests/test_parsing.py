"""Task 5: parsing colours, head / neck / torso geometry and stability, on every shared clip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from talkprep.check import check_folder
from talkprep.geometry.face_topology import FACE_OVAL, NUM_MESH_POINTS
from talkprep.geometry.masks import (
    BACKGROUND,
    BISENET_TO_LABEL,
    HEAD,
    NECK,
    PALETTE_BGR,
    TORSO,
    bgr_to_labels,
    decode_labels,
    face_frame,
    head_neck_torso,
    labels_to_bgr,
)
from talkprep.io.images import frame_indices, read_image
from talkprep.manifest import manifest_path
from talkprep.tasks.parsing import nearest_valid, smooth_in_time

CLIP_NAMES = ("anchor", "hdtf", "obama", "selfie", "headturn")
VIDEO_TASKS = "3,4,5,6,7"


def read_labels(folder: Path, index: int) -> np.ndarray:
    labels, stray = bgr_to_labels(read_image(folder / "parsing" / f"{index}.png"))
    assert stray == 0, f"parsing/{index}.png has {stray} off-palette pixels"
    return labels


def mesh_hull(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool mask of the convex hull of all 478 mesh points (independent of the face-oval table)."""
    mask = np.zeros((height, width), np.uint8)
    hull = cv2.convexHull(np.round(points[:, :2]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


# ---- units -------------------------------------------------------------------------------------


def test_palette_is_adnerf_bgr() -> None:
    assert PALETTE_BGR.tolist() == [[255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    image = labels_to_bgr(labels)
    assert image[0, 1].tolist() == [255, 0, 0] and image[1, 1].tolist() == [0, 0, 255]
    back, stray = bgr_to_labels(image)
    assert stray == 0 and (back == labels).all()
    image[0, 0] = (250, 250, 250)  # a blended edge: read as the nearest colour, counted as stray
    back, stray = bgr_to_labels(image)
    assert stray == 1 and back[0, 0] == BACKGROUND
    assert (decode_labels(image) == back).all()


def test_bisenet_classes_map_as_adnerf() -> None:
    # AD-NeRF face_parsing/test.py: 1-13 and 17+ blue (head), 14-15 green (neck), 16 red (torso)
    expected = {0: BACKGROUND, 1: HEAD, 7: HEAD, 13: HEAD, 14: NECK, 15: NECK, 16: TORSO}
    expected |= {17: HEAD, 18: HEAD}
    for cls, label in expected.items():
        assert BISENET_TO_LABEL[cls] == label, cls
    assert len(BISENET_TO_LABEL) == 19


def test_smoothing_matches_direct_weighted_mean() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((9, 4, 5)).astype(np.float32)
    out = np.stack(list(smooth_in_time(iter(maps), radius=2)))
    assert out.shape == maps.shape
    for i in range(len(maps)):
        ks = [k for k in range(i - 2, i + 3) if 0 <= k < len(maps)]
        w = np.array([3 - abs(k - i) for k in ks], np.float32)
        np.testing.assert_allclose(out[i], np.tensordot(w, maps[ks], 1) / w.sum(), rtol=1e-5)
    assert len(list(smooth_in_time(iter(maps[:1]), radius=2))) == 1


def test_nearest_valid_frame() -> None:
    valid = np.array([False, True, False, False, False, True, False])
    assert nearest_valid(valid).tolist() == [1, 1, 1, 1, 5, 5, 5]


def synthetic_face(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """A 478-point 'mesh' whose face oval is an ellipse; other points inside it."""
    points = np.zeros((NUM_MESH_POINTS, 2), np.float32)
    points[:] = (cx, cy)
    angles = np.linspace(-np.pi / 2, 1.5 * np.pi, len(FACE_OVAL), endpoint=False)
    points[FACE_OVAL] = np.stack([cx - rx * np.cos(angles), cy - ry * np.sin(angles)], axis=1)
    points[172] = (cx - 0.6 * rx, cy + 0.75 * ry)
    points[397] = (cx + 0.6 * rx, cy + 0.75 * ry)
    return points


def test_geometry_splits_a_silhouette() -> None:
    h, w = 200, 200
    person = np.zeros((h, w), bool)
    cv2.ellipse(person.view(np.uint8), (100, 70), (40, 55), 0, 0, 360, 1, -1)  # head + hair
    person[110:150, 80:121] = True  # neck
    person[150:, 20:181] = True  # shoulders
    person[5:60, 190:195] = True  # something at the side, outside the head's extent
    face = face_frame(synthetic_face(100, 75, 30, 40), h, w)
    labels = head_neck_torso(person, face)
    assert labels[20, 100] == HEAD  # hair above the face
    assert labels[75, 100] == HEAD
    assert labels[130, 100] == NECK
    assert labels[180, 30] == TORSO and labels[180, 100] == TORSO
    assert labels[30, 192] == TORSO  # not head: outside the head's horizontal extent
    assert labels[5, 5] == BACKGROUND
    assert (labels[~person & ~face.face] == BACKGROUND).all()
    neck_rows, neck_cols = np.nonzero(labels == NECK)
    assert neck_rows.size and (neck_rows > face.jaw_line[neck_cols]).all()
    assert (face.jaw_line[80:121] >= np.flatnonzero(face.face.any(axis=1))[-1] - 12).all()
    assert head_neck_torso(person, None)[75, 100] == TORSO


# ---- real clips --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("clip", CLIP_NAMES)
def test_parsing_on_real_clip(processed, clip: str) -> None:
    folder = processed(clip, tasks=VIDEO_TASKS)
    n = len(frame_indices(folder / "ori_imgs", ".jpg"))
    assert frame_indices(folder / "parsing", ".png") == list(range(n))
    landmarks = np.load(folder / "landmarks.npy")
    height, width = read_image(folder / "ori_imgs" / "0.jpg").shape[:2]
    ious, coverage, above_jaw, neck_below = [], [], 0, []
    previous = None
    for i in range(n):
        labels = read_labels(folder, i)  # only the four colours, exactly
        assert labels.shape == (height, width)
        head = labels == HEAD
        if previous is not None:
            union = np.count_nonzero(previous | head)
            ious.append(np.count_nonzero(previous & head) / max(union, 1))
        previous = head
        points = landmarks[i]
        if np.isnan(points).any():
            continue
        hull = mesh_hull(points, height, width)
        coverage.append(np.count_nonzero(hull & head) / np.count_nonzero(hull))
        # neck and torso below the chin: nothing of them inside or above the face, in its columns
        body = (labels == NECK) | (labels == TORSO)
        cols = np.flatnonzero(hull.any(axis=0))
        lowest = height - 1 - np.argmax(hull[::-1, cols], axis=0)
        rows = np.arange(height)[:, None]
        above_jaw += int(np.count_nonzero(body[:, cols] & (rows <= lowest[None, :])))
        neck_rows = np.flatnonzero((labels == NECK).any(axis=1))
        if neck_rows.size:
            neck_below.append(neck_rows[-1] - points[152, 1])
    assert coverage and min(coverage) >= 0.99, f"head misses the face: min {min(coverage):.3f}"
    assert above_jaw == 0, f"{above_jaw} neck/torso pixels inside or above the face"
    assert np.median(neck_below) > 0, "the neck ends above the chin"
    assert np.median(ious) > 0.95, f"head flickers: median IoU {np.median(ious):.3f}"
    record = json.loads(manifest_path(folder).read_text())["tasks"]["parsing"]
    figures = record["figures"]
    for name in ("background", "head", "neck", "torso"):
        assert set(figures[f"{name}_fraction"]) == {"median", "min", "max"}
    assert figures["head_fraction"]["min"] > 0.02
    assert figures["frames_head_misses_face"] == 0
    assert figures["head_flicker_1_minus_iou"]["median"] < 0.05


@pytest.mark.slow
def test_check_catches_bad_parsing(processed, tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    shutil.copytree(processed("hdtf", tasks=VIDEO_TASKS), folder)
    assert all(r.ok for r in check_folder(folder)), check_folder(folder)
    image = read_image(folder / "parsing" / "0.png")
    image[10:12, 10:12] = (128, 128, 128)
    cv2.imwrite(str(folder / "parsing" / "0.png"), image)
    bad = [r for r in check_folder(folder) if not r.ok]
    assert bad and "four parsing colours" in bad[0].problem
    (folder / "parsing" / "3.png").unlink()
    bad = [r for r in check_folder(folder) if not r.ok]
    assert bad and "parsing/3.png is missing" in bad[0].problem
