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

__all__ = ["Checkpointer", "StopAtStep", "restore"]

WEIGHTS = "checkpoint.weights.h5"
STATE = "checkpoint.json"


def _replace(src: str, dst: str) -> None:
    tf.io.gfile.rename(src, dst, overwrite=True)  # atomic on local disk; whole objects on GCS


def restore(model: keras.Model, directory: str) -> int:
    """Loads the last checkpoint into `model` (compiled); returns its step, 0 if none."""
    state_path = f"{directory}/{STATE}"
    if not tf.io.gfile.exists(state_path):
        return 0
    with tf.io.gfile.GFile(state_path) as f:
        state = json.loads(f.read())
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


class Checkpointer(keras.callbacks.Callback):
    """Saves model and optimizer every `every` steps and when training ends."""

    def __init__(self, directory: str, every: int):
        super().__init__()
        self._directory = directory
        self._every = every

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self._every == 0:
            self.save(step)

    def on_train_end(self, logs=None):
        self.save(int(self.model.optimizer.iterations.numpy()))

    def save(self, step: int) -> None:
        tf.io.gfile.makedirs(self._directory)
        weights = f"{self._directory}/{WEIGHTS}"
        self.model.save_weights(f"{self._directory}/tmp-{WEIGHTS}", overwrite=True)
        _replace(f"{self._directory}/tmp-{WEIGHTS}", weights)
        with tf.io.gfile.GFile(f"{self._directory}/tmp-{STATE}", "w") as f:
            f.write(json.dumps({"step": step}))
        _replace(f"{self._directory}/tmp-{STATE}", f"{self._directory}/{STATE}")


class StopAtStep(keras.callbacks.Callback):
    """Ends training at exactly `total_steps` optimizer steps, however it was resumed."""

    def __init__(self, total_steps: int):
        super().__init__()
        self._total = total_steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self._total:
            self.model.stop_training = True
