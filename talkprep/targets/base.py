"""What a trainer reads, as data: one `Target` per trainer, used both to write and to check.

A target names the files its trainer's loader opens (relative to the dataset root), the audio
feature files it can use with the trainer flag that selects each, the au.csv columns it reads,
the renderings it needs that talkprep's canonical files do not hold as they are (palettes, masks,
renamed files, extra keys), and the flags a user passes to the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FaceRectLayout = Literal["radnerf", "adnerf"]


@dataclass(frozen=True)
class AudioChoice:
    """One audio feature file a trainer can load, and how to select it."""

    file: str
    """Name the trainer's loader opens, relative to the dataset root."""
    feature: str
    """talkprep's feature that fills it (hubert, wav2vec2, deepspeech) or 'wav' for aud.wav."""
    flag: str
    """Trainer flag that makes the loader open this file ('' when it is the trainer's default)."""
    rows: tuple[int | None, ...]
    """Shape of one row the trainer's network accepts (None: any size)."""
    source: str | None = None
    """talkprep's file with the same data when the trainer's name differs (linked, not copied)."""


@dataclass(frozen=True)
class Target:
    """One trainer's reading contract."""

    name: str
    trainer: str
    """Human name of the trainer (and its repository)."""
    reads: tuple[str, ...]
    """Files and per-frame globs the loader opens, relative to the dataset root."""
    audio: tuple[AudioChoice, ...]
    """Audio files the loader can use, in the order check looks for them (the first is the one
    check asks for when none is there: what talkprep computes by default where the trainer
    can use it)."""
    au_columns: tuple[str, ...]
    """au.csv columns the loader reads."""
    renders: tuple[str, ...] = ()
    """Names of renderers in `talkprep.targets.render.RENDERERS` that write this trainer's view."""
    aliases: tuple[tuple[str, str], ...] = ()
    """(trainer's path, talkprep's path) pairs of identical files under another name (globs ok)."""
    flags: tuple[str, ...] = ()
    """Trainer flags to pass besides the audio flag."""
    forbidden: tuple[str, ...] = ()
    """Files whose presence makes the loader fail or take another path."""
    box_check: bool = False
    """Whether the loader's ray marcher clips to `aabb_train` (every face point must lie inside)."""
    val_seconds: float | None = None
    """When set, the last this many seconds validate (else talkprep's 10:1 split is kept)."""
    face_rect: FaceRectLayout = "radnerf"
    """Layout of transforms_*.json's `face_rect` that the loader reads."""
    train: tuple[tuple[str, ...], ...] = ()
    """The trainer's own training commands, every stage in order, run from its checkout: words,
    where `{data}` is the dataset folder, `{name}` its name, `{workspace}` the trainer's output
    folder (`{logs}`: the dataset's logs/) and `{flags}` the flags check names (the audio
    choice's, AD-NeRF's near and far, ...)."""
    advised_seconds: float = 100.0
    """Clip length below which the report advises more footage (an advice, never a defect):
    the NeRF and Gaussian trainers' reference clips run 3-5 minutes (4,000-8,000 frames)."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """What the user should know that no check can tell (shown by check and in the README)."""


HEAD_CHECKPOINT = "{workspace}/checkpoints/ngp.pth"
"""The head model main.py of the RAD-NeRF family saves (its Trainer's `best_path`, the one their
READMEs test with), which the torso stage starts from (`--head_ckpt`)."""


def main_py(iters: int, *extra: str, workspace: str = "{workspace}") -> tuple[str, ...]:
    """A train line of the RAD-NeRF family's main.py (ER-NeRF, RAD-NeRF, SyncTalk): their stages
    differ only in the iteration count, the stage's own flags and the workspace."""
    return (
        "python",
        "main.py",
        "{data}",
        "--workspace",
        workspace,
        "-O",
        "--iters",
        str(iters),
        *extra,
        "{flags}",
    )


def torso_py(iters: int) -> tuple[str, ...]:
    """The torso stage of ER-NeRF and RAD-NeRF: its own workspace, from the trained head."""
    return main_py(iters, "--torso", "--head_ckpt", HEAD_CHECKPOINT, workspace="{workspace}_torso")
