"""Parsing quality on processed folders, by measures that do not use the parser's own models.

    python benchmarks/bench_parsing_quality.py OUT [OUT ...] [--every 5]

For every folder (made by `talkprep process ... --tasks 3-7`), over every `--every`-th frame:
- hair in torso: of the hair-coloured pixels beside and below the jaw (Lab colour within a
  Mahalanobis distance of 2 of a box above the forehead, nearer to it than to the face's skin;
  the face found from landmarks.npy alone), the share labelled torso (the issue's colour proxy);
- opaque hands: pixels of the class map's HAND class that are opaque in torso_imgs/ (must be 0);
- chin hole: frames whose box under the chin is mostly neither neck, torso nor face;
- the frame-to-frame change of the head mask (1 - IoU, median).
Prints one row per folder. Two folders of one clip (before and after a change) compare directly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from talkprep.io.images import frame_indices, read_image
from talkprep.semantics import HEAD_CLASSES, SemanticClass, class_mask

C = SemanticClass


def lab(pixels_bgr: np.ndarray) -> np.ndarray:
    image = pixels_bgr.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[:, 0]


def colour_model(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return values.mean(axis=0), np.linalg.inv(np.cov(values.T) + np.eye(3))


def distance2(values: np.ndarray, model: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    d = values - model[0]
    return np.einsum("ni,ij,nj->n", d, model[1], d)


def hair_proxy(frame: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """bool [H, W]: hair-coloured pixels beside and below the jaw, or None when no crown."""
    height, width = frame.shape[:2]
    lo, hi = points.min(axis=0), points.max(axis=0)
    w, h = hi - lo
    crown = frame[
        max(0, int(lo[1] - 0.25 * h)) : max(0, int(lo[1] - 0.05 * h)),
        int(lo[0] + 0.25 * w) : int(hi[0] - 0.25 * w),
    ].reshape(-1, 3)
    if len(crown) < 50:
        return None
    hull = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    crown_model = colour_model(lab(crown))
    skin_model = colour_model(lab(frame[hull.astype(bool)]))
    region = np.zeros((height, width), bool)
    top = max(0, int(hi[1] - 0.4 * h))
    region[top:, max(0, int(lo[0] - 0.8 * w)) : int(lo[0])] = True
    region[top:, int(hi[0]) : int(hi[0] + 0.8 * w)] = True
    values = lab(frame[region])
    to_crown = distance2(values, crown_model)
    out = np.zeros_like(region)
    out[region] = (to_crown < 4.0) & (to_crown < distance2(values, skin_model))
    return out


def chin_hole(classes: np.ndarray, points: np.ndarray) -> bool | None:
    lo, hi = points.min(axis=0), points.max(axis=0)
    w, h = hi - lo
    x, y = points[152]
    box = classes[int(y + 0.03 * h) : int(y + 0.15 * h), int(x - 0.15 * w) : int(x + 0.15 * w)]
    if box.size < 0.5 * (0.12 * h) * (0.3 * w):
        return None
    filled = class_mask(box, (C.NECK, C.TORSO, C.FACE_SKIN))
    return bool(np.mean(filled) < 0.75)


def measure(root: Path, every: int) -> dict[str, float]:
    landmarks = np.load(root / "landmarks.npy")
    indices = frame_indices(root / "ori_imgs", ".jpg")[::every]
    hair_torso, hair_all, opaque_hands, holes, judged, flicker = 0, 0, 0, 0, 0, []
    previous = None
    for i in indices:
        classes = read_image(root / "semantics" / f"{i}.png", cv2.IMREAD_UNCHANGED)
        head = class_mask(classes, HEAD_CLASSES)
        if previous is not None:
            flicker.append(
                1.0 - np.count_nonzero(head & previous) / max(1, np.count_nonzero(head | previous))
            )
        previous = head
        torso = read_image(root / "torso_imgs" / f"{i}.png", cv2.IMREAD_UNCHANGED)
        opaque_hands += int(np.count_nonzero((classes == C.HAND) & (torso[..., 3] > 0)))
        points = landmarks[i, :, :2]
        if not np.isfinite(points).all():
            continue
        proxy = hair_proxy(read_image(root / "ori_imgs" / f"{i}.jpg"), points)
        if proxy is not None:
            hair_all += int(np.count_nonzero(proxy & (classes != C.BACKGROUND)))
            hair_torso += int(np.count_nonzero(proxy & (classes == C.TORSO)))
        hole = chin_hole(classes, points)
        if hole is not None:
            judged += 1
            holes += int(hole)
    return {
        "frames": len(indices),
        "hair_in_torso_pct": 100.0 * hair_torso / max(1, hair_all),
        "opaque_hand_px": opaque_hands,
        "chin_hole_pct": 100.0 * holes / max(1, judged),
        "head_flicker_median": float(np.median(flicker)) if flicker else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=5)
    args = parser.parse_args()
    print(
        "| folder | frames | hair-coloured pixels labelled torso | opaque hand px | "
        "chin holes | head flicker (median 1-IoU) |"
    )
    print("|---|---|---|---|---|---|")
    for root in args.folders:
        m = measure(root, args.every)
        print(
            f"| {root.parent.name}/{root.name} | {m['frames']} | {m['hair_in_torso_pct']:.1f}% | "
            f"{m['opaque_hand_px']} | {m['chin_hole_pct']:.1f}% | {m['head_flicker_median']:.4f} |"
        )


if __name__ == "__main__":
    main()
