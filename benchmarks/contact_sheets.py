"""Contact sheets of processed folders, for rating parsing by eye (blind, without the code).

    python benchmarks/contact_sheets.py OUT [OUT ...] -o sheets/ [--frames 6] [--side 256]

One PNG per folder: a row per sampled frame (evenly spread) with the frame and its 68 points,
the class map (colours of talkprep.semantics), the torso image over a checkerboard and the gt
image, each labelled with the frame index; the last row shows bc.jpg. Frames are picked by
index, so two runs of the same clip show the same frames.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from talkprep.io.images import frame_indices, read_image
from talkprep.report.overlays import draw_index, draw_lms68, fit_side, on_checker
from talkprep.semantics import SEMANTICS_DIR, colour_lut_rgb


def read_lms(path: Path) -> np.ndarray:
    """The 68 points of a .lms file ([68, 2], NaN where the file has none)."""
    try:
        return np.loadtxt(path, dtype=np.float64).reshape(68, 2)
    except (OSError, ValueError):
        return np.full((68, 2), np.nan)


def tile(image: np.ndarray | None, side: int, label: str) -> np.ndarray:
    """The image fitted into a side x side square (black padding), labelled."""
    square = np.zeros((side, side, 3), np.uint8)
    if image is not None:
        fitted, _ = fit_side(image, side)
        h, w = fitted.shape[:2]
        y, x = (side - h) // 2, (side - w) // 2
        square[y : y + h, x : x + w] = fitted
    return draw_index(square, label)


def frame_row(root: Path, index: int, side: int) -> np.ndarray:
    """One frame: frame + 68 points, class map, torso over a checkerboard, gt."""
    frame = read_image(root / "ori_imgs" / f"{index}.jpg")
    fitted, scale = fit_side(frame, side)
    with_points = draw_lms68(fitted, read_lms(root / "ori_imgs" / f"{index}.lms"), scale)
    classes_path = root / SEMANTICS_DIR / f"{index}.png"
    classes = (
        colour_lut_rgb()[read_image(classes_path, cv2.IMREAD_GRAYSCALE)][..., ::-1]
        if classes_path.is_file()
        else None
    )
    torso_path = root / "torso_imgs" / f"{index}.png"
    torso = None
    if torso_path.is_file():
        torso = on_checker(read_image(torso_path, cv2.IMREAD_UNCHANGED))
    gt_path = root / "gt_imgs" / f"{index}.jpg"
    gt = read_image(gt_path) if gt_path.is_file() else None
    return np.hstack(
        [
            tile(with_points, side, f"{index} frame"),
            tile(classes, side, f"{index} classes"),
            tile(torso, side, f"{index} torso"),
            tile(gt, side, f"{index} gt"),
        ]
    )


def contact_sheet(root: Path, frames: int, side: int) -> np.ndarray:
    """The sheet of one folder (BGR)."""
    indices = frame_indices(root / "ori_imgs", ".jpg")
    picks = sorted({indices[int(k)] for k in np.linspace(0, len(indices) - 1, frames)})
    rows = [frame_row(root, index, side) for index in picks]
    plate_path = root / "bc.jpg"
    plate = read_image(plate_path) if plate_path.is_file() else None
    last = np.zeros_like(rows[0])
    last[:, :side] = tile(plate, side, "bc.jpg")
    return np.vstack([*rows, last])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--side", type=int, default=256)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for root in args.folders:
        sheet = contact_sheet(root, args.frames, args.side)
        path = args.out / f"{root.name}.png"
        cv2.imwrite(str(path), sheet)
        print(path)


if __name__ == "__main__":
    main()
