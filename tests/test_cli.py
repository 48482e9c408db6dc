"""The `imgshard` console script as a user runs it: default local runner, output, exit codes."""

import subprocess
import sys

import pytest

from helpers import IMGSHARD, shard_files, sorted_dataset


def imgshard(*args, cwd=None):
    return subprocess.run([IMGSHARD, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_convert_on_all_cores_prints_a_summary_and_nothing_alarming(tmp_path):
    # 1,000 inputs: enough for the default to run one worker thread per core
    list_path = sorted_dataset(str(tmp_path / "d"), classes=10, per_class=100)
    done = imgshard(
        "convert", "--input", list_path, "--output", str(tmp_path / "out"), "--num-shards", "4"
    )
    assert done.returncode == 0, done.stderr
    assert "1,000 records in 4 shards" in done.stdout
    assert "records_written=1,000" in done.stdout  # Beam counters, read back from the workers
    assert len(shard_files(str(tmp_path / "out"))) == 4
    for noise in ("WARN", "Traceback", "Prism", "semi_persistent"):
        assert noise not in done.stderr, done.stderr


def test_exit_codes_and_messages(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=3)
    with open(list_path, "a") as f:
        f.write("not/there.jpg 0\n")
    in_process = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
    out = str(tmp_path / "out")
    failed = imgshard("convert", "--input", list_path, "--output", out, *in_process)
    assert failed.returncode == 1
    assert "1 of 7 inputs (14.29%) were rejected" in failed.stderr
    assert "missing_file" in failed.stdout  # the summary is still printed
    refused = imgshard("convert", "--input", list_path, "--output", out, *in_process)
    assert refused.returncode == 1 and "--overwrite" in refused.stderr
    bad_flag = imgshard("convert", "--input", list_path, "--output", out, "--resize", "big")
    assert bad_flag.returncode == 2 and "shorter:S" in bad_flag.stderr
    missing = imgshard("convert", "--input", str(tmp_path / "nope.txt"), "--output", out)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert imgshard("frobnicate").returncode == 2
    assert "convert" in imgshard("--help").stdout


def test_shuffle_none_warns_loudly(tmp_path):
    list_path = sorted_dataset(str(tmp_path / "d"), classes=2, per_class=3)
    done = imgshard(
        "convert",
        "--input",
        list_path,
        "--output",
        str(tmp_path / "out"),
        "--shuffle",
        "none",
        "--direct_num_workers=1",
        "--direct_running_mode=in_memory",
    )
    assert done.returncode == 0
    assert "LIST ORDER" in done.stderr and "never train on this output" in done.stderr


def test_beam_workers_do_not_import_tensorflow():
    # What a worker process loads to run our DoFns, and what the warm worker process loads
    # before it forks them (pipeline/worker_zygote.py); TensorFlow would cost seconds.
    code = (
        "import sys, importlib, imgshard.pipeline.graph, imgshard.pipeline.shard_writer; "
        "from imgshard.pipeline.worker_zygote import PRELOAD; "
        "[importlib.import_module(m) for m in PRELOAD]; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_local_runs_get_the_mode_of_their_expected_work_unless_flags_choose_one():
    # The choice itself: tests/test_local_mode.py
    from apache_beam.options.pipeline_options import DirectOptions

    from imgshard.pipeline.convert import pipeline_options
    from imgshard.pipeline.local_mode import LocalWork, cores

    tiny, huge = LocalWork(10, 0.001), LocalWork(200_000, 0.006)
    parallel = (0, "multi_processing") if cores() > 1 else (1, "in_memory")

    def mode(args, work):
        direct = pipeline_options(args, work).view_as(DirectOptions)
        return direct.direct_num_workers, direct.direct_running_mode

    assert mode([], tiny) == (1, "in_memory")
    assert mode([], huge) == parallel
    assert mode([], None) == parallel  # nothing estimated: the large default
    # workers asked for: processes, never threads unless named (local_mode.AUTOMATIC_MODES)
    assert mode(["--direct_num_workers=2"], tiny) == (2, "multi_processing")
    assert mode(["--direct_running_mode=multi_threading"], tiny) == (0, "multi_threading")
    assert mode(["--direct_num_workers=3"], huge) == (3, "multi_processing")
    assert mode(["--direct_running_mode=in_memory"], huge) == (1, "in_memory")
    assert mode(["--direct_running_mode=multi_processing"], tiny) == (0, "multi_processing")


def test_the_command_exits_fast_only_when_no_child_process_is_left(tmp_path):
    """`imgshard` skips the interpreter's teardown (os._exit) only with no child alive: a
    subprocess child (FlinkRunner's job server JVM) is stopped by an exit handler, which the
    fast exit would skip, leaving it running after every submit."""
    script = tmp_path / "children.py"
    script.write_text(
        "import subprocess\n"
        "from imgshard.pipeline.cli import _child_processes_alive as alive\n"
        "states = [alive()]\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        "states.append(alive())\n"
        "child.kill(); child.wait()\n"
        "states.append(alive())\n"
        "print(states)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.stdout.strip() == "[False, True, False]", done.stderr
