"""`make bench-train`: training images/s, and whether the input or the model is the limit.

On whatever device TensorFlow sees (the CPU here; the same command on a GPU host), alternately:
  real        imgshard-train on the shards: reading, decoding, augmenting and the steps
  synthetic   the same model and batch on one real batch repeated (--synthetic-data): no input
              work at all, the model's own ceiling on this device
  input       the training input pipeline alone (image_dataset), no model
The rates are taken over the second half of each run (the first half holds tracing and
warm-up). real / synthetic >= 0.9: compute-bound; below, input-bound when the input alone is
slower than the model's ceiling, else the two compete for the same cores (a CPU).
Writes benchmarks/RESULTS-train.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time


def _input_rate(data: str, image_size: int, batch_size: int, images: int) -> float:
    from imgshard.trainer.data import data_info
    from imgshard.trainer.input_pipeline import InputSettings, image_dataset

    info = data_info(data)
    settings = InputSettings(image_size, batch_size, info.num_classes, info.label_offset)
    iterator = iter(image_dataset(info.files, settings, training=True))
    for _ in range(max(1, images // batch_size // 2)):  # warm-up, as the trainer's first half
        next(iterator)
    seen, started = 0, time.perf_counter()
    while seen < images:
        seen += int(next(iterator)[0].shape[0])
    return seen / (time.perf_counter() - started)


def _train_rate(flags: list[str], steps: int, synthetic: bool) -> float:
    from imgshard.trainer.train import run

    with tempfile.TemporaryDirectory() as model_dir:
        result = run(
            [
                *flags,
                "--model-dir",
                model_dir,
                "--epochs",
                "1",
                "--steps-per-epoch",
                str(steps),
                "--log-every",
                str(steps // 2),
                "--checkpoint-every",
                str(10 * steps),
                "--val-data",
                "none",
                "--no-export",
                *(["--synthetic-data"] if synthetic else []),
            ]
        )
    return result["images_per_second"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="out/demo", help="shards (default: the demo's)")
    parser.add_argument("--model", default="mobilenet")
    parser.add_argument("--alpha", type=float, default=0.25)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60, help="steps per training run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--results", default=os.path.join(os.path.dirname(__file__), "RESULTS-train.md")
    )
    args = parser.parse_args(argv)
    if args.steps < 4:
        parser.error("--steps must be >= 4")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    flags = ["--data", args.data, "--model", args.model, "--alpha", str(args.alpha)]
    flags += ["--image-size", str(args.image_size), "--batch-size", str(args.batch_size)]
    runs = {"real": [], "synthetic": [], "input": []}
    for repeat in range(args.repeats):
        runs["real"].append(_train_rate(flags, args.steps, synthetic=False))
        runs["synthetic"].append(_train_rate(flags, args.steps, synthetic=True))
        images = args.steps * args.batch_size
        runs["input"].append(_input_rate(args.data, args.image_size, args.batch_size, images))
        print(f"round {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in runs.items()))
    median = {k: statistics.median(v) for k, v in runs.items()}
    ratio = median["real"] / median["synthetic"]
    if ratio >= 0.9:
        bound = "compute-bound"
    elif median["input"] < median["synthetic"]:
        bound = "input-bound"
    else:  # the input alone outruns the model, yet real training loses >10%: they share cores
        bound = "input and model compete for the same cores"
    devices = ", ".join(d.name for d in tf.config.list_logical_devices() if d.device_type != "TPU")
    lines = [
        "# make bench-train",
        "",
        f"`python benchmarks/train.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
        f" on {platform.node()} ({os.cpu_count()} cores; devices: {devices}), TensorFlow "
        f"{tf.__version__}; {args.model} alpha {args.alpha}, {args.image_size} px, batch "
        f"{args.batch_size}, {args.steps} steps a run (rates over the second half), "
        f"{args.repeats} alternating rounds, data {args.data}.",
        "",
        "| run | images/s (median) | every round |",
        "|---|---|---|",
        *(f"| {k} | {median[k]:.0f} | {', '.join(f'{v:.0f}' for v in runs[k])} |" for k in runs),
        "",
        f"real / synthetic = {ratio:.2f}: **{bound}** on this device "
        "(synthetic = one real batch repeated, the model's own ceiling).",
        "",
    ]
    with open(args.results, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
