"""Learning rate: linear warmup, then step decay or cosine, scaled with the batch size."""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["WarmupSchedule", "scaled_learning_rate"]


def scaled_learning_rate(
    base: float, global_batch: int, scaling: str, reference: int = 256
) -> float:
    """The linear scaling rule (Goyal et al. 2017): lr = base * batch / 256."""
    if scaling == "linear":
        return base * global_batch / reference
    if scaling == "none":
        return base
    raise ValueError(f"--lr-scaling must be 'linear' or 'none', got {scaling!r}")


@keras.saving.register_keras_serializable("imgshard")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Warmup from 0 over `warmup_steps`, then `step` (x factor at each boundary) or `cosine`
    (to 0 at `total_steps`)."""

    def __init__(
        self,
        peak: float,
        total_steps: int,
        warmup_steps: int = 0,
        decay: str = "step",
        boundaries: tuple[int, ...] = (),
        factor: float = 0.1,
    ):
        if decay not in ("step", "cosine"):
            raise ValueError(f"--decay must be 'step' or 'cosine', got {decay!r}")
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.boundaries = tuple(int(b) for b in boundaries)
        self.factor = float(factor)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if self.decay == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
            decayed = self.peak * 0.5 * (1.0 + tf.cos(3.141592653589793 * progress))
        else:
            passed = tf.add_n([tf.cast(step >= b, tf.float32) for b in self.boundaries] or [0.0])
            decayed = self.peak * tf.pow(self.factor, passed)
        if self.warmup_steps:
            warm = self.peak * step / self.warmup_steps
            return tf.where(step < self.warmup_steps, warm, decayed)
        return decayed

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "boundaries": list(self.boundaries),
            "factor": self.factor,
        }
