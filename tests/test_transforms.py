"""Task 9: train/val split, transforms_*.json in the RAD-NeRF format, au.csv, and their checks."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import clip_path
from synth import write_video

from talkprep.check import check_folder, folder_facts
from talkprep.config import build_config
from talkprep.console import Console
from talkprep.geometry.face_topology import NUM_MESH_POINTS
from talkprep.manifest import manifest_path
from talkprep.pipeline import Pipeline
from talkprep.tasks.transforms import (
    AU_COLUMNS,
    LEFT_EYE_MESH,
    RIGHT_EYE_MESH,
    TransformsTask,
    action_units,
    eye_ratios,
    face_rects,
    polygon_area,
    train_val_ids,
)


def test_split_skips_invalid_frames_and_keeps_order() -> None:
    valid = np.ones(23, dtype=bool)
    valid[[3, 4, 20]] = False
    train, val = train_val_ids(valid)
    assert len(train) == int(20 * 10 / 11) == 18
    assert train.tolist() == [i for i in range(23) if valid[i]][:18]
    assert val.tolist() == [21, 22]
    assert not set(train) & set(val)


def test_polygon_area_and_eye_ratio() -> None:
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], dtype=float)
    assert polygon_area(square) == pytest.approx(4.0)
    assert polygon_area(square[::-1]) == pytest.approx(4.0)
    lms = np.zeros((1, 68, 2))
    hexagon = np.array([[0, 1], [1, 0], [3, 0], [4, 1], [3, 2], [1, 2]], dtype=float)
    lms[0, 36:42] = hexagon
    lms[0, 42:48] = hexagon + 10
    assert eye_ratios(lms, 10, 10)[0] == pytest.approx(2 * 6.0 / 100 * 100)


def test_face_rect_follows_radnerf() -> None:
    lms = np.random.default_rng(1).uniform(20, 400, (3, 68, 2))
    rect = face_rects(lms)
    assert rect.dtype == np.int64
    for i in range(3):  # RAD-NeRF provider: xmin = lms[31:36, 1].min() ... with x the row
        expected = [
            int(lms[i, 31:36, 1].min()),
            int(lms[i, :, 1].max()),
            int(lms[i, :, 0].min()),
            int(lms[i, :, 0].max()),
        ]
        assert rect[i].tolist() == expected


def _talking_mesh(n: int, closed: list[int], mouth_open: list[int]) -> np.ndarray:
    """A flat mesh with eyes 10 px tall (60 px wide) that close on `closed` frames."""
    mesh = np.zeros((n, NUM_MESH_POINTS, 3))
    mesh[:, 33, :2], mesh[:, 263, :2] = (100, 200), (300, 200)
    for eye, x0 in ((RIGHT_EYE_MESH, 100), (LEFT_EYE_MESH, 300)):
        sign = 1 if x0 == 100 else -1
        corner_a, up1, up2, corner_b, low1, low2 = eye
        mesh[:, corner_a, :2] = (x0, 200)
        mesh[:, corner_b, :2] = (x0 + sign * 60, 200)
        mesh[:, [up1, up2], 0] = [x0 + sign * 20, x0 + sign * 40]
        mesh[:, [low2, low1], 0] = [x0 + sign * 20, x0 + sign * 40]
        mesh[:, [up1, up2], 1] = 195.0
        mesh[:, [low1, low2], 1] = 205.0
        mesh[closed, up1, 1] = mesh[closed, up2, 1] = 199.0
        mesh[closed, low1, 1] = mesh[closed, low2, 1] = 201.0
    mesh[:, 6, :2], mesh[:, 13, :2], mesh[:, 14, :2], mesh[:, 152, :2] = (
        (200, 210),
        (200, 330),
        (200, 331),
        (200, 420),
    )
    mesh[mouth_open, 14, 1] = 331 + 60
    mesh[mouth_open, 152, 1] = 420 + 40
    return mesh


def test_action_units_blink_and_mouth() -> None:
    closed, mouth_open = [5, 6, 30], [10, 11, 12]
    mesh = _talking_mesh(40, closed, mouth_open)
    valid = np.ones(40, dtype=bool)
    valid[35] = False
    units = action_units(mesh, valid)
    blink, lips, jaw = units[45], units[25], units[26]
    assert (blink[closed] >= 2).all() and np.delete(blink, closed).max() == 0
    assert (lips[mouth_open] >= 2).all() and np.delete(lips, mouth_open).max() < 0.1
    assert (jaw[mouth_open] >= 2).all() and all(units[au][35] == 0 for au in units)


def _manifest(folder: Path) -> dict:
    return json.loads(manifest_path(folder).read_text())


@pytest.mark.parametrize("clip", ["anchor", "hdtf"])
def test_real_clip_transforms(processed, clip: str) -> None:
    import torch

    folder = processed(clip, tasks="3,4,9")
    info = _manifest(folder)["tasks"]["frames"]["info"]
    n, h, w = info["n_frames"], info["height"], info["width"]
    train = json.loads((folder / "transforms_train.json").read_text())
    val = json.loads((folder / "transforms_val.json").read_text())
    for split in (train, val):
        assert set(split) == {"focal_len", "cx", "cy", "h", "w", "frames"}
        assert (split["h"], split["w"], split["cx"], split["cy"]) == (h, w, w / 2, h / 2)
    # With aud.wav (another test may have run task 1 here) the offset may be corrected: the HDTF
    # clip's audio is 0.29 s late, so its frames read audio 7 rows on and its last 7 have none.
    shift = _manifest(folder)["tasks"]["transforms"]["info"]["av_sync"]["applied_frames"]
    heard = [i for i in range(n) if 0 <= i + shift < n]
    ids = [f["img_id"] for f in train["frames"]] + [f["img_id"] for f in val["frames"]]
    assert ids == heard, "a face everywhere: every frame with audio in a split, in order"
    assert len(train["frames"]) == int(len(heard) * 10 / 11)
    assert all(f["aud_id"] == f["img_id"] + shift for f in train["frames"])
    eye = np.array([f["eye_ratio"] for f in train["frames"]])
    assert 0.05 < np.median(eye) < 1.5  # percent of the image, RAD-NeRF's default open eye 0.25

    # A NeRF loader's view: invert camera-to-world, OpenGL camera, project the tracked shape.
    params = torch.load(folder / "track_params.pt", weights_only=True)
    shape = params["shape"].numpy().astype(np.float64)
    marks = np.load(folder / "landmarks.npy")[:, params["rigid_index"].numpy(), :2]
    focal = train["focal_len"]
    for frame in train["frames"][:: max(1, n // 7)]:
        world_to_cam = np.linalg.inv(np.array(frame["transform_matrix"]))
        cam = shape @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
        assert (cam[:, 2] < 0).all(), "OpenGL camera looks down -z"
        u = train["cx"] + focal * cam[:, 0] / -cam[:, 2]
        v = train["cy"] - focal * cam[:, 1] / -cam[:, 2]
        error = np.linalg.norm(np.stack([u, v], 1) - marks[frame["img_id"]], axis=1)
        assert np.median(error) < 3.0 * max(h, w) / 512

    with (folder / "au.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == AU_COLUMNS and len(rows) == n + 1
    blink = np.array([float(r[AU_COLUMNS.index(" AU45_r")]) for r in rows[1:]])
    assert np.median(blink) < 0.5 and blink.max() <= 5


def test_check_passes_then_fails_on_corruption(processed, tmp_path: Path) -> None:
    folder = processed("anchor", tasks="3,4,9")
    results = TransformsTask().check(folder_facts(folder))
    assert [r.group for r in results] == ["transforms_train.json", "transforms_val.json", "au.csv"]
    assert all(r.ok for r in results), results
    groups = {"transforms_train.json", "transforms_val.json", "au.csv"}
    assert all(r.ok for r in check_folder(folder) if r.group in groups)

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    train = json.loads((broken / "transforms_train.json").read_text())
    train["frames"][3]["transform_matrix"][0][0] *= 1.5
    (broken / "transforms_train.json").write_text(json.dumps(train))
    val = json.loads((broken / "transforms_val.json").read_text())
    val["frames"].append(dict(val["frames"][0], img_id=0))
    (broken / "transforms_val.json").write_text(json.dumps(val))
    lines = (broken / "au.csv").read_text().splitlines(keepends=True)
    (broken / "au.csv").write_text("".join(lines[:-1]))
    results = {r.group: r for r in TransformsTask().check(folder_facts(broken))}
    assert "not orthonormal" in results["transforms_train.json"].problem
    assert "in both splits" in results["transforms splits"].problem
    assert "rows but the dataset has" in results["au.csv"].problem


def test_check_accepts_a_radnerf_folder_without_optional_fields(processed, tmp_path: Path) -> None:
    """RAD-NeRF's save_transforms writes no h, w, face_rect, eye_ratio; OpenFace no ' frame'."""
    folder = tmp_path / "foreign"
    shutil.copytree(processed("anchor", tasks="3,4,9"), folder)
    for split in ("train", "val"):
        path = folder / f"transforms_{split}.json"
        document = json.loads(path.read_text())
        del document["h"], document["w"]
        for frame in document["frames"]:
            del frame["face_rect"], frame["eye_ratio"]
        path.write_text(json.dumps(document))
    text = (folder / "au.csv").read_text()
    (folder / "au.csv").write_text(text.replace(" frame,", "frame,", 1))
    assert all(r.ok for r in TransformsTask().check(folder_facts(folder)))

    document = json.loads((folder / "transforms_val.json").read_text())
    document["frames"][0]["transform_matrix"] = [[1, 0], [0, 1, 0]]
    (folder / "transforms_val.json").write_text(json.dumps(document))
    (folder / "au.csv").write_text(text.replace(" AU45_r", " AU46_r"))
    results = {r.group: r for r in TransformsTask().check(folder_facts(folder))}
    assert "transform_matrix is not a 4x4" in results["transforms_val.json"].problem
    assert "lacks ' AU45_r'" in results["au.csv"].problem


def test_gaps_short_filled_long_left_out_of_splits(tmp_path: Path) -> None:
    """Blank frames: a 3-frame gap is interpolated, an 8-frame gap leaves the splits; N rows.
    Screening flags the interpolated blank frames too: both runs leave the splits with their
    4-frame margins, and so do the 4 frames left between them (shorter than an audio window)."""
    frames = []
    with av.open(str(clip_path("anchor"))) as clip:
        for _, frame in zip(range(60), clip.decode(video=0), strict=False):
            frames.append(frame.to_ndarray(format="bgr24"))
    short, long = range(20, 23), range(35, 43)
    for i in (*short, *long):
        frames[i] = np.zeros_like(frames[i])
    video = write_video(tmp_path / "gaps.mp4", frames)
    out = tmp_path / "out"
    config = build_config({"video": video, "out": out, "tasks": "3,4,9"})
    outcomes = {o.name: o for o in Pipeline(config, Console(quiet=True)).run()}
    assert all(o.status == "done" for o in outcomes.values()), outcomes

    record = _manifest(out)["tasks"]["landmarks"]
    assert record["info"]["interpolated"] == [[20, 22]]
    assert record["info"]["invalid"] == [[35, 42]]
    assert record["figures"]["dropped_frames"] == 8 and record["warnings"]
    marks = np.load(out / "landmarks.npy")
    assert np.isfinite(marks[20:23]).all() and np.isnan(marks[35:43]).all()
    ids = [
        f["img_id"]
        for split in ("train", "val")
        for f in json.loads((out / f"transforms_{split}.json").read_text())["frames"]
    ]
    assert ids == [i for i in range(60) if not short[0] - 4 <= i <= long[-1] + 4]
    flags = _manifest(out)["tasks"]["transforms"]["info"]["flags"]
    assert flags["no_face"] == [[35, 42]] and [20, 22] in flags["shot_change"] + flags["blur"]
    with (out / "au.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    success = [int(r[AU_COLUMNS.index(" success")]) for r in rows]
    assert len(rows) == 60 and success == [0 if i in long else 1 for i in range(60)]
    mine = {"transforms_train.json", "transforms_val.json", "au.csv"}
    assert all(r.ok for r in check_folder(out) if r.group in mine)
