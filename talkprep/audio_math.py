"""Pure NumPy parts of the audio features: step counts, ER-NeRF's chunk plan, frame pairing,
RAD-NeRF / DeepSpeech windows and the log-mel spectrogram.

Every feature here lives on one 50 Hz grid: step t is the 20 ms of audio that starts at sample
320·t. Speech encoders of the wav2vec2 family (HuBERT included) have a convolutional front end
of stride 320 and receptive field 400, so encoder step t sees samples [320·t, 320·t + 400). At
25 fps, dataset frame i covers steps 2i and 2i+1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000
STEP_SAMPLES = 320
"""Samples per encoder step (20 ms at 16 kHz): the product of the conv front end's strides."""
RECEPTIVE_SAMPLES = 400
"""Samples one encoder step sees: the conv front end acts as one conv of kernel 400, stride 320."""
OVERLAP_SAMPLES = RECEPTIVE_SAMPLES - STEP_SAMPLES
"""80: how far each chunk reaches into the next so that no step straddles a chunk boundary."""
STEP_RATE = SAMPLE_RATE // STEP_SAMPLES
"""50 Hz, the rate of encoder steps and mel rows."""
CHUNK_STEPS = 1000
CHUNK_SAMPLES = STEP_SAMPLES * CHUNK_STEPS
"""ER-NeRF's chunk: 320,000 samples (20 s) of audio per forward pass."""
STEPS_PER_FRAME = 2
"""Two 50 Hz steps per 25 fps frame (aud_hu.npy is [N, 2, hidden])."""
PAIR_RATE = STEP_RATE / STEPS_PER_FRAME
"""25 Hz: the row rate of aud_hu.npy, aud_eo.npy and aud_ds.npy."""

WINDOW_STEPS = 16
"""RAD-NeRF / AD-NeRF audio window: 16 steps of 20 ms (320 ms) around each frame."""
WINDOW_STRIDE = 2
WINDOW_PAD = WINDOW_STEPS // 2
DEEPSPEECH_CLASSES = 29
"""DeepSpeech 0.1's alphabet: 26 letters, space, apostrophe and the CTC blank."""

MEL_BINS = 80
MEL_WINDOW = 640
"""40 ms Hann window, centred on the middle of each 20 ms step."""
MEL_FMIN = 0.0
MEL_FMAX = SAMPLE_RATE / 2
MEL_FLOOR = 1e-10
"""Power floor before the logarithm (-230 in log units: silence, not -inf)."""
MEL_BLOCK_ROWS = 8192
"""Rows per vectorised FFT block; bounds memory to a few tens of MB for any audio length."""


def encoder_steps(n_samples: int) -> int:
    """T = (L - 80) // 320: the steps ER-NeRF keeps for L samples (0 for very short audio)."""
    return max(0, (n_samples - OVERLAP_SAMPLES) // STEP_SAMPLES)


@dataclass(frozen=True)
class Chunk:
    """One forward pass: samples [start, stop) give encoder steps from `first_step` on."""

    start: int
    stop: int
    first_step: int


def chunk_plan(n_samples: int, chunk_samples: int = CHUNK_SAMPLES) -> list[Chunk]:
    """ER-NeRF's chunks: full chunks reach 80 samples into the next one; a last piece shorter than
    the 400-sample receptive field is dropped (its step, if any, is zero-filled by the caller).

    Args:
        chunk_samples: a multiple of 320 (tests use small chunks to exercise the boundaries).
    """
    if chunk_samples <= 0 or chunk_samples % STEP_SAMPLES:
        raise ValueError(f"chunk_samples must be a positive multiple of {STEP_SAMPLES}")
    full = n_samples // chunk_samples
    chunks = [
        Chunk(
            i * chunk_samples,
            min(n_samples, (i + 1) * chunk_samples + OVERLAP_SAMPLES),
            i * chunk_samples // STEP_SAMPLES,
        )
        for i in range(full)
    ]
    rest = n_samples - full * chunk_samples
    if rest >= RECEPTIVE_SAMPLES:
        chunks.append(Chunk(full * chunk_samples, n_samples, full * chunk_samples // STEP_SAMPLES))
    return chunks


class StepRows(Protocol):
    """Where run_chunked puts its steps: an array [T, width] or rows of a file (NpyRows)."""

    def __len__(self) -> int: ...

    def __setitem__(self, rows: slice, values: np.ndarray) -> None: ...


def run_chunked(
    forward: Callable[[np.ndarray], np.ndarray],
    input_values: np.ndarray,
    width: int,
    chunk_samples: int = CHUNK_SAMPLES,
    progress: Callable[[Iterable[Chunk]], Iterable[Chunk]] | None = None,
    out: StepRows | None = None,
) -> StepRows:
    """Run `forward` (samples [n] -> steps [t, width]) over ER-NeRF's chunks into [T, width].

    The steps go into `out` (the first len(out) of the T steps; default a new zero array of all
    T), so memory is the output plus one chunk's activations, or one chunk's alone when `out`
    is on disk. Rows a short chunk does not produce stay zero, as ER-NeRF's padding to T does.
    """
    if out is None:
        out = np.zeros((encoder_steps(len(input_values)), width), dtype=np.float32)
    chunks = chunk_plan(len(input_values), chunk_samples)
    for chunk in progress(chunks) if progress is not None else chunks:
        steps = forward(input_values[chunk.start : chunk.stop])
        stop = min(len(out), chunk.first_step + len(steps))
        if stop > chunk.first_step:
            out[chunk.first_step : stop] = steps[: stop - chunk.first_step]
    return out


def paired_shape(n_steps: int, width: int) -> tuple[int, int, int]:
    """[T // 2, 2, C]: the shape of T steps paired by `pair_steps`."""
    return n_steps // STEPS_PER_FRAME, STEPS_PER_FRAME, width


def pair_steps(steps: np.ndarray) -> np.ndarray:
    """[T, C] -> float32 [T // 2, 2, C]: two 50 Hz steps per 25 fps frame, odd last step dropped."""
    shape = paired_shape(len(steps), steps.shape[1])
    return np.ascontiguousarray(
        steps[: shape[0] * STEPS_PER_FRAME].reshape(shape), dtype=np.float32
    )


def rad_nerf_window_count(n_steps: int) -> int:
    """Windows of RAD-NeRF's F.unfold(kernel 16, padding 8, stride 2) over M steps: M // 2 + 1."""
    return n_steps // WINDOW_STRIDE + 1


def deepspeech_window_count(n_steps: int) -> int:
    """Windows of the DeepSpeech feature script's loop range(0, M + 16 - 16, 2): ceil(M / 2)."""
    return (n_steps + 1) // WINDOW_STRIDE


def window_steps(steps: np.ndarray, count: int) -> np.ndarray:
    """[M, C] -> float32 [count, 16, C]: window i holds steps 2i-8 .. 2i+7 (zeros outside).

    Frame i at 25 fps starts at step 2i, so each window is centred on its frame.
    """
    padded = np.zeros((len(steps) + 2 * WINDOW_PAD, steps.shape[1]), dtype=np.float32)
    padded[WINDOW_PAD : WINDOW_PAD + len(steps)] = steps
    index = WINDOW_STRIDE * np.arange(count)[:, None] + np.arange(WINDOW_STEPS)[None, :]
    if count and index[-1, -1] >= len(padded):
        raise ValueError(f"{count} windows need more than {len(steps)} steps")
    return padded[index]


def fit_steps_edge(steps: np.ndarray, count: int) -> np.ndarray:
    """First `count` rows of `steps`, repeating the last row when short.

    This is the DeepSpeech feature script's np.interp from 50 Hz to 50 Hz over round(L / 320)
    rows: the identity where rows exist, the last row held beyond.
    """
    if len(steps) == 0:
        return np.zeros((count, steps.shape[1]), dtype=np.float32)
    index = np.minimum(np.arange(count), len(steps) - 1)
    return np.asarray(steps[index], dtype=np.float32)


def deepspeech_steps(n_samples: int) -> int:
    """round(L / 320): the DeepSpeech script's row count (audio seconds times 50 Hz)."""
    return int(np.floor(n_samples / STEP_SAMPLES + 0.5))


def hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    linear = freq / f_sp
    log = min_log_mel + np.log(np.maximum(freq, min_log_hz) / min_log_hz) / logstep
    return np.where(freq >= min_log_hz, log, linear)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log = min_log_hz * np.exp(logstep * (mels - min_log_mel))
    return np.where(mels >= min_log_mel, log, f_sp * mels)


def mel_filterbank(
    n_fft: int = MEL_WINDOW,
    n_mels: int = MEL_BINS,
    rate: int = SAMPLE_RATE,
    fmin: float = MEL_FMIN,
    fmax: float = MEL_FMAX,
) -> np.ndarray:
    """float32 [n_mels, n_fft // 2 + 1] triangular filters, Slaney area-normalised (as librosa)."""
    bins = np.fft.rfftfreq(n_fft, d=1.0 / rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= 2.0 / (upper - lower)
    return weights.astype(np.float32)


def log_mel(samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 [L // 320, 80] natural-log mel power at 50 Hz.

    Row t is a 640-sample periodic Hann window centred on the middle of step t (samples
    320·t + 160 ± 320, zeros beyond the ends), so rows 2i and 2i+1 describe frame i at 25 fps,
    aligned with the encoder steps.
    """
    if rate != SAMPLE_RATE:
        raise ValueError(f"log_mel expects {SAMPLE_RATE} Hz audio, got {rate}")
    from scipy import fft as sp_fft

    n_rows = len(samples) // STEP_SAMPLES
    if n_rows == 0:
        return np.zeros((0, MEL_BINS), dtype=np.float32)
    lead = (MEL_WINDOW - STEP_SAMPLES) // 2
    padded = np.zeros(n_rows * STEP_SAMPLES + 2 * lead, dtype=np.float32)
    padded[lead : lead + n_rows * STEP_SAMPLES] = samples[: n_rows * STEP_SAMPLES]
    frames = np.lib.stride_tricks.sliding_window_view(padded, MEL_WINDOW)[::STEP_SAMPLES]
    window = np.hanning(MEL_WINDOW + 1)[:-1].astype(np.float32)
    bank = mel_filterbank().T
    out = np.empty((n_rows, MEL_BINS), dtype=np.float32)
    for lo in range(0, n_rows, MEL_BLOCK_ROWS):
        block = frames[lo : lo + MEL_BLOCK_ROWS] * window
        spectrum = sp_fft.rfft(block, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        out[lo : lo + len(block)] = np.log(np.maximum(power @ bank, MEL_FLOOR))
    return out
