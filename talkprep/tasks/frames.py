"""Task 3: the frames, resampled by presentation time to the target fps, optionally auto-cropped."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np

from talkprep.errors import InputError, TaskError
from talkprep.geometry.crop import CropChoice, choose_crop_box, crop_square, largest_box
from talkprep.io.images import image_size, write_jpeg
from talkprep.io.prefetch import WriteBehind
from talkprep.io.video import VideoInfo, iter_frames, output_frame_count, resample_by_time
from talkprep.parallel import BUDGET, claim_cores
from talkprep.tasks.base import (
    CheckResult,
    FolderFacts,
    Task,
    TaskContext,
    TaskResult,
    check_numbered_files,
)

FRAMES_DIR = "ori_imgs"
DETECTIONS_PER_SECOND = 2
MAX_DETECTIONS = 150
"""The crop's face-detection pass samples this often, at most this many frames per video."""
UPSCALE_NOTE = 1.5
"""Enlarging the crop by more than this to reach --size gets a warning (soft frames)."""


WRITE_BEHIND_PER_THREAD = 8
"""Frames waiting for each JPEG writer thread: the decoder runs ahead of the writers by this
much at most (cv2's encoder lets go of the GIL, so the writers scale with the cores claimed
without copying frames between processes; the one stream is decoded by FFmpeg's own threads)."""

MIN_FRAMES = 2
"""The fewest frames a dataset can have: one to train on and one to validate."""
TRAINER_SIDE = 512
"""The frame side the NeRF and Gaussian trainers are usually given (their reference clips)."""


def require_frames(info: VideoInfo, fps: float) -> None:
    """Refuse, before any work, a video too short to give a dataset at `fps`."""
    planned = output_frame_count(info.duration, Fraction(fps).limit_denominator(1001))
    if planned < MIN_FRAMES:
        raise InputError(
            f"{info.path} gives {planned} frame at {fps:g} fps ({info.duration:.3f} s); a dataset "
            f"needs at least {MIN_FRAMES} (to train and to validate): give a longer video"
        )


def resolution_warning(width: int, height: int) -> str | None:
    """A warning for frames smaller than the trainers' usual 512 px (None when they are not)."""
    side = min(width, height)
    if side >= TRAINER_SIDE:
        return None
    return (
        f"frames are {width}x{height}: low resolution for the {TRAINER_SIDE} px trainers (ER-NeRF, "
        f"RAD-NeRF, TalkingGaussian, ...), whose renders will be soft; a source of {TRAINER_SIDE} "
        "px or more is better"
    )


REPEAT_WARN_FRACTION = 0.05
"""Warn when more than this share of the frames repeat their predecessor mid-video."""


def repeat_warnings(
    source_index: list[int], fps: float, last_time: float, duration: float
) -> list[str]:
    """Say when output frames are copies: a source slower than --fps, or a stream that ends early.

    Args:
        source_index: source frame index of each output frame, in order.
        last_time: start time (s) of the last source frame used; duration: declared end (s).
    """
    n = len(source_index)
    if n < 2:
        return []
    index = np.asarray(source_index)
    repeated = np.concatenate([[False], index[1:] == index[:-1]])
    tail = int(np.argmax(~repeated[::-1]))  # trailing copies of the final source frame
    head = int(np.argmax(~repeated[1:])) if repeated[1:].any() else 0
    middle = int(repeated.sum()) - tail - head
    warnings = []
    if middle > REPEAT_WARN_FRACTION * n:
        distinct = (index[-1 - tail] - index[head] + 1) / max(1.0, (n - tail - head) / fps)
        warnings.append(
            f"{middle} of {n} frames repeat the frame before them: the video has about "
            f"{distinct:.1f} distinct frames per second, fewer than --fps {fps:g}"
        )
    if tail > 1:
        warnings.append(
            f"the video stream ends at {last_time:.2f} s of the {duration:.2f} s the file "
            f"declares; the last {tail} frames repeat its final frame"
        )
    return warnings


class FramesTask(Task):
    number = 3
    name = "frames"
    title = "video frames -> ori_imgs/"
    makes = (f"{FRAMES_DIR}/*.jpg",)
    reads_video = True
    config_fields = ("fps", "crop", "size")
    version = 2

    def run(self, ctx: TaskContext) -> TaskResult:
        config = ctx.config
        fps = Fraction(config.fps).limit_denominator(1001)
        duration = float(ctx.input["duration_s"])
        n_out = output_frame_count(duration, fps)
        choice = self._crop_choice(ctx) if config.crop == "auto" else None
        box = choice.box if choice is not None else None
        warnings: list[str] = []
        width, height = int(ctx.input["width"]), int(ctx.input["height"])
        low = resolution_warning(*((config.size,) * 2 if box is not None else (width, height)))
        if low is not None:
            warnings.append(low)
        if box is None and width != height:
            warnings.append(
                f"frames are {width}x{height}, not square; the reference NeRF trainers expect "
                "square frames: use --crop auto"
            )
        source_index: list[int] = []
        folder = ctx.out / FRAMES_DIR
        folder.mkdir(parents=True, exist_ok=True)
        last_time = -1.0
        with claim_cores(BUDGET.total) as cores, ThreadPoolExecutor(max(2, cores)) as pool:
            writer = WriteBehind(pool, WRITE_BEHIND_PER_THREAD * max(2, cores))
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
            "crop_face_fraction": choice.face_fraction if choice is not None else None,
            "source_frame_of_output": source_index,
        }
        repeats = len(source_index) - len(set(source_index))
        warnings.extend(repeat_warnings(source_index, float(fps), last_time, duration))
        figures = {
            "n_frames": n_out,
            "source_frames_used": len(set(source_index)),
            "repeated_frames": repeats,
            "duration_s": round(n_out / float(fps), 4),
        }
        if choice is not None:
            figures["crop_face_fraction"] = choice.face_fraction
        return TaskResult(frames=n_out, figures=figures, info=info, warnings=warnings)

    def _crop_choice(self, ctx: TaskContext) -> CropChoice:
        """A fast face-detection pass over sampled frames, then one box for the whole video."""
        from talkprep.models.face_detector import sample_face_boxes

        duration = float(ctx.input["duration_s"])
        interval = max(1.0 / DETECTIONS_PER_SECOND, duration / MAX_DETECTIONS)
        samples = sample_face_boxes(ctx.config.video, interval, ctx.progress)
        boxes = [b for b in map(largest_box, samples.detections) if b is not None]
        if not boxes:
            raise TaskError(
                "--crop auto found no face in the sampled frames; "
                "check the video or use --crop none"
            )
        sampled = len(samples.detections)
        if len(boxes) < 0.5 * sampled:
            ctx.warn(f"a face was found in only {len(boxes)} of {sampled} sampled frames")
        choice = choose_crop_box(np.asarray(boxes), samples.width, samples.height)
        if choice.note:
            ctx.warn(choice.note)
        scale = ctx.config.size / choice.box.side
        if scale > UPSCALE_NOTE:
            ctx.warn(
                f"the {choice.box.side} px crop is enlarged {scale:.1f}x to --size "
                f"{ctx.config.size}: frames will look soft (a smaller --size keeps them sharp)"
            )
        return choice

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
