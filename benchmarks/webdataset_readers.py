"""What WebDataset readers make of class-sorted tars at ImageNet scale (README, WebDataset).

Synthetic labels only (no images): 1,281,167 samples of 1,000 classes (732-1,300 each, as
ILSVRC2012's train split), written in class order into tars of `--maxcount` samples, as the
usual `wds.ShardWriter` loop over `root/*/*` does. The order each reader yields is computed
with the audit's model of webdataset's shuffle buffers (audit/webdataset_reader.py, checked
against the webdataset package in tests/test_webdataset_audit.py), and judged as the audit
judges it: mean distinct classes per window of 256 over the first `--records` samples.

    .venv/bin/python benchmarks/webdataset_readers.py --maxcount 1000 5000
"""

from __future__ import annotations

import argparse

import numpy as np

from imgshard.audit.webdataset_reader import webdataset_order

READERS = {
    "webdataset shardshuffle=100, shuffle(1000)": (100, 100, 1000, 100),
    "webdataset shardshuffle=100, shuffle(10000)": (100, 100, 10_000, 100),
    "timm wds/ training (500, 8192 initial 2048)": (500, 100, 8192, 2048),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--maxcount", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    per_class = rng.integers(732, 1301, 1000)
    per_class = (per_class * 1_281_167 / per_class.sum()).astype(int)
    per_class[: 1_281_167 - per_class.sum()] += 1  # the rounding's remainder
    labels = np.repeat(np.arange(1000), per_class)
    p = per_class / per_class.sum()
    iid = float((1 - (1 - p) ** args.window).sum())
    print(f"{len(labels):,} samples; an i.i.d. window of {args.window} holds {iid:.1f} classes")
    for maxcount in args.maxcount:
        shards = [labels[i : i + maxcount].tolist() for i in range(0, len(labels), maxcount)]
        for name, (shard_buffer, shard_initial, buffer, initial) in READERS.items():
            order = np.asarray(
                webdataset_order(
                    shards,
                    shard_buffer=shard_buffer,
                    shard_initial=shard_initial,
                    sample_buffer=buffer,
                    sample_initial=initial,
                    seed=args.seed,
                    limit=args.records,
                )
            )
            windows = order[: len(order) // args.window * args.window].reshape(-1, args.window)
            distinct = np.mean([len(np.unique(w)) for w in windows])
            print(f"  maxcount {maxcount:>6,}  {name:<46} {distinct:6.1f} classes per window")


if __name__ == "__main__":
    main()
