"""Trainer targets: contracts against the cited loaders, renderings, export, check --target."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from talkprep.cli import main
from talkprep.config import TARGET_NAMES
from talkprep.errors import OutputError, TaskError, UsageError
from talkprep.geometry.tracking import RIGID_INDEX
from talkprep.manifest import read_manifest
from talkprep.semantics import SemanticClass
from talkprep.targets import (
    TARGETS,
    adnerf,
    gaussiantalker,
    get_target,
    instag,
    synctalk,
    talkinggaussian,
)
from talkprep.targets.check import AABB_TRAIN, SCALE, check_target, face_points_ngp, tg_masks
from talkprep.targets.record import view_target
from talkprep.targets.render import (
    adnerf_face_rects,
    face_vertices_dm,
    last_seconds_split,
    synctalk_blendshapes,
    synctalk_face,
    tg_palette,
)
from talkprep.targets.view import write_view

S = SemanticClass


# --------------------------------------------------------------------------------------------
# contracts against the values cited from each loader


def test_registry_and_config_agree() -> None:
    assert tuple(TARGETS) == TARGET_NAMES
    assert get_target("ERNERF").name == "ernerf"
    with pytest.raises(UsageError, match="GeneFace"):
        get_target("geneface")


def test_contract_constants_match_the_loaders() -> None:
    files = {name: {a.file: a for a in t.audio} for name, t in TARGETS.items()}
    # ER-NeRF provider.py 393-402 / main.py 109; RAD-NeRF provider.py 392-397 (no HuBERT path)
    assert set(files["ernerf"]) == {"aud_ds.npy", "aud_hu.npy", "aud_eo.npy"}
    assert files["ernerf"]["aud_ds.npy"].flag == "" and files["ernerf"]["aud_ds.npy"].rows == (
        16,
        29,
    )
    assert files["ernerf"]["aud_hu.npy"].flag == "--asr_model hubert"
    assert set(files["radnerf"]) == {"aud_eo.npy", "aud_ds.npy"}
    # AD-NeRF load_audface.py 37: aud.npy (DeepSpeech), head_imgs, face_rect as x, y, w, h
    assert files["adnerf"]["aud.npy"].source == "aud_ds.npy"
    assert TARGETS["adnerf"].face_rect == "adnerf" and "head_imgs/*.jpg" in TARGETS["adnerf"].reads
    assert (adnerf.NEAR_MARGIN_M, adnerf.FAR_MARGIN_M) == (0.2, 0.4)
    # SyncTalk: ave reads aud.wav; bs.npy layout from blendshape_capture/main.py 64-77
    assert files["synctalk"]["aud.wav"].flag == "--asr_model ave"
    assert (synctalk.BS_SMOOTH_WINDOW, synctalk.BS_SMOOTH_ORDER) == (5, 3)
    assert synctalk.BS_UPPER_COLUMNS == (0, 1, 2, 3, 4, 8, 9)
    # TalkingGaussian dataset_readers.py 100, 118-127; face_parsing/test.py palette
    assert talkinggaussian.TG_AU_COLUMNS == (
        " AU45_r", " AU25_r", " AU01_r", " AU04_r", " AU05_r", " AU06_r", " AU07_r",
    )  # fmt: skip
    assert (talkinggaussian.HAIR_BGR, talkinggaussian.MOUTH_BGR) == ((0, 0, 0), (100, 100, 100))
    assert files["talkinggaussian"]["aud_hu.npy"].flag == "--audio_extractor hubert"
    # GaussianTalker: aud_ds.npy hard-coded (line 345), fused.ply forbidden (395-411)
    assert set(files["gaussiantalker"]) == {"aud_ds.npy"}
    assert gaussiantalker.TARGET.forbidden == ("fused.ply",)
    # InsTaG: postfix '' for DeepSpeech (line 101), last 12 s validate (README 106)
    assert files["instag"]["aud.npy"].source == "aud_ds.npy" and instag.VAL_SECONDS == 12.0
    # renderer.py line 86 and main.py --scale 4 of ER-NeRF / RAD-NeRF / SyncTalk
    assert AABB_TRAIN.tolist() == [-1.0, -0.5, -1.0, 1.0, 0.5, 1.0] and SCALE == 4.0
    assert [t.name for t in TARGETS.values() if t.box_check] == ["ernerf", "radnerf", "synctalk"]


# --------------------------------------------------------------------------------------------
# renderings on synthetic class maps


def _class_map() -> np.ndarray:
    classes = np.zeros((40, 30), np.uint8)
    classes[2:8, 8:22] = S.HAIR
    classes[8:24, 8:22] = S.FACE_SKIN
    classes[12:16, 6:8] = S.EARS
    classes[18:22, 12:18] = S.MOUTH_INTERIOR
    classes[18:20, 13:17] = S.TEETH
    classes[24:28, 12:18] = S.NECK
    classes[28:, 4:26] = S.TORSO
    classes[30:, 0:3] = S.OTHER
    return classes


def test_talkinggaussian_masks_as_its_reader_derives_them(tmp_path: Path) -> None:
    classes = _class_map()
    image, teeth = tg_palette(classes)
    cv2.imwrite(str(tmp_path / "p.png"), image)
    masks = tg_masks(cv2.imread(str(tmp_path / "p.png")), teeth)
    assert np.array_equal(masks["hair"], classes == S.HAIR)
    assert np.array_equal(masks["mouth"], (classes == S.MOUTH_INTERIOR) | (classes == S.TEETH))
    assert np.array_equal(masks["face"], (classes == S.FACE_SKIN) | (classes == S.EARS))
    assert teeth.dtype == np.bool_ and teeth.sum() == 8
    assert tuple(image[35, 10]) == (0, 0, 255) and tuple(image[25, 14]) == (0, 255, 0)
    assert tuple(image[0, 0]) == tuple(image[35, 1]) == (255, 255, 255), "other = background"


def test_synctalk_face_mask() -> None:
    classes = _class_map()
    read = (255 - synctalk_face(classes)[:, :, 1]) / 255.0  # provider.py line 323
    assert read[12, 14] == 1.0 and read[19, 14] == 1.0, "face skin, mouth and teeth"
    assert read[3, 14] == 0 and read[38, 14] == 0 and read[14, 6] < 0.5, "no hair, torso, ears"
    assert read[28, 14] > 0.5 and read[28, 8] < 0.5, "10 px under the middle of the chin"


def test_synctalk_blendshape_layout() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, (30, 52))
    scores[4] = np.nan
    bs = synctalk_blendshapes(scores)
    assert bs.shape == (30, 52) and np.isfinite(bs).all() and np.abs(bs[:, -1]).max() < 1e-12
    from scipy.signal import savgol_filter

    filled = scores.copy()
    filled[4] = scores[3]
    expected = savgol_filter(filled[:, 1:], 5, 3, axis=0)
    assert np.allclose(bs[:, :51], expected)


def test_adnerf_face_rect_follows_process_data() -> None:
    lms = np.random.default_rng(2).uniform(100, 400, (4, 68, 2))
    rects = adnerf_face_rects(lms, 512, 480)
    for i in range(4):  # process_data.py lines 226-239, one frame at a time
        min_x, max_x = np.min(lms[i], 0)[0], np.max(lms[i], 0)[0]
        cx, cy = int((min_x + max_x) / 2.0), int(lms[i, 27, 1])
        h_w, h_h = int((max_x - cx) * 1.5), int((lms[i, 8, 1] - cy) * 1.15)
        x, y = max(cx - h_w, 0), max(cy - h_h, 0)
        assert rects[i].tolist() == [x, y, min(480 - 1 - x, 2 * h_w), min(512 - 1 - y, 2 * h_h)]


def test_last_seconds_split() -> None:
    ids = np.delete(np.arange(500), [40, 41])
    train, val = last_seconds_split(ids, 25.0, 12.0)
    assert val.tolist() == list(range(200, 500)) and train[-1] == 199 and len(train) == 198
    train, val = last_seconds_split(np.arange(200), 25.0, 12.0)  # 8 s: the 10:1 split stays
    assert train.tolist() == list(range(181)) and val.tolist() == list(range(181, 200))


def _synthetic_track(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head-frame meshes (metres), their image-space landmarks, and the rigid shape."""
    rng = np.random.default_rng(seed)
    head = rng.uniform([-0.07, -0.1, -0.05], [0.07, 0.07, 0.05], (478, 3))
    heads = np.repeat(head[None], n, axis=0)
    heads[:, 14, 1] -= np.linspace(0, 0.02, n)  # the jaw opens over time
    landmarks = np.empty_like(heads)
    for f in range(n):
        c, s = np.cos(0.05 * f), np.sin(0.05 * f)
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.diag([1.0, -1.0, -1.0])
        landmarks[f] = 2500.0 * heads[f] @ rot.T + (256.0, 256.0, 0.0)
    return heads, landmarks.astype(np.float32), head[RIGID_INDEX]


def test_gaussiantalker_vertices_in_the_head_frame_in_decimetres() -> None:
    heads, landmarks, shape = _synthetic_track()
    landmarks[3] = np.nan
    vertices = face_vertices_dm(landmarks, shape, RIGID_INDEX)
    assert vertices.shape == (12, 478, 3) and vertices.dtype == np.float32
    keep = np.arange(12) != 3
    assert np.abs(vertices[keep] - 10 * heads[keep]).max() < 1e-3
    assert np.allclose(vertices[3], vertices[2]), "a faceless frame holds its neighbour"
    assert vertices[-1, 14, 1] < vertices[0, 14, 1] - 0.19, "expression kept: jaw 2 cm lower"


def _box_folder(root: Path, grow: float) -> Path:
    heads, landmarks, shape = _synthetic_track()
    root.mkdir()
    np.save(root / "landmarks.npy", landmarks)
    torch.save(
        {
            "shape": torch.from_numpy(shape * grow),
            "rigid_index": torch.from_numpy(RIGID_INDEX.astype(np.int64)),
        },
        root / "track_params.pt",
    )
    return root


@pytest.mark.parametrize(("grow", "inside"), [(1.0, True), (3.0, False)])
def test_box_check(tmp_path: Path, grow: float, inside: bool) -> None:
    """Face points in the NeRF box coordinates: head frame axes cycled, times --scale."""
    folder = _box_folder(tmp_path / "f", grow)
    points = face_points_ngp(folder, np.arange(12))
    heads = _synthetic_track()[0] * grow
    assert np.allclose(points, SCALE * heads[..., [1, 2, 0]], atol=5e-3)
    within = ((points >= AABB_TRAIN[:3]) & (points <= AABB_TRAIN[3:])).all()
    assert within == inside


# --------------------------------------------------------------------------------------------
# views of a real processed clip


@pytest.fixture(scope="module")
def real(processed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 20 s anchor clip processed, with audio features of the trainers' shapes (zeros: no
    model weights in tests). InsTaG keeps the last 12 s for validation: the clip is longer."""
    folder = tmp_path_factory.mktemp("targets") / "anchor"
    shutil.copytree(processed("anchor", tasks="1,3-9"), folder)
    n = len(list((folder / "ori_imgs").glob("*.jpg")))
    np.save(folder / "aud_ds.npy", np.zeros((n, 16, 29), np.float32))
    np.save(folder / "aud_hu.npy", np.zeros((n - 1, 2, 1024), np.float32))
    return folder


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_export_then_check_each_target(real: Path, tmp_path: Path, name: str) -> None:
    view = tmp_path / name
    write_view(real, get_target(name), view)
    report = check_target(view, get_target(name))
    assert report.problems == [], report.problems
    if get_target(name).box_check:
        assert any(f.group == "face inside aabb_train" and f.ok for f in report.findings)
    assert view_target(view) == name
    assert os.path.samefile(view / "bc.jpg", real / "bc.jpg"), "identical files are hard links"
    assert {p.name for p in view.glob("*.json")} == {"transforms_train.json", "transforms_val.json"}
    if name == "ernerf":
        assert "--asr_model hubert" in report.flags
    if name == "talkinggaussian":
        image = cv2.imread(str(view / "parsing" / "100.png"))
        masks = tg_masks(image, np.load(view / "teeth_mask" / "100.npy"))
        assert masks["hair"].sum() > 500 and masks["face"].sum() > 5000
    if name == "adnerf":
        assert os.path.samefile(view / "aud.npy", real / "aud_ds.npy")
        assert os.path.samefile(view / "com_imgs" / "7.jpg", real / "gt_imgs" / "7.jpg")
        assert any(f.startswith("--near ") for f in report.flags)
    if name == "gaussiantalker":
        params = torch.load(view / "track_params.pt", weights_only=True)
        assert params["vertices"].shape[1:] == (478, 3)
        assert not os.path.samefile(view / "track_params.pt", real / "track_params.pt")
    if name == "instag":
        val = json.loads((view / "transforms_val.json").read_text())["frames"]
        assert [f["img_id"] for f in val] == list(range(500 - 12 * 25, 500))


def test_in_place_view_and_foreign_files(real: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "inplace"
    shutil.copytree(real, folder, copy_function=os.link)  # views replace files, never edit them
    before = (folder / "parsing" / "5.png").read_bytes()
    write_view(folder, get_target("synctalk"))
    assert (folder / "parsing" / "5_face.png").is_file()
    assert (folder / "parsing" / "5.png").read_bytes() == before, "ER-NeRF colours kept"
    report = check_target(folder, get_target("synctalk"))
    assert report.problems == [], report.problems
    assert "--au45" in report.flags, "no blendshapes: SyncTalk reads AU45"

    write_view(folder, get_target("talkinggaussian"))
    assert main(["check", str(folder)]) in (0, 1)
    out = capsys.readouterr().out
    assert "TalkingGaussian masks  ok" in out, "check follows the view written in place"
    assert "parsing/*.png  FAIL" not in out
    assert (folder / "parsing" / "5.png").read_bytes() != before

    train = (folder / "transforms_train.json").read_bytes()
    write_view(folder, get_target("instag"))
    write_view(folder, get_target("adnerf"))  # from the canonical split, not InsTaG's
    ids = [
        f["img_id"] for f in json.loads((folder / "transforms_train.json").read_text())["frames"]
    ]
    assert ids == [f["img_id"] for f in json.loads(train)["frames"]]
    write_view(folder, get_target("gaussiantalker"))
    assert (folder / "parsing" / "5.png").read_bytes() == before, "canonical colours put back"
    assert (folder / "transforms_train.json").read_bytes() == train
    assert main(["check", str(folder)]) == 0, capsys.readouterr().out

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "aud.npy").write_bytes(b"my own features")
    with pytest.raises(OutputError, match="did not write"):
        write_view(folder, get_target("adnerf"), mine)
    assert (mine / "aud.npy").read_bytes() == b"my own features"


def test_missing_semantics_and_audio_name_the_fix(real: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    shutil.copytree(real, folder, ignore=shutil.ignore_patterns("semantics", "aud_*.npy"))
    with pytest.raises(TaskError, match="--tasks 5 --force"):
        write_view(folder, get_target("talkinggaussian"), tmp_path / "tg")
    report = check_target(folder, get_target("gaussiantalker"))
    audio = next(f for f in report.problems if f.group == "audio")
    assert "extract_ds_features.py" in audio.fix and str(folder.resolve() / "aud.wav") in audio.fix
    report = check_target(folder, get_target("ernerf"))
    audio = next(f for f in report.problems if f.group == "audio")
    assert "--tasks 2 --audio-features mel,hubert" in audio.fix and "VIDEO" not in audio.fix

    view = tmp_path / "tg-view"
    write_view(real, get_target("talkinggaussian"), view)
    (view / "teeth_mask" / "5.npy").unlink()
    report = check_target(view, get_target("talkinggaussian"))
    teeth = next(f for f in report.problems if f.group == "teeth_mask/*.npy")
    assert teeth.fix.startswith(f"talkprep export {real.resolve()} --target talkinggaussian -o ")


def test_cli_export_and_check(real: Path, tmp_path: Path, capsys) -> None:
    view = tmp_path / "cli"
    assert main(["export", str(real), "--target", "radnerf", "-o", str(view)]) == 0
    code = main(["check", str(view), "--target", "radnerf"])
    out = capsys.readouterr().out
    assert "RAD-NeRF flags: --asr_model deepspeech" in out and "audio (aud_ds.npy)" in out
    assert code == 0, out
    assert main(["check", str(view), "--target", "nosuch"]) == 1


def test_a_rerun_with_an_in_place_view_skips_every_task(real: Path, tmp_path: Path, capsys) -> None:
    """Views that re-render talkprep's own files (TalkingGaussian's parsing colours, AD-NeRF's
    transforms) must not make the next run see them as damaged and rebuild their tasks."""
    folder = tmp_path / "rerun"
    shutil.copytree(real, folder, copy_function=os.link)
    video = read_manifest(folder)["input"]["path"]
    for target in ("talkinggaussian", "adnerf", "talkinggaussian"):
        args = ["process", video, "-o", str(folder), "--tasks", "3-9", "--target", target]
        assert main([*args, "--audio-features", "mel"]) == 0
        err = capsys.readouterr().err
        assert "rebuilding" not in err and " ..." not in err, err
