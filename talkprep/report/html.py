"""OUT/report.html: the dataset's quality at a glance, self-contained (images inline), from disk.

Every section is drawn from the files present, so the report works on partial datasets and on
folders made by other pipelines; the manifest adds timings and quality figures when it exists.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkprep import __version__
from talkprep.io.atomic import write_text
from talkprep.io.audio import read_wav
from talkprep.io.images import encode_jpeg, frame_indices, read_image
from talkprep.manifest import read_manifest
from talkprep.report.svg import envelope, line_plot

REPORT_NAME = "report.html"
CONTACT_FRAMES = 8
THUMB_SIDE = 200
DEPTH_SAMPLES = 4
MARK_COLOUR = (0, 255, 255)
FEATURE_FILES = ("aud_hu.npy", "aud_eo.npy", "aud_ds.npy", "aud_mel.npy")

_STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
.done, .skipped { color: #1a7f37; } .failed, .blocked, .running { color: #c62828; }
.sheet img { margin: 2px; } figure { margin: 8px 0; } figcaption { font-size: 13px; }
.warn { color: #b26a00; } code { font-size: 12px; }
"""


def _img(image_bgr: np.ndarray, title: str = "") -> str:
    data = base64.b64encode(encode_jpeg(image_bgr, 85)).decode()
    return f'<img src="data:image/jpeg;base64,{data}" title="{html.escape(title)}">'


def _thumb(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), cv2.INTER_AREA)


def mark_points(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Paint 2x2 dots at pixel points float [P, 2] (NaN and off-frame points skipped)."""
    out = image.copy()
    h, w = out.shape[:2]
    pts = points[np.isfinite(points).all(axis=1)].astype(int)
    for dy in (0, 1):
        for dx in (0, 1):
            x, y = pts[:, 0] + dx, pts[:, 1] + dy
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            out[y[inside], x[inside]] = MARK_COLOUR
    return out


def blend_parsing(image: np.ndarray, parsing: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Tint the frame with the parsing colours where the parsing is not background (white)."""
    person = (parsing < 250).any(axis=2, keepdims=True)
    tinted = (1 - alpha) * image.astype(np.float32) + alpha * parsing.astype(np.float32)
    return np.where(person, tinted, image).astype(np.uint8)


def colour_depth(depth: np.ndarray) -> np.ndarray:
    """False-colour a 16-bit depth map (near = warm), unknown (0) in black."""
    known = depth > 0
    out = np.zeros((*depth.shape, 3), np.uint8)
    if known.any():
        lo, hi = np.percentile(depth[known], [1, 99])
        scaled = np.clip((hi - depth.astype(np.float32)) / max(hi - lo, 1.0), 0, 1) * 255
        out = cv2.applyColorMap(scaled.astype(np.uint8), cv2.COLORMAP_INFERNO)
        out[~known] = 0
    return out


def _load_manifest(root: Path) -> dict[str, Any]:
    return read_manifest(root)


def _task_table(manifest: dict[str, Any]) -> str:
    tasks = sorted(manifest.get("tasks", {}).items(), key=lambda kv: kv[1].get("number", 99))
    if not tasks:
        return "<p>No manifest: this folder was not made by talkprep.</p>"
    rows = ["<tr><th>task</th><th>status</th><th>time</th><th>frames/s</th><th>figures</th></tr>"]
    for name, record in tasks:
        status = record.get("status", "?")
        figures = record.get("figures", {})
        shown = ", ".join(
            f"{k} {v}" for k, v in figures.items() if isinstance(v, int | float | str)
        )
        notes = [record["error"]] if record.get("error") else []
        notes += record.get("warnings", [])
        note_html = "".join(f'<div class="warn">{html.escape(n)}</div>' for n in notes)
        wall = record.get("wall_s")
        rate = record.get("frames_per_s")
        rows.append(
            f"<tr><td>{record.get('number', '')} {html.escape(name)}</td>"
            f'<td class="{status}">{status}</td><td>{"" if wall is None else f"{wall:.1f} s"}</td>'
            f"<td>{rate or ''}</td><td><code>{html.escape(shown)}</code>"
            f"{note_html}</td></tr>"
        )
    return f"<table>{''.join(rows)}</table>"


def _contact_sheet(root: Path, n: int) -> str:
    landmarks = None
    if (root / "landmarks.npy").exists():
        landmarks = np.load(root / "landmarks.npy", mmap_mode="r")
    picks = np.unique(np.linspace(0, n - 1, min(CONTACT_FRAMES, n)).round().astype(int))
    cells = []
    for i in picks:
        frame = read_image(root / "ori_imgs" / f"{i}.jpg")
        if (root / "parsing" / f"{i}.png").exists():
            frame = blend_parsing(frame, read_image(root / "parsing" / f"{i}.png"))
        if landmarks is not None and i < len(landmarks):
            frame = mark_points(frame, np.asarray(landmarks[i][:, :2]))
        cells.append(_img(_thumb(frame), f"frame {i}"))
    return f'<div class="sheet">{"".join(cells)}</div>'


def _pose_section(root: Path, manifest: dict[str, Any], fps: float) -> str:
    path = root / "track_params.pt"
    if not path.exists():
        return ""
    import torch

    params = torch.load(path, map_location="cpu", weights_only=True)
    euler = np.degrees(params["euler"].numpy().astype(np.float64))
    trans = params["trans"].numpy().astype(np.float64)
    n = len(euler)
    flagged = np.zeros(n, bool)
    info = manifest.get("tasks", {}).get("landmarks", {}).get("info", {})
    for key in ("interpolated", "invalid"):
        for first, last in info.get(key, []):
            flagged[first : last + 1] = True
    parts = [
        "<h2>Head pose and tracking error</h2>",
        "<p>Shaded: frames interpolated or left out of the splits.</p>",
        line_plot(
            {"pitch": euler[:, 0], "yaw": euler[:, 1], "roll": euler[:, 2]},
            "rotation (degrees)",
            "deg",
            flagged,
            fps,
        ),
        line_plot(
            {"x": trans[:, 0], "y": trans[:, 1], "z": trans[:, 2]},
            "translation (decimetres, AD-NeRF units)",
            "dm",
            flagged,
            fps,
        ),
    ]
    if "reproj_err" in params:
        error = params["reproj_err"].numpy().astype(np.float64)
        parts.append(line_plot({"median": error}, "reprojection error (px)", "px", flagged, fps))
    return "".join(parts)


def _audio_section(root: Path, fps: float) -> str:
    parts = []
    if (root / "aud.wav").exists():
        samples, rate = read_wav(root / "aud.wav")
        low, high = envelope(samples)
        seconds = len(samples) / rate
        parts.append("<h2>Audio</h2>")
        plot_fps = len(low) / max(seconds, 1e-6)
        parts.append(
            line_plot({"min": low, "max": high}, f"waveform ({seconds:.1f} s)", "", None, plot_fps)
        )
    for name in FEATURE_FILES:
        if (root / name).exists():
            features = np.load(root / name, mmap_mode="r")
            flat = np.asarray(features).reshape(len(features), -1).T.astype(np.float32)
            lo, hi = np.percentile(flat, [1, 99])
            scaled = np.clip((flat - lo) / max(hi - lo, 1e-6), 0, 1) * 255
            heat = cv2.applyColorMap(scaled.astype(np.uint8), cv2.COLORMAP_VIRIDIS)
            heat = cv2.resize(heat, (880, 160), interpolation=cv2.INTER_AREA)
            parts.append(
                f"<figure><figcaption>{name}: {list(features.shape)} (rows over frames)"
                f"</figcaption>{_img(heat)}</figure>"
            )
            break
    return "".join(parts)


def _depth_section(root: Path, n: int) -> str:
    indices = frame_indices(root / "depth", ".png")
    if not indices:
        return ""
    picks = np.unique(np.linspace(0, len(indices) - 1, DEPTH_SAMPLES).round().astype(int))
    cells = []
    for k in picks:
        depth = cv2.imread(str(root / "depth" / f"{indices[k]}.png"), cv2.IMREAD_UNCHANGED)
        if depth is not None:
            cells.append(_img(_thumb(colour_depth(depth)), f"depth {indices[k]}"))
    return f'<h2>Depth samples</h2><div class="sheet">{"".join(cells)}</div>'


def build_report(root: Path) -> Path:
    """Write root/report.html from whatever dataset files and manifest are present."""
    manifest = _load_manifest(root)
    n = len(frame_indices(root / "ori_imgs", ".jpg"))
    fps = float(manifest.get("tasks", {}).get("frames", {}).get("info", {}).get("fps", 25.0))
    facts = manifest.get("input", {})
    title = html.escape(Path(facts.get("path", str(root))).name)
    body = [
        f"<h1>talkprep report: {title}</h1>",
        f"<p>{n} frames at {fps:g} fps in <code>{html.escape(str(root))}</code>; "
        f"report by talkprep {__version__}.</p>",
    ]
    if facts:
        shown = {k: v for k, v in facts.items() if k not in ("path", "fingerprint")}
        body.append(f"<p><code>{html.escape(json.dumps(shown))}</code></p>")
    body += ["<h2>Tasks</h2>", _task_table(manifest)]
    if n:
        body += ["<h2>Frames with mesh and parsing overlays</h2>", _contact_sheet(root, n)]
    if (root / "bc.jpg").exists():
        body += ["<h2>Background plate</h2>", _img(_thumb(read_image(root / "bc.jpg"), 360))]
    body += [_pose_section(root, manifest, fps), _audio_section(root, fps), _depth_section(root, n)]
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>talkprep: {title}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )
    path = root / REPORT_NAME
    write_text(path, page)
    return path
