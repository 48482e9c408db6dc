"""The trainer where jobs really stop and store: a non-local model dir, SIGTERM, fp16 loss-scale
skips, resumed input order, a resume with another global batch."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from helpers import convert, sorted_dataset
from imgshard.trainer.checkpoint import CheckpointMismatch
from imgshard.trainer.input_pipeline import ReaderSettings, files_read, record_dataset
from imgshard.trainer.train import PREEMPTED_EXIT, main
from imgshard.trainer.train import run as train

TRAIN = os.path.join(os.path.dirname(sys.executable), "imgshard-train")
TINY = ["--image-size", "32", "--alpha", "0.25", "--batch-size", "8", "--log-every", "2"]
TINY += ["--shuffle-buffer", "64", "--cycle-length", "2", "--epochs", "1"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("resilience")
    list_path = sorted_dataset(str(root / "images"), classes=4, per_class=16)
    out = root / "shards"
    convert(list_path, out, "--num-shards", "8", "--resize", "shorter:32", "--allow-upscale")
    return str(out)


def test_a_model_dir_on_a_non_local_filesystem_gets_every_file(shards, tmp_path, monkeypatch):
    # TensorFlow's ram:// filesystem: a built-in open() of any of these paths would fail
    monkeypatch.chdir(tmp_path)
    model_dir = "ram://imgshard-test/run"
    result = train(["--data", shards, "--model-dir", model_dir, "--steps-per-epoch", "3", *TINY])
    assert result["steps"] == 3
    written = json.loads(tf.io.gfile.GFile(f"{model_dir}/result.json").read())
    assert written["steps"] == 3 and "top5" in written["history"]
    assert tf.io.gfile.exists(f"{model_dir}/checkpoint/checkpoint.weights.h5")
    assert tf.io.gfile.glob(f"{model_dir}/logs/train/events*")
    served = tf.saved_model.load(f"{model_dir}/export").signatures["serving_default"]
    assert served(image_bytes=tf.constant([_a_jpeg()]))["probabilities"].shape == (1, 4)
    assert os.listdir(tmp_path) == []  # nothing landed on the local disk as "ram:/..."

    again = main(["--data", shards, "--model-dir", model_dir, "--steps-per-epoch", "3", *TINY])
    assert again == 2  # the finished run is recognized from its checkpoint there


def _a_jpeg():
    from helpers import jpeg

    return jpeg(40, 30)


def test_fp16_loss_scale_skips_still_count_as_steps(shards, tmp_path):
    result = train(
        [
            "--data",
            shards,
            "--model-dir",
            str(tmp_path / "run"),
            "--steps-per-epoch",
            "12",
            "--precision",
            "mixed_float16",
            "--no-export",
            *TINY,
        ]
    )
    optimizer = result["model"].optimizer
    # the loss scale fell from 2**15: some steps overflowed and were skipped...
    assert float(optimizer.dynamic_scale.numpy()) < 2.0**15
    # ...and the run still stopped at exactly the planned step
    assert result["steps"] == 12
    assert json.loads((tmp_path / "run" / "result.json").read_text())["steps"] == 12


def test_resume_with_another_global_batch_is_refused(shards, tmp_path):
    model_dir = str(tmp_path / "run")
    flags = ["--data", shards, "--model-dir", model_dir, "--no-export", *TINY]
    first = train([*flags, "--epochs", "2", "--steps-per-epoch", "2", "--checkpoint-every", "1"])
    assert first["steps"] == 4
    (tmp_path / "run" / "result.json").unlink()
    with pytest.raises(CheckpointMismatch, match="global batch 8, this run has 16"):
        train([*flags, "--epochs", "3", "--steps-per-epoch", "2", "--batch-size", "16"])


def test_a_resumed_input_continues_the_file_order_where_it_stopped(shards):
    files = sorted(tf.io.gfile.glob(shards + "/train-*.tfrecord"))
    settings = ReaderSettings(cycle_length=1, shuffle_buffer=1, seed=3)
    spec = {"image/filename": tf.io.FixedLenFeature([], tf.string)}

    def names(dataset, count):
        return [
            tf.io.parse_single_example(r, spec)["image/filename"].numpy()
            for r in dataset.take(count)
        ]

    whole = names(record_dataset(files, settings, repeat=True), 3 * 64)
    holder = {}  # record name -> its file
    for path in files:
        holder.update({name: path for name in names(tf.data.TFRecordDataset(path), 64)})
    file_order = [holder[whole[0]]]
    for name in whole:
        if holder[name] != file_order[-1]:
            file_order.append(holder[name])
    per_file = 64 / len(files)  # 8 records a file on average
    # killed after 5 steps of 8 records: 40 records, 5 files' worth
    skip = files_read(5, 8, None, per_file)
    assert skip == 5
    done = sum(1 for name in whole[:64] if holder[name] in file_order[:5])
    resumed = names(record_dataset(files, settings, repeat=True, skip_files=skip), 64)
    assert resumed == whole[done : done + 64]  # epoch 0's rest, then epoch 1, as uninterrupted
    assert resumed[:8] != whole[:8]  # not a replay of the start of epoch 0
    # two replicas on one input pipeline read twice as much per step
    context = tf.distribute.InputContext(num_input_pipelines=1, num_replicas_in_sync=2)
    assert files_read(5, 8, context, per_file) == 10
    assert files_read(0, 8, context, per_file) == 0


@pytest.mark.slow
def test_sigterm_checkpoints_exits_and_the_rerun_resumes(shards, tmp_path):
    model_dir = tmp_path / "run"
    args = [TRAIN, "--data", shards, "--model-dir", str(model_dir), "--no-export", *TINY]
    args += ["--epochs", "40", "--steps-per-epoch", "8", "--checkpoint-every", "4"]
    state = model_dir / "checkpoint" / "checkpoint.json"
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not state.exists() and first.poll() is None:
            time.sleep(0.05)
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == PREEMPTED_EXIT, err[-3000:]
    stopped_at = json.loads(state.read_text())["step"]
    assert f"stopped by SIGTERM at step {stopped_at}" in err
    assert 4 <= stopped_at < 320 and not (model_dir / "result.json").exists()

    second = subprocess.run(
        [*args[:-6], "--epochs", "2", "--steps-per-epoch", "8", "--checkpoint-every", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if stopped_at >= 16:
        pytest.fail(f"SIGTERM came too late to test the resume (step {stopped_at})")
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resumed from the checkpoint at step {stopped_at} of 16" in second.stderr
    assert json.loads((model_dir / "result.json").read_text())["steps"] == 16
