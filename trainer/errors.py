"""The trainer's user-facing errors: `imgshard-train` prints these as one line and exits 2.

Everything else (TensorFlow's own ValueErrors included) keeps its traceback, so a crash inside
TensorFlow is never shown as if the user had passed a bad flag.
"""

from __future__ import annotations

__all__ = ["TrainError"]


class TrainError(ValueError):
    """A bad flag, missing or unusable data, or a model dir this run cannot continue."""
