"""Tracking quality on the shared clips: jitter, fast motion, focal stability, head-frame agreement.

    python benchmarks/bench_tracking_quality.py [--cache DIR] [--clips anchor,headturn,...]

Landmarks are made once per clip and variant (task 3, then MediaPipe on the frames) and cached in
``--cache`` (default /tmp/talkprep-trackq), so reruns only track. Variants:

* ``full``: the clip as task 3 writes it; its manifest figures ``jitter_rot_deg``,
  ``jitter_trans_mm``, ``reproj_p95_px_512``, ``fov_deg``, ``camera_distance_m``;
* ``half``: the same frames downscaled to half size before MediaPipe (resolution invariance of
  the focal: field of view and camera distance should not move);
* ``fast``: the headturn clip's every third frame, which triples the angular speed; tracked with
  and without the temporal term (the smoothed fit's reprojection p95 should stay within 10% of
  the unsmoothed one);
* ``segments``: the first and second half of a clip, and a crop of it, tracked apart; the rotation
  between their fitted head frames (rigid alignment of their shapes) should be under 2 degrees.

Prints one JSON object. The numbers before this tracker's rewrite were measured with the same
script against commit 23423b8, whose temporal term lived in ``talkprep.geometry.tracking`` itself
(patch ``SMOOTH_WEIGHT`` there for the unsmoothed reference).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CLIPS: dict[str, tuple[str, dict[str, Any]]] = {
    "anchor": ("anchor_512_25fps_20s.mp4", {}),
    "hdtf": ("hdtf_512_25fps_8s_mpeg4.mp4", {}),
    "obama": ("obama_256_30fps_30s_noaudio.mp4", {}),
    "selfie": ("selfie_720x1280_30fps_12s_noaudio.mp4", {"crop": "auto"}),
    "headturn": ("headturn_700_vfr_6s.mp4", {}),
}
FAST_STEP = 3
"""Every third frame of the headturn clip: three times the angular speed."""
CROP_FRACTION = 0.8
"""The crop variant keeps this fraction of each side, off centre (top-left corner kept)."""


def frames_folder(cache: Path, clip: str) -> Path:
    """ori_imgs/ of the clip made by task 3 (cached)."""
    from talkprep.config import build_config
    from talkprep.console import Console
    from talkprep.pipeline import Pipeline

    out = cache / clip
    if not (out / "ori_imgs" / "0.jpg").is_file():
        name, options = CLIPS[clip]
        values = {"video": DATA / name, "out": out, "tasks": "3", **options}
        Pipeline(build_config(values), Console(quiet=True)).run()
    return out / "ori_imgs"


def landmarks_of(
    cache: Path, clip: str, variant: str, transform: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, int, int]:
    """[N,478,3] landmarks of the clip's frames after `transform`, and the frame size (cached)."""
    import cv2

    from talkprep.models.face_mesh import FaceMesh
    from talkprep.tasks.landmarks import fill_short_gaps, pick_face

    path = cache / f"{clip}-{variant}.npz"
    if path.is_file():
        saved = np.load(path)
        return saved["landmarks"], int(saved["width"]), int(saved["height"])
    folder = frames_folder(cache, clip)
    n = len(list(folder.glob("*.jpg")))
    marks = np.full((n, 478, 3), np.nan, np.float32)
    with FaceMesh() as mesh:
        for i in range(n):
            image = transform(cv2.imread(str(folder / f"{i}.jpg")))
            faces = mesh.process(image)
            if len(faces):
                marks[i] = faces[pick_face(faces, None) if len(faces) > 1 else 0]
    marks, _ = fill_short_gaps(marks)
    height, width = image.shape[:2]
    np.savez(path, landmarks=marks, width=width, height=height)
    return marks, width, height


def _half(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)


def _crop(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return image[: int(h * CROP_FRACTION), int(w * (1 - CROP_FRACTION)) :]


def _summary(track: Any) -> dict[str, Any]:
    from talkprep.geometry.camera import radnerf_pose

    keys = ("focal_source", "fov_deg", "camera_distance_m", "jitter_rot_deg", "jitter_trans_mm",
            "reproj_median_px_512", "reproj_p95_px_512", "high_error_frames")  # fmt: skip
    out = {k: track.figures.get(k) for k in keys}
    ok = np.isfinite(track.translation[:, 0])
    euler, _ = radnerf_pose(track.rotation[ok], track.translation[ok])
    deg = np.degrees(euler)
    out["median_pitch_yaw_roll_deg"] = [round(float(v), 2) for v in np.median(deg, axis=0)]
    out["range_pitch_yaw_roll_deg"] = [round(float(v), 1) for v in np.ptp(deg, axis=0)]
    return out


def head_frame_offset_deg(a: Any, b: Any) -> float:
    """Rotation (degrees) between two tracks' head frames: rigid alignment of their shapes."""
    sa, sb = a.shape - a.shape.mean(0), b.shape - b.shape.mean(0)
    u, _, vt = np.linalg.svd(sb.T @ sa)
    rot = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    return round(float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))), 2)


def smoothing_off() -> Any:
    """Context in which the tracker's temporal term is off (for the unsmoothed reference)."""
    from unittest import mock

    from talkprep.geometry.tracking import poses

    return mock.patch.object(poses, "SMOOTH_WEIGHT", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/talkprep-trackq"))
    parser.add_argument("--clips", default=",".join(CLIPS))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    from talkprep.geometry.tracking import track_head

    results: dict[str, Any] = {}
    tracks = {}
    for clip in args.clips.split(","):
        lm, w, h = landmarks_of(args.cache, clip, "full", lambda im: im)
        tracks[clip] = track_head(lm, w, h)
        results[clip] = _summary(tracks[clip])
        print(clip, json.dumps(results[clip]), flush=True)
    for clip in ("anchor", "headturn", "obama"):
        lm, w, h = landmarks_of(args.cache, clip, "half", _half)
        half = track_head(lm, w, h)
        full = results[clip] if clip in results else _summary(track_head(*_full(args, clip)))
        row = _summary(half)
        row["fov_change_deg"] = round(abs(row["fov_deg"] - full["fov_deg"]), 3)
        row["distance_change"] = round(
            abs(row["camera_distance_m"] / full["camera_distance_m"] - 1), 4
        )
        results[f"{clip}-half"] = row
        print(f"{clip}-half", json.dumps(row), flush=True)
    lm, w, h = landmarks_of(args.cache, "headturn", "full", lambda im: im)
    fast = lm[::FAST_STEP]
    smooth = _summary(track_head(fast, w, h))
    with smoothing_off():
        raw = _summary(track_head(fast, w, h))
    results["headturn-fast"] = {
        "smoothed": smooth,
        "unsmoothed": raw,
        "p95_ratio": round(smooth["reproj_p95_px_512"] / raw["reproj_p95_px_512"], 3),
    }
    print("headturn-fast", json.dumps(results["headturn-fast"]), flush=True)
    for clip in ("anchor", "obama"):
        lm, w, h = landmarks_of(args.cache, clip, "full", lambda im: im)
        mid = len(lm) // 2
        first, second = track_head(lm[:mid], w, h), track_head(lm[mid:], w, h)
        lc, wc, hc = landmarks_of(args.cache, clip, "crop", _crop)
        crop = track_head(lc, wc, hc)
        row = {
            "halves_offset_deg": head_frame_offset_deg(first, second),
            "crop_offset_deg": head_frame_offset_deg(first, crop),
            "first": _summary(first),
            "second": _summary(second),
            "crop": _summary(crop),
        }
        results[f"{clip}-segments"] = row
        print(f"{clip}-segments", json.dumps(row), flush=True)
    print(json.dumps(results, indent=1))


def _full(args: argparse.Namespace, clip: str) -> tuple[np.ndarray, int, int]:
    return landmarks_of(args.cache, clip, "full", lambda im: im)


if __name__ == "__main__":
    main()
