"""talkprep preview: H.264 + AAC, N frames at the dataset fps, audio of N / fps seconds."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from browser import browser

from talkprep.cli import main
from talkprep.io.audio import write_wav
from talkprep.io.images import write_jpeg
from talkprep.manifest import manifest_path
from talkprep.report.html import REPORT_NAME, build_report
from talkprep.report.preview import (
    PREVIEW_NAME,
    PREVIEW_TITLE,
    dataset_fps,
    sample_ends,
    side_by_side,
    write_preview,
)

AAC_FRAME = 1024
"""Samples per AAC frame: the decoded audio may differ from the written length by one."""


def _decode(path: Path) -> dict[str, object]:
    """Decode the whole file: codecs, frame count, rate, size, audio seconds, title."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        facts: dict[str, object] = {
            "title": container.metadata.get("title"),
            "video_codec": video.codec_context.name,
            "audio_codec": audio.codec_context.name,
            "rate": video.average_rate,
            "size": (video.codec_context.width, video.codec_context.height),
        }
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].codec_context.sample_rate
        samples = sum(f.samples for f in container.decode(audio=0))
    facts.update(frames=len(frames), first=frames[0], audio_s=samples / rate)
    return facts


def _synthetic_folder(root: Path, n: int, fps: str | None, audio_s: float | None) -> Path:
    """n coloured 96x64 frames, an optional aud.wav and an optional manifest giving the fps."""
    for i in range(n):
        image = np.zeros((64, 96, 3), np.uint8)
        image[:, : 4 + i * 3] = (40, 180, 40)
        write_jpeg(root / "ori_imgs" / f"{i}.jpg", image)
    if audio_s is not None:
        t = np.arange(round(audio_s * 16000)) / 16000
        write_wav(root / "aud.wav", 0.3 * np.sin(2 * np.pi * 440 * t))
    if fps is not None:
        manifest = {
            "tasks": {"frames": {"info": {"fps": float(Fraction(fps)), "fps_fraction": fps}}}
        }
        manifest_path(root).parent.mkdir(parents=True)
        manifest_path(root).write_text(json.dumps(manifest))
    return root


@pytest.mark.parametrize(("fps", "audio_s"), [("30000/1001", 0.3), (None, None)])
def test_preview_has_n_frames_at_the_dataset_fps_and_matching_audio(tmp_path, fps, audio_s):
    folder = _synthetic_folder(tmp_path, 17, fps, audio_s)
    result = write_preview(folder)
    rate = Fraction(fps) if fps else Fraction(25)
    facts = _decode(folder / PREVIEW_NAME)
    assert result.frames == facts["frames"] == 17 and result.fps == rate
    assert facts["rate"] == rate
    assert facts["video_codec"] == "h264" and facts["audio_codec"] == "aac"
    assert facts["title"] == PREVIEW_TITLE
    expected = float(17 / rate)
    assert result.audio_s == pytest.approx(expected, abs=1 / 16000)
    assert abs(facts["audio_s"] - expected) <= AAC_FRAME / 16000
    assert facts["size"] == (512, 342), "no gt image: the frame panel alone, at 512 px, even"


def test_preview_keeps_one_size_when_gt_images_stop_part_way(tmp_path):
    folder = _synthetic_folder(tmp_path, 6, None, 0.24)
    for i in range(3):
        write_jpeg(folder / "gt_imgs" / f"{i}.jpg", np.full((64, 96, 3), 200, np.uint8))
    write_preview(folder)
    facts = _decode(folder / PREVIEW_NAME)
    assert facts["frames"] == 6 and facts["size"] == (1024, 342)


def test_preview_refuses_to_replace_a_file_it_did_not_write(tmp_path):
    folder = _synthetic_folder(tmp_path / "data", 3, None, None)
    mine = tmp_path / "holiday.mp4"
    mine.write_bytes(b"my video")
    assert main(["preview", str(folder), "-o", str(mine), "-q"]) == 1
    assert mine.read_bytes() == b"my video"
    assert main(["preview", str(folder), "-q"]) == 0
    assert main(["preview", str(folder), "-q"]) == 0, "its own preview is replaced"
    assert main(["preview", str(tmp_path / "empty"), "-q"]) == 1
    (tmp_path / "empty").mkdir()
    assert main(["preview", str(tmp_path / "empty"), "-q"]) == 1


def test_sample_ends_and_canvas():
    ends = sample_ends(3000, Fraction(30000, 1001), 16000)
    assert ends[-1] == round(3000 * 1001 / 30000 * 16000)
    assert np.all(np.diff(ends) >= 533) and np.all(np.diff(ends) <= 534)
    canvas = side_by_side(np.ones((5, 7, 3), np.uint8), np.ones((3, 4, 3), np.uint8))
    assert canvas.shape == (6, 12, 3) and canvas[4, 8].sum() == 0
    assert dataset_fps({}) == 25 and dataset_fps({"tasks": {"frames": {"info": {"fps": 30}}}}) == 30


@pytest.fixture(scope="module")
def hdtf_preview(processed, tmp_path_factory) -> Path:
    """The 8 s HDTF clip processed, copied, then `talkprep preview` run on it."""
    source = processed("hdtf", tasks="all")
    out = tmp_path_factory.mktemp("preview") / "hdtf"
    shutil.copytree(source, out)
    assert main(["preview", str(out), "-q"]) == 0
    return out


def test_preview_of_a_real_clip(hdtf_preview):
    facts = _decode(hdtf_preview / PREVIEW_NAME)
    assert facts["frames"] == 200 and facts["rate"] == 25
    assert abs(facts["audio_s"] - 8.0) <= AAC_FRAME / 16000
    assert facts["size"] == (1024, 512), "overlaid frame beside its gt image"
    first = facts["first"]
    left, right = first[:, :512].astype(int), first[:, 512:].astype(int)
    assert np.abs(left - right).mean() > 5, "the overlays make the two panels differ"
    page = (hdtf_preview / REPORT_NAME).read_text()
    assert f'href="{PREVIEW_NAME}"' in page and f'src="{PREVIEW_NAME}"' in page


PROBE = """<!doctype html><html><body><video id="v" src="{src}" muted></video><script>
const v = document.getElementById("v");
v.addEventListener("loadeddata", () => {{
  document.body.dataset.duration = v.duration;
  document.body.dataset.size = v.videoWidth + "x" + v.videoHeight;
}});
v.addEventListener("error", () => {{ document.body.dataset.error = v.error && v.error.code; }});
</script></body></html>
"""
"""A page that records what the browser's own decoder makes of the video (first frame decoded)."""


def test_the_preview_plays_in_a_browser_and_the_report_links_it(tmp_path):
    folder = _synthetic_folder(tmp_path, 25, "25", 1.0)
    write_preview(folder)
    build_report(folder)
    assert f'href="{PREVIEW_NAME}"' in (folder / REPORT_NAME).read_text()
    probe = folder / "probe.html"
    probe.write_text(PROBE.format(src=PREVIEW_NAME))
    dom = browser(probe, "--virtual-time-budget=10000", "--dump-dom").stdout
    assert "data-error" not in dom, dom[:300]
    assert 'data-duration="1"' in dom and 'data-size="512x342"' in dom, dom[:300]
