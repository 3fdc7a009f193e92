"""One shared console: status lines and progress bars on stderr (bars only on a terminal), and the
results (the summary table, where the dataset is) on stdout, so that `> log` keeps what matters."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


class Console:
    """Prints short status lines; progress bars only when stderr is a terminal."""

    def __init__(self, stream: Any = None, quiet: bool = False, results: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.results = results or sys.stdout
        self.quiet = quiet

    def line(self, text: str = "") -> None:
        """A status line (task started, finished, warnings) on stderr, above any progress bars
        (tasks run in parallel: a line from one must not break another's bar)."""
        if not self.quiet:
            tqdm.write(text, file=self.stream)
            self.stream.flush()

    def problem(self, text: str) -> None:
        """A line saying what went wrong, on stderr above any progress bars, even when quiet."""
        tqdm.write(text, file=self.stream)
        self.stream.flush()

    def result(self, text: str = "") -> None:
        """A result line (summary table, output paths) on stdout."""
        if not self.quiet:
            self.stream.flush()
            print(text, file=self.results, flush=True)

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
