"""MediaPipe's Face Landmarker bundle (face_landmarker.task), for the 52 blendshape scores.

The mediapipe wheel does not ship it. `--blendshape-model PATH` names a copy; `--blendshapes`
takes the one in talkprep's cache (`$XDG_CACHE_HOME/talkprep`, else `~/.cache/talkprep`) and
downloads it there on first use, with a progress bar, unless `--offline` (or HF_HUB_OFFLINE)
forbids it. A bundle is a zip archive; one that lacks the landmark or blendshape models is refused.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from talkprep.errors import MissingWeightsError
from talkprep.hints import shell
from talkprep.io.atomic import atomic_path

BUNDLE_NAME = "face_landmarker.task"
BUNDLE_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
    + BUNDLE_NAME
)
URL_ENV = "TALKPREP_FACE_LANDMARKER_URL"
"""Set to fetch the bundle from a mirror instead of BUNDLE_URL."""
BUNDLE_FILES = frozenset({"face_landmarks_detector.tflite", "face_blendshapes.tflite"})
"""What a bundle must hold to give blendshapes."""
CHUNK = 1 << 16
TIMEOUT_S = 20.0
TRUE_VALUES = {"1", "true", "yes", "on"}


def cache_path() -> Path:
    """Where the downloaded bundle is kept."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "talkprep" / BUNDLE_NAME


def bundle_problem(path: Path) -> str | None:
    """None when `path` is a Face Landmarker bundle with blendshapes, else what is wrong."""
    try:
        with zipfile.ZipFile(path) as bundle:
            names = set(bundle.namelist())
    except (OSError, zipfile.BadZipFile):
        return "not a zip archive"
    missing = sorted(BUNDLE_FILES - names)
    return f"it lacks {', '.join(missing)}" if missing else None


def fetch_hint() -> str:
    """The shell line that fetches the bundle into talkprep's cache (quoted: paths may hold
    spaces), or why none can be printed."""
    url = os.environ.get(URL_ENV) or BUNDLE_URL
    command = shell(["mkdir", "-p", cache_path().parent], ["curl", "-L", "-o", cache_path(), url])
    return f"fetch it once with: {command} (or give a copy with --blendshape-model PATH)"


def face_landmarker_bundle(offline: bool = False) -> Path:
    """The cached bundle, downloaded on first use; MissingWeightsError (one line) when it cannot
    be had."""
    path = cache_path()
    if path.is_file() and bundle_problem(path) is None:
        return path
    if offline or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE_VALUES:
        why = "--offline" if offline else "HF_HUB_OFFLINE"
        raise MissingWeightsError(
            f"{BUNDLE_NAME} is not in {path.parent} and {why} forbids downloads; {fetch_hint()}"
        )
    url = os.environ.get(URL_ENV) or BUNDLE_URL
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, atomic_path(path) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = tqdm(total=total, desc=BUNDLE_NAME, unit="B", unit_scale=True, disable=None)
            with bar, tmp.open("wb") as handle:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    handle.write(chunk)
                    bar.update(len(chunk))
            problem = bundle_problem(tmp)
            if problem:
                raise MissingWeightsError(
                    f"{url} gave no Face Landmarker bundle ({problem}); {fetch_hint()}"
                )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MissingWeightsError(
            f"downloading {BUNDLE_NAME} failed ({reason}); {fetch_hint()}"
        ) from None
    return path
