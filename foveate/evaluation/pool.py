"""Run work items with at most N in flight, handing each result back in the calling thread.

At most ``concurrency`` items are ever started and unfinished, so a run killed mid-way loses at most that
many (the rest are either finished and written, or not started). Results come back as they finish, not in
order; an item that raises hands back its exception instead of stopping the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["run_bounded"]

T = TypeVar("T")
R = TypeVar("R")


def run_bounded(
    items: Iterable[T],
    work: Callable[[T], R],
    done: Callable[[T, R | BaseException], None],
    *,
    concurrency: int = 1,
) -> None:
    """``work(item)`` for each item, ``concurrency`` at a time (threads); ``done(item, result_or_error)``
    in this thread as each finishes. With ``concurrency=1`` everything runs in this thread."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    if concurrency == 1:
        for one in items:
            try:
                result: R | BaseException = work(one)
            except Exception as exc:  # one bad question must not stop the rest
                result = exc
            done(one, result)
        return
    source = iter(items)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="foveate-eval") as pool:
        running: dict[Future[R], T] = {}
        try:
            while True:
                while len(running) < concurrency:
                    item = next(source, None)
                    if item is None:
                        break
                    running[pool.submit(work, item)] = item
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = running.pop(future)
                    error = future.exception()
                    done(item, error if error is not None else future.result())
        except BaseException:
            for future in running:
                future.cancel()
            raise
