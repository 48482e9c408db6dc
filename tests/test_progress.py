import logging
import os
import time

from imgshard.pipeline.progress import ShardProgress


def test_progress_counts_this_runs_shards_with_rate_and_time_left(tmp_path, caplog):
    old = tmp_path / "train-00003-of-00004.tfrecord"
    old.write_bytes(b"x" * 10)
    os.utime(old, (time.time() - 3600, time.time() - 3600))  # left by an earlier run
    caplog.set_level(logging.INFO, logger="imgshard")
    with ShardProgress(str(tmp_path), "train", interval=0.05):
        for i in range(2):
            (tmp_path / f"train-0000{i}-of-00004.tfrecord").write_bytes(b"y" * 500_000)
        (tmp_path / ".train-00002-of-00004.tfrecord.tmp-abc").write_bytes(b"partial")
        time.sleep(0.5)
    lines = [r.getMessage() for r in caplog.records if "shards" in r.getMessage()]
    assert lines, caplog.text
    assert lines[-1].startswith("shards 2/4 written (50%), 1.0 MB at ")
    assert "left" in lines[-1]
