"""au.csv's action units: head-frame alignment, geometry and blendshape AUs, OpenFace layout."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from talkprep.geometry.tracking import RIGID_INDEX
from talkprep.tasks.transforms import (
    AU_COLUMNS,
    AU_INTENSITIES,
    AU_PRESENCES,
    AU_PRESENT,
    BLENDSHAPE_NAMES,
    action_units,
    au_csv_text,
    blendshape_action_units,
    head_frame_mesh,
)

N = 60
BLINK, BROWS, SMILE, OPEN = (5, 6, 7), (15, 16, 17), (25, 26, 27), (35, 36, 37)
ANATOMY = {
    # eyes (subject's right at negative x): corners, upper and lower lids of the EAR
    33: (-0.045, 0.03, 0.0), 133: (-0.015, 0.03, 0.005), 160: (-0.035, 0.035, 0.004),
    158: (-0.025, 0.035, 0.005), 153: (-0.025, 0.025, 0.005), 144: (-0.035, 0.025, 0.004),
    263: (0.045, 0.03, 0.0), 362: (0.015, 0.03, 0.005), 387: (0.035, 0.035, 0.004),
    385: (0.025, 0.035, 0.005), 380: (0.025, 0.025, 0.005), 373: (0.035, 0.025, 0.004),
    # brows, cheeks, nose
    107: (-0.015, 0.05, 0.01), 336: (0.015, 0.05, 0.01), 70: (-0.05, 0.045, 0.0),
    300: (0.05, 0.045, 0.0), 117: (-0.04, 0.005, 0.005), 346: (0.04, 0.005, 0.005),
    4: (0.0, 0.0, 0.04), 2: (0.0, -0.015, 0.025), 6: (0.0, 0.035, 0.02),
    98: (-0.015, -0.01, 0.02), 327: (0.015, -0.01, 0.02),
    # lips and chin
    0: (0.0, -0.03, 0.025), 13: (0.0, -0.035, 0.025), 14: (0.0, -0.036, 0.025),
    17: (0.0, -0.045, 0.022), 61: (-0.025, -0.038, 0.015), 291: (0.025, -0.038, 0.015),
    152: (0.0, -0.08, 0.015),
}  # fmt: skip
"""A face in the head frame (metres; x toward the subject's left, y up, z out of the face)."""


def _face_video(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Head-frame meshes [N, 478, 3] with blinks, a brow raise, a smile and an open mouth, and
    the same meshes as MediaPipe would give them (pixels, y down) under moving head poses."""
    rng = np.random.default_rng(seed)
    base = rng.uniform([-0.07, -0.08, 0.0], [0.07, 0.08, 0.03], (478, 3))
    for i, p in ANATOMY.items():
        base[i] = p
    moving = np.setdiff1d(np.arange(478), RIGID_INDEX)
    head = np.repeat(base[None], N, axis=0)
    head[:, moving] += rng.normal(0, 2e-4, (N, len(moving), 3))
    for f in BLINK:
        for upper, lower in ((160, 144), (158, 153), (387, 373), (385, 380)):
            head[f, upper, 1] = head[f, lower, 1] + 0.001
    for f in BROWS:
        head[f, [107, 336, 70, 300], 1] += 0.009
    for f in SMILE:
        head[f, [61, 291], 1] += 0.008
        head[f, [61, 291], 0] += (-0.006, 0.006)
        head[f, [117, 346], 1] += 0.004
    for f in OPEN:
        head[f, 14, 1] -= 0.015
        head[f, [17, 152], 1] -= 0.02
    angles = rng.uniform(-0.35, 0.35, (N, 3))
    pixels = np.empty_like(head)
    for f in range(N):
        rot = _rotation(angles[f]) @ np.diag([1.0, -1.0, -1.0])  # head -> image axes (y down)
        pixels[f] = 3000.0 * head[f] @ rot.T + (256.0 + 5 * f, 256.0, 900.0)
    return head, pixels


def _rotation(angles: np.ndarray) -> np.ndarray:
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def test_head_frame_mesh_undoes_pose_and_scale() -> None:
    head, pixels = _face_video()
    pixels[3] = np.nan
    aligned = head_frame_mesh(pixels, head[0, RIGID_INDEX], RIGID_INDEX)
    assert np.isnan(aligned[3]).all()
    keep = np.arange(N) != 3
    assert np.abs(aligned[keep] - head[keep]).max() < 1e-3  # metres, noise on moving points only


@pytest.fixture(scope="module")
def units() -> dict[int, np.ndarray]:
    head, pixels = _face_video()
    aligned = head_frame_mesh(pixels, head[0, RIGID_INDEX], RIGID_INDEX)
    valid = np.ones(N, dtype=bool)
    valid[50] = False
    return action_units(aligned, valid)


@pytest.mark.parametrize(
    ("frames", "moved", "still"),
    [
        (BLINK, (45,), (1, 2, 12, 25, 26)),
        (BROWS, (1, 2), (4, 12, 25, 26, 45)),
        (SMILE, (12, 6), (1, 4, 15, 25, 26, 45)),
        (OPEN, (25, 26), (1, 12, 17, 45)),
    ],
)
def test_each_expression_moves_its_own_units(units, frames, moved, still) -> None:
    rest = np.setdiff1d(np.arange(N), [*BLINK, *BROWS, *SMILE, *OPEN])
    for au in moved:
        assert units[au][list(frames)].min() >= 2.0, au
        assert units[au][rest].max() < 0.6, au
    for au in still:
        assert units[au][list(frames)].max() < AU_PRESENT, au
    assert all(units[au][50] == 0 for au in AU_PRESENCES), "no face: all zero"


def test_blendshapes_replace_geometry_but_not_blink_or_mouth(units) -> None:
    head, pixels = _face_video()
    aligned = head_frame_mesh(pixels, head[0, RIGID_INDEX], RIGID_INDEX)
    scores = np.zeros((N, len(BLENDSHAPE_NAMES)))
    scores[:, BLENDSHAPE_NAMES.index("mouthSmileLeft")] = 0.8
    scores[:, BLENDSHAPE_NAMES.index("mouthSmileRight")] = 0.6
    scores[40] = np.nan  # a frame the landmarker missed keeps its geometric AUs
    valid = np.ones(N, dtype=bool)
    valid[50] = False
    mixed = action_units(aligned, valid, scores)
    assert np.allclose(np.delete(mixed[12], [40, 50]), 3.5)
    assert mixed[12][40] == pytest.approx(units[12][40])
    for au in (25, 26, 45):
        assert np.allclose(mixed[au], units[au])
    only = blendshape_action_units(scores[:1])
    assert only[12][0] == pytest.approx(3.5) and only[1][0] == 0


def test_au_csv_has_openface_columns() -> None:
    assert len(AU_INTENSITIES) == 17 and len(AU_PRESENCES) == 18
    units = {au: np.array([0.0, 2.5]) for au in AU_PRESENCES}
    units[45] = np.array([1.2, 0.4])
    text = au_csv_text(units, 25.0, np.array([0.98, 0.0]), np.array([True, False]))
    rows = list(csv.reader(text.splitlines()))
    assert tuple(rows[0]) == AU_COLUMNS and len(AU_COLUMNS) == 40
    assert rows[0][:5] == [" frame", " face_id", " timestamp", " confidence", " success"]
    assert all(c.startswith(" AU") for c in rows[0][5:])
    assert " AU28_c" in rows[0] and " AU28_r" not in rows[0]
    first = dict(zip(rows[0], rows[1], strict=True))
    second = dict(zip(rows[0], rows[2], strict=True))
    assert first[" AU45_r"] == " 1.20" and first[" AU45_c"] == " 1" and first[" AU12_c"] == " 0"
    assert second[" timestamp"] == " 0.040" and second[" AU12_r"] == " 2.50"
    assert second[" AU12_c"] == " 0", "no presence where the frame failed"


def test_real_clip_blinks_follow_the_eye_area(processed) -> None:
    """On a real clip the blink AU rises where the eyes' 2D area (RAD-NeRF's eye_area) drops."""
    folder = processed("hdtf", tasks="3,4,9")
    with (folder / "au.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, values = rows[0], np.array(rows[1:], dtype=np.float64)
    eye = {}
    for split in ("train", "val"):
        for frame in json.loads((folder / f"transforms_{split}.json").read_text())["frames"]:
            eye[frame["img_id"]] = frame["eye_ratio"]
    ids = sorted(eye)
    blink = values[ids, header.index(" AU45_r")]
    assert np.corrcoef(blink, [eye[i] for i in ids])[0, 1] < -0.6
    assert (blink >= 2).sum() >= 2, "the clip has blinks"
    mouth = values[ids, header.index(" AU25_r")]
    assert np.percentile(mouth, 90) > 1.0, "she speaks: lips part"
    assert values[:, 5:].min() >= 0 and values[:, 5:].max() <= 5


def test_real_clip_geometry_agrees_with_mediapipe_blendshapes(processed) -> None:
    """Smiles and brow raises from mesh geometry follow MediaPipe's own blendshape model."""
    import torch
    from conftest import MODELS

    model = MODELS / "face_landmarker.task"
    if not model.is_file():
        pytest.skip(f"{model} is not available")
    folder = processed("hdtf", tasks="3,4", blendshape_model=model)
    params = torch.load(folder / "track_params.pt", weights_only=True)
    mesh = head_frame_mesh(
        np.load(folder / "landmarks.npy"), params["shape"].numpy(), params["rigid_index"].numpy()
    )
    valid = np.isfinite(mesh).all(axis=(1, 2))
    geometric = action_units(mesh, valid)
    scored = blendshape_action_units(np.load(folder / "blendshapes.npy")[valid])
    for au in (12, 1):  # the clip: a woman who smiles and raises her brows as she speaks
        assert np.corrcoef(geometric[au][valid], scored[au])[0, 1] > 0.6, au
        assert np.percentile(geometric[au][valid], 95) > 1.0, au
