"""Task 7: gt and torso images match RAD-NeRF's extract_torso_and_gt, and hold on real clips."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from talkprep.check import check_folder
from talkprep.geometry.masks import (
    BACKGROUND,
    HEAD,
    NECK,
    TORSO,
    bgr_to_labels,
    gt_and_torso,
    labels_to_bgr,
)
from talkprep.io.images import frame_indices, read_image
from talkprep.tasks.background import margin_for

CLIP_NAMES = ("anchor", "hdtf", "obama", "selfie", "headturn")


def reference_torso_and_gt(
    ori_image: np.ndarray, seg: np.ndarray, bg_image: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """RAD-NeRF data_utils/process.py extract_torso_and_gt for one frame, kept as written there
    (per-pixel sort and unique), as the oracle for the vectorised version."""
    head_part = (seg[..., 0] == 255) & (seg[..., 1] == 0) & (seg[..., 2] == 0)
    neck_part = (seg[..., 0] == 0) & (seg[..., 1] == 255) & (seg[..., 2] == 0)
    torso_part = (seg[..., 0] == 0) & (seg[..., 1] == 0) & (seg[..., 2] == 255)
    bg_part = (seg[..., 0] == 255) & (seg[..., 1] == 255) & (seg[..., 2] == 255)
    gt_image = ori_image.copy()
    gt_image[bg_part] = bg_image[bg_part]
    torso_image = gt_image.copy()
    torso_image[head_part] = bg_image[head_part]
    torso_alpha = 255 * np.ones((gt_image.shape[0], gt_image.shape[1], 1), dtype=np.uint8)

    length = 8 + 1
    torso_coords = np.stack(np.nonzero(torso_part), axis=-1)
    torso_coords = torso_coords[np.lexsort((torso_coords[:, 0], torso_coords[:, 1]))]
    _, uid = np.unique(torso_coords[:, 1], return_index=True)
    top_torso_coords = torso_coords[uid]
    mask = head_part[tuple((top_torso_coords - np.array([1, 0])).T)]
    inpaint_torso_mask = None
    if mask.any():
        top_torso_coords = top_torso_coords[mask]
        top_torso_colors = gt_image[tuple(top_torso_coords.T)]
        coords = top_torso_coords[None].repeat(length, 0)
        coords += np.stack([-np.arange(length), np.zeros(length, dtype=np.int32)], axis=-1)[:, None]
        coords = coords.reshape(-1, 2)
        colors = top_torso_colors[None].repeat(length, 0)
        colors = (colors * 0.98 ** np.arange(length).reshape(length, 1, 1)).reshape(-1, 3)
        torso_image[tuple(coords.T)] = colors
        inpaint_torso_mask = np.zeros_like(torso_image[..., 0]).astype(bool)
        inpaint_torso_mask[tuple(coords.T)] = True

    push_down = 4
    length = 48 + push_down + 1
    neck_part = binary_dilation(
        neck_part, structure=np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=bool), iterations=3
    )
    neck_coords = np.stack(np.nonzero(neck_part), axis=-1)
    neck_coords = neck_coords[np.lexsort((neck_coords[:, 0], neck_coords[:, 1]))]
    _, uid, ucnt = np.unique(neck_coords[:, 1], return_index=True, return_counts=True)
    top_neck_coords = neck_coords[uid]
    mask = head_part[tuple((top_neck_coords - np.array([1, 0])).T)]
    top_neck_coords = top_neck_coords[mask]
    offset_down = np.minimum(ucnt[mask] - 1, push_down)
    top_neck_coords += np.stack([offset_down, np.zeros_like(offset_down)], axis=-1)
    top_neck_colors = gt_image[tuple(top_neck_coords.T)]
    coords = top_neck_coords[None].repeat(length, 0)
    coords += np.stack([-np.arange(length), np.zeros(length, dtype=np.int32)], axis=-1)[:, None]
    coords = coords.reshape(-1, 2)
    colors = top_neck_colors[None].repeat(length, 0)
    colors = (colors * 0.98 ** np.arange(length).reshape(length, 1, 1)).reshape(-1, 3)
    torso_image[tuple(coords.T)] = colors
    inpaint_mask = np.zeros_like(torso_image[..., 0]).astype(bool)
    inpaint_mask[tuple(coords.T)] = True
    blur_img = cv2.GaussianBlur(torso_image.copy(), (5, 5), cv2.BORDER_DEFAULT)
    torso_image[inpaint_mask] = blur_img[inpaint_mask]
    mask = neck_part | torso_part | inpaint_mask
    if inpaint_torso_mask is not None:
        mask = mask | inpaint_torso_mask
    torso_image[~mask] = 0
    torso_alpha[~mask] = 0
    return gt_image, np.concatenate([torso_image, torso_alpha], axis=-1)


def synthetic_scene(size: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    plate = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    labels = np.zeros((size, size), np.uint8)
    head = np.zeros((size, size), np.uint8)
    cv2.ellipse(head, (100, 70), (45, 60), 10, 0, 360, 1, -1)
    labels[120:160, 75:126] = NECK
    labels[150:, 15:186] = TORSO
    labels[head > 0] = HEAD
    labels[60:80, 180:190] = TORSO  # a torso patch with nothing above it
    return image, labels, plate


def test_matches_reference_on_synthetic_scene() -> None:
    image, labels, plate = synthetic_scene()
    gt, torso = gt_and_torso(image, labels, plate)
    ref_gt, ref_torso = reference_torso_and_gt(image, labels_to_bgr(labels), plate)
    assert (gt == ref_gt).all()
    assert torso.shape == ref_torso.shape == (*labels.shape, 4)
    assert (torso[..., 3] == ref_torso[..., 3]).all()
    assert np.abs(torso.astype(int) - ref_torso).max() == 0


def test_torso_alpha_and_extension() -> None:
    image, labels, plate = synthetic_scene()
    _, torso = gt_and_torso(image, labels, plate)
    alpha = torso[..., 3]
    assert set(np.unique(alpha)) == {0, 255}
    assert (alpha[(labels == NECK) | (labels == TORSO)] == 255).all()
    assert (alpha[labels == BACKGROUND][:100] == 0).all()
    extended = (alpha == 255) & (labels == HEAD)
    assert extended.any(), "the neck is not carried up under the head"
    assert (torso[alpha == 0] == 0).all()


def test_gt_keeps_the_frame_next_to_the_person() -> None:
    """A fixed camera: the frame agrees with the plate away from the person, and differs next to
    it (the segmenter's soft hair edge, wisps): gt keeps the frame there, fading into the plate."""
    image, labels, plate = synthetic_scene()
    hands = np.zeros(labels.shape, bool)
    hands[140:150, 150:190] = True  # a hand (background to the trainers) beside the body
    labels[hands] = BACKGROUND
    person = (labels != BACKGROUND).astype(np.uint8)
    distance = cv2.distanceTransform(1 - person, cv2.DIST_L2, 5)
    image[distance > 12] = plate[distance > 12]
    plain, torso = gt_and_torso(image, labels, plate)
    banded, banded_torso = gt_and_torso(image, labels, plate, keep_band=4, hands=hands)
    beside = (distance > 0) & (distance <= 1) & ~hands
    assert (banded[beside] == image[beside]).all() and (plain[beside] == plate[beside]).all()
    # the frame fades into the plate: halfway out, each pixel lies between the two
    halfway = (distance > 2.4) & (distance < 2.6) & ~hands
    low = np.minimum(image[halfway], plate[halfway]).astype(int)
    high = np.maximum(image[halfway], plate[halfway]).astype(int)
    mixed = banded[halfway].astype(int)
    assert ((mixed >= low - 1) & (mixed <= high + 1)).all()
    differ = np.abs(image[halfway].astype(int) - plate[halfway]) > 40
    assert (mixed[differ] != image[halfway][differ]).all()
    assert (mixed[differ] != plate[halfway][differ]).all()
    outer = (distance > 3.2) & (distance < 3.8) & ~hands  # beyond a moving camera's feather
    apart = np.abs(image[outer].astype(int) - plate[outer]).max(axis=-1) > 40
    assert (banded[outer][apart] != plate[outer][apart]).any(axis=-1).all()
    far = distance > 5.5  # the fade ends 4 px out (the distance here is a little larger)
    assert (banded[far] == plate[far]).all()
    assert (banded[hands] == plate[hands]).all()
    assert (banded_torso == torso).all()


def test_where_the_camera_moved_gt_keeps_only_a_feather_of_the_frame() -> None:
    """The frame's background differs from the plate everywhere (the camera moved): its own
    pixels beside the person would show a band of other scenery, so the fade shrinks to a
    feather of two pixels."""
    image, labels, plate = synthetic_scene()
    person = (labels != BACKGROUND).astype(np.uint8)
    distance = cv2.distanceTransform(1 - person, cv2.DIST_L2, 5)
    banded, _ = gt_and_torso(image, labels, plate, keep_band=4)
    beside = (distance > 0) & (distance <= 1)
    assert (banded[beside] == image[beside]).all()
    beyond = distance > 3.5
    assert (banded[beyond] == plate[beyond]).all()


def test_no_head_means_no_extension() -> None:
    image, labels, plate = synthetic_scene()
    labels[labels == HEAD] = BACKGROUND
    _, torso = gt_and_torso(image, labels, plate)
    assert ((torso[..., 3] == 255) == ((labels == TORSO) | binary_neck(labels))).all()


def binary_neck(labels: np.ndarray) -> np.ndarray:
    return binary_dilation(labels == NECK, structure=np.ones((3, 1), bool), iterations=3)


@pytest.mark.slow
@pytest.mark.parametrize("clip", CLIP_NAMES)
def test_gt_and_torso_on_real_clip(processed, clip: str) -> None:
    folder = processed(clip, tasks="3,4,5,6,7")
    n = len(frame_indices(folder / "ori_imgs", ".jpg"))
    assert frame_indices(folder / "gt_imgs", ".jpg") == list(range(n))
    assert frame_indices(folder / "torso_imgs", ".png") == list(range(n))
    plate = read_image(folder / "bc.jpg")
    extended_frames = 0
    checked = range(0, n, max(1, n // 25))
    for i in checked:
        frame = read_image(folder / "ori_imgs" / f"{i}.jpg")
        seg = read_image(folder / "parsing" / f"{i}.png")
        labels, _ = bgr_to_labels(seg)
        gt = read_image(folder / "gt_imgs" / f"{i}.jpg").astype(np.int16)
        torso = read_image(folder / "torso_imgs" / f"{i}.png", cv2.IMREAD_UNCHANGED)
        assert torso.shape == (*labels.shape, 4)
        person = labels != BACKGROUND
        assert np.abs(gt[person] - frame[person]).mean() < 4
        # the frame beside the person fades into the plate over the band; beyond it, the plate
        band = margin_for(*labels.shape)
        distance = cv2.distanceTransform((~person).astype(np.uint8), cv2.DIST_L2, 5)
        far, beside = distance > band + 2.5, ~person & (distance < 1.5)
        assert np.abs(gt[far] - plate[far]).mean() < 4
        if beside.any():
            assert np.abs(gt[beside] - frame[beside]).mean() < 4
        alpha = torso[..., 3]
        assert np.isin(alpha, (0, 255)).all()
        body = (labels == NECK) | (labels == TORSO)
        assert (alpha[body] == 255).all()
        no_head = ~(labels == HEAD).any(axis=0)
        assert (alpha[:, no_head][(labels == BACKGROUND)[:, no_head]] == 0).all()
        assert (torso[alpha == 0][:, :3] == 0).all()
        extended_frames += int(((alpha == 255) & (labels == HEAD)).any())
        # the file is exactly the reference algorithm applied to this frame's inputs
        _, ref_torso = reference_torso_and_gt(frame, seg, plate)
        assert (ref_torso[..., 3] == alpha).all()
        assert np.abs(ref_torso.astype(np.int16) - torso).max() == 0
    assert extended_frames >= 0.8 * len(checked), "the neck is rarely carried under the head"


@pytest.mark.slow
def test_check_catches_bad_torso_images(processed, tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    shutil.copytree(processed("hdtf", tasks="3,4,5,6,7"), folder)
    torso = read_image(folder / "torso_imgs" / "0.png", cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(folder / "torso_imgs" / "0.png"), torso[..., :3])
    bad = [r for r in check_folder(folder) if not r.ok]
    assert bad and "RGBA" in bad[0].problem
    cv2.imwrite(str(folder / "bc.jpg"), np.zeros((10, 10, 3), np.uint8))
    bad = [r.problem for r in check_folder(folder) if not r.ok]
    assert any("bc.jpg is 10x10" in p for p in bad)
