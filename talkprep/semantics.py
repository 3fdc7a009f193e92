"""The semantic classes of `semantics/{i}.png`, the one per-frame class map every mask comes from.

Task 5 writes the class map (single-channel uint8, one value per pixel); the ER-NeRF parsing
colours, the torso and gt images, the background plate and every trainer's masks are rendered
from it, so a parser backend only has to fill these classes.
"""

from __future__ import annotations

from enum import IntEnum

SEMANTICS_DIR = "semantics"


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


HEAD_CLASSES: tuple[SemanticClass, ...] = (
    SemanticClass.FACE_SKIN,
    SemanticClass.HAIR,
    SemanticClass.EARS,
    SemanticClass.MOUTH_INTERIOR,
    SemanticClass.TEETH,
)
"""Classes that ER-NeRF's parsing colours call head."""

BACKGROUND_CLASSES: tuple[SemanticClass, ...] = (SemanticClass.BACKGROUND, SemanticClass.OTHER)
