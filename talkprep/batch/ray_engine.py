"""The Ray engine: one Ray task per video, with declared CPU and GPU resources.

Every worker writes straight into ROOT, so ROOT must be on a file system that every node mounts
at the same path. Ray retries a task whose worker process or node dies; a failed task is a result,
never a retry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from talkprep.batch.jobs import MAX_ATTEMPTS, Events, VideoJob, VideoResult, Work, crashed
from talkprep.batch.worker import limit_threads, process_video
from talkprep.errors import UsageError

INSTALL_HINT = 'pip install "talkprep[ray]"'
DEFAULT_RAY_THREADS = 2
"""CPUs a video's Ray task declares unless --threads-per-video says otherwise."""
WAIT_S = 0.5
PROBE_S = 5.0
"""How long --ray-address may take to accept a connection."""
QUEUE_PER_SLOT = 2
"""Tasks kept submitted per video the cluster can run at once (keeps huge batches light)."""


@dataclass(frozen=True)
class RayPlan:
    """Resources of one video's task and how many such tasks the cluster runs at once."""

    cpus: int
    gpus: float
    slots: int


def import_ray() -> Any:
    """The `ray` module, or a UsageError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(
            f"--engine ray needs Ray, an optional extra: {INSTALL_HINT}; or use --engine local"
        ) from None
    return ray


def connect(ray: Any, address: str | None, local_cpus: int | None) -> None:
    """Join the cluster at `address`, or start a private local instance of `local_cpus` CPUs."""
    common = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address and not reachable(address):
        raise UsageError(
            f"--ray-address {address}: nothing answers there within {PROBE_S:g} s; "
            "start the cluster (ray start --head) or check the address"
        )
    try:
        with _neutral_folder():
            if address:
                ray.init(address=address, **common)
            else:
                ray.init(address="local", num_cpus=local_cpus, include_dashboard=False, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise UsageError(f"cannot start or reach {where}: {exc}") from None


@contextlib.contextmanager
def _neutral_folder() -> Iterator[None]:
    """Run `ray.init` from the folder that holds this talkprep package: Ray puts the driver's
    working folder first on every worker's import path (and starts a local instance's workers
    there), where a `talkprep/` of the user's (the clone's root, a dataset folder of that name)
    would hide the installed package. Tasks go back to the user's folder (`run_on_ray`)."""
    here = os.getcwd()
    os.chdir(Path(__file__).resolve().parents[2])
    try:
        yield
    finally:
        os.chdir(here)


def reachable(address: str) -> bool:
    """Whether HOST:PORT accepts a connection: Ray itself retries a dead address for minutes.

    Addresses that are not HOST:PORT ('auto', a ray:// URL without a port) are left to Ray.
    """
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return True
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_S):
            return True
    except OSError:
        return False


def plan(ray: Any, threads: int | None, gpus: float | None, device: str) -> RayPlan:
    """Size each video's task from the cluster: CPUs per video and whether it takes a GPU.

    GPUs: none with --device cpu; one with --device cuda; with auto, one when the cluster has
    any, so that a video never uses a GPU it did not reserve (it runs on the CPU otherwise).
    """
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    node_cpus = max((int(n["Resources"].get("CPU", 0)) for n in nodes), default=0)
    total = ray.cluster_resources()
    if node_cpus < 1:
        raise UsageError("the Ray cluster has no CPUs to run videos on")
    cpus = threads if threads is not None else min(DEFAULT_RAY_THREADS, node_cpus)
    if cpus > node_cpus:
        raise UsageError(
            f"--threads-per-video {cpus}: no Ray node has that many CPUs (largest: {node_cpus})"
        )
    cluster_gpus = float(total.get("GPU", 0))
    if gpus is None:
        gpus = 1.0 if device == "cuda" or (device == "auto" and cluster_gpus >= 1) else 0.0
    if gpus > 0 and cluster_gpus < gpus:
        raise UsageError(
            f"videos would each need {gpus:g} GPU but the Ray cluster has {cluster_gpus:g}; "
            "use --device cpu or --gpus-per-video 0"
        )
    slots = int(total.get("CPU", 0)) // cpus
    if gpus > 0:
        slots = min(slots, int(cluster_gpus / gpus))
    return RayPlan(cpus, gpus, max(1, slots))


def run_on_ray(job: VideoJob, threads: int, use_gpu: bool, work: Work, folder: str) -> VideoResult:
    """The body of one Ray task: a video runs on the CPU unless its task reserved a GPU; relative
    paths mean what they meant in the folder `talkprep batch` ran in, where that folder exists."""
    with contextlib.suppress(OSError):
        os.chdir(folder)
    limit_threads(threads)
    if not use_gpu and job.values.get("device", "auto") == "auto":
        job = replace(job, values={**job.values, "device": "cpu"})
    return work(job)


def run_ray(
    jobs: Sequence[VideoJob],
    ray: Any,
    sizing: RayPlan,
    events: Events,
    work: Work = process_video,
) -> None:
    """Submit the jobs as Ray tasks, a window at a time, and report each result."""
    remote = ray.remote(run_on_ray).options(
        num_cpus=sizing.cpus, num_gpus=sizing.gpus, max_retries=MAX_ATTEMPTS - 1
    )
    waiting = list(jobs)
    window = sizing.slots * QUEUE_PER_SLOT
    here = os.getcwd()
    refs: dict[Any, VideoJob] = {}
    try:
        while waiting or refs:
            while waiting and len(refs) < window:
                job = waiting.pop(0)
                refs[remote.remote(job, sizing.cpus, sizing.gpus > 0, work, here)] = job
                events.started(job)
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=WAIT_S)
            for ref in ready:
                job = refs.pop(ref)
                tries = _attempts(job)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    events.finished(
                        crashed(job, f"Ray task failed: {type(exc).__name__} {reason}", tries)
                    )
                    continue
                events.finished(replace(result, attempts=tries))
            events.tick()
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)


def _attempts(job: VideoJob) -> int:
    """How many times this run started the video: its log's header lines for this run."""
    try:
        with job.log.open() as log:
            return max(1, sum(1 for line in log if line.startswith(f"=== {job.run_id} ")))
    except OSError:
        return 1
