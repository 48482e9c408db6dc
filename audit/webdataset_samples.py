"""WebDataset shards as the audit reads them: tar members grouped into samples the way
webdataset's reader groups them, and each sample turned into the features a TFRecord record
would hold, so every later check (labels, boxes, --decode, --list, mixing) is shared.

A sample is a run of consecutive members with the same key, the key being the member name up
to the first dot of its file name (webdataset's `base_plus_ext`). What is wrong with a sample
is reported, never guessed around: a member name without an extension, an extension twice in
one sample, a key that comes back after other keys (a reader would see two samples), no image,
no `.cls`, a `.cls` that is not a decimal integer, a `.json` that does not parse.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator

from imgshard.transforms.example import BOX_COORDINATES

__all__ = ["IMAGE_EXTENSIONS", "SampleProblem", "group_samples", "key_hash", "sample_features"]

# the image members a reader takes, in timm's order of preference ("jpg;png;webp")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_NAME = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")


class SampleProblem(ValueError):
    """What is wrong with one sample (or member); `kind` is the audit's error kind."""

    def __init__(self, kind: str, key: str, detail: str):
        super().__init__(detail)
        self.kind, self.key = kind, key


def key_hash(key: str) -> int:
    """64 bits of a key, for the check of unique keys across shards (8 bytes per record)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def group_samples(
    members: Iterable[tuple[str, bytes]],
) -> Iterator[tuple[str, dict[str, bytes]] | SampleProblem]:
    """(key, {extension: bytes}) per sample, in order; a SampleProblem in place of a member
    or sample that a reader would mishandle (the scan counts it and goes on)."""
    seen: set[str] = set()
    key, sample = None, {}
    for name, data in members:
        match = _NAME.match(name)
        if match is None:
            yield SampleProblem("sample", name, f"member {name!r} has no extension")
            continue
        member_key, extension = match.group(1), match.group(2).lower()
        if member_key != key:
            if key is not None:
                yield key, sample
            if member_key in seen:
                yield SampleProblem(
                    "key", member_key, f"key {member_key!r} appears again after other keys"
                )
            seen.add(member_key)
            key, sample = member_key, {}
        if extension in sample:
            yield SampleProblem("sample", key, f"{name!r}: .{extension} twice in one sample")
            continue
        sample[extension] = data
    if key is not None:
        yield key, sample


def sample_features(key: str, sample: dict[str, bytes]) -> dict:
    """The Example-like features of a sample (image/encoded, image/class/label, and from the
    `.json`: image/class/synset, image/filename, image/width, image/height, boxes).

    Raises SampleProblem when a reader could not use it.
    """
    image = next((sample[e] for e in IMAGE_EXTENSIONS if e in sample), None)
    if image is None:
        raise SampleProblem("sample", key, f"no image member (.{', .'.join(IMAGE_EXTENSIONS)})")
    if "cls" not in sample:
        raise SampleProblem("label", key, "no .cls member")
    text = sample["cls"].strip()
    if not (text.isascii() and text.lstrip(b"-").isdigit() and len(text) < 20):
        raise SampleProblem("label", key, f".cls is not a decimal integer: {sample['cls'][:20]!r}")
    features: dict = {"image/encoded": [image], "image/class/label": [int(text)]}
    meta = {}
    if "json" in sample:
        try:
            meta = json.loads(sample["json"])
        except (ValueError, UnicodeDecodeError) as e:
            raise SampleProblem("parse", key, f".json does not parse: {e}") from None
        if not isinstance(meta, dict):
            raise SampleProblem("parse", key, ".json is not an object")
    features["image/filename"] = [str(meta.get("path", key)).encode("utf-8")]
    if isinstance(meta.get("class"), str):
        features["image/class/synset"] = [meta["class"].encode("utf-8")]
    for name in ("width", "height"):
        if isinstance(meta.get(name), int):
            features[f"image/{name}"] = [meta[name]]
    if "boxes" in meta:
        boxes = meta["boxes"]
        if not isinstance(boxes, list) or not all(
            isinstance(b, list) and len(b) == 4 for b in boxes
        ):
            raise SampleProblem("boxes", key, ".json boxes are not [xmin, ymin, xmax, ymax] lists")
        for i, name in enumerate(BOX_COORDINATES):
            features[name] = [b[i] for b in boxes]
    return features
