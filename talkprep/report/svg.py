"""Small inline-SVG charts for the report: no plotting library, the page stays self-contained.

The x axis is always time: ticks in seconds, and for per-frame series the frame index under each
tick, so a curve of N frames at any fps and a waveform of any length read on the same clock.
"""

from __future__ import annotations

import html

import numpy as np

from talkprep.runs import true_runs

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
LIMIT_COLOURS = {"amber": "#d08700", "red": "#c62828"}
PLOT_WIDTH = 880
PLOT_HEIGHT = 170
MARGIN_LEFT = 56
MARGIN_RIGHT = 12
MARGIN_BOTTOM = 30
MARGIN_TOP = 8
NICE_STEPS_S = (0.04, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Tick spacings in seconds, the first that gives at most MAX_TICKS ticks is used."""
MAX_TICKS = 10


def time_ticks(duration_s: float) -> np.ndarray:
    """Tick positions in seconds over [0, duration_s], at a round spacing."""
    step = next((s for s in NICE_STEPS_S if duration_s / s <= MAX_TICKS), NICE_STEPS_S[-1])
    return np.arange(0.0, duration_s + 1e-9, step)


def line_plot(
    series: dict[str, np.ndarray],
    title: str,
    unit: str = "",
    flagged: np.ndarray | None = None,
    rate: float = 25.0,
    per_frame: bool = True,
    limits: dict[str, float] | None = None,
) -> str:
    """Curves over time as one SVG; NaN breaks a curve; flagged samples are shaded red.

    Args:
        series: name -> float [N] values (all the same N), sampled at `rate` per second.
        flagged: optional bool [N] of samples to shade (interpolated or left out).
        per_frame: the samples are video frames: ticks also show the frame index.
        limits: optional "amber"/"red" -> value, drawn as dashed horizontal lines.
    """
    values = [np.asarray(v, dtype=np.float64) for v in series.values()]
    n = max((len(v) for v in values), default=0)
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if n < 2 or finite.size == 0:
        return f"<p>{html.escape(title)}: no data</p>"
    limits = limits or {}
    lo, hi = float(finite.min()), float(finite.max())
    shown_limits = {k: v for k, v in limits.items() if v <= hi * 1.5 + 1e-9}
    if shown_limits:
        hi = max(hi, *shown_limits.values())
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    inner_w = PLOT_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    inner_h = PLOT_HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    duration = n / rate

    def x_of(i: np.ndarray) -> np.ndarray:
        """Sample i covers [i, i+1) / rate; its point sits at its start time."""
        return MARGIN_LEFT + np.asarray(i, dtype=np.float64) / rate * inner_w / duration

    def y_of(v: np.ndarray) -> np.ndarray:
        return MARGIN_TOP + (hi - np.asarray(v, dtype=np.float64)) * inner_h / (hi - lo)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" '
        f'font-family="sans-serif" font-size="11" role="img">',
        f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{inner_w}" height="{inner_h}" '
        'fill="#fafafa" stroke="#ccc"/>',
    ]
    if flagged is not None and flagged.any():
        step = inner_w / n
        for run in _finite_runs(np.where(flagged, 0.0, np.nan)):
            parts.append(
                f'<rect x="{float(x_of(run[0])):.1f}" y="{MARGIN_TOP}" '
                f'width="{max(step * len(run), 1.0):.1f}" height="{inner_h}" '
                'fill="#f4a6a6" opacity="0.6"/>'
            )
    for name, value in shown_limits.items():
        y = float(y_of(value))
        colour = LIMIT_COLOURS.get(name, "#888")
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + inner_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{colour}" stroke-dasharray="5,4"/>'
            f'<text x="{MARGIN_LEFT + inner_w - 4}" y="{y - 3:.1f}" text-anchor="end" '
            f'fill="{colour}">{html.escape(name)} {value:.3g}</text>'
        )
    for k, (name, v) in enumerate(zip(series, values, strict=True)):
        colour = PALETTE[k % len(PALETTE)]
        for segment in _finite_runs(v):
            xs, ys = x_of(segment), y_of(v[segment])
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.2"/>'
            )
        parts.append(
            f'<text x="{MARGIN_LEFT + 8 + 110 * k}" y="{MARGIN_TOP + 12}" fill="{colour}">'
            f"{html.escape(name)}</text>"
        )
    for value in (lo, hi):
        parts.append(
            f'<text x="{MARGIN_LEFT - 4}" y="{float(y_of(value)) + 4:.1f}" '
            f'text-anchor="end">{value:.3g}</text>'
        )
    parts.append(_time_axis(duration, rate, per_frame, inner_w, inner_h))
    parts.append(
        f'<text x="4" y="{MARGIN_TOP + inner_h / 2:.0f}" transform="rotate(-90 10 '
        f'{MARGIN_TOP + inner_h / 2:.0f})">{html.escape(unit)}</text></svg>'
    )
    axis = "time in seconds (frame index below)" if per_frame else "time in seconds"
    return (
        f"<figure><figcaption>{html.escape(title)}; x: {axis}</figcaption>{''.join(parts)}</figure>"
    )


def _time_axis(duration: float, rate: float, per_frame: bool, inner_w: int, inner_h: int) -> str:
    bottom = MARGIN_TOP + inner_h
    out = []
    for t in time_ticks(duration):
        x = MARGIN_LEFT + t * inner_w / duration
        label = f"{t:g} s"
        if per_frame:
            label += f" · {round(t * rate)}"
        anchor = "end" if t > duration * 0.97 else "middle" if t > 0 else "start"
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="#888"/>'
            f'<text x="{x:.1f}" y="{bottom + 15}" text-anchor="{anchor}">{label}</text>'
        )
    return "".join(out)


def envelope(samples: np.ndarray, columns: int = PLOT_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """Per-column min and max of an audio signal, for drawing a waveform of any length.

    The columns split every sample between them (none dropped at the end), so column k starts at
    k * len(samples) / columns samples: plot them at `envelope_rate` columns per second.
    """
    if len(samples) <= columns:
        return samples.copy(), samples.copy()
    starts = np.linspace(0, len(samples), columns + 1).astype(np.int64)[:-1]
    return np.minimum.reduceat(samples, starts), np.maximum.reduceat(samples, starts)


def envelope_rate(n_samples: int, sample_rate: float, columns: int = PLOT_WIDTH) -> float:
    """Columns per second of `envelope(samples, columns)`: the rate to plot it at."""
    return sample_rate * min(columns, n_samples) / max(n_samples, 1)


def _finite_runs(values: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the runs of finite values (a NaN breaks the curve)."""
    return [np.arange(s, e) for s, e in zip(*true_runs(np.isfinite(values)), strict=True)]
