"""The timed training epoch every cell runs, and the background prefetcher that feeds it."""
from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from bench.harness.timing import StepWindows, now

T = TypeVar("T")
_END = object()  # the source is exhausted
_POLL_S = 0.05  # how often a blocked producer checks whether the consumer has gone


class _Raised:
    """The source's exception, carried to the consumer and raised there, at its position in the stream."""

    def __init__(self, exc: BaseException):
        self.exc = exc


class Prefetcher(Generic[T]):
    """Iterates `source` on a daemon thread, up to `depth` items ahead of the consumer.

    Why: drawing a batch (a shuffled gather, for photos also a flip and normalisation) is NumPy work
    that releases the GIL, so it can run while the framework computes the previous step instead of
    between steps. Every framework gets the same batches in the same order from the same code; only
    when they are made changes. The thread starts on the first next() (inside the caller's clock),
    an exception in the source is raised in the consumer where that item would have been, and
    close() (or leaving a `with`) stops the thread when the consumer stops early.
    """

    def __init__(self, source: Iterable[T], depth: int):
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self._source, self._queue = source, queue.Queue[Any](maxsize=depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _produce(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(_Raised(exc))
            return
        self._put(_END)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._thread is None:
            self._thread = threading.Thread(target=self._produce, name="bench-prefetch", daemon=True)
            self._thread.start()
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)  # a later next() ends too instead of blocking
            raise StopIteration
        if isinstance(item, _Raised):
            self._queue.put(item)
            raise item.exc
        return item

    def close(self) -> None:
        """Stop the producer and wait for it; safe to call more than once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def train_epoch(adapter: Any, batches: Iterable[tuple[Any, Any]], windows: StepWindows,
                prefetch: int) -> tuple[float, list[Any]]:
    """One epoch as every cell times it: (seconds, the steps' losses as device scalars).

    The clock starts before the first batch is drawn and stops after one final sync, so batch
    preparation counts; the step-window hook syncs only at the protocol's points (bench/harness/timing.py).
    `prefetch` batches are drawn ahead on a background thread (the spec's Measurement.prefetch);
    0 draws each batch in this thread, right before its step.
    """
    losses: list[Any] = []
    start = now()
    windows.begin_epoch(start)
    with (Prefetcher(batches, prefetch) if prefetch else contextlib.nullcontext(batches)) as drawn:
        for x, y in drawn:
            losses.append(adapter.train_step(x, y))  # device scalars: no host sync per step
            windows.after_step()
    adapter.sync()
    return now() - start, losses


def input_setting(prefetch: int) -> str:
    """How a run drew its batches, for the record's settings."""
    if prefetch:
        return f"batches drawn {prefetch} ahead of training on a background thread"
    return "batches drawn in the training thread, between steps"
