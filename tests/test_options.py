"""`imgshard convert` settings: one declaration makes the flags, the config and the writer's."""

import argparse
import dataclasses

import pytest

from imgshard.pipeline.convert import _given_local_mode_flags
from imgshard.pipeline.options import (
    ConvertConfig,
    Flag,
    add_convert_arguments,
    config_from_args,
    setting,
    writer_config,
)
from imgshard.pipeline.shard_writer import WriterConfig
from imgshard.transforms.image import ImageSpec, ResizeSpec

# The command-line contract: renaming a ConvertConfig or ImageSpec field must not rename a flag.
FLAGS = [
    "--input",
    "--output",
    "--image-root",
    "--input-kind",
    "--split",
    "--num-shards",
    "--seed",
    "--shuffle",
    "--resize",
    "--quality",
    "--allow-upscale",
    "--keep-grayscale",
    "--background",
    "--max-pixels",
    "--label-kind",
    "--labels",
    "--label-offset",
    "--max-int-labels",
    "--path-column",
    "--label-column",
    "--max-reject-fraction",
    "--overwrite",
    "--resume",
    "--allow-outside-root",
    "--analyze",
    "--no-analyze",
    "--analyze-image-size",
    "--boxes",
    "--index-files",
    "--format",
]


def parser():
    made = argparse.ArgumentParser(allow_abbrev=False)
    add_convert_arguments(made)
    return made


def parse(*argv):
    return config_from_args(parser().parse_args(["--input", "/d/l.txt", "--output", "/o", *argv]))


def test_every_setting_has_its_flag_in_order():
    names = [s for a in parser()._actions for s in a.option_strings if s not in ("-h", "--help")]
    assert names == FLAGS


def test_no_flags_give_the_configs_own_defaults():
    assert parse() == ConvertConfig(input="/d/l.txt", output="/o")


def test_each_flag_sets_its_field():
    config = parse(
        *("--image-root", "/img", "--input-kind", "csv", "--split", "val", "--num-shards", "7"),
        *("--seed", "9", "--shuffle", "none", "--resize", "fixed:20x10", "--quality", "70"),
        *("--allow-upscale", "--keep-grayscale", "--background", "102030", "--max-pixels", "99"),
        *("--label-kind", "name", "--labels", "/c.txt", "--label-offset", "1"),
        *("--max-int-labels", "5", "--path-column", "p", "--label-column", "l"),
        *("--max-reject-fraction", "0.5", "--resume", "--allow-outside-root", "--analyze"),
        *("--analyze-image-size", "32", "--boxes", "/b", "--index-files"),
    )
    assert config == ConvertConfig(
        input="/d/l.txt",
        output="/o",
        image_root="/img",
        input_kind="csv",
        split="val",
        num_shards=7,
        seed=9,
        shuffle="none",
        image=ImageSpec(ResizeSpec("fixed", 20, 10), 70, True, True, (0x10, 0x20, 0x30), 99),
        label_kind="name",
        labels_file="/c.txt",
        label_offset=1,
        max_int_labels=5,
        path_column="p",
        label_column="l",
        max_reject_fraction=0.5,
        resume=True,
        allow_outside_root=True,
        analyze=True,
        analyze_image_size=32,
        boxes="/b",
        index_files=True,
    )
    assert parse("--overwrite").overwrite and not parse("--no-analyze").analyze


def test_bad_values_are_refused_by_the_flags_parser(capsys):
    for argv in (["--num-shards", "x"], ["--shuffle", "random"], ["--background", "fff"]):
        with pytest.raises(SystemExit):
            parse(*argv)
    assert "--background takes RRGGBB hex" in capsys.readouterr().err


def test_a_setting_without_a_flag_or_a_parser_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Unflagged:
        plain: int = 0

    @dataclasses.dataclass(frozen=True)
    class Unparsed:
        odd: tuple = setting((), help="no parser for a tuple")

    from imgshard.pipeline import options

    with pytest.raises(TypeError, match="without a flag"):
        list(options._settings(Unflagged))
    with pytest.raises(TypeError, match="needs parse="):
        for f, kind, flag in options._settings(Unparsed):
            options._argument(f, kind, flag)
    assert Flag("x").name == ""  # default: --field-name


def test_the_writer_gets_the_run_settings_of_the_same_names():
    config = parse(
        *("--split", "val", "--label-offset", "2", "--resume", "--allow-outside-root"),
        *("--boxes", "/b", "--index-files", "--analyze", "--quality", "60"),
    )
    writer = writer_config(config, "f" * 64)
    copied = {f.name for f in dataclasses.fields(WriterConfig)} - {
        "summaries",
        "boxes",
        "fingerprint",
    }
    assert copied == {
        "output",
        "split",
        "image_root",
        "image",
        "label_offset",
        "allow_outside_root",
        "resume",
        "index_files",
        "format",
    }
    for name in copied:
        assert getattr(writer, name) == getattr(config, name), name
    assert (writer.summaries, writer.boxes, writer.fingerprint) == (True, True, "f" * 64)
    plain = writer_config(parse(), "")
    assert (plain.summaries, plain.boxes, plain.resume, plain.label_offset) == (
        False,
        False,
        False,
        0,
    )


@pytest.mark.parametrize(
    "beam_args, given",
    [
        ([], set()),
        (["--runner=DirectRunner"], {"runner"}),
        (["--runner", "DirectRunner"], {"runner"}),
        (["--direct_num_workers", "1"], {"direct_num_workers"}),  # given, though the default
        (["--direct_running_mode=in_memory", "--project=p"], {"direct_running_mode"}),
        (["--job_name", "runner", "--runner_v2"], set()),  # neither a value nor a longer flag
    ],
)
def test_the_local_mode_flags_a_user_gave_are_known_without_their_defaults(beam_args, given):
    assert _given_local_mode_flags(beam_args) == given


def test_a_given_worker_count_is_kept_in_either_spelling():
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    from imgshard.pipeline.convert import LOCAL_RUNNER, pipeline_options
    from imgshard.pipeline.local_mode import LocalWork, cores, local_running_mode

    big, small = LocalWork(10**6, 0.006), LocalWork(10, 0.006)
    _, chosen = local_running_mode(big, cores())  # worker processes, given 2 cores or more
    for args in (["--direct_num_workers", "1"], ["--direct_num_workers=1"]):
        options = pipeline_options(args, big)
        direct = options.view_as(DirectOptions)
        assert (direct.direct_num_workers, direct.direct_running_mode) == (1, chosen)
    given_runner = pipeline_options(["--runner", "PrismRunner"], small)
    assert given_runner.view_as(StandardOptions).runner == "PrismRunner"
    assert pipeline_options([], small).view_as(StandardOptions).runner == LOCAL_RUNNER


def test_dataset_json_settings_are_the_fields_that_decide_the_bytes():
    settings = parse("--resize", "longer:64").to_json_dict()
    assert list(settings) == [
        "input",
        "image_root",
        "input_kind",
        "split",
        "num_shards",
        "seed",
        "shuffle",
        "image",
        "label_kind",
        "labels_file",
        "label_offset",
        "path_column",
        "label_column",
        "allow_outside_root",
        "analyze",
        "analyze_image_size",
        "boxes",
        "index_files",
        "format",
    ]
    assert settings["image"] == {
        "resize": "longer:64",
        "quality": 90,
        "allow_upscale": False,
        "keep_grayscale": False,
        "background": (255, 255, 255),
        "max_pixels": 100_000_000,
    }


def test_the_run_identity_ignores_only_the_settings_that_leave_the_shards_alone():
    plain = parse().shard_settings()
    assert set(parse().to_json_dict()) - set(plain) == {"analyze", "analyze_image_size"}
    assert parse("--analyze", "--analyze-image-size", "32").shard_settings() == plain
    assert parse("--seed", "1").shard_settings() != plain
    assert parse("--max-reject-fraction", "0.5").shard_settings() == plain  # run_only
