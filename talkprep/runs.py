"""Runs of True in 1-D bool arrays: gaps in tracking, kept stretches of frames, strips of rows,
unbroken pieces of a curve all begin and end the same way."""

from __future__ import annotations

import numpy as np


def true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and one-past-last index of each run of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, bool).astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
