"""How well a sequence of labels is mixed, against an i.i.d. sample of the same labels.

A window of B consecutive records drawn i.i.d. from label frequencies p_c holds on average
    E[distinct] = sum_c 1 - (1 - p_c)^B
distinct labels. A class-sorted stream holds ~1-2; a good shuffle holds E[distinct].
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence

__all__ = ["expected_distinct", "mean_distinct", "distinct_ratio"]


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
