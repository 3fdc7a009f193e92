"""Pure mask algorithms for tasks 5-7: the semantic class map from a person probability, the face
mesh and per-video colour models; its rendering into AD-NeRF's parsing colours; the background
plate; the torso and gt images.

Class maps are uint8 [H, W] of `talkprep.semantics.SemanticClass`; parsing label maps are uint8
[H, W] of the four AD-NeRF labels below; images are BGR uint8 as cv2 gives them. Nothing here
reads or writes files.

How a frame is parsed (`split_person`, then `full_resolution`), and why:
- The person is the selfie segmenter's mask, restricted to the connected part that holds the
  tracked face: other people and detached objects become OTHER, which counts as background.
- The face (skin) is the mesh's convex hull; the mouth interior is the inner-lip polygon, and
  teeth are its bright, low-saturation pixels (relative to the face's own skin).
- Every other person pixel is skin, hair or clothes by its colour under per-video models
  (`talkprep.geometry.appearance`) times smooth spatial priors measured in face units: clothes are
  unlikely inside an ellipse around the head, hair is likely near the head and fades slowly with
  distance (long hair), skin below the chin is likely only around the neck's axis. The priors are
  ellipses and Gaussians, never boxes, so no boundary is a straight cut; they only decide where
  colour is ambiguous. Posteriors rather than a graph cut: a graph cut per frame (cv2.grabCut)
  costs tens of milliseconds and flickers; lightly blurred posteriors averaged over five frames
  give smooth, stable regions at a fraction of that.
- Below the mouth, where long hair, the neck and the clothes meet, a pixel-by-pixel vote gives a
  mosaic: there hair hanging from the head is one run per column that ends where the colour
  evidence turns (`top_runs`), and so is the neck, down from the chin while the pixels are not
  clothes (the shadow under the chin is neck) and sideways while they are skin (`_neck_run`),
  about an axis beneath the jaw's angles (`neck_axis`: under a turned head the chin swings out).
  A strand hanging into the band about the chin beside the neck joins the hair; fair hair as
  pale as the neck's skin is told by its strands (`texture_map`: skin is smooth) where it joins
  hair hanging past the chin (`_fair_hair`). Where the video's detail models tell hair from skin
  (`appearance.TextureModels`), each pixel's detail weighs in with its colour there
  (`_with_detail`): the smooth side of the neck in shadow stays neck, strands over it are hair.
  A short run that starts right under the background is the mixed rim along the top of a dark
  shoulder, not hair hanging from the head (`_outline_skim`).
- Connectivity settles the rest: hair-coloured (or blond, skin-coloured) pixels are hair only when
  connected to the head above the ears, the neck is the one piece under the chin, ear-zone
  pixels that are not hair and reach the face (ears, earrings) are ears, and small torso pieces
  in the head region or against the hair are hair. Anything else of the person is torso, except
  a thin strip between the hair's outer side and the background above the shoulder, which is hair
  lit from behind or thinning (`hair_fringe`), and a sliver between hanging hair and the neck,
  the seam's mixed pixels, or between two locks (`seam_slivers`).
- A piece of torso beside the head or the shoulders that the segmenter is unsure of and that is
  not coloured like the clothes is an object joined to the person (`unsure_objects`), OTHER.
- Hands (`sort_hands`, `label_hands`) and what they hold are HAND, never person: a detection
  counts where its hull is skin by colour alone (`skin_by_colour`) and person by the segmenter.
- Where a shirt collar meets the chin between neck columns, the torso's top pixel is neck
  (`bridge_neck`), so the torso images' carry-up leaves no slot under the chin.
- Classes are decided at the segmenter's resolution (256 px), where they cost a quarter; the
  person outline, the face and the mouth are drawn at full resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial

import cv2
import numpy as np
from scipy.ndimage import median_filter

from talkprep.geometry.appearance import (
    CLOTHES,
    HAIR,
    N_MODELS,
    SKIN,
    ColourModels,
    TextureModels,
    quantise,
)
from talkprep.geometry.distance import exact_distance
from talkprep.runs import true_runs
from talkprep.semantics import N_CLASSES, PERSON_CLASSES, SemanticClass, class_mask

BACKGROUND, HEAD, NECK, TORSO = 0, 1, 2, 3
N_LABELS = 4
PALETTE_BGR = np.array([[255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
"""Colour of each label in parsing/*.png as cv2 reads it (AD-NeRF's face_parsing/test.py)."""

CLASS_TO_LABEL = np.full(256, BACKGROUND, np.uint8)
CLASS_TO_LABEL[
    [
        SemanticClass.FACE_SKIN,
        SemanticClass.HAIR,
        SemanticClass.EARS,
        SemanticClass.MOUTH_INTERIOR,
        SemanticClass.TEETH,
    ]
] = HEAD
CLASS_TO_LABEL[SemanticClass.NECK] = NECK
CLASS_TO_LABEL[SemanticClass.TORSO] = TORSO
"""Semantic class -> AD-NeRF label: head = face skin, hair, ears, mouth, teeth; OTHER and
unknown values are background."""

C = SemanticClass
BISENET_TO_CLASS = np.array(
    [C.BACKGROUND]
    + [C.FACE_SKIN] * 6  # 1 skin, 2-3 brows, 4-5 eyes, 6 glasses
    + [C.EARS] * 3  # 7-8 ears, 9 earring
    + [C.FACE_SKIN, C.MOUTH_INTERIOR, C.FACE_SKIN, C.FACE_SKIN]  # 10 nose, 11 mouth, 12-13 lips
    + [C.NECK, C.NECK, C.TORSO, C.HAIR, C.HAIR],  # 14 neck, 15 necklace, 16 cloth, 17 hair, 18 hat
    dtype=np.uint8,
)
"""CelebAMask-HQ class of face-parsing.PyTorch -> semantic class. The AD-NeRF grouping follows
(1-13 and 17-18 head, 14-15 neck, 16 torso); teeth are found inside class 11 by colour."""

INNER_LIPS = np.array(
    [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
)
"""The inner-lip loop of the mesh (mediapipe FACEMESH_LIPS, inner ring), in order."""
OUTER_LIPS = np.array(
    [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
)
RIGHT_EYE = np.array([33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7])
LEFT_EYE = np.array(
    [263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249]
)
RIGHT_BROW = np.array([70, 63, 105, 66, 107, 55, 65, 52, 53, 46])
LEFT_BROW = np.array([300, 293, 334, 296, 336, 285, 295, 282, 283, 276])
EAR_POINTS = (234, 454)
"""Face-oval points at the tragus level, subject's right and left: the ears lie just outside."""
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
JAW_ANGLE_POINTS = (172, 397)
"""Face-oval points at the angles of the jaw, subject's right and left: the neck runs down
beneath their midpoint (neck_axis)."""

HEAD_ELLIPSE = (0.85, 0.62)
"""Radii of the head ellipse around the face centre in face widths and face heights: its lower
rim passes just under the chin and wide of the jaw, where shoulders cannot be."""
CLOTHES_EDGE = 0.12
"""Softness (in units of the ellipse radius) of the clothes prior's rise outside the ellipse."""
HAIR_REACH = 2.5
"""Hair prior e-folding distance outside the head ellipse, in ellipse radii (long hair)."""
NECK_SIGMA_X = 0.35
"""Width of the neck prior about the face's vertical axis, in face widths."""
ISLAND_AREA = 0.02
"""Torso islands smaller than this fraction of the face's box, in the head region or touching
hair, are hair (strands the segmenter or the colour models broke up)."""
CROWN_SEED_BELOW = 0.1
"""Hair is grown from the face's rim above this height (face heights below the face centre:
about the ears), so it always hangs from the crown or the temples."""
FOREHEAD_BAND = 0.12
"""Forehead skin reaches at most this many face heights above the mesh."""
NECK_HALF_WIDTH = 0.5
"""Neck skin lies within this many face widths of the face's vertical axis; skin-coloured
pixels beyond it that touch the head are blond hair, not neck."""
NECK_REACH = 1.0
"""Length of the neck prior below the chin, in face heights."""
BALD_FADE = 40.0
"""When hair and skin look alike, the hair prior falls by this much (log) per face height below
the ears, so that skin below the jaw is neck."""
NECK_CORE = 0.2
"""Below the chin, within this many face widths of the neck's axis (neck_axis), nothing is hair:
the neck, its shadow under the chin and its creases run from the chin to the clothes."""
NECK_SIDE = 0.4
"""The neck reaches at most this many face widths to either side of its axis (a neck is about
two thirds of a face wide): hair as fair as skin beside it stays hair."""
NECK_FREE = 0.35
"""The neck runs down from the chin this many face heights freely ..."""
NECK_LENGTH_COST = 10.0
"""... and beyond it at this cost (log odds per face height), so that skin-coloured clothes or
skin seen through them does not extend it to the chest."""
NECK_EDGE_SMOOTH = 0.25
"""The neck's lower edge and its sides are median-filtered over this many face widths (heights):
a neckline and a neck's outline are smooth curves."""
CHIN_POINT = 152
HANG_FROM = 0.25
"""Hair and the neck are taken as hanging runs from this many face heights below the face
centre (about the mouth) down; above it the head's own rules hold."""
RUN_END_SMOOTH = 5
"""Columns over which each run's lower end is median-filtered (work-resolution pixels): a clean
edge without the stair steps of neighbouring columns that disagree by chance."""
HAIR_TEXTURE = 1.0
"""Detail (texture_map, grey levels) above which skin-coloured pixels beside the neck that join
the hanging hair are fair hair: on the shared clips neck skin measures 0.2-0.5, hair 1.5-4."""
FAIR_HAIR_FROM = 0.3
"""Fair hair is told by its strands only this many face widths or more from the chin point: the
neck's middle, its shadow and creases stay neck."""
TEXTURE_BLUR = 1.5
"""Gaussian blur (work-resolution pixels) of the detail map."""
SKIM_HAIR = 0.05
"""Below the mouth, a column's hair run that starts under the background and is shorter than
this many face heights is the mixed outline of a dark shoulder, not hanging hair."""
SEAM_SLIVER = 0.04
"""Torso between hanging hair and the neck (or between two locks), in a row, is the seam's mixed
pixels (hair) up to this many face widths wide; a collar seen between them is wider."""
HAIR_FRINGE = 0.2
"""Above the shoulder, torso that runs out from the hair's outer side to the background and is
narrower than this many face widths is the hair's thin outer fringe (see hair_fringe) ..."""
FRINGE_MIN_LENGTH = 0.1
"""... in strips at least this many face heights long ..."""
FRINGE_GROWTH = 1.0
"""... that widen by at most this many pixels a row (an outer edge steeper than 45 degrees)."""
HAND_REACH = 0.15
"""Around a hand's hull, the person (or OTHER) pixels within this share of the hand's size are
the hand's: fingers wider than their joints, and what the hand holds."""
HAND_FACE_MIN = 0.15
"""A hand on the head covers the face from this share of the face polygon up."""
HAND_SKIN_MIN = 0.35
"""Mean skin posterior (by colour alone) a detected hand's hull needs to count as a hand."""
HAND_PERSON_MIN = 0.5
"""Mean person probability a detected hand's hull needs: the segmenter takes hands for part of
the person, and the detector now and then finds a hand in a skin-coloured blur behind it."""
HAND_SKIN_AREA = 0.02
"""Skin-coloured person pixels away from the head and the neck, as a share of the face box, from
which a frame may show a hand (see skin_off_head)."""
LOG_FLOOR = -12.0
"""Log prior of a class that the geometry rules out."""
POSTERIOR_BLUR = 1.0
"""Gaussian blur (work-resolution pixels) of the class posteriors before the argmax."""
EARRING_HALF_WIDTH = 0.08
"""Below the ear point the zone narrows to this many face widths each side: earrings hang
straight down from the lobe, while the jaw and the neck turn inward under it."""
EAR_ZONE = (0.16, 0.25, 0.18)
"""Ear zone around each ear point: half-width (face widths), half-height above and extra reach
below for earrings (face heights)."""
MOUTH_MIN_OPEN = 1.5
"""Inner lips closer than this many pixels: the mouth is closed, no interior."""
TEETH_VALUE = 0.72
"""Teeth are at least this bright relative to the median skin brightness (HSV value)."""
TEETH_SATURATION = 0.6
"""Teeth have at most this fraction of the median skin saturation."""


_LABEL_LUTS = [np.zeros(256, np.uint8) for _ in range(3)]
_CLASS_LUTS = [np.zeros(256, np.uint8) for _ in range(3)]
for _channel in range(3):
    _LABEL_LUTS[_channel][:N_LABELS] = PALETTE_BGR[:, _channel]
    _LABEL_LUTS[_channel][N_LABELS:] = PALETTE_BGR[N_LABELS - 1, _channel]
    _CLASS_LUTS[_channel][:] = _LABEL_LUTS[_channel][CLASS_TO_LABEL]


def labels_to_bgr(labels: np.ndarray) -> np.ndarray:
    """The parsing image for a uint8 label map: only the four palette colours, no blending."""
    return cv2.merge([cv2.LUT(labels, lut) for lut in _LABEL_LUTS])


def classes_to_bgr(classes: np.ndarray) -> np.ndarray:
    """The ER-NeRF parsing image of a semantic class map."""
    return cv2.merge([cv2.LUT(classes, lut) for lut in _CLASS_LUTS])


def classes_to_labels(classes: np.ndarray) -> np.ndarray:
    """The AD-NeRF label map (BACKGROUND, HEAD, NECK, TORSO) of a semantic class map."""
    return cv2.LUT(classes, CLASS_TO_LABEL)


def bgr_to_labels(image: np.ndarray) -> tuple[np.ndarray, int]:
    """Label map of a parsing image and how many pixels have none of the four exact colours.

    Each channel is read as on (>127) or off; the three bits pick the label, so that files with
    slightly blended edges (other producers) still read as the nearest colour. Off-palette bit
    patterns read as BACKGROUND; every pixel that is not exactly a palette colour is counted.
    """
    labels = decode_labels(image)
    stray = np.count_nonzero((labels_to_bgr(labels) != image).any(axis=-1))
    return labels, stray


_BITS_TO_LABEL = np.full(8, BACKGROUND, np.uint8)
_BITS_TO_LABEL[[1, 2, 4, 7]] = [HEAD, NECK, TORSO, BACKGROUND]
"""Bit pattern b + 2g + 4r of a parsing colour (channel on when > 127) -> label."""


def decode_labels(image: np.ndarray) -> np.ndarray:
    """Label map of a parsing image, fast: one bit per channel (see bgr_to_labels)."""
    bits = (image[..., 0] >> 7) | ((image[..., 1] >> 7) << 1) | ((image[..., 2] >> 7) << 2)
    return _BITS_TO_LABEL[bits]


def mask8(mask: np.ndarray) -> np.ndarray:
    """A bool mask as the uint8 0/1 mask cv2's masked operations take (no copy)."""
    return np.ascontiguousarray(mask).view(np.uint8)


def _fill(points: np.ndarray, height: int, width: int, convex: bool = True) -> np.ndarray:
    """bool [H, W]: the polygon (or, with convex, the convex hull) of points (x, y pixels)."""
    mask = np.zeros((height, width), np.uint8)
    pts = np.round(points[:, :2]).astype(np.int32)
    if convex:
        cv2.fillConvexPoly(mask, cv2.convexHull(pts), 1)
    else:
        cv2.fillPoly(mask, [pts], 1)
    return mask.view(bool)


def face_mask(face_xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool [H, W]: the face-mesh polygon of one frame, i.e. the convex hull of its points
    (x, y pixels, [478, 2]). The hull rather than the face-oval loop, so that points that stick
    out of the oval in a turned head (nose, lips) are inside it too."""
    return _fill(face_xy, height, width)


@dataclass(frozen=True)
class FaceLayout:
    """Where the face is in one frame, in pixels of the image it was measured for."""

    points: np.ndarray
    """float [478, 2] mesh points (x, y)."""
    centre: tuple[float, float]
    """Centre of the face's bounding box (x, y)."""
    width: float
    height: float
    """Face bounding-box width and height (forehead top to chin)."""

    @classmethod
    def from_points(cls, points: np.ndarray) -> FaceLayout:
        xy = np.asarray(points[:, :2], np.float64)
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        size = np.maximum(hi - lo, 1.0)
        centre = (lo + hi) / 2
        return cls(xy, (float(centre[0]), float(centre[1])), float(size[0]), float(size[1]))

    def scaled(self, factor_x: float, factor_y: float) -> FaceLayout:
        """The same layout in an image resized by these factors."""
        xy = self.points * (factor_x, factor_y)
        return FaceLayout.from_points(xy)


def _grid(height: int, width: int, layout: FaceLayout) -> tuple[np.ndarray, np.ndarray]:
    """Offsets from the face centre in face widths (x, [1, W]) and face heights (y, [H, 1])."""
    dx = (np.arange(width, dtype=np.float32) - layout.centre[0]) / layout.width
    dy = (np.arange(height, dtype=np.float32) - layout.centre[1]) / layout.height
    return dx[None, :], dy[:, None]


def log_priors(height: int, width: int, layout: FaceLayout, hair_below_jaw: bool) -> np.ndarray:
    """float32 [3, H, W]: log spatial prior of skin, hair and clothes for a person pixel.

    Clothes rise softly outside the head ellipse, below the face centre only. Hair is even inside
    the ellipse and fades slowly outside it. Skin is even above the chin (forehead, ears) and
    below it a Gaussian about the neck's axis that fades over NECK_REACH face heights.
    """
    dx, dy = _grid(height, width, layout)
    radius = np.sqrt((dx / HEAD_ELLIPSE[0]) ** 2 + (dy / HEAD_ELLIPSE[1]) ** 2)
    outside = np.maximum(radius - 1.0, 0.0)
    below_centre = dy > 0
    clothes = np.where(
        below_centre,
        -np.logaddexp(0.0, -(radius - 1.0) / CLOTHES_EDGE),  # log sigmoid
        LOG_FLOOR,
    )
    hair = -outside / HAIR_REACH
    chin = 0.5
    below_chin = np.maximum(dy - chin, 0.0)
    neck_weight = 1.0 / (1.0 + np.exp(-(dy - chin + 0.1) / 0.05))
    skin = -0.5 * (dx / NECK_SIGMA_X) ** 2 * neck_weight - (below_chin / NECK_REACH) ** 2
    if not hair_below_jaw:  # fades out from the ears down: colour cannot tell it from skin
        hair = hair - BALD_FADE * np.maximum(dy - (chin - 0.35), 0.0)
    out = np.empty((N_MODELS, height, width), np.float32)
    out[SKIN] = np.maximum(skin, LOG_FLOOR)
    out[HAIR] = np.maximum(hair, LOG_FLOOR)
    out[CLOTHES] = np.maximum(clothes, LOG_FLOOR)
    return out


def class_posteriors(image_bgr: np.ndarray, layout: FaceLayout, models: ColourModels) -> np.ndarray:
    """float32 [3, h, w]: P(skin, hair, clothes | colour, position) of each pixel of a (small)
    image, lightly blurred so that the argmax gives smooth regions."""
    height, width = image_bgr.shape[:2]
    # the priors are smooth: computed at half resolution and upsampled
    half = (max(1, height // 2), max(1, width // 2))
    coarse = log_priors(
        *half,
        layout.scaled(half[1] / width, half[0] / height),
        models.hair_differs_from_skin,
    )
    priors = cv2.resize(coarse.transpose(1, 2, 0), (width, height), interpolation=cv2.INTER_LINEAR)
    scores = [
        lut + prior
        for lut, prior in zip(
            models.likelihoods(quantise(image_bgr)), cv2.split(priors), strict=True
        )
    ]
    top = cv2.max(cv2.max(scores[0], scores[1]), scores[2])
    exps = [cv2.exp(score - top) for score in scores]
    total = exps[0] + exps[1] + exps[2]
    return np.stack([cv2.GaussianBlur(e / total, (0, 0), POSTERIOR_BLUR) for e in exps])


def skin_by_colour(image_bgr: np.ndarray, models: ColourModels) -> np.ndarray:
    """float32 [h, w]: P(skin | colour) of each pixel of a (small) image, without the positional
    priors of class_posteriors (which leave no skin far below the face, where hands are)."""
    return models.skin_given_colour[quantise(image_bgr)]


def ear_zone(height: int, width: int, layout: FaceLayout) -> np.ndarray:
    """bool [H, W]: around each ear point, outward of it, reaching down for earrings."""
    zone = np.zeros((height, width), np.uint8)
    half_w, up, down = EAR_ZONE
    axes_x = max(1, round(half_w * layout.width))
    for index in EAR_POINTS:
        centre = tuple(int(round(v)) for v in layout.points[index])
        upper = (axes_x, max(1, round(up * layout.height)))
        lower = (
            max(1, round(EARRING_HALF_WIDTH * layout.width)),
            max(1, round((up + down) * layout.height)),
        )
        cv2.ellipse(zone, centre, upper, 0, 180, 360, 1, -1)
        cv2.ellipse(zone, centre, lower, 0, 0, 180, 1, -1)
    return zone.view(bool)


def _window(mask: np.ndarray, pad: int = 1) -> tuple[slice, slice]:
    """The bounding box of a mask's pixels, padded and clamped (whole image when empty)."""
    x, y, w, h = cv2.boundingRect(mask8(mask))
    if w == 0:
        return slice(0, mask.shape[0]), slice(0, mask.shape[1])
    return (
        slice(max(0, y - pad), min(mask.shape[0], y + h + pad)),
        slice(max(0, x - pad), min(mask.shape[1], x + w + pad)),
    )


def _components_touching(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """bool [H, W]: the parts of `mask` (8-connected) that contain a pixel of `seed`."""
    out = np.zeros(mask.shape, bool)
    rows, cols = _window(mask)
    sub, sub_seed = mask[rows, cols], seed[rows, cols]
    count, ids = cv2.connectedComponents(mask8(sub), connectivity=8)
    keep = np.zeros(count, bool)
    keep[ids[sub_seed & sub]] = True
    keep[0] = False
    out[rows, cols] = keep[ids]
    return out


def mouth_classes(
    image_bgr: np.ndarray, layout: FaceLayout, skin_hsv: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """bool masks (mouth interior, teeth) of one full-resolution frame.

    The interior is the inner-lip polygon, empty when the lips touch; teeth are its pixels that
    are bright and unsaturated next to the face's own skin (`skin_hsv`: median saturation and
    value, 0-255).
    """
    height, width = image_bgr.shape[:2]
    empty = np.zeros((height, width), bool)
    gap = np.linalg.norm(layout.points[UPPER_INNER_LIP] - layout.points[LOWER_INNER_LIP])
    if gap < MOUTH_MIN_OPEN:
        return empty, empty
    inner = layout.points[INNER_LIPS]
    mouth = _fill(inner, height, width, convex=False)
    rows = np.flatnonzero(mouth.any(axis=1))
    if rows.size == 0:
        return empty, empty
    cols = np.flatnonzero(mouth.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    hsv = cv2.cvtColor(image_bgr[r0:r1, c0:c1], cv2.COLOR_BGR2HSV)
    skin_s, skin_v = skin_hsv
    bright = (hsv[..., 2] >= TEETH_VALUE * skin_v) & (hsv[..., 1] <= TEETH_SATURATION * skin_s)
    teeth = empty.copy()
    teeth[r0:r1, c0:c1] = bright & mouth[r0:r1, c0:c1]
    return mouth, teeth


def _small_parts(mask: np.ndarray, max_area: float) -> np.ndarray:
    """bool [H, W]: the 8-connected parts of `mask` smaller than `max_area` pixels."""
    out = np.zeros(mask.shape, bool)
    rows, cols = _window(mask)
    count, ids, stats, _ = cv2.connectedComponentsWithStats(mask8(mask[rows, cols]), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < max_area
    small[0] = False
    out[rows, cols] = small[ids]
    return out


def head_ellipse(height: int, width: int, layout: FaceLayout) -> np.ndarray:
    """bool [H, W]: inside the head ellipse (HEAD_ELLIPSE about the face centre)."""
    dx, dy = _grid(height, width, layout)
    return (dx / HEAD_ELLIPSE[0]) ** 2 + (dy / HEAD_ELLIPSE[1]) ** 2 < 1.0


def head_region(height: int, width: int, layout: FaceLayout) -> np.ndarray:
    """bool [H, W]: inside the head ellipse or above the face centre, where clothes cannot be."""
    _, dy = _grid(height, width, layout)
    return head_ellipse(height, width, layout) | (dy < 0)


_OPEN_KERNEL = np.ones((3, 3), np.uint8)
"""Hair thinner than this is the mixed colour of the person's outline, not hair."""
_CLOSE_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
"""Fingers this close (the clothes seen between them) make one hand (hands_at_the_edge)."""


def _below_face(face: np.ndarray, layout: FaceLayout) -> np.ndarray:
    """int [W]: per column, the row where hanging regions start: just under the face polygon
    where the column crosses it, never above the mouth's level (HANG_FROM)."""
    height = face.shape[0]
    level = int(np.clip(round(layout.centre[1] + HANG_FROM * layout.height), 0, height))
    crossed = face.any(axis=0)
    bottom = height - np.argmax(face[::-1], axis=0)
    return np.where(crossed, np.maximum(bottom, level), level).astype(np.int32)


def neck_axis(points: np.ndarray) -> float:
    """The column the neck runs down about, from face mesh points ([478, 2+]): midway between
    the angles of the jaw. Under a turned head the chin swings out to the side while the neck
    stays beneath the head, and a neck band about the chin point takes in the hair hanging
    behind the neck's far side."""
    return float(points[list(JAW_ANGLE_POINTS), 0].mean())


def _neck_run(
    candidate: np.ndarray,
    posteriors: tuple[np.ndarray, np.ndarray, np.ndarray],
    layout: FaceLayout,
    start: np.ndarray,
    dx: np.ndarray,
) -> np.ndarray:
    """bool [h, w]: the neck below the chin, from the three class posteriors.

    Down from the chin it runs while the pixels are not clothes (skin, or the dark shadow under
    the chin, which colour alone calls hair), a little less willingly below NECK_FREE face heights;
    sideways it runs out from the NECK_CORE band about the neck's axis while the pixels are skin,
    not hair or clothes, so its sides follow the neck instead of a fixed width.
    """
    skin_p, hair_p, clothes_p = posteriors
    height, width = candidate.shape
    tiny = np.float32(1e-4)
    rows = np.arange(height, dtype=np.float32)[:, None]
    chin_row = layout.points[CHIN_POINT][1]
    length = np.maximum((rows - chin_row) / layout.height - NECK_FREE, 0.0) * NECK_LENGTH_COST
    down_odds = cv2.log(skin_p + hair_p + tiny) - cv2.log(clothes_p + tiny) - length
    axis = neck_axis(layout.points)
    columns = np.abs(np.arange(width, dtype=np.float32) - axis) < NECK_SIDE * layout.width
    band = candidate & columns[None, :]
    down = top_runs(band, down_odds, start, round(NECK_EDGE_SMOOTH * layout.width))
    side_odds = cv2.log(skin_p + tiny) - cv2.log(hair_p + clothes_p + tiny)
    half_core = NECK_CORE * layout.width
    right = int(np.clip(np.ceil(axis + half_core), 0, width))
    left = int(np.clip(np.floor(axis - half_core), 0, width))
    beside = np.zeros_like(candidate)
    from_axis = np.zeros(height, np.int32)
    smooth = round(NECK_EDGE_SMOOTH * layout.height)
    beside[:, right:] = top_runs(down[:, right:].T, side_odds[:, right:].T, from_axis, smooth).T
    beside[:, :left] = top_runs(
        down[:, :left][:, ::-1].T, side_odds[:, :left][:, ::-1].T, from_axis, smooth
    ).T[:, ::-1]
    beside[:, left:right] = down[:, left:right]
    return beside


def top_runs(
    candidate: np.ndarray, score: np.ndarray, start: np.ndarray, smooth: int = RUN_END_SMOOTH
) -> np.ndarray:
    """bool [H, W]: in each column, the run of `candidate` pixels from row `start[column]` down to
    the row that maximises the summed `score` of the candidate pixels above it (empty when no sum
    is positive).

    A region that hangs from above (hair from the head, the neck from the chin) ends once, where
    the evidence turns: one changepoint per column instead of a per-pixel vote, so the region is
    one piece with a single lower edge, and scattered pixels that look like it below its end
    (a dark print, a shadow) stay what they are.
    """
    height, width = candidate.shape
    out = np.zeros((height, width), bool)
    rows_of, cols_of = _window(candidate, pad=0)
    if not candidate[rows_of, cols_of].any():
        return out
    top = rows_of.start
    sub = candidate[rows_of, cols_of]
    rows = np.arange(top, rows_of.stop, dtype=np.int32)[:, None]
    below = rows >= np.asarray(start, np.int32)[None, cols_of]
    gains = np.where(sub & below, score[rows_of, cols_of], 0.0).astype(np.float32)
    total = np.cumsum(gains, axis=0)
    end = np.argmax(total, axis=0)
    end = np.where(total[end, np.arange(sub.shape[1])] > 0, end + top, -1)
    end = median_filter(end, size=max(1, smooth), mode="nearest")
    out[rows_of, cols_of] = sub & below & (rows <= end[None, :])
    return out


def split_person(
    person: np.ndarray,
    posteriors: np.ndarray,
    layout: FaceLayout | None,
    hair_differs: bool = True,
    texture: Callable[[int], np.ndarray] | None = None,
    texture_models: TextureModels | None = None,
) -> np.ndarray:
    """The semantic class map (without mouth and teeth) at the work resolution.

    Args:
        person: bool [h, w] person mask (segmenter, smoothed in time).
        posteriors: [3, h, w] P(skin, hair, clothes) (see class_posteriors); any numeric type
            (only compared with each other).
        layout: the tracked face at this resolution, or None when there is none near the frame
            (then the whole person is torso, and nothing is split off as another person).
        hair_differs: whether the hair colour differs from the skin (ColourModels); when it
            does, skin-coloured pixels above the face are forehead only close to the face (else
            blond hair), when it does not (a bald head) they are all skin.
        texture: gives float [h, w], the frame's local detail (see texture_map) from the row it
            is given down (zero above: only the rows below the face are asked for), or None: beside
            the neck, skin-coloured pixels with detail that join the hanging hair are fair hair
            (asked for only when hair hangs past the chin, or when `texture_models` use it).
        texture_models: the video's detail models; when they tell hair from skin, the detail
            weighs in with the colour below the face (not on the ears): the smooth, shadowed side
            of the neck is skin, strands over it are hair.
    """
    height, width = person.shape
    classes = np.where(person, np.uint8(C.TORSO), np.uint8(C.BACKGROUND))
    if layout is None:
        return classes
    face = face_mask(layout.points, height, width)
    person = person | face
    body = _components_touching(person, face)
    classes[person & ~body] = C.OTHER
    skin_p, hair_p, clothes_p = (np.asarray(p, np.float32) for p in posteriors)
    start = _below_face(face, layout)
    low = np.arange(height)[:, None] >= start[None, :]
    zone = ear_zone(height, width, layout)
    band = slice(int(start.min()), height)  # the rows below the face
    detail = None if texture is None else cache(partial(texture, band.start))
    if detail is not None and texture_models is not None and texture_models.informative:
        skin_p, hair_p, clothes_p = _with_detail(
            (skin_p, hair_p, clothes_p),
            texture_models.relative_likelihoods(detail()[band]),
            (low & ~zone)[band],
            band,
        )
    rest = body & ~face
    is_hair = (hair_p > skin_p) & (hair_p >= clothes_p)
    is_skin = (skin_p >= hair_p) & (skin_p >= clothes_p)
    is_clothes = ~is_hair & ~is_skin
    dx, dy = _grid(height, width, layout)
    upper = np.broadcast_to(dy < 0, (height, width))  # above the face centre: forehead, crown
    hair = rest & (is_hair | (upper & is_clothes))  # no clothes up there
    hair = cv2.morphologyEx(mask8(hair), cv2.MORPH_OPEN, _OPEN_KERNEL).view(bool)
    skin = rest & is_skin
    # below the mouth, hair hangs from the head and the neck from the chin: each is one run per
    # column that ends where the colour evidence turns (top_runs), not a pixel-by-pixel vote
    under_chin = _neck_run(rest & low, (skin_p, hair_p, clothes_p), layout, start, dx)
    core = low & np.broadcast_to(np.abs(dx) < NECK_CORE, (height, width))
    tiny = np.float32(1e-4)
    # beside the neck, skin-coloured pixels hanging from the head are fair hair or highlights
    fair = np.broadcast_to(np.abs(dx) >= NECK_HALF_WIDTH, (height, width)).astype(np.float32)
    hair_odds = cv2.log(hair_p + skin_p * fair + tiny) - cv2.log(
        clothes_p + skin_p * (1.0 - fair) + tiny
    )
    runs = top_runs(rest & ~under_chin & ~core, hair_odds, start)
    hair = np.where(low, runs & ~_outline_skim(runs, body, SKIM_HAIR * layout.height), hair)
    # a strand that hangs into the band about the chin, beside the neck, is hair when it joins the
    # hair outside the band; never on the chin's axis (the shadow under the chin), and only on
    # rows the neck reaches, so a dark collar under the neck stays torso
    beside_axis = np.broadcast_to(np.abs(dx) >= NECK_CORE / 2, (height, width))
    strands = core & rest & is_hair & beside_axis & under_chin.any(axis=1)[:, None]
    strands = _components_touching(strands | hair, hair) & strands
    hair |= strands
    under_chin &= ~strands
    if detail is not None:
        fair_hair = _fair_hair(hair, low, is_skin | under_chin, is_clothes, layout, detail)
        hair |= fair_hair
        under_chin &= ~fair_hair
        skin &= ~fair_hair
    skin = np.where(low, under_chin | (skin & ~core), skin)
    head_seed = cv2.dilate(mask8(face), np.ones((3, 3), np.uint8)).view(bool)
    # an ear (and what hangs from it) is attached to the head: ear-zone pixels that are not hair
    # (thin strands included) and reach the face's rim; a shoulder raised into the zone is not
    ears = rest & ~hair & ~is_hair & zone
    ears = _components_touching(ears | head_seed, head_seed) & ears
    neck = skin & ~upper & ~ears & (np.abs(dx) < NECK_HALF_WIDTH)
    # the neck is one piece hanging from the chin: skin patches on the clothes beside the jaw
    # are torso (they would stand as slivers in the torso images)
    neck_seed = head_seed & ~face & ~upper & (np.abs(dx) < NECK_CORE)
    neck = _components_touching(neck | neck_seed, neck_seed) & neck
    # hair hangs from the crown: it must connect to the head above the ears, not only to the
    # jaw (a dark collar beside the chin is not hair)
    crown_seed = head_seed & (dy < CROWN_SEED_BELOW)
    head = _components_touching((hair | skin | ears) & ~neck, crown_seed) | ears | face
    forehead = upper
    if hair_differs:
        raised = layout.points - (0.0, FOREHEAD_BAND * layout.height)
        forehead = upper & _fill(np.concatenate([layout.points, raised]), height, width)
    upper_skin = head & skin & forehead & ~ears
    hair = head & (hair | skin) & ~upper_skin & ~ears & ~face
    if hair_differs:  # a shadow or a crease on the forehead is skin, not an island of hair
        islands = hair & forehead & ~_components_touching(hair, hair & ~forehead)
        upper_skin |= islands
        hair &= ~islands
    torso = body & ~(hair | upper_skin | neck | ears | face)
    islands = _small_parts(torso, ISLAND_AREA * layout.width * layout.height)
    beside_hair = cv2.dilate(mask8(hair), np.ones((3, 3), np.uint8)).view(bool)
    hair |= islands & head_region(height, width, layout)
    hair |= _components_touching(islands, beside_hair)  # strands at the outline
    classes[body] = C.TORSO
    classes[hair] = C.HAIR
    classes[upper_skin] = C.FACE_SKIN
    classes[neck] = C.NECK
    classes[ears] = C.EARS
    classes[face] = C.FACE_SKIN
    classes[hair_fringe(classes, layout)] = C.HAIR
    classes[seam_slivers(classes, SEAM_SLIVER * layout.width)] = C.HAIR
    return classes


UNSURE_PERSON = 0.85
"""Torso where the segmenter's person probability (averaged over the time window) stays below
this is unsure: a chair, a toy or a shelf behind the shoulder that the segmenter half joins to
the person reads 0.4-0.7 where the body reads 1.0 (the shared clips)."""
UNSURE_AREA = 0.03
"""An unsure piece is an object only from this share of the face's box up: the person's own
soft outline is unsure too, but a thin rim that an opening removes, or a small nick."""
UNSURE_CLOTHES = 0.6
"""... and only when its colour is not the clothes' (mean P(clothes), averaged over the time
window, below this): the knit of a sleeve's ruffle against bright water is as unsure as a chair,
but reads 0.99-1.0 here where the chair reads 0.4."""
UNSURE_REACH = 1.5
"""... and only with its centre less than this many face heights below the face's: beside the
head and the shoulders. Lower down, clothes over a pale skirt or the lap are as unsure as any
object (a knotted tie hanging over a skirt the segmenter half misses)."""


def unsure_objects(
    classes: np.ndarray, person_prob: np.ndarray, clothes_p: np.ndarray, layout: FaceLayout
) -> np.ndarray:
    """bool [h, w]: torso pieces that are objects joined to the person, not the person: unsure
    by the segmenter (UNSURE_PERSON) after a 5x5 opening (the outline's rim goes), at least
    UNSURE_AREA big, not coloured like the clothes (UNSURE_CLOTHES; `clothes_p`: P(clothes) of
    class_posteriors), beside the head or the shoulders (UNSURE_REACH), touching the background
    and not the frame's edges (the body leaves the frame there, and a shoulder cut by the edge
    is as unsure as an object)."""
    unsure = mask8((classes == C.TORSO) & (person_prob < UNSURE_PERSON))
    pieces = cv2.morphologyEx(unsure, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    count, ids, stats, centres = cv2.connectedComponentsWithStats(pieces, connectivity=8)
    if count <= 1:
        return np.zeros(classes.shape, bool)
    outside = cv2.dilate(mask8(class_mask(classes, (C.BACKGROUND, C.OTHER))), _OPEN_KERNEL)
    keep = np.zeros(count, bool)
    keep[ids[outside.view(bool) & (ids > 0)]] = True
    for edge in (ids[0], ids[-1], ids[:, 0], ids[:, -1]):
        keep[edge] = False
    area = stats[:, cv2.CC_STAT_AREA]
    keep &= area >= UNSURE_AREA * layout.width * layout.height
    clothes = np.bincount(ids.ravel(), np.asarray(clothes_p, np.float64).ravel(), count)
    keep &= clothes < UNSURE_CLOTHES * area
    keep &= centres[:, 1] < layout.centre[1] + UNSURE_REACH * layout.height
    keep[0] = False
    return keep[ids]


EDGE_HAND_SKIN = 0.5
"""Torso whose skin posterior (by colour, averaged over the time window) is above this may be a
hand the detector missed ..."""
EDGE_HAND_AREA = (0.005, 0.6)
"""... in pieces from the first to the second share of the face's box: fingertips poking in at
the bottom edge (0.011-0.015 on the shared clips) up to a hand whose palm the edge cuts off
(0.15); a few stray pixels, or a whole skin-coloured front, are not."""


def hands_at_the_edge(classes: np.ndarray, skin_p: np.ndarray, layout: FaceLayout) -> np.ndarray:
    """bool [h, w]: hands entering from the frame's bottom or side edge, which the hand detector
    misses (it needs the palm): skin-coloured torso pieces (EDGE_HAND_SKIN, EDGE_HAND_AREA) that
    touch one of those edges and nothing but the torso and hands, after a closing that joins the
    fingers across the clothes seen between them, and grown by a pixel into the torso to take the
    fingers' darker rim. An arm, a bare shoulder or a bare chest is as skin-coloured, but meets
    the background or the neck."""
    torso = classes == C.TORSO
    skin = cv2.morphologyEx(
        mask8(torso & (skin_p > EDGE_HAND_SKIN)), cv2.MORPH_CLOSE, _CLOSE_KERNEL
    )
    skin &= mask8(torso)
    count, ids, stats, _ = cv2.connectedComponentsWithStats(skin, connectivity=8)
    if count <= 1:
        return np.zeros(classes.shape, bool)
    keep = np.zeros(count, bool)
    for edge in (ids[-1], ids[:, 0], ids[:, -1]):
        keep[edge] = True
    others = ~class_mask(classes, (C.TORSO, C.HAND))
    keep[ids[cv2.dilate(mask8(others), _OPEN_KERNEL).view(bool)]] = False
    area = stats[:, cv2.CC_STAT_AREA] / (layout.width * layout.height)
    keep &= (area >= EDGE_HAND_AREA[0]) & (area <= EDGE_HAND_AREA[1])
    keep[0] = False
    grown = cv2.dilate(mask8(keep[ids]), _OPEN_KERNEL).view(bool)
    return grown & torso


def _outline_skim(runs: np.ndarray, body: np.ndarray, max_length: float) -> np.ndarray:
    """bool [h, w]: the columns' runs (at most one per column, see top_runs) that begin right
    under the background and are shorter than `max_length`: the mixed pixels along the top of a
    dark shoulder, which colour calls hair, where hair hanging from the head would be long."""
    top = np.argmax(runs, axis=0)
    cols = np.arange(runs.shape[1])
    open_above = (top == 0) | ~body[np.maximum(top - 1, 0), cols]
    skim = runs.any(axis=0) & open_above & (np.count_nonzero(runs, axis=0) < max_length)
    return runs & skim[None, :]


def _outer_runs(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, from the hair's leftmost pixel leftward: the column of that hair pixel (-1 in
    rows without hair), the width of the torso run just left of it, and the class where that run
    ends (BACKGROUND, another class, or 255 at the frame's edge)."""
    height, width = classes.shape
    hair = classes == C.HAIR
    has = hair.any(axis=1)
    first = np.where(has, np.argmax(hair, axis=1), -1)
    # the last pixel left of the hair that is not torso ends the run (-1: the frame's edge)
    stops = (classes != C.TORSO) & (np.arange(width)[None, :] < first[:, None])
    end = np.where(stops.any(axis=1), width - 1 - np.argmax(stops[:, ::-1], axis=1), -1)
    widths = np.where(has, first - 1 - end, 0)
    ends = np.where(end >= 0, classes[np.arange(height), np.maximum(end, 0)], 255)
    return first, widths, ends


def seam_slivers(classes: np.ndarray, max_width: float) -> np.ndarray:
    """bool [h, w]: torso runs along a row no wider than `max_width` pixels with hair at one end
    and neck or hair at the other: the mixed pixels where hanging hair meets the side of the
    neck, which are neither skin enough for the neck nor hair enough for the hair, and the
    glimpses of clothes between two locks (either would stand in the torso images as a thin
    stripe)."""
    out = np.zeros(classes.shape, bool)
    hair = classes == C.HAIR
    if not hair.any():
        return out
    # a sliver touches the hair: only the hair's rows and columns, widened by a sliver, matter
    rows, cols = _window(hair, pad=int(np.ceil(max_width)) + 1)
    near = classes[rows, cols]
    height, width = near.shape
    torso = near == C.TORSO
    index = np.broadcast_to(np.arange(width, dtype=np.int16), near.shape)
    left = np.maximum.accumulate(np.where(torso, np.int16(-1), index), axis=1)
    right = np.minimum.accumulate(np.where(torso, np.int16(width), index)[:, ::-1], axis=1)[:, ::-1]
    row_index = np.arange(height)[:, None]
    left_class = np.where(left >= 0, near[row_index, np.maximum(left, 0)], 255)
    right_class = np.where(right < width, near[row_index, np.minimum(right, width - 1)], 255)
    beside_hair = (left_class == C.HAIR) | (right_class == C.HAIR)
    pair = (
        beside_hair & np.isin(left_class, (C.HAIR, C.NECK)) & np.isin(right_class, (C.HAIR, C.NECK))
    )
    out[rows, cols] = torso & pair & (right - left - 1 <= max_width)
    return out


def hair_fringe(classes: np.ndarray, layout: FaceLayout) -> np.ndarray:
    """bool [h, w]: torso pixels that are the hair's outer fringe, on either side.

    Hair lit from behind or thinning at its ends is a mix of its own colour and the background's,
    which can look like pale clothes: a thin torso strip then runs down the hair's outer side to
    the shoulder. Per row and side, take the torso run between the hair's outermost pixel and the
    background. The shoulder sticks out past the hair: its top is the highest row below the face
    centre where that run is HAIR_FRINGE face widths wide or more (or meets the frame's edge or
    another class). Above it, rows of narrower runs make strips; a strip is fringe when it is at
    least FRINGE_MIN_LENGTH face heights long and widens by at most FRINGE_GROWTH pixels a row
    on average: a fringe follows the hair down, while the sloping top of a shoulder beside the
    hair widens fast and stays torso.
    """
    out = np.zeros(classes.shape, bool)
    height, width = classes.shape
    limit = HAIR_FRINGE * layout.width
    centre = int(np.clip(round(layout.centre[1]), 0, height))
    rows = np.arange(height)
    cols = np.arange(width)[None, :]
    for flip in (False, True):
        first, widths, ends = _outer_runs(classes[:, ::-1] if flip else classes)
        run = (first >= 0) & (widths > 0)
        wide = run & ((widths >= limit) | (ends != C.BACKGROUND)) & (rows >= centre)
        shoulder = int(np.argmax(wide)) if wide.any() else height
        slim = run & (widths < limit) & (ends == C.BACKGROUND) & (rows < shoulder)
        fringe = np.zeros(height, bool)
        for top, end in zip(*true_runs(slim), strict=True):
            growth = (widths[end - 1] - widths[top]) / max(1, end - 1 - top)
            if end - top >= FRINGE_MIN_LENGTH * layout.height and growth <= FRINGE_GROWTH:
                fringe[top:end] = True
        if not fringe.any():
            continue
        strip = fringe[:, None] & (cols >= (first - widths)[:, None]) & (cols < first[:, None])
        out |= strip[:, ::-1] if flip else strip
    return out


def _with_detail(
    posteriors: tuple[np.ndarray, np.ndarray, np.ndarray],
    detail_likelihood: np.ndarray,
    where: np.ndarray,
    band: slice,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three posteriors times the (relative) likelihood of each pixel's detail, renormalised,
    where `where` is true in the rows `band` (colour and detail taken as independent evidence);
    unchanged elsewhere. `detail_likelihood` and `where` cover the band's rows only."""
    weighted = [p[band] * r for p, r in zip(posteriors, detail_likelihood, strict=True)]
    total = weighted[0] + weighted[1] + weighted[2] + np.float32(1e-12)
    out = tuple(p.copy() for p in posteriors)
    for p, w in zip(out, weighted, strict=True):
        np.copyto(p[band], w / total, where=where)
    return out  # type: ignore[return-value]


def _fair_hair(
    hair: np.ndarray,
    low: np.ndarray,
    skin_like: np.ndarray,
    clothes: np.ndarray,
    layout: FaceLayout,
    texture: Callable[[], np.ndarray],
) -> np.ndarray:
    """bool [h, w]: fair hair as pale as the skin beside the neck, which colour cannot tell but
    its strands can (skin is smooth): skin-like pixels below the mouth (`low`), FAIR_HAIR_FROM
    or more beside the chin and off the clothes' edge, with detail over HAIR_TEXTURE, that join
    hair hanging from the head past the chin. Empty (and no detail asked for) without such hair."""
    height, width = hair.shape
    chin_x, chin_y = layout.points[CHIN_POINT]
    below_chin = np.arange(height)[:, None] > chin_y
    hanging = _components_touching(hair, hair & ~low) & below_chin
    if not hanging.any():
        return np.zeros_like(hair)
    beside = np.abs(np.arange(width) - chin_x)[None, :] >= FAIR_HAIR_FROM * layout.width
    near_clothes = cv2.dilate(mask8(clothes & low), np.ones((5, 5), np.uint8)).view(bool)
    candidate = low & beside & skin_like & ~hair & ~near_clothes & (texture() > HAIR_TEXTURE)
    return _components_touching(candidate | hanging, hanging) & candidate


def texture_map(image_bgr: np.ndarray, size: tuple[int, int], first_row: int = 0) -> np.ndarray:
    """float32 [h, w] (size: width, height): the local detail of a frame, the magnitude of the
    Laplacian of its lightly blurred grey image (grey levels), averaged down to `size` and
    blurred: strands of hair show in it, skin is smooth. Only rows from `first_row` (at `size`)
    down are computed, the rest are zero: parsing asks for the rows below the face."""
    width, height = size
    out = np.zeros((height, width), np.float32)
    pad = int(np.ceil(3 * TEXTURE_BLUR)) + 1  # rows the blurs reach across the band's top
    top = min(max(0, first_row - pad), height - 1)
    full_top = int(round(top * image_bgr.shape[0] / height))
    above = min(full_top, 4)  # the full-resolution blur and Laplacian reach about 4 rows
    grey = cv2.cvtColor(image_bgr[full_top - above :], cv2.COLOR_BGR2GRAY).astype(np.float32)
    detail = np.abs(cv2.Laplacian(cv2.GaussianBlur(grey, (0, 0), 1.0), cv2.CV_32F))[above:]
    small = cv2.resize(detail, (width, height - top), interpolation=cv2.INTER_AREA)
    out[top:] = cv2.GaussianBlur(small, (0, 0), TEXTURE_BLUR)
    out[:first_row] = 0.0
    return out


def _grow(classes: np.ndarray, steps: int) -> np.ndarray:
    """Background pixels next to a class take it (4 neighbours, `steps` rounds): so that a finer
    person outline never lands on background of the coarse class map."""
    out = classes.copy()
    for _ in range(steps):
        for target, source in (
            ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
            ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
            ((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
            ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
        ):
            here, there = out[target], out[source]
            take = (here == C.BACKGROUND) & (there != C.BACKGROUND)
            here[take] = there[take]
    return out


_LOOSE = np.zeros(256, bool)
_LOOSE[[C.BACKGROUND, C.NECK, C.TORSO]] = True
"""Classes an earring's faint pixels may have before they are ears."""


def full_resolution(
    classes: np.ndarray,
    person: np.ndarray,
    image_bgr: np.ndarray,
    layout: FaceLayout | None,
    skin_hsv: tuple[float, float],
    faint_person: np.ndarray | None = None,
) -> np.ndarray:
    """The frame's class map: work-resolution classes inside the full-resolution person outline,
    the face polygon, earrings, and the mouth interior and teeth drawn at full resolution.

    Args:
        classes: uint8 [h, w] classes from `split_person`.
        person: bool [H, W] person mask at the frame's resolution.
        image_bgr: the frame, [H, W, 3].
        layout: the tracked face at the frame's resolution, or None.
        skin_hsv: median skin saturation and value, for the teeth.
        faint_person: bool [H, W] pixels the segmenter gives even a faint person probability:
            in the ear zones they are earrings (thin metal the segmenter half sees), so that an
            earring is head whole instead of part head, part background or torso.
    """
    height, width = person.shape
    steps = max(1, int(np.ceil(height / classes.shape[0])))
    grown = cv2.resize(_grow(classes, steps), (width, height), interpolation=cv2.INTER_NEAREST)
    if layout is None:
        return np.where(person, grown, np.uint8(C.BACKGROUND))
    face = face_mask(layout.points, height, width)
    inside = person | face
    out = grown
    out[inside & (out == C.BACKGROUND)] = C.TORSO  # the coarse map had nothing near
    out[~inside] = C.BACKGROUND
    if faint_person is not None:
        zone = ear_zone(height, width, layout)
        rows, cols = _window(zone)
        near = out[rows, cols]
        jewels = zone[rows, cols] & (faint_person | inside)[rows, cols] & _LOOSE[near]
        attached = (near == C.EARS) | face[rows, cols]  # hanging from an ear, not on a shoulder
        near[_components_touching(jewels | attached, attached) & jewels] = C.EARS
    out[face] = C.FACE_SKIN
    mouth, teeth = mouth_classes(image_bgr, layout, skin_hsv)
    out[mouth & face] = C.MOUTH_INTERIOR
    out[teeth & face] = C.TEETH
    return out


def bridge_neck(classes: np.ndarray) -> np.ndarray:
    """The class map with the torso's top pixel made neck in the columns between neck columns
    where the head sits right on the torso (a shirt collar against the chin). The torso images
    carry the neck up under the head column by column (RAD-NeRF), and such a column would get
    the torso's short carry: a transparent slot under the chin."""
    labels = CLASS_TO_LABEL[classes]
    head = labels == HEAD
    neck_cols, neck_top, _ = _top_per_column(labels == NECK)
    carried = neck_cols[_under_head(head, neck_cols, neck_top)]
    if carried.size < 2:
        return classes
    has_neck = np.zeros(classes.shape[1], bool)
    has_neck[neck_cols] = True
    cols, top, _ = _top_per_column(labels == TORSO)
    gap = (
        (cols > carried.min())
        & (cols < carried.max())
        & ~has_neck[cols]
        & _under_head(head, cols, top)
    )
    out = classes.copy()
    out[top[gap], cols[gap]] = C.NECK
    return out


def hand_regions(
    hands: Sequence[np.ndarray], height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """bool masks (hands, reach) [H, W] of hand landmarks (each [21, 2], pixels): the hull of
    each hand's points, and that hull widened by HAND_REACH of the hand's size, which holds the
    fingers' width and what the hand holds (a cup, a pen)."""
    tight = np.zeros((height, width), np.uint8)
    reach = np.zeros((height, width), np.uint8)
    for points in hands:
        hull = cv2.convexHull(np.round(points).astype(np.int32))
        cv2.fillConvexPoly(tight, hull, 1)
        cv2.fillConvexPoly(reach, hull, 1)
        size = float(np.max(points.max(axis=0) - points.min(axis=0)))
        cv2.polylines(reach, [hull], True, 1, max(1, round(2 * HAND_REACH * size)))
    return tight.view(bool), reach.view(bool)


def sort_hands(
    hands: np.ndarray, skin_p: np.ndarray, person_p: np.ndarray, layout: FaceLayout
) -> tuple[np.ndarray, np.ndarray]:
    """The detected hands (landmarks [K, 21, 2], pixels of skin_p's image) to label, and those
    over the head (not labelled).

    A hand counts only when its hull is mostly skin by the per-video colour models (mean of
    skin_p, P(skin | colour) from skin_by_colour, >= HAND_SKIN_MIN; the detector now and then
    finds a hand in a lock of hair or a knit pattern) and mostly person (mean of person_p, the
    segmenter's probability, >= HAND_PERSON_MIN). One whose centre lies on the head (inside
    the head ellipse) is not labelled: the detector also finds hands in ears and cheeks, and
    cutting a head pixel out of the training images is far worse than missing a hand there; it
    only counts towards covering the face.
    """
    if not len(hands):
        return hands, hands
    height, width = skin_p.shape
    head = head_ellipse(height, width, layout)
    real, on_head = [], []
    for points in hands:
        hull = np.zeros(skin_p.shape, np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(np.round(points).astype(np.int32)), 1)
        x, y = np.round(points.mean(axis=0)).astype(int)
        on_head.append(0 <= x < width and 0 <= y < height and bool(head[y, x]))
        real.append(
            cv2.countNonZero(hull) > 0
            and cv2.mean(skin_p, hull)[0] >= HAND_SKIN_MIN
            and cv2.mean(person_p, hull)[0] >= HAND_PERSON_MIN
        )
    real_hand, head_hand = np.asarray(real, bool), np.asarray(on_head, bool)
    return hands[real_hand & ~head_hand], hands[real_hand & head_hand]


def skin_off_head(person: np.ndarray, skin_p: np.ndarray, layout: FaceLayout) -> bool:
    """Whether a frame may show a hand the detector would keep: skin-coloured person pixels
    (person and skin_p of one work-resolution frame) outside the head (head_region) and the neck
    below the chin cover HAND_SKIN_AREA of the face box.

    sort_hands keeps only skin-coloured hands, so a frame without such pixels has none to label;
    the detector costs three times the segmenter and most talking heads keep their hands out of
    view, so it is asked only where this says yes (and now and then regardless).
    """
    height, width = skin_p.shape
    dx, _ = _grid(height, width, layout)
    chin = layout.points[CHIN_POINT][1]
    rows = np.arange(height, dtype=np.float32)[:, None]
    below_chin = (rows >= chin) & (rows < chin + NECK_FREE * layout.height)
    neck = (np.abs(dx) < NECK_HALF_WIDTH) & below_chin
    off_head = ~(head_region(height, width, layout) | neck)
    skin = (person > 0.5) & (skin_p > 0.5) & off_head
    return np.count_nonzero(skin) >= HAND_SKIN_AREA * layout.width * layout.height


def face_under_hands(hands: Sequence[np.ndarray], face: np.ndarray) -> float:
    """Share of the face polygon (bool [H, W]) under the hulls of these hands (pixels), counted
    only from HAND_FACE_MIN up: a real hand over the face hides much of it, a detection in an ear
    or on a cheek's edge little."""
    area = np.count_nonzero(face)
    if not len(hands) or not area:
        return 0.0
    tight, _ = hand_regions(hands, *face.shape)
    share = np.count_nonzero(tight & face) / area
    return share if share >= HAND_FACE_MIN else 0.0


def label_hands(classes: np.ndarray, hands: Sequence[np.ndarray]) -> np.ndarray:
    """The class map with hands and what they hold set to HAND: every pixel of a hand's hull, and
    every person or OTHER pixel within its reach (see hand_regions); the face only under the hull
    itself, so a hand near the face takes none of it."""
    if not len(hands):
        return classes
    tight, reach = hand_regions(hands, *classes.shape)
    lut = np.zeros(256, bool)
    lut[[int(c) for c in (*PERSON_CLASSES, C.OTHER)]] = True
    lut[[int(c) for c in (C.FACE_SKIN, C.MOUTH_INTERIOR, C.TEETH)]] = False
    out = classes.copy()
    out[tight | (reach & lut[classes])] = C.HAND
    return out


def keep_tracked_person(classes: np.ndarray, layout: FaceLayout | None) -> np.ndarray:
    """The class map with every person-class part not connected to the tracked face set to OTHER
    (other people, detached objects); any parser's output goes through this."""
    if layout is None:
        return classes
    height, width = classes.shape
    person = class_mask(classes, PERSON_CLASSES)
    face = face_mask(layout.points, height, width)
    if not (person & face).any():
        return classes
    body = _components_touching(person, face)
    out = classes.copy()
    out[person & ~body] = C.OTHER
    return out


def bisenet_classes(
    celeba: np.ndarray,
    image_bgr: np.ndarray,
    layout: FaceLayout | None,
    skin_hsv: tuple[float, float],
) -> np.ndarray:
    """Semantic classes from BiSeNet's CelebAMask-HQ classes: mapped, teeth found by colour in
    the mouth class, parts not connected to the tracked face set to OTHER."""
    classes = BISENET_TO_CLASS[np.minimum(celeba, len(BISENET_TO_CLASS) - 1)]
    mouth = classes == C.MOUTH_INTERIOR
    if mouth.any():
        hsv = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2HSV)
        skin_s, skin_v = skin_hsv
        teeth = (hsv[..., 2] >= TEETH_VALUE * skin_v) & (hsv[..., 1] <= TEETH_SATURATION * skin_s)
        classes[mouth & teeth] = C.TEETH
    return keep_tracked_person(classes, layout)


def appearance_samples(
    image_bgr: np.ndarray,
    person_prob: np.ndarray,
    layout: FaceLayout,
    detail: np.ndarray,
    hands: Sequence[np.ndarray] = (),
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Colour and detail samples of one (small) frame whose class the geometry tells: skin from
    the face (eroded, without eyes, brows and lips), hair from person pixels above the forehead,
    clothes from person pixels below the neck in the middle or far below the chin; none within
    the reach of a hand (landmarks [21, 2] each, pixels): hands held in front of the body would
    teach the clothes model skin, and then no hand would look like skin.

    Returns the histogram bins of skin, hair and clothes samples, their detail (`detail`, the
    frame's texture_map at this size) and the skin pixels (BGR [n, 3]).
    """
    height, width = person_prob.shape
    off_hands = ~hand_regions(hands, height, width)[1]
    person = (person_prob > 0.5) & off_hands
    face = face_mask(layout.points, height, width)
    erode = max(1, int(round(0.06 * layout.width)))
    core = cv2.erode(mask8(face), np.ones((2 * erode + 1, 2 * erode + 1), np.uint8)).view(bool)
    core &= off_hands
    for loop in (OUTER_LIPS, RIGHT_EYE, LEFT_EYE, RIGHT_BROW, LEFT_BROW):
        part = _fill(layout.points[loop], height, width)
        core &= ~cv2.dilate(mask8(part), np.ones((5, 5), np.uint8)).view(bool)
    dx, dy = _grid(height, width, layout)
    top = layout.centre[1] - layout.height / 2
    rows = np.arange(height, dtype=np.float32)[:, None]
    crown = (rows < top - 0.06 * layout.height) & (rows > top - 0.8 * layout.height)
    side = (np.abs(dy) < 0.3) & (np.abs(dx) > 0.62) & (np.abs(dx) < 1.0)
    hair = person & ~face & ((crown & (np.abs(dx) < 0.6)) | side)
    hair &= ~ear_zone(height, width, layout)
    radius = np.sqrt((dx / HEAD_ELLIPSE[0]) ** 2 + (dy / HEAD_ELLIPSE[1]) ** 2)
    # below the neck in the middle (long hair seldom hangs there), or far down at the sides
    clothes = person & ~face & (radius > 1.0) & (((dy > 0.75) & (np.abs(dx) < 0.5)) | (dy > 1.2))
    bins = quantise(image_bgr)
    regions = (core, hair, clothes)
    return [bins[r] for r in regions], [detail[r] for r in regions], image_bgr[core]


def skin_hsv(skin_bgr: np.ndarray) -> tuple[float, float]:
    """Median saturation and value (0-255) of skin pixels (BGR [n, 3]); a mid grey without any."""
    if skin_bgr.size == 0:
        return 128.0, 128.0
    hsv = cv2.cvtColor(skin_bgr.reshape(-1, 1, 3).astype(np.uint8), cv2.COLOR_BGR2HSV)
    return float(np.median(hsv[:, 0, 1])), float(np.median(hsv[:, 0, 2]))


def class_counts(classes: np.ndarray) -> np.ndarray:
    """int [N_CLASSES]: pixels of each semantic class."""
    hist = cv2.calcHist([classes], [0], None, [N_CLASSES], [0, N_CLASSES])
    return hist.ravel().astype(np.int64)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks (1.0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def _push_pull(colour: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill unknown pixels smoothly from known ones: a mask-weighted image pyramid (push), then
    coarse levels upsampled into the holes of finer ones (pull). No streaks, no seams."""
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    value = colour.astype(np.float32) * known[..., None]
    weight = known.astype(np.float32)
    while True:
        levels.append((value, weight))
        if min(weight.shape) <= 2:
            break
        value = cv2.pyrDown(value)
        weight = cv2.pyrDown(weight)
    value, weight = levels[-1]
    filled = value / np.maximum(weight, 1e-6)[..., None]
    filled[weight <= 1e-6] = colour[known].mean(axis=0) if known.any() else 0
    for value, weight in reversed(levels[:-1]):
        up = cv2.resize(filled, (weight.shape[1], weight.shape[0]), interpolation=cv2.INTER_LINEAR)
        alpha = np.minimum(weight, 1.0)[..., None]
        own = value / np.maximum(weight, 1e-6)[..., None]
        filled = alpha * own + (1.0 - alpha) * up
    out = np.clip(filled + 0.5, 0, 255).astype(np.uint8)
    out[known] = colour[known]
    return out


def distance_from_person(person: np.ndarray) -> np.ndarray:
    """float32 [H, W]: each pixel's Euclidean distance to the nearest `person` pixel (a finite
    stand-in for infinitely far, the frame's height plus width, when there is none)."""
    if not person.any():
        return np.full(person.shape, float(sum(person.shape)), np.float32)
    return exact_distance(np.where(person, 0, 255).astype(np.uint8))


CLEAR_MARGINS = 3.0
"""A frame counts in full towards a plate pixel it shows this many margins or more from the
person, and less and less closer in (nothing at the margin): a part of the person that the
segmenter missed hugs the outline, and makes the pixel look farther from the person than it is."""


class BackgroundPlate:
    """Streaming background plate: per pixel, the mean of the frames that show it clear of the
    person, each weighted by how clear (CLEAR_MARGINS); frames that only fill gaps count only
    where no other frame shows the pixel. Holds five arrays of the frame size (two colour sums,
    two weights, what gt shows), whatever the frame count."""

    def __init__(self, height: int, width: int, margin: float) -> None:
        self.margin = margin
        """Pixels this close to the person in a frame take nothing from it."""
        self.sums = [np.zeros((height, width, 3), np.float32) for _ in range(2)]
        self.weights = [np.zeros((height, width), np.float32) for _ in range(2)]
        """Weighted colour sums and summed weights of the frames that agree with the view (0)
        and of those that only fill gaps (1)."""
        self.shown = np.zeros((height, width), bool)
        """Pixels that are background in some added frame: gt images show the plate there."""

    def add(
        self,
        image_bgr: np.ndarray,
        person: np.ndarray,
        gaps_only: bool = False,
        distance: np.ndarray | None = None,
    ) -> None:
        """Add a frame's pixels farther than the margin from the person (`person`: every class of
        the tracked person, hair, ears and earrings included) to the plate's means. With
        `gaps_only`, the frame fills only the pixels no frame added without it shows: where the
        camera moves, views disagree, and their mean is soft where a pick of one would leave a
        seam against its neighbours. `distance`: the person's distance_from_person, when the
        caller has it already; for a frame resampled into the plate's view (a moving camera:
        views.resample_into_view), the image and `distance` are the resampled ones while `person`
        stays the frame's own, which says where gt images show the plate."""
        dist = distance_from_person(person) if distance is None else distance
        ramp = np.float32(1.0 / ((CLEAR_MARGINS - 1.0) * self.margin))
        weight = np.clip((dist - np.float32(self.margin)) * ramp, 0.0, 1.0)
        rows, cols = _window(weight > 0, pad=0)
        part = weight[rows, cols]
        kind = int(gaps_only)
        self.weights[kind][rows, cols] += part
        self.sums[kind][rows, cols] += image_bgr[rows, cols] * part[..., None]
        self.shown |= ~person

    def seen(self) -> np.ndarray:
        """bool [H, W]: pixels some frame showed farther than the margin from the person."""
        return (self.weights[0] > 0) | (self.weights[1] > 0)

    def filled_in_view(self) -> np.ndarray:
        """bool [H, W]: pixels the plate has to guess that training sees: never seen clear of
        the person, more than a margin from any pixel that was, yet background in some frame
        (so gt images show the plate there). A margin-wide rim next to seen pixels is filled
        well from beside it and does not count."""
        unseen = ~self.seen()
        far = exact_distance(mask8(unseen)) > self.margin
        return far & self.shown

    def plate(self) -> np.ndarray:
        """The plate: seen pixels as their mean, the rest filled smoothly from around them."""
        weight = np.where(self.weights[0] > 0, self.weights[0], self.weights[1])
        total = np.where((self.weights[0] > 0)[..., None], self.sums[0], self.sums[1])
        seen = weight > 0
        colour = np.zeros(total.shape, np.uint8)
        colour[seen] = np.clip(total[seen] / weight[seen][:, None] + 0.5, 0, 255).astype(np.uint8)
        if seen.all() or not seen.any():
            return colour
        return _push_pull(colour, seen)


MISMATCH_MIN_PIXELS = 100
"""A frame with fewer background pixels clear of the person is not compared with the plate."""


def background_mismatch(
    image_bgr: np.ndarray, person: np.ndarray, plate: np.ndarray, margin: float
) -> float | None:
    """Mean absolute difference (grey levels) between a frame and the plate over the frame's
    background farther than `margin` from the person (`person`: what the plate excludes); None
    when too little background shows. A static camera gives a few levels (noise, compression);
    a moving camera or scene tens."""
    return mean_difference(image_bgr, plate, distance_from_person(person) > margin)


def mean_difference(
    image_bgr: np.ndarray, other_bgr: np.ndarray, where: np.ndarray
) -> float | None:
    """Mean absolute difference (grey levels, over the three channels) between two images over
    the pixels of `where` (bool [H, W]); None under MISMATCH_MIN_PIXELS of them."""
    mask = mask8(where)
    if cv2.countNonZero(mask) < MISMATCH_MIN_PIXELS:
        return None
    return float(np.mean(cv2.mean(cv2.absdiff(image_bgr, other_bgr), mask)[:3]))


TORSO_EXTEND = 9
"""Rows the torso colour is carried up under the head (RAD-NeRF: L = 8 + 1)."""
NECK_PUSH_DOWN = 4
NECK_EXTEND = 48 + NECK_PUSH_DOWN + 1
"""Rows the neck colour is carried up under the head, sampled NECK_PUSH_DOWN rows below the
neck's top (RAD-NeRF's values)."""
NECK_DILATE = 3
"""The neck is first dilated vertically by this many rows (RAD-NeRF: 3 iterations of [1,1,1])."""
DARKEN = 0.98
"""Per-row darkening of the carried colours (RAD-NeRF)."""
BLUR_KERNEL = 5
BLUR_SIGMA = 4.0
"""RAD-NeRF calls GaussianBlur(img, (5, 5), cv2.BORDER_DEFAULT), i.e. sigma 4 (BORDER_DEFAULT's
value); kept so the torso images look the same."""


def region_jump(previous: np.ndarray, regions: np.ndarray) -> float:
    """The share of the person (in either of two uint8 region maps, 0 = background) whose region
    differs between them: 1 - IoU for one region, and head/neck/torso swaps count too. cv2 counts
    without the bool arrays numpy would allocate, at a twentieth of the time."""
    person = cv2.countNonZero(cv2.bitwise_or(previous, regions))
    changed = cv2.countNonZero(cv2.compare(previous, regions, cv2.CMP_NE))
    return 1.0 - (person - changed) / person if person else 0.0


def _top_per_column(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns where `mask` has a pixel, the first row of each and the column's pixel count."""
    by_column = cv2.transpose(mask8(mask))  # a column's pixels contiguous: scans run along rows
    counts = np.count_nonzero(by_column, axis=1)
    cols = np.flatnonzero(counts)
    return cols, np.argmax(by_column[cols], axis=1), counts[cols]


def _under_head(head: np.ndarray, cols: np.ndarray, top: np.ndarray) -> np.ndarray:
    """bool per column of _top_per_column: whether the first pixel (row `top`) sits right under
    a head pixel, where the torso images carry colour up under the head."""
    return (top > 0) & head[np.maximum(top - 1, 0), cols]


def _carry_up(
    image: np.ndarray, source: np.ndarray, rows: np.ndarray, cols: np.ndarray, length: int
) -> np.ndarray:
    """Paint `source[rows, cols]` upward over `length` rows, darkening; returns the painted mask."""
    painted = np.zeros(image.shape[:2], bool)
    if cols.size == 0:
        return painted
    colours = source[rows, cols].astype(np.float64)  # [m, 3]
    steps = np.arange(length)
    target_rows = rows[None, :] - steps[:, None]  # [L, m]
    target_cols = np.broadcast_to(cols[None, :], target_rows.shape)
    shaded = (colours[None] * (DARKEN**steps)[:, None, None]).astype(np.uint8)  # [L, m, 3]
    keep = target_rows >= 0
    image[target_rows[keep], target_cols[keep]] = shaded[keep]
    painted[target_rows[keep], target_cols[keep]] = True
    return painted


def _blur_where(image: np.ndarray, mask: np.ndarray) -> None:
    """Replace `image` under `mask` by its Gaussian blur, computed only around the mask.

    The blurred window is the mask's bounding box plus the kernel radius (clamped to the image),
    so every kept pixel sees the same neighbours as a whole-image blur would.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(mask.any(axis=0))
    pad = BLUR_KERNEL // 2
    r0, r1 = max(0, rows[0] - pad), min(mask.shape[0], rows[-1] + 1 + pad)
    c0, c1 = max(0, cols[0] - pad), min(mask.shape[1], cols[-1] + 1 + pad)
    window = image[r0:r1, c0:c1]
    blurred = cv2.GaussianBlur(window, (BLUR_KERNEL, BLUR_KERNEL), BLUR_SIGMA)
    cv2.copyTo(blurred, mask8(mask[r0:r1, c0:c1]), window)


def gt_and_torso(
    image_bgr: np.ndarray,
    labels: np.ndarray,
    plate: np.ndarray,
    keep_band: int = 0,
    hands: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The gt image (background replaced by the plate) and the BGRA torso image, as RAD-NeRF's
    extract_torso_and_gt, vectorised over columns. `labels` are the four AD-NeRF labels (see
    CLASS_TO_LABEL).

    Torso: head pixels take the plate; torso colour is carried TORSO_EXTEND rows up where the
    head sits right above the torso; the neck (dilated vertically) is carried NECK_EXTEND rows up
    from a little below its top where the head sits above it, and that carried area is blurred.
    Alpha is 255 on neck, torso and the carried areas, 0 elsewhere (colour 0 there too).

    With `keep_band` > 0 the gt image keeps the frame's own pixels in the background next to the
    person, fading to the plate `keep_band` pixels away: the plate is filled in (guessed) next to
    a person who never moves away, and the guess would show as a pale strip along the hair
    (RAD-NeRF pastes it); the fade leaves no edge where the camera moves and the frame's own
    background differs from the plate. `hands` (bool [H, W]) take the plate whatever their
    distance: a hand is in neither the plate nor the torso images, so its rim would float.
    """
    head = labels == HEAD
    torso = labels == TORSO
    gt = image_bgr.copy()
    cv2.copyTo(plate, mask8(labels == BACKGROUND), gt)
    out = gt.copy()
    cv2.copyTo(plate, mask8(head), out)

    cols, top, _ = _top_per_column(torso)
    under_head = _under_head(head, cols, top)
    torso_carried = _carry_up(out, gt, top[under_head], cols[under_head], TORSO_EXTEND)

    kernel = np.ones((2 * NECK_DILATE + 1, 1), np.uint8)
    neck = cv2.dilate(mask8(labels == NECK), kernel).astype(bool)
    cols, top, count = _top_per_column(neck)
    under_head = _under_head(head, cols, top)
    start = top[under_head] + np.minimum(count[under_head] - 1, NECK_PUSH_DOWN)
    neck_carried = _carry_up(out, gt, start, cols[under_head], NECK_EXTEND)
    _blur_where(out, neck_carried)

    keep = mask8(neck | torso | neck_carried | torso_carried)
    rgba = cv2.cvtColor(out, cv2.COLOR_BGR2BGRA)  # alpha 255 everywhere ...
    torso_image = cv2.bitwise_and(rgba, rgba, mask=keep)  # ... then colour and alpha 0 off `keep`
    if keep_band > 0:  # after the torso image, which stays RAD-NeRF's exactly
        _fade_to_plate(gt, image_bgr, labels == BACKGROUND, keep_band, hands)
    return gt, torso_image


AGREE_LEVELS = (6.0, 16.0)
"""Where the frame's own background just outside the fade band differs from the plate by up to
the first of these (grey levels, averaged over its neighbourhood), the band keeps its full fade;
from the second up it keeps none: a fixed camera's frames differ from the plate by 1-3 levels
(noise, compression), a moving camera's by tens, and its own pixels would show a band of other
scenery along the person (hair wisps are too sparse to move the neighbourhood's mean)."""
FEATHER = 2
"""Pixels over which gt fades from the frame to the plate where the camera moved."""
AGREE_REACH = 4
"""The neighbourhood (in band widths) over which the agreement is averaged."""


def _fade_to_plate(
    gt: np.ndarray,
    image_bgr: np.ndarray,
    background: np.ndarray,
    band: int,
    hands: np.ndarray | None,
) -> None:
    """Blend the frame's own pixels into `gt` (in place) over the background next to the person:
    weight 1 beside it, falling linearly to 0 at `band` pixels; never at `hands`; less and less
    where the frame's own background beyond the band disagrees with the plate (AGREE_LEVELS),
    down to a FEATHER-pixel fade that softens the outline's steps."""
    distance = cv2.distanceTransform(mask8(background), cv2.DIST_L2, cv2.DIST_MASK_3)
    ring = cv2.inRange(distance, 0.5, band + 1.0)  # the background beside the person
    if hands is not None:
        ring[hands] = 0
    index = np.flatnonzero(ring)  # flat indices: a tenth of boolean indexing's cost here
    near = distance.ravel()[index]
    own = np.minimum((band + 1.0 - near) * (1.0 / band), 1.0)
    own *= _agreement(gt, image_bgr, distance, band).ravel()[index]
    feather = min(band, FEATHER)
    own = np.maximum(own, np.clip((feather + 1.0 - near) * (1.0 / feather), 0.0, 1.0))[:, None]
    pixels = gt.reshape(-1, 3)  # a view: gt is a fresh contiguous copy
    mixed = own * image_bgr.reshape(-1, 3)[index] + (1.0 - own) * pixels[index]
    pixels[index] = (mixed + 0.5).astype(np.uint8)  # a blend of bytes stays within 0-255


def _agreement(
    gt: np.ndarray, image_bgr: np.ndarray, distance: np.ndarray, band: int
) -> np.ndarray:
    """float32 [H, W] in 0-1: how well the frame's own background, in the ring from one to three
    bands out (where gt is the plate), agrees with the plate around each pixel (AGREE_LEVELS,
    averaged over AGREE_REACH bands); 1 where no such ring lies near, and everywhere when the
    frame's background beyond that ring agrees as a whole: hair wisps the segmenter misses crowd
    the ring beside wispy hair, and only where the camera moved is it worth losing them."""
    difference = cv2.cvtColor(cv2.absdiff(image_bgr, gt), cv2.COLOR_BGR2GRAY)
    low, high = AGREE_LEVELS
    far = cv2.compare(distance, 3.0 * band + 1.0, cv2.CMP_GT)
    if cv2.countNonZero(far) >= MISMATCH_MIN_PIXELS:
        whole = (high - cv2.mean(difference, far)[0]) / (high - low)
        if whole >= 1.0:  # the frame as a whole agrees: a fixed camera's, and its wisps stay
            return np.ones(distance.shape, np.float32)
    outer = cv2.inRange(distance, band + 1.0, 3.0 * band + 1.0)
    size = (2 * AGREE_REACH * band + 1,) * 2
    weight = cv2.boxFilter(outer, cv2.CV_32F, size, normalize=False) * np.float32(1 / 255)
    masked = cv2.bitwise_and(difference, difference, mask=outer)
    total = cv2.boxFilter(masked, cv2.CV_32F, size, normalize=False)
    level = total / np.maximum(weight, 1.0)
    agree = np.clip((high - level) * (1.0 / (high - low)), 0.0, 1.0)
    agree[weight < 0.5] = 1.0
    return agree
