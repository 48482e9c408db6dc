"""Generated test data and readers shared by the tests (no network, no shipped fixtures)."""

from __future__ import annotations

import glob
import io
import os
import struct
import sys

import numpy as np
from PIL import Image

from imgshard.transforms.shard_names import shard_glob
from imgshard.transforms.tfrecord import iter_records

# In-process runner: fast for small tests. Tests that need worker processes say so.
IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
# The console script as a user runs it.
IMGSHARD = os.path.join(os.path.dirname(sys.executable), "imgshard")


def convert(list_path, output, *flags, runner=IN_PROCESS):
    """`imgshard convert` in this process, in one process unless `runner` says otherwise."""
    from imgshard.pipeline import run

    return run(["--input", str(list_path), "--output", str(output), *flags, *runner])


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth, photo-like RGB image (gradients plus a few blobs): decodes like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.5, 3, size=3)
        channels.append(
            127 + 100 * np.sin(fx * x / width * 6.28 + phase) * np.cos(fy * y / height * 3.14)
        )
    array = np.stack(channels, axis=-1)
    array += rng.normal(0, 4, array.shape)
    return Image.fromarray(array.clip(0, 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def jpeg(width=64, height=48, seed=0, quality=90, **params) -> bytes:
    return encode(photo(width, height, seed), "JPEG", quality=quality, **params)


def class_color_jpeg(label: int, size: int = 24) -> bytes:
    rng = np.random.default_rng(label)
    color = tuple(int(c) for c in rng.integers(0, 255, 3))
    return encode(Image.new("RGB", (size, size), color), "JPEG", quality=90)


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (the pixel data is never there)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def write(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def sorted_dataset(root: str, classes: int, per_class: int, names: bool = False) -> str:
    """Small class-colored JPEGs and a class-sorted `path label` list; returns the list path."""
    lines = []
    for label in range(classes):
        data = class_color_jpeg(label)
        name = f"n{label:08d}" if names else str(label)
        for i in range(per_class):
            relative = f"{name}/{name}_{i}.JPEG"
            write(os.path.join(root, relative), data)
            lines.append(f"{relative} {name}\n")
    list_path = os.path.join(root, "train.txt")
    with open(list_path, "w") as f:
        f.writelines(lines)
    return list_path


def all_files(output) -> dict[str, bytes]:
    """Every file under the output, hidden ones (the journal) included, by relative path."""
    found = {}
    for folder, _, names in os.walk(output):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, output)] = f.read()
    return found


def shard_files(output: str, split: str = "train") -> list[str]:
    return sorted(glob.glob(os.path.join(output, shard_glob(split, "tfrecord"))))


def read_examples(output: str, split: str = "train") -> list[dict]:
    """Every record in shard-name order, file order, parsed with TensorFlow's own proto."""
    from tensorflow.core.example import example_pb2

    examples = []
    for path in shard_files(output, split):
        with open(path, "rb") as f:
            for data in iter_records(f):
                example = example_pb2.Example.FromString(data)
                features = {}
                for key, feature in example.features.feature.items():
                    kind = feature.WhichOneof("kind")
                    values = list(getattr(feature, kind).value)
                    features[key] = values[0] if len(values) == 1 else values
                examples.append(features)
    return examples


def labels_in_order(output: str, split: str = "train") -> list[int]:
    return [e["image/class/label"] for e in read_examples(output, split)]


def upload(local_root: str, remote_root: str) -> None:
    """Copies a local tree under a remote (e.g. gs://) prefix through Beam's FileSystems."""
    from apache_beam.io.filesystems import FileSystems

    for folder, _, names in os.walk(local_root):
        for name in names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, local_root)
            with FileSystems.create(f"{remote_root}/{relative}") as f, open(path, "rb") as src:
                f.write(src.read())


def read(uri: str) -> bytes:
    """A whole file, local or remote, through Beam's FileSystems."""
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(uri) as f:
        return f.read()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process, what: str, seconds: float = 60) -> None:
    """Waits until something listens on localhost:port; kills `process` and fails if not."""
    import socket
    import time

    import pytest

    deadline = time.time() + seconds
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"{what} did not start listening on port {port}")
