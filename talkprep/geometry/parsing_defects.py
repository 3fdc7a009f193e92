"""Per-frame figures that catch what a class map gets wrong on real speakers: hair left in the
torso, torso beside the face, a hole under the chin, hands or objects against the person, and a
hand over the face. Plain functions on a class map and the face mesh; task 5 records them per
frame, the report grades them and shows the worst frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkprep.geometry.masks import CHIN_POINT, face_mask, mask8, neck_axis
from talkprep.semantics import PERSON_CLASSES, SemanticClass, class_mask

C = SemanticClass
SIDE_REACH = 1.0
"""Torso is looked for beside the face within this many face widths of its centre ..."""
ABOVE_CHIN = 0.25
"""... and above this many face heights over the chin (the mouth's level), where no shoulder
reaches."""
SEAM_BOX = (0.15, 0.03, 0.15)
"""The box under the chin: half-width (face widths) about the neck's axis (midway between the
jaw's angles: under a turned head the chin swings out over the hair behind the neck), top and
bottom below the chin point (face heights). Neck (or torso) fills it on every speaker; hair or
background there is a hole."""
SEAM_INSIDE_MIN = 0.5
"""The box must lie at least this much inside the frame to be judged (a chin at the edge)."""
HAIR_NEAR = 0.15
"""Hair-coloured torso counts within this many face widths of the hair."""
DEFECT_FRAME_LIMITS: dict[str, float] = {
    "hair_in_torso": 0.03,
    "torso_above_chin": 0.03,
    "chin_hole": 0.25,
    "other_touching": 0.05,
    "hand_over_face": 0.05,
}
"""Per frame, the value of each parsing-defect figure above which the frame counts as showing
that defect (shares: see FrameDefects and hair_like_torso)."""
DEFECT_WORDS: dict[str, str] = {
    "hair_in_torso": "hair-coloured pixels left in the torso",
    "torso_above_chin": "torso labelled beside the face, above the mouth",
    "chin_hole": "a hole (hair or background) under the chin",
    "other_touching": "hands, objects or other people against the person's outline",
    "hand_over_face": "a hand over the face",
}
_TOUCH_KERNEL = np.ones((3, 3), np.uint8)
_PERSON_LUT = class_mask(np.arange(256, dtype=np.uint8), PERSON_CLASSES).astype(np.uint8)
_OTHER_LUT = class_mask(np.arange(256, dtype=np.uint8), (C.OTHER, C.HAND)).astype(np.uint8)
"""uint8 0/1 tables for cv2.LUT: a fifth of the time of indexing a bool table with the map."""


@dataclass(frozen=True)
class FrameDefects:
    """One frame's parsing figures (None where the frame has no face to measure against)."""

    torso_above_chin: float | None
    """Torso pixels beside the face above the mouth's level, as a share of the face's box."""
    chin_hole: float | None
    """Share of the box under the chin that is not neck, torso or face."""
    other_touching: float
    """Share of the person's outline that borders OTHER or HAND."""
    hand_over_face: float | None
    """Share of the face-mesh polygon labelled HAND."""


def frame_defects(classes: np.ndarray, face_xy: np.ndarray | None) -> FrameDefects:
    """The parsing figures of one class map (uint8 [H, W]) with its face mesh ([478, 2] pixels).

    Measured on every second pixel of every second row: the figures are shares, which a quarter
    of the pixels gives to well within their limits, at a quarter of the cost.
    """
    classes = np.ascontiguousarray(classes[::2, ::2])
    face_xy = None if face_xy is None else face_xy / 2.0
    person = cv2.LUT(classes, _PERSON_LUT)
    outline = cv2.subtract(person, cv2.erode(person, _TOUCH_KERNEL))
    other = cv2.LUT(classes, _OTHER_LUT)
    touching = cv2.countNonZero(cv2.bitwise_and(outline, cv2.dilate(other, _TOUCH_KERNEL)))
    other_touching = touching / max(1, cv2.countNonZero(outline))
    if face_xy is None or not np.isfinite(face_xy).all():
        return FrameDefects(None, None, other_touching, None)
    height, width = classes.shape
    lo, hi = face_xy.min(axis=0), face_xy.max(axis=0)
    face_w, face_h = max(1.0, hi[0] - lo[0]), max(1.0, hi[1] - lo[1])
    centre_x = (lo[0] + hi[0]) / 2
    chin_y = face_xy[CHIN_POINT][1]
    axis_x = neck_axis(face_xy)
    left = int(np.clip(round(centre_x - SIDE_REACH * face_w), 0, width))
    right = int(np.clip(round(centre_x + SIDE_REACH * face_w), 0, width))
    above = classes[: int(np.clip(round(chin_y - ABOVE_CHIN * face_h), 0, height)), left:right]
    torso_above = np.count_nonzero(above == C.TORSO) / (face_w * face_h)
    half, top, bottom = SEAM_BOX
    box = (
        round(axis_x - half * face_w),
        round(chin_y + top * face_h),
        round(axis_x + half * face_w),
        round(chin_y + bottom * face_h),
    )
    clipped = classes[max(0, box[1]) : max(0, box[3]), max(0, box[0]) : max(0, box[2])]
    area = max(1, (box[2] - box[0]) * (box[3] - box[1]))
    chin_hole = None
    if clipped.size >= SEAM_INSIDE_MIN * area:
        filled = class_mask(clipped, (C.NECK, C.TORSO, C.FACE_SKIN))
        chin_hole = 1.0 - np.count_nonzero(filled) / clipped.size
    face = mask8(face_mask(face_xy, height, width))
    face_area = cv2.countNonZero(face)
    hands = cv2.compare(classes, int(C.HAND), cv2.CMP_EQ)
    covered = cv2.countNonZero(cv2.bitwise_and(hands, hands, mask=face))
    hand_over_face = covered / face_area if face_area else None
    return FrameDefects(torso_above, chin_hole, other_touching, hand_over_face)


def hair_like_torso(
    classes: np.ndarray, posteriors: np.ndarray, face_width: float, face_height: float
) -> float | None:
    """Torso pixels of a (work-resolution) class map near the hair (within HAIR_NEAR face widths)
    whose colour the per-video models call hair more than skin or clothes (posteriors [3, h, w]:
    skin, hair, clothes), as a share of the face's box (pixels of the same map); None without a
    face. Near the hair only: hair ends left in the torso lie against the hair, while a dark
    jacket that merely looks like dark hair lies anywhere."""
    if face_width <= 0 or face_height <= 0:
        return None
    torso = cv2.compare(classes, int(C.TORSO), cv2.CMP_EQ)
    if not cv2.countNonZero(torso):
        return 0.0
    not_hair = cv2.compare(classes, int(C.HAIR), cv2.CMP_NE)
    near = cv2.distanceTransform(not_hair, cv2.DIST_L1, 3) <= HAIR_NEAR * face_width
    skin_p, hair_p, clothes_p = posteriors
    hairy = near & (torso > 0) & (hair_p > skin_p) & (hair_p > clothes_p)
    return np.count_nonzero(hairy) / (face_width * face_height)
