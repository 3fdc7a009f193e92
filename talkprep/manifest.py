"""OUT/manifest.json: how every file was made. Read and written whole, atomically."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from talkprep import __version__
from talkprep.errors import OutputError
from talkprep.io.atomic import write_json

MANIFEST_NAME = "manifest.json"
MIB = 1 << 20


def file_fingerprint(path: Path) -> str:
    """Size plus a hash of the first and last MiB: cheap, and changes when the file does."""
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

    @classmethod
    def load(cls, root: Path) -> Manifest:
        """Load OUT/manifest.json, or start an empty one when there is none."""
        path = root / MANIFEST_NAME
        if not path.exists():
            return cls(root)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise OutputError(
                f"{path} is unreadable ({exc}); delete it to start the folder afresh"
            ) from None
        if not isinstance(data, dict):
            raise OutputError(f"{path} is not a talkprep manifest; delete it or choose another -o")
        return cls(root, data)

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        return self.data["tasks"]

    def record(self, name: str) -> dict[str, Any] | None:
        return self.tasks.get(name)

    def set_record(self, name: str, record: dict[str, Any]) -> None:
        self.tasks[name] = record
        self.save()

    def set_run(self, input_facts: dict[str, Any], config: dict[str, Any]) -> None:
        self.data["talkprep_version"] = __version__
        self.data["input"] = input_facts
        self.data["config"] = config
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.save()

    def save(self) -> None:
        try:
            write_json(self.root / MANIFEST_NAME, self.data)
        except OSError as exc:
            raise OutputError(f"cannot write {self.root / MANIFEST_NAME}: {exc}") from None
