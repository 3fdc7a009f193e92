"""Tasks 1 and 3 on the real clips and on synthetic videos with known timing."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, clip_path
from synth import moving_square_frames, write_video

from talkprep.check import check_folder
from talkprep.cli import main
from talkprep.io.audio import decode_audio, read_wav, write_wav
from talkprep.io.images import frame_indices, read_image
from talkprep.io.video import DecodedFrame, output_frame_count, resample_by_time
from talkprep.manifest import manifest_path
from talkprep.report.quality import clipped_share as report_clipped_share

EXPECTED_FRAMES = {
    "anchor": {500},
    "hdtf": {200},
    "obama": {751, 752},
    "selfie": {293},
    "headturn": {153, 154},
}


def _manifest(folder: Path) -> dict:
    return json.loads(manifest_path(folder).read_text())


def _checked(folder: Path, *groups: str) -> list:
    """`check`'s verdicts on these groups (a folder of tasks 1 and 3 lacks the trainers' others)."""
    results = {r.group: r for r in check_folder(folder)}
    return [results[group] for group in groups]


@pytest.mark.parametrize("clip", ["anchor", "hdtf", "obama", "headturn"])
def test_frame_counts_and_wav_on_clips_with_audio(processed, clip):
    out = processed(clip, tasks="1,3")
    n = len(frame_indices(out / "ori_imgs", ".jpg"))
    assert n in EXPECTED_FRAMES[clip]
    samples, rate = read_wav(out / "aud.wav")
    assert rate == 16000
    assert abs(len(samples) / rate - n / 25) <= 1 / 25
    assert np.abs(samples).max() > 0.05, "speech should not be silent"
    assert all(r.ok for r in _checked(out, "aud.wav", "ori_imgs/*.jpg")), check_folder(out)


def test_obama_30fps_resampled_by_time_with_its_separate_wav(processed):
    out = processed("obama", tasks="1,3")
    info = _manifest(out)["tasks"]["frames"]["info"]
    source = np.array(info["source_frame_of_output"])
    # 30 -> 25 fps: output i shows the source frame nearest to i/25
    expected = np.minimum(np.floor(np.arange(len(source)) * 30 / 25 + 0.5), 901).astype(int)
    assert np.array_equal(source, expected)
    samples, _ = read_wav(out / "aud.wav")
    reference = decode_audio(DATA / "obama_256_30fps_30s.wav").samples
    overlap = min(len(reference), len(samples))
    assert np.corrcoef(samples[:overlap], reference[:overlap])[0, 1] > 0.999


def test_variable_frame_rate_frames_follow_presentation_time(tmp_path):
    times = [0.0, 0.03, 0.1, 0.12, 0.2, 0.3, 0.31, 0.35, 0.4, 0.5, 0.52, 0.6, 0.61, 0.7, 0.72, 0.8]
    frames = moving_square_frames(len(times))
    video = write_video(tmp_path / "vfr.mp4", frames, fps=30, times=times)
    out = tmp_path / "out"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    info = _manifest(out)["tasks"]["frames"]["info"]
    n = info["n_frames"]
    assert n == round((times[-1] + 1 / 30) * 25)
    for i, src in enumerate(info["source_frame_of_output"]):
        t = i / 25
        nearest_allowed = [k for k, s in enumerate(times) if s < t + 0.5 / 25 - 1e-9]
        assert src == (nearest_allowed[-1] if nearest_allowed else 0)
        image = read_image(out / "ori_imgs" / f"{i}.jpg").astype(int)
        assert np.abs(image - frames[src].astype(int)).mean() < 6


def test_resample_by_time_is_exact_on_constant_rates():
    frames = (DecodedFrame(k, k / 30, np.zeros(1)) for k in range(90))
    picked = [f.index for _, f in resample_by_time(frames, Fraction(25), 75)]
    assert picked == [int(np.floor(i * 30 / 25 + 0.5)) for i in range(75)]
    assert output_frame_count(3.0, Fraction(25)) == 75
    assert output_frame_count(6.1330078, Fraction(25)) == 153


def test_audio_offset_is_kept_and_reported(tmp_path):
    rate = 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * rate) / rate).astype(np.float32)
    video = write_video(tmp_path / "a.mp4", moving_square_frames(50), fps=25, audio=tone)
    out = tmp_path / "out"
    assert main(["process", str(video), "-o", str(out), "--tasks", "1", "-q"]) == 0
    samples, got_rate = read_wav(out / "aud.wav")
    assert got_rate == rate
    assert abs(len(samples) - 2 * rate) <= rate // 25
    record = _manifest(out)["tasks"]["audio"]
    assert "audio_minus_video_start_s" in record["info"]
    spectrum = np.abs(np.fft.rfft(samples[4000:12000]))
    assert abs(np.argmax(spectrum) * rate / 8000 - 440) < 4


def test_check_fails_clearly_when_a_frame_is_deleted(processed, tmp_path, capsys):
    folder = tmp_path / "copy"
    shutil.copytree(processed("hdtf", tasks="1,3"), folder)
    (folder / "ori_imgs" / "57.jpg").unlink()
    assert main(["check", str(folder)]) == 1
    assert "ori_imgs/57.jpg is missing" in capsys.readouterr().out
    (folder / "ori_imgs" / "199.jpg").rename(folder / "ori_imgs" / "57.jpg")
    results = {r.group: r for r in check_folder(folder)}
    assert "has 200 frames" in results["ori_imgs/*.jpg"].problem
    (folder / "ori_imgs" / "199.jpg").write_bytes((folder / "ori_imgs" / "0.jpg").read_bytes())
    audio, frames = _checked(folder, "aud.wav", "ori_imgs/*.jpg")
    assert audio.ok
    assert frames.problem.startswith("ori_imgs/57.jpg: changed since talkprep wrote it")
    small = np.zeros((16, 16, 3), np.uint8)
    (folder / "ori_imgs" / "120.jpg").write_bytes(cv2.imencode(".jpg", small)[1].tobytes())
    results = {r.group: r for r in check_folder(folder)}
    assert results["ori_imgs/*.jpg"].problem == "120.jpg is 16x16; frame 0 is 512x512"


def test_shared_clip_fixture_skips_without_data(monkeypatch):
    import conftest

    monkeypatch.setattr(conftest, "DATA", Path("/nonexistent"))
    with pytest.raises(pytest.skip.Exception):
        clip_path("anchor")


def test_non_square_frames_are_kept_and_flagged(tmp_path, capsys):
    frames = [np.zeros((48, 80, 3), np.uint8) + i for i in range(10)]
    video = write_video(tmp_path / "wide.mp4", frames, fps=25)
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3"]) == 0
    assert "expect square frames: use --crop auto" in capsys.readouterr().err
    assert read_image(out / "ori_imgs" / "0.jpg").shape == (48, 80, 3)
    record = _manifest(out)["tasks"]["frames"]
    assert record["info"]["crop_box"] is None
    assert any("not square" in w for w in record["warnings"])


def test_clipped_audio_is_a_warning_with_the_clipped_share(tmp_path):
    rate = 16000
    t = np.arange(2 * rate) / rate
    loud = np.clip(1.6 * np.sin(2 * np.pi * 200 * t), -1.0, 1.0).astype(np.float32)
    wav = tmp_path / "loud.wav"
    write_wav(wav, loud, rate)
    expected = float(np.mean(np.abs(loud) >= 0.999))
    video = write_video(tmp_path / "v.mp4", moving_square_frames(50), fps=25)
    out = tmp_path / "out"
    assert main(["process", str(video), "-o", str(out), "--tasks", "1", "--audio", str(wav)]) == 0
    record = _manifest(out)["tasks"]["audio"]
    assert record["figures"]["clipped_share"] == pytest.approx(expected, abs=0.02)
    assert expected > 0.3
    assert any(w.startswith("audio is clipped: ") and "%" in w for w in record["warnings"])
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, 0.5 * loud, rate)
    out2 = tmp_path / "out2"
    assert (
        main(["process", str(video), "-o", str(out2), "--tasks", "1", "--audio", str(quiet)]) == 0
    )
    record = _manifest(out2)["tasks"]["audio"]
    assert record["figures"]["clipped_share"] == 0
    assert not any("clipped" in w for w in record["warnings"])


def test_a_few_clipped_peaks_are_named_as_such(tmp_path):
    rate = 16000
    t = np.arange(2 * rate) / rate
    speech = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    speech[::4000] = 1.0  # 8 samples at full scale: 0.025%
    wav = tmp_path / "peaks.wav"
    write_wav(wav, speech, rate)
    video = write_video(tmp_path / "v.mp4", moving_square_frames(50), fps=25)
    out = tmp_path / "out"
    assert main(["process", str(video), "-o", str(out), "--tasks", "1", "--audio", str(wav)]) == 0
    (warning,) = [w for w in _manifest(out)["tasks"]["audio"]["warnings"] if "clipped" in w]
    assert warning.startswith("audio is clipped: 0.025% of the samples") and "isolated" in warning
    written, _ = read_wav(out / "aud.wav")
    assert _manifest(out)["tasks"]["audio"]["figures"]["clipped_share"] * 100 == pytest.approx(
        report_clipped_share(written)
    ), "the report's figure and task 1's are one number"


def test_one_clipped_peak_is_below_the_reports_limit_and_not_a_warning(tmp_path):
    rate = 16000
    t = np.arange(20 * rate) / rate
    speech = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    speech[1000] = 1.0  # one sample in 320,000: 0.0003%, green in the report
    wav = tmp_path / "peak.wav"
    write_wav(wav, speech, rate)
    video = write_video(tmp_path / "v.mp4", moving_square_frames(500), fps=25)
    out = tmp_path / "out"
    assert main(["process", str(video), "-o", str(out), "--tasks", "1", "--audio", str(wav)]) == 0
    assert not [w for w in _manifest(out)["tasks"]["audio"]["warnings"] if "clipped" in w]


def test_wav_round_trip_keeps_16_bit_values(tmp_path):
    samples = np.array([-32768, -32767, -1, 0, 1, 32766, 32767], np.float32) / 32768.0
    write_wav(tmp_path / "a.wav", samples, 16000)
    back, rate = read_wav(tmp_path / "a.wav")
    assert rate == 16000 and np.array_equal(back, samples)
