"""`talkprep check`: validate a dataset folder (from talkprep or elsewhere) against the format."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import os
import re
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2

from talkprep import hints
from talkprep.io.atomic import stale_temp_files
from talkprep.io.digests import load_table, verify_table
from talkprep.io.images import frame_indices, image_size, read_image
from talkprep.io.outputs import (
    count_outputs,
    digest_table_path,
    group_paths,
    group_problem,
    is_numbered,
    output_names,
)
from talkprep.manifest import manifest_problem, read_manifest
from talkprep.tasks import ALL_TASKS
from talkprep.tasks.audio import NO_AUDIO_TRACK
from talkprep.tasks.audio_features import FEATURES
from talkprep.tasks.base import CheckResult, FolderFacts, Task

LEGACY_AUDIO_FEATURE = "aud.npy"
"""AD-NeRF's and RAD-NeRF's DeepSpeech features under their original name."""
FEATURE_FILES = frozenset(feature.file for feature in FEATURES.values())

DEFAULT_FPS = 25.0


def folder_facts(root: Path) -> FolderFacts:
    """N, frame size and fps of a dataset folder: from its manifest when present, else its files."""
    n_frames = None
    fps = DEFAULT_FPS
    data = read_manifest(root)
    if data:
        try:
            info = data["tasks"]["frames"]["info"]
            n_frames = int(info["n_frames"])
            fps = float(info["fps"])
        except (ValueError, KeyError, TypeError):
            pass
    indices = frame_indices(root / "ori_imgs", ".jpg")
    if n_frames is None and indices:
        n_frames = indices[-1] + 1
    frame_size = None
    if indices:
        with contextlib.suppress(OSError, ValueError):
            frame_size = image_size(root / "ori_imgs" / f"{indices[0]}.jpg")
    return FolderFacts(root=root, n_frames=n_frames, frame_size=frame_size, fps=fps)


REQUIRED_GROUPS = (
    "ori_imgs/*.jpg",
    "ori_imgs/*.lms",
    "track_params.pt",
    "parsing/*.png",
    "bc.jpg",
    "gt_imgs/*.jpg",
    "torso_imgs/*.png",
    "transforms_train.json",
    "transforms_val.json",
    "au.csv",
)
"""What every trainer of this family reads; a folder without one of them cannot train."""
AUDIO_GROUP = "audio features"
TEMP_GROUP = "temporary files"
MANIFEST_GROUP = "manifest"
CHECK_THREADS = 4


def check_folder(root: Path) -> list[CheckResult]:
    """Every file group's verdict, with the command that repairs each problem.

    Each task validates its own groups; on top, every file of every group is verified complete
    (JPEG end marker, PNG IEND, npy size, JSON, WAV), the groups a trainer needs must be there,
    the manifest's failed or interrupted tasks and leftover temporary files are problems too.
    """
    if not root.is_dir():
        return [CheckResult(str(root), 0, "not a folder")]
    facts = folder_facts(root)
    manifest = read_manifest(root)
    results: list[CheckResult] = []
    unusable = manifest_problem(root)
    if unusable:
        results.append(CheckResult(MANIFEST_GROUP, 0, unusable))
    for task in ALL_TASKS:
        results.extend(task.check(facts))
    if not any(r.group != MANIFEST_GROUP for r in results):
        return [*results, CheckResult("(dataset)", 0, "no dataset files found")]
    results, proven = _with_content_verification(root, results, manifest)
    results = _with_file_verification(root, results, manifest, proven)
    results = _with_decoding(root, results, proven)
    results.extend(_missing_groups(root, results, manifest))
    results.extend(_unfinished_tasks(manifest))
    temps = stale_temp_files(root, _temp_patterns(root, manifest))
    if temps:
        name = temps[0].relative_to(root)
        problem = f"{len(temps)} left by a killed run (e.g. {name}); a rerun removes them"
        results.append(CheckResult(TEMP_GROUP, len(temps), problem))
    return _with_repairs(results, root, manifest)


def _temp_patterns(root: Path, manifest: dict[str, Any]) -> set[str]:
    """Names whose talkprep temporaries `check` looks for (in their folders only)."""
    from talkprep.pipeline import RUN_STATE
    from talkprep.targets.record import view_files

    return {*_patterns(manifest), *(manifest.get("writing") or {}), *RUN_STATE, *view_files(root)}


def _patterns(manifest: dict[str, Any]) -> set[str]:
    patterns = {p for task in ALL_TASKS for p in task.makes}
    patterns.update(FEATURE_FILES)
    patterns.update(manifest.get("written") or {})
    return patterns


def _with_file_verification(
    root: Path, results: list[CheckResult], manifest: dict[str, Any], proven: set[str]
) -> list[CheckResult]:
    """Verify the format of every file of every group present that its digests did not prove
    already; a group's first bad file becomes its problem."""
    by_group = {r.group: r for r in results}
    present = {p: count_outputs(root, p) for p in sorted(_patterns(manifest))}
    present = {p: n for p, n in present.items() if n}
    unproven = [p for p in present if p not in proven]
    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        verified = pool.map(lambda p: group_problem(root, p, present[p]), unproven)
        problems = dict(zip(unproven, verified, strict=True))
    problems.update(dict.fromkeys(proven & set(present)))
    for pattern, problem in problems.items():
        current = by_group.get(pattern)
        if problem and (current is None or current.ok):
            by_group[pattern] = CheckResult(pattern, present[pattern], problem)
        elif current is None:
            by_group[pattern] = CheckResult(pattern, present[pattern])
    return list(by_group.values())


def _with_content_verification(
    root: Path, results: list[CheckResult], manifest: dict[str, Any]
) -> tuple[list[CheckResult], set[str]]:
    """Compare every file of talkprep's groups with the digest taken when it was written (a
    change anywhere in a file, at any size). Returns the results and the groups whose every
    file was compared."""
    from talkprep.targets.record import view_replaced

    by_group = {r.group: r for r in results}
    replaced = set(view_replaced(root))
    proven: set[str] = set()
    for task in ALL_TASKS:
        record = (manifest.get("tasks") or {}).get(task.name) or {}
        summary = record.get("file_digests")
        if record.get("status") != "done" or not isinstance(summary, dict):
            continue
        table = load_table(
            digest_table_path(root, task.name), summary.get("sha256"), summary.get("rows")
        )
        outputs = record.get("outputs") or {}
        if table is None or any(count_outputs(root, p) != n for p, n in outputs.items()):
            continue
        names = output_names(outputs)
        keep = [i for i, name in enumerate(names) if name not in replaced]
        files = [os.path.join(root, names[i]) for i in keep]
        verdict = verify_table(files, table[keep], every=True)
        whole = {p for p in outputs if not any(fnmatch.fnmatch(r, p) for r in replaced)}
        proven.update(whole)
        if verdict.changed is None:
            continue
        bad = names[keep[verdict.changed]]
        pattern = next(p for p in sorted(outputs) if fnmatch.fnmatchcase(bad, p))
        problem = f"{bad}: changed since talkprep wrote it (digest differs)"
        current = by_group.get(pattern)
        if current is None or current.ok:
            by_group[pattern] = CheckResult(pattern, outputs[pattern], problem)
    return list(by_group.values()), proven


def _with_decoding(root: Path, results: list[CheckResult], proven: set[str]) -> list[CheckResult]:
    """Decode every image of the numbered groups that no digest proves (a folder from
    elsewhere): the first that does not decode becomes the group's problem."""
    checked = []
    for result in results:
        group = result.group
        image = group.rsplit(".", 1)[-1].lower() in ("jpg", "jpeg", "png")
        if result.ok and image and is_numbered(group) and group not in proven:
            problem = _undecodable(group_paths(root, group, result.count), root)
            if problem:
                result = dataclasses.replace(result, problem=problem)
        checked.append(result)
    return checked


def _undecodable(paths: list[Path], root: Path) -> str | None:
    """The first image that does not decode, as '<path>: <why>' (decoded four at a time)."""

    def problem(path: Path) -> str | None:
        try:
            read_image(path, cv2.IMREAD_UNCHANGED)
        except (OSError, ValueError):
            return f"{path.relative_to(root)}: does not decode as an image"
        return None

    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        return next((p for p in pool.map(problem, paths, chunksize=32) if p), None)


def _missing_groups(
    root: Path, results: list[CheckResult], manifest: dict[str, Any]
) -> list[CheckResult]:
    """Groups a trainer needs, and those the manifest says were written, that are not there."""
    seen = {r.group for r in results if r.count}
    wanted = set(REQUIRED_GROUPS)
    for record in (manifest.get("tasks") or {}).values():
        if record.get("status") == "done":
            wanted.update(record.get("outputs") or {})
    missing = []
    for group in sorted(wanted - seen):
        if count_outputs(root, group) == 0:
            why = "every trainer reads it" if group in REQUIRED_GROUPS else "the manifest lists it"
            missing.append(CheckResult(group, 0, f"missing: {why}"))
    if not any((root / name).is_file() for name in (*FEATURE_FILES, LEGACY_AUDIO_FEATURE)):
        missing.append(
            CheckResult(AUDIO_GROUP, 0, "no audio features (aud_hu.npy, aud_ds.npy, ...)")
        )
    return missing


def _unfinished_tasks(manifest: dict[str, Any]) -> list[CheckResult]:
    problems = []
    for name, record in (manifest.get("tasks") or {}).items():
        status = record.get("status")
        if status in ("failed", "running", "blocked"):
            why = record.get("error") or "it was interrupted before it finished"
            number = record.get("number", "?")
            problems.append(CheckResult(f"task {number} ({name})", 0, f"{status}: {why}"))
    return problems


def _task_for(group: str) -> Task | None:
    """The task that writes a group (by its pattern, its audio features or its name)."""
    if group == AUDIO_GROUP or group in FEATURE_FILES:
        return next(t for t in ALL_TASKS if t.name == "audio_features")
    for task in ALL_TASKS:
        if group in task.makes or group.endswith(f"({task.name})"):
            return task
    return None


def _with_repairs(
    results: list[CheckResult], root: Path, manifest: dict[str, Any]
) -> list[CheckResult]:
    """Name the command that repairs each problem, never one that would fail the same way.

    Tasks that did not finish (failed, interrupted, blocked, never run) are repaired together
    by the command that made the folder, again (it resumes; tasks it did not ask for, and what
    they need, are added to its --tasks; a model a failure named is fetched first). Files of
    finished tasks that are damaged or gone are rebuilt in one `--force` run of those tasks. A
    video without audio gets no command: its problem already says to give `--audio`.
    """
    records = manifest.get("tasks") or {}
    owners = {r.group: _task_for(r.group) for r in results if not r.ok}
    if _no_audio_track(records):
        owners = {g: t for g, t in owners.items() if t is None or t.name not in AUDIO_TASKS}
    damaged = {t.number for t in owners.values() if t and _status(records, t) == "done"}
    unfinished = {t for t in owners.values() if t and _status(records, t) != "done"}
    fixes = {}
    if damaged:
        fixes["done"] = hints.process_hint(manifest, root, tasks=damaged, force=True)
    if unfinished or any(r.group == TEMP_GROUP and not r.ok for r in results):
        fixes["rerun"] = _rerun(manifest, root, unfinished, records)
    repaired = []
    for result in results:
        task = owners.get(result.group)
        if result.group == TEMP_GROUP and not result.ok:
            result = dataclasses.replace(result, fix=fixes["rerun"])
        elif task is not None:
            kind = "done" if task.number in damaged else "rerun"
            result = dataclasses.replace(result, fix=fixes[kind])
        repaired.append(result)
    return repaired


AUDIO_TASKS = ("audio", "audio_features")


def _status(records: dict[str, Any], task: Task) -> str | None:
    return (records.get(task.name) or {}).get("status")


def _rerun(
    manifest: dict[str, Any], root: Path, unfinished: set[Task], records: dict[str, Any]
) -> str:
    """The folder's own command again, with the unfinished tasks it did not ask for (and the
    unfinished tasks they need) added, after fetching any model a failure named."""
    config = hints.recorded_config(manifest) or {}
    asked = set(config.get("tasks") or [])
    by_name = {t.name: t for t in ALL_TASKS}
    todo = {t.number for t in unfinished}
    pending = list(unfinished)
    while pending:
        for need in pending.pop().needs:
            task = by_name[need]
            if task.number not in todo and _status(records, task) != "done":
                todo.add(task.number)
                pending.append(task)
    before = [
        shlex.split(match.group(1))
        for record in records.values()
        if record.get("status") == "failed"
        for match in [MODEL_FETCH.search(str(record.get("error") or ""))]
        if match
    ]
    tasks = None if todo <= asked else asked | todo
    return hints.process_hint(manifest, root, tasks=tasks, before=before)


MODEL_FETCH = re.compile(r"`(hf download [^`]+)`")
"""A task's error that names the model to fetch (talkprep.models.audio_encoders.fetch_hint)."""


def _no_audio_track(records: dict[str, Any]) -> bool:
    return NO_AUDIO_TRACK in str((records.get("audio") or {}).get("error") or "")


def repairs(results: list[CheckResult]) -> list[str]:
    """Each distinct repair once, in the order of the problems."""
    return list(dict.fromkeys(r.fix for r in results if not r.ok and r.fix))


def format_table(results: list[CheckResult]) -> str:
    """A plain-text table: file group, count, status, first problem."""
    rows = [("file group", "count", "status", "first problem (or note)")]
    rows += [
        (r.group, str(r.count), "ok" if r.ok else "FAIL", r.problem or r.note or "")
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    indent = " " * (sum(widths) + 6)
    shown: set[str] = set()
    for row, result in zip(rows, [None, *results], strict=True):
        cells = f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}"
        lines.append(cells.rstrip())
        if result is not None and result.fix:
            fix = "the same as above" if result.fix in shown else result.fix
            lines.append(f"{indent}fix: {fix}")
            shown.add(result.fix)
    return "\n".join(lines)
