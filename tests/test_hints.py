"""Every printed command: shell-quoted, with the folder's real video and options, never a repair
that fails the same way, and the trainers each folder can train (talkprep.hints, ready)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from talkprep import hints
from talkprep.check import check_folder, repairs
from talkprep.cli import closing_lines, main
from talkprep.manifest import manifest_path
from talkprep.models.audio_encoders import fetch_hint
from talkprep.targets import get_target
from talkprep.targets.check import check_target, train_command
from talkprep.targets.ready import readiness

HOSTILE = "clip$(touch PWNED).mp4"


@pytest.fixture(scope="module")
def complete(processed):
    return processed("anchor", tasks="all")


def _copy(complete: Path, tmp_path: Path, name: str = "out dir", video: str | None = None) -> Path:
    """A copy of the processed folder; `video` replaces the input path its manifest records."""
    folder = shutil.copytree(complete, tmp_path / name)
    if video is not None:
        data = json.loads(manifest_path(folder).read_text())
        data["config"]["video"] = data["input"]["path"] = str(tmp_path / video)
        manifest_path(folder).write_text(json.dumps(data))
    return folder


def _edit_manifest(folder: Path, **tasks: dict) -> None:
    data = json.loads(manifest_path(folder).read_text())
    for name, change in tasks.items():
        if change is None:
            data["tasks"].pop(name, None)
        else:
            data["tasks"][name].update(change)
    manifest_path(folder).write_text(json.dumps(data))


def _words_as_bash_reads_them(command: str, cwd: Path) -> list[str]:
    """The words bash makes of a printed command (after its quotes, without running it)."""
    script = f"set -- {command}; printf '%s\\0' \"$@\""
    done = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, check=True)
    return done.stdout.decode().split("\0")[:-1]


def test_repair_lines_quote_a_hostile_video_name(complete, tmp_path, capsys):
    folder = _copy(complete, tmp_path, video=HOSTILE)
    (folder / "torso_imgs" / "12.png").unlink()
    assert main(["check", str(folder)]) == 1
    printed = capsys.readouterr().out
    [line] = [x for x in printed.splitlines() if x.startswith("to repair: ")]
    command = line.removeprefix("to repair: ")
    words = _words_as_bash_reads_them(command, tmp_path)
    assert not (tmp_path / "PWNED").exists()
    assert words[:6] == [
        "talkprep",
        "process",
        str(tmp_path / HOSTILE),
        "-o",
        str(folder),
        "--tasks",
    ]
    assert words[6:8] == ["7", "--force"] and words[8:] == ["--audio-features", "mel"]


def test_a_name_no_line_can_carry_gets_no_command(complete, tmp_path):
    folder = _copy(complete, tmp_path, video="two\nlines.mp4")
    (folder / "torso_imgs" / "12.png").unlink()
    [fix] = repairs(check_folder(folder))
    assert (
        fix.startswith("no command printed: the name") and "two\\nlines.mp4' holds a newline" in fix
    )
    assert "\n" not in fix
    assert hints.shell(["talkprep", "check", "a\tb"]).startswith("no command printed")


def test_an_interrupted_run_is_repaired_by_the_same_command(complete, tmp_path):
    folder = _copy(complete, tmp_path)
    for name in ("bc.jpg", "transforms_train.json", "transforms_val.json", "au.csv"):
        (folder / name).unlink()
    for group in ("gt_imgs", "torso_imgs", "depth"):
        shutil.rmtree(folder / group)
    (folder / "parsing" / ".3.png.tmp-talkprep-999999999-0").write_bytes(b"half")  # from a gone run
    _edit_manifest(folder, parsing={"status": "running"}, background=None, torso=None, depth=None)
    _edit_manifest(folder, transforms=None)
    results = check_folder(folder)
    assert len([r for r in results if not r.ok]) >= 8
    video = json.loads(manifest_path(folder).read_text())["config"]["video"]
    assert repairs(results) == [
        shlex.join(["talkprep", "process", video, "-o", str(folder), "--audio-features", "mel"])
    ]


def test_a_failed_model_is_fetched_before_the_rerun(complete, tmp_path):
    folder = _copy(complete, tmp_path)
    for feature in folder.glob("aud_*.npy"):
        feature.unlink()
    model = "facebook/hubert-large-ls960-ft"
    error = f"{model} is not in the Hugging Face cache; {fetch_hint(model, '--hubert-model')}"
    _edit_manifest(folder, audio_features={"status": "failed", "error": error})
    fixes = repairs(check_folder(folder))
    assert fixes == [f"hf download {model} && " + fixes[0].split(" && ", 1)[1]]
    assert fixes[0].split(" && ")[1].startswith("talkprep process ")
    assert "--force" not in fixes[0]


def test_a_video_without_audio_gets_no_rerun_of_its_audio_tasks(complete, tmp_path):
    folder = _copy(complete, tmp_path)
    (folder / "aud.wav").unlink()
    for feature in folder.glob("aud_*.npy"):
        feature.unlink()
    error = "anchor.mp4 has no audio track; give one with --audio PATH (the video tasks still run)"
    _edit_manifest(
        folder,
        audio={"status": "failed", "error": error},
        audio_features={"status": "blocked", "error": "needs task 1"},
    )
    results = check_folder(folder)
    assert any(r.group == "task 1 (audio)" and not r.ok for r in results)
    assert repairs(results) == []


def test_check_target_fixes_name_the_real_video_quoted(complete, tmp_path):
    folder = _copy(complete, tmp_path, video=HOSTILE)
    report = check_target(folder, get_target("ernerf"))
    audio = next(f for f in report.problems if f.group == "audio")
    words = _words_as_bash_reads_them(audio.fix, tmp_path)
    assert not (tmp_path / "PWNED").exists()
    assert words == [
        "talkprep", "process", str(tmp_path / HOSTILE), "-o", str(folder),
        "--tasks", "2", "--audio-features", "mel,hubert",
    ]  # fmt: skip


def test_closing_lines_say_which_trainers_can_train(complete, tmp_path):
    folder = _copy(complete, tmp_path, name="anchor")
    text = closing_lines(folder, "ernerf")
    ready, not_yet = text.split("Not yet:")
    assert "SyncTalk" in ready and "InsTaG" in ready and "ER-NeRF" not in ready
    lines = {line.split()[0]: line for line in not_yet.splitlines() if line.strip()}
    er_nerf = lines["ER-NeRF"]
    assert "HuBERT features (aud_hu.npy): talkprep process" in er_nerf
    assert "--tasks 2 --audio-features mel,hubert" in er_nerf
    assert "extract_ds_features.py" in lines["AD-NeRF"]
    assert "--audio-features mel,wav2vec2" in lines["RAD-NeRF"]
    assert text.endswith(f"Validate it with: talkprep check {folder} --target ernerf")
    synctalk = next(s for s in readiness(folder) if s.target.name == "synctalk")
    assert synctalk.how.startswith(
        f"after talkprep export {folder} --target synctalk -o {folder}-synctalk; pass "
    )


def test_plain_check_lists_the_trainers(complete, capsys, monkeypatch):
    assert main(["check", str(complete)]) == 0
    printed = capsys.readouterr().out
    assert "Trainers that can train on it now (2 of 7):" in printed
    monkeypatch.chdir(complete)
    assert main(["check", "."]) == 0
    export = f"talkprep export . --target synctalk -o {complete.resolve()}-synctalk"
    assert export in capsys.readouterr().out


def test_export_exits_non_zero_when_the_trainer_cannot_train(complete, tmp_path, capsys):
    code = main(["export", str(complete), "--target", "adnerf", "-o", str(tmp_path / "ad")])
    printed = capsys.readouterr().out
    assert code == 3
    assert "AD-NeRF cannot train on it yet" in printed and "extract_ds_features.py" in printed


def test_check_target_prints_the_whole_train_command(complete, capsys):
    assert main(["check", str(complete), "--target", "synctalk"]) == 1  # its view is not written
    printed = capsys.readouterr().out
    data = str(complete.resolve())
    command = shlex.join(
        ["python", "main.py", data, "--workspace", "trial_anchor", "-O", "--iters", "60000"]
    )
    flags = "--portrait --asr_model ave --au45"
    assert f"train it (from SyncTalk's checkout): {command} {flags} && " in printed
    assert [x.split(" ")[0] for x in printed.splitlines()].count("au.csv") == 1, "one row a group"
    tg = check_target(complete, get_target("talkinggaussian"))
    steps = tg.train.split(" && ")
    assert [shlex.split(s)[1] for s in steps] == [
        "train_mouth.py",
        "train_face.py",
        "train_fuse.py",
    ]
    assert all(shlex.split(s)[2:6] == ["-s", data, "-m", "trial_anchor"] for s in steps)
    gt = check_target(complete, get_target("gaussiantalker")).train
    assert shlex.split(gt)[:6] == ["python", "train.py", "-s", data, "--model_path", "trial_anchor"]
    ad = check_target(complete, get_target("adnerf"))
    assert any(f.startswith("--near ") and " --testskip " in f for f in ad.flags)
    assert shlex.split(ad.train.split(" && ")[0])[:8] == [
        "python", "NeRFs/HeadNeRF/run_nerf.py", "--expname", "anchor_head", "--datadir", data,
        "--basedir", f"{data}/logs",
    ]  # fmt: skip
    instag = check_target(complete, get_target("instag")).train.split(" && ")
    assert [shlex.split(s)[1] for s in instag] == [
        "train_face.py",
        "train_mouth.py",
        "train_fuse_con.py",
    ]


D, W = "/data/my clip$(x)", "trial_my clip$(x)"
"""A dataset folder whose name a shell would split and run, and the workspace named after it."""
STEPS = {
    "ernerf": [
        ["python", "main.py", D, "--workspace", W, "-O", "--iters", "100000", "F"],
        ["python", "main.py", D, "--workspace", W, "-O", "--iters", "125000", "--finetune_lips",
         "--patch_size", "32", "F"],
        ["python", "main.py", D, "--workspace", f"{W}_torso", "-O", "--iters", "200000", "--torso",
         "--head_ckpt", f"{W}/checkpoints/ngp.pth", "F"],
    ],
    "radnerf": [
        ["python", "main.py", D, "--workspace", W, "-O", "--iters", "200000", "F"],
        ["python", "main.py", D, "--workspace", W, "-O", "--iters", "250000", "--finetune_lips",
         "F"],
        ["python", "main.py", D, "--workspace", f"{W}_torso", "-O", "--iters", "200000", "--torso",
         "--head_ckpt", f"{W}/checkpoints/ngp.pth", "F"],
    ],
    "synctalk": [
        ["python", "main.py", D, "--workspace", W, "-O", "--iters", "60000", "F"],
        ["python", "main.py", D, "--workspace", W, "-O", "--iters", "100000", "--finetune_lips",
         "--patch_size", "64", "F"],
    ],
    "adnerf": [
        ["python", "NeRFs/HeadNeRF/run_nerf.py", "--expname", "my clip$(x)_head", "--datadir", D,
         "--basedir", f"{D}/logs", "F"],
        ["mkdir", "-p", f"{D}/logs/my clip$(x)_com"],
        ["cp", f"{D}/logs/my clip$(x)_head/400000_head.tar", f"{D}/logs/my clip$(x)_com/"],
        ["python", "NeRFs/TorsoNeRF/run_nerf.py", "--expname", "my clip$(x)_com", "--datadir", D,
         "--basedir", f"{D}/logs", "F"],
    ],
    "talkinggaussian": [
        ["python", "train_mouth.py", "-s", D, "-m", W, "F"],
        ["python", "train_face.py", "-s", D, "-m", W, "--init_num", "2000",
         "--densify_grad_threshold", "0.0005", "F"],
        ["python", "train_fuse.py", "-s", D, "-m", W, "--opacity_lr", "0.001", "F"],
    ],
    "gaussiantalker": [
        ["python", "train.py", "-s", D, "--model_path", W, "--configs",
         "arguments/64_dim_1_transformer.py", "F"],
    ],
    "instag": [
        ["python", "train_face.py", "--type", "face", "-s", D, "-m", W, "--init_num", "2000",
         "--densify_grad_threshold", "0.0005", "--pretrain_path",
         "output/pretrain/chkpnt_ema_face_latest.pth", "--iterations", "10000", "--N_views", "-1",
         "--long", "F"],
        ["python", "train_mouth.py", "--type", "mouth", "-s", D, "-m", W, "--pretrain_path",
         "output/pretrain/chkpnt_ema_mouth_latest.pth", "--init_num", "5000", "--iterations",
         "10000", "--N_views", "-1", "--long", "F"],
        ["python", "train_fuse_con.py", "-s", D, "-m", W, "--opacity_lr", "0.001", "--iterations",
         "2000", "--N_views", "-1", "F"],
    ],
}  # fmt: skip
"""Each trainer's training steps on a prepared folder, from its README and scripts (see each
contract's docstring), with F for the flags `check --target` names."""


@pytest.mark.parametrize("name", sorted(STEPS))
def test_each_trainers_whole_training_command_in_its_steps(name, tmp_path):
    """Issue 24 item 11: `check --target` prints the trainer's own commands, every stage in order
    (InsTaG's adaptation, TalkingGaussian's mouth, face and fuse, AD-NeRF's head, the copy of its
    checkpoint and the torso), with the folder's real path quoted for the shell."""
    line = train_command(Path(D), get_target(name), ["F"])
    steps = [_words_as_bash_reads_them(step, tmp_path) for step in line.split(" && ")]
    assert steps == STEPS[name]
    assert not list(tmp_path.iterdir()), "nothing in the line ran"


def test_process_ends_with_the_trainers_and_a_quoted_check(tmp_path, monkeypatch, capsys):
    import talkprep.process
    from talkprep.process import ProcessResult

    monkeypatch.setattr(
        talkprep.process, "process_video", lambda config, console: ProcessResult([])
    )
    out = tmp_path / HOSTILE
    assert main(["process", str(tmp_path / "v.mp4"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Dataset in {out}\nTrainers that can train on it now (0 of 7):" in printed
    assert printed.rstrip().endswith(
        f"Validate it with: talkprep check {shlex.quote(str(out))} --target ernerf"
    )
