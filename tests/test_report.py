"""report.html: self-contained, built from whatever the folder holds."""

from __future__ import annotations

import re

import numpy as np

from talkprep.cli import main
from talkprep.report.html import blend_parsing, colour_depth, mark_points
from talkprep.report.svg import envelope, line_plot


def test_report_after_process_is_self_contained(processed, tmp_path):
    out = processed("headturn", tasks="1,3")
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "<h2>Tasks</h2>" in page and "frames" in page and "audio" in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 8, "contact sheet thumbnails"
    assert all(src.startswith("data:image/jpeg;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:|file:|/)', page)
    assert "waveform" in page


def test_report_on_a_folder_without_manifest(tmp_path):
    assert main(["report", str(tmp_path)]) == 0
    assert "not made by talkprep" in (tmp_path / "report.html").read_text()
    assert main(["report", str(tmp_path / "missing")]) == 1


def test_line_plot_breaks_at_nan_and_shades_flagged_frames():
    values = np.array([0.0, 1.0, np.nan, 3.0, 4.0, 5.0])
    flagged = np.array([False, False, True, True, False, False])
    svg = line_plot({"v": values}, "title", "u", flagged)
    assert svg.count("<polyline") == 2
    assert svg.count('fill="#f4a6a6"') == 1
    assert "no data" in line_plot({"v": np.full(4, np.nan)}, "empty")


def test_image_helpers():
    low, high = envelope(np.sin(np.arange(8800) / 7.0), columns=880)
    assert low.shape == high.shape == (880,) and (low <= high).all()
    image = np.zeros((10, 10, 3), np.uint8)
    marked = mark_points(image, np.array([[2.0, 3.0], [np.nan, 1.0], [50.0, 50.0]]))
    assert (marked[3, 2] == (0, 255, 255)).all() and marked.sum() == 4 * (255 + 255)
    parsing = np.full((10, 10, 3), 255, np.uint8)
    parsing[:5] = (255, 0, 0)
    tinted = blend_parsing(np.full((10, 10, 3), 100, np.uint8), parsing)
    assert (tinted[5:] == 100).all() and (tinted[:5, :, 0] > 100).all()
    depth = np.zeros((4, 4), np.uint16)
    depth[1:3, 1:3] = [[5000, 6000], [7000, 8000]]
    coloured = colour_depth(depth)
    assert (coloured[0, 0] == 0).all() and coloured[1, 1].sum() > 0
