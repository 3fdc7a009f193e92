"""Video probing and decoding with PyAV (FFmpeg inside the wheel; no ffmpeg binary is called).

All times are seconds from the container's origin (the earliest stream start), so audio and video
share one clock: a video whose first frame is at 33 ms and whose audio starts at 0 keeps that
offset.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from talkprep.errors import InputError

Seconds = float
TIME_EPS = 1e-9
"""Timestamps closer than this count as equal (float rounding of rational times)."""


@dataclass(frozen=True)
class VideoInfo:
    """Facts about an input video, as recorded in the manifest."""

    path: Path
    width: int
    height: int
    codec: str
    nominal_fps: float | None
    """The stream's declared frame rate; variable-rate videos may not follow it."""
    average_fps: float | None
    frame_count: int | None
    """Frames declared by the container (None when unknown)."""
    video_start: Seconds
    """First video timestamp relative to the origin."""
    duration: Seconds
    """End of the video stream relative to the origin."""
    has_audio: bool
    audio_start: Seconds | None
    audio_codec: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "nominal_fps": self.nominal_fps,
            "average_fps": self.average_fps,
            "frame_count": self.frame_count,
            "video_start_s": round(self.video_start, 6),
            "duration_s": round(self.duration, 6),
            "has_audio": self.has_audio,
            "audio_start_s": None if self.audio_start is None else round(self.audio_start, 6),
            "audio_codec": self.audio_codec,
        }


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded source frame: its index in decode order, its start time and BGR pixels."""

    index: int
    time: Seconds
    image: np.ndarray


def local_url(path: str | os.PathLike[str]) -> str:
    """FFmpeg's name for a local file: never read as a protocol or URL ('http:x', 'clip:1.mp4')."""
    return "file:" + os.path.abspath(path)


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a video file")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes); give a video file")
    try:
        return av.open(local_url(path), mode="r")
    except av.error.EOFError:
        raise InputError(
            f"{path} ends before its header does: the file is cut short; "
            "re-export or re-download it"
        ) from None
    except av.error.InvalidDataError:
        raise InputError(
            f"{path} is not a readable video (unknown format, or the file is truncated or corrupt)"
        ) from None
    except av.error.FFmpegError as exc:
        raise InputError(
            f"{path} cannot be read as a video ({_ffmpeg_reason(exc)}); the file may be cut "
            "short or damaged: re-export or re-download it"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror or exc}") from None


def _ffmpeg_reason(exc: av.error.FFmpegError) -> str:
    """FFmpeg's own words without its error number ('[Errno 541478725] End of file')."""
    return (getattr(exc, "strerror", None) or str(exc)).rstrip(".").lower()


def _is_still_image(container: av.container.InputContainer) -> bool:
    """Image demuxers (a .jpg, or the same bytes named .mp4) hold one picture, not a video."""
    name = container.format.name or ""
    return name == "image2" or name.endswith("_pipe")


def _origin(container: av.container.InputContainer) -> Seconds:
    starts = [
        float(s.start_time * s.time_base)
        for s in container.streams
        if s.start_time is not None and s.time_base is not None
    ]
    return min(starts) if starts else 0.0


def _rate(value: Fraction | None) -> float | None:
    return float(value) if value else None


def probe_video(path: str | Path) -> VideoInfo:
    """Open `path`, check that it holds decodable video from start to end, and describe it.

    Raises InputError (one line, what to do) for a missing path, a directory, a file that is not
    a video, an audio-only file, a video without frames, or one truncated before its declared end.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            kind = "an audio-only file" if container.streams.audio else "not a video"
            raise InputError(f"{path} is {kind}: it has no video stream")
        if _is_still_image(container):
            raise InputError(f"{path} is a still image, not a video; give a video file")
        stream = container.streams.video[0]
        origin = _origin(container)
        tb = stream.time_base
        start = float(stream.start_time * tb) - origin if stream.start_time is not None else 0.0
        if stream.duration is not None and stream.duration > 0:
            end = start + float(stream.duration * tb)
        elif container.duration:
            end = container.duration / av.time_base
        else:
            end = math.nan
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_start = None
        if audio is not None:
            audio_start = (
                float(audio.start_time * audio.time_base) - origin
                if audio.start_time is not None
                else 0.0
            )
        first = _first_frame(container, stream, path)
        width, height = _display_size(first)
        info = VideoInfo(
            path=path,
            width=width,
            height=height,
            codec=stream.codec_context.name,
            nominal_fps=_rate(stream.base_rate) or _rate(stream.guessed_rate),
            average_fps=_rate(stream.average_rate),
            frame_count=stream.frames or None,
            video_start=start,
            duration=end,
            has_audio=audio is not None,
            audio_start=audio_start,
            audio_codec=audio.codec_context.name if audio is not None else None,
        )
    if not math.isfinite(info.duration):
        info = _with_decoded_duration(info)
    else:
        _check_tail(path, info)
    return info


def _first_frame(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise InputError(
            f"{path}: cannot decode its first video frame ({_ffmpeg_reason(exc)})"
        ) from None
    raise InputError(f"{path} has a video stream with no frames")


def _display_size(frame: av.VideoFrame) -> tuple[int, int]:
    if getattr(frame, "rotation", 0) in (90, -90, 270, -270):
        return frame.height, frame.width
    return frame.width, frame.height


def _check_tail(path: Path, info: VideoInfo) -> None:
    """Seek near the declared end and decode: a file cut short fails here, before any work."""
    target = max(info.video_start, info.duration - 1.0)
    with _open(path) as container:
        stream = container.streams.video[0]
        origin = _origin(container)
        try:
            container.seek(int((target + origin) / stream.time_base), stream=stream, backward=True)
            last = None
            for frame in container.decode(stream):
                last = frame
        except av.error.FFmpegError:
            last = None
        reached = (
            None if last is None or last.pts is None else float(last.pts * last.time_base) - origin
        )
    if reached is None:
        reached = _last_packet_time(path)
    if reached is None or reached < info.duration - max(2.0, 0.1 * info.duration):
        where = (
            "before its first second" if reached is None or reached < 1 else f"at {reached:.2f} s"
        )
        raise InputError(
            f"{path} is cut short: it declares {info.duration:.2f} s of video but its data ends "
            f"{where}; re-export or re-download it"
        )


def _last_packet_time(path: Path) -> Seconds | None:
    """Where the video packets that are really in the file end (demuxing only, no decoding)."""
    last = None
    with _open(path) as container:
        stream = container.streams.video[0]
        origin = _origin(container)
        try:
            for packet in container.demux(stream):
                if packet.pts is not None:
                    time = float(packet.pts * packet.time_base) - origin
                    last = time if last is None else max(last, time)
        except av.error.FFmpegError:
            pass
    return last


def _with_decoded_duration(info: VideoInfo) -> VideoInfo:
    """For containers that declare no duration: decode once to find where the frames end."""
    end = None
    for frame in iter_frames(info.path):
        end = frame.time
    if end is None:
        raise InputError(f"{info.path} has a video stream with no frames")
    period = 1.0 / (info.average_fps or info.nominal_fps or 25.0)
    return dataclasses.replace(info, duration=end + period)


def count_video_packets(path: str | Path) -> int:
    """Packets of the first video stream (one per frame), demuxed without decoding: a stream's
    length in frames when the container does not say it."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except av.error.FFmpegError as exc:
            raise InputError(f"{path} cannot be read to its end ({exc}); re-export it") from None


def iter_frames(path: str | Path) -> Iterator[DecodedFrame]:
    """Decode every video frame once, in presentation order, as BGR arrays.

    Frame times come from presentation timestamps (never from an assumed frame rate), so variable
    frame rate input keeps its real timing. Raises InputError when decoding breaks off.
    """
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        origin = _origin(container)
        previous = -math.inf
        index = 0
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    time = previous + 1.0 / float(stream.average_rate or 25)
                else:
                    time = float(frame.pts * frame.time_base) - origin
                if time <= previous:  # duplicate or out-of-order timestamp: keep the first
                    continue
                previous = time
                image = frame.to_ndarray(format="bgr24")
                rotation = getattr(frame, "rotation", 0) or 0
                if rotation:
                    image = np.ascontiguousarray(np.rot90(image, k=int(rotation) // 90))
                yield DecodedFrame(index=index, time=time, image=image)
                index += 1
        except av.error.FFmpegError as exc:
            raise InputError(
                f"{path}: decoding stopped at frame {index} ({_ffmpeg_reason(exc)})"
            ) from None


def output_frame_count(duration: Seconds, fps: Fraction) -> int:
    """Frames of a dataset at `fps` covering `duration` seconds from the origin: round(d * fps)."""
    return max(1, int(math.floor(duration * fps + Fraction(1, 2))))


def resample_by_time(
    frames: Iterator[DecodedFrame], fps: Fraction, n_out: int
) -> Iterator[tuple[int, DecodedFrame]]:
    """Pick, for each output time i / fps, the source frame shown nearest to it.

    Output i takes the last source frame that starts before i/fps + half an output period, which
    is FFmpeg's fps filter (source times rounded half up to the output grid). Output times before
    the first source frame repeat it; those past the last repeat the last. Holds one frame.
    """
    half = Fraction(1, 2) / fps
    out_index = 0
    current: DecodedFrame | None = None
    for frame in frames:
        if current is not None:
            while out_index < n_out and frame.time >= float(out_index / fps + half) - TIME_EPS:
                yield out_index, current
                out_index += 1
        current = frame
        if out_index >= n_out:
            return
    if current is None:
        return
    while out_index < n_out:
        yield out_index, current
        out_index += 1
