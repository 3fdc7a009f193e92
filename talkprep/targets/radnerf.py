"""RAD-NeRF (github.com/ashawkey/RAD-NeRF, commit 0de5ed2).

Follows `nerf/provider.py` of that commit:
* lines 335-357: `transforms_train.json`, `transforms_val.json` (`type='all'` globs `*.json`);
* lines 390-397: the audio file by `--asr_model` (`main.py` line 98: default
  `cpierse/wav2vec2-large-xlsr-53-esperanto`): `esperanto` -> `aud_eo.npy` [N, 16, 44],
  `deepspeech` -> `aud_ds.npy` [N, 16, 29], anything else -> `aud.npy`. There is no HuBERT
  path: talkprep's `aud_hu.npy` does not fit RAD-NeRF's 16-step audio network;
* lines 431, 452, 469, 513: `gt_imgs/{i}.jpg`, `torso_imgs/{i}.png`, `ori_imgs/{i}.lms`,
  `bc.jpg`; the eye area comes from the .lms (lines 475-485), not from au.csv.
`nerf/renderer.py` line 86: `aabb_train` = [-b, -b/2, -b, b, b/2, b] with `--bound` 1, after
`nerf_matrix_to_ngp` (provider.py lines 19-26) with `--scale` 4 (main.py line 53), offset 0.
"""

from talkprep.targets.base import AudioChoice, Target, main_py, torso_py

TARGET = Target(
    name="radnerf",
    trainer="RAD-NeRF",
    reads=(
        "transforms_train.json",
        "transforms_val.json",
        "bc.jpg",
        "gt_imgs/*.jpg",
        "torso_imgs/*.png",
        "ori_imgs/*.lms",
    ),
    audio=(
        AudioChoice("aud_eo.npy", "wav2vec2", "", (16, None)),
        AudioChoice("aud_ds.npy", "deepspeech", "--asr_model deepspeech", (16, 29)),
    ),
    au_columns=(),
    box_check=True,
    train=(
        main_py(200000),
        main_py(250000, "--finetune_lips"),
        torso_py(200000),
    ),  # readme "Detailed Usage": the head, its lips fine-tuned, then the torso on the head
)
