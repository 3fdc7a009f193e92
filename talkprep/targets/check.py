"""`talkprep check OUT --target T`: validate a folder against one trainer's contract.

Each finding names its file group, what is wrong, the talkprep command that fixes it and, where
a trainer option decides what the loader reads, the flag to pass to the trainer.
"""

from __future__ import annotations

import csv
import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from talkprep import hints
from talkprep.manifest import read_manifest
from talkprep.targets.base import AudioChoice, Target
from talkprep.targets.record import dataset_fps, view_source
from talkprep.targets.render import RENDERERS, adnerf_face_rects, last_seconds_split

BOUND = 1.0
SCALE = 4.0
OFFSET = (0.0, 0.0, 0.0)
"""ER-NeRF/RAD-NeRF/SyncTalk defaults (main.py `--bound`, `--scale`, `--offset`)."""
AABB_TRAIN = np.array([-BOUND, -BOUND / 2, -BOUND, BOUND, BOUND / 2, BOUND])
"""renderer.py line 86 of ER-NeRF, RAD-NeRF and SyncTalk."""
MASK_SAMPLES = 24
"""Frames (evenly spaced) whose masks are derived as the trainer derives them."""
MIN_MOUTH_PIXELS = 20
"""TalkingGaussian's train_mouth.py line 118 waits for a frame with this many mouth pixels."""
AU_CSV = "au.csv"
GENERIC_AUDIO = "audio features"
"""talkprep check's audio group; the contract's audio choices replace it."""


@dataclass(frozen=True)
class Finding:
    """One file group's verdict under a target."""

    group: str
    problem: str | None = None
    fix: str = ""
    """The talkprep command that fixes the problem."""

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class TargetReport:
    """Findings, and the flags to pass to the trainer for this folder."""

    target: Target
    findings: list[Finding]
    flags: list[str]
    notes: list[str]

    train: str = ""
    """The trainer's own training command(s) for this folder, with the flags above."""

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]


def check_target(root: Path, target: Target) -> TargetReport:
    """Validate `root` against `target`'s contract (after talkprep's own format check)."""
    from talkprep.check import check_folder

    flags: list[str] = list(target.flags)
    notes: list[str] = list(target.notes)
    findings = [
        Finding(r.group, r.problem, r.fix or hints.shell(hints.check_words(root)))
        for r in check_folder(root)
        if not r.ok and not _own_layout(target, r.group, r.problem)
    ]
    ids = _split_ids(root)
    findings += _check_reads(root, target, ids)
    findings.append(_check_audio(root, target, flags))
    if target.au_columns:
        findings.append(_check_au(root, target))
    findings += [
        Finding(name, f"{name} makes {target.trainer}'s loader fail; move it out of the folder")
        for name in target.forbidden
        if (root / name).exists()
    ]
    if "tg_parsing" in target.renders:
        findings.append(_check_tg_masks(root, target, ids))
    if "synctalk_bs" in target.renders:
        findings.append(_check_synctalk_bs(root, target, flags, notes))
    if "gt_vertices" in target.renders:
        findings.append(_check_vertices(root, target))
    if target.box_check:
        findings.append(_check_box(root, ids))
    if target.val_seconds is not None:
        findings.append(_check_last_seconds(root, target, ids, notes))
    if target.face_rect == "adnerf":
        findings.append(_check_adnerf(root, target, flags))
    return TargetReport(target, findings, flags, notes, train_command(root, target, flags))


def train_command(root: Path, target: Target, flags: list[str]) -> str:
    """The trainer's training command(s) for `root`, to run from the trainer's checkout (empty
    when the contract names none)."""
    return hints.train_hint(root, target.train, flags)


def _process(root: Path, tasks: list[int] | None = None, force: bool = False, **option: Any) -> str:
    """`talkprep process` of the folder the view came from (then export the view again), with
    the video and options its manifest records."""
    source = view_source(root) or root
    return hints.process_hint(read_manifest(source), source, tasks, force, **option)


def _own_layout(target: Target, group: str, problem: str | None) -> bool:
    """Whether the contract, not talkprep's format check, judges this: which files and audio
    must be there (a view holds only what its trainer reads), the trainer's own parsing palette
    (checked by the masks it derives) and AD-NeRF's face_rect layout."""
    if group in (GENERIC_AUDIO, "(dataset)") or (problem or "").startswith("missing:"):
        return True
    rendered = {p for name in target.renders for p in RENDERERS[name].writes}
    if group in rendered and not group.startswith("transforms_"):
        return True
    return target.face_rect == "adnerf" and problem is not None and "face_rect" in problem


def _export(root: Path, target: Target) -> str:
    return hints.shell(hints.export_words(view_source(root) or root, target.name, _dest(root)))


def _dest(root: Path) -> Path | None:
    """-o of the export that rewrites the view in `root` (None: the folder is its own)."""
    return root if view_source(root) is not None else None


def _split_ids(root: Path) -> dict[str, np.ndarray]:
    ids = {}
    for split in ("train", "val"):
        try:
            doc = json.loads((root / f"transforms_{split}.json").read_text())
            ids[split] = np.array([int(f["img_id"]) for f in doc["frames"]], dtype=np.int64)
        except (OSError, ValueError, KeyError, TypeError):
            ids[split] = np.zeros(0, np.int64)
    return ids


def _fix_for(root: Path, target: Target, rel: str) -> str:
    for name in target.renders:
        renderer = RENDERERS[name]
        if any(fnmatch.fnmatch(rel, p) for p in renderer.writes):
            missing = [p for p in renderer.reads if not any(root.glob(p))]
            fix = _export(root, target)
            if missing:
                fix += f" (it reads {missing[0]}: {_process(root, **renderer.fix)})"
            return fix
    if any(fnmatch.fnmatch(rel, theirs) for theirs, _ in target.aliases):
        return _export(root, target)
    from talkprep.tasks import ALL_TASKS

    for task in ALL_TASKS:
        if any(fnmatch.fnmatch(rel, p) for p in task.makes):
            return _process(root, [task.number], force=True)
    return _process(root)


def _check_reads(root: Path, target: Target, ids: dict[str, np.ndarray]) -> list[Finding]:
    used = np.union1d(ids["train"], ids["val"])
    findings = []
    for pattern in target.reads:
        if pattern == AU_CSV and target.au_columns:
            continue  # _check_au reads it, columns and all: one row in the table
        if "*" not in pattern:
            ok = (root / pattern).is_file()
            problem = None if ok else "missing"
            findings.append(
                Finding(pattern, problem, "" if ok else _fix_for(root, target, pattern))
            )
            continue
        folder, name = pattern.split("/", 1)
        missing = [
            int(i) for i in used if not (root / folder / name.replace("*", str(i))).is_file()
        ]
        if missing:
            example = f"{folder}/{name.replace('*', str(missing[0]))}"
            findings.append(
                Finding(
                    pattern,
                    f"{len(missing)} of the split's {len(used)} frames lack it (first {example})",
                    _fix_for(root, target, example),
                )
            )
        else:
            findings.append(Finding(pattern))
    return findings


def audio_problem(root: Path, choice: AudioChoice) -> str | None:
    """Why the file cannot serve (None when it can)."""
    path = root / choice.file
    if not path.is_file():
        return "missing"
    if choice.feature == "wav":
        return None
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    rows = tuple(array.shape[1:])
    want = choice.rows
    if len(rows) != len(want) or any(
        w is not None and w != r for w, r in zip(want, rows, strict=False)
    ):
        shape = ", ".join("C" if w is None else str(w) for w in want)
        return f"rows of shape {rows}, {choice.file} needs [N, {shape}]"
    return None


def _check_audio(root: Path, target: Target, flags: list[str]) -> Finding:
    reasons = {}
    for choice in target.audio:
        reason = audio_problem(root, choice)
        if reason is None:
            if choice.flag:
                flags.append(choice.flag)
            return Finding(f"audio ({choice.file})")
        reasons[choice.file] = reason
        if choice.source and (root / choice.source).is_file():
            return Finding(
                f"audio ({choice.file})",
                f"{choice.file} is missing but {choice.source} has the same data",
                _export(root, target),
            )
    first = target.audio[0]
    listed = "; ".join(f"{k}: {v}" for k, v in reasons.items())
    source = view_source(root) or root
    return Finding(
        "audio",
        f"no audio features {target.trainer} can read ({listed})",
        hints.feature_hint(read_manifest(source), source, first.feature),
    )


def _au_header(root: Path) -> list[str] | None:
    try:
        with (root / "au.csv").open(newline="") as handle:
            return next(csv.reader(handle))
    except (OSError, StopIteration, csv.Error):
        return None


def _check_au(root: Path, target: Target) -> Finding:
    header = _au_header(root)
    fix = _process(root, [9], force=True)
    if header is None:
        return Finding("au.csv", "missing or unreadable", fix)
    lacking = [c for c in target.au_columns if c not in header]
    if lacking:
        return Finding("au.csv", f"lacks columns {lacking}", fix)
    return Finding("au.csv")


def _sample(ids: np.ndarray) -> np.ndarray:
    if len(ids) <= MASK_SAMPLES:
        return ids
    return ids[np.linspace(0, len(ids) - 1, MASK_SAMPLES).round().astype(int)]


def tg_masks(parsing_bgr: np.ndarray, teeth: np.ndarray) -> dict[str, np.ndarray]:
    """TalkingGaussian's face, hair and mouth masks exactly as its reader derives them."""
    rgb = parsing_bgr[..., ::-1].astype(np.float64)
    face = (rgb[..., 2] > 254) & (rgb[..., 0] == 0) & (rgb[..., 1] == 0)
    return {
        "face": face ^ teeth,
        "hair": (rgb[..., 0] < 1) & (rgb[..., 1] < 1) & (rgb[..., 2] < 1),
        "mouth": ((rgb == 100).all(axis=-1)) | teeth,
    }


def _check_tg_masks(root: Path, target: Target, ids: dict[str, np.ndarray]) -> Finding:
    from talkprep.io.images import read_image

    group = "TalkingGaussian masks"
    used = np.union1d(ids["train"], ids["val"])
    counts = {"face": 0, "hair": 0, "mouth": 0}
    for i in _sample(used):
        try:
            image = read_image(root / "parsing" / f"{i}.png")
            teeth = np.load(root / "teeth_mask" / f"{i}.npy", allow_pickle=False)
        except (OSError, ValueError):
            return Finding(group, f"frame {i}: parsing or teeth_mask unreadable")
        if teeth.dtype != np.bool_ or teeth.shape != image.shape[:2]:
            return Finding(group, f"teeth_mask/{i}.npy is {teeth.dtype} {teeth.shape}")
        masks = tg_masks(image, teeth)
        counts["face"] += int(masks["face"].any())
        counts["hair"] += int(masks["hair"].any())
        counts["mouth"] += int(masks["mouth"].sum() >= MIN_MOUTH_PIXELS)
    empty = [k for k, v in counts.items() if v == 0]
    if empty:
        return Finding(
            group,
            f"{', '.join(empty)} mask empty in every sampled frame (old palette?)",
            _export(root, target),
        )
    return Finding(group)


def _check_synctalk_bs(root: Path, target: Target, flags: list[str], notes: list[str]) -> Finding:
    path = root / "bs.npy"
    if not path.is_file():
        flags.append("--au45")
        notes.append(
            "no bs.npy: SyncTalk reads au.csv's AU45 with --au45; for blendshapes run "
            f"{_process(root, [4], force=True, blendshapes=True)}, then {_export(root, target)}"
        )
        return Finding("bs.npy (--au45 instead)")
    try:
        bs = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return Finding("bs.npy", f"unreadable ({exc})")
    if bs.ndim != 2 or bs.shape[1] != 52 or not np.isfinite(bs).all():
        return Finding("bs.npy", f"shape {bs.shape}, expected finite [N, 52]")
    if np.abs(bs[:, -1]).max() > 1e-6:
        return Finding(
            "bs.npy",
            "last column is not SyncTalk's trailing 0: the columns are MediaPipe's, one off",
            _export(root, target),
        )
    return Finding("bs.npy")


def _check_vertices(root: Path, target: Target) -> Finding:
    import torch

    try:
        params = torch.load(root / "track_params.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        return Finding("track_params.pt vertices", f"unreadable ({exc})")
    vertices = params.get("vertices") if isinstance(params, dict) else None
    n = len(params["euler"]) if isinstance(params, dict) and "euler" in params else None
    if vertices is None:
        return Finding("track_params.pt vertices", "no 'vertices' key", _export(root, target))
    if vertices.ndim != 3 or vertices.shape[2] != 3 or len(vertices) != n:
        return Finding(
            "track_params.pt vertices", f"shape {tuple(vertices.shape)}, expected [N, V, 3]"
        )
    if not torch.isfinite(vertices).all():
        return Finding("track_params.pt vertices", "not finite", _export(root, target))
    return Finding("track_params.pt vertices")


def face_points_ngp(root: Path, ids: np.ndarray) -> np.ndarray:
    """Every face point of the given frames in the NeRF trainers' box coordinates [M, 478, 3].

    The world of transforms_*.json is the head frame in metres; `nerf_matrix_to_ngp` cycles its
    axes (x, y, z -> y, z, x) and scales by `--scale`.
    """
    import torch

    from talkprep.tasks.transforms import head_frame_mesh

    params = torch.load(root / "track_params.pt", map_location="cpu", weights_only=True)
    landmarks = np.load(root / "landmarks.npy", mmap_mode="r", allow_pickle=False)
    mesh = head_frame_mesh(
        np.asarray(landmarks[ids]), params["shape"].numpy(), params["rigid_index"].numpy()
    )
    return mesh[..., [1, 2, 0]] * SCALE + np.asarray(OFFSET)


def _check_box(root: Path, ids: dict[str, np.ndarray]) -> Finding:
    group = "face inside aabb_train"
    used = np.union1d(ids["train"], ids["val"])
    try:
        points = face_points_ngp(root, used)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        return Finding(group, f"cannot place the face points ({exc})")
    finite = np.isfinite(points).all(axis=-1)
    outside = finite & ((points < AABB_TRAIN[:3]) | (points > AABB_TRAIN[3:])).any(axis=-1)
    if outside.any():
        frame = int(used[np.flatnonzero(outside.any(axis=1))[0]])
        return Finding(
            group,
            f"{int(outside.sum())} face points of {int(outside.any(axis=1).sum())} frames lie "
            f"outside the box at --scale {SCALE:g} (first frame {frame})",
            _process(root, [4, 9], force=True),
        )
    return Finding(group)


def _check_last_seconds(
    root: Path, target: Target, ids: dict[str, np.ndarray], notes: list[str]
) -> Finding:
    group = f"split (last {target.val_seconds:g} s validate)"
    seconds = float(target.val_seconds or 0.0)
    fps = dataset_fps(root)
    used = np.union1d(ids["train"], ids["val"])
    train, val = last_seconds_split(used, fps, seconds)
    if len(used) and used[-1] - used[0] < round(seconds * fps):  # nothing before the last 12 s
        notes.append(
            f"the clip is {len(used) / fps:.1f} s: too short to keep the last {seconds:g} s for "
            "validation, so talkprep's 10:1 split is kept"
        )
    if not (np.array_equal(train, ids["train"]) and np.array_equal(val, ids["val"])):
        return Finding(group, "transforms_val.json is not the last frames", _export(root, target))
    return Finding(group)


def _check_adnerf(root: Path, target: Target, flags: list[str]) -> Finding:
    import torch

    from talkprep.geometry.jaw_contour import landmarks68
    from talkprep.targets.adnerf import FAR_MARGIN_M, NEAR_MARGIN_M, TESTSKIP_SHARE

    group = "face_rect (AD-NeRF's x, y, w, h)"
    try:
        docs = {
            s: json.loads((root / f"transforms_{s}.json").read_text()) for s in ("train", "val")
        }
        landmarks = np.load(root / "landmarks.npy", mmap_mode="r", allow_pickle=False)
        trans = torch.load(root / "track_params.pt", map_location="cpu", weights_only=True)["trans"]
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        return Finding(group, f"cannot read the transforms, landmarks or tracks ({exc})")
    distance = float(-np.nanmean(trans.numpy()[:, 2])) / 10.0
    testskip = max(1, len(docs["val"]["frames"]) // TESTSKIP_SHARE)
    flags.append(
        f"--near {distance - NEAR_MARGIN_M:.3f} --far {distance + FAR_MARGIN_M:.3f} "
        f"--testskip {testskip}"
    )
    for doc in docs.values():
        frames = doc["frames"]
        ids = np.array([f["img_id"] for f in frames], dtype=np.int64)
        h, w = int(doc.get("h", 2 * doc["cy"])), int(doc.get("w", 2 * doc["cx"]))
        want = adnerf_face_rects(landmarks68(np.asarray(landmarks[ids], np.float64)), h, w)
        have = np.array([f.get("face_rect", [0, 0, 0, 0]) for f in frames])
        if have.shape != want.shape or not np.array_equal(have, want):
            return Finding(group, "face_rect is not in AD-NeRF's layout", _export(root, target))
    return Finding(group)
