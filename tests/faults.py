"""Faults injected into real clips, for the sync and screening tests and benchmarks: audio shifted
by whole frames, and spans of blur, black and a cut to another clip's shot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

from talkprep.io.audio import SAMPLE_RATE, read_wav, write_wav

BLUR_SIGMA = 4.0
"""Gaussian blur of the blurred span (pixels at the clip's size)."""


def shifted_wav(source: Path, target: Path, frames: int, fps: float = 25.0) -> Path:
    """Write `target`: 16 kHz mono `source` (a talkprep aud.wav) moved `frames` frames later
    (earlier when negative), same length: silence fills the gap, the other end is cut."""
    samples, rate = read_wav(source)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{source} is not {SAMPLE_RATE} Hz")
    k = int(round(frames * rate / fps))
    moved = np.zeros_like(samples)
    if k >= 0:
        moved[k:] = samples[: len(samples) - k]
    else:
        moved[:k] = samples[-k:]
    write_wav(target, moved, rate)
    return target


def _frames(path: Path, size: tuple[int, int]) -> Iterator[np.ndarray]:
    with av.open(str(path)) as clip:
        for frame in clip.decode(video=0):
            image = frame.to_ndarray(format="bgr24")
            if image.shape[1::-1] != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            yield image


def fault_clip(
    source: Path, other: Path, target: Path, spans: dict[str, tuple[int, int]]
) -> tuple[Path, int, float]:
    """Write `target` (H.264, no audio): `source`'s frames with `spans` {kind: (first, stop)} of
    kind 'blur' (Gaussian, BLUR_SIGMA), 'black', or 'cut' (frames of `other` instead).

    Returns:
        (target, number of frames, frame rate). Frame k of the output, at k / rate seconds, is
        frame k of `source`.
    """
    with av.open(str(source)) as probe:
        stream = probe.streams.video[0]
        rate, size = stream.average_rate, (stream.width, stream.height)
    others = _frames(other, size)
    count = 0
    with av.open(str(target), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.options = {"crf": "18", "preset": "veryfast"}
        for k, image in enumerate(_frames(source, size)):
            kind = next((name for name, (a, b) in spans.items() if a <= k < b), None)
            if kind == "blur":
                image = cv2.GaussianBlur(image, (0, 0), BLUR_SIGMA)
            elif kind == "black":
                image = np.zeros_like(image)
            elif kind == "cut":
                image = next(others)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            out.mux(video.encode(frame))
            count += 1
        out.mux(video.encode(None))
    return target, count, float(rate)


def dataset_frames(spans: dict[str, tuple[int, int]], rate: float, n: int) -> dict[str, list[int]]:
    """Dataset frames (at 25 fps, picked by presentation time) that show each span's frames."""
    shown = np.floor(np.arange(n) * rate / 25.0 + 1e-6).astype(int)
    return {k: np.flatnonzero((shown >= a) & (shown < b)).tolist() for k, (a, b) in spans.items()}
