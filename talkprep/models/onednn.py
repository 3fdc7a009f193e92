"""Linear layers computed by oneDNN on the CPU, in float32 as before.

torch sends a dense float32 nn.Linear to MKL; oneDNN (torch's other CPU library, which already
runs its convolutions) picks its kernels by the instructions the CPU has, AVX-512 included, where
MKL is known to choose by CPU vendor. On this project's 2-core AMD EPYC a 1000 x 1024 x 4096
product ran at about 100 GFLOP/s per core with MKL and 165 with oneDNN, and a HuBERT-large
forward pass over a 20 s chunk took 8.1 CPU-s with MKL and 5.6 with oneDNN, its outputs within
6e-6 of MKL's (the same float32 sums, added in another order): `python
benchmarks/bench_audio_features.py` measures the latter.
"""

from __future__ import annotations

import torch


class OneDnnLinear(torch.nn.Module):
    """An nn.Linear applied by oneDNN's inner product. It keeps the layer's own dense weights
    (often pages of the mapped weights file) and hands oneDNN a copy per call: a copy kept
    would double the model's memory, and making it costs 2 % of the product's time."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.weight = linear.weight
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.float().to_mkldnn()
        y = torch.ops.aten.mkldnn_linear(
            x.float().contiguous().to_mkldnn(), self.weight.float().to_mkldnn(), bias
        )
        return y.to_dense()


def onednn_linears(model: torch.nn.Module) -> int:
    """Replace every nn.Linear of a CPU model (for inference) by a OneDnnLinear; returns how many
    (0 where this torch has no oneDNN)."""
    if not torch.backends.mkldnn.is_available():
        return 0
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(parent, name, OneDnnLinear(child))
                replaced += 1
    return replaced
