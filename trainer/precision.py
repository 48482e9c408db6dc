"""Mixed precision: which policy, and a loss-scale optimizer whose step count counts every step.

Keras' LossScaleOptimizer skips the update of a step whose fp16 gradients overflowed and does
not advance `iterations` for it (a 20-step run ended at step 12). The trainer's schedule,
checkpoints and "stop at exactly the planned step" all count optimizer iterations, so here a
skipped step still counts, as the global step of tf/models' loops does.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["StepCountingLossScaleOptimizer", "choose_precision", "wrap_optimizer"]


def choose_precision(requested: str) -> str:
    """`auto`: mixed_bfloat16 on Hopper and newer, mixed_float16 on Volta and newer GPUs,
    float32 otherwise (and on the CPU)."""
    if requested != "auto":
        return requested
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "float32"
    details = tf.config.experimental.get_device_details(gpus[0])
    major = details.get("compute_capability", (0, 0))[0]
    return "mixed_bfloat16" if major >= 9 else "mixed_float16" if major >= 7 else "float32"


@keras.saving.register_keras_serializable("imgshard")
class StepCountingLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """A LossScaleOptimizer that advances `iterations` on skipped (non-finite) steps too."""

    def _stateful_handle_non_finite_grads(self):
        super()._stateful_handle_non_finite_grads()
        self.inner_optimizer.iterations.assign_add(1)


def wrap_optimizer(
    optimizer: keras.optimizers.Optimizer, precision: str, initial_scale: float = 2.0**15
) -> keras.optimizers.Optimizer:
    """Loss scaling for mixed_float16 (bfloat16 needs none); Keras would otherwise wrap the
    optimizer itself, with the counting problem above."""
    if precision != "mixed_float16":
        return optimizer
    return StepCountingLossScaleOptimizer(optimizer, initial_scale=initial_scale)
