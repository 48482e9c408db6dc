"""The networks: Keras applications, trained from scratch, with normalization inside."""

from __future__ import annotations

import keras

__all__ = ["MODELS", "ClassifierModel", "build_model"]

MODELS = ("mobilenet", "resnet50")


class ClassifierModel(keras.Model):
    """A functional model that builds its compiled state from its own input and output shapes.

    Under a tf.distribute strategy Keras 3.15's `fit` builds the metrics and the loss by
    taking one batch from the training iterator and reducing it across replicas
    (`strategy.reduce("MEAN", (images, labels))`). MultiWorkerMirroredStrategy cannot reduce
    that nested PerReplica value, so a multi-worker run died before its first step; and the
    batch taken is one the training never sees. Only shapes and dtypes matter for that build,
    and the model knows them. Then every step's logs (scalar loss and metrics) are reduced
    across workers with `reduce("MEAN", v, axis=0)`, which fails on a scalar ("Invalid
    reduction dimension 0 for input with 0 dimensions"): under a multi-worker strategy the
    steps return them as 1-vectors, which that reduce averages back to scalars.
    """

    def train_step(self, data):
        return self._reducible(super().train_step(data))

    def test_step(self, data):
        return self._reducible(super().test_step(data))

    def _reducible(self, logs):
        import tensorflow as tf

        if not isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return logs
        return {name: keras.ops.reshape(value, (1,)) for name, value in logs.items()}

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and data_batch is None:
            image = self.inputs[0]
            images = keras.ops.zeros((1, *image.shape[1:]), dtype=image.dtype)
            labels = keras.ops.zeros((1, *self.outputs[0].shape[1:]), dtype="float32")
            return super()._maybe_symbolic_build(data_batch=(images, labels))
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


def _backbone(name: str, image_size: int, alpha: float) -> keras.Model:
    shape = (image_size, image_size, 3)
    if name == "mobilenet":
        return keras.applications.MobileNet(
            input_shape=shape, alpha=alpha, include_top=False, weights=None, pooling="avg"
        )
    if name == "resnet50":
        return keras.applications.ResNet50(
            input_shape=shape, include_top=False, weights=None, pooling="avg"
        )
    raise ValueError(f"--model must be one of {MODELS}, got {name!r}")


def _normalization(name: str, mean_std: tuple | None) -> keras.layers.Layer:
    if mean_std is not None:
        mean, std = mean_std
        return keras.layers.Normalization(
            mean=list(mean), variance=[float(v) ** 2 for v in std], name="normalize"
        )
    if name == "mobilenet":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="normalize")
    return keras.layers.Lambda(keras.applications.resnet50.preprocess_input, name="normalize")


def build_model(
    name: str,
    num_classes: int,
    image_size: int,
    alpha: float = 1.0,
    dropout: float = 1e-3,
    mean_std: tuple | None = None,
) -> keras.Model:
    """uint8 images [B, S, S, 3] in, float32 logits [B, num_classes] out.

    Pixels are scaled inside the model, so the input pipeline can stay uint8: with the
    dataset's per-channel mean and std from tf.Transform (`mean_std`), or else the model's
    conventional scaling (MobileNet: [-1, 1]; ResNet-50: its caffe-style preprocessing). The
    classifier runs in float32 so that mixed precision never rounds the logits.
    """
    backbone = _backbone(name, image_size, alpha)
    inputs = keras.Input((image_size, image_size, 3), dtype="uint8", name="image")
    pixels = keras.layers.Lambda(lambda x: keras.ops.cast(x, "float32"), name="to_float")(inputs)
    scaled = _normalization(name, mean_std)(pixels)
    features = keras.layers.Dropout(dropout, name="dropout")(backbone(scaled))
    logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(features)
    return ClassifierModel(inputs, logits, name=f"{name}_{num_classes}")
