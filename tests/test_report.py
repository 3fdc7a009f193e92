"""report.html: every section, graded figures, correct time axes, escaped values, a real browser."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser import browser

from talkprep.cli import main
from talkprep.io.images import write_jpeg, write_png
from talkprep.manifest import manifest_path
from talkprep.report.html import REPORT_NAME, SECTIONS, build_report, colour_depth
from talkprep.report.overlays import (
    class_outline,
    draw_classes,
    draw_index,
    draw_lms68,
    on_checker,
    pose_axes,
)
from talkprep.report.quality import (
    THRESHOLDS,
    clipped_share,
    collect_values,
    grade_all,
    length_threshold,
    mask_jumps,
    worst_frames,
)
from talkprep.report.svg import envelope, envelope_rate, line_plot, time_ticks

PAYLOAD = "<script>document.body.setAttribute('data-pwned','1')</script>"
ATTR_PAYLOAD = "\"'><img src=x onerror=\"document.body.setAttribute('data-pwned','2')\">"


@pytest.fixture(scope="module")
def hdtf_folder(processed, tmp_path_factory) -> Path:
    """The 8 s HDTF clip through every task (mel features), copied so the report may write."""
    source = processed("hdtf", tasks="all")
    out = tmp_path_factory.mktemp("report") / "hdtf"
    shutil.copytree(source, out)
    build_report(out)
    return out


@pytest.fixture(scope="module")
def hdtf_page(hdtf_folder) -> str:
    return (hdtf_folder / REPORT_NAME).read_text()


def _section(page: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', page, re.S)
    assert match, f"section {key} missing"
    return match.group(1)


def test_report_has_every_section_with_its_pictures(hdtf_page):
    page = hdtf_page
    for key, heading in SECTIONS:
        assert f'<section id="{key}"><h2>{heading}</h2>' in page
    assert page.index('id="verdict"') < page.index('id="figures"') < page.index('id="frames"')
    images = re.findall(r'<img src="([^"]+)"', page)
    assert all(src.startswith("data:image/jpeg;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:|file:|/)', page)
    sheet = _section(page, "frames")
    assert sheet.count("<img") == 8 and "68 points" in sheet and "head z" in sheet
    assert all(f"#{i} " in sheet for i in (0, 199)), "frame index on the thumbnails' titles"
    assert "head" in sheet and "torso" in sheet and "swatch" in sheet, "colour legend"
    samples = _section(page, "samples")
    assert samples.count("<img") == 8, "gt and torso image of four frames"
    worst = _section(page, "worst")
    assert worst.count("tracking error") >= 6 and worst.count("mask jump") >= 6
    # a frame's median error in its own pixels, not the figures' percentile of all points
    assert worst.count("tracking error (the frame's median point, px of this frame)") == 6
    assert worst.count("<img") >= 12


def test_report_grades_figures_against_stated_thresholds(hdtf_page):
    figures = _section(hdtf_page, "figures")
    rows = re.findall(r'<tr class="(green|amber|red)"><td>([^<]+)</td>', figures)
    labels = {label for _, label in rows}
    for key in ("reproj_median_px_512", "jitter_rot_deg", "mask_jump_p95", "clipped_share"):
        assert THRESHOLDS[key].label in labels
    assert "green ≤ 1.5 px, amber ≤ 3 px, else red" in figures
    # the 8 s clip is far shorter than ER-NeRF's usual clips: an amber advice, in plain words
    verdict = _section(hdtf_page, "verdict")
    assert "frames in the dataset (for ER-NeRF): 200, below the amber limit of 2500" in verdict
    assert "0 task(s)" not in verdict
    # the same trainer lines as process and check print (this folder has mel features only)
    assert "Trainers that can train on it now (2 of 7)" in verdict
    assert "ER-NeRF: not yet, <code>needs HuBERT features (aud_hu.npy): talkprep process" in verdict


def test_clip_length_is_judged_against_the_target_and_never_red():
    def grade(trainer: str, seconds: float, frames: float) -> str:
        [graded] = grade_all({"frames": frames}, length_threshold(trainer, seconds, 25.0))
        return graded.status

    assert grade("InsTaG", 10.0, 200) == "amber" and grade("InsTaG", 10.0, 250) == "green"
    assert grade("ER-NeRF", 100.0, 500) == "amber" and grade("ER-NeRF", 100.0, 2500) == "green"
    assert grade("ER-NeRF", 100.0, 2) == "amber", "a short clip is advice, not a defect"


def test_report_plots_and_axes(hdtf_page):
    pose = _section(hdtf_page, "pose")
    for axis in "xyz":
        assert f"translation {axis} (decimetres" in pose, "x, y, z on separate plots"
    assert "8 s · 200" in pose and "frame 879" not in hdtf_page
    audio = _section(hdtf_page, "audio")
    ticks = [float(t) for t in re.findall(r">(\d+(?:\.\d+)?) s</text>", audio)]
    assert ticks and max(ticks) <= 8.0, "waveform axis in seconds within the 8 s clip"
    assert "aud_mel.npy" in audio and "50 rows per second" in audio
    config = _section(hdtf_page, "config")
    assert "crop box" in config and "none (frames as decoded)" in config
    assert "hdtf_512_25fps_8s_mpeg4.mp4 (aac, 16000 Hz, 2 ch" in config
    assert "target" in config and "mediapipe" in config and "libraries now" in config


def test_report_on_a_folder_without_manifest(tmp_path):
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / REPORT_NAME).read_text()
    assert "not made by talkprep" in page
    assert all(f'<section id="{key}">' in page for key, _ in SECTIONS)
    assert main(["report", str(tmp_path / "missing")]) == 1


def test_report_never_replaces_a_report_html_it_did_not_write(tmp_path):
    mine = tmp_path / REPORT_NAME
    mine.write_text("<html>my own notes</html>")
    assert main(["report", str(tmp_path)]) == 1
    assert mine.read_text() == "<html>my own notes</html>"


def _crafted_folder(root: Path) -> Path:
    """A folder with two frames and a manifest whose every value is an injection attempt."""
    for i in range(2):
        write_jpeg(root / "ori_imgs" / f"{i}.jpg", np.full((64, 64, 3), 90, np.uint8))
    bad = PAYLOAD + ATTR_PAYLOAD
    manifest = {
        "talkprep_version": bad,
        "updated": bad,
        "input": {"path": f"/videos/{bad}.mp4", "fingerprint": bad},
        "config": {
            "video": bad, "target": bad, "parser": bad, "depth": bad, "device": bad,
            "audio_features": [bad], "blendshape_model": bad, "parser_weights": bad,
            "size": bad,
        },
        "tasks": {
            bad: {
                "number": bad, "status": bad, "wall_s": bad, "frames": 2, "frames_per_s": bad,
                "figures": {bad: bad}, "error": bad, "warnings": [bad],
            },
            "frames": {
                "number": 3, "status": "done", "wall_s": 1.0, "frames": 2, "frames_per_s": 2.0,
                "figures": {"n_frames": 2}, "info": {"fps": 25.0, "crop_box": bad,
                                                     "width": 64, "height": 64},
            },
            "audio": {"number": 1, "status": "failed", "error": bad,
                      "info": {"source": bad, "codec": bad}},
            "audio_features": {"number": 2, "status": "done",
                               "info": {"features": {bad: {"model": bad, "revision": bad}}}},
            "landmarks": {"number": 4, "status": "done", "info": {"interpolated": bad}},
            "transforms": {"number": [bad], "status": ["done"], "warnings": bad, "figures": bad},
        },
    }  # fmt: skip
    manifest_path(root).parent.mkdir(parents=True)
    manifest_path(root).write_text(json.dumps(manifest))
    return root


def test_report_escapes_every_value_of_a_crafted_manifest(tmp_path):
    build_report(_crafted_folder(tmp_path))
    page = (tmp_path / REPORT_NAME).read_text()
    assert "<script" not in page.lower()
    assert not re.search(r"<[^>]*onerror", page), "no attribute injected into a tag"
    assert PAYLOAD not in page and ATTR_PAYLOAD not in page
    escaped = "&lt;script&gt;document.body.setAttribute(&#x27;data-pwned&#x27;,&#x27;1&#x27;)"
    assert page.count(escaped) >= 10, "the values are shown, as text"
    assert "script-src" not in page or "default-src 'none'" in page


def test_report_renders_in_a_headless_browser(hdtf_folder, tmp_path):
    shot = tmp_path / "report.png"
    browser(hdtf_folder / REPORT_NAME, "--window-size=1150,9000", f"--screenshot={shot}")
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (9000, 1150)
    ink = (image < 235).any(axis=2)
    assert ink.mean() > 0.05, "screenshot is blank"
    rows_with_ink = np.flatnonzero(ink.any(axis=1))
    assert rows_with_ink.max() > 6000, "the page renders past the figures into the pictures"
    colours = np.unique(image[::4, ::4].reshape(-1, 3) // 16, axis=0)
    assert len(colours) > 200, "pictures are drawn, not only text"
    dom = browser(hdtf_folder / REPORT_NAME, "--dump-dom").stdout
    for key, heading in SECTIONS:
        assert f'<section id="{key}"><h2>{heading}</h2>' in dom


def test_crafted_manifest_runs_no_script_in_a_browser(tmp_path):
    build_report(_crafted_folder(tmp_path))
    dom = browser(tmp_path / REPORT_NAME, "--dump-dom").stdout
    assert "<body" in dom and "data-pwned=" not in dom.replace("&#x27;data-pwned&#x27;", "")


def test_quality_grades_and_worst_frames():
    threshold = THRESHOLDS["reproj_median_px_512"]
    assert [threshold.grade(v) for v in (1.0, 2.0, 4.0)] == ["green", "amber", "red"]
    coverage = THRESHOLDS["depth_face_coverage"]
    assert [coverage.grade(v) for v in (95.0, 80.0, 50.0)] == ["green", "amber", "red"]
    manifest = {
        "tasks": {
            "landmarks": {"figures": {"faces_found": 90, "reproj_median_px_512": 0.5}},
            "audio": {"figures": {"padded_or_trimmed_s": -0.7}},
        }
    }
    values = collect_values(manifest, 100, {"clipped_share": 0.0})
    assert values["faces_found_share"] == 90.0 and values["audio_mismatch_s"] == 0.7
    graded = grade_all(values, length_threshold("ER-NeRF", 100.0, 25.0))
    assert [(g.key, g.status) for g in graded][:1] == [("audio_mismatch_s", "red")]
    assert next(g.status for g in graded if g.key == "frames") == "amber"
    assert graded[-1].status == "green" and graded[-1].warning == ""
    assert "lip sync" in next(g.warning for g in graded if g.key == "audio_mismatch_s")
    assert worst_frames(np.array([0.1, np.nan, 3.0, 2.0]), 2).tolist() == [2, 3]
    samples = np.array([0.0, 1.0, -1.0, 0.5], np.float32)
    assert clipped_share(samples) == 50.0


def test_mask_jumps_count_class_changes_inside_the_person():
    a = np.zeros((10, 10), np.uint8)
    a[2:8, 2:8] = 1
    b = a.copy()
    b[2:8, 2:5] = 2  # half the person changes class, the outline stays
    jumps = mask_jumps([a, a, b, None, b])
    assert np.isnan(jumps[0]) and jumps[1] == 0.0 and jumps[2] == pytest.approx(0.5)
    assert np.isnan(jumps[3]) and np.isnan(jumps[4])


def test_mask_jumps_equal_the_union_definition_exactly():
    maps = list(np.random.default_rng(0).integers(0, 4, (6, 40, 50), dtype=np.uint8))
    maps[3][:] = 0  # no person in either frame: no jump
    maps[4][:] = 0
    expected = [np.nan]
    for previous, regions in itertools.pairwise(maps):
        union = (previous != 0) | (regions != 0)
        total = np.count_nonzero(union)
        same = np.count_nonzero(union & (previous == regions))
        expected.append(1.0 - same / total if total else 0.0)
    assert mask_jumps(maps).tobytes() == np.array(expected).tobytes()


def test_line_plot_time_axis_nan_breaks_and_limits():
    values = np.array([0.0, 1.0, np.nan, 3.0, 4.0, 5.0])
    flagged = np.array([False, False, True, True, False, False])
    svg = line_plot({"v": values}, "title", "u", flagged, rate=2.0, limits={"red": 4.5})
    assert svg.count("<polyline") == 2
    assert svg.count('fill="#f4a6a6"') == 1
    assert "red 4.5" in svg and "stroke-dasharray" in svg
    assert "2 s · 4" in svg, "seconds with the frame index under each tick"
    assert "no data" in line_plot({"v": np.full(4, np.nan)}, "empty")
    assert time_ticks(8.0).tolist() == [float(t) for t in range(9)]
    assert time_ticks(300.0)[1] == 30.0


def test_waveform_axis_is_in_seconds():
    rate = 16000
    samples = np.sin(np.arange(rate * 20) / 7.0).astype(np.float32)  # 20 s, 500 frames at 25
    low, high = envelope(samples)
    svg = line_plot({"min": low, "max": high}, "waveform", "", None,
                    envelope_rate(len(samples), rate), per_frame=False)  # fmt: skip
    ticks = [float(t) for t in re.findall(r">(\d+(?:\.\d+)?) s</text>", svg)]
    assert max(ticks) == 20.0 and "·" not in svg


def test_image_helpers():
    low, high = envelope(np.sin(np.arange(8800) / 7.0), columns=880)
    assert low.shape == high.shape == (880,) and (low <= high).all()
    depth = np.zeros((4, 4), np.uint16)
    depth[1:3, 1:3] = [[5000, 6000], [7000, 8000]]
    coloured = colour_depth(depth)
    assert (coloured[0, 0] == 0).all() and coloured[1, 1].sum() > 0
    labels = np.zeros((20, 20), np.uint8)
    labels[5:15, 5:15] = 1
    edge = class_outline(labels)
    assert edge[4, 10] and edge[14, 10] and edge[10, 4] and edge[10, 14]
    assert not edge[10, 10] and not edge[0, 0] and not edge[5, 10]
    palette = np.array([[255, 255, 255], [255, 0, 0]], np.uint8)
    drawn = draw_classes(np.full((20, 20, 3), 100, np.uint8), labels, palette)
    assert (
        (drawn[0, 0] == 100).all()
        and drawn[10, 10, 0] > 100
        and (drawn[14, 10] == palette[1]).all()
    )
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:8, :, :3], rgba[:8, :, 3] = 10, 255
    board = on_checker(rgba)
    assert (board[0, 0] == 10).all() and board[8:, :].std() > 0
    labelled = draw_index(np.zeros((200, 200, 3), np.uint8), "#12")
    assert labelled[:20, :40].max() == 255 and labelled[100:, 100:].max() == 0
    points = np.stack([np.linspace(50, 150, 68), np.full(68, 100.0)], axis=1)
    assert draw_lms68(np.zeros((200, 200, 3), np.uint8), points).sum() > 0
    assert draw_lms68(np.zeros((9, 9, 3), np.uint8), np.full((68, 2), np.nan)).sum() == 0


def test_pose_axes_follow_the_ad_nerf_projection():
    """Head 0.7 m in front of the camera, no rotation: origin at the centre, x right, y up."""
    axes = pose_axes(np.zeros((1, 3)), np.array([[0.0, 0.0, -7.0]]), 1000.0, 512, 512)[0]
    assert axes[0] == pytest.approx([256.0, 256.0])
    assert axes[1, 0] > 256 and axes[1, 1] == pytest.approx(256.0)  # x: image right
    assert axes[2, 1] < 256 and axes[2, 0] == pytest.approx(256.0)  # y: image up
    assert axes[3] == pytest.approx([256.0, 256.0])  # z points at the camera
    yawed = pose_axes(np.array([[0.0, 0.3, 0.0]]), np.array([[0.0, 0.0, -7.0]]), 1000.0, 512, 512)
    assert yawed[0, 3, 0] != pytest.approx(256.0), "a turned head's z axis leaves the centre"


def test_report_shows_semantic_classes_when_present(tmp_path):
    from talkprep.semantics import SEMANTIC_NAMES, SemanticClass

    write_jpeg(tmp_path / "ori_imgs" / "0.jpg", np.full((64, 64, 3), 90, np.uint8))
    classes = np.zeros((64, 64), np.uint8)
    classes[10:40, 20:40] = SemanticClass.HAIR
    write_png(tmp_path / "semantics" / "0.png", classes)
    build_report(tmp_path)
    sheet = _section((tmp_path / REPORT_NAME).read_text(), "frames")
    assert "semantics/{i}.png classes" in sheet
    assert all(SEMANTIC_NAMES[c] in sheet for c in SemanticClass)


def test_report_on_a_folder_with_a_gap_in_its_frames(tmp_path):
    """A folder from elsewhere may lack some frames: the report shows the ones present."""
    parsing = np.full((32, 32, 3), 255, np.uint8)
    for i in (0, 1, 3, 4):
        write_jpeg(tmp_path / "ori_imgs" / f"{i}.jpg", np.full((32, 32, 3), 40 * i, np.uint8))
        parsing[8 : 16 + 3 * i, 8:24] = (255, 0, 0)
        write_png(tmp_path / "parsing" / f"{i}.png", parsing)
    build_report(tmp_path)
    page = (tmp_path / REPORT_NAME).read_text()
    assert "#4 " in _section(page, "frames") and "#2 " not in _section(page, "frames")
    worst = _section(page, "worst")
    assert "<td>mask jump</td><td>4</td>" in worst and "<td>3</td>" not in worst


def test_task_5_records_the_mask_jumps_the_report_would_count(processed):
    """The report reads task 5's series instead of decoding every class map again: the same
    numbers as counting them from semantics/ (and the regions are the trainers' labels)."""
    from talkprep.geometry.masks import CLASS_TO_LABEL
    from talkprep.manifest import read_manifest
    from talkprep.report.html import recorded_mask_jumps
    from talkprep.report.overlays import class_source
    from talkprep.semantics import N_CLASSES

    folder = processed("anchor", tasks="1,3-5")
    manifest = read_manifest(folder)
    n = manifest["tasks"]["frames"]["info"]["n_frames"]
    recorded = recorded_mask_jumps(manifest, n)
    assert recorded is not None
    assert np.isnan(recorded[0]) and np.isfinite(recorded[1:]).all()
    source = class_source(folder)
    assert (source.regions[:N_CLASSES] == CLASS_TO_LABEL[:N_CLASSES]).all()
    counted = mask_jumps(source.read_regions(folder, i) for i in range(n))
    np.testing.assert_allclose(recorded, counted, atol=1e-6)
    assert recorded_mask_jumps(manifest, n + 1) is None, "a series of another length is ignored"
