"""InsTaG (github.com/Fictionarry/InsTaG, commit 42f68f8).

Follows `scene/dataset_readers.py` of that commit (TalkingGaussian's reader with these changes):
* lines 101-145: the audio by `--audio_extractor` (default `deepspeech`, `arguments/__init__.py`
  line 60): `aud.npy` (no suffix for DeepSpeech), `aud_eo.npy`, `aud_hu.npy`; `ave` encodes
  `aud.wav` with InsTaG's `data_utils/audio_visual_encoder.pth`;
* lines 158-167: `au.csv` ` AU45_r`, ` AU25_r`, ` AU01_r`, ` AU04_r`, ` AU05_r`, ` AU06_r`,
  ` AU07_r`;
* lines 179, 203, 226-227: `ori_imgs/{i}.lms`, `gt_imgs/{i}.jpg`, `torso_imgs/{i}.png`, `bc.jpg`;
* lines 239-240: `teeth_mask/{i}.npy` and `parsing/{i}.png` in TalkingGaussian's palette;
* lines 285-290: with `--N_views` > 0, Sapiens normals and depth (not written by talkprep).
InsTaG adapts a pre-trained identity space to a new person from a few seconds of video, so the
report advises more footage only below 10 s. The README (lines 106 and 204) keeps at least the
last 12 s of a new identity for evaluation: the view's `transforms_val.json` holds the last 12 s,
`transforms_train.json` the rest.
Training (README "Adaptation"): a new identity adapts InsTaG's pre-trained face and mouth models
(`--pretrain_path`, its `chkpnt_ema_*_latest.pth`) in three steps, face, mouth, then the fused
model. `scripts/train_xx_few.sh` trains on `--N_views 250` with Sapiens geometry priors
(`train_face.py` line 199 reads each frame's normals unless `--long`), which talkprep does not
write, so the commands are those of `scripts/train_xx_long.sh`: `--N_views -1 --long`.
Pre-training (`pretrain_face.py`, `pretrain_mouth.py`) runs over several long videos named in
those scripts, not over one folder.
"""

from talkprep.targets.base import AudioChoice, Target
from talkprep.targets.talkinggaussian import TG_AU_COLUMNS

VAL_SECONDS = 12.0
"""InsTaG README line 106: 'retain at least 12s data for evaluation'."""
PRETRAINED = "output/pretrain"
"""Where the commands look for the pre-trained checkpoints, in InsTaG's checkout (its scripts use
output/pretrain_ave/ and the like, one per audio extractor)."""

TARGET = Target(
    name="instag",
    trainer="InsTaG",
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
        AudioChoice("aud.npy", "deepspeech", "", (16, 29), source="aud_ds.npy"),
        AudioChoice("aud_hu.npy", "hubert", "--audio_extractor hubert", (2, 1024)),
        AudioChoice("aud.wav", "wav", "--audio_extractor ave", ()),
    ),
    au_columns=TG_AU_COLUMNS,
    renders=("tg_parsing", "audio_by_frame", "instag_split"),
    val_seconds=VAL_SECONDS,
    advised_seconds=10.0,
    notes=(
        f"the steps adapt InsTaG's pre-trained models: put its checkpoints for the same audio "
        f"extractor (the README's Google Drive weights, or its scripts/pretrain_con*.sh run) in "
        f"{PRETRAINED}/ of its checkout",
        "leave --N_views at -1 with --long: talkprep writes no Sapiens normals or depth",
    ),
    train=(
        (
            "python",
            "train_face.py",
            "--type",
            "face",
            "-s",
            "{data}",
            "-m",
            "{workspace}",
            "--init_num",
            "2000",
            "--densify_grad_threshold",
            "0.0005",
            "--pretrain_path",
            f"{PRETRAINED}/chkpnt_ema_face_latest.pth",
            "--iterations",
            "10000",
            "--N_views",
            "-1",
            "--long",
            "{flags}",
        ),
        (
            "python",
            "train_mouth.py",
            "--type",
            "mouth",
            "-s",
            "{data}",
            "-m",
            "{workspace}",
            "--pretrain_path",
            f"{PRETRAINED}/chkpnt_ema_mouth_latest.pth",
            "--init_num",
            "5000",
            "--iterations",
            "10000",
            "--N_views",
            "-1",
            "--long",
            "{flags}",
        ),
        (
            "python",
            "train_fuse_con.py",
            "-s",
            "{data}",
            "-m",
            "{workspace}",
            "--opacity_lr",
            "0.001",
            "--iterations",
            "2000",
            "--N_views",
            "-1",
            "{flags}",
        ),
    ),  # scripts/train_xx_long.sh, whose audio_extractor line the flags replace
)
