"""Weight decay as the ImageNet recipes mean it: coupled L2 on conv and dense kernels only.

tf/models (and TF-slim before it) add `weight_decay * sum(w**2) / 2` of every kernel to the
loss, so the decay gradient `weight_decay * w` goes through momentum like any gradient. Keras'
SGD `weight_decay` is decoupled (`w -= lr * wd * w`, outside momentum: ~10x weaker at momentum
0.9) and decays BatchNorm's gamma/beta and the biases too, which those recipes never do.
Depthwise kernels are not decayed either (TF-slim's MobileNet `regularize_depthwise=False`:
with 9 weights a filter they underfit when decayed).
"""

from __future__ import annotations

import keras

__all__ = ["add_weight_decay", "decayed_variables"]


def decayed_variables(model: keras.Model) -> list:
    """The kernels of every conv and dense layer, depthwise ones excepted."""
    found = []
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            continue
        variable = getattr(layer, "kernel", None)
        if isinstance(variable, keras.Variable) and variable.trainable:
            found.append(variable)
    return found


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):  # a backbone nested as one layer
            yield from _all_layers(layer)


def add_weight_decay(model: keras.Model, weight_decay: float) -> None:
    """Puts an L2 term of `weight_decay / 2 * sum(w**2)` per kernel in `model.losses`."""
    if not weight_decay:
        return
    for variable in decayed_variables(model):
        variable.regularizer = keras.regularizers.L2(weight_decay / 2)
