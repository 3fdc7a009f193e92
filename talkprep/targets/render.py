"""Trainer renderings of talkprep's canonical files: pure functions on arrays, then the renderers
that stream a folder's frames through them into a view (a `ViewOut`, in practice
`talkprep.targets.view.ViewWriter`, which imports this module).

Every mask comes from the class maps `semantics/{i}.png` (talkprep.semantics); geometry comes
from `landmarks.npy` and `track_params.pt` through the same head-frame alignment as au.csv.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from talkprep.errors import TaskError
from talkprep.geometry.camera import DECIMETRES_PER_METRE
from talkprep.hints import process_hint
from talkprep.io.images import frame_indices, read_image
from talkprep.manifest import read_manifest
from talkprep.semantics import SEMANTICS_DIR, SemanticClass, class_mask
from talkprep.targets.record import dataset_fps
from talkprep.tasks.frames import FRAMES_DIR
from talkprep.tasks.landmarks import BLENDSHAPES_NAME, LANDMARKS_NAME, TRACK_NAME
from talkprep.tasks.transforms import TRAIN_FRACTION, head_frame_mesh

Progress = Callable[..., Iterator[Any]]


class ViewOut(Protocol):
    """Where a renderer writes a view's files, by path relative to the view's root."""

    def png(self, rel: str, image: np.ndarray) -> None: ...

    def jpeg(self, rel: str, image: np.ndarray) -> None: ...

    def npy(self, rel: str, array: np.ndarray) -> None: ...

    def json(self, rel: str, document: Any) -> None: ...

    def torch(self, rel: str, obj: Any) -> None: ...

    def wav(self, rel: str, samples: np.ndarray, rate: int) -> None: ...

    def link(self, source: Path, rel: str) -> None: ...


ERNERF_BGR = {"head": (255, 0, 0), "neck": (0, 255, 0), "torso": (0, 0, 255)}
WHITE = (255, 255, 255)
TG_HAIR_BGR = (0, 0, 0)
TG_MOUTH_BGR = (100, 100, 100)
SYNCTALK_FACE_CLASSES = (SemanticClass.FACE_SKIN, SemanticClass.MOUTH_INTERIOR, SemanticClass.TEETH)
"""BiSeNet skin, brows, eyes, nose, mouth and lips (SyncTalk's face_parsing/test.py 54-59)."""
SYNCTALK_BLUR = 9
SYNCTALK_CHIN_EXTENSION = 10
"""Rows below the face's lowest pixel that SyncTalk's parser adds (2 x its pad of 5)."""
"""SyncTalk blurs the face image with a 9x9 Gaussian (face_parsing/test.py line 97)."""
BS_SMOOTH_WINDOW, BS_SMOOTH_ORDER = 5, 3
ADNERF_HALF_WIDTH, ADNERF_HALF_HEIGHT = 1.5, 1.15
"""AD-NeRF's face_rect (process_data.py lines 228-231): 1.5 x the half width of the .lms columns,
1.15 x the distance from lms[27] to the chin."""


def tg_palette(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TalkingGaussian's parsing image (BGR uint8 [H, W, 3]) and teeth mask (bool [H, W]).

    Head classes take ER-NeRF's head colour except hair (0, 0, 0) and the mouth interior
    (100, 100, 100); teeth keep the head colour, so that TalkingGaussian's `face XOR teeth`
    removes them from the face and `mouth + teeth` adds them to the mouth.
    """
    lut = np.full((256, 3), 255, np.uint8)
    for cls in (SemanticClass.FACE_SKIN, SemanticClass.EARS, SemanticClass.TEETH):
        lut[int(cls)] = ERNERF_BGR["head"]
    lut[int(SemanticClass.HAIR)] = TG_HAIR_BGR
    lut[int(SemanticClass.MOUTH_INTERIOR)] = TG_MOUTH_BGR
    lut[int(SemanticClass.NECK)] = ERNERF_BGR["neck"]
    lut[int(SemanticClass.TORSO)] = ERNERF_BGR["torso"]
    return lut[classes], classes == int(SemanticClass.TEETH)


def synctalk_face(classes: np.ndarray) -> np.ndarray:
    """SyncTalk's `parsing/{i}_face.png`: face BGR (255, 0, 0) on white, blurred 9x9 (uint8).

    As SyncTalk's parser (face_parsing/test.py lines 62-91), the face's lower edge reaches
    10 px further down over the middle half of its width (under the chin).
    """
    import cv2

    face = class_mask(classes, SYNCTALK_FACE_CLASSES)
    cols = np.flatnonzero(face.any(axis=0))
    if cols.size:
        bottom = face.shape[0] - 1 - np.argmax(face[::-1, cols], axis=0)
        quarter = (cols[-1] - cols[0]) // 4
        middle = (cols >= cols[0] + quarter) & (cols <= cols[0] + 3 * quarter)
        rows = np.arange(face.shape[0])[:, None]
        low = bottom[None, middle]
        face[:, cols[middle]] |= (rows >= low) & (rows < low + SYNCTALK_CHIN_EXTENSION)
    image = np.full((*classes.shape, 3), 255, np.uint8)
    image[face] = ERNERF_BGR["head"]
    return cv2.GaussianBlur(image, (SYNCTALK_BLUR, SYNCTALK_BLUR), cv2.BORDER_DEFAULT)


def synctalk_blendshapes(scores: np.ndarray) -> np.ndarray:
    """SyncTalk's bs.npy from MediaPipe scores [N, 52]: drop `_neutral`, append 0, smooth.

    Frames without a face (NaN rows) take the nearest scored frame before smoothing, as the
    trainer indexes every frame.
    """
    from scipy.signal import savgol_filter

    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores).all(axis=1)
    if not finite.any():
        raise TaskError("blendshapes.npy has no scored frame")
    nearest = _nearest_valid(finite)
    shifted = np.concatenate([scores[nearest, 1:], np.zeros((len(scores), 1))], axis=1)
    if len(shifted) < BS_SMOOTH_WINDOW:
        return shifted
    return savgol_filter(shifted, BS_SMOOTH_WINDOW, BS_SMOOTH_ORDER, axis=0)


def face_vertices_dm(
    landmarks: np.ndarray, shape: np.ndarray, rigid_index: np.ndarray
) -> np.ndarray:
    """float32 [N, 478, 3]: each frame's face mesh in the tracked head frame, in decimetres.

    Frames without a face hold the nearest frame's mesh (GaussianTalker averages all rows).
    """
    mesh = head_frame_mesh(landmarks, shape, rigid_index)
    finite = np.isfinite(mesh).all(axis=(1, 2))
    if not finite.any():
        raise TaskError("no frame has a tracked face; rerun task 4")
    return (DECIMETRES_PER_METRE * mesh[_nearest_valid(finite)]).astype(np.float32)


def adnerf_face_rects(lms68: np.ndarray, height: int, width: int) -> np.ndarray:
    """AD-NeRF's face_rect [x, y, w, h] (int [N, 4]) from .lms points [N, 68, 2]."""
    min_x, max_x = lms68[:, :, 0].min(axis=1), lms68[:, :, 0].max(axis=1)
    cx = np.trunc((min_x + max_x) / 2.0)
    cy = np.trunc(lms68[:, 27, 1])
    half_w = np.trunc((max_x - cx) * ADNERF_HALF_WIDTH)
    half_h = np.trunc((lms68[:, 8, 1] - cy) * ADNERF_HALF_HEIGHT)
    x = np.maximum(cx - half_w, 0)
    y = np.maximum(cy - half_h, 0)
    w = np.minimum(width - 1 - x, 2 * half_w)
    h = np.minimum(height - 1 - y, 2 * half_h)
    return np.stack([x, y, w, h], axis=1).astype(np.int64)


def adnerf_head(frame: np.ndarray, classes: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """AD-NeRF's head image: the frame where the class is head, the background plate elsewhere."""
    from talkprep.semantics import HEAD_CLASSES

    head = class_mask(classes, HEAD_CLASSES)
    return np.where(head[..., None], frame, plate)


def last_seconds_split(
    ids: np.ndarray, fps: float, seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """Usable frame ids split so that validation holds the frames of the last `seconds`.

    A clip not longer than that would leave nothing to train on: it keeps talkprep's own split
    (the first 10/11 train).
    """
    if len(ids) == 0:
        return ids, ids
    cut = ids[-1] + 1 - int(round(seconds * fps))
    if not (ids < cut).any():
        first = int(len(ids) * TRAIN_FRACTION)
        return ids[:first], ids[first:]
    return ids[ids < cut], ids[ids >= cut]


def _nearest_valid(valid: np.ndarray) -> np.ndarray:
    """Index of the nearest True entry for every position (ties go to the earlier one)."""
    idx = np.flatnonzero(valid)
    pos = np.clip(np.searchsorted(idx, np.arange(len(valid))), 1, max(len(idx) - 1, 1))
    if len(idx) == 1:
        return np.full(len(valid), idx[0])
    before, after = idx[pos - 1], idx[np.minimum(pos, len(idx) - 1)]
    here = np.arange(len(valid))
    return np.where(here - before <= after - here, before, after)


# --------------------------------------------------------------------------------------------
# renderers: read the canonical folder, write through a ViewOut


@dataclass(frozen=True)
class Renderer:
    """One rendering of a view: what it writes (globs), what it reads, and how."""

    name: str
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    fix: dict[str, Any]
    """How `talkprep process` makes what it reads (talkprep.hints.process_hint's arguments)."""
    run: Callable[[Path, ViewOut, Progress], int]


def _classes(root: Path) -> list[int]:
    indices = frame_indices(root / SEMANTICS_DIR, ".png")
    if not indices:
        raise TaskError(
            f"{SEMANTICS_DIR}/ is missing; the class maps come from task 5: "
            f"{_process(root, **SEMANTICS_FIX)}"
        )
    return indices


def _read_classes(root: Path, index: int) -> np.ndarray:
    import cv2

    return read_image(root / SEMANTICS_DIR / f"{index}.png", cv2.IMREAD_UNCHANGED)


def _render_tg(src: Path, out: ViewOut, progress: Progress) -> int:
    indices = _classes(src)
    for i in progress(indices, total=len(indices), desc="TalkingGaussian masks"):
        image, teeth = tg_palette(_read_classes(src, i))
        out.png(f"parsing/{i}.png", image)
        out.npy(f"teeth_mask/{i}.npy", teeth)
    return len(indices)


def _render_synctalk_face(src: Path, out: ViewOut, progress: Progress) -> int:
    indices = _classes(src)
    for i in progress(indices, total=len(indices), desc="SyncTalk face masks"):
        out.png(f"parsing/{i}_face.png", synctalk_face(_read_classes(src, i)))
    return len(indices)


def _render_synctalk_bs(src: Path, out: ViewOut, progress: Progress) -> int:
    path = src / BLENDSHAPES_NAME
    if not path.is_file():  # SyncTalk then reads au.csv's AU45 (--au45); check says so
        return 0
    scores = np.load(path, allow_pickle=False)
    out.npy("bs.npy", synctalk_blendshapes(scores))
    return len(scores)


def _render_vertices(src: Path, out: ViewOut, progress: Progress) -> int:
    import torch

    try:
        params = torch.load(src / TRACK_NAME, map_location="cpu", weights_only=True)
        landmarks = np.load(src / LANDMARKS_NAME, allow_pickle=False)
        shape, rigid = params["shape"].numpy(), params["rigid_index"].numpy()
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise TaskError(
            f"cannot read {TRACK_NAME} / {LANDMARKS_NAME} ({exc}): "
            f"{_process(src, tasks=[4], force=True)}"
        ) from None
    params = dict(params)
    params["vertices"] = torch.from_numpy(face_vertices_dm(landmarks, shape, rigid))
    out.torch(TRACK_NAME, params)
    return len(landmarks)


def _render_adnerf_head(src: Path, out: ViewOut, progress: Progress) -> int:
    indices = _classes(src)
    plate = read_image(src / "bc.jpg")
    for i in progress(indices, total=len(indices), desc="AD-NeRF head images"):
        frame = read_image(src / FRAMES_DIR / f"{i}.jpg")
        out.jpeg(f"head_imgs/{i}.jpg", adnerf_head(frame, _read_classes(src, i), plate))
    return len(indices)


def _split_documents(src: Path) -> dict[str, dict[str, Any]]:
    try:
        return {s: json.loads((src / f"transforms_{s}.json").read_text()) for s in ("train", "val")}
    except (OSError, ValueError) as exc:
        raise TaskError(
            f"cannot read transforms_*.json ({exc}): {_process(src, tasks=[9], force=True)}"
        ) from None


def _render_adnerf_transforms(src: Path, out: ViewOut, progress: Progress) -> int:
    docs = _split_documents(src)
    lms = np.load(src / LANDMARKS_NAME, mmap_mode="r", allow_pickle=False)
    from talkprep.geometry.jaw_contour import landmarks68

    for split, doc in docs.items():
        ids = np.array([f["img_id"] for f in doc["frames"]], dtype=np.int64)
        h, w = int(doc.get("h", 2 * doc["cy"])), int(doc.get("w", 2 * doc["cx"]))
        rects = adnerf_face_rects(landmarks68(np.asarray(lms[ids], np.float64)), h, w)
        frames = [{**f, "face_rect": r.tolist()} for f, r in zip(doc["frames"], rects, strict=True)]
        out.json(f"transforms_{split}.json", {**doc, "frames": frames})
    return sum(len(d["frames"]) for d in docs.values())


def _render_instag_split(src: Path, out: ViewOut, progress: Progress) -> int:

    docs = _split_documents(src)
    frames = docs["train"]["frames"] + docs["val"]["frames"]
    ids = np.array([f["img_id"] for f in frames], dtype=np.int64)
    order = np.argsort(ids)
    fps = dataset_fps(src)
    from talkprep.targets.instag import VAL_SECONDS

    train, val = last_seconds_split(ids[order], fps, VAL_SECONDS)
    by_id = {f["img_id"]: f for f in frames}
    for split, chosen in (("train", train), ("val", val)):
        doc = {**docs[split], "frames": [by_id[int(i)] for i in chosen]}
        out.json(f"transforms_{split}.json", doc)
    return len(ids)


def _process(src: Path, **fix: Any) -> str:
    """The `talkprep process` line that remakes what a renderer reads from `src`."""
    return process_hint(read_manifest(src), src, **fix)


SEMANTICS_FIX: dict[str, Any] = {"tasks": [5], "force": True}


AUDIO_FILES = ("aud_hu.npy", "aud_ds.npy", "aud_eo.npy", "aud.wav")
"""Audio files, one row per frame (aud.wav: its samples), that a trainer may read by img_id."""


def audio_shift(docs: dict[str, dict[str, Any]]) -> int:
    """The frames task 9 moved the audio by (aud_id - img_id, the same for every frame)."""
    shifts = {int(f["aud_id"]) - int(f["img_id"]) for d in docs.values() for f in d["frames"]}
    if len(shifts) > 1:
        raise TaskError(
            f"transforms_*.json hold several aud_id - img_id offsets {sorted(shifts)}; rerun task 9"
        )
    return shifts.pop() if shifts else 0


def shift_rows(array: np.ndarray, shift: int) -> np.ndarray:
    """Rows moved so that row i holds row i + shift (the ends repeat the edge row, as the
    loaders' own clamping does)."""
    rows = np.arange(len(array)) + shift
    return np.asarray(array)[np.clip(rows, 0, len(array) - 1)]


def _render_audio_by_frame(src: Path, out: ViewOut, progress: Progress) -> int:
    """For loaders that read frame img_id's audio at row img_id (TalkingGaussian, InsTaG): the
    audio files moved by task 9's applied offset, so that they hear what aud_id points at."""
    from talkprep.io.audio import read_wav

    try:
        shift = audio_shift(_split_documents(src))
    except TaskError as exc:
        raise TaskError(f"{exc}: {_process(src, tasks=[9], force=True)}") from None
    written = 0
    for rel in AUDIO_FILES:
        path = src / rel
        if not path.is_file():
            continue
        if shift == 0:
            out.link(path, rel)
        elif rel.endswith(".wav"):
            samples, rate = read_wav(path)
            source = np.arange(len(samples)) + int(round(shift * rate / dataset_fps(src)))
            inside = (source >= 0) & (source < len(samples))
            moved = np.where(inside, samples[np.clip(source, 0, len(samples) - 1)], 0.0)
            out.wav(rel, moved, rate)
        else:
            out.npy(rel, shift_rows(np.load(path, allow_pickle=False), shift))
        written += 1
    return written


RENDERERS: dict[str, Renderer] = {
    r.name: r
    for r in (
        Renderer(
            "tg_parsing",
            ("parsing/*.png", "teeth_mask/*.npy"),
            ("semantics/*.png",),
            SEMANTICS_FIX,
            _render_tg,
        ),
        Renderer(
            "synctalk_face",
            ("parsing/*_face.png",),
            ("semantics/*.png",),
            SEMANTICS_FIX,
            _render_synctalk_face,
        ),
        Renderer(
            "synctalk_bs",
            ("bs.npy",),
            (BLENDSHAPES_NAME,),
            {"tasks": [4], "force": True, "blendshapes": True},
            _render_synctalk_bs,
        ),
        Renderer(
            "gt_vertices",
            (TRACK_NAME,),
            (TRACK_NAME, LANDMARKS_NAME),
            {"tasks": [4], "force": True},
            _render_vertices,
        ),
        Renderer(
            "adnerf_head",
            ("head_imgs/*.jpg",),
            ("semantics/*.png", "ori_imgs/*.jpg", "bc.jpg"),
            SEMANTICS_FIX,
            _render_adnerf_head,
        ),
        Renderer(
            "adnerf_transforms",
            ("transforms_train.json", "transforms_val.json"),
            ("transforms_train.json", "transforms_val.json", LANDMARKS_NAME),
            {"tasks": [9], "force": True},
            _render_adnerf_transforms,
        ),
        Renderer(
            "audio_by_frame",
            AUDIO_FILES,
            ("transforms_train.json", "transforms_val.json"),
            {"tasks": [9], "force": True},
            _render_audio_by_frame,
        ),
        Renderer(
            "instag_split",
            ("transforms_train.json", "transforms_val.json"),
            ("transforms_train.json", "transforms_val.json"),
            {"tasks": [9], "force": True},
            _render_instag_split,
        ),
    )
}
"""Every renderer by name (targets refer to them by these names)."""
