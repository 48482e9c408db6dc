"""`imgshard convert` settings: the flags, and the validated frozen config they become.

Only the job's own flags live here; every other flag (runner, workers, project, ...) is
passed straight to Beam's PipelineOptions.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field

from imgshard.transforms.image import ImageSpec, ResizeSpec, parse_resize
from imgshard.transforms.index import detect_kind

__all__ = ["ConvertConfig", "add_convert_arguments", "config_from_args"]

SHUFFLE_MODES = ("global", "none")
FORMATS = ("tfrecord", "array_record")
LABEL_KINDS = ("auto", "int", "name")


@dataclass(frozen=True)
class ConvertConfig:
    """Everything that decides the bytes of the output.

    Attributes:
      input: a `path label` list, a CSV with a header, or a folder `root/<class>/<image>`.
      output: the output folder (local or gs://).
      image_root: what relative paths in the list resolve against (default: the list's folder).
      input_kind: "list", "csv" or "folder" (detected from the input when not given).
      split: file-name prefix of the shards and the rejected report.
      num_shards: shard count; 0 chooses one for ~150 MB files.
      seed: the shuffle seed; same inputs and seed give byte-identical shards.
      shuffle: "global" (keyed shuffle) or "none" (list order, to demonstrate the bug).
      image: decode/resize/encode settings.
      label_kind: "auto", "int" (labels are ids) or "name" (labels are class names).
      labels_file: optional class-name vocabulary, one per line in id order.
      label_offset: added to the 0-based ids written to the records (1 for TF-slim/TPU).
      max_int_labels: the largest integer-label vocabulary accepted (0: 10x the distinct
        labels, at least 1000); guards against one stray label such as 20190101.
      path_column, label_column: CSV column names (default: detected from the header).
      max_reject_fraction: fail the run (after writing everything) above this share of rejects.
      overwrite: replace an existing output of this split.
      resume: continue an interrupted run of the same configuration into `output`, keeping
        the shards it finished (pipeline/journal.py); starts afresh into an empty output.
      allow_outside_root: accept list paths that resolve outside `image_root` (`..`, other
        absolute paths, symlinks leading out of it); rejected by default.
      analyze: compute dataset statistics with tf.Transform and write {output}/transform_fn.
      analyze_image_size: the model input size baked into the transform_fn's preprocessing.
      boxes: a folder of ILSVRC bbox XML files or process_bounding_boxes.py's CSV; the boxes
        are written into the records (image/object/bbox/*). None: no box features.
      index_files: write a random-access index `{shard}.idx` beside each TFRecord shard.
      format: "tfrecord" or "array_record" (needs the array-record extra).
    """

    input: str
    output: str
    image_root: str = ""
    input_kind: str = ""
    split: str = "train"
    num_shards: int = 0
    seed: int = 0
    shuffle: str = "global"
    image: ImageSpec = field(default_factory=ImageSpec)
    label_kind: str = "auto"
    labels_file: str | None = None
    label_offset: int = 0
    max_int_labels: int = 0
    path_column: str | None = None
    label_column: str | None = None
    max_reject_fraction: float = 0.001
    overwrite: bool = False
    resume: bool = False
    allow_outside_root: bool = False
    analyze: bool = False
    analyze_image_size: int = 224
    boxes: str | None = None
    index_files: bool = False
    format: str = "tfrecord"

    def __post_init__(self):
        if not self.input:
            raise ValueError("--input is required: a list file, a CSV or a class-folder tree")
        if not self.output:
            raise ValueError("--output is required: the folder the shards are written to")
        set_default = object.__setattr__
        set_default(self, "input", _absolute(self.input))
        set_default(self, "output", _absolute(self.output).rstrip("/") or "/")
        if not self.input_kind:
            set_default(self, "input_kind", detect_kind(self.input))
        if not self.image_root:
            root = self.input if self.input_kind == "folder" else _parent(self.input)
            set_default(self, "image_root", root)
        set_default(self, "image_root", _absolute(self.image_root).rstrip("/") or "/")
        if self.num_shards < 0 or self.num_shards > 99_999:
            raise ValueError(f"--num-shards must be 0 (auto) to 99999, got {self.num_shards}")
        if self.shuffle not in SHUFFLE_MODES:
            raise ValueError(f"--shuffle must be one of {SHUFFLE_MODES}, got {self.shuffle!r}")
        if self.label_kind not in LABEL_KINDS:
            raise ValueError(f"--label-kind must be one of {LABEL_KINDS}, got {self.label_kind!r}")
        if not 0 <= self.max_reject_fraction <= 1:
            raise ValueError(
                f"--max-reject-fraction must be within 0..1, got {self.max_reject_fraction}"
            )
        if self.max_int_labels < 0:
            raise ValueError(f"--max-int-labels must be >= 0 (0: auto), got {self.max_int_labels}")
        if self.label_offset < 0:
            raise ValueError(f"--label-offset must be >= 0, got {self.label_offset}")
        if self.analyze_image_size < 1:
            raise ValueError(f"--analyze-image-size must be >= 1, got {self.analyze_image_size}")
        if self.overwrite and self.resume:
            raise ValueError("--overwrite and --resume exclude each other: replace, or continue")
        if self.boxes:
            set_default(self, "boxes", _absolute(self.boxes).rstrip("/") or "/")
        if self.format not in FORMATS:
            raise ValueError(f"--format must be one of {FORMATS}, got {self.format!r}")
        if self.format == "array_record":
            from imgshard.transforms import array_record_output

            if not array_record_output.available():  # fail here, not in every worker
                raise ValueError(f"--format array_record: {array_record_output.MISSING_PACKAGE}")
        if self.index_files and self.format != "tfrecord":
            raise ValueError(
                "--index-files is for TFRecord shards; ArrayRecord files hold their own index"
            )
        if not self.split or "/" in self.split or self.split.startswith("."):
            raise ValueError(f"--split must be a plain file-name prefix, got {self.split!r}")

    def to_json_dict(self) -> dict:
        """The settings that decide the output's bytes, for dataset.json.

        Paths and numbers only, nothing secret. The output folder itself is left out, so an
        output copied elsewhere (e.g. to gs://) still describes itself correctly.
        """
        settings = asdict(self)
        for run_only in ("output", "overwrite", "resume", "max_reject_fraction"):
            del settings[run_only]
        del settings["max_int_labels"]  # decides whether the run goes ahead, not its bytes
        settings["image"] = {**settings["image"], "resize": str(self.image.resize)}
        return settings


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "://" in path else os.path.dirname(path)


def _background(text: str) -> tuple[int, int, int]:
    try:
        value = text.lstrip("#")
        if len(value) != 6:
            raise ValueError
        return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--background takes RRGGBB hex, got {text!r}") from None


def _resize(text: str) -> ResizeSpec:
    try:
        return parse_resize(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        required=True,
        help="list file ('path label' lines), CSV with a header, or a folder "
        "root/<class>/<image>; local or gs://",
    )
    parser.add_argument("--output", required=True, help="output folder, local or gs://")
    parser.add_argument(
        "--image-root",
        default="",
        help="folder relative list paths resolve against (default: the list's)",
    )
    parser.add_argument(
        "--input-kind",
        choices=("list", "csv", "folder"),
        default="",
        help="override the detected input kind",
    )
    parser.add_argument("--split", default="train", help="shard name prefix (default: train)")
    parser.add_argument(
        "--num-shards",
        type=int,
        default=0,
        help="number of shards (default: 0 = automatic, ~150 MB each)",
    )
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default: 0)")
    parser.add_argument(
        "--shuffle",
        choices=SHUFFLE_MODES,
        default="global",
        help="'global' (default) or 'none': list order, only to show the bug",
    )
    parser.add_argument(
        "--resize",
        type=_resize,
        default=ResizeSpec("shorter", 256, 256),
        help="shorter:S (default shorter:256), longer:S, fixed:WxH or none",
    )
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (default: 90)")
    parser.add_argument(
        "--allow-upscale",
        action="store_true",
        help="let shorter:/longer: enlarge small images (default: never)",
    )
    parser.add_argument(
        "--keep-grayscale",
        action="store_true",
        help="write grayscale images with 1 channel (default: convert to RGB)",
    )
    parser.add_argument(
        "--background",
        type=_background,
        default=(255, 255, 255),
        help="RRGGBB that transparent pixels are composited on (default: ffffff)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=100_000_000,
        help="reject images over this many pixels, from the header alone",
    )
    parser.add_argument(
        "--label-kind",
        choices=LABEL_KINDS,
        default="auto",
        help="labels are ids ('int'), class names ('name') or detect ('auto')",
    )
    parser.add_argument(
        "--labels",
        dest="labels_file",
        default=None,
        help="class names, one per line in id order; names outside it are rejected",
    )
    parser.add_argument(
        "--label-offset",
        type=int,
        default=0,
        help="added to written label ids (1 for the TF-slim/TPU convention)",
    )
    parser.add_argument(
        "--max-int-labels",
        type=int,
        default=0,
        help="largest integer-label vocabulary accepted (default 0: 10x the distinct labels, "
        "at least 1000)",
    )
    parser.add_argument("--path-column", default=None, help="CSV column holding the path")
    parser.add_argument("--label-column", default=None, help="CSV column holding the label")
    parser.add_argument(
        "--max-reject-fraction",
        type=float,
        default=0.001,
        help="exit non-zero when more inputs than this are rejected (default: 0.001)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output of this split"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run of the same settings, keeping its verified shards",
    )
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept list paths outside --image-root ('..', absolute, symlinks out of it)",
    )
    parser.add_argument(
        "--analyze",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="tf.Transform statistics and serving preprocessing in {output}/transform_fn "
        "(needs imgshard[tf]; off by default: it costs seconds of TensorFlow start-up)",
    )
    parser.add_argument(
        "--analyze-image-size",
        type=int,
        default=224,
        help="model input size of the transform_fn preprocessing (default 224)",
    )
    parser.add_argument(
        "--boxes",
        default=None,
        help="ILSVRC bounding boxes: a folder of Pascal-VOC XML files or the CSV of "
        "process_bounding_boxes.py; written as image/object/bbox/* (matched by file name)",
    )
    parser.add_argument(
        "--index-files",
        action="store_true",
        help="write {shard}.idx (offset length per record) beside each shard, for DALI and "
        "the tfrecord package",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="tfrecord",
        help="shard file format (default tfrecord; array_record needs the array-record "
        "extra: `.venv/bin/pip install -e '.[array-record]'` in the clone)",
    )


def config_from_args(args: argparse.Namespace) -> ConvertConfig:
    image = ImageSpec(
        resize=args.resize,
        quality=args.quality,
        allow_upscale=args.allow_upscale,
        keep_grayscale=args.keep_grayscale,
        background=args.background,
        max_pixels=args.max_pixels,
    )
    return ConvertConfig(
        input=args.input,
        output=args.output,
        image_root=args.image_root,
        input_kind=args.input_kind,
        split=args.split,
        num_shards=args.num_shards,
        seed=args.seed,
        shuffle=args.shuffle,
        image=image,
        label_kind=args.label_kind,
        labels_file=args.labels_file,
        label_offset=args.label_offset,
        max_int_labels=args.max_int_labels,
        path_column=args.path_column,
        label_column=args.label_column,
        max_reject_fraction=args.max_reject_fraction,
        overwrite=args.overwrite,
        resume=args.resume,
        allow_outside_root=args.allow_outside_root,
        analyze=args.analyze,
        analyze_image_size=args.analyze_image_size,
        boxes=args.boxes,
        index_files=args.index_files,
        format=args.format,
    )
