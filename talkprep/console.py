"""One shared console: status lines and progress bars on stderr, quiet when not on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


class Console:
    """Prints short status lines; progress bars only when stderr is a terminal."""

    def __init__(self, stream: Any = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet

    def line(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def progress(
        self, iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "frame"
    ) -> Iterator[T]:
        """Wrap a per-frame loop in a progress bar (disabled automatically off a terminal)."""
        disable = True if self.quiet else None
        yield from tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            file=self.stream,
            disable=disable,
            leave=False,
            dynamic_ncols=True,
        )
