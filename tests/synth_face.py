"""A real face shape and synthetic head motion for tracking tests (no shared data needed).

FACE_MM is MediaPipe's 478-point mesh of one frontal frame of a news-anchor clip, in head-frame
axes (x toward the subject's left, y up, z out of the face), millimetres, the outer eye corners
(points 33 and 263) 90 mm apart and centred on the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FACE_MM = np.array(
    [
    3.2, -66.6, 18.9, 0.1, -43.6, 38.6, 0.5, -48.9, 21.4, -6.2, -21.0, 32.7, -0.3, -36.9, 41.4,
    -0.8, -27.6, 40.0, -1.7, -4.9, 26.5, -42.7, -3.8, 0.8, -2.4, 9.1, 24.6, -2.8, 17.4, 27.1,
    -4.2, 52.7, 24.6, 3.4, -68.8, 17.7, 3.5, -70.7, 15.5, 3.6, -72.1, 12.4, 3.6, -73.2, 10.2, 3.9,
    -76.9, 10.7, 4.2, -81.2, 11.6, 4.4, -85.5, 10.1, 3.3, -92.2, 3.4, 0.3, -46.7, 35.0, -5.7,
    -46.2, 26.1, -69.0, 20.9, -24.4, -25.9, -8.1, 6.5, -31.8, -9.1, 6.0, -37.6, -9.3, 4.4, -45.1,
    -6.0, -0.4, -21.0, -6.5, 6.3, -36.6, 6.1, 10.5, -29.7, 6.2, 10.6, -42.4, 4.7, 8.4, -45.9, 2.5,
    5.7, -50.7, -10.0, -4.0, -19.7, -102.4, -6.2, -44.9, -2.3, -1.0, -70.7, -7.7, -31.4, -58.2,
    -6.0, -9.5, -30.6, -36.4, 8.8, -4.3, -65.8, 18.1, -3.4, -70.7, 14.4, -11.2, -67.8, 13.8,
    -16.2, -69.3, 8.1, -9.2, -71.0, 11.4, -13.8, -71.3, 6.3, -26.5, -77.3, -4.4, -5.1, -43.6,
    38.0, -6.3, -37.1, 40.6, -55.2, 5.5, 5.6, -18.5, -19.1, 12.3, -19.6, -40.4, 22.3, -20.1,
    -36.6, 20.7, -48.9, -35.9, 1.0, -6.3, -28.5, 37.9, -41.2, 10.4, 17.5, -49.6, 8.9, 12.5, -63.3,
    32.2, -10.5, -14.4, 6.1, 22.5, -23.4, 4.5, 8.5, -31.7, -70.4, -4.8, -61.4, -70.0, -57.0,
    -14.9, -44.1, 19.5, -9.9, -46.1, 20.0, -22.8, -71.2, -4.3, -21.3, -71.4, -2.6, -53.3, 12.9,
    10.0, -19.9, -42.9, 18.4, -29.6, 9.7, 20.9, -31.1, 14.7, 23.0, -39.1, 47.8, 15.5, -58.2, 24.4,
    1.3, -34.5, 34.2, 19.9, -59.2, 9.1, 0.7, -64.3, 15.4, -11.1, -3.9, -68.5, 16.8, -10.2, -69.5,
    12.7, -15.1, -70.3, 7.6, -13.5, -45.1, 18.2, -22.0, -71.3, -3.4, -18.9, -73.5, -0.1, -20.5,
    -71.6, -2.3, -11.8, -42.6, 28.7, -12.8, -72.0, 5.1, -8.2, -72.0, 8.6, -2.8, -72.0, 11.4, -5.6,
    -91.9, 2.9, -3.9, -85.1, 9.5, -3.8, -80.8, 10.7, -3.4, -76.4, 9.7, -2.9, -73.1, 9.2, -13.0,
    -72.4, 3.5, -14.2, -73.8, 4.1, -15.5, -75.8, 4.4, -16.5, -78.1, 3.0, -25.4, -60.0, 7.1, -69.7,
    -36.4, -61.3, 0.4, -47.8, 26.3, -16.4, -72.0, -0.1, -17.6, -72.7, 0.2, -7.7, -48.7, 19.6,
    -17.6, -46.4, 13.2, -8.7, -47.4, 20.1, -24.6, -23.0, 9.4, -34.5, -27.7, 7.2, -21.1, -39.3,
    16.7, -53.8, 41.4, 3.6, -48.7, 30.9, 11.3, -43.7, 15.5, 17.0, -21.2, -83.1, -1.8, -16.9, 13.6,
    26.1, -20.0, 35.5, 24.7, -23.1, 51.3, 22.5, -42.4, -8.3, 1.9, -57.3, -14.5, -8.1, -17.9, -5.0,
    5.8, -51.9, 0.1, 0.4, -14.5, -15.0, 15.2, -15.8, -38.6, 28.9, -64.7, -20.0, -15.8, -52.8,
    -19.2, -3.3, -44.9, -21.6, 2.1, -33.4, -20.1, 5.3, -25.0, -17.0, 7.0, -19.1, -14.1, 9.4, -7.3,
    -6.7, 23.6, -63.3, -33.8, -16.1, -57.2, 0.8, -2.1, -2.9, -46.6, 34.6, -18.2, -26.0, 13.9,
    -72.6, -6.6, -52.0, -14.6, -11.1, 11.0, -21.6, -39.3, 10.0, -47.6, -2.8, -2.2, -16.2, -34.0,
    27.0, -66.7, -52.8, -60.7, -18.1, -2.8, 4.5, -11.4, -30.6, 33.7, -47.3, -86.2, -27.3, -46.4,
    -94.1, -38.7, -69.1, -35.8, -38.8, -55.5, -77.2, -33.4, -67.8, 5.0, -22.8, -20.6, -109.8,
    -10.7, -2.2, -47.7, 25.8, -23.4, -30.8, 10.8, -63.6, -6.6, -16.0, -36.9, -5.6, 4.2, -31.9,
    -5.6, 5.7, -20.0, -74.5, -1.3, -61.7, -47.4, -20.3, -8.4, -119.6, -12.7, -28.0, -109.8, -24.2,
    -36.5, -103.2, -30.6, -3.6, 36.0, 26.4, 5.3, -120.4, -10.9, -27.0, -4.7, 6.2, -22.3, -3.5,
    5.6, -19.4, -3.1, 4.6, -61.9, 2.9, -8.3, -24.1, 1.7, 7.0, -29.6, 3.2, 8.3, -34.8, 2.9, 8.0,
    -39.6, 1.5, 6.3, -42.3, -0.2, 4.0, -71.9, 8.7, -39.4, -40.3, -4.9, 2.4, 0.9, -54.2, 19.0,
    -19.5, -56.4, 11.7, -14.8, -43.2, 22.2, -7.9, -54.7, 18.2, -2.0, 2.5, 23.0, -38.4, -95.2,
    -22.7, -29.8, -102.5, -17.2, -9.1, -114.6, -5.0, -54.2, -83.8, -48.4, -20.0, -1.0, 5.6, -10.7,
    -17.4, 23.7, 4.8, -115.5, -3.4, -19.0, -115.7, -17.3, -66.5, -50.7, -40.0, -8.4, -72.8, 6.6,
    -9.6, -75.3, 7.2, -10.5, -78.5, 7.7, -11.0, -82.3, 6.4, -14.4, -88.3, 1.2, -17.6, -71.4, 1.7,
    -18.9, -70.9, 1.7, -19.9, -70.3, 1.9, -29.8, -64.7, 1.3, -53.5, -50.7, -8.0, -10.8, -10.4,
    19.0, -14.2, 0.4, 9.7, -17.9, 0.4, 7.1, -16.4, -71.9, 1.0, -53.4, -67.2, -20.2, -9.3, -0.5,
    18.1, -17.2, -94.9, -3.0, -1.1, -19.8, 35.1, -6.8, -14.1, 28.9, -1.4, -12.6, 30.6, -14.5,
    -27.9, 22.2, 4.3, -108.3, 0.9, 3.7, -99.6, 2.0, -7.1, -99.1, 0.5, -32.0, -80.8, -8.4, -26.2,
    -44.9, 7.7, -25.2, -88.8, -6.2, -40.2, -44.7, 4.9, -31.6, -51.8, 5.1, -44.9, -55.4, -2.2,
    -8.6, -107.5, -0.9, -18.1, -31.3, 16.9, -36.8, -86.9, -14.7, -28.3, -95.1, -11.6, -37.5,
    -72.1, -7.5, -59.6, -59.0, -24.3, -45.1, -74.2, -13.5, -62.5, -64.6, -39.5, -36.2, -60.1, 0.4,
    -14.3, -21.6, 18.5, -13.7, -41.6, 30.1, -17.6, -42.7, 22.8, -11.3, -37.7, 35.3, -19.2, 4.4,
    12.2, -29.3, 7.0, 13.8, -38.1, 7.2, 13.4, -45.2, 6.0, 10.6, -49.7, 3.6, 6.4, -52.2, -4.4,
    -4.7, -70.7, -21.6, -35.5, -47.0, -12.8, -1.3, -40.9, -14.5, 2.3, -32.8, -14.0, 4.9, -25.3,
    -12.1, 6.0, -19.7, -9.9, 7.0, -15.9, -8.1, 7.7, -71.4, -21.3, -58.8, -17.6, -44.1, 19.5,
    -10.6, -23.9, 27.8, -9.5, -42.4, 35.0, -6.1, -45.3, 32.1, -9.4, -43.2, 31.8, -15.9, -45.8,
    17.1, -4.8, -46.1, 33.7, -4.2, -47.2, 26.0, -16.1, -3.3, 5.5, -13.0, -5.1, 9.2, -11.4, -6.8,
    13.7, -43.8, -1.4, 1.9, -48.0, 0.1, 1.8, 4.1, -20.4, 33.0, 42.6, 0.8, 2.6, 6.4, -45.5, 26.3,
    65.6, 27.3, -22.0, 25.2, -5.1, 7.7, 31.4, -5.3, 7.5, 37.4, -5.1, 6.1, 45.4, -1.6, 1.5, 19.9,
    -4.3, 7.3, 34.1, 10.3, 12.1, 26.8, 9.4, 11.8, 40.7, 9.7, 10.2, 44.9, 7.7, 7.6, 51.1, -5.5,
    -1.9, 27.6, -100.5, -5.5, 44.9, 2.3, 1.0, 70.3, -1.1, -28.6, 58.0, -1.5, -7.2, 31.2, -33.5,
    9.9, 10.5, -64.9, 18.3, 10.2, -69.9, 14.7, 17.6, -66.0, 14.3, 22.6, -66.9, 8.9, 15.9, -69.5,
    11.9, 20.6, -69.3, 7.0, 31.7, -74.4, -3.4, 5.3, -43.0, 38.1, 5.6, -36.5, 40.8, 52.6, 11.1,
    7.8, 17.2, -17.4, 13.0, 20.0, -38.5, 22.9, 20.2, -34.7, 21.3, 50.0, -31.2, 3.0, 4.8, -27.9,
    38.1, 37.2, 15.5, 19.1, 46.2, 14.5, 14.5, 58.3, 38.0, -8.4, 10.0, 8.2, 23.0, 20.6, 6.7, 9.5,
    36.1, -67.0, -3.6, 68.0, -64.3, -55.1, 15.7, -42.5, 19.8, 10.8, -45.0, 20.2, 29.6, -68.2,
    -3.3, 28.1, -68.6, -1.7, 49.1, 18.4, 12.1, 20.6, -40.9, 19.0, 25.3, 13.7, 22.0, 26.0, 18.7,
    24.1, 31.6, 51.2, 16.8, 53.2, 29.5, 3.5, 27.7, 37.1, 21.1, 55.9, 14.1, 3.0, 60.8, 21.1, -8.6,
    10.5, -67.7, 17.2, 16.8, -67.9, 13.3, 21.7, -68.1, 8.4, 14.3, -43.7, 18.6, 28.8, -68.4, -2.4,
    26.0, -71.0, 0.7, 27.3, -68.8, -1.5, 12.2, -41.4, 29.1, 19.6, -70.1, 5.8, 15.1, -70.7, 9.1,
    9.8, -71.3, 11.7, 12.1, -91.1, 3.2, 12.3, -84.3, 9.8, 11.8, -80.0, 11.0, 10.9, -75.7, 10.0,
    9.8, -72.4, 9.5, 19.7, -70.6, 4.1, 21.2, -71.9, 4.7, 22.8, -73.9, 5.1, 24.0, -76.1, 3.7, 28.2,
    -57.3, 8.0, 72.9, -29.9, -59.1, 23.1, -69.8, 0.7, 24.5, -70.3, 1.0, 8.9, -47.8, 19.8, 18.9,
    -44.6, 13.7, 9.8, -46.5, 20.3, 23.9, -20.6, 10.5, 34.5, -24.5, 8.7, 21.6, -37.2, 17.4, 47.4,
    46.3, 5.3, 42.6, 35.1, 13.0, 38.8, 20.4, 18.7, 26.8, -80.8, -1.0, 11.5, 16.1, 26.7, 12.9,
    37.1, 25.3, 15.1, 53.1, 23.1, 42.5, -3.9, 3.7, 58.4, -9.7, -5.8, 16.5, -3.4, 6.6, 50.9, 5.2,
    2.6, 12.7, -13.6, 15.8, 15.8, -37.0, 29.4, 64.9, -14.0, -13.2, 54.4, -14.2, -1.1, 46.3, -17.0,
    4.0, 34.0, -16.6, 6.8, 24.8, -14.5, 8.2, 18.1, -12.3, 10.2, 4.2, -6.1, 23.9, 64.9, -27.9,
    -13.5, 55.7, 5.7, 0.1, 3.5, -46.2, 34.7, 17.5, -24.2, 14.6, 72.6, 0.3, -49.4, 13.0, -9.6,
    11.6, 22.2, -37.2, 10.8, 47.6, 1.8, -0.1, 15.8, -32.4, 27.5, 71.6, -46.6, -58.6, 16.5, -1.2,
    5.4, 10.3, -29.5, 34.1, 54.5, -81.8, -25.5, 54.9, -89.6, -37.2, 71.6, -29.4, -36.1, 62.1,
    -72.0, -31.3, 65.7, 11.2, -20.2, 29.5, -107.8, -9.9, 3.0, -47.4, 25.9, 23.3, -28.5, 11.7,
    63.4, -2.4, -13.5, 36.5, -1.1, 5.8, 31.2, -1.5, 7.2, 27.2, -71.9, -0.4, 64.9, -41.6, -17.8,
    18.7, -118.4, -12.4, 37.5, -106.9, -23.2, 45.6, -99.6, -29.4, 26.1, -1.3, 7.4, 21.2, -1.1,
    6.6, 18.0, -1.3, 5.5, 59.8, 7.3, -5.8, 22.2, 3.3, 8.1, 27.5, 5.4, 9.6, 33.0, 6.0, 9.5, 38.3,
    5.4, 8.0, 41.6, 4.1, 5.9, 70.0, 15.5, -36.9, 40.0, -0.2, 4.1, 21.9, -54.3, 12.4, 15.4, -41.7,
    22.6, 9.8, -53.8, 18.4, 46.2, -91.6, -21.3, 38.2, -99.8, -16.2, 18.4, -113.5, -4.5, 62.0,
    -78.6, -46.7, 18.4, 0.5, 6.6, 8.7, -16.5, 24.1, 28.9, -113.6, -16.6, 70.5, -44.5, -37.5, 15.2,
    -71.5, 7.1, 16.7, -73.9, 7.7, 18.0, -77.1, 8.2, 19.0, -80.9, 6.9, 20.5, -86.7, 1.8, 24.4,
    -68.9, 2.5, 25.6, -68.2, 2.6, 26.6, -67.5, 2.8, 33.3, -61.5, 2.4, 56.5, -45.7, -5.9, 8.3,
    -9.5, 19.4, 11.4, 1.7, 10.2, 15.5, 1.9, 8.0, 23.2, -69.6, 1.7, 58.4, -62.0, -18.2, 5.7, 0.6,
    18.5, 24.2, -93.1, -2.3, 4.2, -13.5, 29.1, 13.7, -26.5, 22.7, 14.4, -98.2, 0.9, 37.6, -77.6,
    -7.2, 27.5, -42.3, 8.6, 31.6, -86.2, -5.2, 41.9, -40.8, 6.4, 33.8, -48.7, 6.2, 48.0, -51.1,
    -0.5, 16.9, -106.5, -0.5, 17.8, -29.5, 17.6, 43.4, -83.4, -13.4, 35.7, -92.4, -10.6, 42.2,
    -68.4, -6.1, 64.0, -53.4, -22.1, 50.5, -69.8, -11.9, 67.9, -58.8, -37.2, 39.4, -56.5, 1.8,
    12.9, -20.3, 19.0, 14.0, -40.2, 30.5, 18.2, -40.9, 23.3, 10.9, -36.6, 35.5, 15.8, 6.4, 12.9,
    26.0, 10.6, 14.9, 35.2, 12.0, 14.9, 42.9, 11.4, 12.5, 48.1, 9.2, 8.5, 52.1, 0.1, -2.6, 71.7,
    -15.0, -32.7, 47.7, -8.2, 0.7, 41.3, -10.4, 4.1, 32.8, -10.6, 6.3, 24.7, -9.5, 7.2, 18.6,
    -8.1, 7.9, 14.3, -6.7, 8.4, 73.1, -14.5, -56.3, 18.3, -42.3, 20.0, 9.0, -22.9, 28.2, 9.6,
    -41.5, 35.3, 6.7, -44.7, 32.2, 9.7, -42.3, 32.1, 16.9, -44.2, 17.5, 5.4, -45.6, 33.8, 5.0,
    -46.7, 26.1, 14.3, -1.9, 6.2, 10.9, -4.0, 9.7, 8.9, -5.6, 14.1, 43.5, 3.1, 3.8, 47.5, 5.2,
    3.8, -32.2, -0.1, 4.6, -26.3, 0.4, 4.6, -32.6, 5.0, 4.6, -38.2, -0.6, 4.6, -31.8, -5.3, 4.6,
    32.1, 2.9, 6.1, 38.5, 3.2, 6.1, 31.8, 8.0, 6.1, 25.7, 2.6, 6.1, 32.4, -2.3, 6.1
    ]
).reshape(478, 3)  # fmt: skip

HEAD_TO_CAMERA = np.diag([1.0, -1.0, -1.0])
"""A frontal head's rotation into the computer-vision camera (x right, y down, z forward)."""
BROW_POINTS = np.array([70, 63, 105, 66, 107, 336, 296, 334, 293, 300])
UPPER_LID_POINTS = np.array([160, 159, 158, 385, 386, 387])
SUBNASALE = 2


@dataclass(frozen=True)
class SyntheticSequence:
    """Landmarks of a moving, talking synthetic head and the truth behind them."""

    landmarks: np.ndarray
    """float32 [N,478,3] as the landmarks task writes them (x, y px; z relative, about px)."""
    rotation: np.ndarray
    """[N,3,3] head -> computer-vision camera."""
    translation: np.ndarray
    """[N,3] metres."""
    focal: float
    width: int
    height: int
    face: np.ndarray
    """[478,3] metres, head frame (the rest shape)."""


def rotations(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Head rotations [N,3,3] into the CV camera: yaw about the head's up axis, pitch, roll."""

    def axis(a: np.ndarray, i: int) -> np.ndarray:
        c, s = np.cos(a), np.sin(a)
        out = np.zeros((len(a), 3, 3))
        j, k = [(1, 2), (2, 0), (0, 1)][i]
        out[:, i, i] = 1
        out[:, j, j], out[:, k, k], out[:, j, k], out[:, k, j] = c, c, -s, s
        return out

    return HEAD_TO_CAMERA @ axis(yaw, 1) @ axis(pitch, 0) @ axis(roll, 2)


def synthetic_sequence(
    n: int = 250,
    fps: float = 25.0,
    focal: float = 1000.0,
    size: int = 512,
    distance: float = 0.6,
    yaw_deg: float = 20.0,
    pitch_deg: float = 8.0,
    roll_deg: float = 5.0,
    noise_px: float = 0.5,
    depth_bias: float = 0.75,
    missing: tuple[int, ...] = (),
    seed: int = 0,
) -> SyntheticSequence:
    """A head turning (yaw +-yaw_deg, pitch, roll, a few cm of translation) while it talks.

    Expression motion: the jaw and lips open and close, the brows rise, the upper lids blink;
    the rigid part of the face does not deform. Pixel noise is Gaussian (noise_px per axis).
    The z channel imitates MediaPipe's: relative depth in pixels, but flattened by
    ``depth_bias`` and noisy, so the tracker cannot take the true shape from it.
    """
    rng = np.random.default_rng(seed)
    face = FACE_MM / 1000.0
    t = np.arange(n) / fps
    yaw = np.radians(yaw_deg) * np.sin(2 * np.pi * t / 4.0)
    pitch = np.radians(pitch_deg) * np.sin(2 * np.pi * t / 3.0 + 1.0)
    roll = np.radians(roll_deg) * np.sin(2 * np.pi * t / 5.0 + 2.0)
    rot = rotations(pitch, yaw, roll)
    trans = np.stack(
        [
            0.02 * np.sin(2 * np.pi * t / 6.0),
            0.015 * np.sin(2 * np.pi * t / 7.0 + 0.5),
            distance + 0.03 * np.sin(2 * np.pi * t / 5.0),
        ],
        axis=1,
    )
    points = np.repeat(face[None], n, axis=0)
    below = face[:, 1] < face[SUBNASALE, 1] - 0.003
    jaw = 0.012 * (0.5 + 0.5 * np.sin(2 * np.pi * t * 1.7))  # metres of chin drop
    drop = (face[SUBNASALE, 1] - face[below, 1]) / 0.08
    points[:, below, 1] -= jaw[:, None] * drop[None]
    points[:, BROW_POINTS, 1] += 0.004 * np.clip(np.sin(2 * np.pi * t / 2.5), 0, None)[:, None]
    blink = (np.sin(2 * np.pi * t / 3.3) > 0.95).astype(float)
    points[:, UPPER_LID_POINTS, 1] -= 0.006 * blink[:, None]
    cam = np.einsum("nij,nkj->nki", rot, points) + trans[:, None, :]
    uv = focal * cam[..., :2] / cam[..., 2:3] + size / 2.0
    uv += rng.normal(0.0, noise_px, uv.shape)
    rel = cam[..., 2:3] - cam[..., 2:3].mean(axis=1, keepdims=True)
    z = (rel * depth_bias + rng.normal(0.0, 0.003, rel.shape)) * focal / distance
    landmarks = np.concatenate([uv, z], axis=-1).astype(np.float32)
    landmarks[list(missing)] = np.nan
    return SyntheticSequence(landmarks, rot, trans, focal, size, size, face)


@dataclass(frozen=True)
class SyntheticPortrait:
    """A drawn head-and-shoulders scene with every pixel's true class (talkprep.semantics)."""

    image: np.ndarray
    """uint8 [H, W, 3] BGR."""
    landmarks: np.ndarray
    """float32 [478, 3] as the landmarks task writes them (x, y px; z relative)."""
    classes: np.ndarray
    """uint8 [H, W] true semantic class; the second person and the object are OTHER."""
    person: np.ndarray
    """bool [H, W] what a segmenter that includes everything human-like or in front would give:
    the tracked person, the second person and the object."""
    second_person: np.ndarray
    """bool [H, W] the second person's pixels."""
    detached_object: np.ndarray
    """bool [H, W] the object's pixels (a bottle)."""
    celeba: np.ndarray
    """uint8 [H, W] the scene in BiSeNet's CelebAMask-HQ classes (what a perfect BiSeNet gives;
    the bottle as cloth, the second person as skin, hair and cloth)."""


SKIN_BGR = (125, 155, 205)
HAIR_BGR = (45, 60, 95)
CLOTHES_BGR = (150, 70, 35)
EARRING_BGR = (40, 190, 230)
BOTTLE_BGR = (60, 170, 60)


def synthetic_portrait(size: int = 512, seed: int = 0) -> SyntheticPortrait:
    """A frontal face (the real mesh FACE_MM projected) with long hair hanging over the
    shoulders, ears with gold earrings, a neck, clothes, a second person at the left edge and a
    bottle at the right, none of them touching the tracked person; `seed` draws the noise."""
    from talkprep.semantics import SemanticClass as C

    rng = np.random.default_rng(seed)
    focal, distance = 1.2 * size, 0.75
    cx = size / 2
    cam = (HEAD_TO_CAMERA @ (FACE_MM / 1000.0).T).T + (0.0, -0.03, distance)
    uv = focal * cam[:, :2] / cam[:, 2:3] + (cx, size * 0.42)
    z = (cam[:, 2:3] - cam[:, 2:3].mean()) * focal / distance
    landmarks = np.concatenate([uv, z], axis=1).astype(np.float32)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    face_w, face_h = hi - lo
    mid_x = (lo[0] + hi[0]) / 2
    chin = hi[1]
    classes = np.zeros((size, size), np.uint8)

    def ellipse(cls: int, centre: tuple[float, float], axes: tuple[float, float]) -> None:
        layer = np.zeros((size, size), np.uint8)
        cv2_ellipse(layer, centre, axes)
        classes[layer > 0] = cls

    # back to front: hair behind the head, clothes, neck, hair strands over the shoulders,
    # face, ears, earrings
    ellipse(C.HAIR, (mid_x, lo[1] + 0.42 * face_h), (0.66 * face_w, 0.62 * face_h))
    body = np.zeros((size, size), np.uint8)
    cv2_ellipse(body, (mid_x, chin + 0.55 * face_h + 1.1 * face_w), (1.25 * face_w, 1.1 * face_w))
    body[int(chin + 0.55 * face_h + 1.1 * face_w) :, :] = 0
    body[
        int(chin + 0.55 * face_h + 1.0 * face_w) :,
        int(mid_x - 1.25 * face_w) : int(mid_x + 1.25 * face_w),
    ] = 1
    classes[body > 0] = C.TORSO
    neck = np.zeros((size, size), np.uint8)
    half = 0.26 * face_w
    cv2.fillConvexPoly(
        neck,
        np.array(
            [
                [mid_x - half, chin - 0.2 * face_h],
                [mid_x + half, chin - 0.2 * face_h],
                [mid_x + 1.2 * half, chin + 0.6 * face_h],
                [mid_x - 1.2 * half, chin + 0.6 * face_h],
            ],
            np.int32,
        ),  # fmt: skip
        1,
    )
    classes[(neck > 0) & (classes != C.HAIR)] = C.NECK
    classes[(neck > 0) & (classes == C.HAIR) & (np.arange(size)[:, None] > chin - 0.2 * face_h)] = (
        C.NECK
    )
    for side in (-1, 1):
        strand = np.zeros((size, size), np.uint8)
        x0 = mid_x + side * 0.5 * face_w
        cv2.fillConvexPoly(
            strand,
            np.array(
                [
                    [x0 - 0.16 * face_w, lo[1] + 0.5 * face_h],
                    [x0 + 0.16 * face_w, lo[1] + 0.5 * face_h],
                    [x0 + side * 0.05 * face_w + 0.14 * face_w, chin + 0.9 * face_h],
                    [x0 + side * 0.05 * face_w - 0.14 * face_w, chin + 0.9 * face_h],
                ],
                np.int32,
            ),  # fmt: skip
            1,
        )
        classes[strand > 0] = C.HAIR
    face = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(np.round(uv).astype(np.int32)), 1)
    classes[face > 0] = C.FACE_SKIN
    for index, side in ((234, -1), (454, 1)):
        ex, ey = uv[index]
        ear = np.zeros((size, size), np.uint8)
        cv2_ellipse(ear, (ex + side * 0.05 * face_w, ey), (0.06 * face_w, 0.11 * face_h))
        classes[(ear > 0) & (face == 0)] = C.EARS
        ring = np.zeros((size, size), np.uint8)
        cv2_ellipse(
            ring, (ex + side * 0.05 * face_w, ey + 0.15 * face_h), (0.025 * face_w, 0.04 * face_h)
        )
        classes[(ring > 0) & (face == 0)] = C.EARS
    # the second person (left edge) and a bottle (right), apart from the tracked person
    second = np.zeros((size, size), np.uint8)
    cv2_ellipse(second, (0.07 * size, 0.45 * size), (0.06 * size, 0.08 * size))
    second[int(0.55 * size) :, : int(0.13 * size)] = 1
    bottle = np.zeros((size, size), np.uint8)
    bottle[int(0.45 * size) : int(0.8 * size), int(0.9 * size) : int(0.95 * size)] = 1
    cv2_ellipse(bottle, (0.925 * size, 0.44 * size), (0.012 * size, 0.05 * size))
    second_mask, bottle_mask = second > 0, bottle > 0
    tracked = classes != C.BACKGROUND
    assert not (tracked & (second_mask | bottle_mask)).any(), "scene parts overlap"
    classes[second_mask | bottle_mask] = C.OTHER

    image = np.empty((size, size, 3), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image[:] = (150, 165, 170)
    image += 25 * np.sin(2 * np.pi * (3 * xx + 2 * yy))[..., None]
    colours = {
        C.FACE_SKIN: SKIN_BGR,
        C.EARS: SKIN_BGR,
        C.NECK: tuple(0.8 * v for v in SKIN_BGR),
        C.HAIR: HAIR_BGR,
        C.TORSO: CLOTHES_BGR,
    }
    for cls, bgr in colours.items():
        image[classes == cls] = bgr
    earring = np.zeros((size, size), bool)
    for index, side in ((234, -1), (454, 1)):
        ex, ey = uv[index]
        ring = np.zeros((size, size), np.uint8)
        cv2_ellipse(
            ring, (ex + side * 0.05 * face_w, ey + 0.15 * face_h), (0.025 * face_w, 0.04 * face_h)
        )
        earring |= (ring > 0) & (face == 0)
    image[earring] = EARRING_BGR
    head_of_second = np.zeros((size, size), np.uint8)
    cv2_ellipse(head_of_second, (0.07 * size, 0.45 * size), (0.06 * size, 0.08 * size))
    image[second_mask] = CLOTHES_BGR
    image[head_of_second > 0] = SKIN_BGR
    image[bottle_mask] = BOTTLE_BGR
    image += rng.normal(0.0, 6.0, image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)

    celeba_of = {C.FACE_SKIN: 1, C.HAIR: 17, C.EARS: 7, C.NECK: 14, C.TORSO: 16}
    celeba = np.zeros((size, size), np.uint8)
    for cls, value in celeba_of.items():
        celeba[classes == cls] = value
    celeba[earring] = 9
    celeba[second_mask] = 16
    celeba[head_of_second > 0] = 1
    celeba[bottle_mask] = 16
    person = classes != C.BACKGROUND
    return SyntheticPortrait(image, landmarks, classes, person, second_mask, bottle_mask, celeba)


def cv2_ellipse(layer: np.ndarray, centre: tuple[float, float], axes: tuple[float, float]) -> None:
    """Fill an axis-aligned ellipse (float centre and axes) with 1."""
    cv2.ellipse(
        layer,
        (int(round(centre[0])), int(round(centre[1]))),
        (max(1, int(round(axes[0]))), max(1, int(round(axes[1])))),
        0,
        0,
        360,
        1,
        -1,
    )
