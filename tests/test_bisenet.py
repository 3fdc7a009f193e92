"""BiSeNet (face-parsing.PyTorch) in plain torch: strict loading by the original key names, and
the bisenet backend of task 5 end to end (random weights cost and behave like real ones here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import clip_path
from synth import write_video

from talkprep.config import build_config
from talkprep.console import Console
from talkprep.errors import MissingWeightsError, TaskError
from talkprep.geometry.masks import bgr_to_labels
from talkprep.io.images import frame_indices, read_image
from talkprep.manifest import manifest_path
from talkprep.models.bisenet import N_CLASSES, BiSeNet, load_bisenet, parse_classes
from talkprep.pipeline import Pipeline

ORIGINAL_KEYS = {
    # names and shapes as in face-parsing.PyTorch's model.py / resnet.py (79999_iter.pth)
    "cp.resnet.conv1.weight": (64, 3, 7, 7),
    "cp.resnet.bn1.running_mean": (64,),
    "cp.resnet.layer1.0.conv1.weight": (64, 64, 3, 3),
    "cp.resnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "cp.resnet.layer2.0.downsample.1.running_var": (128,),
    "cp.resnet.layer4.1.bn2.bias": (512,),
    "cp.arm16.conv.conv.weight": (128, 256, 3, 3),
    "cp.arm32.conv_atten.weight": (128, 128, 1, 1),
    "cp.arm32.bn_atten.weight": (128,),
    "cp.conv_head32.conv.weight": (128, 128, 3, 3),
    "cp.conv_head16.bn.running_mean": (128,),
    "cp.conv_avg.conv.weight": (128, 512, 1, 1),
    "ffm.convblk.conv.weight": (256, 256, 1, 1),
    "ffm.conv1.weight": (64, 256, 1, 1),
    "ffm.conv2.weight": (256, 64, 1, 1),
    "conv_out.conv.conv.weight": (256, 256, 3, 3),
    "conv_out.conv_out.weight": (19, 256, 1, 1),
    "conv_out16.conv.conv.weight": (64, 128, 3, 3),
    "conv_out16.conv_out.weight": (19, 64, 1, 1),
    "conv_out32.conv_out.weight": (19, 64, 1, 1),
}


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """The real key names and shapes with random values, without num_batches_tracked (as in
    checkpoints saved by older torch)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in BiSeNet().state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=generator) * 0.1
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bisenet") / "79999_iter.pth"
    torch.save(random_state_dict(), path)
    return path


def test_key_names_and_shapes_are_the_originals() -> None:
    state = BiSeNet().state_dict()
    for key, shape in ORIGINAL_KEYS.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    assert not any("fc" in k.split(".") for k in state)  # no ImageNet classifier
    weights = sum(v.numel() for k, v in state.items() if "num_batches" not in k)
    assert 13_000_000 < weights < 13_500_000


def test_loader_accepts_real_names(weights_file: Path) -> None:
    model = load_bisenet(weights_file)
    saved = torch.load(weights_file, weights_only=True)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())
    assert not model.training
    classes = parse_classes(model, [np.zeros((300, 400, 3), np.uint8)])
    assert classes.shape == (1, 512, 512) and classes.dtype == np.uint8
    assert classes.max() < N_CLASSES


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("missing", "1 missing key(s) (first ffm.conv1.weight)"),
        ("misshaped", "1 misshaped key(s) (first conv_out.conv_out.weight (18, 256, 1, 1)"),
        ("unexpected", "1 unexpected key(s) (first module.extra)"),
    ],
)
def test_loader_rejects_wrong_state_dict(tmp_path: Path, change: str, expected: str) -> None:
    state = random_state_dict()
    if change == "missing":
        del state["ffm.conv1.weight"]
    elif change == "misshaped":
        state["conv_out.conv_out.weight"] = torch.zeros(18, 256, 1, 1)
    else:
        state["module.extra"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(TaskError) as info:
        load_bisenet(path)
    message = str(info.value)
    assert expected in message and "--parser-weights" in message and "\n" not in message


def test_loader_missing_file_and_pickles(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="not found"):
        load_bisenet(tmp_path / "absent.pth")
    path = tmp_path / "pickle.pth"
    torch.save({"weights": object()}, path)
    with pytest.raises(TaskError, match="cannot read"):  # weights_only refuses arbitrary objects
        load_bisenet(path)


@pytest.mark.slow
def test_bisenet_backend_end_to_end(tmp_path: Path, weights_file: Path) -> None:
    """A few real frames through tasks 3, 4, 5 with --parser bisenet (the same code path)."""
    import av

    frames = []
    with av.open(str(clip_path("hdtf"))) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) == 3:
                break
    video = write_video(tmp_path / "short.mp4", frames)
    out = tmp_path / "ds"
    config = build_config(
        {
            "video": video,
            "out": out,
            "tasks": "3,4,5",
            "parser": "bisenet",
            "parser_weights": weights_file,
            "device": "cpu",
        }
    )
    outcomes = Pipeline(config, Console(quiet=True)).run()
    assert [o.status for o in outcomes] == ["done"] * 3, outcomes
    n = len(frame_indices(out / "ori_imgs", ".jpg"))
    assert n >= 2 and frame_indices(out / "parsing", ".png") == list(range(n))
    assert frame_indices(out / "semantics", ".png") == list(range(n))
    for i in range(n):
        image = read_image(out / "parsing" / f"{i}.png")
        assert image.shape == frames[0].shape
        assert bgr_to_labels(image)[1] == 0
    record = json.loads(manifest_path(out).read_text())["tasks"]["parsing"]
    assert record["figures"]["parser"] == "bisenet"
    assert "head_flicker_1_minus_iou" in record["figures"]
