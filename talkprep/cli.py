"""Command line: parses options into a Config and calls the library. Only here do errors become
one-line messages and exit codes: 0 all requested tasks succeeded, 1 usage or input error before
any work, 3 some tasks failed (the others finished)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from talkprep import __version__
from talkprep.config import build_config, load_toml
from talkprep.console import Console
from talkprep.errors import TalkprepError, UsageError
from talkprep.models.native_log import filter_native_logs
from talkprep.parallel import start_tracker

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_TASKS_FAILED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


PROCESS_EPILOG = """\
tasks (--tasks all, or numbers: 4, 1,3-5; a task whose inputs are unchanged is skipped):
  1 audio           aud.wav: the audio track, 16 kHz mono
  2 audio_features  aud_hu.npy (HuBERT) or the other --audio-features asked for; the
                    closing lines say which trainers the folder serves and what others need
  3 frames          ori_imgs/{i}.jpg at --fps; --crop auto frames head and shoulders
  4 landmarks       landmarks.npy, ori_imgs/{i}.lms, track_params.pt (face mesh, head pose)
  5 parsing         semantics/{i}.png, parsing/{i}.png (head, neck, torso, background)
  6 background      bc.jpg: the background plate
  7 torso           torso_imgs/{i}.png, gt_imgs/{i}.jpg
  8 depth           depth/{i}.png
  9 transforms      transforms_train.json, transforms_val.json, au.csv

models: Hugging Face models (HuBERT) download into the Hugging Face cache on first use;
  --offline (or HF_HUB_OFFLINE=1) forbids downloads: a model not cached fails its task with
  the command that fetches it, and the other tasks finish.

exit status:
  0    every requested task succeeded
  1    usage or input error before any work (one line says what to do)
  3    some tasks failed; the others finished and the summary says which and why
  130  interrupted (Ctrl-C), 143 stopped by SIGTERM: rerun the same command to resume
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        if "required: video" in message or "unrecognized arguments: -" in message:
            message += (
                "; a file name that starts with '-' goes after '--' "
                "(talkprep process -o OUT -- -clip.mp4) or as ./-clip.mp4"
            )
        raise UsageError(message)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or `kill`): stop like Ctrl-C, so that the run can be resumed."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


_TARGETS = "ernerf (default), radnerf, adnerf, synctalk, talkinggaussian, gaussiantalker, instag"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="talkprep",
        description="Turn one talking-head video into a checked talking-face training dataset.",
    )
    parser.add_argument("--version", action="version", version=f"talkprep {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    process = commands.add_parser(
        "process",
        help="process one video into a dataset folder",
        description="Process one talking-head video into a dataset folder (tasks 1-9).",
        epilog=PROCESS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    process.add_argument("video", type=Path, help="input video")
    process.add_argument("-o", "--out", type=Path, required=True, help="dataset folder")
    _add_process_options(process)

    batch = commands.add_parser("batch", help="process many videos, each into ROOT/<name>/")
    batch.add_argument("inputs", nargs="+", type=Path, help="videos, or folders of videos")
    batch.add_argument("-o", "--out", type=Path, required=True, help="root of the datasets")
    batch.add_argument("--engine", help="local (default): processes here; ray: a Ray cluster")
    batch.add_argument("--workers", help="videos at a time (local; default half the cores)")
    batch.add_argument("--threads-per-video", help="threads, or Ray CPUs, per video")
    batch.add_argument("--gpus-per-video", help="GPUs per Ray task (default from --device)")
    batch.add_argument("--ray-address", help="Ray cluster address (default: a local instance)")
    _add_process_options(batch)

    check = commands.add_parser(
        "check", help="validate a dataset folder against the format (a batch's ROOT: each video)"
    )
    check.add_argument("folder", type=Path)
    check.add_argument("--target", help=f"also check against a trainer's contract: {_TARGETS}")

    export = commands.add_parser("export", help="write a trainer's view of a processed folder")
    export.add_argument("folder", type=Path)
    export.add_argument("--target", default="ernerf", help=f"trainer: {_TARGETS}")
    export.add_argument("-o", "--out", type=Path, help="view folder (default: FOLDER in place)")

    report = commands.add_parser("report", help="(re)build FOLDER/report.html")
    report.add_argument("folder", type=Path)

    preview = commands.add_parser(
        "preview", help="H.264 + AAC MP4 of the frames with overlays beside gt, with the audio"
    )
    preview.add_argument("folder", type=Path)
    preview.add_argument("-o", "--out", type=Path, help="video file (default FOLDER/preview.mp4)")
    preview.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return parser


def _add_process_options(process: argparse.ArgumentParser) -> None:
    """The per-video options, shared by `process` and `batch` so that both accept the same."""
    process.add_argument("--tasks", help="tasks to run: all (default), 4, 1,3-5")
    process.add_argument("--fps", help="target frame rate (default 25)")
    process.add_argument("--size", help="output frame side with --crop auto (default 512)")
    process.add_argument("--crop", help="none (default) or auto: one square box around the head")
    process.add_argument("--audio", type=Path, help="audio file to use instead of the video's")
    process.add_argument(
        "--audio-features",
        help="hubert (default: ER-NeRF, TalkingGaussian, SyncTalk, InsTaG read it), mel (no "
        "download; no trainer reads it: only SyncTalk and InsTaG train, from aud.wav), wav2vec2 "
        "(RAD-NeRF), deepspeech; comma-separated",
    )
    process.add_argument("--hubert-model", help="HuBERT Hugging Face id or local folder")
    process.add_argument("--wav2vec2-model", help="wav2vec2 CTC Hugging Face id or local folder")
    process.add_argument("--deepspeech-model", type=Path, help="folder of a 29-character CTC model")
    process.add_argument("--parser", help="mediapipe (default) or bisenet")
    process.add_argument("--parser-weights", type=Path, help="BiSeNet 79999_iter.pth")
    process.add_argument("--depth", help="mesh (default) or dagan")
    process.add_argument(
        "--depth-weights", type=Path, help="DaGAN folder with encoder.pth, depth.pth"
    )
    process.add_argument(
        "--blendshape-model", type=Path, help="face_landmarker.task for blendshapes.npy"
    )
    process.add_argument(
        "--blendshapes",
        action="store_true",
        default=None,
        help="also write blendshapes.npy (face_landmarker.task downloaded on first use)",
    )
    process.add_argument("--device", help="auto (default), cpu or cuda")
    process.add_argument(
        "--av-sync", help="auto (default): correct a confident offset; off; or SECONDS (audio late)"
    )
    process.add_argument(
        "--keep-flagged",
        action="store_true",
        default=None,
        help="keep frames screening flags (blur, cuts, turned head, ...) in the splits",
    )
    process.add_argument("--target", help=f"trainer whose files to write: {_TARGETS}")
    process.add_argument(
        "--force", action="store_true", default=None, help="rerun up-to-date tasks"
    )
    process.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="never download models (as HF_HUB_OFFLINE=1); use only cached or local ones",
    )
    process.add_argument("--config", type=Path, help="TOML file of options (command line wins)")
    process.add_argument("-q", "--quiet", action="store_true", help="no progress output")


_NOT_CONFIG = {"command", "config", "quiet"}


def _config_values(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = load_toml(args.config) if args.config else {}
    for key, value in vars(args).items():
        if key not in _NOT_CONFIG and value is not None:
            values[key] = value
    return values


def _process(args: argparse.Namespace, console: Console) -> int:
    from talkprep.process import process_video

    config = build_config(_config_values(args))
    result = process_video(config, console)
    console.result()
    console.result(_summary(result.outcomes))
    if result.failed_tasks:
        console.result(
            f"\n{len(result.failed_tasks)} task(s) did not finish; see above. "
            "Outputs of the others are kept."
        )
        if console.quiet:  # -q hides progress, never why the run failed
            for o in result.failed_tasks:
                console.problem(f"talkprep: task {o.number} {o.name} {o.status}: {o.message}")
        return EXIT_TASKS_FAILED
    if result.view_error:
        if console.quiet:
            console.problem(f"talkprep: {result.view_error}")
        return EXIT_TASKS_FAILED
    console.result("\n" + closing_lines(config.out, config.target))
    return EXIT_OK


def closing_lines(out: Path, target: str) -> str:
    """Where the dataset is, which trainers can train on it (and what each other one needs),
    and the check to run."""
    from talkprep.hints import check_words, shell
    from talkprep.targets.ready import format_readiness, readiness

    return (
        f"Dataset in {out}\n{format_readiness(readiness(out))}\n"
        f"Validate it with: {shell(check_words(out, target))}"
    )


def _export(args: argparse.Namespace, console: Console) -> int:
    from talkprep.process import write_view_safely
    from talkprep.targets import format_report, get_target
    from talkprep.targets.check import check_target
    from talkprep.targets.view import require_folder

    if write_view_safely(require_folder(args.folder), args.target, console, args.out):
        return EXIT_TASKS_FAILED
    out = args.out or args.folder
    report = check_target(out, get_target(args.target))
    if report.problems:
        console.result(format_report(report))
        console.result(
            f"\n{args.target} view in {out}, but {report.target.trainer} cannot train on it yet: "
            f"{len(report.problems)} problem(s), each with its fix above"
        )
        return EXIT_TASKS_FAILED
    console.result(f"{args.target} view in {out}, ready for {report.target.trainer}")
    flags = " ".join(report.flags)
    if flags:
        console.result(f"{report.target.trainer} flags: {flags}")
    return EXIT_OK


def _batch(args: argparse.Namespace, console: Console) -> int:
    from talkprep.batch.runner import format_summary, run_batch, split_batch_options

    options, values = split_batch_options(_config_values(args))
    inputs, root = values.pop("inputs"), values.pop("out")
    summary = run_batch(inputs, root, values, options, console)
    console.result()
    console.result(format_summary(summary))
    return EXIT_OK if summary.ok else EXIT_TASKS_FAILED


def _summary(outcomes: Sequence[Any]) -> str:
    rows = [("task", "status", "time", "frames/s", "note")]
    for o in outcomes:
        rate = f"{o.frames_per_s:.1f}" if o.frames_per_s else ""
        time_text = f"{o.wall_s:.1f} s" if o.status in ("done", "failed") else ""
        rows.append((f"{o.number} {o.name}", o.status, time_text, rate, o.message))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(f"{cell:<{w}}" for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    ).rstrip()


def _preview(args: argparse.Namespace, console: Console) -> int:
    """Write the preview video; the report is rebuilt so that it links to it."""
    from talkprep.process import build_report_safely
    from talkprep.report.preview import PREVIEW_NAME, write_preview

    if not args.folder.is_dir():
        raise UsageError(f"{args.folder} is not a folder")
    result = write_preview(args.folder, args.out, console.progress)
    console.line(
        f"Preview: {result.path} ({result.frames} frames at {float(result.fps):g} fps, "
        f"{result.audio_s:.2f} s of audio)"
    )
    if result.path.resolve() == (args.folder / PREVIEW_NAME).resolve():
        build_report_safely(args.folder, console)
    return EXIT_OK


def _check(args: argparse.Namespace, console: Console) -> int:
    from talkprep.batch.status import BATCH_JSON
    from talkprep.check import check_folder, format_table, repairs
    from talkprep.manifest import read_manifest
    from talkprep.targets.ready import format_readiness, readiness

    target = args.target or _view_target(args.folder)
    if target is not None:
        return _check_target(args.folder, target)
    if not read_manifest(args.folder) and (args.folder / BATCH_JSON).is_file():
        return _check_batch(args.folder)
    results = check_folder(args.folder)
    print(format_table(results))
    bad = [r for r in results if not r.ok]
    if bad:
        print(f"\n{args.folder}: {len(bad)} problem(s); first: {bad[0].group}: {bad[0].problem}")
        for fix in repairs(results):
            print(f"to repair: {fix}")
        return EXIT_USAGE
    print(f"\n{args.folder}: all {len(results)} file groups are consistent")
    if read_manifest(args.folder):
        print(format_readiness(readiness(args.folder)))
    return EXIT_OK


def _check_batch(root: Path) -> int:
    """A batch's ROOT: each video's status as it stands now (a video batch.json still calls
    running is interrupted once its runner is gone); exit 0 only when every video is done."""
    from talkprep.batch.jobs import OK_STATUSES
    from talkprep.batch.status import format_status, read_summary

    data = read_summary(root) or {}
    print(format_status(root, data))
    videos = [v for v in data.get("videos") or [] if isinstance(v, dict)]
    return EXIT_OK if all(v.get("status") in OK_STATUSES for v in videos) else EXIT_USAGE


def _view_target(folder: Path) -> str | None:
    """The trainer whose view was written into the folder, when it is not the default's."""
    from talkprep.targets import DEFAULT_TARGET
    from talkprep.targets.record import view_target

    name = view_target(folder)
    return name if name not in (None, DEFAULT_TARGET) else None


def _check_target(folder: Path, name: str) -> int:
    from talkprep.targets import format_report, get_target
    from talkprep.targets.check import check_target
    from talkprep.targets.view import require_folder

    report = check_target(require_folder(folder), get_target(name))
    print(format_report(report))
    if report.problems:
        first = report.problems[0]
        print(f"\n{folder}: {len(report.problems)} problem(s) for {name}; first: {first.group}")
        return EXIT_USAGE
    print(f"\n{folder}: ready for {report.target.trainer}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `talkprep` console script."""
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    try:
        start_tracker()
        with filter_native_logs():
            return _main(argv)
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    try:
        arguments = sys.argv[1:] if argv is None else list(argv)
        if not arguments:
            print(_parser().format_help(), end="")
            return EXIT_USAGE
        args = _parser().parse_args(arguments)
        console = Console(quiet=getattr(args, "quiet", False))
        if args.command == "process":
            return _process(args, console)
        if args.command == "batch":
            return _batch(args, console)
        if args.command == "export":
            return _export(args, console)
        if args.command == "report":
            from talkprep.process import build_report_safely

            if not args.folder.is_dir():
                raise UsageError(f"{args.folder} is not a folder")
            return EXIT_OK if build_report_safely(args.folder, Console()) else EXIT_USAGE
        if args.command == "preview":
            return _preview(args, console)
        return _check(args, console)
    except TalkprepError as exc:
        print(f"talkprep: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        how = "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted"
        # through tqdm, which clears the progress bars first instead of writing over them
        Console().problem(f"talkprep: {how}; rerun the same command to resume")
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
