"""Task 9: the train/val split with camera poses (transforms_*.json) and OpenFace-style au.csv.

The JSON files follow RAD-NeRF's save_transforms (focal_len, cx, cy, frames of img_id, aud_id,
transform_matrix) plus the fields its loaders otherwise compute from the .lms files: `face_rect`
as [row_min, row_max, col_min, col_max] (RAD-NeRF's [xmin, xmax, ymin, ymax], x being the row) and
`eye_ratio`, the eyes' area in percent of the image (RAD-NeRF's eye_area; about 0.25 when open).
au.csv has OpenFace 2's columns (` frame`, ` face_id`, ` timestamp`, ` confidence`, ` success`,
the 17 ` AUxx_r` intensities on 0-5 and the 18 ` AUxx_c` presences), estimated without OpenFace:
each frame's mesh is moved into the tracked head frame and measured against the person's own
neutral (brows, lids, cheeks, nose wings, lip corners, lips, jaw); with task 4's blendshapes the
brow, cheek, nose and lip-corner AUs come from MediaPipe's scores instead. ER-NeRF, SyncTalk and
GaussianTalker read ` AU45_r`; TalkingGaussian and InsTaG also ` AU01_r`, ` AU04_r`, ` AU05_r`,
` AU06_r`, ` AU07_r` and ` AU25_r`.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from talkprep.errors import TaskError
from talkprep.geometry.face_topology import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from talkprep.geometry.jaw_contour import landmarks68
from talkprep.io.atomic import write_json, write_text
from talkprep.screening import KINDS, MARGIN_FRAMES
from talkprep.tasks.base import CheckResult, FolderFacts, Task, TaskContext, TaskResult
from talkprep.tasks.fitness import measure_sync, screen_frames
from talkprep.tasks.landmarks import BLENDSHAPES_NAME, LANDMARKS_NAME, TRACK_NAME

SPLITS = ("train", "val")
TRAIN_FRACTION = 10 / 11
"""The first int(n * 10/11) usable frames train, the rest validate (RAD-NeRF's split)."""
AU_NAME = "au.csv"
AU_INTENSITIES = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
"""OpenFace 2's 17 intensity AUs (` AUxx_r`, 0-5), in its column order."""
AU_PRESENCES = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45)
"""OpenFace 2's 18 presence AUs (` AUxx_c`, 0 or 1): the intensity AUs plus AU28 (lip suck)."""
AU_HEAD = (" frame", " face_id", " timestamp", " confidence", " success")
AU_COLUMNS = (
    *AU_HEAD,
    *(f" AU{a:02d}_r" for a in AU_INTENSITIES),
    *(f" AU{a:02d}_c" for a in AU_PRESENCES),
)
"""au.csv's header as OpenFace's FeatureExtraction writes it (a space after every comma)."""
AU_MAX = 5.0
"""OpenFace's AU intensity scale is 0-5."""
AU_PRESENT = 1.0
"""Intensity from which ` AUxx_c` says present (OpenFace's classifier fires near intensity 1)."""
HEAD_FRAME_CHUNK = 512
"""Frames moved into the head frame at once (memory: a few MiB of temporaries per chunk)."""
EYES_68 = (slice(36, 42), slice(42, 48))
"""Each eye's six iBUG points in polygon order: outer/inner corner, two upper, corner, two lower."""
RIGHT_EYE_MESH = (33, 160, 158, 133, 153, 144)
LEFT_EYE_MESH = (263, 387, 385, 362, 380, 373)
"""p1..p6 of the eye aspect ratio: corner, upper, upper, corner, lower, lower (p2-p6, p3-p5)."""
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
UPPER_LIP_OUTER, LOWER_LIP_OUTER = 0, 17
MOUTH_CORNERS = (61, 291)
NOSE_BRIDGE, CHIN, SUBNASALE, NOSE_TIP = 6, 152, 2, 4
BROWS_INNER, BROWS_OUTER = (107, 336), (70, 300)
EYES_INNER, EYES_OUTER = (133, 362), (33, 263)
CHEEKS = (117, 346)
"""Cheek points under the eyes (they rise with AU06)."""
NOSE_WINGS = (98, 327)
"""Nostril wings (they rise with AU09)."""
BLINK_OPEN_TOLERANCE = 0.15
"""Eye closure (1 - EAR / the person's open EAR) below this counts as open: AU45 = 0."""
BLINK_FULL_CLOSURE = 0.7
"""Closure at which AU45 reaches 5 (a closed eye's mesh keeps about 30% of its open EAR)."""
MOUTH_FULL_OPENING = 0.35
"""Inner-lip gap over outer eye-corner distance at which AU25 reaches 5 (mouth wide open)."""
JAW_FULL_DROP = 0.25
"""Growth of the bridge-to-chin distance (over eye-corner distance) at which AU26 reaches 5."""
CLOSED_PERCENTILE = 5
"""A person's closed-mouth reference: this percentile of their mouth measures over the video."""
FULL_SCALE = {
    1: 0.10,
    2: 0.10,
    4: 0.06,
    5: 0.30,
    6: 0.05,
    7: 0.45,
    9: 0.05,
    10: 0.08,
    12: 0.12,
    14: 0.08,
    15: 0.06,
    17: 0.12,
    20: 0.12,
    23: 0.06,
    28: 0.12,
}
"""Change from the person's neutral (over the outer eye-corner distance, or relative for the eye
opening of AU05/AU07) at which each AU reaches 5: brows rise about 9 mm at full AU01/AU02, a
full smile widens the mouth and lifts its corners about 1 cm (0.12 of the 9 cm eye distance)."""
BLENDSHAPE_AUS: dict[int, tuple[str, ...]] = {
    1: ("browInnerUp",),
    2: ("browOuterUpLeft", "browOuterUpRight"),
    4: ("browDownLeft", "browDownRight"),
    5: ("eyeWideLeft", "eyeWideRight"),
    6: ("cheekSquintLeft", "cheekSquintRight"),
    7: ("eyeSquintLeft", "eyeSquintRight"),
    9: ("noseSneerLeft", "noseSneerRight"),
    10: ("mouthUpperUpLeft", "mouthUpperUpRight"),
    12: ("mouthSmileLeft", "mouthSmileRight"),
    14: ("mouthDimpleLeft", "mouthDimpleRight"),
    15: ("mouthFrownLeft", "mouthFrownRight"),
    17: ("mouthShrugLower",),
    20: ("mouthStretchLeft", "mouthStretchRight"),
    23: ("mouthPressLeft", "mouthPressRight"),
    28: ("mouthRollLower", "mouthRollUpper"),
}
"""MediaPipe blendshapes (ARKit names) that score each AU; AU25, AU26 and AU45 stay geometric
(AU45 so that ER-NeRF's eye control matches its own process)."""
BLENDSHAPE_NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)  # fmt: skip
"""MediaPipe FaceLandmarker's 52 blendshape categories in score order (blendshapes.npy columns)."""
CONFIDENCE_DETECTED, CONFIDENCE_INTERPOLATED = 0.98, 0.5
ORTHONORMAL_TOLERANCE = 1e-3
REQUIRED_KEYS = ("focal_len", "cx", "cy", "frames")
REQUIRED_FRAME_KEYS = ("img_id", "aud_id", "transform_matrix")
"""What the RAD-NeRF/ER-NeRF loaders cannot do without; other fields are checked when present."""
BLINK_COLUMN = " AU45_r"
"""The au.csv column ER-NeRF reads (OpenFace's header puts a space after each comma)."""


def train_val_ids(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of the train and val splits: usable frames in order, split 10:1."""
    ids = np.flatnonzero(valid)
    cut = int(len(ids) * TRAIN_FRACTION)
    return ids[:cut], ids[cut:]


def polygon_area(points: np.ndarray) -> np.ndarray:
    """Shoelace area of closed polygons float [..., P, 2] -> [...]."""
    x, y = points[..., 0], points[..., 1]
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y, axis=-1))


def face_rects(lms68: np.ndarray) -> np.ndarray:
    """RAD-NeRF's face rect from [N, 68, 2] points: int [N, 4] row_min, row_max, col_min, col_max.

    The top is the nose base (points 31-35), so the rect covers the lower face that speech moves.
    """
    rows, cols = lms68[..., 1], lms68[..., 0]
    rect = np.stack(
        [rows[:, 31:36].min(axis=1), rows.max(axis=1), cols.min(axis=1), cols.max(axis=1)], axis=1
    )
    return np.trunc(rect).astype(np.int64)


def eye_ratios(lms68: np.ndarray, height: int, width: int) -> np.ndarray:
    """Both eyes' polygon area in percent of the image, per frame (RAD-NeRF's eye_area)."""
    area = sum(polygon_area(lms68[:, eye, :2]) for eye in EYES_68)
    return area / (height * width) * 100.0


def eye_aspect_ratio(mesh: np.ndarray) -> np.ndarray:
    """Mean EAR of both eyes from float [N, 478, 3] mesh points (3D, so head yaw matters less)."""
    ratios = []
    for eye in (RIGHT_EYE_MESH, LEFT_EYE_MESH):
        p = mesh[:, list(eye)]
        vertical = np.linalg.norm(p[:, 1] - p[:, 5], axis=-1) + np.linalg.norm(
            p[:, 2] - p[:, 4], axis=-1
        )
        ratios.append(vertical / (2.0 * np.linalg.norm(p[:, 0] - p[:, 3], axis=-1)))
    return 0.5 * (ratios[0] + ratios[1])


def head_frame_mesh(mesh: np.ndarray, shape: np.ndarray, rigid_index: np.ndarray) -> np.ndarray:
    """Each frame's mesh moved into the tracked head frame (metres): float [N, 478, 3].

    A similarity (rotation, uniform scale, shift) per frame maps the frame's rigid points onto the
    tracked rigid shape (Umeyama's least squares), so head motion and distance drop out and what
    is left is the face's own deformation, with x toward the subject's left, y up, z out of the
    face. NaN rows (no face) stay NaN. Vectorised over frames, a chunk at a time: the float64
    temporaries of a whole long video would be several times the result.
    """
    out = np.empty((len(mesh), *np.shape(mesh)[1:]), dtype=np.float64)
    for start in range(0, len(mesh), HEAD_FRAME_CHUNK):
        stop = start + HEAD_FRAME_CHUNK
        out[start:stop] = _head_frame_chunk(mesh[start:stop], shape, rigid_index)
    return out


def _head_frame_chunk(mesh: np.ndarray, shape: np.ndarray, rigid_index: np.ndarray) -> np.ndarray:
    mesh = np.asarray(mesh, dtype=np.float64)
    target = np.asarray(shape, dtype=np.float64)
    src = mesh[:, rigid_index]
    src_mean = src.mean(axis=1, keepdims=True)
    dst_mean = target.mean(axis=0)
    src_c = src - src_mean
    dst_c = target - dst_mean
    cov = np.einsum("kd,nke->nde", dst_c, src_c) / len(rigid_index)
    finite = np.isfinite(cov).all(axis=(1, 2))
    cov[~finite] = np.eye(3)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u @ vt))
    sign[sign == 0] = 1.0
    d = np.ones((len(mesh), 3))
    d[:, 2] = sign
    rot = np.einsum("nij,nj,njk->nik", u, d, vt)
    var = np.maximum((src_c**2).sum(axis=(1, 2)) / len(rigid_index), 1e-12)
    scale = (sig * d).sum(axis=1) / var
    out = scale[:, None, None] * np.einsum("nij,nkj->nki", rot, mesh - src_mean) + dst_mean
    out[~finite] = np.nan
    return out


def _measures(m: np.ndarray) -> dict[str, np.ndarray]:
    """Scale-free face measures of head-frame meshes [N, 478, 3] (y up, z out), per frame."""
    s = np.linalg.norm(m[:, RIGHT_EYE_OUTER] - m[:, LEFT_EYE_OUTER], axis=-1)
    up, depth = m[..., 1], m[..., 2]

    def pair(values: np.ndarray, points: tuple[int, int]) -> np.ndarray:
        return 0.5 * (values[:, points[0]] + values[:, points[1]])

    def dist(i: int, j: int) -> np.ndarray:
        return np.linalg.norm(m[:, i] - m[:, j], axis=-1)

    measures = {
        "brow_inner": pair(up, BROWS_INNER) - pair(up, EYES_INNER),
        "brow_outer": pair(up, BROWS_OUTER) - pair(up, EYES_OUTER),
        "cheek": pair(up, CHEEKS) - pair(up, EYES_OUTER),
        "nose_wings": pair(up, NOSE_WINGS) - up[:, NOSE_TIP],
        "upper_lip": up[:, UPPER_LIP_OUTER] - up[:, SUBNASALE],
        "corner_lift": pair(up, MOUTH_CORNERS) - up[:, SUBNASALE],
        "mouth_width": dist(*MOUTH_CORNERS),
        "corner_depth": pair(depth, MOUTH_CORNERS)
        - 0.5 * (depth[:, UPPER_LIP_OUTER] + depth[:, LOWER_LIP_OUTER]),
        "chin": up[:, LOWER_LIP_OUTER] - up[:, CHIN],
        "lip_thickness": (up[:, UPPER_LIP_OUTER] - up[:, UPPER_LIP_INNER])
        + (up[:, LOWER_LIP_INNER] - up[:, LOWER_LIP_OUTER]),
        "lips": dist(UPPER_LIP_INNER, LOWER_LIP_INNER),
        "jaw": dist(NOSE_BRIDGE, CHIN),
    }
    return {k: v / s for k, v in measures.items()}


def _ramp(delta: np.ndarray, full: float) -> np.ndarray:
    return np.clip(delta / full, 0.0, 1.0)


def geometric_action_units(mesh: np.ndarray) -> dict[int, np.ndarray]:
    """AU intensities (0-5) of head-frame meshes [M, 478, 3] of one person, from geometry alone.

    Each measure is compared with the person's neutral over the given frames: the median (faces
    are at rest most of the time) for brows, eyes, cheeks, nose and lip corners, and a low
    percentile of the mouth and jaw opening (closed mouth). AU28 (lip suck) has no intensity in
    OpenFace; it is returned for its presence column.
    """
    g = _measures(mesh)
    rest = {k: np.median(v) for k, v in g.items()}
    delta = {k: v - rest[k] for k, v in g.items()}
    ear = eye_aspect_ratio(mesh)
    closure = 1.0 - ear / np.median(ear)
    blink = (closure - BLINK_OPEN_TOLERANCE) / (BLINK_FULL_CLOSURE - BLINK_OPEN_TOLERANCE)
    lips_part = (g["lips"] - np.percentile(g["lips"], CLOSED_PERCENTILE)) / MOUTH_FULL_OPENING
    jaw_drop = (g["jaw"] - np.percentile(g["jaw"], CLOSED_PERCENTILE)) / JAW_FULL_DROP
    smile = 0.5 * (
        _ramp(delta["corner_lift"], FULL_SCALE[12]) + _ramp(delta["mouth_width"], FULL_SCALE[12])
    )
    units = {
        1: _ramp(delta["brow_inner"], FULL_SCALE[1]),
        2: _ramp(delta["brow_outer"], FULL_SCALE[2]),
        4: _ramp(-delta["brow_inner"], FULL_SCALE[4]),
        5: _ramp(-closure, FULL_SCALE[5]),
        6: _ramp(delta["cheek"], FULL_SCALE[6]),
        7: _ramp(closure, FULL_SCALE[7]),
        9: _ramp(delta["nose_wings"], FULL_SCALE[9]),
        10: _ramp(delta["upper_lip"], FULL_SCALE[10]),
        12: smile,
        14: _ramp(-delta["corner_depth"], FULL_SCALE[14]),
        15: _ramp(-delta["corner_lift"], FULL_SCALE[15]),
        17: _ramp(delta["chin"], FULL_SCALE[17]),
        20: np.clip(
            _ramp(delta["mouth_width"], FULL_SCALE[20])
            - _ramp(delta["corner_lift"], FULL_SCALE[12]),
            0.0,
            1.0,
        ),
        23: _ramp(-delta["lip_thickness"], FULL_SCALE[23]),
        25: np.clip(lips_part, 0.0, 1.0),
        26: np.clip(jaw_drop, 0.0, 1.0),
        28: _ramp(-delta["lip_thickness"], FULL_SCALE[28]),
        45: np.clip(blink, 0.0, 1.0),
    }
    return {k: AU_MAX * v for k, v in units.items()}


def blendshape_action_units(scores: np.ndarray) -> dict[int, np.ndarray]:
    """AU intensities (0-5) from MediaPipe blendshape scores [M, 52] (mean of each AU's shapes)."""
    column = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}
    return {
        au: AU_MAX * np.clip(scores[:, [column[n] for n in names]].mean(axis=1), 0.0, 1.0)
        for au, names in BLENDSHAPE_AUS.items()
    }


def action_units(
    mesh: np.ndarray, valid: np.ndarray, blendshapes: np.ndarray | None = None
) -> dict[int, np.ndarray]:
    """Per-frame AU intensities float [N] on 0-5 for every AU in AU_PRESENCES; 0 where not valid.

    Args:
        mesh: float [N, 478, 3] head-frame meshes (see `head_frame_mesh`).
        valid: bool [N] frames with a tracked face.
        blendshapes: optional float [N, 52] MediaPipe scores; where a row is finite, the AUs of
            BLENDSHAPE_AUS come from it instead of geometry (AU25, AU26, AU45 stay geometric).
    """
    n = len(mesh)
    out = {au: np.zeros(n) for au in AU_PRESENCES}
    if not valid.any():
        return out
    for au, values in geometric_action_units(mesh[valid]).items():
        out[au][valid] = values
    if blendshapes is not None:
        scored = valid & np.isfinite(blendshapes).all(axis=1)
        if scored.any():
            for au, values in blendshape_action_units(blendshapes[scored]).items():
                out[au][scored] = values
    return out


def au_csv_text(
    units: dict[int, np.ndarray], fps: float, confidence: np.ndarray, success: np.ndarray
) -> str:
    """OpenFace-style CSV ('x, y' separators, every header name with a leading space)."""
    n = len(confidence)
    intensity = np.stack([units[a] for a in AU_INTENSITIES], axis=1)
    presence = np.stack([units[a] >= AU_PRESENT for a in AU_PRESENCES], axis=1)
    presence &= success[:, None].astype(bool)
    buffer = io.StringIO()
    buffer.write(",".join(AU_COLUMNS) + "\n")
    for i in range(n):  # one line per frame; the values are formatted, not computed, here
        values = ", ".join(f"{v:.2f}" for v in intensity[i])
        flags = ", ".join(str(int(v)) for v in presence[i])
        buffer.write(
            f" {i + 1}, 0, {i / fps:.3f}, {confidence[i]:.2f}, {int(success[i])}, "
            f"{values}, {flags}\n"
        )
    return buffer.getvalue()


class TransformsTask(Task):
    number = 9
    name = "transforms"
    title = "train/val split and camera poses -> transforms_*.json, au.csv"
    needs = ("frames", "landmarks")
    uses = ("audio", "parsing")
    """aud.wav for the offset and silence; parsing's hand coverage for screening."""
    makes = ("transforms_train.json", "transforms_val.json", AU_NAME)
    config_fields = ("av_sync", "keep_flagged")
    version = 5

    def run(self, ctx: TaskContext) -> TaskResult:
        from talkprep.geometry.camera import transform_matrices

        n = ctx.frame_count()
        frames_info = ctx.records["frames"]["info"]
        width, height = int(frames_info["width"]), int(frames_info["height"])
        fps = float(frames_info.get("fps", ctx.config.fps))
        mesh = np.load(ctx.out / LANDMARKS_NAME)
        params = _load_track(ctx.out / TRACK_NAME)
        euler, trans = params["euler"], params["trans"]
        if len(mesh) != n or len(euler) != n:
            raise TaskError(
                f"{LANDMARKS_NAME} has {len(mesh)} rows and {TRACK_NAME} {len(euler)} for {n} "
                "frames; rerun task 4 (add 4 to --tasks with --force)"
            )
        has_face = np.isfinite(mesh).all(axis=(1, 2))
        valid = has_face & np.isfinite(euler).all(axis=1) & np.isfinite(trans).all(axis=1)
        if valid.sum() < len(SPLITS):
            raise TaskError(
                f"only {int(valid.sum())} of {n} frames have a tracked face; a split needs at "
                "least 2: check the video and task 4's warnings"
            )
        matrices = np.full((n, 4, 4), np.nan)
        matrices[valid] = transform_matrices(euler[valid], trans[valid])
        lms68 = landmarks68(mesh).astype(np.float64)  # as the .lms files hold them
        rects = np.zeros((n, 4), dtype=np.int64)
        rects[valid] = face_rects(lms68[valid])
        eyes = np.zeros(n)
        eyes[valid] = eye_ratios(lms68[valid], height, width)

        focal = float(params["focal"].reshape(-1)[0])
        screened = screen_frames(ctx, mesh, valid, params, width, height)
        fit = valid & ~np.any([screened.flags[k] for k in KINDS], axis=0)
        av = measure_sync(ctx, mesh, fit, fps)
        aud_ids = np.arange(n) + av.shift_frames
        usable = screened.keep & (aud_ids >= 0) & (aud_ids < n)
        if usable.sum() < len(SPLITS):
            kinds = [k for k in KINDS if screened.flags[k].any()]
            raise TaskError(
                f"screening leaves {int(usable.sum())} of {n} frames for the splits (flagged: "
                f"{', '.join(kinds) or 'none'}); see report.html, or pass --keep-flagged"
            )
        splits = dict(zip(SPLITS, train_val_ids(usable), strict=True))
        for split, ids in splits.items():
            document = {
                "focal_len": focal,
                "cx": width / 2.0,
                "cy": height / 2.0,
                "h": height,
                "w": width,
                "frames": [
                    {
                        "img_id": int(i),
                        "aud_id": int(aud_ids[i]),
                        "transform_matrix": matrices[i].tolist(),
                        "face_rect": rects[i].tolist(),
                        "eye_ratio": round(float(eyes[i]), 6),
                    }
                    for i in ids
                ],
            }
            write_json(ctx.out / f"transforms_{split}.json", document)

        interpolated = np.zeros(n, dtype=bool)
        for first, last in ctx.records.get("landmarks", {}).get("info", {}).get("interpolated", []):
            interpolated[first : last + 1] = True
        confidence = np.where(
            valid, np.where(interpolated, CONFIDENCE_INTERPOLATED, CONFIDENCE_DETECTED), 0.0
        )
        head_mesh = head_frame_mesh(mesh, params["shape"], params["rigid_index"].astype(np.int64))
        units = action_units(head_mesh, valid, _load_blendshapes(ctx.out / BLENDSHAPES_NAME, n))
        write_text(ctx.out / AU_NAME, au_csv_text(units, fps, confidence, valid))

        blink = units[45][valid]
        figures = {
            "train_frames": len(splits["train"]),
            "val_frames": len(splits["val"]),
            "left_out_frames": int(n - usable.sum()),
            **av.figures,
            **screened.figures,
            "eye_ratio_median": round(float(np.median(eyes[valid])), 4),
            "blink_frames": int((blink >= 1.0).sum()),
            "au45_p50_p99": [round(float(v), 3) for v in np.percentile(blink, [50, 99])],
            "au25_p50_p99": [round(float(v), 3) for v in np.percentile(units[25][valid], [50, 99])],
            "au12_p50_p99": [round(float(v), 3) for v in np.percentile(units[12][valid], [50, 99])],
        }
        info = {
            "train_range": [int(splits["train"][0]), int(splits["train"][-1])]
            if len(splits["train"])
            else None,
            "val_range": [int(splits["val"][0]), int(splits["val"][-1])],
            **av.info,
            **screened.info,
        }
        warnings = list(av.warnings)
        dropped = int((valid & ~usable).sum())
        if dropped:
            kinds = ", ".join(
                f"{kind.replace('_', ' ')} {int(screened.flags[kind].sum())}"
                for kind in KINDS
                if screened.flags[kind].any()
            )
            unheard = int((valid & screened.keep & ~usable).sum())
            reasons = [f"flagged: {kinds}; with a {MARGIN_FRAMES}-frame margin"] if kinds else []
            if unheard:
                reasons.append(f"{unheard} whose shifted audio lies outside the clip")
            warnings.append(
                f"{dropped} of {n} frames with a face are left out of the splits"
                + (f" ({'; '.join(reasons)})" if reasons else "")
                + (
                    "; --keep-flagged keeps the flagged ones"
                    if kinds and not ctx.config.keep_flagged
                    else ""
                )
            )
        return TaskResult(frames=n, figures=figures, info=info, warnings=warnings)

    def check(self, facts: FolderFacts) -> list[CheckResult]:
        results = []
        seen: dict[str, set[int]] = {}
        for split in SPLITS:
            path = facts.root / f"transforms_{split}.json"
            if path.is_file():
                result, ids = _check_transforms(path, facts)
                results.append(result)
                seen[split] = ids
        if len(seen) == len(SPLITS) and seen["train"] & seen["val"]:
            first = min(seen["train"] & seen["val"])
            results.append(CheckResult("transforms splits", 0, f"frame {first} is in both splits"))
        au_path = facts.root / AU_NAME
        if au_path.is_file():
            results.append(_check_au(au_path, facts))
        return results


def _load_track(path: Path) -> dict[str, np.ndarray]:
    import torch

    try:
        params = torch.load(path, map_location="cpu", weights_only=True)
        keys = ("euler", "trans", "focal", "shape", "rigid_index")
        track = {k: params[k].numpy().astype(np.float64) for k in keys}
        if "reproj_err" in params:
            track["reproj_err"] = params["reproj_err"].numpy().astype(np.float64)
        return track
    except (OSError, KeyError, RuntimeError) as exc:
        raise TaskError(f"cannot read {path.name} ({exc}); rerun task 4") from None


def _load_blendshapes(path: Path, n: int) -> np.ndarray | None:
    """Task 4's MediaPipe blendshape scores [N, 52] when it wrote them, else None."""
    if not path.is_file():
        return None
    try:
        scores = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TaskError(f"cannot read {path.name} ({exc}); rerun task 4") from None
    if scores.shape != (n, len(BLENDSHAPE_NAMES)):
        raise TaskError(f"{path.name} has shape {scores.shape}, expected [{n}, 52]; rerun task 4")
    return scores.astype(np.float64)


def _check_transforms(path: Path, facts: FolderFacts) -> tuple[CheckResult, set[int]]:
    group = path.name
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return CheckResult(group, 0, f"not valid JSON: {exc}"), set()
    missing = [k for k in REQUIRED_KEYS if k not in document]
    if missing:
        return CheckResult(group, 0, f"missing keys {missing}"), set()
    frames = document["frames"]
    count = len(frames) if isinstance(frames, list) else 0
    problem = _transforms_problem(document, facts)
    if problem is None and count == 0:
        problem = "no frames"
    ids: set[int] = set()
    for frame in frames if problem is None else []:
        problem = _frame_problem(frame, facts, ids)
        if problem is not None:
            break
        ids.add(frame["img_id"])
    return CheckResult(group, count, problem), ids


def _transforms_problem(document: dict[str, Any], facts: FolderFacts) -> str | None:
    """Problems of the intrinsics; h and w are optional (RAD-NeRF then uses 2 * cy, 2 * cx)."""
    if not isinstance(document["frames"], list):
        return "frames is not a list"
    try:
        focal, cx, cy = (float(document[k]) for k in ("focal_len", "cx", "cy"))
        h = int(document.get("h", 2 * cy))
        w = int(document.get("w", 2 * cx))
    except (TypeError, ValueError):
        return "focal_len, cx, cy, h, w must be numbers"
    if not focal > 0:
        return f"focal_len {focal} is not positive"
    if facts.frame_size is not None and (h, w) != tuple(facts.frame_size):
        return f"h, w = {h}, {w} but the frames are {facts.frame_size[0]} x {facts.frame_size[1]}"
    if not (0 < cx < w and 0 < cy < h):
        return f"principal point ({cx}, {cy}) is outside the image"
    return None


def _frame_problem(frame: Any, facts: FolderFacts, ids: set[int]) -> str | None:
    if not isinstance(frame, dict):
        return "a frame entry is not an object"
    missing = [k for k in REQUIRED_FRAME_KEYS if k not in frame]
    if missing:
        return f"a frame lacks {missing}"
    img_id, aud_id = frame["img_id"], frame["aud_id"]
    if not isinstance(img_id, int) or not isinstance(aud_id, int):
        return f"img_id {img_id!r} / aud_id {aud_id!r} are not integers"
    limit = facts.n_frames
    if img_id < 0 or aud_id < 0 or (limit is not None and max(img_id, aud_id) >= limit):
        return f"frame id {img_id} / aud_id {aud_id} outside 0..{limit}"
    if img_id in ids:
        return f"img_id {img_id} appears twice"
    try:
        matrix = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except (TypeError, ValueError):
        return f"img_id {img_id}: transform_matrix is not a 4x4 array of numbers"
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        return f"img_id {img_id}: transform_matrix is not a finite 4x4"
    rotation = matrix[:3, :3]
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=ORTHONORMAL_TOLERANCE):
        return f"img_id {img_id}: rotation is not orthonormal"
    if np.linalg.det(rotation) < 0 or not np.allclose(matrix[3], [0, 0, 0, 1]):
        return f"img_id {img_id}: transform_matrix is not a rigid camera-to-world transform"
    return _optional_fields_problem(frame, img_id)


def _optional_fields_problem(frame: dict[str, Any], img_id: int) -> str | None:
    """face_rect and eye_ratio: talkprep writes them; other producers may leave them out."""
    rect = frame.get("face_rect", [0, 0, 0, 0])
    if not (isinstance(rect, list) and len(rect) == 4 and all(isinstance(v, int) for v in rect)):
        return f"img_id {img_id}: face_rect {rect!r} is not 4 integers"
    if rect[0] > rect[1] or rect[2] > rect[3]:
        return f"img_id {img_id}: face_rect {rect} has min above max"
    ratio = frame.get("eye_ratio", 0.0)
    if not isinstance(ratio, int | float) or not np.isfinite(ratio) or ratio < 0:
        return f"img_id {img_id}: eye_ratio {ratio!r} is not a non-negative number"
    return None


def _check_au(path: Path, facts: FolderFacts) -> CheckResult:
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return CheckResult(AU_NAME, 0, f"cannot read: {exc}")
    if not rows:
        return CheckResult(AU_NAME, 0, "empty file")
    header, body = rows[0], rows[1:]
    count = len(body)
    if BLINK_COLUMN not in header:
        return CheckResult(AU_NAME, count, f"header lacks {BLINK_COLUMN!r} (with a leading space)")
    if facts.n_frames is not None and count != facts.n_frames:
        return CheckResult(
            AU_NAME, count, f"{count} rows but the dataset has {facts.n_frames} frames"
        )
    if any(len(row) != len(header) for row in body):
        return CheckResult(AU_NAME, count, "rows have different column counts")
    try:
        values = np.array(body, dtype=np.float64)
    except ValueError:
        return CheckResult(AU_NAME, count, "non-numeric values")
    frame_column = next((c for c in (" frame", "frame") if c in header), None)
    if frame_column is not None and not np.array_equal(
        values[:, header.index(frame_column)], np.arange(1, count + 1)
    ):
        return CheckResult(AU_NAME, count, "frame column is not 1..N in order")
    units = values[:, [header.index(c) for c in header if c.strip().startswith("AU")]]
    if not np.isfinite(units).all() or units.min() < 0 or units.max() > AU_MAX:
        return CheckResult(AU_NAME, count, "AU intensities outside 0-5")
    return CheckResult(AU_NAME, count)
