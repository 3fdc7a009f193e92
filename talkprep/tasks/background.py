"""Task 6: the background plate bc.jpg.

Per pixel, the mean of the sampled frames that show it clear of the tracked person (Euclidean
distance transform of every person class of `semantics/{i}.png`, hair, ears and earrings
included, beyond a margin), each weighted by how clear, so that no part of the person leaves a
ghost and a piece of the person the segmenter missed in one frame is diluted, not picked; pixels
never seen clear are filled smoothly (an image pyramid, no streaks or seams). The plate is the
middle sampled frame's view: where the camera pans or zooms, pieces of far-apart views would make a
patchwork of shifted scenery, so a frame whose background disagrees with the middle one's is
followed back to its view (views.step_motion, chained from frame to frame outward from the middle)
and counts resampled when it then agrees. Frames that agree neither way (parallax, a change of
light) only fill what the others never show, with their own mean: soft where the views disagree
instead of seams between them. Streams: a few frame-sized arrays whatever N is (the plate's sums,
the middle frame, the previous one on the camera's path).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from talkprep.errors import TaskError
from talkprep.geometry.masks import (
    BackgroundPlate,
    background_mismatch,
    distance_from_person,
    mean_difference,
)
from talkprep.geometry.views import CameraPath, resample_into_view, working_scale
from talkprep.io.images import read_image, write_jpeg
from talkprep.io.prefetch import read_ahead
from talkprep.semantics import NOT_PLATE_CLASSES, SEMANTICS_DIR, class_mask
from talkprep.tasks.base import CheckResult, FolderFacts, Task, TaskContext, TaskResult

FRAMES_DIR = "ori_imgs"
PLATE_FILE = "bc.jpg"
MAX_SAMPLES = 500
"""At most this many frames are sampled, evenly spread over the video."""
MIN_STEP = 2
"""Consecutive frames are nearly identical; every second frame is enough."""
MARGIN_AT_512 = 10.0
"""A pixel enters the plate only from frames where it lies more than this many pixels (in a
512-pixel frame; scaled with size) from every person class. RAD-NeRF uses 5; twice that keeps
the segmenter's soft hair edge out of the plate."""
MISMATCH_SAMPLES = 24
"""Frames (evenly spread over the sampled ones) compared with the finished plate."""
MOVING_LEVELS = 6.0
"""Median difference (grey levels) between frames and the plate above which the camera or
the scene moves (the report's amber limit): 1-3 on the shared clips from fixed cameras, 11-40
on the two that pan."""
COHERENT_LEVELS = 5.0
"""A sampled frame counts wherever it shows the background only when its background (clear of
the person in both) differs from the middle sampled frame's by at most this many grey levels;
otherwise it only fills gaps. Every frame of the shared clips from fixed cameras agrees (0.4-3.4),
a frame 4-6 frames away in the two that pan or zoom does not (5-7; 15-41 across them); followed
back to the middle frame's view, 41-105 of their 118-124 sampled frames agree (1.2-5)."""
UNSEEN_WARN = 0.005
"""Warn when the plate is filled (never seen) more than a margin away from anything seen, over
more than this fraction of the pixels that gt_imgs show as background in some frame: only
there does the fill reach training, and a margin-wide rim is filled well from beside it."""


def sample_indices(n_frames: int) -> list[int]:
    """Evenly spread frame indices, every MIN_STEP-th at least, at most MAX_SAMPLES."""
    step = max(MIN_STEP, math.ceil(n_frames / MAX_SAMPLES))
    return list(range(0, n_frames, step))


def margin_for(height: int, width: int) -> float:
    return max(2.0, MARGIN_AT_512 * max(height, width) / 512.0)


def load_pair(paths: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """A frame and the mask of what the plate must not show: every class of the tracked person,
    and hands with what they hold."""
    frame = read_image(paths[0])
    return frame, class_mask(read_image(paths[1], cv2.IMREAD_UNCHANGED), NOT_PLATE_CLASSES)


@dataclass(frozen=True)
class Placement:
    """How one sampled frame adds to the plate."""

    image: np.ndarray
    distance: np.ndarray
    """The frame and its pixels' distances from the person as the plate takes them: resampled
    into the reference view when the frame matches it better so."""
    view_to_frame: np.ndarray
    """The camera's estimated matrix from the reference view to the frame (the identity when the
    frame agrees as it is), which the next frame's step builds on (CameraPath.record)."""
    warped: bool
    """Whether image and distance are the resampled ones."""
    gaps_only: bool
    """Whether it only fills what the frames that agree never show."""


def place_frame(
    frame: np.ndarray,
    distance: np.ndarray,
    margin: float,
    camera: Callable[[], np.ndarray],
    reference_frame: np.ndarray,
    reference_clear: np.ndarray,
) -> Placement:
    """A frame agrees with the reference view when its background, where both are clear of the
    person, is within COHERENT_LEVELS of the reference's (also when too little is clear in both
    to tell); otherwise it is tried resampled by `camera()` (CameraPath.follow's matrix, only
    fitted when needed: a fixed camera's frames all agree as they are), and whichever of the two
    matches it better, over the pixels clear in both and in the reference, counts: in full if it
    agrees, else only to fill gaps."""
    as_is = mean_difference(frame, reference_frame, (distance > margin) & reference_clear)
    if as_is is None or as_is <= COHERENT_LEVELS:
        return Placement(frame, distance, np.eye(3), warped=False, gaps_only=False)
    view_to_frame = camera()
    image, resampled_distance = resample_into_view(frame, distance, view_to_frame)
    both = (distance > margin) & (resampled_distance > margin) & reference_clear
    resampled = mean_difference(image, reference_frame, both)
    as_is = mean_difference(frame, reference_frame, both)
    if resampled is not None and as_is is not None and resampled < as_is:
        return Placement(
            image,
            resampled_distance,
            view_to_frame,
            warped=True,
            gaps_only=resampled > COHERENT_LEVELS,
        )
    return Placement(frame, distance, view_to_frame, warped=False, gaps_only=True)


class BackgroundTask(Task):
    number = 6
    name = "background"
    title = "background plate -> bc.jpg"
    needs = ("frames", "parsing")
    makes = (PLATE_FILE,)
    version = 5

    def run(self, ctx: TaskContext) -> TaskResult:
        n_frames = ctx.frame_count()
        indices = sample_indices(n_frames)
        pairs = [
            (str(ctx.out / FRAMES_DIR / f"{i}.jpg"), str(ctx.out / SEMANTICS_DIR / f"{i}.png"))
            for i in indices
        ]
        if not pairs:
            raise TaskError("no frames to build the background from; run task 3 first")
        middle = len(pairs) // 2
        reference_frame, reference_person = load_pair(pairs[middle])
        height, width = reference_person.shape
        margin = margin_for(height, width)
        reference_clear = distance_from_person(reference_person) > margin
        plate = BackgroundPlate(height, width, margin)
        gap_fillers = registered = 0
        order = list(range(middle, len(pairs))) + list(range(middle - 1, -1, -1))
        camera = CameraPath(working_scale(height, width))
        with ThreadPoolExecutor(max_workers=2) as pool:
            loaded = read_ahead(pool, load_pair, [pairs[k] for k in order])
            for position, (frame, person) in zip(
                order, ctx.progress(loaded, total=len(pairs), desc="background"), strict=True
            ):
                if person.shape != (height, width) or frame.shape[:2] != person.shape:
                    raise TaskError("frame and parsing sizes differ; rerun tasks 3 and 5 together")
                if position == middle - 1:
                    camera.back_to_start()
                distance = distance_from_person(person)
                clear = distance > margin
                placement = place_frame(
                    frame,
                    distance,
                    margin,
                    partial(camera.follow, frame, clear),
                    reference_frame,
                    reference_clear,
                )
                plate.add(
                    placement.image,
                    person,
                    gaps_only=placement.gaps_only,
                    distance=placement.distance,
                )
                registered += placement.warped and not placement.gaps_only
                gap_fillers += placement.gaps_only
                camera.record(frame, clear, placement.view_to_frame)
        unseen = ~plate.seen()
        if unseen.all():
            raise TaskError(
                "the person covers the whole frame in every sampled frame; no background to recover"
            )
        image = plate.plate()
        write_jpeg(ctx.out / PLATE_FILE, image)
        picks = pairs[:: max(1, len(pairs) // MISMATCH_SAMPLES)][:MISMATCH_SAMPLES]
        with ThreadPoolExecutor(max_workers=2) as pool:
            mismatch = [
                background_mismatch(frame, person, image, margin)
                for frame, person in read_ahead(pool, load_pair, picks)
            ]
        measured = [m for m in mismatch if m is not None]
        moving = float(np.median(measured)) if measured else None
        filled_shown = plate.filled_in_view()
        shown = max(1, int(np.count_nonzero(plate.shown)))
        filled_fraction = np.count_nonzero(filled_shown) / shown
        warnings = []
        if filled_fraction > UNSEEN_WARN:
            warnings.append(
                f"bc.jpg is filled in (never seen clear of the person) deep into "
                f"{np.count_nonzero(filled_shown)} px that gt_imgs show as background "
                f"({100 * filled_fraction:.1f}% of them); those pixels of gt_imgs are guessed"
            )
        if moving is not None and moving > MOVING_LEVELS:
            warnings.append(
                f"the background differs from bc.jpg by {moving:.0f} grey levels (median over "
                f"{len(measured)} frames; a static camera gives a few): the camera or the scene "
                "moves, and the trainers composite every frame over this one plate, so gt_imgs' "
                "background will not match the frames; a clip from a fixed camera trains better"
            )
        figures = {
            "background_mismatch_levels": None if moving is None else round(moving, 2),
            "frames_sampled": len(indices),
            "frames_registered": registered,
            "frames_only_filling_gaps": gap_fillers,
            "margin_px": round(margin, 2),
            "background_pixels_never_seen": int(unseen.sum()),
            "background_never_seen_fraction": round(float(unseen.mean()), 4),
            "filled_pixels_shown_in_gt": int(np.count_nonzero(filled_shown)),
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
