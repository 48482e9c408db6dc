"""The loss-curve bug, reproduced on the demo dataset (`make repro`).

Two outputs of the same class-sorted list: list-order shards (`--shuffle none`, what naive
converters write) and imgshard's globally shuffled shards. The same small CNN, from the same
initial weights, trains on each with plain SGD (lr 0.1, x0.1 at fixed steps), reading the way
`string_input_producer(shuffle=True)` did: file names shuffled, each file read to its end,
a small shuffle queue. Only the shard order differs. Then `imgshard audit` judges both.

Writes {out}/loss.png, {out}/audit-sorted.txt, {out}/audit-shuffled.txt and {out}/curves.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def convert(list_path: str, output: str, shuffle: str) -> None:
    from imgshard.pipeline.convert import run

    run(
        [
            "--input",
            list_path,
            "--output",
            output,
            "--resize",
            "fixed:32x32",
            "--shuffle",
            shuffle,
            "--num-shards",
            "28",
            "--overwrite",
            "--direct_num_workers=1",
            "--direct_running_mode=in_memory",
        ]
    )


def train(
    shards: str, steps: int, decays: list[int], batch: int, buffer: int, seed: int, eval_every: int
) -> tuple[list[float], list[float]]:
    """Per-step training loss of a small CNN on `shards` read by the sequential reader, and
    the loss over the whole dataset every `eval_every` steps (what the model really knows)."""
    import tensorflow as tf

    from imgshard.trainer.input_pipeline import dataset_files, sequential_record_dataset

    tf.keras.utils.set_random_seed(seed)
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(record):
        features = tf.io.parse_single_example(record, spec)
        image = tf.io.decode_jpeg(features["image/encoded"], channels=1)
        image = tf.reshape(tf.cast(image, tf.float32) / 255.0, (32, 32, 1))
        return image, features["image/class/label"]

    files = dataset_files(shards)
    everything = tf.data.TFRecordDataset(files).map(parse).batch(512).cache()
    data = (
        sequential_record_dataset(files, buffer, seed=seed, repeat=True)
        .map(parse)
        .batch(batch, drop_remainder=True)
        .take(steps)
    )
    model = tf.keras.Sequential(
        [
            tf.keras.Input((32, 32, 1)),
            tf.keras.layers.Conv2D(16, 3, activation="relu"),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Conv2D(32, 3, activation="relu"),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10),
        ]
    )
    schedule = tf.keras.optimizers.schedules.PiecewiseConstantDecay(
        decays, [0.1 * 0.1**i for i in range(len(decays) + 1)]
    )
    optimizer = tf.keras.optimizers.SGD(schedule)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        optimizer.apply_gradients(
            zip(
                tape.gradient(loss, model.trainable_variables),
                model.trainable_variables,
                strict=True,
            )
        )
        return loss

    @tf.function
    def full_loss():
        total, count = 0.0, 0.0
        for images, labels in everything:
            n = tf.cast(tf.shape(labels)[0], tf.float32)
            total += loss_fn(labels, model(images, training=False)) * n
            count += n
        return total / count

    losses, evaluated = [], []
    for i, (images, labels) in enumerate(data):
        losses.append(float(step(images, labels)))
        if (i + 1) % eval_every == 0:
            evaluated.append(float(full_loss()))
    return losses, evaluated


def plot(curves: dict, decays: list[int], eval_every: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (train_ax, eval_ax) = plt.subplots(1, 2, figsize=(14, 4.8), sharey=True)
    colors = {
        "list-order shards (--shuffle none)": "tab:red",
        "imgshard shards (global shuffle)": "tab:blue",
    }
    for name, (losses, evaluated) in curves.items():
        smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
        train_ax.plot(losses, color=colors[name], alpha=0.25, linewidth=0.8)
        train_ax.plot(
            np.arange(9, len(losses)), smooth, color=colors[name], label=name, linewidth=1.6
        )
        steps = np.arange(1, len(evaluated) + 1) * eval_every
        eval_ax.plot(steps, evaluated, color=colors[name], label=name, marker=".", linewidth=1.4)
    for ax in (train_ax, eval_ax):
        for i, decay in enumerate(decays):
            ax.axvline(
                decay,
                color="gray",
                linestyle="--",
                linewidth=1,
                label="learning rate x0.1" if i == 0 else None,
            )
        ax.set_xlabel("training step (batch of 32)")
        ax.set_yscale("log")
        ax.legend(loc="upper right", fontsize=8)
    train_ax.set_ylabel("cross-entropy")
    train_ax.set_title("training loss per batch (faint) and its 10-step mean")
    eval_ax.set_title(f"loss on the whole dataset, every {eval_every} steps")
    fig.suptitle("Same model, data, reader, seed and schedule: only the shard order differs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/demo", help="demo dataset folder")
    parser.add_argument("--out", default="out/repro")
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--decays", default="450,700", help="steps where lr is multiplied by 0.1")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--buffer", type=int, default=64, help="the reader's shuffle queue")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=20)
    args = parser.parse_args(argv)
    decays = [int(s) for s in args.decays.split(",")]

    from imgshard.audit import audit, default_readers
    from imgshard.audit.report import format_report, plot_report
    from imgshard.pipeline.demo_data import write_digits

    list_path = os.path.join(args.data, "train.txt")
    if not os.path.exists(list_path):
        write_digits(args.data)
    outputs = {
        "list-order shards (--shuffle none)": (os.path.join(args.out, "sorted"), "none"),
        "imgshard shards (global shuffle)": (os.path.join(args.out, "shuffled"), "global"),
    }
    curves, verdicts = {}, {}
    for name, (shards, shuffle) in outputs.items():
        convert(list_path, shards, shuffle)
        curves[name] = train(
            shards, args.steps, decays, args.batch, args.buffer, args.seed, args.eval_every
        )
        result = audit(
            shards,
            list_file=list_path,
            readers=default_readers(16, 10_000, args.buffer),
            seed=args.seed,
        )
        summary = format_report(result.report)
        tag = os.path.basename(shards)
        with open(os.path.join(args.out, f"audit-{tag}.txt"), "w") as f:
            f.write(summary + "\n")
        plot_report(result, os.path.join(args.out, f"audit-{tag}.png"))
        verdicts[name] = result.report["verdict"]
        print(summary, "\n")
    plot(curves, decays, args.eval_every, os.path.join(args.out, "loss.png"))
    with open(os.path.join(args.out, "curves.json"), "w") as f:
        json.dump(
            {
                "decays": decays,
                "batch": args.batch,
                "buffer": args.buffer,
                "eval_every": args.eval_every,
                "curves": curves,
            },
            f,
        )

    for name, (losses, evaluated) in curves.items():
        d, w = decays[0], 50
        last_evals = evaluated[-10:]
        print(
            f"{name}: training loss mean over steps {d - w}-{d}: {np.mean(losses[d - w : d]):.3f},"
            f" {d}-{d + w}: {np.mean(losses[d : d + w]):.3f}; whole-dataset loss over the last "
            f"{len(last_evals)} evaluations: mean {np.mean(last_evals):.3f}, "
            f"max {np.max(last_evals):.3f}"
        )
    print(f"loss curves: {os.path.join(args.out, 'loss.png')}")
    expected = {
        "list-order shards (--shuffle none)": "FAIL",
        "imgshard shards (global shuffle)": "PASS",
    }
    return 0 if verdicts == expected else 1


if __name__ == "__main__":
    sys.exit(main())
