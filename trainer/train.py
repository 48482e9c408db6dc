"""`imgshard-train`: train an image classifier on imgshard's shards (`make train`).

    imgshard-train --data out/imagenet --model-dir runs/mobilenet --epochs 90

Runs on whatever is there: one GPU, all GPUs of the machine (MirroredStrategy), several
machines (MultiWorkerMirroredStrategy, from TF_CONFIG), or the CPU. Checkpoints every
--checkpoint-every steps and resumes from them automatically when restarted with the same
--model-dir. No Beam import: the trainer does not pay for the conversion job.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass

from imgshard.trainer.errors import TrainError

__all__ = ["TrainConfig", "main", "run"]

_LOG = logging.getLogger("imgshard.train")
# 128 + SIGTERM, what a shell reports for a process SIGTERM ended: not 0, so a job system
# restarts (resumes) the job instead of taking it as finished
PREEMPTED_EXIT = 143


@dataclass(frozen=True)
class TrainConfig:
    """Attributes: see `imgshard-train --help`; every flag maps to one field."""

    data: str
    model_dir: str = "out/train"
    val_data: str = "auto"
    num_classes: int = 0
    label_offset: int = 0
    num_examples: int = 0
    eval_only: bool = False
    synthetic_data: bool = False
    ema_decay: float = 0.0
    export_only: bool = False
    model: str = "mobilenet"
    alpha: float = 1.0
    image_size: int = 224
    epochs: int = 90
    steps_per_epoch: int = 0
    batch_size: int = 256
    lr: float = 0.1
    lr_scaling: str = "linear"
    warmup_epochs: float = 5.0
    decay: str = "cosine"
    decay_epochs: tuple[float, ...] = (30.0, 60.0, 80.0)
    decay_factor: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    precision: str = "auto"
    jit_compile: str = "auto"
    checkpoint_every: int = 1000
    log_every: int = 100
    cycle_length: int = 16
    shuffle_buffer: int = 10_000
    read_buffer_mb: int = 8
    threads: int = 0
    seed: int = 0
    deterministic: bool = False
    cpu_replicas: int = 0
    transform_fn: str = "auto"
    export: bool = True
    require_gpu: str = "auto"

    def __post_init__(self):
        for name in ("image_size", "epochs", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise TrainError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.image_size < 32:
            raise TrainError(
                f"--image-size must be >= 32 (the models' minimum), got {self.image_size}"
            )
        if self.precision not in ("auto", "float32", "mixed_float16", "mixed_bfloat16"):
            raise TrainError(
                f"--precision: auto, float32, mixed_float16 or mixed_bfloat16, "
                f"got {self.precision!r}"
            )
        if not 0 <= self.ema_decay < 1:
            raise TrainError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.require_gpu not in ("auto", "yes", "no"):
            raise TrainError(f"--require-gpu: auto, yes or no, got {self.require_gpu!r}")
        if self.jit_compile not in ("auto", "on", "off"):
            raise TrainError(f"--jit-compile: auto, on or off, got {self.jit_compile!r}")


def _epochs(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated epochs, got {text!r}") from None


def _parse(argv: list[str] | None) -> TrainConfig:
    p = argparse.ArgumentParser(prog="imgshard-train", description=__doc__.split("\n")[0])
    d = TrainConfig(data="")
    p.add_argument("--data", required=True, help="shard folder with dataset.json, or a glob")
    p.add_argument("--model-dir", default=d.model_dir, help="checkpoints, logs, export")
    p.add_argument(
        "--val-data",
        default=d.val_data,
        help="validation shards: a folder with dataset.json or a glob; auto: the `validation` "
        "folder beside a `train` folder (or validation-* beside foreign train-* shards); none",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=0,
        help="shards without dataset.json only (e.g. 1000 for tf/models' ImageNet)",
    )
    p.add_argument(
        "--label-offset",
        type=int,
        default=0,
        help="shards without dataset.json: the first class's label (1 for tf/models' ImageNet)",
    )
    p.add_argument(
        "--num-examples",
        type=int,
        default=0,
        help="shards without dataset.json: their record count (default: counted once)",
    )
    p.add_argument(
        "--eval-only",
        action="store_true",
        help="evaluate the model dir's checkpoint on the validation data, write eval.json",
    )
    p.add_argument(
        "--synthetic-data",
        action="store_true",
        help="train on one real batch repeated (no reading or decoding): the model's own "
        "speed limit, for make bench-train",
    )
    p.add_argument(
        "--export-only",
        action="store_true",
        help="export the model dir's checkpoint as the serving model",
    )
    p.add_argument("--model", default=d.model, choices=("mobilenet", "resnet50"))
    p.add_argument("--alpha", type=float, default=d.alpha, help="MobileNet width multiplier")
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument(
        "--steps-per-epoch", type=int, default=0, help="default: training records / global batch"
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per replica")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate for a batch of 256")
    p.add_argument(
        "--lr-scaling",
        default=d.lr_scaling,
        choices=("linear", "none"),
        help="linear: lr x global batch / 256",
    )
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--decay", default=d.decay, choices=("step", "cosine"))
    p.add_argument(
        "--decay-epochs",
        type=_epochs,
        default=d.decay_epochs,
        help="step decay boundaries (epochs, comma-separated)",
    )
    p.add_argument("--decay-factor", type=float, default=d.decay_factor)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument(
        "--weight-decay",
        type=float,
        default=d.weight_decay,
        help="L2 penalty wd/2*sum(w^2) on conv and dense kernels (not BN, biases, depthwise)",
    )
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument(
        "--ema-decay",
        type=float,
        default=d.ema_decay,
        help="keep a moving average of the weights (e.g. 0.9999), validate and export it; 0: off",
    )
    p.add_argument(
        "--precision",
        default=d.precision,
        help="auto (mixed_float16 on GPUs, mixed_bfloat16 on Hopper, float32 on CPU), "
        "float32, mixed_float16, mixed_bfloat16",
    )
    p.add_argument(
        "--jit-compile",
        default=d.jit_compile,
        help="XLA: auto (on one GPU), on, off; always off under a multi-replica strategy",
    )
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps")
    p.add_argument("--log-every", type=int, default=d.log_every, help="steps")
    p.add_argument("--cycle-length", type=int, default=d.cycle_length, help="files interleaved")
    p.add_argument("--shuffle-buffer", type=int, default=d.shuffle_buffer, help="records")
    p.add_argument("--read-buffer-mb", type=int, default=d.read_buffer_mb, help="per open file")
    p.add_argument("--threads", type=int, default=0, help="tf.data threads (0: default)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="reproducible runs: deterministic ops and input order (slower)",
    )
    p.add_argument(
        "--cpu-replicas",
        type=int,
        default=0,
        help="split the CPU into N replicas under MirroredStrategy (testing aid)",
    )
    p.add_argument(
        "--transform-fn",
        default="auto",
        help="tf.Transform output of `imgshard convert --analyze`: its mean/std normalize, its "
        "graph serves (default auto: the data's, if it has one; or a path, or none)",
    )
    p.add_argument("--no-export", dest="export", action="store_false")
    p.add_argument(
        "--require-gpu",
        default=d.require_gpu,
        choices=("auto", "yes", "no"),
        help="no GPU is an error (auto: when the GPU extra imgshard[gpu] is installed)",
    )
    # The model's shape: --eval-only/--export-only take it from the finished run's result.json
    # unless given, so that they rebuild the model the checkpoint was written from.
    p.set_defaults(**{key: None for key in _MODEL_SHAPE})
    args = vars(p.parse_args(argv))
    saved = _trained_shape(args["model_dir"]) if args["eval_only"] or args["export_only"] else {}
    for key in _MODEL_SHAPE:
        if args[key] is None:
            args[key] = saved.get(key, getattr(d, key))
    return TrainConfig(**args)


_MODEL_SHAPE = ("model", "alpha", "image_size")


def _trained_shape(model_dir: str) -> dict:
    """model, alpha and image_size of the run that wrote `model_dir` (its result.json)."""
    import tensorflow as tf

    path = os.path.join(model_dir, "result.json")
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        config = json.load(f).get("config", {})
    return {key: config[key] for key in _MODEL_SHAPE if key in config}


def _strategy(config: TrainConfig):
    import tensorflow as tf

    if "TF_CONFIG" in os.environ:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if config.cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * config.cpu_replicas
        )
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(config.cpu_replicas)])
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _transform(config: TrainConfig, info):
    """The tf.Transform output to use, checked against the model's input, or None."""
    choice = config.transform_fn
    path = info.transform_fn if choice == "auto" else None if choice == "none" else choice
    if path is None:
        return None
    from imgshard.trainer.transform import load_transform

    transform = load_transform(path)
    if transform.image_size != config.image_size:
        raise TrainError(
            f"{path} preprocesses to {transform.image_size} px but --image-size is "
            f"{config.image_size}: convert with --analyze-image-size {config.image_size}, "
            "or pass --transform-fn none"
        )
    if len(transform.class_names) != info.num_classes:
        raise TrainError(
            f"{path} knows {len(transform.class_names)} classes, the data {info.num_classes}"
        )
    return transform


def _devices(config: TrainConfig, gpus: list) -> str:
    """The start-up line naming the devices; no GPU is an error when one is required."""
    import tensorflow as tf

    names = [d.name for d in tf.config.list_logical_devices() if d.device_type in ("CPU", "GPU")]
    required = config.require_gpu == "yes" or (config.require_gpu == "auto" and _gpu_extra())
    if required and not gpus:
        raise TrainError(
            "no GPU visible to TensorFlow"
            + (
                " although the GPU extra (tensorflow[and-cuda]) is installed"
                if _gpu_extra()
                else ""
            )
            + ": check the NVIDIA driver (nvidia-smi); pass --require-gpu no to train on the CPU"
        )
    return ", ".join(names) + ("" if gpus else " (no GPU)")


def _gpu_extra() -> bool:
    """Whether `imgshard[gpu]` (tensorflow[and-cuda]'s CUDA wheels) is installed."""
    from importlib import metadata

    try:
        metadata.version("nvidia-cudnn-cu12")
    except metadata.PackageNotFoundError:
        return False
    return True


def _compile(model, config: TrainConfig, schedule, precision: str, jit: bool) -> None:
    import keras

    from imgshard.trainer.monitor import DistinctLabels
    from imgshard.trainer.precision import wrap_optimizer
    from imgshard.trainer.regularization import add_weight_decay

    add_weight_decay(model, config.weight_decay)
    optimizer = keras.optimizers.SGD(
        schedule,
        momentum=config.momentum,
        nesterov=config.nesterov,
        use_ema=bool(config.ema_decay),
        ema_momentum=config.ema_decay or 0.99,
    )
    model.compile(
        optimizer=wrap_optimizer(optimizer, precision),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.label_smoothing
        ),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(5, name="top5"),
            DistinctLabels(),
        ],
        jit_compile=jit,
    )


def _write_json(path: str, value: dict) -> None:
    """Through tf.io.gfile: the model dir may be gs:// (or any TensorFlow filesystem)."""
    import tensorflow as tf

    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(value, indent=1))
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _input_settings(config: TrainConfig, info) -> object:
    from imgshard.trainer.input_pipeline import InputSettings, ReaderSettings

    return InputSettings(
        image_size=config.image_size,
        batch_size=config.batch_size,
        num_classes=info.num_classes,
        label_offset=info.label_offset,
        reader=ReaderSettings(
            config.cycle_length,
            config.shuffle_buffer,
            config.read_buffer_mb * 2**20,
            config.seed,
            config.deterministic,
        ),
        threads=config.threads,
    )


def _validation(config: TrainConfig, info, settings, transform=None):
    """(validation dataset or None, its steps for one exact pass or None); with a
    tf.Transform output, its graph preprocesses the images, as in serving."""
    from imgshard.trainer.data import data_info, validation_source
    from imgshard.trainer.input_pipeline import image_dataset

    source = validation_source(config.data, config.val_data)
    if source is None:
        _LOG.info("no validation data (pass --val-data): nothing is evaluated")
        return None, None
    val = data_info(
        source, info.num_classes, info.label_offset, cache_dir=config.model_dir + "/data"
    )
    if val.num_classes != info.num_classes:
        raise TrainError(
            f"{source} has {val.num_classes} classes, the training data {info.num_classes}"
        )
    _LOG.info("validating on %s (%d records)", source, val.records)
    eval_images = None
    if transform is not None:
        from imgshard.trainer.transform import transform_images

        eval_images = functools.partial(transform_images, transform.layer)
    dataset = image_dataset(val.files, settings, training=False, eval_images=eval_images)
    return dataset, -(-val.records // config.batch_size)


def _export(model, config: TrainConfig, info, transform, role) -> str | None:
    """Every worker saves (the save may run collectives); only the chief's copy is kept."""
    from imgshard.trainer.export import export_serving_model

    names = transform.class_names if transform else info.names
    folder = config.model_dir if role.chief else role.private_dir(config.model_dir)
    path = export_serving_model(
        model,
        config.image_size,
        names or [str(i) for i in range(info.num_classes)],
        os.path.join(folder, "export"),
        transform.layer if transform else None,
    )
    return path if role.chief else None


def run(argv: list[str] | None = None, callbacks: list | None = None) -> dict:
    """Trains; returns the Keras model, the final metrics, the steps done and the export path.

    `preempted` is True when SIGTERM stopped the run (checkpointed; rerun to resume). With
    --eval-only / --export-only: the restored model, its step and `metrics` / `export`.
    """
    config = _parse(argv)
    import keras
    import tensorflow as tf

    from imgshard.trainer.checkpoint import Checkpointer, StopAtStep, restore
    from imgshard.trainer.cluster import multi_worker, strategy_name, use_xla, worker_role
    from imgshard.trainer.data import data_info
    from imgshard.trainer.input_pipeline import image_dataset
    from imgshard.trainer.model import build_model
    from imgshard.trainer.monitor import ThroughputLogger
    from imgshard.trainer.precision import choose_precision
    from imgshard.trainer.preemption import StopOnSignal
    from imgshard.trainer.schedule import WarmupSchedule, scaled_learning_rate

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = _strategy(config)
    role = worker_role(strategy)
    precision = choose_precision(config.precision)
    keras.mixed_precision.set_global_policy(precision)
    gpus = tf.config.list_physical_devices("GPU")
    _LOG.info("devices: %s", _devices(config, gpus))
    jit, jit_reason = use_xla(config.jit_compile, strategy, len(gpus))

    info = data_info(
        config.data,
        config.num_classes,
        config.label_offset,
        config.num_examples,
        cache_dir=config.model_dir + "/data",
    )
    transform = _transform(config, info)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    steps_per_epoch = config.steps_per_epoch or max(1, info.records // global_batch)
    total_steps = steps_per_epoch * config.epochs
    peak = scaled_learning_rate(config.lr, global_batch, config.lr_scaling)
    schedule = WarmupSchedule(
        peak,
        total_steps,
        warmup_steps=int(config.warmup_epochs * steps_per_epoch),
        decay=config.decay,
        boundaries=tuple(int(e * steps_per_epoch) for e in config.decay_epochs),
        factor=config.decay_factor,
    )
    if transform:
        _LOG.info(
            "normalizing with the analyzed mean %s and std %s (%s)",
            transform.mean.round(2).tolist(),
            transform.std.round(2).tolist(),
            transform.path,
        )
    _LOG.info(
        "%s on %d replica(s) (%s), %s, XLA %s; global batch %d, %d steps/epoch, peak lr %.4g",
        config.model,
        replicas,
        strategy_name(strategy),
        precision,
        jit_reason,
        global_batch,
        steps_per_epoch,
        peak,
    )

    with strategy.scope():
        model = build_model(
            config.model,
            info.num_classes,
            config.image_size,
            config.alpha,
            mean_std=(transform.mean, transform.std) if transform else None,
        )
        _compile(model, config, schedule, precision, jit)
        # in the scope: restoring builds the optimizer's (mirrored) variables
        checkpoints = os.path.join(config.model_dir, "checkpoint")
        plan = {"global_batch": global_batch, "steps_per_epoch": steps_per_epoch}
        only = config.eval_only or config.export_only
        start = restore(model, checkpoints, None if only else plan)
    settings = _input_settings(config, info)
    val_data, val_steps = _validation(config, info, settings, transform)
    if only:
        return _evaluate_or_export(model, start, config, info, transform, role, val_data, val_steps)
    if start >= total_steps:
        raise TrainError(
            f"{config.model_dir} holds a finished run ({start} of {total_steps} "
            "steps); choose another --model-dir to train again"
        )
    if start:
        _LOG.info("resumed from the checkpoint at step %d of %d", start, total_steps)
    else:
        _LOG.info("training from step 0 of %d", total_steps)

    def training_input(ctx):
        dataset = image_dataset(
            info.files,
            settings,
            training=True,
            input_context=ctx,
            start_step=start,
            records_per_file=info.records / len(info.files),
        )
        return dataset.take(1).cache().repeat() if config.synthetic_data else dataset

    train_data = strategy.distribute_datasets_from_function(training_input)
    log_dir = os.path.join(
        config.model_dir if role.chief else role.private_dir(config.model_dir), "logs"
    )
    throughput = ThroughputLogger(log_dir, global_batch, every=config.log_every, write=role.chief)
    # under MultiWorkerMirroredStrategy one worker stopping alone would leave the others
    # waiting in their collectives: SIGTERM keeps its default there (resume from checkpoint)
    preemption = StopOnSignal(enabled=not multi_worker(strategy))
    tensorboard = [keras.callbacks.TensorBoard(log_dir, update_freq=config.log_every)]
    history = model.fit(
        train_data,
        epochs=config.epochs,
        initial_epoch=start // steps_per_epoch,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_data,
        validation_steps=val_steps,
        shuffle=False,  # the input pipeline shuffles files and records itself
        verbose=2,
        callbacks=[
            StopAtStep(total_steps),  # before the Checkpointer, which saves when they stop
            preemption,
            Checkpointer(checkpoints, config.checkpoint_every, write=role.chief, plan=plan),
            *([keras.callbacks.SwapEMAWeights()] if config.ema_decay else []),
            *(tensorboard if role.chief else []),
            throughput,
            *(callbacks or []),
        ],
    )
    steps = int(model.optimizer.iterations.numpy())
    result = {
        "model": model,
        "steps": steps,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "images_per_second": throughput.images_per_second,
        "config": asdict(config),
        "preempted": preemption.received and steps < total_steps,
    }
    if result["preempted"]:
        _LOG.warning(
            "stopped by SIGTERM at step %d of %d, checkpointed: rerun to resume",
            steps,
            total_steps,
        )
        return result
    if config.export:
        export = _export(model, config, info, transform, role)
        if export:
            result["export"] = export
    if role.chief:
        _write_json(
            os.path.join(config.model_dir, "result.json"),
            {k: v for k, v in result.items() if k != "model"},
        )
    _remove_private_dir(config, role)
    return result


def _evaluate_or_export(model, step, config, info, transform, role, val_data, val_steps) -> dict:
    """--eval-only / --export-only on the model dir's checkpoint."""
    if not step:
        raise TrainError(f"{config.model_dir} has no checkpoint to evaluate or export")
    if config.ema_decay:
        # checkpoints hold the raw weights and their average: evaluate and export the average
        model.optimizer.finalize_variable_values(model.trainable_weights)
    result = {"model": model, "steps": step, "preempted": False}
    if config.eval_only:
        if val_data is None:
            raise TrainError("--eval-only needs validation data: pass --val-data")
        metrics = model.evaluate(val_data, steps=val_steps, return_dict=True, verbose=0)
        result["metrics"] = {k: float(v) for k, v in metrics.items()}
        if role.chief:
            _write_json(
                os.path.join(config.model_dir, "eval.json"),
                {"step": step, "metrics": result["metrics"], "val_data": config.val_data},
            )
    if config.export_only:
        export = _export(model, config, info, transform, role)
        if export:
            result["export"] = export
    _remove_private_dir(config, role)
    return result


def _remove_private_dir(config: TrainConfig, role) -> None:
    import tensorflow as tf

    private = role.private_dir(config.model_dir)
    if not role.chief and tf.io.gfile.exists(private):
        tf.io.gfile.rmtree(private)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(levelname).1s %(asctime)s train] %(message)s",
        datefmt="%H:%M:%S",
    )
    _LOG.setLevel(logging.INFO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        result = run(argv)
    except TrainError as e:
        print(f"imgshard-train: error: {e}", file=sys.stderr)
        return 2
    if "history" not in result:  # --eval-only / --export-only
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.get("metrics", {}).items())
        print(
            f"imgshard-train: checkpoint at step {result['steps']}"
            + (f": {metrics}" if metrics else "")
        )
        if "export" in result:
            print(f"  serving model (raw image bytes in): {result['export']}")
        return 0
    if result["preempted"]:
        print(
            f"imgshard-train: stopped by SIGTERM at step {result['steps']}; checkpointed, "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return PREEMPTED_EXIT
    history = result["history"]
    print(
        f"imgshard-train: {result['steps']} steps; final loss {history['loss'][-1]:.4f}, "
        f"accuracy {history['accuracy'][-1]:.3f}, distinct labels per batch "
        f"{history['distinct_labels'][-1]:.1f}, {result['images_per_second']:.0f} images/s"
    )
    if "export" in result:
        print(f"  serving model (raw image bytes in): {result['export']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
