"""Speech encoders from `transformers`: HuBERT hidden states and wav2vec2-style CTC logits.

Two jobs: find the weights without surprises (a local folder, else the Hugging Face cache, else a
download into that cache on first use, with a progress bar, only when downloads are allowed and the
hub answers within seconds; never a hang offline), and run the model over audio of any length in
ER-NeRF's chunks so that memory stays at one chunk's activations.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np

from talkprep.audio_math import (
    CHUNK_SAMPLES,
    RECEPTIVE_SAMPLES,
    SAMPLE_RATE,
    STEP_SAMPLES,
    Chunk,
    StepRows,
    run_chunked,
)
from talkprep.errors import MissingWeightsError, TaskError
from talkprep.hints import fetch_words, shell
from talkprep.manifest import quick_fingerprint
from talkprep.models.closing import ClosingModel

HUB_CONNECT_TIMEOUT_S = 3.0
"""How long to wait for the hub's TCP port before treating it as unreachable."""
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""Any one of these in a folder counts as weights (sharded checkpoints have an index)."""
TRUE_VALUES = {"1", "on", "yes", "true"}

Head = Literal["hidden", "ctc"]


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are, and which version they are (for the manifest)."""

    spec: str
    """What the user gave: a Hugging Face id or a folder."""
    path: Path
    """A local folder with config.json, weights and preprocessor_config.json."""
    revision: str
    """The hub commit of a cached or downloaded snapshot, or 'folder:<hash>' of a local folder."""
    from_hub: bool


def fetch_hint(spec: str, option: str) -> str:
    """The one-line instruction that provides a missing model."""
    if _looks_like_path(spec):
        return f"give a model folder with {option} DIR"
    return f"fetch it with `{shell(fetch_words(spec))}` or give a local folder with {option} DIR"


def resolve_model(spec: str, option: str, offline: bool = False) -> ModelSource:
    """A local folder as is; a hub id from the cache, else downloaded into the cache.

    Args:
        offline: forbid downloads (as does HF_HUB_OFFLINE=1): only local or cached models.

    Raises:
        MissingWeightsError: the model is neither local nor cached and cannot be fetched now.
    """
    folder = Path(spec).expanduser()
    if folder.is_dir():
        _require_files(folder, spec, option)
        return ModelSource(spec, folder, "folder:" + _folder_hash(folder), from_hub=False)
    if _looks_like_path(spec):
        raise MissingWeightsError(f"{option} {spec}: no such folder; {fetch_hint(spec, option)}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    snapshot: Path | None
    try:
        snapshot = Path(snapshot_download(spec, local_files_only=True))
    except HFValidationError:
        raise MissingWeightsError(
            f"{option} {spec}: neither a folder nor a Hugging Face model id; "
            f"give a model folder with {option} DIR"
        ) from None
    except (LocalEntryNotFoundError, OSError):
        snapshot = None
    if snapshot is None or _missing_files(snapshot):  # not cached, or only partly
        snapshot = _download(spec, option, offline)
    _require_files(snapshot, spec, option)
    return ModelSource(spec, snapshot, snapshot.name, from_hub=True)


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE is set (read now, not only when huggingface_hub was imported)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE_VALUES:
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT_S) -> bool:
    """Whether the hub endpoint (or the HTTPS proxy) accepts a TCP connection within `timeout`."""
    from huggingface_hub import constants

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy if proxy else constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def _download(spec: str, option: str, offline: bool) -> Path:
    """Fetch config, preprocessor and one weight format of `spec` into the Hugging Face cache
    (huggingface_hub shows a progress bar per file), or raise MissingWeightsError."""
    if offline or hub_offline():
        why = "--offline" if offline else "HF_HUB_OFFLINE"
        raise MissingWeightsError(
            f"model {spec} is not in the Hugging Face cache and {why} forbids downloads; "
            f"{fetch_hint(spec, option)}"
        )
    if not hub_reachable():
        raise MissingWeightsError(
            f"model {spec} is not in the Hugging Face cache and the hub is unreachable; "
            f"{fetch_hint(spec, option)}"
        )
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        files = HfApi().list_repo_files(spec)
        weights = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
        return Path(snapshot_download(spec, allow_patterns=["*.json", "*.txt", weights]))
    except RepositoryNotFoundError:
        raise MissingWeightsError(
            f"{option} {spec}: no such model on the Hugging Face hub; check the id"
        ) from None
    except (HfHubHTTPError, OSError) as exc:
        raise MissingWeightsError(
            f"downloading {spec} failed ({type(exc).__name__}); {fetch_hint(spec, option)}"
        ) from None


def _looks_like_path(spec: str) -> bool:
    """Hub ids are 'name' or 'owner/name'; anything else with a slash is meant as a folder."""
    return spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or "\\" in spec


def _missing_files(folder: Path) -> list[str]:
    missing = [name for name in (CONFIG_FILE, PREPROCESSOR_FILE) if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        missing.append("model.safetensors or pytorch_model.bin")
    return missing


def _require_files(folder: Path, spec: str, option: str) -> None:
    missing = _missing_files(folder)
    if missing:
        raise MissingWeightsError(
            f"model {spec} lacks {', '.join(missing)} in {folder}; {fetch_hint(spec, option)}"
        )


def _folder_hash(folder: Path) -> str:
    """Hash of the config and weight files' fingerprints: changes when the model does."""
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, PREPROCESSOR_FILE, *WEIGHT_FILES):
        path = folder / name
        if path.is_file():
            digest.update(f"{name}={quick_fingerprint(path)};".encode())
    for shard in sorted(folder.glob("model-*.safetensors")) + sorted(
        folder.glob("pytorch_model-*.bin")
    ):
        digest.update(f"{shard.name}={quick_fingerprint(shard)};".encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load-time warnings and bars (unused CTC head weights, shards)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


class SpeechEncoder(ClosingModel):
    """A loaded speech model and its feature extractor, run over long audio in ER-NeRF's chunks.

    head 'hidden': `HubertModel` -> last_hidden_state [T, hidden].
    head 'ctc': any `AutoModelForCTC` (wav2vec2, HuBERT CTC, ...) -> logits [T, classes].
    Use as a context manager so that the weights (and GPU memory) are freed afterwards.
    """

    def __init__(self, model: Any, extractor: Any, head: Head, device: str = "cpu") -> None:
        """Wrap a built model (benchmarks build theirs; `load` reads a folder)."""
        if extractor.sampling_rate != SAMPLE_RATE:
            raise TaskError(
                f"the model expects {extractor.sampling_rate} Hz audio; talkprep feeds "
                f"{SAMPLE_RATE} Hz: choose a 16 kHz speech model"
            )
        from talkprep.models.front_end import segment_front_end
        from talkprep.models.onednn import onednn_linears

        self.model = model.eval().to(device)
        segment_front_end(self.model)
        if device == "cpu":
            onednn_linears(self.model)
        self.extractor = extractor
        self.head = head
        self.device = device
        config = model.config
        self.width = int(config.hidden_size if head == "hidden" else config.vocab_size)

    @classmethod
    def load(cls, source: ModelSource, head: Head, device: str = "cpu") -> SpeechEncoder:
        """Load weights and feature extractor from `source.path` (never from the network)."""
        import torch
        from transformers import AutoConfig, AutoModelForCTC, HubertModel, Wav2Vec2FeatureExtractor

        path = str(source.path)
        try:
            with _quiet_transformers():
                config = AutoConfig.from_pretrained(path, local_files_only=True)
                _check_front_end(config, source.spec)
                if head == "hidden" and config.model_type != "hubert":
                    raise TaskError(
                        f"{source.spec} is a {config.model_type} model, not HuBERT; "
                        "give a HuBERT model to --hubert-model"
                    )
                model_class = HubertModel if head == "hidden" else AutoModelForCTC
                model = model_class.from_pretrained(
                    path, local_files_only=True, dtype=torch.float32
                )
                extractor = Wav2Vec2FeatureExtractor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            raise MissingWeightsError(
                f"cannot load model {source.spec} from {path} ({type(exc).__name__}: {first_line})"
            ) from None
        return cls(model, extractor, head, device)

    def close(self) -> None:
        """Drop the weights; on CUDA also return the cached blocks to the driver."""
        self.model = None
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    def normaliser(self, samples: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """The feature extractor's whole-clip normalisation, to apply chunk by chunk: zero mean
        and unit variance over the whole clip when its config says do_normalize, computed as
        Wav2Vec2FeatureExtractor does (the same float32 values); the normalised clip, as long as
        the audio, is never held beside it."""
        if not self.extractor.do_normalize:
            return lambda chunk: np.asarray(chunk, dtype=np.float32)
        clip = np.asarray(samples, dtype=np.float32)
        mean, scale = clip.mean(), np.sqrt(clip.var() + 1e-7)
        return lambda chunk: (np.asarray(chunk, dtype=np.float32) - mean) / scale

    def forward(self, input_values: np.ndarray) -> np.ndarray:
        """One chunk of normalised samples -> float32 [steps, width]."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(input_values)).unsqueeze(0).to(self.device)
            output = self.model(x)
            states = output.last_hidden_state if self.head == "hidden" else output.logits
            return states[0].float().cpu().numpy()

    def encode(
        self,
        samples: np.ndarray,
        chunk_samples: int = CHUNK_SAMPLES,
        progress: Callable[[Iterable[Chunk]], Iterable[Chunk]] | None = None,
        out: StepRows | None = None,
    ) -> StepRows:
        """16 kHz mono samples -> float32 [(L - 80) // 320, width], as ER-NeRF's hubert.py,
        into `out` when given (see run_chunked), else a new array."""
        normalise = self.normaliser(samples)
        return run_chunked(
            lambda chunk: self.forward(normalise(chunk)),
            samples,
            self.width,
            chunk_samples,
            progress,
            out,
        )


def _check_front_end(config: Any, spec: str) -> None:
    if not hasattr(config, "conv_stride") or not hasattr(config, "conv_kernel"):
        raise TaskError(f"{spec} is not a wav2vec2-family speech model (no conv front end)")
    from talkprep.models.front_end import conv_front_end

    stride, receptive = conv_front_end(config)
    if (stride, receptive) != (STEP_SAMPLES, RECEPTIVE_SAMPLES):
        raise TaskError(
            f"{spec} has a front end of stride {stride} and receptive field {receptive} samples; "
            f"talkprep's 50 Hz features need {STEP_SAMPLES} and {RECEPTIVE_SAMPLES}"
        )
