"""`talkprep preview OUT`: an H.264 + AAC MP4 to check lip sync and masks by eye and ear.

Each video frame is dataset frame i with its class map outline, 68 points and pose axes, beside
its gt image (or torso image, when there is no gt); the audio is aud.wav. The video has exactly
the dataset's N frames at the dataset's fps and the audio lasts N / fps seconds, so what is
seen and heard is what a trainer pairs. Frames are streamed one at a time and the file is
written to a temporary name and renamed, so a killed run leaves no half preview.
"""

from __future__ import annotations

import contextlib
import time
import wave
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from talkprep.errors import InputError, OutputError
from talkprep.io.atomic import atomic_path
from talkprep.io.images import frame_indices
from talkprep.io.prefetch import read_ahead
from talkprep.manifest import read_manifest
from talkprep.report.frames import FolderView

PREVIEW_NAME = "preview.mp4"
PREVIEW_TITLE = "talkprep preview"
"""Stored as the MP4's title: marks a file as talkprep's own, so a rerun may replace it."""
PANEL_SIDE = 512
"""Longer side of each of the two panels, in pixels."""
VIDEO_CODEC = "libx264"
AUDIO_CODEC = "aac"
VIDEO_OPTIONS = {"crf": "26", "preset": "superfast"}
AUDIO_BIT_RATE = 64_000
DEFAULT_FPS = Fraction(25)

Progress = Callable[..., Iterable[Any]]


@dataclass(frozen=True)
class PreviewResult:
    """What was written: the file, its frame count and rate, audio length and wall time."""

    path: Path
    frames: int
    fps: Fraction
    audio_s: float
    wall_s: float


def _no_progress(items: Iterable[Any], **_: Any) -> Iterable[Any]:
    return items


def dataset_fps(manifest: dict[str, Any]) -> Fraction:
    """The dataset's exact frame rate from the manifest (25 when there is none)."""
    info = manifest.get("tasks", {}).get("frames", {}).get("info", {})
    for key in ("fps_fraction", "fps"):
        value = info.get(key) if isinstance(info, dict) else None
        try:
            fps = Fraction(str(value)).limit_denominator(100_000)
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if fps > 0:
            return fps
    return DEFAULT_FPS


def _check_owned(path: Path) -> None:
    """Refuse to replace a file at `path` that talkprep did not write."""
    if not path.exists():
        return
    try:
        with av.open(str(path)) as container:
            title = container.metadata.get("title", "")
    except (av.error.FFmpegError, OSError):
        title = ""
    if title != PREVIEW_TITLE:
        raise OutputError(f"{path} exists and was not written by talkprep; choose another -o")


def _even(value: int) -> int:
    return value + value % 2


def side_by_side(left: np.ndarray, right: np.ndarray | None) -> np.ndarray:
    """The two panels on one canvas of even size (H.264 with 4:2:0 needs even sides)."""
    panels = [left] if right is None else [left, right]
    height = _even(max(p.shape[0] for p in panels))
    width = _even(sum(p.shape[1] for p in panels))
    canvas = np.zeros((height, width, 3), np.uint8)
    x = 0
    for panel in panels:
        canvas[: panel.shape[0], x : x + panel.shape[1]] = panel
        x += panel.shape[1]
    return canvas


def _compose(view: FolderView, index: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Frame `index` with overlays beside its gt (or torso) image, resized to `size` (w, h) when
    given, so a folder whose gt images stop part-way still gives one video size."""
    left = view.frame(index, PANEL_SIDE)
    right = view.gt(index, PANEL_SIDE)
    if right is None:
        right = view.torso(index, PANEL_SIDE)
    canvas = side_by_side(left, right)
    if size is not None and (canvas.shape[1], canvas.shape[0]) != size:
        canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
    return canvas


def audio_chunks(path: Path | None, rate: int, ends: np.ndarray) -> Iterator[np.ndarray]:
    """int16 mono chunks of aud.wav ending at the sample indices `ends` (silence past its end).

    Reads the file as it goes: memory holds one chunk.
    """
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(wave.open(str(path), "rb")) if path is not None else None
        start = 0
        for end in ends:
            count = int(end) - start
            chunk = np.zeros(count, np.int16)
            if handle is not None and count > 0:
                data = np.frombuffer(handle.readframes(count), dtype="<i2")
                chunk[: len(data)] = data
            start = int(end)
            yield chunk


def sample_ends(n: int, fps: Fraction, rate: int) -> np.ndarray:
    """Audio sample index where each of n frames ends, exactly round((i + 1) * rate / fps)."""
    i = np.arange(1, n + 1, dtype=np.int64)
    num, den = fps.numerator, fps.denominator
    return (2 * i * rate * den + num) // (2 * num)


def _wav(root: Path) -> tuple[Path | None, int]:
    path = root / "aud.wav"
    if not path.is_file():
        return None, 16_000
    try:
        with wave.open(str(path), "rb") as handle:
            if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
                raise InputError(f"{path} is not 16-bit mono PCM; rerun task 1 (--tasks 1 --force)")
            return path, handle.getframerate()
    except (wave.Error, EOFError) as exc:
        raise InputError(f"{path} is not a readable WAV ({exc}); rerun task 1") from None


def write_preview(
    root: Path, path: Path | None = None, progress: Progress = _no_progress
) -> PreviewResult:
    """Write the preview MP4 of dataset folder `root` (default root/preview.mp4).

    Raises:
        InputError: the folder has no frames, or its aud.wav is unreadable.
        OutputError: `path` exists and is not a talkprep preview.
    """
    started = time.perf_counter()
    n = len(frame_indices(root / "ori_imgs", ".jpg"))
    if n == 0:
        raise InputError(f"{root} has no ori_imgs/{{i}}.jpg; run talkprep process on it first")
    path = path if path is not None else root / PREVIEW_NAME
    _check_owned(path)
    fps = dataset_fps(read_manifest(root))
    view = FolderView(root, float(fps))
    wav_path, rate = _wav(root)
    ends = sample_ends(n, fps, rate)
    first = _compose(view, 0)
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        container.metadata["title"] = PREVIEW_TITLE
        video = container.add_stream(VIDEO_CODEC, rate=fps, options=VIDEO_OPTIONS)
        video.width, video.height = first.shape[1], first.shape[0]
        video.pix_fmt = "yuv420p"
        audio = container.add_stream(AUDIO_CODEC, rate=rate, layout="mono")
        audio.bit_rate = AUDIO_BIT_RATE
        _encode(container, video, audio, view, n, audio_chunks(wav_path, rate, ends), progress)
    return PreviewResult(path, n, fps, float(ends[-1]) / rate, time.perf_counter() - started)


def _encode(
    container: Any,
    video: Any,
    audio: Any,
    view: FolderView,
    n: int,
    chunks: Iterator[np.ndarray],
    progress: Progress,
) -> None:
    """Interleave each frame with its audio chunk, so players never wait on either stream."""
    samples = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        size = (video.width, video.height)
        frames = read_ahead(pool, lambda i: _compose(view, i, size), range(n))
        for index, (image, chunk) in enumerate(
            progress(zip(frames, chunks, strict=True), total=n, desc="preview", unit="frame")
        ):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            container.mux(video.encode(frame))
            if chunk.size:
                sound = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
                sound.sample_rate = audio.rate
                sound.pts = samples
                samples += chunk.size
                container.mux(audio.encode(sound))
    container.mux(video.encode(None))
    container.mux(audio.encode(None))
