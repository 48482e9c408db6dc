"""The Beam conversion job: options, the graph, the driver and the `imgshard` CLI.

The exports load on first use (PEP 562): `imgshard convert` starts its warm SDK workers
(pipeline/warm_workers.py) before the driver imports Beam, so importing this package for the
CLI must not import Beam already.
"""

from __future__ import annotations

import importlib

__all__ = ["ConversionError", "ConvertConfig", "ConvertResult", "run"]

_EXPORTS = {
    "ConversionError": "imgshard.pipeline.convert",
    "ConvertResult": "imgshard.pipeline.convert",
    "run": "imgshard.pipeline.convert",
    "ConvertConfig": "imgshard.pipeline.options",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
