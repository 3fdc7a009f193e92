"""TalkingGaussian (github.com/Fictionarry/TalkingGaussian, commit 9bd34f7).

Follows `scene/dataset_readers.py` of that commit:
* lines 98-110: `transforms_*.json` (`focal_len`), `bc.jpg`, the audio by `--audio_extractor`
  (default `deepspeech`, `arguments/__init__.py` line 59): `aud_ds.npy`, `aud_eo.npy` or
  `aud_hu.npy` (`{"deepspeech": "ds", "esperanto": "eo", "hubert": "hu"}`), permuted as 3-D;
* lines 117-131: `au.csv` columns ` AU45_r`, ` AU25_r` and ` AU01_r`, ` AU04_r`, ` AU05_r`,
  ` AU06_r`, ` AU07_r`;
* lines 138, 162, 182: `ori_imgs/{i}.lms`, `gt_imgs/{i}.jpg`, `torso_imgs/{i}.png`;
* lines 197-204: `teeth_mask/{i}.npy` (bool [H, W], as `data_utils/easyportrait/
  create_teeth_mask.py` line 30 saves it) and `parsing/{i}.png` read as RGB: face = (0, 0, 255)
  XOR teeth, hair = (0, 0, 0), mouth = (100, 100, 100) + teeth. Its parser
  (`data_utils/face_parsing/test.py` lines 33-50) paints BiSeNet's mouth (11) (100, 100, 100)
  and hair and hat (17, 18) (0, 0, 0) in BGR; teeth stay in the face colour.
`train_mouth.py` line 118 draws frames until one has at least 20 mouth pixels.
"""

from talkprep.targets.base import AudioChoice, Target

HAIR_BGR = (0, 0, 0)
MOUTH_BGR = (100, 100, 100)
"""Colours of TalkingGaussian's parsing (face_parsing/test.py lines 38-40, 52-54)."""
TG_AU_COLUMNS = (" AU45_r", " AU25_r", " AU01_r", " AU04_r", " AU05_r", " AU06_r", " AU07_r")
"""dataset_readers.py lines 118-127."""

TARGET = Target(
    name="talkinggaussian",
    trainer="TalkingGaussian",
    reads=(
        "transforms_train.json",
        "transforms_val.json",
        "au.csv",
        "bc.jpg",
        "gt_imgs/*.jpg",
        "torso_imgs/*.png",
        "ori_imgs/*.lms",
        "parsing/*.png",
        "teeth_mask/*.npy",
    ),
    audio=(
        AudioChoice("aud_hu.npy", "hubert", "--audio_extractor hubert", (2, 1024)),
        AudioChoice("aud_ds.npy", "deepspeech", "", (16, 29)),
        AudioChoice("aud_eo.npy", "wav2vec2", "--audio_extractor esperanto", (16, None)),
    ),
    au_columns=TG_AU_COLUMNS,
    renders=("tg_parsing", "audio_by_frame"),
    train=(
        ("python", "train_mouth.py", "-s", "{data}", "-m", "{workspace}", "{flags}"),
        (
            "python",
            "train_face.py",
            "-s",
            "{data}",
            "-m",
            "{workspace}",
            "--init_num",
            "2000",
            "--densify_grad_threshold",
            "0.0005",
            "{flags}",
        ),
        (
            "python",
            "train_fuse.py",
            "-s",
            "{data}",
            "-m",
            "{workspace}",
            "--opacity_lr",
            "0.001",
            "{flags}",
        ),
    ),  # scripts/train_xx.sh, whose audio_extractor line the flags replace
)
