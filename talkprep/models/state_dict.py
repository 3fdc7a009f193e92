"""Strict state-dict checks shared by the model loaders: one line that says what does not match."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def state_dict_mismatch(
    expected: Mapping[str, torch.Tensor], state: Mapping[str, Any], optional: set[str] = frozenset()
) -> str | None:
    """Describe the missing, unexpected and misshaped keys of `state`, or None when it fits.

    Args:
        expected: the model's own `state_dict()`.
        state: the loaded file's dict.
        optional: keys that may be absent (e.g. BatchNorm's `num_batches_tracked`).
    """
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(getattr(state[k], 'shape', ()))} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and (not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape)
    ]
    parts = [
        f"{len(keys)} {what} key(s) (first {keys[0]})"
        for what, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("misshaped", misshaped),
        )
        if keys
    ]
    return "; ".join(parts) or None
