"""Task 6: the background plate bc.jpg.

Per pixel, the colour from the sampled frame where that pixel lies farthest from the person
(Euclidean distance transform of the parsing mask), accepted beyond a margin; pixels never seen
that far from the person are inpainted. Streams: three frame-sized arrays whatever N is.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from talkprep.errors import TaskError
from talkprep.geometry.masks import BACKGROUND, BackgroundPlate, decode_labels
from talkprep.io.images import read_image, write_jpeg
from talkprep.io.prefetch import read_ahead
from talkprep.tasks.base import CheckResult, FolderFacts, Task, TaskContext, TaskResult

FRAMES_DIR = "ori_imgs"
PARSING_DIR = "parsing"
PLATE_FILE = "bc.jpg"
MAX_SAMPLES = 500
"""At most this many frames are sampled, evenly spread over the video."""
MIN_STEP = 2
"""Consecutive frames are nearly identical; every second frame is enough."""
MARGIN_AT_512 = 5.0
"""RAD-NeRF takes a pixel more than 5 px from the person in a 512-pixel frame; scaled with size."""
INPAINT_RADIUS = 5.0
UNSEEN_WARN = 0.15
"""Warn when more than this fraction of the plate was never seen and had to be inpainted."""


def sample_indices(n_frames: int) -> list[int]:
    """Evenly spread frame indices, every MIN_STEP-th at least, at most MAX_SAMPLES."""
    step = max(MIN_STEP, math.ceil(n_frames / MAX_SAMPLES))
    return list(range(0, n_frames, step))


def margin_for(height: int, width: int) -> float:
    return max(2.0, MARGIN_AT_512 * max(height, width) / 512.0)


def load_pair(paths: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """A frame and its person mask (any parsing colour but background's)."""
    frame = read_image(paths[0])
    return frame, decode_labels(read_image(paths[1])) != BACKGROUND


class BackgroundTask(Task):
    number = 6
    name = "background"
    title = "background plate -> bc.jpg"
    needs = ("frames", "parsing")
    makes = (PLATE_FILE,)

    def run(self, ctx: TaskContext) -> TaskResult:
        n_frames = ctx.frame_count()
        indices = sample_indices(n_frames)
        pairs = [
            (str(ctx.out / FRAMES_DIR / f"{i}.jpg"), str(ctx.out / PARSING_DIR / f"{i}.png"))
            for i in indices
        ]
        plate: BackgroundPlate | None = None
        with ThreadPoolExecutor(max_workers=2) as pool:
            loaded = read_ahead(pool, load_pair, pairs)
            for frame, person in ctx.progress(loaded, total=len(pairs), desc="background"):
                if plate is None:
                    plate = BackgroundPlate(*frame.shape[:2])
                if person.shape != plate.distance.shape or frame.shape[:2] != person.shape:
                    raise TaskError("frame and parsing sizes differ; rerun tasks 3 and 5 together")
                plate.add(frame, person)
        if plate is None:
            raise TaskError("no frames to build the background from; run task 3 first")
        height, width = plate.distance.shape
        margin = margin_for(height, width)
        unseen = ~plate.seen(margin)
        unseen_fraction = float(unseen.mean())
        if unseen.all():
            raise TaskError(
                "the person covers the whole frame in every sampled frame; no background to recover"
            )
        write_jpeg(ctx.out / PLATE_FILE, plate.plate(margin, INPAINT_RADIUS))
        warnings = []
        if unseen_fraction > UNSEEN_WARN:
            warnings.append(
                f"{100 * unseen_fraction:.0f}% of the background was never seen (the person hardly "
                "moves) and is inpainted; bc.jpg is blurry there"
            )
        figures = {
            "frames_sampled": len(indices),
            "margin_px": round(margin, 2),
            "background_pixels_never_seen": int(unseen.sum()),
            "background_never_seen_fraction": round(unseen_fraction, 4),
        }
        return TaskResult(frames=n_frames, figures=figures, warnings=warnings)

    def check(self, facts: FolderFacts) -> list[CheckResult]:
        path = facts.root / PLATE_FILE
        if not path.exists():
            return []
        try:
            image = read_image(path)
        except ValueError:
            return [CheckResult(PLATE_FILE, 1, "bc.jpg is not a readable JPEG")]
        if facts.frame_size is not None and image.shape[:2] != tuple(facts.frame_size):
            return [
                CheckResult(
                    PLATE_FILE,
                    1,
                    f"bc.jpg is {image.shape[1]}x{image.shape[0]}, frames are "
                    f"{facts.frame_size[1]}x{facts.frame_size[0]}",
                )
            ]
        return [CheckResult(PLATE_FILE, 1)]
