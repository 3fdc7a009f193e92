"""Shared fixtures: the real clips in ../shared/data and datasets processed from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from talkprep.config import build_config
from talkprep.console import Console

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"
MODELS = SHARED / "models"

CLIPS: dict[str, tuple[str, dict[str, Any]]] = {
    "anchor": ("anchor_512_25fps_20s.mp4", {}),
    "hdtf": ("hdtf_512_25fps_8s_mpeg4.mp4", {}),
    "obama": ("obama_256_30fps_30s_noaudio.mp4", {"audio": DATA / "obama_256_30fps_30s.wav"}),
    "selfie": ("selfie_720x1280_30fps_12s_noaudio.mp4", {"crop": "auto"}),
    "headturn": ("headturn_700_vfr_6s.mp4", {}),
    "longhair_hoops": ("longhair_hoops_512_30fps_12s_silent.mp4", {}),
    "longhair_hands": ("longhair_hands_480x908_30fps_10s_silent.mp4", {"crop": "auto"}),
    "longhair_wide": ("longhair_1280x720_30fps_9s.mp4", {"crop": "auto"}),
}
"""Each shared clip with the options it needs (the selfie needs a crop, Obama its separate wav)."""

TEST_DEFAULTS: dict[str, Any] = {"audio_features": "mel"}
"""Tests never download: the HuBERT default needs weights, so processed folders use mel features."""


def clip_path(name: str) -> Path:
    """Path of a shared clip; skips the test cleanly when ../shared/data is absent."""
    path = DATA / CLIPS[name][0]
    if not path.is_file():
        pytest.skip(f"shared clip {path} is not available")
    return path


@pytest.fixture(scope="session")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """processed(clip, tasks="1,3", **options) -> dataset folder, made once per clip and session.

    Calls with more tasks reuse the same folder, so earlier tasks are skipped as up to date.
    The returned folder is shared between tests: copy it before modifying anything in it.
    """
    from talkprep.pipeline import Pipeline

    root = tmp_path_factory.mktemp("datasets")

    def make(clip: str, tasks: str = "1,3", **options: Any) -> Path:
        video = clip_path(clip)
        values = {**TEST_DEFAULTS, **CLIPS[clip][1], **options}
        suffix = "-".join(f"{k}={v}" for k, v in sorted(options.items()))
        out = root / (clip + (f"-{suffix}" if suffix else "")).replace("/", "_")
        config = build_config({"video": video, "out": out, "tasks": tasks, **values})
        outcomes = Pipeline(config, Console(quiet=True)).run()
        failed = [o for o in outcomes if o.status not in ("done", "skipped")]
        if failed:
            pytest.fail(
                f"processing {clip} failed: {[(o.name, o.status, o.message) for o in failed]}"
            )
        return out

    return make


@pytest.fixture
def pool_starts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The worker count of every span worker pool started while the test runs, in order."""
    from talkprep import parallel

    started: list[int] = []
    start = parallel._Pool.start

    def counted(pool: parallel._Pool, workers: int) -> None:
        started.append(workers)
        start(pool, workers)

    monkeypatch.setattr(parallel._Pool, "start", counted)
    return started
