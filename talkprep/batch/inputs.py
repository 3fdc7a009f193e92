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
from talkprep.manifest import (
    MANIFEST_NAME,
    STATE_DIR,
    file_fingerprint,
    read_manifest,
    same_input,
)

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".flv", ".mpg", ".mpeg", ".wmv", ".ts"}
)
"""What counts as a video inside a folder given to `batch` (a file given by name always does)."""

RUN_STATE = frozenset({".talkprep.lock", STATE_DIR})
"""Entries a run makes before any output: a folder holding only these is free to use."""

MAX_STEM_BYTES = 200
"""A folder name keeps this much of a long stem, so that `-N` and its log's `.log` still fit
the file system's 255 bytes."""
_FREE = ""
_FOREIGN = "\0"


def collect_videos(inputs: Sequence[Path], root: Path) -> list[Path]:
    """Expand folders (recursively, videos by suffix) into absolute paths; drop repeats.

    Hidden folders, anything inside ROOT and any dataset folder are skipped, so a rerun never
    picks up a dataset's own preview video as an input.
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


def _is_dataset(folder: Path) -> bool:
    """Whether a folder is a talkprep dataset (its preview.mp4 is never an input)."""
    return (folder / STATE_DIR / MANIFEST_NAME).is_file()


def _videos_in(folder: Path, root: Path) -> Iterable[Path]:
    for current, dirs, files in os.walk(folder):
        here = Path(current)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and here / d != root and not _is_dataset(here / d)
        )
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_SUFFIXES:
                yield here / name


def folder_stem(video: Path) -> str:
    """A video's default folder name: its stem, with characters unsafe in paths replaced."""
    stem = re.sub(r"[^\w.+-]+", "_", video.stem).strip("._") or "video"
    cut = stem.encode("utf-8", "surrogateescape")[:MAX_STEM_BYTES]
    return cut.decode("utf-8", "ignore").rstrip("._") or "video"


def assign_folders(videos: Sequence[Path], root: Path) -> list[str]:
    """One folder name under ROOT per video (same order), unique and stable across reruns."""
    existing = _Existing(root)
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for video in videos:  # first: videos that already have a folder here
        family = existing.family(folder_stem(video))
        if not family:
            continue
        fingerprint = _fingerprint(video)
        for name in family:
            if name not in taken and same_input(existing.state(name), video, fingerprint or ""):
                names[video] = name
                taken.add(name)
                break
    for video in videos:
        if video in names:
            continue
        stem = folder_stem(video)
        number = 1
        name = stem
        while name in taken or existing.state(name) != _FREE:
            number += 1
            name = f"{stem}-{number}"
        names[video] = name
        taken.add(name)
    return [names[v] for v in videos]


class _Existing:
    """ROOT's entries, indexed by stem; each one's state read only when asked (a ROOT of
    thousands of datasets is listed once, and only the manifests that matter are read)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.families: dict[str, list[tuple[int, str]]] = {}
        self.states: dict[str, str] = {}
        names = [e.name for e in os.scandir(root)] if root.is_dir() else []
        self.names = set(names)
        for name in names:
            self.families.setdefault(name, []).append((1, name))
            match = _NUMBERED.fullmatch(name)
            if match:
                self.families.setdefault(match.group(1), []).append((int(match.group(2)), name))

    def family(self, stem: str) -> list[str]:
        """Existing entries named `stem` or `stem-N`, in that order."""
        return [name for _, name in sorted(self.families.get(stem, []))]

    def state(self, name: str) -> str:
        """The entry's input fingerprint, _FREE (absent, or only run state) or _FOREIGN."""
        if name not in self.names:
            return _FREE
        if name not in self.states:
            self.states[name] = _entry_state(self.root / name)
        return self.states[name]


_NUMBERED = re.compile(r"(.+)-(\d+)")


def _entry_state(folder: Path) -> str:
    if not folder.is_dir() or folder.is_symlink():
        return _FOREIGN
    fingerprint = (read_manifest(folder).get("input") or {}).get("fingerprint")
    if isinstance(fingerprint, str) and fingerprint:
        return fingerprint
    if {p.name for p in folder.iterdir()} <= RUN_STATE:
        return _FREE
    return _FOREIGN


def _fingerprint(video: Path) -> str | None:
    try:
        return file_fingerprint(video)
    except OSError:
        return None
