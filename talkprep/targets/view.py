"""Writing a trainer's view of a processed folder, in place or into another folder (export).

In place, only the files the trainer needs beyond talkprep's canonical ones are written (and
files talkprep itself wrote may be re-rendered). An export hard-links every file the trainer
reads that is the same as talkprep's (copying across file systems) and writes the rendered ones.
Either way a file that talkprep did not write is never overwritten: the view's own record,
`.talkprep/view.json`, lists what talkprep wrote there.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from talkprep.errors import OutputError, UsageError
from talkprep.io.atomic import (
    atomic_path,
    os_error_reason,
    write_bytes,
    write_json,
    write_npy,
    write_torch,
)
from talkprep.io.audio import write_wav
from talkprep.io.images import encode_jpeg, write_png
from talkprep.io.paths import under_symlink
from talkprep.manifest import STATE_DIR, read_manifest
from talkprep.targets.base import Target
from talkprep.targets.record import VIEW_RECORD, dataset_fps, read_record
from talkprep.targets.render import RENDERERS, Progress

CLOCK_SLACK_S = 1.0
"""File times come from a coarser clock than time.time(): a resumed export owns files this much
older than its start."""
CANONICAL_DIR = f"{STATE_DIR}/canonical"
"""Where an in-place view keeps the canonical files it re-rendered."""
SUPPORT_FILES = ("landmarks.npy", "track_params.pt", "au.csv")
"""Exported with every view: what `check --target` reads besides the trainer's own files (the
face points of the box check, AD-NeRF's near/far) and what `talkprep check` expects of any
dataset. The manifest stays behind (it lists files a view leaves out); the view's record keeps
the frame rate."""


def _no_progress(iterable: Any, total: int | None = None, desc: str = "", unit: str = "") -> Any:
    return iterable


def _talkprep_outputs(root: Path) -> list[str]:
    """Output patterns of the tasks whose records the folder's manifest holds (talkprep's files)."""
    from talkprep.tasks import ALL_TASKS

    records = read_manifest(root).get("tasks", {})
    return [p for task in ALL_TASKS if task.name in records for p in task.makes]


@dataclass
class ViewWriter:
    """Writes a view's files into `root`, refusing to replace a file talkprep did not write.

    In place, a canonical file a view re-renders (TalkingGaussian's parsing colours, AD-NeRF's
    transforms) is first kept under `.talkprep/canonical/` and put back before the next view is
    written; a file the pipeline has rewritten since (another mtime) is left as it is.
    """

    root: Path
    owned: set[str]
    patterns: list[str]
    in_place: bool
    replaced: dict[str, int]
    """Canonical files this folder's view replaced: path -> mtime_ns of the view's version."""
    resumed_since: float | None = None
    """Start (epoch s) of an export into this folder that never finished: files created after
    that (by their ctime, which a copy keeping its source's mtime still moves) are talkprep's
    too, so a killed export resumes."""

    @classmethod
    def open(cls, root: Path, in_place: bool) -> ViewWriter:
        record = read_record(root)
        started = record.get("started")
        unfinished = record.get("complete") is False and isinstance(started, (int, float))
        return cls(
            root,
            set(record.get("files", [])),
            _talkprep_outputs(root) if in_place else [],
            in_place,
            dict(record.get("replaced", {})),
            float(started) - CLOCK_SLACK_S if unfinished else None,
        )

    def _canonical(self, rel: str) -> bool:
        return self.in_place and any(fnmatch.fnmatch(rel, p) for p in self.patterns)

    def _target(self, rel: str) -> Path:
        path = self.root / rel
        if os.path.lexists(path) and not self._ours(rel):
            raise OutputError(
                f"{path} exists and talkprep did not write it; move it away or export to "
                "another folder (-o DIR)"
            )
        canonical = self._canonical(rel) and path.is_file()
        if canonical and self.replaced.get(rel) != path.stat().st_mtime_ns:  # not the view's
            kept = self.root / CANONICAL_DIR / rel
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.unlink(missing_ok=True)
            os.link(path, kept)
        self.owned.add(rel)
        return path

    def _done(self, rel: str) -> None:
        if self._canonical(rel):
            self.replaced[rel] = (self.root / rel).stat().st_mtime_ns

    def _ours(self, rel: str) -> bool:
        if rel in self.owned or any(fnmatch.fnmatch(rel, p) for p in self.patterns):
            return True
        if self.resumed_since is None:
            return False
        with contextlib.suppress(OSError):
            return os.lstat(self.root / rel).st_ctime >= self.resumed_since
        return False

    def png(self, rel: str, image: np.ndarray) -> None:
        write_png(self._target(rel), image)
        self._done(rel)

    def jpeg(self, rel: str, image: np.ndarray) -> None:
        write_bytes(self._target(rel), encode_jpeg(image))
        self._done(rel)

    def npy(self, rel: str, array: np.ndarray) -> None:
        write_npy(self._target(rel), array)
        self._done(rel)

    def wav(self, rel: str, samples: np.ndarray, rate: int) -> None:
        write_wav(self._target(rel), samples, rate)
        self._done(rel)

    def json(self, rel: str, document: Any) -> None:
        write_json(self._target(rel), document)
        self._done(rel)

    def torch(self, rel: str, obj: Any) -> None:
        write_torch(self._target(rel), obj)
        self._done(rel)

    def link(self, source: Path, rel: str) -> None:
        """Hard-link `source` to `rel` (a copy across file systems); nothing when already so."""
        path = self.root / rel
        if path.exists() and os.path.samefile(source, path):
            self.owned.add(rel)
            return
        path = self._target(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, note=False) as tmp:
            tmp.unlink()
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copy2(source, tmp)

    def restore(self) -> None:
        """Put back the canonical files an earlier view replaced (renderers read those)."""
        for rel, mtime in list(self.replaced.items()):
            kept, path = self.root / CANONICAL_DIR / rel, self.root / rel
            safe = not under_symlink(self.root, kept) and not under_symlink(self.root, path)
            if safe and kept.is_file() and path.is_file() and path.stat().st_mtime_ns == mtime:
                os.replace(kept, path)
            if safe:
                kept.unlink(missing_ok=True)
            del self.replaced[rel]

    def save_record(
        self, target: Target, fps: float, source: Path, started: float | None = None
    ) -> None:
        """Write the view's record: with `started`, the record of an export under way (a kill
        leaves it, and the next export into the folder resumes), else the finished one."""
        record = {
            "target": target.name,
            "source": str(source.resolve()),
            "fps": fps,
            "files": sorted(self.owned),
            "replaced": self.replaced,
        }
        if started is not None:
            record.update(complete=False, started=started)
        write_json(self.root / STATE_DIR / VIEW_RECORD, record)


def restore_canonical(root: Path) -> None:
    """Put back the canonical files an in-place view replaced (TalkingGaussian's parsing colours,
    AD-NeRF's transforms, GaussianTalker's track_params.pt), so that a rerun verifies and reads
    talkprep's own outputs instead of rebuilding them; the view is written again after the run."""
    from talkprep.pipeline import folder_lock

    record = read_record(root)
    if not record.get("replaced"):
        return
    with folder_lock(root):
        writer = ViewWriter.open(root, in_place=True)
        writer.restore()
        write_json(root / STATE_DIR / VIEW_RECORD, {**record, "replaced": writer.replaced})


def _matches(root: Path, pattern: str) -> Iterator[str]:
    for path in sorted(root.glob(pattern)):
        if path.is_file():
            yield path.relative_to(root).as_posix()


def _alias_pairs(src: Path, target: Target) -> Iterator[tuple[Path, str]]:
    """(talkprep file, trainer's name) of every alias and renamed audio file present in src."""
    for theirs, ours in target.aliases:
        their_dir, their_glob = theirs.rsplit("/", 1) if "/" in theirs else ("", theirs)
        suffix = their_glob.replace("*", "")
        for rel in _matches(src, ours):
            stem = Path(rel).name.split(".")[0]
            yield src / rel, f"{their_dir}/{stem}{suffix}" if their_dir else f"{stem}{suffix}"
    for choice in target.audio:
        if choice.source is not None and (src / choice.source).is_file():
            yield src / choice.source, choice.file


def write_view(
    src: Path, target: Target, dst: Path | None = None, progress: Progress | None = None
) -> list[str]:
    """Write `target`'s view of the processed folder `src` into `dst` (None: in place).

    Returns:
        The renderers that ran.
    Raises:
        UsageError: src is not a dataset folder, or dst lies inside src.
        TaskError: a file a renderer needs is missing (the message names the talkprep command).
        OutputError: a file in the way that talkprep did not write.
    """
    from talkprep.pipeline import folder_lock

    progress = progress or _no_progress
    src = Path(src)
    if not (src / "transforms_train.json").is_file() and not read_manifest(src):
        raise UsageError(f"{src} is not a processed talkprep folder (no manifest, no transforms)")
    in_place = dst is None or Path(dst).resolve() == src.resolve()
    out = src if in_place else Path(dst)
    if not in_place and out.resolve().is_relative_to(src.resolve()):
        raise UsageError(f"-o {out} lies inside {src}; export to a folder outside it")
    if not in_place:
        _refuse_foreign_destination(src, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create {out}: {os_error_reason(exc)}; choose another -o"
        ) from None
    source_lock = contextlib.nullcontext()
    if not in_place and os.access(src, os.W_OK):  # a read-only source races no run
        source_lock = folder_lock(src)
    with source_lock, folder_lock(out):
        if not in_place:
            _refuse_foreign_destination(src, out)
        writer = ViewWriter.open(out, in_place)
        if in_place and not writer.patterns:
            raise UsageError(f"{src} has no talkprep manifest; process it with talkprep first")
        fps = dataset_fps(src)
        if not in_place:
            writer.save_record(target, fps, src, started=writer.resumed_since or time.time())
        writer.restore()
        rendered = {p for name in target.renders for p in RENDERERS[name].writes}
        for name in target.renders:
            RENDERERS[name].run(src, writer, progress)
        for source, rel in _alias_pairs(src, target):
            writer.link(source, rel)
        if not in_place:
            reads = (*target.reads, *SUPPORT_FILES, "aud.wav", *(c.file for c in target.audio))
            for pattern in reads:
                for rel in _matches(src, pattern):
                    if not any(fnmatch.fnmatch(rel, p) for p in rendered):
                        writer.link(src / rel, rel)
        writer.save_record(target, fps, src)
    return list(target.renders)


def _refuse_foreign_destination(src: Path, out: Path) -> None:
    """An export goes only into a missing or empty folder, or into an earlier export of the same
    processed folder (finished or killed): never over another dataset's files."""
    from talkprep.pipeline import LOCK_NAME

    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"-o {out} is a file; give a folder")
    source = read_record(out).get("source")
    if isinstance(source, str) and source == str(src.resolve()):
        return
    with os.scandir(out) as entries:
        names = sorted(e.name for e in entries if e.name != LOCK_NAME)
    if names:
        raise OutputError(
            f"-o {out} holds files talkprep did not write there for this export (e.g. {names[0]}); "
            f"export only into an empty folder or an earlier export of {src}"
        )


def require_folder(path: Path) -> Path:
    """The dataset folder itself, or a UsageError naming the problem."""
    if not path.is_dir():
        raise UsageError(f"{path} is not a folder")
    return path
