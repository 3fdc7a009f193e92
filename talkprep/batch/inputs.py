"""Which videos a batch processes, and which folder under ROOT each one gets.

A video keeps its folder across reruns, whatever else is added to the batch: a folder whose
manifest records the same input fingerprint is that video's, wherever the file now lives. New
videos get their stem, or `stem-2`, `stem-3`... when the stem is taken by another input or by a
folder that holds something else; a folder talkprep did not fill is never used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from talkprep.errors import UsageError
from talkprep.manifest import STATE_DIR, file_fingerprint, read_manifest

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".flv", ".mpg", ".mpeg", ".wmv", ".ts"}
)
"""What counts as a video inside a folder given to `batch` (a file given by name always does)."""

RUN_STATE = frozenset({".talkprep.lock", STATE_DIR})
"""Entries a run makes before any output: a folder holding only these is free to use."""

_FREE = ""
_FOREIGN = "\0"


def collect_videos(inputs: Sequence[Path], root: Path) -> list[Path]:
    """Expand folders (recursively, videos by suffix) into absolute paths; drop repeats.

    Hidden folders and anything inside ROOT are skipped, so a rerun never picks up a dataset's
    own preview video as an input.
    """
    root = root.resolve()
    videos: dict[Path, None] = {}
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            videos.update(dict.fromkeys(_videos_in(path.resolve(), root)))
        elif path.exists():
            videos[path.resolve()] = None
        else:
            raise UsageError(f"{path} does not exist; give video files or folders of videos")
    if not videos:
        raise UsageError(
            f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) in {', '.join(map(str, inputs))}"
        )
    return list(videos)


def _videos_in(folder: Path, root: Path) -> Iterable[Path]:
    for current, dirs, files in os.walk(folder):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and here / d != root)
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_SUFFIXES:
                yield here / name


def folder_stem(video: Path) -> str:
    """A video's default folder name: its stem, with characters unsafe in paths replaced."""
    stem = re.sub(r"[^\w.+-]+", "_", video.stem).strip("._") or "video"
    return stem


def assign_folders(videos: Sequence[Path], root: Path) -> list[str]:
    """One folder name under ROOT per video (same order), unique and stable across reruns."""
    existing = _existing_folders(root)
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for video in videos:  # first: videos that already have a folder here
        family = _family(folder_stem(video), existing)
        if not family:
            continue
        fingerprint = _fingerprint(video)
        for name in family:
            if name not in taken and existing[name] == fingerprint:
                names[video] = name
                taken.add(name)
                break
    for video in videos:
        if video in names:
            continue
        stem = folder_stem(video)
        number = 1
        name = stem
        while name in taken or existing.get(name, _FREE) != _FREE:
            number += 1
            name = f"{stem}-{number}"
        names[video] = name
        taken.add(name)
    return [names[v] for v in videos]


def _family(stem: str, existing: dict[str, str]) -> list[str]:
    """Existing folders named `stem` or `stem-N`, in that order."""
    pattern = re.compile(rf"{re.escape(stem)}(?:-(\d+))?")
    found = [(m.group(1), n) for n in existing if (m := pattern.fullmatch(n))]
    return [n for _, n in sorted(found, key=lambda f: int(f[0] or 1))]


def _existing_folders(root: Path) -> dict[str, str]:
    """Each entry of ROOT: its input fingerprint, _FREE (only run state) or _FOREIGN."""
    if not root.is_dir():
        return {}
    existing: dict[str, str] = {}
    for entry in os.scandir(root):
        if not entry.is_dir():
            existing[entry.name] = _FOREIGN
            continue
        folder = Path(entry.path)
        fingerprint = (read_manifest(folder).get("input") or {}).get("fingerprint")
        if isinstance(fingerprint, str) and fingerprint:
            existing[entry.name] = fingerprint
        elif {p.name for p in folder.iterdir()} <= RUN_STATE:
            existing[entry.name] = _FREE
        else:
            existing[entry.name] = _FOREIGN
    return existing


def _fingerprint(video: Path) -> str | None:
    try:
        return file_fingerprint(video)
    except OSError:
        return None
