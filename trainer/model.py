"""The networks: Keras applications, trained from scratch, with normalization inside."""

from __future__ import annotations

import keras

__all__ = ["MODELS", "build_model"]

MODELS = ("mobilenet", "resnet50")


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
    return keras.Model(inputs, logits, name=f"{name}_{num_classes}")
