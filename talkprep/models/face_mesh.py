"""MediaPipe FaceMesh in video mode: 478 points per face in pixels (model inside the wheel)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkprep.geometry.face_topology import NUM_MESH_POINTS
from talkprep.models.closing import ClosingModel
from talkprep.models.native_log import quiet_native_logs

MAX_FACES = 3
"""Faces looked for per frame; the task keeps the one that continues the track."""
MIN_DETECTION_CONFIDENCE = 0.5
MIN_TRACKING_CONFIDENCE = 0.5


class FaceMesh(ClosingModel):
    """Dense face landmarks for consecutive BGR frames of one video.

    Video mode (static_image_mode=False) tracks the mesh from the previous frame instead of
    running the detector on every frame: faster and steadier. Feed frames in order; use a new
    instance (or `reset`) for an unrelated sequence. Use as a context manager to free the graph.
    """

    def __init__(self, max_faces: int = MAX_FACES) -> None:
        import mediapipe as mp

        self._max_faces = max_faces
        self._module = mp.solutions.face_mesh
        with quiet_native_logs():
            self._mesh = self._new_graph()

    def _new_graph(self) -> Any:
        return self._module.FaceMesh(
            static_image_mode=False,
            max_num_faces=self._max_faces,
            refine_landmarks=True,
            min_detection_confidence=MIN_DETECTION_CONFIDENCE,
            min_tracking_confidence=MIN_TRACKING_CONFIDENCE,
        )

    def process(self, image_bgr: np.ndarray) -> np.ndarray:
        """Return float32 [K, 478, 3] faces: x, y in pixels, z relative in the same pixel scale."""
        h, w = image_bgr.shape[:2]
        with quiet_native_logs():
            result = self._mesh.process(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        faces = result.multi_face_landmarks or []
        out = np.empty((len(faces), NUM_MESH_POINTS, 3), dtype=np.float32)
        for k, face in enumerate(faces):
            points = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            out[k] = points * np.array([w, h, w], dtype=np.float32)
        return out

    def reset(self) -> None:
        """Forget the tracked faces (start of an unrelated sequence)."""
        with quiet_native_logs():
            self._mesh.close()
            self._mesh = self._new_graph()

    def close(self) -> None:
        self._mesh.close()


class FaceBlendshapes(ClosingModel):
    """MediaPipe FaceLandmarker (Tasks API, video mode): the 52 ARKit-style blendshape scores.

    SyncTalk reads these as bs.npy. The model file (face_landmarker.task) is given by the user.
    """

    def __init__(self, model_path: Path) -> None:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.VIDEO,
            output_face_blendshapes=True,
            num_faces=1,
        )
        with quiet_native_logs():
            self._landmarker = vision.FaceLandmarker.create_from_options(options)

    def process(self, image_bgr: np.ndarray, timestamp_ms: int) -> np.ndarray | None:
        """Float32 [52] scores in 0-1 for the frame at `timestamp_ms` (increasing), or None."""
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        with quiet_native_logs():
            result = self._landmarker.detect_for_video(image, int(timestamp_ms))
        if not result.face_blendshapes:
            return None
        return np.array([c.score for c in result.face_blendshapes[0]], dtype=np.float32)

    def close(self) -> None:
        self._landmarker.close()
