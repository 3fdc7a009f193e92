"""A wav2vec2-family conv front end run over a long chunk in time segments, with the same values.

The front end's first layers hold the largest tensors of a forward pass (HuBERT-large: 512 channels
at 3.2 kHz, 131 MB per copy for a 20 s chunk, two or three copies alive at once). When every layer
is local in time (convolutions and a layer norm over channels, `feat_extract_norm == "layer"`),
output step t depends only on samples [t * stride, t * stride + receptive), so the steps can be
made a segment at a time and joined: the same numbers in a quarter of the memory. A group norm
(HuBERT-base, wav2vec2-base) spans the whole chunk, so those models keep the plain front end.
"""

from __future__ import annotations

import math
from typing import Any

import torch

SEGMENT_STEPS = 250
"""Output steps (5 s at 50 Hz) made at once."""


def conv_front_end(config: Any) -> tuple[int, int]:
    """(stride, receptive field) in samples of a wav2vec2-family conv front end."""
    strides = list(config.conv_stride)
    kernels = list(config.conv_kernel)
    receptive, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        receptive += (kernel - 1) * jump
        jump *= stride
    return math.prod(strides), receptive


class SegmentedFrontEnd(torch.nn.Module):
    """Runs `front_end` ([B, samples] -> [B, channels, steps]) over segments of the steps."""

    def __init__(
        self, front_end: torch.nn.Module, stride: int, receptive: int, segment_steps: int
    ) -> None:
        super().__init__()
        self.front_end = front_end
        self.stride = stride
        self.receptive = receptive
        self.segment_steps = segment_steps

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        steps = (input_values.shape[-1] - self.receptive) // self.stride + 1
        if steps <= self.segment_steps:
            return self.front_end(input_values)
        pieces = []
        for first in range(0, steps, self.segment_steps):
            last = min(steps, first + self.segment_steps)
            start, stop = first * self.stride, (last - 1) * self.stride + self.receptive
            pieces.append(self.front_end(input_values[..., start:stop]))
        return torch.cat(pieces, dim=-1)


def segment_front_end(model: Any, segment_steps: int = SEGMENT_STEPS) -> bool:
    """Swap in a segmented front end where that keeps the values; returns whether it did."""
    base = model.base_model
    if getattr(model.config, "feat_extract_norm", None) != "layer":
        return False
    if not isinstance(getattr(base, "feature_extractor", None), torch.nn.Module):
        return False
    stride, receptive = conv_front_end(model.config)
    base.feature_extractor = SegmentedFrontEnd(
        base.feature_extractor, stride, receptive, segment_steps
    )
    return True
