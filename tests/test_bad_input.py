"""Each user mistake gets one clear line, a non-zero exit, no traceback, no half-written file."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import DATA, clip_path
from synth import moving_square_frames, write_video

from talkprep.cli import main
from talkprep.manifest import manifest_path
from talkprep.pipeline import LOCK_NAME

TALKPREP = [sys.executable, "-m", "talkprep"]


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        TALKPREP + args, capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


def _one_clear_line(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("talkprep: error: ")
    for word in words:
        assert word in lines[0], lines[0]


def _nothing_written(out: Path) -> None:
    assert not out.exists() or not any(p for p in out.rglob("*") if p.suffix in (".jpg", ".wav"))


def test_missing_path(tmp_path):
    result = _run(["process", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o")])
    _one_clear_line(result, "does not exist")
    assert not (tmp_path / "o").exists()


def test_directory_as_video(tmp_path):
    _one_clear_line(_run(["process", str(tmp_path), "-o", str(tmp_path / "o")]), "directory")


def test_text_file_renamed_mp4(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my notes, not a video\n" * 20)
    _one_clear_line(_run(["process", str(fake), "-o", str(tmp_path / "o")]), "not a readable video")
    assert not (tmp_path / "o").exists()


def test_truncated_mp4(tmp_path):
    source = clip_path("anchor").read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(source[: len(source) // 2])
    result = _run(["process", str(cut), "-o", str(tmp_path / "o")])
    _one_clear_line(result, str(cut))
    assert "truncated" in result.stderr or "not a readable video" in result.stderr
    _nothing_written(tmp_path / "o")


def test_truncated_mp4_with_index_at_the_front(tmp_path):
    """A 'faststart' file cut in half still opens; the tail check must catch it before any work."""
    frames = moving_square_frames(250)
    full = tmp_path / "full.mp4"
    with av.open(str(full), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = full.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "index should be at the front"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    result = _run(["process", str(cut), "-o", str(tmp_path / "o")])
    _one_clear_line(result, "truncated")
    _nothing_written(tmp_path / "o")


def test_video_with_zero_frames(tmp_path):
    path = tmp_path / "empty.mkv"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "flt", "mono")
        frame.sample_rate = 16000
        for packet in [*audio.encode(frame), *audio.encode(None), *video.encode(None)]:
            container.mux(packet)
    _one_clear_line(_run(["process", str(path), "-o", str(tmp_path / "o")]), "no frames")


def test_audio_only_file_as_video(tmp_path):
    wav = DATA / "obama_256_30fps_30s.wav"
    if not wav.exists():
        pytest.skip("shared data absent")
    _one_clear_line(_run(["process", str(wav), "-o", str(tmp_path / "o")]), "no video stream")


def test_video_without_audio_fails_tasks_1_and_2_only(tmp_path, capsys):
    video = write_video(tmp_path / "silent.mp4", moving_square_frames(40), fps=25)
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "1,3"]) == 3
    text = capsys.readouterr().err
    assert "no audio track" in text and "--audio" in text
    record = json.loads(manifest_path(out).read_text())["tasks"]
    assert record["audio"]["status"] == "failed"
    assert record["frames"]["status"] == "done"
    assert len(list((out / "ori_imgs").glob("*.jpg"))) == 40
    assert not (out / "aud.wav").exists()


def test_audio_option_that_is_not_audio(tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_square_frames(10), fps=25)
    text = tmp_path / "speech.wav"
    text.write_text("not audio at all")
    result = _run(["process", str(video), "-o", str(tmp_path / "o"), "--audio", str(text)])
    _one_clear_line(result, "--audio")
    image = tmp_path / "still.mp4"
    write_video(image, moving_square_frames(5), fps=25)
    result = _run(["process", str(video), "-o", str(tmp_path / "o"), "--audio", str(image)])
    _one_clear_line(result, "no audio track")


def test_out_inside_a_read_only_folder(tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_square_frames(10), fps=25)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    command = [*TALKPREP, "process", str(video), "-o", str(locked / "out")]
    if os.geteuid() == 0:  # root ignores permission bits unless it drops these capabilities
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    _one_clear_line(result, "cannot create output folder", "permission denied")
    assert not (locked / "out").exists()


def test_second_run_on_a_locked_folder(tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_square_frames(10), fps=25)
    out = tmp_path / "o"
    out.mkdir()
    with (out / LOCK_NAME).open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = _run(["process", str(video), "-o", str(out), "--tasks", "3"])
    _one_clear_line(result, "in use by another talkprep run")
    assert not (out / "ori_imgs").exists()
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--tasks", "2,12"], ["unknown task", "12"]),
        (["--tasks", "5-3"], ["backwards"]),
        (["--tasks", "x"], ["--tasks"]),
        (["--fps", "fast"], ["--fps", "number"]),
        (["--fps", "0"], ["--fps"]),
        (["--crop", "square"], ["--crop", "none, auto"]),
        (["--device", "tpu"], ["--device"]),
        (["--size", "12.5"], ["--size"]),
        (["--audio-features", "hubert,mfcc"], ["mfcc"]),
        (["--parser", "bisenet"], ["--parser-weights"]),
        (["--bogus"], ["unrecognized arguments"]),
    ],
)
def test_bad_option_values(tmp_path, option, words):
    video = write_video(tmp_path / "v.mp4", moving_square_frames(5), fps=25)
    result = _run(["process", str(video), "-o", str(tmp_path / "o"), *option])
    _one_clear_line(result, *words)
    assert not (tmp_path / "o").exists()


def test_bad_config_file(tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_square_frames(5), fps=25)
    config = tmp_path / "c.toml"
    config.write_text("fps = [broken\n")
    result = _run(["process", str(video), "-o", str(tmp_path / "o"), "--config", str(config)])
    _one_clear_line(result, "not valid TOML")
    config.write_text("colour = 'blue'\n")
    result = _run(["process", str(video), "-o", str(tmp_path / "o"), "--config", str(config)])
    _one_clear_line(result, "unknown option", "colour")


def test_a_one_frame_video_is_refused_before_any_work(tmp_path):
    video = write_video(tmp_path / "one.mp4", moving_square_frames(1), fps=25)
    out = tmp_path / "o"
    result = _run(["process", str(video), "-o", str(out)])
    _one_clear_line(result, "gives 1 frame at 25 fps", "at least 2")
    assert not out.exists()


def test_frames_below_512_px_get_a_resolution_warning(tmp_path):
    video = write_video(tmp_path / "small.mp4", moving_square_frames(5, size=64), fps=25)
    out = tmp_path / "o"
    result = _run(["process", str(video), "-o", str(out), "--tasks", "3"])
    assert result.returncode == 0, result.stderr
    assert "frames are 64x64: low resolution for the 512 px trainers" in result.stderr
    from talkprep.tasks.frames import resolution_warning

    assert resolution_warning(512, 512) is None and resolution_warning(1280, 720) is None


def test_quiet_still_says_why_tasks_failed(tmp_path):
    video = write_video(tmp_path / "silent.mp4", moving_square_frames(5), fps=25)
    result = _run(["process", str(video), "-o", str(tmp_path / "o"), "--tasks", "1", "-q"])
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "talkprep: task 1 audio failed: silent.mp4 has no audio track; give one with --audio "
        "PATH (the video tasks still run)"
    )
