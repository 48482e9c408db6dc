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


def test_progress_counts_the_shards_kept_by_resume(tmp_path, caplog):
    from imgshard.pipeline import journal
    from imgshard.transforms.records import ShardResult

    an_hour_ago = time.time() - 3600
    for i, journaled_size in ((0, 10), (1, 10), (2, 999)):  # shard 2 was damaged since
        name = f"train-0000{i}-of-00004.tfrecord"
        (tmp_path / name).write_bytes(b"x" * 10)
        os.utime(tmp_path / name, (an_hour_ago, an_hour_ago))
        result = ShardResult(i, name, 1, journaled_size, "0" * 64, {0: 1}, 10)
        journal.write_shard_entry(str(tmp_path), "train", "this-run", result, [])
    other = ShardResult(3, "train-00003-of-00004.tfrecord", 1, 10, "0" * 64, {0: 1}, 10)
    journal.write_shard_entry(str(tmp_path), "train", "another-run", other, [])
    caplog.set_level(logging.INFO, logger="imgshard")

    def logged(count: int) -> list[str]:  # waits for the watcher's next line, however slow
        deadline = time.time() + 60
        while time.time() < deadline:
            lines = [r.getMessage() for r in caplog.records if "shards" in r.getMessage()]
            if len(lines) >= count:
                return lines
            time.sleep(0.02)
        return lines

    with ShardProgress(str(tmp_path), "train", interval=0.05, resumed_fingerprint="this-run"):
        logged(1)
        (tmp_path / "train-00003-of-00004.tfrecord").write_bytes(b"y" * 500_000)
        lines = logged(2)
    assert lines[0].startswith("shards 2/4 written (50%, 2 kept by --resume), 0.0 MB"), lines
    assert lines[0].endswith("time left: -")  # nothing written by this run yet: no rate
    assert lines[-1].startswith("shards 3/4 written (75%, 2 kept by --resume), 0.5 MB at ")
    assert "left" in lines[-1]
