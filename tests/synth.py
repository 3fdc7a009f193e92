"""Small synthetic media written with PyAV for edge cases (real clips come from ../shared/data)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_square_frames(n: int, size: int = 64) -> list[np.ndarray]:
    """Frames whose content encodes their index: a bright square walking across a dark field."""
    frames = []
    for i in range(n):
        image = np.full((size, size, 3), 30, np.uint8)
        x = (i * 3) % (size - 16)
        image[20:36, x : x + 16] = (40 + 7 * i) % 256
        frames.append(image)
    return frames


def write_video(
    path: Path,
    frames: list[np.ndarray],
    fps: int = 25,
    times: list[float] | None = None,
    audio: np.ndarray | None = None,
    audio_rate: int = 16000,
    container_format: str | None = None,
) -> Path:
    """Write BGR frames (optionally at explicit times in seconds) and mono float audio."""
    with av.open(str(path), "w", format=container_format) as container:
        h, w = frames[0].shape[:2] if frames else (64, 64)
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "10"}
        time_base = Fraction(1, 1000 * fps)
        stream.codec_context.time_base = time_base
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac", rate=audio_rate)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            seconds = times[i] if times is not None else i / fps
            frame.pts = int(round(seconds / time_base))
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if audio_stream is not None:
            frame_size = 1024
            for start in range(0, len(audio), frame_size):
                chunk = audio[start : start + frame_size].astype(np.float32)[None, :]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate = audio_rate
                frame.pts = start
                for packet in audio_stream.encode(frame):
                    container.mux(packet)
            for packet in audio_stream.encode(None):
                container.mux(packet)
    return path
