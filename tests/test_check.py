"""`talkprep check` on a complete processed folder, and on copies damaged in the ways users hit."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from talkprep.check import check_folder
from talkprep.cli import main
from talkprep.manifest import manifest_path


@pytest.fixture(scope="module")
def complete(processed):
    return processed("anchor", tasks="all")


def _problems(folder):
    return {r.group: r.problem for r in check_folder(folder) if not r.ok}


def test_complete_folder_passes_with_every_group(complete, capsys):
    assert main(["check", str(complete)]) == 0
    table = capsys.readouterr().out
    for group in (
        "aud.wav",
        "aud_mel.npy",
        "ori_imgs/*.jpg",
        "ori_imgs/*.lms",
        "landmarks.npy",
        "track_params.pt",
        "parsing/*.png",
        "bc.jpg",
        "gt_imgs/*.jpg",
        "torso_imgs/*.png",
        "depth/*.png",
        "transforms_train.json",
        "transforms_val.json",
        "au.csv",
    ):
        assert group in table, group
    assert "first problem" in table and "FAIL" not in table
    assert "50 Hz rows, 2 per frame" in table  # aud_mel.npy's count is not a frame count


def test_deleted_torso_image(complete, tmp_path, capsys):
    folder = shutil.copytree(complete, tmp_path / "c")
    (folder / "torso_imgs" / "123.png").unlink()
    assert main(["check", str(folder)]) == 1
    problems = _problems(folder)
    assert list(problems) == ["torso_imgs/*.png"]
    assert "123" in problems["torso_imgs/*.png"]
    assert "torso_imgs" in capsys.readouterr().out


def test_wrong_img_id_in_transforms(complete, tmp_path):
    folder = shutil.copytree(complete, tmp_path / "c")
    path = folder / "transforms_val.json"
    data = json.loads(path.read_text())
    data["frames"][3]["img_id"] = 5000
    path.write_text(json.dumps(data))
    assert main(["check", str(folder)]) == 1
    problems = _problems(folder)
    assert list(problems) == ["transforms_val.json"]
    assert "5000" in problems["transforms_val.json"]


def test_audio_features_of_the_wrong_length(complete, tmp_path):
    folder = shutil.copytree(complete, tmp_path / "c")
    n = len(list((folder / "ori_imgs").glob("*.jpg")))
    np.save(folder / "aud_hu.npy", np.zeros((n - 40, 2, 1024), np.float32))
    assert main(["check", str(folder)]) == 1
    problems = _problems(folder)
    assert list(problems) == ["aud_hu.npy"]
    assert str(n - 40) in problems["aud_hu.npy"]


def test_an_lms_file_that_differs_from_landmarks_npy(complete, tmp_path):
    folder = shutil.copytree(complete, tmp_path / "c")
    path = folder / "ori_imgs" / "42.lms"
    lines = path.read_text().splitlines()
    lines[30] = "1.0 2.0"
    path.write_text("\n".join(lines) + "\n")
    problems = _problems(folder)
    assert list(problems) == ["ori_imgs/*.lms"]
    assert "42.lms does not match landmarks.npy" in problems["ori_imgs/*.lms"]


def test_missing_tracking_files_are_problems_with_their_repair(complete, tmp_path, capsys):
    folder = shutil.copytree(complete, tmp_path / "c")
    (folder / "landmarks.npy").unlink()
    (folder / "track_params.pt").unlink()
    for lms in (folder / "ori_imgs").glob("*.lms"):
        lms.unlink()
    results = {r.group: r for r in check_folder(folder) if not r.ok}
    assert {"landmarks.npy", "track_params.pt", "ori_imgs/*.lms"} <= set(results)
    assert " --tasks 4 --force" in results["track_params.pt"].fix
    assert main(["check", str(folder)]) == 1
    assert "to repair: talkprep process" in capsys.readouterr().out


def test_no_audio_features_and_a_failed_task_are_problems(complete, tmp_path):
    folder = shutil.copytree(complete, tmp_path / "c")
    for feature in folder.glob("aud_*.npy"):
        feature.unlink()
    manifest = json.loads(manifest_path(folder).read_text())
    manifest["tasks"]["audio_features"].update(status="failed", error="no model")
    manifest_path(folder).write_text(json.dumps(manifest))
    problems = _problems(folder)
    assert problems["audio features"].startswith("no audio features")
    assert problems["task 2 (audio_features)"] == "failed: no model"


def test_every_frame_is_verified_and_temporaries_are_reported(complete, tmp_path):
    folder = shutil.copytree(complete, tmp_path / "c")
    frame = folder / "gt_imgs" / "377.jpg"
    frame.write_bytes(frame.read_bytes()[:-300])
    # talkprep's temporary name for parsing/3.png, from a process that is gone
    (folder / "parsing" / ".3.png.tmp-talkprep-999999999-0").write_bytes(b"half")
    problems = _problems(folder)
    assert "gt_imgs/377.jpg" in problems["gt_imgs/*.jpg"]
    assert "temporary files" in problems
