"""Task 4: MediaPipe face mesh landmarks over ori_imgs/, 68-point .lms files and head tracking.

Landmarks stream over the frames in order (a few frames in memory); the only array that grows with
the video is the [N, 478, 3] landmark table. A census of sampled frames first decides how the mesh
runs: where one face is in view, it tracks that face alone (MediaPipe's detector then runs only
when the track is lost), in spans of frames on as many span worker processes as the cores allow
(talkprep.parallel; the same landmarks for any count); where several are, it looks for up
to MAX_FACES on every frame and keeps the one that continues the track. Short gaps are filled by
linear interpolation and flagged; longer gaps stay NaN and those frames are left out of the
train/val splits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkprep.config import Config
from talkprep.errors import MissingWeightsError, TaskError, UsageError
from talkprep.geometry.face_topology import NUM_LMS68, NUM_MESH_POINTS
from talkprep.geometry.jaw_contour import landmarks68
from talkprep.io.atomic import write_npy, write_text, write_torch
from talkprep.io.images import read_image
from talkprep.io.prefetch import read_ahead
from talkprep.io.verify import npy_header
from talkprep.parallel import Tick, claim_cores, frame_spans, run_spans
from talkprep.runs import true_runs
from talkprep.tasks.base import (
    CheckResult,
    FolderFacts,
    Task,
    TaskContext,
    TaskResult,
    batched,
    check_numbered_files,
)
from talkprep.tasks.frames import FRAMES_DIR

LANDMARKS_NAME = "landmarks.npy"
TRACK_NAME = "track_params.pt"
BLENDSHAPES_NAME = "blendshapes.npy"
"""MediaPipe's 52 scores as it gives them; SyncTalk's bs.npy is rendered by talkprep.targets."""
NUM_BLENDSHAPES = 52
MAX_GAP = 5
"""Longest run of faceless frames (in frames) that is filled by linear interpolation."""
CENSUS_EVERY = 25
"""One frame in this many (about one a second) is searched for faces before tracking."""
SPAN_FRAMES = 250
"""A one-face video is tracked in spans of about this many frames, each on its own graph, as
many at once as the span workers granted (a function of N alone: see talkprep.parallel)."""
WARM_UP = 8
"""Frames before a span that its tracker sees and discards: by its first kept frame the
mesh's region of interest comes from tracked landmarks, as in one pass (on the shared clips that
frame then differs from one pass by no more than the tracker's own frame-to-frame noise)."""
LANDMARK_BLOCK = 1024
"""Rows read at once when a whole landmarks.npy is scanned."""
LMS_BATCH = 64
"""Frames per batch of .lms files handed to the writer threads."""
LMS_TOLERANCE_PX = 1e-3
"""`.lms` files hold 6 decimals; a file that differs more was not made from landmarks.npy."""
"""At most this many .lms files are parsed by `check` (evenly spaced); all are counted."""
TRACK_KEYS_N3 = ("euler", "trans")
MIN_FOCAL_PX = 1.0


class LandmarkFile:
    """landmarks.npy, checked to be [N, 478, 3] float32 and read a few rows at a time (pread,
    safe from several threads). A task walking a long video holds a few frames of it, where a
    memory map would keep every page it touched resident (172 MB for 20 minutes). Use as a
    context manager."""

    def __init__(self, path: Path, n_frames: int) -> None:
        if not path.is_file():
            raise TaskError(f"{path.name} is missing; run task 4 (landmarks) first")
        try:
            shape, descr, fortran, self._offset = npy_header(path)
            dtype = np.dtype(descr)
        except (OSError, ValueError, TypeError) as exc:
            raise TaskError(f"cannot read {path.name} ({exc}); rerun task 4 (landmarks)") from None
        if fortran:
            raise TaskError(f"{path.name} is in Fortran order; rerun task 4 (landmarks)")
        if len(shape) != 3 or shape[1:] != (NUM_MESH_POINTS, 3) or dtype != np.float32:
            raise TaskError(
                f"{path.name} holds {dtype} {list(shape)}, expected float32 [N, "
                f"{NUM_MESH_POINTS}, 3]; rerun task 4 (landmarks)"
            )
        if shape[0] != n_frames:
            raise TaskError(f"{path.name} has {shape[0]} rows for {n_frames} frames; rerun task 4")
        self._fd = os.open(path, os.O_RDONLY)
        self._n = n_frames

    def __len__(self) -> int:
        return self._n

    def rows(self, start: int, stop: int) -> np.ndarray:
        """float32 [stop - start, 478, 3]: frames start .. stop - 1."""
        row_bytes = NUM_MESH_POINTS * 3 * 4
        count = max(0, min(stop, self._n) - start)
        data = os.pread(self._fd, count * row_bytes, self._offset + start * row_bytes)
        if len(data) != count * row_bytes:
            raise TaskError("landmarks.npy is shorter than its header says; rerun task 4")
        return np.frombuffer(data, dtype=np.float32).reshape(count, NUM_MESH_POINTS, 3)

    def __getitem__(self, index: int) -> np.ndarray:
        """float32 [478, 3]: frame `index`."""
        return self.rows(index, index + 1)[0]

    def valid(self) -> np.ndarray:
        """bool [N]: frames with a face (every value finite), read LANDMARK_BLOCK rows at a time."""
        return np.concatenate(
            [
                np.isfinite(self.rows(start, start + LANDMARK_BLOCK)).all(axis=(1, 2))
                for start in range(0, self._n, LANDMARK_BLOCK)
            ]
            or [np.zeros(0, bool)]
        )

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> LandmarkFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def mesh_box(points: np.ndarray) -> np.ndarray:
    """x0, y0, x1, y1 of each face in float [..., 478, 3] (pixels)."""
    xy = points[..., :2]
    return np.concatenate([xy.min(axis=-2), xy.max(axis=-2)], axis=-1)


def pick_face(faces: np.ndarray, previous_box: np.ndarray | None) -> int:
    """Index of the face that continues the track: large and close to the previous face's box.

    Args:
        faces: float [K, 478, 3], K >= 1.
        previous_box: x0, y0, x1, y1 of the face kept last, or None at the start.
    """
    boxes = mesh_box(faces)
    sizes = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1))
    score = sizes / max(float(sizes.max()), 1e-6)
    if previous_box is not None:
        previous_size = max(float(np.sqrt(np.prod(previous_box[2:] - previous_box[:2]))), 1e-6)
        centres = 0.5 * (boxes[:, :2] + boxes[:, 2:])
        previous_centre = 0.5 * (previous_box[:2] + previous_box[2:])
        score = score - np.linalg.norm(centres - previous_centre, axis=1) / previous_size
    return int(np.argmax(score))


def fill_short_gaps(
    landmarks: np.ndarray, max_gap: int = MAX_GAP, inplace: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Fill runs of at most `max_gap` faceless frames; longer runs stay NaN.

    Inner gaps are interpolated linearly between the faces on either side; a short gap at the
    start or end of the video holds the nearest face.

    Args:
        landmarks: float [N, P, 3], rows all-NaN where no face.
        inplace: fill `landmarks` itself instead of a copy (saves one [N, 478, 3] array).
    Returns:
        (filled array, bool [N] mask of the frames that were filled).
    """
    n = len(landmarks)
    valid = np.isfinite(landmarks).all(axis=(1, 2))
    filled = landmarks if inplace else landmarks.copy()
    interpolated = np.zeros(n, dtype=bool)
    if not valid.any():
        return filled, interpolated
    # one iteration per gap, not per frame
    for start, end in zip(*true_runs(~valid), strict=True):
        if end - start > max_gap:
            continue
        before, after = start - 1, end
        if before < 0:
            filled[start:end] = landmarks[after]
        elif after >= n:
            filled[start:end] = landmarks[before]
        else:
            weight = (np.arange(start, end) - before) / (after - before)
            weight = weight[:, None, None].astype(landmarks.dtype)
            filled[start:end] = (1 - weight) * landmarks[before] + weight * landmarks[after]
        interpolated[start:end] = True
    return filled, interpolated


def index_ranges(mask: np.ndarray) -> list[list[int]]:
    """Compact [first, last] (inclusive) runs of True in a bool [N] mask, for the manifest."""
    return [[int(s), int(e - 1)] for s, e in zip(*true_runs(mask), strict=True)]


def lms_text(points68: np.ndarray) -> str:
    """68 lines 'x y' (pixels), as np.savetxt writes them for the reference loaders."""
    return "".join(f"{x:.6f} {y:.6f}\n" for x, y in points68[:, :2].tolist())


def _read_frames(folder: Path, n: int) -> Iterator[np.ndarray]:
    """ori_imgs/{i}.jpg in order, decoded by a thread a few frames ahead of the consumer."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield from read_ahead(pool, read_image, (folder / f"{i}.jpg" for i in range(n)))


def several_faces(folder: Path, n: int) -> bool:
    """Whether any of the census frames (every CENSUS_EVERY-th of `folder`/{i}.jpg, i < n) shows
    more than one face to the detector the face mesh itself uses."""
    from talkprep.models.face_detector import FaceDetector
    from talkprep.models.face_mesh import MIN_DETECTION_CONFIDENCE

    with FaceDetector(min_confidence=MIN_DETECTION_CONFIDENCE, full_range=False) as detector:
        for i in range(0, n, CENSUS_EVERY):
            small = read_image(folder / f"{i}.jpg", cv2.IMREAD_REDUCED_COLOR_2)  # boxes suffice
            if len(detector.detect(small)) > 1:
                return True
    return False


def detect_landmarks(
    folder: Path,
    n: int,
    progress: Callable[..., Iterator[Any]] | None = None,
    measures: FrameMeasures | None = None,
) -> tuple[np.ndarray, int]:
    """Face mesh of `folder`/{i}.jpg, i < n, in video mode, keeping one face track among up to
    MAX_FACES. `measures` takes each frame's image measures and other faces' relative size.

    Returns:
        (float32 [N, 478, 3] with NaN rows where no face, number of frames with several faces).
    """
    from talkprep.models.face_mesh import MAX_FACES, FaceMesh

    landmarks = np.full((n, NUM_MESH_POINTS, 3), np.nan, dtype=np.float32)
    previous_box = None
    multi_face = 0
    frames = _read_frames(folder, n)
    if progress is not None:
        frames = progress(frames, total=n, desc="landmarks")
    with FaceMesh(MAX_FACES) as mesh:
        for i, image in enumerate(frames):
            faces = mesh.process(image)
            if len(faces) == 0:
                if measures is not None:
                    measures.take(i, image, None)
                continue
            multi_face += len(faces) > 1
            k = pick_face(faces, previous_box) if len(faces) > 1 else 0
            landmarks[i] = faces[k]
            previous_box = mesh_box(faces[k])
            if measures is not None:
                measures.take(i, image, faces[k])
                heights = np.ptp(np.asarray(faces)[:, :, 1], axis=1)
                others = np.delete(heights, k)
                measures.second_face[i] = others.max() / heights[k] if len(others) else 0.0
    return landmarks, multi_face


def tracking_spans(n: int) -> list[range]:
    """The frames each tracker is fed, in order: SPAN_FRAMES-long spans (a function of N alone,
    so the landmarks never depend on the worker count), each after the first starting WARM_UP
    frames early."""
    return [fed_frames(span) for span in frame_spans(n, SPAN_FRAMES)]


def fed_frames(span: range) -> range:
    """The frames a span's tracker is fed: the span, after WARM_UP frames before it."""
    return range(max(0, span.start - WARM_UP), span.stop)


class FrameMeasures:
    """Per-frame image measures for screening, taken while the mesh has each frame decoded:
    mid-face sharpness float [N] (NaN where no face), a thumbnail float32 [N, T] and, where several
    faces were sought, the largest other face's height over the tracked one's (NaN elsewhere)."""

    def __init__(self, n: int) -> None:
        from talkprep.screening import THUMB_SIDE

        self.sharpness = np.full(n, np.nan)
        self.thumbs = np.zeros((n, THUMB_SIDE * THUMB_SIDE * 3), dtype=np.float32)
        self.second_face = np.full(n, np.nan)

    def put(self, start: int, part: FrameMeasures) -> None:
        """Take a span's measures (made by a span worker) for frames start, start + 1, ..."""
        stop = start + len(part.sharpness)
        self.sharpness[start:stop] = part.sharpness
        self.thumbs[start:stop] = part.thumbs
        self.second_face[start:stop] = part.second_face

    def take(self, index: int, image: np.ndarray, face: np.ndarray | None) -> None:
        from talkprep.screening import frame_measures, midface_box

        box = None if face is None else midface_box(face)
        self.sharpness[index], self.thumbs[index] = frame_measures(image, box)

    def info(self) -> dict[str, Any]:
        """Task 4's info entries: per-frame lists (None for NaN) that task 9 screens with."""
        from talkprep.screening import shot_distance

        def listed(values: np.ndarray, digits: int) -> list[float | None]:
            return [None if not np.isfinite(v) else round(float(v), digits) for v in values]

        out = {
            "sharpness": listed(self.sharpness, 1),
            "shot_distance": listed(shot_distance(self.thumbs), 4),
        }
        if np.isfinite(self.second_face).any():
            out["second_face"] = listed(self.second_face, 3)
        return out


@dataclass(frozen=True)
class _OneFaceJob:
    """What a span worker needs to track one face over its span of ori_imgs/."""

    folder: Path


def _track_span(span: range, job: _OneFaceJob, tick: Tick) -> tuple[np.ndarray, FrameMeasures]:
    """One tracker over `span` (fed from WARM_UP frames before it, `fed_frames`):
    float32 [len(span), 478, 3] landmarks (NaN rows where no face) and the span's measures."""
    from talkprep.models.face_mesh import FaceMesh

    landmarks = np.full((len(span), NUM_MESH_POINTS, 3), np.nan, dtype=np.float32)
    measures = FrameMeasures(len(span))
    fed = fed_frames(span)
    with FaceMesh(max_faces=1) as mesh, ThreadPoolExecutor(max_workers=1) as pool:
        images = read_ahead(pool, read_image, (job.folder / f"{i}.jpg" for i in fed))
        for index, image in zip(fed, images, strict=True):
            faces = mesh.process(image)
            if index >= span.start:
                row = index - span.start
                if len(faces):
                    landmarks[row] = faces[0]
                measures.take(row, image, faces[0] if len(faces) else None)
                tick(1)
    return landmarks, measures


def detect_one_face(
    folder: Path,
    n: int,
    progress: Callable[..., Iterator[Any]] | None = None,
    measures: FrameMeasures | None = None,
    workers: int = 1,
) -> np.ndarray:
    """Face mesh of `folder`/{i}.jpg, i < n, in video mode, tracking a single face: float32
    [N, 478, 3] with NaN rows where no face. `measures` takes each frame's image measures.

    Each span of `frame_spans(n, SPAN_FRAMES)` has its own graph, fed in order and warmed up on
    the WARM_UP frames before it, on up to `workers` span worker processes (talkprep.parallel):
    the result is the same for any worker count.
    """
    spans = frame_spans(n, SPAN_FRAMES)
    parts = run_spans(_track_span, spans, _OneFaceJob(folder), workers, progress, "landmarks")
    landmarks = np.full((n, NUM_MESH_POINTS, 3), np.nan, dtype=np.float32)
    for span, (rows, part) in zip(spans, parts, strict=True):
        landmarks[span.start : span.stop] = rows
        if measures is not None:
            measures.put(span.start, part)
    return landmarks


def blendshape_scores(
    folder: Path,
    n: int,
    fps: float,
    model: Path,
    progress: Callable[..., Iterator[Any]] | None = None,
) -> np.ndarray:
    """Float32 [N, 52] MediaPipe blendshape scores (blendshapes.npy); NaN rows where no face."""
    from talkprep.models.face_mesh import FaceBlendshapes

    scores = np.full((n, NUM_BLENDSHAPES), np.nan, dtype=np.float32)
    frames = _read_frames(folder, n)
    if progress is not None:
        frames = progress(frames, total=n, desc="blendshapes")
    with FaceBlendshapes(model) as landmarker:
        for i, image in enumerate(frames):
            row = landmarker.process(image, round(1000 * i / fps))
            if row is not None:
                scores[i] = row
    return scores


def wants_blendshapes(config: Config) -> bool:
    """blendshapes.npy is asked for by --blendshapes or by giving --blendshape-model."""
    return config.blendshapes or config.blendshape_model is not None


class LandmarksTask(Task):
    number = 4
    name = "landmarks"
    title = (
        "face mesh landmarks and head tracking -> landmarks.npy, ori_imgs/*.lms, track_params.pt"
    )
    version = 4
    needs = ("frames",)
    makes = (LANDMARKS_NAME, f"{FRAMES_DIR}/*.lms", TRACK_NAME)
    config_fields = ("blendshape_model", "blendshapes")

    def outputs(self, config: Config) -> tuple[str, ...]:
        if wants_blendshapes(config):
            return (*self.makes, BLENDSHAPES_NAME)
        return self.makes

    def input_files(self, config: Config) -> list[Path]:
        return [config.blendshape_model] if config.blendshape_model is not None else []

    def validate(self, config: Config) -> None:
        """A --blendshape-model that is not a Face Landmarker bundle fails before any work; with
        --blendshapes the cached bundle is fetched now, on first use."""
        from talkprep.models.face_landmarker import bundle_problem, face_landmarker_bundle

        model = config.blendshape_model
        if model is not None:
            problem = bundle_problem(model)
            if problem:
                raise UsageError(
                    f"--blendshape-model {model} is not a MediaPipe Face Landmarker bundle "
                    f"({problem}); give face_landmarker.task"
                )
        elif config.blendshapes:
            try:
                face_landmarker_bundle(config.offline)
            except MissingWeightsError as exc:
                raise UsageError(f"--blendshapes: {exc}") from None

    def run(self, ctx: TaskContext) -> TaskResult:
        n = ctx.frame_count()
        frames_info = ctx.records["frames"]["info"]
        width, height = int(frames_info["width"]), int(frames_info["height"])
        model = ctx.config.blendshape_model
        if model is None and ctx.config.blendshapes:
            from talkprep.models.face_landmarker import face_landmarker_bundle

            model = face_landmarker_bundle(ctx.config.offline)
        if model is not None and not Path(model).is_file():
            raise TaskError(
                f"--blendshape-model {model} does not exist; give the path of face_landmarker.task"
            )
        measures = FrameMeasures(n)
        raw, multi_face, faces_sought = self._detect(ctx, n, measures)
        found = np.isfinite(raw).all(axis=(1, 2))
        if not found.any():
            raise TaskError(
                f"no face found in any of the {n} frames; check the video "
                "(use --crop auto if the face is small in a large frame)"
            )
        landmarks, interpolated = fill_short_gaps(raw, inplace=True)
        valid = np.isfinite(landmarks).all(axis=(1, 2))
        write_npy(ctx.out / LANDMARKS_NAME, landmarks)
        with ThreadPoolExecutor(max_workers=1) as pool:  # small files written while tracking
            lms_job = pool.submit(self._write_lms, ctx, landmarks)
            track = self._track(ctx, landmarks, width, height)
            lms_job.result()
        tracked = valid & np.isfinite(track["euler"]).all(axis=1)
        figures: dict[str, Any] = {
            "faces_found": int(found.sum()),
            "multi_face_frames": multi_face,
            "faces_sought_per_frame": faces_sought,
            "interpolated_frames": int(interpolated.sum()),
            "dropped_frames": int(n - tracked.sum()),
            **track["figures"],
            "focal_curve": track["focal_curve"],
        }
        info = {
            "n_frames": n,
            "focal": track["focal"],
            "interpolated": index_ranges(interpolated),
            "invalid": index_ranges(~tracked),
            "camera_distance_m": track["distance"],
            **measures.info(),
        }
        warnings = []
        if n - tracked.sum() > 0:
            warnings.append(
                f"{n - int(tracked.sum())} of {n} frames have no usable face and are left out "
                "of the train/val splits"
            )
        if model is not None:
            figures["blendshape_frames"] = self._blendshapes(ctx, n, model)
        return TaskResult(frames=n, figures=figures, info=info, warnings=warnings)

    def _detect(
        self, ctx: TaskContext, n: int, measures: FrameMeasures
    ) -> tuple[np.ndarray, int, int]:
        """(landmarks, frames with several faces, faces the mesh looked for on each frame)."""
        from talkprep.models.face_mesh import MAX_FACES

        folder = ctx.out / FRAMES_DIR
        if several_faces(folder, n):
            return (*detect_landmarks(folder, n, ctx.progress, measures), MAX_FACES)
        with claim_cores(len(tracking_spans(n))) as workers:
            return detect_one_face(folder, n, ctx.progress, measures, workers), 0, 1

    def _write_lms(self, ctx: TaskContext, landmarks: np.ndarray) -> None:
        """ori_imgs/{i}.lms for every frame ('nan nan' lines where no face, as np.savetxt).

        The jaw follows the visible face outline (`landmarks68`), as iBUG-68's annotations do.
        """
        folder = ctx.out / FRAMES_DIR
        points = landmarks68(landmarks)

        def write_batch(indices: list[int]) -> None:
            for i in indices:
                write_text(folder / f"{i}.lms", lms_text(points[i]))

        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [pool.submit(write_batch, b) for b in batched(range(len(points)), LMS_BATCH)]
            for job in jobs:
                job.result()

    def _track(
        self, ctx: TaskContext, landmarks: np.ndarray, width: int, height: int
    ) -> dict[str, Any]:
        """Bundle adjustment of focal, shape and poses; writes track_params.pt (RAD-NeRF units)."""
        import torch

        from talkprep.geometry.camera import radnerf_pose
        from talkprep.geometry.tracking import TrackingError, track_head

        try:
            track = track_head(landmarks, width, height, progress=ctx.progress)
        except TrackingError as exc:
            raise TaskError(
                f"head tracking failed: {exc}; look at ori_imgs/*.lms on a few frames "
                "(if the points sit on the face, please report this video)"
            ) from exc
        euler, trans = radnerf_pose(track.rotation, track.translation)
        params = {
            "euler": torch.from_numpy(np.asarray(euler, dtype=np.float32)),
            "trans": torch.from_numpy(np.asarray(trans, dtype=np.float32)),
            "focal": torch.tensor([float(track.focal)], dtype=torch.float32),
            "shape": torch.from_numpy(np.asarray(track.shape, dtype=np.float32)),
            "reproj_err": torch.from_numpy(np.asarray(track.reproj_err, dtype=np.float32)),
            "rigid_index": torch.from_numpy(np.asarray(track.rigid_index, dtype=np.int64)),
        }
        write_torch(ctx.out / TRACK_NAME, params)
        distance = np.linalg.norm(np.asarray(track.translation, dtype=np.float64), axis=1)
        finite = np.isfinite(distance)
        return {
            "euler": np.asarray(euler),
            "focal": round(float(track.focal), 3),
            "distance": round(float(np.median(distance[finite])), 4) if finite.any() else None,
            "figures": dict(track.figures),
            "focal_curve": [[round(float(f), 2), round(float(e), 4)] for f, e in track.focal_curve],
        }

    def _blendshapes(self, ctx: TaskContext, n: int, model: Path) -> int:
        """Writes bs.npy; returns the number of frames with scores."""
        fps = float(ctx.records["frames"]["info"].get("fps", ctx.config.fps))
        scores = blendshape_scores(ctx.out / FRAMES_DIR, n, fps, model, ctx.progress)
        write_npy(ctx.out / BLENDSHAPES_NAME, scores)
        return int(np.isfinite(scores).all(axis=1).sum())

    def check(self, facts: FolderFacts) -> list[CheckResult]:
        results = []
        landmarks_path = facts.root / LANDMARKS_NAME
        if landmarks_path.is_file():
            results.append(_check_landmarks(landmarks_path, facts))
        lms = check_numbered_files(facts, FRAMES_DIR, ".lms", f"{FRAMES_DIR}/*.lms")
        if lms is not None:
            landmarks = _load_npy(landmarks_path) if landmarks_path.is_file() else None
            if isinstance(landmarks, str) or (landmarks is not None and landmarks.ndim != 3):
                landmarks = None
            results.append(_check_lms_contents(facts, lms, landmarks) if lms.ok else lms)
        track_path = facts.root / TRACK_NAME
        if track_path.is_file():
            results.append(_check_track(track_path, facts))
        bs_path = facts.root / BLENDSHAPES_NAME
        if bs_path.is_file():
            results.append(_check_blendshapes(bs_path, facts))
        return results


def _load_npy(path: Path) -> np.ndarray | str:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return f"cannot read {path.name}: {exc}"


def _check_landmarks(path: Path, facts: FolderFacts) -> CheckResult:
    array = _load_npy(path)
    if isinstance(array, str):
        return CheckResult(LANDMARKS_NAME, 0, array)
    count = len(array) if array.ndim else 0
    if array.ndim != 3 or array.shape[1:] != (NUM_MESH_POINTS, 3):
        return CheckResult(LANDMARKS_NAME, count, f"shape {array.shape}, expected [N, 478, 3]")
    if array.dtype != np.float32:
        return CheckResult(LANDMARKS_NAME, count, f"dtype {array.dtype}, expected float32")
    if facts.n_frames is not None and count != facts.n_frames:
        return CheckResult(
            LANDMARKS_NAME, count, f"{count} rows but the dataset has {facts.n_frames} frames"
        )
    finite = np.isfinite(array).all(axis=2)
    partial = finite.any(axis=1) & ~finite.all(axis=1)
    if partial.any():
        return CheckResult(
            LANDMARKS_NAME,
            count,
            f"frame {int(np.argmax(partial))} is partly NaN (rows must be whole)",
        )
    if not finite.all(axis=1).any():
        return CheckResult(LANDMARKS_NAME, count, "no frame has a face (all rows NaN)")
    if facts.frame_size is not None:
        h, w = facts.frame_size
        xy = array[finite.all(axis=1)][..., :2]
        centres = xy.mean(axis=1)
        outside = (
            (centres[:, 0] < 0) | (centres[:, 0] > w) | (centres[:, 1] < 0) | (centres[:, 1] > h)
        )
        if outside.any():
            return CheckResult(LANDMARKS_NAME, count, "face centres lie outside the frame")
    return CheckResult(LANDMARKS_NAME, count)


def _read_lms(path: Path) -> np.ndarray:
    """A .lms file as float [68, 2]; ValueError when it is not 68 lines of 'x y'."""
    values = np.array(path.read_text().split(), dtype=np.float64)
    if values.size != 2 * NUM_LMS68:
        raise ValueError(f"{values.size // 2} points, expected {NUM_LMS68}")
    return values.reshape(NUM_LMS68, 2)


def _check_lms_contents(
    facts: FolderFacts, counted: CheckResult, landmarks: np.ndarray | None
) -> CheckResult:
    """Every .lms is 68 points; with landmarks.npy beside them, the points it maps to."""
    expected = None
    if landmarks is not None and len(landmarks) == counted.count:
        expected = landmarks68(landmarks)

    def problem(i: int) -> str | None:
        path = facts.root / FRAMES_DIR / f"{i}.lms"
        try:
            points = _read_lms(path)
        except (OSError, ValueError) as exc:
            return f"{path.name} cannot be read: {exc}"
        if expected is not None and not np.allclose(
            points, expected[i], atol=LMS_TOLERANCE_PX, equal_nan=True
        ):
            return f"{path.name} does not match landmarks.npy (frame {i})"
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        found = next((p for p in pool.map(problem, range(counted.count)) if p), None)
    return counted if found is None else CheckResult(counted.group, counted.count, found)


def _check_track(path: Path, facts: FolderFacts) -> CheckResult:
    import torch

    try:
        params = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        return CheckResult(TRACK_NAME, 0, f"cannot read {TRACK_NAME}: {type(exc).__name__}")
    if not isinstance(params, dict):
        return CheckResult(TRACK_NAME, 0, "not a dict of tensors")
    missing = [k for k in (*TRACK_KEYS_N3, "focal") if k not in params]
    if missing:
        return CheckResult(TRACK_NAME, 0, f"missing keys {missing}")
    count = int(params["euler"].shape[0]) if params["euler"].ndim else 0
    for key in TRACK_KEYS_N3:
        value = params[key]
        if value.ndim != 2 or value.shape[1] != 3:
            return CheckResult(
                TRACK_NAME, count, f"{key} has shape {tuple(value.shape)}, expected [N, 3]"
            )
        if value.dtype != torch.float32:
            return CheckResult(TRACK_NAME, count, f"{key} is {value.dtype}, expected float32")
        if facts.n_frames is not None and value.shape[0] != facts.n_frames:
            return CheckResult(
                TRACK_NAME,
                count,
                f"{key} has {value.shape[0]} rows but the dataset has {facts.n_frames} frames",
            )
    focal = params["focal"].reshape(-1)
    if (
        focal.numel() != 1
        or not bool(torch.isfinite(focal).all())
        or float(focal[0]) < MIN_FOCAL_PX
    ):
        return CheckResult(
            TRACK_NAME, count, f"focal must be one positive number, got {focal.tolist()}"
        )
    if "reproj_err" in params and params["reproj_err"].shape[0] != count:
        return CheckResult(TRACK_NAME, count, "reproj_err rows differ from euler rows")
    if "shape" in params and (params["shape"].ndim != 2 or params["shape"].shape[1] != 3):
        return CheckResult(
            TRACK_NAME, count, f"shape has shape {tuple(params['shape'].shape)}, expected [K, 3]"
        )
    if not bool(torch.isfinite(params["euler"]).all(dim=1).any()):
        return CheckResult(TRACK_NAME, count, "no frame has a finite pose")
    return CheckResult(TRACK_NAME, count)


def _check_blendshapes(path: Path, facts: FolderFacts) -> CheckResult:
    array = _load_npy(path)
    if isinstance(array, str):
        return CheckResult(BLENDSHAPES_NAME, 0, array)
    count = len(array) if array.ndim else 0
    if array.ndim != 2 or array.shape[1] != NUM_BLENDSHAPES:
        return CheckResult(BLENDSHAPES_NAME, count, f"shape {array.shape}, expected [N, 52]")
    if facts.n_frames is not None and count != facts.n_frames:
        return CheckResult(
            BLENDSHAPES_NAME, count, f"{count} rows but the dataset has {facts.n_frames} frames"
        )
    return CheckResult(BLENDSHAPES_NAME, count)
