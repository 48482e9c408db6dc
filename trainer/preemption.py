"""SIGTERM (preemptible/spot VMs, Kubernetes) -> finish the step, checkpoint, stop cleanly.

The handler only sets a flag; the callback stops training at the next step end, where the
Checkpointer (placed after it) writes the checkpoint that the rerun resumes from. Not under
MultiWorkerMirroredStrategy (`enabled=False`): one worker stopping alone would leave the others
waiting in their collectives, so there SIGTERM ends the process and the job resumes from its
last checkpoint when every worker is rerun.
"""

from __future__ import annotations

import signal
import threading

import keras

__all__ = ["StopOnSignal"]


class StopOnSignal(keras.callbacks.Callback):
    def __init__(self, signum: int = signal.SIGTERM, enabled: bool = True):
        super().__init__()
        self._signum = signum
        self._enabled = enabled
        self._previous = None
        self.received = False

    def _handle(self, signum, frame):
        self.received = True

    def on_train_begin(self, logs=None):
        if self._enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self._signum, self._handle)

    def on_train_batch_end(self, batch, logs=None):
        if self.received:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._previous is not None:
            signal.signal(self._signum, self._previous)
            self._previous = None
