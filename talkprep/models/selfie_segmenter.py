"""MediaPipe selfie segmentation: a person probability map per frame (the model ships inside the
mediapipe wheel, so nothing downloads)."""

from __future__ import annotations

import cv2
import numpy as np

from talkprep.models.closing import ClosingModel
from talkprep.models.native_log import quiet_native_logs

SEGMENT_SIDE = 256
"""Frames are shrunk so that their longest side is this before segmentation: the general model's
input is 256x256, so more pixels only cost conversion time."""
GENERAL_MODEL = 0
"""MediaPipe's 256x256 'general' selfie model (1 is the 144x256 landscape model)."""


class SelfieSegmenter(ClosingModel):
    """Person probabilities for BGR frames. Use as a context manager to free the graph."""

    def __init__(self, model_selection: int = GENERAL_MODEL) -> None:
        import mediapipe as mp

        with quiet_native_logs():
            self._segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(
                model_selection=model_selection
            )

    def work_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the maps `segment` returns for frames of this size."""
        scale = min(1.0, SEGMENT_SIDE / max(height, width))
        return max(1, round(height * scale)), max(1, round(width * scale))

    def shrink(self, image_bgr: np.ndarray) -> np.ndarray:
        """The frame at `work_size` (area-averaged), as `segment` sees it; the same object when
        it is that size already."""
        h, w = self.work_size(*image_bgr.shape[:2])
        if (h, w) == image_bgr.shape[:2]:
            return image_bgr
        return cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_AREA)

    def segment(self, image_bgr: np.ndarray) -> np.ndarray:
        """float32 [h, w] person probability in 0..1 at `work_size` of the frame."""
        small = self.shrink(image_bgr)
        h, w = small.shape[:2]
        with quiet_native_logs():
            result = self._segmenter.process(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        mask = result.segmentation_mask
        if mask is None:
            return np.zeros((h, w), np.float32)
        return np.asarray(mask, dtype=np.float32)

    def close(self) -> None:
        self._segmenter.close()
