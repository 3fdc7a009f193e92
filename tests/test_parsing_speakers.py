"""Parsing on real speakers (issue: hair ends, hands, earrings, the seam under the chin): the
column runs that keep hanging hair and the neck in one piece, hands as their own class, whole
earrings, the per-frame defect figures, and the same on the shared long-hair clips."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from talkprep.geometry.appearance import CLOTHES, N_BINS, fit_colour_models, fit_texture_models
from talkprep.geometry.masks import (
    EAR_POINTS,
    HAIR_TEXTURE,
    JAW_ANGLE_POINTS,
    FaceLayout,
    appearance_samples,
    bridge_neck,
    classes_to_labels,
    face_under_hands,
    full_resolution,
    gt_and_torso,
    hair_fringe,
    hand_regions,
    hands_at_the_edge,
    label_hands,
    seam_slivers,
    skin_by_colour,
    skin_off_head,
    sort_hands,
    split_person,
    texture_map,
    top_runs,
    unsure_objects,
)
from talkprep.geometry.parsing_defects import DEFECT_FRAME_LIMITS, frame_defects, hair_like_torso
from talkprep.io.images import frame_indices, read_image
from talkprep.manifest import manifest_path
from talkprep.semantics import NOT_PLATE_CLASSES, SemanticClass, class_mask
from talkprep.tasks.background import load_pair

C = SemanticClass


def face_points(centre: tuple[float, float], width: float, height: float) -> np.ndarray:
    """[478, 2] points on an ellipse (the face's outline and inside), chin point 152 at the
    bottom and the ear points at the sides, as the mesh has them."""
    angles = np.linspace(0, 2 * np.pi, 478, endpoint=False)
    radius = np.sqrt(np.linspace(0.05, 1.0, 478))
    points = np.stack(
        [
            centre[0] + radius * width / 2 * np.cos(angles),
            centre[1] + radius * height / 2 * np.sin(angles),
        ],
        axis=1,
    )
    points[152] = (centre[0], centre[1] + height / 2)
    points[EAR_POINTS[0]] = (centre[0] - width / 2, centre[1])
    points[EAR_POINTS[1]] = (centre[0] + width / 2, centre[1])
    for side, point in zip((-1, 1), JAW_ANGLE_POINTS, strict=True):
        points[point] = (centre[0] + side * 0.36 * width, centre[1] + 0.3 * height)
    return points


# ---- column runs -------------------------------------------------------------------------------


def test_top_runs_take_one_run_from_the_start_row() -> None:
    score = np.array([[1.0], [1.0], [-0.5], [1.0], [-3.0], [-3.0], [2.5], [-1.0]])
    candidate = np.ones_like(score, bool)
    run = top_runs(candidate, score, np.array([0]), smooth=1)[:, 0]
    # the dip at row 2 is bridged (the run gains after it); the 2.5 below the long dip is not
    assert run.tolist() == [True, True, True, True, False, False, False, False]
    assert not top_runs(candidate, -np.abs(score), np.array([0]), smooth=1).any()
    # a run hangs from its start: pixels past a losing stretch right below it never join
    assert not top_runs(candidate, score, np.array([4]), smooth=1).any()
    assert np.flatnonzero(top_runs(candidate, score, np.array([6]), smooth=1)).tolist() == [6]


def test_top_runs_smooth_the_end_across_columns() -> None:
    score = np.where(np.arange(20)[:, None] < 10, 1.0, -1.0) * np.ones((20, 9))
    score[10:16, 4] = 1.0  # one column disagrees by chance
    candidate = np.ones_like(score, bool)
    run = top_runs(candidate, score, np.zeros(9, np.int32), smooth=5)
    assert (run.sum(axis=0) == 10).all()


def noisy_curtain_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, FaceLayout, np.ndarray]:
    """A 256 px portrait whose hair hangs in two curtains over the clothes to the chest, with a
    quarter of the curtain's pixels below the jaw looking like clothes (dark hair over a dark
    jacket) and scattered hair-like pixels in the clothes: person, posteriors, layout, true hair
    below the mouth."""
    rng = np.random.default_rng(seed)
    size = 256
    layout = FaceLayout.from_points(face_points((128, 90), 70, 90))
    yy, xx = np.mgrid[0:size, 0:size]
    person = ((xx - 128) / 60) ** 2 + ((yy - 80) / 70) ** 2 < 1.0
    person |= (yy > 110) & (np.abs(xx - 128) < 110)
    curtain = (np.abs(np.abs(xx - 128) - 55) < 18) & (yy > 30) & (yy < 215)
    neck = (np.abs(xx - 128) < 22) & (yy > 130) & (yy < 175)
    skin = np.where(neck | (((xx - 128) / 35) ** 2 + ((yy - 90) / 45) ** 2 < 1), 0.9, 0.05)
    hair = np.where(curtain | (yy < 50), 0.9, 0.05)
    flip = (rng.random((size, size)) < 0.25) & (yy > 120)  # below the jaw, where hair hangs
    hair = np.where(curtain & flip, 0.2, hair)
    hair = np.where(~curtain & (yy > 150) & (rng.random((size, size)) < 0.15), 0.8, hair)
    clothes = np.clip(1.0 - skin - hair, 0.02, None)
    posteriors = np.stack([skin, hair, clothes]).astype(np.float32)
    posteriors /= posteriors.sum(axis=0, keepdims=True)
    below_mouth = yy > layout.centre[1] + 0.25 * layout.height
    return person, posteriors, layout, curtain & person & below_mouth & ~neck


def test_hanging_hair_is_one_piece_over_the_clothes() -> None:
    person, posteriors, layout, true_hair = noisy_curtain_scene()
    classes = split_person(person, posteriors, layout)
    hair = classes == C.HAIR
    recall = np.count_nonzero(hair & true_hair) / np.count_nonzero(true_hair)
    assert recall > 0.95, f"only {recall:.2f} of the hanging hair is hair"
    clothes = person & ~true_hair & (np.mgrid[0:256, 0:256][0] > 200)
    assert np.count_nonzero(hair & clothes) < 0.02 * np.count_nonzero(clothes)
    torso = (classes == C.TORSO).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(torso)
    assert np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] < 30) == 0, "torso flakes in the hair"


def test_shadow_under_the_chin_is_neck() -> None:
    person, posteriors, layout, _ = noisy_curtain_scene()
    shadow = np.zeros(person.shape, bool)
    chin = layout.points[152]
    shadow[int(chin[1]) + 1 : int(chin[1]) + 12, int(chin[0]) - 12 : int(chin[0]) + 12] = True
    posteriors[:, shadow] = np.array([0.2, 0.75, 0.05], np.float32)[:, None]  # dark: hair-like
    classes = split_person(person, posteriors, layout)
    assert np.count_nonzero(classes[shadow] == C.HAIR) == 0
    assert np.mean(classes[shadow] == C.NECK) > 0.95


def test_a_pale_fringe_down_the_hair_to_the_shoulder_is_hair() -> None:
    # hair lit from behind: a strip down the right curtain's outer side, from beside the face to
    # the shoulder, whose colour is the clothes'
    person, posteriors, layout, _ = noisy_curtain_scene()
    yy, xx = np.mgrid[0:256, 0:256]
    curtain = (xx > 165) & (xx <= 200) & (yy >= 80) & (yy <= 130)
    fringe = (xx > 200) & (xx <= 206) & (yy >= 80) & (yy <= 130)
    person = (person & ~((xx > 200) & (yy <= 130))) | curtain | fringe
    posteriors[:, curtain] = np.array([0.05, 0.9, 0.05], np.float32)[:, None]
    posteriors[:, fringe] = np.array([0.05, 0.15, 0.8], np.float32)[:, None]
    classes = split_person(person, posteriors, layout)
    assert np.mean(classes[fringe] == C.HAIR) > 0.95
    shoulders = person & (yy > 135) & (np.abs(xx - 128) > 80)
    assert np.mean(classes[shoulders] == C.TORSO) > 0.95


def test_the_dark_rim_along_a_shoulder_top_is_torso_not_hair() -> None:
    # short hair; the mixed pixels along the top of a dark jacket's shoulders look like hair and
    # join the sideburn at the jaw
    layout = FaceLayout.from_points(face_points((128, 90), 70, 90))
    yy, xx = np.mgrid[0:256, 0:256]
    head = ((xx - 128) / 45) ** 2 + ((yy - 85) / 60) ** 2 < 1.0
    person = head | (yy > 140 - 0.6 * np.maximum(0, 90 - np.abs(xx - 128)))  # sloping shoulders
    top = np.argmax(person, axis=0)
    rim = person & (yy < top[None, :] + 2) & (np.abs(xx - 128) > 40) & (yy > 120)
    skin = np.where(((xx - 128) / 35) ** 2 + ((yy - 90) / 45) ** 2 < 1, 0.9, 0.05)
    hair = np.where((yy < 60) | rim | ((np.abs(xx - 128) > 33) & (yy < 125)), 0.9, 0.05)
    clothes = np.clip(1.0 - skin - hair, 0.02, None)
    posteriors = np.stack([skin, hair, clothes]).astype(np.float32)
    posteriors /= posteriors.sum(axis=0, keepdims=True)
    classes = split_person(person, posteriors, layout)
    assert rim.sum() > 100
    assert np.mean(classes[rim] == C.TORSO) > 0.95


def test_a_sliver_between_hair_and_neck_is_hair_and_a_collar_there_is_not() -> None:
    classes = np.full((60, 40), C.BACKGROUND, np.uint8)
    classes[:, :10] = C.HAIR
    classes[:, 13:30] = C.NECK
    classes[:30, 10:13] = C.TORSO  # a 3 px seam
    classes[30:, 10:13] = C.HAIR
    classes[40:, 10:20] = C.TORSO  # a collar, 10 px between hair and neck
    classes[:, 30:] = C.TORSO  # the clothes beside the neck, against the background
    sliver = seam_slivers(classes, 4.0)
    assert sliver[:30, 10:13].all()
    assert not sliver[40:].any()
    assert not sliver[:, 30:].any()


def test_an_unsure_piece_beside_the_shoulder_not_coloured_like_the_clothes_is_an_object() -> None:
    """A toy on a chair behind the shoulder that the segmenter half joins to the person: unsure
    (0.55 where the body reads 1.0) and not clothes-coloured, it is OTHER; the same piece sure,
    clothes-coloured, at the frame's edge or far below the face stays torso, and so does the
    unsure rim of the outline."""
    layout = FaceLayout.from_points(face_points((128, 80), 60, 70))
    classes = np.full((256, 256), C.BACKGROUND, np.uint8)
    classes[150:, 50:206] = C.TORSO  # the body, leaving the frame at the bottom
    person = np.where(classes == C.TORSO, 1.0, 0.0).astype(np.float32)
    clothes = np.where(classes == C.TORSO, 0.95, 0.0).astype(np.float32)
    person[150:, 50:52] = 0.6  # the outline's soft rim
    piece = np.zeros_like(classes, bool)
    piece[125:160, 206:230] = True  # beside the shoulder, joined to it

    def objects(prob: float, colour: float, where: np.ndarray = piece) -> np.ndarray:
        cls = classes.copy()
        cls[where] = C.TORSO
        return unsure_objects(
            cls, np.where(where, prob, person), np.where(where, colour, clothes), layout
        )

    found = objects(0.55, 0.3)
    assert found[piece].all() and np.count_nonzero(found) == np.count_nonzero(piece)
    assert not objects(0.95, 0.3).any()  # the segmenter is sure
    assert not objects(0.55, 0.9).any()  # coloured like the clothes: a sleeve
    at_edge = np.zeros_like(piece)
    at_edge[125:160, 206:256] = True
    assert not objects(0.55, 0.3, at_edge).any()  # cut by the frame's edge
    low = np.zeros_like(piece)
    low[200:235, 206:230] = True  # more than 1.5 face heights below the face's centre
    assert not objects(0.55, 0.3, low).any()


def test_fingers_entering_at_the_bottom_edge_are_a_hand_and_bare_skin_is_not() -> None:
    """Fingertips poking in at the bottom edge (the detector needs the palm and misses them) are
    skin-coloured torso touching the edge and nothing but the torso: a hand, joined across the
    knit seen between the fingers. A bare arm meets the background, a bare chest the neck, and
    a few stray pixels are too small: all stay torso."""
    layout = FaceLayout.from_points(face_points((128, 80), 60, 70))
    classes = np.full((256, 256), C.BACKGROUND, np.uint8)
    classes[150:, 40:216] = C.TORSO
    classes[130:150, 110:146] = C.NECK
    skin = np.zeros((256, 256), np.float32)
    fingers = np.zeros((256, 256), bool)
    for left in (100, 106, 112):  # three fingertips, each too small alone, 3 px of knit apart
        fingers[250:, left : left + 3] = True
    skin[fingers] = 0.9
    arm = np.zeros_like(fingers)
    arm[180:, 40:52] = True  # along the body's outer side, against the background
    chest = np.zeros_like(fingers)
    chest[150:200, 115:141] = True  # below the neck, down to ...
    chest[200:, 135:141] = True  # ... the bottom edge
    stray = np.zeros_like(fingers)
    stray[252:, 180:183] = True
    skin[arm | chest | stray] = 0.9
    found = hands_at_the_edge(classes, skin, layout)
    assert found[fingers].all()
    assert found[250:, 103:106].all()  # the knit between two fingers
    assert not found[arm | chest | stray].any()
    assert not found[:248].any()
    assert (classes[found] == C.TORSO).all()


def test_a_glimpse_of_clothes_between_two_locks_is_hair_and_a_wide_gap_is_not() -> None:
    classes = np.full((60, 60), C.TORSO, np.uint8)
    classes[:20] = C.BACKGROUND
    classes[:50, 5:15] = C.HAIR
    classes[:50, 18:28] = C.HAIR  # 3 px of clothes between two locks
    classes[:50, 40:50] = C.HAIR  # 12 px between this lock and the last
    sliver = seam_slivers(classes, 4.0)
    assert sliver[20:50, 15:18].all()
    assert not sliver[:, 28:40].any()
    assert not sliver[50:].any() and not sliver[:, :5].any()


def test_the_sloping_top_of_a_shoulder_beside_the_hair_stays_torso() -> None:
    layout = FaceLayout.from_points(face_points((128, 90), 100, 90))  # fringes under 20 px
    yy, xx = np.mgrid[0:256, 0:256]
    classes = np.full((256, 256), C.BACKGROUND, np.uint8)
    classes[(np.abs(xx - 128) < 75) & (yy < 200)] = C.HAIR
    # the right shoulder widens 1.5 px a row from the hair's edge; the left one 0.3 px a row (a
    # fringe: same width limit, but it follows the hair down)
    right = (xx >= 203) & (xx < 203 + 1.5 * (yy - 120)) & (yy > 120)
    left = (xx < 54) & (xx >= 54 - (0.3 * (yy - 100)).astype(int)) & (yy > 100) & (yy <= 140)
    classes[right | left] = C.TORSO
    classes[(yy > 140) & (classes == C.BACKGROUND)] = C.TORSO  # the shoulders, wide
    fringe = hair_fringe(classes, layout)
    assert not fringe[right].any()
    assert fringe[left].all()
    assert not fringe[yy > 140].any()


def test_a_wide_torso_run_beside_the_hair_above_the_face_centre_is_not_fringe() -> None:
    layout = FaceLayout.from_points(face_points((128, 90), 100, 90))  # fringes under 20 px
    yy, xx = np.mgrid[0:256, 0:256]
    classes = np.full((256, 256), C.BACKGROUND, np.uint8)
    classes[(np.abs(xx - 128) < 75) & (yy < 200)] = C.HAIR
    wide = (xx >= 203) & (xx < 228) & (yy > 40) & (yy < 85)  # 25 px, steady, above the centre
    classes[wide] = C.TORSO
    classes[(yy > 140) & (classes == C.BACKGROUND)] = C.TORSO
    assert not hair_fringe(classes, layout)[wide].any()


def test_a_strand_beside_the_neck_is_hair_and_a_dark_collar_below_it_is_not() -> None:
    """Hair that hangs into the band about the chin, beside the neck, joins the hair; hair-dark
    clothes below the neck in that band stay off the hair."""
    size = 256
    layout = FaceLayout.from_points(face_points((128, 90), 70, 90))
    yy, xx = np.mgrid[0:size, 0:size]
    person = ((xx - 128) / 60) ** 2 + ((yy - 80) / 70) ** 2 < 1.0
    person |= (yy > 110) & (np.abs(xx - 128) < 110)
    neck = (np.abs(xx - 128) < 8) & (yy > 130) & (yy < 175)
    strand = (xx >= 116) & (xx < 120) & (yy > 130) & (yy < 175)  # inside NECK_CORE of the chin
    curtain = (xx >= 60) & (xx < 120) & (yy > 30) & (yy < 200)
    collar = (np.abs(xx - 128) < 14) & (yy >= 205) & (yy < 215)
    face = ((xx - 128) / 35) ** 2 + ((yy - 90) / 45) ** 2 < 1
    skin = np.where(neck | face, 0.9, 0.05)
    hair = np.where((curtain & ~face & ~neck) | (yy < 50) | collar, 0.9, 0.05)
    clothes = np.clip(1.0 - skin - hair, 0.02, None)
    posteriors = np.stack([skin, hair, clothes]).astype(np.float32)
    posteriors /= posteriors.sum(axis=0, keepdims=True)
    classes = split_person(person, posteriors, layout)
    assert np.mean(classes[strand] == C.HAIR) > 0.9, "the strand beside the neck is not hair"
    assert np.count_nonzero(classes[collar] == C.HAIR) == 0


# ---- hands, earrings, models ---------------------------------------------------------------------


def hand_at(x: float, y: float, size: float = 30.0) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, 21, endpoint=False)
    return np.stack([x + size / 2 * np.cos(angles), y + size / 2 * np.sin(angles)], 1).astype(
        np.float32
    )


def test_hair_behind_the_neck_of_a_turned_head_is_hair() -> None:
    """Under a turned head the chin swings out to the side; the hair hanging behind the neck's
    far side, right under the chin, is hair: the neck runs down beneath the jaw, not the chin."""
    size = 256
    points = face_points((128, 90), 70, 90)
    points[152] = (150, 134)  # the chin, swung 22 px to the side
    layout = FaceLayout.from_points(points)
    yy, xx = np.mgrid[0:size, 0:size]
    person = ((xx - 128) / 60) ** 2 + ((yy - 80) / 70) ** 2 < 1.0
    person |= (yy > 110) & (np.abs(xx - 128) < 110)
    face = ((xx - 128) / 35) ** 2 + ((yy - 90) / 45) ** 2 < 1
    neck = (np.abs(xx - 128) < 12) & (yy > 120) & (yy < 180)
    behind = (xx >= 141) & (xx < 175) & (yy > 60) & (yy < 200) & ~face  # hair behind the neck
    skin = np.where(neck | face, 0.9, 0.05)
    hair = np.where(behind | (yy < 50), 0.9, 0.05)
    clothes = np.clip(1.0 - skin - hair, 0.02, None)
    posteriors = np.stack([skin, hair, clothes]).astype(np.float32)
    posteriors /= posteriors.sum(axis=0, keepdims=True)
    classes = split_person(person, posteriors, layout)
    under_chin = behind & (yy > 140) & (xx < 162)  # within NECK_CORE of the chin point
    assert np.mean(classes[under_chin] == C.HAIR) > 0.9, "hair behind the neck is neck"
    assert np.mean(classes[neck & (yy > 140)] == C.NECK) > 0.9


def test_a_collar_against_the_chin_leaves_no_slot_in_the_torso_image() -> None:
    yy, xx = np.mgrid[0:160, 0:100]
    classes = np.full((160, 100), C.BACKGROUND, np.uint8)
    classes[(yy >= 90) & (xx >= 10) & (xx < 90)] = C.TORSO
    classes[((xx - 50) / 30) ** 2 + ((yy - 60) / 35) ** 2 < 1] = C.FACE_SKIN
    chin = (yy >= 90) & (yy < 98) & (np.abs(xx - 50) < 22) & (classes == C.TORSO)
    classes[chin & (np.abs(xx - 50) >= 5)] = C.NECK  # a thin neck, the collar against the chin
    image = np.full((160, 100, 3), 120, np.uint8)
    plate = np.zeros_like(image)
    slot = (slice(70, 85), slice(46, 55))  # under the chin, above the torso's short carry

    def opaque(class_map: np.ndarray) -> float:
        _, torso = gt_and_torso(image, classes_to_labels(class_map), plate)
        return float(np.mean(torso[..., 3][slot] > 0))

    assert opaque(classes) < 0.5  # the slot RAD-NeRF's carry leaves
    bridged = bridge_neck(classes)
    assert opaque(bridged) == 1.0
    assert np.count_nonzero(bridged != classes) <= 10  # one pixel per column of the gap
    alone = classes.copy()
    alone[chin & (xx < 50)] = C.TORSO  # neck on one side only: no gap between necks to bridge
    assert (bridge_neck(alone) == alone).all()


def test_hands_and_what_they_hold_are_hand_not_torso_and_spare_the_face() -> None:
    classes = np.full((200, 200), C.TORSO, np.uint8)
    classes[:60] = C.BACKGROUND
    classes[60:100, 80:120] = C.FACE_SKIN
    hands = [hand_at(60, 160), hand_at(100, 95, 20)]
    tight, reach = hand_regions(hands, 200, 200)
    assert tight.sum() > 500 and (reach & ~tight).any() and (tight <= reach).all()
    out = label_hands(classes, hands)
    assert (out[tight] == C.HAND).all()
    assert (out[reach & (classes == C.TORSO)] == C.HAND).all()  # what the hand holds
    face_near = (classes == C.FACE_SKIN) & reach & ~tight
    assert (out[face_near] == C.FACE_SKIN).all()
    assert C.HAND in NOT_PLATE_CLASSES and C.HAND not in (C.NECK, C.TORSO)
    assert (label_hands(classes, []) == classes).all()


def fair_hair_scene(hair_hangs: bool) -> tuple[np.ndarray, np.ndarray, FaceLayout, np.ndarray]:
    """A portrait whose hair, where it falls beside the neck, has the skin's colour (fair hair
    over a pale neck), with or without hair hanging from the head past the chin beside it:
    person, posteriors, layout, the fair strip."""
    size = 256
    layout = FaceLayout.from_points(face_points((128, 90), 70, 90))
    yy, xx = np.mgrid[0:size, 0:size]
    person = ((xx - 128) / 60) ** 2 + ((yy - 80) / 70) ** 2 < 1.0
    person |= (yy > 110) & (np.abs(xx - 128) < 110)
    face = ((xx - 128) / 35) ** 2 + ((yy - 90) / 45) ** 2 < 1
    neck = (np.abs(xx - 128) < 32) & (yy > 120) & (yy < 190)
    fair = (xx >= 150) & (xx < 162) & (yy > 140) & (yy < 190)  # beside the neck, skin-coloured
    curtain = (xx >= 162) & (xx < 187) & (yy > 30) & (yy < 200) & hair_hangs
    skin = np.where(face | neck | fair, 0.9, 0.05)
    hair = np.where((curtain & ~face) | (yy < 50), 0.9, 0.05)
    clothes = np.clip(1.0 - skin - hair, 0.02, None)
    posteriors = np.stack([skin, hair, clothes]).astype(np.float32)
    posteriors /= posteriors.sum(axis=0, keepdims=True)
    return person, posteriors, layout, fair


def test_fair_hair_beside_the_neck_is_told_from_skin_by_its_strands() -> None:
    person, posteriors, layout, fair = fair_hair_scene(hair_hangs=True)
    strands = np.where(fair, 3.0, 0.3).astype(np.float32)  # detail: strands against smooth skin
    smooth = np.full(fair.shape, 0.3, np.float32)
    with_strands = split_person(person, posteriors, layout, texture=lambda _: strands)
    assert np.mean(with_strands[fair] == C.HAIR) > 0.9
    assert np.count_nonzero(split_person(person, posteriors, layout)[fair] == C.HAIR) == 0
    assert (
        np.count_nonzero(
            split_person(person, posteriors, layout, texture=lambda _: smooth)[fair] == C.HAIR
        )
        == 0
    )
    # short hair: nothing hangs past the chin, so detail (a collar, stubble) changes nothing and
    # is never computed
    person, posteriors, layout, fair = fair_hair_scene(hair_hangs=False)

    def never(_: int) -> np.ndarray:
        raise AssertionError("detail asked for without hanging hair")

    short = split_person(person, posteriors, layout, texture=never)
    assert (short == split_person(person, posteriors, layout)).all()


def test_the_detail_map_sees_strands_and_not_smooth_skin() -> None:
    image = np.full((128, 128, 3), (150, 170, 210), np.uint8)  # a smooth, skin-coloured frame
    image[:, 64:, :] += (np.arange(64) % 4 < 2).astype(np.uint8)[None, :, None] * 40  # strands
    detail = texture_map(image, (64, 64))
    assert detail.shape == (64, 64)
    assert np.median(detail[:, 40:]) > HAIR_TEXTURE > np.median(detail[:, :24]) + 0.5


def test_the_detail_map_of_the_rows_below_the_face_matches_the_whole_map_there() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (300, 200, 3), np.uint8)  # 300 rows onto 64: a ragged scale
    whole = texture_map(image, (48, 64))
    band = texture_map(image, (48, 64), first_row=30)
    assert (band[:30] == 0).all()
    assert np.allclose(band[30:], whole[30:], rtol=0.05, atol=0.5)


def test_the_hand_detector_is_asked_only_where_skin_lies_off_the_head() -> None:
    layout = FaceLayout.from_points(face_points((100, 70), 60, 80))
    yy, xx = np.mgrid[0:200, 0:200]
    person = (((xx - 100) / 50) ** 2 + ((yy - 70) / 60) ** 2 < 1.0) | (yy > 120)
    skin_p = np.full((200, 200), 0.1, np.float32)
    skin_p[(((xx - 100) / 30) ** 2 + ((yy - 70) / 40) ** 2 < 1.0)] = 0.9  # the face
    skin_p[(np.abs(xx - 100) < 20) & (yy >= 110) & (yy < 130)] = 0.9  # the neck under the chin
    skin_p[10:40, 60:140] = 0.9  # a bald crown above the face's centre
    assert not skin_off_head(person, skin_p, layout)
    hand = skin_p.copy()
    hand[170:190, 20:40] = 0.9  # 400 px, a twelfth of the face box: a hand low in the frame
    assert skin_off_head(person, hand, layout)
    assert not skin_off_head(np.zeros_like(person), hand, layout)  # not on the person


def test_hands_held_before_the_clothes_stay_out_of_the_clothes_model() -> None:
    rng = np.random.default_rng(0)
    image = np.full((400, 400, 3), (60, 90, 60), np.uint8)  # green behind
    person = np.zeros((400, 400), np.float32)
    person[40:, 60:340] = 1.0
    image[40:, 60:340] = (120, 130, 140)  # grey clothes
    yy, xx = np.mgrid[0:400, 0:400]
    image[((xx - 200) / 60) ** 2 + ((yy - 120) / 80) ** 2 < 1] = (150, 170, 210)  # the face
    image[20:60, 120:280] = (30, 40, 50)  # hair
    image[300:380, 160:240] = (140, 165, 215)  # a hand held in front of the clothes
    image = np.clip(image + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
    layout = FaceLayout.from_points(face_points((200, 120), 120, 160))
    detail = np.zeros((400, 400), np.float32)
    hand = (slice(310, 370), slice(170, 230))

    def skin_of_the_hand(hands: list[np.ndarray]) -> float:
        bins, _, _ = appearance_samples(image, person, layout, detail, hands)
        return float(skin_by_colour(image, fit_colour_models(bins))[hand].mean())

    # the clothes samples below the neck take the hand in: it looks part clothes ...
    assert skin_of_the_hand([]) < 0.5
    # ... unless the hands the detector finds are left out of them
    assert skin_of_the_hand([hand_at(200, 340, 80)]) > 0.95


def test_hands_on_the_head_off_the_person_or_not_skin_coloured_are_not_labelled() -> None:
    layout = FaceLayout.from_points(face_points((100, 70), 60, 80))
    skin_p = np.zeros((200, 200), np.float32)
    skin_p[150:190, 20:60] = 0.9  # a real hand's colour, low in the frame
    skin_p[50:90, 80:120] = 0.9  # the face
    skin_p[10:40, 160:195] = 0.9  # a skin-coloured blur behind the speaker
    person_p = np.zeros((200, 200), np.float32)
    person_p[40:, :150] = 1.0
    hands = np.stack([hand_at(40, 170), hand_at(100, 70), hand_at(160, 170), hand_at(178, 25)])
    labelled, on_head = sort_hands(hands, skin_p, person_p, layout)
    assert len(labelled) == 1 and np.allclose(labelled[0], hands[0])
    assert len(on_head) == 1 and np.allclose(on_head[0], hands[1])
    assert [len(h) for h in sort_hands(hands[:0], skin_p, person_p, layout)] == [0, 0]
    # a hand on the head is not labelled, but a large one counts as covering the face
    face = np.zeros((200, 200), bool)
    face[40:100, 70:130] = True
    assert face_under_hands([hand_at(100, 70, 40)], face) > 0.3
    assert face_under_hands([hand_at(130, 70, 12)], face) == 0.0  # an ear's edge: too little
    assert face_under_hands([], face) == 0.0


def test_an_earring_the_segmenter_half_sees_is_ear_whole() -> None:
    layout = FaceLayout.from_points(face_points((100, 90), 80, 100))
    coarse = np.full((200, 200), C.BACKGROUND, np.uint8)
    coarse[40:140, 60:140] = C.FACE_SKIN
    person = coarse != C.BACKGROUND
    ear_x, ear_y = layout.points[EAR_POINTS[1]]
    faint = np.zeros_like(person)
    hoop = (slice(int(ear_y), int(ear_y) + 30), slice(int(ear_x) + 1, int(ear_x) + 5))
    faint[hoop] = True
    image = np.full((200, 200, 3), 128, np.uint8)
    plain = full_resolution(coarse, person, image, layout, (100.0, 150.0))
    whole = full_resolution(coarse, person, image, layout, (100.0, 150.0), faint)
    assert (plain[hoop] == C.BACKGROUND).all()
    assert (whole[hoop] == C.EARS).all()
    far = np.zeros_like(faint)
    far[190:, :20] = True  # faint person far from the ears stays background ...
    assert (full_resolution(coarse, person, image, layout, (100.0, 150.0), far)[far] == 0).all()
    loose = np.zeros_like(faint)
    loose[int(ear_y) + 10 : int(ear_y) + 30, int(ear_x) + 8 : int(ear_x) + 12] = True
    # ... and so does a piece in the ear zone that hangs from nothing (a raised shoulder)
    detached = full_resolution(coarse, person, image, layout, (100.0, 150.0), loose)
    assert not (detached[loose] == C.EARS).any()


def test_a_class_without_samples_loses_to_the_known_ones() -> None:
    rng = np.random.default_rng(1)
    skin = rng.integers(0, N_BINS, 2000)
    hair = rng.integers(0, N_BINS, 2000)
    models = fit_colour_models([skin, hair, np.zeros(0, np.int64)])
    assert not models.known[CLOTHES]
    assert models.log_likelihood[CLOTHES].max() < np.log(1.0 / N_BINS) - 2.0


def test_the_plate_keeps_away_from_hands(tmp_path) -> None:
    classes = np.zeros((8, 8), np.uint8)
    classes[2, 2] = C.HAND
    classes[5, 5] = C.OTHER
    cv2.imwrite(str(tmp_path / "c.png"), classes)
    cv2.imwrite(str(tmp_path / "f.jpg"), np.zeros((8, 8, 3), np.uint8))
    _, excluded = load_pair((str(tmp_path / "f.jpg"), str(tmp_path / "c.png")))
    assert excluded[2, 2] and not excluded[5, 5]


# ---- defect figures ----------------------------------------------------------------------------


def test_defect_figures_catch_each_defect() -> None:
    points = face_points((100, 80), 60, 80)
    clean = np.zeros((220, 200), np.uint8)
    clean[40:120, 70:130] = C.FACE_SKIN
    clean[120:160, 80:120] = C.NECK
    clean[160:, 20:180] = C.TORSO
    good = frame_defects(clean, points)
    assert good.torso_above_chin == 0 and good.chin_hole == 0
    assert good.other_touching == 0 and good.hand_over_face == 0
    bad = clean.copy()
    bad[60:100, 30:60] = C.TORSO  # hair beside the face labelled torso
    bad[121:133, 92:108] = C.HAIR  # a hole under the chin
    bad[170:200, 40:70] = C.HAND  # a hand against the body
    bad[70:90, 100:115] = C.HAND  # and over the face
    worse = frame_defects(bad, points)
    assert worse.torso_above_chin > DEFECT_FRAME_LIMITS["torso_above_chin"]
    assert worse.chin_hole > DEFECT_FRAME_LIMITS["chin_hole"]
    assert worse.other_touching > DEFECT_FRAME_LIMITS["other_touching"]
    assert worse.hand_over_face > DEFECT_FRAME_LIMITS["hand_over_face"]
    assert frame_defects(clean, None).chin_hole is None
    posteriors = np.zeros((3, 220, 200), np.float32)
    posteriors[1, 160:, 20:60] = 1.0  # hair-coloured parts of the torso ...
    posteriors[1, 200:, 140:180] = 1.0
    hair = clean.copy()
    hair[140:160, 20:60] = C.HAIR  # ... the first right under hanging hair
    assert hair_like_torso(clean, posteriors, 60, 80) == 0.0
    share = hair_like_torso(hair, posteriors, 60, 80)
    assert share == pytest.approx(40 * 9 / (60 * 80))


# ---- the shared long-hair clips ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("crop", ["auto", "none"])
def test_hands_in_front_of_the_body_are_never_opaque_torso(processed, crop: str) -> None:
    folder = processed("longhair_hands", tasks="3,4,5,6,7", crop=crop)
    n = len(frame_indices(folder / "ori_imgs", ".jpg"))
    with_hands = 0
    for i in range(n):
        classes = read_image(folder / "semantics" / f"{i}.png", cv2.IMREAD_UNCHANGED)
        hand = classes == C.HAND
        if not hand.any():
            continue
        with_hands += 1
        torso = read_image(folder / "torso_imgs" / f"{i}.png", cv2.IMREAD_UNCHANGED)
        assert not (torso[..., 3][hand] > 0).any(), f"frame {i}: a hand is opaque in the torso"
    # cropped about the face, the clip's hands come into view at the bottom edge in its last
    # second; uncropped, they are in view in every frame, before a knit top of their colour
    assert with_hands >= (10 if crop == "auto" else 0.9 * n), f"hands found in {with_hands} frames"
    figures = json.loads(manifest_path(folder).read_text())["tasks"]["parsing"]["figures"]
    assert figures["other_touching"]["frames_over"] >= 1


@pytest.mark.slow
def test_hands_stay_found_across_span_edges(processed, tmp_path, monkeypatch) -> None:
    """Task 5's hand tracker starts afresh at each span: cut into five spans, the uncropped
    hands clip still has its hands in every frame, and the class maps move only along the
    hands' outlines (the tracker's landmarks after a restart), never by a hand's area."""
    import shutil

    from task_context import task_context

    from talkprep.tasks import parsing

    whole = processed("longhair_hands", tasks="3,4,5,6,7", crop="none")
    n = len(frame_indices(whole / "ori_imgs", ".jpg"))
    folder = tmp_path / "spans"
    shutil.copytree(whole / "ori_imgs", folder / "ori_imgs")
    shutil.copy(whole / "landmarks.npy", folder / "landmarks.npy")
    monkeypatch.setattr(parsing, "SPAN_FRAMES", n // 5 + 1)
    parsing.ParsingTask().run(task_context(folder, n, "5"))
    with_hands, moved = 0, []
    for i in range(n):
        cut = read_image(folder / "semantics" / f"{i}.png", cv2.IMREAD_UNCHANGED)
        one = read_image(whole / "semantics" / f"{i}.png", cv2.IMREAD_UNCHANGED)
        with_hands += bool((cut == C.HAND).any())
        moved.append(np.count_nonzero(cut != one) / cut.size)
    assert with_hands >= 0.9 * n, f"hands found in {with_hands} of {n} frames"
    assert max(moved) < 0.01, f"frame {int(np.argmax(moved))}: {max(moved):.2%} of it moved"


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["longhair_hoops", "longhair_wide", "hdtf"])
def test_long_hair_is_head_and_the_report_figures_exist(processed, clip: str) -> None:
    folder = processed(clip, tasks="3,4,5,6,7")
    record = json.loads(manifest_path(folder).read_text())["tasks"]["parsing"]
    figures, info = record["figures"], record["info"]
    n = len(frame_indices(folder / "ori_imgs", ".jpg"))
    for key in DEFECT_FRAME_LIMITS:
        assert len(info[key]) == n and set(figures[key]) >= {"median", "p95", "frames_over"}
    # the seam under the chin: never a hole in more than a few frames
    assert figures["chin_hole"]["frames_over"] <= 0.02 * n
    # hair hanging beside the face is never torso above the mouth
    assert figures["torso_above_chin"]["frames_over"] <= 0.02 * n
    landmarks = np.load(folder / "landmarks.npy")
    for i in range(0, n, max(1, n // 8)):
        classes = read_image(folder / "semantics" / f"{i}.png", cv2.IMREAD_UNCHANGED)
        torso = read_image(folder / "torso_imgs" / f"{i}.png", cv2.IMREAD_UNCHANGED)
        assert not (torso[..., 3][classes == C.HAND] > 0).any(), f"frame {i}: an opaque hand"
        points = landmarks[i, :, :2]
        if not np.isfinite(points).all():
            continue
        # an earring or ear is never both ear and torso across a thin seam: the ear class never
        # touches the torso along more than a few pixels
        ears = class_mask(classes, (C.EARS,)).astype(np.uint8)
        torso = class_mask(classes, (C.TORSO,)).astype(np.uint8)
        seam = cv2.dilate(ears, np.ones((3, 3), np.uint8)) & torso
        assert np.count_nonzero(seam) < 0.02 * np.count_nonzero(ears) + 20, f"frame {i}"


def test_report_and_check_grade_parsing_defects(tmp_path) -> None:
    from talkprep.report.html import recorded_defects
    from talkprep.tasks.parsing import ParsingStats, parsing_figures_out_of_range

    n = 50
    stats = ParsingStats()
    series = {key: [0.0] * n for key in DEFECT_FRAME_LIMITS}
    series["hair_in_torso"][10:30] = [0.2] * 20  # hair in the torso in 40% of the frames
    series["chin_hole"][5] = 1.0
    stats.defects = {key: list(values) for key, values in series.items()}
    figures = stats.figures_of_defects()
    assert figures["hair_in_torso"]["frames_over"] == 20
    manifest = {"tasks": {"parsing": {"status": "done", "figures": figures, "info": series}}}
    manifest_path(tmp_path).parent.mkdir(parents=True)
    manifest_path(tmp_path).write_text(json.dumps(manifest))
    out = parsing_figures_out_of_range(tmp_path, n)
    assert len(out) == 2 and "red" in out[0] and "hair" in out[0] and "amber" in out[1]
    ratios, kinds = recorded_defects(manifest, n)
    assert kinds[5] == "chin_hole" and ratios[5] == pytest.approx(1.0 / 0.25)
    assert kinds[10] == "hair_in_torso" and ratios[0] == 0.0
    clean = {key: [0.0] * n for key in DEFECT_FRAME_LIMITS}
    stats.defects = clean
    manifest["tasks"]["parsing"]["figures"] = stats.figures_of_defects()
    manifest_path(tmp_path).write_text(json.dumps(manifest))
    assert parsing_figures_out_of_range(tmp_path, n) == []


def test_a_moving_camera_shows_against_the_plate() -> None:
    from talkprep.geometry.masks import background_mismatch

    rng = np.random.default_rng(3)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (200, 260, 3), np.uint8), (0, 0), 3)
    plate = scene[:, :200].copy()
    person = np.zeros((200, 200), bool)
    person[60:, 70:130] = True
    assert background_mismatch(plate, person, plate, 10.0) == 0.0
    panned = scene[:, 12:212]  # the camera turned by 12 px
    assert background_mismatch(panned, person, plate, 10.0) > 6.0
    assert background_mismatch(plate, np.ones_like(person), plate, 10.0) is None


def test_a_frame_without_a_face_gets_no_borrowed_face(tmp_path, monkeypatch) -> None:
    """A frame where task 4 found no face is person (torso) where the segmenter says so: no face,
    mouth or hair drawn from a neighbour's mesh."""
    from task_context import task_context
    from test_parsing import synthetic_folder

    from talkprep.models import selfie_segmenter
    from talkprep.tasks.parsing import ParsingTask

    scenes = synthetic_folder(tmp_path)
    landmarks = np.load(tmp_path / "landmarks.npy")
    landmarks[2] = np.nan  # no face found in frame 2
    np.save(tmp_path / "landmarks.npy", landmarks)

    def segment(self: object, image: np.ndarray) -> np.ndarray:
        size = image.shape[1], image.shape[0]
        return cv2.resize(scenes[0].person.astype(np.float32), size, interpolation=cv2.INTER_AREA)

    monkeypatch.setattr(selfie_segmenter.SelfieSegmenter, "segment", segment)
    ctx = task_context(tmp_path, len(scenes), "5")
    result = ParsingTask().run(ctx)
    no_face = read_image(tmp_path / "semantics" / "2.png", cv2.IMREAD_UNCHANGED)
    drawn = (C.FACE_SKIN, C.HAIR, C.EARS, C.MOUTH_INTERIOR, C.TEETH, C.NECK)
    assert not class_mask(no_face, drawn).any()
    assert np.count_nonzero(no_face == C.TORSO) > 0.5 * np.count_nonzero(scenes[2].person)
    with_face = read_image(tmp_path / "semantics" / "1.png", cv2.IMREAD_UNCHANGED)
    assert np.count_nonzero(with_face == C.FACE_SKIN) > 1000
    assert result.info["hair_in_torso"][2] is None


def test_the_defect_figures_have_one_set_of_names() -> None:
    from talkprep.geometry.parsing_defects import DEFECT_WORDS, FrameDefects
    from talkprep.report.quality import PARSING_DEFECTS
    from talkprep.semantics import DEFECT_KEYS

    names = set(DEFECT_KEYS)
    assert names == set(DEFECT_FRAME_LIMITS) == set(DEFECT_WORDS)
    assert names == set(PARSING_DEFECTS.values())
    assert names == {*FrameDefects.__dataclass_fields__, "hair_in_torso"}


def test_the_neck_side_in_shadow_is_neck_when_detail_tells_it_from_hair() -> None:
    """Colour calls the shadowed side of the neck hair (dark, like the curtain beside it); its
    smoothness, against the strands of the hair, makes it neck when the video's detail models
    tell hair from skin, and only then."""
    person, posteriors, layout, _ = fair_hair_scene(hair_hangs=True)
    yy, xx = np.mgrid[0 : person.shape[0], 0 : person.shape[1]]
    shadow = (xx >= 146) & (xx < 160) & (yy > 125) & (yy < 185)
    posteriors = posteriors.copy()
    posteriors[:, shadow] = np.float32([0.2, 0.75, 0.05])[:, None]
    curtain = (xx >= 162) & (xx < 187) & (yy > 130) & (yy < 200)
    detail = np.where(curtain | (yy < 50), 3.0, 0.3).astype(np.float32)
    rng = np.random.default_rng(0)
    told = fit_texture_models(
        [np.exp(rng.normal(np.log(m), 0.4, 3000)).astype(np.float32) for m in (0.3, 2.5, 0.2)]
    )
    blurred = fit_texture_models(
        [np.exp(rng.normal(np.log(0.3), 0.4, 3000)).astype(np.float32) for _ in range(3)]
    )
    assert told.informative and not blurred.informative
    with_detail = split_person(
        person, posteriors, layout, texture=lambda _: detail, texture_models=told
    )
    assert np.mean(with_detail[shadow] == C.NECK) > 0.9
    assert np.mean(with_detail[curtain] == C.HAIR) > 0.9  # the strands stay hair
    for models in (None, blurred):
        colour_only = split_person(
            person, posteriors, layout, texture=lambda _: detail, texture_models=models
        )
        assert np.mean(colour_only[shadow] == C.NECK) < 0.5
