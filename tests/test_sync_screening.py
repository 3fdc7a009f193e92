"""Audio-video offset, frame screening and audio health: the algorithms on arrays, then real
clips with their audio shifted and with blur, black and a cut injected (skipped without them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, clip_path
from faults import dataset_frames, fault_clip, shifted_wav

from talkprep import screening, sync
from talkprep.config import build_config
from talkprep.console import Console
from talkprep.errors import UsageError
from talkprep.pipeline import Pipeline

RATE, FPS = 16000, 25.0


def _speech_like(n: int, lag: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A mouth opening series and audio whose loudness and timbre follow it `lag` frames later."""
    rng = np.random.default_rng(seed)
    syllables = np.convolve(rng.random(n + 60) > 0.7, np.hanning(5), mode="same")[30 : 30 + n]
    opening = 0.002 + 0.03 * syllables
    per_sample = np.repeat(np.roll(syllables, lag), RATE // int(FPS))
    t = np.arange(len(per_sample)) / RATE
    voice = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t)
    samples = 0.3 * per_sample * voice + 0.002 * rng.standard_normal(len(t))
    return opening, samples


@pytest.mark.parametrize("lag", [-9, -3, 0, 4, 12])
def test_offset_recovers_a_known_lag_on_synthetic_speech(lag):
    opening, samples = _speech_like(750, lag)
    found = sync.measure_offset(opening, samples, RATE, FPS, bias_s=0.0)
    assert found.confident
    assert abs(found.offset_s * FPS - lag) <= 1.0
    assert len(found.windows) >= 5 and not found.drifting


def test_offset_is_not_measured_on_silence_and_not_confident_on_noise():
    opening, _ = _speech_like(500, 0)
    assert sync.measure_offset(opening, np.zeros(500 * 640), RATE, FPS).offset_s is None
    noise = 0.1 * np.random.default_rng(1).standard_normal(500 * 640)
    assert not sync.measure_offset(opening, noise, RATE, FPS).confident


def test_silent_closed_needs_both_silence_and_a_closed_mouth():
    levels = np.array([-10.0, -70.0, -70.0, -10.0])
    opening = np.array([0.001, 0.001, 0.03, np.nan])
    assert sync.silent_closed(levels, opening).tolist() == [False, True, False, False]


def test_kept_frames_widens_runs_and_drops_short_islands():
    unfit = np.zeros(100, bool)
    unfit[40:45] = True
    keep = screening.kept_frames(unfit)
    assert not keep[36:49].any() and keep[:36].all() and keep[49:].all()
    unfit[55:57] = True  # leaves frames 49..50 between two widened runs: too short to keep
    keep = screening.kept_frames(unfit)
    assert not keep[36:61].any() and keep[61:].all()
    assert screening.kept_frames(np.zeros(30, bool)).all()


def _screen(**changes):
    n = 60
    values = {
        "has_face": np.ones(n, bool),
        "face_width": np.full(n, 200.0),
        "frame_side": 512,
        "yaw": np.zeros(n),
        "pitch": np.zeros(n),
        "sharpness": np.full(n, 300.0),
        "shot": np.full(n, 0.02),
        "reproj_err": np.full(n, 0.4),
    }
    values.update(changes)
    return screening.screen(**values)


def test_screen_flags_each_kind_against_its_limit():
    soft = np.full(60, 300.0)
    soft[10:20] = 60.0  # a fifth of the clip's sharpness
    yaw = np.zeros(60)
    yaw[30] = 50.0
    hand = np.full(60, np.nan)
    hand[5] = 0.4
    second = np.zeros(60)
    second[7] = 0.8
    shot = np.full(60, 0.02)
    shot[50:55] = 0.4
    flags = _screen(sharpness=soft, yaw=yaw, hand=hand, second_face=second, shot=shot)
    assert np.flatnonzero(flags["blur"]).tolist() == list(range(10, 20))
    assert np.flatnonzero(flags["turned"]).tolist() == [30]
    assert np.flatnonzero(flags["hand_over_face"]).tolist() == [5]
    assert np.flatnonzero(flags["second_face"]).tolist() == [7]
    assert np.flatnonzero(flags["shot_change"]).tolist() == list(range(50, 55))
    assert not flags["small_face"].any() and not flags["no_face"].any()


def test_head_turn_is_measured_from_the_line_to_the_camera():
    euler = np.radians([[0.0, 0.0, 0.0], [0.0, 50.0, 0.0], [20.0, 0.0, 0.0]])
    trans = np.array([[0.0, 0.0, -10.0]] * 3)
    yaw, pitch = screening.head_turn(euler, trans)
    assert np.allclose(np.abs(yaw), [0.0, 50.0, 0.0], atol=1e-6)
    assert np.allclose(np.abs(pitch), [0.0, 0.0, 20.0], atol=1e-6)
    assert _screen(yaw=yaw[[1] * 60])["turned"].all() and not _screen()["turned"].any()
    # A head beside the optical axis turned to face the camera reads 0; turned the other way, 43.6.
    off_axis = np.array([[4.0, 0.0, -10.0]] * 2)
    yaw, _ = screening.head_turn(np.radians([[0.0, -21.8, 0.0], [0.0, 21.8, 0.0]]), off_axis)
    assert np.allclose(yaw, [0.0, 43.6], atol=0.05)


def test_a_uniformly_soft_clip_is_not_blurred_and_a_small_face_is_flagged():
    flags = _screen(sharpness=np.full(60, 20.0), face_width=np.full(60, 40.0))
    assert not flags["blur"].any()
    assert flags["small_face"].all()


def test_av_sync_option_is_checked():
    build_config({"video": "v.mp4", "out": "o", "av_sync": 0.12})
    with pytest.raises(UsageError, match="--av-sync"):
        build_config({"video": "v.mp4", "out": "o", "av_sync": "late"})
    with pytest.raises(UsageError, match="within"):
        build_config({"video": "v.mp4", "out": "o", "av_sync": "5"})


def _run(video: Path, out: Path, tasks: str = "1,3,4,9", **options) -> dict:
    config = build_config({"video": video, "out": out, "tasks": tasks, **options})
    outcomes = Pipeline(config, Console(quiet=True)).run()
    assert all(o.status in ("done", "skipped") for o in outcomes), outcomes
    manifest = json.loads((out / ".talkprep/manifest.json").read_text())
    return {**manifest["tasks"], "warnings": [w for o in outcomes for w in o.warnings]}


def _split(out: Path) -> list[dict]:
    return [
        f
        for split in ("train", "val")
        for f in json.loads((out / f"transforms_{split}.json").read_text())["frames"]
    ]


def test_shifted_audio_moves_the_offset_by_the_shift_and_aud_id_with_it(processed, tmp_path):
    video = clip_path("anchor")
    out = tmp_path / "anchor"
    shutil.copytree(processed("anchor", "1,3,4,9"), out)
    base = json.loads((out / ".talkprep/manifest.json").read_text())["tasks"]["transforms"]
    assert abs(base["figures"]["av_offset_s"] * FPS) < 1.0  # in sync: nothing applied
    assert base["info"]["av_sync"]["applied_frames"] == 0
    assert all(f["aud_id"] == f["img_id"] for f in _split(out))
    own = tmp_path / "own.wav"
    shutil.copy(out / "aud.wav", own)
    for shift in (-6, 5):
        moved = shifted_wav(own, tmp_path / f"{shift}.wav", shift)
        got = _run(video, out, audio=moved, audio_features="mel")["transforms"]
        change = (got["figures"]["av_offset_s"] - base["figures"]["av_offset_s"]) * FPS
        assert abs(change - shift) <= 1.0
        applied = got["info"]["av_sync"]["applied_frames"]
        assert abs(applied - shift) <= 1
        frames = _split(out)
        assert all(f["aud_id"] == f["img_id"] + applied for f in frames)
        assert all(0 <= f["aud_id"] < 500 for f in frames)
    off = _run(video, out, audio=moved, audio_features="mel", av_sync="off")["transforms"]
    assert off["info"]["av_sync"]["applied_frames"] == 0
    assert abs(off["figures"]["av_offset_s"] - got["figures"]["av_offset_s"]) < 1e-6


def test_blur_black_and_a_cut_leave_the_splits(tmp_path):
    source, other = clip_path("anchor"), clip_path("hdtf")
    spans = {"blur": (80, 120), "black": (220, 250), "cut": (380, 420)}
    video, _, rate = fault_clip(source, other, tmp_path / "faults.mp4", spans)
    out = tmp_path / "faults"
    tasks = _run(video, out, audio=source, audio_features="mel")
    n = tasks["frames"]["info"]["n_frames"]
    kept = {f["img_id"] for f in _split(out)}
    truth = dataset_frames(spans, rate, n)
    for kind, frames in truth.items():
        assert len(set(frames) - kept) >= 0.9 * len(frames), kind
    clean = set(range(n)) - set().union(*map(set, truth.values()))
    assert len(clean - kept) <= 0.12 * len(clean)
    figures = tasks["transforms"]["figures"]
    assert figures["flagged_blur"] >= 36 and figures["flagged_shot_change"] >= 36
    assert any("--keep-flagged" in w for w in tasks["warnings"])
    tasks = _run(video, out, audio=source, audio_features="mel", keep_flagged=True)
    valid = n - tasks["transforms"]["figures"]["flagged_no_face"]
    assert len(_split(out)) == valid


def test_hand_over_face_from_parsing_keeps_those_frames_out(processed, tmp_path):
    from talkprep.tasks.base import TaskContext
    from talkprep.tasks.transforms import TransformsTask

    out = tmp_path / "anchor"
    shutil.copytree(processed("anchor", "1,3,4,9"), out)
    manifest = json.loads((out / ".talkprep/manifest.json").read_text())
    n = manifest["tasks"]["frames"]["info"]["n_frames"]
    hand: list[float | None] = [0.0] * n
    hand[200:230] = [0.6] * 30
    hand[0] = None
    manifest["tasks"]["parsing"] = {"status": "done", "info": {"hand_over_face": hand}}
    (out / ".talkprep/manifest.json").write_text(json.dumps(manifest))
    records = json.loads((out / ".talkprep/manifest.json").read_text())["tasks"]
    config = build_config({"video": clip_path("anchor"), "out": out, "audio_features": "mel"})
    ctx = TaskContext(out, config, {}, records, lambda items, **_: items)
    result = TransformsTask().run(ctx)
    assert result.figures["flagged_hand_over_face"] == 30
    kept = {f["img_id"] for f in _split(out)}
    assert not kept & set(range(196, 234)) and {190, 240} <= kept


def test_a_silent_track_gets_one_warning_and_no_offset(tmp_path):
    video = DATA / "longhair_hoops_512_30fps_12s_silent.mp4"
    if not video.is_file():
        pytest.skip(f"shared clip {video} is not available")
    tasks = _run(video, tmp_path / "hoops", audio_features="mel")
    assert tasks["transforms"]["figures"]["av_offset_s"] is None
    audio_lines = [w for w in tasks["warnings"] if "audio" in w or "silent" in w]
    assert audio_lines == ["audio is silent"]


def test_views_for_loaders_that_index_audio_by_img_id_hear_the_shift(processed, tmp_path):
    from talkprep.io.audio import read_wav
    from talkprep.targets import TARGETS
    from talkprep.targets.render import RENDERERS
    from talkprep.targets.view import ViewWriter

    src = tmp_path / "src"
    shutil.copytree(processed("anchor", "1,3,4,9"), src)
    for split in ("train", "val"):
        path = src / f"transforms_{split}.json"
        doc = json.loads(path.read_text())
        frames = [{**f, "aud_id": f["img_id"] + 3} for f in doc["frames"] if f["img_id"] < 490]
        path.write_text(json.dumps({**doc, "frames": frames}))
    np.save(src / "aud_hu.npy", np.arange(499, dtype=np.float32)[:, None, None] * np.ones((2, 4)))
    assert all("audio_by_frame" in TARGETS[t].renders for t in ("talkinggaussian", "instag"))
    assert "audio_by_frame" not in TARGETS["ernerf"].renders  # ER-NeRF reads aud_id itself
    dst = tmp_path / "view"
    dst.mkdir()
    RENDERERS["audio_by_frame"].run(src, ViewWriter.open(dst, False), lambda items, **_: items)
    rows = np.load(dst / "aud_hu.npy")[:, 0, 0]
    assert rows[:3].tolist() == [3.0, 4.0, 5.0] and rows[-1] == 498.0
    original, rate = read_wav(src / "aud.wav")
    moved, _ = read_wav(dst / "aud.wav")
    k = 3 * rate // 25
    assert np.allclose(moved[: len(moved) - k], original[k:], atol=1e-4)


def test_a_blink_is_not_blur(processed):
    """The HDTF clip's speaker blinks with her mouth closed at frames 170-172 (fewer edges in the
    whole face box): the mid-face sharpness stays well above the blur limit."""
    folder = processed("hdtf", "3,4")
    info = json.loads((folder / ".talkprep/manifest.json").read_text())["tasks"]["landmarks"]
    sharpness = np.array(info["info"]["sharpness"], dtype=float)
    blink = sharpness[169:174] / np.median(sharpness)
    assert (blink > screening.BLUR_SHARE + 0.1).all(), blink


def test_report_shows_the_offset_windows_and_the_flag_timeline(processed, tmp_path):
    from talkprep.report.html import build_report

    out = tmp_path / "anchor"
    shutil.copytree(processed("anchor", "1,3,4,9"), out)
    manifest = json.loads((out / ".talkprep/manifest.json").read_text())
    manifest["tasks"]["transforms"]["info"]["flags"]["blur"] = [[100, 119]]
    (out / ".talkprep/manifest.json").write_text(json.dumps(manifest))
    page = build_report(out).read_text()
    sync_part = page.split('<section id="sync">')[1].split("</section>")[0]
    assert "positive = audio late" in sync_part and "<polyline" in sync_part
    screen_part = page.split('<section id="screening">')[1].split("</section>")[0]
    assert "frames 100-119" in screen_part and "blur #110" in screen_part


def test_quiet_speech_gets_one_warning(processed, tmp_path):
    from talkprep.io.audio import read_wav, write_wav

    samples, rate = read_wav(processed("anchor", "1") / "aud.wav")
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, samples * 0.005, rate)  # about -57 dBFS at its loudest
    tasks = _run(clip_path("anchor"), tmp_path / "out", "1", audio=quiet)
    assert tasks["audio"]["figures"]["speech_level_dbfs"] < -50
    lines = [w for w in tasks["warnings"] if "quiet" in w or "silent" in w]
    assert len(lines) == 1 and lines[0].startswith("speech is very quiet")
