"""talkprep batch: one folder per video, both engines, same files as `process`, kill and resume."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import clip_path

from talkprep.batch import local as local_module
from talkprep.batch.inputs import assign_folders, collect_videos
from talkprep.batch.jobs import VideoJob, VideoResult
from talkprep.batch.local import run_local
from talkprep.batch.runner import BATCH_JSON, split_batch_options
from talkprep.cli import main
from talkprep.errors import UsageError
from talkprep.io.atomic import TEMP_MARK
from talkprep.manifest import file_fingerprint, manifest_path
from talkprep.pipeline import LOCK_NAME

OPTIONS = ["--tasks", "1-4", "--audio-features", "mel"]
"""Audio, mel features, frames and landmarks: real work, short enough for the suite."""
RUN_FILES = {LOCK_NAME, "report.html"}
"""Files that record a run rather than hold data; compared by presence only."""


def _broken(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "broken.mp4"
    path.write_bytes(b"this is not a video\n" * 100)
    return path


def _batch(*args: Any) -> tuple[int, str]:
    """Run `talkprep batch ...` in this process; returns the exit code and what it printed."""
    stream = io.StringIO()
    with contextlib.redirect_stderr(stream), contextlib.redirect_stdout(stream):
        code = main(["batch", *map(str, args)])
    return code, stream.getvalue()


def _summary(root: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((root / BATCH_JSON).read_text())
    return {v["folder"]: v for v in data["videos"]}


def _data_files(folder: Path) -> list[Path]:
    """Dataset files of a folder, without talkprep's run state (.talkprep/, the lock)."""
    return sorted(
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.is_file()
        and ".talkprep" not in p.relative_to(folder).parts[:-1]
        and p.name not in RUN_FILES
    )


def assert_same_dataset(reference: Path, folder: Path) -> None:
    """The same files with the same contents; float arrays may differ in the last bits, as
    they do between runs with different thread counts (BLAS sums in another order)."""
    assert _data_files(folder) == _data_files(reference)
    for name in RUN_FILES:
        assert (folder / name).is_file() == (reference / name).is_file(), name
    for name in _data_files(reference):
        a, b = (reference / name).read_bytes(), (folder / name).read_bytes()
        if a == b:
            continue
        if name.suffix == ".npy":
            np.testing.assert_allclose(
                np.load(folder / name), np.load(reference / name), rtol=1e-5, atol=1e-5
            )
        elif name.suffix == ".pt":
            x, y = torch.load(reference / name), torch.load(folder / name)
            assert x.keys() == y.keys()
            for key in x:
                torch.testing.assert_close(y[key], x[key], rtol=1e-5, atol=1e-5)
        else:
            raise AssertionError(f"{name} differs from what talkprep process wrote")


@pytest.fixture(scope="module")
def clips() -> list[Path]:
    return [clip_path("hdtf"), clip_path("headturn")]


@pytest.fixture(scope="module")
def references(clips: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each clip processed by `talkprep process` with the batch's options."""
    root = tmp_path_factory.mktemp("process")
    folders = {}
    for clip in clips:
        folders[clip.stem] = root / clip.stem
        assert main(["process", str(clip), "-o", str(folders[clip.stem]), *OPTIONS, "-q"]) == 0
    return folders


@pytest.fixture(scope="module")
def local_batch(clips: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("local")
    broken = _broken(work / "in")
    root = work / "root"
    code, printed = _batch(
        *clips, broken, "-o", root, "--engine", "local", "--workers", 2, *OPTIONS
    )
    return {"root": root, "code": code, "printed": printed, "broken": broken}


def test_local_batch_matches_process_and_reports_the_broken_file(
    local_batch: dict[str, Any], references: dict[str, Path], clips: list[Path]
) -> None:
    root = local_batch["root"]
    assert local_batch["code"] == 3
    videos = _summary(root)
    assert set(videos) == {clip.stem for clip in clips} | {"broken"}
    for clip in clips:
        assert videos[clip.stem]["status"] == "done"
        assert videos[clip.stem]["tasks"] == dict.fromkeys(
            ["audio", "audio_features", "frames", "landmarks"], "done"
        )
        assert_same_dataset(references[clip.stem], root / clip.stem)
    assert videos["hdtf_512_25fps_8s_mpeg4"]["frames"] == 200
    broken = videos["broken"]
    assert broken["status"] == "error"
    assert "not a readable video" in broken["failures"][0]
    assert not (root / "broken").exists()
    printed = local_batch["printed"]
    assert "2 worker(s) x 1 thread(s)" in printed
    assert "3 video(s) in" in printed and "2 done, 1 error" in printed
    assert re.search(r"^broken +error +0\.\d s +.*not a readable video", printed, re.M)
    data = json.loads((root / BATCH_JSON).read_text())
    assert data["complete"] is True and data["counts"] == {"done": 2, "error": 1}
    stream = io.StringIO()
    with contextlib.redirect_stdout(stream):
        assert main(["check", str(root)]) == 1  # a batch's ROOT: each video's status
    assert re.search(r"^broken +error +.*not a readable video", stream.getvalue(), re.M)
    assert re.search(r"^hdtf_512_25fps_8s_mpeg4 +done +200 ", stream.getvalue(), re.M)
    assert "the batch ended (3 video(s))" in stream.getvalue()


def test_rerun_skips_finished_videos(local_batch: dict[str, Any], clips: list[Path]) -> None:
    root = local_batch["root"]
    before = {p: p.stat().st_mtime_ns for p in (root / clips[0].stem).rglob("*.jpg")}
    code, _ = _batch(*clips, local_batch["broken"], "-o", root, "--workers", 2, *OPTIONS)
    assert code == 3
    videos = _summary(root)
    for clip in clips:
        assert videos[clip.stem]["status"] == "up-to-date"
        assert set(videos[clip.stem]["tasks"].values()) == {"skipped"}
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_killed_batch_resumes_only_the_missing_work(
    local_batch: dict[str, Any], clips: list[Path], tmp_path: Path
) -> None:
    first, second = clips
    root = tmp_path / "root"
    command = [sys.executable, "-m", "talkprep", "batch", str(first), str(second), "-o", str(root)]
    process = subprocess.Popen(
        [*command, "--workers", "1", *OPTIONS, "-q"],
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    done_at_kill: set[str] = set()
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                tasks = json.loads(manifest_path(root / second.stem).read_text())["tasks"]
                done_at_kill = {n for n, r in tasks.items() if r["status"] == "done"}
                if done_at_kill:
                    break
            time.sleep(0.02)
        assert process.poll() is None, "the batch finished before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert "landmarks" not in done_at_kill
    assert _summary(root)[first.stem]["status"] == "done"

    code, _ = _batch(first, second, "-o", root, "--workers", 1, *OPTIONS)
    assert code == 0
    videos = _summary(root)
    assert videos[first.stem]["status"] == "up-to-date"
    rerun = videos[second.stem]["tasks"]
    assert {n for n, s in rerun.items() if s == "skipped"} == done_at_kill
    assert {n for n, s in rerun.items() if s == "done"} == set(rerun) - done_at_kill
    assert not list(root.rglob(f"*{TEMP_MARK}*"))
    assert_same_dataset(local_batch["root"] / second.stem, root / second.stem)


def test_ray_batch_matches_process(
    clips: list[Path], references: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install talkprep[ray]")
    root = tmp_path / "root"
    broken = _broken(tmp_path / "in")
    args = ["--engine", "ray", "--workers", 2, "--threads-per-video", 1]
    code, printed = _batch(clips[0], broken, "-o", root, *args, *OPTIONS)
    assert code == 3, printed
    assert "Ray: 2 video(s) at a time, 1 CPU(s) each" in printed
    videos = _summary(root)
    assert videos[clips[0].stem]["status"] == "done"
    assert videos["broken"]["status"] == "error"
    assert_same_dataset(references[clips[0].stem], root / clips[0].stem)


def test_a_dead_ray_worker_is_retried(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install talkprep[ray]")
    from ray import cloudpickle

    from talkprep.batch.ray_engine import RayPlan, connect, run_ray

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests
    job = VideoJob(tmp_path / "v.mp4", "v", tmp_path, tmp_path / "v.log", {}, "run")
    events = _Recorder()
    connect(ray, None, 1)
    try:
        run_ray([job], ray, RayPlan(cpus=1, gpus=0, slots=1), events, work=_die_once)
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    [result] = events.results
    assert result.status == "done"
    assert (tmp_path / "tried").exists()


def test_an_unreachable_ray_address_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install talkprep[ray]")
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    root = tmp_path / "root"
    started = time.monotonic()
    args = ["--engine", "ray", "--ray-address", address]
    code, printed = _batch(_broken(tmp_path), "-o", root, *args)
    assert code == 1 and f"--ray-address {address}: nothing answers there" in printed
    assert time.monotonic() - started < 30
    assert not root.exists()


class _FakeRay:
    """The cluster facts `plan` reads: one node of `cpus` CPUs and `gpus` GPUs."""

    def __init__(self, cpus: int, gpus: int) -> None:
        self.resources = {"CPU": float(cpus), **({"GPU": float(gpus)} if gpus else {})}

    def nodes(self) -> list[dict[str, Any]]:
        return [{"Alive": True, "Resources": self.resources}]

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


def test_ray_tasks_declare_cpus_and_gpus() -> None:
    from talkprep.batch.ray_engine import RayPlan, plan

    assert plan(_FakeRay(8, 0), None, None, "auto") == RayPlan(cpus=2, gpus=0, slots=4)
    assert plan(_FakeRay(8, 2), None, None, "auto") == RayPlan(cpus=2, gpus=1, slots=2)
    assert plan(_FakeRay(8, 2), 1, 0.25, "auto") == RayPlan(cpus=1, gpus=0.25, slots=8)
    assert plan(_FakeRay(8, 2), None, None, "cpu") == RayPlan(cpus=2, gpus=0, slots=4)
    with pytest.raises(UsageError, match="--device cpu"):
        plan(_FakeRay(8, 0), None, None, "cuda")
    with pytest.raises(UsageError, match="largest: 8"):
        plan(_FakeRay(8, 0), 16, None, "auto")


def test_ray_engine_without_ray_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    video = _broken(tmp_path)
    assert main(["batch", str(video), "-o", str(tmp_path / "root"), "--engine", "ray"]) == 1
    assert 'pip install "talkprep[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def _die_once(job: VideoJob) -> VideoResult:
    """A worker body that kills its own process on the first try (as the OOM killer would)."""
    marker = job.out / "tried"
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return VideoResult(str(job.video), job.name, "done")


def _always_die(job: VideoJob) -> VideoResult:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


class _Recorder:
    def __init__(self) -> None:
        self.results: list[VideoResult] = []
        self.retries: list[str] = []

    def started(self, job: VideoJob) -> None:
        pass

    def retrying(self, job: VideoJob, reason: str) -> None:
        self.retries.append(reason)

    def finished(self, result: VideoResult) -> None:
        self.results.append(result)

    def tick(self) -> None:
        pass


@pytest.mark.parametrize(
    ("work", "status", "attempts"), [(_die_once, "done", 2), (_always_die, "crashed", 2)]
)
def test_a_dead_worker_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, work: Any, status: str, attempts: int
) -> None:
    monkeypatch.setattr(local_module, "MAX_ATTEMPTS", 2)  # each try starts a worker: keep it short
    job = VideoJob(tmp_path / "v.mp4", "v", tmp_path, tmp_path / "v.log", {}, "run")
    events = _Recorder()
    run_local([job], workers=1, threads=1, events=events, work=work)
    [result] = events.results
    assert (result.status, result.attempts) == (status, attempts)
    assert events.retries == ["its worker process died (killed by SIGKILL)"] * (attempts - 1)
    if status == "crashed":
        assert result.failures == ("its worker process died (killed by SIGKILL) on all 2 tries",)


def test_worker_threads_are_limited_before_heavy_imports() -> None:
    code = (
        "import sys\n"
        "import talkprep.batch.local\n"
        "assert 'numpy' not in sys.modules and 'torch' not in sys.modules, 'imported too early'\n"
        "from talkprep.batch.worker import limit_threads\n"
        "limit_threads(2)\n"
        "import os, numpy, torch\n"
        "print(torch.get_num_threads(), os.environ['OPENBLAS_NUM_THREADS'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "2"]


def test_collect_videos_expands_folders_and_skips_root(tmp_path: Path) -> None:
    (tmp_path / "in" / "deep" / ".hidden").mkdir(parents=True)
    for name in ["a.mp4", "b.MOV", "notes.txt", "deep/c.mkv", "deep/.hidden/d.mp4"]:
        (tmp_path / "in" / name).write_bytes(b"x")
    root = tmp_path / "in" / "out"
    (root / "a").mkdir(parents=True)
    (root / "a" / "preview.mp4").write_bytes(b"x")
    explicit = tmp_path / "in" / "notes.txt"
    found = collect_videos([tmp_path / "in", tmp_path / "in" / "a.mp4", explicit], root)
    names = [p.relative_to(tmp_path / "in").as_posix() for p in found]
    assert names == ["a.mp4", "b.MOV", "deep/c.mkv", "notes.txt"]
    with pytest.raises(UsageError, match="does not exist"):
        collect_videos([tmp_path / "nope.mp4"], root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no videos"):
        collect_videos([tmp_path / "empty"], root)


def test_folder_names_are_unique_and_stable(tmp_path: Path) -> None:
    videos = []
    for parent, content in [("a", b"first"), ("b", b"second"), ("c", b"third")]:
        (tmp_path / parent).mkdir()
        videos.append(tmp_path / parent / "clip.mp4")
        videos[-1].write_bytes(content)
    root = tmp_path / "root"
    assert assign_folders(videos[:2], root) == ["clip", "clip-2"]
    # b's folder already holds b's dataset: b keeps it, whatever the order or the other inputs
    (root / "clip" / ".talkprep").mkdir(parents=True)
    manifest = {"talkprep_version": "0", "tasks": {}, "input": {}}
    manifest["input"]["fingerprint"] = file_fingerprint(videos[1])
    (root / "clip" / ".talkprep" / "manifest.json").write_text(json.dumps(manifest))
    assert assign_folders(videos, root) == ["clip-2", "clip", "clip-3"]
    # a folder with files talkprep did not write is never used; one with only a lock is
    (root / "other").mkdir()
    (root / "other" / "notes.txt").write_text("mine")
    (root / "fresh").mkdir()
    (root / "fresh" / LOCK_NAME).write_text("")
    other, fresh = tmp_path / "other.mp4", tmp_path / "fresh.mp4"
    other.write_bytes(b"o")
    fresh.write_bytes(b"f")
    assert assign_folders([other, fresh], root) == ["other-2", "fresh"]


def test_a_stem_that_looks_numbered_keeps_its_folder(tmp_path: Path) -> None:
    videos = []
    for parent, stem in [("a", "clip"), ("b", "clip"), ("c", "clip-2")]:
        (tmp_path / parent).mkdir()
        videos.append(tmp_path / parent / f"{stem}.mp4")
        videos[-1].write_bytes(parent.encode())
    root = tmp_path / "root"
    names = assign_folders(videos, root)
    assert names == ["clip", "clip-2", "clip-2-2"]
    for video, name in zip(videos, names, strict=True):
        manifest = {"talkprep_version": "0", "tasks": {}, "input": {}}
        manifest["input"]["fingerprint"] = file_fingerprint(video)
        (root / name / ".talkprep").mkdir(parents=True)
        (root / name / ".talkprep" / "manifest.json").write_text(json.dumps(manifest))
    assert assign_folders(videos[::-1], root) == names[::-1]


def test_batch_options_are_checked() -> None:
    options, rest = split_batch_options({"engine": "ray", "workers": "3", "fps": "25"})
    assert (options.engine, options.workers, rest) == ("ray", 3, {"fps": "25"})
    for bad in (
        {"engine": "slurm"},
        {"workers": "0"},
        {"workers": "1.5"},
        {"engine": "ray", "gpus_per_video": "-1"},
        {"gpus_per_video": "1"},
        {"ray_address": "head:6379"},
        {"engine": "ray", "ray_address": "head:6379", "workers": "4"},
    ):
        with pytest.raises(UsageError):
            split_batch_options(bad)


def test_progress_shows_what_each_video_is_doing(tmp_path: Path) -> None:
    from talkprep.batch.runner import BatchOptions, _Tracker
    from talkprep.console import Console

    job = VideoJob(tmp_path / "v.mp4", "v", tmp_path / "v", tmp_path / "v.log", {}, "run")
    tracker = _Tracker(tmp_path, [job], BatchOptions(), Console(quiet=True))
    assert tracker._doing(job) == ""  # no log yet
    job.log.write_text("=== run 2026-01-01 host pid 1: v.mp4\n")
    assert tracker._doing(job) == "starting"
    with job.log.open("a") as log:
        log.write("[4] face mesh landmarks and head tracking -> landmarks.npy ...\n")
        log.flush()
        assert tracker._doing(job) == "[4] face mesh landmarks and head tracking"
        log.write("landmarks 80/200 frames\nINFO: Created TensorFlow Lite XNNPACK delegate\n")
    assert tracker._doing(job) == "landmarks 80/200 frames"
    tracker.close()
    assert json.loads((tmp_path / BATCH_JSON).read_text())["videos"][0]["status"] == "pending"


def test_a_busy_root_or_a_foreign_summary_stops_the_batch(tmp_path: Path) -> None:
    from talkprep.pipeline import folder_lock

    video, root = _broken(tmp_path / "in"), tmp_path / "root"
    root.mkdir()
    with folder_lock(root):
        code, printed = _batch(video, "-o", root)
    assert code == 1 and "in use by another talkprep run" in printed
    second = video.with_name("second.mp4")
    second.write_bytes(video.read_bytes())
    code, printed = _batch(video, second, "-o", root, "--audio", video)
    assert code == 1 and "one audio file to every video" in printed
    (root / BATCH_JSON).write_text("my notes\n")
    code, printed = _batch(video, "-o", root)
    assert code == 1 and "was not written by talkprep" in printed
    assert (root / BATCH_JSON).read_text() == "my notes\n"


def _talkprep_version(job: VideoJob) -> VideoResult:
    """A Ray task's body that reports which talkprep its worker imported, and where it runs."""
    import talkprep

    return VideoResult(str(job.video), job.name, "done", failures=(talkprep.__file__, os.getcwd()))


def test_ray_workers_import_the_installed_talkprep_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray puts the driver's working folder on its workers' path: a `talkprep/` there (a clone's
    root, a dataset folder of that name) must not hide the installed package."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install talkprep[ray]")
    from ray import cloudpickle

    import talkprep
    from talkprep.batch.ray_engine import RayPlan, connect, run_ray

    here = tmp_path / "clone-parent"
    (here / "talkprep").mkdir(parents=True)  # a clone's root, or any other talkprep/
    (here / "talkprep" / "__init__.py").write_text("raise ImportError('not talkprep')\n")
    monkeypatch.chdir(here)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests
    job = VideoJob(tmp_path / "v.mp4", "v", tmp_path, tmp_path / "v.log", {}, "run")
    events = _Recorder()
    connect(ray, None, 1)
    try:
        run_ray([job], ray, RayPlan(cpus=1, gpus=0, slots=1), events, work=_talkprep_version)
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    [result] = events.results
    assert result.status == "done", result.failures
    assert result.failures == (talkprep.__file__, str(here))  # relative paths keep their meaning
    assert Path.cwd() == here
