"""The runner: ordering, resume, fingerprints, failures that spare other tasks, kill safety."""

from __future__ import annotations

import _thread
import filecmp
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from conftest import clip_path
from synth import moving_square_frames, write_video

import talkprep.pipeline as pipeline_module
from talkprep.cli import main
from talkprep.config import build_config, parse_task_spec
from talkprep.console import Console
from talkprep.errors import TaskError, UsageError
from talkprep.io.atomic import TEMP_MARK, write_text
from talkprep.manifest import manifest_path
from talkprep.pipeline import Pipeline, order_tasks
from talkprep.report.html import REPORT_NAME
from talkprep.tasks.base import Task, TaskContext, TaskResult


def _manifest(folder: Path) -> dict:
    return json.loads(manifest_path(folder).read_text())


def test_task_spec_parsing():
    assert parse_task_spec("all") == tuple(range(1, 10))
    assert parse_task_spec("1,3-5") == (1, 3, 4, 5)
    assert parse_task_spec("9, 2") == (2, 9)
    assert parse_task_spec([1, "4-5"]) == (1, 4, 5)
    with pytest.raises(UsageError, match="unknown task"):
        parse_task_spec("0")
    with pytest.raises(UsageError, match=r"unknown task number 10; tasks are 1-9$"):
        parse_task_spec("10")  # not "[10, 10]"
    with pytest.raises(UsageError, match=r"number 10 and 12 in '10-12'"):
        parse_task_spec("10-12")
    with pytest.raises(UsageError):
        parse_task_spec("1,,x")


def test_rerun_skips_and_force_reruns(tmp_path, capsys):
    video = write_video(tmp_path / "v.mp4", moving_square_frames(30), fps=25)
    out = tmp_path / "o"
    args = ["process", str(video), "-o", str(out), "--tasks", "3"]
    assert main(args) == 0
    first = _manifest(out)["tasks"]["frames"]
    capsys.readouterr()
    assert main(args) == 0
    assert "up to date, skipped" in capsys.readouterr().err
    assert _manifest(out)["tasks"]["frames"] == first
    assert main([*args, "--force"]) == 0
    assert _manifest(out)["tasks"]["frames"]["started"] >= first["started"]
    assert "skipped" not in capsys.readouterr().err


def test_changed_option_reruns_only_the_tasks_that_read_it(tmp_path, capsys):
    rate = 16000
    tone = np.sin(np.arange(2 * rate) * 0.1).astype(np.float32)
    video = write_video(tmp_path / "v.mp4", moving_square_frames(50), fps=25, audio=tone)
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "1,3", "-q"]) == 0
    assert len(list((out / "ori_imgs").glob("*.jpg"))) == 50
    config = tmp_path / "opts.toml"
    config.write_text('fps = 10\ntasks = "1,3"\n')
    assert main(["process", str(video), "-o", str(out), "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert "[1] audio: up to date, skipped" in err
    assert "[3] frames: done" in err
    assert len(list((out / "ori_imgs").glob("*.jpg"))) == 20, "stale frames must be removed"
    assert _manifest(out)["config"]["fps"] == 10
    # the command line wins over the config file
    assert main(["process", str(video), "-o", str(out), "--config", str(config), "--fps", "5"]) == 0
    assert len(list((out / "ori_imgs").glob("*.jpg"))) == 10


def test_a_deleted_output_makes_its_task_rerun(tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_square_frames(20), fps=25)
    out = tmp_path / "o"
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    (out / "ori_imgs" / "7.jpg").unlink()
    assert main(["process", str(video), "-o", str(out), "--tasks", "3", "-q"]) == 0
    assert (out / "ori_imgs" / "7.jpg").exists()


class _Producer(Task):
    number = 1
    name = "producer"
    title = "writes a.txt"
    makes = ("a.txt",)
    fail: ClassVar[bool] = False

    def run(self, ctx: TaskContext) -> TaskResult:
        if self.fail:
            raise TaskError("producer cannot work today")
        write_text(ctx.out / "a.txt", "a")
        return TaskResult(frames=1, figures={"ok": 1})


class _Consumer(Task):
    number = 2
    name = "consumer"
    title = "reads a.txt"
    needs = ("producer",)
    makes = ("b.txt",)

    def run(self, ctx: TaskContext) -> TaskResult:
        write_text(ctx.out / "b.txt", (ctx.out / "a.txt").read_text() + "b")
        return TaskResult()


class _Crasher(Task):
    number = 3
    name = "crasher"
    title = "has a bug"
    makes = ("c.txt",)

    def run(self, ctx: TaskContext) -> TaskResult:
        return TaskResult(frames=[][1])


class _Independent(Task):
    number = 4
    name = "independent"
    title = "needs nothing"
    makes = ("d.txt",)

    def run(self, ctx: TaskContext) -> TaskResult:
        write_text(ctx.out / "d.txt", "d")
        return TaskResult()


def test_order_follows_needs():
    tasks = [_Independent(), _Consumer(), _Producer()]
    assert [t.name for t in order_tasks(tasks)] == ["producer", "consumer", "independent"]


def test_failures_block_dependents_but_not_independent_tasks(tmp_path, monkeypatch):
    fake = (_Producer(), _Consumer(), _Crasher(), _Independent())
    monkeypatch.setattr(pipeline_module, "ALL_TASKS", fake)
    video = write_video(tmp_path / "v.mp4", moving_square_frames(5), fps=25)
    out = tmp_path / "o"
    config = build_config({"video": video, "out": out, "tasks": "1-4"})
    monkeypatch.setattr(_Producer, "fail", True)
    outcomes = {o.name: o for o in Pipeline(config, Console(quiet=True)).run()}
    assert outcomes["producer"].status == "failed"
    assert outcomes["producer"].message == "producer cannot work today"
    assert outcomes["consumer"].status == "blocked"
    assert "producer" in outcomes["consumer"].message
    assert outcomes["crasher"].status == "failed"
    assert "IndexError" in outcomes["crasher"].message
    assert "IndexError" in (out / pipeline_module.ERROR_LOG).read_text()
    assert outcomes["independent"].status == "done"
    assert (out / "d.txt").read_text() == "d"

    monkeypatch.setattr(_Producer, "fail", False)
    config = build_config({"video": video, "out": out, "tasks": "2"})
    outcomes = {o.name: o for o in Pipeline(config, Console(quiet=True)).run()}
    assert outcomes["consumer"].status == "blocked"
    assert "add 1 to --tasks" in outcomes["consumer"].message
    config = build_config({"video": video, "out": out, "tasks": "1,2"})
    outcomes = {o.name: o for o in Pipeline(config, Console(quiet=True)).run()}
    assert outcomes["consumer"].status == "done"
    assert (out / "b.txt").read_text() == "ab"
    assert _manifest(out)["tasks"]["producer"]["figures"] == {"ok": 1}


class _User(Task):
    number = 5
    name = "user"
    title = "reads a.txt when it is there"
    uses = ("producer",)
    makes = ("e.txt",)

    def run(self, ctx: TaskContext) -> TaskResult:
        used = (ctx.out / "a.txt").read_text() if "producer" in ctx.records else "-"
        write_text(ctx.out / "e.txt", "e" + used)
        return TaskResult()


def test_a_used_task_runs_first_when_asked_for_and_its_state_reruns_the_user(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline_module, "ALL_TASKS", (_User(), _Producer()))
    video = write_video(tmp_path / "v.mp4", moving_square_frames(5), fps=25)
    out = tmp_path / "o"

    def run(tasks: str) -> dict[str, str]:
        config = build_config({"video": video, "out": out, "tasks": tasks})
        return {o.name: o.status for o in Pipeline(config, Console(quiet=True)).run()}

    monkeypatch.setattr(_Producer, "fail", True)
    assert run("1,5") == {"producer": "failed", "user": "done"}  # not blocked
    assert (out / "e.txt").read_text() == "e-"
    monkeypatch.setattr(_Producer, "fail", False)
    assert run("1,5") == {"producer": "done", "user": "done"}  # ran after the producer
    assert (out / "e.txt").read_text() == "ea"
    assert run("1,5") == {"producer": "skipped", "user": "skipped"}
    assert run("5") == {"user": "skipped"}


class _Meeter(Task):
    """Waits until the other meeter is running too: only tasks run at the same time both end."""

    number = 5
    name = "meeter"
    title = "waits for its partner"
    makes = ("meeter.txt",)
    meeting: ClassVar[threading.Barrier] = threading.Barrier(2, timeout=10)

    def run(self, ctx: TaskContext) -> TaskResult:
        self.meeting.wait()
        write_text(ctx.out / f"{self.name}.txt", self.name)
        return TaskResult()


class _Partner(_Meeter):
    number = 6
    name = "partner"
    makes = ("partner.txt",)


class _Looper(Task):
    """A long frame loop, to be stopped half-way."""

    number = 7
    name = "looper"
    title = "loops for a long time"
    makes = ("l.txt",)

    def run(self, ctx: TaskContext) -> TaskResult:
        for _ in ctx.progress(range(100_000), total=100_000):
            time.sleep(0.01)
        write_text(ctx.out / "l.txt", "l")
        return TaskResult()


class _OtherLooper(_Looper):
    number = 8
    name = "other_looper"
    makes = ("o.txt",)


def test_tasks_that_do_not_need_each_other_run_at_the_same_time(tmp_path, monkeypatch):
    fake = (_Producer(), _Consumer(), _Meeter(), _Partner())
    monkeypatch.setattr(pipeline_module, "ALL_TASKS", fake)
    monkeypatch.setattr(_Meeter, "meeting", threading.Barrier(2, timeout=10))
    video = write_video(tmp_path / "v.mp4", moving_square_frames(5), fps=25)
    out = tmp_path / "o"
    config = build_config({"video": video, "out": out, "tasks": "1,2,5,6"})
    outcomes = {o.name: o.status for o in Pipeline(config, Console(quiet=True)).run()}
    assert outcomes == dict.fromkeys(("producer", "consumer", "meeter", "partner"), "done")
    assert (out / "b.txt").read_text() == "ab", "a task starts only after what it needs"
    records = _manifest(out)["tasks"]
    assert {name for name, r in records.items() if r["status"] == "done"} == set(outcomes)
    assert set(_manifest(out)["written"]) == {"a.txt", "b.txt", "meeter.txt", "partner.txt"}


def test_ctrl_c_stops_every_running_task_and_leaves_them_to_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline_module, "ALL_TASKS", (_Looper(), _OtherLooper()))
    video = write_video(tmp_path / "v.mp4", moving_square_frames(5), fps=25)
    out = tmp_path / "o"
    config = build_config({"video": video, "out": out, "tasks": "7,8"})
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Pipeline(config, Console(quiet=True)).run()
    assert time.monotonic() - t0 < 10, "the loops stop at their next item"
    assert not [t for t in threading.enumerate() if t.name.startswith("talkprep-")]
    records = _manifest(out)["tasks"]
    assert records["looper"]["status"] == records["other_looper"]["status"] == "running"
    assert set(_manifest(out)["writing"]) == {"l.txt", "o.txt"}
    assert not (out / "l.txt").exists()


def test_killed_run_resumes_to_identical_outputs(processed, tmp_path):
    video = clip_path("anchor")
    reference = processed("anchor", tasks="1,3")
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "talkprep", "process", str(video), "-o", str(out)]
    process = subprocess.Popen([*command, "--tasks", "1,3"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        frames = out / "ori_imgs"
        if frames.is_dir() and sum(1 for _ in frames.glob("*.jpg")) >= 150:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert _manifest(out)["tasks"]["frames"]["status"] == "running"

    assert main(["process", str(video), "-o", str(out), "--tasks", "1,3", "-q"]) == 0
    assert not list(out.rglob(f"*{TEMP_MARK}*"))
    # the shared reference folder may hold later tasks' files too: compare what tasks 1 and 3 make
    names = sorted(
        [Path("aud.wav"), *(p.relative_to(reference) for p in reference.glob("ori_imgs/*.jpg"))]
    )
    run_files = {"manifest.json", "view.json", pipeline_module.LOCK_NAME, REPORT_NAME}
    written = sorted(
        p.relative_to(out) for p in out.rglob("*") if p.is_file() and ".talkprep" not in p.parts
    )
    assert [n for n in written if n.name not in run_files] == names
    _, mismatch, errors = filecmp.cmpfiles(reference, out, [str(n) for n in names], shallow=False)
    assert not mismatch and not errors
