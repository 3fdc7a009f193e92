"""MediaPipe face detection (the model ships inside the mediapipe wheel: nothing downloads)."""

from __future__ import annotations

import cv2
import numpy as np

from talkprep.models.closing import ClosingModel
from talkprep.models.native_log import quiet_native_logs

DETECT_MAX_SIDE = 640
"""Frames are shrunk to this longest side before detection: boxes need no more detail."""


class FaceDetector(ClosingModel):
    """Face boxes in pixels for BGR frames. Use as a context manager to free the graph."""

    def __init__(self, min_confidence: float = 0.5, full_range: bool = True) -> None:
        import mediapipe as mp

        with quiet_native_logs():
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1 if full_range else 0, min_detection_confidence=min_confidence
            )

    def detect(self, image_bgr: np.ndarray) -> np.ndarray:
        """Return float32 [K, 5] rows of x0, y0, x1, y1, score in pixels (K may be 0)."""
        h, w = image_bgr.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
        small = (
            image_bgr
            if scale == 1.0
            else cv2.resize(
                image_bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
            )
        )
        with quiet_native_logs():
            result = self._detector.process(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        rows = []
        for detection in result.detections or []:
            box = detection.location_data.relative_bounding_box
            x0, y0 = box.xmin * w, box.ymin * h
            rows.append([x0, y0, x0 + box.width * w, y0 + box.height * h, detection.score[0]])
        return np.asarray(rows, dtype=np.float32).reshape(-1, 5)

    def close(self) -> None:
        self._detector.close()
