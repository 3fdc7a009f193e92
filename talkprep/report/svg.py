"""Small inline-SVG charts for the report: no plotting library, the page stays self-contained."""

from __future__ import annotations

import html

import numpy as np

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
PLOT_WIDTH = 880
PLOT_HEIGHT = 170
MARGIN_LEFT = 56
MARGIN_BOTTOM = 22
MARGIN_TOP = 8


def line_plot(
    series: dict[str, np.ndarray],
    title: str,
    unit: str = "",
    flagged: np.ndarray | None = None,
    fps: float = 25.0,
) -> str:
    """Curves over frame index as one SVG; NaN breaks a curve; flagged frames are shaded red.

    Args:
        series: name -> float [N] values (all the same N).
        flagged: optional bool [N] of frames to shade (interpolated or left out).
    """
    values = [np.asarray(v, dtype=np.float64) for v in series.values()]
    n = max((len(v) for v in values), default=0)
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if n < 2 or finite.size == 0:
        return f"<p>{html.escape(title)}: no data</p>"
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    inner_w = PLOT_WIDTH - MARGIN_LEFT - 8
    inner_h = PLOT_HEIGHT - MARGIN_BOTTOM - MARGIN_TOP

    def x_of(i: np.ndarray) -> np.ndarray:
        return MARGIN_LEFT + i * inner_w / (n - 1)

    def y_of(v: np.ndarray) -> np.ndarray:
        return MARGIN_TOP + (hi - v) * inner_h / (hi - lo)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{inner_w}" height="{inner_h}" '
        'fill="#fafafa" stroke="#ccc"/>',
    ]
    if flagged is not None and flagged.any():
        step = inner_w / (n - 1)
        for run in _finite_runs(np.where(flagged, 0.0, np.nan)):
            left = float(x_of(np.array(run[0]))) - step / 2
            width = max(step * len(run), 1.0)
            parts.append(
                f'<rect x="{left:.1f}" y="{MARGIN_TOP}" width="{width:.1f}" '
                f'height="{inner_h}" fill="#f4a6a6" opacity="0.6"/>'
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
            f'<text x="{MARGIN_LEFT - 4}" y="{y_of(np.array(value)) + 4:.1f}" '
            f'text-anchor="end">{value:.3g}</text>'
        )
    parts.append(
        f'<text x="{MARGIN_LEFT + inner_w}" y="{PLOT_HEIGHT - 6}" text-anchor="end">'
        f"frame {n - 1} ({(n - 1) / fps:.1f} s)</text>"
        f'<text x="{MARGIN_LEFT}" y="{PLOT_HEIGHT - 6}">0</text>'
        f'<text x="4" y="{MARGIN_TOP + inner_h / 2:.0f}" transform="rotate(-90 10 '
        f'{MARGIN_TOP + inner_h / 2:.0f})">{html.escape(unit)}</text>'
    )
    parts.append("</svg>")
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{''.join(parts)}</figure>"


def envelope(samples: np.ndarray, columns: int = PLOT_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """Per-column min and max of an audio signal, for drawing a waveform of any length."""
    n = len(samples) // columns * columns
    if n == 0:
        return samples.copy(), samples.copy()
    blocks = samples[:n].reshape(columns, -1)
    return blocks.min(axis=1), blocks.max(axis=1)


def _finite_runs(values: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the runs of finite values (a NaN breaks the curve)."""
    finite = np.isfinite(values)
    change = np.diff(np.concatenate([[0], finite.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(change == 1), np.flatnonzero(change == -1)
    return [np.arange(s, e) for s, e in zip(starts, ends, strict=True)]
