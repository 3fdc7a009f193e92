"""Typed errors. Each message says what is wrong and what to do; the CLI prints it on one line."""


class TalkprepError(Exception):
    """Base of every error that talkprep reports to the user without a traceback."""


class UsageError(TalkprepError):
    """A bad option value or an inconsistent set of options."""


class InputError(TalkprepError):
    """The input video or audio cannot be used."""


class OutputError(TalkprepError):
    """The output folder cannot be created, written or locked."""


class TaskError(TalkprepError):
    """A task cannot produce its outputs; the pipeline records it and goes on with the others."""


class MissingWeightsError(TaskError):
    """An optional backend's model weights are not available."""
