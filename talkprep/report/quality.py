"""The report's verdict: each quality figure graded green, amber or red against a stated threshold,
and the frames most worth a look (largest tracking error, largest mask jumps).

Thresholds are what a researcher would accept before training a person-specific avatar: a few
hundred good frames, sub-pixel tracking at 512 px, masks that do not jump. They are stated in the
report next to each figure so that a reader can disagree with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from talkprep.geometry.masks import region_jump

Status = Literal["green", "amber", "red"]
STATUS_ORDER: dict[Status, int] = {"red": 0, "amber": 1, "green": 2}
CLIP_LEVEL = 32767 / 32768
"""A 16-bit sample at or beyond this magnitude is clipped."""
WORST_COUNT = 6


@dataclass(frozen=True)
class Threshold:
    """One graded figure: amber beyond `amber`, red beyond `red` (below, if higher is better)."""

    label: str
    unit: str
    amber: float
    red: float
    higher_is_better: bool = False
    why: str = ""

    def grade(self, value: float) -> Status:
        if self.higher_is_better:
            return "red" if value < self.red else "amber" if value < self.amber else "green"
        return "red" if value > self.red else "amber" if value > self.amber else "green"

    def stated(self) -> str:
        op = "≥" if self.higher_is_better else "≤"
        return f"green {op} {self.amber:g}{self.unit}, amber {op} {self.red:g}{self.unit}, else red"


@dataclass(frozen=True)
class Graded:
    """A figure's value, its grade and the plain-words warning shown when it is not green."""

    key: str
    threshold: Threshold
    value: float
    shown: str
    status: Status
    warning: str


THRESHOLDS: dict[str, Threshold] = {
    "faces_found_share": Threshold(
        "frames with a face", " %", 99.0, 90.0, True, "frames without a face are lost to training"
    ),
    "dropped_share": Threshold(
        "frames left out of the splits", " %", 1.0, 10.0, False, "no usable face in these frames"
    ),
    "interpolated_share": Threshold(
        "frames with interpolated landmarks", " %", 2.0, 10.0, False, "short detection gaps"
    ),
    "multi_face_share": Threshold(
        "frames with more than one face", " %", 0.0, 5.0, False, "a second person may be labelled"
    ),
    "reproj_median_px_512": Threshold(
        "tracking error, median over all points (at 512 px)", " px", 1.5, 3.0, False,
        "pose does not fit the mesh",
    ),
    "reproj_p95_px_512": Threshold(
        "tracking error, 95th percentile over all points (at 512 px)", " px", 3.0, 6.0, False,
        "bad frames",
    ),
    "high_error_share": Threshold(
        "frames with high tracking error", " %", 1.0, 5.0, False, "wrong face, blur, occlusion"
    ),
    "jitter_rot_deg": Threshold(
        "pose jitter, rotation", "°", 0.5, 1.5, False, "shaky heads in the trained avatar"
    ),
    "jitter_trans_mm": Threshold(
        "pose jitter, translation", " mm", 1.0, 3.0, False, "shaky heads in the trained avatar"
    ),
    "mask_jump_p95": Threshold(
        "mask jump between frames, 95th percentile (share of pixels)", "", 0.06, 0.15, False,
        "flickering head or person masks",
    ),
    "head_misses_face_share": Threshold(
        "frames whose head mask misses part of the face", " %", 0.5, 5.0, False, "face cut off"
    ),
    "hair_in_torso_share": Threshold(
        "frames with hair-coloured torso against the hair", " %", 5.0, 20.0, False,
        "hair ends in the torso images: the avatar's hair detaches and flickers",
    ),
    "torso_beside_face_share": Threshold(
        "frames with torso beside the face above the mouth", " %", 1.0, 5.0, False,
        "hair or head labelled torso",
    ),
    "chin_hole_share": Threshold(
        "frames with a hole under the chin", " %", 1.0, 5.0, False,
        "a gap at the head-neck seam of the torso images",
    ),
    "other_touching_share": Threshold(
        "frames with hands or objects against the person", " %", 2.0, 10.0, False,
        "check that they are labelled background in the worst frames",
    ),
    "hand_over_face_share": Threshold(
        "frames with a hand over the face", " %", 1.0, 5.0, False, "the face is hidden",
    ),
    "background_unseen_share": Threshold(
        "background never seen (inpainted)", " %", 20.0, 60.0, False, "blurry background plate"
    ),
    "background_mismatch_levels": Threshold(
        "background of the frames against bc.jpg, median difference", " levels", 6.0, 10.0,
        False, "the camera or the scene moves: one plate cannot match every frame",
    ),
    "depth_face_coverage": Threshold(
        "depth coverage of the face, median", " %", 90.0, 70.0, True, "holes in the depth maps"
    ),
    "clipped_share": Threshold(
        "clipped audio samples", " %", 0.01, 0.1, False, "distorted speech features"
    ),
    "audio_mismatch_s": Threshold(
        "audio padded or trimmed to the video", " s", 0.1, 0.5, False, "lip sync may be off"
    ),
    "repeated_share": Threshold(
        "repeated frames (source slower than the dataset fps)", " %", 1.0, 10.0, False,
        "frozen frames under moving audio",
    ),
}  # fmt: skip
"""Every graded figure but the clip's length, which `length_threshold` judges per trainer."""


def length_threshold(trainer: str, advised_seconds: float, fps: float) -> Threshold:
    """The clip's length in frames against what `trainer` is usually given: amber below, never
    red (a short clip is an advice about the footage, not a defect of the dataset)."""
    return Threshold(
        f"frames in the dataset (for {trainer})", "", advised_seconds * fps, 0.0, True,
        f"{trainer} is usually trained on {advised_seconds:g} s or more",
    )  # fmt: skip


PARSING_DEFECTS: dict[str, str] = {
    "hair_in_torso_share": "hair_in_torso",
    "torso_beside_face_share": "torso_above_chin",
    "chin_hole_share": "chin_hole",
    "other_touching_share": "other_touching",
    "hand_over_face_share": "hand_over_face",
}
"""Graded share of frames -> task 5's figure whose `frames_over` counts them."""


def _figures(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    record = manifest.get("tasks", {}).get(name, {})
    figures = record.get("figures", {}) if isinstance(record, dict) else {}
    return figures if isinstance(figures, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if np.isfinite(value) else None


def _share(count: Any, total: float) -> float | None:
    value = _number(count)
    return None if value is None or total <= 0 else 100.0 * value / total


def collect_values(
    manifest: dict[str, Any], n_frames: int, measured: dict[str, float]
) -> dict[str, float]:
    """The graded quantities present in this folder (manifest figures plus measured ones)."""
    marks = _figures(manifest, "landmarks")
    values: dict[str, float | None] = {
        "frames": float(n_frames) if n_frames else None,
        "faces_found_share": _share(marks.get("faces_found"), n_frames),
        "dropped_share": _share(marks.get("dropped_frames"), n_frames),
        "interpolated_share": _share(marks.get("interpolated_frames"), n_frames),
        "multi_face_share": _share(marks.get("multi_face_frames"), n_frames),
        "reproj_median_px_512": _number(marks.get("reproj_median_px_512")),
        "reproj_p95_px_512": _number(marks.get("reproj_p95_px_512")),
        "high_error_share": _share(marks.get("high_error_frames"), n_frames),
        "jitter_rot_deg": _number(marks.get("jitter_rot_deg")),
        "jitter_trans_mm": _number(marks.get("jitter_trans_mm")),
        "head_misses_face_share": _share(
            _figures(manifest, "parsing").get("frames_head_misses_face"), n_frames
        ),
        "repeated_share": _share(_figures(manifest, "frames").get("repeated_frames"), n_frames),
        "audio_mismatch_s": None,
    }
    parsing = _figures(manifest, "parsing")
    for key, name in PARSING_DEFECTS.items():
        figure = parsing.get(name)
        if isinstance(figure, dict):
            values[key] = _share(figure.get("frames_over"), n_frames)
    never_seen = _number(_figures(manifest, "background").get("background_never_seen_fraction"))
    values["background_unseen_share"] = None if never_seen is None else 100.0 * never_seen
    values["background_mismatch_levels"] = _number(
        _figures(manifest, "background").get("background_mismatch_levels")
    )
    coverage = _number(_figures(manifest, "depth").get("face_coverage_median"))
    values["depth_face_coverage"] = None if coverage is None else 100.0 * coverage
    mismatch = _number(_figures(manifest, "audio").get("padded_or_trimmed_s"))
    values["audio_mismatch_s"] = None if mismatch is None else abs(mismatch)
    values.update(measured)
    return {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}


def grade_all(values: dict[str, float], length: Threshold | None = None) -> list[Graded]:
    """Every known figure graded, worst first (red, amber, green), in THRESHOLDS order within,
    and the clip's length against `length` (length_threshold) when given."""
    graded = []
    for key, threshold in {**THRESHOLDS, **({"frames": length} if length else {})}.items():
        if key not in values:
            continue
        value = values[key]
        status = threshold.grade(value)
        shown = f"{value:.3g}{threshold.unit}"
        warning = ""
        if status != "green":
            limit = threshold.amber if status == "amber" else threshold.red
            side = "below" if threshold.higher_is_better else "above"
            warning = (
                f"{threshold.label}: {shown}, {side} the {status} limit of "
                f"{limit:g}{threshold.unit} ({threshold.why})"
            )
        graded.append(Graded(key, threshold, value, shown, status, warning))
    return sorted(graded, key=lambda g: STATUS_ORDER[g.status])


def clipped_share(samples: np.ndarray) -> float:
    """Percentage of samples at full scale (float samples in [-1, 1] from a 16-bit WAV)."""
    if samples.size == 0:
        return 0.0
    return 100.0 * float(np.count_nonzero(np.abs(samples) >= CLIP_LEVEL)) / samples.size


def mask_jumps(region_maps: Iterable[np.ndarray | None]) -> np.ndarray:
    """Per frame, the share of the person (either frame's) whose region changed since the last.

    Region maps are uint8 with 0 for background. The jump is 1 - IoU for a single region, and it
    also catches head/neck/torso swaps that leave the person's outline alone. A jump is what a
    trainer sees as a flickering mask; frame 0 and frames without a map (or after one without)
    are NaN. Maps are streamed: only the previous is held.
    """
    out: list[float] = []
    previous: np.ndarray | None = None
    for regions in region_maps:
        if regions is None:
            out.append(np.nan)
            previous = None
            continue
        if previous is None or previous.shape != regions.shape:
            out.append(np.nan)
        else:
            out.append(region_jump(previous, regions))
        previous = regions
    return np.asarray(out, dtype=np.float64)


def worst_frames(values: np.ndarray, count: int = WORST_COUNT) -> np.ndarray:
    """Indices of the `count` largest finite values, largest first."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(values))
    order = finite[np.argsort(-values[finite], kind="stable")]
    return order[:count]
