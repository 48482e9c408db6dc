"""The files PyTorch readers look for beside WebDataset shards, so nobody counts samples.

`_info.json` is what timm's `wds/` reader loads from its root (timm/data/readers/reader_wds.py,
`_load_info` tries `_info.json`, then `info.json`): `splits` -> split name -> `name`,
`num_samples`, `filenames` (relative to the root) and `shard_lengths`, one per file. With it,
`timm.data.create_dataset("wds/imagenet", root=OUT, split="train", is_training=True)` knows
the epoch length, which its training mode requires.

`{split}.wids.json` is a wids shard index ("wids-shard-index-v1"): `shardlist` of `url`
(relative URLs are resolved against the index file's folder) and `nsamples`, which
`wids.ShardListDataset("out/train.wids.json")` needs for random access.

Both list the shards in name order, the order of dataset.json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["TIMM_INFO", "timm_info", "wids_index", "wids_index_name"]

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
