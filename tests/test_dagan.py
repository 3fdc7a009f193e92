"""DaGAN depth loader: files in monodepth2's exact layout (written here from the published key
names and shapes, random values) load strictly and give depth maps of the frame size through
task 8; wrong files fail with one clear line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import clip_path

from talkprep.config import build_config
from talkprep.console import Console
from talkprep.errors import MissingWeightsError, TaskError
from talkprep.manifest import manifest_path
from talkprep.models.dagan import MAX_DEPTH, MIN_DEPTH, DaganDepth
from talkprep.pipeline import Pipeline
from talkprep.tasks.depth import DAGAN_UNITS_PER_COUNT

INPUT_SIZE = 64
"""Network input side stored in the test's encoder.pth (DaGAN's own is 256; 64 keeps CPU tests
fast and exercises the resize both ways)."""
LAYOUTS = {18: (False, (2, 2, 2, 2)), 50: (True, (3, 4, 6, 3))}
ENCODER_CHANNELS = {18: (64, 64, 128, 256, 512), 50: (64, 256, 512, 1024, 2048)}
DECODER_CHANNELS = (16, 32, 64, 128, 256)


def encoder_spec(layers: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's resnet{18,50} state dict under monodepth2's `encoder.`."""
    bottleneck, blocks = LAYOUTS[layers]
    spec: dict[str, tuple[int, ...]] = {}

    def conv(name: str, out: int, inp: int, k: int) -> None:
        spec[f"{name}.weight"] = (out, inp, k, k)

    def bn(name: str, channels: int) -> None:
        for part in ("weight", "bias", "running_mean", "running_var"):
            spec[f"{name}.{part}"] = (channels,)
        spec[f"{name}.num_batches_tracked"] = ()

    conv("encoder.conv1", 64, 3, 7)
    bn("encoder.bn1", 64)
    expansion = 4 if bottleneck else 1
    inplanes = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True), 1):
        for b in range(count):
            p = f"encoder.layer{stage}.{b}"
            if bottleneck:
                conv(f"{p}.conv1", planes, inplanes, 1)
                bn(f"{p}.bn1", planes)
                conv(f"{p}.conv2", planes, planes, 3)
                bn(f"{p}.bn2", planes)
                conv(f"{p}.conv3", planes * 4, planes, 1)
                bn(f"{p}.bn3", planes * 4)
            else:
                conv(f"{p}.conv1", planes, inplanes, 3)
                bn(f"{p}.bn1", planes)
                conv(f"{p}.conv2", planes, planes, 3)
                bn(f"{p}.bn2", planes)
            if b == 0 and (stage > 1 or inplanes != planes * expansion):
                conv(f"{p}.downsample.0", planes * expansion, inplanes, 1)
                bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    spec["encoder.fc.weight"] = (1000, 512 * expansion)
    spec["encoder.fc.bias"] = (1000,)
    return spec


def decoder_spec(layers: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of monodepth2's DepthDecoder (scales 0-3): `decoder.{k}` in its order."""
    enc = ENCODER_CHANNELS[layers]
    spec: dict[str, tuple[int, ...]] = {}
    k = 0
    for i in range(4, -1, -1):
        channels_in = enc[-1] if i == 4 else DECODER_CHANNELS[i + 1]
        for channels in (channels_in, DECODER_CHANNELS[i] + (enc[i - 1] if i > 0 else 0)):
            spec[f"decoder.{k}.conv.conv.weight"] = (DECODER_CHANNELS[i], channels, 3, 3)
            spec[f"decoder.{k}.conv.conv.bias"] = (DECODER_CHANNELS[i],)
            k += 1
    for s in range(4):
        spec[f"decoder.{k}.conv.weight"] = (1, DECODER_CHANNELS[s], 3, 3)
        spec[f"decoder.{k}.conv.bias"] = (1,)
        k += 1
    return spec


def random_state(spec: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in spec.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = 0.05 * torch.randn(shape, generator=generator)
    return state


def write_weights(folder: Path, layers: int, size: int = INPUT_SIZE) -> Path:
    """encoder.pth (with height, width, use_stereo) and depth.pth as monodepth2 saves them."""
    folder.mkdir(parents=True, exist_ok=True)
    encoder = random_state(encoder_spec(layers), seed=layers)
    encoder.update({"height": size, "width": size, "use_stereo": False})
    torch.save(encoder, folder / "encoder.pth")
    torch.save(random_state(decoder_spec(layers), seed=layers + 1), folder / "depth.pth")
    return folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """weights(layers) -> a folder of random DaGAN files, written once per module."""
    root = tmp_path_factory.mktemp("dagan")
    made: dict[int, Path] = {}

    def get(layers: int) -> Path:
        if layers not in made:
            made[layers] = write_weights(root / f"resnet{layers}", layers)
        return made[layers]

    return get


def linked(source: Path, folder: Path) -> Path:
    """A folder whose encoder.pth and depth.pth link to those in `source` (no copies)."""
    folder.mkdir(parents=True)
    for name in ("encoder.pth", "depth.pth"):
        (folder / name).symlink_to(source / name)
    return folder


def test_published_layout_sizes() -> None:
    """The specs match torchvision's well-known state dict sizes and a few famous shapes."""
    assert len(encoder_spec(18)) == 122 and len(encoder_spec(50)) == 320
    assert encoder_spec(50)["encoder.layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert encoder_spec(18)["encoder.layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert decoder_spec(50)["decoder.0.conv.conv.weight"] == (256, 2048, 3, 3)
    assert decoder_spec(18)["decoder.13.conv.weight"] == (1, 128, 3, 3)


@pytest.mark.parametrize("layers", [18, 50])
def test_loads_strictly_and_keeps_frame_size(weights: Callable[[int], Path], layers: int) -> None:
    folder = weights(layers)
    frames = [np.random.default_rng(i).integers(0, 256, (90, 120, 3), np.uint8) for i in range(3)]
    with DaganDepth(folder) as model:
        assert model.info.num_layers == layers
        assert (model.info.height, model.info.width) == (INPUT_SIZE, INPUT_SIZE)
        depths = model.predict(frames)
    for depth in depths:
        assert depth.shape == (90, 120) and depth.dtype == np.float32
        assert (depth >= MIN_DEPTH * 0.999).all() and (depth <= MAX_DEPTH * 1.001).all()
    assert not np.array_equal(depths[0], depths[1])  # the content reaches the output


def test_missing_and_wrong_files(weights: Callable[[int], Path], tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="not a folder"):
        DaganDepth(tmp_path / "nowhere")
    folder = linked(weights(18), tmp_path / "w")
    (folder / "depth.pth").unlink()
    with pytest.raises(MissingWeightsError, match=r"depth\.pth is missing"):
        DaganDepth(folder)

    folder = linked(weights(18), tmp_path / "garbage")
    (folder / "encoder.pth").unlink()
    (folder / "encoder.pth").write_bytes(b"this is not a checkpoint")
    with pytest.raises(TaskError, match="not a torch state dict"):
        DaganDepth(folder)

    folder = linked(weights(18), tmp_path / "no_size")
    state = torch.load(folder / "encoder.pth", weights_only=True)
    del state["height"]
    (folder / "encoder.pth").unlink()
    torch.save(state, folder / "encoder.pth")
    with pytest.raises(TaskError, match="no 'height'/'width'"):
        DaganDepth(folder)

    folder = linked(weights(50), tmp_path / "mixed")
    (folder / "depth.pth").unlink()
    (folder / "depth.pth").symlink_to(weights(18) / "depth.pth")
    with pytest.raises(TaskError, match=r"depth\.pth does not match .* misshaped key"):
        DaganDepth(folder)

    folder = linked(weights(18), tmp_path / "extra")
    state = torch.load(folder / "encoder.pth", weights_only=True)
    state["encoder.layer1.0.extra.weight"] = torch.zeros(1)
    (folder / "encoder.pth").unlink()
    torch.save(state, folder / "encoder.pth")
    with pytest.raises(TaskError, match=r"1 unexpected key\(s\)"):
        DaganDepth(folder)


SHORT_FRAMES = 30
"""Frames of the short real clip the task-level tests run on (DaGAN on 200 frames is slow)."""


@pytest.fixture(scope="module")
def short_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 1.2 s of the HDTF clip, processed with tasks 3 and 4 (copy before changing)."""
    from itertools import islice

    from synth import write_video

    from talkprep.io.video import iter_frames

    source = clip_path("hdtf")
    root = tmp_path_factory.mktemp("dagan-clip")
    frames = [f.image for f in islice(iter_frames(source), SHORT_FRAMES)]
    video = write_video(root / "hdtf_short.mp4", frames, fps=25)
    folder = root / "dataset"
    config = build_config({"video": video, "out": folder, "tasks": "3,4"})
    outcomes = Pipeline(config, Console(quiet=True)).run()
    assert all(o.status == "done" for o in outcomes), outcomes
    return folder


def _run_depth(folder: Path, weights: Path) -> list:
    manifest = json.loads(manifest_path(folder).read_text())
    config = build_config(
        {
            "video": manifest["config"]["video"],
            "out": folder,
            "tasks": "8",
            "depth": "dagan",
            "depth_weights": weights,
            "device": "cpu",
        }
    )
    return Pipeline(config, Console(quiet=True)).run()


@pytest.mark.parametrize("layers", [50, 18])
def test_task8_dagan_writes_frame_sized_maps(
    short_dataset: Path, weights: Callable[[int], Path], tmp_path: Path, layers: int
) -> None:
    folder = tmp_path / "dataset"
    shutil.copytree(short_dataset, folder)
    outcomes = _run_depth(folder, weights(layers))
    assert [(o.name, o.status) for o in outcomes] == [("depth", "done")], outcomes
    manifest = json.loads(manifest_path(folder).read_text())
    frames = manifest["tasks"]["frames"]["info"]
    record = manifest["tasks"]["depth"]
    assert record["info"]["backend"] == "dagan" and record["info"]["resnet_layers"] == layers
    assert record["info"]["units_per_count"] == DAGAN_UNITS_PER_COUNT
    n = frames["n_frames"]
    assert n == SHORT_FRAMES
    assert len(list((folder / "depth").glob("*.png"))) == n
    for i in (0, n - 1):
        depth = cv2.imread(str(folder / "depth" / f"{i}.png"), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16 and depth.shape == (frames["height"], frames["width"])
        assert depth.min() >= MIN_DEPTH / DAGAN_UNITS_PER_COUNT - 1
        assert depth.max() <= MAX_DEPTH / DAGAN_UNITS_PER_COUNT + 1


def test_task8_wrong_weights_fail_in_one_line(short_dataset: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dataset"
    shutil.copytree(short_dataset, folder)
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "encoder.pth").write_bytes(b"\x00" * 64)
    (weights / "depth.pth").write_bytes(b"\x00" * 64)
    (outcome,) = _run_depth(folder, weights)
    assert outcome.status == "failed"
    assert "encoder.pth is not a torch state dict" in outcome.message
    assert "\n" not in outcome.message and "Traceback" not in outcome.message
