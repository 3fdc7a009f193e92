"""The registry of tasks, in the seed's numbering. Heavy libraries are imported inside `run`."""

from talkprep.tasks.audio import AudioTask
from talkprep.tasks.base import Task
from talkprep.tasks.frames import FramesTask

ALL_TASKS: tuple[Task, ...] = (
    AudioTask(),
    FramesTask(),
)


def task_by_number(number: int) -> Task:
    for task in ALL_TASKS:
        if task.number == number:
            return task
    raise KeyError(number)
