"""Reliability: talkprep never deletes a user's file, never trusts a damaged output, never reads a
local path as a URL, and says in one line what went wrong (issue: fault-injection probe)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from synth import moving_square_frames, write_video

import talkprep.io.atomic as atomic_module
from talkprep.cli import main
from talkprep.errors import OutputError
from talkprep.io.verify import verify_file
from talkprep.manifest import Manifest, manifest_path
from talkprep.pipeline import ERROR_LOG, LOCK_NAME
from talkprep.tasks.frames import FramesTask

TALKPREP = [sys.executable, "-m", "talkprep"]
RATE = 16000


def _tone(seconds: float) -> np.ndarray:
    return (0.3 * np.sin(np.arange(int(seconds * RATE)) * 0.05)).astype(np.float32)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """A 2 s, 25 fps video with a sound track."""
    return write_video(tmp_path / "v.mp4", moving_square_frames(50), fps=25, audio=_tone(2.0))


def _env_with_tests() -> dict[str, str]:
    """This environment, with the project and this folder importable (for `python -c` runners
    that use this module's helpers)."""
    here = Path(__file__).resolve().parent
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent), str(here)])}


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [*TALKPREP, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def _manifest(folder: Path) -> dict:
    return json.loads(manifest_path(folder).read_text())


def _write_wav(path: Path, samples: np.ndarray, rate: int, channels: int) -> None:
    pcm = np.round(np.repeat(samples[:, None], channels, axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())


# 1. an input inside OUT is never deleted or overwritten


def test_audio_inside_out_is_kept_and_the_run_refuses_to_replace_it(video, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    user_audio = out / "aud.wav"
    _write_wav(user_audio, _tone(2.0)[::1], 44100, 2)
    before = user_audio.read_bytes()
    result = _run("process", str(video), "-o", str(out), "--audio", str(user_audio), "--tasks", "1")
    assert result.returncode == 1, result.stderr
    assert "never overwrites a file it did not write" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert user_audio.read_bytes() == before


# 2. only talkprep's own numbered files are removed, never through a symlinked folder


def test_a_users_files_in_output_folders_survive_reruns(video, tmp_path):
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    photo = out / "ori_imgs" / "my_photo.jpg"
    photo.write_bytes(b"a user's photo")
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "--fps", "10", "-q"]) == 0
    assert photo.read_bytes() == b"a user's photo"
    assert sorted(int(p.stem) for p in (out / "ori_imgs").glob("[0-9]*.jpg")) == list(range(20))
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "--force", "-q"]) == 0
    assert photo.read_bytes() == b"a user's photo"


def test_nothing_is_deleted_through_a_symlinked_folder(video, tmp_path):
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / "ori_imgs", elsewhere)
    (out / "ori_imgs").symlink_to(elsewhere, target_is_directory=True)
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "--fps", "10", "-q"]) == 0
    assert all((elsewhere / f"{i}.jpg").is_file() for i in range(20, 50))


def test_a_foreign_file_where_a_task_writes_is_not_overwritten(video, tmp_path, capsys):
    out = tmp_path / "o"
    (out / "ori_imgs").mkdir(parents=True)
    theirs = out / "ori_imgs" / "0.jpg"
    theirs.write_bytes(b"someone else's frame")
    assert main(["process", str(video), "-o", str(out), "--tasks", "1,3"]) == 3
    assert theirs.read_bytes() == b"someone else's frame"
    assert "was not written by talkprep" in capsys.readouterr().err
    assert (out / "aud.wav").is_file(), "the other task still runs"


# 3. another video's outputs do not survive into a new dataset


def test_a_new_video_clears_the_old_videos_outputs_first(video, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["--tasks", "1-3", "--audio-features", "mel", "-q"]
    assert main(["process", str(video), "-o", str(out), *args]) == 0
    assert (out / "aud_mel.npy").is_file()
    silent = write_video(tmp_path / "silent.mp4", moving_square_frames(40), fps=25)
    assert main(["process", str(silent), "-o", str(out), "--tasks", "1-3"]) == 3
    err = capsys.readouterr().err
    assert "held a dataset of another video" in err
    assert not (out / "aud_mel.npy").exists() and not (out / "aud.wav").exists()
    assert len(list((out / "ori_imgs").glob("*.jpg"))) == 40
    assert main(["check", str(out)]) == 1


# 4. bounds before allocation


def test_a_huge_task_range_is_refused_without_building_it(video, tmp_path):
    started = time.perf_counter()
    result = _run("process", str(video), "-o", str(tmp_path / "o"), "--tasks", "1-99999999999")
    assert result.returncode == 1
    assert "unknown task number" in result.stderr
    assert time.perf_counter() - started < 60


# 5. local names are files, never protocols


def test_a_file_named_like_a_url_is_opened_as_a_file(video, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    named = tmp_path / f"http:127.0.0.1:{port}"
    shutil.copy(video, named)
    odd = tmp_path / "clip:1.mp4"
    shutil.copy(video, odd)
    try:
        for name in (named.name, odd.name):
            result = _run("process", name, "-o", "out", "--tasks", "3", "-q", cwd=tmp_path)
            assert result.returncode == 0, result.stderr
        result = _run(
            "process", odd.name, "-o", "out2", "--audio", named.name, "--tasks", "1", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


# 6. a skip means verified outputs


@pytest.mark.parametrize(
    "damage",
    ["truncated_jpeg", "empty_jpeg", "wrong_shape_npy", "stereo_44k_wav", "garbage_npy"],
)
def test_damaged_outputs_are_rebuilt_not_skipped(video, tmp_path, capsys, damage):
    out = tmp_path / "o"
    args = ["process", str(video), "-o", str(out), "--tasks", "1-3", "--audio-features", "mel"]
    assert main([*args, "-q"]) == 0
    reference = {p: p.read_bytes() for p in (out / "aud_mel.npy", out / "ori_imgs" / "7.jpg")}
    frame = out / "ori_imgs" / "7.jpg"
    if damage == "truncated_jpeg":
        frame.write_bytes(frame.read_bytes()[:-200])
    elif damage == "empty_jpeg":
        frame.write_bytes(b"")
    elif damage == "wrong_shape_npy":
        mel = np.load(out / "aud_mel.npy")
        np.save(out / "aud_mel.npy", mel.reshape(-1, 40, 2))
    elif damage == "garbage_npy":
        size = (out / "aud_mel.npy").stat().st_size
        (out / "aud_mel.npy").write_bytes(b"\x00" * size)
    else:
        _write_wav(out / "aud.wav", _tone(2.0), 44100, 2)
    capsys.readouterr()
    assert main(args) == 0
    assert "rebuilding" in capsys.readouterr().err
    for path, data in reference.items():
        assert path.read_bytes() == data, path


def test_npy_rows_fill_a_file_on_disk_and_rename_it_only_when_done(tmp_path):
    target = tmp_path / "table.npy"
    with atomic_module.npy_rows(target, (5, 2, 3), (3,)) as rows:
        assert len(rows) == 10
        rows[4:7] = np.arange(9, dtype=np.float32).reshape(3, 3)
        rows[0:1] = np.full((1, 3), 7.0)
        with pytest.raises(ValueError):
            rows[0:2] = np.zeros((3, 3), np.float32)
        assert not target.exists()
    expected = np.zeros((10, 3), np.float32)
    expected[4:7] = np.arange(9).reshape(3, 3)
    expected[0] = 7.0
    table = np.load(target)
    assert table.dtype == np.float32
    np.testing.assert_array_equal(table, expected.reshape(5, 2, 3))
    assert verify_file(target) is None

    with pytest.raises(RuntimeError), atomic_module.npy_rows(target, (2, 3), (3,)) as rows:
        rows[0:1] = np.ones((1, 3), np.float32)
        raise RuntimeError("killed")
    np.testing.assert_array_equal(np.load(target), expected.reshape(5, 2, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.npy"]


def test_verify_file_finds_each_kind_of_damage(tmp_path):
    good_json = tmp_path / "t.json"
    good_json.write_text('{"frames": []}')
    assert verify_file(good_json) is None
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"frames": [')
    assert "JSON" in verify_file(bad_json)
    png = tmp_path / "a.png"
    png.write_bytes(b"")
    assert verify_file(png) == "empty file"
    np.save(tmp_path / "a.npy", np.zeros((4, 3), np.float32))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-4])
    assert verify_file(tmp_path / "a.npy") is None
    assert "needs" in verify_file(tmp_path / "cut.npy")
    _write_wav(tmp_path / "a.wav", _tone(0.1), RATE, 1)
    (tmp_path / "cut.wav").write_bytes((tmp_path / "a.wav").read_bytes()[:100])
    assert verify_file(tmp_path / "a.wav") is None
    assert "cut short" in verify_file(tmp_path / "cut.wav")


# 9 and 14. a full disk mid-run: exit 3, the summary, one sentence


def test_a_full_disk_mid_run_ends_with_the_summary_and_a_sentence(video, tmp_path, monkeypatch):
    out = tmp_path / "o"
    real_replace = os.replace

    def full_disk(src, dst):
        if str(dst).endswith(os.path.join("ori_imgs", "12.jpg")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic_module.os, "replace", full_disk)
    code = main(["process", str(video), "-o", str(out), "--tasks", "1,3"])
    assert code == 3
    record = _manifest(out)["tasks"]["frames"]
    assert record["status"] == "failed"
    assert record["error"] == "no space left on device while writing ori_imgs/12.jpg"
    assert _manifest(out)["tasks"]["audio"]["status"] == "done"


def test_a_manifest_that_cannot_be_written_mid_run_is_exit_3(video, tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    real_save = Manifest.save

    def failing_save(self: Manifest) -> None:
        if (self.data["tasks"].get("frames") or {}).get("status") == "done":
            raise OutputError(f"cannot write {manifest_path(self.root)}: no space left on device")
        real_save(self)

    monkeypatch.setattr(Manifest, "save", failing_save)
    assert main(["process", str(video), "-o", str(out), "--tasks", "1,3"]) == 3
    captured = capsys.readouterr()
    assert "3 frames" in captured.out + captured.err  # the summary table
    assert "no space left on device" in captured.out + captured.err


# 10. typed config values


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ("audio = 5", "audio must be a path"),
        ('force = "no"', "force must be true or false"),
        ('audio-features = ["mel", 3]', "3 is not a feature name"),
    ],
)
def test_toml_values_are_type_checked(video, tmp_path, toml, words):
    config = tmp_path / "c.toml"
    config.write_text(toml + "\n")
    result = _run("process", str(video), "-o", str(tmp_path / "o"), "--config", str(config))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert words in result.stderr


# 12. still images


@pytest.mark.parametrize("name", ["photo.jpg", "photo.mp4", "photo.png"])
def test_a_still_image_is_called_one(tmp_path, name):
    import cv2

    image = np.full((64, 64, 3), 120, np.uint8)
    ok, data = cv2.imencode(".png" if name.endswith(".png") else ".jpg", image)
    (tmp_path / name).write_bytes(data.tobytes())
    result = _run("process", str(tmp_path / name), "-o", str(tmp_path / "o"))
    assert result.returncode == 1
    assert "a still image, not a video" in result.stderr


# 13. duplicated and missing frames are said


def test_a_slow_source_warns_about_repeated_frames(tmp_path, capsys):
    slow = write_video(tmp_path / "slow.mp4", moving_square_frames(24), fps=12)
    assert main(["process", str(slow), "-o", str(tmp_path / "o"), "--tasks", "3"]) == 0
    err = capsys.readouterr().err
    assert "repeat the frame before them" in err
    assert "distinct frames per second" in err


# 14. messages


def test_an_empty_file_and_a_cut_file_get_sentences(tmp_path, video):
    (tmp_path / "empty.mkv").write_bytes(b"")
    result = _run("process", str(tmp_path / "empty.mkv"), "-o", str(tmp_path / "o"))
    assert result.returncode == 1 and "is empty (0 bytes)" in result.stderr
    assert "Errno" not in result.stderr
    cut = tmp_path / "cut.mkv"
    shutil.copy(video, cut)
    data = video.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    result = _run("process", str(cut), "-o", str(tmp_path / "o"))
    assert result.returncode == 1
    assert "Errno" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_model_file_is_found_before_any_work(video, tmp_path):
    out = tmp_path / "o"
    result = _run(
        "process", str(video), "-o", str(out), "--blendshape-model", str(tmp_path / "no.task")
    )
    assert result.returncode == 1
    assert "no.task does not exist" in result.stderr
    assert not (out / "ori_imgs").exists()


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    long_video = write_video(tmp_path / "long.mp4", moving_square_frames(1500), fps=25)
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [*TALKPREP, "process", str(long_video), "-o", str(out), "--tasks", "3"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not any((out / "ori_imgs").glob("*.jpg")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert "stopped by SIGTERM; rerun the same command to resume" in err


def test_error_log_goes_once_a_rerun_succeeds(video, tmp_path, monkeypatch):
    out = tmp_path / "o"
    monkeypatch.setattr(FramesTask, "run", lambda self, ctx: [][1])
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 3
    assert "IndexError" in (out / ERROR_LOG).read_text()
    monkeypatch.undo()
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    assert not (out / ERROR_LOG).exists()


def test_a_users_file_named_like_the_error_log_is_kept(video, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / ERROR_LOG).write_text("my notes\n")
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    assert (out / ERROR_LOG).read_text() == "my notes\n"


def test_a_leading_dash_gets_the_double_dash_hint(tmp_path):
    result = _run("process", "-clip.mp4", "-o", str(tmp_path / "o"))
    assert result.returncode == 1
    assert "--" in result.stderr and "-clip.mp4" in result.stderr


def test_a_blendshape_model_that_is_not_a_bundle_fails_before_any_work(video, tmp_path):
    bogus = tmp_path / "face_landmarker.task"
    bogus.write_bytes(b"not a bundle")
    out = tmp_path / "o"
    result = _run("process", str(video), "-o", str(out), "--blendshape-model", str(bogus))
    assert result.returncode == 1
    assert "is not a MediaPipe Face Landmarker bundle" in result.stderr
    assert not (out / "ori_imgs").exists()


def test_a_temporary_name_left_by_a_killed_run_is_skipped(tmp_path, monkeypatch):
    """Process ids recur (in a container every run may have the same one): a temporary that a
    killed run left under the next name is neither reused nor a reason to fail."""
    import itertools

    monkeypatch.setattr(atomic_module, "_temp_numbers", itertools.count(5))
    stale = tmp_path / f".0.jpg{atomic_module.TEMP_MARK}{os.getpid()}-5"
    stale.write_bytes(b"half a file")
    atomic_module.write_bytes(tmp_path / "0.jpg", b"whole")
    assert (tmp_path / "0.jpg").read_bytes() == b"whole"
    assert stale.read_bytes() == b"half a file"
    with atomic_module.atomic_path(tmp_path / "deeper" / "1.bin") as tmp:
        tmp.write_bytes(b"one")
    assert (tmp_path / "deeper" / "1.bin").read_bytes() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == [stale.name, "0.jpg", "deeper"]


# issue 23, 1. a user's numbered files are never overwritten, whichever number they have


@pytest.mark.parametrize("name", ["ori_imgs/7.jpg", "ori_imgs/9.lms", "ori_imgs/49.jpg"])
def test_a_users_numbered_file_beyond_zero_stops_the_task(video, tmp_path, capsys, name):
    out = tmp_path / "o"
    theirs = out / name
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"a user's file")
    tasks = "3-4" if name.endswith(".lms") else "3"
    assert (
        main(["process", str(video), "-o", str(out), "--tasks", tasks, "--audio-features", "mel"])
        == 3
    )
    assert theirs.read_bytes() == b"a user's file"
    assert f"{name} exists and was not written by talkprep" in capsys.readouterr().err


def test_a_users_numbered_file_after_talkprep_frames_is_kept(video, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "--fps", "10", "-q"]) == 0
    theirs = out / "ori_imgs" / "30.jpg"
    theirs.write_bytes(b"a user's frame")
    assert main(["process", str(video), "-o", str(out), "--tasks", "3"]) == 3
    assert theirs.read_bytes() == b"a user's frame"
    assert "ori_imgs/30.jpg exists and was not written by talkprep" in capsys.readouterr().err


def test_a_users_numbered_file_in_a_symlinked_folder_is_kept(video, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    theirs = tmp_path / "photos"
    theirs.mkdir()
    (theirs / "12.jpg").write_bytes(b"a user's photo")
    (out / "ori_imgs").symlink_to(theirs, target_is_directory=True)
    assert main(["process", str(video), "-o", str(out), "--tasks", "3"]) == 3
    assert (theirs / "12.jpg").read_bytes() == b"a user's photo"
    assert sorted(p.name for p in theirs.iterdir()) == ["12.jpg"]


def test_zero_padded_user_frames_are_not_talkprep_frames(video, tmp_path, capsys):
    out = tmp_path / "o"
    (out / "ori_imgs").mkdir(parents=True)
    padded = [out / "ori_imgs" / f"{i:04d}.jpg" for i in range(1, 76)]
    for path in padded:
        path.write_bytes(b"user")
    args = ["process", str(video), "-o", str(out), "--tasks", "3"]
    assert main([*args, "-q"]) == 0
    assert _manifest(out)["written"]["ori_imgs/*.jpg"] == 50
    assert all(p.read_bytes() == b"user" for p in padded)
    (out / "ori_imgs" / "7.jpg").unlink()
    capsys.readouterr()
    assert main(args) == 0
    assert "rebuilding" in capsys.readouterr().err
    assert (out / "ori_imgs" / "7.jpg").is_file()
    assert all(p.read_bytes() == b"user" for p in padded)


# issue 23, 2. names read from a folder never reach outside it


def _hostile_ledger(out: Path, pattern: str, count: int = 1) -> None:
    data = _manifest(out)
    data["written"][pattern] = count
    manifest_path(out).write_text(json.dumps(data))


@pytest.mark.parametrize("pattern", ["../victim.txt", "ABSOLUTE", "../*.txt", "x/*/y/*.jpg"])
def test_a_ledger_entry_outside_out_is_one_line_and_touches_nothing(
    video, tmp_path, pattern, capsys
):
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "0.txt").write_text("keep me too")
    _hostile_ledger(out, str(victim) if pattern == "ABSOLUTE" else pattern)
    other = write_video(tmp_path / "other.mp4", moving_square_frames(30), fps=25)
    capsys.readouterr()
    assert main(["process", str(other), "-o", str(out), "--tasks", "3"]) == 1
    err = capsys.readouterr().err
    assert "not a usable talkprep manifest" in err and len(err.strip().splitlines()) == 1
    assert victim.read_text() == "keep me" and (tmp_path / "0.txt").read_text() == "keep me too"
    assert main(["check", str(out)]) == 1


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(tasks=[]),
        lambda d: d.update(written={"ori_imgs/*.jpg": "many"}),
        lambda d: d.update(written={"ori_imgs/*.jpg": 10**10}),
        lambda d: d["tasks"].update(frames="done"),
        lambda d: d.update(writing={"aud.wav": "now"}),
    ],
)
def test_a_malformed_manifest_is_one_line(video, tmp_path, edit, capsys):
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    data = _manifest(out)
    edit(data)
    manifest_path(out).write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["process", str(video), "-o", str(out), "--tasks", "3"]) == 1
    err = capsys.readouterr().err
    assert "not a usable talkprep manifest" in err and len(err.strip().splitlines()) == 1
    assert main(["check", str(out)]) == 1
    assert "not a usable talkprep manifest" in capsys.readouterr().out


def test_a_symlinked_lock_file_is_not_followed(video, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / LOCK_NAME).symlink_to(victim)
    assert main(["process", str(video), "-o", str(out), "--tasks", "3"]) == 1
    assert "is a symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "keep me"


def test_a_view_record_naming_files_outside_out_is_one_line(video, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["process", str(video), "-o", str(out), "--tasks", "1,3", "--audio-features", "mel"]
    assert main([*args, "-q"]) == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    record = out / ".talkprep" / "view.json"
    document = json.loads(record.read_text())
    document["replaced"] = {"../../../victim.txt": victim.stat().st_mtime_ns}
    record.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "names a file outside the folder" in err and len(err.strip().splitlines()) == 1
    assert main(["export", str(out), "-o", str(tmp_path / "view")]) == 1
    assert victim.read_text() == "keep me"


# issue 23, 4. export writes only into an empty folder or its own earlier view, under the lock


PARTIAL_VIEW = 3
"""export's exit status for a view it wrote of a folder no trainer can train on yet (tasks 1-3
only): written, and the table says what is missing."""


def _processed(video: Path, out: Path) -> Path:
    args = ["process", str(video), "-o", str(out), "--tasks", "1-3", "--audio-features", "mel"]
    assert main([*args, "-q"]) == 0
    return out


def test_export_never_replaces_another_datasets_files(video, tmp_path, capsys):
    mine = _processed(video, tmp_path / "mine")
    frames = moving_square_frames(30)
    other_video = write_video(tmp_path / "other.mp4", frames, fps=25, audio=_tone(1.2))
    other = _processed(other_video, tmp_path / "other")
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["export", str(mine), "-o", str(other)]) == 1
    err = capsys.readouterr().err
    assert "export only into an empty folder" in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in other.rglob("*") if p.is_file()} == before


def test_export_is_refused_while_a_run_holds_the_folder(video, tmp_path, capsys):
    mine = _processed(video, tmp_path / "mine")
    script = (
        "import pathlib, sys\nfrom talkprep.pipeline import folder_lock\n"
        "with folder_lock(pathlib.Path(sys.argv[1])):\n    print('held', flush=True)\n    input()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(mine)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(["export", str(mine), "-o", str(tmp_path / "view")]) == 1
        assert "in use by another talkprep run" in capsys.readouterr().err
    finally:
        holder.communicate("\n", timeout=30)
    assert main(["export", str(mine), "-o", str(tmp_path / "view")]) == PARTIAL_VIEW


def test_a_killed_export_resumes_into_its_own_folder(video, tmp_path, monkeypatch):
    """Killed while copying (another file system: no hard links), the export resumes."""
    from talkprep.targets import view as view_module

    def no_links(source, target):
        raise OSError(errno.EXDEV, "cross-device link")

    mine = _processed(video, tmp_path / "mine")
    shutil.copytree(mine / "ori_imgs", mine / "gt_imgs")  # frames ER-NeRF's view links
    dst = tmp_path / "view"
    real_link = view_module.ViewWriter.link
    calls = []

    def dying_link(self, source, rel):
        calls.append(rel)
        if len(calls) == 20:
            raise KeyboardInterrupt
        real_link(self, source, rel)

    monkeypatch.setattr(view_module.ViewWriter, "link", dying_link)
    monkeypatch.setattr(view_module.os, "link", no_links)
    assert main(["export", str(mine), "-o", str(dst)]) == 130
    monkeypatch.undo()
    assert 0 < len(list((dst / "gt_imgs").glob("*.jpg"))) < 50
    assert main(["export", str(mine), "-o", str(dst)]) in (0, PARTIAL_VIEW)
    assert len(list((dst / "gt_imgs").glob("*.jpg"))) == 50
    again = main(["export", str(mine), "-o", str(dst)])
    assert again in (0, PARTIAL_VIEW), "its own view may be written again"


# issue 23, 5. an input changed anywhere is not "up to date"


def test_an_input_changed_in_the_middle_at_the_same_size_is_rerun(video, tmp_path, capsys):
    out = tmp_path / "o"
    audio = tmp_path / "long.wav"
    _write_wav(audio, _tone(30.0), 44100, 2)
    args = ["process", str(video), "-o", str(out), "--tasks", "1", "--audio", str(audio)]
    assert main(args) == 0
    stat = audio.stat()
    with audio.open("r+b") as handle:  # 10 s of silence in the middle, same size, same mtime
        handle.seek(10 * 44100 * 4)
        handle.write(bytes(10 * 44100 * 4))
    os.utime(audio, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    capsys.readouterr()
    assert main(args) == 0
    assert "up to date" not in capsys.readouterr().err


# issue 23, 6. damage anywhere in a file, at the same size, is found


def _damage_middle(path: Path) -> None:
    """Invert 64 bytes in the middle of a file: same size, same mtime."""
    stat = path.stat()
    with path.open("r+b") as handle:
        handle.seek(stat.st_size // 2)
        block = handle.read(64)
        handle.seek(stat.st_size // 2)
        handle.write(bytes(255 - b for b in block))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("name", ["ori_imgs/7.jpg", "ori_imgs/33.jpg", "aud_mel.npy", "aud.wav"])
def test_same_size_damage_in_the_middle_is_found_and_rebuilt(video, tmp_path, capsys, name):
    out = tmp_path / "o"
    args = ["process", str(video), "-o", str(out), "--tasks", "1-3", "--audio-features", "mel"]
    assert main([*args, "-q"]) == 0
    damaged = out / name
    before = damaged.read_bytes()
    _damage_middle(damaged)
    capsys.readouterr()
    assert main(["check", str(out)]) == 1
    assert f"{name}: changed since talkprep wrote it" in capsys.readouterr().out
    assert main(args) == 0
    assert f"rebuilding: {name}: changed since talkprep wrote it" in capsys.readouterr().err
    assert damaged.read_bytes() == before


def test_editing_a_hard_linked_export_is_noticed_in_the_dataset(video, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["process", str(video), "-o", str(out), "--tasks", "1-3", "--audio-features", "mel"]
    assert main([*args, "-q"]) == 0
    view = tmp_path / "view"
    assert main(["export", str(out), "-o", str(view)]) == PARTIAL_VIEW
    assert os.path.samefile(view / "aud.wav", out / "aud.wav")
    _damage_middle(view / "aud.wav")
    capsys.readouterr()
    assert main(args) == 0
    assert "rebuilding: aud.wav: changed since talkprep wrote it" in capsys.readouterr().err


def test_a_copied_dataset_is_verified_once_then_skipped_cheaply(video, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["--tasks", "1-3", "--audio-features", "mel"]
    assert main(["process", str(video), "-o", str(out), *args, "-q"]) == 0
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)  # new inodes and ctimes, same content
    table = copy / ".talkprep" / "digests" / "frames.npy"
    before = table.read_bytes()
    capsys.readouterr()
    assert main(["process", str(video), "-o", str(copy), *args]) == 0
    err = capsys.readouterr().err
    assert "rebuilding" not in err and "[3] frames: up to date" in err
    assert table.read_bytes() != before, "the table takes the copy's identities"


def test_check_decodes_every_image_of_a_folder_without_digests(video, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    shutil.rmtree(out / ".talkprep")  # a folder from elsewhere: no digests
    shutil.copytree(out / "ori_imgs", out / "gt_imgs")
    frame = out / "gt_imgs" / "21.jpg"
    data = bytearray(frame.read_bytes())
    table = data.find(b"\xff\xc4")  # a Huffman table zeroed: markers and size kept
    data[table + 4 : table + 40] = bytes(36)
    frame.write_bytes(bytes(data))
    assert verify_file(frame) is None
    capsys.readouterr()
    assert main(["check", str(out)]) == 1
    assert "gt_imgs/21.jpg: does not decode as an image" in capsys.readouterr().out


# issue 23, 8. the temporary-file sweep removes only talkprep's own, from runs that are gone


def test_the_temp_sweep_keeps_files_that_are_not_talkprep_leftovers(video, tmp_path):
    out = tmp_path / "o"
    args = ["process", str(video), "-o", str(out), "--tasks", "3", "-q"]
    assert main(args) == 0
    mark = atomic_module.TEMP_MARK
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_text())
    dead_pid = int(gone.stdout)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deep = out / "notes" / "deep" / f".x.jpg{mark}{dead_pid}-0"
        deep.parent.mkdir(parents=True)
        kept = [
            deep,  # a user's file deep in the tree
            out / "ori_imgs" / f".my.txt{mark}{dead_pid}-0",  # not a name talkprep writes there
            out / "ori_imgs" / f".3.jpg{mark}{alive.pid}-0",  # a run still going
        ]
        stale = out / "ori_imgs" / f".3.jpg{mark}{dead_pid}-1"
        for path in (*kept, stale):
            path.write_bytes(b"x")
        assert main([*args, "--force"]) == 0
        assert all(p.read_bytes() == b"x" for p in kept)
        assert not stale.exists()
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_temporary_of_a_killed_worker_not_yet_reaped_is_stale(tmp_path):
    # a killed batch's orphaned worker lingers as a zombie until something reaps it
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, ended.pid, os.WEXITED | os.WNOWAIT)  # ended, left unreaped
        temp = tmp_path / "ori_imgs" / f".3.jpg{atomic_module.TEMP_MARK}{ended.pid}-0"
        temp.parent.mkdir()
        temp.write_bytes(b"x")
        assert atomic_module.stale_temp_files(tmp_path, ["ori_imgs/*.jpg"]) == [temp]
    finally:
        ended.wait()


def _text() -> dict:
    return {"capture_output": True, "text": True, "check": True}


# issue 23, 7. planned frames and disk use are bounded before any work


def test_one_late_timestamp_is_refused_before_any_frame(tmp_path, capsys):
    times = [i / 25 for i in range(49)] + [4000.0]  # one frame stamped an hour late
    frames = moving_square_frames(50)
    late = write_video(
        tmp_path / "late.mkv", frames, fps=25, times=times, container_format="matroska"
    )
    out = tmp_path / "o"
    assert main(["process", str(late), "-o", str(out), "--tasks", "3"]) == 1
    err = capsys.readouterr().err
    assert "its stream holds 50 frames" in err and len(err.strip().splitlines()) == 1
    assert not list(out.glob("ori_imgs/*.jpg"))


def test_a_dataset_too_big_for_the_disk_is_refused_before_any_work(
    video, tmp_path, capsys, monkeypatch
):
    import talkprep.pipeline as pipeline_module

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        pipeline_module.shutil, "disk_usage", lambda path: usage._replace(free=100_000)
    )
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "1,3"]) == 1
    err = capsys.readouterr().err
    assert "GB free; free some space or choose another -o" in err
    assert not (out / "aud.wav").exists() and not list(out.glob("ori_imgs/*.jpg"))


# issue 23, 11. one line, not a traceback


def test_a_255_byte_file_name_is_written_atomically(tmp_path):
    name = "p" * 251 + ".mp4"
    atomic_module.write_bytes(tmp_path / name, b"whole")
    with atomic_module.atomic_path(tmp_path / ("q" * 251 + ".npy")) as tmp:
        tmp.write_bytes(b"whole too")
    assert (tmp_path / name).read_bytes() == b"whole"
    assert sorted(p.name[0] for p in tmp_path.iterdir()) == ["p", "q"]


# issue 23, 10. batch: a killed runner takes its workers with it


class _Quiet:
    def started(self, job):
        pass

    def retrying(self, job, reason):
        pass

    def finished(self, result):
        pass

    def tick(self):
        pass


def _note_pid_and_sleep(job):
    """A worker's job that never ends: it notes the worker's process id and sleeps."""
    (job.out / "worker.pid").write_text(str(os.getpid()))
    time.sleep(600)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_batch_runner_leaves_no_worker_running(tmp_path):
    script = (
        "import sys\nfrom pathlib import Path\nfrom talkprep.batch.jobs import VideoJob\n"
        "from talkprep.batch.local import run_local\n"
        "from test_reliability import _Quiet, _note_pid_and_sleep\n"
        "tmp = Path(sys.argv[1])\n"
        "job = VideoJob(tmp / 'v.mp4', 'v', tmp, tmp / 'v.log', {}, 'run')\n"
        "run_local([job], 1, 1, _Quiet(), work=_note_pid_and_sleep)\n"
    )
    env = _env_with_tests()
    runner = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env)
    noted = tmp_path / "worker.pid"
    deadline = time.monotonic() + 240
    while not noted.is_file() and runner.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert noted.is_file(), "the worker never started"
    worker = int(noted.read_text())
    runner.kill()
    runner.wait()
    deadline = time.monotonic() + 60
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its runner")


def test_a_video_with_a_252_byte_stem_gets_a_folder(video, tmp_path):
    import talkprep.batch.inputs as inputs_module

    long = tmp_path / ("v" * 252 + ".ts")
    shutil.copy(video, long)
    name = inputs_module.folder_stem(long)
    assert name == "v" * inputs_module.MAX_STEM_BYTES
    root = tmp_path / "root"
    result = _run("batch", str(long), "-o", str(root), "--tasks", "3", "--workers", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list((root / name / "ori_imgs").glob("*.jpg"))) == 50


@pytest.mark.parametrize("edit", ["delete", "swap"])
def test_a_digest_table_deleted_or_swapped_proves_nothing(video, tmp_path, capsys, edit):
    out = tmp_path / "o"
    args = ["process", str(video), "-o", str(out), "--tasks", "1,3"]
    assert main([*args, "-q"]) == 0
    tables = out / ".talkprep" / "digests"
    if edit == "delete":
        (tables / "frames.npy").unlink()
    else:
        shutil.copy(tables / "audio.npy", tables / "frames.npy")
    capsys.readouterr()
    assert main(args) == 0
    assert "rebuilding: .talkprep/digests/frames.npy: missing or changed" in capsys.readouterr().err


def test_frames_left_in_a_symlinked_folder_stay_talkprep_s(video, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / "ori_imgs", elsewhere)
    (out / "ori_imgs").symlink_to(elsewhere, target_is_directory=True)
    shorter = ["process", str(video), "-o", str(out), "--tasks", "3", "--fps", "10"]
    assert main([*shorter, "-q"]) == 0
    capsys.readouterr()
    assert main(shorter) == 0, "frames 20-49 (talkprep's, kept behind the link) are not a user's"
    assert "was not written by talkprep" not in capsys.readouterr().err
    assert all((elsewhere / f"{i}.jpg").is_file() for i in range(50))


def test_a_datasets_preview_inside_the_videos_folder_is_not_an_input(video, tmp_path):
    from talkprep.batch.inputs import collect_videos

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(video, videos / "clip.mp4")
    dataset = videos / "clip-data"
    assert main(["process", str(video), "-o", str(dataset), "--tasks", "3", "-q"]) == 0
    shutil.copy(video, dataset / "preview.mp4")
    assert collect_videos([videos], tmp_path / "root") == [(videos / "clip.mp4").resolve()]


# issue 23, 13. an input still being written is said so


def test_a_video_that_grows_during_the_run_is_warned_about(video, tmp_path, capsys, monkeypatch):
    import talkprep.pipeline as pipeline_module

    real = pipeline_module.Pipeline._run_tasks

    def run_while_recording(self, *args):
        outcomes = real(self, *args)
        with video.open("ab") as handle:
            handle.write(b"\0" * 1024)
        return outcomes

    monkeypatch.setattr(pipeline_module.Pipeline, "_run_tasks", run_while_recording)
    assert main(["process", str(video), "-o", str(tmp_path / "o"), "--tasks", "3"]) == 0
    assert "changed while it was processed" in capsys.readouterr().err


def test_a_second_audio_track_is_mentioned(tmp_path, capsys):
    import av

    path = tmp_path / "two.mkv"
    with av.open(str(path), "w", format="matroska") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        tracks = [container.add_stream("aac", rate=RATE) for _ in range(2)]
        for i, image in enumerate(moving_square_frames(25)):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for level, track in zip((0.0, 0.3), tracks, strict=True):
            tone = level * _tone(1.0)
            for start in range(0, len(tone), 1024):
                chunk = tone[start : start + 1024][None, :]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts = RATE, start
                container.mux(track.encode(frame))
            container.mux(track.encode(None))
    assert main(["process", str(path), "-o", str(tmp_path / "o"), "--tasks", "1"]) == 0
    assert "has 2 audio tracks; the first is used" in capsys.readouterr().err


def test_batch_json_marks_a_video_running_when_the_runner_stops_as_interrupted(tmp_path):
    from talkprep.batch.jobs import VideoJob
    from talkprep.batch.runner import BATCH_JSON, BatchOptions, _Tracker
    from talkprep.console import Console

    job = VideoJob(tmp_path / "v.mp4", "v", tmp_path / "v", tmp_path / "v.log", {}, "run")
    tracker = _Tracker(tmp_path, [job], BatchOptions(), Console(quiet=True))
    tracker.started(job)
    tracker.close()  # the runner stopped (Ctrl-C, an engine error) while the video ran
    videos = json.loads((tmp_path / BATCH_JSON).read_text())["videos"]
    assert videos[0]["status"] == "interrupted"


def _lock_and_sleep(job):
    """A worker's job that holds the video's folder lock, as a real one does, and never ends."""
    from talkprep.pipeline import folder_lock

    job.out.mkdir(parents=True, exist_ok=True)
    with folder_lock(job.out):
        (job.out / "worker.pid").write_text(str(os.getpid()))
        time.sleep(600)


def test_after_a_kill_9_of_the_batch_runner_its_video_reads_as_interrupted(tmp_path, capsys):
    """Issue 23 item 10: a runner killed with -9 cannot rewrite batch.json, so the file still says
    running; `check ROOT` and read_summary see that ROOT's lock is free and say interrupted, and
    the worker died with its runner, so the next run does not find the video's folder in use."""
    from talkprep.batch.status import BATCH_JSON, read_summary
    from talkprep.pipeline import folder_lock

    script = (
        "import sys\nfrom pathlib import Path\nfrom talkprep.batch.jobs import VideoJob\n"
        "from talkprep.batch.local import run_local\n"
        "from talkprep.batch.runner import BatchOptions, _Tracker\n"
        "from talkprep.console import Console\nfrom talkprep.pipeline import folder_lock\n"
        "from test_reliability import _lock_and_sleep\n"
        "root = Path(sys.argv[1])\n"
        "job = VideoJob(root / 'v.mp4', 'v', root / 'v', root / 'v.log', {}, 'run')\n"
        "with folder_lock(root):\n"
        "    tracker = _Tracker(root, [job], BatchOptions(), Console(quiet=True))\n"
        "    run_local([job], 1, 1, tracker, work=_lock_and_sleep)\n"
    )
    env = _env_with_tests()
    root = tmp_path / "root"
    root.mkdir()
    runner = subprocess.Popen([sys.executable, "-c", script, str(root)], env=env)
    noted = root / "v" / "worker.pid"
    deadline = time.monotonic() + 240
    while not noted.is_file() and runner.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert noted.is_file(), "the worker never started"
    worker = int(noted.read_text())

    def raw_status() -> str:
        return json.loads((root / BATCH_JSON).read_text())["videos"][0]["status"]

    try:
        assert raw_status() == "running"
        assert read_summary(root)["videos"][0]["status"] == "running"  # its runner is alive
    finally:
        runner.kill()
        runner.wait()
    assert raw_status() == "running"  # nothing could rewrite the file
    summary = read_summary(root)
    assert summary["videos"][0]["status"] == "interrupted" and not summary["complete"]
    capsys.readouterr()
    assert main(["check", str(root)]) == 1
    printed = capsys.readouterr().out
    assert "interrupted" in printed and "running" not in printed
    assert "rerun the same `talkprep batch` command" in printed
    deadline = time.monotonic() + 60
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its runner")
    with folder_lock(root / "v"):  # free: the next run will not say "in use"
        pass


def test_a_users_report_html_is_never_replaced(video, tmp_path, capsys):
    """Issue 23 item 9: only the report.html talkprep wrote (its recorded digest) is replaced; a
    user's page is kept even with talkprep in its title, and so is talkprep's page once edited."""
    from talkprep.report.html import build_report

    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    ours = out / "report.html"
    first = ours.read_bytes()
    assert build_report(out) == ours  # talkprep's own page: rebuilt
    ours.write_text("<html><head><title>talkprep notes</title></head><body>mine</body></html>")
    with pytest.raises(OutputError, match="was not written by talkprep"):
        build_report(out)
    assert "mine" in ours.read_text()
    ours.write_bytes(first + b"<!-- my edit -->")
    with pytest.raises(OutputError, match="was not written by talkprep"):
        build_report(out)


def test_a_video_name_that_is_not_utf8_still_gets_its_report(tmp_path):
    """Issue 23 item 13: a file name with bytes that are not UTF-8 is shown escaped."""
    frames = moving_square_frames(30)
    name = os.fsdecode(b"clip-\xff\xfe.mp4")
    video = write_video(tmp_path / name, frames, fps=25, audio=_tone(1.2))
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    page = (out / "report.html").read_text()
    assert "clip-\\udcff\\udcfe.mp4" in page


# 12. the same command on the same input gives the same bytes, whatever threads or malloc do

SIDE = 512
MARGIN = 5.0


def _plate_inputs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Twelve frames of one noisy backdrop with a person of ragged outline (as a segmenter
    gives) moving across it."""
    import cv2

    rng = np.random.default_rng(12)
    backdrop = rng.integers(40, 200, (SIDE, SIDE, 3), np.uint8)
    field = cv2.GaussianBlur(rng.random((SIDE, 2 * SIDE)).astype(np.float32), (0, 0), 6)
    frames = []
    for k in range(12):
        noise = rng.integers(-3, 4, backdrop.shape)
        frame = np.clip(backdrop.astype(int) + noise, 0, 255).astype(np.uint8)
        person = field[:, 8 * k : 8 * k + SIDE] > np.median(field)
        frames.append((frame, np.ascontiguousarray(person)))
    return frames


_DISTANCE_TRANSFORM = __import__("cv2").distanceTransform


def _placed(monkeypatch: pytest.MonkeyPatch, threads: int, offset: int) -> None:
    """OpenCV at `threads` threads, and every distance transform writing into an array `offset`
    bytes past a 64-byte boundary (where malloc puts numpy's arrays varies between runs)."""
    import cv2

    def placed(src: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        store = np.empty(src.size * 4 + 128, np.uint8)
        start = (-store.ctypes.data) % 64 + offset
        dst = np.frombuffer(store.data, np.float32, src.size, start).reshape(src.shape)
        return _DISTANCE_TRANSFORM(src, *args, dst=dst, **kwargs)

    monkeypatch.setattr(cv2, "distanceTransform", placed)
    cv2.setNumThreads(threads)


@pytest.fixture
def opencv_threads():
    """Gives OpenCV its thread count back after a test that changes it."""
    import cv2

    before = cv2.getNumThreads()
    yield
    cv2.setNumThreads(before)


def _plate_bytes(monkeypatch: pytest.MonkeyPatch, threads: int, offset: int) -> bytes:
    """bc.jpg's bytes from _plate_inputs, with the mismatch figures and the filled pixels, under
    _placed(threads, offset)."""
    from talkprep.geometry.masks import BackgroundPlate, background_mismatch
    from talkprep.io.images import encode_jpeg

    _placed(monkeypatch, threads, offset)
    inputs = _plate_inputs()
    plate = BackgroundPlate(SIDE, SIDE, MARGIN)
    for frame, person in inputs:
        plate.add(frame, person)
    image = plate.plate()
    mismatch = [background_mismatch(frame, person, image, MARGIN) for frame, person in inputs]
    filled = plate.filled_in_view()
    return encode_jpeg(image) + repr(mismatch).encode() + filled.tobytes()


def test_the_background_plate_is_the_same_whatever_threads_or_memory_alignment(
    monkeypatch, opencv_threads
):
    """bc.jpg and every gt image differed between two identical runs on a 2-core Xeon: OpenCV's
    precise distance transform (IPP's with one thread) rounds differently by the output array's
    alignment, and by thread count, which decided ties between frames."""
    reference = _plate_bytes(monkeypatch, threads=1, offset=0)
    for threads, offset in ((1, 32), (1, 16), (2, 0), (2, 48)):
        assert _plate_bytes(monkeypatch, threads, offset) == reference, (threads, offset)


@pytest.mark.parametrize("shape", [(512, 512), (720, 1280)])
def test_exact_distances_are_the_same_whatever_threads_or_memory_alignment(
    monkeypatch, opencv_threads, shape
):
    """Both of exact_distance's paths (float32 squares, float64 for large frames) give the same
    bits under every alignment and thread count, and the exact Euclidean distance."""
    import cv2

    from talkprep.geometry.distance import exact_distance

    rng = np.random.default_rng(3)
    field = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 8)
    free = np.where(field > np.median(field), 255, 0).astype(np.uint8)
    results = []
    for threads, offset in ((1, 0), (1, 16), (1, 48), (2, 0), (2, 32)):
        _placed(monkeypatch, threads, offset)
        results.append(exact_distance(free))
    assert all(np.array_equal(result, results[0]) for result in results)
    rows, cols = np.nonzero(free == 0)
    for y, x in ((0, 0), (shape[0] // 2, shape[1] // 3), (shape[0] - 1, shape[1] - 1)):
        nearest = np.min((rows - y) ** 2 + (cols - x) ** 2)
        assert results[0][y, x] == np.float32(np.sqrt(nearest))
