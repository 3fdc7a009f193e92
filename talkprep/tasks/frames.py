"""Task 3: the frames, resampled by presentation time to the target fps, optionally auto-cropped."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from talkprep.errors import TaskError
from talkprep.io.images import image_size, write_jpeg
from talkprep.io.prefetch import WriteBehind
from talkprep.io.video import iter_frames, output_frame_count, resample_by_time
from talkprep.tasks.base import (
    CheckResult,
    FolderFacts,
    Task,
    TaskContext,
    TaskResult,
    check_numbered_files,
)

FRAMES_DIR = "ori_imgs"
HEAD_AND_SHOULDERS = 2.8
"""Crop side as a multiple of the detected face box size: head, hair and some shoulders."""
FACE_CENTRE_HEIGHT = 0.42
"""Where the face centre sits in the crop, as a fraction of its height from the top."""
MOTION_MARGIN = 1.3
"""The crop is at least this much wider than the span of face motion over the video."""
DETECTIONS_PER_SECOND = 5
MAX_DETECTIONS = 300


@dataclass(frozen=True)
class CropBox:
    """A square in source pixels; it may extend past the frame (filled with edge pixels)."""

    x: int
    y: int
    side: int

    def to_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "side": self.side}


def choose_crop_box(face_boxes: np.ndarray) -> CropBox:
    """One fixed square around head and shoulders from the face boxes of sampled frames.

    Args:
        face_boxes: float [M, 4] boxes x0, y0, x1, y1 of the main face, one per sampled frame.
    """
    x0, y0, x1, y1 = (face_boxes[:, k] for k in range(4))
    face_size = float(np.median(np.maximum(x1 - x0, y1 - y0)))
    left, right = np.percentile(x0, 2), np.percentile(x1, 98)
    top, bottom = np.percentile(y0, 2), np.percentile(y1, 98)
    side = max(
        HEAD_AND_SHOULDERS * face_size,
        MOTION_MARGIN * (right - left),
        MOTION_MARGIN * (bottom - top) / (1.0 - FACE_CENTRE_HEIGHT),
    )
    centre_x = 0.5 * (left + right)
    centre_y = 0.5 * (top + bottom)
    side_px = int(math.ceil(side))
    return CropBox(
        x=int(round(centre_x - 0.5 * side_px)),
        y=int(round(centre_y - FACE_CENTRE_HEIGHT * side_px)),
        side=side_px,
    )


def crop_square(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Cut `box` out of `image` (edge pixels where it leaves the frame); resize to size x size."""
    h, w = image.shape[:2]
    rows = np.clip(np.arange(box.y, box.y + box.side), 0, h - 1)
    cols = np.clip(np.arange(box.x, box.x + box.side), 0, w - 1)
    inside = box.x >= 0 and box.y >= 0 and box.x + box.side <= w and box.y + box.side <= h
    region = (
        image[box.y : box.y + box.side, box.x : box.x + box.side]
        if inside
        else image[rows[:, None], cols[None, :]]
    )
    interpolation = cv2.INTER_AREA if box.side > size else cv2.INTER_CUBIC
    return cv2.resize(region, (size, size), interpolation=interpolation)


def largest_box(detections: np.ndarray) -> np.ndarray | None:
    """The largest detected face (x0, y0, x1, y1), or None."""
    if len(detections) == 0:
        return None
    areas = (detections[:, 2] - detections[:, 0]) * (detections[:, 3] - detections[:, 1])
    return detections[int(np.argmax(areas)), :4]


class FramesTask(Task):
    number = 3
    name = "frames"
    title = "video frames -> ori_imgs/"
    makes = (f"{FRAMES_DIR}/*.jpg",)
    reads_video = True
    config_fields = ("fps", "crop", "size")

    def run(self, ctx: TaskContext) -> TaskResult:
        config = ctx.config
        fps = Fraction(config.fps).limit_denominator(1001)
        duration = float(ctx.input["duration_s"])
        n_out = output_frame_count(duration, fps)
        box = self._crop_box(ctx) if config.crop == "auto" else None
        warnings: list[str] = []
        width, height = int(ctx.input["width"]), int(ctx.input["height"])
        if box is None and width != height:
            warnings.append(
                f"frames are {width}x{height}, not square; the reference NeRF trainers expect "
                "square frames: use --crop auto"
            )
        source_index: list[int] = []
        folder = ctx.out / FRAMES_DIR
        folder.mkdir(parents=True, exist_ok=True)
        last_time = -1.0
        with ThreadPoolExecutor(max_workers=2) as pool:
            writer = WriteBehind(pool)
            picked = resample_by_time(iter_frames(config.video), fps, n_out)
            for out_index, frame in ctx.progress(picked, total=n_out, desc="frames"):
                image = frame.image if box is None else crop_square(frame.image, box, config.size)
                writer.submit(write_jpeg, folder / f"{out_index}.jpg", image)
                source_index.append(frame.index)
                last_time = frame.time
            writer.finish()
        if len(source_index) != n_out:
            raise TaskError(
                f"decoded {len(source_index)} of {n_out} frames; the video may be damaged"
            )
        if last_time < duration - 1.0:
            raise TaskError(
                f"video frames stop at {last_time:.2f} s of {duration:.2f} s; the file is damaged"
            )
        out_h, out_w = (config.size, config.size) if box is not None else (height, width)
        info = {
            "n_frames": n_out,
            "fps": float(fps),
            "fps_fraction": str(fps),
            "width": out_w,
            "height": out_h,
            "crop_box": box.to_dict() if box is not None else None,
            "source_frame_of_output": source_index,
        }
        repeats = len(source_index) - len(set(source_index))
        figures = {
            "n_frames": n_out,
            "source_frames_used": len(set(source_index)),
            "repeated_frames": repeats,
            "duration_s": round(n_out / float(fps), 4),
        }
        return TaskResult(frames=n_out, figures=figures, info=info, warnings=warnings)

    def _crop_box(self, ctx: TaskContext) -> CropBox:
        """A fast face-detection pass over sampled frames, then one box for the whole video."""
        from talkprep.models.face_detector import FaceDetector

        nominal = float(ctx.input.get("average_fps") or ctx.input.get("nominal_fps") or 25.0)
        expected = int(ctx.input.get("frame_count") or nominal * float(ctx.input["duration_s"]))
        step = max(1, round(nominal / DETECTIONS_PER_SECOND), math.ceil(expected / MAX_DETECTIONS))
        boxes = []
        with FaceDetector() as detector:
            frames = (f for f in iter_frames(ctx.config.video) if f.index % step == 0)
            total = math.ceil(expected / step)
            for frame in ctx.progress(frames, total=total, desc="face boxes"):
                box = largest_box(detector.detect(frame.image))
                if box is not None:
                    boxes.append(box)
        if not boxes:
            raise TaskError(
                "--crop auto found no face in the sampled frames; "
                "check the video or use --crop none"
            )
        sampled = math.ceil(expected / step)
        if len(boxes) < 0.5 * sampled:
            ctx.warn(f"a face was found in only {len(boxes)} of {sampled} sampled frames")
        return choose_crop_box(np.asarray(boxes))

    def check(self, facts: FolderFacts) -> list[CheckResult]:
        group = f"{FRAMES_DIR}/*.jpg"
        result = check_numbered_files(facts, FRAMES_DIR, ".jpg", group)
        if result is None or not result.ok:
            return [] if result is None else [result]
        expected = facts.frame_size
        for index in range(result.count):
            path = facts.root / FRAMES_DIR / f"{index}.jpg"
            try:
                size = image_size(path)
            except (OSError, ValueError):
                return [CheckResult(group, result.count, f"{path.name} is not a readable JPEG")]
            if size != expected:
                problem = (
                    f"{path.name} is {size[1]}x{size[0]}; frame 0 is {expected[1]}x{expected[0]}"
                )
                return [CheckResult(group, result.count, problem)]
        return [result]
