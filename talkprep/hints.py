"""Every command talkprep prints for a user to run: repairs, fetches, checks, exports.

One source, so that `process`, `check` and `check --target` never disagree: commands carry the
folder's real paths and options (from its manifest), are quoted for the shell (`shlex.join`, so a
pasted `clip$(touch PWNED).mp4` stays a file name), and a name that no terminal line can carry
safely (a newline or another control character) gives a sentence saying so instead of a command.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

Words = Sequence[str | Path]

PROGRAM = "talkprep"
HUBERT_MODEL = "facebook/hubert-large-ls960-ft"
NEVER_REPEATED = frozenset({"video", "out", "tasks", "force"})
"""Config fields a rerun command does not copy from the manifest (given explicitly)."""
DEEPSPEECH_HOWTO = (
    "no published model gives DeepSpeech features in a form talkprep can load: make them with "
    "AD-NeRF's own extractor (TensorFlow 1.x; it downloads DeepSpeech 0.1.0), from an AD-NeRF "
    "checkout: {command}"
)
"""What AD-NeRF and GaussianTalker need (aud_ds.npy, [N, 16, 29]) and where to get it."""


def unprintable(word: str) -> str | None:
    """Why `word` cannot go into a printed command (None when it can)."""
    if word.isprintable():
        return None
    return (
        f"no command printed: the name {ascii(word)} holds a newline or another control "
        "character, which a pasted command would split or hide; rename it first"
    )


def shell(*commands: Words) -> str:
    """Commands (each a list of words) as one pasteable line, joined by `&&`, or the sentence
    saying which name cannot be printed safely."""
    words = [str(w) for command in commands for w in command]
    for word in words:
        reason = unprintable(word)
        if reason is not None:
            return reason
    return " && ".join(shlex.join(str(w) for w in command) for command in commands)


def quoted(path: str | Path) -> str:
    """One name for a sentence: shell-quoted, or an ascii() form when it holds control
    characters."""
    word = str(path)
    return shlex.quote(word) if word.isprintable() else ascii(word)


def task_list(numbers: Iterable[int]) -> str:
    """`--tasks` text: numbers in order, without repeats (1,2,5)."""
    return ",".join(str(n) for n in sorted(set(numbers)))


def option_words(config: dict[str, Any], **override: Any) -> list[str]:
    """The options of a recorded config that differ from the defaults, as command-line words
    (with `override` replacing recorded values: a value None drops the option)."""
    from talkprep.config import Config

    defaults = {
        f.name: f.default
        for f in dataclasses.fields(Config)
        if f.default is not dataclasses.MISSING
    }
    values = {**config, **override}
    words: list[str] = []
    for name, default in defaults.items():
        if name in NEVER_REPEATED or name not in values:
            continue
        value = values[name]
        if value is None or _same(value, default):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words += [flag] if value else []
        elif isinstance(value, list | tuple):
            words += [flag, ",".join(str(v) for v in value)]
        else:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return words


def _same(value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        return list(value) == list(default) if isinstance(value, list | tuple) else False
    if isinstance(default, Path) or isinstance(value, Path):
        return str(value) == str(default)
    return value == default


def recorded_config(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The config a folder's manifest records, or None when it names no input video."""
    config = manifest.get("config")
    if not isinstance(config, dict):
        return None
    video = config.get("video") or (manifest.get("input") or {}).get("path")
    if not isinstance(video, str) or not video:
        return None
    return {**config, "video": video}


def process_words(
    config: dict[str, Any],
    out: Path,
    tasks: Iterable[int] | None = None,
    force: bool = False,
    **override: Any,
) -> list[str]:
    """`talkprep process VIDEO -o OUT` with the recorded options, optionally only `tasks`."""
    words: list[str] = [PROGRAM, "process", config["video"], "-o", str(out)]
    chosen = list(tasks) if tasks is not None else list(config.get("tasks") or [])
    if chosen and sorted(set(chosen)) != list(range(1, 10)):
        words += ["--tasks", task_list(chosen)]
    if force:
        words.append("--force")
    return words + option_words(config, **override)


def process_hint(
    manifest: dict[str, Any],
    out: Path,
    tasks: Iterable[int] | None = None,
    force: bool = False,
    before: Sequence[Words] = (),
    **override: Any,
) -> str:
    """The `talkprep process` line that (re)makes `tasks` of `out`, or, when the folder's
    manifest names no video, the sentence saying what to run instead."""
    config = recorded_config(manifest)
    if config is None:
        what = f" --tasks {task_list(tasks)}" if tasks is not None else ""
        return (
            f"no command printed: {quoted(out)} has no talkprep manifest naming its video; run "
            f"talkprep process YOUR_VIDEO -o {quoted(out)}{what} on the video it came from"
        )
    return shell(*before, process_words(config, out, tasks, force, **override))


def rerun_hint(manifest: dict[str, Any], out: Path) -> str:
    """The command that made the folder, again: it resumes what was interrupted or failed."""
    return process_hint(manifest, out)


def check_words(out: Path, target: str | None = None) -> list[str]:
    """`talkprep check OUT [--target T]`."""
    return [PROGRAM, "check", str(out), *(["--target", target] if target else [])]


def export_words(src: Path, target: str, out: Path | None = None) -> list[str]:
    """`talkprep export SRC --target T [-o OUT]`."""
    return [PROGRAM, "export", str(src), "--target", target, *(["-o", str(out)] if out else [])]


def fetch_words(model: str) -> list[str]:
    """The Hugging Face CLI line (shipped with huggingface_hub, a talkprep dependency)."""
    return ["hf", "download", model]


def deepspeech_hint(root: Path) -> str:
    """How to get DeepSpeech features (aud_ds.npy) into `root`."""
    command = shell(
        [
            "python",
            "data_util/deepspeech_features/extract_ds_features.py",
            f"--input={root.resolve() / 'aud.wav'}",
            f"--output={root.resolve() / 'aud_ds.npy'}",
        ]
    )
    return DEEPSPEECH_HOWTO.format(command=command)


def feature_hint(manifest: dict[str, Any], root: Path, feature: str) -> str:
    """The one command that adds audio feature `feature` to the folder, keeping the features it
    has (task 2 only); a model that must be fetched first is fetched in the same line."""
    if feature == "deepspeech":
        return deepspeech_hint(root)
    if feature == "wav":
        return process_hint(manifest, root, tasks=[1])
    config = recorded_config(manifest) or {}
    have = [f for f in config.get("audio_features") or [] if f != feature]
    before: list[Words] = []
    model = config.get(f"{feature}_model") or (HUBERT_MODEL if feature == "hubert" else None)
    if config.get("offline") and model and not Path(model).is_dir():
        before.append(fetch_words(model))
    return process_hint(manifest, root, tasks=[2], before=before, audio_features=[*have, feature])


def train_hint(data: Path, steps: Sequence[Sequence[str]], flags: Sequence[str]) -> str:
    """A trainer's training steps for dataset folder `data`, in order and joined by `&&`, to run
    from the trainer's checkout (empty without steps). In each step's words `{data}` is the
    folder, `{name}` its name, `{workspace}` the trainer's output folder (trial_NAME, as the
    trainers' READMEs name it), `{logs}` the folder's logs/, and the word `{flags}` the flags
    (each possibly several words)."""
    folder = data.resolve()
    fill = {
        "{data}": str(folder),
        "{workspace}": f"trial_{folder.name}",
        "{name}": folder.name,
        "{logs}": str(folder / "logs"),
    }
    extra = [word for flag in flags for word in shlex.split(flag)]
    field = re.compile("|".join(re.escape(key) for key in fill))
    commands = []
    for step in steps:
        command: list[str] = []
        for word in step:
            if word == "{flags}":
                command += extra
            else:  # one pass: a folder named like a field stays as it is
                command.append(field.sub(lambda found: fill[found.group(0)], word))
        commands.append(command)
    return shell(*commands) if commands else ""
