"""`imgshard convert` settings, each declared once: a ConvertConfig field (its name, type and
default) carrying its flag (`setting(...)`: help text, choices, parser). The argparse flags,
the validated frozen config and the shard writer's settings (`writer_config`) are all made
from those fields, and dataset.json's `settings` are those fields less the ones marked
`run_only`. A new setting is one field of ConvertConfig (or one of ImageSpec and its
IMAGE_FLAGS entry).

Only the job's own flags live here; every other flag (runner, workers, project, ...) is
passed straight to Beam's PipelineOptions.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields

from imgshard.pipeline.shard_writer import WriterConfig
from imgshard.transforms.image import ImageSpec, ResizeSpec, parse_resize
from imgshard.transforms.index import detect_kind
from imgshard.transforms.shard_names import EXTENSIONS, MAX_SHARDS

__all__ = [
    "ConvertConfig",
    "Flag",
    "add_convert_arguments",
    "config_from_args",
    "writer_config",
]

SHUFFLE_MODES = ("global", "none")
FORMATS = tuple(EXTENSIONS)
LABEL_KINDS = ("auto", "int", "name")


@dataclass(frozen=True)
class Flag:
    """How a setting is given on the command line. Its dest, type and default are the field's:
    bool fields are switches, int/float fields are converted, str fields are taken as given.

    Attributes:
      help: the --help text.
      name: the flag, when it is not `--field-name`.
      parse: converts the text, for fields of other types (raise ArgumentTypeError).
      choices: the accepted values.
      negatable: a bool given as --x / --no-x.
    """

    help: str
    name: str = ""
    parse: Callable[[str], object] | None = None
    choices: tuple[str, ...] | None = None
    negatable: bool = False


_FLAG = "imgshard.flag"  # field metadata key: the field's Flag
_NESTED = "imgshard.flags"  # field metadata key: a settings dataclass, its fields' Flags
_RUN_ONLY = "imgshard.run_only"  # field metadata key: left out of dataset.json
_NOT_IN_SHARDS = "imgshard.not_in_shards"  # field metadata key: left out of the run identity


def setting(
    default=MISSING, *, run_only: bool = False, not_in_shards: bool = False, **flag
) -> typing.Any:
    """A ConvertConfig field with its flag (keyword arguments of Flag); no default: required.

    run_only: the setting decides how or whether the run goes ahead, not the output's bytes,
      so dataset.json (and the run's identity) leave it out.
    not_in_shards: the setting changes other files than the shards, so a --resume with
      another value may keep the shards (shard_settings leaves it out).
    """
    metadata = {_FLAG: Flag(**flag), _RUN_ONLY: run_only, _NOT_IN_SHARDS: not_in_shards}
    return field(default=default, metadata=metadata)


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


# The flags of ImageSpec's fields (transforms/image.py declares their types and defaults).
IMAGE_FLAGS = {
    "resize": Flag("shorter:S (default shorter:256), longer:S, fixed:WxH or none", parse=_resize),
    "quality": Flag("JPEG quality (default: 90)"),
    "allow_upscale": Flag("let shorter:/longer: enlarge small images (default: never)"),
    "keep_grayscale": Flag("write grayscale images with 1 channel (default: convert to RGB)"),
    "background": Flag(
        "RRGGBB that transparent pixels are composited on (default: ffffff)", parse=_background
    ),
    "max_pixels": Flag("reject images over this many pixels, from the header alone"),
}


@dataclass(frozen=True)
class ConvertConfig:
    """Everything that decides the bytes of the output; one field per setting, its flag beside
    it. What each one means beyond its help text:

    Attributes:
      input: a `path label` list, a CSV with a header, or a folder `root/<class>/<image>`.
      image_root: default: the list's folder (the folder itself for a class-folder input).
      input_kind: "list", "csv" or "folder" (detected from the input when not given).
      num_shards: 0 chooses one for ~150 MB files.
      split: also the prefix of the rejected report, `{split}-rejected.jsonl`.
      seed: same inputs and seed give byte-identical shards.
      shuffle: "global" (keyed shuffle) or "none" (list order, to demonstrate the bug).
      image: decode/resize/encode settings (their flags: IMAGE_FLAGS).
      max_int_labels: guards against one stray label such as 20190101.
      path_column, label_column: default: detected from the header.
      max_reject_fraction: checked after writing everything.
      resume: keeps the shards the interrupted run finished (pipeline/journal.py); starts
        afresh into an empty output.
      analyze: compute dataset statistics with tf.Transform and write {output}/transform_fn.
      boxes: None: no box features.
      format: "array_record" needs the array-record extra; "webdataset" writes tars and
        the readers' info files (transforms/webdataset_info.py).
    """

    input: str = setting(
        help="list file ('path label' lines), CSV with a header, or a folder "
        "root/<class>/<image>; local or gs://",
    )
    output: str = setting(help="output folder, local or gs://", run_only=True)
    image_root: str = setting(
        "", help="folder relative list paths resolve against (default: the list's)"
    )
    input_kind: str = setting(
        "", choices=("list", "csv", "folder"), help="override the detected input kind"
    )
    split: str = setting("train", help="shard name prefix (default: train)")
    num_shards: int = setting(0, help="number of shards (default: 0 = automatic, ~150 MB each)")
    seed: int = setting(0, help="shuffle seed (default: 0)")
    shuffle: str = setting(
        "global",
        choices=SHUFFLE_MODES,
        help="'global' (default) or 'none': list order, only to show the bug",
    )
    image: ImageSpec = field(default_factory=ImageSpec, metadata={_NESTED: IMAGE_FLAGS})
    label_kind: str = setting(
        "auto",
        choices=LABEL_KINDS,
        help="labels are ids ('int'), class names ('name') or detect ('auto')",
    )
    labels_file: str | None = setting(
        None,
        name="--labels",
        help="class names, one per line in id order; names outside it are rejected",
    )
    label_offset: int = setting(
        0, help="added to written label ids (1 for the TF-slim/TPU convention)"
    )
    max_int_labels: int = setting(
        0,
        run_only=True,
        help="largest integer-label vocabulary accepted (default 0: 10x the distinct labels, "
        "at least 1000)",
    )
    path_column: str | None = setting(None, help="CSV column holding the path")
    label_column: str | None = setting(None, help="CSV column holding the label")
    max_reject_fraction: float = setting(
        0.001,
        run_only=True,
        help="exit non-zero when more inputs than this are rejected (default: 0.001)",
    )
    overwrite: bool = setting(False, run_only=True, help="replace an existing output of this split")
    resume: bool = setting(
        False,
        run_only=True,
        help="continue an interrupted run of the same settings, keeping its verified shards",
    )
    allow_outside_root: bool = setting(
        False,
        help="accept list paths outside --image-root ('..', absolute, symlinks out of it)",
    )
    analyze: bool = setting(
        False,
        not_in_shards=True,
        negatable=True,
        help="tf.Transform statistics and serving preprocessing in {output}/transform_fn "
        "(needs imgshard[tf]; off by default: it costs seconds of TensorFlow start-up)",
    )
    analyze_image_size: int = setting(
        224,
        not_in_shards=True,
        help="model input size of the transform_fn preprocessing (default 224)",
    )
    boxes: str | None = setting(
        None,
        help="ILSVRC bounding boxes: a folder of Pascal-VOC XML files or the CSV of "
        "process_bounding_boxes.py; written as image/object/bbox/* (matched by file name)",
    )
    index_files: bool = setting(
        False,
        help="write {shard}.idx (offset length per record) beside each shard, for DALI and "
        "the tfrecord package",
    )
    format: str = setting(
        "tfrecord",
        choices=FORMATS,
        help="shard file format (default tfrecord; array_record needs the array-record "
        "extra: `.venv/bin/pip install -e '.[array-record]'` in the clone; webdataset: tar "
        "files of {key}.jpg/.cls/.json for PyTorch readers)",
    )

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
        if self.num_shards < 0 or self.num_shards > MAX_SHARDS:
            raise ValueError(
                f"--num-shards must be 0 (auto) to {MAX_SHARDS}, got {self.num_shards}"
            )
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
                "--index-files is for TFRecord shards; ArrayRecord files hold their own index, "
                "and WebDataset readers index tars themselves (_info.json gives the counts)"
            )
        if self.format == "webdataset" and self.label_offset:
            raise ValueError(
                "--label-offset is for the TF-slim/TPU readers of TFRecords; PyTorch readers "
                "(webdataset, timm) take .cls as the 0-based class index, so WebDataset "
                "shards are written 0-based"
            )
        if not self.split or "/" in self.split or self.split.startswith("."):
            raise ValueError(f"--split must be a plain file-name prefix, got {self.split!r}")

    def to_json_dict(self) -> dict:
        """The settings that decide the output's bytes, for dataset.json.

        Paths and numbers only, nothing secret. The `run_only` settings are left out: the
        output folder itself, so an output copied elsewhere (e.g. to gs://) still describes
        itself correctly, and those deciding whether the run goes ahead, not its bytes.
        """
        settings = asdict(self)
        for f in fields(self):
            if f.metadata.get(_RUN_ONLY):
                del settings[f.name]
        settings["image"] = {**settings["image"], "resize": str(self.image.resize)}
        return settings

    def shard_settings(self) -> dict:
        """The dataset.json settings that decide the shards' bytes (the run's identity)."""
        settings = self.to_json_dict()
        for f in fields(self):
            if f.metadata.get(_NOT_IN_SHARDS):
                del settings[f.name]
        return settings


def _settings(cls: type, flags: Mapping[str, Flag] | None = None) -> Iterator[tuple]:
    """(field, its type, its Flag) of every setting of `cls`; the settings of a nested
    dataclass (ImageSpec) in place of the field that holds them."""
    types = typing.get_type_hints(cls)
    for f in fields(cls):
        if _NESTED in f.metadata:
            yield from _settings(types[f.name], f.metadata[_NESTED])
            continue
        flag = flags[f.name] if flags is not None else f.metadata.get(_FLAG)
        if flag is None:
            raise TypeError(f"{cls.__name__}.{f.name} is a setting without a flag")
        yield f, types[f.name], flag


def _argument(f: dataclasses.Field, kind: object, flag: Flag) -> tuple[str, dict]:
    """The add_argument() call of one setting."""
    options: dict = {"dest": f.name, "help": flag.help}
    if f.default is not MISSING:
        options["default"] = f.default
    elif f.default_factory is not MISSING:
        options["default"] = f.default_factory()
    else:
        options["required"] = True
    if flag.choices:
        options["choices"] = flag.choices
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction if flag.negatable else "store_true"
    elif flag.parse is not None:
        options["type"] = flag.parse
    elif kind in (int, float):
        options["type"] = kind
    elif kind not in (str, str | None):
        raise TypeError(f"the flag of {f.name} ({kind}) needs parse=")
    return flag.name or "--" + f.name.replace("_", "-"), options


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    for f, kind, flag in _settings(ConvertConfig):
        name, options = _argument(f, kind, flag)
        parser.add_argument(name, **options)


def config_from_args(args: argparse.Namespace) -> ConvertConfig:
    types = typing.get_type_hints(ConvertConfig)
    values = {}
    for f in fields(ConvertConfig):
        if _NESTED in f.metadata:
            nested = types[f.name]
            values[f.name] = nested(**{g.name: getattr(args, g.name) for g in fields(nested)})
        else:
            values[f.name] = getattr(args, f.name)
    return ConvertConfig(**values)


def writer_config(config: ConvertConfig, fingerprint: str) -> WriterConfig:
    """What WriteShard needs of the settings: ConvertConfig's fields of the same names, and
    three derived from them or from the run."""
    derived = {
        "summaries": config.analyze,
        "boxes": bool(config.boxes),
        "fingerprint": fingerprint,
    }
    return WriterConfig(
        **{
            f.name: derived[f.name] if f.name in derived else getattr(config, f.name)
            for f in fields(WriterConfig)
        }
    )
