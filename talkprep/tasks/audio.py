"""Task 1: the audio track as aud.wav, 16 kHz mono 16-bit PCM, on the video's clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from talkprep.config import Config
from talkprep.errors import InputError, TaskError
from talkprep.io.audio import SAMPLE_RATE, decode_audio, fit_to_span, read_wav, write_wav
from talkprep.report.quality import THRESHOLDS, clipped_share
from talkprep.sync import QUIET_SPEECH_DBFS, frame_levels, speech_level
from talkprep.tasks.base import CheckResult, FolderFacts, Task, TaskContext, TaskResult

WAV_NAME = "aud.wav"
NO_AUDIO_TRACK = "has no audio track"
"""How task 1 says that the video has no sound (check then offers no rerun)."""
CLIPPED = THRESHOLDS["clipped_share"]
"""The report's grading of the clipped share (percent): task 1 warns from its amber limit, and
from its red limit asks for a quieter recording; below amber a peak or two is not worth a word."""
LEVEL_RATE = 25
"""Speech level is measured over windows of 1 / LEVEL_RATE s."""


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
                    f"{source.name} {NO_AUDIO_TRACK}; give one with --audio PATH "
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
        written, _ = read_wav(ctx.out / WAV_NAME)  # clipping as the report measures it: the PCM
        clipped_percent = clipped_share(written)
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
            "clipped_share": round(clipped_percent / 100.0, 8),
            "speech_level_dbfs": round(speech_level_dbfs(samples), 2),
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
        elif result.figures["speech_level_dbfs"] < QUIET_SPEECH_DBFS:
            result.warnings.append(
                f"speech is very quiet ({result.figures['speech_level_dbfs']:.0f} dBFS at its "
                f"loudest, want above {QUIET_SPEECH_DBFS:.0f}): the audio features will be mostly "
                "noise; normalise the track or record closer to the microphone"
            )
        if CLIPPED.grade(clipped_percent) != "green":
            effect = (
                "loud syllables are flattened (record at a lower level if you can)"
                if CLIPPED.grade(clipped_percent) == "red"
                else "a few isolated peaks"
            )
            result.warnings.append(
                f"audio is clipped: {clipped_percent:.3g}% of the samples are at full scale "
                f"(the report's limits: {CLIPPED.stated()}); {effect}"
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


def speech_level_dbfs(samples: np.ndarray) -> float:
    """The loud end of the speech: the 95th percentile of 40 ms levels (dBFS)."""
    n = len(samples) // (SAMPLE_RATE // LEVEL_RATE)
    return speech_level(frame_levels(samples, SAMPLE_RATE, LEVEL_RATE, n)) if n else -120.0


def _rms_db(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    return 20.0 * np.log10(max(rms, 1e-10))
