"""`imgshard audit --sheet FILE.png`: a contact sheet of records sampled across the shards.

Numbers cannot show a sideways, color-swapped or over-cropped dataset; a look can. The sheet
draws N records at evenly spaced positions of the whole record order (so every shard
contributes in proportion to its size, and the same shards always give the same picture),
each as stored (aspect kept, not rotated), with its class name and recorded size, and its
boxes when the records hold any.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from imgshard.audit.shard_scan import iter_shard_features
from imgshard.transforms.example import BOX_COORDINATES

__all__ = ["Cell", "draw_contact_sheet", "sample_positions"]

THUMB = 128  # longer side of a thumbnail, px
_CAPTION = 30  # px of text under each thumbnail
_PAD = 6
_BACKGROUND = (255, 255, 255)
_BOX_COLOR = (0, 200, 0)


def sample_positions(counts: Sequence[int], n: int) -> list[tuple[int, int]]:
    """(shard number, record number) of n records evenly spaced over all records in order."""
    total = sum(counts)
    n = min(n, total)
    picks = [((2 * k + 1) * total) // (2 * n) for k in range(n)]  # the middle of each nth
    positions, shard, start = [], 0, 0
    for pick in picks:
        while pick >= start + counts[shard]:
            start += counts[shard]
            shard += 1
        positions.append((shard, pick - start))
    return positions


class Cell:
    """One sampled record as drawn: its place, caption and thumbnail."""

    def __init__(self, shard: str, index: int, features: dict, label_key: str):
        self.shard, self.index = shard, index
        label = (features.get(label_key) or ["?"])[0]
        label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
        name = (features.get("image/class/synset") or [b""])[0]
        name = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        self.class_name = name or label
        width = (features.get("image/width") or [0])[0]
        height = (features.get("image/height") or [0])[0]
        self.caption = [self.class_name if name in ("", label) else f"{name} ({label})"]
        boxes = zip(*(features.get(k, []) for k in BOX_COORDINATES), strict=False)
        self.boxes = [b for b in boxes if all(isinstance(v, float | int) for v in b)]
        try:
            image = Image.open(io.BytesIO(features["image/encoded"][0]))
            image.load()
            self.image = image.convert("RGB")
        except Exception:
            self.image = None
        if not (width and height) and self.image is not None:
            # foreign shards may not record their size (image/width, image/height)
            width, height = self.image.size
        self.caption.append(f"{width}x{height}")
        if self.image is None:
            self.caption[-1] += " (undecodable)"

    def thumbnail(self) -> Image.Image:
        if self.image is None:
            return Image.new("RGB", (THUMB, THUMB), (160, 160, 160))
        w, h = self.image.size
        scale = THUMB / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # small images are enlarged pixel for pixel, so what is drawn is what is stored
        resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BICUBIC
        thumb = self.image.resize(size, resample)
        draw = ImageDraw.Draw(thumb)
        for x0, y0, x1, y1 in self.boxes:
            draw.rectangle(
                (x0 * size[0], y0 * size[1], x1 * size[0] - 1, y1 * size[1] - 1),
                outline=_BOX_COLOR,
                width=2,
            )
        return thumb


def sampled_cells(
    shards: Sequence[tuple[str, int]], n: int, label_key: str = "image/class/label"
) -> list[Cell]:
    """The sampled records of (shard path, record count) pairs, read in one pass per shard."""
    wanted: dict[int, list[int]] = {}
    for shard, index in sample_positions([count for _, count in shards], n):
        wanted.setdefault(shard, []).append(index)
    cells = []
    for shard, indices in sorted(wanted.items()):
        path = shards[shard][0]
        remaining = set(indices)
        for index, features in enumerate(iter_shard_features(path)):
            if index in remaining:  # a record that does not parse ({}) is drawn as a grey cell
                cells.append(Cell(path, index, features, label_key))
                remaining.discard(index)
                if not remaining:
                    break
    return cells


def _font():
    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow built without FreeType
        return ImageFont.load_default()


def draw_contact_sheet(
    shards: Sequence[tuple[str, int]],
    out_path: str,
    n: int = 48,
    label_key: str = "image/class/label",
    image_format: str = "PNG",
) -> list[Cell]:
    """Writes the sheet (a Pillow format: PNG, JPEG ...) and returns the cells in the order
    drawn (row by row)."""
    if n < 1:
        raise ValueError(f"--sheet-records must be at least 1, got {n}")
    cells = sampled_cells(shards, n, label_key)
    if not cells:
        raise ValueError("no records to draw a contact sheet of")
    columns = min(len(cells), 8)
    rows = -(-len(cells) // columns)
    cell_w, cell_h = THUMB + 2 * _PAD, THUMB + _CAPTION + 2 * _PAD
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), _BACKGROUND)
    draw, font = ImageDraw.Draw(sheet), _font()
    for i, cell in enumerate(cells):
        left, top = (i % columns) * cell_w + _PAD, (i // columns) * cell_h + _PAD
        thumb = cell.thumbnail()
        sheet.paste(thumb, (left + (THUMB - thumb.width) // 2, top + (THUMB - thumb.height) // 2))
        for line, text in enumerate(cell.caption):
            draw.text((left, top + THUMB + 2 + 14 * line), text[:22], fill=(0, 0, 0), font=font)
    sheet.save(out_path, format=image_format)
    return cells
