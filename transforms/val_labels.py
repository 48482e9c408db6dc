"""ILSVRC2012 validation labels as they are downloaded, for `imgshard val-list`.

The 50,000 validation images come as one flat folder (`ILSVRC2012_val_00000001.JPEG` ...)
with their classes in one of three places:

- Kaggle's `LOC_val_solution.csv`: `ImageId,PredictionString`, the synset being the first
  token of the prediction string (`n01751748 62 99 313 316 n01751748 ...`: synset and box, per
  object);
- the validation bounding-box XML files (`ILSVRC2012_val_00000001.xml`), the class being the
  `<object><name>` of each object;
- the devkit's `ILSVRC2012_validation_ground_truth.txt`: one id (1-1000) per line, line i for
  image i. Those ids number the classes in the order of the devkit's `meta.mat` (its `synsets`
  with `ILSVRC2012_ID` 1-1000), which is *not* the sorted-synset order the train labels get:
  taking them as train ids gives a model ~0.1% validation accuracy. They are mapped through
  `meta.mat` to synsets here, and never used as ids.

All three become `image synset` pairs; the class ids are then the train split's, from its
`labels.txt`, which the converter takes as `--labels`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence

from apache_beam.io.filesystems import FileSystems

__all__ = [
    "ValLabelsError",
    "check_vocabulary",
    "image_ids",
    "match_images",
    "read_devkit_ground_truth",
    "read_kaggle_csv",
    "read_meta_mat",
    "read_val_labels",
    "read_xml_folder",
    "train_vocabulary",
]

_VAL_IMAGE = re.compile(r"^(ILSVRC2012_val_\d{8})\.(jpe?g|JPE?G|png|PNG)$")
_SYNSET = re.compile(r"^n\d{8}$")
_SHOWN = 5


class ValLabelsError(ValueError):
    """The validation labels cannot be used; the message says which file and why."""


def _read_text(path: str) -> str:
    with FileSystems.open(path) as f:
        return f.read().decode("utf-8-sig")


def _shown(items: Iterable[str]) -> str:
    items = sorted(items)
    text = ", ".join(items[:_SHOWN])
    return text + (f" ... ({len(items)} in all)" if len(items) > _SHOWN else "")


def image_ids(folder: str) -> dict[str, str]:
    """Image id (`ILSVRC2012_val_00000001`) -> file name, of the images in the flat folder."""
    found = FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list
    ids = {}
    for metadata in found:
        name = FileSystems.split(metadata.path)[1]
        match = _VAL_IMAGE.match(name)
        if match:
            ids[match.group(1)] = name
    if not ids:
        raise ValLabelsError(
            f"{folder} holds no ILSVRC2012_val_*.JPEG images (the flat validation folder, "
            "as downloaded: ILSVRC2012_img_val.tar unpacked)"
        )
    return ids


def read_kaggle_csv(path: str) -> dict[str, str]:
    """Kaggle's LOC_val_solution.csv: image id -> the first synset of its PredictionString."""
    rows = csv.reader(io.StringIO(_read_text(path)))
    header = next(rows, None)
    if not header or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
        raise ValLabelsError(
            f"{path}: expected Kaggle's LOC_val_solution.csv header 'ImageId,PredictionString', "
            f"got {','.join(header or [])!r}"
        )
    labels = {}
    for number, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        tokens = row[1].split() if len(row) > 1 else []
        if not tokens or not _SYNSET.match(tokens[0]) or len(tokens) % 5:
            raise ValLabelsError(
                f"{path} line {number}: not 'synset xmin ymin xmax ymax' per object: {row!r}"
            )
        classes = set(tokens[::5])
        if len(classes) > 1:
            raise ValLabelsError(f"{path} line {number}: objects of several classes: {classes}")
        if row[0] in labels:
            raise ValLabelsError(f"{path} line {number}: {row[0]} listed twice")
        labels[row[0].strip()] = tokens[0]
    return labels


def read_xml_folder(folder: str) -> dict[str, str]:
    """The validation bounding-box XML files: image id -> the name of its objects."""
    found = FileSystems.match([FileSystems.join(folder, "*.xml")])[0].metadata_list
    if not found:
        raise ValLabelsError(f"{folder} holds no *.xml files (ILSVRC2012_bbox_val_v3.tgz unpacked)")
    labels = {}
    for metadata in sorted(found, key=lambda m: m.path):
        name = FileSystems.split(metadata.path)[1]
        try:
            root = ET.fromstring(_read_text(metadata.path))
        except ET.ParseError as e:
            raise ValLabelsError(f"{metadata.path}: not XML ({e})") from None
        classes = {(o.findtext("name") or "").strip() for o in root.iter("object")}
        if not classes:
            raise ValLabelsError(f"{metadata.path}: no <object><name>")
        if len(classes) > 1:
            raise ValLabelsError(f"{metadata.path}: objects of several classes: {sorted(classes)}")
        labels[name[: -len(".xml")]] = classes.pop()
    return labels


def read_meta_mat(path: str) -> list[str]:
    """The devkit's meta.mat: the synset of each ILSVRC2012_ID 1..N, in id order (the
    classes are the synsets without children)."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ValLabelsError(
            "reading meta.mat needs scipy: `.venv/bin/pip install -e '.[devkit]'` in the clone"
        ) from None
    try:
        with FileSystems.open(path) as f:
            data = f.read()
    except OSError as e:  # Beam's filesystems raise subclasses of IOError for a missing file
        raise ValLabelsError(f"--meta {path}: cannot be read ({type(e).__name__})") from None
    try:
        synsets = loadmat(io.BytesIO(data), squeeze_me=True)["synsets"]
    except Exception as e:  # scipy's MatReadError and friends: not a .mat, or another one
        raise ValLabelsError(
            f"{path}: not the devkit's meta.mat (a 'synsets' struct): {type(e).__name__}: {e}"
        ) from None
    try:
        rows = [
            (int(s["ILSVRC2012_ID"]), str(s["WNID"]), int(s["num_children"]))
            for s in synsets.ravel()
        ]
    except (ValueError, KeyError, IndexError) as e:
        raise ValLabelsError(
            f"{path}: its synsets lack ILSVRC2012_ID, WNID or num_children ({e})"
        ) from None
    leaves = sorted((i, wnid) for i, wnid, children in rows if children == 0)
    ids = [i for i, _ in leaves]
    if ids != list(range(1, len(ids) + 1)):
        raise ValLabelsError(f"{path}: the classes' ILSVRC2012_IDs are not 1..{len(ids)}")
    wnids = [wnid for _, wnid in leaves]
    repeated = sorted({w for w in wnids if wnids.count(w) > 1})
    if repeated:
        raise ValLabelsError(f"{path}: WNIDs listed twice: {', '.join(repeated[:5])}")
    return wnids


def read_devkit_ground_truth(path: str, meta_synsets: Sequence[str]) -> dict[str, str]:
    """ILSVRC2012_validation_ground_truth.txt: line i holds the meta.mat id of image i."""
    labels = {}
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        text = line.strip()
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= len(meta_synsets):
            raise ValLabelsError(
                f"{path} line {number}: {text!r} is not a class id 1..{len(meta_synsets)}"
            )
        labels[f"ILSVRC2012_val_{number:08d}"] = meta_synsets[int(text) - 1]
    return labels


def _is_folder(path: str) -> bool:
    if "://" not in path:
        return os.path.isdir(path)
    return bool(FileSystems.match([FileSystems.join(path, "*")], limits=[1])[0].metadata_list)


def read_val_labels(source: str, meta: str | None = None) -> dict[str, str]:
    """Image id -> synset from any of the three forms (a folder: XML; `*.csv`: Kaggle's; else
    the devkit's ground truth, which needs `meta`)."""
    if _is_folder(source):
        return read_xml_folder(source)
    if not FileSystems.exists(source):
        raise ValLabelsError(f"{source}: not found")
    if source.lower().endswith(".csv"):
        return read_kaggle_csv(source)
    if meta is None:
        raise ValLabelsError(
            f"{source}: the devkit's ground truth numbers classes in meta.mat's order, not the "
            "sorted-synset order of the train ids; pass --meta ILSVRC2012_devkit_t12/data/meta.mat "
            "to map them"
        )
    return read_devkit_ground_truth(source, read_meta_mat(meta))


def train_vocabulary(path: str) -> list[str]:
    """The train split's class names in id order: its labels.txt, or the train output folder
    (its labels.txt)."""
    if not path.endswith(".txt"):
        path = FileSystems.join(path.rstrip("/"), "labels.txt")
    if not FileSystems.exists(path):
        raise ValLabelsError(f"{path}: not found (give the train output folder or its labels.txt)")
    names = [line.strip() for line in _read_text(path).splitlines() if line.strip()]
    if not names:
        raise ValLabelsError(f"{path}: no class names")
    if not all(_SYNSET.match(n) for n in names):
        odd = [n for n in names if not _SYNSET.match(n)]
        raise ValLabelsError(
            f"{path}: the train labels are not WordNet synsets (e.g. {_shown(odd)}); the "
            "validation classes are synsets, so the train split must be converted with "
            "synset labels (class folders, or a list of synsets) to share its ids"
        )
    return names


def check_vocabulary(
    labels: Mapping[str, str], vocabulary: Sequence[str], allow_missing: bool = False
) -> None:
    """Refuses validation classes outside the train vocabulary, and (unless allow_missing)
    train classes that no validation image has."""
    known = set(vocabulary)
    found = set(labels.values())
    unknown = found - known
    if unknown:
        raise ValLabelsError(
            f"{len(unknown)} validation classes are not in the train vocabulary of "
            f"{len(vocabulary)}: {_shown(unknown)}"
        )
    missing = known - found
    if missing and not allow_missing:
        raise ValLabelsError(
            f"{len(missing)} of the {len(vocabulary)} train classes have no validation image: "
            f"{_shown(missing)} (--allow-missing-classes accepts it)"
        )


def match_images(images: Mapping[str, str], labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """(file name, synset) of every image, in file-name order; refuses images without a label
    and labels without an image."""
    unlabelled = set(images) - set(labels)
    if unlabelled:
        raise ValLabelsError(f"{len(unlabelled)} images have no label: {_shown(unlabelled)}")
    absent = set(labels) - set(images)
    if absent:
        raise ValLabelsError(
            f"{len(absent)} labelled images are not in the folder: {_shown(absent)}"
        )
    return sorted((images[i], labels[i]) for i in images)
