"""Task 5 runs each frame's stateless work on a thread pool: the output must not depend on the
threads (byte for byte), and every frame must meet its own maps, layout and file."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from synth_face import synthetic_portrait
from task_context import task_context

from talkprep.geometry.masks import iou
from talkprep.io.images import read_image, write_jpeg
from talkprep.semantics import SemanticClass
from talkprep.tasks import parsing
from talkprep.tasks.parsing import ParsingTask, time_windows, weighted_mean

SIZE = 256
SHIFT = 8
"""Pixels the scene moves right from one frame to the next, so that neighbours differ."""
N_FRAMES = 7


def smoothed(maps: np.ndarray, radius: int) -> list[np.ndarray]:
    """Task 5's time smoothing: the windows in order, each averaged with its weights."""
    return [weighted_mean(window, weights) for window, weights in time_windows(iter(maps), radius)]


def serial_smoothing(maps: Iterator[np.ndarray], radius: int) -> Iterator[np.ndarray]:
    """The time windows as task 5 made them in the main thread before the pool took them over
    (each averaged by weighted_mean, whose sums test_parsing checks)."""
    window: deque[tuple[int, np.ndarray]] = deque()

    def emit(centre: int) -> np.ndarray:
        near = [(index, value) for index, value in window if abs(index - centre) <= radius]
        weights = [float(radius + 1 - abs(index - centre)) for index, _ in near]
        return weighted_mean([value for _, value in near], weights)

    count = 0
    for index, value in enumerate(maps):
        window.append((index, value))
        count = index + 1
        centre = index - radius
        if centre >= 0:
            yield emit(centre)
            while window and window[0][0] < centre + 1 - radius:
                window.popleft()
    for centre in range(max(0, count - radius), count):
        yield emit(centre)
        while window and window[0][0] < centre + 1 - radius:
            window.popleft()


@pytest.mark.parametrize("radius", [0, 1, 2])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 11])
def test_windowed_smoothing_is_bit_identical_to_the_serial_one(n: int, radius: int) -> None:
    maps = np.random.default_rng(n).random((n, 3, 4, 5)).astype(np.float32)
    expected = list(serial_smoothing(iter(maps), radius))
    found = list(smoothed(maps, radius))
    assert len(found) == n
    for a, b in zip(found, expected, strict=True):
        assert a.dtype == b.dtype == np.float32
        assert a.tobytes() == b.tobytes()


def moving_scene(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A folder of frames in which the portrait moves SHIFT pixels right per frame, with its
    landmarks; returns each frame's segmenter mask (everyone) and tracked person's mask."""
    scene = synthetic_portrait(size=SIZE)
    tracked = (scene.classes != SemanticClass.BACKGROUND) & (scene.classes != SemanticClass.OTHER)
    (folder / "ori_imgs").mkdir(parents=True)
    people, tracked_people, landmarks = [], [], []
    for i in range(N_FRAMES):
        write_jpeg(folder / "ori_imgs" / f"{i}.jpg", np.roll(scene.image, SHIFT * i, axis=1))
        people.append(np.roll(scene.person, SHIFT * i, axis=1))
        tracked_people.append(np.roll(tracked, SHIFT * i, axis=1))
        landmarks.append(scene.landmarks + (SHIFT * i, 0.0, 0.0))
    np.save(folder / "landmarks.npy", np.stack(landmarks).astype(np.float32))
    return people, tracked_people


def run_task(
    folder: Path, people: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> dict[str, object]:
    """Task 5 with a segmenter that gives each frame's known person mask, checking that the
    frames reach it one by one and in order; returns the figures."""
    from talkprep.models import selfie_segmenter

    frames = [read_image(folder / "ori_imgs" / f"{i}.jpg") for i in range(N_FRAMES)]
    calls = {"n": 0}
    colour_model_calls = min(parsing.APPEARANCE_FRAMES, N_FRAMES)

    def segment(self: object, image: np.ndarray) -> np.ndarray:
        main_pass = calls["n"] - colour_model_calls
        calls["n"] += 1
        if main_pass >= 0:
            assert np.array_equal(image, frames[main_pass]), f"frame {main_pass} out of order"
            return people[main_pass].astype(np.float32)
        return np.zeros(image.shape[:2], np.float32)

    monkeypatch.setattr(selfie_segmenter.SelfieSegmenter, "segment", segment)
    ctx = task_context(folder, N_FRAMES, "5")
    figures = ParsingTask().run(ctx).figures
    assert calls["n"] == colour_model_calls + N_FRAMES
    return figures


def test_task_output_does_not_depend_on_the_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = {}
    for workers, look_ahead in ((1, 1), (3, 2), (2, parsing.LOOK_AHEAD)):
        folder = tmp_path / f"w{workers}_a{look_ahead}"
        people, tracked = moving_scene(folder)
        monkeypatch.setattr(parsing, "WORKERS", workers)
        monkeypatch.setattr(parsing, "LOOK_AHEAD", look_ahead)
        figures = run_task(folder, people, monkeypatch)
        files = {
            f"{group}/{i}.png": (folder / group / f"{i}.png").read_bytes()
            for group in ("semantics", "parsing")
            for i in range(N_FRAMES)
        }
        outputs[workers, look_ahead] = (figures, files)
    (first_figures, first_files), *others = outputs.values()
    for figures, files in others:
        assert figures == first_figures
        assert files == first_files

    # each file is its own frame's: the person where that frame has it, not where a neighbour does
    for i in range(2, N_FRAMES - 2):
        classes = cv2.imread(str(folder / "semantics" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        person = (classes != SemanticClass.BACKGROUND) & (classes != SemanticClass.OTHER)
        own = iou(person, tracked[i])
        assert own > 0.9
        assert own > max(iou(person, tracked[i - 1]), iou(person, tracked[i + 1]))


@pytest.mark.parametrize("skin_off_head", [False, True])
def test_hands_are_looked_for_where_skin_lies_off_the_head_and_now_and_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skin_off_head: bool
) -> None:
    """Idle looks (every HAND_STRIDE_IDLE frames) ask the detector only where the gate sees skin
    off the head, and every HAND_STRIDE_BLIND frames regardless (the frames the colour models
    are fitted on are asked once more, on their own detector, to keep hands out of them)."""
    from talkprep.models import hand_detector

    asked: list[int] = []

    def detect(self: hand_detector.HandDetector, image: np.ndarray) -> np.ndarray:
        if self.tracking:
            asked.append(1)
        return parsing.NO_HANDS

    monkeypatch.setattr(parsing, "skin_off_head", lambda *args: skin_off_head)
    monkeypatch.setattr(hand_detector.HandDetector, "detect", detect)
    monkeypatch.setattr(parsing, "HAND_STRIDE_BLIND", 2 * parsing.HAND_STRIDE_IDLE)
    people, _ = moving_scene(tmp_path)
    run_task(tmp_path, people, monkeypatch)
    looks = range(0, N_FRAMES, parsing.HAND_STRIDE_IDLE)
    blind = range(0, N_FRAMES, 2 * parsing.HAND_STRIDE_IDLE)
    assert len(asked) == len(looks if skin_off_head else blind)


def written_content(path: Path) -> bytes:
    """A JPEG's bytes; a PNG's pixels. ISA-L's deflate, under write_png_fast, has been seen to
    give another valid stream of the same length for the same pixels: 5 of 2,772 torso images
    of the shared clips, written by task 7 before and after it moved to span workers (the same
    work per frame); repeated encodings of those images, on one thread and on four, did not repeat
    it."""
    if path.suffix == ".png":
        return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).tobytes()
    return path.read_bytes()


def parse_and_composite(folder: Path, span_frames: int, cores: int) -> tuple[Any, dict[str, bytes]]:
    """Tasks 5 and 7 on `folder` (the real segmenter and hand detector) in spans of
    `span_frames`, on `cores` span workers; their figures and info, and every file they wrote."""
    from talkprep import parallel
    from talkprep.tasks import torso

    write_jpeg(folder / "bc.jpg", np.full_like(read_image(folder / "ori_imgs" / "0.jpg"), 90))
    parallel.set_cores(cores)
    try:
        with parallel.task_slot():
            parsed = ParsingTask().run(task_context(folder, N_FRAMES, "5"))
            composited = torso.TorsoTask().run(task_context(folder, N_FRAMES, "7"))
    finally:
        parallel.set_cores(None)
    files = {
        f"{group}/{path.name}": written_content(path)
        for group in ("semantics", "parsing", "gt_imgs", "torso_imgs")
        for path in sorted((folder / group).iterdir())
    }
    assert len(files) == 4 * N_FRAMES
    return (parsed.figures, parsed.info, composited.figures), files


def test_spans_and_workers_give_the_same_files_as_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pool_starts: list[int]
) -> None:
    """Tasks 5 and 7 over three spans, here and on two worker processes, write what one span
    writes (JPEGs byte for byte, PNGs pixel for pixel), with the same figures: each span reads
    the frames within the time window beyond its ends, and the mask jump across a span's edge
    is measured when the spans' figures are joined."""
    from talkprep import parallel
    from talkprep.tasks import torso

    monkeypatch.setattr(parallel, "MIN_WORKER_FRAMES", 1)
    results = {}
    for name, span_frames, cores in (("one span", 100, 1), ("spans", 3, 1), ("workers", 3, 2)):
        monkeypatch.setattr(parsing, "SPAN_FRAMES", span_frames)
        monkeypatch.setattr(torso, "SPAN_FRAMES", span_frames)
        folder = tmp_path / name.replace(" ", "_")
        moving_scene(folder)
        results[name] = parse_and_composite(folder, span_frames, cores)
    assert pool_starts == [2, 2], "tasks 5 and 7 each on two workers"
    (figures, files) = results["one span"]
    assert len(figures[1][parsing.MASK_JUMP_KEY]) == N_FRAMES
    for name in ("spans", "workers"):
        assert results[name][0] == figures, name
        different = [key for key in files if results[name][1][key] != files[key]]
        assert different == [], name
