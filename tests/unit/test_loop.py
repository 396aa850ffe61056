"""The epoch loop's prefetcher: same batches in the same order, drawn ahead on another thread, errors in place."""
import functools
import itertools
import sys
import threading
import time

import pytest

from bench.harness import loop, timing
from bench.harness.timing import StepWindows
from bench.spec import Measurement


class Source:
    """Counts what was drawn from it, on which thread; optionally raises at item `fail_at`."""

    def __init__(self, n: int | None, fail_at: int | None = None, draw_s: float = 0.0):
        self.n, self.fail_at, self.draw_s = n, fail_at, draw_s
        self.drawn = 0
        self.threads: set[int] = set()

    def __iter__(self):
        for i in itertools.count() if self.n is None else range(self.n):
            if i == self.fail_at:
                raise KeyError(f"item {i} is damaged")
            time.sleep(self.draw_s)
            self.threads.add(threading.get_ident())
            self.drawn += 1
            yield (i, -i)


def wait_for(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_yields_every_item_in_order_drawn_on_another_thread():
    src = Source(50)
    with loop.Prefetcher(src, 2) as p:
        assert list(p) == [(i, -i) for i in range(50)]
        assert next(p, "done") == "done"  # exhausted stays exhausted, without blocking
    assert src.threads and threading.get_ident() not in src.threads


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_runs_ahead_by_depth_and_no_further(depth):
    src = Source(None)  # endless: only the queue bound stops the producer
    with loop.Prefetcher(src, depth) as p:
        assert next(p) == (0, 0)
        # Queue full with `depth` items, and one more drawn, waiting to be put.
        wait_for(lambda: src.drawn == 1 + depth + 1)
        time.sleep(0.1)
        assert src.drawn == 1 + depth + 1
        assert next(p) == (1, -1)
        wait_for(lambda: src.drawn == 2 + depth + 1)


def test_an_error_in_the_source_is_raised_at_its_position():
    p = loop.Prefetcher(Source(10, fail_at=3), 2)
    got = []
    with pytest.raises(KeyError, match="item 3 is damaged"):
        for item in p:
            got.append(item)
    assert got == [(0, 0), (1, -1), (2, -2)]
    with pytest.raises(KeyError):  # asked again: the same error, not a hang
        next(p)
    p.close()


def test_close_stops_the_producer_when_the_consumer_stops_early():
    src = Source(None)
    p = loop.Prefetcher(src, 2)
    next(p)
    p.close()
    assert not p._thread.is_alive()
    drawn = src.drawn
    time.sleep(0.1)
    assert src.drawn == drawn


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="prefetch depth"):
        loop.Prefetcher([], 0)
    with pytest.raises(ValueError, match="prefetch_batches"):
        Measurement(2, 5, prefetch_batches=0)


class RecordingAdapter:
    """Takes the steps the loop gives it (no framework): checks the loop, not a model."""

    def __init__(self, step_s: float):
        self.step_s, self.seen, self.syncs = step_s, [], 0

    def train_step(self, x, y):
        time.sleep(self.step_s)
        self.seen.append((x, y))
        return float(x)

    def to_device(self, x, y):
        return x, y

    def mark(self, out):
        return out

    def wait(self, token):
        pass

    def sync(self):
        self.syncs += 1


def test_train_epoch_feeds_every_batch_and_overlaps_drawing_with_steps():
    # 20 batches, each taking 30 ms to draw and 30 ms to train: serial would be 1.2 s; drawn ahead, ~0.63 s.
    adapter = RecordingAdapter(0.03)
    windows = StepWindows(Measurement(2, 5), adapter.sync)
    elapsed, losses = loop.train_epoch(adapter, loop.host_steps(adapter, Source(20, draw_s=0.03), 2), windows)
    assert adapter.seen == [(i, -i) for i in range(20)] and losses == list(range(20))
    # Window syncs (the probe's): after step 1, at warm-up end (step 2), after steps 7, 12, 17; then the epoch's own.
    assert adapter.syncs == 6
    assert 0.6 <= elapsed < 0.95


def test_a_training_epoch_syncs_once_at_its_end():
    """No step window inside train_time_s: the epoch's one sync, after its last step."""
    adapter = RecordingAdapter(0.0)
    syncs_at: list[int] = []
    adapter.sync = lambda: syncs_at.append(len(adapter.seen))
    _, losses = loop.train_epoch(adapter, loop.host_steps(adapter, Source(20), 0), first=timing.FirstStep(adapter))
    assert syncs_at == [20] and len(losses) == 20


def test_train_epoch_raises_the_sources_error_and_leaves_no_thread():
    adapter = RecordingAdapter(0.0)
    before = threading.active_count()
    with pytest.raises(KeyError):
        loop.train_epoch(adapter, loop.host_steps(adapter, Source(10, fail_at=4), 2),
                         StepWindows(Measurement(2, 5), adapter.sync))
    assert len(adapter.seen) == 4
    assert threading.active_count() == before


def test_the_spec_draws_ahead_on_gpu_only_and_the_record_says_how():
    from bench.spec import TASKS

    for task in TASKS.values():
        assert task.measurement.prefetch("cpu") == 0
        assert task.measurement.prefetch("gpu") == task.measurement.prefetch_batches >= 1
    assert "training thread" in loop.input_setting(False, 0)
    assert "2 ahead" in loop.input_setting(False, 2) and "copies each to the device" in loop.input_setting(False, 2)
    assert loop.input_setting(True, 2).startswith("device-resident")


class AsyncDevice:
    """A fake device stream: each step queues `work_s` of work on one worker thread and returns at once
    (as CUDA and JAX dispatch do); sync() blocks until the queue is drained."""

    def __init__(self, work_s: float):
        self.work_s, self.pending = work_s, []
        self.lock = threading.Lock()

    def train_step(self, x, y):
        with self.lock:
            prev = self.pending[-1] if self.pending else None
            t = threading.Thread(target=lambda: (prev.join() if prev else None, time.sleep(self.work_s)))
            t.start()
            self.pending.append(t)
        return 0.0

    def sync(self):
        for t in list(self.pending):
            t.join()


def test_the_epoch_clock_includes_work_that_finishes_only_at_sync():
    # 6 steps of 0.1 s queued work each: the epoch's time must hold all 0.6 s, although every
    # train_step returned at once. An adapter whose sync() does not wait would time the dispatch alone.
    dev = AsyncDevice(0.1)
    windows = StepWindows(Measurement(warmup_steps=10, window_steps=1), dev.sync)  # no window sync inside
    elapsed, losses = loop.train_epoch(dev, loop.host_steps(dev, [(i, i) for i in range(6)], 0), windows)
    assert len(losses) == 6 and elapsed >= 0.6
    dev.pending.clear()
    no_wait = type("NoWait", (), {"train_step": dev.train_step, "sync": lambda self: None})()
    quick, _ = loop.train_epoch(no_wait, loop.host_steps(no_wait, [(i, i) for i in range(6)], 0))
    assert quick < 0.3  # the check above can fail: without the sync's wait the clock misses the work
    dev.sync()


def test_the_first_step_is_timed_by_a_watcher_without_a_sync_in_the_training_thread():
    """Step 1 takes 0.3 s on the fake device, the rest 0.02 s each: the watcher sees step 1 end at ~0.3 s
    while the training thread queued every step at once and synced only at the epoch's end."""
    dev = AsyncDevice(0.3)
    dev.mark = lambda out: dev.pending[-1]  # the token: that step's work
    dev.wait = lambda token: token.join()
    syncs: list[float] = []
    real_sync = dev.sync
    dev.sync = lambda: (syncs.append(timing.now()), real_sync())
    first = timing.FirstStep(dev)
    steps = [functools.partial(dev.train_step, 0, 0)] + [lambda: (setattr(dev, "work_s", 0.02), dev.train_step(0, 0))[1]
                                                         for _ in range(5)]
    elapsed, _ = loop.train_epoch(dev, iter(steps), first=first)
    assert len(syncs) == 1
    assert 0.28 <= first.seconds() <= min(0.45, elapsed)
    assert sys.getswitchinterval() == pytest.approx(0.005, rel=0.5)  # restored after the watch
