"""The terminal: no native log lines, results on stdout, help with the tasks and exit codes."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import clip_path

from talkprep.cli import main
from talkprep.console import Console
from talkprep.models.native_log import NATIVE_LINE, drop_native_lines

GLOG = b"W0000 00:00:1795663183.154480   12688 inference_feedback_manager.cc:114] Feedback off\n"
TFLITE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
ABSL = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"


def _native(text: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", text) if NATIVE_LINE.match(line.encode())]


def test_native_lines_are_dropped_and_everything_else_passes():
    bar = b"\rframes:  10%|#         | 3/30\rframes:  20%|##        | 6/30"
    text, rest = drop_native_lines(GLOG + b"[3] frames ...\n" + TFLITE + ABSL + bar)
    assert text == b"[3] frames ...\n" + bar
    assert rest == b""
    text, rest = drop_native_lines(b"done\nW0000 00:00:17956")
    assert (text, rest) == (b"done\n", b"W0000 00:00:17956"), "a half native line waits"
    text, rest = drop_native_lines(rest + GLOG[len(rest) :] + b"next\n")
    assert (text, rest) == (b"next\n", b"")
    assert drop_native_lines(b"Warning: the frames repeat\n") == (
        b"Warning: the frames repeat\n",
        b"",
    )


def test_filter_drops_native_lines_written_to_fd_2_from_any_thread():
    script = textwrap.dedent(
        f"""
        import os, sys, threading
        from talkprep.models.native_log import filter_native_logs
        with filter_native_logs():
            worker = threading.Thread(target=os.write, args=(2, {GLOG!r}))
            worker.start(); worker.join()
            os.write(2, {TFLITE!r} + {ABSL!r} + b"a real C++ error\\n")
            print("python says hello", file=sys.stderr)
        print("after the block", file=sys.stderr)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert sorted(lines) == ["a real C++ error", "after the block", "python says hello"]


def test_a_real_run_prints_no_native_lines_and_its_summary_on_stdout(tmp_path):
    video = clip_path("headturn")
    command = [sys.executable, "-m", "talkprep", "process", str(video), "-o", str(tmp_path / "o")]
    done = subprocess.run(
        [*command, "--tasks", "3", "--crop", "auto"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "TALKPREP_NATIVE_LOGS"},
    )
    assert done.returncode == 0, done.stderr
    assert _native(done.stderr) == [] and _native(done.stdout) == []
    assert "[3] frames: done" in done.stderr
    assert re.search(r"^task +status +time", done.stdout, re.M), "summary table on stdout"
    assert "task " not in done.stderr.split("[3] frames: done")[1]
    assert "Dataset in" in done.stdout


def test_results_go_to_stdout_and_status_to_stderr():
    out, err = io.StringIO(), io.StringIO()
    console = Console(stream=err, results=out)
    console.line("[1] audio ...")
    console.result("task  status")
    assert (out.getvalue(), err.getvalue()) == ("task  status\n", "[1] audio ...\n")
    quiet = Console(stream=err, results=out, quiet=True)
    quiet.line("x")
    quiet.result("y")
    assert (out.getvalue(), err.getvalue()) == ("task  status\n", "[1] audio ...\n")


def test_bare_talkprep_prints_usage(capsys):
    assert main([]) == 1
    printed = capsys.readouterr().out
    assert printed.startswith("usage: talkprep")
    assert "process" in printed and "check" in printed


def test_process_help_lists_the_nine_tasks_and_the_exit_codes(capsys):
    from talkprep.tasks import ALL_TASKS

    with pytest.raises(SystemExit) as done:
        main(["process", "--help"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    for task in ALL_TASKS:
        assert re.search(rf"^  {task.number} {task.name}\s", printed, re.M), task.name
    for code in ("0", "1", "3"):
        assert re.search(rf"^  {code} +\S", printed, re.M), code
    assert "--offline" in printed


class _RecordingConsole(Console):
    """Counts what each progress bar is told and what it really iterates."""

    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.bars: list[dict] = []

    def progress(self, iterable, total=None, desc="", unit="frame"):
        bar = {"desc": desc, "total": total, "unit": unit, "seen": 0}
        self.bars.append(bar)
        for item in iterable:
            bar["seen"] += 1
            yield item


def test_depth_bar_counts_frames(processed, tmp_path):
    import json
    import shutil

    from talkprep.config import build_config
    from talkprep.manifest import manifest_path
    from talkprep.pipeline import Pipeline

    folder = tmp_path / "hdtf"
    shutil.copytree(processed("hdtf", tasks="3,4"), folder)
    manifest = json.loads(manifest_path(folder).read_text())
    n = manifest["tasks"]["frames"]["info"]["n_frames"]
    values = {"video": manifest["config"]["video"], "out": folder, "tasks": "8", "force": True}
    console = _RecordingConsole()
    (outcome,) = Pipeline(build_config(values), console).run()
    assert outcome.status == "done", outcome.message
    (bar,) = [b for b in console.bars if b["desc"].startswith("depth")]
    assert bar == {"desc": "depth", "total": n, "unit": "frame", "seen": n}
