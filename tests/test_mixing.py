import random

import pytest

from imgshard.audit.mixing import distinct_ratio, expected_distinct, mean_distinct


def test_expected_distinct_matches_a_simulation():
    counts = [500, 300, 100, 50, 50] + [10] * 20
    population = [c for c, n in enumerate(counts) for _ in range(n)]
    rng = random.Random(7)
    window = 32
    trials = 4000
    simulated = sum(len(set(rng.choices(population, k=window))) for _ in range(trials)) / trials
    assert expected_distinct(counts, window) == pytest.approx(simulated, rel=0.01)


def test_expected_distinct_limits():
    assert expected_distinct([10] * 4, 1) == pytest.approx(1.0)
    assert expected_distinct([10] * 4, 10_000) == pytest.approx(4.0)
    assert expected_distinct([], 8) == 0.0


def test_sorted_labels_score_far_below_shuffled():
    labels = [c for c in range(10) for _ in range(100)]
    shuffled = labels[:]
    random.Random(1).shuffle(shuffled)
    assert distinct_ratio(labels, 32) < 0.25
    assert distinct_ratio(shuffled, 32) > 0.95


def test_mean_distinct_needs_a_full_window():
    assert mean_distinct([1, 2, 2, 3, 3, 3], 3) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        mean_distinct([1, 2], 3)


def test_window_stats_of_shuffled_and_sorted_streams():
    import numpy as np

    from imgshard.audit.mixing import window_stats

    labels = np.repeat(np.arange(20), 100)
    sorted_stats = window_stats(labels, 64)
    shuffled = window_stats(np.random.default_rng(3).permutation(labels), 64)
    assert shuffled.distinct_ratio == pytest.approx(1.0, abs=0.03)
    assert shuffled.max_count_ratio == pytest.approx(1.0, abs=0.08)
    assert sorted_stats.distinct_ratio < 0.15
    assert sorted_stats.max_count_ratio > 5
    # the vectorized per-window count agrees with the plain definition
    assert sorted_stats.distinct.mean() == pytest.approx(mean_distinct(list(labels), 64))


def test_shard_skew_tells_random_shards_from_class_blocks():
    import numpy as np

    from imgshard.audit.mixing import shard_skew

    rng = np.random.default_rng(0)
    p = np.full(10, 0.1)
    random_shards = rng.multinomial(200, p, size=12)
    assert shard_skew(random_shards).ratio == pytest.approx(1.0, abs=0.2)
    blocks = np.zeros((10, 10), dtype=int)
    np.fill_diagonal(blocks, 200)
    assert shard_skew(blocks).ratio > 5
