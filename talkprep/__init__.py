"""talkprep: one talking-head video in, a checked talking-face training dataset out."""

__version__ = "0.1.0"
