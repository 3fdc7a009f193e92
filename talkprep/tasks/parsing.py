"""Task 5: semantic parsing -> semantics/{i}.png (the class map) and parsing/{i}.png (AD-NeRF's
four colours rendered from it).

Default backend `mediapipe`: a first pass over a few frames spread over the video fits per-video
colour models of skin, hair and clothes (talkprep.geometry.appearance); the main pass streams the
frames through the selfie segmenter, MediaPipe Hands and the models, averages person and class
probabilities over five frames, and splits each frame into classes with the face mesh of task 4
(talkprep.geometry.masks.split_person, full_resolution, label_hands); hands and what they hold
become HAND. The main pass runs over spans of frames on span workers (talkprep.parallel), each with
its own segmenter and hand tracker. Backend `bisenet`: face-parsing.PyTorch's 19-class BiSeNet, its
classes mapped onto the same semantic classes. Either way, parts of the person mask not connected to
the tracked face (other people, objects) become OTHER; both count as background. Every frame's
parsing-defect figures (talkprep.geometry.parsing_defects) go to the task's info for the report.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import cv2
import numpy as np

from talkprep.config import Config
from talkprep.errors import TaskError
from talkprep.geometry.appearance import (
    ColourModels,
    TextureModels,
    fit_colour_models,
    fit_texture_models,
)
from talkprep.geometry.masks import (
    CLASS_TO_LABEL,
    HEAD,
    N_LABELS,
    FaceLayout,
    appearance_samples,
    bgr_to_labels,
    bisenet_classes,
    bridge_neck,
    class_counts,
    class_posteriors,
    classes_to_bgr,
    classes_to_labels,
    face_mask,
    face_under_hands,
    full_resolution,
    hands_at_the_edge,
    label_hands,
    mask8,
    region_jump,
    skin_by_colour,
    skin_hsv,
    skin_off_head,
    sort_hands,
    split_person,
    texture_map,
    unsure_objects,
)
from talkprep.geometry.parsing_defects import (
    DEFECT_FRAME_LIMITS,
    DEFECT_WORDS,
    frame_defects,
    hair_like_torso,
)
from talkprep.io.images import read_image
from talkprep.io.png import write_png_fast
from talkprep.io.prefetch import read_ahead
from talkprep.parallel import Tick, claim_cores, run_spans, tapered_spans
from talkprep.semantics import (
    DEFECT_KEYS,
    MASK_JUMP_KEY,
    N_CLASSES,
    SEMANTICS_DIR,
    SemanticClass,
)
from talkprep.tasks.base import (
    CheckResult,
    FolderFacts,
    Task,
    TaskContext,
    TaskResult,
    batched,
    check_numbered_files,
)
from talkprep.tasks.landmarks import LANDMARKS_NAME, LandmarkFile

FRAMES_DIR = "ori_imgs"
PARSING_DIR = "parsing"
SMOOTH_RADIUS = 2
"""Person and class probabilities are averaged over frames i-2..i+2 with triangular weights:
enough to stop edge flicker, short enough not to smear a turning head."""
PERSON_THRESHOLD = 127
"""Person probability (0-255) above which a pixel is the person's."""
FAINT_THRESHOLD = 25
"""Person probability (0-255) above which a pixel by the ears is an earring's."""
FACE_COVERAGE = 0.99
"""A frame's head mask should hold this fraction of its face-mesh polygon."""
APPEARANCE_FRAMES = 24
"""Frames sampled (evenly over the video) to fit the colour models."""
OTHER_MIN_FRACTION = 0.002
"""A frame 'shows another person or object' when OTHER covers more than this fraction of it."""
HAND_STRIDE = 2
HAND_STRIDE_IDLE = 2 * SMOOTH_RADIUS + 1
"""Hands are looked for in every fifth frame, and in every second one while the last look
found any (the detector costs three times the segmenter); each frame takes the hands found
within the time window around it (five frames: exactly one idle look falls inside), so a hand
is covered in the frames between."""
NO_HANDS = np.zeros((0, 21, 2), np.float32)
"""What a look that does not ask the detector finds."""
HAND_STRIDE_BLIND = 5 * HAND_STRIDE_IDLE
"""An idle look asks the detector only where skin lies off the head (skin_off_head), except in
every 25th frame, which looks regardless: a hand over the face, or in a glove, is found within
a second and then followed every second frame."""
BISENET_BATCH = 4
SPAN_FRAMES = 250
"""Frames of one span (talkprep.parallel; the last one tapered, see tapered_spans). A span's
segmenter and hand tracker start afresh, and it reads SMOOTH_RADIUS frames more on each side, so
that its time averages are the whole video's; the hand tracker's memory is all that ends at a span's
edge."""
WORKERS = 2
"""Pool threads of a span. Besides decoding and encoding they run each frame's stateless work
(colour posteriors, time average, class split, figures), so that the span's thread only feeds
the selfie segmenter, whose graph takes the frames one at a time and in order."""
LOOK_AHEAD = 8
"""Frames each pool stage may run ahead of the main thread: enough to keep both cores busy, few
enough to hold memory to a few dozen frames."""
LAYOUT_CACHE = 8 * LOOK_AHEAD
"""Face layouts kept: the frames between the first and the last step that asks for one."""
DEFECT_WARN_SHARE = 0.02
"""Task 5 warns about a defect shown by more than this share of the frames."""
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


T = TypeVar("T")


def time_windows(
    items: Iterable[T], radius: int = SMOOTH_RADIUS
) -> Iterator[tuple[list[T], list[float]]]:
    """For each item of a stream, in order: the items within `radius` of it and their triangular
    weights (window cut at the ends). Holds 2 * radius + 1 items.

    Separate from the averaging, so that the averages can be computed on other threads.
    """
    window: deque[tuple[int, T]] = deque(maxlen=2 * radius + 1)

    def around(centre: int) -> tuple[list[T], list[float]]:
        near = [(index, item) for index, item in window if abs(index - centre) <= radius]
        weights = [float(radius + 1 - abs(index - centre)) for index, _ in near]
        return [item for _, item in near], weights

    for index, item in enumerate(items):
        window.append((index, item))
        if index >= radius:
            yield around(index - radius)
    count = window[-1][0] + 1 if window else 0
    for centre in range(max(0, count - radius), count):
        yield around(centre)


def weighted_mean(maps: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """float32 sum of weight * map over the maps (float32, one shape), divided by the sum of the
    weights. cv2.scaleAdd adds each map in one pass, five times faster than numpy's product
    and sum (the same values to a float32 rounding)."""
    shape = maps[0].shape
    total = np.zeros((int(np.prod(shape[:-1])), shape[-1]), np.float32)
    for value, weight in zip(maps, weights, strict=True):
        cv2.scaleAdd(np.asarray(value, np.float32).reshape(total.shape), weight, total, total)
    total /= np.float32(sum(weights))
    return total.reshape(shape)


class Hands(NamedTuple):
    """Hands found in a frame (landmarks [21, 2] each, pixels): those labelled HAND and those
    over the head (which only count towards covering the face)."""

    labelled: Sequence[np.ndarray]
    on_head: Sequence[np.ndarray]


class ParsedFrame(NamedTuple):
    """A frame's class map, the share of its torso that looks like hair (None when unknown) and
    the share of its face under a hand (None without a face)."""

    classes: np.ndarray
    hair_in_torso: float | None
    hand_over_face: float | None = None


class FrameStats(NamedTuple):
    """The figures of one frame that need no other frame."""

    counts: np.ndarray
    """int [N_CLASSES] pixels of each class."""
    head: np.ndarray
    """uint8 0/255 [H, W] head mask (for the flicker between frames)."""
    coverage: float | None
    """Fraction of the face-mesh polygon inside the head mask; None without a face."""
    regions: np.ndarray
    """uint8 [H, W] the trainers' labels (background, head, neck, torso), for the mask jump."""
    defects: dict[str, float | None]
    """The parsing-defect figures (DEFECT_KEYS)."""


def frame_stats(parsed: ParsedFrame, face_xy: np.ndarray | None) -> FrameStats:
    """A class map's own figures: computed on the pool, gathered in order by ParsingStats."""
    classes = parsed.classes
    regions = classes_to_labels(classes)
    head = cv2.compare(regions, HEAD, cv2.CMP_EQ)
    coverage = None
    if face_xy is not None:
        face = mask8(face_mask(face_xy, *classes.shape))
        area = cv2.countNonZero(face)
        if area:
            coverage = cv2.countNonZero(cv2.bitwise_and(face, head)) / area
    defects = asdict(frame_defects(classes, face_xy)) | {"hair_in_torso": parsed.hair_in_torso}
    if parsed.hand_over_face is not None and defects["hand_over_face"] is not None:
        defects["hand_over_face"] = max(defects["hand_over_face"], parsed.hand_over_face)
    return FrameStats(class_counts(classes), head, coverage, regions, defects)


def head_flicker(previous: FrameStats, frame: FrameStats) -> float:
    """1 - IoU of two consecutive frames' head masks."""
    union = cv2.countNonZero(cv2.bitwise_or(previous.head, frame.head))
    both = cv2.countNonZero(cv2.bitwise_and(previous.head, frame.head))
    return 0.0 if union == 0 else 1.0 - both / union


def save_frame(
    out: Path, index: int, parsed: ParsedFrame, face_xy: np.ndarray | None
) -> FrameStats:
    """Write frame `index`'s class map and parsing image; return its figures."""
    write_png_fast(out / SEMANTICS_DIR / f"{index}.png", parsed.classes)
    write_png_fast(out / PARSING_DIR / f"{index}.png", classes_to_bgr(parsed.classes))
    return frame_stats(parsed, face_xy)


class ParsingStats:
    """Per-frame quality figures, gathered in frame order while streaming (a few numbers per
    frame): over a span of frames by its worker, then joined in span order (`joined`)."""

    def __init__(self) -> None:
        self.counts: list[np.ndarray] = []
        self.flicker: list[float] = []
        self.coverage: list[float] = []
        self.uncovered_frames: list[int] = []
        self.other_frames: list[int] = []
        self.mask_jump: list[float | None] = []
        """Per frame, region_jump against the last frame (None for frame 0): the report's series."""
        self.defects: dict[str, list[float | None]] = {key: [] for key in DEFECT_KEYS}
        """Per frame, each parsing-defect figure (None where it has nothing to measure)."""
        self._first: FrameStats | None = None
        self._previous: FrameStats | None = None

    @classmethod
    def joined(cls, parts: Sequence[ParsingStats]) -> ParsingStats:
        """The figures of consecutive spans as one: the flicker and mask jump between the last
        frame of a span and the first of the next are measured here, from the two masks each
        span keeps of its ends."""
        whole = cls()
        for part in parts:
            if part._first is None:
                continue
            whole.counts += part.counts
            for key, series in whole.defects.items():
                series += part.defects[key]
            whole.other_frames += part.other_frames
            whole.coverage += part.coverage
            whole.uncovered_frames += part.uncovered_frames
            previous = whole._previous
            if previous is None:
                whole._first = part._first
                whole.mask_jump += part.mask_jump
            else:
                whole.flicker.append(head_flicker(previous, part._first))
                whole.mask_jump.append(region_jump(previous.regions, part._first.regions))
                whole.mask_jump += part.mask_jump[1:]
            whole.flicker += part.flicker
            whole._previous = part._previous
        return whole

    def add(self, index: int, frame: FrameStats) -> None:
        self.counts.append(frame.counts)
        for key, series in self.defects.items():
            series.append(frame.defects[key])
        if frame.counts[SemanticClass.OTHER] > OTHER_MIN_FRACTION * frame.head.size:
            self.other_frames.append(index)
        previous = self._previous
        if previous is None:
            self._first = frame
            self.mask_jump.append(None)
        else:
            self.flicker.append(head_flicker(previous, frame))
            self.mask_jump.append(region_jump(previous.regions, frame.regions))
        self._previous = frame
        if frame.coverage is not None:
            self.coverage.append(frame.coverage)
            if frame.coverage < FACE_COVERAGE:
                self.uncovered_frames.append(index)

    def figures(self) -> dict[str, Any]:
        counts = np.asarray(self.counts, np.float64)
        fractions = counts / counts.sum(axis=1, keepdims=True)
        labels = np.zeros((len(counts), N_LABELS))
        for cls in range(N_CLASSES):
            labels[:, CLASS_TO_LABEL[cls]] += fractions[:, cls]
        out: dict[str, Any] = {}
        for label, name in enumerate(LABEL_NAMES):
            column = labels[:, label]
            out[f"{name}_fraction"] = {
                "median": round(float(np.median(column)), 4),
                "min": round(float(column.min()), 4),
                "max": round(float(column.max()), 4),
            }
        out["class_fraction_median"] = {
            cls.name.lower(): round(float(np.median(fractions[:, cls])), 4) for cls in SemanticClass
        }
        out["frames_with_teeth"] = int(np.count_nonzero(counts[:, SemanticClass.TEETH]))
        out["frames_with_other_people_or_objects"] = len(self.other_frames)
        flicker = np.asarray(self.flicker) if self.flicker else np.zeros(1)
        out["head_flicker_1_minus_iou"] = {
            "median": round(float(np.median(flicker)), 4),
            "p95": round(float(np.percentile(flicker, 95)), 4),
        }
        out["frames_head_misses_face"] = len(self.uncovered_frames)
        out["first_frames_head_misses_face"] = self.uncovered_frames[:10]
        out["face_coverage_min"] = round(min(self.coverage), 4) if self.coverage else None
        return out | self.figures_of_defects()

    def figures_of_defects(self) -> dict[str, Any]:
        """Each parsing-defect figure's median, 95th percentile and frames over its limit."""
        out: dict[str, Any] = {}
        for key, limit in DEFECT_FRAME_LIMITS.items():
            values = np.array([np.nan if v is None else v for v in self.defects[key]], np.float64)
            measured = values[np.isfinite(values)]
            out[key] = {
                "median": round(float(np.median(measured)), 4) if measured.size else None,
                "p95": round(float(np.percentile(measured, 95)), 4) if measured.size else None,
                "frames_over": int(np.count_nonzero(measured > limit)),
                "frame_limit": limit,
            }
        return out

    def series(self) -> dict[str, list[float | None]]:
        """The per-frame defect series for the task's info (rounded)."""
        return {
            key: [None if v is None else round(float(v), 4) for v in values]
            for key, values in self.defects.items()
        }


def defect_warnings(figures: dict[str, Any], n_frames: int) -> list[str]:
    """One line per parsing defect that more than DEFECT_WARN_SHARE of the frames show."""
    lines = []
    for key, words in DEFECT_WORDS.items():
        over = figures.get(key, {}).get("frames_over", 0)
        if n_frames and over > DEFECT_WARN_SHARE * n_frames:
            lines.append(
                f"{words} in {over} of {n_frames} frame(s) (over {DEFECT_FRAME_LIMITS[key]:g} "
                f"per frame); see the report's worst parsing frames"
            )
    return lines


def parsing_figures_out_of_range(root: Path, n_frames: int) -> list[str]:
    """The parsing-defect figures of a folder's manifest that the report grades amber or red,
    in its words (empty for a folder without them)."""
    from talkprep.manifest import read_manifest
    from talkprep.report.quality import PARSING_DEFECTS, collect_values, grade_all

    values = collect_values(read_manifest(root), n_frames, {})
    parsing = {key: value for key, value in values.items() if key in PARSING_DEFECTS}
    return [
        f"{g.threshold.label} {g.shown} ({g.status}; {g.threshold.stated()})"
        for g in grade_all(parsing)
        if g.status != "green"
    ]


class ParsingTask(Task):
    number = 5
    name = "parsing"
    title = "semantic parsing -> semantics/, parsing/"
    needs = ("frames", "landmarks")
    makes = (f"{SEMANTICS_DIR}/*.png", f"{PARSING_DIR}/*.png")
    config_fields = ("parser",)
    version = 7

    def input_files(self, config: Config) -> list[Path]:
        if config.parser == "bisenet" and config.parser_weights is not None:
            return [config.parser_weights]
        return []

    def run(self, ctx: TaskContext) -> TaskResult:
        n_frames = ctx.frame_count()
        with LandmarkFile(ctx.out / LANDMARKS_NAME, n_frames) as landmarks:
            return self._parse(ctx, landmarks)

    def _parse(self, ctx: TaskContext, landmarks: LandmarkFile) -> TaskResult:
        n_frames = len(landmarks)
        valid = landmarks.valid()
        if not valid.any():
            raise TaskError("task 4 found no face in any frame; parsing needs one; check the video")
        nearest = nearest_valid(valid)
        for folder in (SEMANTICS_DIR, PARSING_DIR):
            (ctx.out / folder).mkdir(parents=True, exist_ok=True)
        figures: dict[str, Any] = {"parser": ctx.config.parser}
        if ctx.config.parser == "bisenet":
            stats = self._parse_bisenet(ctx, landmarks, nearest)
        else:
            stats = self._parse_mediapipe(ctx, landmarks, valid, nearest, figures)
        figures |= {"frames_without_face": int((~valid).sum()), **stats.figures()}
        warnings = []
        if stats.uncovered_frames:
            warnings.append(
                f"the head mask misses part of the face in {len(stats.uncovered_frames)} frame(s), "
                f"first {stats.uncovered_frames[0]}"
            )
        if stats.other_frames:
            warnings.append(
                f"other people or objects beside the tracked person in {len(stats.other_frames)} "
                f"frame(s), first {stats.other_frames[0]}; they are labelled background"
            )
        info = {
            MASK_JUMP_KEY: [None if v is None else round(v, 6) for v in stats.mask_jump],
            **stats.series(),
        }
        warnings += defect_warnings(figures, n_frames)
        return TaskResult(frames=n_frames, figures=figures, info=info, warnings=warnings)

    def _parse_mediapipe(
        self,
        ctx: TaskContext,
        landmarks: LandmarkFile,
        valid: np.ndarray,
        nearest: np.ndarray,
        figures: dict[str, Any],
    ) -> ParsingStats:
        """The colour models here, then the frames over spans on the span workers."""
        from talkprep.models.selfie_segmenter import SelfieSegmenter

        n_frames = len(landmarks)
        layouts = _Layouts(landmarks, nearest)
        with ThreadPoolExecutor(max_workers=WORKERS) as pool, SelfieSegmenter() as segmenter:
            models, texture_models, skin = self._fit_appearance(
                ctx, pool, segmenter, valid, layouts
            )
        figures["appearance"] = {
            "hair_skin_overlap": models.skin_overlap,
            "hair_told_from_skin": models.hair_differs_from_skin,
            "hair_skin_detail_overlap": texture_models.hair_skin_overlap,
            "detail_used": texture_models.informative,
            "models_known": dict(
                zip(("skin", "hair", "clothes"), models.known.tolist(), strict=True)
            ),
        }
        job = _SpanJob(ctx.out, n_frames, nearest, models, texture_models, skin)
        spans = tapered_spans(n_frames, SPAN_FRAMES)
        with claim_cores(len(spans)) as workers:
            parts = run_spans(_parse_span, spans, job, workers, ctx.progress, "parsing")
        figures["hand_detector_frames"] = sum(part.hand_looks for part in parts)
        return ParsingStats.joined([part.stats for part in parts])

    def _parse_bisenet(
        self, ctx: TaskContext, landmarks: LandmarkFile, nearest: np.ndarray
    ) -> ParsingStats:
        """Every frame here, in order (the model runs on the task's device in batches)."""
        from talkprep.models.bisenet import load_bisenet, parse_classes

        n_frames = len(landmarks)
        layouts = _Layouts(landmarks, nearest)
        paths = [ctx.out / FRAMES_DIR / f"{i}.jpg" for i in range(n_frames)]
        device = ctx.device
        model = load_bisenet(ctx.config.parser_weights, device)  # type: ignore[arg-type]
        stats = ParsingStats()

        def jobs(frames: Iterator[np.ndarray]) -> Iterator[tuple[int, Callable[[], ParsedFrame]]]:
            index = 0
            for batch in batched(frames, BISENET_BATCH):
                celeba = parse_classes(model, batch, device)
                for frame, frame_classes in zip(batch, celeba, strict=True):
                    yield (
                        index,
                        partial(_bisenet_frame_classes, frame, frame_classes, layouts, index),
                    )
                    index += 1

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            finish = partial(_finish_frame, ctx.out, landmarks, layouts)
            done = read_ahead(pool, finish, jobs(read_ahead(pool, read_image, paths)), LOOK_AHEAD)
            for index, frame in ctx.progress(done, total=n_frames, desc="parsing"):
                stats.add(index, frame)
        return stats

    def _fit_appearance(
        self,
        ctx: TaskContext,
        pool: ThreadPoolExecutor,
        segmenter: Any,
        valid: np.ndarray,
        layouts: _Layouts,
    ) -> tuple[ColourModels, TextureModels, tuple[float, float]]:
        """Colour and detail models of skin, hair and clothes from frames spread over the video
        (away from the hands in them), and the skin's median saturation and value."""
        from talkprep.models.hand_detector import HandDetector

        have = np.flatnonzero(valid)
        picks = have[np.linspace(0, have.size - 1, min(APPEARANCE_FRAMES, have.size)).astype(int)]
        samples: list[list[np.ndarray]] = [[], [], []]
        details: list[list[np.ndarray]] = [[], [], []]
        skin_pixels = []
        frames = read_ahead(pool, read_image, [ctx.out / FRAMES_DIR / f"{i}.jpg" for i in picks])
        progress = ctx.progress(
            zip(picks, frames, strict=True), total=len(picks), desc="colour models"
        )
        with HandDetector(tracking=False) as hand_detector:
            for index, frame in progress:
                small = segmenter.shrink(frame)
                layout = layouts.get(int(index), small.shape[:2], frame.shape[:2])
                detail = texture_map(frame, (small.shape[1], small.shape[0]))
                bins, detail_samples, skin_bgr = appearance_samples(
                    small, segmenter.segment(small), layout, detail, hand_detector.detect(small)
                )
                for store, part in zip(samples, bins, strict=True):
                    store.append(part)
                for store, part in zip(details, detail_samples, strict=True):
                    store.append(part)
                skin_pixels.append(skin_bgr)
        models = fit_colour_models([np.concatenate(s) for s in samples])
        texture_models = fit_texture_models([np.concatenate(d) for d in details])
        return models, texture_models, skin_hsv(np.concatenate(skin_pixels))

    def check(self, facts: FolderFacts) -> list[CheckResult]:
        results = []
        semantics = check_numbered_files(facts, SEMANTICS_DIR, ".png", f"{SEMANTICS_DIR}/*.png")
        if semantics is not None:
            results.append(self._check_semantics(facts, semantics))
        parsing = check_numbered_files(facts, PARSING_DIR, ".png", f"{PARSING_DIR}/*.png")
        if parsing is not None:
            results.append(self._check_parsing(facts, parsing, semantics is not None))
        return results

    def _check_semantics(self, facts: FolderFacts, result: CheckResult) -> CheckResult:
        if not result.ok:
            return result
        result = self._check_samples(facts, result)
        if result.ok:
            figures = parsing_figures_out_of_range(facts.root, result.count)
            if figures:
                return replace(result, note="parsing figures out of range: " + "; ".join(figures))
        return result

    def _check_samples(self, facts: FolderFacts, result: CheckResult) -> CheckResult:
        for index in sorted({0, result.count // 2, result.count - 1})[:CHECK_SAMPLES]:
            path = facts.root / SEMANTICS_DIR / f"{index}.png"
            try:
                classes = read_image(path, cv2.IMREAD_UNCHANGED)
            except ValueError:
                return CheckResult(result.group, result.count, f"{path.name} is not a readable PNG")
            if classes.ndim != 2 or classes.dtype != np.uint8:
                return CheckResult(
                    result.group, result.count, f"{path.name} is not a single-channel 8-bit map"
                )
            if facts.frame_size is not None and classes.shape != tuple(facts.frame_size):
                return CheckResult(
                    result.group, result.count, f"{path.name} size differs from the frames"
                )
            if int(classes.max()) >= N_CLASSES:
                return CheckResult(
                    result.group,
                    result.count,
                    f"{path.name} has class value {int(classes.max())}; classes are 0-"
                    f"{N_CLASSES - 1}",
                )
        return result

    def _check_parsing(
        self, facts: FolderFacts, result: CheckResult, with_semantics: bool
    ) -> CheckResult:
        if not result.ok:
            return result
        group = result.group
        for index in sorted({0, result.count // 2, result.count - 1})[:CHECK_SAMPLES]:
            path = facts.root / PARSING_DIR / f"{index}.png"
            try:
                image = read_image(path)
            except ValueError:
                return CheckResult(group, result.count, f"{path.name} is not a readable PNG")
            if facts.frame_size is not None and image.shape[:2] != tuple(facts.frame_size):
                return CheckResult(
                    group,
                    result.count,
                    f"{path.name} is {image.shape[1]}x{image.shape[0]}, frames are "
                    f"{facts.frame_size[1]}x{facts.frame_size[0]}",
                )
            labels, stray = bgr_to_labels(image)
            if stray:
                return CheckResult(
                    group,
                    result.count,
                    f"{path.name} has {stray} pixel(s) outside the four parsing colours",
                )
            semantic = facts.root / SEMANTICS_DIR / f"{index}.png"
            if with_semantics and semantic.is_file():
                try:
                    classes = read_image(semantic, cv2.IMREAD_UNCHANGED)
                except ValueError:
                    continue  # reported by the semantics group
                if classes.shape == labels.shape and (CLASS_TO_LABEL[classes] != labels).any():
                    return CheckResult(
                        group,
                        result.count,
                        f"{path.name} does not match {SEMANTICS_DIR}/{semantic.name}",
                    )
        return result


@dataclass(frozen=True)
class _SpanJob:
    """What a span worker needs to parse its frames: the folder, which frame's face each frame
    takes (nearest_valid) and the video's appearance models."""

    out: Path
    n: int
    nearest: np.ndarray
    models: ColourModels
    texture_models: TextureModels
    skin: tuple[float, float]


class _SpanPart(NamedTuple):
    """A span's figures and how many of its frames asked the hand detector."""

    stats: ParsingStats
    hand_looks: int


def _parse_span(span: range, job: _SpanJob, tick: Tick) -> _SpanPart:
    """semantics/{i}.png and parsing/{i}.png for the frames of `span`, from the frames within
    SMOOTH_RADIUS of it: the same files whatever the worker count, and whatever the split but
    where a hand is tracked across a span's edge (its tracker starts afresh with the span)."""
    from talkprep.models.hand_detector import HandDetector
    from talkprep.models.selfie_segmenter import SelfieSegmenter

    read = range(max(0, span.start - SMOOTH_RADIUS), min(job.n, span.stop + SMOOTH_RADIUS))
    stats = ParsingStats()
    asked: list[int] = []
    with (
        LandmarkFile(job.out / LANDMARKS_NAME, job.n) as landmarks,
        ThreadPoolExecutor(max_workers=WORKERS) as pool,
        SelfieSegmenter() as segmenter,
        HandDetector() as hand_detector,
    ):
        layouts = _Layouts(landmarks, job.nearest)
        jobs = _span_frame_jobs(job, pool, read, layouts, segmenter, hand_detector, asked)
        finish = partial(_finish_frame, job.out, landmarks, layouts)
        for index, frame in read_ahead(
            pool, finish, ((i, call) for i, call in jobs if i in span), LOOK_AHEAD
        ):
            stats.add(index, frame)
            tick(1)
    return _SpanPart(stats, sum(1 for index in asked if index in span))


def _span_frame_jobs(
    job: _SpanJob,
    pool: ThreadPoolExecutor,
    read: range,
    layouts: _Layouts,
    segmenter: Any,
    hand_detector: Any,
    asked: list[int],
) -> Iterator[tuple[int, Callable[[], ParsedFrame]]]:
    """Per frame of `read`, in order, its index and a call that returns its class map (the
    first and last SMOOTH_RADIUS frames' maps are cut short of their neighbours: the caller
    keeps only the span's). The segmenter and the hand detector run here, in order, and note in
    `asked` the frames the detector looked at; the colour posteriors before them and the calls
    yielded run on the pool."""
    models = job.models
    frames_dir = job.out / FRAMES_DIR
    pending: deque[np.ndarray] = deque()  # frames read but not yet labelled
    prepare = partial(_colour_posteriors, frames_dir, segmenter.shrink, layouts, models)

    def probabilities() -> Iterator[tuple[np.ndarray, Hands | None]]:
        loaded = read_ahead(pool, prepare, read, LOOK_AHEAD)
        seen_hands = False
        for index, (frame, small, posteriors) in zip(read, loaded, strict=True):
            pending.append(frame)
            person = segmenter.segment(small)[None]
            hands = None
            if index % (HAND_STRIDE if seen_hands else HAND_STRIDE_IDLE) == 0:
                scale = np.float32(
                    (frame.shape[1] / small.shape[1], frame.shape[0] / small.shape[0])
                )
                layout = layouts.get(index, small.shape[:2], frame.shape[:2])
                look = (
                    seen_hands
                    or index % HAND_STRIDE_BLIND == 0
                    or skin_off_head(person[0], posteriors[0], layout)
                )
                if look:
                    asked.append(index)
                found = hand_detector.detect(small) if look else NO_HANDS
                labelled, on_head = (
                    sort_hands(found, skin_by_colour(small, models), person[0], layout)
                    if len(found)
                    else (NO_HANDS, NO_HANDS)
                )
                hands = Hands(labelled * scale, on_head * scale)
                seen_hands = len(found) > 0
            yield np.concatenate([person, posteriors]), hands

    for index, (window, weights) in zip(read, time_windows(probabilities()), strict=True):
        found = [item[1] for item in window if item[1] is not None]
        yield (
            index,
            partial(
                _frame_classes,
                pending.popleft(),
                [item[0] for item in window],
                weights,
                layouts,
                index,
                models,
                job.texture_models,
                job.skin,
                Hands(
                    [hand for hands in found for hand in hands.labelled],
                    [hand for hands in found for hand in hands.on_head],
                ),
            ),
        )


def _finish_frame(
    out: Path,
    landmarks: LandmarkFile,
    layouts: _Layouts,
    item: tuple[int, Callable[[], ParsedFrame]],
) -> tuple[int, FrameStats]:
    """Run a frame's call, write its class map and parsing image; its index and figures."""
    index, call = item
    face_xy = landmarks[index][:, :2] if layouts.has_face(index) else None
    return index, save_frame(out, index, call(), face_xy)


def _colour_posteriors(
    frames_dir: Path,
    shrink: Callable[[np.ndarray], np.ndarray],
    layouts: _Layouts,
    models: ColourModels,
    index: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame `index`, its copy at the segmenter's size and its class posteriors at that size."""
    frame = read_image(frames_dir / f"{index}.jpg")
    small = shrink(frame)
    layout = layouts.get(index, small.shape[:2], frame.shape[:2])
    return frame, small, class_posteriors(small, layout, models)


def _frame_classes(
    frame: np.ndarray,
    window: Sequence[np.ndarray],
    weights: Sequence[float],
    layouts: _Layouts,
    index: int,
    models: ColourModels,
    texture_models: TextureModels,
    skin: tuple[float, float],
    hands: Hands,
) -> ParsedFrame:
    """Frame `index`'s class map from the person and class probabilities of the frames around
    it (`window`, see time_windows) and the hands found in them (full-resolution pixels)."""
    maps = weighted_mean(window, weights)
    height, width = frame.shape[:2]
    # bytes upsample several times faster than floats; 1/255 is plenty here
    prob = cv2.convertScaleAbs(maps[0], alpha=255.0)
    person = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
    if not layouts.has_face(index):  # no face to place: the person is torso, nothing is drawn
        coarse = split_person(maps[0] > 0.5, maps[1:], None)
        whole = full_resolution(coarse, person > PERSON_THRESHOLD, frame, None, skin)
        return ParsedFrame(label_hands(whole, hands.labelled), None, None)
    small = layouts.get(index, maps.shape[1:], (height, width))
    detail = partial(texture_map, frame, (maps.shape[2], maps.shape[1]))
    coarse = split_person(
        maps[0] > 0.5, maps[1:], small, models.hair_differs_from_skin, detail, texture_models
    )
    coarse[unsure_objects(coarse, maps[0], maps[3], small)] = SemanticClass.OTHER
    coarse[hands_at_the_edge(coarse, maps[1], small)] = SemanticClass.HAND
    layout = layouts.get(index, (height, width), (height, width))
    whole = bridge_neck(
        full_resolution(
            coarse, person > PERSON_THRESHOLD, frame, layout, skin, person > FAINT_THRESHOLD
        )
    )
    hair_like = hair_like_torso(coarse, maps[1:], small.width, small.height)
    covered = face_under_hands(hands.on_head, face_mask(layout.points, height, width))
    return ParsedFrame(label_hands(whole, hands.labelled), hair_like, covered)


def _bisenet_frame_classes(
    frame: np.ndarray, celeba: np.ndarray, layouts: _Layouts, index: int
) -> ParsedFrame:
    """Frame `index`'s class map from BiSeNet's CelebAMask-HQ classes of it."""
    height, width = frame.shape[:2]
    if celeba.shape != (height, width):
        celeba = cv2.resize(celeba, (width, height), interpolation=cv2.INTER_NEAREST)
    layout = layouts.get(index, (height, width), (height, width))
    face = face_mask(layout.points, height, width)
    skin = skin_hsv(frame[face & (celeba == 1)])
    return ParsedFrame(bisenet_classes(celeba, frame, layout, skin), None)


class _Layouts:
    """The face layout of frame i (from the nearest frame with a face) at a given image size.

    Each frame's layout is asked for at two sizes by three steps on different threads, a few
    frames apart: the last LAYOUT_CACHE are kept (lru_cache is thread-safe)."""

    def __init__(self, landmarks: LandmarkFile, nearest: np.ndarray) -> None:
        self._landmarks = landmarks
        self._nearest = nearest
        self.get = lru_cache(maxsize=LAYOUT_CACHE)(self._layout)

    def has_face(self, index: int) -> bool:
        """Whether frame `index` has a face of its own (not only a nearest frame's)."""
        return bool(self._nearest[index] == index)

    def _layout(self, index: int, size: tuple[int, int], frame_size: tuple[int, int]) -> FaceLayout:
        points = self._landmarks[int(self._nearest[index])][:, :2]
        layout = FaceLayout.from_points(points)
        if size == frame_size:
            return layout
        return layout.scaled(size[1] / frame_size[1], size[0] / frame_size[0])
