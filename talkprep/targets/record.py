"""A view's own record, `.talkprep/view.json`: which trainer's view a folder holds, where it came
from and its frame rate. Read by the writer, the renderers and `check --target` alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from talkprep.errors import OutputError
from talkprep.io.paths import relative_name_problem
from talkprep.manifest import STATE_DIR, read_manifest

VIEW_RECORD = "view.json"
DEFAULT_FPS = 25.0


def read_record(root: Path) -> dict[str, Any]:
    """The view record of `root`; {} when there is none or it is unreadable. Raises OutputError,
    in one line, for a record whose file names leave the folder (it may come from someone else)."""
    path = root / STATE_DIR / VIEW_RECORD
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    files, replaced = data.get("files", []), data.get("replaced", {})
    if not isinstance(files, list) or not isinstance(replaced, dict):
        raise OutputError(f"{path} is malformed ('files' or 'replaced'); delete it")
    for name in [*files, *replaced]:
        problem = relative_name_problem(name)
        if problem:
            raise OutputError(f"{path} names a file outside the folder: {problem}; delete it")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in replaced.values()):
        raise OutputError(f"{path} is malformed ('replaced' times); delete it")
    return data


def view_files(root: Path) -> list[str]:
    """The files a view written into `root` holds, as its record lists them."""
    return list(read_record(root).get("files") or [])


def view_replaced(root: Path) -> list[str]:
    """Canonical files an in-place view replaced (their digests are the canonical files')."""
    return list(read_record(root).get("replaced") or {})


def dataset_fps(root: Path) -> float:
    """Frame rate of a processed folder or a view of one (the trainers' 25 when unknown)."""
    info = read_manifest(root).get("tasks", {}).get("frames", {}).get("info", {})
    fps = info.get("fps", read_record(root).get("fps", DEFAULT_FPS))
    return float(fps)


def view_source(root: Path) -> Path | None:
    """The processed folder an exported view came from (None for a folder that is its own)."""
    source = read_record(root).get("source")
    if not isinstance(source, str) or Path(source) == Path(root).resolve():
        return None
    return Path(source)


def view_target(root: Path) -> str | None:
    """Name of the target whose view was last written into `root` (None if none)."""
    name = read_record(root).get("target")
    return name if isinstance(name, str) else None
