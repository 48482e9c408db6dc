"""How mixing is judged: the windows, the simulated readers, and the thresholds.

PASS needs all of these (1.0 means "as good as an i.i.d. sample"):
  integrity        no CRC, parse, label, box or decode error; counts and checksums equal
                   dataset.json's; every index file (`{shard}.idx`) matches its shard;
                   with --list, every input found exactly once
  raw order        distinct labels per window >= 0.95 of i.i.d.;
                   largest count of one label per window <= 1.5x i.i.d.
  reader order     distinct labels per window >= 0.95 of i.i.d., for each reader modelled
                   (tf.data's for TFRecord shards, WebDataset's and timm's for tars)
  per-shard skew   mean distance of shard label mixes from the global mix <= 1.5x that of
                   random shards of the same sizes
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from apache_beam.io.filesystems import FileSystems

from imgshard.audit.mixing import WindowStats
from imgshard.audit.reader_simulation import reader_order
from imgshard.audit.shard_scan import ScanResult
from imgshard.audit.webdataset_reader import webdataset_order

__all__ = [
    "MIN_WINDOWS",
    "THRESHOLDS",
    "ReaderModel",
    "choose_window",
    "default_readers",
    "judge",
    "reader_labels",
    "relative_buffer",
    "webdataset_readers",
    "window_view",
    "worst_shards",
]

THRESHOLDS = {
    "min_distinct_ratio": 0.95,
    "max_label_count_ratio": 1.5,
    "max_skew_ratio": 1.5,
}
MIN_WINDOWS = 16  # below this many windows per view, the window shrinks


@dataclass(frozen=True)
class ReaderModel:
    """A reader whose record order the audit computes: a tf.data reader
    (trainer/input_pipeline.py) or, with kind "webdataset", WebDataset's
    (audit/webdataset_reader.py).

    Attributes:
      interleave: False: files one after another (always so for WebDataset).
      shuffle_buffer: the record (sample) buffer; 0: relative to the data, see
        relative_buffer().
      shard_buffer, initial: WebDataset only: the shard-name shuffle buffer, and the samples
        the sample buffer holds before it yields (webdataset's `initial`).
    """

    name: str
    description: str
    interleave: bool
    cycle_length: int
    shuffle_buffer: int
    kind: str = "tfdata"
    shard_buffer: int = 0
    initial: int = 0

    def resolved(self, records: int, window: int) -> ReaderModel:
        if self.shuffle_buffer:
            return self
        buffer = relative_buffer(records, window)
        return dataclasses.replace(
            self,
            description=f"{self.description}, sample buffer {buffer:,}"
            if self.kind == "webdataset"
            else f"{self.description}, shuffle buffer {buffer:,}",
            shuffle_buffer=buffer,
        )


def relative_buffer(records: int, window: int) -> int:
    """A buffer as small against the data as a ~1,000-record queue is against ImageNet's
    1.28M records (0.1%), but never under one window: a fixed 1,024 would shuffle a small
    data set whole and hide exactly what this view is for."""
    return max(window, records // 1000)


def default_readers(
    cycle_length: int, shuffle_buffer: int, sequential_buffer: int
) -> list[ReaderModel]:
    sequential = "string_input_producer style: file names shuffled, files read one after another"
    if sequential_buffer:
        sequential += f", shuffle buffer {sequential_buffer:,}"
    return [
        ReaderModel(
            "trainer",
            f"imgshard trainer: file shuffle, interleave {cycle_length} files, "
            f"record shuffle buffer {shuffle_buffer:,}",
            True,
            cycle_length,
            shuffle_buffer,
        ),
        ReaderModel("sequential", sequential, False, 1, sequential_buffer),
    ]


# timm's wds/ training reader (timm/data/readers/reader_wds.py): shard shuffle buffer 500,
# sample buffer WDS_SHUFFLE_SIZE=8192 filled to WDS_INITIAL_SIZE=2048 before it yields.
TIMM_SHARD_BUFFER, TIMM_SAMPLE_BUFFER, TIMM_SAMPLE_INITIAL = 500, 8192, 2048
# webdataset's defaults: WebDataset(shardshuffle=True) means 100 shards; shuffle()'s initial.
WDS_SHARD_BUFFER, WDS_INITIAL = 100, 100


def webdataset_readers(sample_buffer: int, shard_buffer: int = WDS_SHARD_BUFFER):
    """WebDataset's usual reader (sample_buffer 0: 0.1% of the records, at least one window)
    and timm's."""
    usual = f"webdataset: shard names shuffled (buffer {shard_buffer:,}), tars read in turn"
    if sample_buffer:
        usual += f", sample buffer {sample_buffer:,}"
    return [
        ReaderModel(
            "webdataset", usual, False, 1, sample_buffer, "webdataset", shard_buffer, WDS_INITIAL
        ),
        ReaderModel(
            "timm",
            f"timm wds/ training reader: shard buffer {TIMM_SHARD_BUFFER}, sample buffer "
            f"{TIMM_SAMPLE_BUFFER:,} (initial {TIMM_SAMPLE_INITIAL:,}), one loader worker",
            False,
            1,
            TIMM_SAMPLE_BUFFER,
            "webdataset",
            TIMM_SHARD_BUFFER,
            TIMM_SAMPLE_INITIAL,
        ),
    ]


def choose_window(records: int, batch_size: int) -> int:
    """The batch size, or a smaller power of two that still gives MIN_WINDOWS windows."""
    window = batch_size
    while window > 2 and records < MIN_WINDOWS * window:
        window //= 2
    return window


def window_view(stats: WindowStats) -> dict:
    return {
        "window": stats.window,
        "windows": int(len(stats.distinct)),
        "mean_distinct": round(float(stats.distinct.mean()), 3),
        "expected_distinct": round(stats.expected_distinct, 3),
        "distinct_ratio": round(stats.distinct_ratio, 4),
        "mean_max_label_count": round(float(stats.max_count.mean()), 3),
        "expected_max_label_count": round(stats.expected_max_count, 3),
        "max_label_count_ratio": round(stats.max_count_ratio, 4),
        "distinct_noise": round(stats.distinct_noise, 3),
        "distinct_per_window": stats.distinct.tolist(),
    }


def judge(stats: WindowStats, view: str, failures: list[str], check_max: bool = False) -> None:
    shortfall = stats.expected_distinct - stats.distinct.mean()
    # Few windows are noisy: a perfect shuffle of 87 records dipped below the ratio in 4 of 10
    # seeds. Below the ratio and beyond that noise both, or it is not a finding.
    if stats.distinct_ratio < THRESHOLDS["min_distinct_ratio"] and shortfall > stats.distinct_noise:
        failures.append(
            f"{view}: {stats.distinct.mean():.1f} distinct labels per {stats.window}-record "
            f"window vs {stats.expected_distinct:.1f} i.i.d. (ratio {stats.distinct_ratio:.3f} < "
            f"{THRESHOLDS['min_distinct_ratio']}, beyond the {stats.distinct_noise:.2f} a "
            f"shuffle of {len(stats.distinct)} windows can miss by)"
        )
    if check_max and stats.max_count_ratio > THRESHOLDS["max_label_count_ratio"]:
        failures.append(
            f"{view}: the most frequent label fills {stats.max_count.mean():.1f} of "
            f"{stats.window} records vs {stats.expected_max_count:.1f} i.i.d. (ratio "
            f"{stats.max_count_ratio:.2f} > {THRESHOLDS['max_label_count_ratio']})"
        )


def reader_labels(scan: ScanResult, reader: ReaderModel, seed: int, limit: int) -> np.ndarray:
    """Label codes in the order `reader` yields records, simulated from each shard's label
    sequence as scanned (tf.data's kernels reproduced: reader_simulation; records without
    a label are left out)."""
    shards, start = [], 0
    for shard in scan.shards:
        labelled = sum(shard.label_counts.values())
        shards.append(scan.labels[start : start + labelled])
        start += labelled
    if reader.kind == "webdataset":
        order = webdataset_order(
            shards,
            shard_buffer=reader.shard_buffer,
            shard_initial=min(WDS_INITIAL, reader.shard_buffer),
            sample_buffer=reader.shuffle_buffer,
            sample_initial=reader.initial,
            seed=seed,
            limit=limit,
        )
        return np.asarray(order, dtype=np.int64)
    order = reader_order(
        shards,
        interleave=reader.interleave,
        cycle_length=reader.cycle_length,
        shuffle_buffer=reader.shuffle_buffer,
        seed=seed,
        limit=limit,
        global_seed=seed,  # imgshard-train seeds TensorFlow globally with its --seed too
    )
    return np.asarray(order, dtype=np.int64)


def worst_shards(scan: ScanResult, skew, count: int = 5) -> list[dict]:
    order = np.argsort(-(skew.distance - skew.expected))[:count]
    worst = []
    for i in order:
        shard = scan.shards[i]
        top = shard.label_counts.most_common(2)
        worst.append(
            {
                "shard": FileSystems.split(shard.path)[1],
                "records": shard.records,
                "distance": round(float(skew.distance[i]), 4),
                "random_distance": round(float(skew.expected[i]), 4),
                "top_labels": [
                    {"label": label, "share": round(n / max(1, shard.records), 3)}
                    for label, n in top
                ],
            }
        )
    return worst
