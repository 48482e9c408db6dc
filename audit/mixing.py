"""How well a sequence of labels is mixed, against an i.i.d. sample of the same labels.

A window of B consecutive records drawn i.i.d. from label frequencies p_c holds on average
    E[distinct] = sum_c 1 - (1 - p_c)^B
distinct labels. A class-sorted stream holds ~1-2; a good shuffle holds E[distinct]. The
other statistics here (largest count of one label in a window, each shard's distance from
the global label histogram) have no closed form that is worth the error, so their i.i.d.
expectations are simulated, with a fixed seed.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "SkewStats",
    "WindowStats",
    "distinct_ratio",
    "expected_distinct",
    "iid_window_moments",
    "mean_distinct",
    "shard_skew",
    "window_stats",
]


def expected_distinct(label_counts: Iterable[int], window: int) -> float:
    """Expected distinct labels in `window` i.i.d. draws from these label frequencies."""
    counts = [c for c in label_counts if c > 0]
    total = sum(counts)
    if total == 0:
        return 0.0
    return sum(1.0 - (1.0 - c / total) ** window for c in counts)


def mean_distinct(labels: Sequence, window: int) -> float:
    """Mean distinct labels over the non-overlapping full windows of `labels`."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    windows = len(labels) // window
    if windows == 0:
        raise ValueError(f"{len(labels)} labels make no full window of {window}")
    return sum(len(set(labels[i * window : (i + 1) * window])) for i in range(windows)) / windows


def distinct_ratio(labels: Sequence, window: int) -> float:
    """mean_distinct / expected_distinct: 1.0 is as mixed as a perfect shuffle."""
    expected = expected_distinct(collections.Counter(labels).values(), window)
    return mean_distinct(labels, window) / expected


class WindowStats(NamedTuple):
    """Per-window statistics of a label stream, and their i.i.d. expectations."""

    window: int
    distinct: np.ndarray  # distinct labels in each full window
    max_count: np.ndarray  # records of the most frequent label in each window
    expected_distinct: float
    expected_max_count: float
    distinct_sd: float = 0.0  # standard deviation of one i.i.d. window's distinct labels

    @property
    def distinct_ratio(self) -> float:
        return float(self.distinct.mean() / self.expected_distinct)

    @property
    def distinct_noise(self) -> float:
        """Three standard errors of the mean distinct labels over this many i.i.d. windows:
        a shortfall within it is what a perfect shuffle of so few records can show."""
        return 3.0 * self.distinct_sd / max(1, len(self.distinct)) ** 0.5

    @property
    def max_count_ratio(self) -> float:
        return float(self.max_count.mean() / self.expected_max_count)


def _per_window(dense: np.ndarray, window: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    rows = dense[: len(dense) // window * window].reshape(-1, window)
    offsets = np.arange(len(rows))[:, None] * num_classes
    counts = np.bincount((rows + offsets).ravel(), minlength=len(rows) * num_classes)
    counts = counts.reshape(len(rows), num_classes)
    return (counts > 0).sum(axis=1), counts.max(axis=1)


def iid_window_moments(
    frequencies: np.ndarray, window: int, trials: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """(mean largest single-label count, standard deviation of the distinct labels) of an
    i.i.d. window (simulated)."""
    p = np.asarray(frequencies, dtype=float)
    p = p / p.sum()
    draws = np.random.default_rng(seed).choice(len(p), size=(trials, window), p=p)
    distinct, max_count = _per_window(draws.ravel(), window, len(p))
    return float(max_count.mean()), float(distinct.std())


def window_stats(
    dense_labels: np.ndarray, window: int, num_classes: int | None = None
) -> WindowStats:
    """Statistics over the non-overlapping full windows of labels coded 0..K-1.

    The expectations use the label frequencies of the stream itself.
    """
    dense = np.asarray(dense_labels, dtype=np.int64)
    if len(dense) < window:
        raise ValueError(f"{len(dense)} records make no full window of {window}")
    num_classes = int(dense.max()) + 1 if num_classes is None else num_classes
    frequencies = np.bincount(dense, minlength=num_classes)
    distinct, max_count = _per_window(dense, window, num_classes)
    expected_max, distinct_sd = iid_window_moments(frequencies, window)
    return WindowStats(
        window,
        distinct,
        max_count,
        expected_distinct(frequencies, window),
        expected_max,
        distinct_sd,
    )


class SkewStats(NamedTuple):
    """Each shard's total-variation distance from the global label histogram."""

    distance: np.ndarray  # per shard: 0.5 * sum |shard share - global share|
    expected: np.ndarray  # per shard: the same for a random shard of that size (simulated)

    @property
    def ratio(self) -> float:
        """Mean distance over the mean random distance; ~1.0 for i.i.d. shards."""
        return float(self.distance.mean() / max(self.expected.mean(), 1e-12))


def shard_skew(histograms: np.ndarray, trials: int = 16, seed: int = 0) -> SkewStats:
    """`histograms`: records per (shard, class). Empty shards count as distance 0."""
    histograms = np.asarray(histograms, dtype=np.int64)
    sizes = histograms.sum(axis=1)
    p = histograms.sum(axis=0) / max(1, histograms.sum())
    rng = np.random.default_rng(seed)
    distance = np.zeros(len(histograms))
    expected = np.zeros(len(histograms))
    for i, n in enumerate(sizes):
        if n == 0:
            continue
        distance[i] = 0.5 * np.abs(histograms[i] / n - p).sum()
        random_shards = rng.multinomial(n, p, size=trials)
        expected[i] = (0.5 * np.abs(random_shards / n - p).sum(axis=1)).mean()
    return SkewStats(distance, expected)
