"""The semantic classes of `semantics/{i}.png`, the one per-frame class map every mask comes from.

Task 5 writes the class map (single-channel uint8, one value per pixel); the ER-NeRF parsing
colours, the torso and gt images, the background plate and every trainer's masks are rendered
from it, so a parser backend only has to fill these classes.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

SEMANTICS_DIR = "semantics"
MASK_JUMP_KEY = "mask_jump"
"""Task 5's info key for its per-frame mask-jump series (talkprep.geometry.masks.region_jump of
each frame's coarse regions against the last's; None for frame 0), which the report reads."""
DEFECT_KEYS = ("hair_in_torso", "torso_above_chin", "chin_hole", "other_touching", "hand_over_face")
"""Task 5's info keys for its per-frame parsing-defect series (talkprep.geometry.parsing_defects;
None where a frame has nothing to measure), which the report grades and screening reads."""


class SemanticClass(IntEnum):
    """Class values stored in `semantics/{i}.png`."""

    BACKGROUND = 0
    FACE_SKIN = 1
    HAIR = 2
    EARS = 3
    """Ears and what hangs from them (earrings)."""
    MOUTH_INTERIOR = 4
    TEETH = 5
    NECK = 6
    """Visible neck skin."""
    TORSO = 7
    """Clothes, shoulders, arms of the tracked person."""
    OTHER = 8
    """Objects and other people; counts as background everywhere downstream."""
    HAND = 9
    """Hands (anyone's) and what they hold; counts as background everywhere downstream and is
    kept out of the background plate, since it moves."""


N_CLASSES = len(SemanticClass)

HEAD_CLASSES: tuple[SemanticClass, ...] = (
    SemanticClass.FACE_SKIN,
    SemanticClass.HAIR,
    SemanticClass.EARS,
    SemanticClass.MOUTH_INTERIOR,
    SemanticClass.TEETH,
)
"""Classes that ER-NeRF's parsing colours call head."""

BACKGROUND_CLASSES: tuple[SemanticClass, ...] = (
    SemanticClass.BACKGROUND,
    SemanticClass.OTHER,
    SemanticClass.HAND,
)

PERSON_CLASSES: tuple[SemanticClass, ...] = (*HEAD_CLASSES, SemanticClass.NECK, SemanticClass.TORSO)
"""Every class of the tracked person (all but background, other and hands)."""

NOT_PLATE_CLASSES: tuple[SemanticClass, ...] = (*PERSON_CLASSES, SemanticClass.HAND)
"""Classes the background plate never takes a pixel from (nor from near them)."""

SEMANTIC_COLOURS: dict[SemanticClass, tuple[int, int, int]] = {
    SemanticClass.BACKGROUND: (40, 40, 40),
    SemanticClass.FACE_SKIN: (255, 204, 153),
    SemanticClass.HAIR: (120, 60, 20),
    SemanticClass.EARS: (255, 120, 200),
    SemanticClass.MOUTH_INTERIOR: (200, 0, 40),
    SemanticClass.TEETH: (255, 255, 255),
    SemanticClass.NECK: (80, 220, 80),
    SemanticClass.TORSO: (60, 110, 255),
    SemanticClass.OTHER: (150, 150, 0),
    SemanticClass.HAND: (255, 0, 255),
}
"""Display colour of each class, RGB, for reports and contact sheets (not a trainer format)."""

SEMANTIC_NAMES: dict[SemanticClass, str] = {
    SemanticClass.BACKGROUND: "background",
    SemanticClass.FACE_SKIN: "face skin",
    SemanticClass.HAIR: "hair",
    SemanticClass.EARS: "ears and earrings",
    SemanticClass.MOUTH_INTERIOR: "mouth interior",
    SemanticClass.TEETH: "teeth",
    SemanticClass.NECK: "neck skin",
    SemanticClass.TORSO: "torso",
    SemanticClass.OTHER: "other (counts as background)",
    SemanticClass.HAND: "hands and what they hold (count as background)",
}
"""Legend text of each class."""


def colour_lut_rgb() -> np.ndarray:
    """uint8 [256, 3]: display colour (RGB) of every class value; unknown values are black."""
    lut = np.zeros((256, 3), np.uint8)
    for cls, rgb in SEMANTIC_COLOURS.items():
        lut[int(cls)] = rgb
    return lut


def colourise(classes: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] display image of a class map (uint8 [H, W])."""
    return colour_lut_rgb()[classes]


def class_mask(classes: np.ndarray, members: tuple[SemanticClass, ...]) -> np.ndarray:
    """bool [H, W]: pixels whose class is one of `members`."""
    lut = np.zeros(256, bool)
    lut[[int(c) for c in members]] = True
    return lut[classes]
