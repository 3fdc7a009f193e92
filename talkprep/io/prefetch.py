"""Ordered read-ahead and write-behind on a small thread pool: cv2's codecs release the GIL, so
decoding the next frames and encoding the last ones overlap with the work on the current one,
while only a bounded number of frames is ever held."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

READ_AHEAD = 8
WRITE_BEHIND = 16


def read_ahead(
    pool: Executor, load: Callable[[T], R], items: Iterable[T], depth: int = READ_AHEAD
) -> Iterator[R]:
    """`load(item)` for each item, in order, with up to `depth` loads running ahead."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(load, item))
        if len(pending) >= depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class WriteBehind:
    """Submits writes to a pool and keeps at most `depth` in flight; `finish` waits for all and
    re-raises the first failure."""

    def __init__(self, pool: Executor, depth: int = WRITE_BEHIND) -> None:
        self._pool = pool
        self._depth = depth
        self._pending: deque[Future[Any]] = deque()

    def submit(self, write: Callable[..., Any], *args: Any) -> None:
        self._pending.append(self._pool.submit(write, *args))
        while len(self._pending) > self._depth:
            self._pending.popleft().result()

    def finish(self) -> None:
        while self._pending:
            self._pending.popleft().result()
