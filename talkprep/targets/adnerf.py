"""AD-NeRF (github.com/YudongGuo/AD-NeRF, commit 9fdcd7e).

Follows `NeRFs/HeadNeRF/load_audface.py` of that commit:
* lines 28-32: `transforms_train.json`, `transforms_val.json`; lines 78-79 `focal_len`, `cx`, `cy`;
* line 37: `aud.npy`, DeepSpeech windows [N, 16, 29] (`run_nerf.py` line 604, `--aud_file`);
* lines 53-59: `head_imgs/{img_id}.jpg` (the head on the background plate) and `face_rect`, which
  AD-NeRF reads as [x, y, w, h] (written by `data_util/process_data.py` lines 226-240: centred on
  the .lms columns, 1.5 x the half width, from lms[27] down 1.15 x to the chin), unlike the
  [row_min, row_max, col_min, col_max] talkprep writes for RAD-NeRF;
* line 75: `bc.jpg`, whose size sets H and W.
`NeRFs/TorsoNeRF/load_audface.py` lines 55-62 read `com_imgs/{img_id}.jpg`: the frame with its
background replaced by the plate (process_data.py lines 170-177), i.e. talkprep's gt_imgs.
`near`/`far` come from the config AD-NeRF's process_data.py writes (lines 247-276): mean camera
distance -0.2 and +0.4 (metres), and `testskip` = a seventh of the validation frames.
Training (README "Train Two NeRFs"): Head-NeRF, then its latest checkpoint copied into the
Torso-NeRF's log folder, then Torso-NeRF, each with the config's values as flags
(configargparse reads the same keys from either).
"""

from talkprep.targets.base import AudioChoice, Target

NEAR_MARGIN_M, FAR_MARGIN_M = 0.2, 0.4
"""process_data.py lines 266-267: near = mean distance - 0.2, far = mean distance + 0.4."""
TESTSKIP_SHARE = 7
"""process_data.py line 246: testskip = int(validation frames / 7)."""
HEAD_ITERS = 400000
"""HeadNeRF/run_nerf.py lines 541, 630 and 932: --N_iters 400000 with a checkpoint every
--i_weights 10000, so the last is `400000_head.tar`, the one Torso-NeRF starts from."""

TARGET = Target(
    name="adnerf",
    trainer="AD-NeRF",
    reads=(
        "transforms_train.json",
        "transforms_val.json",
        "bc.jpg",
        "head_imgs/*.jpg",
        "com_imgs/*.jpg",
    ),
    audio=(AudioChoice("aud.npy", "deepspeech", "", (16, 29), source="aud_ds.npy"),),
    au_columns=(),
    renders=("adnerf_head", "adnerf_transforms"),
    aliases=(("com_imgs/*.jpg", "gt_imgs/*.jpg"),),
    face_rect="adnerf",
    notes=("pass the near/far that `talkprep check --target adnerf` prints (--near, --far)",),
    train=(
        (
            "python",
            "NeRFs/HeadNeRF/run_nerf.py",
            "--expname",
            "{name}_head",
            "--datadir",
            "{data}",
            "--basedir",
            "{logs}",
            "{flags}",
        ),
        ("mkdir", "-p", "{logs}/{name}_com"),
        ("cp", f"{{logs}}/{{name}}_head/{HEAD_ITERS:06d}_head.tar", "{logs}/{name}_com/"),
        (
            "python",
            "NeRFs/TorsoNeRF/run_nerf.py",
            "--expname",
            "{name}_com",
            "--datadir",
            "{data}",
            "--basedir",
            "{logs}",
            "{flags}",
        ),
    ),  # HeadNeRF_config.txt and TorsoNeRF_config.txt (process_data.py lines 247-270) as flags
)
