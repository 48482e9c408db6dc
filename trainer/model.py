"""The networks: Keras applications, trained from scratch, with normalization inside."""

from __future__ import annotations

import keras

__all__ = ["MODELS", "build_model"]

MODELS = ("mobilenet", "resnet50")


def build_model(
    name: str, num_classes: int, image_size: int, alpha: float = 1.0, dropout: float = 1e-3
) -> keras.Model:
    """uint8 images [B, S, S, 3] in, float32 logits [B, num_classes] out.

    Pixels are scaled inside the model (MobileNet: [-1, 1]; ResNet-50: its caffe-style
    preprocessing), so the input pipeline can stay uint8. The classifier runs in float32 so
    that mixed precision never rounds the logits.
    """
    inputs = keras.Input((image_size, image_size, 3), dtype="uint8", name="image")
    pixels = keras.layers.Lambda(lambda x: keras.ops.cast(x, "float32"), name="to_float")(inputs)
    if name == "mobilenet":
        scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="normalize")(pixels)
        backbone = keras.applications.MobileNet(
            input_shape=(image_size, image_size, 3),
            alpha=alpha,
            include_top=False,
            weights=None,
            pooling="avg",
        )
    elif name == "resnet50":
        scaled = keras.layers.Lambda(
            keras.applications.resnet50.preprocess_input, name="normalize"
        )(pixels)
        backbone = keras.applications.ResNet50(
            input_shape=(image_size, image_size, 3), include_top=False, weights=None, pooling="avg"
        )
    else:
        raise ValueError(f"--model must be one of {MODELS}, got {name!r}")
    features = keras.layers.Dropout(dropout, name="dropout")(backbone(scaled))
    logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(features)
    return keras.Model(inputs, logits, name=f"{name}_{num_classes}")
