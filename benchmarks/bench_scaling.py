"""One video on 1, 2, ... cores, and the whole run as a multiple of the bare cost.

    python benchmarks/bench_scaling.py [--seconds 300] [--cores 1,2] [--repeats 1]
                                       [--tasks 1,3-9] [--tree DIR ...] [--no-bare]

The input is the anchor clip repeated to `--seconds` (the issue's 5 minutes by default; a
2-minute input is quicker where time is short). Each run is `talkprep process --tasks 1,3-9`
(no HuBERT; `--tasks` picks others) in a child pinned with `taskset` to the first k cores.
Configurations are interleaved (all core counts, then again for each repeat) so that a busy
machine weighs on each alike; each row gives wall time, the CPU seconds of the run and its
workers, the speed-up over the fewest cores (medians over the repeats), the peak memory of the
process tree and the load average at its start. `--tree DIR` (repeatable) runs talkprep from
source trees (commits unpacked with `git archive` into folders named after them) instead of
this checkout, interleaved, so that two commits are compared in one run.

The bare cost (issue 25): what any run must spend on this input, measured in one child pinned
to one core: decoding every frame, MediaPipe's face mesh (one face, video mode) and selfie
segmentation on every frame, and JPEG encoding of every frame, each timed on its own. The table
prints each whole run as a multiple of that sum.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from long_clip import repeat_clip

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ANCHOR = DATA / "anchor_512_25fps_20s.mp4"
HERE = Path(__file__).resolve().parents[1]
DEFAULT_TASKS = "1,3-9"
"""The default run without HuBERT, the issue's measure."""
PAGE = os.sysconf("SC_PAGE_SIZE")
RSS_EVERY_S = 0.25
"""How often the memory of a run's process tree is sampled."""
BARE_STAGES = ("decode", "face_mesh", "selfie_segmentation", "jpeg_encoding")


@dataclass(frozen=True)
class Timed:
    """One child's wall seconds, CPU seconds (user + system, its workers included) and peak
    memory: the largest sum of resident sets over the child and its workers (MiB)."""

    wall: float
    cpu: float
    peak_mib: float
    load: float
    """1-minute load average when it started."""


def tree_rss(root: int) -> int:
    """Bytes resident in process `root` and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        rss[pid] = int(fields[21]) * PAGE
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(child for child, parent in parents.items() if parent == pid)
    return total


def run_child(command: list[str], cores: int, tree: Path) -> tuple[Timed, str]:
    """`command` pinned to cores 0..cores-1 with `tree` first on the module path; its stdout."""
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    pinned = ["taskset", "-c", ",".join(map(str, cpus)), *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(HERE / "benchmarks")])}
    load = os.getloadavg()[0]
    peak = [0]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as output:
        child = subprocess.Popen(pinned, env=env, stdout=output, text=True)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(RSS_EVERY_S):
                peak[0] = max(peak[0], tree_rss(child.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
        output.seek(0)
        text = output.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(pinned)} exited {code}\n{text}")
    peak_mib = max(peak[0] / 2**20, usage.ru_maxrss / 1024)
    return Timed(wall, usage.ru_utime + usage.ru_stime, peak_mib, load), text


def talkprep_command(tree: Path) -> list[str]:
    """`python -m talkprep` from `tree`: the installed (editable) talkprep is set aside for
    another tree, whose folder goes first on the module path."""
    if tree == HERE:
        return [sys.executable, "-m", "talkprep"]
    code = (
        "import runpy, sys; "
        "sys.meta_path[:] = [f for f in sys.meta_path "
        "if not getattr(f, '__module__', '').startswith('__editable__')]; "
        f"sys.path.insert(0, {str(tree)!r}); "
        "runpy.run_module('talkprep', run_name='__main__')"
    )
    return [sys.executable, "-c", code]


def whole_run(video: Path, out: Path, cores: int, tree: Path, tasks: str) -> tuple[Timed, str]:
    """`talkprep process VIDEO --tasks TASKS` on `cores` cores, from scratch; and each task's
    wall seconds from its manifest."""
    shutil.rmtree(out, ignore_errors=True)
    command = [*talkprep_command(tree), "process", str(video), "-o", str(out), "-q"]
    timed, _ = run_child([*command, "--tasks", tasks], cores, tree)
    records = json.loads((out / ".talkprep" / "manifest.json").read_text())["tasks"]
    walls = ", ".join(
        f"{record.get('number')} {name} {record.get('wall_s', 0):.1f}"
        for name, record in sorted(records.items(), key=lambda item: item[1].get("number", 0))
    )
    shutil.rmtree(out, ignore_errors=True)
    return timed, walls


def bare_stages(video: str) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds (all the process's threads) of each bare stage over every frame of
    `video`, run in the pinned child: {"wall": {stage: s}, "cpu": {stage: s}}."""
    from talkprep.io.images import encode_jpeg
    from talkprep.io.video import iter_frames
    from talkprep.models.face_mesh import FaceMesh
    from talkprep.models.selfie_segmenter import SelfieSegmenter

    spent = {clock: dict.fromkeys(BARE_STAGES, 0.0) for clock in ("wall", "cpu")}
    frames = iter_frames(video)

    def now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    with FaceMesh(max_faces=1) as mesh, SelfieSegmenter() as segmenter:
        while True:
            marks = [now()]
            frame = next(frames, None)
            marks.append(now())
            if frame is None:
                break
            mesh.process(frame.image)
            marks.append(now())
            segmenter.segment(frame.image)
            marks.append(now())
            encode_jpeg(frame.image)
            marks.append(now())
            for k, stage in enumerate(BARE_STAGES):
                spent["wall"][stage] += marks[k + 1][0] - marks[k][0]
                spent["cpu"][stage] += marks[k + 1][1] - marks[k][1]
    return spent


def bare_cost(video: Path, tree: Path) -> tuple[dict[str, dict[str, float]], Timed]:
    """The bare stages measured in a child pinned to one core, and that child's totals."""
    code = (
        "import json, sys; from bench_scaling import bare_stages; "
        "print(json.dumps(bare_stages(sys.argv[1])))"
    )
    timed, output = run_child([sys.executable, "-c", code, str(video)], 1, tree)
    return json.loads(output.strip().splitlines()[-1]), timed


def bare_parts(stages: dict[str, dict[str, float]]) -> str:
    """Each stage's wall and CPU seconds, for a line of text."""
    return ", ".join(
        f"{name} {stages['wall'][name]:.1f} s / {stages['cpu'][name]:.1f} CPU-s"
        for name in BARE_STAGES
    )


def commit_of(tree: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return tree.name


def scaling_table(
    video: Path,
    scratch: Path,
    cores: list[int],
    repeats: int,
    trees: list[Path],
    bare: tuple[float, float] | None,
    tasks: str = DEFAULT_TASKS,
) -> list[str]:
    """Markdown rows of the interleaved runs: one per tree and core count; with the bare cost
    (wall s, CPU s), each run's median wall time over it and its median CPU time over its CPU."""
    times: dict[tuple[Path, int], list[Timed]] = {(t, k): [] for t in trees for k in cores}
    for repeat in range(repeats):
        for k in cores:
            for tree in trees:
                timed, walls = whole_run(video, scratch / "out", k, tree, tasks)
                times[(tree, k)].append(timed)
                print(
                    f"run {repeat + 1}: {commit_of(tree)} on {k} core(s): {timed.wall:.1f} s wall, "
                    f"{timed.cpu:.1f} CPU-s, peak {timed.peak_mib:.0f} MiB, load {timed.load:.2f}; "
                    f"task wall s: {walls}",
                    flush=True,
                )
    header = (
        f"| code | cores | wall s | CPU s | speed-up over {cores[0]} | peak MiB | load at start |"
    )
    if bare is not None:
        header += " wall / bare wall | CPU / bare CPU |"
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for tree in trees:
        one = statistics.median(t.wall for t in times[(tree, cores[0])])
        for k in cores:
            runs = times[(tree, k)]
            wall = statistics.median(t.wall for t in runs)
            row = (
                f"| {commit_of(tree)} | {k} | {' / '.join(f'{t.wall:.1f}' for t in runs)} | "
                f"{' / '.join(f'{t.cpu:.1f}' for t in runs)} | {one / wall:.2f} | "
                f"{max(t.peak_mib for t in runs):.0f} | "
                f"{' / '.join(f'{t.load:.2f}' for t in runs)} |"
            )
            if bare is not None:
                cpu = statistics.median(t.cpu for t in runs)
                row = row + f" {wall / bare[0]:.2f} | {cpu / bare[1]:.2f} |"
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="input length")
    parser.add_argument("--cores", help="core counts, e.g. 1,2 (default 1..all)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="tasks of each run")
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="run talkprep from this source tree (repeat to compare trees; default: this one)",
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare-cost measurement")
    args = parser.parse_args()
    available = len(os.sched_getaffinity(0))
    cores = [int(c) for c in args.cores.split(",")] if args.cores else list(range(1, available + 1))
    trees = [t.resolve() for t in args.tree] if args.tree else [HERE]
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        video = repeat_clip(ANCHOR, scratch / "anchor_long.mp4", args.seconds)
        print(
            f"input: the anchor clip repeated to {args.seconds:.0f} s; {available} cores; "
            f"load average {os.getloadavg()[0]:.2f}; commit {commit_of(HERE)}",
            flush=True,
        )
        bare = None
        if not args.no_bare:
            stages, timed = bare_cost(video, trees[0])
            bare = (sum(stages["wall"].values()), sum(stages["cpu"].values()))
            print(
                f"bare cost on one core: {bare[0]:.1f} s wall, {bare[1]:.1f} CPU-s "
                f"({bare_parts(stages)}); load at start {timed.load:.2f}",
                flush=True,
            )
        rows = scaling_table(video, scratch, cores, args.repeats, trees, bare, args.tasks)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
