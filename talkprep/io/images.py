"""Image codecs (OpenCV) with atomic writes; arrays are BGR uint8 as cv2 gives them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from talkprep.io.atomic import write_bytes

JPEG_QUALITY = 95


def encode_jpeg(image_bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("JPEG encoding failed")
    return data.tobytes()


def write_jpeg(
    path: str | os.PathLike[str], image_bgr: np.ndarray, quality: int = JPEG_QUALITY
) -> None:
    write_bytes(path, encode_jpeg(image_bgr, quality))


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Lossless PNG (uint8 gray/BGR/BGRA or uint16 gray)."""
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError("PNG encoding failed")
    write_bytes(path, data.tobytes())


def read_image(path: str | os.PathLike[str], flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Read an image (BGR by default); raises FileNotFoundError / ValueError instead of None."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, flags)
    if image is None:
        raise ValueError(f"{path} is not a readable image")
    return image


def frame_indices(folder: Path, suffix: str) -> list[int]:
    """Sorted integer names of files `{i}{suffix}` in `folder`, written as talkprep writes them
    (`7.jpg`; a zero-padded `0007.jpg` is another file, ignored like any other name)."""
    pattern = re.compile(rf"^(0|[1-9]\d*){re.escape(suffix)}$")
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = (pattern.match(name) for name in names)
    return sorted(int(m.group(1)) for m in found if m)


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(height, width) of a JPEG or PNG from its header alone, without decoding pixels.

    Raises ValueError when the file is neither a JPEG nor a PNG (or is cut short).
    """
    with open(path, "rb") as handle:
        head = handle.read(24)
        if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR":
            return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
        if not head.startswith(b"\xff\xd8"):
            raise ValueError(f"{path} is not a JPEG or PNG image")
        handle.seek(2)
        while True:
            marker = handle.read(4)
            if len(marker) < 4 or marker[0] != 0xFF:
                raise ValueError(f"{path}: JPEG header is damaged")
            length = int.from_bytes(marker[2:4], "big")
            if marker[1] in _JPEG_SOF:
                frame = handle.read(5)
                if len(frame) < 5:
                    raise ValueError(f"{path}: JPEG header is cut short")
                return int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big")
            handle.seek(length - 2, os.SEEK_CUR)
