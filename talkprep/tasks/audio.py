"""Task 1: the audio track as aud.wav, 16 kHz mono 16-bit PCM, on the video's clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from talkprep.config import Config
from talkprep.errors import InputError, TaskError
from talkprep.io.audio import SAMPLE_RATE, decode_audio, fit_to_span, read_wav, write_wav
from talkprep.tasks.base import CheckResult, FolderFacts, Task, TaskContext, TaskResult

WAV_NAME = "aud.wav"
FULL_SCALE = 0.999
"""Samples at or beyond this magnitude are at full scale: the recording clipped there."""
CLIPPED_SHARE_TO_FIX = 0.001
"""From this clipped share (one sample in a thousand) the warning asks for a quieter recording;
below it the clipping is a few isolated peaks."""


class AudioTask(Task):
    number = 1
    name = "audio"
    title = "audio track -> aud.wav"
    makes = (WAV_NAME,)
    reads_video = True
    config_fields = ("audio",)

    def input_files(self, config: Config) -> list[Path]:
        return [config.audio] if config.audio is not None else []

    def run(self, ctx: TaskContext) -> TaskResult:
        source = ctx.config.audio or ctx.config.video
        try:
            track = decode_audio(source)
        except InputError as exc:
            if ctx.config.audio is None and not ctx.input.get("has_audio"):
                raise TaskError(
                    f"{source.name} has no audio track; give one with --audio PATH "
                    "(the video tasks still run)"
                ) from None
            raise TaskError(str(exc)) from None
        if track.tracks > 1:
            ctx.warn(
                f"{source.name} has {track.tracks} audio tracks; the first is used (give another "
                "with --audio PATH)"
            )
        # An external file starts with the video; the video's own track keeps its container offset.
        start = 0.0 if ctx.config.audio is not None else track.start
        video_start = float(ctx.input["video_start_s"])
        span = float(ctx.input["duration_s"])
        samples = fit_to_span(track.samples, SAMPLE_RATE, start, span)
        write_wav(ctx.out / WAV_NAME, samples, SAMPLE_RATE)
        offset = start - video_start
        info = {
            "source": str(source),
            "codec": track.codec,
            "source_rate": track.source_rate,
            "source_channels": track.source_channels,
            "sample_rate": SAMPLE_RATE,
            "samples": int(len(samples)),
            "duration_s": round(len(samples) / SAMPLE_RATE, 6),
            "source_duration_s": round(track.duration, 6),
            "audio_minus_video_start_s": round(offset, 6),
        }
        result = TaskResult(frames=None, info=info)
        result.figures = {
            "duration_s": info["duration_s"],
            "peak": round(float(np.abs(samples).max(initial=0.0)), 4),
            "rms_db": round(_rms_db(samples), 2),
            "padded_or_trimmed_s": round(span - track.duration - start, 4),
            "clipped_share": round(clipped_share(samples), 6),
        }
        if abs(offset) > 1e-3:
            result.warnings.append(
                f"audio starts {offset * 1000:+.0f} ms relative to the first video frame; "
                "aud.wav is placed on the video's clock"
            )
        gap = span - (start + track.duration)
        if abs(gap) > 0.5:
            verb = "padded with silence" if gap > 0 else "trimmed"
            result.warnings.append(
                f"audio is {abs(gap):.2f} s {'shorter' if gap > 0 else 'longer'} than the video; "
                f"{verb}"
            )
        if result.figures["peak"] < 1e-4:
            result.warnings.append("audio is silent")
        if result.figures["peak"] >= FULL_SCALE:
            share = result.figures["clipped_share"]
            effect = (
                "loud syllables are flattened (record at a lower level if you can)"
                if share >= CLIPPED_SHARE_TO_FIX
                else "a few isolated peaks"
            )
            result.warnings.append(
                f"audio is clipped: {share:.2%} of the samples are at full scale; {effect}"
            )
        return result

    def check(self, facts: FolderFacts) -> list[CheckResult]:
        path = facts.root / WAV_NAME
        if not path.exists():
            return []
        try:
            samples, rate = read_wav(path)
        except (ValueError, EOFError, OSError) as exc:
            return [CheckResult(WAV_NAME, 1, f"not a 16-bit mono PCM WAV ({exc})")]
        if rate != SAMPLE_RATE:
            return [CheckResult(WAV_NAME, 1, f"sample rate {rate} Hz; expected {SAMPLE_RATE}")]
        fps = facts.fps
        if facts.n_frames is not None:
            seconds = len(samples) / rate
            expected = facts.n_frames / fps
            if abs(seconds - expected) > 1.0 / fps + 1e-6:
                return [
                    CheckResult(
                        WAV_NAME,
                        1,
                        f"{seconds:.3f} s of audio for {facts.n_frames} frames ({expected:.3f} s)",
                    )
                ]
        return [CheckResult(WAV_NAME, 1)]


def clipped_share(samples: np.ndarray) -> float:
    """Fraction of samples at full scale (0 for empty audio)."""
    if len(samples) == 0:
        return 0.0
    return float(np.count_nonzero(np.abs(samples) >= FULL_SCALE)) / len(samples)


def _rms_db(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    return 20.0 * np.log10(max(rms, 1e-10))
