"""The Face Landmarker bundle for blendshapes: fetched once into talkprep's cache (here from a
server on 127.0.0.1), never when offline, refused when it is not a bundle."""

from __future__ import annotations

import http.server
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MODELS

from talkprep.config import build_config
from talkprep.errors import MissingWeightsError, UsageError
from talkprep.models.face_landmarker import (
    BUNDLE_FILES,
    URL_ENV,
    bundle_problem,
    cache_path,
    face_landmarker_bundle,
)
from talkprep.tasks.landmarks import BLENDSHAPES_NAME, LandmarksTask


def _tiny_bundle(path: Path, names: frozenset[str] = BUNDLE_FILES) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name in sorted(names):
            bundle.writestr(name, b"model bytes")
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server over tmp_path/www; yields its base URL and the paths requested."""
    root = tmp_path / "www"
    root.mkdir()
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            requested.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requested
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return cache_path()


def test_downloaded_once_into_the_cache(server, cache, tmp_path, monkeypatch):
    url, requested = server
    source = MODELS / "face_landmarker.task"
    bundle = tmp_path / "www" / "face_landmarker.task"
    if source.is_file():
        shutil.copy(source, bundle)
    else:
        _tiny_bundle(bundle)
    monkeypatch.setenv(URL_ENV, f"{url}/face_landmarker.task")
    assert face_landmarker_bundle() == cache
    assert cache.read_bytes() == bundle.read_bytes()
    assert face_landmarker_bundle() == cache
    assert len(requested) == 1, "the second call uses the cache"


def test_offline_and_not_cached_is_one_line_with_the_fetch_command(cache, monkeypatch):
    with pytest.raises(MissingWeightsError, match="--offline forbids downloads") as error:
        face_landmarker_bundle(offline=True)
    assert "curl -L -o" in str(error.value) and "\n" not in str(error.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="HF_HUB_OFFLINE forbids downloads"):
        face_landmarker_bundle()
    assert not cache.exists()


def test_a_server_that_gives_no_bundle_leaves_no_file(server, cache, tmp_path, monkeypatch):
    url, _ = server
    (tmp_path / "www" / "face_landmarker.task").write_bytes(b"<html>not found</html>")
    monkeypatch.setenv(URL_ENV, f"{url}/face_landmarker.task")
    with pytest.raises(MissingWeightsError, match="not a zip archive"):
        face_landmarker_bundle()
    monkeypatch.setenv(URL_ENV, f"{url}/missing.task")
    with pytest.raises(MissingWeightsError, match="downloading face_landmarker.task failed"):
        face_landmarker_bundle()
    assert not cache.exists()


def test_blendshapes_flag_asks_for_the_file_and_validates_before_work(cache, tmp_path):
    config = build_config(
        {"video": tmp_path / "v.mp4", "out": tmp_path / "o", "blendshapes": True, "offline": True}
    )
    task = LandmarksTask()
    assert BLENDSHAPES_NAME in task.outputs(config)
    with pytest.raises(UsageError, match="--blendshapes: face_landmarker.task is not in"):
        task.validate(config)
    cache.parent.mkdir(parents=True)
    _tiny_bundle(cache)
    task.validate(config)  # cached: nothing to fetch
    assert bundle_problem(_tiny_bundle(tmp_path / "half.task", frozenset({"face_detector.tflite"})))
