"""Task 5: semantic classes and their parsing colours, on synthetic scenes with known classes and
on every shared clip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from synth_face import SyntheticPortrait, synthetic_portrait
from task_context import task_context

from talkprep.check import check_folder
from talkprep.geometry.appearance import fit_colour_models, fit_texture_models
from talkprep.geometry.masks import (
    BACKGROUND,
    BISENET_TO_CLASS,
    CLASS_TO_LABEL,
    HEAD,
    INNER_LIPS,
    LEFT_BROW,
    LEFT_EYE,
    NECK,
    OUTER_LIPS,
    PALETTE_BGR,
    RIGHT_BROW,
    RIGHT_EYE,
    TORSO,
    FaceLayout,
    appearance_samples,
    bgr_to_labels,
    bisenet_classes,
    class_posteriors,
    classes_to_bgr,
    decode_labels,
    full_resolution,
    iou,
    labels_to_bgr,
    skin_hsv,
    split_person,
    texture_map,
)
from talkprep.io.images import frame_indices, read_image, write_jpeg
from talkprep.manifest import manifest_path
from talkprep.semantics import PERSON_CLASSES, SemanticClass, class_mask
from talkprep.tasks.parsing import ParsingTask, nearest_valid, time_windows, weighted_mean

C = SemanticClass
CLIP_NAMES = ("anchor", "hdtf", "obama", "selfie", "headturn")
VIDEO_TASKS = "3,4,5,6,7"
WORK = 256


def smoothed(maps: np.ndarray, radius: int) -> list[np.ndarray]:
    """Task 5's time smoothing: the windows in order, each averaged with its weights."""
    return [weighted_mean(window, weights) for window, weights in time_windows(iter(maps), radius)]


def read_labels(folder: Path, index: int) -> np.ndarray:
    labels, stray = bgr_to_labels(read_image(folder / "parsing" / f"{index}.png"))
    assert stray == 0, f"parsing/{index}.png has {stray} off-palette pixels"
    return labels


def read_classes(folder: Path, index: int) -> np.ndarray:
    return read_image(folder / "semantics" / f"{index}.png", cv2.IMREAD_UNCHANGED)


def mesh_hull(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool mask of the convex hull of all 478 mesh points (independent of the parser's code)."""
    mask = np.zeros((height, width), np.uint8)
    hull = cv2.convexHull(np.round(points[:, :2]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def parse_scene(scene: SyntheticPortrait, person: np.ndarray | None = None) -> np.ndarray:
    """The mediapipe backend's algorithm on one scene, its segmenter replaced by a given mask."""
    person = scene.person if person is None else person
    size = scene.image.shape[0]
    small = cv2.resize(scene.image, (WORK, WORK), interpolation=cv2.INTER_AREA)
    small_person = cv2.resize(person.astype(np.float32), (WORK, WORK)) > 0.5
    layout = FaceLayout.from_points(scene.landmarks[:, :2])
    small_layout = layout.scaled(WORK / size, WORK / size)
    detail = texture_map(scene.image, (WORK, WORK))
    bins, details, skin = appearance_samples(
        small, small_person.astype(np.float32), small_layout, detail
    )
    models = fit_colour_models(bins)
    posteriors = class_posteriors(small, small_layout, models)
    classes = split_person(
        small_person,
        posteriors,
        small_layout,
        models.hair_differs_from_skin,
        lambda _: detail,
        fit_texture_models(details),
    )
    return full_resolution(classes, person, scene.image, layout, skin_hsv(skin))


# ---- units -------------------------------------------------------------------------------------


def test_palette_is_adnerf_bgr() -> None:
    assert PALETTE_BGR.tolist() == [[255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    image = labels_to_bgr(labels)
    assert image[0, 1].tolist() == [255, 0, 0] and image[1, 1].tolist() == [0, 0, 255]
    back, stray = bgr_to_labels(image)
    assert stray == 0 and (back == labels).all()
    image[0, 0] = (250, 250, 250)  # a blended edge: read as the nearest colour, counted as stray
    back, stray = bgr_to_labels(image)
    assert stray == 1 and back[0, 0] == BACKGROUND
    assert (decode_labels(image) == back).all()


def test_classes_render_in_ernerf_colours() -> None:
    classes = np.arange(9, dtype=np.uint8)[None, :]
    labels = decode_labels(classes_to_bgr(classes))[0]
    head = [C.FACE_SKIN, C.HAIR, C.EARS, C.MOUTH_INTERIOR, C.TEETH]
    assert [labels[c] for c in head] == [HEAD] * 5
    assert labels[C.NECK] == NECK and labels[C.TORSO] == TORSO
    assert labels[C.BACKGROUND] == BACKGROUND and labels[C.OTHER] == BACKGROUND
    assert (CLASS_TO_LABEL[:9] == labels).all()


def test_bisenet_classes_map_onto_semantic_classes() -> None:
    # CelebAMask-HQ: 1 skin, 2-3 brows, 4-5 eyes, 6 glasses, 7-8 ears, 9 earring, 10 nose,
    # 11 mouth, 12-13 lips, 14 neck, 15 necklace, 16 cloth, 17 hair, 18 hat
    expected = {0: C.BACKGROUND, 1: C.FACE_SKIN, 4: C.FACE_SKIN, 6: C.FACE_SKIN, 7: C.EARS}
    expected |= {9: C.EARS, 11: C.MOUTH_INTERIOR, 12: C.FACE_SKIN, 14: C.NECK, 15: C.NECK}
    expected |= {16: C.TORSO, 17: C.HAIR, 18: C.HAIR}
    for cls, semantic in expected.items():
        assert BISENET_TO_CLASS[cls] == semantic, cls
    assert len(BISENET_TO_CLASS) == 19
    # AD-NeRF's grouping survives: 1-13 and 17-18 head, 14-15 neck, 16 torso
    labels = CLASS_TO_LABEL[BISENET_TO_CLASS]
    assert (labels[1:14] == HEAD).all() and (labels[17:] == HEAD).all()
    assert (labels[14:16] == NECK).all() and labels[16] == TORSO


def test_mesh_loops_match_mediapipe() -> None:
    from mediapipe.python.solutions import face_mesh_connections as fmc

    def edges(loop: np.ndarray) -> set[frozenset[int]]:
        return {frozenset((int(a), int(b))) for a, b in zip(loop, np.roll(loop, -1), strict=True)}

    lips = {frozenset(e) for e in fmc.FACEMESH_LIPS}
    assert edges(INNER_LIPS) | edges(OUTER_LIPS) == lips
    assert edges(RIGHT_EYE) == {frozenset(e) for e in fmc.FACEMESH_RIGHT_EYE}
    assert edges(LEFT_EYE) == {frozenset(e) for e in fmc.FACEMESH_LEFT_EYE}
    brows = {int(i) for e in fmc.FACEMESH_RIGHT_EYEBROW for i in e}
    assert set(RIGHT_BROW.tolist()) == brows
    assert set(LEFT_BROW.tolist()) == {int(i) for e in fmc.FACEMESH_LEFT_EYEBROW for i in e}


def test_smoothing_matches_direct_weighted_mean() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((9, 4, 5)).astype(np.float32)
    out = np.stack(list(smoothed(maps, radius=2)))
    assert out.shape == maps.shape
    for i in range(len(maps)):
        ks = [k for k in range(i - 2, i + 3) if 0 <= k < len(maps)]
        w = np.array([3 - abs(k - i) for k in ks], np.float32)
        np.testing.assert_allclose(out[i], np.tensordot(w, maps[ks], 1) / w.sum(), rtol=1e-5)
    assert len(list(smoothed(maps[:1], radius=2))) == 1


def test_nearest_valid_frame() -> None:
    valid = np.array([False, True, False, False, False, True, False])
    assert nearest_valid(valid).tolist() == [1, 1, 1, 1, 5, 5, 5]


# ---- synthetic scenes with known classes --------------------------------------------------------


@pytest.fixture(scope="module")
def scene() -> SyntheticPortrait:
    return synthetic_portrait()


@pytest.fixture(scope="module")
def parsed(scene: SyntheticPortrait) -> np.ndarray:
    return parse_scene(scene)


def test_synthetic_scene_head_neck_torso(scene: SyntheticPortrait, parsed: np.ndarray) -> None:
    truth, found = CLASS_TO_LABEL[scene.classes], CLASS_TO_LABEL[parsed]
    for label, name in ((HEAD, "head"), (NECK, "neck"), (TORSO, "torso")):
        score = iou(truth == label, found == label)
        assert score >= 0.9, f"{name} IoU {score:.3f}"
    # long hair over the shoulders is head, earrings are ears
    hair = scene.classes == C.HAIR
    assert np.count_nonzero(found[hair] == HEAD) / np.count_nonzero(hair) > 0.95
    earrings = (scene.classes == C.EARS) & (scene.image[..., 1] > 150)
    assert earrings.any() and (found[earrings] == HEAD).mean() > 0.95
    assert (parsed[earrings] == C.EARS).mean() > 0.6


def test_synthetic_scene_other_people_and_objects(
    scene: SyntheticPortrait, parsed: np.ndarray
) -> None:
    for part in (scene.second_person, scene.detached_object):
        assert part.any()
        assert np.count_nonzero(class_mask(parsed, PERSON_CLASSES) & part) == 0
        assert (parsed[part] == C.OTHER).mean() > 0.95


def test_synthetic_scene_boundaries_are_not_boxes(
    scene: SyntheticPortrait, parsed: np.ndarray
) -> None:
    """No straight horizontal head/torso edge beyond the scene's own (the cut ends of the two
    hair strands): hair ends where the hair ends."""

    def run(labels: np.ndarray) -> int:
        return longest_run((labels[:-1] == HEAD) & (labels[1:] == TORSO))

    assert run(CLASS_TO_LABEL[parsed]) <= run(CLASS_TO_LABEL[scene.classes]) + 4


def longest_run(edge: np.ndarray) -> int:
    """Longest horizontal run of True in a bool image."""
    padded = np.pad(edge.astype(np.int8), ((0, 0), (1, 1)))
    diff = np.diff(padded, axis=1)
    starts = np.argwhere(diff == 1)
    ends = np.argwhere(diff == -1)
    return int((ends[:, 1] - starts[:, 1]).max()) if len(starts) else 0


def test_bisenet_output_keeps_only_the_tracked_person(scene: SyntheticPortrait) -> None:
    layout = FaceLayout.from_points(scene.landmarks[:, :2])
    classes = bisenet_classes(scene.celeba, scene.image, layout, (80.0, 200.0))
    assert np.count_nonzero(class_mask(classes, PERSON_CLASSES) & scene.second_person) == 0
    assert np.count_nonzero(class_mask(classes, PERSON_CLASSES) & scene.detached_object) == 0
    truth = CLASS_TO_LABEL[scene.classes]
    assert iou(CLASS_TO_LABEL[classes] == HEAD, truth == HEAD) > 0.95


# ---- the task, whichever parser runs -----------------------------------------------------------


def synthetic_folder(folder: Path, n: int = 4) -> list[SyntheticPortrait]:
    scenes = [synthetic_portrait(seed=i) for i in range(n)]  # the same scene, new noise
    (folder / "ori_imgs").mkdir(parents=True)
    for i, scene in enumerate(scenes):
        write_jpeg(folder / "ori_imgs" / f"{i}.jpg", scene.image)
    np.save(folder / "landmarks.npy", np.stack([s.landmarks for s in scenes]))
    return scenes


@pytest.mark.parametrize("parser", ["mediapipe", "bisenet"])
def test_task_labels_other_people_background_for_any_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parser: str
) -> None:
    """Issue 10 item 8: whatever the parser says, parts not connected to the tracked face are
    background (OTHER), and the run warns once with the frame count. The models are replaced by
    what a segmenter / BiSeNet that includes everyone would say."""
    from talkprep.models import bisenet, selfie_segmenter

    scenes = synthetic_folder(tmp_path)
    calls = {"n": 0}

    def segment(self: object, image: np.ndarray) -> np.ndarray:
        size = image.shape[1], image.shape[0]
        return cv2.resize(scenes[0].person.astype(np.float32), size, interpolation=cv2.INTER_AREA)

    def parse_classes(model: object, frames: list[np.ndarray], device: str = "cpu") -> np.ndarray:
        start = calls["n"]
        calls["n"] += len(frames)
        return np.stack([scenes[start + k].celeba for k in range(len(frames))])

    weights = tmp_path / "79999_iter.pth"
    weights.write_bytes(b"unused: the model is replaced")
    options = {"parser": parser}
    if parser == "bisenet":
        options["parser_weights"] = weights
        monkeypatch.setattr(bisenet, "load_bisenet", lambda path, device="cpu": object())
        monkeypatch.setattr(bisenet, "parse_classes", parse_classes)
    else:
        monkeypatch.setattr(selfie_segmenter.SelfieSegmenter, "segment", segment)
    ctx = task_context(tmp_path, len(scenes), "5", **options)
    result = ParsingTask().run(ctx)
    for i, scene in enumerate(scenes):
        classes = read_classes(tmp_path, i)
        person = class_mask(classes, PERSON_CLASSES)
        assert np.count_nonzero(person & (scene.second_person | scene.detached_object)) == 0
        labels = read_labels(tmp_path, i)
        assert (labels[scene.second_person | scene.detached_object] == BACKGROUND).all()
        assert iou(labels == HEAD, CLASS_TO_LABEL[scene.classes] == HEAD) > 0.85
    other = [w for w in result.warnings if "other people or objects" in w]
    assert len(other) == 1 and f"in {len(scenes)} frame(s)" in other[0], result.warnings
    assert result.figures["frames_with_other_people_or_objects"] == len(scenes)


# ---- real clips --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("clip", CLIP_NAMES)
def test_parsing_on_real_clip(processed, clip: str) -> None:
    folder = processed(clip, tasks=VIDEO_TASKS)
    n = len(frame_indices(folder / "ori_imgs", ".jpg"))
    assert frame_indices(folder / "parsing", ".png") == list(range(n))
    assert frame_indices(folder / "semantics", ".png") == list(range(n))
    landmarks = np.load(folder / "landmarks.npy")
    height, width = read_image(folder / "ori_imgs" / "0.jpg").shape[:2]
    ious, coverage, above_face = [], [], 0
    previous = None
    for i in range(n):
        labels = read_labels(folder, i)  # only the four colours, exactly
        classes = read_classes(folder, i)
        assert classes.shape == (height, width) and classes.max() < len(SemanticClass)
        assert (CLASS_TO_LABEL[classes] == labels).all()
        head = labels == HEAD
        if previous is not None:
            union = np.count_nonzero(previous | head)
            ious.append(np.count_nonzero(previous & head) / max(union, 1))
        previous = head
        points = landmarks[i]
        if np.isnan(points).any():
            continue
        hull = mesh_hull(points, height, width)
        coverage.append(np.count_nonzero(hull & head) / np.count_nonzero(hull))
        # neck and torso: nothing of them inside the face or above its top, in its columns
        body = (labels == NECK) | (labels == TORSO)
        cols = np.flatnonzero(hull.any(axis=0))
        top = np.argmax(hull[:, cols], axis=0)
        rows = np.arange(height)[:, None]
        above_face += int(np.count_nonzero(body[:, cols] & (rows <= top[None, :])))
        above_face += int(np.count_nonzero(body & hull))
    assert coverage and min(coverage) >= 0.99, f"head misses the face: min {min(coverage):.3f}"
    assert above_face == 0, f"{above_face} neck/torso pixels inside or above the face"
    assert np.median(ious) > 0.95, f"head flickers: median IoU {np.median(ious):.3f}"
    figures = json.loads(manifest_path(folder).read_text())["tasks"]["parsing"]["figures"]
    for name in ("background", "head", "neck", "torso"):
        assert set(figures[f"{name}_fraction"]) == {"median", "min", "max"}
    assert figures["head_fraction"]["min"] > 0.02
    assert figures["frames_head_misses_face"] == 0
    assert figures["head_flicker_1_minus_iou"]["median"] < 0.05


def lab(pixels_bgr: np.ndarray) -> np.ndarray:
    """float [n, 3] CIE Lab (L 0-100, a, b about -128..127) of BGR uint8 pixels [n, 3]."""
    image = pixels_bgr.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[:, 0]


def crown_colour(frame: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and inverse covariance (Lab) of a box above the forehead: hdtf's hair, found
    without the parser."""
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    w, h = hi - lo
    box = frame[
        int(lo[1] - 0.25 * h) : int(lo[1] - 0.05 * h),
        int(lo[0] + 0.25 * w) : int(hi[0] - 0.25 * w),
    ]
    values = lab(box.reshape(-1, 3))
    return values.mean(axis=0), np.linalg.inv(np.cov(values.T) + np.eye(3))


def skin_colour(frame: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and inverse covariance (Lab) of the pixels inside the mesh hull (the face)."""
    hull = mesh_hull(points, *frame.shape[:2])
    values = lab(frame[hull])
    return values.mean(axis=0), np.linalg.inv(np.cov(values.T) + np.eye(3))


def mahalanobis2(pixels: np.ndarray, model: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    d = lab(pixels) - model[0]
    return np.einsum("ni,ij,nj->n", d, model[1], d)


def hair_like(
    pixels: np.ndarray, crown: tuple[np.ndarray, np.ndarray], skin: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """bool [n]: pixels (BGR [n, 3]) within a Mahalanobis distance of 2 of the crown colour and
    nearer to it than to the face's skin colour."""
    to_crown = mahalanobis2(pixels, crown)
    return (to_crown < 4.0) & (to_crown < mahalanobis2(pixels, skin))


@pytest.fixture(scope="module")
def hdtf(processed) -> Path:
    return processed("hdtf", tasks=VIDEO_TASKS)


@pytest.mark.slow
def test_hdtf_head_edge_has_no_horizontal_cut(hdtf: Path) -> None:
    landmarks = np.load(hdtf / "landmarks.npy")
    worst = 0
    for i in range(0, len(landmarks), 5):
        labels = read_labels(hdtf, i)
        lo, hi = landmarks[i, :, :2].min(axis=0), landmarks[i, :, :2].max(axis=0)
        w, h = hi - lo
        edge = (labels[:-1] == HEAD) & (labels[1:] == TORSO)
        # beside the face: from the eyes to a little below the chin, left and right of it (the
        # old parser cut hair there with a box at mouth level)
        beside = np.zeros_like(edge)
        r0, r1 = int(lo[1] + 0.3 * h), int(hi[1] + 0.15 * h)
        beside[r0:r1, int(max(0, lo[0] - 0.7 * w)) : int(lo[0])] = True
        beside[r0:r1, int(hi[0]) : int(hi[0] + 0.7 * w)] = True
        worst = max(worst, longest_run(edge & beside))
    assert worst <= 10, f"a {worst} px horizontal head/torso edge beside the face"


@pytest.mark.slow
def test_hdtf_hair_beside_and_below_the_jaw_is_head(hdtf: Path) -> None:
    landmarks = np.load(hdtf / "landmarks.npy")
    fractions = []
    for i in range(0, len(landmarks), 10):
        frame = read_image(hdtf / "ori_imgs" / f"{i}.jpg")
        classes = read_classes(hdtf, i)
        points = landmarks[i]
        crown, skin = crown_colour(frame, points), skin_colour(frame, points)
        lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
        w, h = hi - lo
        # beside the jaw and below it, outside the face's columns: where shoulder-length hair
        # hangs; hair there is found by its colour alone
        region = np.zeros(classes.shape, bool)
        r0, r1 = int(hi[1] - 0.4 * h), int(hi[1] + 0.15 * h)
        region[r0:r1, int(lo[0] - 0.3 * w) : int(lo[0])] = True
        region[r0:r1, int(hi[0]) : int(hi[0] + 0.3 * w)] = True
        region &= classes != C.BACKGROUND
        hairy = np.zeros_like(region)
        hairy[region] = hair_like(frame[region], crown, skin)
        assert hairy.sum() > 200, "the test cannot find hdtf's hair beside the jaw"
        fractions.append(np.mean(CLASS_TO_LABEL[classes[hairy]] == HEAD))
    assert np.median(fractions) > 0.9, f"hair-coloured pixels that are head: {fractions}"


@pytest.mark.slow
def test_hdtf_neck_is_skin_coloured(hdtf: Path) -> None:
    distances = []
    for i in range(0, 200, 20):
        frame = read_image(hdtf / "ori_imgs" / f"{i}.jpg")
        classes = read_classes(hdtf, i)
        neck, face = classes == C.NECK, classes == C.FACE_SKIN
        assert np.count_nonzero(neck) > 500, f"frame {i} has almost no neck"
        neck_ab = np.median(lab(frame[neck])[:, 1:], axis=0)
        face_ab = np.median(lab(frame[face])[:, 1:], axis=0)
        distances.append(float(np.linalg.norm(neck_ab - face_ab)))
    # chroma only: the neck is in the chin's shadow
    assert max(distances) < 8.0, distances


@pytest.mark.slow
def test_hdtf_torso_images_hold_no_hair_and_the_plate_no_skin(hdtf: Path) -> None:
    landmarks = np.load(hdtf / "landmarks.npy")
    hair_fractions = []
    for i in range(0, len(landmarks), 10):
        frame = read_image(hdtf / "ori_imgs" / f"{i}.jpg")
        crown, skin = crown_colour(frame, landmarks[i]), skin_colour(frame, landmarks[i])
        torso = read_image(hdtf / "torso_imgs" / f"{i}.png", cv2.IMREAD_UNCHANGED)
        kept = torso[..., 3] == 255
        original = kept & (read_classes(hdtf, i) == C.TORSO)
        hairy = np.zeros_like(kept)
        hairy[original] = hair_like(frame[original], crown, skin)
        # no hair-coloured block: no sizeable connected patch of hair colour in the torso image
        count, _, stats, _ = cv2.connectedComponentsWithStats(hairy.astype(np.uint8))
        largest = stats[1:, cv2.CC_STAT_AREA].max() if count > 1 else 0
        hair_fractions.append(largest / kept.size)
    assert max(hair_fractions) < 0.01, f"hair-coloured blocks in torso images: {hair_fractions}"
    # the plate holds no skin-coloured region (a ghost of the chin or the neck): no sizeable
    # patch within a colour difference of 10 (Lab) of the face's median skin
    plate = read_image(hdtf / "bc.jpg")
    skin = []
    for i in range(0, len(landmarks), 20):
        hull = mesh_hull(landmarks[i], *plate.shape[:2])
        skin.append(lab(read_image(hdtf / "ori_imgs" / f"{i}.jpg")[hull]))
    median = np.median(np.concatenate(skin), axis=0)
    near = np.linalg.norm(lab(plate.reshape(-1, 3)) - median, axis=1) < 10.0
    count, _, stats, _ = cv2.connectedComponentsWithStats(
        near.reshape(plate.shape[:2]).astype(np.uint8)
    )
    largest = stats[1:, cv2.CC_STAT_AREA].max() if count > 1 else 0
    assert largest < 0.002 * near.size, f"a skin-coloured region of {largest} px in bc.jpg"


@pytest.mark.slow
def test_anchor_teeth_only_when_the_mouth_is_open(processed) -> None:
    folder = processed("anchor", tasks=VIDEO_TASKS)
    landmarks = np.load(folder / "landmarks.npy")
    face_h = landmarks[:, :, 1].max(axis=1) - landmarks[:, :, 1].min(axis=1)
    gap = np.linalg.norm(landmarks[:, 13, :2] - landmarks[:, 14, :2], axis=1) / face_h
    closed = np.flatnonzero(gap < 0.005)
    wide = np.flatnonzero(gap > 0.06)
    assert closed.size >= 3 and wide.size >= 3, (closed.size, wide.size)
    for i in closed[:: max(1, closed.size // 10)]:
        classes = read_classes(folder, i)
        assert np.count_nonzero(classes == C.TEETH) == 0, f"teeth in closed-mouth frame {i}"
        assert np.count_nonzero(classes == C.MOUTH_INTERIOR) == 0
    with_teeth = [
        np.count_nonzero(read_classes(folder, i) == C.TEETH) > 0
        for i in wide[:: max(1, wide.size // 10)]
    ]
    assert np.mean(with_teeth) >= 0.8, with_teeth


@pytest.mark.slow
def test_check_catches_bad_parsing(processed, tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    shutil.copytree(processed("hdtf", tasks=VIDEO_TASKS), folder)
    mine = ("semantics/*.png", "parsing/*.png", "bc.jpg", "gt_imgs/*.jpg", "torso_imgs/*.png")
    results = {r.group: r for r in check_folder(folder)}
    assert all(results[group].ok for group in mine), results
    image = read_image(folder / "parsing" / "0.png")
    image[10:12, 10:12] = (128, 128, 128)
    cv2.imwrite(str(folder / "parsing" / "0.png"), image)
    bad = [r for r in check_folder(folder) if not r.ok]
    assert bad and "four parsing colours" in bad[0].problem
    (folder / "parsing" / "3.png").unlink()
    bad = [r for r in check_folder(folder) if not r.ok]
    assert bad and "parsing/3.png is missing" in bad[0].problem
    classes = read_classes(folder, 0)
    classes[0, 0] = 200
    cv2.imwrite(str(folder / "semantics" / "0.png"), classes)
    bad = [r.problem for r in check_folder(folder) if not r.ok]
    assert any("class value 200" in p for p in bad), bad
