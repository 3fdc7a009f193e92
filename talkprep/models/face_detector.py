"""MediaPipe face detection (the model ships inside the mediapipe wheel: nothing downloads), and a
fast pass that samples face boxes over a whole video for the crop."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkprep.errors import InputError
from talkprep.models.closing import ClosingModel
from talkprep.models.native_log import quiet_native_logs

DETECT_MAX_SIDE = 640
"""Frames are shrunk to this longest side before detection: boxes need no more detail."""
SAMPLE_MAX_SIDE = 256
"""The sampling pass converts frames straight to this longest side (the model sees 192 px)."""
KEYFRAME_GAP = 2.0
"""Keyframes alone are sampled when they come at least every this many sampling intervals."""


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
        return self.detect_rgb(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), w, h)

    def detect_rgb(self, image_rgb: np.ndarray, width: int, height: int) -> np.ndarray:
        """Like `detect` for an RGB image of any scale; boxes in a `width` x `height` frame."""
        with quiet_native_logs():
            result = self._detector.process(np.ascontiguousarray(image_rgb))
        rows = []
        for detection in result.detections or []:
            box = detection.location_data.relative_bounding_box
            x0, y0 = box.xmin * width, box.ymin * height
            rows.append(
                [x0, y0, x0 + box.width * width, y0 + box.height * height, detection.score[0]]
            )
        return np.asarray(rows, dtype=np.float32).reshape(-1, 5)

    def close(self) -> None:
        self._detector.close()


@dataclass(frozen=True)
class FaceSamples:
    """Face detections on frames sampled over a video."""

    detections: list[np.ndarray]
    """One float32 [K, 5] array per sampled frame (K may be 0)."""
    width: int
    height: int
    """Displayed frame size in pixels (after any rotation in the file's metadata)."""


def sample_face_boxes(
    video: Path,
    interval_s: float,
    progress: Callable[..., Iterable[Any]] | None = None,
) -> FaceSamples:
    """Detect faces on one frame every `interval_s` seconds of a video.

    Frames come from a cheap decode (see `sampled_frames`) that runs in a thread while MediaPipe
    is imported and its graph built. The sampled images are small (at most SAMPLE_MAX_SIDE) and
    few, so holding them costs a few tens of MB at most.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        decoded = pool.submit(sampled_frames, video, interval_s)
        with FaceDetector() as detector:
            frames = decoded.result()
            rows: Iterable[tuple[np.ndarray, int, int]] = frames
            if progress is not None:
                rows = progress(frames, total=len(frames), desc="face boxes", unit="frame")
            detections = [detector.detect_rgb(image, w, h) for image, w, h in rows]
    width, height = (frames[0][1], frames[0][2]) if frames else (0, 0)
    return FaceSamples(detections, width, height)


def sampled_frames(video: Path, interval_s: float) -> list[tuple[np.ndarray, int, int]]:
    """(small RGB image, displayed width, displayed height) of about one frame per `interval_s`.

    Keyframes alone when the video has them at least every KEYFRAME_GAP intervals (phone and
    camera footage usually does): then only they are decoded. Otherwise every reference frame is
    decoded (the decoder skips B-frames), a fraction of a full decode.
    """
    keyframes = list(_sampled_frames(video, interval_s, "NONKEY"))
    if keyframes and len(keyframes) * interval_s * KEYFRAME_GAP >= _span(keyframes, interval_s):
        return [frame[:3] for frame in keyframes]
    return [frame[:3] for frame in _sampled_frames(video, interval_s, "NONREF")]


def _span(frames: list[tuple[np.ndarray, int, int, float]], interval_s: float) -> float:
    """Seconds from the first sampled frame to one interval past the last."""
    return frames[-1][3] - frames[0][3] + interval_s


def _sampled_frames(
    video: Path, interval_s: float, skip: str
) -> Iterator[tuple[np.ndarray, int, int, float]]:
    """(small RGB image, displayed width and height, time) of the first decoded frame in each
    `interval_s`; the decoder skips `skip` frames ('NONKEY' or 'NONREF')."""
    import av

    try:
        container = av.open(str(video), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"cannot open {video}: {exc}") from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.skip_frame = skip
        period = 1.0 / float(stream.average_rate or 25)
        next_time = -np.inf
        try:
            for index, frame in enumerate(container.decode(stream)):
                time = frame.time if frame.time is not None else index * period
                if time < next_time:
                    continue
                next_time = time + interval_s
                rotation = int(getattr(frame, "rotation", 0) or 0) % 360
                scale = min(1.0, SAMPLE_MAX_SIDE / max(frame.width, frame.height))
                image = frame.to_ndarray(
                    format="rgb24",
                    width=max(1, round(frame.width * scale)),
                    height=max(1, round(frame.height * scale)),
                )
                width, height = frame.width, frame.height
                if rotation:
                    image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
                    if rotation in (90, 270):
                        width, height = height, width
                yield image, width, height, time
        except av.error.FFmpegError as exc:
            raise InputError(f"{video}: decoding stopped while sampling faces ({exc})") from None
