"""BiSeNet face parser of face-parsing.PyTorch (zllrunning), rebuilt in plain torch.

The module and attribute names follow the original `model.py` / `resnet.py` exactly, so that its
`79999_iter.pth` (19 CelebAMask-HQ classes) loads strictly by key name. Nothing here downloads:
the original fetched ImageNet ResNet-18 weights at construction; the trained state dict replaces
them anyway. Import this module only inside functions (it imports torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from talkprep.errors import MissingWeightsError, TaskError
from talkprep.models.state_dict import state_dict_mismatch

N_CLASSES = 19
INPUT_SIDE = 512
"""The parser was trained on 512x512 crops; frames are resized to this (as AD-NeRF does)."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_HINT = (
    "download 79999_iter.pth of face-parsing.PyTorch (as the AD-NeRF / RAD-NeRF README says) "
    "and pass it with --parser-weights, or use --parser mediapipe"
)


class ConvBNReLU(nn.Module):
    def __init__(self, in_chan: int, out_chan: int, ks: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_chan, out_chan, ks, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, in_chan: int, out_chan: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chan, out_chan, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chan)
        self.conv2 = nn.Conv2d(out_chan, out_chan, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chan)
        self.downsample: nn.Sequential | None = None
        if in_chan != out_chan or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_chan, out_chan, 1, stride, bias=False), nn.BatchNorm2d(out_chan)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = F.relu(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _layer(in_chan: int, out_chan: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(in_chan, out_chan, stride)]
    layers += [BasicBlock(out_chan, out_chan, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class Resnet18(nn.Module):
    """ResNet-18 without the classifier; returns the 1/8, 1/16 and 1/32 feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _layer(64, 64, 2, 1)
        self.layer2 = _layer(64, 128, 2, 2)
        self.layer3 = _layer(128, 256, 2, 2)
        self.layer4 = _layer(256, 512, 2, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


class AttentionRefinementModule(nn.Module):
    def __init__(self, in_chan: int, out_chan: int):
        super().__init__()
        self.conv = ConvBNReLU(in_chan, out_chan, 3, 1, 1)
        self.conv_atten = nn.Conv2d(out_chan, out_chan, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_chan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        atten = torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))
        return feat * atten


class ContextPath(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.resnet = Resnet18()
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_head16 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_avg = ConvBNReLU(512, 128, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        avg = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))
        avg_up = F.interpolate(avg, feat32.shape[2:], mode="nearest")
        feat32_sum = self.arm32(feat32) + avg_up
        feat32_up = self.conv_head32(F.interpolate(feat32_sum, feat16.shape[2:], mode="nearest"))
        feat16_sum = self.arm16(feat16) + feat32_up
        feat16_up = self.conv_head16(F.interpolate(feat16_sum, feat8.shape[2:], mode="nearest"))
        return feat8, feat16_up, feat32_up


class FeatureFusionModule(nn.Module):
    def __init__(self, in_chan: int, out_chan: int):
        super().__init__()
        self.convblk = ConvBNReLU(in_chan, out_chan, 1, 1, 0)
        self.conv1 = nn.Conv2d(out_chan, out_chan // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_chan // 4, out_chan, 1, bias=False)

    def forward(self, fsp: torch.Tensor, fcp: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([fsp, fcp], dim=1))
        atten = F.adaptive_avg_pool2d(feat, 1)
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(atten))))
        return feat * atten + feat


class BiSeNetOutput(nn.Module):
    def __init__(self, in_chan: int, mid_chan: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(in_chan, mid_chan, 3, 1, 1)
        self.conv_out = nn.Conv2d(mid_chan, n_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """The face parser. `forward` returns the main head's logits [B, 19, H, W] at input size.

    The two auxiliary heads (conv_out16, conv_out32) exist only so that the trained state dict
    loads strictly; inference, like AD-NeRF's test.py, uses the main output alone.
    """

    def __init__(self, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, n_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, n_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat_res8, feat_cp8, _ = self.cp(x)
        logits = self.conv_out(self.ffm(feat_res8, feat_cp8))
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise TaskError naming the first missing, unexpected or misshaped keys.

    `num_batches_tracked` buffers may be absent (older checkpoints): they are not weights.
    """
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    problem = state_dict_mismatch(expected, state, optional)
    if problem:
        raise TaskError(
            f"{source} is not a face-parsing.PyTorch BiSeNet state dict ({problem}); {WEIGHTS_HINT}"
        )


def load_bisenet(path: Path, device: str = "cpu") -> BiSeNet:
    """The parser with weights from a `79999_iter.pth` state dict, in eval mode on `device`.

    Raises:
        MissingWeightsError: the file does not exist.
        TaskError: the file is not a state dict of this network (names which keys are wrong).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"BiSeNet weights {path} not found; {WEIGHTS_HINT}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unpickler errors have no common base class
        raise TaskError(
            f"cannot read {path} as a torch state dict ({exc}); {WEIGHTS_HINT}"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TaskError(f"{path} does not hold a plain state dict of tensors; {WEIGHTS_HINT}")
    model = BiSeNet(N_CLASSES)
    check_state_dict(model, state, str(path))
    model.load_state_dict(state, strict=False)  # strictness checked above, bar num_batches_tracked
    return model.eval().to(device)


def preprocess(frames_bgr: list[np.ndarray], device: str = "cpu") -> torch.Tensor:
    """A float [B, 3, 512, 512] batch: resized bilinearly, RGB, ImageNet mean/std (as test.py)."""
    import cv2

    resized = [
        frame
        if frame.shape[:2] == (INPUT_SIDE, INPUT_SIDE)
        else cv2.resize(frame, (INPUT_SIDE, INPUT_SIDE), interpolation=cv2.INTER_LINEAR)
        for frame in frames_bgr
    ]
    batch = torch.from_numpy(np.stack(resized)[..., ::-1].copy()).to(device)
    batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (batch - mean) / std


@torch.no_grad()
def parse_classes(model: BiSeNet, frames_bgr: list[np.ndarray], device: str = "cpu") -> np.ndarray:
    """uint8 [B, 512, 512] CelebAMask-HQ class per pixel (0 background ... 18 hat)."""
    logits = model(preprocess(frames_bgr, device))
    return logits.argmax(1).to(torch.uint8).cpu().numpy()
