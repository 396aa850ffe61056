"""The timed training epoch every cell runs, and the background prefetcher that feeds it."""
from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import numpy as np

from bench.harness.timing import FirstStep, StepWindows, now

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


Step = Callable[[], Any]  # one training step, its batch bound: returns the loss as a device scalar


def resident_steps(adapter: Any, order: np.ndarray, batch_size: int) -> Iterator[Step]:
    """The epoch's steps on the device-resident split: the order goes to the device once (inside the
    epoch's clock), then each step gathers its batch there; no host copy, no sync."""
    adapter.set_order(order)
    for i in range(len(order) // batch_size):
        yield functools.partial(adapter.train_step_at, i)


def host_steps(adapter: Any, batches: Iterable[tuple[Any, Any]], prefetch: int) -> Iterator[Step]:
    """The epoch's steps on host batches; with `prefetch`, drawn that many ahead on a background thread,
    which also copies each to the device (so the training thread never waits for a copy)."""
    if not prefetch:
        for x, y in batches:
            yield functools.partial(adapter.train_step, x, y)
        return
    with Prefetcher((adapter.to_device(x, y) for x, y in batches), prefetch) as drawn:
        for x, y in drawn:
            yield functools.partial(adapter.train_step, x, y)


def train_epoch(adapter: Any, steps: Iterable[Step], windows: StepWindows | None = None,
                first: FirstStep | None = None) -> tuple[float, list[Any]]:
    """One epoch as every cell times it: (seconds, the steps' losses as device scalars).

    The clock starts before the first batch is drawn and stops after the epoch's one sync, so batch
    preparation counts and nothing else waits for the device: `first` sees step 1 complete from a
    watcher thread. `windows` (the step probe, bench/harness/probe.py, and the protocol-cost benchmark)
    syncs at its own points.
    """
    losses: list[Any] = []
    start = now()
    if windows is not None:
        windows.begin_epoch(start)
    if first is not None:
        first.start = start
    try:
        for step in steps:
            losses.append(step())  # device scalars: no host sync per step
            if first is not None and len(losses) == 1:
                first.watch(losses[0])
            if windows is not None:
                windows.after_step()
    finally:
        close = getattr(steps, "close", None)
        if close is not None:
            close()  # a prefetch thread stops with its generator, also when a step raised
    adapter.sync()
    return now() - start, losses


def input_setting(resident: bool, prefetch: int) -> str:
    """How a run fed its steps, for the record's settings."""
    if resident:
        return "device-resident: the whole split on the device before the clock, each batch gathered there"
    if prefetch:
        return f"host batches drawn {prefetch} ahead on a background thread, which copies each to the device"
    return "host batches drawn in the training thread, between steps"
