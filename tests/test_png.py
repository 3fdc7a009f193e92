"""The fast PNG writer: lossless for gray, BGR, BGRA and 16-bit gray, readable by OpenCV and
Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from talkprep.io.png import encode_png, write_png_fast


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 3), (37, 53, 4), (1, 1, 4), (512, 512, 3)])
def test_round_trip(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    image[: shape[0] // 2] = 0  # flat areas as in masks
    data = encode_png(image)
    assert (cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) == image).all()
    pil = np.asarray(Image.open(io.BytesIO(data)))
    if image.ndim == 3:
        pil = pil[..., [2, 1, 0, 3][: shape[2]]]  # Pillow gives RGB(A)
    assert (pil == image).all()


def test_16_bit_gray_round_trip() -> None:
    """Depth maps: 16-bit samples (big-endian in the file) come back exactly."""
    rng = np.random.default_rng(1)
    depth = rng.integers(0, 65536, (41, 29), dtype=np.uint16)
    depth[:20] = 0
    data = encode_png(depth)
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    assert (back == depth).all()
    assert (np.asarray(Image.open(io.BytesIO(data))) == depth).all()


def test_writes_atomically_and_rejects_other_types(tmp_path: Path) -> None:
    path = tmp_path / "0.png"
    write_png_fast(path, np.full((4, 5), 7, np.uint8))
    assert (cv2.imread(str(path), cv2.IMREAD_UNCHANGED) == 7).all()
    assert [p.name for p in tmp_path.iterdir()] == ["0.png"]
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="16-bit: 1"):
        encode_png(np.zeros((4, 5, 3), np.uint16))
    with pytest.raises(ValueError, match="channels"):
        encode_png(np.zeros((4, 5, 2), np.uint8))
