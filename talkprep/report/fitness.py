"""The report's sync and screening sections, from task 9's record (talkprep.tasks.fitness)."""

from __future__ import annotations

import base64
import html
from typing import Any

import cv2
import numpy as np

from talkprep.report.frames import FolderView
from talkprep.report.svg import PLOT_WIDTH, line_plot
from talkprep.screening import KINDS
from talkprep.sync import CONFIDENT_MARGIN, HOP_S

SAMPLE_SIDE = 200
ROW_HEIGHT, LABEL_WIDTH = 16, 130
KIND_COLOURS = {
    "no_face": "#555555",
    "small_face": "#8e24aa",
    "turned": "#1e88e5",
    "blur": "#f9a825",
    "hand_over_face": "#6d4c41",
    "shot_change": "#e53935",
    "second_face": "#00897b",
    "screened_out": "#222222",
}


def _runs(value: Any) -> list[tuple[int, int]]:
    """[first, last] pairs of a manifest entry, invalid ones dropped."""
    runs = []
    for run in value if isinstance(value, list) else []:
        if isinstance(run, list) and len(run) == 2 and all(isinstance(v, int) for v in run):
            runs.append((run[0], run[1]))
    return runs


def _mask(runs: list[tuple[int, int]], n: int) -> np.ndarray:
    """bool [n] of the frames in `runs`."""
    mask = np.zeros(n, dtype=bool)
    for first, last in runs:
        mask[max(first, 0) : max(last + 1, 0)] = True
    return mask


def _timeline(rows: dict[str, list[tuple[int, int]]], n: int, fps: float) -> str:
    """One SVG row per flag kind with its runs drawn over the clip's frames."""
    width = PLOT_WIDTH - LABEL_WIDTH
    parts = []
    for k, (kind, runs) in enumerate(rows.items()):
        y = k * ROW_HEIGHT
        parts.append(
            f'<text x="0" y="{y + 12}" font-size="11">{html.escape(kind.replace("_", " "))} '
            f"({sum(b - a + 1 for a, b in runs)})</text>"
        )
        for first, last in runs:
            x = LABEL_WIDTH + width * first / max(n, 1)
            w = max(width * (last - first + 1) / max(n, 1), 1.0)
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{ROW_HEIGHT - 4}" '
                f'fill="{KIND_COLOURS.get(kind, "#999")}"><title>frames {first}-{last} '
                f"({first / fps:.2f}-{(last + 1) / fps:.2f} s)</title></rect>"
            )
    height = ROW_HEIGHT * len(rows) + 14
    parts.append(
        f'<text x="{LABEL_WIDTH}" y="{height - 2}" font-size="10">0 s</text>'
        f'<text x="{PLOT_WIDTH - 40}" y="{height - 2}" font-size="10">{n / fps:.1f} s</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_WIDTH}" height="{height}">'
        f"{''.join(parts)}</svg>"
    )


def _sample(view: FolderView, index: int, caption: str) -> str:
    image = view.frame(index, SAMPLE_SIDE)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return ""
    source = base64.b64encode(data.tobytes()).decode()
    return (
        f'<figure style="display:inline-block"><img src="data:image/jpeg;base64,{source}" '
        f'alt=""><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def screening_section(view: FolderView, record: dict[str, Any], n: int) -> str:
    """Flags on the clip's timeline, counts per kind and a sample frame of each kind."""
    info = record.get("info") if isinstance(record.get("info"), dict) else {}
    flags = info.get("flags")
    if not isinstance(flags, dict) or n == 0:
        return '<p class="missing">No screening yet (task 9).</p>'
    rows = {kind: _runs(flags.get(kind)) for kind in KINDS}
    rows["screened_out"] = _runs(info.get("screened_out"))
    limits = info.get("limits") if isinstance(info.get("limits"), dict) else {}
    flagged = {kind: _mask(runs, n) for kind, runs in rows.items() if kind in KINDS}
    others = {k: np.any([m for j, m in flagged.items() if j != k], axis=0) for k in flagged}
    samples = []
    for kind, mask in flagged.items():
        alone = np.flatnonzero(mask & ~others[kind])  # a frame showing this kind only, if any
        chosen = alone if len(alone) else np.flatnonzero(mask)
        if len(chosen) and view.has_frame(int(chosen[len(chosen) // 2])):
            i = int(chosen[len(chosen) // 2])
            samples.append(_sample(view, i, f"{kind.replace('_', ' ')} {view.label(i)}"))
    kept = "kept in the splits (--keep-flagged)" if info.get("keep_flagged") else "left out"
    limit_text = ", ".join(
        f"{html.escape(str(k))} {html.escape(str(v))}" for k, v in limits.items()
    )
    return (
        f"<p>Why frames are unfit, frame by frame; flagged runs are {kept} of both splits with "
        f"a margin for the trainers' audio windows. Eyes closed is never a flag. Limits: "
        f"{limit_text}.</p>"
        + _timeline(rows, n, view.fps)
        + (
            f'<p>A sample of each kind:</p><div class="sheet">{"".join(samples)}</div>'
            if samples
            else ""
        )
    )


def sync_section(record: dict[str, Any], fps: float) -> str:
    """The measured offset, its confidence, what was applied, the windows and the silence."""
    figures = record.get("figures") if isinstance(record.get("figures"), dict) else {}
    info = record.get("info") if isinstance(record.get("info"), dict) else {}
    if "av_offset_s" not in figures:
        return '<p class="missing">No offset measured yet (task 9).</p>'
    offset = figures.get("av_offset_s")
    applied = figures.get("av_shift_applied_s", 0.0)
    share = figures.get("silent_closed_share")
    if not isinstance(offset, int | float):
        text = "<p>No offset measured: no audio, or no speech in it.</p>"
    else:
        text = (
            f"<p>Audio against the mouth, as given: {offset * 1000:+.0f} ms "
            f"({offset * fps:+.2f} frames; positive = audio late), confidence "
            f"{float(figures.get('av_confidence') or 0):.2f} (confident from {CONFIDENT_MARGIN}); "
            f"applied: {float(applied or 0) * 1000:+.0f} ms through <code>aud_id</code>. Drift "
            "over the clip: "
            f"{float(figures.get('av_drift_s') or 0) * 1000:+.0f} ms.</p>"
        )
    if isinstance(share, int | float):
        text += (
            f"<p>Silent with the mouth closed: {share:.1%} of the frames with a face "
            "(want >= 5%, or the avatar moves its mouth in silence).</p>"
        )
    windows = info.get("av_windows")
    if isinstance(windows, list) and len(windows) >= 2 and isinstance(offset, int | float):
        offsets = [
            w[1] * 1000 if isinstance(w, list) and isinstance(w[1], int | float) else np.nan
            for w in windows
        ]
        sure = [isinstance(w, list) and float(w[2]) >= CONFIDENT_MARGIN for w in windows]
        values = np.array(offsets)
        text += line_plot(
            {
                "confident windows (ms)": np.where(sure, values, np.nan),
                "clip offset (ms)": np.full(len(values), offset * 1000),
            },
            f"offset per {HOP_S * 2:g} s window, one every {HOP_S:g} s, the {sum(sure)} of "
            f"{len(sure)} windows confident on their own (spread: drift)",
            "ms",
            None,
            1.0 / HOP_S,
            per_frame=False,
        )
    return text
