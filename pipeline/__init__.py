"""The Beam conversion job: options, the graph, the driver and the `imgshard` CLI."""

from imgshard.pipeline.convert import ConversionError, ConvertResult, run
from imgshard.pipeline.options import ConvertConfig

__all__ = ["ConversionError", "ConvertConfig", "ConvertResult", "run"]
