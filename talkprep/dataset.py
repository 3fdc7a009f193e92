"""The PyTorch Dataset that reads a processed folder (talkprep's or a reference pipeline's).

One item is one frame. Only the requested fields are read; nothing is opened at construction
beyond the small tables (transforms JSON, au.csv), so the dataset pickles cheaply into
DataLoader workers. With `preload=True` every per-frame field is decoded once into one compact
array per field (uint8 images, uint16 depth), which forked workers share without copying.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from talkprep.geometry.face_topology import NUM_LMS68, NUM_MESH_POINTS
from talkprep.geometry.jaw_contour import landmarks68
from talkprep.io.images import frame_indices
from talkprep.manifest import read_manifest

Split = Literal["train", "val", "all"]
AudioName = Literal["hu", "eo", "ds", "mel"]

FIELDS: tuple[str, ...] = (
    "image",
    "gt_image",
    "torso",
    "parsing",
    "background",
    "landmarks",
    "lms68",
    "pose",
    "intrinsics",
    "audio",
    "eye",
    "depth",
    "index",
)
"""Every key an item can have, in the order items list them."""

PER_FRAME_IMAGES: dict[str, tuple[str, str]] = {
    "image": ("ori_imgs", ".jpg"),
    "gt_image": ("gt_imgs", ".jpg"),
    "torso": ("torso_imgs", ".png"),
    "parsing": ("parsing", ".png"),
    "depth": ("depth", ".png"),
}
"""Per-frame image fields: folder and suffix of `{folder}/{i}{suffix}`."""

MAKER_TASK: dict[str, int] = {
    "image": 3,
    "gt_image": 7,
    "torso": 7,
    "parsing": 5,
    "background": 6,
    "landmarks": 4,
    "lms68": 4,
    "pose": 9,
    "intrinsics": 9,
    "audio": 2,
    "eye": 9,
    "depth": 8,
}
"""The talkprep task that writes each field's files, for the 'what to do' part of errors."""

DEFAULT_DEPTH_UNIT_M = 1e-4
"""Metres per depth-PNG unit when the manifest does not say (0.1 mm)."""

BLINK_COLUMN = "AU45_r"
BLINK_CLIP = 2.0
"""ER-NeRF reads the blink as clip(AU45_r, 0, 2) / 2."""

_PARSING_LUT = np.zeros(8, np.uint8)
_PARSING_LUT[0b100] = 1  # BGR (255, 0, 0): head
_PARSING_LUT[0b010] = 2  # BGR (0, 255, 0): neck
_PARSING_LUT[0b001] = 3  # BGR (0, 0, 255): torso
"""Class of each (B>127, G>127, R>127) bit pattern; white and anything else is background 0."""


AUDIO_OPTION = {"hu": "hubert", "eo": "wav2vec2", "ds": "deepspeech", "mel": "mel"}
"""The `--audio-features` value that writes each `aud_{name}.npy`."""


def _task_hint(root: Path, field: str, audio: str = "hu", force: bool = False) -> str:
    """Which task writes a field's file, and the command that (re)makes it in `root`."""
    task = MAKER_TASK.get(field)
    if task is None:
        return ""
    from talkprep.hints import feature_hint, process_hint
    from talkprep.manifest import read_manifest

    manifest = read_manifest(root)
    if force:
        return f" (written by task {task}: {process_hint(manifest, root, [task], force)})"
    if field == "audio" and AUDIO_OPTION[audio] != "mel":
        return f" (written by task {task}: {feature_hint(manifest, root, AUDIO_OPTION[audio])})"
    extra = {"audio_features": [AUDIO_OPTION[audio]]} if field == "audio" else {}
    return f" (written by task {task}: {process_hint(manifest, root, [task], **extra)})"


def _resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize to (height, width): area when shrinking, linear when growing, nearest for labels."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif height < image.shape[0] or width < image.shape[1]:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _imread(path: Path, flags: int) -> np.ndarray:
    """cv2 decode that names the file on failure instead of returning None."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    image = cv2.imdecode(data, flags)
    if image is None:
        raise ValueError(f"{path} is not a readable image; delete it and rerun the task")
    return image


def read_color(path: Path, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 [H, W, 3]."""
    image = _imread(path, cv2.IMREAD_COLOR)
    return cv2.cvtColor(_resize(image, size), cv2.COLOR_BGR2RGB)


def read_rgba(path: Path, size: tuple[int, int]) -> np.ndarray:
    """RGBA uint8 [H, W, 4]; a file without alpha reads as opaque."""
    image = _imread(path, cv2.IMREAD_UNCHANGED)
    if image.dtype != np.uint8:
        raise ValueError(f"{path}: expected an 8-bit RGBA PNG, got {image.dtype}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    return cv2.cvtColor(_resize(image, size), cv2.COLOR_BGRA2RGBA)


def read_parsing(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Class map uint8 [H, W] (0 bg, 1 head, 2 neck, 3 torso) from the BGR colour PNG."""
    bgr = _resize(_imread(path, cv2.IMREAD_COLOR), size, nearest=True)
    bits = bgr >> 7
    return _PARSING_LUT[(bits[..., 0] << 2) | (bits[..., 1] << 1) | bits[..., 2]]


def read_depth(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Raw 16-bit depth units, uint16 [H, W] (nearest resize: 0 means unknown, never blend it)."""
    image = _imread(path, cv2.IMREAD_UNCHANGED)
    if image.ndim != 2 or image.dtype != np.uint16:
        raise ValueError(
            f"{path}: expected a single-channel 16-bit PNG, got {image.dtype} {image.shape}"
        )
    return _resize(image, size, nearest=True)


def read_lms(path: Path) -> np.ndarray:
    """68 `x y` lines in pixels -> float32 [68, 2]."""
    try:
        points = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    if points.shape != (NUM_LMS68, 2):
        raise ValueError(f"{path}: expected 68 lines of 'x y', got an array {points.shape}")
    return points


_IMAGE_READERS: dict[str, Callable[[Path, tuple[int, int]], np.ndarray]] = {
    "image": read_color,
    "gt_image": read_color,
    "torso": read_rgba,
    "parsing": read_parsing,
    "depth": read_depth,
}


def read_blink(path: Path) -> np.ndarray:
    """The ` AU45_r` column of an OpenFace-style au.csv, one float32 per row (= per frame)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing{_task_hint(path.parent, 'eye')}")
    with path.open() as handle:
        header = [name.strip() for name in handle.readline().split(",")]
    if BLINK_COLUMN not in header:
        raise ValueError(f"{path} has no ' {BLINK_COLUMN}' column (columns: {header[:8]}...)")
    column = header.index(BLINK_COLUMN)
    return np.loadtxt(path, delimiter=",", skiprows=1, usecols=column, dtype=np.float32, ndmin=1)


def depth_unit_m(root: Path) -> float:
    """Depth per PNG count from the manifest's depth record, else 0.1 mm.

    Metres for the mesh backend; DaGAN's depth is relative, scaled by its `units_per_count`.
    """
    try:
        info = read_manifest(root)["tasks"]["depth"]["info"]
    except (KeyError, TypeError):
        return DEFAULT_DEPTH_UNIT_M
    for key in ("metres_per_count", "units_per_count", "depth_unit_m", "unit_m"):
        value = info.get(key) if isinstance(info, dict) else None
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return DEFAULT_DEPTH_UNIT_M


def audio_rows(features: np.ndarray, name: str, path: Path) -> np.ndarray:
    """Per-frame feature rows [R, C, T] as the reference trainers hold them.

    3-D files [R, T, C] (T steps of C channels per frame: hu [R,2,1024], eo/ds [R,16,C]) are
    permuted to [R, C, T] like RAD-NeRF/ER-NeRF; log-mel [2R(+1), 80] at 50 Hz becomes [R, 80, 2].
    Returns a view where possible (so a memory map stays a memory map).
    """
    if features.ndim == 3:
        return features.transpose(0, 2, 1)
    if features.ndim == 2 and name == "mel":
        rows = features.shape[0] // 2
        return features[: 2 * rows].reshape(rows, 2, features.shape[1]).transpose(0, 2, 1)
    raise ValueError(
        f"{path}: expected per-frame features [N, T, C] (or [2N, 80] for mel), "
        f"got shape {features.shape}"
    )


def audio_window(rows: np.ndarray, centre: int, window: int) -> np.ndarray:
    """Rows [centre - window//2, centre - window//2 + window) with zeros outside the array.

    For window 8 this is RAD-NeRF/ER-NeRF `get_audio_features(features, att_mode=2, index)`.
    """
    lo = centre - window // 2
    hi = lo + window
    out = np.zeros((window, *rows.shape[1:]), np.float32)
    a, b = max(lo, 0), min(hi, rows.shape[0])
    if b > a:
        out[a - lo : b - lo] = rows[a:b]
    return out


class TalkingFaceDataset(Dataset):
    """Frames of a processed talking-face folder (DESIGN.md section 4) as dicts of tensors.

    Args:
        root: the dataset folder.
        split: "train" / "val" read `transforms_{split}.json` (`frames[].img_id`, `aud_id`);
            "all" is every frame 0..N-1, with `pose` NaN for frames in neither split and
            `landmarks` / `lms68` NaN where no face was found.
        fields: keys to return (see below); None means every field whose files are present.
            Only these are read from disk; a requested field whose files are missing raises
            at construction, naming the file.
        audio: feature file `aud_{audio}.npy` for the `audio` key (for "ds", AD-NeRF's
            `aud.npy` when there is no `aud_ds.npy`).
        audio_window: frames of audio context per item, centred on the frame.
        image_size: None keeps the frame size; an int is the longer side (aspect kept); a
            (height, width) pair is exact. Images resize with area/linear filtering, parsing and
            depth with nearest; intrinsics and landmarks are scaled to match.
        preload: decode every per-frame field of the split once into one uint8 array per field
            (uint16 for depth) instead of reading files in `__getitem__`.
        uint8_images: return `image`, `gt_image`, `torso` and `background` as uint8 [C, H, W]
            (0-255) instead of float32: a quarter of the bytes to pass from DataLoader workers,
            which dominates the cost of an item at 512 px; convert on the GPU with `.float() / 255`.

    Item keys (H, W: the output size; A = audio_window; for `hu`, C = 1024 and T = 2;
    `eo` C = 44 and T = 16, `ds` C = 29 and T = 16, `mel` C = 80 and T = 2; the four colour
    images are uint8 in 0-255 instead of float32 with `uint8_images=True`):

    - `image`: float32 [3, H, W] in [0, 1], RGB, from `ori_imgs/{i}.jpg`.
    - `gt_image`: float32 [3, H, W] in [0, 1], RGB, from `gt_imgs/{i}.jpg`.
    - `torso`: float32 [4, H, W] in [0, 1], RGBA (straight alpha), from `torso_imgs/{i}.png`.
    - `parsing`: uint8 [H, W], 0 background, 1 head, 2 neck, 3 torso, from `parsing/{i}.png`.
    - `background`: float32 [3, H, W] in [0, 1], RGB, from `bc.jpg`.
    - `landmarks`: float32 [478, 3], x, y in output pixels, z relative (scaled like x); NaN
      where no face. From `landmarks.npy`.
    - `lms68`: float32 [68, 2], x, y in output pixels, iBUG-68 order, from `ori_imgs/{i}.lms`,
      or mapped from `landmarks.npy` when there are no .lms files.
    - `pose`: float32 [4, 4] camera-to-world (OpenGL axes, metres), the JSON's
      `transform_matrix` as stored (no NGP axis swap or scaling).
    - `intrinsics`: float32 [4] (fx, fy, cx, cy) in output pixels.
    - `audio`: float32 [A, C, T], rows a - A//2 .. a - A//2 + A - 1 of the whole clip's
      per-frame features, a = the frame's `aud_id` (clamped to the last row, as the reference
      loaders do), zeros beyond the ends of the clip: RAD-NeRF/ER-NeRF `get_audio_features`
      with `att_mode=2` when A = 8. (Those trainers slide the window over the split's own
      rows, so their first val frame sees zeros where this sees the preceding audio.)
    - `eye`: float32 [1], clip(AU45_r, 0, 2) / 2 from `au.csv` (as ER-NeRF reads it).
    - `depth`: float32 [H, W] in metres (0 = unknown), from the 16-bit `depth/{i}.png` times
      the unit in the manifest (0.1 mm when it does not say).
    - `index`: int64 [] the frame index i (`img_id`).

    With a DataLoader, the default collate stacks these into batches. Preloaded stores are
    plain numpy arrays: workers started by fork (the Linux default) share them; with the
    "spawn" start method each worker gets its own copy. A preloaded dataset has nothing left
    to decode, so `num_workers=0` is usually fastest with it: workers would only add the cost
    of passing each item's tensors between processes.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: Split = "train",
        fields: Sequence[str] | None = None,
        audio: AudioName = "hu",
        audio_window: int = 8,
        image_size: int | tuple[int, int] | None = None,
        preload: bool = False,
        uint8_images: bool = False,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder {self.root} does not exist")
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        if audio not in ("hu", "eo", "ds", "mel"):
            raise ValueError(f"audio must be 'hu', 'eo', 'ds' or 'mel', got {audio!r}")
        if audio_window < 1:
            raise ValueError(f"audio_window must be at least 1, got {audio_window}")
        self.split = split
        self.audio_name = audio
        self.audio_window = int(audio_window)
        self.preload = preload
        self.uint8_images = uint8_images

        header, frames = self._read_split()
        self.frame_ids = np.array([f[0] for f in frames], dtype=np.int64)
        """Frame index i (img_id) of each item."""
        self.aud_ids = np.array([f[1] for f in frames], dtype=np.int64)
        self._header = header
        if fields is None:
            self.fields = tuple(f for f in FIELDS if self._present(f))
        else:
            unknown = sorted(set(fields) - set(FIELDS))
            if unknown:
                raise ValueError(f"unknown field(s) {unknown}; fields are {', '.join(FIELDS)}")
            self.fields = tuple(f for f in FIELDS if f in set(fields))
        self._check_files()

        self.source_size = self._source_size()
        """(height, width) of the files."""
        self.size = _output_size(self.source_size, image_size)
        """(height, width) of the returned images."""
        sy = self.size[0] / self.source_size[0]
        sx = self.size[1] / self.source_size[1]
        self._scale = np.array([sx, sy, sx], np.float32)

        self.poses = torch.from_numpy(self._read_poses(frames)) if "pose" in self.fields else None
        """float32 [len, 4, 4] camera-to-world of every item (when `pose` is requested)."""
        self.intrinsics = (
            torch.from_numpy(self._read_intrinsics()) if "intrinsics" in self.fields else None
        )
        """float32 [4] (fx, fy, cx, cy) at the output size (when `intrinsics` is requested)."""
        self._eye = self._read_eye() if "eye" in self.fields else None
        self._lms_from_files = "lms68" in self.fields and self._has_lms_files()
        self._depth_unit = depth_unit_m(self.root) if "depth" in self.fields else 1.0
        if "audio" in self.fields:
            self._check_audio_rows(self._audio_rows())
        self._cache: dict[str, Any] = {}
        """Per-process lazily opened arrays (memory maps, bc.jpg); dropped when pickled."""
        self._store: dict[str, np.ndarray] = {}
        if preload:
            self._store = self._load_store()

    # ---------------------------------------------------------------- construction helpers

    def _json_path(self, split: str) -> Path:
        return self.root / f"transforms_{split}.json"

    def _load_json(self, split: str) -> dict[str, Any]:
        path = self._json_path(split)
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); rerun task 9") from None
        if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
            raise ValueError(f"{path} has no 'frames' list; rerun task 9")
        return data

    def _read_split(self) -> tuple[dict[str, Any] | None, list[tuple[int, int, Any]]]:
        """(JSON header or None, [(img_id, aud_id, transform_matrix or None)]) of the split."""
        if self.split != "all":
            path = self._json_path(self.split)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} is missing: split={self.split!r} needs it"
                    f"{_task_hint(self.root, 'pose')}; or use split='all' to read every frame"
                )
            data = self._load_json(self.split)
            frames = []
            for k, frame in enumerate(data["frames"]):
                try:
                    img_id = int(frame["img_id"])
                    aud_id = int(frame.get("aud_id", img_id))
                except (KeyError, TypeError, ValueError):
                    raise ValueError(f"{path}: frames[{k}] has no integer 'img_id'") from None
                frames.append((img_id, aud_id, frame.get("transform_matrix")))
            if not frames:
                raise ValueError(f"{path} lists no frames")
            return data, frames
        header = None
        by_id: dict[int, Any] = {}
        for name in ("train", "val"):
            if self._json_path(name).is_file():
                data = self._load_json(name)
                header = header or data
                for k, frame in enumerate(data["frames"]):
                    try:
                        by_id[int(frame["img_id"])] = frame.get("transform_matrix")
                    except (KeyError, TypeError, ValueError):
                        raise ValueError(
                            f"{self._json_path(name)}: frames[{k}] has no integer 'img_id'"
                        ) from None
        n = self._frame_count(by_id)
        return header, [(i, i, by_id.get(i)) for i in range(n)]

    def _frame_count(self, json_ids: dict[int, Any]) -> int:
        """N for split='all': manifest, else per-frame files, else landmarks.npy, else the JSONs."""
        try:
            data = read_manifest(self.root)
            return int(data["tasks"]["frames"]["info"]["n_frames"])
        except (ValueError, KeyError, TypeError):
            pass
        counts = [
            indices[-1] + 1
            for folder, suffix in PER_FRAME_IMAGES.values()
            if (indices := frame_indices(self.root / folder, suffix))
        ]
        if counts:
            return max(counts)
        if (self.root / "landmarks.npy").is_file():
            return int(np.load(self.root / "landmarks.npy", mmap_mode="r").shape[0])
        if json_ids:
            return max(json_ids) + 1
        raise FileNotFoundError(
            f"{self.root} holds no frames (no ori_imgs/, landmarks.npy or transforms JSON)"
        )

    def _present(self, field: str) -> bool:
        """Whether the files of a field exist (used when `fields` is None)."""
        if field in PER_FRAME_IMAGES:
            folder, suffix = PER_FRAME_IMAGES[field]
            return bool(frame_indices(self.root / folder, suffix))
        if field in ("pose", "intrinsics"):
            return self._header is not None
        if field == "lms68":
            return self._has_lms_files() or (self.root / "landmarks.npy").is_file()
        return field == "index" or self._field_file(field).is_file()

    def _field_file(self, field: str) -> Path:
        if field == "audio" and self.audio_name == "ds":
            legacy = self.root / "aud.npy"  # AD-NeRF's name for DeepSpeech features
            if not (self.root / "aud_ds.npy").is_file() and legacy.is_file():
                return legacy
        return self.root / {
            "background": "bc.jpg",
            "landmarks": "landmarks.npy",
            "audio": f"aud_{self.audio_name}.npy",
            "eye": "au.csv",
        }.get(field, "")

    def _has_lms_files(self) -> bool:
        return bool(frame_indices(self.root / "ori_imgs", ".lms"))

    def _check_files(self) -> None:
        """Fail at construction, naming the first missing file of a requested field."""
        ids = self.frame_ids
        for field in self.fields:
            if field in PER_FRAME_IMAGES:
                folder, suffix = PER_FRAME_IMAGES[field]
                missing = np.setdiff1d(ids, frame_indices(self.root / folder, suffix))
                if missing.size:
                    raise FileNotFoundError(
                        f"{self.root / folder / f'{missing[0]}{suffix}'} is missing "
                        f"({missing.size} of {ids.size} {folder}/ files of split "
                        f"{self.split!r}){_task_hint(self.root, field)}"
                    )
            elif field in ("pose", "intrinsics"):
                if self._header is None:
                    raise FileNotFoundError(
                        f"{self._json_path('train')} is missing: {field!r} needs a transforms "
                        f"JSON{_task_hint(self.root, field)}"
                    )
            elif field == "lms68":
                has_npy = (self.root / "landmarks.npy").is_file()
                lms_ids = frame_indices(self.root / "ori_imgs", ".lms")
                missing = np.setdiff1d(ids, lms_ids)
                if lms_ids and missing.size and not has_npy and self.split != "all":
                    raise FileNotFoundError(
                        f"{self.root / 'ori_imgs' / f'{missing[0]}.lms'} is missing "
                        f"({missing.size} of {ids.size} .lms files of split {self.split!r})"
                        f"{_task_hint(self.root, field)}"
                    )
                if not lms_ids and not has_npy:
                    raise FileNotFoundError(
                        f"{self.root / 'ori_imgs'}/{{i}}.lms and {self.root / 'landmarks.npy'} "
                        f"are missing: 'lms68' needs one of them{_task_hint(self.root, field)}"
                    )
            elif field != "index" and not self._field_file(field).is_file():
                raise FileNotFoundError(
                    f"{self._field_file(field)} is missing: {field!r} needs it"
                    f"{_task_hint(self.root, field, self.audio_name)}"
                )

    def _source_size(self) -> tuple[int, int]:
        """(height, width) of the files: the JSON's h, w, else the first image present."""
        header = self._header
        if header is not None and "h" in header and "w" in header:
            return int(header["h"]), int(header["w"])
        for folder, suffix in (*PER_FRAME_IMAGES.values(), ("", "bc.jpg")):
            indices = [""] if not folder else frame_indices(self.root / folder, suffix)[:1]
            for i in indices:
                image = _imread(self.root / folder / f"{i}{suffix}", cv2.IMREAD_UNCHANGED)
                return int(image.shape[0]), int(image.shape[1])
        if header is not None and "cx" in header and "cy" in header:
            return int(header["cy"]) * 2, int(header["cx"]) * 2
        raise FileNotFoundError(f"{self.root}: no image or transforms JSON gives the frame size")

    def _read_poses(self, frames: list[tuple[int, int, Any]]) -> np.ndarray:
        poses = np.full((len(frames), 4, 4), np.nan, np.float32)
        for k, (img_id, _, matrix) in enumerate(frames):
            if matrix is None:
                if self.split != "all":
                    raise ValueError(
                        f"{self._json_path(self.split)}: frame {img_id} has no transform_matrix"
                    )
                continue
            array = np.asarray(matrix, np.float32)
            if array.shape != (4, 4):
                raise ValueError(f"frame {img_id}: transform_matrix is {array.shape}, not 4x4")
            poses[k] = array
        return poses

    def _read_intrinsics(self) -> np.ndarray:
        """(fx, fy, cx, cy) at the output size, read as RAD-NeRF/ER-NeRF read them."""
        header = self._header or {}
        height, width = self.source_size
        if "focal_len" in header:
            fx = fy = float(header["focal_len"])
        elif "fl_x" in header or "fl_y" in header:
            fx = float(header.get("fl_x", header.get("fl_y")))
            fy = float(header.get("fl_y", header.get("fl_x")))
        else:
            raise ValueError(
                f"{self._json_path(self.split if self.split != 'all' else 'train')} has no "
                "focal_len (or fl_x / fl_y); rerun task 9"
            )
        cx = float(header.get("cx", width / 2))
        cy = float(header.get("cy", height / 2))
        sx, sy = self._scale[0], self._scale[1]
        return np.array([fx * sx, fy * sy, cx * sx, cy * sy], np.float32)

    def _read_eye(self) -> np.ndarray:
        path = self._field_file("eye")
        blink = read_blink(path)
        if self.frame_ids.size and self.frame_ids.max() >= blink.shape[0]:
            raise ValueError(
                f"{path} has {blink.shape[0]} rows but frame {self.frame_ids.max()} needs one; "
                "rerun task 9"
            )
        return (np.clip(blink[self.frame_ids], 0.0, BLINK_CLIP) / BLINK_CLIP).astype(np.float32)

    def _check_audio_rows(self, rows: np.ndarray) -> None:
        """The frames' aud_id must be rows of the feature file (the last may be one past it)."""
        if self.aud_ids.size and self.aud_ids.max() > rows.shape[0]:
            raise ValueError(
                f"{self._field_file('audio')} has {rows.shape[0]} frame rows but frame "
                f"{self.frame_ids[self.aud_ids.argmax()]} needs row {self.aud_ids.max()}: audio "
                f"features and frames do not match"
                f"{_task_hint(self.root, 'audio', self.audio_name, force=True)}"
            )

    # ---------------------------------------------------------------- per-process arrays

    def _audio_rows(self) -> np.ndarray:
        rows = self._cached("audio")
        if rows is None:
            path = self._field_file("audio")
            rows = audio_rows(np.load(path, mmap_mode="r"), self.audio_name, path)
        return rows

    def _cached(self, key: str) -> Any:
        cache = getattr(self, "_cache", None)
        return None if cache is None else cache.get(key)

    def _array(self, key: str) -> Any:
        """An array opened once per process: memory maps of .npy files, the background plate."""
        value = self._cache.get(key)
        if value is None:
            if key == "audio" and "audio_rows" in self._store:
                value = self._store["audio_rows"]
            elif key == "background" and "background_plate" in self._store:
                value = self._store["background_plate"]
            elif key == "audio":
                value = self._audio_rows()
            elif key == "landmarks":
                path = self._field_file("landmarks")
                value = np.load(path, mmap_mode="r")
                if value.ndim != 3 or value.shape[1:] != (NUM_MESH_POINTS, 3):
                    raise ValueError(f"{path}: expected [N, 478, 3], got {value.shape}")
                if self.frame_ids.max() >= value.shape[0]:
                    raise ValueError(
                        f"{path} has {value.shape[0]} rows but frame {self.frame_ids.max()} "
                        f"needs one{_task_hint(self.root, 'landmarks')} --force"
                    )
            elif key == "background":
                value = read_color(self._field_file("background"), self.size)
            else:
                raise KeyError(key)
            self._cache[key] = value
        return value

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    # ---------------------------------------------------------------- reading one frame

    def _lms68(self, k: int) -> np.ndarray:
        img_id = int(self.frame_ids[k])
        has_npy = (self.root / "landmarks.npy").is_file()
        if self._lms_from_files:
            path = self.root / "ori_imgs" / f"{img_id}.lms"
            if path.is_file():
                return read_lms(path) * self._scale[:2]
            if not has_npy:
                if self.split == "all":
                    return np.full((NUM_LMS68, 2), np.nan, np.float32)
                raise FileNotFoundError(f"{path} is missing{_task_hint(self.root, 'lms68')}")
        mesh = np.asarray(self._array("landmarks")[img_id : img_id + 1])
        return landmarks68(mesh)[0] * self._scale[:2]

    def _landmarks(self, k: int) -> np.ndarray:
        return np.asarray(self._array("landmarks")[int(self.frame_ids[k])]) * self._scale

    def _audio(self, k: int) -> np.ndarray:
        rows = self._array("audio")
        centre = min(int(self.aud_ids[k]), rows.shape[0] - 1)
        return audio_window(rows, centre, self.audio_window)

    def _raw(self, k: int) -> dict[str, np.ndarray]:
        """Compact arrays of item k: from the store when preloaded, else decoded from disk."""
        out: dict[str, np.ndarray] = {}
        for field in self.fields:
            if field in self._store:
                out[field] = self._store[field][k]
            elif field in PER_FRAME_IMAGES:
                folder, suffix = PER_FRAME_IMAGES[field]
                path = self.root / folder / f"{self.frame_ids[k]}{suffix}"
                out[field] = _IMAGE_READERS[field](path, self.size)
            elif field == "background":
                out[field] = self._array("background")
            elif field == "landmarks":
                out[field] = self._landmarks(k)
            elif field == "lms68":
                out[field] = self._lms68(k)
            elif field == "audio":
                out[field] = self._audio(k)
        return out

    def _load_store(self) -> dict[str, np.ndarray]:
        """Decode every requested per-frame field into one array per field, in threads."""
        n = len(self)
        height, width = self.size
        shapes = {
            "image": ((n, height, width, 3), np.uint8),
            "gt_image": ((n, height, width, 3), np.uint8),
            "torso": ((n, height, width, 4), np.uint8),
            "parsing": ((n, height, width), np.uint8),
            "depth": ((n, height, width), np.uint16),
        }
        store = {f: np.empty(*shapes[f]) for f in self.fields if f in PER_FRAME_IMAGES}

        def decode(k: int) -> None:
            for field in store:
                folder, suffix = PER_FRAME_IMAGES[field]
                path = self.root / folder / f"{self.frame_ids[k]}{suffix}"
                store[field][k] = _IMAGE_READERS[field](path, self.size)

        if store:
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                list(pool.map(decode, range(n)))
        if "background" in self.fields:
            store["background_plate"] = read_color(self._field_file("background"), self.size)
        if "landmarks" in self.fields:
            store["landmarks"] = np.stack([self._landmarks(k) for k in range(n)]).astype(np.float32)
        if "lms68" in self.fields:
            store["lms68"] = np.stack([self._lms68(k) for k in range(n)]).astype(np.float32)
        if "audio" in self.fields:
            store["audio_rows"] = np.ascontiguousarray(self._audio_rows(), np.float32)
        self._cache = {}
        return store

    # ---------------------------------------------------------------- Dataset protocol

    def __len__(self) -> int:
        return int(self.frame_ids.size)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= k < len(self):
            raise IndexError(f"index {k} out of range for {len(self)} frames")
        k = int(k) % len(self)
        raw = self._raw(k)
        item: dict[str, torch.Tensor] = {}
        for field in self.fields:
            if field in ("image", "gt_image", "torso", "background"):
                chw = torch.from_numpy(raw[field]).permute(2, 0, 1)
                if self.uint8_images:
                    item[field] = chw.contiguous()
                else:
                    item[field] = chw.float().div_(255.0)
            elif field == "parsing":
                item[field] = torch.from_numpy(np.array(raw[field], copy=True))
            elif field == "depth":
                depth = raw[field].astype(np.float32) * np.float32(self._depth_unit)
                item[field] = torch.from_numpy(depth)
            elif field in ("landmarks", "lms68", "audio"):
                item[field] = torch.from_numpy(np.array(raw[field], np.float32, copy=True))
            elif field == "pose":
                item[field] = self.poses[k].clone()
            elif field == "intrinsics":
                item[field] = self.intrinsics.clone()
            elif field == "eye":
                item[field] = torch.tensor([self._eye[k]], dtype=torch.float32)
            elif field == "index":
                item[field] = torch.tensor(int(self.frame_ids[k]), dtype=torch.int64)
        return item

    def __repr__(self) -> str:
        return (
            f"TalkingFaceDataset({str(self.root)!r}, split={self.split!r}, frames={len(self)}, "
            f"size={self.size}, fields={list(self.fields)}, preload={self.preload})"
        )


def _output_size(
    source: tuple[int, int], image_size: int | tuple[int, int] | None
) -> tuple[int, int]:
    """(height, width) for `image_size`: None keeps it, an int is the longer side."""
    if image_size is None:
        return source
    if isinstance(image_size, int):
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        scale = image_size / max(source)
        return max(1, round(source[0] * scale)), max(1, round(source[1] * scale))
    height, width = (int(v) for v in image_size)
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    return height, width
