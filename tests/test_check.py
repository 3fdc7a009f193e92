"""`talkprep check` on a complete processed folder, and on copies damaged in the ways users hit."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from talkprep.check import check_folder
from talkprep.cli import main


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
