"""MediaPipe Hands: the 21 landmarks of every visible hand (the palm detector and landmark model
ship inside the mediapipe wheel, so nothing downloads)."""

from __future__ import annotations

import cv2
import numpy as np

from talkprep.models.closing import ClosingModel
from talkprep.models.native_log import quiet_native_logs

MAX_HANDS = 4
"""The speaker's two hands and, now and then, someone else's."""
MIN_DETECTION = 0.4
MIN_TRACKING = 0.4
"""Lower than MediaPipe's 0.5 defaults: a hand cut by the frame's edge scores low, and a hand
labelled as background costs little where a hand labelled as torso costs a training run."""
EDGE_PAD = (0.25, 0.5)
"""Black margins added left and right (share of the width) and below (share of the height)
before detection: the palm detector misses a hand cut by the frame's edge (hands held low in
front of the body) unless the hand lies inside the image it sees."""
LITE_MODEL = 0
"""The lite landmark model: hand outlines, not finger poses, are what parsing needs."""


class HandDetector(ClosingModel):
    """Hand landmarks of BGR frames given in video order (the graph tracks hands between calls),
    or of unrelated frames with `tracking=False`. Use as a context manager to free the graph."""

    def __init__(self, tracking: bool = True) -> None:
        import mediapipe as mp

        self.tracking = tracking

        with quiet_native_logs():
            self._hands = mp.solutions.hands.Hands(
                static_image_mode=not tracking,
                max_num_hands=MAX_HANDS,
                model_complexity=LITE_MODEL,
                min_detection_confidence=MIN_DETECTION,
                min_tracking_confidence=MIN_TRACKING,
            )

    def detect(self, image_bgr: np.ndarray) -> np.ndarray:
        """float32 [K, 21, 2]: each found hand's landmarks in pixels of `image_bgr` (K may be 0).

        Landmarks may lie outside the image: MediaPipe places the fingers of a hand cut by the
        frame's edge where they would be.
        """
        height, width = image_bgr.shape[:2]
        side, below = round(EDGE_PAD[0] * width), round(EDGE_PAD[1] * height)
        padded = cv2.copyMakeBorder(image_bgr, 0, below, side, side, cv2.BORDER_CONSTANT)
        with quiet_native_logs():
            result = self._hands.process(cv2.cvtColor(padded, cv2.COLOR_BGR2RGB))
        found = result.multi_hand_landmarks or []
        size = (padded.shape[1], padded.shape[0])
        hands = np.array(
            [[(p.x * size[0] - side, p.y * size[1]) for p in hand.landmark] for hand in found],
            np.float32,
        )
        return hands.reshape(len(found), 21, 2)

    def close(self) -> None:
        self._hands.close()
