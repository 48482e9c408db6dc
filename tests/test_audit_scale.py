"""--list accounting by buckets on disk: exact (against an all-in-memory oracle) while holding
only one bucket's share of the paths at a time."""

import collections
import posixpath

from hypothesis import given, settings
from hypothesis import strategies as st

from imgshard.audit.accounting import KEPT, RecordPaths, account_for_list
from imgshard.transforms.records import IndexEntry, Rejection


def oracle(listed, records, rejected):
    """Every path in memory, the obvious way: (missing, duplicated, unexpected, unknown)."""
    lines_of = collections.defaultdict(list)
    bad = []
    for item in listed:
        (lines_of[item.path] if isinstance(item, IndexEntry) else bad).append(item.line)
    inputs = {line for lines in lines_of.values() for line in lines} | set(bad)
    found = collections.Counter(records)
    if records and all("/" not in p for p in records) and any("/" in p for p in lines_of):
        by_name = collections.defaultdict(list)
        for path, lines in lines_of.items():
            by_name[posixpath.basename(path)] += lines
        lines_of = by_name
    missing, duplicated = [], []
    for path, lines in lines_of.items():
        open_lines = sorted(line for line in lines if line not in rejected)
        n = found[path]
        missing += [(line, path) for line in open_lines[n:]]
        if n > len(open_lines):
            duplicated.append((path, n, len(open_lines)))
    bad_paths = {item.line: item.path for item in listed if isinstance(item, Rejection)}
    missing += [(line, bad_paths[line]) for line in bad if line not in rejected]
    unexpected = sorted(p for p in found if p not in lines_of)
    return sorted(missing), sorted(duplicated), unexpected, sorted(set(rejected) - inputs)


def account(listed, records, rejected, buckets):
    paths = RecordPaths(buckets=buckets)
    for path in records:
        paths.add(path)
    try:
        return account_for_list(iter(listed), paths, rejected)
    finally:
        paths.cleanup()


names = st.sampled_from(["a.jpg", "b.jpg", "c.jpg", "d e.jpg", "f\n.jpg", "ü.jpg"])
folders = st.sampled_from(["", "x/", "y/z/"])
paths = st.builds(lambda f, n: f + n, folders, names)


@settings(max_examples=120, derandomize=True, deadline=None)
@given(
    listed_paths=st.lists(st.one_of(paths, st.none()), max_size=30),
    extra_records=st.lists(paths, max_size=6),
    dropped=st.sets(st.integers(0, 29)),
    doubled=st.sets(st.integers(0, 29)),
    rejected=st.sets(st.integers(1, 40), max_size=8),
    basenames=st.booleans(),
    buckets=st.integers(1, 5),
)
def test_bucketed_accounting_equals_the_in_memory_oracle(
    listed_paths, extra_records, dropped, doubled, rejected, basenames, buckets
):
    listed = [
        IndexEntry(line, path, "0") if path else Rejection(line, "bad line", "", "unparseable", "")
        for line, path in enumerate(listed_paths, start=1)
    ]
    records = []
    for i, item in enumerate(listed):
        if isinstance(item, IndexEntry) and i not in dropped:
            records += [item.path] * (2 if i in doubled else 1)
    records += extra_records
    if basenames:
        records = [posixpath.basename(p) for p in records]
    result = account(listed, records, sorted(rejected), buckets)
    missing, duplicated, unexpected, unknown = oracle(listed, records, rejected)
    assert (result.num_missing, result.missing) == (len(missing), missing[:KEPT])
    assert (result.num_duplicated, result.duplicated) == (len(duplicated), duplicated[:KEPT])
    assert (result.num_unexpected, result.unexpected) == (len(unexpected), unexpected[:KEPT])
    assert (result.num_unknown_rejected, result.unknown_rejected) == (len(unknown), unknown)
    assert result.inputs == len(listed)
    assert result.ok == (not (missing or duplicated or unexpected or unknown))


def test_a_large_list_is_held_one_bucket_at_a_time_and_counted_exactly():
    n, buckets = 20_000, 16
    listed = [IndexEntry(i + 1, f"n{i % 100:03d}/img_{i:06d}.jpg", "0") for i in range(n)]
    records = [e.path for e in listed if e.line % 1000 != 0]  # 20 missing
    records += [listed[5].path, "stray/extra.jpg"]  # one duplicated, one unexpected
    rejected = [2000, 4000, n + 7]  # two inputs rejected, one line the list does not have
    result = account(listed, records, rejected, buckets)
    assert result.num_missing == 20 - 2 and result.missing[0] == (1000, listed[999].path)
    assert result.duplicated == [(listed[5].path, 2, 1)]
    assert result.unexpected == ["stray/extra.jpg"] and result.unknown_rejected == [n + 7]
    assert not result.ok
    # one bucket's share (about (n + records) / buckets), never the whole list
    assert result.largest_bucket < 2 * (2 * n) / buckets
