"""Task 7: gt_imgs/{i}.jpg (background replaced by bc.jpg, fading to the frame's own within task
6's margin of the person) and torso_imgs/{i}.png (BGRA torso and neck with the head removed and
the neck carried up under it), as RAD-NeRF's extract_torso_and_gt.

Reads the class map `semantics/{i}.png`: the head is face skin, hair, ears and earrings, mouth
and teeth (so long hair never lands in the torso images); other people and objects are
background.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from talkprep.errors import TaskError
from talkprep.geometry.masks import classes_to_labels, gt_and_torso
from talkprep.io.images import read_image, write_jpeg
from talkprep.io.png import write_png_fast
from talkprep.io.prefetch import WriteBehind, read_ahead
from talkprep.parallel import Tick, claim_cores, run_spans, tapered_spans
from talkprep.semantics import SEMANTICS_DIR, SemanticClass
from talkprep.tasks.background import margin_for
from talkprep.tasks.base import (
    CheckResult,
    FolderFacts,
    Task,
    TaskContext,
    TaskResult,
    check_numbered_files,
)

FRAMES_DIR = "ori_imgs"
PLATE_FILE = "bc.jpg"
GT_DIR = "gt_imgs"
TORSO_DIR = "torso_imgs"
KEEP_BAND = 1.0
"""gt_imgs keep the frame's own background next to the person, fading to the plate over this
share of task 6's margin: the plate takes no pixel that close to the person, so there it is
filled in wherever the person never moved away (see gt_and_torso)."""
SPAN_FRAMES = 250
"""Frames of one span (talkprep.parallel; the last one tapered, see tapered_spans); each frame is
made on its own, so any split gives the same files."""
CHECK_SAMPLES = 3


def load_pair(paths: tuple[str, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A frame, its AD-NeRF label map (from the class map) and its hands (bool mask)."""
    classes = read_image(paths[1], cv2.IMREAD_UNCHANGED)
    return read_image(paths[0]), classes_to_labels(classes), classes == SemanticClass.HAND


class TorsoTask(Task):
    number = 7
    name = "torso"
    title = "gt and torso images -> gt_imgs/, torso_imgs/"
    needs = ("frames", "parsing", "background")
    makes = (f"{GT_DIR}/*.jpg", f"{TORSO_DIR}/*.png")
    version = 6

    def run(self, ctx: TaskContext) -> TaskResult:
        n_frames = ctx.frame_count()
        plate = _read_plate(ctx.out)
        (ctx.out / GT_DIR).mkdir(parents=True, exist_ok=True)
        (ctx.out / TORSO_DIR).mkdir(parents=True, exist_ok=True)
        job = _TorsoJob(ctx.out, round(margin_for(*plate.shape[:2]) * KEEP_BAND))
        spans = tapered_spans(n_frames, SPAN_FRAMES)
        with claim_cores(len(spans)) as workers:
            parts = run_spans(_torso_span, spans, job, workers, ctx.progress, "torso")
        torso_fraction = np.concatenate(parts)
        figures = {
            "torso_alpha_fraction": {
                "median": round(float(np.median(torso_fraction)), 4),
                "min": round(float(torso_fraction.min()), 4),
                "max": round(float(torso_fraction.max()), 4),
            }
        }
        return TaskResult(frames=n_frames, figures=figures)

    def check(self, facts: FolderFacts) -> list[CheckResult]:
        results = []
        gt = check_numbered_files(facts, GT_DIR, ".jpg", f"{GT_DIR}/*.jpg")
        if gt is not None:
            results.append(self._check_samples(facts, gt, GT_DIR, ".jpg", channels=3))
        torso = check_numbered_files(facts, TORSO_DIR, ".png", f"{TORSO_DIR}/*.png")
        if torso is not None:
            results.append(self._check_samples(facts, torso, TORSO_DIR, ".png", channels=4))
        return results

    def _check_samples(
        self, facts: FolderFacts, result: CheckResult, folder: str, suffix: str, channels: int
    ) -> CheckResult:
        if not result.ok:
            return result
        for index in sorted({0, result.count // 2, result.count - 1})[:CHECK_SAMPLES]:
            path = facts.root / folder / f"{index}{suffix}"
            try:
                image = read_image(path, cv2.IMREAD_UNCHANGED)
            except ValueError:
                return CheckResult(result.group, result.count, f"{path.name} is not readable")
            found = 1 if image.ndim == 2 else image.shape[2]
            if found != channels:
                kind = "RGBA" if channels == 4 else "colour"
                return CheckResult(
                    result.group, result.count, f"{path.name} has {found} channel(s), not {kind}"
                )
            if facts.frame_size is not None and image.shape[:2] != tuple(facts.frame_size):
                return CheckResult(
                    result.group, result.count, f"{path.name} size differs from the frames"
                )
            if channels == 4 and not np.isin(image[..., 3], (0, 255)).all():
                return CheckResult(
                    result.group, result.count, f"{path.name} has alpha values other than 0, 255"
                )
        return result


def _read_plate(out: Path) -> np.ndarray:
    """Task 6's plate; TaskError naming the task to rerun when it cannot be read."""
    try:
        return read_image(out / PLATE_FILE)
    except (FileNotFoundError, ValueError) as exc:
        raise TaskError(f"cannot read {PLATE_FILE} ({exc}); rerun task 6") from exc


@dataclass(frozen=True)
class _TorsoJob:
    """What a span worker needs: the folder and the band of own background gt_imgs keep."""

    out: Path
    band: int


def _torso_span(span: range, job: _TorsoJob, tick: Tick) -> np.ndarray:
    """gt_imgs/{i}.jpg and torso_imgs/{i}.png for the frames of `span`; the share of each frame
    the torso image covers (float32 [len(span)])."""
    out = job.out
    plate = _read_plate(out)
    pairs = [
        (str(out / FRAMES_DIR / f"{i}.jpg"), str(out / SEMANTICS_DIR / f"{i}.png")) for i in span
    ]
    torso_fraction = np.zeros(len(span), np.float32)
    with ThreadPoolExecutor(max_workers=2) as pool:
        writer = WriteBehind(pool)
        for k, (frame, labels, hands) in enumerate(read_ahead(pool, load_pair, pairs)):
            index = span.start + k
            if frame.shape != plate.shape or labels.shape != frame.shape[:2]:
                raise TaskError(
                    f"frame {index}, its parsing and bc.jpg differ in size; rerun tasks 5-6"
                )
            gt, torso = gt_and_torso(frame, labels, plate, job.band, hands)
            torso[hands] = 0  # the carried-up neck never paints over a hand
            torso_fraction[k] = np.count_nonzero(torso[..., 3]) / labels.size
            writer.submit(write_jpeg, out / GT_DIR / f"{index}.jpg", gt)
            writer.submit(write_png_fast, out / TORSO_DIR / f"{index}.png", torso)
            tick(1)
        writer.finish()
    return torso_fraction
