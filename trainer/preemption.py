"""SIGTERM (preemptible/spot VMs, Kubernetes) -> finish the step, checkpoint, stop cleanly.

The handler only sets a flag; the callback stops training at the next step end, and the
Checkpointer's `on_train_end` writes the checkpoint that the rerun resumes from. Single-worker
only: under MultiWorkerMirroredStrategy one worker stopping alone would leave the others
waiting in their collectives, so there the job relies on its checkpoints (a killed worker's job
is resumed by rerunning every worker).
"""

from __future__ import annotations

import signal
import threading

import keras

__all__ = ["StopOnSignal"]


class StopOnSignal(keras.callbacks.Callback):
    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__()
        self._signum = signum
        self._previous = None
        self.received = False

    def _handle(self, signum, frame):
        self.received = True

    def on_train_begin(self, logs=None):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self._signum, self._handle)

    def on_train_batch_end(self, batch, logs=None):
        if self.received:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._previous is not None:
            signal.signal(self._signum, self._previous)
            self._previous = None
