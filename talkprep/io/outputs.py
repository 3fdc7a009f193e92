"""Output groups: one file (`aud.wav`) or numbered files (`ori_imgs/*.jpg`: `ori_imgs/{i}.jpg`).

talkprep only ever counts, verifies or removes the numbered names `{i}` of a group, never other
files that match the same glob (a user's `ori_imgs/my_photo.jpg` is not talkprep's), and never
removes anything through a symlinked folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from talkprep.io.images import frame_indices
from talkprep.io.paths import under_symlink
from talkprep.io.verify import verify_file
from talkprep.manifest import STATE_DIR

VERIFY_THREADS = 4
DIGEST_DIR = f"{STATE_DIR}/digests"


def is_numbered(pattern: str) -> bool:
    return "*" in pattern


def numbered_path(root: Path, pattern: str, index: int) -> Path:
    return root / pattern.replace("*", str(index), 1)


def index_of(pattern: str, path: Path) -> int:
    """The index i of a numbered group's file `{i}` (its name as `numbered_path` makes it)."""
    prefix, _, suffix = pattern.rpartition("/")[2].partition("*")
    return int(path.name[len(prefix) : len(path.name) - len(suffix)])


def group_paths(root: Path, pattern: str, count: int) -> list[Path]:
    """The files of a group: `{i}` for i < count, or the single file."""
    if is_numbered(pattern):
        return [numbered_path(root, pattern, i) for i in range(count)]
    return [root / pattern]


def output_names(outputs: dict[str, int]) -> list[str]:
    """Every file of a task's output groups, relative to OUT, in the order of its digest table
    (groups sorted); plain strings, as tens of thousands are stat'ed on every rerun."""
    names: list[str] = []
    for pattern in sorted(outputs):
        if is_numbered(pattern):
            head, _, tail = pattern.partition("*")
            names.extend(f"{head}{i}{tail}" for i in range(outputs[pattern]))
        else:
            names.append(pattern)
    return names


def digest_table_path(root: Path, task_name: str) -> Path:
    """Where the digest table of a task's outputs is kept."""
    return root / DIGEST_DIR / f"{task_name}.npy"


def present_indices(root: Path, pattern: str) -> list[int]:
    """Sorted indices i whose `{i}` file of a numbered group (`folder/*suffix`) exists."""
    folder, _, name = pattern.rpartition("/")
    return frame_indices(root / folder, name.removeprefix("*"))


def count_outputs(root: Path, pattern: str) -> int:
    """Files of a group that exist: numbered groups count 0..n-1 without a gap; singles 0 or 1."""
    if not is_numbered(pattern):
        return int((root / pattern).is_file())
    indices = present_indices(root, pattern)
    for expected, index in enumerate(indices):
        if index != expected:
            return expected
    return len(indices)


def group_problem(root: Path, pattern: str, count: int) -> str | None:
    """'<relative path>: <what is wrong>' for the first incomplete or missing file of a group
    (every file's format verified, in threads), else None."""
    paths = group_paths(root, pattern, count)
    if len(paths) > 64:
        with ThreadPoolExecutor(VERIFY_THREADS) as pool:
            issues = list(pool.map(verify_file, paths, chunksize=256))
    else:
        issues = [verify_file(p) for p in paths]
    found = ((p, issue) for p, issue in zip(paths, issues, strict=True) if issue)
    return next((f"{p.relative_to(root)}: {issue}" for p, issue in found), None)


def remove_outputs(root: Path, paths: Iterable[Path], keep: Iterable[Path] = ()) -> int:
    """Remove talkprep's own files; skips symlinks, paths under symlinked folders and `keep`.

    Returns how many files were removed.
    """
    kept = {os.path.realpath(p) for p in keep}
    removed = 0
    for path in paths:
        if not path.is_file() or path.is_symlink() or under_symlink(root, path):
            continue
        if os.path.realpath(path) in kept:
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed
