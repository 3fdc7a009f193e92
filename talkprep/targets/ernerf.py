"""ER-NeRF (github.com/Fictionarry/ER-NeRF, commit 0cf72d8), the default target.

Follows `nerf_triplane/provider.py` of that commit:
* lines 336-358: `transforms_train.json`, `transforms_val.json` (`type='all'` globs `*.json` in the
  root, so nothing else there may end in .json: talkprep's manifest is in `.talkprep/`);
* lines 388-402: the audio file by `--asr_model` (default `deepspeech`, `main.py` line 109):
  `aud_ds.npy` [N, 16, 29], `hubert` -> `aud_hu.npy` [N, 2, 1024], `esperanto` -> `aud_eo.npy`,
  anything else -> `aud.npy`; 3-D arrays only unless `--emb`;
* lines 424-426: `au.csv` column ` AU45_r` (clipped to 0-2 for `--exp_eye`, line 500);
* lines 443, 464, 481, 535: `gt_imgs/{i}.jpg`, `torso_imgs/{i}.png`, `ori_imgs/{i}.lms`, `bc.jpg`.
`nerf_triplane/renderer.py` line 86: `aabb_train` = [-b, -b/2, -b, b, b/2, b] with `--bound` 1,
applied after `nerf_matrix_to_ngp` (provider.py lines 19-26) with `--scale` 4, `--offset` 0.
"""

from talkprep.targets.base import AudioChoice, Target, main_py, torso_py

ASR_DEFAULT = "deepspeech"
"""ER-NeRF main.py's `--asr_model` default (line 109)."""

TARGET = Target(
    name="ernerf",
    trainer="ER-NeRF",
    reads=(
        "transforms_train.json",
        "transforms_val.json",
        "au.csv",
        "bc.jpg",
        "gt_imgs/*.jpg",
        "torso_imgs/*.png",
        "ori_imgs/*.lms",
    ),
    audio=(
        AudioChoice("aud_hu.npy", "hubert", "--asr_model hubert", (2, 1024)),
        AudioChoice("aud_ds.npy", "deepspeech", "", (16, 29)),
        AudioChoice(
            "aud_eo.npy",
            "wav2vec2",
            "--asr_model cpierse/wav2vec2-large-xlsr-53-esperanto",
            (16, None),
        ),
    ),
    au_columns=(" AU45_r",),
    box_check=True,
    train=(
        main_py(100000),
        main_py(125000, "--finetune_lips", "--patch_size", "32"),
        torso_py(200000),
    ),  # README "Train": the head, its lips fine-tuned, then the torso on the head
)
