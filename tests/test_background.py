"""Task 6: the background plate, on a synthetic scene with known ground truth and on real clips."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt
from task_context import task_context

from talkprep.geometry.masks import (
    BACKGROUND,
    HEAD,
    TORSO,
    BackgroundPlate,
    labels_to_bgr,
)
from talkprep.geometry.views import resample_into_view, step_motion, warp_into_view, working_view
from talkprep.io.images import read_image, write_jpeg, write_png
from talkprep.manifest import manifest_path
from talkprep.semantics import SemanticClass
from talkprep.tasks.background import BackgroundTask, margin_for, place_frame, sample_indices

CLIP_NAMES = ("anchor", "hdtf", "obama", "selfie", "headturn")
LABEL_TO_CLASS = np.array(
    [SemanticClass.BACKGROUND, SemanticClass.FACE_SKIN, SemanticClass.NECK, SemanticClass.TORSO],
    np.uint8,
)
"""The synthetic figure's labels as semantic classes (head as face skin)."""
FIGURE_BGR = (20, 210, 30)
"""The moving figure's colour: far from every background colour, so leaks are easy to see."""


def textured_background(size: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful texture with fine detail (what a plate must reproduce)."""
    rng = np.random.default_rng(seed)
    noise = rng.random((size // 8, size // 8, 3)).astype(np.float32)
    smooth = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 6 * (xx + 0.5 * yy))
    image = 40 + 120 * smooth + 60 * stripes[..., None] * np.array([1.0, 0.4, 0.7], np.float32)
    image[..., 1] *= 0.5  # keep green low: the figure is green
    return np.clip(image, 0, 255).astype(np.uint8)


def figure_labels(size: int, centre_x: int) -> np.ndarray:
    """Head ellipse above a wide body that reaches the bottom edge."""
    labels = np.zeros((size, size), np.uint8)
    head = np.zeros((size, size), np.uint8)
    cv2.ellipse(head, (centre_x, size * 3 // 8), (size // 10, size // 7), 0, 0, 360, 1, -1)
    labels[size * 5 // 8 :, max(0, centre_x - size // 4) : centre_x + size // 4] = TORSO
    labels[head > 0] = HEAD
    return labels


def synthetic_dataset(
    folder: Path, n_frames: int, size: int, pan: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a figure sliding across a textured background, with exact parsing maps; with
    `pan`, the camera pans that many pixels a frame (the background slides the other way).

    Returns the true background (of frame 0's view) and bool [N, H, W] figure masks.
    """
    scenery = textured_background(size + pan * n_frames)
    background = scenery[:size, :size]
    masks = []
    for i in range(n_frames):
        centre = int(round(size * (0.3 + 0.4 * i / max(1, n_frames - 1))))
        labels = figure_labels(size, centre)
        person = labels != BACKGROUND
        frame = scenery[:size, pan * i : pan * i + size].copy()
        frame[person] = FIGURE_BGR
        write_jpeg(folder / "ori_imgs" / f"{i}.jpg", frame)
        write_png(folder / "parsing" / f"{i}.png", labels_to_bgr(labels))
        write_png(folder / "semantics" / f"{i}.png", LABEL_TO_CLASS[labels])
        masks.append(person)
    return background, np.stack(masks)


def run_background(folder: Path, n_frames: int) -> dict:
    return BackgroundTask().run(task_context(folder, n_frames, "6")).figures


def test_plate_weighs_frames_by_how_clear_they_show_a_pixel() -> None:
    """A pixel takes the mean of the frames that show it beyond the margin, each counting in full
    from CLEAR_MARGINS margins out and less closer in: a piece of the person the segmenter missed
    in one frame (which makes its pixels look clear) is diluted, not picked."""
    plate = BackgroundPlate(20, 20, margin=2.0)
    left = np.zeros((20, 20), bool)
    left[:, :8] = True
    plate.add(np.full((20, 20, 3), 10, np.uint8), left)  # person on the left
    plate.add(np.full((20, 20, 3), 200, np.uint8), ~left)  # person on the right
    image = plate.plate()
    assert image[10, 18].tolist() == [10, 10, 10]  # right side: clear only in frame 0
    assert image[10, 1].tolist() == [200, 200, 200]
    both = BackgroundPlate(20, 20, margin=2.0)
    sleeve = np.full((20, 20, 3), 90, np.uint8)
    sleeve[:, 13:16] = 250  # a sleeve the segmenter missed, beside a person at columns < 11
    both.add(sleeve, np.arange(20)[None, :].repeat(20, axis=0) < 11)
    for _ in range(3):
        both.add(np.full((20, 20, 3), 90, np.uint8), left)
    # column 14: 4 px from the first frame's person (weight 0.5), 7 px from the others' (1 each)
    assert abs(both.plate()[10, 14, 0] - (0.5 * 250 + 3 * 90) / 3.5) <= 1
    empty = BackgroundPlate(4, 4, margin=2.0)
    empty.add(np.full((4, 4, 3), 7, np.uint8), np.zeros((4, 4), bool))
    assert (empty.plate() == 7).all()


def test_gap_fillers_are_averaged_by_how_clear_they_show_a_pixel() -> None:
    """Behind the reference's person, frames that disagree with its view are averaged (no seams
    between their pieces); a pixel a frame shows just beyond the margin (where a missed piece of
    the person hugs the outline) counts little; a frame that agrees with the view beats both."""
    columns = np.arange(40)[None, :].repeat(40, axis=0)
    plate = BackgroundPlate(40, 40, margin=2.0)
    plate.add(np.full((40, 40, 3), 30, np.uint8), (columns >= 10) & (columns < 30))
    near = np.full((40, 40, 3), 100, np.uint8)
    near[:, 14:20] = 250  # the person's sleeve, which the segmenter missed
    plate.add(near, columns >= 20, gaps_only=True)
    plate.add(np.full((40, 40, 3), 60, np.uint8), columns >= 30, gaps_only=True)
    image = plate.plate()
    assert image[5, 12].tolist() == [80] * 3  # 8 and 18 px clear: both count in full
    assert image[5, 17].tolist() == [98] * 3  # 3 px clear in one (a quarter), 13 in the other
    assert image[5, 2].tolist() == [30] * 3  # the reference's own view
    plate.add(np.full((40, 40, 3), 200, np.uint8), columns >= 36)
    assert plate.plate()[5, 17].tolist() == [200] * 3


def test_fill_is_smooth_and_warns_only_where_training_sees_it() -> None:
    size = 120
    plate = BackgroundPlate(size, size, margin=3.0)
    scene = np.zeros((size, size, 3), np.uint8)
    scene[..., 2] = np.linspace(0, 250, size, dtype=np.float32).astype(np.uint8)[None, :]
    person = np.zeros((size, size), bool)
    person[20:100, 30:90] = True  # a static figure: never seen behind it
    plate.add(scene, person)
    filled = plate.plate()
    hidden = person.copy()
    # a smooth fill: within the colours around it, no streaks (rows alike), no seams (each row
    # changes gradually)
    assert filled[hidden][:, 2].min() >= scene[..., 2][~hidden].min() - 2
    rows = filled[25:95, 35:85, 2].astype(np.int16)
    assert np.abs(np.diff(rows, axis=1)).max() <= 6
    assert np.abs(rows - rows.mean(axis=0)).max() <= 20
    # behind the figure training never sees the plate (gt shows the person there)
    assert not plate.filled_in_view().any()
    # a hole in the figure, narrower than the margin but far from anything seen, is seen by
    # training and guessed: that counts
    holed = person.copy()
    holed[58:62, 58:62] = False
    plate = BackgroundPlate(size, size, margin=3.0)
    plate.add(scene, holed)
    assert plate.filled_in_view()[58:62, 58:62].all()
    assert plate.filled_in_view().sum() == 16


def test_synthetic_plate_matches_true_background(tmp_path: Path) -> None:
    size, n_frames = 160, 40
    truth, masks = synthetic_dataset(tmp_path, n_frames, size)
    figures = run_background(tmp_path, n_frames)
    plate = read_image(tmp_path / "bc.jpg").astype(np.int32)
    margin = margin_for(size, size)
    sampled = masks[sample_indices(n_frames)]
    farthest = np.max([distance_transform_edt(~m) for m in sampled], axis=0)
    visible = farthest > margin
    error = np.abs(plate - truth.astype(np.int32)).mean(axis=-1)
    assert error[visible].mean() < 3.0, f"mean error {error[visible].mean():.2f} where visible"
    assert np.percentile(error[visible], 99) < 12
    # the figure never leaks into the plate where the background was visible
    leak = np.abs(plate - np.array(FIGURE_BGR)).max(axis=-1) < 40
    assert not (leak & visible).any()
    # never-seen pixels are filled from around them, not left black or figure-coloured
    never = ~visible
    assert never.sum() > 100, "the synthetic scene should leave a never-seen area"
    assert abs(figures["background_pixels_never_seen"] - int(never.sum())) <= 0.05 * never.sum()
    assert plate[never].min() > 20 and not leak[never].any()
    assert figures["frames_only_filling_gaps"] == 0


def test_a_panning_camera_gives_one_view_not_a_patchwork(tmp_path: Path) -> None:
    """Pieces of frames far apart in a pan would sit side by side in the plate, each shifted;
    the mean of them, soft. Each frame is followed back to the middle frame's view instead: the
    plate is that view, behind its figure too, where other frames showed the scene."""
    size, n_frames, pan = 160, 40, 3
    synthetic_dataset(tmp_path, n_frames, size, pan)
    figures = run_background(tmp_path, n_frames)
    plate = read_image(tmp_path / "bc.jpg").astype(np.float64)
    samples = sample_indices(n_frames)
    middle = samples[len(samples) // 2]
    scenery = textured_background(size + pan * n_frames)
    view = scenery[:size, pan * middle : pan * middle + size].astype(np.float64)
    person = read_image(tmp_path / "semantics" / f"{middle}.png", cv2.IMREAD_UNCHANGED) > 0
    margin = margin_for(size, size)
    clear = distance_transform_edt(~person) > margin
    behind = ~clear & (np.arange(size) < size - pan * (n_frames - middle))[None, :]
    error = np.abs(plate - view).mean(axis=-1)
    assert error[clear].mean() < 3.0, f"mean error {error[clear].mean():.2f} against the view"
    # without following the camera, the frames' mean there is off by about 23 levels
    assert np.median(error[behind]) < 6.0, f"median error {np.median(error[behind]):.1f} behind"
    assert figures["frames_registered"] >= len(samples) - 6
    assert figures["frames_only_filling_gaps"] == 0


def test_a_frame_the_camera_cannot_explain_only_fills_gaps() -> None:
    """A frame whose background differs from the reference's in a way no camera step explains
    (the light changed) only fills gaps, as it is."""
    size = 96
    scene = textured_background(size)
    person = np.zeros((size, size), bool)
    person[30:96, 30:60] = True
    distance = distance_transform_edt(~person).astype(np.float32)
    darker = (scene * 0.7).astype(np.uint8)
    placement = place_frame(darker, distance, 3.0, lambda: np.eye(3), scene, distance > 3.0)
    assert placement.gaps_only and not placement.warped
    same = place_frame(scene, distance, 3.0, lambda: pytest.fail("fitted"), scene, distance > 3)
    assert not same.gaps_only and not same.warped


def test_a_camera_step_is_recovered_and_a_person_does_not_sway_it() -> None:
    """Between neighbouring frames the camera zooms in 2% and pans; the person moves on her own
    (the step is fitted on the background only)."""
    size = 200
    scene = textured_background(size + 40, seed=3)
    step = np.array([[1.02, 0.0, -4.0], [0.0, 1.02, 3.0], [0.0, 0.0, 1.0]])
    previous = scene[20 : 20 + size, 20 : 20 + size].copy()
    current = cv2.warpPerspective(previous, step, (size, size), borderMode=cv2.BORDER_REFLECT)
    person_before = np.zeros((size, size), bool)
    person_before[60:200, 70:130] = True
    person_after = np.roll(person_before, 25, axis=1)
    previous[person_before] = FIGURE_BGR
    current[person_after] = FIGURE_BGR
    found = step_motion(
        working_view(previous, ~person_before), working_view(current, ~person_after), 1.0
    )
    assert found is not None
    corners = np.array([[10.0, 10.0, 1.0], [190.0, 10.0, 1.0], [100.0, 190.0, 1.0]]).T
    moved = found @ corners
    truth = step @ corners
    assert np.abs(moved[:2] / moved[2] - truth[:2] / truth[2]).max() < 0.5
    # the frame's own pixels, resampled into the previous view, match it again
    back = warp_into_view(current, found)
    inner = ~(person_before | np.roll(person_before, 25, axis=1))
    inner[:10], inner[-10:], inner[:, :10], inner[:, -10:] = False, False, False, False
    assert np.abs(back.astype(int) - previous.astype(int))[inner].mean() < 4.0


def test_a_flat_sky_gives_no_camera_step() -> None:
    """Nothing to fit: the chain keeps the previous frame's matrix instead of a wild one."""
    sky = np.full((120, 120, 3), 200, np.uint8)
    clear = np.ones((120, 120), bool)
    assert step_motion(working_view(sky, clear), working_view(sky, clear), 1.0) is None


def test_background_memory_is_flat_in_frame_count(tmp_path: Path) -> None:
    size = 256
    peaks = {}
    for n_frames in (40, 200):
        folder = tmp_path / str(n_frames)
        synthetic_dataset(folder, n_frames, size)
        tracemalloc.start()
        run_background(folder, n_frames)
        peaks[n_frames] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    frame_bytes = size * size * 3
    # 5x the frames (20 -> 100 sampled): the peak may grow by the read-ahead's jitter only,
    # far less than the 80 extra frames holding them would take
    assert peaks[200] - peaks[40] < 10 * frame_bytes, peaks


@pytest.mark.slow
@pytest.mark.parametrize("clip", CLIP_NAMES)
def test_background_on_real_clip(processed, clip: str) -> None:
    folder = processed(clip, tasks="3,4,5,6,7")
    plate = read_image(folder / "bc.jpg").astype(np.int16)
    first = read_image(folder / "ori_imgs" / "0.jpg")
    assert plate.shape == first.shape
    n = json.loads(manifest_path(folder).read_text())["tasks"]["frames"]["info"]["n_frames"]
    step = max(1, n // 60)
    frames, persons = [], []
    for i in range(0, n, step):
        frames.append(read_image(folder / "ori_imgs" / f"{i}.jpg"))
        persons.append((read_image(folder / "parsing" / f"{i}.png") != 255).any(axis=-1))
    frames_arr = np.stack(frames).astype(np.int16)
    ever_person = np.any(persons, axis=0)
    # where the person never stood (with a halo for mask edges), the plate is the scene itself
    away = distance_transform_edt(~ever_person) > 8
    assert away.mean() > 0.05
    median = np.median(frames_arr, axis=0)
    error = np.abs(plate - median).mean(axis=-1)
    assert error[away].mean() < 6.0, f"plate differs from the scene: {error[away].mean():.2f}"
    # no holes: pixels never seen far enough from the person are filled from the seen pixels
    # around them, so their colours stay within the range of that surrounding ring
    farthest = np.zeros(plate.shape[:2], np.float32)
    for i in sample_indices(n):
        free = (read_image(folder / "parsing" / f"{i}.png") == 255).all(axis=-1)
        dist = cv2.distanceTransform(free.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        np.maximum(farthest, dist, out=farthest)
    unseen = farthest <= margin_for(*plate.shape[:2])
    if unseen.any():
        labels_count, components = cv2.connectedComponents(unseen.astype(np.uint8))
        for k in range(1, labels_count):
            hole = components == k
            grown = cv2.dilate(hole.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0
            ring = grown & ~unseen
            if ring.sum() < 20:
                continue
            low, high = plate[ring].min(axis=0), plate[ring].max(axis=0)
            assert (plate[hole] >= low - 12).all() and (plate[hole] <= high + 12).all()
    figures = json.loads(manifest_path(folder).read_text())["tasks"]["background"]["figures"]
    assert 0 <= figures["background_never_seen_fraction"] < 0.9


def test_a_resampled_frame_fades_out_at_its_own_edges() -> None:
    """Where a view ends inside the plate, its weight falls to nothing at its edge (like the
    person's outline): a hard edge would leave a seam wherever the views disagree in colour."""
    frame = textured_background(64)
    distance = np.full((64, 64), 100.0, np.float32)
    shift_right = np.array([[1.0, 0.0, -10.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    image, resampled = resample_into_view(frame, distance, shift_right)
    assert (resampled[:, :10] == 0).all()  # beyond the frame's left edge
    assert np.allclose(resampled[32, 10:16], np.arange(6))  # rising from its edge
    assert np.array_equal(image[:, 10:], frame[:, :-10])
