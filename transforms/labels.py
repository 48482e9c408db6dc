"""Label vocabulary: class names -> integer ids, deterministically.

Ids are the positions of the class names in code-point sorted order (the order of
`labels.txt`), so `n01440764` is 0 for ILSVRC2012 whatever order the list is in. Lists whose
labels are all integers keep them as given; a `--labels FILE` vocabulary fixes the names and
their order, and any name outside it is rejected as an unknown label.

Integer ids make the vocabulary `0..largest`, so one stray label (`20190101`, a date pasted in
the label column) would make it 20M classes, sent to every worker and written to labels.txt:
an integer vocabulary far larger than the count of distinct labels is refused (VocabularyTooLarge).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Vocabulary",
    "VocabularyTooLarge",
    "build_vocabulary",
    "int_vocabulary_limit",
    "parse_int_label",
]

# Sparse integer ids are normal (COCO's 80 categories use ids up to 90); a vocabulary this many
# times the distinct labels, and beyond a small size, is a stray label.
INT_VOCABULARY_SPARSITY = 10
INT_VOCABULARY_FLOOR = 1000


class VocabularyTooLarge(ValueError):
    """Integer labels whose largest id would make a vocabulary far larger than the labels."""


def int_vocabulary_limit(distinct: int, max_int_labels: int = 0) -> int:
    """The largest integer vocabulary accepted for this many distinct labels.

    Args:
      max_int_labels: the user's limit (--max-int-labels); 0 chooses
        max(INT_VOCABULARY_FLOOR, INT_VOCABULARY_SPARSITY x distinct).
    """
    if max_int_labels:
        return max_int_labels
    return max(INT_VOCABULARY_FLOOR, INT_VOCABULARY_SPARSITY * distinct)


def parse_int_label(label: str) -> int | None:
    """The label as a non-negative integer id, or None when it is a name."""
    text = label.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    return None


@dataclass(frozen=True)
class Vocabulary:
    """The class of every label id.

    Attributes:
      kind: "name" (labels are class names) or "int" (labels are ids as listed).
      names: class name of each id, in id order (for "int" without a labels file: the ids
        as text, 0 to the largest listed).
    """

    kind: str
    names: tuple[str, ...]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_ids", {name: i for i, name in enumerate(self.names)})

    def resolve(self, label: str) -> int | None:
        """The 0-based id of a listed label, or None when it is not in the vocabulary."""
        if self.kind == "int":
            value = parse_int_label(label)
            if value is None or value >= len(self.names):
                return None
            return value
        return self._ids.get(label)


def build_vocabulary(
    distinct_labels: Iterable[str],
    kind: str = "auto",
    given: Sequence[str] | None = None,
    max_int_labels: int = 0,
) -> Vocabulary:
    """Chooses the label kind and the id of every class.

    Args:
      distinct_labels: every distinct label string found in the index.
      kind: "auto" (integers if every label is one, else names), "int" or "name".
      given: class names from --labels, in id order; fixes the vocabulary.
      max_int_labels: the largest integer vocabulary accepted (0: int_vocabulary_limit's).

    Raises:
      VocabularyTooLarge: integer ids whose largest would exceed the limit; names them.
    """
    labels = set(distinct_labels)
    if kind == "auto":
        kind = "int" if labels and all(parse_int_label(x) is not None for x in labels) else "name"
    if given is not None:
        if len(set(given)) != len(given):
            raise ValueError("the --labels file lists a class name more than once")
        return Vocabulary(kind, tuple(given))
    if kind == "int":
        ids = [parse_int_label(x) for x in labels]
        valid = sorted({i for i in ids if i is not None})
        top = valid[-1] if valid else -1
        limit = int_vocabulary_limit(len(valid), max_int_labels)
        if top + 1 > limit:
            raise VocabularyTooLarge(_too_large_message(valid, limit, max_int_labels))
        return Vocabulary("int", tuple(str(i) for i in range(top + 1)))
    return Vocabulary("name", tuple(sorted(labels)))


def _too_large_message(ids: list[int], limit: int, max_int_labels: int) -> str:
    over = [i for i in ids if i >= limit]
    named = ", ".join(repr(str(i)) for i in over[-5:])
    why = (
        f"--max-int-labels {max_int_labels:,}"
        if max_int_labels
        else f"{INT_VOCABULARY_SPARSITY}x the {len(ids):,} distinct labels"
    )
    return (
        f"integer label{'s' if len(over) > 1 else ''} {named} would make the vocabulary "
        f"{ids[-1] + 1:,} classes (ids 0 to {ids[-1]:,}) for {len(ids):,} distinct labels, over "
        f"the limit of {limit:,} ({why}). A stray label? Fix the list, or pass --labels FILE "
        f"(labels outside it are rejected), or --max-int-labels {ids[-1] + 1} to accept it"
    )
