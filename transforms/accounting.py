"""Is every line of the input list accounted for, exactly once, by the shards + rejected report?"""

from __future__ import annotations

import collections
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from imgshard.transforms.records import IndexEntry, Rejection

__all__ = ["ListAccounting", "account_for_list"]


@dataclass
class ListAccounting:
    """Attributes:
    inputs: list lines that are inputs (entries and unparseable lines).
    missing: (line, path) of inputs found neither as a record nor as a rejected line.
    duplicated: (path, records found, records expected) for paths written too often.
    unexpected: record paths that the list does not hold at all.
    unknown_rejected: rejected-report lines that are not inputs of the list.
    matched_by: "path", or "basename" for shards that store only file names.
    """

    inputs: int = 0
    missing: list[tuple[int, str]] = field(default_factory=list)
    duplicated: list[tuple[str, int, int]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    unknown_rejected: list[int] = field(default_factory=list)
    matched_by: str = "path"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.unexpected or self.unknown_rejected)


def account_for_list(
    listed: Iterable[IndexEntry | Rejection],
    record_paths: collections.Counter,
    rejected_lines: Iterable[int],
) -> ListAccounting:
    """Compares the re-parsed list with the paths found in the records and the report."""
    result = ListAccounting()
    lines_of: dict[str, list[int]] = collections.defaultdict(list)
    unparseable: list[tuple[int, str]] = []
    for item in listed:
        if isinstance(item, IndexEntry):
            lines_of[item.path].append(item.line)
        elif isinstance(item, Rejection):
            unparseable.append((item.line, item.path))
    result.inputs = sum(len(v) for v in lines_of.values()) + len(unparseable)
    input_lines = {line for lines in lines_of.values() for line in lines}
    input_lines.update(line for line, _ in unparseable)

    if _stores_basenames(record_paths, lines_of):
        result.matched_by = "basename"
        by_name: dict[str, list[int]] = collections.defaultdict(list)
        for path, lines in lines_of.items():
            by_name[posixpath.basename(path)].extend(lines)
        lines_of = by_name

    rejected = set(rejected_lines)
    for path, lines in sorted(lines_of.items()):
        open_lines = sorted(line for line in lines if line not in rejected)
        found = record_paths.get(path, 0)
        if found < len(open_lines):
            result.missing.extend((line, path) for line in open_lines[found:])
        elif found > len(open_lines):
            result.duplicated.append((path, found, len(open_lines)))
    result.missing.extend((line, text) for line, text in unparseable if line not in rejected)
    result.missing.sort()
    result.unexpected = sorted(p for p in record_paths if p not in lines_of)
    result.unknown_rejected = sorted(rejected - input_lines)
    return result


def _stores_basenames(record_paths: collections.Counter, lines_of: dict) -> bool:
    return (
        bool(record_paths)
        and all("/" not in p for p in record_paths)
        and any("/" in p for p in lines_of)
    )
