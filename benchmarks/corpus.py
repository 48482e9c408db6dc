"""A benchmark corpus of real-photo JPEGs at ImageNet-like sizes, built offline.

Sources are the photographs that ship inside scikit-learn (china, flower) and scikit-image
(astronaut, coffee, chelsea, rocket, Hubble deep field, retina), when it is installed; each
corpus image is a random crop, rescaled so the sizes follow ILSVRC2012's (median around
500x375, some up to 2048 on the long side), saved at a random JPEG quality in 75-95. No
synthetic noise: noise decodes unlike photographs.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

__all__ = ["build_corpus", "source_photos"]


SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")


def source_photos() -> list[Image.Image]:
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(array) for array in load_sample_images().images]
    try:
        import skimage.data
    except ImportError:  # make bench-input runs without it
        return photos
    return photos + [Image.fromarray(getattr(skimage.data, name)()) for name in SKIMAGE_PHOTOS]


def _size(rng: np.random.Generator) -> tuple[int, int]:
    if rng.random() < 0.05:  # the few very large ones
        long_side = int(rng.integers(1200, 2049))
    else:
        long_side = int(np.clip(rng.normal(500, 80), 250, 1000))
    aspect = rng.choice([4 / 3, 3 / 2, 1.0, 3 / 4])
    width = long_side if aspect >= 1 else int(long_side * aspect)
    height = int(width / aspect)
    return width, height


def build_corpus(root: str, count: int, classes: int = 100, seed: int = 0) -> str:
    """Writes `count` JPEGs under root/<class>/ and a class-sorted train.txt; returns it."""
    rng = np.random.default_rng(seed)
    photos = source_photos()
    lines = []
    for i in range(count):
        label = i * classes // count
        photo = photos[int(rng.integers(len(photos)))]
        crop_w = int(rng.integers(photo.width // 3, photo.width + 1))
        crop_h = int(rng.integers(photo.height // 3, photo.height + 1))
        left = int(rng.integers(0, photo.width - crop_w + 1))
        top = int(rng.integers(0, photo.height - crop_h + 1))
        image = photo.crop((left, top, left + crop_w, top + crop_h)).resize(
            _size(rng), Image.Resampling.BICUBIC
        )
        relative = f"c{label:04d}/{i:06d}.JPEG"
        os.makedirs(os.path.join(root, f"c{label:04d}"), exist_ok=True)
        image.save(os.path.join(root, relative), quality=int(rng.integers(75, 96)))
        lines.append(f"{relative} {label}\n")
    list_path = os.path.join(root, "train.txt")
    with open(list_path, "w") as f:
        f.writelines(lines)
    return list_path
