"""Index tables of MediaPipe's 478-point face mesh (468 + 10 iris points with refine_landmarks).

Kept as literal tables so that nothing here imports mediapipe.
"""

from __future__ import annotations

import numpy as np

NUM_MESH_POINTS = 478
NUM_LMS68 = 68

FACE_OVAL = np.array(
    [10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
     377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338],
)  # fmt: skip
"""The face outline as a closed loop (forehead top, down the subject's right side, chin, back up),
ordered from mediapipe's FACEMESH_FACE_OVAL edges."""

LMS68 = np.array(
    [
        # jaw 0-16, from the subject's right ear to the left
        127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
        # brows 17-26
        70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
        # nose 27-35: bridge 27-30, base 31-35
        168, 197, 5, 4, 75, 97, 2, 326, 305,
        # eyes 36-47: right eye 36-41, left eye 42-47, each from the outer corner clockwise
        33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
        # mouth 48-67: outer lip 48-59, inner lip 60-67
        61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91, 78, 81, 13, 311, 308, 402, 14, 178,
    ]
)  # fmt: skip
"""Mesh index of each iBUG-68 point (the 478 -> 68 map used by GeneFace++), in iBUG order."""

RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
"""Outer eye corners (subject's right and left); their distance fixes the metric scale."""
NOSE_TIP = 4
CHIN = 152
