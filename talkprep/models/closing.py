"""A base for model wrappers that hold native graphs or weights: usable in a `with` block that
frees them with `close()` however the block ends."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import TypeVar

Model = TypeVar("Model", bound="ClosingModel")


class ClosingModel(abc.ABC):
    """Context-manager protocol on top of one `close()`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Free the model's graph or weights."""

    def __enter__(self: Model) -> Model:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
