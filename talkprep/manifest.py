"""OUT/.talkprep/manifest.json: how every file was made. Read and written whole, atomically.

It lives in a hidden folder so that trainers' loaders that glob `*.json` in the dataset root
(ER-NeRF's `type='all'`) never pick it up. A `manifest.json` at the root written by an earlier
talkprep is read, and moved into place on the next write.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from talkprep import __version__
from talkprep.errors import OutputError
from talkprep.io.atomic import write_json
from talkprep.io.paths import relative_name_problem

STATE_DIR = ".talkprep"
MANIFEST_NAME = "manifest.json"
LEGACY_MANIFEST = MANIFEST_NAME
MIB = 1 << 20
MAX_GROUP_FILES = 10**7
"""More files than any group holds (111 hours at 25 fps): a ledger count above it is damage."""


def manifest_path(root: Path) -> Path:
    """Where the manifest of dataset folder `root` is (or would be) written."""
    return Path(root) / STATE_DIR / MANIFEST_NAME


def _existing_manifest(root: Path) -> Path | None:
    """The manifest to read: the current place, else a legacy talkprep one at the root."""
    current = manifest_path(root)
    if current.is_file():
        return current
    legacy = Path(root) / LEGACY_MANIFEST
    if legacy.is_file() and _is_talkprep_manifest(legacy):
        return legacy
    return None


def _is_talkprep_manifest(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "talkprep_version" in data and "tasks" in data


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest's data for readers (check, report, dataset); {} when absent, unreadable or
    malformed (`manifest_problem` says why)."""
    path = _existing_manifest(root)
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    usable = isinstance(data, dict) and manifest_data_problem(data, shown_only=True) is None
    return data if usable else {}


def manifest_problem(root: Path) -> str | None:
    """Why OUT's manifest cannot be used, in one line (None when it can, or when there is none)."""
    path = _existing_manifest(root)
    if path is None:
        path = manifest_path(root)
        if not path.exists():
            return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"{path} is unreadable ({exc})"
    problem = manifest_data_problem(data)
    return f"{path} is not a usable talkprep manifest: {problem}" if problem else None


def manifest_data_problem(data: object, shown_only: bool = False) -> str | None:
    """What makes a manifest's data unusable: a wrong type where talkprep reads a table, or a
    ledger entry that leaves the folder or counts more files than any group holds.

    `shown_only`: for readers that only show a record's `info` and `figures` (report, check),
    which take any value there."""
    if not isinstance(data, dict):
        return "it is not a JSON object"
    for key in ("tasks", "written", "writing", "input", "config"):
        if key in data and not isinstance(data[key], dict):
            return f"'{key}' is not a table"
    for name, record in (data.get("tasks") or {}).items():
        if not isinstance(record, dict):
            return f"the record of task {name!r} is not a table"
        keys = ("outputs", "digests", "file_digests", *(() if shown_only else ("info", "figures")))
        for key in keys:
            if key in record and not isinstance(record[key], dict):
                return f"'{key}' of task {name!r} is not a table"
        problem = _ledger_problem(record.get("outputs") or {}, f"outputs of task {name!r}")
        if problem:
            return problem
    problem = _ledger_problem(data.get("written") or {}, "the ledger")
    if problem:
        return problem
    for pattern, started in (data.get("writing") or {}).items():
        problem = relative_name_problem(pattern)
        if problem or not isinstance(started, (int, float)) or isinstance(started, bool):
            return f"the ledger's claim {pattern!r} is malformed ({problem or 'no start time'})"
    return None


def _ledger_problem(ledger: dict[str, Any], what: str) -> str | None:
    for pattern, count in ledger.items():
        problem = relative_name_problem(pattern)
        if problem:
            return f"{what}: {problem}"
        if pattern.count("*") > 1 or "*" in pattern.rpartition("/")[0]:
            return f"{what}: {pattern!r} is not an output group"
        if not isinstance(count, int) or isinstance(count, bool):
            return f"{what}: the count of {pattern!r} is not a whole number"
        if not 0 <= count <= MAX_GROUP_FILES:
            return f"{what}: the count of {pattern!r} ({count}) is out of range"
    return None


CONTENT_PREFIX = "sha256:"
HASH_BLOCK = 4 * MIB


def file_fingerprint(path: Path) -> str:
    """`sha256:<size>:<hash of the whole file>`: any change of content, wherever in the file,
    changes it (SHA-256 runs on the CPU's SHA extensions, about 1.5 GB/s here: faster than
    BLAKE2b, and no dependency)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return f"{CONTENT_PREFIX}{size}:{digest.hexdigest()[:32]}"


def same_input(recorded: object, path: Path, fingerprint: str) -> bool:
    """Whether a recorded input fingerprint is the file at `path` (whose `file_fingerprint` is
    `fingerprint`); a fingerprint of an earlier talkprep (size, first and last MiB) is compared
    the way it was made."""
    if not isinstance(recorded, str) or not recorded:
        return False
    if recorded.startswith(CONTENT_PREFIX):
        return recorded == fingerprint
    try:
        return recorded == quick_fingerprint(path)
    except OSError:
        return False


def quick_fingerprint(path: Path) -> str:
    """Size plus a hash of the first and last MiB: for model weights of gigabytes, read every
    run, that no user edits in the middle (and earlier talkprep's input fingerprint)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(MIB))
        if size > MIB:
            handle.seek(max(MIB, size - MIB))
            digest.update(handle.read(MIB))
    return f"{size}:{digest.hexdigest()[:24]}"


class Manifest:
    """The manifest of one dataset folder: input facts, config, and one record per task."""

    def __init__(self, root: Path, data: dict[str, Any] | None = None) -> None:
        self.root = root
        self.data: dict[str, Any] = data or {"talkprep_version": __version__, "tasks": {}}
        self.data.setdefault("tasks", {})
        self.lock = threading.RLock()
        """Held around a change and its save while tasks run in parallel."""

    @classmethod
    def load(cls, root: Path) -> Manifest:
        """Load OUT's manifest, or start an empty one when there is none."""
        path = _existing_manifest(root)
        if path is None:
            if manifest_path(root).exists():
                path = manifest_path(root)
            else:
                return cls(root)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise OutputError(
                f"{path} is unreadable ({exc}); delete it to start the folder afresh"
            ) from None
        problem = manifest_data_problem(data)
        if problem:
            raise OutputError(
                f"{path} is not a usable talkprep manifest ({problem}); "
                "fix or delete it, or choose another -o"
            )
        return cls(root, data)

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        return self.data["tasks"]

    def record(self, name: str) -> dict[str, Any] | None:
        return self.tasks.get(name)

    @property
    def written(self) -> dict[str, int]:
        """Every output talkprep has written here: pattern -> count (`{i}` for i < count).

        The only files talkprep ever deletes or replaces are the ones named here. A manifest from
        before this ledger existed gets it from its task records.
        """
        if "written" not in self.data:
            ledger: dict[str, int] = {}
            for record in self.tasks.values():
                for pattern, count in (record.get("outputs") or {}).items():
                    ledger[pattern] = max(ledger.get(pattern, 0), int(count))
            self.data["written"] = ledger
        return self.data["written"]

    @property
    def writing(self) -> dict[str, float]:
        """Groups a task has started to write and not finished: pattern -> start time (epoch s)."""
        return self.data.setdefault("writing", {})

    def owns(self, pattern: str) -> bool:
        """Whether talkprep wrote (or began to write) files of this output group here."""
        return pattern in self.written or pattern in self.writing

    def forget_video(self) -> None:
        """Drop every task record and the ledger (after the files of another video are gone)."""
        self.data["tasks"] = {}
        self.data["written"] = {}
        self.data["writing"] = {}

    def set_record(self, name: str, record: dict[str, Any]) -> None:
        with self.lock:
            self.tasks[name] = record
            self.save()

    def set_run(self, input_facts: dict[str, Any], config: dict[str, Any]) -> None:
        self.data["talkprep_version"] = __version__
        self.data["input"] = input_facts
        self.data["config"] = config
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.save()

    def save(self) -> None:
        path = manifest_path(self.root)
        try:
            with self.lock:
                write_json(path, self.data)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc}") from None
        legacy = self.root / LEGACY_MANIFEST
        if legacy.is_file() and _is_talkprep_manifest(legacy):
            legacy.unlink()
