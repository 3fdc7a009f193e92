"""The registry of tasks, in the seed's numbering. Heavy libraries are imported inside `run`."""

from talkprep.tasks.audio import AudioTask
from talkprep.tasks.audio_features import AudioFeaturesTask
from talkprep.tasks.background import BackgroundTask
from talkprep.tasks.base import Task
from talkprep.tasks.depth import DepthTask
from talkprep.tasks.frames import FramesTask
from talkprep.tasks.landmarks import LandmarksTask
from talkprep.tasks.parsing import ParsingTask
from talkprep.tasks.torso import TorsoTask
from talkprep.tasks.transforms import TransformsTask

ALL_TASKS: tuple[Task, ...] = (
    AudioTask(),
    AudioFeaturesTask(),
    FramesTask(),
    LandmarksTask(),
    ParsingTask(),
    BackgroundTask(),
    TorsoTask(),
    DepthTask(),
    TransformsTask(),
)


def task_by_number(number: int) -> Task:
    for task in ALL_TASKS:
        if task.number == number:
            return task
    raise KeyError(number)
