"""--crop auto: one square box per video, the face about 44% of the side, never past the frame."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import clip_path
from synth import write_video

from talkprep.geometry.crop import (
    FACE_CENTRE_HEIGHT,
    FACE_FRACTION,
    CropBox,
    choose_crop_box,
    crop_square,
)
from talkprep.io.images import read_image
from talkprep.io.video import iter_frames
from talkprep.manifest import manifest_path


def _boxes(centres: np.ndarray, size: float) -> np.ndarray:
    return np.concatenate([centres - size / 2, centres + size / 2], axis=1)


def _inside(box: CropBox, width: int, height: int) -> bool:
    return box.x >= 0 and box.y >= 0 and box.x + box.side <= width and box.y + box.side <= height


def test_still_face_fills_its_share_a_little_above_the_centre():
    faces = _boxes(np.tile([[900.0, 500.0]], (20, 1)), 200.0)
    choice = choose_crop_box(faces, 1920, 1080)
    box = choice.box
    assert choice.note is None
    assert box.side == pytest.approx(200 / FACE_FRACTION, abs=1)
    assert choice.face_fraction == pytest.approx(FACE_FRACTION, abs=0.01)
    assert box.x + box.side / 2 == pytest.approx(900, abs=1)
    assert (500 - box.y) / box.side == pytest.approx(FACE_CENTRE_HEIGHT, abs=0.01)


def test_moving_face_stays_inside_the_box_with_room_for_hair():
    rng = np.random.default_rng(0)
    centres = np.stack([rng.uniform(700, 1100, 200), rng.uniform(450, 550, 200)], axis=1)
    faces = _boxes(centres, 150.0)
    choice = choose_crop_box(faces, 1920, 1080)
    box = choice.box
    assert _inside(box, 1920, 1080)
    inner = faces[(faces[:, 0] > np.percentile(faces[:, 0], 2)) & (faces[:, 2] < 1100 + 70)]
    assert (inner[:, 0] >= box.x).all() and (inner[:, 2] <= box.x + box.side).all()
    assert (faces[:, 1] - 0.3 * 150 >= box.y).all(), "hair above the face box must be inside"
    assert box.side > 150 / FACE_FRACTION
    assert choice.note is not None and "moves over a wide area" in choice.note


def test_face_at_the_frame_edge_shifts_the_box_instead_of_padding():
    faces = _boxes(np.tile([[60.0, 300.0]], (10, 1)), 100.0)
    choice = choose_crop_box(faces, 640, 480)
    assert choice.box.x == 0
    assert _inside(choice.box, 640, 480)
    assert choice.box.side == int(np.ceil(100 / FACE_FRACTION))


def test_frame_too_small_gives_the_largest_square_that_fits_and_a_note():
    faces = _boxes(np.tile([[360.0, 600.0]], (10, 1)), 460.0)
    choice = choose_crop_box(faces, 720, 1280)
    assert choice.box.side == 720 and choice.box.x == 0
    assert _inside(choice.box, 720, 1280)
    assert choice.wanted_side > 720
    assert choice.note is not None and "at most a 720 px square" in choice.note
    assert choice.face_fraction == pytest.approx(460 / 720, abs=0.01)
    assert choice.box.y <= 370 - 0.3 * 460, "the hair stays in; the shoulders give way"


def test_crop_square_resizes_and_refuses_boxes_past_the_frame():
    image = np.arange(100 * 120 * 3, dtype=np.uint8).reshape(100, 120, 3)
    same = crop_square(image, CropBox(10, 0, 100), 100)
    assert np.shares_memory(same, image), "no copy when the box is already the output size"
    assert np.array_equal(same, image[:, 10:110])
    assert crop_square(image, CropBox(0, 0, 50), 64).shape == (64, 64, 3)
    with pytest.raises(ValueError, match="leaves"):
        crop_square(image, CropBox(30, 0, 100), 100)


def _process(video: Path, out: Path, **options: object) -> dict:
    from talkprep.config import build_config
    from talkprep.console import Console
    from talkprep.pipeline import Pipeline

    values = {"video": video, "out": out, "tasks": "3", "crop": "auto", **options}
    outcomes = Pipeline(build_config(values), Console(quiet=True)).run()
    assert [o.status for o in outcomes] == ["done"], outcomes
    return json.loads(manifest_path(out).read_text())["tasks"]["frames"]


def _face(image: np.ndarray) -> np.ndarray:
    from talkprep.models.face_detector import FaceDetector

    with FaceDetector() as detector:
        faces = detector.detect(image)
    assert len(faces) >= 1, "the cropped frame should still show the face"
    return faces[np.argmax(faces[:, 4]), :4]


@pytest.fixture(scope="module")
def small_face_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The anchor clip's first 3 s shrunk to 40% and placed off-centre on a 720x720 grey field."""
    frames = []
    for frame in iter_frames(clip_path("anchor")):
        if frame.index >= 75:
            break
        small = cv2.resize(frame.image, (205, 205), interpolation=cv2.INTER_AREA)
        canvas = np.full((720, 720, 3), 90, np.uint8)
        canvas[330:535, 420:625] = small
        frames.append(canvas)
    return write_video(tmp_path_factory.mktemp("small") / "small_face.mp4", frames, fps=25)


def test_small_face_is_cropped_to_its_share_inside_the_frame(small_face_video, tmp_path):
    out = tmp_path / "small"
    record = _process(small_face_video, out)
    box = CropBox(**record["info"]["crop_box"])
    assert _inside(box, 720, 720)
    assert box.side < 400, "a 100 px face in a 720 px frame must be cropped in"
    assert not any("allows at most" in w for w in record["warnings"]), record["warnings"]
    assert any("enlarged 2." in w for w in record["warnings"]), "a 230 px box at 512 is soft"
    assert 0.35 <= record["figures"]["crop_face_fraction"] <= 0.45
    image = read_image(out / "ori_imgs" / "40.jpg")
    assert image.shape == (512, 512, 3)
    x0, y0, x1, y1 = _face(image)
    assert 0.35 < (x1 - x0) / 512 < 0.5, "the face should fill about 44% of the output"
    assert 0.3 * 512 < (x0 + x1) / 2 < 0.7 * 512
    assert y0 > 0.1 * 512, "room for hair above the face"
    grey = (np.abs(image.astype(int) - 90).max(axis=2) < 6).mean()
    assert grey < 0.5, "the crop should show the person, not the grey field"


def test_portrait_selfie_crop_is_the_largest_square_that_fits(processed):
    out = processed("selfie", tasks="3")
    record = json.loads(manifest_path(out).read_text())["tasks"]["frames"]
    box = CropBox(**record["info"]["crop_box"])
    assert box.side == 720 and box.x == 0, "the 720 px width is the largest square"
    assert _inside(box, 720, 1280)
    assert any("allows at most a 720 px square" in w for w in record["warnings"])
    image = read_image(out / "ori_imgs" / "0.jpg")
    assert image.shape == (512, 512, 3)
    x0, y0, x1, y1 = _face(image)
    assert 0.3 * 512 < (x0 + x1) / 2 < 0.7 * 512, "face near the horizontal centre"
    assert 0.25 * 512 < (y0 + y1) / 2 < 0.6 * 512, "face a little above the vertical centre"
    left = image[:, :8].astype(int)
    assert np.abs(left - left[:, :1]).max() > 20, "the left edge is image, not a smeared border"


def test_sampling_decodes_keyframes_alone_when_they_are_dense():
    import av

    from talkprep.models.face_detector import _sampled_frames, sampled_frames

    dense = clip_path("hdtf")  # a keyframe every 0.5 s
    with av.open(str(dense)) as container:
        stream = container.streams.video[0]
        keys = {
            round(float(p.pts * p.time_base), 3)
            for p in container.demux(stream)
            if p.is_keyframe and p.pts is not None
        }
    only_keys = list(_sampled_frames(dense, 0.5, "NONKEY"))
    assert {round(t, 3) for *_, t in only_keys} <= keys
    assert len(sampled_frames(dense, 0.5)) == len(only_keys) >= 8
    sparse = clip_path("anchor")  # keyframes 10 s apart: every reference frame is decoded
    samples = sampled_frames(sparse, 0.5)
    assert 36 <= len(samples) <= 41
    assert samples[0][0].shape == (256, 256, 3) and samples[0][1:] == (512, 512)
