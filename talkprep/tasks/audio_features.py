"""Task 2: per-frame audio features from aud.wav (HuBERT by default; mel, wav2vec2, DeepSpeech).

N comes from the input's duration and --fps exactly as task 3 computes it, so tasks 1-2 run
without decoding any video frame.

HuBERT follows ER-NeRF's data_utils/hubert.py step for step. The CTC logits (wav2vec2,
DeepSpeech-compatible) come from the same whole-clip, 20 s-chunk procedure; RAD-NeRF's own
nerf/asr.py streams 1.4 s windows, each normalised alone, so its logits differ slightly in value
(not in alignment). Their windows match RAD-NeRF's F.unfold and the DeepSpeech script's loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from talkprep.audio_math import (
    DEEPSPEECH_CLASSES,
    MEL_BINS,
    PAIR_RATE,
    SAMPLE_RATE,
    STEP_RATE,
    STEPS_PER_FRAME,
    WINDOW_STEPS,
    Chunk,
    deepspeech_steps,
    deepspeech_window_count,
    encoder_steps,
    fit_steps_edge,
    log_mel,
    paired_shape,
    rad_nerf_window_count,
    window_steps,
)
from talkprep.config import Config
from talkprep.errors import TaskError
from talkprep.io.atomic import npy_rows, write_npy
from talkprep.io.audio import read_wav
from talkprep.io.video import output_frame_count
from talkprep.tasks.audio import WAV_NAME
from talkprep.tasks.base import CheckResult, FolderFacts, Task, TaskContext, TaskResult

if TYPE_CHECKING:
    from talkprep.models.audio_encoders import ModelSource

REFERENCE_FPS = 25
"""The NeRF trainers index the 25 Hz feature rows by frame number, i.e. they assume 25 fps."""
FRAME_TOLERANCE = 1
"""Feature rows may cover one frame more or less than N (ER-NeRF's HuBERT gives N - 1)."""


@dataclass(frozen=True)
class Feature:
    """One selectable feature: its file, row rate and the shape of one row."""

    name: str
    file: str
    rate_hz: float
    row_shape: tuple[int | None, ...]
    """Shape after the first axis; None where the model decides (hidden size, classes)."""
    option: str | None
    """Command-line option naming its model (None for mel)."""


FEATURES: dict[str, Feature] = {
    "hubert": Feature("hubert", "aud_hu.npy", PAIR_RATE, (STEPS_PER_FRAME, None), "--hubert-model"),
    "mel": Feature("mel", "aud_mel.npy", STEP_RATE, (MEL_BINS,), None),
    "wav2vec2": Feature(
        "wav2vec2", "aud_eo.npy", PAIR_RATE, (WINDOW_STEPS, None), "--wav2vec2-model"
    ),
    "deepspeech": Feature(
        "deepspeech",
        "aud_ds.npy",
        PAIR_RATE,
        (WINDOW_STEPS, DEEPSPEECH_CLASSES),
        "--deepspeech-model",
    ),
}


def model_spec(config: Config, feature: str) -> str | None:
    """The model id or folder a feature uses under this config (None for mel)."""
    if feature == "hubert":
        return config.hubert_model
    if feature == "wav2vec2":
        return config.wav2vec2_model
    if feature == "deepspeech":
        return str(config.deepspeech_model) if config.deepspeech_model is not None else None
    return None


def dataset_frames(duration_s: float, fps: float) -> int:
    """N as task 3 computes it: round(duration * fps) at the same rational fps."""
    return output_frame_count(duration_s, Fraction(fps).limit_denominator(1001))


def frames_covered(rows: int, rate_hz: float, fps: float) -> int:
    """How many dataset frames the time spanned by `rows` feature rows holds, to the nearest."""
    return int(math.floor(rows * fps / rate_hz + 0.5))


class AudioFeaturesTask(Task):
    number = 2
    name = "audio_features"
    title = "audio features"
    needs = ("audio",)
    makes = ("aud_hu.npy",)
    config_fields = ("audio_features", "hubert_model", "wav2vec2_model", "deepspeech_model", "fps")

    def outputs(self, config: Config) -> tuple[str, ...]:
        return tuple(FEATURES[name].file for name in config.audio_features)

    def heading(self, config: Config) -> str:
        return f"audio features -> {', '.join(self.outputs(config))}"

    def input_files(self, config: Config) -> list[Path]:
        """Local model folders, so that replacing the weights reruns the task."""
        folders = []
        for name in config.audio_features:
            spec = model_spec(config, name)
            if spec is not None and Path(spec).expanduser().is_dir():
                folders.append(Path(spec).expanduser())
        return folders

    def run(self, ctx: TaskContext) -> TaskResult:
        from talkprep.models.audio_encoders import resolve_model

        config = ctx.config
        samples = _read_audio(ctx.out / WAV_NAME)
        n_frames = dataset_frames(float(ctx.input["duration_s"]), config.fps)
        # Resolve every model before computing anything: a missing one fails in seconds.
        sources = {
            name: resolve_model(spec, FEATURES[name].option or name, config.offline)
            for name in config.audio_features
            if (spec := model_spec(config, name)) is not None
        }
        result = TaskResult(frames=n_frames)
        result.info = {"n_frames": n_frames, "samples": int(len(samples)), "features": {}}
        result.figures = {"n_frames": n_frames}
        if config.fps != REFERENCE_FPS:
            result.warnings.append(
                f"--fps {config.fps:g}: the NeRF trainers read the 25 Hz audio rows by frame "
                "number, which assumes 25 fps; audio and frames will drift apart"
            )
        for name in config.audio_features:
            feature = FEATURES[name]
            t0 = time.perf_counter()
            source = sources.get(name)
            shape = self._write(ctx, name, samples, source, ctx.out / feature.file)
            wall = time.perf_counter() - t0
            covered = frames_covered(shape[0], feature.rate_hz, config.fps)
            record: dict[str, Any] = {
                "file": feature.file,
                "model": source.spec if source else None,
                "revision": source.revision if source else None,
                "shape": list(shape),
                "dtype": "float32",
                "rate_hz": feature.rate_hz,
                "frames_covered": covered,
                "n_frames": n_frames,
                "wall_s": round(wall, 3),
            }
            if name != "mel":
                record["device"] = ctx.device
            result.info["features"][name] = record
            result.figures[f"{name}_shape"] = list(shape)
            result.figures[f"{name}_frames_minus_n"] = covered - n_frames
            result.figures[f"{name}_s_per_audio_min"] = round(
                wall / max(len(samples) / SAMPLE_RATE / 60.0, 1e-9), 3
            )
            if abs(covered - n_frames) > FRAME_TOLERANCE:
                result.warnings.append(
                    f"{feature.file} covers {covered} frames but the dataset has {n_frames}"
                )
        return result

    def _write(
        self,
        ctx: TaskContext,
        name: str,
        samples: np.ndarray,
        source: ModelSource | None,
        path: Path,
    ) -> tuple[int, ...]:
        """Write one feature file, float32, first axis per frame (per step for mel); its shape.

        HuBERT's rows go to the file chunk by chunk as they are computed: its table, as long as
        the video, is never held in memory.
        """
        if name == "mel":
            array = log_mel(samples)
            write_npy(path, array)
            return array.shape
        from talkprep.models.audio_encoders import SpeechEncoder

        assert source is not None  # resolved in run() for every model feature
        head = "hidden" if name == "hubert" else "ctc"
        with SpeechEncoder.load(source, head, ctx.device) as encoder:
            if name == "deepspeech" and encoder.width != DEEPSPEECH_CLASSES:
                raise TaskError(
                    f"--deepspeech-model {source.spec} gives {encoder.width} classes; "
                    f"DeepSpeech-compatible features need {DEEPSPEECH_CLASSES}"
                )

            def progress(chunks: Iterable[Chunk]) -> Iterable[Chunk]:
                chunks = list(chunks)
                return ctx.progress(chunks, total=len(chunks), desc=name, unit="chunk")

            if name == "hubert":
                shape = paired_shape(encoder_steps(len(samples)), encoder.width)
                with npy_rows(path, shape, (encoder.width,)) as rows:
                    encoder.encode(samples, progress=progress, out=rows)
                return shape
            steps = np.asarray(encoder.encode(samples, progress=progress))
        if name == "wav2vec2":
            array = window_steps(steps, rad_nerf_window_count(len(steps)))
        else:
            rows = fit_steps_edge(steps, deepspeech_steps(len(samples)))
            array = window_steps(rows, deepspeech_window_count(len(rows)))
        write_npy(path, array)
        return array.shape

    def check(self, facts: FolderFacts) -> list[CheckResult]:
        n_frames = facts.n_frames
        wav = facts.root / WAV_NAME
        if n_frames is None and wav.is_file():
            try:
                samples, rate = read_wav(wav)
                n_frames = dataset_frames(len(samples) / rate, facts.fps)
            except (ValueError, EOFError, OSError):
                n_frames = None
        results = []
        for feature in FEATURES.values():
            path = facts.root / feature.file
            if path.is_file():
                results.append(_check_array(path, feature, n_frames, facts.fps))
        return results


def _read_audio(path: Path) -> np.ndarray:
    try:
        samples, rate = read_wav(path)
    except (ValueError, EOFError, OSError) as exc:
        raise TaskError(f"{path.name} is unreadable ({exc}); rerun task 1") from None
    if rate != SAMPLE_RATE:
        raise TaskError(f"{path.name} is {rate} Hz, not {SAMPLE_RATE}; rerun task 1")
    return samples


def _check_array(path: Path, feature: Feature, n_frames: int | None, fps: float) -> CheckResult:
    """Shape, dtype, finiteness and length of one feature file."""
    group = feature.file
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        return CheckResult(group, 0, f"not a readable .npy file ({exc})")
    rows = int(array.shape[0]) if array.ndim else 0
    expected = "[rows, " + ", ".join("C" if d is None else str(d) for d in feature.row_shape) + "]"
    shape_ok = array.ndim == 1 + len(feature.row_shape) and all(
        want is None or have == want
        for have, want in zip(array.shape[1:], feature.row_shape, strict=False)
    )
    if not shape_ok:
        return CheckResult(group, rows, f"shape {list(array.shape)}; expected {expected}")
    if not np.issubdtype(array.dtype, np.floating):
        return CheckResult(group, rows, f"dtype {array.dtype}; expected float32")
    if not np.isfinite(array).all():
        return CheckResult(group, rows, "holds NaN or infinite values")
    if n_frames is not None:
        covered = frames_covered(rows, feature.rate_hz, fps)
        if abs(covered - n_frames) > FRAME_TOLERANCE:
            return CheckResult(
                group,
                rows,
                f"{rows} rows cover {covered} frames but the dataset has {n_frames}",
            )
    per_frame = feature.rate_hz / fps
    note = None if per_frame == 1 else f"{feature.rate_hz:g} Hz rows, {per_frame:g} per frame"
    return CheckResult(group, rows, note=note)
