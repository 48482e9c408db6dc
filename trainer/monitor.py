"""Live monitors: distinct labels per batch (mixing), images/s and the learning rate."""

from __future__ import annotations

import time

import keras
import tensorflow as tf

__all__ = ["DistinctLabels", "ThroughputLogger"]


@keras.saving.register_keras_serializable("imgshard")
class DistinctLabels(keras.metrics.Metric):
    """Mean number of distinct labels per (per-replica) batch: a live mixing monitor.

    A well-shuffled batch of 256 ImageNet images holds ~226 classes; a batch from
    class-sorted shards holds a handful. Compare against the audit's i.i.d. expectation.
    """

    def __init__(self, name: str = "distinct_labels", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.batches = self.add_variable(shape=(), initializer="zeros", name="batches")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.argmax(y_true, axis=-1)
        distinct = tf.cast(tf.size(tf.unique(labels)[0]), self.dtype)
        self.total.assign_add(distinct)
        self.batches.assign_add(tf.cast(1, self.dtype))

    def result(self):
        return tf.math.divide_no_nan(self.total, self.batches)


class ThroughputLogger(keras.callbacks.Callback):
    """Writes images/s and the learning rate to TensorBoard every `every` steps."""

    def __init__(self, log_dir: str, global_batch: int, every: int = 100, write: bool = True):
        super().__init__()
        # only one worker of a multi-worker job writes events
        self._writer = tf.summary.create_file_writer(log_dir + "/train") if write else None
        self._global_batch = global_batch
        self._every = every
        self._started = None
        self._steps = 0
        self.images_per_second = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        if self._started is None:
            self._started = time.perf_counter()
            self._first_started = self._started

    def on_train_end(self, logs=None):
        if not self.images_per_second and self._steps and self._started is not None:
            # fewer steps than one logging interval: report the whole run's rate
            elapsed = time.perf_counter() - self._first_started
            self.images_per_second = self._steps * self._global_batch / max(elapsed, 1e-9)

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        if self._steps % self._every:
            return
        elapsed = time.perf_counter() - self._started
        self.images_per_second = self._every * self._global_batch / max(elapsed, 1e-9)
        if self._writer is None:
            self._started = time.perf_counter()
            return
        step = int(self.model.optimizer.iterations.numpy())
        learning_rate = self.model.optimizer.learning_rate
        with self._writer.as_default(step=step):
            tf.summary.scalar("images_per_second", self.images_per_second)
            tf.summary.scalar("learning_rate", float(learning_rate.numpy()))
        self._started = time.perf_counter()
