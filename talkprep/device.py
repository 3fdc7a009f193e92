"""Where torch models run: CUDA when asked for or available under 'auto', else the CPU."""

from __future__ import annotations

import functools
import os

from talkprep.errors import UsageError


@functools.cache
def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without a GPU is a usage error.

    Imports torch only when needed, so runs that skip every task stay fast.
    """
    if requested == "cpu":
        return "cpu"
    if requested == "auto" and os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise UsageError("--device cuda: no CUDA GPU is visible to torch; use --device cpu or auto")
    return "cuda" if available else "cpu"
