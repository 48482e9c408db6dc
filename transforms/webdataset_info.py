"""The files PyTorch readers look for beside WebDataset shards, so nobody counts samples.

`_info.json` is what timm's `wds/` reader loads from its root (timm/data/readers/reader_wds.py,
`_load_info` tries `_info.json`, then `info.json`): `splits` -> split name -> `name`,
`num_samples`, `filenames` (relative to the root) and `shard_lengths`, one per file. With it,
`timm.data.create_dataset("wds/imagenet", root=OUT, split="train", is_training=True)` knows
the epoch length, which its training mode requires.

`{split}.wids.json` is a wids shard index ("wids-shard-index-v1"): `shardlist` of `url`
(relative URLs are resolved against the index file's folder) and `nsamples`, which
`wids.ShardListDataset("out/train.wids.json")` needs for random access.

Both list the shards in name order, the order of dataset.json. timm's train.py reads both
splits from one --data-dir; for that, `timm_split` gives the split as a brace pattern with
its sample count, which timm takes in place of a split name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["TIMM_INFO", "timm_info", "timm_split", "wids_index", "wids_index_name"]

TIMM_INFO = "_info.json"


def wids_index_name(split: str) -> str:
    return f"{split}.wids.json"


def timm_info(split: str, shards: Sequence[Mapping], num_classes: int) -> dict:
    """`_info.json` for a folder holding one split; `shards`: dataset.json's shard rows."""
    return {
        "name": split,
        "num_classes": num_classes,
        "splits": {
            split: {
                "name": split,
                "num_samples": sum(s["records"] for s in shards),
                "filenames": [s["name"] for s in shards],
                "shard_lengths": [s["records"] for s in shards],
            }
        },
    }


def timm_split(split: str, num_shards: int, num_samples: int) -> str:
    """The split as timm takes it in place of a split name: `train-{00000..01023}-of-01024.tar
    |1281167`, the shard names brace-expanded and the sample count after `|`; no info file
    needed. With one --data-dir holding the split folders (timm's train.py), prefix the
    folder: `train/train-{...}.tar|...`."""
    last = num_shards - 1
    return f"{split}-{{00000..{last:05d}}}-of-{num_shards:05d}.tar|{num_samples}"


def wids_index(split: str, shards: Sequence[Mapping]) -> dict:
    """The wids shard index of one split; `shards`: dataset.json's shard rows."""
    return {
        "__kind__": "wids-shard-index-v1",
        "wids_version": 1,
        "name": split,
        "shardlist": [
            {"url": s["name"], "nsamples": s["records"], "filesize": s["bytes"]} for s in shards
        ],
    }
