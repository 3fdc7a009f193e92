"""The one Config of a run: built from defaults, a TOML file and the command line; no I/O here."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from talkprep.errors import UsageError

ALL_TASK_NUMBERS: tuple[int, ...] = tuple(range(1, 10))
AUDIO_FEATURES = ("hubert", "mel", "wav2vec2", "deepspeech")
TARGET_NAMES = (
    "ernerf", "radnerf", "adnerf", "synctalk", "talkinggaussian", "gaussiantalker", "instag",
)  # fmt: skip
"""Trainers `--target` accepts (talkprep.targets.TARGETS, checked by tests/test_targets.py)."""

CropMode = Literal["none", "auto"]
ParserName = Literal["mediapipe", "bisenet"]
DepthName = Literal["mesh", "dagan"]
DeviceName = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class Config:
    """Everything a run reads. Field docs are shown by `talkprep process --help`."""

    video: Path
    """The input talking-head video."""
    out: Path
    """The dataset folder to create or update."""
    tasks: tuple[int, ...] = ALL_TASK_NUMBERS
    """Task numbers to run (1-9)."""
    fps: float = 25.0
    """Target frame rate of the dataset."""
    size: int = 512
    """Output frame side in pixels with --crop auto."""
    crop: CropMode = "none"
    """'auto': one fixed square box around head and shoulders; 'none': frames as they are."""
    audio: Path | None = None
    """Audio file to use instead of the video's own audio track."""
    audio_features: tuple[str, ...] = ("hubert",)
    """Audio features to compute (hubert, mel, wav2vec2, deepspeech)."""
    hubert_model: str = "facebook/hubert-large-ls960-ft"
    """Hugging Face id or local folder of the HuBERT model."""
    wav2vec2_model: str = "cpierse/wav2vec2-large-xlsr-53-esperanto"
    """Hugging Face id or local folder of the wav2vec2 CTC model."""
    deepspeech_model: Path | None = None
    """Local folder of a CTC model giving DeepSpeech-compatible 29-character logits."""
    parser: ParserName = "mediapipe"
    """Semantic parser backend."""
    parser_weights: Path | None = None
    """BiSeNet weights (79999_iter.pth) for --parser bisenet."""
    depth: DepthName = "mesh"
    """Depth backend."""
    depth_weights: Path | None = None
    """Folder with DaGAN encoder.pth and depth.pth for --depth dagan."""
    blendshape_model: Path | None = None
    """MediaPipe face_landmarker.task; when given, task 4 also writes blendshapes.npy."""
    blendshapes: bool = False
    """Task 4 also writes blendshapes.npy, with the Face Landmarker bundle from talkprep's cache
    (downloaded on first use unless offline) when no --blendshape-model is given."""
    device: DeviceName = "auto"
    """Where torch models run."""
    force: bool = False
    """Rerun tasks even when their outputs are up to date."""
    offline: bool = False
    """Never download a model (as HF_HUB_OFFLINE=1): one not cached fails with the fetch command."""
    target: str = "ernerf"
    """Trainer whose view `process` writes after the tasks (talkprep.targets)."""
    av_sync: str = "auto"
    """'auto': shift the audio by the measured offset when confident and at least 2 frames;
    'off': measure only; a number: shift by that many seconds (positive: the audio is late)."""
    keep_flagged: bool = False
    """Keep the frames that screening flags (blur, shot changes, turned head, ...) in the splits."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UsageError on the first bad value."""
        bad = [n for n in self.tasks if n not in ALL_TASK_NUMBERS]
        if bad or not self.tasks:
            raise UsageError(
                f"--tasks: unknown task number(s) {bad or '(none given)'}; tasks are 1-9"
            )
        if not (1.0 <= self.fps <= 120.0):
            raise UsageError(f"--fps must be between 1 and 120, got {self.fps:g}")
        if not (64 <= self.size <= 4096):
            raise UsageError(f"--size must be between 64 and 4096 pixels, got {self.size}")
        _choice("--crop", self.crop, ("none", "auto"))
        _choice("--parser", self.parser, ("mediapipe", "bisenet"))
        _choice("--depth", self.depth, ("mesh", "dagan"))
        _choice("--device", self.device, ("auto", "cpu", "cuda"))
        _choice("--target", self.target, TARGET_NAMES)
        av_sync_seconds(self.av_sync)
        unknown = [f for f in self.audio_features if f not in AUDIO_FEATURES]
        if unknown or not self.audio_features:
            raise UsageError(
                f"--audio-features: unknown {unknown or '(none given)'}; "
                f"choose from {', '.join(AUDIO_FEATURES)}"
            )
        if self.parser == "bisenet" and self.parser_weights is None:
            raise UsageError("--parser bisenet needs --parser-weights PATH (79999_iter.pth)")
        if self.depth == "dagan" and self.depth_weights is None:
            raise UsageError("--depth dagan needs --depth-weights DIR (encoder.pth, depth.pth)")
        if "deepspeech" in self.audio_features and self.deepspeech_model is None:
            raise UsageError("--audio-features deepspeech needs --deepspeech-model DIR")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in the manifest."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


AV_SYNC_LIMIT_S = 2.0
"""The largest offset --av-sync SECONDS accepts."""


def av_sync_seconds(value: str) -> float | None:
    """The offset --av-sync imposes (None for 'auto' and 'off'); UsageError when unreadable."""
    if value in ("auto", "off"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"--av-sync must be auto, off or seconds (0.12), got {value!r}") from None
    if not abs(seconds) <= AV_SYNC_LIMIT_S:
        raise UsageError(f"--av-sync {value}: the offset must be within +-{AV_SYNC_LIMIT_S:g} s")
    return seconds


def _choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{option} must be one of {', '.join(choices)}; got {value!r}")


def parse_task_spec(spec: str | int | list[Any] | tuple[Any, ...]) -> tuple[int, ...]:
    """Parse 'all', '4', '1,3-5' (or a TOML list of numbers / ranges) into sorted task numbers."""
    if isinstance(spec, int):
        parts = [str(spec)]
    elif isinstance(spec, list | tuple):
        parts = [str(p) for p in spec]
    else:
        parts = [p.strip() for p in str(spec).split(",")]
    numbers: set[int] = set()
    for part in parts:
        if part.lower() == "all":
            numbers.update(ALL_TASK_NUMBERS)
            continue
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise UsageError(f"--tasks: cannot read {part!r}; use e.g. all, 4, 1,3-5")
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if hi < lo:
            raise UsageError(f"--tasks: range {part!r} runs backwards")
        out_of_range = [n for n in dict.fromkeys((lo, hi)) if n not in ALL_TASK_NUMBERS]
        if out_of_range:  # checked before the range is expanded: '1-99999999999' allocates nothing
            listed = " and ".join(map(str, out_of_range))
            where = "" if part == listed else f" in {part!r}"
            raise UsageError(f"--tasks: unknown task number {listed}{where}; tasks are 1-9")
        numbers.update(range(lo, hi + 1))
    bad = sorted(n for n in numbers if n not in ALL_TASK_NUMBERS)
    if bad:
        raise UsageError(f"--tasks: unknown task number(s) {bad}; tasks are 1-9")
    if not numbers:
        raise UsageError("--tasks: no task given")
    return tuple(sorted(numbers))


def parse_feature_list(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Parse 'hubert,mel' into ('hubert', 'mel'), keeping order and dropping repeats."""
    items = spec if isinstance(spec, list | tuple) else str(spec).split(",")
    odd = next((item for item in items if not isinstance(item, str)), None)
    if odd is not None:
        raise UsageError(f"audio-features: {odd!r} is not a feature name; use names like 'mel'")
    return tuple(dict.fromkeys(s.strip().lower() for s in items if s.strip()))


_PATH_FIELDS = {f.name for f in dataclasses.fields(Config) if "Path" in str(f.type)}


def build_config(values: dict[str, Any]) -> Config:
    """Build a Config from already merged option values (TOML below, command line above)."""
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"unknown option(s) in config: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        _check_type(name, value)
        if name in _PATH_FIELDS:
            value = Path(value).expanduser()
        elif name == "tasks":
            value = parse_task_spec(value)
        elif name == "audio_features":
            value = parse_feature_list(value)
        elif name == "fps":
            value = _number("--fps", value, float)
        elif name == "size":
            value = _number("--size", value, int)
        elif name == "av_sync":
            value = str(value).strip().lower()
        kwargs[name] = value
    for required in ("video", "out"):
        if required not in kwargs:
            raise UsageError(f"missing {required}")
    return Config(**kwargs)


def _wanted(name: str) -> tuple[tuple[type, ...], str]:
    """Types a config value may have, and how to say so (TOML gives typed values; the command line
    gives strings)."""
    if name in _PATH_FIELDS:
        return (str, Path), "a path (a string)"
    annotation = str(next(f.type for f in dataclasses.fields(Config) if f.name == name))
    if annotation == "bool":
        return (bool,), "true or false"
    if name == "tasks":
        return (str, int, list), 'a string like "1,3-5", a number or a list'
    if name == "audio_features":
        return (str, list), 'a string like "hubert,mel" or a list of strings'
    if name == "av_sync":
        return (str, int, float), "auto, off or a number of seconds"
    if annotation.startswith("float"):
        return (int, float, str), "a number"
    if annotation.startswith("int"):
        return (int, str), "a whole number"
    return (str,), "a string"


def _check_type(name: str, value: Any) -> None:
    """A config value of the wrong type is one line naming the key and the type wanted."""
    kinds, wanted = _wanted(name)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise UsageError(
            f"config: {name.replace('_', '-')} must be {wanted}, "
            f"got {value!r} ({type(value).__name__})"
        )


def _number(option: str, value: Any, kind: type) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"{option} must be a number, got {value!r}") from None
    if kind is int and float(value) != number:
        raise UsageError(f"{option} must be a whole number, got {value!r}")
    return number


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config; keys may use dashes or underscores."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"--config: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config: cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config: {path} is not valid TOML: {exc}") from None
    return {key.replace("-", "_"): value for key, value in data.items()}
