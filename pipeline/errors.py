"""The error a conversion reports to its user."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imgshard.pipeline.convert import ConvertResult

__all__ = ["ConversionError"]


class ConversionError(Exception):
    """The job could not run, or its result must not be used; the message says why.

    `result` is set when the job ran and wrote its output and report, but failed a check.
    """

    def __init__(self, message: str, result: ConvertResult | None = None):
        super().__init__(message)
        self.result = result
