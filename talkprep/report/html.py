"""OUT/report.html: the dataset's quality at a glance, self-contained (images inline), from disk.

Warnings come first, in plain words; every figure is graded green, amber or red against the
threshold printed beside it (talkprep.report.quality). Then the pictures that show what the
figures cannot: frames with their class map, 68 points and pose axes, gt and torso samples, the
worst frames, pose, audio and depth over time, and the configuration that made the folder.

Every section is drawn from the files present, so the report works on partial datasets and on
folders made by other pipelines. Every value from the manifest or a file name is escaped: a
crafted manifest cannot inject markup, and the page forbids scripts altogether.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.metadata
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from talkprep import __version__
from talkprep.errors import OutputError
from talkprep.geometry.parsing_defects import DEFECT_FRAME_LIMITS, DEFECT_WORDS
from talkprep.hints import shell
from talkprep.io.atomic import write_text
from talkprep.io.audio import read_wav
from talkprep.io.images import encode_jpeg, frame_indices, read_image
from talkprep.io.prefetch import read_ahead
from talkprep.manifest import STATE_DIR, read_manifest
from talkprep.report.fitness import screening_section, sync_section
from talkprep.report.frames import FolderView
from talkprep.report.overlays import ClassSource, draw_index, fit_side
from talkprep.report.preview import PREVIEW_NAME
from talkprep.report.quality import (
    CLIP_LEVEL,
    THRESHOLDS,
    Graded,
    Threshold,
    clipped_share,
    collect_values,
    grade_all,
    length_threshold,
    mask_jumps,
    worst_frames,
)
from talkprep.report.svg import envelope, envelope_rate, line_plot
from talkprep.semantics import MASK_JUMP_KEY, SEMANTICS_DIR

REPORT_NAME = "report.html"
Progress = Callable[..., Iterable[Any]]
GENERATOR = "talkprep report"
REPORT_DIGEST = "report.sha256"
"""In OUT/.talkprep/: the SHA-256 of the report.html talkprep last wrote."""
"""Written into the page's <meta name="generator">: marks a report.html as talkprep's own."""
CONTACT_FRAMES = 8
THUMB_SIDE = 240
PAIR_SIDE = 170
REFERENCE_SIDE_PX = 512
"""Tracking-error thresholds are stated for a 512 px frame (RAD-NeRF's usual size)."""
PLATE_SIDE = 360
DEPTH_SAMPLES = 4
FEATURE_FILES = ("aud_hu.npy", "aud_eo.npy", "aud_ds.npy", "aud_mel.npy")
TASK_STATUSES = ("done", "skipped", "failed", "blocked", "running", "pending")
LIBRARIES = ("mediapipe", "torch", "transformers", "av", "opencv-python", "numpy", "scipy")
SECTIONS: tuple[tuple[str, str], ...] = (
    ("verdict", "Verdict and warnings"),
    ("figures", "Quality figures"),
    ("config", "Configuration"),
    ("tasks", "Tasks"),
    ("frames", "Frames with class map, 68 points and pose axes"),
    ("samples", "gt and torso samples"),
    ("worst", "Worst frames"),
    ("plate", "Background plate"),
    ("pose", "Head pose and tracking error"),
    ("masks", "Mask stability"),
    ("audio", "Audio"),
    ("sync", "Audio-video sync and silence"),
    ("screening", "Frame screening"),
    ("depth", "Depth samples"),
    ("preview", "Preview video"),
)
"""Every section the page has, in order, as (id, heading): each is always present."""

_STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
.done, .skipped { color: #1a7f37; } .failed, .blocked, .running { color: #c62828; }
.sheet img { margin: 2px; } figure { margin: 8px 0; } figcaption { font-size: 13px; }
.warn { color: #b26a00; } code { font-size: 12px; } .missing { color: #777; }
.green { background: #dff3e3; } .amber { background: #ffefc7; } .red { background: #fbd5d5; }
h3 { font-size: 14px; margin: 10px 0 4px; }
.verdict { font-size: 16px; padding: 8px 12px; border-radius: 4px; display: inline-block; }
ul.warnings li { margin: 3px 0; } .legend span { display: inline-block; margin-right: 14px; }
.swatch { display: inline-block; width: 14px; height: 14px; border: 1px solid #888;
  vertical-align: middle; margin-right: 4px; }
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; media-src *"
"""No script runs in the page, whatever a manifest holds."""


def _e(value: Any) -> str:
    """Any value as escaped HTML text; bytes of a file name that are not UTF-8 (which Python
    keeps as lone surrogates) are shown as \\udcXX escapes instead of failing the page."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return html.escape(text, quote=True)


def _img(image_bgr: np.ndarray, title: str = "") -> str:
    data = base64.b64encode(encode_jpeg(image_bgr, 85)).decode()
    return f'<img src="data:image/jpeg;base64,{data}" title="{_e(title)}" alt="{_e(title)}">'


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


def _hex(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _record(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return _dict(_dict(manifest.get("tasks")).get(name))


def _missing(text: str) -> str:
    return f'<p class="missing">{_e(text)}</p>'


@dataclass
class _Measured:
    """Per-frame series the report computes itself from the files."""

    mask_jump: np.ndarray
    reproj: np.ndarray | None
    clipped: float | None
    waveform: tuple[np.ndarray, np.ndarray, float, float] | None
    """aud.wav's per-column min and max, their rate per second, and the file's seconds."""
    parsing: tuple[np.ndarray, list[str]] | None = None
    """Per frame, the worst parsing-defect figure over its per-frame limit, and which one."""


def _strings(value: Any) -> list[str]:
    """A manifest's list of messages as strings (one message when it is not a list)."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _no_progress(items: Iterable[Any], **_: Any) -> Iterable[Any]:
    return items


def _region_maps(source: ClassSource, root: Path, n: int) -> Iterator[np.ndarray | None]:
    """Each frame's coarse-region map, decoded and mapped ahead in two threads."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield from read_ahead(pool, lambda i: source.read_regions(root, i), range(n))


def recorded_mask_jumps(manifest: dict[str, Any], n: int) -> np.ndarray | None:
    """The mask-jump series task 5 measured while it wrote semantics/ (None marks frame 0), when
    the manifest holds one for these n frames: it spares decoding every class map again."""
    record = _record(manifest, "parsing")
    series = _dict(record.get("info")).get(MASK_JUMP_KEY)
    if record.get("status") != "done" or not isinstance(series, list) or len(series) != n:
        return None
    if not all(v is None or isinstance(v, int | float) for v in series):
        return None
    return np.array([np.nan if v is None else float(v) for v in series], dtype=np.float64)


def recorded_defects(manifest: dict[str, Any], n: int) -> tuple[np.ndarray, list[str]] | None:
    """Per frame, the largest of task 5's defect figures as a multiple of its per-frame limit
    (NaN where none was measured) and the figure's key, from the series in task 5's info."""
    info = _dict(_record(manifest, "parsing").get("info"))
    ratios = np.full((len(DEFECT_FRAME_LIMITS), n), np.nan)
    for row, (key, limit) in enumerate(DEFECT_FRAME_LIMITS.items()):
        series = info.get(key)
        if not isinstance(series, list) or len(series) != n:
            continue
        ratios[row] = [
            v / limit if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
            for v in series
        ]
    if n == 0 or not np.isfinite(ratios).any():
        return None
    filled = np.where(np.isfinite(ratios), ratios, -np.inf)
    keys = list(DEFECT_FRAME_LIMITS)
    worst = filled.argmax(axis=0)
    values = np.where(np.isfinite(ratios).any(axis=0), filled.max(axis=0), np.nan)
    return values, [keys[k] for k in worst]


def _measure(view: FolderView, manifest: dict[str, Any], n: int, progress: Progress) -> _Measured:
    jumps = np.full(n, np.nan)
    if view.classes is not None:
        from_semantics = view.classes.folder == SEMANTICS_DIR
        recorded = recorded_mask_jumps(manifest, n) if from_semantics else None
        if recorded is not None:
            jumps = recorded
        else:
            maps = _region_maps(view.classes, view.root, n)
            jumps = mask_jumps(progress(maps, total=n, desc="report: masks", unit="frame"))
    reproj = None
    if view.track is not None and "reproj_err" in view.track:
        reproj = view.track["reproj_err"].reshape(-1)
    clipped = waveform = None
    if (view.root / "aud.wav").is_file():
        try:
            samples, rate = read_wav(view.root / "aud.wav")
        except (ValueError, EOFError, OSError):
            samples, rate = None, 0
        if samples is not None and rate:
            clipped = clipped_share(samples)
            low, high = envelope(samples)
            waveform = (low, high, envelope_rate(len(samples), rate), len(samples) / rate)
    return _Measured(jumps, reproj, clipped, waveform, recorded_defects(manifest, n))


def _length(manifest: dict[str, Any], fps: float) -> Threshold:
    """The clip length advised for the trainer the folder was made for (`--target`)."""
    from talkprep.targets import DEFAULT_TARGET, TARGETS

    name = _dict(manifest.get("config")).get("target")
    target = TARGETS.get(name if isinstance(name, str) else "", TARGETS[DEFAULT_TARGET])
    return length_threshold(target.trainer, target.advised_seconds, fps)


def _verdict(manifest: dict[str, Any], graded: list[Graded]) -> str:
    """The verdict line, then what the tasks said, then the figures beyond their limits."""
    warnings: list[str] = []
    tasks = sorted(_dict(manifest.get("tasks")).items(), key=lambda kv: _task_number(kv[1]))
    failed = 0
    for name, record in tasks:
        record = _dict(record)
        status = str(record.get("status", ""))
        if status in ("failed", "blocked", "running"):
            failed += 1
            reason = record.get("error") or "no reason recorded"
            warnings.append(f"task {record.get('number', '')} {name} {status}: {reason}")
        warnings += [f"task {name}: {w}" for w in _strings(record.get("warnings"))]
    beyond = [g.warning for g in graded if g.status != "green"]
    reds = sum(g.status == "red" for g in graded)
    ambers = sum(g.status == "amber" for g in graded)
    if not manifest:
        status, text = "amber", "No talkprep manifest: only the pictures below can be judged."
    elif failed or reds:
        status = "red"
        causes = [f"{failed} task(s) did not finish"] if failed else []
        causes += [f"{reds} figure(s) red"] if reds else []
        text = f"Fix before training: {' and '.join(causes)}."
    elif ambers:
        status, text = "amber", f"Usable; look at the {ambers} amber figure(s) below."
    else:
        status, text = "green", "Ready to train: every figure is within its green limit."
    parts = [f'<p class="verdict {status}">{_e(text)}</p>']
    for heading, items in (
        ("What the tasks said", warnings),
        ("Figures beyond their limits", beyond),
    ):
        if items:
            listed = "".join(f"<li>{_e(w)}</li>" for w in items)
            parts.append(f'<h3>{heading}</h3><ul class="warnings">{listed}</ul>')
    if not warnings and not beyond:
        parts.append("<p>No warnings.</p>")
    return "".join(parts)


def _trainers(root: Path, manifest: dict[str, Any]) -> str:
    """Which trainers can train on the folder, and the command each other one needs: the same
    lines as `talkprep process` and `talkprep check` print."""
    if not manifest:
        return ""
    from talkprep.targets.ready import readiness

    standings = readiness(root)
    ready = sum(s.ready for s in standings)
    items = "".join(
        f"<li>{_e(s.target.trainer)}: {'ready' if s.ready else 'not yet'}, "
        f"<code>{_e(s.how)}</code></li>"
        for s in sorted(standings, key=lambda s: not s.ready)
    )
    heading = f"Trainers that can train on it now ({ready} of {len(standings)})"
    return f'<h3>{heading}</h3><ul class="warnings">{items}</ul>'


def _figures_table(graded: list[Graded]) -> str:
    if not graded:
        return _missing("No quality figures: run `talkprep process` on this folder.")
    rows = ["<tr><th>figure</th><th>value</th><th>grade</th><th>threshold</th><th>why</th></tr>"]
    for g in graded:
        rows.append(
            f'<tr class="{g.status}"><td>{_e(g.threshold.label)}</td><td>{_e(g.shown)}</td>'
            f"<td>{g.status}</td><td>{_e(g.threshold.stated())}</td>"
            f"<td>{_e(g.threshold.why)}</td></tr>"
        )
    return f"<table>{''.join(rows)}</table>"


def _versions() -> str:
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def _config_section(manifest: dict[str, Any]) -> str:
    config = _dict(manifest.get("config"))
    if not config:
        return _missing("No configuration recorded (no talkprep manifest).")
    frames_info = _dict(_record(manifest, "frames").get("info"))
    audio_info = _dict(_record(manifest, "audio").get("info"))
    features = _dict(_dict(_record(manifest, "audio_features").get("info")).get("features"))
    crop = frames_info.get("crop_box")
    source = _dict(manifest.get("input"))
    crop_text = (
        "none (frames as decoded)"
        if not crop
        else f"{', '.join(f'{k} {v}' for k, v in crop.items())} px of the "
        f"{source.get('width', '?')}x{source.get('height', '?')} source, resized to "
        f"{config.get('size')} px"
        if isinstance(crop, dict)
        else crop
    )
    audio_text = (
        f"{audio_info.get('source', '?')} ({audio_info.get('codec', '?')}, "
        f"{audio_info.get('source_rate', '?')} Hz, {audio_info.get('source_channels', '?')} ch; "
        f"offset {audio_info.get('audio_minus_video_start_s', 0)} s)"
        if audio_info
        else "not made (task 1)"
    )
    models = [
        f"{name}: {_dict(rec).get('model') or 'built in'}"
        + (f" @ {_dict(rec)['revision']}" if _dict(rec).get("revision") else "")
        for name, rec in features.items()
    ]
    rows = [
        ("input video", _dict(manifest.get("input")).get("path", config.get("video"))),
        ("frames", f"{frames_info.get('width', '?')}x{frames_info.get('height', '?')} at "
                   f"{frames_info.get('fps', config.get('fps'))} fps"),
        ("crop box", crop_text),
        ("audio source", audio_text),
        ("target", config.get("target") or "not recorded (trainer-neutral folder)"),
        ("audio features", "; ".join(models) or ", ".join(config.get("audio_features") or [])),
        ("landmarks", "MediaPipe FaceMesh (478 points, refine_landmarks)"
                      + (f"; blendshapes {config['blendshape_model']}"
                         if config.get("blendshape_model") else "")),
        ("parser", f"{config.get('parser')}"
                   + (f" ({config['parser_weights']})" if config.get("parser_weights") else "")),
        ("depth", f"{config.get('depth')}"
                  + (f" ({config['depth_weights']})" if config.get("depth_weights") else "")),
        ("device", config.get("device")),
        ("made by", f"talkprep {manifest.get('talkprep_version', '?')}, "
                    f"updated {manifest.get('updated', '?')}"),
        ("libraries now", _versions()),
    ]  # fmt: skip
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _task_number(record: Any) -> float:
    number = _dict(record).get("number")
    return float(number) if isinstance(number, int | float) else 99.0


def _task_table(manifest: dict[str, Any]) -> str:
    tasks = sorted(_dict(manifest.get("tasks")).items(), key=lambda kv: _task_number(kv[1]))
    if not tasks:
        return _missing("No manifest: this folder was not made by talkprep.")
    rows = ["<tr><th>task</th><th>status</th><th>time</th><th>frames/s</th><th>figures</th></tr>"]
    for name, record in tasks:
        record = _dict(record)
        status = str(record.get("status", "?"))
        css = status if status in TASK_STATUSES else "failed"
        figures = _dict(record.get("figures"))
        shown = ", ".join(
            f"{k} {v}" for k, v in figures.items() if isinstance(v, int | float | str)
        )
        notes = [record["error"]] if record.get("error") else []
        notes += _strings(record.get("warnings"))
        note_html = "".join(f'<div class="warn">{_e(n)}</div>' for n in notes)
        wall = record.get("wall_s")
        wall_text = f"{wall:.1f} s" if isinstance(wall, int | float) else ""
        rate = record.get("frames_per_s")
        rate_text = f"{rate:g}" if isinstance(rate, int | float) and record.get("frames") else ""
        rows.append(
            f"<tr><td>{_e(record.get('number', ''))} {_e(name)}</td>"
            f'<td class="{css}">{_e(status)}</td><td>{_e(wall_text)}</td>'
            f"<td>{_e(rate_text)}</td><td><code>{_e(shown)}</code>{note_html}</td></tr>"
        )
    return f"<table>{''.join(rows)}</table>"


def _legend(view: FolderView) -> str:
    parts = []
    if view.classes is not None:
        source = (
            "semantics/{i}.png classes"
            if view.classes.folder != "parsing"
            else ("parsing/{i}.png labels (colours as in the files)")
        )
        swatches = "".join(
            f'<span><i class="swatch" style="background:{_hex(colour)}"></i>{_e(name)}</span>'
            for name, colour in view.classes.legend
        )
        parts.append(f"<div class='legend'>{_e(source)}, tinted and outlined: {swatches}</div>")
    parts.append(
        "<div class='legend'><span><i class='swatch' style='background:#ffff00'></i>"
        "68 points (ori_imgs/{i}.lms)</span><span><i class='swatch' style='background:#ff0000'>"
        "</i>head x (subject's left)</span><span><i class='swatch' style='background:#00c800'>"
        "</i>head y (up)</span><span><i class='swatch' style='background:#0040ff'></i>head z "
        "(out of the face)</span> label: #frame index, time</div>"
    )
    return "".join(parts)


def _picks(indices: list[int], count: int) -> list[int]:
    """`count` frame indices spread evenly over the frames present."""
    n = len(indices)
    return [indices[k] for k in np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(int))]


def _contact_sheet(view: FolderView, indices: list[int]) -> str:
    picks = _picks(indices, CONTACT_FRAMES)
    cells = [_img(view.frame(i, THUMB_SIDE), view.label(i)) for i in picks]
    return f'{_legend(view)}<div class="sheet">{"".join(cells)}</div>'


def _samples(view: FolderView, indices: list[int]) -> str:
    cells = []
    for i in _picks(indices, CONTACT_FRAMES // 2):
        for image in (view.gt(int(i), THUMB_SIDE), view.torso(int(i), THUMB_SIDE)):
            if image is not None:
                cells.append(_img(image, view.label(int(i))))
    if not cells:
        return _missing("No gt_imgs/ or torso_imgs/ yet (task 7).")
    return (
        "<p>Left of each pair the gt image (background replaced by bc.jpg), right the torso "
        "image over a checkerboard (transparent = checkerboard): hair or head left in the torso, "
        "or holes in the neck, show here.</p>"
        f'<div class="sheet">{"".join(cells)}</div>'
    )


def _worst_section(view: FolderView, measured: _Measured) -> str:
    parts = []
    rows = ["<tr><th>kind</th><th>frame</th><th>time</th><th>value</th></tr>"]
    images = []
    if measured.reproj is not None and np.isfinite(measured.reproj).any():
        for i in worst_frames(measured.reproj):
            rows.append(
                f"<tr><td>tracking error (the frame's median point, px of this frame)</td>"
                f"<td>{i}</td><td>{i / view.fps:.2f} s</td>"
                f"<td>{measured.reproj[i]:.2f} px</td></tr>"
            )
            if view.has_frame(int(i)):
                images.append(_img(view.frame(int(i), THUMB_SIDE), f"error {view.label(int(i))}"))
    pairs = []
    if np.isfinite(measured.mask_jump).any():
        for i in worst_frames(measured.mask_jump):
            rows.append(
                f"<tr><td>mask jump</td><td>{i}</td><td>{i / view.fps:.2f} s</td>"
                f"<td>{measured.mask_jump[i]:.3f}</td></tr>"
            )
            if not (view.has_frame(int(i) - 1) and view.has_frame(int(i))):
                continue
            pair = [view.frame(int(i) - 1, PAIR_SIDE), view.frame(int(i), PAIR_SIDE)]
            if pair[0].shape == pair[1].shape:
                pairs.append(_img(np.hstack(pair), f"{view.label(int(i) - 1)} and next"))
    defects = []
    if measured.parsing is not None:
        ratios, kinds = measured.parsing
        for i in worst_frames(ratios):
            if ratios[i] <= 1.0:
                break
            rows.append(
                f"<tr><td>parsing: {_e(DEFECT_WORDS[kinds[i]])}</td><td>{i}</td>"
                f"<td>{i / view.fps:.2f} s</td><td>{ratios[i]:.1f} x its limit</td></tr>"
            )
            torso = view.torso(int(i), PAIR_SIDE) if view.has_frame(int(i)) else None
            if torso is not None:
                pair = np.hstack([view.frame(int(i), PAIR_SIDE), torso])
                defects.append(_img(pair, f"parsing {view.label(int(i))}"))
    if len(rows) == 1:
        return _missing("No tracking errors or class maps yet (tasks 4 and 5).")
    parts.append(f"<table>{''.join(rows)}</table>")
    if images:
        parts.append(f'<p>Largest tracking error:</p><div class="sheet">{"".join(images)}</div>')
    if pairs:
        parts.append(
            "<p>Largest mask jumps, each frame beside the one before it:</p>"
            f'<div class="sheet">{"".join(pairs)}</div>'
        )
    if defects:
        parts.append(
            "<p>Worst parsing frames (the figure furthest past its per-frame limit), each with "
            "its classes and beside its torso image:</p>"
            f'<div class="sheet">{"".join(defects)}</div>'
        )
    return "".join(parts)


def _flagged(manifest: dict[str, Any], n: int) -> np.ndarray:
    flagged = np.zeros(n, bool)
    info = _dict(_record(manifest, "landmarks").get("info"))
    for key in ("interpolated", "invalid"):
        for run in info.get(key, []) or []:
            if isinstance(run, list | tuple) and len(run) == 2:
                first, last = (int(v) for v in run)
                flagged[max(first, 0) : max(last + 1, 0)] = True
    return flagged


def _pose_section(view: FolderView, manifest: dict[str, Any], frame_side: float) -> str:
    track = view.track
    if track is None:
        return _missing("No track_params.pt yet (task 4).")
    euler = np.degrees(track["euler"])
    trans = track["trans"]
    flagged = _flagged(manifest, len(euler))
    fps = view.fps
    parts = [
        "<p>Shaded red: frames interpolated or left out of the splits.</p>",
        line_plot(
            {"pitch": euler[:, 0], "yaw": euler[:, 1], "roll": euler[:, 2]},
            "rotation (degrees, AD-NeRF euler angles)", "deg", flagged, fps,
        ),
    ]  # fmt: skip
    for axis, name in enumerate("xyz"):
        parts.append(
            line_plot({name: trans[:, axis]}, f"translation {name} (decimetres, AD-NeRF units)",
                      "dm", flagged, fps)
        )  # fmt: skip
    if "reproj_err" in track:
        threshold = THRESHOLDS["reproj_median_px_512"]
        to_frame = frame_side / REFERENCE_SIDE_PX
        limits = {"amber": threshold.amber * to_frame, "red": threshold.red * to_frame}
        parts.append(
            line_plot({"median rigid-point error": track["reproj_err"]},
                      "tracking reprojection error per frame (px of this frame)", "px",
                      flagged, fps, limits=limits)
        )  # fmt: skip
    return "".join(parts)


def _masks_section(measured: _Measured, fps: float) -> str:
    if not np.isfinite(measured.mask_jump).any():
        return _missing("No class maps yet (task 5).")
    threshold = THRESHOLDS["mask_jump_p95"]
    return line_plot(
        {"changed share": measured.mask_jump},
        "mask jump: share of the person whose region (head, neck, torso) changed since frame i-1",
        "",
        None,
        fps,
        limits={"amber": threshold.amber, "red": threshold.red},
    )


def _audio_section(
    root: Path, manifest: dict[str, Any], measured: _Measured, n: int, fps: float
) -> str:
    parts = []
    if measured.waveform is not None:
        low, high, rate, seconds = measured.waveform
        clipped = np.maximum(np.abs(low), np.abs(high)) >= CLIP_LEVEL
        parts.append(
            f"<p>aud.wav: {seconds:.2f} s for {n} frames ({n / fps:.2f} s). "
            f"Shaded red: clipped samples.</p>"
        )
        parts.append(
            line_plot({"min": low, "max": high}, f"waveform ({seconds:.2f} s)", "", clipped,
                      rate, per_frame=False)
        )  # fmt: skip
    features = _dict(_dict(_record(manifest, "audio_features").get("info")).get("features"))
    for name in FEATURE_FILES:
        if (root / name).exists():
            array = np.load(root / name, mmap_mode="r")
            heat = cv2.applyColorMap(_feature_image(array), cv2.COLORMAP_VIRIDIS)
            heat = cv2.resize(heat, (880, 160), interpolation=cv2.INTER_AREA)
            rates = [
                _dict(f).get("rate_hz") for f in features.values() if _dict(f).get("file") == name
            ]
            rate_hz = rates[0] if rates and isinstance(rates[0], int | float) else None
            per_row = f"{rate_hz} rows per second" if rate_hz else f"{fps:g} rows per second"
            parts.append(
                f"<figure><figcaption>{_e(name)}: shape {_e(list(array.shape))}; x: time 0 to "
                f"{len(array) / float(rate_hz or fps):.2f} s ({_e(per_row)}); y: feature "
                f"channels</figcaption>{_img(heat, name)}</figure>"
            )
            break
    return "".join(parts) or _missing("No aud.wav or audio features yet (tasks 1-2).")


def _feature_image(array: np.ndarray) -> np.ndarray:
    """Features as uint8 [channels, frames], 1st to 99th percentile stretched over 0-255.

    Scaled in place and in file order, then transposed as bytes: the floats are never copied
    into the transposed order (percentiles do not depend on the order).
    """
    rows = np.asarray(array, dtype=np.float32).reshape(len(array), -1)
    lo, hi = np.percentile(rows, [1, 99])
    scaled = rows - lo
    scaled /= max(hi - lo, 1e-6)
    np.clip(scaled, 0, 1, out=scaled)
    scaled *= 255
    return np.ascontiguousarray(scaled.astype(np.uint8).T)


def _depth_section(root: Path, fps: float) -> str:
    indices = frame_indices(root / "depth", ".png")
    if not indices:
        return _missing("No depth/ yet (task 8).")
    picks = np.unique(np.linspace(0, len(indices) - 1, DEPTH_SAMPLES).round().astype(int))
    cells = []
    for k in picks:
        depth = cv2.imread(str(root / "depth" / f"{indices[k]}.png"), cv2.IMREAD_UNCHANGED)
        if depth is not None:
            thumb = fit_side(colour_depth(depth), THUMB_SIDE)[0]
            label = f"depth #{indices[k]}  {indices[k] / fps:.2f} s"
            cells.append(_img(draw_index(thumb, label), label))
    return f'<p>Near is bright; black is unknown.</p><div class="sheet">{"".join(cells)}</div>'


def _preview_section(root: Path) -> str:
    if (root / PREVIEW_NAME).is_file():
        return (
            f'<p><a href="{PREVIEW_NAME}">{PREVIEW_NAME}</a>: frames with overlays beside the gt '
            "image, with the audio, to check lip sync and masks by eye and ear.</p>"
            f'<video controls preload="metadata" width="880" src="{PREVIEW_NAME}"></video>'
        )
    command = shell(["talkprep", "preview", root])
    return _missing(f"No {PREVIEW_NAME} yet: make it with `{command}`.")


def _section(key: str, heading: str, content: str) -> str:
    return f'<section id="{key}"><h2>{_e(heading)}</h2>{content}</section>'


def _check_owned(path: Path) -> None:
    """Refuse to replace a report.html that talkprep did not write: talkprep's own is the one
    whose SHA-256 it recorded when it wrote it (REPORT_DIGEST); a folder from before that record
    is recognised by the exact generator tag in the page's head, never by a title alone."""
    if not path.exists():
        return
    recorded = path.parent / STATE_DIR / REPORT_DIGEST
    if recorded.is_file():
        if recorded.read_text().strip() == hashlib.sha256(path.read_bytes()).hexdigest():
            return
    else:
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace")
        if f'<meta name="generator" content="{GENERATOR}">' in head:
            return
    raise OutputError(f"{path} exists and was not written by talkprep; move it away first")


def build_report(root: Path, progress: Progress = _no_progress) -> Path:
    """Write root/report.html from whatever dataset files and manifest are present.

    `progress` wraps the one per-frame pass (reading every class map for the mask jumps), e.g.
    `Console.progress`.
    """
    path = root / REPORT_NAME
    _check_owned(path)
    manifest = read_manifest(root)
    indices = frame_indices(root / "ori_imgs", ".jpg")
    n = len(indices)
    frames_info = _dict(_record(manifest, "frames").get("info"))
    fps_value = frames_info.get("fps", 25.0)
    fps = float(fps_value) if isinstance(fps_value, int | float) and fps_value > 0 else 25.0
    sides = [frames_info.get(k) for k in ("width", "height")]
    frame_side = max([float(v) for v in sides if isinstance(v, int | float)] or [512.0])
    view = FolderView(root, fps)
    measured = _measure(view, manifest, indices[-1] + 1 if indices else 0, progress)
    values: dict[str, float] = {}
    if np.isfinite(measured.mask_jump).any():
        values["mask_jump_p95"] = float(np.nanpercentile(measured.mask_jump, 95))
    if measured.clipped is not None:
        values["clipped_share"] = measured.clipped
    graded = grade_all(collect_values(manifest, n, values), _length(manifest, fps))
    title = _e(Path(str(_dict(manifest.get("input")).get("path", root))).name)
    content = {
        "verdict": _verdict(manifest, graded) + _trainers(root, manifest),
        "figures": _figures_table(graded),
        "config": _config_section(manifest),
        "tasks": _task_table(manifest),
        "frames": _contact_sheet(view, indices) if n else _missing("No ori_imgs/ yet (task 3)."),
        "samples": _samples(view, indices) if n else _missing("No frames yet (task 3)."),
        "worst": _worst_section(view, measured) if n else _missing("No frames yet."),
        "plate": _img(fit_side(read_image(root / "bc.jpg"), PLATE_SIDE)[0], "bc.jpg")
        if (root / "bc.jpg").exists()
        else _missing("No bc.jpg yet (task 6)."),
        "pose": _pose_section(view, manifest, frame_side),
        "masks": _masks_section(measured, fps),
        "audio": _audio_section(root, manifest, measured, n, fps),
        "sync": sync_section(_record(manifest, "transforms"), fps),
        "screening": screening_section(view, _record(manifest, "transforms"), n),
        "depth": _depth_section(root, fps),
        "preview": _preview_section(root),
    }
    body = [
        f"<h1>talkprep report: {title}</h1>",
        f"<p>{n} frames at {fps:g} fps ({n / fps:.2f} s) in <code>{_e(root)}</code>; "
        f"report by talkprep {_e(__version__)}.</p>",
        *(_section(key, heading, content[key]) for key, heading in SECTIONS),
    ]
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'>"
        f'<meta name="generator" content="{GENERATOR}">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>talkprep: {title}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    body_bytes = page.encode("utf-8")
    (root / STATE_DIR).mkdir(exist_ok=True)
    write_text(root / STATE_DIR / REPORT_DIGEST, hashlib.sha256(body_bytes).hexdigest() + "\n")
    write_text(path, page)
    return path
