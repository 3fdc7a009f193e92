"""Audio decoding (PyAV: downmix and resample in FFmpeg's swresample) and 16-bit WAV I/O."""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from talkprep.errors import InputError
from talkprep.io.atomic import atomic_path
from talkprep.io.video import local_url

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class AudioTrack:
    """Mono float32 samples in [-1, 1] at `rate` Hz, the first sample at `start` seconds."""

    samples: np.ndarray
    rate: int
    start: float
    source_rate: int
    source_channels: int
    codec: str
    tracks: int = 1
    """Audio streams in the file (the first is the one decoded)."""

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


def decode_audio(path: str | Path, rate: int = SAMPLE_RATE) -> AudioTrack:
    """Decode the first audio stream of `path`, downmixed to mono and resampled to `rate`.

    Raises InputError when the file is missing, unreadable or has no audio stream.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        container = av.open(local_url(path), mode="r")
    except av.error.FFmpegError:
        raise InputError(f"{path} is not a readable audio or video file") from None
    with container:
        if not container.streams.audio:
            raise InputError(f"{path} has no audio track")
        stream = container.streams.audio[0]
        tracks = len(container.streams.audio)
        origin = min(
            (
                float(s.start_time * s.time_base)
                for s in container.streams
                if s.start_time is not None
            ),
            default=0.0,
        )
        start = (
            float(stream.start_time * stream.time_base) - origin
            if stream.start_time is not None
            else 0.0
        )
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: audio decoding failed ({exc})") from None
        codec = stream.codec_context
        source_rate = int(codec.sample_rate or 0)
        channels = int(getattr(codec, "channels", 0) or codec.layout.nb_channels)
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise InputError(f"{path}: its audio track holds no samples")
    return AudioTrack(
        samples=np.clip(samples, -1.0, 1.0),
        rate=rate,
        start=start,
        source_rate=source_rate,
        source_channels=channels,
        codec=codec.name,
        tracks=tracks,
    )


def fit_to_span(samples: np.ndarray, rate: int, start: float, span: float) -> np.ndarray:
    """Place samples starting at `start` seconds on a timeline [0, span): pad with silence, trim."""
    n_out = int(round(span * rate))
    offset = int(round(start * rate))
    out = np.zeros(n_out, dtype=samples.dtype)
    src_lo = max(0, -offset)
    dst_lo = max(0, offset)
    count = max(0, min(len(samples) - src_lo, n_out - dst_lo))
    out[dst_lo : dst_lo + count] = samples[src_lo : src_lo + count]
    return out


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write mono float samples as 16-bit PCM WAV, atomically: the inverse of read_wav (k / 32768
    back to k), so a 16-bit source's samples, full-scale ones included, keep their values."""
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM mono WAV as float32 in [-1, 1]; returns (samples, rate)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(
                f"{path}: expected 16-bit mono PCM, got {8 * wav.getsampwidth()}-bit "
                f"{wav.getnchannels()}-channel"
            )
        rate = wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0, rate


def probe_audio(path: str | Path) -> None:
    """Check that `path` holds a decodable audio stream; raise InputError saying why not."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"--audio: {path} does not exist"
            if not path.exists()
            else f"--audio: {path} is not a file"
        )
    try:
        with av.open(local_url(path), mode="r") as container:
            if not container.streams.audio:
                raise InputError(f"--audio: {path} has no audio track")
            for _ in container.decode(container.streams.audio[0]):
                return
    except av.error.FFmpegError:
        raise InputError(f"--audio: {path} is not a readable audio file") from None
    raise InputError(f"--audio: {path} holds no audio samples")
