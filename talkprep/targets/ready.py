"""Which trainers can train on a folder as it stands, and the one command each other one needs.

`process`'s closing lines, plain `check` and the report all print this, so that a folder made
with `--audio-features mel` says at once that ER-NeRF needs HuBERT features, and how to add them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from talkprep import hints
from talkprep.manifest import read_manifest
from talkprep.targets import TARGETS
from talkprep.targets.base import AudioChoice, Target
from talkprep.targets.check import audio_problem
from talkprep.targets.record import view_target

FEATURE_NAMES = {
    "hubert": "HuBERT features (aud_hu.npy)",
    "wav2vec2": "wav2vec2 features (aud_eo.npy)",
    "deepspeech": "DeepSpeech features (aud_ds.npy)",
    "wav": "aud.wav",
}


@dataclass(frozen=True)
class Readiness:
    """One trainer's standing on a folder."""

    target: Target
    ready: bool
    """Whether the trainer can train on the folder, or on the view one export writes."""
    how: str
    """The trainer flags to pass, the export to run first, or what is missing and its command."""


def _usable(root: Path, target: Target) -> tuple[AudioChoice, bool] | None:
    """The first audio file the trainer can read, and whether it is there under its own name
    (else an export links it from talkprep's name)."""
    for choice in target.audio:
        if audio_problem(root, choice) is None:
            return choice, True
        source = dataclasses.replace(choice, file=choice.source) if choice.source else None
        if source is not None and audio_problem(root, source) is None:
            return choice, False
    return None


def readiness(root: Path) -> list[Readiness]:
    """Every trainer's standing on the processed folder `root` (its files assumed intact: plain
    `check` judges that)."""
    manifest = read_manifest(root)
    in_view = view_target(root)
    standings = []
    for target in TARGETS.values():
        usable = _usable(root, target)
        if usable is None:
            first = target.audio[0]
            need = hints.feature_hint(manifest, root, first.feature)
            standings.append(
                Readiness(target, False, f"needs {FEATURE_NAMES[first.feature]}: {need}")
            )
            continue
        choice, own_name = usable
        flags = " ".join(f for f in (choice.flag, *target.flags) if f)
        pass_flags = f"; pass {flags}" if flags else ""
        needs_view = bool(target.renders or target.aliases) or not own_name
        if needs_view and in_view != target.name:
            named = root if root.name else root.resolve()  # `check .` has no name to extend
            dest = named.with_name(f"{named.name}-{target.name}")
            export = hints.shell(hints.export_words(root, target.name, dest))
            standings.append(Readiness(target, True, f"after {export}{pass_flags}"))
        else:
            standings.append(Readiness(target, True, f"as it is{pass_flags}"))
    return standings


def format_readiness(standings: list[Readiness]) -> str:
    """Lines for a terminal: ready trainers first, then what each other one needs."""
    width = max(len(s.target.trainer) for s in standings)
    ready = [s for s in standings if s.ready]
    lines = [f"Trainers that can train on it now ({len(ready)} of {len(standings)}):"]
    lines += [f"  {s.target.trainer:<{width}}  {s.how}" for s in ready]
    missing = [s for s in standings if not s.ready]
    if missing:
        lines.append("Not yet:")
        lines += [f"  {s.target.trainer:<{width}}  {s.how}" for s in missing]
    return "\n".join(lines)
