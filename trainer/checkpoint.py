"""Crash-safe checkpoints: every N steps, whole or absent, restored before training resumes.

Keras 3's BackupAndRestore rewrites its weights file in place, so a SIGKILL during a save
leaves a file that cannot be read and the restart fails ("bad object header version
number" — seen in tests/test_trainer.py's kill test). Here every save goes to a temporary
file that is renamed over the last one, weights (model + optimizer, so the step count and
momentum carry on) first, then the small state file naming the step.
"""

from __future__ import annotations

import json

import keras
import tensorflow as tf

from imgshard.trainer.errors import TrainError

__all__ = [
    "CheckpointMismatch",
    "Checkpointer",
    "StepCallback",
    "StopAtStep",
    "read_state",
    "restore",
]

WEIGHTS = "checkpoint.weights.h5"
STATE = "checkpoint.json"


def _replace(src: str, dst: str) -> None:
    tf.io.gfile.rename(src, dst, overwrite=True)  # atomic on local disk; whole objects on GCS


class CheckpointMismatch(TrainError):
    """The checkpoint was written by a run with another global batch or schedule."""


def read_state(directory: str) -> dict | None:
    """The last checkpoint's state file ({"step", and what the run was planned with}), or
    None when there is no checkpoint."""
    state_path = f"{directory}/{STATE}"
    if not tf.io.gfile.exists(state_path):
        return None
    with tf.io.gfile.GFile(state_path) as f:
        return json.loads(f.read())


def restore(model: keras.Model, directory: str, plan: dict | None = None) -> int:
    """Loads the last checkpoint into `model` (compiled); returns its step, 0 if none.

    `plan` (e.g. the global batch and steps per epoch) must equal what the checkpoint was
    written with: a step count means nothing on another schedule, so a run resumed with a
    different number of replicas is refused instead of silently remapped.
    """
    state = read_state(directory)
    if state is None:
        return 0
    for key, value in (plan or {}).items():
        if key in state and state[key] != value:
            raise CheckpointMismatch(
                f"{directory} was written with {key.replace('_', ' ')} {state[key]}, this run "
                f"has {value}: resume with the same number of replicas and --batch-size, or "
                "start a new --model-dir"
            )
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(f"{directory}/{WEIGHTS}")
    restored = int(model.optimizer.iterations.numpy())
    if restored != state["step"]:
        # the weights were renamed into place but the state file was not yet: the weights
        # are the newer, complete save, and they carry their own step count
        tf.get_logger().warning(
            "checkpoint state says step %d, weights hold step %d", state["step"], restored
        )
    return restored


class StepCallback(keras.callbacks.Callback):
    """Counts optimizer steps on the host: reads the step variable once when training starts,
    then adds one per batch, so no callback forces a device-to-host copy every step (the
    optimizer counts every step, skipped fp16 ones too: see precision.py)."""

    def __init__(self):
        super().__init__()
        self.step = 0

    def on_train_begin(self, logs=None):
        self.step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1


class Checkpointer(StepCallback):
    """Saves model and optimizer every `every` steps and when training ends.

    Only one writer (`write`; the chief under MultiWorkerMirroredStrategy): workers renaming
    the same temporary file race, and on GCS a rename is a copy then a delete. `plan` goes
    into the state file for `restore` to check.
    """

    def __init__(self, directory: str, every: int, write: bool = True, plan: dict | None = None):
        super().__init__()
        self._directory = directory
        self._every = every
        self._write = write
        self._plan = dict(plan or {})
        self._saved = None

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        # stop_training: StopAtStep or SIGTERM (callbacks placed before this one) ended the run
        if self.step % self._every == 0 or self.model.stop_training:
            self.save(self.step)

    def on_train_end(self, logs=None):
        # normally saved at the last batch end already: by now Keras has replaced the weights
        # with their moving average (--ema-decay), which a resumed run must not continue from
        if self._saved != self.step:
            self.save(self.step)

    def save(self, step: int) -> None:
        self._saved = step
        if not self._write:
            return
        tf.io.gfile.makedirs(self._directory)
        weights = f"{self._directory}/{WEIGHTS}"
        self.model.save_weights(f"{self._directory}/tmp-{WEIGHTS}", overwrite=True)
        _replace(f"{self._directory}/tmp-{WEIGHTS}", weights)
        with tf.io.gfile.GFile(f"{self._directory}/tmp-{STATE}", "w") as f:
            f.write(json.dumps({"step": step, **self._plan}))
        _replace(f"{self._directory}/tmp-{STATE}", f"{self._directory}/{STATE}")


class StopAtStep(StepCallback):
    """Ends training at exactly `total_steps` optimizer steps, however it was resumed."""

    def __init__(self, total_steps: int):
        super().__init__()
        self._total = total_steps

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if self.step >= self._total:
            self.model.stop_training = True
