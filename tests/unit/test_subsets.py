"""Training-set-size subsets: nested, class-balanced, drawn from the seed; the step budget; bad sizes."""
import numpy as np
import pytest

from bench.data import subsets
from bench.data.batches import Split, TaskData, epoch_order, train_batches
from bench.errors import UsageError
from bench.spec import TASKS
from bench.spec.sweep import passes


def _split(counts: list[int], seed: int = 0) -> Split:
    """A split with unequal classes (like MNIST's digits), shuffled, each example's pixels = its index."""
    y = np.concatenate([np.full(n, c, np.int32) for c, n in enumerate(counts)])
    y = y[np.random.default_rng(seed).permutation(len(y))]
    x = np.arange(len(y), dtype=np.float32).reshape(-1, 1, 1, 1)
    return Split(x, y)


def test_subsets_are_nested_class_balanced_and_drawn_from_the_seed():
    split = _split([50, 80, 65, 120])  # class 0 runs out first
    previous: set[int] = set()
    for n in (4, 12, 40, 100, 200, 315):
        s = subsets.subset(split, n, seed=3)
        ids = set(s.x.ravel().astype(int).tolist())
        assert len(ids) == n == len(s)
        assert previous <= ids  # the 12 contain the 4, ...
        previous = ids
        assert np.array_equal(s.y, split.y[sorted(ids)])  # labels travel with their pixels, split order kept
        counts, have = np.bincount(s.y, minlength=4), np.array([50, 80, 65, 120])
        # balanced as far as the classes allow: a class with 2+ fewer than another has given all it has
        for i in range(4):
            assert counts[i] == have[i] or counts[i] >= counts.max() - 1, (n, counts)
    assert previous == set(range(315))
    same = subsets.subset(split, 40, seed=3)
    other = subsets.subset(split, 40, seed=4)
    assert np.array_equal(same.x, subsets.subset(split, 40, seed=3).x)
    assert not np.array_equal(same.x, other.x)


def test_the_subset_does_not_depend_on_anything_but_labels_and_seed():
    # What makes it identical for every framework and baseline: pixels (scaled floats, uint8 photos, stored
    # features) do not enter the draw.
    split = _split([30, 30, 30])
    feats = Split(np.random.default_rng(1).normal(size=(90, 7)).astype(np.float32), split.y)
    a, b = subsets.balanced_order(split.y, 9), subsets.balanced_order(feats.y, 9)
    assert np.array_equal(a, b)


def test_apply_keeps_evaluation_splits_whole_and_sets_the_passes():
    split = _split([300, 300])
    td = TaskData(split, Split(split.x[:10], split.y[:10]), Split(split.x[:50], split.y[:50]), "s", "test")
    cut = subsets.apply(td, 64, seed=0, batch=32)
    assert len(cut.train) == 64 and cut.train.passes == passes(600, 64, 32) == 9
    assert cut.train.samples == 576  # the 18 steps of the whole split, exactly
    assert cut.val is td.val and cut.test is td.test
    assert subsets.apply(td, None, 0, 32) is td
    assert subsets.apply(td, 64, 0).train.passes == 1  # a baseline fits once on the subset itself


@pytest.mark.parametrize(("pool", "size", "batch", "want"), [(60000, 256, 128, 234), (60000, 25600, 128, 3),
                                                             (60000, 60000, 128, 1), (1536, 1024, 128, 2)])
def test_every_size_gets_at_least_the_whole_splits_steps(pool, size, batch, want):
    k = passes(pool, size, batch)
    assert k == want
    assert k * (size // batch) >= pool // batch > (k - 1) * (size // batch)


def test_passes_draw_every_example_that_many_times_and_one_pass_is_the_old_order():
    task = TASKS["mnist_mlp"]
    split = _split([64, 64])
    one = [y for _, y in train_batches(task, split, seed=5, epoch=2)]
    order = epoch_order(5, 2, len(split))
    assert np.array_equal(np.concatenate(one), split.y[order[: len(one) * 128]])
    split.passes = 3
    xs = np.concatenate([x.ravel() for x, _ in train_batches(task, split, seed=5, epoch=2)])
    assert len(xs) == 3 * 128
    assert np.array_equal(np.bincount(np.rint(xs).astype(int), minlength=128), np.full(128, 3))
    split.draws = 2 * 128 + 64  # cut to 5 batches of 64: the first 64 of the third shuffle are drawn a 3rd time
    counts = np.bincount(np.rint(np.concatenate([x.ravel() for x, _ in train_batches(task, split, 5, 2, 64)]))
                         .astype(int), minlength=128)
    assert counts.sum() == 320 and sorted(set(counts)) == [2, 3] and (counts == 3).sum() == 64


@pytest.mark.parametrize(("sizes", "message"), [
    ((0,), "must be positive"), ((-128,), "must be positive"), ((5,), "fewer examples than the 10 classes"),
    ((300,), "not a whole number of batches of 128"), ((128 * 500,), "larger than the 60000 training examples"),
])
def test_bad_sizes_are_one_clear_line(sizes, message):
    with pytest.raises(UsageError, match=message):
        subsets.check_sizes(sizes, 60000, 128, 10, "mnist_mlp")
    subsets.check_sizes((128, 256, None), 60000, 128, 10, "mnist_mlp")
