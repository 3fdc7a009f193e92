"""Task 5: semantic parsing -> parsing/{i}.png in AD-NeRF's four colours (head, neck, torso,
background).

Default backend `mediapipe`: the selfie segmenter's person probabilities, smoothed over time, cut
into head / neck / torso by the face mesh of task 4 (talkprep.geometry.masks). Backend `bisenet`:
face-parsing.PyTorch's 19-class BiSeNet, classes mapped as AD-NeRF does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkprep.config import Config
from talkprep.errors import TaskError
from talkprep.geometry.masks import (
    BISENET_TO_LABEL,
    HEAD,
    N_LABELS,
    bgr_to_labels,
    face_frame,
    face_mask,
    head_neck_torso,
    iou,
    labels_to_bgr,
)
from talkprep.io.images import read_image, write_png
from talkprep.io.prefetch import WriteBehind, read_ahead
from talkprep.tasks.base import (
    CheckResult,
    FolderFacts,
    Task,
    TaskContext,
    TaskResult,
    batched,
    check_numbered_files,
)
from talkprep.tasks.landmarks import LANDMARKS_NAME, load_landmarks

FRAMES_DIR = "ori_imgs"
PARSING_DIR = "parsing"
SMOOTH_RADIUS = 2
"""Person probabilities are averaged over frames i-2..i+2 with triangular weights: enough to
stop edge flicker, short enough not to smear a turning head."""
PERSON_THRESHOLD = 0.5
FACE_COVERAGE = 0.99
"""A frame's head mask should hold this fraction of its face-mesh polygon."""
BISENET_BATCH = 4
CHECK_SAMPLES = 3
LABEL_NAMES = ("background", "head", "neck", "torso")


def nearest_valid(valid: np.ndarray) -> np.ndarray:
    """For each frame, the index of the nearest frame with a face (valid must have one True)."""
    have = np.flatnonzero(valid)
    index = np.arange(valid.size)
    pos = np.searchsorted(have, index)
    left = have[np.clip(pos - 1, 0, have.size - 1)]
    right = have[np.clip(pos, 0, have.size - 1)]
    return np.where(np.abs(index - left) <= np.abs(right - index), left, right)


def smooth_in_time(maps: Iterator[np.ndarray], radius: int = SMOOTH_RADIUS) -> Iterator[np.ndarray]:
    """Triangular-weighted moving average over a stream of maps (window cut at the ends).

    Holds 2 * radius + 1 maps; yields one output per input, in order.
    """
    window: deque[tuple[int, np.ndarray]] = deque()

    def emit(centre: int) -> np.ndarray:
        total = np.zeros_like(window[0][1], dtype=np.float32)
        weight_sum = 0.0
        for index, value in window:
            distance = abs(index - centre)
            if distance <= radius:
                weight = float(radius + 1 - distance)
                total += weight * value
                weight_sum += weight
        return total / weight_sum

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


class ParsingStats:
    """Per-frame quality figures, gathered while streaming (a few numbers per frame)."""

    def __init__(self) -> None:
        self.fractions: list[np.ndarray] = []
        self.flicker: list[float] = []
        self.coverage: list[float] = []
        self.uncovered_frames: list[int] = []
        self._previous_head: np.ndarray | None = None

    def add(self, index: int, labels: np.ndarray, face_xy: np.ndarray | None) -> None:
        counts = np.bincount(labels.ravel(), minlength=N_LABELS)
        self.fractions.append(counts / labels.size)
        head = labels == HEAD
        if self._previous_head is not None:
            self.flicker.append(1.0 - iou(self._previous_head, head))
        self._previous_head = head
        if face_xy is not None:
            face = face_mask(face_xy, *labels.shape)
            area = np.count_nonzero(face)
            if area:
                covered = np.count_nonzero(face & head) / area
                self.coverage.append(covered)
                if covered < FACE_COVERAGE:
                    self.uncovered_frames.append(index)

    def figures(self) -> dict[str, Any]:
        fractions = np.asarray(self.fractions)
        out: dict[str, Any] = {}
        for label, name in enumerate(LABEL_NAMES):
            column = fractions[:, label]
            out[f"{name}_fraction"] = {
                "median": round(float(np.median(column)), 4),
                "min": round(float(column.min()), 4),
                "max": round(float(column.max()), 4),
            }
        flicker = np.asarray(self.flicker) if self.flicker else np.zeros(1)
        out["head_flicker_1_minus_iou"] = {
            "median": round(float(np.median(flicker)), 4),
            "p95": round(float(np.percentile(flicker, 95)), 4),
        }
        out["frames_head_misses_face"] = len(self.uncovered_frames)
        out["first_frames_head_misses_face"] = self.uncovered_frames[:10]
        out["face_coverage_min"] = round(min(self.coverage), 4) if self.coverage else None
        return out


class ParsingTask(Task):
    number = 5
    name = "parsing"
    title = "semantic parsing -> parsing/"
    needs = ("frames", "landmarks")
    makes = (f"{PARSING_DIR}/*.png",)
    config_fields = ("parser",)

    def input_files(self, config: Config) -> list[Path]:
        if config.parser == "bisenet" and config.parser_weights is not None:
            return [config.parser_weights]
        return []

    def run(self, ctx: TaskContext) -> TaskResult:
        n_frames = ctx.frame_count()
        landmarks = load_landmarks(ctx.out / LANDMARKS_NAME, n_frames)
        valid = ~np.isnan(landmarks[:, :, :2]).any(axis=(1, 2))
        if not valid.any():
            raise TaskError("task 4 found no face in any frame; parsing needs one; check the video")
        nearest = nearest_valid(valid)
        (ctx.out / PARSING_DIR).mkdir(parents=True, exist_ok=True)
        paths = [ctx.out / FRAMES_DIR / f"{i}.jpg" for i in range(n_frames)]
        stats = ParsingStats()
        with ThreadPoolExecutor(max_workers=2) as pool:
            frames = read_ahead(pool, read_image, paths)
            if ctx.config.parser == "bisenet":
                labelled = self._bisenet_labels(ctx, frames)
            else:
                labelled = self._mediapipe_labels(frames, landmarks, nearest)
            writer = WriteBehind(pool)
            progress = ctx.progress(enumerate(labelled), total=n_frames, desc="parsing")
            for index, labels in progress:
                face_xy = np.asarray(landmarks[index, :, :2]) if valid[index] else None
                stats.add(index, labels, face_xy)
                writer.submit(
                    write_png, ctx.out / PARSING_DIR / f"{index}.png", labels_to_bgr(labels)
                )
            writer.finish()
        figures = {
            "parser": ctx.config.parser,
            "frames_without_face": int((~valid).sum()),
            **stats.figures(),
        }
        warnings = []
        if stats.uncovered_frames:
            warnings.append(
                f"the head mask misses part of the face in {len(stats.uncovered_frames)} frame(s), "
                f"first {stats.uncovered_frames[0]}"
            )
        return TaskResult(frames=n_frames, figures=figures, warnings=warnings)

    def _mediapipe_labels(
        self, frames: Iterator[np.ndarray], landmarks: np.ndarray, nearest: np.ndarray
    ) -> Iterator[np.ndarray]:
        from talkprep.models.selfie_segmenter import SelfieSegmenter

        sizes: deque[tuple[int, int]] = deque()  # frames read but not yet labelled

        def probabilities(segmenter: SelfieSegmenter) -> Iterator[np.ndarray]:
            for frame in frames:
                sizes.append(frame.shape[:2])
                yield segmenter.segment(frame)

        with SelfieSegmenter() as segmenter:
            for index, prob in enumerate(smooth_in_time(probabilities(segmenter))):
                height, width = sizes.popleft()
                full = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
                person = full > PERSON_THRESHOLD
                face = face_frame(np.asarray(landmarks[nearest[index], :, :2]), height, width)
                yield head_neck_torso(person, face)

    def _bisenet_labels(
        self, ctx: TaskContext, frames: Iterator[np.ndarray]
    ) -> Iterator[np.ndarray]:
        from talkprep.models.bisenet import load_bisenet, parse_classes

        device = ctx.device
        model = load_bisenet(ctx.config.parser_weights, device)  # type: ignore[arg-type]
        for batch in batched(frames, BISENET_BATCH):
            classes = parse_classes(model, batch, device)
            for frame, frame_classes in zip(batch, classes, strict=True):
                height, width = frame.shape[:2]
                labels = BISENET_TO_LABEL[frame_classes]
                if labels.shape != (height, width):
                    labels = cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
                yield labels

    def check(self, facts: FolderFacts) -> list[CheckResult]:
        group = f"{PARSING_DIR}/*.png"
        result = check_numbered_files(facts, PARSING_DIR, ".png", group)
        if result is None or not result.ok:
            return [] if result is None else [result]
        for index in sorted({0, result.count // 2, result.count - 1})[:CHECK_SAMPLES]:
            path = facts.root / PARSING_DIR / f"{index}.png"
            try:
                image = read_image(path)
            except ValueError:
                return [CheckResult(group, result.count, f"{path.name} is not a readable PNG")]
            if facts.frame_size is not None and image.shape[:2] != tuple(facts.frame_size):
                return [
                    CheckResult(
                        group,
                        result.count,
                        f"{path.name} is {image.shape[1]}x{image.shape[0]}, frames are "
                        f"{facts.frame_size[1]}x{facts.frame_size[0]}",
                    )
                ]
            _, stray = bgr_to_labels(image)
            if stray:
                return [
                    CheckResult(
                        group,
                        result.count,
                        f"{path.name} has {stray} pixel(s) outside the four parsing colours",
                    )
                ]
        return [result]
