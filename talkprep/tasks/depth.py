"""Task 8: a depth map per frame, depth/{i}.png (16-bit; 0 = unknown).

`--depth mesh` (default, no weights): the face mesh of each frame is placed in the tracked camera
and rasterised into a z-buffer, giving metric depth along the camera axis on the face and 0
elsewhere. Placement (`place_face_meshes`): the frame's own MediaPipe points (x, y in pixels, z in
the same pixel scale, so lips, jaw and eyelids move with the expression) are aligned by a
similarity transform onto the tracked rigid face shape posed in the camera (R @ shape + t) over
the rigid subset, which gives every mesh point a metric depth consistent with the tracked pose and
focal. A second alignment, after putting the points on their camera rays at the first pass's
depths, removes the error of MediaPipe's near-orthographic x, y (on a synthetic face at 0.5-1.2 m
the depths come back within 0.7 mm, median under 0.1 mm). Finally each point is put on the ray of
its own landmark pixel at its depth (X = (u - cx) Z / f, Y = (v - cy) Z / f), so the depth map
lines up with the landmarks exactly and fills the face-oval polygon. The eye and inner-lip
openings are closed (see `mesh_triangles`), so an open mouth gets the depth of the lip opening.

`--depth dagan`: DaGAN's face depth network over the whole frame, relative depth in its
disp_to_depth(0.1, 100) units (see `talkprep.models.dagan`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkprep.config import Config
from talkprep.errors import TaskError
from talkprep.geometry.face_topology import FACE_OVAL, NOSE_TIP
from talkprep.geometry.mesh_triangles import FACE_TRIANGLES
from talkprep.geometry.raster import DepthWindow, rasterize_depth_window
from talkprep.io.images import read_image
from talkprep.io.png import write_png_fast
from talkprep.io.prefetch import WriteBehind, read_ahead
from talkprep.parallel import Tick, claim_cores, run_spans, tapered_spans
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
from talkprep.tasks.landmarks import LANDMARKS_NAME, LandmarkFile

DEPTH_DIR = "depth"
TRACK_NAME = "track_params.pt"
MESH_METRES_PER_COUNT = 1e-4
"""--depth mesh: one PNG count is 0.1 mm along the camera axis (65535 counts = 6.55 m)."""
DAGAN_UNITS_PER_COUNT = 2e-3
"""--depth dagan: one PNG count is 0.002 of DaGAN's relative depth (its 0.1..100 range fits)."""
MAX_COUNT = np.iinfo(np.uint16).max
MESH_BATCH = 64
"""Frames whose meshes are placed in one batched step."""
SPAN_FRAMES = 250
"""Frames per span of the span workers (talkprep.parallel; the last one tapered, see tapered_spans);
each frame is drawn on its own, so the span only sets how evenly the work spreads."""
DAGAN_BATCH = 8
"""Frames per DaGAN forward pass."""
POLY_SHIFT = 4
"""Fractional bits of the face-oval vertices handed to cv2.fillPoly."""
CHECK_SAMPLES = 3
"""depth PNGs opened by `check` (first, middle, last)."""
UNIT_MESH = "0.1 mm along the camera axis (metric, from the tracked face mesh); 0 = no face"
UNIT_DAGAN = "0.002 DaGAN relative depth units (monodepth2 disp_to_depth 0.1..100); 0 = unknown"


def similarity_batch(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Umeyama similarity per batch item: s [B], R [B,3,3], t [B,3] with s R src + t ~ dst."""
    mu_s, mu_d = src.mean(axis=1), dst.mean(axis=1)
    a, b = src - mu_s[:, None], dst - mu_d[:, None]
    u, sig, vt = np.linalg.svd(np.einsum("bki,bkj->bij", b, a))
    flip = np.sign(np.linalg.det(u @ vt))
    fix = np.ones((len(src), 3))
    fix[:, 2] = flip
    rot = u @ (fix[:, :, None] * vt)
    scale = (sig * fix).sum(axis=1) / (a**2).sum(axis=(1, 2))
    return scale, rot, mu_d - scale[:, None] * np.einsum("bij,bj->bi", rot, mu_s)


def place_face_meshes(
    landmarks: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    shape: np.ndarray,
    rigid_index: np.ndarray,
    focal: float,
    cx: float,
    cy: float,
) -> np.ndarray:
    """Camera-space face meshes (CV camera, metres) for B frames; see the module docstring.

    Args:
        landmarks: [B, 478, 3] MediaPipe points (x, y pixels, z relative in pixel scale).
        rotation, translation: [B, 3, 3], [B, 3] tracked head -> camera poses (metres).
        shape, rigid_index: [K, 3] tracked rigid face shape (head frame, metres), its mesh indices.
        focal, cx, cy: the tracked pinhole camera in pixels.

    Returns:
        [B, 478, 3] points whose projection is exactly the landmarks' x, y.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    posed = np.einsum("bij,kj->bki", rotation, shape) + translation[:, None, :]
    rays = np.stack(
        [(landmarks[..., 0] - cx) / focal, (landmarks[..., 1] - cy) / focal],
        axis=-1,
    )
    # pass 1: MediaPipe's near-orthographic points as they are -> metres per pixel and mean depth
    scale, rot, shift = similarity_batch(landmarks[:, rigid_index], posed)
    first_z = scale[:, None] * np.einsum("bj,bkj->bk", rot[:, 2], landmarks) + shift[:, 2:3]
    relative = landmarks[..., 2] - landmarks[..., 2].mean(axis=1, keepdims=True)
    depth = first_z.mean(axis=1, keepdims=True) + scale[:, None] * relative
    # pass 2: the same points put on their camera rays at those depths (perspective undone),
    # aligned again; this removes most of pass 1's error from perspective (mm -> tenths of mm)
    metric = np.concatenate([rays * depth[..., None], depth[..., None]], axis=-1)
    scale, rot, shift = similarity_batch(metric[:, rigid_index], posed)
    z = scale[:, None] * np.einsum("bj,bkj->bk", rot[:, 2], metric) + shift[:, 2:3]
    return np.concatenate([rays * z[..., None], z[..., None]], axis=-1)


def face_oval_mask(landmarks: np.ndarray, height: int, width: int) -> tuple[np.ndarray, int, int]:
    """The face-oval polygon of one frame as a bool mask over its bounding box (clipped to the
    image): (mask [h, w], top, left)."""
    oval = landmarks[FACE_OVAL, :2].astype(np.float64)
    left = int(np.clip(np.floor(oval[:, 0].min()) - 1, 0, width))
    top = int(np.clip(np.floor(oval[:, 1].min()) - 1, 0, height))
    right = int(np.clip(np.ceil(oval[:, 0].max()) + 1, left, width))
    bottom = int(np.clip(np.ceil(oval[:, 1].max()) + 1, top, height))
    # landmark coordinates put pixel centres at j + 0.5, cv2 at j
    points = np.round((oval - 0.5 - (left, top)) * (1 << POLY_SHIFT)).astype(np.int32)
    mask = np.zeros((bottom - top, right - left), np.uint8)
    cv2.fillPoly(mask, [points], 1, lineType=cv2.LINE_8, shift=POLY_SHIFT)
    return mask.astype(bool), top, left


def crop(window: DepthWindow, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Depth over the image box (top, left, height, width), zero outside the window."""
    out = np.zeros((height, width), dtype=window.depth.dtype)
    win_h, win_w = window.depth.shape
    y0, x0 = max(top, window.top), max(left, window.left)
    y1 = min(top + height, window.top + win_h)
    x1 = min(left + width, window.left + win_w)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = window.depth[
            y0 - window.top : y1 - window.top, x0 - window.left : x1 - window.left
        ]
    return out


def encode_depth(depth: np.ndarray, unit: float) -> np.ndarray:
    """uint16 counts of `unit` (0 stays 0 = unknown; beyond the range also becomes 0)."""
    counts = np.round(depth / unit)
    counts[(counts > MAX_COUNT) | ~np.isfinite(counts)] = 0
    return counts.astype(np.uint16)


class DepthTask(Task):
    number = 8
    name = "depth"
    title = "depth maps -> depth/*.png"
    needs = ("frames", "landmarks")
    makes = (f"{DEPTH_DIR}/*.png",)
    config_fields = ("depth",)

    def input_files(self, config: Config) -> list[Path]:
        if config.depth == "dagan" and config.depth_weights is not None:
            return [config.depth_weights]
        return []

    def run(self, ctx: TaskContext) -> TaskResult:
        n = ctx.frame_count()
        info = ctx.records["frames"]["info"]
        height, width = int(info["height"]), int(info["width"])
        (ctx.out / DEPTH_DIR).mkdir(parents=True, exist_ok=True)
        with LandmarkFile(ctx.out / LANDMARKS_NAME, n) as landmarks:
            if ctx.config.depth == "dagan":
                return self._dagan(ctx, landmarks, height, width)
            return self._mesh(ctx, landmarks, height, width)

    def _mesh(
        self, ctx: TaskContext, landmarks: LandmarkFile, height: int, width: int
    ) -> TaskResult:
        n = len(landmarks)
        job = mesh_job(ctx.out, landmarks, height, width)
        track, posable = job.track, job.posable
        spans = tapered_spans(n, SPAN_FRAMES)
        with claim_cores(len(spans)) as workers:
            parts = run_spans(_depth_span, spans, job, workers, ctx.progress, "depth")
        stats = _MeshStats(n, height, width)
        for span, part in zip(spans, parts, strict=True):
            stats.put(span.start, part)
        if not posable.any():
            raise TaskError("no frame has both a face and a tracked pose; rerun task 4 (landmarks)")
        figures = stats.figures()
        if figures["face_coverage_median"] < 0.9:
            ctx.warn(
                f"depth covers only {figures['face_coverage_median']:.0%} of the face oval "
                "(median over frames); check the landmarks in the report"
            )
        result_info = {
            "backend": "mesh",
            "unit": UNIT_MESH,
            "metres_per_count": MESH_METRES_PER_COUNT,
            "focal": track["focal"],
            "frames_with_depth": int(posable.sum()),
        }
        return TaskResult(frames=n, figures=figures, info=result_info)

    def _dagan(
        self, ctx: TaskContext, landmarks: LandmarkFile, height: int, width: int
    ) -> TaskResult:
        from talkprep.models.dagan import DaganDepth

        weights = ctx.config.depth_weights
        if weights is None:
            raise TaskError("--depth dagan needs --depth-weights DIR (encoder.pth, depth.pth)")
        n = len(landmarks)
        nose, face_median = np.full(n, np.nan), np.full(n, np.nan)
        folder = ctx.out / FRAMES_DIR
        with DaganDepth(Path(weights), ctx.device) as model, ThreadPoolExecutor(2) as pool:
            writer = WriteBehind(pool)
            images = read_ahead(pool, lambda i: read_image(folder / f"{i}.jpg"), range(n))
            frames = ctx.progress(enumerate(images), total=n, desc="depth (DaGAN)")
            for batch in batched(frames, DAGAN_BATCH):
                depths = model.predict([image for _, image in batch])
                for (i, image), depth in zip(batch, depths, strict=True):
                    if image.shape[:2] != (height, width):
                        raise TaskError(
                            f"{FRAMES_DIR}/{i}.jpg is not {width}x{height}; rerun task 3"
                        )
                    counts = encode_depth(depth, DAGAN_UNITS_PER_COUNT)
                    writer.submit(write_png_fast, ctx.out / DEPTH_DIR / f"{i}.png", counts)
                    points = landmarks[i]
                    if np.isfinite(points).all():
                        nose[i] = _sample(depth, points[NOSE_TIP])
                        face, top, left = face_oval_mask(points, height, width)
                        inside = depth[top : top + face.shape[0], left : left + face.shape[1]][face]
                        face_median[i] = float(np.median(inside)) if inside.size else np.nan
            writer.finish()
            model_info = model.info.to_dict()
        faces = np.isfinite(face_median)
        figures: dict[str, Any] = {"frames": n, "frames_with_face": int(faces.sum())}
        if faces.any():
            figures["nose_tip_depth_median"] = _round(np.nanmedian(nose))
            figures["face_depth_median"] = _round(np.nanmedian(face_median))
            figures["nose_nearer_than_face_median"] = _round(
                np.mean(nose[faces] < face_median[faces])
            )
        result_info = {
            "backend": "dagan",
            "unit": UNIT_DAGAN,
            "units_per_count": DAGAN_UNITS_PER_COUNT,
            **model_info,
        }
        return TaskResult(frames=n, figures=figures, info=result_info)

    def check(self, facts: FolderFacts) -> list[CheckResult]:
        group = f"{DEPTH_DIR}/*.png"
        result = check_numbered_files(facts, DEPTH_DIR, ".png", group)
        if result is None or not result.ok:
            return [] if result is None else [result]
        for index in sorted({0, result.count // 2, result.count - 1})[:CHECK_SAMPLES]:
            path = facts.root / DEPTH_DIR / f"{index}.png"
            try:
                image = read_image(path, cv2.IMREAD_UNCHANGED)
            except ValueError:
                return [CheckResult(group, result.count, f"{path.name} is not a readable PNG")]
            if image.dtype != np.uint16 or image.ndim != 2:
                return [
                    CheckResult(
                        group,
                        result.count,
                        f"{path.name} is {image.dtype} with shape {image.shape}, "
                        "expected one 16-bit channel",
                    )
                ]
            if facts.frame_size is not None and image.shape != facts.frame_size:
                return [
                    CheckResult(
                        group,
                        result.count,
                        f"{path.name} is {image.shape[1]}x{image.shape[0]}, frames are "
                        f"{facts.frame_size[1]}x{facts.frame_size[0]}",
                    )
                ]
        return [result]


@dataclass(frozen=True)
class _MeshJob:
    """What a span worker needs to write the mesh depth of its frames."""

    out: Path
    n: int
    height: int
    width: int
    track: dict[str, Any]
    """`_load_track`'s arrays (poses of all N frames: a few hundred kB per 10,000 frames)."""
    posable: np.ndarray
    """bool [N]: frames with a face and a tracked pose."""


def mesh_job(out: Path, landmarks: LandmarkFile, height: int, width: int) -> _MeshJob:
    """The span workers' job for folder `out`: its track, and which frames have both a face and
    a tracked pose."""
    n = len(landmarks)
    track = _load_track(out / TRACK_NAME, n)
    posable = (
        landmarks.valid()
        & np.isfinite(track["rotation"]).all(axis=(1, 2))
        & np.isfinite(track["translation"]).all(axis=1)
    )
    return _MeshJob(out, n, height, width, track, posable)


def _depth_span(span: range, job: _MeshJob, tick: Tick) -> _MeshStats:
    """depth/{i}.png for the frames of `span` (each frame on its own: any split gives the same
    files); returns the span's figures."""
    track, height, width = job.track, job.height, job.width
    rotation, translation = track["rotation"], track["translation"]
    focal, cx, cy = track["focal"], width / 2.0, height / 2.0
    stats = _MeshStats(len(span), height, width)
    folder = job.out / DEPTH_DIR
    with LandmarkFile(job.out / LANDMARKS_NAME, job.n) as landmarks, ThreadPoolExecutor(2) as pool:
        writer = WriteBehind(pool)
        for batch in batched(span, MESH_BATCH):
            frames = np.asarray(batch)
            block = landmarks.rows(batch[0], batch[-1] + 1)  # frames of the batch, in order
            good = frames[job.posable[frames]]
            points = place_face_meshes(
                block[good - batch[0]],
                rotation[good],
                translation[good],
                track["shape"],
                track["rigid_index"],
                focal,
                cx,
                cy,
            )
            placed = dict(zip(good.tolist(), points, strict=True))
            for i in batch:
                counts = np.zeros((height, width), np.uint16)
                if i in placed:
                    frame_points = block[i - batch[0]]
                    window = rasterize_depth_window(
                        frame_points[:, :2], placed[i][:, 2], FACE_TRIANGLES, height, width
                    )
                    stats.add(
                        i - span.start, window, frame_points, rotation[i], translation[i], track
                    )
                    win_h, win_w = window.depth.shape
                    counts[window.top : window.top + win_h, window.left : window.left + win_w] = (
                        encode_depth(window.depth, MESH_METRES_PER_COUNT)
                    )
                writer.submit(write_png_fast, folder / f"{i}.png", counts)
                tick(1)
        writer.finish()
    return stats


class _MeshStats:
    """Per-frame depth figures, summarised for the manifest."""

    def __init__(self, n: int, height: int, width: int) -> None:
        self.size = (height, width)
        self.coverage = np.full(n, np.nan)
        self.nose = np.full(n, np.nan)
        self.face = np.full(n, np.nan)
        self.tracked_face = np.full(n, np.nan)
        self.distance = np.full(n, np.nan)

    def put(self, start: int, part: _MeshStats) -> None:
        """Take a span's figures (made by a span worker) for frames start, start + 1, ..."""
        stop = start + len(part.coverage)
        for name in ("coverage", "nose", "face", "tracked_face", "distance"):
            getattr(self, name)[start:stop] = getattr(part, name)

    def add(
        self,
        i: int,
        window: DepthWindow,
        landmarks: np.ndarray,
        rotation: np.ndarray,
        translation: np.ndarray,
        track: dict[str, Any],
    ) -> None:
        oval, top, left = face_oval_mask(landmarks, *self.size)
        depth = crop(window, top, left, *oval.shape)
        self.coverage[i] = np.count_nonzero(depth[oval]) / max(np.count_nonzero(oval), 1)
        nose = landmarks[NOSE_TIP, :2] - (left, top)
        self.nose[i] = _sample(depth, nose)
        covered = window.depth[window.depth > 0]
        self.face[i] = float(np.median(covered)) if covered.size else np.nan
        posed_z = track["shape"] @ rotation[2] + translation[2]
        self.tracked_face[i] = float(np.median(posed_z))
        self.distance[i] = float(np.linalg.norm(translation))

    def figures(self) -> dict[str, Any]:
        done = np.isfinite(self.coverage)
        if not done.any():
            return {"frames_with_depth": 0}
        return {
            "frames_with_depth": int(done.sum()),
            "face_coverage_median": _round(np.median(self.coverage[done])),
            "face_coverage_min": _round(np.min(self.coverage[done])),
            "nose_tip_depth_m": _round(np.nanmedian(self.nose)),
            "camera_distance_m": _round(np.nanmedian(self.distance)),
            "nose_tip_over_camera_distance": _round(np.nanmedian(self.nose / self.distance)),
            "face_depth_m": _round(np.nanmedian(self.face)),
            "tracked_face_depth_m": _round(np.nanmedian(self.tracked_face)),
            "face_depth_over_tracked": _round(np.nanmedian(self.face / self.tracked_face)),
        }


def _sample(depth: np.ndarray, point: np.ndarray) -> float:
    """Depth at the pixel holding `point` (x, y in pixels); NaN off the image or where 0."""
    col, row = int(np.floor(point[0])), int(np.floor(point[1]))
    if not (0 <= row < depth.shape[0] and 0 <= col < depth.shape[1]):
        return float("nan")
    value = float(depth[row, col])
    return value if value > 0 else float("nan")


def _round(value: float) -> float | None:
    return round(float(value), 5) if np.isfinite(value) else None


def _load_track(path: Path, n: int) -> dict[str, Any]:
    """Tracked poses as CV-camera rotation/translation in metres, plus focal and rigid shape."""
    import torch

    from talkprep.geometry.camera import CV_TO_GL, DECIMETRES_PER_METRE, euler_to_rotation

    try:
        params = torch.load(path, map_location="cpu", weights_only=True)
        euler = params["euler"].double().numpy()
        trans = params["trans"].double().numpy()
        focal = float(params["focal"].reshape(-1)[0])
        shape = params["shape"].double().numpy()
        rigid_index = params["rigid_index"].long().numpy()
    except Exception as exc:  # a damaged or foreign file: any of torch's errors, a missing key
        raise TaskError(
            f"cannot use {path.name} ({type(exc).__name__}: {exc}); rerun task 4 (landmarks)"
        ) from None
    if len(euler) != n or len(trans) != n or len(shape) != len(rigid_index):
        raise TaskError(f"{path.name} does not match the {n} frames; rerun task 4 (landmarks)")
    # track_params holds AD-NeRF's OpenGL-camera pose in decimetres: R_gl = diag(1,-1,-1) R_cv,
    # trans = 10 diag(1,-1,-1) t_cv (see geometry/camera.py)
    rotation = CV_TO_GL @ euler_to_rotation(euler)
    translation = (trans / DECIMETRES_PER_METRE) @ CV_TO_GL.T
    return {
        "rotation": rotation,
        "translation": translation,
        "focal": focal,
        "shape": shape,
        "rigid_index": rigid_index,
    }
