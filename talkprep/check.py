"""`talkprep check`: validate a dataset folder (from talkprep or elsewhere) against the format."""

from __future__ import annotations

import contextlib
from pathlib import Path

from talkprep.io.images import frame_indices, image_size
from talkprep.manifest import read_manifest
from talkprep.tasks import ALL_TASKS
from talkprep.tasks.base import CheckResult, FolderFacts

DEFAULT_FPS = 25.0


def folder_facts(root: Path) -> FolderFacts:
    """N, frame size and fps of a dataset folder: from its manifest when present, else its files."""
    n_frames = None
    fps = DEFAULT_FPS
    data = read_manifest(root)
    if data:
        try:
            info = data["tasks"]["frames"]["info"]
            n_frames = int(info["n_frames"])
            fps = float(info["fps"])
        except (ValueError, KeyError, TypeError):
            pass
    indices = frame_indices(root / "ori_imgs", ".jpg")
    if n_frames is None and indices:
        n_frames = indices[-1] + 1
    frame_size = None
    if indices:
        with contextlib.suppress(OSError, ValueError):
            frame_size = image_size(root / "ori_imgs" / f"{indices[0]}.jpg")
    return FolderFacts(root=root, n_frames=n_frames, frame_size=frame_size, fps=fps)


def check_folder(root: Path) -> list[CheckResult]:
    """Every present file group's verdict; an empty or foreign folder gives one failing row."""
    if not root.is_dir():
        return [CheckResult(str(root), 0, "not a folder")]
    facts = folder_facts(root)
    results: list[CheckResult] = []
    for task in ALL_TASKS:
        results.extend(task.check(facts))
    if not results:
        results.append(CheckResult("(dataset)", 0, "no dataset files found"))
    return results


def format_table(results: list[CheckResult]) -> str:
    """A plain-text table: file group, count, status, first problem."""
    rows = [("file group", "count", "status", "first problem")]
    rows += [(r.group, str(r.count), "ok" if r.ok else "FAIL", r.problem or "") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip()
        for row in rows
    ]
    return "\n".join(lines)
