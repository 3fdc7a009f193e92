"""GaussianTalker (github.com/KU-CVLAB/GaussianTalker, commit 8ec613b).

Follows `scene/talking_dataset_readers.py` of that commit:
* line 345: `aud_ds.npy`, hard-coded, 3-D DeepSpeech windows [N, 16, 29] (lines 349-352);
* lines 359-360: `au.csv` column ` AU45_r`;
* lines 209-219: `track_params.pt` (`euler`, `trans` per frame) and `transforms_*.json`, whose
  width and height it takes as 2 * cx and 2 * cy; lines 316-321 of `scene/dataset_readers.py`
  (`read_timeline`) read both splits' `img_id`s;
* lines 230, 245, 278-282: `bc.jpg`, `ori_imgs/{i}.jpg`, `torso_imgs/{i}.png`,
  `parsing/{i}.png` (head = BGR (255, 0, 0), line 315), `ori_imgs/{i}.lms`;
* lines 395-411: without `fused.ply`, the Gaussians start at the mean over frames of
  `track_params.pt['vertices']` [N, V, 3]: each frame's face geometry in the tracker's head
  frame and units (the BFM tracker's decimetres, `data_utils/face_tracking/face_tracker.py`
  lines 385-398); with a `fused.ply` it raises NotImplementedError.
"""

from talkprep.targets.base import AudioChoice, Target

TARGET = Target(
    name="gaussiantalker",
    trainer="GaussianTalker",
    reads=(
        "transforms_train.json",
        "transforms_val.json",
        "track_params.pt",
        "au.csv",
        "bc.jpg",
        "ori_imgs/*.jpg",
        "ori_imgs/*.lms",
        "torso_imgs/*.png",
        "parsing/*.png",
    ),
    audio=(AudioChoice("aud_ds.npy", "deepspeech", "", (16, 29)),),
    au_columns=(" AU45_r",),
    renders=("gt_vertices",),
    forbidden=("fused.ply",),
    train=(
        (
            "python",
            "train.py",
            "-s",
            "{data}",
            "--model_path",
            "{workspace}",
            "--configs",
            "arguments/64_dim_1_transformer.py",
            "{flags}",
        ),
    ),  # README "Training"
)
