"""SyncTalk (github.com/ZiqiaoPeng/SyncTalk, commit d2427a3).

Follows `nerf_triplane/provider.py` of that commit:
* lines 106-128: `transforms_train.json`, `transforms_val.json` (`type='all'` globs `*.json`);
* lines 160-190: the audio by `--asr_model` (default `deepspeech`, `main.py` line 110):
  `ave` -> `aud.wav` through SyncTalk's own audio-visual encoder (its checkpoint ships with
  SyncTalk), `deepspeech` -> `aud_ds.npy`, `hubert` -> `aud_hu.npy`, `esperanto` -> `aud_eo.npy`;
* lines 251-262: `bs.npy` unless `--au45` (then ` AU45_r` of `au.csv`); the default
  `--bs_area upper` takes columns 0-4 and 8-9 of bs.npy. SyncTalk's writer
  (`data_utils/blendshape_capture/main.py` lines 62-78) stores MediaPipe's 52 scores without the
  first (`_neutral`), a trailing 0, each column Savitzky-Golay smoothed (window 5, order 3);
* lines 284, 330, 347, 396: `gt_imgs/{i}.jpg`, `torso_imgs/{i}.png`, `ori_imgs/{i}.lms`, `bc.jpg`;
* lines 303-326, `--portrait`: `ori_imgs/{i}.jpg` and `parsing/{i}_face.png`, read as
  (255 - green) / 255, i.e. face = BGR (255, 0, 0) on white: BiSeNet's skin, brows, eyes,
  glasses, nose, mouth and lips (`data_utils/face_parsing/test.py` lines 54-59, 9x9 Gaussian
  blur at line 97), without hair, ears or neck.
`nerf_triplane/renderer.py` line 86: the same `aabb_train` as ER-NeRF.
"""

from talkprep.targets.base import AudioChoice, Target, main_py

BS_SMOOTH_WINDOW, BS_SMOOTH_ORDER = 5, 3
"""blendshape_capture/main.py line 77: savgol_filter(column, 5, 3)."""
BS_UPPER_COLUMNS = (0, 1, 2, 3, 4, 8, 9)
"""provider.py line 257, `--bs_area upper`: brows (0-4) and blinks (8, 9) in SyncTalk's layout."""

TARGET = Target(
    name="synctalk",
    trainer="SyncTalk",
    reads=(
        "transforms_train.json",
        "transforms_val.json",
        "au.csv",
        "bc.jpg",
        "gt_imgs/*.jpg",
        "torso_imgs/*.png",
        "ori_imgs/*.jpg",
        "ori_imgs/*.lms",
        "parsing/*_face.png",
    ),
    audio=(
        AudioChoice("aud.wav", "wav", "--asr_model ave", ()),
        AudioChoice("aud_ds.npy", "deepspeech", "", (16, 29)),
        AudioChoice("aud_hu.npy", "hubert", "--asr_model hubert", (2, 1024)),
    ),
    au_columns=(" AU45_r",),
    renders=("synctalk_bs", "synctalk_face"),
    flags=("--portrait",),
    box_check=True,
    notes=("--asr_model ave encodes aud.wav with SyncTalk's audio_visual_encoder.pth (git LFS)",),
    train=(
        main_py(60000),
        main_py(100000, "--finetune_lips", "--patch_size", "64"),
    ),  # README "Train": the head, then its lips fine-tuned (no torso stage)
)
