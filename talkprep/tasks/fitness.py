"""Task 9's inputs for sync and screening: reads what tasks 1, 4 and 5 left (aud.wav, their
records) and hands arrays to talkprep.sync and talkprep.screening; returns manifest entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from talkprep import screening, sync
from talkprep.config import av_sync_seconds
from talkprep.errors import TaskError
from talkprep.io.audio import read_wav
from talkprep.tasks.audio import WAV_NAME
from talkprep.tasks.base import TaskContext
from talkprep.tasks.landmarks import index_ranges

MIN_APPLIED_FRAMES = 2
"""--av-sync auto corrects a confident offset from this many frames on."""
SILENT_SHARE_LOW = 0.05
"""Below this share of silent, closed-mouth frames the avatar will not learn to rest its mouth."""
REFERENCE_SIDE_PX = 512
"""Reprojection errors are compared at this frame size (as task 4's figures)."""


@dataclass
class SyncResult:
    """The offset measured on the input, what was applied, and the silence figures."""

    shift_frames: int = 0
    """Frames the audio is moved by through `aud_id` (frame i's audio is row i + shift)."""
    figures: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _series(values: Any, n: int) -> np.ndarray | None:
    """A per-frame list from a task record (None entries as NaN), or None when absent."""
    if not isinstance(values, list) or len(values) != n:
        return None
    return np.array([np.nan if v is None else float(v) for v in values])


def measure_sync(ctx: TaskContext, mesh: np.ndarray, valid: np.ndarray, fps: float) -> SyncResult:
    """Offset, confidence and windows from aud.wav and the mouth of the `valid` frames (those
    with a face that screening did not flag); the shift --av-sync applies; the silent
    closed-mouth share. Without a finished task 1 nothing is measured."""
    n = len(mesh)
    result = SyncResult()
    forced = av_sync_seconds(ctx.config.av_sync)
    wav = ctx.out / WAV_NAME
    if "audio" not in ctx.records or not wav.is_file():
        result.figures = {"av_offset_s": None, "av_confidence": None, "silent_closed_share": None}
        result.info = {"av_sync": {"mode": ctx.config.av_sync, "applied_frames": 0}}
        return result
    try:
        samples, rate = read_wav(wav)
    except (OSError, ValueError, EOFError) as exc:
        raise TaskError(f"cannot read {WAV_NAME} ({exc}); rerun task 1") from None
    opening = np.where(valid, sync.mouth_opening(mesh), np.nan)
    offset = sync.measure_offset(opening, samples, rate, fps)
    levels = sync.frame_levels(samples, rate, fps, n)
    silent = sync.silent_closed(levels, opening)
    share = float(silent.sum() / max(int(valid.sum()), 1))
    measured = offset.offset_s is not None
    frames = (offset.offset_s or 0.0) * fps
    if forced is not None:
        result.shift_frames = int(round(forced * fps))
    elif ctx.config.av_sync == "auto" and offset.confident and abs(frames) >= MIN_APPLIED_FRAMES:
        result.shift_frames = int(round(frames))
    result.figures = {
        "av_offset_s": round(offset.offset_s, 4) if measured else None,
        "av_confidence": round(offset.margin, 4) if measured else None,
        "av_drift_s": round(offset.drift_s, 4) if measured else None,
        "av_shift_applied_s": round(result.shift_frames / fps, 4),
        "silent_closed_share": round(share, 4),
    }
    result.info = {
        "av_sync": {
            "mode": ctx.config.av_sync,
            "confident": offset.confident,
            "applied_frames": result.shift_frames,
            "applied_s": round(result.shift_frames / fps, 4),
            "applied_to": "aud_id in transforms_*.json (frame i reads audio row i + shift)",
            "bias_s": sync.BIAS_S,
        },
        "av_windows": [
            [round(t, 2), None if o is None else round(o, 4), round(m, 4)]
            for t, o, m in offset.windows
        ],
        "silent_closed": index_ranges(silent),
    }
    if not measured:
        return result  # a silent track: task 1 says so, in one line
    ms = offset.offset_s * 1000
    if result.shift_frames and forced is None:
        result.warnings.append(
            f"audio is {abs(ms):.0f} ms {'late' if ms > 0 else 'early'} against the mouth: "
            f"frames read audio {result.shift_frames:+d} frames on (aud_id); --av-sync off keeps "
            "the audio as it is"
        )
    elif ctx.config.av_sync == "auto" and not offset.confident:
        result.warnings.append(
            f"audio-video offset unclear (best guess {ms:+.0f} ms, confidence "
            f"{offset.margin:.2f} < {sync.CONFIDENT_MARGIN}): not corrected; check preview.mp4 "
            "and give --av-sync SECONDS if the lips lag"
        )
    if offset.drifting:
        result.warnings.append(
            f"audio drifts against the video by {offset.drift_s * 1000:+.0f} ms over the clip "
            "(see the report's sync plot); one offset cannot correct it: re-export the video "
            "with a constant frame rate"
        )
    if share < SILENT_SHARE_LOW:
        result.warnings.append(
            f"only {share:.1%} of the frames are silent with the mouth closed (want "
            f">= {SILENT_SHARE_LOW:.0%}): the avatar may move its mouth in silence; record a few "
            "seconds of the speaker listening"
        )
    return result


@dataclass
class ScreenResult:
    """Per-kind flags and the frames the splits keep."""

    keep: np.ndarray
    flags: dict[str, np.ndarray]
    figures: dict[str, Any]
    info: dict[str, Any]


def screen_frames(
    ctx: TaskContext,
    mesh: np.ndarray,
    valid: np.ndarray,
    track: dict[str, np.ndarray],
    width: int,
    height: int,
) -> ScreenResult:
    """Screen every frame from task 4's measures, the track and task 5's hand coverage."""
    n = len(mesh)
    landmarks_info = ctx.records.get("landmarks", {}).get("info", {})
    parsing_info = (ctx.records.get("parsing") or {}).get("info", {})
    yaw, pitch = screening.head_turn(track["euler"], track["trans"])
    nan = np.full(n, np.nan)
    sharpness = _series(landmarks_info.get("sharpness"), n)
    shot = _series(landmarks_info.get("shot_distance"), n)
    reproj = track.get("reproj_err")
    flags = screening.screen(
        has_face=valid,
        face_width=screening.face_widths(mesh),
        frame_side=min(width, height),
        yaw=yaw,
        pitch=pitch,
        sharpness=nan if sharpness is None else sharpness,
        shot=nan if shot is None else shot,
        reproj_err=nan if reproj is None else reproj * REFERENCE_SIDE_PX / max(width, height),
        hand=_series(parsing_info.get("hand_over_face"), n),
        second_face=_series(landmarks_info.get("second_face"), n),
    )
    unfit = np.any([flags[k] for k in screening.KINDS], axis=0)
    keep = valid.copy() if ctx.config.keep_flagged else screening.kept_frames(unfit) & valid
    counts = screening.flag_counts(flags)
    figures = {
        **{f"flagged_{kind}": count for kind, count in counts.items()},
        "flagged_frames": int(unfit.sum()),
        "screened_out_frames": int((valid & ~keep).sum()),
    }
    info = {
        "flags": {kind: index_ranges(flags[kind]) for kind in screening.KINDS},
        "screened_out": index_ranges(~keep),
        "keep_flagged": ctx.config.keep_flagged,
        "limits": {
            "small_face_share": screening.SMALL_FACE_SHARE,
            "yaw_deg": screening.YAW_LIMIT_DEG,
            "pitch_deg": screening.PITCH_LIMIT_DEG,
            "blur_share": screening.BLUR_SHARE,
            "hand_share": screening.HAND_SHARE,
            "second_face_share": screening.SECOND_FACE_SHARE,
            "margin_frames": screening.MARGIN_FRAMES,
        },
    }
    return ScreenResult(keep, flags, figures, info)
