"""DaGAN's face depth network (a monodepth2 ResNet encoder and depth decoder) in plain torch.

DaGAN (Hong et al., CVPR 2022) trains monodepth2's `ResnetEncoder` + `DepthDecoder` on face
videos and ships them as `encoder.pth` (the encoder's state dict plus `height`, `width` and
`use_stereo`) and `depth.pth`. The modules here reproduce monodepth2's parameter names exactly
(`encoder.layer1.0.conv1.weight`, `decoder.13.conv.weight`, ...) without torchvision, so both files
load strictly. Depth and width of the ResNet (18, 34, 50, ...) are read from the keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from talkprep.errors import MissingWeightsError, TaskError
from talkprep.models.closing import ClosingModel
from talkprep.models.state_dict import state_dict_mismatch

ENCODER_FILE = "encoder.pth"
DECODER_FILE = "depth.pth"
ENCODER_EXTRA_KEYS = ("height", "width", "use_stereo")
"""Non-tensor entries monodepth2's trainer adds to the encoder's state dict."""
IMAGE_MEAN, IMAGE_STD = 0.45, 0.225
"""monodepth2's ResnetEncoder normalises RGB in [0, 1] as (x - 0.45) / 0.225."""
MIN_DEPTH, MAX_DEPTH = 0.1, 100.0
"""disp_to_depth range used by monodepth2 and DaGAN."""
DECODER_CHANNELS = (16, 32, 64, 128, 256)
NUM_SCALES = 4
"""Disparity heads of the decoder (scales 0-3); only scale 0, full resolution, is evaluated."""
SIZE_MULTIPLE = 32
"""The encoder halves the image five times; the decoder's skips need sides divisible by 32."""
RESNET_NAMES = {
    (False, (2, 2, 2, 2)): 18,
    (False, (3, 4, 6, 3)): 34,
    (True, (3, 4, 6, 3)): 50,
    (True, (3, 4, 23, 3)): 101,
    (True, (3, 8, 36, 3)): 152,
}
"""ResNet depth from (bottleneck blocks?, blocks per stage)."""
WEIGHTS_HINT = (
    "put DaGAN's depth model (encoder.pth and depth.pth, the 'depth_face_model' folder linked from "
    "the harlanhong/CVPR2022-DaGAN README) in the --depth-weights folder"
)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """torchvision's ResNet layout (stride on the 3x3 conv), parameter names included."""

    def __init__(self, bottleneck: bool, blocks: tuple[int, int, int, int]):
        super().__init__()
        block = Bottleneck if bottleneck else BasicBlock
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        stages = []
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
            stride = 1 if index == 0 else 2
            layers = []
            for k in range(count):
                downsample = None
                if k == 0 and (stride != 1 or inplanes != planes * block.expansion):
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                        nn.BatchNorm2d(planes * block.expansion),
                    )
                layers.append(block(inplanes, planes, stride if k == 0 else 1, downsample))
                inplanes = planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, 1000)
        """ImageNet head: unused, kept so that monodepth2's saved state dicts load strictly."""


class ResnetEncoder(nn.Module):
    """monodepth2's encoder: five feature maps at 1/2 to 1/32 of the input size."""

    def __init__(self, bottleneck: bool, blocks: tuple[int, int, int, int]):
        super().__init__()
        self.encoder = ResNet(bottleneck, blocks)
        expansion = 4 if bottleneck else 1
        self.num_ch_enc = (64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        net = self.encoder
        x = (image - IMAGE_MEAN) / IMAGE_STD
        features = [net.relu(net.bn1(net.conv1(x)))]
        features.append(net.layer1(net.maxpool(features[-1])))
        features.append(net.layer2(features[-1]))
        features.append(net.layer3(features[-1]))
        features.append(net.layer4(features[-1]))
        return features


class Conv3x3(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = Conv3x3(in_channels, out_channels)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlin(self.conv(x))


class DepthDecoder(nn.Module):
    """monodepth2's decoder. Its modules sit in one ModuleList named `decoder`, in the order
    upconv(4,0), upconv(4,1), ..., upconv(0,1), dispconv(0..3), as monodepth2 registers them."""

    def __init__(self, num_ch_enc: tuple[int, ...]):
        super().__init__()
        modules: list[nn.Module] = []
        for i in range(4, -1, -1):
            channels_in = num_ch_enc[-1] if i == 4 else DECODER_CHANNELS[i + 1]
            modules.append(ConvBlock(channels_in, DECODER_CHANNELS[i]))
            skip = num_ch_enc[i - 1] if i > 0 else 0
            modules.append(ConvBlock(DECODER_CHANNELS[i] + skip, DECODER_CHANNELS[i]))
        modules.extend(Conv3x3(DECODER_CHANNELS[s], 1) for s in range(NUM_SCALES))
        self.decoder = nn.ModuleList(modules)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Sigmoid disparity at scale 0 (the input resolution), [B, 1, H, W]."""
        x = features[-1]
        for i in range(4, -1, -1):
            x = self.decoder[2 * (4 - i)](x)
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], 1)
            x = self.decoder[2 * (4 - i) + 1](x)
        return torch.sigmoid(self.decoder[10](x))


def disp_to_depth(disp: torch.Tensor) -> torch.Tensor:
    """monodepth2's conversion of sigmoid output to depth in [MIN_DEPTH, MAX_DEPTH]."""
    min_disp, max_disp = 1.0 / MAX_DEPTH, 1.0 / MIN_DEPTH
    return 1.0 / (min_disp + (max_disp - min_disp) * disp)


def resnet_layout(state: dict[str, Any], path: Path) -> tuple[bool, tuple[int, int, int, int]]:
    """(bottleneck?, blocks per stage) read from an encoder state dict's key names."""
    blocks = []
    for stage in range(1, 5):
        prefix = f"encoder.layer{stage}."
        indices = {int(k[len(prefix) :].split(".")[0]) for k in state if k.startswith(prefix)}
        if not indices:
            raise TaskError(
                f"{path} is not a monodepth2/DaGAN encoder (no '{prefix}*' keys); {WEIGHTS_HINT}"
            )
        blocks.append(max(indices) + 1)
    return "encoder.layer1.0.conv3.weight" in state, (blocks[0], blocks[1], blocks[2], blocks[3])


@dataclass(frozen=True)
class DepthModelInfo:
    """What was loaded: ResNet depth and the network's input size."""

    num_layers: int | None
    height: int
    width: int

    def to_dict(self) -> dict[str, Any]:
        return {"resnet_layers": self.num_layers, "input_height": self.height,
                "input_width": self.width}  # fmt: skip


class DaganDepth(ClosingModel):
    """Whole-frame relative depth from DaGAN's network. Use as a context manager."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise MissingWeightsError(f"--depth-weights {folder} is not a folder; {WEIGHTS_HINT}")
        encoder_state = _load_state(folder / ENCODER_FILE)
        decoder_state = _load_state(folder / DECODER_FILE)
        height, width = _input_size(encoder_state, folder / ENCODER_FILE)
        for key in ENCODER_EXTRA_KEYS:
            encoder_state.pop(key, None)
        bottleneck, blocks = resnet_layout(encoder_state, folder / ENCODER_FILE)
        self.encoder = ResnetEncoder(bottleneck, blocks)
        self.decoder = DepthDecoder(self.encoder.num_ch_enc)
        _load_strict(self.encoder, encoder_state, folder / ENCODER_FILE)
        _load_strict(self.decoder, decoder_state, folder / DECODER_FILE)
        self.device = device
        self.encoder.to(device).eval()
        self.decoder.to(device).eval()
        self.info = DepthModelInfo(RESNET_NAMES.get((bottleneck, blocks)), height, width)

    def predict(self, images_bgr: list[np.ndarray]) -> list[np.ndarray]:
        """Depth (DaGAN's relative units, MIN_DEPTH..MAX_DEPTH) for BGR uint8 frames, each
        resized to the network's input size and the result resized back to the frame's size."""
        size = (self.info.width, self.info.height)
        batch = np.stack(
            [
                cv2.resize(
                    cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
                    size,
                    interpolation=cv2.INTER_AREA
                    if image.shape[0] * image.shape[1] > size[0] * size[1]
                    else cv2.INTER_LINEAR,
                )
                for image in images_bgr
            ]
        )
        tensor = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        with torch.inference_mode():
            depth = disp_to_depth(self.decoder(self.encoder(tensor)))[:, 0].float().cpu().numpy()
        return [
            cv2.resize(d, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
            for d, image in zip(depth, images_bgr, strict=True)
        ]

    def close(self) -> None:
        del self.encoder, self.decoder
        if self.device == "cuda":
            torch.cuda.empty_cache()


def _load_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MissingWeightsError(f"{path} is missing; {WEIGHTS_HINT}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unpickler errors all mean "not a usable file"
        raise TaskError(
            f"{path} is not a torch state dict that loads with weights_only=True "
            f"({type(exc).__name__}); {WEIGHTS_HINT}"
        ) from exc
    if not isinstance(state, dict):
        raise TaskError(f"{path} holds a {type(state).__name__}, not a state dict; {WEIGHTS_HINT}")
    return dict(state)


def _input_size(state: dict[str, Any], path: Path) -> tuple[int, int]:
    try:
        height, width = int(state["height"]), int(state["width"])
    except (KeyError, TypeError, ValueError):
        raise TaskError(
            f"{path} has no 'height'/'width' entries, so it is not a monodepth2/DaGAN encoder.pth; "
            f"{WEIGHTS_HINT}"
        ) from None
    if height <= 0 or width <= 0 or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise TaskError(f"{path}: input size {height}x{width} is not a multiple of {SIZE_MULTIPLE}")
    return height, width


def _load_strict(module: nn.Module, state: dict[str, Any], path: Path) -> None:
    """load_state_dict(strict=True), with a one-line account of what does not match."""
    problem = state_dict_mismatch(module.state_dict(), state)
    if problem:
        raise TaskError(f"{path} does not match DaGAN's depth network: {problem}")
    module.load_state_dict(state, strict=True)
