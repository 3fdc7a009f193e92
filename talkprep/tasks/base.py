"""What every task is: a name, what it needs and makes, a `run`, and a validator for its files.

A task reads what earlier tasks wrote in the output folder (never their in-memory objects), so it
can be rerun alone. The pipeline runner only sees this interface.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from talkprep.config import Config
from talkprep.device import resolve_device
from talkprep.io.images import frame_indices

T = TypeVar("T")


@dataclass
class TaskResult:
    """What a finished task reports; stored in its manifest record."""

    frames: int | None = None
    """Frames (or feature rows) processed, for the throughput figure."""
    figures: dict[str, Any] = field(default_factory=dict)
    """Quality figures (JSON-ready scalars, short lists)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Facts later tasks or users need (crop box, frame index map, units)."""
    warnings: list[str] = field(default_factory=list)


@dataclass
class TaskContext:
    """What a running task may use: the folder, the config, earlier records, progress and device."""

    out: Path
    config: Config
    input: dict[str, Any]
    """Facts about the input video (VideoInfo.to_dict())."""
    records: dict[str, dict[str, Any]]
    """Manifest records of the tasks this one needs, by task name."""
    progress: Callable[..., Iterator[Any]]
    """progress(iterable, total=None, desc='', unit='frame') -> iterator with a progress bar."""
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    @property
    def device(self) -> str:
        """'cpu' or 'cuda', resolved from --device on first use (imports torch)."""
        return resolve_device(self.config.device)

    def frame_count(self) -> int:
        """N, the number of dataset frames, from the frames task's record."""
        frames = self.records.get("frames")
        if frames is None:
            raise KeyError("the frames task record is not available to this task")
        return int(frames["info"]["n_frames"])


@dataclass(frozen=True)
class FolderFacts:
    """What `talkprep check` learns from a dataset folder before validating its file groups."""

    root: Path
    n_frames: int | None
    """N from ori_imgs/ (or from other per-frame files when frames are absent)."""
    frame_size: tuple[int, int] | None
    """(height, width) of ori_imgs/0.jpg."""
    fps: float
    """Dataset frame rate: from the manifest when there is one, else the field's usual 25."""


@dataclass(frozen=True)
class CheckResult:
    """One file group's verdict: `problem` is None when the group is consistent."""

    group: str
    count: int
    problem: str | None = None
    fix: str | None = None
    """The command that rebuilds the group, when it is broken."""
    note: str | None = None
    """What a reader needs to read the count right (a feature's row rate)."""

    @property
    def ok(self) -> bool:
        return self.problem is None


class Task(abc.ABC):
    """One step of the pipeline. Subclasses set the class attributes and implement `run`."""

    number: ClassVar[int]
    name: ClassVar[str]
    title: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    """Names of tasks whose outputs this one reads."""
    uses: ClassVar[tuple[str, ...]] = ()
    """Names of tasks whose outputs this one reads when they are there (requested ones run
    first; their records reach `TaskContext.records` only when done for these options)."""
    makes: ClassVar[tuple[str, ...]] = ()
    """Output paths relative to OUT; per-frame groups as globs like 'ori_imgs/*.jpg'."""
    reads_video: ClassVar[bool] = False
    """Whether the input video's content is part of this task's fingerprint."""
    config_fields: ClassVar[tuple[str, ...]] = ()
    """Config fields whose values decide this task's outputs."""
    version: ClassVar[int] = 1
    """Bump when the algorithm changes so that old outputs are rebuilt."""

    def outputs(self, config: Config) -> tuple[str, ...]:
        """Output patterns for this config (tasks whose outputs depend on options override this)."""
        return self.makes

    def heading(self, config: Config) -> str:
        """The line announcing a run (tasks whose outputs depend on options name them)."""
        return self.title

    def input_files(self, config: Config) -> list[Path]:
        """Files besides the video whose contents this task reads (fingerprinted)."""
        return []

    def validate(self, config: Config) -> None:
        """Check this task's options and model files before any work; raise UsageError.

        The runner also checks that every `input_files` path exists; a task overrides this to
        check more (that a model file loads), cheaply.
        """
        del config

    @abc.abstractmethod
    def run(self, ctx: TaskContext) -> TaskResult:
        """Produce the outputs in ctx.out; raise TaskError with a one-line reason on failure."""

    def check(self, facts: FolderFacts) -> list[CheckResult]:
        """Validate this task's files in a dataset folder (any producer); [] when none present."""
        return []


def check_numbered_files(
    facts: FolderFacts, folder: str, suffix: str, group: str
) -> CheckResult | None:
    """Shared check for per-frame files `{folder}/{i}{suffix}`: contiguous 0..N-1, N matching."""
    indices = frame_indices(facts.root / folder, suffix)
    if not indices:
        return None
    count = len(indices)
    if indices != list(range(count)):
        missing = sorted(set(range(indices[-1] + 1)) - set(indices))
        first = missing[0] if missing else indices[-1]
        return CheckResult(
            group, count, f"names not contiguous: {folder}/{first}{suffix} is missing"
        )
    if facts.n_frames is not None and count != facts.n_frames:
        return CheckResult(
            group, count, f"{count} files but the dataset has {facts.n_frames} frames"
        )
    return CheckResult(group, count)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of up to `size` items (streams; holds one batch)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
