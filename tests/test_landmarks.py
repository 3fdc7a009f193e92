"""Task 4: face mesh landmarks, gap filling, .lms files, track_params.pt and their checks."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import MODELS, clip_path
from synth import moving_square_frames, write_video

from talkprep.check import check_folder, folder_facts
from talkprep.config import build_config
from talkprep.console import Console
from talkprep.geometry.face_topology import LMS68, NUM_MESH_POINTS
from talkprep.geometry.jaw_contour import landmarks68
from talkprep.io.images import read_image, write_jpeg
from talkprep.manifest import manifest_path
from talkprep.pipeline import Pipeline
from talkprep.tasks.base import FolderFacts
from talkprep.tasks.landmarks import (
    BLENDSHAPES_NAME,
    SPAN_FRAMES,
    WARM_UP,
    LandmarkFile,
    LandmarksTask,
    blendshape_scores,
    detect_landmarks,
    detect_one_face,
    fill_short_gaps,
    index_ranges,
    lms_text,
    mesh_box,
    pick_face,
    several_faces,
    tracking_spans,
)


def _ramp(n: int) -> np.ndarray:
    """Landmarks whose every coordinate equals the frame index: interpolation is exact."""
    return np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], (n, 4, 3)).copy()


def test_short_inner_gap_is_linear_and_flagged() -> None:
    marks = _ramp(20)
    marks[5:8] = np.nan
    filled, flagged = fill_short_gaps(marks, max_gap=5)
    np.testing.assert_allclose(filled, _ramp(20), atol=1e-5)
    assert flagged.tolist() == [5 <= i < 8 for i in range(20)]


def test_long_gap_stays_nan_and_edges_hold_nearest() -> None:
    marks = _ramp(30)
    marks[0:2] = np.nan
    marks[10:16] = np.nan  # 6 frames: longer than the limit
    marks[27:] = np.nan
    filled, flagged = fill_short_gaps(marks, max_gap=5)
    assert np.isnan(filled[10:16]).all() and not flagged[10:16].any()
    assert (filled[0:2] == 2).all() and (filled[27:] == 26).all()
    assert index_ranges(flagged) == [[0, 1], [27, 29]]
    assert index_ranges(~np.isfinite(filled).all(axis=(1, 2))) == [[10, 15]]


def test_no_face_at_all_stays_nan() -> None:
    filled, flagged = fill_short_gaps(np.full((4, 2, 3), np.nan, np.float32))
    assert np.isnan(filled).all() and not flagged.any()


def _face(x0: float, y0: float, size: float) -> np.ndarray:
    points = np.zeros((NUM_MESH_POINTS, 3), np.float32)
    points[:, 0] = np.linspace(x0, x0 + size, NUM_MESH_POINTS)
    points[:, 1] = np.linspace(y0, y0 + size, NUM_MESH_POINTS)
    return points


def test_pick_face_keeps_the_track_not_the_largest() -> None:
    small, large = _face(10, 10, 100), _face(300, 300, 150)
    faces = np.stack([large, small])
    assert pick_face(faces, None) == 0
    assert pick_face(faces, mesh_box(_face(14, 12, 98))) == 1
    assert pick_face(faces, mesh_box(_face(295, 305, 140))) == 0


def test_lms_text_round_trips() -> None:
    points = np.random.default_rng(0).uniform(0, 512, (68, 2)).astype(np.float32)
    lines = lms_text(points).splitlines()
    assert len(lines) == 68
    parsed = np.array([[float(v) for v in line.split()] for line in lines])
    np.testing.assert_allclose(parsed, points, atol=1e-4)


def _manifest(folder: Path) -> dict:
    return json.loads(manifest_path(folder).read_text())


@pytest.mark.parametrize("clip", ["anchor", "hdtf"])
def test_real_clip_landmarks(processed, clip: str) -> None:
    import torch

    folder = processed(clip, tasks="3,4")
    manifest = _manifest(folder)
    record = manifest["tasks"]["landmarks"]
    frames_info = manifest["tasks"]["frames"]["info"]
    n, frame_h, frame_w = frames_info["n_frames"], frames_info["height"], frames_info["width"]
    marks = np.load(folder / "landmarks.npy")
    assert marks.shape == (n, NUM_MESH_POINTS, 3) and marks.dtype == np.float32
    assert np.isfinite(marks).all(), "a face is visible in every frame of this clip"
    assert record["figures"]["dropped_frames"] == 0
    assert record["info"]["invalid"] == []

    for i in (0, n // 2, n - 1):
        lms = np.loadtxt(folder / "ori_imgs" / f"{i}.lms")
        assert lms.shape == (68, 2)
        np.testing.assert_allclose(lms, landmarks68(marks[i : i + 1])[0], atol=1e-3)
        np.testing.assert_allclose(lms[17:], marks[i, LMS68[17:], :2], atol=1e-3)
        assert (lms >= 0).all() and (lms[:, 0] < frame_w).all() and (lms[:, 1] < frame_h).all()
        brows, eyes, nose, mouth, chin = lms[17:27], lms[36:48], lms[30], lms[48:68], lms[8]
        assert brows[:, 1].mean() < eyes[:, 1].mean() < nose[1] < mouth[:, 1].mean() < chin[1]
        # the subject's right eye (36-41) is on the image left for a frontal face
        assert lms[36:42, 0].mean() < lms[42:48, 0].mean()

    params = torch.load(folder / "track_params.pt", weights_only=True)
    for key in ("euler", "trans"):
        assert params[key].shape == (n, 3) and params[key].dtype == torch.float32
    assert params["focal"].shape == (1,) and float(params["focal"][0]) > 0
    assert params["reproj_err"].shape == (n,)
    assert params["shape"].shape == (len(params["rigid_index"]), 3)
    distance_m = np.linalg.norm(params["trans"].numpy(), axis=1) / 10
    assert 0.3 < np.median(distance_m) < 2.0


def test_check_passes_then_fails_on_corruption(processed, tmp_path: Path) -> None:
    folder = processed("anchor", tasks="3,4")
    results = {r.group: r for r in LandmarksTask().check(_facts(folder))}
    assert set(results) == {"landmarks.npy", "ori_imgs/*.lms", "track_params.pt"}
    assert all(r.ok for r in results.values()), results
    # the whole-folder check also names the files later tasks make; task 4's own must pass
    assert all(r.ok for r in check_folder(folder) if r.group in results)

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    marks = np.load(broken / "landmarks.npy")
    np.save(broken / "landmarks.npy", marks[:-3])
    (broken / "ori_imgs" / "0.lms").write_text("1 2\n3 4\n")
    results = {r.group: r for r in LandmarksTask().check(_facts(broken))}
    assert "rows but the dataset has" in results["landmarks.npy"].problem
    assert "expected 68" in results["ori_imgs/*.lms"].problem
    (broken / "ori_imgs" / "5.lms").unlink()
    results = {r.group: r for r in LandmarksTask().check(_facts(broken))}
    assert "5.lms is missing" in results["ori_imgs/*.lms"].problem


def _facts(folder: Path) -> FolderFacts:
    return folder_facts(folder)


def test_video_without_face_fails_with_one_line(tmp_path: Path) -> None:
    video = write_video(tmp_path / "square.mp4", moving_square_frames(10, size=128))
    config = build_config({"video": video, "out": tmp_path / "out", "tasks": "3,4"})
    outcomes = {o.name: o for o in Pipeline(config, Console(quiet=True)).run()}
    assert outcomes["frames"].status == "done"
    assert outcomes["landmarks"].status == "failed"
    assert outcomes["landmarks"].message.startswith("no face found in any of the 10 frames")
    assert "\n" not in outcomes["landmarks"].message


def test_second_smaller_face_is_ignored(tmp_path: Path) -> None:
    """Two people in view: the larger face is kept in every frame, the other never swapped in."""
    folder = tmp_path / "ori_imgs"
    folder.mkdir()
    n = 20
    with av.open(str(clip_path("anchor"))) as main_clip, av.open(str(clip_path("hdtf"))) as other:
        pairs = zip(main_clip.decode(video=0), other.decode(video=0), strict=False)
        for i, (big, small) in zip(range(n), pairs, strict=False):
            canvas = np.zeros((512, 1024, 3), np.uint8)
            canvas[:, :512] = big.to_ndarray(format="bgr24")
            canvas[128:384, 640:896] = small.to_ndarray(format="bgr24")[::2, ::2]
            write_jpeg(folder / f"{i}.jpg", canvas)
    assert several_faces(folder, n), "the census must send this video to the multi-face tracker"
    marks, multi_face = detect_landmarks(folder, n)
    assert multi_face > 0
    assert np.isfinite(marks).all()
    assert (marks[..., 0].mean(axis=1) < 512).all()


def test_landmark_file_reads_rows_as_np_load(tmp_path: Path) -> None:
    from talkprep.errors import TaskError
    from talkprep.io.atomic import write_npy

    rng = np.random.default_rng(0)
    table = rng.normal(size=(2500, NUM_MESH_POINTS, 3)).astype(np.float32)
    table[[3, 2048, 2499]] = np.nan
    path = tmp_path / "landmarks.npy"
    write_npy(path, table)
    with LandmarkFile(path, 2500) as landmarks:
        assert len(landmarks) == 2500
        np.testing.assert_array_equal(landmarks.rows(1020, 1030), table[1020:1030])
        np.testing.assert_array_equal(landmarks.rows(2495, 2600), table[2495:])
        np.testing.assert_array_equal(landmarks[7], table[7])
        np.testing.assert_array_equal(landmarks.valid(), np.isfinite(table).all(axis=(1, 2)))
    with pytest.raises(TaskError, match="2500 rows for 2400 frames"):
        LandmarkFile(path, 2400)
    write_npy(path, table[:, :, :2].copy())
    with pytest.raises(TaskError, match=r"expected float32 \[N, 478, 3\]"):
        LandmarkFile(path, 2500)
    write_npy(path, table)
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - 100)
    with LandmarkFile(path, 2500) as landmarks, pytest.raises(TaskError, match="shorter"):
        landmarks.valid()


def test_tracking_spans_keep_every_frame_once() -> None:
    assert tracking_spans(SPAN_FRAMES - 1) == [range(SPAN_FRAMES - 1)]
    first, second, third = tracking_spans(501)
    assert first == range(167)
    assert second == range(167 - WARM_UP, 334)
    assert third == range(334 - WARM_UP, 501)


def test_one_face_tracked_in_halves_matches_one_pass(processed) -> None:
    """The anchor clip (one face): the first half is the one-pass track itself; the second half,
    warmed up, stays within the tracker's own noise of it (unwarmed, its first frame is off by
    about 4 px)."""
    folder = processed("anchor", tasks="3") / "ori_imgs"
    n = 500
    assert n == 2 * SPAN_FRAMES
    assert not several_faces(folder, n)
    halves = detect_one_face(folder, n)
    one_pass, multi_face = detect_landmarks(folder, n)
    assert multi_face == 0 and np.isfinite(halves).all()
    np.testing.assert_array_equal(halves[: n // 2], one_pass[: n // 2])
    assert np.abs(halves - one_pass)[..., :2].max() < 1.0


def test_one_face_tracking_stops_with_its_progress_and_on_a_failure(
    processed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (the progress wrapper raising) stops the spans at their next frame, and a frame
    that cannot be read reaches the caller, in this process and from span workers alike; no
    thread or worker process is left behind."""
    import multiprocessing

    import talkprep.tasks.landmarks as landmarks_module
    from talkprep import parallel

    monkeypatch.setattr(parallel, "MIN_WORKER_FRAMES", 1)  # two workers for 500 frames

    source = processed("anchor", tasks="3") / "ori_imgs"
    reads = []

    def counted_read(path, *args):
        reads.append(path)
        return read_image(path, *args)

    monkeypatch.setattr(landmarks_module, "read_image", counted_read)

    class Stopped(Exception):
        pass

    def progress(items, total: int, desc: str):
        for count, item in enumerate(items):
            if count == 20:
                raise Stopped
            yield item

    threads = threading.active_count()
    with pytest.raises(Stopped):
        detect_one_face(source, 500, progress)
    assert threading.active_count() == threads
    assert len(reads) < 100, "the spans went on after the stop"
    with pytest.raises(Stopped):
        detect_one_face(source, 500, progress, workers=2)
    assert not multiprocessing.active_children()

    folder = tmp_path / "ori_imgs"
    shutil.copytree(source, folder)
    (folder / "300.jpg").unlink()
    for workers in (1, 2):
        with pytest.raises(FileNotFoundError):
            detect_one_face(folder, 500, workers=workers)
        assert threading.active_count() == threads
        assert not multiprocessing.active_children()


def test_blendshapes_when_a_model_is_given(processed, tmp_path: Path) -> None:
    model = MODELS / "face_landmarker.task"
    if not model.is_file():
        pytest.skip(f"{model} is not available")
    config = build_config({"video": "v.mp4", "out": tmp_path, "blendshape_model": model})
    assert BLENDSHAPES_NAME in LandmarksTask().outputs(config)
    assert BLENDSHAPES_NAME not in LandmarksTask().outputs(
        build_config({"video": "v", "out": tmp_path})
    )

    source = processed("hdtf", tasks="3")
    n = 30
    (tmp_path / "ori_imgs").mkdir()
    for i in range(n):
        shutil.copy(source / "ori_imgs" / f"{i}.jpg", tmp_path / "ori_imgs" / f"{i}.jpg")
    scores = blendshape_scores(tmp_path / "ori_imgs", n, 25.0, model)
    assert scores.shape == (n, 52) and scores.dtype == np.float32
    assert np.isfinite(scores).all() and scores.min() >= 0 and scores.max() <= 1
    assert scores.std(axis=0).max() > 0.05, "blendshapes move while the person talks"
    np.save(tmp_path / BLENDSHAPES_NAME, scores)
    results = {r.group: r for r in LandmarksTask().check(folder_facts(tmp_path))}
    assert results[BLENDSHAPES_NAME].ok
    np.save(tmp_path / BLENDSHAPES_NAME, scores[:, :50])
    results = {r.group: r for r in LandmarksTask().check(folder_facts(tmp_path))}
    assert "expected [N, 52]" in results[BLENDSHAPES_NAME].problem
