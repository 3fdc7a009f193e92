"""TalkingFaceDataset on a synthetic folder in the DESIGN.md format, and on a processed clip."""

from __future__ import annotations

import csv
import json
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from talkprep.dataset import FIELDS, TalkingFaceDataset
from talkprep.geometry.face_topology import LMS68
from talkprep.geometry.jaw_contour import landmarks68
from talkprep.manifest import manifest_path

N_FRAMES = 12
NO_FACE = 5
"""The synthetic frame with no face: NaN landmarks, in neither split."""
HEAD_BGR, NECK_BGR, TORSO_BGR = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _random_pose(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    pose = np.eye(4)
    pose[:3, :3] = q * np.sign(np.linalg.det(q))
    pose[:3, 3] = rng.normal(size=3) * 0.1 + (0, 0, 0.8)
    return pose


def _parsing_rows(i: int, size: int) -> tuple[int, int, int]:
    """Rows where head, neck and torso bands of frame i start (bands shift with i)."""
    top = size // 8 + i % 4
    return top, top + size // 4, top + size // 2


def write_synthetic_dataset(root: Path, n: int = N_FRAMES, size: int = 64, seed: int = 0) -> Path:
    """A complete folder in the DESIGN.md format whose contents encode each frame's index."""
    rng = np.random.default_rng(seed)
    for folder in ("ori_imgs", "gt_imgs", "torso_imgs", "parsing", "depth"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    landmarks = rng.uniform(0, size, size=(n, 478, 3)).astype(np.float32)
    landmarks[..., 2] -= size / 2
    landmarks[NO_FACE] = np.nan
    np.save(root / "landmarks.npy", landmarks)
    for i in range(n):
        level = 10 + 20 * (i % 12)
        image = np.full((size, size, 3), level, np.uint8)
        image[:, : size // 2] = (0, 0, 200)  # left half red in RGB terms
        cv2.imwrite(str(root / "ori_imgs" / f"{i}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 98])
        cv2.imwrite(str(root / "gt_imgs" / f"{i}.jpg"), 255 - image)
        parsing = np.full((size, size, 3), 255, np.uint8)
        head, neck, torso = _parsing_rows(i, size)
        parsing[head:neck], parsing[neck:torso], parsing[torso:] = HEAD_BGR, NECK_BGR, TORSO_BGR
        cv2.imwrite(str(root / "parsing" / f"{i}.png"), parsing)
        torso_img = np.zeros((size, size, 4), np.uint8)
        torso_img[size // 2 :] = (200, 100, level, 255)
        cv2.imwrite(str(root / "torso_imgs" / f"{i}.png"), torso_img)
        depth = np.zeros((size, size), np.uint16)
        depth[size // 4 : size // 2, size // 4 : size // 2] = 5000 + i
        cv2.imwrite(str(root / "depth" / f"{i}.png"), depth)
        if i != NO_FACE:
            lms = landmarks[i, LMS68, :2] + 0.25  # differs from the mapped mesh points
            np.savetxt(root / "ori_imgs" / f"{i}.lms", lms, "%f")
    cv2.imwrite(str(root / "bc.jpg"), np.full((size, size, 3), (30, 60, 90), np.uint8))
    rows = np.arange(n, dtype=np.float32)[:, None, None]
    features = rows + rng.uniform(0, 0.5, size=(n, 2, 1024)).astype(np.float32)
    np.save(root / "aud_hu.npy", features)
    blink = np.linspace(0, 4, n)
    lines = ["frame, timestamp, confidence, success, AU25_r, AU26_r, AU45_r"]
    lines += [f"{i + 1}, {i / 25:.3f}, 0.98, 1, 0.5, 0.2, {blink[i]:.4f}" for i in range(n)]
    (root / "au.csv").write_text("\n".join(lines) + "\n")
    header = {"focal_len": 1.2 * size, "cx": size / 2, "cy": size / 2, "h": size, "w": size}
    n_train = int(n * 10 / 11)
    for name, ids in (("train", range(n_train)), ("val", range(n_train, n))):
        frames = [
            {"img_id": i, "aud_id": i, "transform_matrix": _random_pose(rng).tolist()}
            for i in ids
            if i != NO_FACE
        ]
        (root / f"transforms_{name}.json").write_text(json.dumps({**header, "frames": frames}))
    return root


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return write_synthetic_dataset(tmp_path / "ds")


def _json(folder: Path, split: str) -> dict:
    return json.loads((folder / f"transforms_{split}.json").read_text())


def reference_audio_window(features: np.ndarray, index: int) -> torch.Tensor:
    """RAD-NeRF/ER-NeRF get_audio_features(att_mode=2) on features permuted to [N, C, T]."""
    feats = torch.from_numpy(features).float().permute(0, 2, 1)
    left, right, pad_left, pad_right = index - 4, index + 4, 0, 0
    if left < 0:
        pad_left, left = -left, 0
    if right > feats.shape[0]:
        pad_right, right = right - feats.shape[0], feats.shape[0]
    auds = feats[left:right]
    if pad_left > 0:
        auds = torch.cat([torch.zeros(pad_left, *auds.shape[1:]), auds], dim=0)
    if pad_right > 0:
        auds = torch.cat([auds, torch.zeros(pad_right, *auds.shape[1:])], dim=0)
    return auds


def assert_item_contract(item: dict[str, torch.Tensor], size: tuple[int, int]) -> None:
    """Every field's shape, dtype and range (shared by the synthetic and real-clip tests)."""
    height, width = size
    for key in ("image", "gt_image", "background"):
        assert item[key].shape == (3, height, width) and item[key].dtype == torch.float32, key
        assert item[key].min() >= 0.0 and item[key].max() <= 1.0, key
    assert item["torso"].shape == (4, height, width) and item["torso"].dtype == torch.float32
    assert item["torso"].min() >= 0.0 and item["torso"].max() <= 1.0
    assert item["parsing"].shape == (height, width) and item["parsing"].dtype == torch.uint8
    assert set(item["parsing"].unique().tolist()) <= {0, 1, 2, 3}
    assert item["landmarks"].shape == (478, 3) and item["landmarks"].dtype == torch.float32
    assert item["lms68"].shape == (68, 2) and item["lms68"].dtype == torch.float32
    for key in ("landmarks", "lms68"):
        xy = item[key][:, :2]
        assert torch.isfinite(xy).all(), key
        assert (xy > -0.5 * width).all() and (xy < 1.5 * width).all(), key
    pose = item["pose"]
    assert pose.shape == (4, 4) and pose.dtype == torch.float32
    rotation = pose[:3, :3].double()
    assert torch.allclose(rotation @ rotation.T, torch.eye(3, dtype=torch.float64), atol=1e-4)
    assert torch.equal(pose[3], torch.tensor([0.0, 0.0, 0.0, 1.0]))
    assert item["intrinsics"].shape == (4,) and item["intrinsics"].dtype == torch.float32
    assert (item["intrinsics"] > 0).all()
    assert item["audio"].dtype == torch.float32 and item["audio"].shape[0] == 8
    assert item["eye"].shape == (1,) and 0.0 <= item["eye"].item() <= 1.0
    assert item["depth"].shape == (height, width) and item["depth"].dtype == torch.float32
    assert item["depth"].min() >= 0.0 and item["depth"].max() < 10.0  # metres
    assert item["index"].dtype == torch.int64 and item["index"].ndim == 0


def assert_items_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]) or torch.allclose(a[key], b[key], equal_nan=True), key


# ------------------------------------------------------------------------- synthetic folder


def test_every_field_has_its_shape_dtype_and_value(folder: Path) -> None:
    data = TalkingFaceDataset(folder, split="train")
    assert data.fields == FIELDS
    assert len(data) == int(N_FRAMES * 10 / 11) - 1
    assert data.frame_ids.tolist() == [i for i in range(10) if i != NO_FACE]
    for k in (0, 3, len(data) - 1):
        item = data[k]
        i = int(data.frame_ids[k])
        assert item["index"].item() == i
        assert_item_contract(item, (64, 64))
        # RGB order: the left half was written BGR (0, 0, 200)
        assert abs(item["image"][0, :, :20].mean().item() - 200 / 255) < 0.02
        assert item["image"][2, :, :20].mean().item() < 0.02
        level = (10 + 20 * i) / 255
        assert abs(item["image"][1, :, 40:].mean().item() - level) < 0.02
        assert abs(item["gt_image"][1, :, 40:].mean().item() - (1 - level)) < 0.02
        head, neck, torso = _parsing_rows(i, 64)
        expected = torch.zeros(64, 64, dtype=torch.uint8)
        expected[head:neck], expected[neck:torso], expected[torso:] = 1, 2, 3
        assert torch.equal(item["parsing"], expected)
        assert torch.equal(item["torso"][3, 32:], torch.ones(32, 64))
        assert torch.equal(item["torso"][3, :32], torch.zeros(32, 64))
        assert torch.allclose(
            item["torso"][:3, 40, 10], torch.tensor([level, 100 / 255, 200 / 255])
        )
        assert torch.allclose(
            item["background"][:, 5, 5], torch.tensor([90, 60, 30]) / 255, atol=0.02
        )
        lms = np.loadtxt(folder / "ori_imgs" / f"{i}.lms", dtype=np.float32)
        assert torch.equal(item["lms68"], torch.from_numpy(lms))
        landmarks = np.load(folder / "landmarks.npy")[i]
        assert torch.equal(item["landmarks"], torch.from_numpy(landmarks))
        blink = np.linspace(0, 4, N_FRAMES)[i]
        assert item["eye"].item() == pytest.approx(min(blink, 2.0) / 2, abs=1e-4)
        assert item["depth"][20, 20].item() == pytest.approx((5000 + i) * 1e-4, rel=1e-6)
        assert item["depth"][0, 0].item() == 0.0


def test_poses_and_intrinsics_agree_with_the_json(folder: Path) -> None:
    for split in ("train", "val"):
        transforms = _json(folder, split)
        data = TalkingFaceDataset(folder, split=split, fields=["pose", "intrinsics", "index"])
        assert len(data) == len(transforms["frames"])
        for k, frame in enumerate(transforms["frames"]):
            item = data[k]
            assert item["index"].item() == frame["img_id"]
            expected = torch.tensor(frame["transform_matrix"], dtype=torch.float32)
            assert torch.equal(item["pose"], expected)
            f = transforms["focal_len"]
            expected = torch.tensor([f, f, transforms["cx"], transforms["cy"]], dtype=torch.float32)
            assert torch.equal(item["intrinsics"], expected)


def test_audio_windows_are_padded_at_the_ends_and_slices_in_the_middle(folder: Path) -> None:
    features = np.load(folder / "aud_hu.npy")
    data = TalkingFaceDataset(folder, split="all", fields=["audio"])
    assert len(data) == N_FRAMES
    first, last, middle = data[0]["audio"], data[N_FRAMES - 1]["audio"], data[6]["audio"]
    assert first.shape == (8, 1024, 2)  # [window, C, T] as get_audio_features gives it
    assert torch.equal(first[:4], torch.zeros(4, 1024, 2))
    assert torch.equal(first[4:], torch.from_numpy(features[0:4]).permute(0, 2, 1))
    assert torch.equal(last[:5], torch.from_numpy(features[N_FRAMES - 5 :]).permute(0, 2, 1))
    assert torch.equal(last[5:], torch.zeros(3, 1024, 2))
    assert torch.equal(middle, torch.from_numpy(features[2:10]).permute(0, 2, 1))
    for i in range(N_FRAMES):
        assert torch.equal(data[i]["audio"], reference_audio_window(features, i)), i
    odd = TalkingFaceDataset(folder, split="all", fields=["audio"], audio_window=3)
    assert torch.equal(odd[6]["audio"], torch.from_numpy(features[5:8]).permute(0, 2, 1))


def test_val_audio_uses_its_aud_ids_on_the_whole_clip(folder: Path) -> None:
    features = np.load(folder / "aud_hu.npy")
    data = TalkingFaceDataset(folder, split="val", fields=["audio", "index"])
    item = data[0]
    i = item["index"].item()
    assert i == int(N_FRAMES * 10 / 11)
    assert torch.equal(item["audio"], reference_audio_window(features, i))


def test_mel_audio_pairs_the_50hz_rows(folder: Path) -> None:
    mel = np.random.default_rng(1).normal(size=(2 * N_FRAMES + 1, 80)).astype(np.float32)
    np.save(folder / "aud_mel.npy", mel)
    data = TalkingFaceDataset(folder, split="all", fields=["audio"], audio="mel")
    window = data[4]["audio"]
    assert window.shape == (8, 80, 2)
    assert torch.equal(window[4], torch.from_numpy(mel[8:10]).T)
    assert torch.equal(data[0]["audio"][:4], torch.zeros(4, 80, 2))


def test_dataloader_with_two_workers_yields_the_indexed_items(folder: Path) -> None:
    data = TalkingFaceDataset(folder, split="train")
    assert len(pickle.dumps(data)) < 100_000  # lazy: no images travel to the workers
    loader = DataLoader(data, batch_size=3, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == len(data)
    k = 0
    for batch in batches:
        for j in range(len(batch["index"])):
            assert_items_equal({key: v[j] for key, v in batch.items()}, data[k])
            k += 1


@pytest.mark.parametrize("image_size", [None, 48])
def test_preload_gives_the_same_items_as_lazy(folder: Path, image_size: int | None) -> None:
    lazy = TalkingFaceDataset(folder, split="all", image_size=image_size)
    eager = TalkingFaceDataset(folder, split="all", image_size=image_size, preload=True)
    assert eager._store["image"].dtype == np.uint8 and eager._store["image"].ndim == 4
    assert eager._store["parsing"].dtype == np.uint8
    assert eager._store["depth"].dtype == np.uint16
    for k in range(len(lazy)):
        assert_items_equal(lazy[k], eager[k])
    loader = DataLoader(eager, batch_size=4, num_workers=2)
    batch = next(iter(loader))
    for j in range(4):
        assert_items_equal({key: v[j] for key, v in batch.items()}, lazy[j])


def test_uint8_images_are_the_float_images_times_255(folder: Path) -> None:
    floats = TalkingFaceDataset(folder, split="train", preload=True)
    bytes_ = TalkingFaceDataset(folder, split="train", uint8_images=True)
    a, b = floats[1], bytes_[1]
    for key in ("image", "gt_image", "torso", "background"):
        assert b[key].dtype == torch.uint8 and b[key].shape == a[key].shape, key
        assert torch.equal(b[key].float() / 255, a[key]), key
    assert torch.equal(a["depth"], b["depth"]) and torch.equal(a["audio"], b["audio"])


def test_image_size_scales_images_intrinsics_and_landmarks(folder: Path) -> None:
    full = TalkingFaceDataset(folder, split="train")
    half = TalkingFaceDataset(folder, split="train", image_size=32)
    wide = TalkingFaceDataset(folder, split="train", image_size=(32, 96))
    a, b, c = full[2], half[2], wide[2]
    assert_item_contract(b, (32, 32))
    assert_item_contract(c, (32, 96))
    assert torch.allclose(b["intrinsics"], a["intrinsics"] / 2)
    assert torch.allclose(c["intrinsics"], a["intrinsics"] * torch.tensor([1.5, 0.5, 1.5, 0.5]))
    assert torch.allclose(b["lms68"], a["lms68"] / 2)
    assert torch.allclose(c["landmarks"], a["landmarks"] * torch.tensor([1.5, 0.5, 1.5]))
    assert torch.equal(b["parsing"], a["parsing"][::2, ::2])  # nearest keeps classes
    assert torch.equal(b["pose"], a["pose"])


def test_split_all_has_every_frame_and_nan_where_there_is_no_pose(folder: Path) -> None:
    data = TalkingFaceDataset(folder, split="all", fields=["pose", "landmarks", "lms68", "index"])
    assert data.frame_ids.tolist() == list(range(N_FRAMES))
    assert torch.isnan(data[NO_FACE]["pose"]).all()
    assert torch.isnan(data[NO_FACE]["landmarks"]).all()
    assert torch.isnan(data[NO_FACE]["lms68"]).all()  # no .lms, NaN row in landmarks.npy
    train = _json(folder, "train")["frames"]
    assert torch.equal(data[3]["pose"], torch.tensor(train[3]["transform_matrix"]).float())


def test_lms68_is_mapped_from_landmarks_when_there_are_no_lms_files(folder: Path) -> None:
    for path in (folder / "ori_imgs").glob("*.lms"):
        path.unlink()
    data = TalkingFaceDataset(folder, split="train", fields=["lms68", "index"])
    landmarks = np.load(folder / "landmarks.npy")
    for k in range(len(data)):
        i = data[k]["index"].item()
        assert torch.equal(data[k]["lms68"], torch.from_numpy(landmarks68(landmarks[i : i + 1])[0]))


def test_a_reference_pipeline_folder_without_talkprep_extras(folder: Path) -> None:
    """AD-NeRF/RAD-NeRF folders: no landmarks.npy, no depth, no manifest, JSON without h, w."""
    (folder / "landmarks.npy").unlink()
    shutil.rmtree(folder / "depth")
    for split in ("train", "val"):
        data = _json(folder, split)
        del data["h"], data["w"]
        (folder / f"transforms_{split}.json").write_text(json.dumps(data))
    deepspeech = np.random.default_rng(2).normal(size=(N_FRAMES, 16, 29)).astype(np.float32)
    np.save(folder / "aud.npy", deepspeech)  # AD-NeRF's DeepSpeech file name
    dataset = TalkingFaceDataset(folder, split="train", audio="ds")
    assert torch.equal(dataset[4]["audio"], reference_audio_window(deepspeech, 4))
    assert dataset[4]["audio"].shape == (8, 29, 16)
    assert "landmarks" not in dataset.fields and "depth" not in dataset.fields
    item = dataset[0]
    assert item["lms68"].shape == (68, 2) and item["image"].shape == (3, 64, 64)
    with pytest.raises(FileNotFoundError, match="landmarks.npy"):
        TalkingFaceDataset(folder, split="train", fields=["landmarks"])


def test_depth_unit_comes_from_the_manifest(folder: Path) -> None:
    manifest = {"tasks": {"depth": {"info": {"metres_per_count": 0.001}}}}
    manifest_path(folder).parent.mkdir(exist_ok=True)
    manifest_path(folder).write_text(json.dumps(manifest))
    data = TalkingFaceDataset(folder, split="train", fields=["depth", "index"])
    i = data[0]["index"].item()
    assert data[0]["depth"][20, 20].item() == pytest.approx((5000 + i) * 1e-3, rel=1e-6)


def test_missing_files_fail_clearly_and_only_when_requested(folder: Path) -> None:
    (folder / "torso_imgs" / "3.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"torso_imgs/3\.png is missing.*task 7"):
        TalkingFaceDataset(folder, split="train", fields=["torso"])
    assert len(TalkingFaceDataset(folder, split="train", fields=["image", "pose"])) == 9
    (folder / "aud_hu.npy").unlink()
    with pytest.raises(FileNotFoundError, match="aud_hu.npy"):
        TalkingFaceDataset(folder, split="train", fields=["audio"])
    (folder / "transforms_val.json").unlink()
    with pytest.raises(FileNotFoundError, match="transforms_val.json.*split='all'"):
        TalkingFaceDataset(folder, split="val", fields=["image"])
    with pytest.raises(ValueError, match="unknown field"):
        TalkingFaceDataset(folder, split="train", fields=["imgs"])
    with pytest.raises(ValueError, match="split"):
        TalkingFaceDataset(folder, split="test")  # type: ignore[arg-type]


def test_audio_rows_that_do_not_match_the_frames_are_an_error(folder: Path) -> None:
    np.save(folder / "aud_hu.npy", np.zeros((N_FRAMES - 4, 2, 1024), np.float32))
    with pytest.raises(ValueError, match="do not match"):
        TalkingFaceDataset(folder, split="all", fields=["audio"])
    np.save(folder / "aud_hu.npy", np.zeros((N_FRAMES - 1, 2, 1024), np.float32))
    data = TalkingFaceDataset(folder, split="all", fields=["audio"])  # one short: clamped
    assert data[N_FRAMES - 1]["audio"].shape == (8, 1024, 2)


# ------------------------------------------------------------------------- processed clip


def _need_all_tasks() -> None:
    from talkprep.tasks import ALL_TASKS

    if len(ALL_TASKS) < 9:
        pytest.skip(f"only {len(ALL_TASKS)} of 9 pipeline tasks are registered yet")


@pytest.mark.slow
def test_processed_anchor_clip(processed) -> None:  # type: ignore[no-untyped-def]
    _need_all_tasks()
    root = processed("anchor", tasks="all")
    check_processed_folder(root)


def check_processed_folder(root: Path) -> None:
    """The contract on a folder made by the pipeline (also run by hand on any folder)."""
    audio = next(a for a in ("hu", "mel", "eo", "ds") if (root / f"aud_{a}.npy").is_file())
    features = np.load(root / f"aud_{audio}.npy")
    if audio == "mel":  # [2N(+1), 80] at 50 Hz -> [N, 2, 80], two steps per frame
        features = features[: features.shape[0] // 2 * 2].reshape(-1, 2, features.shape[1])
    with (root / "au.csv").open() as handle:
        au = list(csv.DictReader(handle, skipinitialspace=True))
    mesh = np.load(root / "landmarks.npy")
    train = TalkingFaceDataset(root, split="train", audio=audio)
    assert set(FIELDS) == set(train.fields)
    assert {"image", "parsing", "torso", "pose", "intrinsics", "audio"} <= set(train.fields)
    height, width = train.size
    transforms = _json(root, "train")
    for k in (0, len(train) // 2, len(train) - 1):
        item = train[k]
        assert_item_contract(item, (height, width))
        frame = transforms["frames"][k]
        assert item["index"].item() == frame["img_id"]
        assert torch.equal(item["pose"], torch.tensor(frame["transform_matrix"]).float())
        f = transforms["focal_len"]
        assert torch.allclose(
            item["intrinsics"], torch.tensor([f, f, transforms["cx"], transforms["cy"]]).float()
        )
        assert (item["parsing"] == 1).any() and (item["parsing"] == 3).any()
        i = frame["img_id"]
        blink = float(au[i]["AU45_r"])
        assert item["eye"].item() == pytest.approx(min(max(blink, 0.0), 2.0) / 2, abs=1e-6)
        assert torch.allclose(
            item["lms68"], torch.from_numpy(landmarks68(mesh[i : i + 1])[0]), atol=0.51
        )
        face = item["depth"][item["depth"] > 0]
        assert face.numel() > 1000 and face.min() > 0.1 and face.max() < 3.0  # metres
    val = TalkingFaceDataset(root, split="val", fields=["pose", "index"])
    val_frames = _json(root, "val")["frames"]
    assert val.frame_ids.tolist() == [f["img_id"] for f in val_frames]
    assert torch.equal(val[0]["pose"], torch.tensor(val_frames[0]["transform_matrix"]).float())
    everything = TalkingFaceDataset(root, split="all", fields=["audio", "index"], audio=audio)
    n = len(everything)
    assert torch.equal(everything[0]["audio"], reference_audio_window(features, 0))
    assert torch.equal(everything[n - 1]["audio"], reference_audio_window(features, n - 1))
    middle = everything[n // 2]["audio"]
    assert torch.equal(middle, torch.from_numpy(features[n // 2 - 4 : n // 2 + 4]).permute(0, 2, 1))
    subset = torch.utils.data.Subset(train, range(0, len(train), max(1, len(train) // 6)))
    loader = DataLoader(subset, batch_size=2, num_workers=2)
    k = 0
    for batch in loader:
        for j in range(len(batch["index"])):
            assert_items_equal({key: v[j] for key, v in batch.items()}, subset[k])
            k += 1
