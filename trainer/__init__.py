"""The tf.data input pipeline and Keras training entrypoint (see the trainer issue)."""
